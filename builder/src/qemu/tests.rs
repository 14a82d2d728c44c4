use super::*;

const CMDLINE: &str = "console=ttyS0 quiet";

fn snp_shape() -> SnpLaunchShape {
    SnpLaunchShape {
        vmm: SnpVmm::Qemu,
        vcpus: 4,
        vcpu_type: Some("EPYC-v4".into()),
        memory_bytes: 4 << 30,
        policy: None,
        id: None,
        guest_features: DEFAULT_GUEST_FEATURES,
    }
}

fn argv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn snp_fragment_minimal() {
    let fragment = snp_fragment(&snp_shape(), CMDLINE).unwrap();
    assert_eq!(
        fragment.args,
        argv(&[
            "-accel",
            "kvm",
            "-machine",
            "q35,confidential-guest-support=sev0,memory-backend=ram1",
            "-object",
            "memory-backend-memfd,id=ram1,size=4G,share=true,prealloc=false",
            "-object",
            "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on",
            "-cpu",
            "EPYC-v4",
            "-smp",
            "4",
            "-m",
            "4G",
            "-bios",
            "firmware-snp.fd",
            "-kernel",
            "kernel",
            "-initrd",
            "initrd.img",
            "-append",
            "console=ttyS0 quiet",
        ])
    );
    assert!(fragment.notes.is_empty());
    assert_eq!(
        fragment.command_line(),
        "qemu-system-x86_64 -accel kvm -machine q35,confidential-guest-support=sev0,memory-backend=ram1 \
             -object memory-backend-memfd,id=ram1,size=4G,share=true,prealloc=false \
             -object sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on -cpu EPYC-v4 -smp 4 -m 4G \
             -bios firmware-snp.fd -kernel kernel -initrd initrd.img -append 'console=ttyS0 quiet'"
    );
}

#[test]
fn snp_fragment_with_policy_and_id_block() {
    let shape = SnpLaunchShape {
        policy: Some(0x30000),
        id: Some(SnpIdArgs { id_block: "AAEC".into(), id_auth: "AQAA+/8=".into(), author_key: true }),
        memory_bytes: 1536 << 20,
        ..snp_shape()
    };
    let fragment = snp_fragment(&shape, CMDLINE).unwrap();
    assert_eq!(fragment.args[5], "memory-backend-memfd,id=ram1,size=1536M,share=true,prealloc=false");
    assert_eq!(
        fragment.args[7],
        "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on,policy=0x30000,\
             id-block=AAEC,id-auth=AQAA+/8=,author-key-enabled=on"
    );
    let without_author = SnpLaunchShape {
        id: Some(SnpIdArgs { id_block: "AAEC".into(), id_auth: "AQAA".into(), author_key: false }),
        policy: Some(0x1_0000_0003_0000),
        ..snp_shape()
    };
    assert_eq!(
        snp_fragment(&without_author, CMDLINE).unwrap().args[7],
        "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on,policy=0x1000000030000,\
             id-block=AAEC,id-auth=AQAA"
    );
}

#[test]
fn snp_fragment_without_named_vcpu_type_has_no_cpu_and_says_so() {
    let shape = SnpLaunchShape { vcpu_type: None, ..snp_shape() };
    let fragment = snp_fragment(&shape, CMDLINE).unwrap();
    assert!(!fragment.args.iter().any(|a| a == "-cpu"));
    assert_eq!(fragment.notes.len(), 1);
    assert!(fragment.notes[0].contains("CPUID signature"), "{}", fragment.notes[0]);
}

#[test]
fn snp_fragment_with_other_guest_features_says_so() {
    let fragment = snp_fragment(&SnpLaunchShape { guest_features: 0x21, ..snp_shape() }, CMDLINE).unwrap();
    assert_eq!(fragment.args, snp_fragment(&snp_shape(), CMDLINE).unwrap().args);
    assert_eq!(fragment.notes.len(), 1);
    assert!(
        fragment.notes[0].starts_with("the measured guest features (SEV_FEATURES) are 0x21, not"),
        "{:?}",
        fragment.notes
    );
}

