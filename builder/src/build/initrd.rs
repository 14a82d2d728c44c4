//! Writing the initrd: the recipe's layout as a sorted newc archive, streamed through the compressor.
//!
//! Files are streamed from disk (never held whole in memory); the digest the cpio writer computes while copying must
//! equal the digest taken when the inputs were hashed, so a file that changes during the build fails it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::hashing::ProgressReader;
use super::inputs::{open, Input};
use super::{BuildError, Progress, Step};
use crate::format::compress::{self, Compression};
use crate::format::cpio::CpioWriter;
use crate::manifest::{EntryRecord, EntryType};
use crate::recipe::dest::{FileSource, Kind, Layout};
use crate::recipe::Recipe;
use crate::sys::io::HashingWriter;

/// What writing the initrd produced.
pub(crate) struct InitrdOutcome {
    /// One record per entry, in archive order.
    pub(crate) entries: Vec<EntryRecord>,
    /// SHA-256 of the uncompressed archive.
    pub(crate) uncompressed_sha256: [u8; 32],
    /// Size of the uncompressed archive.
    pub(crate) uncompressed_size: u64,
}

/// Everything [`write`] needs.
pub(crate) struct InitrdJob<'a> {
    pub(crate) recipe: &'a Recipe,
    pub(crate) layout: &'a Layout,
    /// The init (role `init`).
    pub(crate) init: &'a Input,
    /// `initrd.files[i]` → its input.
    pub(crate) files: Vec<&'a Input>,
    pub(crate) compression: Compression,
    pub(crate) jobs: usize,
    /// Kernel modules staged by the sealing stage (`seal::check`) (`FileSource::Module(i)`), in load order.
    pub(crate) modules: &'a [crate::seal::check::ModuleFile],
}

/// Writes the compressed initrd to `path`.
pub(crate) fn write(job: &InitrdJob<'_>, path: &Path, progress: &dyn Progress) -> Result<InitrdOutcome, BuildError> {
    let out_err = |source| BuildError::Output { path: path.to_path_buf(), source };
    let file = BufWriter::with_capacity(1 << 20, File::create(path).map_err(out_err)?);
    let encoder = compress::encoder(&job.compression, job.jobs, file).map_err(out_err)?;
    let mut cpio = CpioWriter::new(HashingWriter::new(encoder), job.recipe.source_date_epoch);
    let total = job.files.iter().map(|i| i.size).sum::<u64>() + job.init.size;
    progress.begin(Step::Initrd, total);
    let module_dests: Vec<String> = job.modules.iter().map(|m| m.dest.clone()).collect();
    let volumes = job.recipe.init_volumes();
    let config = job.recipe.init_config(&module_dests, &volumes).to_bytes();
    let mut entries = Vec::with_capacity(job.layout.entries.len() + 1);
    // The root directory first, with a fixed mode: without an entry for it the kernel leaves the initramfs root at
    // its default mode 1777, writable by the payload (issue 17). guest-init also remounts it read-only.
    cpio.add_root(ROOT_MODE)?;
    entries.push(record("/", EntryType::Directory, ROOT_MODE, 0, None));
    for (name, entry) in &job.layout.entries {
        let record = match &entry.kind {
            Kind::Directory { mode, .. } => {
                cpio.add_directory(name, *mode)?;
                record(name, EntryType::Directory, *mode, 0, None)
            }
            Kind::CharDevice { mode, major, minor } => {
                cpio.add_char_device(name, *mode, *major, *minor)?;
                EntryRecord {
                    device: Some(format!("{major}:{minor}")),
                    ..record(name, EntryType::Chardev, *mode, 0, None)
                }
            }
            Kind::Symlink { target } => {
                let digest = cpio.add_symlink(name, target)?;
                let size = target.len() as u64;
                EntryRecord {
                    target: Some(target.clone()),
                    ..record(name, EntryType::Symlink, 0o777, size, Some(digest))
                }
            }
            Kind::File { mode, source } => {
                let (size, digest) = match source {
                    FileSource::InitConfig => {
                        let size = config.len() as u64;
                        (size, cpio.add_file(name, *mode, size, &mut config.as_slice())?)
                    }
                    FileSource::Module(i) => {
                        let m = job.modules.get(*i).ok_or(BuildError::Internal { what: "module index" })?;
                        let size = m.bytes.len() as u64;
                        (size, cpio.add_file(name, *mode, size, &mut m.bytes.as_slice())?)
                    }
                    FileSource::Init => (job.init.size, add_input(&mut cpio, name, *mode, job.init, progress)?),
                    FileSource::Payload(i) => {
                        let input = job.files.get(*i).ok_or(BuildError::Internal { what: "payload index" })?;
                        (input.size, add_input(&mut cpio, name, *mode, input, progress)?)
                    }
                };
                record(name, EntryType::File, *mode, size, Some(digest))
            }
        };
        entries.push(record);
    }
    let hashed = cpio.finish()?;
    let (encoder, uncompressed_sha256, uncompressed_size) = hashed.into_parts();
    let file = encoder.finish().map_err(out_err)?.into_inner().map_err(|e| out_err(e.into_error()))?;
    file.sync_all().map_err(out_err)?;
    progress.end();
    Ok(InitrdOutcome { entries, uncompressed_sha256, uncompressed_size })
}

fn add_input<W: Write>(
    cpio: &mut CpioWriter<W>,
    name: &str,
    mode: u32,
    input: &Input,
    progress: &dyn Progress,
) -> Result<[u8; 32], BuildError> {
    let file = open(input)?;
    let mut reader = ProgressReader { inner: file, progress };
    let digest = cpio.add_file(name, mode, input.size, &mut reader).map_err(|e| match e {
        crate::format::cpio::CpioError::SizeMismatch { .. } => changed(input),
        other => BuildError::Cpio(other),
    })?;
    if digest != input.sha256 {
        return Err(changed(input));
    }
    Ok(digest)
}

fn changed(input: &Input) -> BuildError {
    BuildError::InputChanged { role: input.role.clone(), path: input.path.clone() }
}

/// The mode of the initrd's root directory.
const ROOT_MODE: u32 = 0o755;

fn record(path: &str, kind: EntryType, mode: u32, size: u64, sha256: Option<[u8; 32]>) -> EntryRecord {
    EntryRecord {
        path: path.to_string(),
        kind,
        mode: format!("{mode:04o}"),
        size,
        sha256: sha256.map(hex::encode),
        target: None,
        device: None,
    }
}
