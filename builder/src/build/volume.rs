//! Data volumes (`volumes:` in the recipe): each becomes `volume-<name>.img` in the output, an EROFS image
//! ([`crate::format::erofs`]) followed by its dm-verity hash tree ([`crate::format::verity`]), and one
//! `cvm.volume=` parameter on the kernel command line, which every SEV-SNP and TDX measurement covers:
//!
//! ```text
//! cvm.volume=<name>:<data blocks>:<hash blocks>:<root hash>:<salt>
//! ```
//!
//! The hash tree starts right after the data (hash start block = data blocks), both in 4 KiB blocks. The salt and the
//! file system UUID are derived from the recipe's name and the volume's name, so that the same files give the same
//! root hash in every release of the recipe.
//!
//! Planning (before anything is written) walks each source in sorted order, takes regular files and directories
//! only, and records each file's size and change time; writing reads each file once, and a file whose size, change
//! time or content length differs from the plan fails the build (it changed while it was read).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::inputs;
use super::BuildError;
use crate::format::erofs::{self, ErofsError, ImageOptions, VolumeFile};
use crate::format::verity::{self, VerityError};
use crate::manifest::{OutputRecord, VolumeFileRecord, VolumeRecord};
use crate::recipe::volume::VolumeSpec;
use crate::recipe::LoadedRecipe;

/// Lock-file roles of volume files: `volume:<name>/<path in the volume>`.
pub const LOCK_ROLE: &str = "volume:";

/// The lock-file entries of the volumes' files, with the digests taken while the images were written; each names
/// the file as the recipe reaches it (`<source>/<path>`, or the `src` of a `files` entry).
pub(crate) fn lock_entries(
    recipe: &crate::recipe::Recipe,
    volumes: &[VolumeRecord],
) -> std::collections::BTreeMap<String, crate::recipe::lock::LockedInput> {
    let mut out = std::collections::BTreeMap::new();
    for (spec, record) in recipe.volumes.iter().zip(volumes) {
        for f in &record.files {
            let path = match &spec.source {
                Some(source) => format!("{}/{}", source.trim_end_matches('/'), f.path),
                None => spec.files.iter().find(|s| s.dst == f.path).map_or_else(|| f.path.clone(), |s| s.src.clone()),
            };
            let locked = crate::recipe::lock::LockedInput { path, sha256: f.sha256.clone(), size: f.size };
            out.insert(format!("{LOCK_ROLE}{}/{}", record.name, f.path), locked);
        }
    }
    out
}

/// The kernel command-line parameter of a volume.
pub const CMDLINE_PARAM: &str = "cvm.volume";
/// Most files one volume may hold.
pub const MAX_FILES: usize = 1 << 20;