#[test]
fn rejects_cloud_vmm_shapes() {
    for vmm in [SnpVmm::Ec2, SnpVmm::Gce] {
        let err = snp_fragment(&SnpLaunchShape { vmm, ..snp_shape() }, CMDLINE).unwrap_err();
        assert_eq!(err, FragmentError::NotQemu { vmm });
    }
    assert_eq!(
        FragmentError::NotQemu { vmm: SnpVmm::Ec2 }.to_string(),
        "shape is launched by `ec2`, whose instance configuration (not a QEMU command line) fixes the launch"
    );
}

#[test]
fn rejects_values_that_would_inject_qemu_options() {
    let shape = SnpLaunchShape { vcpu_type: Some("EPYC-v4,+svm".into()), ..snp_shape() };
    assert!(matches!(snp_fragment(&shape, CMDLINE), Err(FragmentError::InvalidValue { field: "vcpu_type", .. })));
    let shape = SnpLaunchShape {
        id: Some(SnpIdArgs { id_block: "AA,x=y".into(), id_auth: "AA".into(), author_key: false }),
        ..snp_shape()
    };
    assert!(matches!(snp_fragment(&shape, CMDLINE), Err(FragmentError::InvalidValue { field: "id_block", .. })));
    let shape = SnpLaunchShape {
        id: Some(SnpIdArgs { id_block: "AA".into(), id_auth: String::new(), author_key: false }),
        ..snp_shape()
    };
    assert!(matches!(snp_fragment(&shape, CMDLINE), Err(FragmentError::InvalidValue { field: "id_auth", .. })));
}

#[test]
fn rejects_zero_vcpus() {
    assert_eq!(snp_fragment(&SnpLaunchShape { vcpus: 0, ..snp_shape() }, CMDLINE), Err(FragmentError::NoVcpus));
    let tdx = TdxLaunchShape { vcpus: 0, memory_bytes: 1 << 30 };
    assert_eq!(tdx_fragment(&tdx, CMDLINE), Err(FragmentError::NoVcpus));
}

#[test]
fn tdx_fragment_exact() {
    let fragment = tdx_fragment(&TdxLaunchShape { vcpus: 2, memory_bytes: 8 << 30 }, CMDLINE).unwrap();
    assert_eq!(
        fragment.args,
        argv(&[
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-object",
            "tdx-guest,id=tdx0",
            "-machine",
            "q35,kernel-irqchip=split,confidential-guest-support=tdx0,memory-backend=ram1",
            "-object",
            "memory-backend-ram,id=ram1,size=8G",
            "-smp",
            "2",
            "-m",
            "8G",
            "-bios",
            "firmware-tdx.fd",
            "-kernel",
            "kernel",
            "-initrd",
            "initrd.img",
            "-append",
            "console=ttyS0 quiet",
        ])
    );
    assert!(fragment.notes.is_empty());
}

#[test]
fn manifest_fields_of_a_fragment_and_of_a_cloud_shape() {
    let fragment = tdx_fragment(&TdxLaunchShape { vcpus: 1, memory_bytes: 1 << 30 }, "x");
    let fields = manifest_fields(&fragment);
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["qemu_args", "qemu_notes"]);
    assert_eq!(fields["qemu_args"][5], "tdx-guest,id=tdx0");
    assert_eq!(fields["qemu_notes"], serde_json::json!([]));
    let cloud = snp_fragment(&SnpLaunchShape { vmm: SnpVmm::Gce, ..snp_shape() }, "x");
    let fields = manifest_fields(&cloud);
    assert_eq!(
        serde_json::to_value(&fields).unwrap(),
        serde_json::json!({"qemu_unavailable": "shape is launched by `gce`, whose instance configuration (not a QEMU command line) fixes the launch"})
    );
}

