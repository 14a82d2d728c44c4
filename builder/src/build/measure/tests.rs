use super::*;

#[test]
fn vcpu_ranges_expand_and_rejects_bad_ranges() {
    assert_eq!(vcpu_counts("f", &VcpuCount::Range("1-4".into())).unwrap(), [1, 2, 3, 4]);
    assert_eq!(vcpu_counts("f", &VcpuCount::One(8)).unwrap(), [8]);
    for bad in ["4-1", "0-2", "1-1025", "x", "1-", "-3"] {
        let err = vcpu_counts("measure.snp[0].vcpus", &VcpuCount::Range(bad.into())).unwrap_err();
        assert!(err.to_string().starts_with(&format!("`measure.snp[0].vcpus` is `{bad}`")), "{err}");
    }
    assert!(vcpu_counts("f", &VcpuCount::One(0)).is_err());
}

#[test]
fn rejects_reserved_policy_bits_and_reads_both_spellings() {
    assert_eq!(policy("p", Some(&PolicyValue::Text("0x30000".into()))).unwrap(), GuestPolicy(0x30000));
    assert_eq!(policy("p", Some(&PolicyValue::Int(0x30000))).unwrap(), GuestPolicy(0x30000));
    assert_eq!(policy("p", None).unwrap(), GuestPolicy::default());
    let err = policy("p", Some(&PolicyValue::Int(0x10000))).unwrap_err();
    assert!(matches!(err, MeasureError::Policy { source: PolicyError::ReservedBitClear { .. }, .. }));
}

#[test]
fn typed_qemu_fields_match_manifest_fields() {
    let shape = SnpLaunchShape {
        vmm: VmmType::Ec2,
        vcpus: 1,
        vcpu_type: None,
        memory_bytes: 1 << 30,
        policy: None,
        id: None,
        guest_features: 1,
    };
    for fragment in [
        qemu::snp_fragment(&shape, "x"),
        qemu::snp_fragment(&SnpLaunchShape { vmm: VmmType::Qemu, ..shape.clone() }, "x"),
    ] {
        let mut entry = SnpMeasurement {
            platform: String::new(),
            name: String::new(),
            shape: 0,
            mode: String::new(),
            vcpus: 1,
            vcpu_type: None,
            vcpu_sig: String::new(),
            vmm_type: String::new(),
            guest_features: String::new(),
            memory: String::new(),
            policy: policy_record(GuestPolicy::default()),
            digest: String::new(),
            inputs: SnpInputs {
                firmware_sha256: String::new(),
                kernel_sha256: String::new(),
                initrd_sha256: String::new(),
                cmdline_sha256: String::new(),
            },
            id: None,
            qemu_args: None,
            qemu_notes: None,
            qemu_unavailable: None,
        };
        (entry.qemu_args, entry.qemu_notes, entry.qemu_unavailable) = qemu_fields(&fragment);
        let value = serde_json::to_value(&entry).unwrap();
        for (key, expected) in qemu::manifest_fields(&fragment) {
            assert_eq!(value[&key], expected, "{key}");
        }
    }
}
