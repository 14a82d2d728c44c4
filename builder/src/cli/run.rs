//! `cvmforge run`: boot an image under QEMU without confidential computing, for smoke tests.
//!
//! The image is an output directory of `cvmforge build` or its `.cvm.tar` bundle; the boot uses its `kernel`,
//! `initrd.img` and `cmdline`. KVM is used when `/dev/kvm` can be opened read-write, TCG otherwise. The guest console
//! (the first serial port) is streamed to stderr line by line. The outcome is the guest's: exit 0 when it powered
//! off (QEMU exits 0 after an ACPI power-off with `-no-reboot`), 1 on a kernel panic, a timeout or a QEMU failure.
//! QEMU runs in its own process group and is killed whenever `cvmforge` stops, including on Ctrl-C.
//!
//! `--monitor PATH` serves QEMU's human monitor on a unix socket, so that a test can press Ctrl-Alt-Del
//! (`sendkey ctrl-alt-delete`, which the sealed init turns into SIGINT for the payload) or the power button.
//!
//! `--print-command` prints the QEMU command instead, followed by the confidential launch command of every measured
//! shape recorded in the manifest.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

use super::{CliResult, Failure, Ui};
use cvmforge::display::untrusted;
use cvmforge::format::{publication_limits, read_bundle, EntryType, Limits};
use cvmforge::manifest::Manifest;
use cvmforge::qemu::{
    shell_line, smoke_boot_args, Accel, PortForward, SmokeBoot, CMDLINE_FILE, INITRD_FILE, KERNEL_FILE, MANIFEST_FILE,
    QEMU_BINARY,
};
use cvmforge::sys::regular_file::read_capped;
use cvmforge::units::{parse_duration, parse_size};

mod boot;

use boot::{boot_and_wait, Outcome};

/// Version of the `--json` documents below; bumped on any incompatible change.
const SCHEMA_VERSION: u32 = 1;
/// Smallest guest RAM accepted: a Linux kernel with an initrd does not boot in less.
const MIN_MEMORY: u64 = 64 << 20;
/// How to choose the accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AccelChoice {
    /// KVM if `/dev/kvm` can be opened read-write, else TCG.
    Auto,
    /// KVM, or fail.
    Kvm,
    /// TCG (software emulation), even when KVM is available.
    Tcg,
}

/// Arguments of `cvmforge run`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cvmforge run out/ --forward 8080:8080
  cvmforge run demo-1.0.cvm.tar --memory 2G --vcpus 4 --timeout 5m
  cvmforge run out/ --print-command
  cvmforge run out/ --monitor build/qemu.sock   # then: echo 'sendkey ctrl-alt-delete' | socat - UNIX-CONNECT:build/qemu.sock

Exit status: 0 when the guest powered off, 1 on a kernel panic, a timeout or a QEMU failure, 2 on bad arguments.")]
pub(crate) struct Args {
    /// An output directory of `cvmforge build`, or its `.cvm.tar` bundle.
    #[arg(value_name = "OUTPUT_DIR|BUNDLE")]
    pub(crate) image: PathBuf,

    /// Forward TCP connections to 127.0.0.1:HOSTPORT to the guest's GUESTPORT (repeatable).
    #[arg(long = "forward", value_name = "HOSTPORT:GUESTPORT")]
    pub(crate) forwards: Vec<PortForward>,

    /// Guest RAM, with a K, M or G suffix (binary units).
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_memory)]
    pub(crate) memory: u64,

    /// Number of vCPUs.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) vcpus: u32,

    /// Give up (and stop QEMU) after this long: seconds, or with an s, m or h suffix.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,

    /// Attach this raw disk image as a virtio disk (its contents are the guest's to change).
    #[arg(long, value_name = "FILE")]
    pub(crate) scratch_disk: Option<PathBuf>,

    /// The accelerator.
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    pub(crate) accel: AccelChoice,

    /// Serve the QEMU human monitor (HMP) on this unix socket, e.g. for `system_powerdown` or
    /// `sendkey ctrl-alt-delete` from a test (`socat - UNIX-CONNECT:PATH`). Anyone who can open it controls the VM.
    #[arg(long, value_name = "PATH", value_parser = parse_monitor_path)]
    pub(crate) monitor: Option<String>,

    /// Print the QEMU command (and the confidential launch commands from the manifest) instead of booting.
    #[arg(long)]
    pub(crate) print_command: bool,
}