#[test]
fn smoke_boot_tcg_exact() {
    let forwards = [PortForward { host: 18080, guest: 8080 }, PortForward { host: 2222, guest: 22 }];
    let boot = SmokeBoot {
        accel: Accel::Tcg,
        memory_bytes: 1 << 30,
        vcpus: 2,
        kernel: "out/kernel",
        initrd: "out/initrd.img",
        cmdline: "console=ttyS0 cvm.net=dhcp",
        forwards: &forwards,
        scratch_disk: Some("/tmp/a,b.img"),
        volumes: &[("models".into(), "out/volume-models.img".into())],
    };
    assert_eq!(
        smoke_boot_args(&boot),
        argv(&[
            "-machine",
            "q35,accel=tcg",
            "-cpu",
            "max",
            "-m",
            "1G",
            "-smp",
            "2",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
            "out/kernel",
            "-initrd",
            "out/initrd.img",
            "-append",
            "console=ttyS0 cvm.net=dhcp",
            "-netdev",
            "user,id=n0,hostfwd=tcp:127.0.0.1:18080-:8080,hostfwd=tcp:127.0.0.1:2222-:22",
            "-device",
            "virtio-net-pci,netdev=n0",
            "-drive",
            "file=/tmp/a,,b.img,if=virtio,format=raw",
            "-drive",
            "file=out/volume-models.img,if=none,id=vol-models,format=raw,readonly=on",
            "-device",
            "virtio-blk-pci,drive=vol-models,serial=models",
        ])
    );
}

#[test]
fn smoke_boot_kvm_uses_host_cpu() {
    let boot = SmokeBoot {
        accel: Accel::Kvm,
        memory_bytes: 512 << 20,
        vcpus: 1,
        kernel: "k",
        initrd: "i",
        cmdline: "",
        forwards: &[],
        scratch_disk: None,
        volumes: &[],
    };
    let args = smoke_boot_args(&boot);
    assert_eq!(args[..8], argv(&["-machine", "q35,accel=kvm", "-cpu", "host", "-m", "512M", "-smp", "1"]));
    assert_eq!(args[args.len() - 4..], argv(&["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"]));
}

#[test]
fn port_forwards() {
    assert_eq!("8080:80".parse(), Ok(PortForward { host: 8080, guest: 80 }));
    assert_eq!("65535:1".parse(), Ok(PortForward { host: 65535, guest: 1 }));
}

#[test]
fn rejects_bad_port_forwards() {
    for bad in ["", "8080", ":80", "8080:", "0:80", "80:0", "65536:80", "a:80", "+80:80", "80:80:80", " 80:80"] {
        assert_eq!(bad.parse::<PortForward>(), Err(PortForwardError { input: bad.to_owned() }), "{bad:?}");
    }
}

#[test]
fn shell_quoting() {
    assert_eq!(shell_quote("plain-arg_1.0/x=y,z:@%+"), "plain-arg_1.0/x=y,z:@%+");
    assert_eq!(shell_quote(""), "''");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote("$HOME"), "'$HOME'");
    assert_eq!(shell_quote("{\"a\":1}"), "'{\"a\":1}'");
    assert_eq!(shell_line(&["a", "b c", ""]), "a 'b c' ''");
}

#[test]
fn shell_quoting_round_trips_through_sh() {
    let args = ["plain", "two words", "it's", "$HOME `x` \\ \"q\"", "", "tab\there", "semi;colon", "new\nline"];
    let script = format!("for a in {}; do printf '%s\\0' \"$a\"; done", shell_line(&args));
    let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
    let got: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
    let want: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).chain([&b""[..]]).collect();
    assert_eq!(got, want);
}

#[test]
fn kernel_panic_lines() {
    assert!(is_kernel_panic("[    1.234] Kernel panic - not syncing: VFS: Unable to mount root fs"));
    assert!(!is_kernel_panic("[    1.234] panic=-1 set"));
}
