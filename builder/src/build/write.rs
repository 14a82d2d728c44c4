//! Writing the outputs into the staging directory: the initrd, the copies of the inputs, the measurements, the
//! manifest and the bundle.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use super::{
    find, hashing, initrd, inputs, measure, volume, BuildError, Checked, Progress, Step, CMDLINE_FILE, INITRD_FILE,
    KERNEL_FILE, MANIFEST_FILE,
};
use crate::format::compress;
use crate::format::tar::TarWriter;
use crate::manifest::{InitrdRecord, KernelRecord, Manifest, Measurements, OutputRecord, MANIFEST_SCHEMA};
use crate::sys::io::{sha256_of, HashingWriter};

/// The outcome of [`write_outputs`].
pub(super) struct Written {
    pub(super) manifest: Manifest,
    /// Every file in the output directory, sorted by name.
    pub(super) all_outputs: Vec<OutputRecord>,
    /// Warnings of the measurement step.
    pub(super) warnings: Vec<String>,
}

/// Writes every output into the staging directory `dir`.
pub(super) fn write_outputs(
    c: &Checked,
    dir: &Path,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<Written, BuildError> {
    let recipe = &c.loaded.recipe;
    let files = recipe
        .initrd
        .files
        .iter()
        .map(|f| find(&c.inputs, &format!("file:{}", f.dst)))
        .collect::<Result<Vec<_>, _>>()?;
    let init = find(&c.inputs, "init")?;
    let modules = &c.sealed.module_files;
    let job = initrd::InitrdJob { recipe, layout: &c.layout, init, files, compression: c.compression, jobs, modules };
    let initrd = initrd::write(&job, &dir.join(INITRD_FILE), progress)?;
    let mut names = copy_inputs(&c.inputs, dir, progress)?;
    let (volumes, volume_outputs): (Vec<_>, Vec<_>) =
        volume::write_all(&c.loaded, &c.volumes, dir, jobs)?.into_iter().unzip();
    // A volume image can be gigabytes: its record was taken while it was written, not by reading it again.
    let record = |name: &String| match volume_outputs.iter().find(|o| &o.name == name) {
        Some(known) => Ok(known.clone()),
        None => output_record(dir, name),
    };
    // The volumes' root hashes join the command line, and with it every measurement.
    let cmdline = format!("{}{}", recipe.kernel.cmdline, volume::cmdline_params(&volumes));
    if cmdline.len() > crate::recipe::MAX_CMDLINE_LEN {
        return Err(BuildError::CmdlineTooLong { len: cmdline.len() });
    }
    write_file(&dir.join(CMDLINE_FILE), cmdline.as_bytes())?;

    names.extend([INITRD_FILE.to_string(), CMDLINE_FILE.to_string()]);
    names.extend(volumes.iter().map(|v| v.image.clone()));
    names.sort();
    let outputs = names.iter().map(record).collect::<Result<Vec<_>, _>>()?;
    progress.begin(Step::Measure, 0);
    let (measurements, warnings) = measure_outputs(c, dir, &outputs, &cmdline)?;
    progress.end();
    progress.begin(Step::Bundle, 0);
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA.to_string(),
        cvmforge_version: env!("CARGO_PKG_VERSION").to_string(),
        recipe: c.recipe_record.clone(),
        source_date_epoch: recipe.source_date_epoch,
        inputs: c.inputs.iter().map(inputs::Input::record).collect(),
        outputs,
        initrd: InitrdRecord {
            compression: compress::describe(&c.compression),
            uncompressed_sha256: hex::encode(initrd.uncompressed_sha256),
            uncompressed_size: initrd.uncompressed_size,
            entries: initrd.entries,
        },
        kernel: KernelRecord {
            boot_protocol: c.bzimage.protocol_string(),
            version: c.bzimage.kernel_version.clone(),
            cmdline: cmdline.clone(),
        },
        measurements,
        sealing: c.sealed.manifest_sealing(),
        volumes,
    };
    let manifest_json = manifest.to_json();
    // The same limit every reader applies: a manifest that `verify` or `inspect` would refuse is never written.
    if manifest_json.len() as u64 > crate::manifest::MAX_MANIFEST_SIZE {
        let source = std::io::Error::other(format!(
            "{} bytes is more than the manifest limit of {} bytes",
            manifest_json.len(),
            crate::manifest::MAX_MANIFEST_SIZE
        ));
        return Err(BuildError::Output { path: dir.join(MANIFEST_FILE), source });
    }
    write_file(&dir.join(MANIFEST_FILE), manifest_json.as_bytes())?;
    names.push(MANIFEST_FILE.to_string());
    names.sort();
    let bundle = format!("{}-{}.cvm.tar", recipe.name, recipe.version);
    // Volume images are published beside the bundle, not in it (they can be gigabytes); the manifest in the bundle
    // pins each by its digest and its root hash.
    let members: Vec<String> =
        names.iter().filter(|n| !manifest.volumes.iter().any(|v| &v.image == *n)).cloned().collect();
    write_bundle(dir, &bundle, &members, recipe.source_date_epoch)?;
    names.push(bundle);
    names.sort();
    let all_outputs = names.iter().map(record).collect::<Result<Vec<_>, _>>()?;
    progress.end();
    Ok(Written { manifest, all_outputs, warnings })
}

