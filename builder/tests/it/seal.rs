//! Sealing policy, kernel config and kernel modules, on synthetic trees and (when `CVMFORGE_TEST_KERNEL_DIR` names
//! an extracted Debian linux-image package) on a real distribution kernel.

// Test helpers outside #[test] functions build fixtures; a failure there is a broken test environment.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use cvmforge::format::elf::testing::kernel_module;
use cvmforge::format::kconfig::{KconfigError, KernelConfig};
use cvmforge::recipe::seal_spec::Waiver;
use cvmforge::seal::modules::{collect, kernel_release, ModuleError, ModuleRequest, ModuleSet};
use cvmforge::seal::policy::{Checker, KconfigPolicy, Verdict};
use sha2::{Digest, Sha256};

const RELEASE: &str = "6.1.0-test-amd64";

fn ko(name: &str, depends: &str, release: &str) -> Vec<u8> {
    let vermagic = format!("vermagic={release} SMP preempt mod_unload modversions ");
    kernel_module(&["license=GPL", &format!("depends={depends}"), &format!("name={name}"), &vermagic])
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// virtio_net -> net_failover (xz) -> failover (zst); virtio_net -> virtio (built in); sev-guest standalone (gz).
fn tree(root: &Path) -> [(String, Vec<u8>); 4] {
    let mods = [
        ("kernel/drivers/net/virtio_net.ko".to_string(), ko("virtio_net", "virtio,net_failover", RELEASE)),
        ("kernel/drivers/net/net_failover.ko.xz".to_string(), ko("net_failover", "failover", RELEASE)),
        ("kernel/net/core/failover.ko.zst".to_string(), ko("failover", "", RELEASE)),
        ("kernel/drivers/virt/coco/sev-guest/sev-guest.ko.gz".to_string(), ko("sev_guest", "", RELEASE)),
    ];
    for (rel, elf) in &mods {
        let stored = match rel.rsplit('.').next() {
            Some("xz") => xz(elf),
            Some("zst") => zstd::encode_all(&elf[..], 3).unwrap(),
            Some("gz") => gz(elf),
            _ => elf.clone(),
        };
        put(root, rel, &stored);
    }
    put(root, "modules.builtin", b"kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n");
    mods
}

fn request<'a>(root: &'a Path, names: &'a [String], keep: bool) -> ModuleRequest<'a> {
    ModuleRequest { modules_dir: root, kernel_release: RELEASE, names, keep_compressed: keep }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn order(set: &ModuleSet) -> Vec<&str> {
    set.modules.iter().map(|m| m.entry.name.as_str()).collect()
}

#[test]
fn modules_resolve_from_modinfo_decompressed_in_dependency_order() {
    let dir = tempfile::tempdir().unwrap();
    let elves = tree(dir.path());
    let wanted = names(&["virtio-net", "sev-guest"]);
    let set = collect(&request(dir.path(), &wanted, false)).unwrap();
    assert_eq!(order(&set), vec!["failover", "net_failover", "sev_guest", "virtio_net"]);
    assert_eq!(set.builtin, vec!["virtio"]);
    assert_eq!(set.dependency_source, ".modinfo");
    let by_name = |n: &str| set.modules.iter().find(|m| m.entry.name == n).unwrap();
    let nf = by_name("net_failover");
    assert_eq!(nf.entry.dest, format!("/lib/modules/{RELEASE}/kernel/drivers/net/net_failover.ko"));
    assert!(!nf.entry.compressed);
    assert_eq!(nf.bytes, elves[1].1, "decompressed bytes are the original ELF");
    assert_eq!(nf.entry.sha256, sha(&elves[1].1));
    assert_eq!(by_name("virtio_net").entry.depends, vec!["net_failover", "virtio"]);
    assert_eq!(by_name("sev_guest").bytes, elves[3].1);
    let json = serde_json::to_value(set.report()).unwrap();
    assert_eq!(json["modules"][0]["name"], "failover");
}

#[test]
fn modules_stay_compressed_when_the_kernel_decompresses_them() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let wanted = names(&["net_failover"]);
    let set = collect(&request(dir.path(), &wanted, true)).unwrap();
    let nf = &set.modules[1].entry;
    assert_eq!(nf.dest, format!("/lib/modules/{RELEASE}/kernel/drivers/net/net_failover.ko.xz"));
    assert!(nf.compressed);
    let on_disk = std::fs::read(dir.path().join("kernel/drivers/net/net_failover.ko.xz")).unwrap();
    assert_eq!(set.modules[1].bytes, on_disk);
    assert_eq!(nf.sha256, sha(&on_disk));
}

#[test]
fn modules_use_modules_dep_when_present() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    // modules.dep says failover needs sev-guest (not what .modinfo says): it must be the source used.
    let dep =
        "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.zst\n\
               kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.zst\n\
               kernel/net/core/failover.ko.zst: kernel/drivers/virt/coco/sev-guest/sev-guest.ko.gz\n\
               kernel/drivers/virt/coco/sev-guest/sev-guest.ko.gz:\n";
    put(dir.path(), "modules.dep", dep.as_bytes());
    let wanted = names(&["virtio_net"]);
    let set = collect(&request(dir.path(), &wanted, false)).unwrap();
    assert_eq!(order(&set), vec!["sev_guest", "failover", "net_failover", "virtio_net"]);
    assert_eq!(set.dependency_source, "modules.dep");
}

