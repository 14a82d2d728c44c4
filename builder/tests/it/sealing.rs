//! `sealing::check`, the one call the build pipeline makes, on small synthetic images (and, when
//! `CVMFORGE_TEST_KERNEL_DIR` names an extracted Debian linux-image package, on a real distribution kernel).

// Test helpers outside #[test] functions build fixtures; a failure there is a broken test environment.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use cvmforge::format::bzimage::testing::bzimage;
use cvmforge::format::elf::testing::{executable, kernel_module};
use cvmforge::recipe::seal_spec::{ModulesSpec, SealingSpec, Waiver};
use cvmforge::seal::check::{
    check, Content, ModuleTree, SealEntry, SealEntryKind, SealError, SealInputs, SealOutcome, MODULE_MODE,
};
use cvmforge::seal::linkage::LinkError;
use cvmforge::seal::modules::ModuleError;
use cvmforge::seal::policy::Verdict;
use sha2::{Digest, Sha256};

const RELEASE: &str = "6.1.0-test-amd64";
const GOOD_CMDLINE: &str = "console=ttyS0 panic=-1 lockdown=confidentiality";
const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
const SEALED_CONFIG: &str = include_str!("../../../kernel-config/sealed-guest.config");

/// The error with its sources, as the CLI prints them (one `caused by:` each), joined with `: `.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn put(root: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn ko(name: &str, depends: &str, release: &str) -> Vec<u8> {
    let vermagic = format!("vermagic={release} SMP preempt mod_unload modversions ");
    kernel_module(&["license=GPL", &format!("depends={depends}"), &format!("name={name}"), &vermagic])
}

/// A test image: a static `/init`, a payload at `/usr/bin/server`, the generated init.json, and extra entries.
struct Image {
    dir: tempfile::TempDir,
    init: PathBuf,
    entries: Vec<SealEntry>,
    kernel: Vec<u8>,
    config: Option<PathBuf>,
    cmdline: String,
    spec: SealingSpec,
    strict: bool,
    /// `--allow-unsealed`: these tests look at the violations that a non-strict check records.
    allow_unsealed: bool,
    modules: Option<(PathBuf, Vec<String>)>,
}

fn file(dest: &str, path: &Path) -> SealEntry {
    SealEntry { dest: dest.into(), kind: SealEntryKind::File(Content::Path(path.to_path_buf())) }
}

fn symlink(dest: &str, target: &str) -> SealEntry {
    SealEntry { dest: dest.into(), kind: SealEntryKind::Symlink { target: target.into() } }
}

impl Image {
    fn new(payload: &[u8]) -> Image {
        let dir = tempfile::tempdir().unwrap();
        let init = put(dir.path(), "src/init", &executable(None));
        let server = put(dir.path(), "src/server", payload);
        let config = put(dir.path(), "kernel.config", SEALED_CONFIG.as_bytes());
        let entries = vec![
            file("/init", &init),
            SealEntry { dest: "/dev".into(), kind: SealEntryKind::Dir },
            SealEntry { dest: "/dev/console".into(), kind: SealEntryKind::Other },
            SealEntry {
                dest: "/etc/cvmforge/init.json".into(),
                kind: SealEntryKind::File(Content::Bytes(b"{\"command\":[\"/usr/bin/server\"]}\n".to_vec())),
            },
            file("/usr/bin/server", &server),
        ];
        Image {
            dir,
            init,
            entries,
            kernel: bzimage(RELEASE, b"not a compressed kernel"),
            config: Some(config),
            cmdline: GOOD_CMDLINE.into(),
            spec: SealingSpec::default(),
            strict: false,
            allow_unsealed: true,
            modules: None,
        }
    }

    fn add_file(&mut self, dest: &str, bytes: &[u8]) {
        let path = put(self.dir.path(), &format!("src{dest}"), bytes);
        self.entries.push(file(dest, &path));
    }

    fn waive(&mut self, item: &str, reason: &str) {
        self.spec.waivers.push(Waiver { item: item.into(), reason: reason.into() });
    }