/// The launch measurements of the staged outputs, reusing the digests already computed for them.
pub(super) fn measure_outputs(
    c: &Checked,
    dir: &Path,
    outputs: &[OutputRecord],
    cmdline: &str,
) -> Result<(Measurements, Vec<String>), BuildError> {
    let initrd = outputs.iter().find(|o| o.name == INITRD_FILE).ok_or(BuildError::Internal { what: "outputs" })?;
    let mut initrd_sha256 = [0u8; 32];
    hex::decode_to_slice(&initrd.sha256, &mut initrd_sha256).map_err(|_| BuildError::Internal { what: "digest" })?;
    let sources = measure::Sources {
        dir,
        kernel_sha256: find(&c.inputs, "kernel")?.sha256,
        initrd_sha256,
        firmware_snp_sha256: c.inputs.iter().find(|i| i.role == "firmware:snp").map(|i| i.sha256),
        firmware_tdx_sha256: c.inputs.iter().find(|i| i.role == "firmware:tdx").map(|i| i.sha256),
        cmdline,
    };
    Ok(measure::measure(&c.plan, &sources)?)
}

/// Copies the kernel (`kernel`) and firmware (`firmware-<platform>.fd`); returns the names written.
pub(super) fn copy_inputs(
    inputs: &[inputs::Input],
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Vec<String>, BuildError> {
    let copies: Vec<(&inputs::Input, String)> = inputs
        .iter()
        .filter_map(|i| match i.role.as_str() {
            "kernel" => Some((i, KERNEL_FILE.to_string())),
            role => role.strip_prefix("firmware:").map(|p| (i, format!("firmware-{p}.fd"))),
        })
        .collect();
    progress.begin(Step::Copy, copies.iter().map(|(i, _)| i.size).sum());
    for (input, name) in &copies {
        copy_input(input, &dir.join(name), progress)?;
    }
    progress.end();
    Ok(copies.into_iter().map(|(_, n)| n).collect())
}

/// Copies an input, checking that its digest is still the one hashed earlier.
pub(super) fn copy_input(input: &inputs::Input, to: &Path, progress: &dyn Progress) -> Result<(), BuildError> {
    let out_err = |source| BuildError::Output { path: to.to_path_buf(), source };
    let mut writer = HashingWriter::new(File::create(to).map_err(out_err)?);
    let mut reader = hashing::ProgressReader { inner: inputs::open(input)?, progress };
    copy_blaming(&mut reader, &mut writer).map_err(|failure| match failure {
        CopyFailure::Read(source) => inputs::input_io(input, source),
        CopyFailure::Write(source) => out_err(source),
    })?;
    let (file, digest, size) = writer.into_parts();
    if digest != input.sha256 || size != input.size {
        return Err(BuildError::InputChanged { role: input.role.clone(), path: input.path.clone() });
    }
    file.sync_all().map_err(out_err)
}

/// Which side of a copy failed: a full output disk is the output's failure, not the input's.
#[derive(Debug)]
pub(super) enum CopyFailure {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// `io::copy` that says which side failed.
pub(super) fn copy_blaming(reader: &mut dyn Read, writer: &mut dyn Write) -> Result<u64, CopyFailure> {
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyFailure::Read(e)),
        };
        writer.write_all(buf.get(..n).unwrap_or_default()).map_err(CopyFailure::Write)?;
        total += n as u64;
    }
}

pub(super) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let out_err = |source| BuildError::Output { path: path.to_path_buf(), source };
    let mut file = File::create(path).map_err(out_err)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(out_err)
}

pub(super) fn output_record(dir: &Path, name: &str) -> Result<OutputRecord, BuildError> {
    let path = dir.join(name);
    let mut file = File::open(&path).map_err(|source| BuildError::Output { path: path.clone(), source })?;
    let (digest, size) = sha256_of(&mut file).map_err(|source| BuildError::Output { path: path.clone(), source })?;
    Ok(OutputRecord { name: name.to_string(), sha256: hex::encode(digest), size })
}

/// Writes the publishing tar: every named output, sorted, mode 0644, mtime `source_date_epoch`.
pub(super) fn write_bundle(dir: &Path, bundle: &str, names: &[String], mtime: u32) -> Result<(), BuildError> {
    let path = dir.join(bundle);
    let out_err = |source| BuildError::Output { path: path.clone(), source };
    let mut tar = TarWriter::new(std::io::BufWriter::new(File::create(&path).map_err(out_err)?), u64::from(mtime));
    for name in names {
        let member = dir.join(name);
        let mut file = File::open(&member).map_err(|source| BuildError::Output { path: member.clone(), source })?;
        let size = file.metadata().map_err(|source| BuildError::Output { path: member.clone(), source })?.len();
        tar.add_file(name, 0o644, size, &mut file)?;
    }
    let writer = tar.finish()?;
    let file = writer.into_inner().map_err(|e| out_err(e.into_error()))?;
    file.sync_all().map_err(out_err)
}
