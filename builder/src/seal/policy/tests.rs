use super::*;
use crate::format::elf::testing::executable;

fn file(dest: &str) -> InitrdEntry {
    InitrdEntry { dest: dest.into(), kind: EntryKind::File }
}

fn checker(waivers: &[(&str, &str)]) -> Checker {
    let w = waivers.iter().map(|(i, r)| Waiver { item: i.to_string(), reason: r.to_string() }).collect();
    Checker::new(KconfigPolicy::builtin(), w).unwrap()
}

const GOOD_CMDLINE: &str = "console=ttyS0 panic=-1 lockdown=confidentiality";

#[test]
fn builtin_policy_parses_and_every_item_has_a_reason() {
    let p = KconfigPolicy::builtin();
    assert!(p.kernel_config.required.len() >= 8 && p.kernel_config.forbidden.len() >= 10);
    for r in &p.kernel_config.required {
        assert!(!r.reason.is_empty() && !r.values.is_empty(), "{}", r.option);
    }
    assert!(p.kernel_config.forbidden.iter().all(|f| !f.reason.is_empty()));
    // A `#` inside an unquoted YAML value would start a comment and cut the reason short.
    let tdx = p.kernel_config.required.iter().find(|r| r.option == "CONFIG_INTEL_TDX_GUEST").unwrap();
    assert!(tdx.reason.ends_with("#VE handling, shared-memory conversion) to boot"), "{}", tdx.reason);
    assert_eq!(p.sha256, hex::encode(Sha256::digest(BUILTIN_POLICY.as_bytes())));
}

#[test]
fn rejects_policy_with_unknown_field_or_version() {
    let bad = BUILTIN_POLICY.replace("schema_version: 1", "schema_version: 2");
    assert!(matches!(KconfigPolicy::from_yaml(&bad), Err(PolicyError::SchemaVersion { found: 2, .. })));
    let bad = BUILTIN_POLICY.replace("      unless:", "      except:");
    let err = KconfigPolicy::from_yaml(&bad).unwrap_err();
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("except"), "{source}");
}

#[test]
fn clean_image_is_sealed() {
    let mut c = checker(&[]);
    let entries = vec![file("/init"), InitrdEntry { dest: "/bin".into(), kind: EntryKind::Dir }];
    c.check_initrd(&entries, |_| Ok(Box::new(io::Cursor::new(executable(None))))).unwrap();
    c.check_cmdline(GOOD_CMDLINE, None);
    let report = c.finish();
    assert_eq!(report.verdict, Verdict::Sealed, "{report:#?}");
    report.enforce().unwrap();
    let names: Vec<_> = report.checks.iter().map(|c| (c.name.as_str(), c.subjects)).collect();
    assert_eq!(names, vec![("initrd-content", 2), ("kernel-cmdline", 3)]);
}

#[test]
fn rejects_forbidden_programs_by_name_symlink_and_content() {
    let mut c = checker(&[]);
    let entries = vec![
        file("/usr/sbin/sshd"),
        InitrdEntry { dest: "/bin/sh".into(), kind: EntryKind::Symlink { target: "busybox".into() } },
        file("/bin/tool"),
        InitrdEntry { dest: "/sbin".into(), kind: EntryKind::Dir },
    ];
    c.check_initrd(&entries, |e| {
        let mut bytes = executable(None);
        if e.dest == "/bin/tool" {
            bytes.extend_from_slice(b"BusyBox v1.36.1 multi-call binary");
        }
        Ok(Box::new(io::Cursor::new(bytes)))
    })
    .unwrap();
    let report = c.finish();
    assert_eq!(report.verdict, Verdict::Violations);
    let got: Vec<_> = report.violations.iter().map(|v| (v.category, v.item.as_str(), v.detail.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (Category::RemoteAccess, "sshd", "`/usr/sbin/sshd` has the name of a forbidden program"),
            (Category::Shell, "busybox", "`/bin/sh` is a symlink to `busybox`"),
            (Category::Shell, "busybox", "`/bin/tool` contains the BusyBox version banner"),
            (Category::Shell, "sh", "`/bin/sh` has the name of a forbidden program"),
        ]
    );
    let err = report.enforce().unwrap_err();
    assert!(err.to_string().starts_with("the image is not sealed: 4 policy violation(s), first: `sshd`"), "{err}");
}