    fn check(&self, command: &str) -> Result<SealOutcome, SealError> {
        check(&SealInputs {
            kernel: &self.kernel,
            kernel_config: self.config.as_deref(),
            cmdline: &self.cmdline,
            entries: &self.entries,
            init: &self.init,
            command,
            modules: self.modules.as_ref().map(|(tree, load)| ModuleTree { tree, load }),
            sealing: &self.spec,
            strict: self.strict,
            modes: &[],
            allow_unsealed: self.allow_unsealed,
        })
    }
}

#[test]
fn clean_image_is_sealed_and_records_the_config_file() {
    let image = Image::new(&executable(None));
    let outcome = image.check("/usr/bin/server").unwrap();
    assert_eq!(outcome.policy.verdict, Verdict::Sealed, "{:#?}", outcome.policy);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    assert!(outcome.module_files.is_empty() && outcome.init_modules.is_empty() && outcome.modules.is_none());
    assert_eq!(outcome.kernel_config.source, "file");
    assert_eq!(outcome.kernel_config.sha256.as_deref(), Some(sha(SEALED_CONFIG.as_bytes()).as_str()));
    let checks: Vec<_> = outcome.policy.checks.iter().map(|c| (c.name.as_str(), c.subjects)).collect();
    assert_eq!(checks[0], ("initrd-content", 5));
    assert!(checks.iter().any(|(name, _)| *name == "kernel-config"));
    let section = outcome.manifest_sealing();
    assert_eq!(section["verdict"], "sealed");
    assert_eq!(section["kernel_config"]["source"], "file");
    assert_eq!(section["strict"], false);
    assert!(!section.contains_key("modules"));
}