/// A unix socket path QEMU can be given in `-monitor unix:PATH,server,nowait`.
fn parse_monitor_path(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the monitor socket path is empty".into());
    }
    // QEMU splits the chardev options at commas; a comma in a path is written as two.
    if text.contains(',') {
        return Err(format!("`{text}` contains a comma, which QEMU's `-monitor` option cannot take in a path"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("`{}` contains a control character", text.escape_debug()));
    }
    // sun_path holds 108 bytes including the terminating NUL (unix(7)); QEMU refuses longer paths.
    if text.len() > SUN_PATH_MAX {
        return Err(format!(
            "`{text}` is {} bytes; a unix socket path has at most {SUN_PATH_MAX} (use a shorter, e.g. relative, path)",
            text.len()
        ));
    }
    Ok(text.to_owned())
}

/// Longest unix socket path (`sizeof(sun_path)` minus the NUL, unix(7)).
const SUN_PATH_MAX: usize = 107;

/// Replaces smoke-boot's `-monitor none` by a unix-socket monitor, so that a test can drive the guest like a
/// person at the QEMU console (`sendkey ctrl-alt-delete`, `system_powerdown`). `nowait`: QEMU does not block the boot
/// until a client connects; `server`: QEMU creates the socket (and removes a stale one).
fn with_monitor(mut qemu_args: Vec<String>, path: &str) -> anyhow::Result<Vec<String>> {
    let slot = qemu_args
        .windows(2)
        .position(|w| w[0] == "-monitor" && w[1] == "none")
        .context("internal error (a bug in cvmforge): the smoke-boot command has no `-monitor none` to replace")?;
    qemu_args[slot + 1] = format!("unix:{path},server,nowait");
    Ok(qemu_args)
}

fn parse_memory(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text).map_err(|e| e.to_string())?;
    if bytes < MIN_MEMORY {
        return Err(format!(
            "{bytes} bytes of guest RAM is too little (at least 64M); sizes without a suffix are bytes"
        ));
    }
    Ok(bytes)
}