#[test]
fn rejects_missing_module() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let err = collect(&request(dir.path(), &names(&["tdx-guest"]), false)).unwrap_err();
    assert!(matches!(&err, ModuleError::Missing { name, needed_by: None, .. } if name == "tdx_guest"), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("kernel module `tdx_guest` not found: looked for `tdx_guest.ko[.xz|.zst|.gz]` under `"));
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
}

#[test]
fn rejects_missing_dependency_naming_the_dependent() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    std::fs::remove_file(dir.path().join("kernel/net/core/failover.ko.zst")).unwrap();
    let err = collect(&request(dir.path(), &names(&["virtio_net"]), false)).unwrap_err();
    assert!(err.to_string().starts_with("kernel module `failover` (needed by `net_failover`) not found"), "{err}");
}

#[test]
fn rejects_vermagic_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    put(
        dir.path(),
        "kernel/net/core/failover.ko.zst",
        &zstd::encode_all(&ko("failover", "", "6.12.0-1-amd64")[..], 3).unwrap(),
    );
    let err = collect(&request(dir.path(), &names(&["virtio_net"]), false)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("kernel module `failover` was built for `6.12.0-1-amd64 SMP preempt mod_unload modversions`, but the kernel is `{RELEASE}` (take the modules from the same linux-image package as the kernel)")
    );
}

#[test]
fn rejects_dependency_cycle() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "kernel/a.ko", &ko("a", "b", RELEASE));
    put(dir.path(), "kernel/b.ko", &ko("b", "c", RELEASE));
    put(dir.path(), "kernel/c.ko", &ko("c", "a", RELEASE));
    let err = collect(&request(dir.path(), &names(&["b"]), false)).unwrap_err();
    assert_eq!(err.to_string(), "kernel module dependency cycle: b -> c -> a -> b");
}

#[test]
fn rejects_corrupt_ko_xz() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let mut bad = xz(&ko("failover", "", RELEASE));
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    put(dir.path(), "kernel/net/core/failover.ko.zst", b"");
    std::fs::remove_file(dir.path().join("kernel/net/core/failover.ko.zst")).unwrap();
    put(dir.path(), "kernel/net/core/failover.ko.xz", &bad);
    let err = collect(&request(dir.path(), &names(&["failover"]), false)).unwrap_err();
    assert!(matches!(err, ModuleError::Decompress { .. }), "{err}");
    assert!(err.to_string().starts_with("cannot decompress kernel module `"), "{err}");
    assert!(err.to_string().contains("failover.ko.xz"), "{err}");
}