#[test]
fn rejects_dynamic_payload_without_its_loader() {
    let mut image = Image::new(&executable(Some(LOADER)));
    let err = image.check("/usr/bin/server").unwrap_err();
    assert!(
        matches!(&err, SealError::Link(LinkError::MissingInterpreter { path, interpreter })
            if path == "/usr/bin/server" && interpreter == LOADER),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .contains("needs the interpreter `/lib64/ld-linux-x86-64.so.2`, which is not in the initrd"));
    assert!(err.to_string().contains("link it statically"), "{err}");

    // With the loader present (here through a relative symlink, as Debian ships it) the payload can start.
    image.add_file("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", &executable(None));
    image.entries.push(symlink(LOADER, "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
    assert_eq!(image.check("/usr/bin/server").unwrap().policy.verdict, Verdict::Sealed);
}

#[test]
fn rejects_dynamic_init() {
    let mut image = Image::new(&executable(None));
    std::fs::write(&image.init, executable(Some(LOADER))).unwrap();
    let err = image.check("/usr/bin/server").unwrap_err();
    assert!(matches!(&err, SealError::Link(LinkError::InitNotStatic { path, .. }) if path == "/init"), "{err:?}");
    image.init = image.dir.path().join("missing-init");
    let err = image.check("/usr/bin/server").unwrap_err();
    assert!(err.to_string().starts_with("cannot read init `"), "{err}");
}

#[test]
fn rejects_init_that_is_not_elf() {
    let image = Image::new(&executable(None));
    std::fs::write(&image.init, b"#!/bin/sh\nexec /usr/bin/server\n").unwrap();
    let err = image.check("/usr/bin/server").unwrap_err();
    assert_eq!(
        chain(&err),
        "`/init` in the initrd is not a valid x86-64 ELF executable: not an ELF file: starts with [23, 21, 2f, 62], \
         expected 7f 45 4c 46 (`\\x7fELF`)"
    );
}

#[test]
fn command_is_followed_through_symlinks() {
    let mut image = Image::new(&executable(None));
    image.entries.push(symlink("/usr/local/bin/app", "../../bin/./server"));
    image.entries.push(symlink("/app", "usr/local/bin/app"));
    assert_eq!(image.check("/app").unwrap().policy.verdict, Verdict::Sealed);

    image.entries.push(symlink("/broken", "/opt/app/server"));
    let err = image.check("/broken").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the payload command `/broken` is not in the initrd (its symlink leads to `/opt/app/server`, which is \
         missing): add a file with `dst: /opt/app/server` under initrd.files, or change initrd.command[0]"
    );
    let err = image.check("/usr/bin/absent").unwrap_err();
    assert!(err.to_string().starts_with("the payload command `/usr/bin/absent` is not in the initrd: add"), "{err}");

    image.entries.push(symlink("/loop-a", "/loop-b"));
    image.entries.push(symlink("/loop-b", "loop-a"));
    assert!(matches!(image.check("/loop-a"), Err(SealError::SymlinkLoop { .. })));
    assert!(matches!(image.check("/dev"), Err(SealError::CommandNotFile { what: "directory", .. })));
}

#[test]
fn rejects_script_payload_without_its_interpreter() {
    let mut image = Image::new(b"#!/usr/bin/python3 -u\nprint('hi')\n");
    let err = image.check("/usr/bin/server").unwrap_err();
    assert!(
        matches!(&err, SealError::ScriptInterpreterMissing { interpreter, .. } if interpreter == "/usr/bin/python3"),
        "{err:?}"
    );
    image.add_file("/usr/bin/python3", &executable(None));
    image.check("/usr/bin/server").unwrap();
}

#[test]
fn forbidden_shell_without_waiver_is_a_violation_and_fails_in_strict_mode() {
    let mut image = Image::new(&executable(None));
    image.add_file("/bin/sh", &executable(None));
    image.cmdline = format!("{GOOD_CMDLINE} earlyprintk=ttyS0");
    let outcome = image.check("/usr/bin/server").unwrap();
    assert_eq!(outcome.policy.verdict, Verdict::Violations);
    let items: Vec<_> = outcome.policy.violations.iter().map(|v| v.item.as_str()).collect();
    assert_eq!(items, vec!["sh", "cmdline:earlyprintk"]);
    assert!(outcome.warnings[0].starts_with("THIS IMAGE IS NOT SEALED: 2 policy violation(s) were allowed"));
    assert_eq!(
        outcome.warnings[1],
        "not sealed: `sh`: `/bin/sh` has the name of a forbidden program (remove `/bin/sh` from the initrd, or add \
         a waiver `{item: sh, reason: ...}` under sealing.waivers)"
    );

    // Strict is the default (issue 11, item 1): fails without any flag or recipe field; `--strict` wins over
    // `sealing.strict: false` and over `--allow-unsealed`.
    let cases = [(None, false, false), (Some(true), false, false), (Some(false), true, false), (None, true, true)];
    for (spec_strict, flag_strict, allow_unsealed) in cases {
        image.spec.strict = spec_strict;
        image.strict = flag_strict;
        image.allow_unsealed = allow_unsealed;
        let err = image.check("/usr/bin/server").unwrap_err();
        let SealError::NotSealed { violations } = &err else { panic!("{err:?}") };
        assert_eq!(violations.len(), 2);
        let text = err.to_string();
        assert!(text.starts_with("the image is not sealed: 2 policy violation(s) and strict mode is on\n"), "{text}");
        assert!(text.contains("\n  - `sh`: `/bin/sh` has the name of a forbidden program\n    fix: remove `/bin/sh`"));
        assert!(text.contains("\n  - `cmdline:earlyprintk`: `earlyprintk=ttyS0`: "), "{text}");
        assert!(text.contains("fix: change kernel.cmdline"), "{text}");
    }
}

#[test]
fn waived_shell_is_sealed_with_waivers() {
    let mut image = Image::new(&executable(None));
    image.add_file("/bin/sh", &executable(None));
    image.waive("sh", "lab image: the shell is the payload's debug hook");
    image.waive("CONFIG_KEXEC", "not used");
    image.strict = true;
    let outcome = image.check("/usr/bin/server").unwrap();
    assert_eq!(outcome.policy.verdict, Verdict::SealedWithWaivers);
    assert!(outcome.strict);
    let applied = &outcome.policy.waivers_applied;
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].item, "sh");
    assert_eq!(applied[0].reason, "lab image: the shell is the payload's debug hook");
    assert_eq!(applied[0].waived[0].detail, "`/bin/sh` has the name of a forbidden program");
    // The unused waiver is a warning, not an error.
    assert_eq!(
        outcome.warnings,
        vec!["`CONFIG_KEXEC`: the waiver for `CONFIG_KEXEC` matches no violation: remove it from the recipe"]
    );
    let section = outcome.manifest_sealing();
    assert_eq!(section["verdict"], "sealed-with-waivers");
    assert_eq!(section["waivers_applied"][0]["item"], "sh");
}

