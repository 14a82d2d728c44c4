//! Shared helpers: a temporary source tree with fake inputs, running the real binary, and an independent newc reader.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// The binary under test.
pub(crate) fn cvmforge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cvmforge"))
}

/// The outcome of one run.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn from_output(out: Output) -> Run {
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(!run.stderr.contains("panicked"), "the binary panicked:\n{}", run.stderr);
        run
    }

    /// Asserts success and returns self.
    pub(crate) fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts a failure with `code` whose stderr contains every needle.
    pub(crate) fn fails(self, code: i32, needles: &[&str]) -> Run {
        assert_eq!(self.code, code, "wrong exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        for needle in needles {
            assert!(self.stderr.contains(needle), "stderr lacks `{needle}`:\n{}", self.stderr);
        }
        self
    }
}

/// Runs `cvmforge` with `args` in `cwd`.
pub(crate) fn run_in(cwd: &Path, args: &[&str]) -> Run {
    Run::from_output(cvmforge().current_dir(cwd).args(args).output().unwrap())
}

/// A fake bzImage: "HdrS" at 0x202, boot protocol `protocol`, a kernel version string, then `extra` filler bytes.
pub(crate) fn fake_kernel(protocol: u16, extra: usize) -> Vec<u8> {
    let mut k = vec![0u8; 0x400 + extra];
    k[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k[0x206..0x208].copy_from_slice(&protocol.to_le_bytes());
    k[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
    let version = b"6.12.0-test (cvmforge@test) #1 SMP\0";
    k[0x300..0x300 + version.len()].copy_from_slice(version);
    for (i, b) in k[0x400..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    k
}

/// Deterministic pseudo-random bytes (xorshift64), incompressible enough to make compressors work.
pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The default recipe of [`Tree::standard`].
pub(crate) const STANDARD_RECIPE: &str = concat!(
    r#"# A test recipe.
name: demo
version: 0.1.0
source_date_epoch: 1767225600
kernel:
  path: inputs/vmlinuz
  cmdline: "console=ttyS0 panic=-1"
initrd:
  init: inputs/guest-init
  command: ["/usr/bin/server", "--listen", "0.0.0.0:8080"]
  env: {RUST_LOG: info, A_FIRST: "1"}
  user: 65534
  files:
    - {src: inputs/server, dst: /usr/bin/server}
    - {src: data/model.txt, dst: /srv/model.txt, mode: 0o640}
  directories: [{path: /srv, mode: 0o750}]
  symlinks: [{path: /bin/server, target: /usr/bin/server}]
firmware:
  snp: inputs/OVMF.amdsev.fd
"#,
    "# The fake kernel has no readable configuration and the command line lacks lockdown: these tests are about the
# outputs, so they opt out of the (default) strict sealing. `sealed_build.rs` tests the default.
sealing:
  strict: false
"
);

/// The tail of [`STANDARD_RECIPE`] that opts out of strict sealing (removed by tests of the sealing default).
pub(crate) const UNSEALED_OPT_OUT: &str =
    "# The fake kernel has no readable configuration and the command line lacks lockdown: these tests are about the
# outputs, so they opt out of the (default) strict sealing. `sealed_build.rs` tests the default.
sealing:
  strict: false
";

/// A temporary source tree holding a recipe and its inputs, plus room for outputs.
pub(crate) struct Tree {
    pub(crate) dir: tempfile::TempDir,
}

impl Tree {
    pub(crate) fn new() -> Tree {
        Tree { dir: tempfile::tempdir().unwrap() }
    }

    /// The standard tree: `src/recipe.yaml` with the inputs it names (small files).
    pub(crate) fn standard() -> Tree {
        let tree = Tree::new();
        tree.write("src/inputs/vmlinuz", &fake_kernel(0x020f, 4096));
        // Sealing parses both: they must be static (static-pie) x86-64 ELF executables.
        tree.write("src/inputs/guest-init", &cvmforge::format::elf::testing::executable(None));
        tree.write("src/inputs/server", &cvmforge::format::elf::testing::executable(None));
        tree.write("src/data/model.txt", b"a tiny model\n");
        tree.write("src/inputs/OVMF.amdsev.fd", &random_bytes(8192, 7));
        tree.write("src/recipe.yaml", STANDARD_RECIPE.as_bytes());
        tree
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn write(&self, rel: &str, bytes: &[u8]) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub(crate) fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Replaces the recipe text.
    pub(crate) fn recipe(&self, text: &str) {
        self.write("src/recipe.yaml", text.as_bytes());
    }

    /// `cvmforge ARGS` run in the tree's root.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        run_in(self.dir.path(), args)
    }

    /// `cvmforge build src/recipe.yaml -o out EXTRA`.
    pub(crate) fn build(&self, extra: &[&str]) -> Run {
        let mut args = vec!["build", "src/recipe.yaml", "-o", "out"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Names in a directory, sorted.
    pub(crate) fn list(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(self.path(rel)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One newc entry, read independently of the crate's writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CpioEntry {
    pub(crate) name: String,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) nlink: u32,
    pub(crate) mtime: u32,
    pub(crate) rdev: (u32, u32),
    pub(crate) data: Vec<u8>,
}

/// Parses a newc archive up to `TRAILER!!!`.
pub(crate) fn parse_newc(archive: &[u8]) -> Vec<CpioEntry> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    let align = |n: usize| (n + 3) & !3;
    loop {
        assert_eq!(&archive[at..at + 6], b"070701", "magic at {at}");
        let field = |i: usize| {
            let s = std::str::from_utf8(&archive[at + 6 + i * 8..at + 14 + i * 8]).unwrap();
            u32::from_str_radix(s, 16).unwrap()
        };
        let namesize = field(11) as usize;
        let filesize = field(6) as usize;
        let name = std::str::from_utf8(&archive[at + 110..at + 110 + namesize - 1]).unwrap().to_string();
        let data_at = align(at + 110 + namesize);
        let data = archive[data_at..data_at + filesize].to_vec();
        let next = align(data_at + filesize);
        if name == "TRAILER!!!" {
            assert!(archive[next..].iter().all(|&b| b == 0), "junk after trailer");
            return entries;
        }
        entries.push(CpioEntry {
            name,
            mode: field(1),
            uid: field(2),
            gid: field(3),
            nlink: field(4),
            mtime: field(5),
            rdev: (field(9), field(10)),
            data,
        });
        at = next;
    }
}

pub(crate) fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut out).unwrap();
    out
}

pub(crate) fn unzstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(bytes).unwrap()
}

/// True if `program` runs (for optional cross-checks with system tools).
pub(crate) fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// A decompressed firmware fixture from `tests/fixtures/firmware/` (`name` without `.xz`), checked against the
/// sha256 that `tests/fixtures/firmware/README.md` lists for it.
pub(crate) fn firmware_fixture(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/firmware");
    let xz = std::fs::read(dir.join(format!("{name}.xz"))).unwrap();
    let out = liblzma::decode_all(&xz[..]).unwrap();
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let row = readme.lines().find(|l| l.starts_with(&format!("| {name} |"))).unwrap();
    assert!(row.contains(&sha256_hex(&out)), "{name}: sha256 differs from the fixture README");
    out
}

/// A minimal unsigned PE32+ image (an "EFI stub") that is also a bzImage (`HdrS`, boot protocol 2.15): passes the
/// build's kernel check and the TDX library's PE parsing.
pub(crate) fn pe_kernel() -> Vec<u8> {
    let mut k = vec![0u8; 0x2000];
    k[0..2].copy_from_slice(b"MZ");
    k[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    k[0x80..0x84].copy_from_slice(b"PE\0\0");
    let coff = 0x84;
    k[coff + 2..coff + 4].copy_from_slice(&1u16.to_le_bytes());
    k[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
    let opt = coff + 20;
    k[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
    k[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
    k[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
    let s = opt + 240;
    k[s..s + 5].copy_from_slice(b".text");
    k[s + 16..s + 20].copy_from_slice(&0x1e00u32.to_le_bytes());
    k[s + 20..s + 24].copy_from_slice(&0x200u32.to_le_bytes());
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    k[0x211] = 1;
    k[0x236] = 3;
    for (i, b) in k.iter_mut().enumerate().skip(0x400) {
        *b = (i % 251) as u8;
    }
    k
}

/// A test whose gate is missing (an environment variable naming a real kernel or a reference tool, a program, a CPU
/// feature) is skipped, and says so on stderr. Under `CVMFORGE_REQUIRE_ALL=1` (set by `scripts/test.sh`, and so in
/// CI) a missing gate fails the test instead, naming the gate: a green suite then means every check ran.
pub(crate) fn skipped(why: &str) {
    if std::env::var_os("CVMFORGE_REQUIRE_ALL").is_some_and(|v| v == "1") {
        panic!("CVMFORGE_REQUIRE_ALL=1 and a gate is missing: {why}");
    }
    // Written to the process's stderr directly, not through `eprintln!`, which the test harness captures: a person
    // running `cargo test` sees which checks did not run.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("skipped: {why}\n").as_bytes());
}

/// [`skipped`] with `format!` arguments.
macro_rules! skip_test {
    ($($arg:tt)*) => { $crate::util::skipped(&format!($($arg)*)) };
}
pub(crate) use skip_test;

/// A valid v1 manifest (the typed `Manifest`, as JSON) whose only content is the given measurement entries: for the
/// commands that read a manifest (`run --print-command`, `inspect`).
pub(crate) fn manifest_with(
    snp: Vec<cvmforge::manifest::SnpMeasurement>,
    tdx: Vec<cvmforge::manifest::TdxMeasurement>,
) -> String {
    use cvmforge::manifest::*;
    let compression = cvmforge::format::compress::describe(&cvmforge::format::compress::Compression::None);
    Manifest {
        schema: MANIFEST_SCHEMA.to_owned(),
        cvmforge_version: "0.1.0".into(),
        recipe: RecipeRecord {
            name: "demo".into(),
            version: "1.0".into(),
            path: "demo.yaml".into(),
            sha256: "00".repeat(32),
        },
        source_date_epoch: 0,
        inputs: vec![],
        outputs: vec![],
        initrd: InitrdRecord {
            compression,
            uncompressed_sha256: "00".repeat(32),
            uncompressed_size: 0,
            entries: vec![],
        },
        kernel: KernelRecord { boot_protocol: "2.15".into(), version: None, cmdline: "console=ttyS0".into() },
        measurements: Measurements { snp, tdx },
        sealing: Default::default(),
        volumes: Vec::new(),
    }
    .to_json()
}

/// The QEMU fields of a measurement entry: `qemu_args`, `qemu_notes`, `qemu_unavailable`.
pub(crate) type QemuFields<'a> = (Option<&'a [&'a str]>, Option<&'a [&'a str]>, Option<&'a str>);

fn strings(list: Option<&[&str]>) -> Option<Vec<String>> {
    list.map(|l| l.iter().map(|s| (*s).to_owned()).collect())
}

/// An SEV-SNP measurement entry named `name` with the given QEMU fields (the digests are made up).
pub(crate) fn snp_entry(name: &str, (args, notes, unavailable): QemuFields<'_>) -> cvmforge::manifest::SnpMeasurement {
    use cvmforge::manifest::*;
    SnpMeasurement {
        platform: "snp".into(),
        name: name.into(),
        shape: 0,
        mode: "snp".into(),
        vcpus: 1,
        vcpu_type: Some("EPYC-v4".into()),
        vcpu_sig: "0xa00f11".into(),
        vmm_type: "QEMU".into(),
        guest_features: "0x1".into(),
        memory: "2G".into(),
        policy: PolicyRecord { value: "0x30000".into(), fields: Default::default(), warnings: vec![] },
        digest: "aa".repeat(48),
        inputs: SnpInputs {
            firmware_sha256: "11".repeat(32),
            kernel_sha256: "22".repeat(32),
            initrd_sha256: "33".repeat(32),
            cmdline_sha256: "44".repeat(32),
        },
        id: None,
        qemu_args: strings(args),
        qemu_notes: strings(notes),
        qemu_unavailable: unavailable.map(str::to_owned),
    }
}

/// A TDX measurement entry named `name` with the given QEMU fields (the digests are made up).
pub(crate) fn tdx_entry(name: &str, (args, notes, unavailable): QemuFields<'_>) -> cvmforge::manifest::TdxMeasurement {
    use cvmforge::manifest::*;
    TdxMeasurement {
        platform: "tdx".into(),
        name: name.into(),
        shape: 0,
        memory: "8G".into(),
        memory_bytes: 8 << 30,
        vcpus: 1,
        page_order: "single-pass".into(),
        qemu_version: "10.2".into(),
        qemu_version_assumed: true,
        qemu_kernel_patching: false,
        cmdline_layout: "prefix".into(),
        cmdline_layout_source: "given".into(),
        mrtd: "55".repeat(48),
        rtmr0: None,
        rtmr0_unavailable: Some("not modelled".into()),
        rtmr1: "66".repeat(48),
        rtmr2: "77".repeat(48),
        rtmr3: "00".repeat(48),
        inputs: TdxInputs {
            firmware_sha256: "11".repeat(32),
            kernel_sha256: "22".repeat(32),
            initrd_sha384: "33".repeat(48),
            initrd_size: 1,
        },
        secure_boot: SecureBootRecord { pk_enrolled: false, microsoft_db: false },
        warnings: vec![],
        qemu_args: strings(args),
        qemu_notes: strings(notes),
        qemu_unavailable: unavailable.map(str::to_owned),
    }
}

/// Starts `cvmforge build` paused right after its staging directory exists (a debug-build test hook, no timing).
pub(crate) fn paused_build(tree: &Tree) -> std::process::Child {
    let marker = tree.path("paused");
    let child = cvmforge()
        .args(["build", "src/recipe.yaml", "-o", "out"])
        .current_dir(tree.dir.path())
        .env("CVMFORGE_TEST_PAUSE_AFTER_STAGING", &marker)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !marker.exists() {
        assert!(std::time::Instant::now() < deadline, "the build never reached the staging step");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}