#[test]
fn data_files_named_like_programs_are_not_programs() {
    let mut c = checker(&[]);
    let entries = vec![file("/etc/pam.d/login"), file("/usr/bin/login")];
    c.check_initrd(&entries, |e| {
        let bytes: &[u8] = if e.dest.starts_with("/etc") { b"auth required pam_unix.so\n" } else { b"#!/init\n" };
        Ok(Box::new(bytes))
    })
    .unwrap();
    let report = c.finish();
    let got: Vec<_> = report.violations.iter().map(|v| v.detail.as_str()).collect();
    assert_eq!(got, vec!["`/usr/bin/login` has the name of a forbidden program"]);
}

#[test]
fn waivers_apply_and_unused_waivers_warn() {
    let mut c = checker(&[("sh", "lab debugging image"), ("telnetd", "old recipe")]);
    let entries = vec![InitrdEntry { dest: "/bin/sh".into(), kind: EntryKind::Symlink { target: "/init".into() } }];
    c.check_initrd(&entries, |_| unreachable!("symlinks are not opened")).unwrap();
    c.check_cmdline(GOOD_CMDLINE, None);
    let report = c.finish();
    assert_eq!(report.verdict, Verdict::SealedWithWaivers);
    assert_eq!(report.waivers_applied.len(), 1);
    assert_eq!(report.waivers_applied[0].reason, "lab debugging image");
    assert_eq!(report.waivers_applied[0].waived[0].detail, "`/bin/sh` has the name of a forbidden program");
    assert_eq!(report.warnings[0].item, "telnetd");
    assert!(report.warnings[0].detail.contains("matches no violation"));
    report.enforce().unwrap();
}

#[test]
fn rejects_waiver_without_reason() {
    let err =
        Checker::new(KconfigPolicy::builtin(), vec![Waiver { item: "sshd".into(), reason: "  ".into() }]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the waiver for `sshd` has no reason: every waiver must say why the item is acceptable"
    );
}

#[test]
fn rejects_shell_and_debug_cmdline_parameters() {
    let mut c = checker(&[]);
    c.check_cmdline(
        "console=ttyS0 init=/bin/sh rdinit=/init systemd.debug-shell \"earlyprintk=ttyS0,115200\" kgdbwait \
             kgdboc=ttyS0 panic=0 -- single",
        None,
    );
    let report = c.finish();
    let items: Vec<_> = report.violations.iter().map(|v| v.item.as_str()).collect();
    assert_eq!(
        items,
        vec![
            "cmdline:earlyprintk",
            "cmdline:init",
            "cmdline:init-arg:single",
            "cmdline:kgdboc",
            "cmdline:kgdbwait",
            "cmdline:lockdown",
            "cmdline:panic",
            "cmdline:systemd.debug_shell",
        ]
    );
    assert!(report.violations[0].detail.starts_with("`earlyprintk=ttyS0,115200`: every early console"));
}

#[test]
fn lockdown_may_be_forced_by_the_kernel_config() {
    let config = KernelConfig::parse("CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY=y\n").unwrap();
    let mut c = checker(&[]);
    c.check_cmdline("panic=10", Some(&config));
    assert_eq!(c.finish().verdict, Verdict::Sealed);
}

#[test]
fn checks_required_and_forbidden_kernel_options() {
    let fragment =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../kernel-config/sealed-guest.config")).unwrap();
    let sealed = KernelConfig::parse(&fragment).unwrap();
    let mut c = checker(&[]);
    c.check_kernel_config(&sealed);
    let report = c.finish();
    assert_eq!(report.verdict, Verdict::Sealed, "sealed-guest.config must satisfy policy.yaml: {report:#?}");

    let text = fragment
        .replace("# CONFIG_KEXEC is not set", "CONFIG_KEXEC=y")
        .replace("# CONFIG_MODULES is not set", "CONFIG_MODULES=y")
        .replace("CONFIG_RANDOMIZE_BASE=y", "");
    let mut c = checker(&[("CONFIG_KEXEC", "measured reboot experiments")]);
    c.check_kernel_config(&KernelConfig::parse(&text).unwrap());
    let report = c.finish();
    let items: Vec<_> = report.violations.iter().map(|v| v.item.as_str()).collect();
    assert_eq!(items, vec!["CONFIG_MODULES", "CONFIG_RANDOMIZE_BASE"]);
    assert!(report.violations[0].detail.starts_with("`CONFIG_MODULES=y` without `CONFIG_MODULE_SIG_FORCE=y`: "));
    assert!(report.violations[1].detail.starts_with("`CONFIG_RANDOMIZE_BASE` is not set, must be y: "));
    assert_eq!(report.waivers_applied[0].item, "CONFIG_KEXEC");
}