#[test]
fn rejects_waiver_without_reason() {
    let mut image = Image::new(&executable(None));
    image.waive("sh", " ");
    let err = image.check("/usr/bin/server").unwrap_err();
    assert!(err.to_string().starts_with("the waiver for `sh` has no reason"), "{err}");
}

fn module_tree(root: &Path, release: &str) -> PathBuf {
    let dir = root.join("lib/modules").join(release);
    put(&dir, "kernel/drivers/virt/coco/sev-guest/sev-guest.ko", &ko("sev_guest", "", release));
    put(&dir, "kernel/drivers/net/virtio_net.ko", &ko("virtio_net", "net_failover", release));
    put(&dir, "kernel/drivers/net/net_failover.ko", &ko("net_failover", "", release));
    dir
}

#[test]
fn modules_are_staged_in_load_order_and_cover_required_options() {
    let mut image = Image::new(&executable(None));
    let root = image.dir.path().join("pkg");
    module_tree(&root, RELEASE);
    let config = SEALED_CONFIG.replace("CONFIG_SEV_GUEST=y", "CONFIG_SEV_GUEST=m");
    std::fs::write(image.config.as_ref().unwrap(), &config).unwrap();

    // The package root is accepted: lib/modules/<release of the bzImage> is used.
    image.modules = Some((root.clone(), vec!["virtio-net".into(), "sev-guest".into()]));
    let outcome = image.check("/usr/bin/server").unwrap();
    assert_eq!(outcome.policy.verdict, Verdict::Sealed, "{:#?}", outcome.policy);
    let base = format!("/lib/modules/{RELEASE}/kernel/drivers");
    let expected = vec![
        format!("{base}/net/net_failover.ko"),
        format!("{base}/virt/coco/sev-guest/sev-guest.ko"),
        format!("{base}/net/virtio_net.ko"),
    ];
    assert_eq!(outcome.init_modules, expected);
    let dests: Vec<_> = outcome.module_files.iter().map(|m| m.dest.clone()).collect();
    assert_eq!(dests, expected);
    let sev = &outcome.module_files[1];
    assert_eq!(sev.bytes, ko("sev_guest", "", RELEASE));
    assert_eq!((sev.mode, sev.sha256.as_str()), (MODULE_MODE, sha(&sev.bytes).as_str()));
    let section = outcome.manifest_sealing();
    assert_eq!(section["modules"]["modules"][1]["name"], "sev_guest");
    assert_eq!(section["modules"]["modules"][1]["source"], "kernel/drivers/virt/coco/sev-guest/sev-guest.ko");

    // So is the lib/modules directory.
    image.modules = Some((root.join("lib/modules"), vec!["sev-guest".into()]));
    let outcome = image.check("/usr/bin/server").unwrap();
    assert_eq!(outcome.init_modules, vec![expected[1].clone()]);

    // Without sev-guest loaded, CONFIG_SEV_GUEST=m is not covered.
    image.modules = Some((root.join("lib/modules").join(RELEASE), vec!["virtio_net".into()]));
    let outcome = image.check("/usr/bin/server").unwrap();
    let v = &outcome.policy.violations[0];
    assert_eq!(v.item, "CONFIG_SEV_GUEST");
    assert!(v.detail.starts_with("`CONFIG_SEV_GUEST=m` but the module `sev-guest` is not in the initrd"), "{v:?}");
    assert!(outcome.warnings[1].contains("add the module to kernel.modules.load"), "{:?}", outcome.warnings);
}