/// Runs `cvmforge run`.
pub(crate) fn run(args: Args, ui: &Ui) -> CliResult {
    let image = Image::open(&args.image)?;
    let accel = choose_accel(args.accel)?;
    let scratch = args.scratch_disk.as_deref().map(scratch_disk_arg).transpose()?;
    let (kernel, initrd) = (image.path_arg(KERNEL_FILE)?, image.path_arg(INITRD_FILE)?);
    let volumes = image.volumes()?;
    let boot = SmokeBoot {
        accel,
        memory_bytes: args.memory,
        vcpus: args.vcpus,
        kernel: &kernel,
        initrd: &initrd,
        cmdline: &image.cmdline,
        forwards: &args.forwards,
        scratch_disk: scratch.as_deref(),
        volumes: &volumes,
    };
    check_forwards(&args.forwards)?;
    let qemu_args = match &args.monitor {
        Some(path) => with_monitor(smoke_boot_args(&boot), path)?,
        None => smoke_boot_args(&boot),
    };
    if args.print_command {
        print_commands(&image, accel, &qemu_args, ui)?;
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = boot_and_wait(&qemu_args, args.timeout)?;
    finish(outcome, accel, args.timeout, ui)
}

/// The image's files: in the output directory itself, or extracted from the bundle into a temporary directory.
struct Image {
    /// Where `kernel` and `initrd.img` are.
    dir: PathBuf,
    /// For a bundle: its path, and the temporary directory that lives as long as QEMU may read from it.
    bundle: Option<(PathBuf, tempfile::TempDir)>,
    /// The kernel command line (one trailing newline removed).
    cmdline: String,
}

impl Image {
    fn open(path: &Path) -> CliResult<Image> {
        let meta = fs_err::metadata(path).map_err(Failure::usage)?;
        let (dir, bundle) = if meta.is_dir() {
            (path.to_path_buf(), None)
        } else {
            let temp = tempfile::tempdir().context("cannot create a temporary directory for the bundle's files")?;
            extract_members(path, &[KERNEL_FILE, INITRD_FILE, CMDLINE_FILE, MANIFEST_FILE], temp.path())?;
            (temp.path().to_path_buf(), Some((path.to_path_buf(), temp)))
        };
        let mut image = Image { dir, bundle, cmdline: String::new() };
        for name in [KERNEL_FILE, INITRD_FILE, CMDLINE_FILE, MANIFEST_FILE] {
            image.refuse_symlink(name)?;
        }
        for name in [KERNEL_FILE, INITRD_FILE, CMDLINE_FILE] {
            image.require(name)?;
        }
        image.cmdline = image.read_cmdline()?;
        Ok(image)
    }

    /// Where the image came from, for messages.
    fn origin(&self) -> String {
        match &self.bundle {
            Some((path, _)) => format!("bundle `{}`", path.display()),
            None => format!("output directory `{}`", self.dir.display()),
        }
    }

    /// The members of an output directory are untrusted: a symlink (`cmdline -> /etc/shadow`) would make QEMU read,
    /// and the guest receive, a file of the host. Only regular files are used.
    fn refuse_symlink(&self, name: &str) -> anyhow::Result<()> {
        let path = self.dir.join(name);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            bail!(
                "`{}` is a symbolic link: `cvmforge run` uses only regular files from an image",
                untrusted(&path.to_string_lossy())
            );
        }
        Ok(())
    }

    fn require(&self, name: &str) -> CliResult<()> {
        let path = self.dir.join(name);
        if !path.is_file() {
            let missing = match &self.bundle {
                Some((bundle, _)) => format!("bundle `{}` has no member `{name}`", bundle.display()),
                None => format!("`{}` does not exist (or is not a file)", path.display()),
            };
            return Err(Failure::hinted(
                anyhow::anyhow!(missing),
                format!(
                    "`cvmforge run` boots what `cvmforge build` writes: `{KERNEL_FILE}`, `{INITRD_FILE}` and \
                     `{CMDLINE_FILE}` in an output directory or its `.cvm.tar` bundle"
                ),
            ));
        }
        Ok(())
    }

    fn read_cmdline(&self) -> anyhow::Result<String> {
        let path = self.dir.join(CMDLINE_FILE);
        // The kernel accepts at most 2 KiB, plus an optional trailing newline.
        let cap = cvmforge::recipe::MAX_CMDLINE_LEN as u64 + 1;
        let bytes =
            read_capped(&path, cap).with_context(|| format!("cannot read `{}`", untrusted(&path.to_string_lossy())))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| anyhow::anyhow!("`{CMDLINE_FILE}` of the {} is not UTF-8: {e}", self.origin()))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        if text.contains('\0') {
            bail!("`{CMDLINE_FILE}` of the {} contains a NUL byte", self.origin());
        }
        Ok(text.to_owned())
    }

    /// The argument naming an image file: its path, or for a bundle, where QEMU reads it during the run and its
    /// member name when printing (the temporary directory is gone by then).
    fn path_arg(&self, name: &str) -> anyhow::Result<String> {
        let path = self.dir.join(name);
        path.to_str().map(str::to_owned).with_context(|| format!("path `{}` is not UTF-8", path.display()))
    }

    /// The data volumes the manifest records, as (name, image file): in the output directory, or for a bundle,
    /// beside it (volume images are published beside the bundle, not in it). Each must be a regular file; its
    /// bytes are checked by the guest (dm-verity against the measured root hash), not here.
    fn volumes(&self) -> anyhow::Result<Vec<(String, String)>> {
        let Some(manifest) = self.manifest()? else { return Ok(Vec::new()) };
        let base = match &self.bundle {
            Some((bundle, _)) => bundle.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            None => self.dir.clone(),
        };
        let mut out = Vec::new();
        for v in &manifest.volumes {
            let name = std::path::Path::new(&v.image).file_name().map(|n| n.to_os_string());
            if name.as_deref() != Some(std::ffi::OsStr::new(&v.image)) {
                bail!("the manifest names volume image `{}`, which is not a plain file name", untrusted(&v.image));
            }
            let path = base.join(&v.image);
            let meta = std::fs::symlink_metadata(&path);
            if !meta.as_ref().is_ok_and(std::fs::Metadata::is_file) {
                bail!(
                    "volume `{}`: `{}` is missing or not a regular file (volume images are beside the bundle or in the output directory)",
                    untrusted(&v.name),
                    untrusted(&path.to_string_lossy())
                );
            }
            let file =
                path.to_str().map(str::to_owned).with_context(|| format!("path `{}` is not UTF-8", path.display()))?;
            out.push((v.name.clone(), file));
        }
        Ok(out)
    }

    fn manifest(&self) -> anyhow::Result<Option<Manifest>> {
        let path = self.dir.join(MANIFEST_FILE);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let text = cvmforge::manifest::read_manifest_file(&path, cvmforge::manifest::MAX_MANIFEST_SIZE)
            .with_context(|| format!("cannot read `{}`", untrusted(&path.to_string_lossy())))?;
        let manifest =
            Manifest::from_json(&text).with_context(|| format!("`{MANIFEST_FILE}` of the {}", self.origin()))?;
        Ok(Some(manifest))
    }
}

