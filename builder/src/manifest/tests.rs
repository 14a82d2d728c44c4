use super::*;

fn sample() -> Manifest {
    Manifest {
        schema: MANIFEST_SCHEMA.to_string(),
        cvmforge_version: "0.1.0".into(),
        recipe: RecipeRecord { name: "d".into(), version: "1".into(), path: "d.yaml".into(), sha256: "ab".into() },
        source_date_epoch: 1,
        inputs: vec![],
        outputs: vec![],
        initrd: InitrdRecord {
            compression: crate::format::compress::describe(&crate::format::compress::Compression::None),
            uncompressed_sha256: "cd".into(),
            uncompressed_size: 0,
            entries: vec![EntryRecord {
                path: "/init".into(),
                kind: EntryType::File,
                mode: "0755".into(),
                size: 0,
                sha256: Some("ef".into()),
                target: None,
                device: None,
            }],
        },
        kernel: KernelRecord { boot_protocol: "2.15".into(), version: None, cmdline: String::new() },
        measurements: Measurements::default(),
        sealing: BTreeMap::new(),
        volumes: Vec::new(),
    }
}

#[test]
fn round_trips_with_sorted_keys() {
    let m = sample();
    let text = m.to_json();
    assert_eq!(Manifest::from_json(&text).unwrap(), m);
    assert!(text.ends_with("}\n"));
    assert!(text.find("\"cvmforge_version\"").unwrap() < text.find("\"initrd\"").unwrap());
    assert!(text.contains("\"type\": \"file\""));
}

fn with_measurements() -> Manifest {
    let mut m = sample();
    let policy = PolicyRecord { value: "0x30000".into(), fields: BTreeMap::new(), warnings: vec![] };
    m.measurements.snp.push(SnpMeasurement {
        platform: "snp".into(),
        name: "snp-shape0-vcpus2".into(),
        shape: 0,
        mode: "snp".into(),
        vcpus: 2,
        vcpu_type: Some("EPYC-v4".into()),
        vcpu_sig: "0x800f12".into(),
        vmm_type: "QEMU".into(),
        guest_features: "0x1".into(),
        memory: "2G".into(),
        policy,
        digest: "aa".into(),
        inputs: SnpInputs {
            firmware_sha256: "1".into(),
            kernel_sha256: "2".into(),
            initrd_sha256: "3".into(),
            cmdline_sha256: "4".into(),
        },
        id: Some(IdBlockRecord {
            id_block: "AA==".into(),
            id_auth: "AQ==".into(),
            id_key_digest: "ee".into(),
            author_key_digest: None,
            family_id: "00".repeat(16),
            image_id: "11".repeat(16),
            guest_svn: 0,
        }),
        qemu_args: Some(vec!["-smp".into(), "2".into()]),
        qemu_notes: Some(vec![]),
        qemu_unavailable: None,
    });
    m.measurements.tdx.push(TdxMeasurement {
        platform: "tdx".into(),
        name: "tdx-shape0".into(),
        shape: 0,
        memory: "4G".into(),
        memory_bytes: 4 << 30,
        vcpus: 1,
        page_order: "single-pass".into(),
        qemu_version: "10.2.0".into(),
        qemu_version_assumed: true,
        qemu_kernel_patching: false,
        cmdline_layout: "prefix".into(),
        cmdline_layout_source: "firmware".into(),
        mrtd: "m".into(),
        rtmr0: None,
        rtmr0_unavailable: Some("why".into()),
        rtmr1: "1".into(),
        rtmr2: "2".into(),
        rtmr3: "3".into(),
        inputs: TdxInputs {
            firmware_sha256: "f".into(),
            kernel_sha256: "k".into(),
            initrd_sha384: "i".into(),
            initrd_size: 1,
        },
        secure_boot: SecureBootRecord { pk_enrolled: true, microsoft_db: true },
        warnings: vec!["w".into()],
        qemu_args: None,
        qemu_notes: None,
        qemu_unavailable: Some("u".into()),
    });
    m
}

#[test]
fn measurements_round_trip_and_omit_absent_optionals() {
    let m = with_measurements();
    let text = m.to_json();
    assert_eq!(Manifest::from_json(&text).unwrap(), m);
    // The ID block is written flat beside the other fields (the v1 layout), and an absent author key is omitted.
    assert!(text.contains("\"rtmr0\": null") && text.contains("\"id_auth\": \"AQ==\""), "{text}");
    assert!(!text.contains("author_key_digest") && !text.contains("\"id\""), "{text}");
    let extra = text.replacen("\"digest\": \"aa\"", "\"digest\": \"aa\", \"surprise\": 1", 1);
    let err = Manifest::from_json(&extra).unwrap_err();
    assert!(err.to_string().contains("field `measurements.snp[0].surprise`: unknown field `surprise`"), "{err}");
}

#[test]
fn rejects_an_id_block_with_some_of_its_fields() {
    let text = with_measurements().to_json();
    let partial = text.replacen("\"id_auth\": \"AQ==\",", "", 1);
    let err = Manifest::from_json(&partial).unwrap_err();
    assert!(err.to_string().contains("an ID block needs all of `id_block`, `id_auth`"), "{err}");
    let mut without = with_measurements();
    if let Some(snp) = without.measurements.snp.first_mut() {
        snp.id = None;
    }
    let bare = without.to_json();
    assert!(!bare.contains("id_block") && !bare.contains("guest_svn"), "{bare}");
    assert_eq!(Manifest::from_json(&bare).unwrap(), without);
    let author_only = bare.replacen("\"digest\": \"aa\"", "\"digest\": \"aa\", \"author_key_digest\": \"ff\"", 1);
    assert!(Manifest::from_json(&author_only).is_err());
}

#[test]
fn rejects_fields_of_the_wrong_type_naming_their_path() {
    let text = sample().to_json().replacen("\"size\": 0", "\"size\": -1", 1);
    let err = Manifest::from_json(&text).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("not a valid cvmforge manifest: field `initrd.entries[0].size`: invalid value: integer `-1`"),
        "{err}"
    );
}

#[test]
fn rejects_unknown_schema_and_fields() {
    let text = sample().to_json().replace("manifest/v1", "manifest/v2");
    assert!(matches!(Manifest::from_json(&text), Err(ManifestError::UnknownSchema { .. })));
    assert!(matches!(Manifest::from_json("[]"), Err(ManifestError::NoSchema)));
    let extra = sample().to_json().replacen('{', "{\"surprise\": 1,", 1);
    assert!(matches!(Manifest::from_json(&extra), Err(ManifestError::Field { .. })));
    assert!(matches!(Manifest::from_json("{"), Err(ManifestError::Parse { .. })));
}

/// Every JSON object cvmforge writes through `serde_json::Value` (the sealing report, `init.json`, `--json` outputs)
/// has its keys sorted because `serde_json::Map` is a `BTreeMap`. A dependency that turns on serde_json's
/// `preserve_order` feature (dcap-qvl's `std` does) would silently make them insertion-ordered: this fails first.
#[test]
fn serde_json_maps_stay_sorted() {
    let value = serde_json::json!({"b": 1, "a": {"d": 2, "c": 3}});
    assert_eq!(value.to_string(), r#"{"a":{"c":3,"d":2},"b":1}"#);
}