#[test]
fn rejects_module_for_another_kernel() {
    let mut image = Image::new(&executable(None));
    let dir = image.dir.path().join("flat");
    put(&dir, "sev-guest.ko", &ko("sev_guest", "", "6.1.0-99-amd64"));
    image.modules = Some((dir, vec!["sev-guest".into()]));
    let err = image.check("/usr/bin/server").unwrap_err();
    assert!(matches!(&err, SealError::Modules(ModuleError::Vermagic { .. })), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("built for `6.1.0-99-amd64 SMP") && text.contains(&format!("kernel is `{RELEASE}`")),
        "{text}"
    );
}

#[test]
fn rejects_module_tree_of_another_release() {
    let mut image = Image::new(&executable(None));
    let root = image.dir.path().join("pkg");
    let other = module_tree(&root, "6.1.0-99-amd64");
    image.modules = Some((other.clone(), vec!["sev-guest".into()]));
    let err = image.check("/usr/bin/server").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "kernel.modules.tree `{}` holds modules for kernel `6.1.0-99-amd64`, but the kernel is `{RELEASE}`: use \
             the lib/modules directory from the same linux-image package as the kernel",
            other.display()
        )
    );
    image.modules = Some((root.clone(), vec!["sev-guest".into()]));
    let err = image.check("/usr/bin/server").unwrap_err();
    assert!(matches!(&err, SealError::NoReleaseDir { found, .. } if found == &["6.1.0-99-amd64".to_string()]));
    assert!(
        err.to_string()
            .contains(&format!("has no lib/modules/{RELEASE} for the kernel `{RELEASE}` (it has: 6.1.0-99-amd64)")),
        "{err}"
    );
}

/// A bzImage whose gzip payload embeds `config` as IKCONFIG (`kernel/configs.c`).
fn kernel_with_ikconfig(config: &str) -> Vec<u8> {
    let mut vmlinux = b"\x7fELF...kernel text...IKCFG_ST".to_vec();
    vmlinux.extend_from_slice(&gz(config.as_bytes()));
    vmlinux.extend_from_slice(b"IKCFG_ED...rest of the kernel");
    bzimage(RELEASE, &gz(&vmlinux))
}

#[test]
fn ikconfig_is_checked_when_there_is_no_config_file() {
    let mut image = Image::new(&executable(None));
    image.config = None;
    let config = SEALED_CONFIG.replace("# CONFIG_KEXEC is not set", "CONFIG_KEXEC=y");
    image.kernel = kernel_with_ikconfig(&config);
    let outcome = image.check("/usr/bin/server").unwrap();
    assert_eq!(outcome.kernel_config.source, "ikconfig");
    assert_eq!(outcome.kernel_config.sha256.as_deref(), Some(sha(config.as_bytes()).as_str()));
    let items: Vec<_> = outcome.policy.violations.iter().map(|v| v.item.as_str()).collect();
    assert_eq!(items, vec!["CONFIG_KEXEC"]);
}

#[test]
fn unavailable_config_is_reported_honestly() {
    let mut image = Image::new(&executable(None));
    image.config = None;
    let outcome = image.check("/usr/bin/server").unwrap();
    assert_eq!(outcome.kernel_config.source, "unavailable");
    let reason = outcome.kernel_config.reason.clone().unwrap();
    assert!(reason.starts_with("kernel.config is not set and the kernel's IKCONFIG cannot be read: "), "{reason}");
    let v = &outcome.policy.violations[0];
    assert_eq!(v.item, "kconfig:unavailable");
    assert!(outcome.warnings[1].contains("set kernel.config to the kernel's config file"), "{:?}", outcome.warnings);
    assert_eq!(outcome.manifest_sealing()["kernel_config"]["source"], "unavailable");

    image.waive("kconfig:unavailable", "vendor kernel, config reviewed by hand");
    assert_eq!(image.check("/usr/bin/server").unwrap().policy.verdict, Verdict::SealedWithWaivers);
}