fn scratch_disk_arg(path: &Path) -> CliResult<String> {
    if !path.is_file() {
        return Err(Failure::hinted(
            anyhow::anyhow!("scratch disk `{}` does not exist (or is not a file)", path.display()),
            "create one, e.g. `truncate -s 1G scratch.img`",
        ));
    }
    Ok(path
        .to_str()
        .map(str::to_owned)
        .with_context(|| format!("scratch disk path `{}` is not UTF-8", path.display()))?)
}

fn check_forwards(forwards: &[PortForward]) -> CliResult<()> {
    let mut hosts = std::collections::BTreeSet::new();
    for f in forwards {
        if !hosts.insert(f.host) {
            return Err(Failure::usage(format!("host port {} is forwarded twice", f.host)));
        }
    }
    Ok(())
}

/// KVM is usable when `/dev/kvm` opens read-write (the device exists and this user may use it).
fn kvm_usable() -> bool {
    fs_err::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

fn choose_accel(choice: AccelChoice) -> CliResult<Accel> {
    match choice {
        AccelChoice::Tcg => Ok(Accel::Tcg),
        AccelChoice::Auto if kvm_usable() => Ok(Accel::Kvm),
        AccelChoice::Auto => Ok(Accel::Tcg),
        AccelChoice::Kvm => match fs_err::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
            Ok(_) => Ok(Accel::Kvm),
            Err(e) => Err(Failure::hinted(
                anyhow::Error::new(e).context("KVM was asked for but is not usable"),
                "add yourself to the `kvm` group, or use `--accel tcg` (slower)",
            )),
        },
    }
}

// ---------------------------------------------------------------------------------------------------------------
// --print-command

/// One measured shape's launch command, from the manifest.
#[derive(Debug, Serialize)]
struct ShapeCommand {
    /// `snp` or `tdx`.
    technology: &'static str,
    /// Index in `measurements.<technology>`.
    index: usize,
    /// The entry's `name`.
    name: String,
    /// The whole command, one shell-quoted line; `None` if the manifest records none for this shape.
    command_line: Option<String>,
    /// Notes recorded with the command (`qemu_notes`), and why there is none (`qemu_unavailable`).
    notes: Vec<String>,
}

/// The `--print-command --json` document.
#[derive(Debug, Serialize)]
struct PrintedCommands {
    schema_version: u32,
    r#type: &'static str,
    accel: Accel,
    /// The smoke-test boot, argv including the QEMU binary.
    command: Vec<String>,
    command_line: String,
    /// Whether paths are bundle member names (the bundle must be extracted first).
    paths_are_bundle_members: bool,
    /// Whether the image has a manifest at all.
    manifest: bool,
    shapes: Vec<ShapeCommand>,
}

fn print_commands(image: &Image, accel: Accel, qemu_args: &[String], ui: &Ui) -> anyhow::Result<()> {
    let mut command = vec![QEMU_BINARY.to_owned()];
    command.extend(qemu_args.iter().map(|a| relative_to_bundle(image, a)));
    let manifest = image.manifest()?;
    let shapes = manifest.as_ref().map(shape_commands).unwrap_or_default();
    let doc = PrintedCommands {
        schema_version: SCHEMA_VERSION,
        r#type: "run-command",
        accel,
        command_line: shell_line(&command),
        command,
        paths_are_bundle_members: image.bundle.is_some(),
        manifest: manifest.is_some(),
        shapes,
    };
    if ui.json {
        return super::print_json(&doc);
    }
    print!("{}", render_commands(&doc));
    Ok(())
}