#[test]
fn rejects_modules_dep_paths_outside_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    put(dir.path(), "modules.dep", b"kernel/net/core/failover.ko.zst:\n../../etc/evil.ko:\n");
    let err = collect(&request(dir.path(), &names(&["failover"]), false)).unwrap_err();
    assert!(err.to_string().ends_with("modules.dep` line 2: expected `kernel/…/name.ko: dependency.ko …`"), "{err}");
}

#[test]
fn rejects_module_without_modinfo() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "kernel/x.ko", &cvmforge::format::elf::testing::build(1, &[], &[(".text", b"\x90")]));
    let err = collect(&request(dir.path(), &names(&["x"]), false)).unwrap_err();
    assert!(err.to_string().ends_with("x.ko` has no .modinfo section"), "{err}");
}

#[test]
fn real_binaries_match_their_signatures() {
    let Some(root) = std::env::var_os("CVMFORGE_TEST_SIGNATURE_ROOT").map(PathBuf::from) else {
        crate::util::skip_test!("set CVMFORGE_TEST_SIGNATURE_ROOT to a directory with extracted busybox-static, dropbear-bin and zsh packages");
        return;
    };
    let expected = [("bin/busybox", "busybox"), ("usr/sbin/dropbear", "dropbear"), ("bin/zsh", "zsh")];
    for (rel, item) in expected {
        let file = std::fs::File::open(root.join(rel)).unwrap();
        let found = cvmforge::seal::signatures::scan_content(file, cvmforge::seal::signatures::SIGNATURES).unwrap();
        let items: Vec<&str> = found.matches.iter().map(|m| m.item).collect();
        assert_eq!(items, vec![item], "{rel}");
    }
}

fn real_kernel_dir() -> Option<PathBuf> {
    match std::env::var_os("CVMFORGE_TEST_KERNEL_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            crate::util::skip_test!(
                "set CVMFORGE_TEST_KERNEL_DIR to an extracted linux-image-*.deb (with boot/ and lib/modules/)"
            );
            None
        }
    }
}