#[test]
fn rejects_unparsable_config_file() {
    let image = Image::new(&executable(None));
    std::fs::write(image.config.as_ref().unwrap(), "CONFIG_A=y\nnot a config line\n").unwrap();
    let err = image.check("/usr/bin/server").unwrap_err();
    assert!(err.to_string().starts_with("kernel config `"), "{err}");
    assert!(chain(&err).ends_with("kernel.config`: line 2: `not a config line` is not a kernel config line (expected `CONFIG_NAME=value` or `# CONFIG_NAME is not set`)"), "{err}");
}

/// The recipe sections parse as documented (the lead embeds them in the recipe's `kernel:` and top level).
#[test]
fn recipe_sections_parse_as_documented() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Kernel {
        modules: Option<ModulesSpec>,
        config: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        kernel: Kernel,
        sealing: SealingSpec,
    }
    let yaml =
        "kernel:\n  modules:\n    tree: ../build/kernel/root/lib/modules/6.1.0-56-amd64\n    load: [virtio_net, \
                sev-guest]\n  config: ../build/demo/kernel.config\nsealing:\n  strict: false\n  waivers:\n    - {item: \
                CONFIG_KEXEC, reason: \"stock Debian kernel; sealed kernel tracked in kernel-config/\"}\n";
    let doc: Doc = serde_norway::from_str(yaml).unwrap();
    let modules = doc.kernel.modules.unwrap();
    assert_eq!(modules.load, vec!["virtio_net", "sev-guest"]);
    assert_eq!(doc.kernel.config.as_deref(), Some("../build/demo/kernel.config"));
    assert_eq!(doc.sealing.waivers[0].item, "CONFIG_KEXEC");
    assert_eq!(doc.sealing.strict, Some(false));
    assert_eq!(serde_norway::from_str::<SealingSpec>("{}").unwrap(), SealingSpec::default());
}

#[test]
fn rejects_unknown_fields_in_recipe_sections() {
    let err = serde_norway::from_str::<SealingSpec>("strict: true\nwaiver: []\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `waiver`"), "{err}");
    let err = serde_norway::from_str::<ModulesSpec>("tree: x\nmodules: [a]\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `modules`"), "{err}");
    let err = serde_norway::from_str::<SealingSpec>("waivers: [{item: sh}]\n").unwrap_err();
    assert!(err.to_string().contains("missing field `reason`"), "{err}");
}

/// A real Debian kernel: its shipped config violates the policy (it is a general-purpose kernel), its modules
/// resolve from the package root.
#[test]
fn real_debian_kernel_check() {
    let Some(root) = std::env::var_os("CVMFORGE_TEST_KERNEL_DIR").map(PathBuf::from) else {
        crate::util::skip_test!(
            "set CVMFORGE_TEST_KERNEL_DIR to an extracted linux-image-*.deb (with boot/ and lib/modules/)"
        );
        return;
    };
    let boot: Vec<PathBuf> = std::fs::read_dir(root.join("boot")).unwrap().map(|e| e.unwrap().path()).collect();
    let pick = |prefix: &str| {
        boot.iter().find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix)).unwrap().clone()
    };
    let mut image = Image::new(&executable(None));
    image.kernel = std::fs::read(pick("vmlinuz-")).unwrap();
    image.config = Some(pick("config-"));
    image.modules = Some((root, vec!["virtio_net".into(), "sev-guest".into()]));
    let outcome = image.check("/usr/bin/server").unwrap();
    assert_eq!(outcome.policy.verdict, Verdict::Violations);
    let items: Vec<_> = outcome.policy.violations.iter().map(|v| v.item.as_str()).collect();
    assert!(items.contains(&"CONFIG_KEXEC"), "{items:?}");
    let names: Vec<_> = outcome.modules.as_ref().unwrap().modules.iter().map(|m| m.name.as_str()).collect();
    assert!(names.contains(&"sev_guest") && names.contains(&"virtio_net"), "{names:?}");
    assert_eq!(outcome.init_modules.len(), outcome.module_files.len());
}