/// The fragment and the policy are one source of truth: every option the policy requires is set explicitly in the
/// fragment (not only pulled in by a dependency), and every option it forbids is explicitly turned off, so that
/// neither file can change without the other.
#[test]
fn sealed_fragment_and_policy_do_not_drift() {
    let fragment =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../kernel-config/sealed-guest.config")).unwrap();
    let config = KernelConfig::parse(&fragment).unwrap();
    let policy = KconfigPolicy::builtin();
    let mut missing = Vec::new();
    for r in &policy.kernel_config.required {
        let applies = r.when.as_deref().is_none_or(|w| config.is_enabled(w));
        if applies && !fragment.lines().any(|l| l == format!("{}=y", r.option)) {
            missing.push(format!("{}=y", r.option));
        }
    }
    for f in &policy.kernel_config.forbidden {
        if !fragment.lines().any(|l| l == format!("# {} is not set", f.option)) {
            missing.push(format!("# {} is not set", f.option));
        }
    }
    assert_eq!(missing, Vec::<String>::new(), "policy.yaml rules that sealed-guest.config does not state");
}

#[test]
fn strict_devmem_is_required_only_with_devmem() {
    let mut c = checker(&[]);
    c.check_kernel_config(&KernelConfig::parse("CONFIG_DEVMEM=y\n").unwrap());
    let items: Vec<_> = c.finish().violations.into_iter().map(|v| v.item).collect();
    assert!(items.contains(&"CONFIG_STRICT_DEVMEM".to_string()), "{items:?}");
    assert!(items.contains(&"CONFIG_IO_STRICT_DEVMEM".to_string()), "{items:?}");
    let mut c = checker(&[]);
    c.check_kernel_config(&KernelConfig::parse("# CONFIG_DEVMEM is not set\n").unwrap());
    let items: Vec<_> = c.finish().violations.into_iter().map(|v| v.item).collect();
    assert!(!items.iter().any(|i| i.contains("STRICT_DEVMEM")), "{items:?}");
}

#[test]
fn rejects_forbidden_parameters_in_the_built_in_command_line() {
    let text = "CONFIG_CMDLINE_BOOL=y\nCONFIG_CMDLINE=\"console=ttyS0 rd.break\"\nCONFIG_CMDLINE_OVERRIDE=y\n";
    let mut c = checker(&[]);
    c.check_kernel_config(&KernelConfig::parse(text).unwrap());
    let report = c.finish();
    let v = report.violations.iter().find(|v| v.category == Category::KernelCmdline).unwrap();
    assert_eq!(
        (v.item.as_str(), v.detail.as_str()),
        ("cmdline:rd.break", "`rd.break` in the built-in CONFIG_CMDLINE: drops to an initramfs shell")
    );
    assert_eq!(report.warnings[0].item, "CONFIG_CMDLINE_OVERRIDE");
}

#[test]
fn rejects_required_modules_missing_from_the_initrd() {
    let config = KernelConfig::parse("CONFIG_SEV_GUEST=m\nCONFIG_TSM_REPORTS=y\nCONFIG_TDX_GUEST_DRIVER=m\n").unwrap();
    let mut c = checker(&[]);
    c.check_module_coverage(&config, &["tdx_guest".to_string(), "virtio_net".to_string()].into());
    let report = c.finish();
    let got: Vec<_> = report.violations.iter().map(|v| v.item.as_str()).collect();
    assert_eq!(got, vec!["CONFIG_SEV_GUEST"]);
    assert!(report.violations[0]
        .detail
        .starts_with("`CONFIG_SEV_GUEST=m` but the module `sev-guest` is not in the initrd"));
    assert_eq!(report.checks[0], CheckRun { name: "kernel-modules".into(), subjects: 2 });
}

#[test]
fn unavailable_config_is_a_waivable_violation() {
    let mut c = checker(&[(KCONFIG_UNAVAILABLE, "vendor kernel, config checked by hand")]);
    c.kernel_config_unavailable("no config file and no IKCONFIG");
    assert_eq!(c.finish().verdict, Verdict::SealedWithWaivers);
}

#[test]
fn report_is_sorted_and_serializes() {
    let mut c = checker(&[]);
    c.check_cmdline("panic=0 kgdbwait", None);
    let report = c.finish();
    let mut sorted = report.violations.clone();
    sorted.sort();
    assert_eq!(sorted, report.violations);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["verdict"], "violations");
    assert_eq!(json["violations"][0]["category"], "kernel-cmdline");
}