/// For a bundle, the temporary directory is gone once this command exits: print member names instead.
fn relative_to_bundle(image: &Image, arg: &str) -> String {
    if image.bundle.is_none() {
        return arg.to_owned();
    }
    for name in [KERNEL_FILE, INITRD_FILE] {
        if image.dir.join(name).to_str() == Some(arg) {
            return name.to_owned();
        }
    }
    arg.to_owned()
}

fn render_commands(doc: &PrintedCommands) -> String {
    let mut out = format!("# Plain boot (no confidential computing, {}), as `cvmforge run` starts it:\n", doc.accel);
    if doc.paths_are_bundle_members {
        out.push_str("# (file names are the bundle's members: extract it first, e.g. with `tar -xf`)\n");
    }
    match printable_line(&doc.command_line) {
        Some(line) => out.push_str(&format!("{line}\n")),
        None => out.push_str("# (not shown: an argument holds a control character; see `--json`)\n"),
    }
    if !doc.manifest {
        out.push_str(&format!("# No `{MANIFEST_FILE}`: no measured shapes.\n"));
        return out;
    }
    if doc.shapes.is_empty() {
        out.push_str("# no measured shapes in the manifest\n");
        return out;
    }
    out.push_str("# Confidential launches of the measured shapes (run in the output directory):\n");
    for shape in &doc.shapes {
        let technology = if shape.technology == "snp" { "SEV-SNP" } else { "TDX" };
        let name = untrusted(&shape.name);
        out.push_str(&format!("# {technology} shape {}[{}] ({name}):\n", shape.technology, shape.index));
        for note in &shape.notes {
            out.push_str(&format!("#   note: {}\n", untrusted(note)));
        }
        match shape.command_line.as_deref().map(printable_line) {
            Some(Some(line)) => out.push_str(&format!("{line}\n")),
            Some(None) => out.push_str("#   not shown: an argument holds a control character; see `--json`\n"),
            None => out.push_str("#   no QEMU command recorded for this shape\n"),
        }
    }
    out
}

/// The launch command every measured shape records (`qemu_args`, `qemu_notes`, `qemu_unavailable`).
fn shape_commands(manifest: &Manifest) -> Vec<ShapeCommand> {
    let m = &manifest.measurements;
    let snp = m
        .snp
        .iter()
        .enumerate()
        .map(|(i, s)| shape_command("snp", i, &s.name, &s.qemu_args, &s.qemu_notes, &s.qemu_unavailable));
    let tdx = m
        .tdx
        .iter()
        .enumerate()
        .map(|(i, s)| shape_command("tdx", i, &s.name, &s.qemu_args, &s.qemu_notes, &s.qemu_unavailable));
    snp.chain(tdx).collect()
}

fn shape_command(
    technology: &'static str,
    index: usize,
    name: &str,
    args: &Option<Vec<String>>,
    notes: &Option<Vec<String>>,
    unavailable: &Option<String>,
) -> ShapeCommand {
    let command_line = args.as_ref().map(|args| {
        let mut argv = vec![QEMU_BINARY.to_owned()];
        argv.extend(args.iter().cloned());
        shell_line(&argv)
    });
    let notes = notes.iter().flatten().chain(unavailable).cloned().collect();
    ShapeCommand { technology, index, name: name.to_owned(), command_line, notes }
}

/// Human output echoes the manifest, which is untrusted: a line is printed only if it cannot spill into the next one
/// (a newline inside quotes would still end a `#` comment or look like a second command).
fn printable_line(line: &str) -> Option<&str> {
    (!line.chars().any(char::is_control)).then_some(line)
}

/// The `cvmforge run --json` document of a clean power-off.
#[derive(Debug, Serialize)]
struct RunReport {
    schema_version: u32,
    r#type: &'static str,
    outcome: &'static str,
    accel: Accel,
}

