//! Where a log is read from: its directory, or its website (`http://`), since a published log is static files.
//! Every read has a size limit, and HTTP has a timeout.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::LogError;
use crate::sys::regular_file::read_capped;

/// How long one HTTP request may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A log's files.
pub trait Source {
    /// Reads the file at `path` (relative to the log's root) if it exists; more than `limit` bytes is an error.
    fn fetch(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, LogError>;
    /// How `path` is named in messages.
    fn show(&self, path: &str) -> String;
    /// Every file under `tile/`, when the source can list them (a directory can; a website cannot).
    fn list_tiles(&self) -> Option<Result<Vec<String>, LogError>>;
}

/// A log directory.
#[derive(Debug, Clone)]
pub struct DirSource(pub PathBuf);

impl Source for DirSource {
    fn fetch(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, LogError> {
        let full = self.0.join(path);
        match read_capped(&full, limit) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LogError::io(full.display(), e)),
        }
    }

    fn show(&self, path: &str) -> String {
        self.0.join(path).display().to_string()
    }

    fn list_tiles(&self) -> Option<Result<Vec<String>, LogError>> {
        let mut found = Vec::new();
        let root = self.0.join("tile");
        if !root.exists() {
            return Some(Ok(found));
        }
        Some(walk(&self.0, &root, &mut found).map(|()| {
            found.sort();
            found
        }))
    }
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), LogError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io(dir.display(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(dir.display(), e))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| LogError::io(path.display(), e))?;
        if file_type.is_dir() {
            walk(base, &path, out)?;
        } else {
            let rel = path.strip_prefix(base).unwrap_or(&path);
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// A log served over plain HTTP.
#[derive(Debug)]
pub struct HttpSource {
    base: String,
    agent: ureq::Agent,
}

impl HttpSource {
    /// A source for the log at `url` (`http://host:port/path`).
    pub fn new(url: &str) -> HttpSource {
        let config =
            ureq::Agent::config_builder().timeout_global(Some(HTTP_TIMEOUT)).http_status_as_error(false).build();
        HttpSource { base: url.trim_end_matches('/').to_owned(), agent: config.into() }
    }
}

impl Source for HttpSource {
    fn fetch(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, LogError> {
        let url = self.show(path);
        let http = |reason: String| LogError::Http { url: url.clone(), reason };
        if self.base.starts_with("https://") {
            return Err(http(
                "https:// is not supported: cvmforge reads a log over plain HTTP (the log's signatures authenticate \
                 every file it reads); use http:// or a copy of the directory"
                    .into(),
            ));
        }
        let mut response = self.agent.get(&url).call().map_err(|e| http(e.to_string()))?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            status => return Err(http(format!("HTTP status {status}"))),
        }
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| http(e.to_string()))?;
        if bytes.len() as u64 > limit {
            return Err(http(format!("more than the limit of {limit} bytes")));
        }
        Ok(Some(bytes))
    }

    fn show(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    fn list_tiles(&self) -> Option<Result<Vec<String>, LogError>> {
        None
    }
}

/// A source for `location`: an `http://` URL or a directory.
pub fn open(location: &str) -> Box<dyn Source> {
    if location.starts_with("http://") || location.starts_with("https://") {
        Box::new(HttpSource::new(location))
    } else {
        Box::new(DirSource(PathBuf::from(location)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_refused_with_a_reason_before_any_connection() {
        let err = open("https://log.example.org/").fetch("checkpoint", 1024).unwrap_err().to_string();
        assert!(err.starts_with("`https://log.example.org/checkpoint`: https:// is not supported"), "{err}");
    }
}