/// Why a volume could not be planned or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// A source could not be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The source holds something other than regular files and directories.
    #[error("`{}` is {found}: a volume holds regular files and directories only", path.display())]
    NotRegular {
        /// The entry.
        path: PathBuf,
        /// What it is.
        found: &'static str,
    },
    /// A name in the source is not UTF-8.
    #[error("`{}` has a name that is not UTF-8", path.display())]
    NotUtf8 {
        /// The entry.
        path: PathBuf,
    },
    /// The source holds no file.
    #[error("the volume is empty: its source holds no regular file")]
    Empty,
    /// The content is larger than `max_size`.
    #[error("the volume's files add up to {size} bytes, more than its max_size of {limit}")]
    TooLarge {
        /// Content bytes.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// More files than [`MAX_FILES`].
    #[error("the volume holds more than {MAX_FILES} files")]
    TooManyFiles,
    /// A file changed between planning and writing, or while it was read.
    #[error("`{}` changed while the volume was built ({what}); the build is refused, rebuild when the source is still", path.display())]
    Changed {
        /// The source file.
        path: PathBuf,
        /// What differed.
        what: String,
    },
    /// The file system image could not be written.
    #[error(transparent)]
    Image(#[from] ErofsError),
    /// The hash tree could not be written.
    #[error(transparent)]
    Verity(#[from] VerityError),
}

/// A volume whose files are known, before anything is written.
#[derive(Debug, Clone)]
pub(crate) struct PlannedVolume {
    /// Index in `volumes:`.
    pub(crate) index: usize,
    /// The files in the volume, in path order.
    pub(crate) files: Vec<VolumeFile>,
    /// Where each file is read from, and what it was when planned.
    pub(crate) sources: Vec<PlannedSource>,
}

/// A source file as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedSource {
    pub(crate) path: PathBuf,
    size: u64,
    ctime: (i64, i64),
    mtime: (i64, i64),
    ino: u64,
}

impl PlannedSource {
    fn of(path: PathBuf, meta: &std::fs::Metadata) -> Self {
        PlannedSource {
            path,
            size: meta.len(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ino: meta.ino(),
        }
    }

    /// What differs between the plan and `meta`, if anything.
    fn differs(&self, meta: &std::fs::Metadata) -> Option<String> {
        let now = PlannedSource::of(self.path.clone(), meta);
        if now.ino != self.ino {
            Some("it was replaced".into())
        } else if now.size != self.size {
            Some(format!("its size went from {} to {} bytes", self.size, now.size))
        } else if now.mtime != self.mtime || now.ctime != self.ctime {
            Some("it was modified".into())
        } else {
            None
        }
    }
}

fn volume_error(loaded: &LoadedRecipe, index: usize, source: VolumeError) -> BuildError {
    let name = loaded.recipe.volumes.get(index).map_or_else(String::new, |v| v.name.clone());
    BuildError::Volume { field: format!("volumes[{index}]"), name, source }
}

/// Walks every volume's source.
pub(crate) fn plan_all(loaded: &LoadedRecipe, root: &Path) -> Result<Vec<PlannedVolume>, BuildError> {
    let mut planned = Vec::with_capacity(loaded.recipe.volumes.len());
    for (index, spec) in loaded.recipe.volumes.iter().enumerate() {
        let mut found = Vec::new();
        if let Some(source) = &spec.source {
            let dir = inputs::resolve_dir(loaded, root, &format!("volumes[{index}].source"), source)?;
            walk(&dir, "", &mut found).map_err(|e| volume_error(loaded, index, e))?;
        }
        for (j, f) in spec.files.iter().enumerate() {
            let field = format!("volumes[{index}].files[{j}].src");
            let resolved = inputs::resolve(loaded, root, &field, &f.src)?;
            let meta = std::fs::metadata(&resolved).map_err(|source| BuildError::InputIo {
                role: field.clone(),
                path: f.src.clone(),
                source,
            })?;
            found.push((f.dst.clone(), PlannedSource::of(resolved, &meta), meta.mode() & 0o100 != 0));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let planned_volume = plan_one(index, spec, found).map_err(|e| volume_error(loaded, index, e))?;
        planned.push(planned_volume);
    }
    Ok(planned)
}

fn plan_one(
    index: usize,
    spec: &VolumeSpec,
    found: Vec<(String, PlannedSource, bool)>,
) -> Result<PlannedVolume, VolumeError> {
    if found.is_empty() {
        return Err(VolumeError::Empty);
    }
    let size: u64 = found.iter().map(|(_, s, _)| s.size).sum();
    if size > spec.limit() {
        return Err(VolumeError::TooLarge { size, limit: spec.limit() });
    }
    let (files, sources) = found
        .into_iter()
        .map(|(path, source, executable)| (VolumeFile { path, size: source.size, executable }, source))
        .unzip();
    Ok(PlannedVolume { index, files, sources })
}

/// Adds the regular files under `dir` to `found` as (path in the volume, source, executable), refusing anything
/// else. Directories are read in sorted order; symlinks are not followed.
fn walk(dir: &Path, prefix: &str, found: &mut Vec<(String, PlannedSource, bool)>) -> Result<(), VolumeError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VolumeError::Io { path, source }
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let name = entry.file_name().into_string().map_err(|_| VolumeError::NotUtf8 { path: path.clone() })?;
        names.push((name, path));
    }
    names.sort();
    for (name, path) in names {
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        let inner = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let kind = meta.file_type();
        if kind.is_dir() {
            walk(&path, &inner, found)?;
        } else if kind.is_file() {
            if found.len() >= MAX_FILES {
                return Err(VolumeError::TooManyFiles);
            }
            let executable = meta.mode() & 0o100 != 0;
            found.push((inner, PlannedSource::of(path, &meta), executable));
        } else {
            let found_kind = if kind.is_symlink() { "a symbolic link" } else { "not a regular file or directory" };
            return Err(VolumeError::NotRegular { path, found: found_kind });
        }
    }
    Ok(())
}

/// The name of a volume's image in the output directory.
pub fn image_file_name(name: &str) -> String {
    format!("volume-{name}.img")
}

/// The salt of a volume's hash tree: SHA-256 of the recipe's name and the volume's name.
pub fn salt(recipe_name: &str, volume_name: &str) -> [u8; 32] {
    Sha256::digest(format!("cvmforge volume salt\0{recipe_name}\0{volume_name}")).into()
}

fn uuid(recipe_name: &str, volume_name: &str) -> [u8; 16] {
    let digest: [u8; 32] = Sha256::digest(format!("cvmforge volume uuid\0{recipe_name}\0{volume_name}")).into();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(digest.get(..16).unwrap_or(&[0; 16]));
    uuid
}

/// Writes every planned volume into `dir`. Each comes with the output record (SHA-256 and size) of its image file,
/// taken while the image was written, so that the build never reads a volume image again to list it.
pub(crate) fn write_all(
    loaded: &LoadedRecipe,
    planned: &[PlannedVolume],
    dir: &Path,
    threads: usize,
) -> Result<Vec<(VolumeRecord, OutputRecord)>, BuildError> {
    planned.iter().map(|p| write_one(loaded, p, dir, threads).map_err(|e| volume_error(loaded, p.index, e))).collect()
}

/// A reader that feeds what it reads to a hasher.
struct Tee<'h, R> {
    inner: R,
    hasher: &'h mut Sha256,
}