fn finish(outcome: Outcome, accel: Accel, timeout: Duration, ui: &Ui) -> CliResult {
    match outcome {
        Outcome::PoweredOff => {
            if ui.json {
                let report = RunReport { schema_version: SCHEMA_VERSION, r#type: "run", outcome: "powered-off", accel };
                super::print_json(&report)?;
            } else {
                println!("guest powered off ({accel})");
            }
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Panic(line) => Err(Failure::hinted(
            anyhow::anyhow!("guest kernel panic: {line}"),
            "the guest console above shows what led to it; QEMU was stopped",
        )),
        Outcome::TimedOut => Err(Failure::hinted(
            anyhow::anyhow!("timed out after {}s; QEMU was stopped", timeout.as_secs()),
            format!("raise `--timeout`, or check that the image powers off when its payload exits{}", kvm_hint(accel)),
        )),
        Outcome::QemuFailed { status, stderr_tail } => {
            let last = stderr_tail.last().map(|l| format!(": {l}")).unwrap_or_default();
            let message = format!("QEMU failed ({status}){last}");
            match accel {
                Accel::Kvm => Err(Failure::hinted(anyhow::anyhow!(message), KVM_BROKEN_HINT)),
                Accel::Tcg => Err(anyhow::anyhow!(message).into()),
            }
        }
        Outcome::Interrupted => Err(anyhow::anyhow!("interrupted; QEMU was stopped").into()),
    }
}

/// Some hosts (nested virtualization) have a `/dev/kvm` that opens but cannot run this guest: QEMU aborts on an MSR,
/// or the guest never prints.
const KVM_BROKEN_HINT: &str = "KVM was used; if this host's KVM cannot run the guest, retry with `--accel tcg`";

fn kvm_hint(accel: Accel) -> String {
    match accel {
        Accel::Kvm => format!("; {KVM_BROKEN_HINT}"),
        Accel::Tcg => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Bundle members

/// Writes the members named in `wanted` (top-level regular files, `./` accepted) of `bundle` into `dest`, read with the
/// crate's bounded tar reader (the one `verify` and `inspect` use). A member may occur once; absent members are the
/// caller's to report.
fn extract_members(bundle: &Path, wanted: &[&str], dest: &Path) -> anyhow::Result<()> {
    let shown = || format!("cannot read bundle `{}`", untrusted(&bundle.to_string_lossy()));
    let file = fs_err::File::open(bundle)?;
    let len = file.metadata()?.len();
    let members = read_bundle(io::BufReader::new(file), Some(len), &publication_limits(&Limits::default()))
        .with_context(shown)?;
    for name in wanted {
        let mut found = members
            .entries
            .iter()
            .filter(|e| e.file_type == EntryType::Regular && e.path.strip_prefix("./").unwrap_or(&e.path) == *name);
        let Some(entry) = found.next() else { continue };
        if let Some(again) = found.next() {
            bail!("{}: member `{name}` occurs twice (entries {} and {})", shown(), entry.index, again.index);
        }
        // `read_bundle` keeps every regular member's content (or fails): an absent content cannot happen.
        let content = entry.content.as_deref().unwrap_or_default();
        fs_err::write(dest.join(name), content)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_replaces_monitor_none() {
        let args = ["-display", "none", "-monitor", "none", "-serial", "stdio"].map(String::from).to_vec();
        let args = with_monitor(args, "/tmp/m.sock").unwrap();
        assert_eq!(args, ["-display", "none", "-monitor", "unix:/tmp/m.sock,server,nowait", "-serial", "stdio"]);
        assert!(with_monitor(vec!["-serial".into(), "stdio".into()], "m").is_err());
    }

    #[test]
    fn rejects_unusable_monitor_paths() {
        assert_eq!(parse_monitor_path("build/m.sock").unwrap(), "build/m.sock");
        assert!(parse_monitor_path("").is_err());
        assert!(parse_monitor_path("a,b").unwrap_err().contains("comma"));
        assert!(parse_monitor_path("a\nb").unwrap_err().contains("control character"));
        assert!(parse_monitor_path(&"x".repeat(108)).unwrap_err().contains("at most 107"));
        assert!(parse_monitor_path(&"x".repeat(107)).is_ok());
    }
}