/// The single `boot/<prefix>*` file of the package.
fn boot_file(root: &Path, prefix: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("boot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    found.sort();
    assert_eq!(found.len(), 1, "expected one boot/{prefix}* in {}", root.display());
    found.pop().unwrap()
}

#[test]
fn real_debian_kernel_modules_resolve() {
    let Some(root) = real_kernel_dir() else { return };
    let bzimage = std::fs::read(boot_file(&root, "vmlinuz-")).unwrap();
    let release = kernel_release(&bzimage).unwrap();
    // Independent reference: the package names its files after the release (boot/vmlinuz-<release>).
    assert!(boot_file(&root, "vmlinuz-").ends_with(format!("vmlinuz-{release}")));
    let modules_dir = root.join("lib/modules").join(&release);
    let wanted = names(&["virtio_net", "sev-guest", "dm-verity"]);
    let set = collect(&ModuleRequest {
        modules_dir: &modules_dir,
        kernel_release: &release,
        names: &wanted,
        keep_compressed: false,
    })
    .unwrap();
    for m in &set.modules {
        eprintln!("module {:<14} {} deps={:?}", m.entry.name, m.entry.dest, m.entry.depends);
    }
    eprintln!("built in: {:?} (dependencies from {})", set.builtin, set.dependency_source);
    let got = order(&set);
    let pos = |n: &str| got.iter().position(|x| *x == n).unwrap_or_else(|| panic!("{n} not in {got:?}"));
    // `modinfo -F depends` on Debian 6.1: virtio_net -> net_failover -> failover.
    assert!(pos("failover") < pos("net_failover") && pos("net_failover") < pos("virtio_net"));
    assert!(got.contains(&"sev_guest") && got.contains(&"dm_verity"));
    for m in &set.modules {
        assert!(m.entry.source.starts_with("kernel/"), "{}", m.entry.source);
        let on_disk = std::fs::read(&m.entry.source_path).unwrap();
        assert_eq!(m.entry.sha256, sha(&on_disk), "uncompressed Debian modules are copied verbatim");
    }
    let err = collect(&ModuleRequest {
        modules_dir: &modules_dir,
        kernel_release: "6.1.0-99-amd64",
        names: &wanted,
        keep_compressed: false,
    })
    .unwrap_err();
    assert!(matches!(err, ModuleError::Vermagic { .. }), "{err}");
}

#[test]
fn real_debian_kernel_policy_report() {
    let Some(root) = real_kernel_dir() else { return };
    let config = KernelConfig::parse(&std::fs::read_to_string(boot_file(&root, "config-")).unwrap()).unwrap();
    let mut checker = Checker::new(KconfigPolicy::builtin(), Vec::new()).unwrap();
    checker.check_kernel_config(&config);
    checker.check_cmdline("console=ttyS0 panic=-1 lockdown=confidentiality", Some(&config));
    let report = checker.finish();
    for v in &report.violations {
        eprintln!("violation {}: {}", v.item, v.detail);
    }
    let items: Vec<&str> = report.violations.iter().map(|v| v.item.as_str()).collect();
    // Independent reference: `grep` of Debian 6.1's config-6.1.0-*-amd64 shows these set as below.
    for expected in ["CONFIG_DEVMEM", "CONFIG_KEXEC", "CONFIG_KPROBES", "CONFIG_MODULES", "CONFIG_INTEL_TDX_GUEST"] {
        if config.get(expected).is_some() {
            assert!(items.contains(&expected), "{expected} missing from {items:?}");
        }
    }
    assert!(!items.contains(&"CONFIG_AMD_MEM_ENCRYPT") && !items.contains(&"CONFIG_SEV_GUEST"));
    assert!(!items.iter().any(|i| i.starts_with("cmdline:")), "{items:?}");
    // Debian builds sev-guest as a module: without it in the initrd the guest could not attest.
    let mut checker = Checker::new(KconfigPolicy::builtin(), Vec::new()).unwrap();
    checker.check_module_coverage(&config, &Default::default());
    let missing: Vec<String> = checker.finish().violations.into_iter().map(|v| v.item).collect();
    assert_eq!(missing, vec!["CONFIG_SEV_GUEST".to_string()]);
    let mut checker = Checker::new(KconfigPolicy::builtin(), Vec::new()).unwrap();
    checker.check_module_coverage(&config, &["sev-guest".to_string()].into());
    assert_eq!(checker.finish().verdict, Verdict::Sealed);
    // Waiving every kernel-config item (as the demo recipe does) yields sealed-with-waivers.
    let waivers = report
        .violations
        .iter()
        .map(|v| Waiver { item: v.item.clone(), reason: "stock Debian kernel for the demo".into() })
        .collect();
    let mut checker = Checker::new(KconfigPolicy::builtin(), waivers).unwrap();
    checker.check_kernel_config(&config);
    assert_eq!(checker.finish().verdict, Verdict::SealedWithWaivers);
}

#[test]
fn real_debian_kernel_has_no_ikconfig() {
    let Some(root) = real_kernel_dir() else { return };
    let config = std::fs::read_to_string(boot_file(&root, "config-")).unwrap();
    let bzimage = std::fs::read(boot_file(&root, "vmlinuz-")).unwrap();
    let result = KernelConfig::from_bzimage(&bzimage);
    if config.contains("# CONFIG_IKCONFIG is not set") {
        // Decompressing Debian's xz (x86 BCJ) payload must succeed and find no IKCFG_ST marker.
        assert!(matches!(result, Err(KconfigError::NoIkconfig)), "{result:?}");
    } else {
        assert_eq!(result.unwrap(), KernelConfig::parse(&config).unwrap());
    }
}