impl<R: std::io::Read> std::io::Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

fn write_one(
    loaded: &LoadedRecipe,
    planned: &PlannedVolume,
    dir: &Path,
    threads: usize,
) -> Result<(VolumeRecord, OutputRecord), VolumeError> {
    let recipe = &loaded.recipe;
    let spec = recipe.volumes.get(planned.index).ok_or(VolumeError::Empty)?;
    let file_name = image_file_name(&spec.name);
    let path = dir.join(&file_name);
    let io = |source| VolumeError::Io { path: path.clone(), source };
    let out = File::options().read(true).write(true).create_new(true).open(&path).map_err(io)?;
    let options = ImageOptions {
        epoch: u64::from(recipe.source_date_epoch),
        uuid: uuid(&recipe.name, &spec.name),
        label: spec.name.clone(),
    };
    // A file that changed since the plan is reported as such, not as a read error: the writer only sees an I/O error.
    let changed = std::cell::RefCell::new(None);
    let mut open = |i: usize| -> std::io::Result<Box<dyn std::io::Read>> {
        let source = planned.sources.get(i).ok_or_else(|| std::io::Error::other("no such file"))?;
        let file = crate::sys::regular_file::open_input(&source.path)?;
        if let Some(what) = source.differs(&file.metadata()?) {
            *changed.borrow_mut() = Some(VolumeError::Changed { path: source.path.clone(), what: what.clone() });
            return Err(std::io::Error::other(what));
        }
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
    };
    let mut writer = BufWriter::with_capacity(1 << 20, &out);
    let written = erofs::write_image(&planned.files, &options, &mut open, &mut writer);
    if let Some(changed) = changed.take() {
        return Err(changed);
    }
    let image = written.map_err(|e| match e {
        ErofsError::Changed { path, planned: was, read } => {
            let source = planned.files.iter().position(|f| f.path == path).and_then(|i| planned.sources.get(i));
            VolumeError::Changed {
                path: source.map_or_else(|| PathBuf::from(&path), |s| s.path.clone()),
                what: format!("it gave {read} bytes where {was} were planned"),
            }
        }
        other => VolumeError::Image(other),
    })?;
    writer.flush().map_err(io)?;
    drop(writer);
    // Each file once more: one that changed while it was read (same size, new bytes) is caught here.
    for source in &planned.sources {
        let meta = std::fs::symlink_metadata(&source.path)
            .map_err(|e| VolumeError::Io { path: source.path.clone(), source: e })?;
        if let Some(what) = source.differs(&meta) {
            return Err(VolumeError::Changed { path: source.path.clone(), what });
        }
    }
    let salt = salt(&recipe.name, &spec.name);
    let data_bytes = image.blocks * erofs::BLOCK;
    // The image file's digest: its data while the tree reads it (exactly once: `take` stops at the tree), then the
    // tree, which is 1/128 of the data.
    let mut hasher = Sha256::new();
    let tee = Tee { inner: std::io::Read::take(ReadAt { file: &out, at: 0 }, data_bytes), hasher: &mut hasher };
    let mut data = std::io::BufReader::with_capacity(1 << 20, tee);
    let tree = verity::write_tree(&mut data, image.blocks, &salt, &out, data_bytes, threads)?;
    drop(data);
    let tree_bytes = std::io::copy(&mut ReadAt { file: &out, at: data_bytes }, &mut hasher).map_err(io)?;
    out.sync_all().map_err(io)?;
    let output =
        OutputRecord { name: file_name.clone(), sha256: hex::encode(hasher.finalize()), size: data_bytes + tree_bytes };
    let record = VolumeRecord {
        name: spec.name.clone(),
        mount: spec.mount.clone(),
        mount_flags: spec.mount_flags().into_iter().map(str::to_owned).collect(),
        image: file_name,
        filesystem: "erofs".to_owned(),
        block_size: verity::BLOCK,
        data_blocks: image.blocks,
        hash_blocks: tree.geometry.hash_blocks(),
        hash_algorithm: "sha256".to_owned(),
        salt: hex::encode(salt),
        root_hash: hex::encode(tree.root),
        content_size: planned.files.iter().map(|f| f.size).sum(),
        files: image
            .files
            .iter()
            .map(|f| VolumeFileRecord { path: f.path.clone(), size: f.size, sha256: hex::encode(f.sha256) })
            .collect(),
    };
    Ok((record, output))
}

/// The `cvm.volume=` parameters of `volumes`, each preceded by a space.
pub fn cmdline_params(volumes: &[VolumeRecord]) -> String {
    volumes
        .iter()
        .map(|v| format!(" {CMDLINE_PARAM}={}:{}:{}:{}:{}", v.name, v.data_blocks, v.hash_blocks, v.root_hash, v.salt))
        .collect()
}

/// A `Read` over a file from an offset, with positioned reads.
struct ReadAt<'a> {
    file: &'a File,
    at: u64,
}

impl std::io::Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}
