//! Known-answer tests of the SEV / SEV-ES / SEV-SNP launch digests on the real Debian OVMF fixtures.
//!
//! Every expected value was printed by the reference, `sev-snp-measure` 0.0.13, with the command written next to
//! it; `scripts/snp-kat-reference.sh` reruns them all. Inputs: `tests/fixtures/firmware/*.fd.xz` (decompressed
//! here, sha256 checked against the fixtures README), the kernel and initrd of
//! `measurements/tests/data/make-inputs.py` (rebuilt below), and `measurements/tests/data/svsm-synthetic.bin`.

#![allow(clippy::unwrap_used, reason = "test helpers: a failure here is a test failure")]

use std::path::PathBuf;

use cvmforge_measure::snp::guest::{self, GuestError, LaunchDigest, Mode, SnpMeasurementArgs};
use cvmforge_measure::snp::ovmf::{Firmware, SectionType};
use cvmforge_measure::snp::sev_hashes::{sha256, KernelHashes};
use cvmforge_measure::snp::vcpu_types::VcpuType;
use cvmforge_measure::snp::vmm_types::VmmType;
use sha2::{Digest, Sha256};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Decompresses a firmware fixture and checks the sha256 recorded in `tests/fixtures/firmware/README.md`.
fn fixture(name: &str) -> Vec<u8> {
    let dir = repo().join("tests/fixtures/firmware");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let want = readme
        .lines()
        .find(|l| l.starts_with(&format!("| {name} |")))
        .and_then(|l| l.trim_end_matches('|').rsplit('|').next())
        .map(|s| s.trim().to_owned())
        .unwrap();
    let xz = std::fs::read(dir.join(format!("{name}.xz"))).unwrap();
    let out = liblzma::decode_all(&xz[..]).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&out)), want, "fixture {name} does not match its README sha256");
    out
}

fn amdsev() -> &'static [u8] {
    static FW: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FW.get_or_init(|| fixture("OVMF.amdsev.fd"))
}

fn generic() -> &'static [u8] {
    static FW: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FW.get_or_init(|| fixture("OVMF.fd"))
}

/// Same bytes as `make-inputs.py`: `b"cvmforge-test-kernel\n" * 50000`.
fn kernel() -> Vec<u8> {
    b"cvmforge-test-kernel\n".repeat(50000)
}

/// Same bytes as `make-inputs.py`: `b"initrd" * 1000`.
fn initrd() -> Vec<u8> {
    b"initrd".repeat(1000)
}

fn sig(name: &str) -> u64 {
    name.parse::<VcpuType>().unwrap().signature()
}

fn hex_of(d: LaunchDigest) -> String {
    d.to_string()
}

fn snp<'a>(fw: &'a [u8], cpu: &str) -> SnpMeasurementArgs<'a> {
    SnpMeasurementArgs::new(Mode::Snp, fw, sig(cpu))
}

#[test]
fn amdsev_firmware_matches_the_spec_facts() {
    // docs/specs/snp-launch-digest.md, "Debian's OVMF.amdsev.fd".
    let fw = Firmware::parse(amdsev()).unwrap();
    assert_eq!(fw.sev_es_reset_eip().unwrap(), 0x80b004);
    assert_eq!(fw.sev_hashes_table_gpa().unwrap(), 0x810c00);
    assert_eq!(fw.sev_hashes_table_location().unwrap().0, 0x810c00);
    let got: Vec<(SectionType, u32, u32)> =
        fw.sections().iter().map(|s| (s.section_type().unwrap(), s.gpa, s.size)).collect();
    assert_eq!(
        got,
        vec![
            (SectionType::SnpSecMem, 0x800000, 0x9000),
            (SectionType::SnpSecMem, 0x80a000, 0x3000),
            (SectionType::SnpSecrets, 0x80d000, 0x1000),
            (SectionType::Cpuid, 0x80e000, 0x1000),
            (SectionType::SvsmCaa, 0x80f000, 0x1000),
            (SectionType::SnpSecMem, 0x811000, 0x1f000),
            (SectionType::SnpKernelHashes, 0x810000, 0x1000),
        ]
    );
}

#[test]
fn snp_without_kernel() {
    // sev-snp-measure --mode snp --vcpus 4 --vcpu-type EPYC-v4 --ovmf OVMF.amdsev.fd
    let d = guest::launch_digest(&snp(amdsev(), "EPYC-v4"), 4).unwrap();
    assert_eq!(
        hex_of(d),
        "13a6ae9fbaa31c91ade309c36bd5214729438abac318e01176e02a97b8bec11a4bce86b4d2b1fba2ec0481dd24ff525f"
    );
}

#[test]
fn snp_vcpu_table_in_one_pass() {
    let args = snp(amdsev(), "EPYC-v4");
    let counts: Vec<u32> = (1..=64).chain([512]).collect();
    let table = guest::launch_digests(&args, &counts).unwrap();
    let at = |n: u32| hex_of(table.iter().find(|(c, _)| *c == n).unwrap().1);
    // sev-snp-measure --mode snp --vcpus 1 --vcpu-type EPYC-v4 --ovmf OVMF.amdsev.fd
    assert_eq!(
        at(1),
        "d74bd3ea40b240c3228edc5177ce6193561ebff633dbd0be76d6c143b876d65102425c0e2e8a930857c48daa5eacda58"
    );
    // sev-snp-measure --mode snp --vcpus 4 --vcpu-type EPYC-v4 --ovmf OVMF.amdsev.fd
    assert_eq!(
        at(4),
        "13a6ae9fbaa31c91ade309c36bd5214729438abac318e01176e02a97b8bec11a4bce86b4d2b1fba2ec0481dd24ff525f"
    );
    // sev-snp-measure --mode snp --vcpus 64 --vcpu-type EPYC-v4 --ovmf OVMF.amdsev.fd
    assert_eq!(
        at(64),
        "c8988bfa29626e72129dd39d65a2deb380513881d5cb98f3b2dc1a6d02c8ebd6017056ff0943743a66a1221bea8f229e"
    );
    // sev-snp-measure --mode snp --vcpus 512 --vcpu-type EPYC-v4 --ovmf OVMF.amdsev.fd
    assert_eq!(
        at(512),
        "583b3967be20ff6e6b3cd88539e0b79e76f74591de3f13f7636aad282f41e0c5172e64b92a9aa71f9a2e4b5d22d4ab73"
    );
    // The table agrees with separate single-count runs.
    for n in [2, 3, 17, 63] {
        assert_eq!(at(n), hex_of(guest::launch_digest(&args, n).unwrap()));
    }
}

#[test]
fn snp_with_kernel_initrd_and_non_ascii_cmdline() {
    let mut args = snp(amdsev(), "EPYC-Milan");
    args.kernel = Some(KernelHashes::new(sha256(&kernel()), Some(sha256(&initrd())), Some("console=ttyS0 é ")));
    // sev-snp-measure --mode snp --vcpus 2 --vcpu-type EPYC-Milan --ovmf OVMF.amdsev.fd --kernel kernel
    //   --initrd initrd --append "console=ttyS0 é "
    assert_eq!(
        hex_of(guest::launch_digest(&args, 2).unwrap()),
        "e5d18da1437227465a398dfd7c22020b257ee2139a60ab9e0e111cfb19f012e3b1905cdee2cff8d226d9c297f4c494bf"
    );
}

#[test]
fn snp_ec2_and_gce() {
    let mut ec2 = SnpMeasurementArgs::new(Mode::Snp, amdsev(), 0);
    ec2.vmm = VmmType::Ec2;
    ec2.kernel = Some(KernelHashes::new(sha256(&kernel()), None, None));
    // sev-snp-measure --mode snp --vcpus 2 --vmm-type ec2 --ovmf OVMF.amdsev.fd --kernel kernel
    assert_eq!(
        hex_of(guest::launch_digest(&ec2, 2).unwrap()),
        "b59feb4f09560f3cdbcd42cb85191373a12e59f66271708de827ab40e6c4b0a182408b9ac0e5a35a782284321c13280f"
    );
    let mut gce = SnpMeasurementArgs::new(Mode::Snp, amdsev(), 0);
    gce.vmm = VmmType::Gce;
    gce.guest_features = 0x21;
    gce.kernel = Some(KernelHashes::new(sha256(&kernel()), Some(sha256(&initrd())), None));
    // sev-snp-measure --mode snp --vcpus 3 --vmm-type gce --guest-features 0x21 --ovmf OVMF.amdsev.fd
    //   --kernel kernel --initrd initrd
    assert_eq!(
        hex_of(guest::launch_digest(&gce, 3).unwrap()),
        "2e045d26834c9a9359cbb1cd9f13961c3b20ff5ea6b814a10799c0fb33a07d1960f016e7853181d39cc6831cc22ef2d9"
    );
    let mut generic_ec2 = SnpMeasurementArgs::new(Mode::Snp, generic(), 0xa10f10);
    generic_ec2.vmm = VmmType::Ec2;
    // sev-snp-measure --mode snp --vcpus 2 --vcpu-sig 0xa10f10 --vmm-type ec2 --ovmf OVMF.fd
    assert_eq!(
        hex_of(guest::launch_digest(&generic_ec2, 2).unwrap()),
        "11df58a5a00d583deb1f9413eeda6550e5ead36be42e655070d4f74fc96b505f9b4afc02753c281c5b00b8f715b9e950"
    );
}

#[test]
fn snp_ovmf_hash_and_its_use_as_seed() {
    let amd = guest::launch_digest(&SnpMeasurementArgs::new(Mode::SnpOvmfHash, amdsev(), 0), 0).unwrap();
    // sev-snp-measure --mode snp:ovmf-hash --ovmf OVMF.amdsev.fd
    assert_eq!(
        hex_of(amd),
        "9d0dd8be18c86e3fe3bf0038ed75ebf5340bee69fd2632c8ff9409964575960ae1f7e84be387d2e3467bc3508d1e4806"
    );
    // sev-snp-measure --mode snp:ovmf-hash --ovmf OVMF.fd
    assert_eq!(
        hex_of(guest::launch_digest(&SnpMeasurementArgs::new(Mode::SnpOvmfHash, generic(), 0), 0).unwrap()),
        "52de7f3ba560307ec6c22a5cb001524d5e560467b5d618c715cfe3c6f1addcadb91563693fbfa433ae18c2412d739a95"
    );
    let LaunchDigest::Snp(seed) = amd else { panic!("snp:ovmf-hash must give a SHA-384") };
    let mut seeded = snp(amdsev(), "EPYC-v4");
    seeded.ovmf_hash = Some(seed);
    // Same as `--mode snp --vcpus 4 --vcpu-type EPYC-v4 --ovmf OVMF.amdsev.fd` above.
    assert_eq!(
        hex_of(guest::launch_digest(&seeded, 4).unwrap()),
        "13a6ae9fbaa31c91ade309c36bd5214729438abac318e01176e02a97b8bec11a4bce86b4d2b1fba2ec0481dd24ff525f"
    );
}

#[test]
fn sev_and_seves() {
    let mut sev = SnpMeasurementArgs::new(Mode::Sev, amdsev(), 0);
    sev.kernel = Some(KernelHashes::new(sha256(&kernel()), Some(sha256(&initrd())), Some("x")));
    // sev-snp-measure --mode sev --ovmf OVMF.amdsev.fd --kernel kernel --initrd initrd --append x
    assert_eq!(
        hex_of(guest::launch_digest(&sev, 0).unwrap()),
        "df80871fae0d26c7fcc5701869ef077d7b4c866ad76e3aeae59549fc4e4e7fa4"
    );
    // sev-snp-measure --mode sev --ovmf OVMF.fd (the file's own sha256, as in the fixtures README)
    assert_eq!(
        hex_of(guest::launch_digest(&SnpMeasurementArgs::new(Mode::Sev, generic(), 0), 0).unwrap()),
        "14954040cc754ade0c625ac3470ea46d4c14318b5b1396de4ef77090203d76db"
    );
    let mut es = SnpMeasurementArgs::new(Mode::SevEs, amdsev(), sig("EPYC-Rome"));
    es.kernel = Some(KernelHashes::new(sha256(&kernel()), None, None));
    // sev-snp-measure --mode seves --vcpus 2 --vcpu-type EPYC-Rome --ovmf OVMF.amdsev.fd --kernel kernel
    assert_eq!(
        hex_of(guest::launch_digest(&es, 2).unwrap()),
        "8407462e06a62fa5e588748afdb24b00fd4680adf9a7827de583f52949942236"
    );
}

#[test]
fn snp_svsm() {
    let svsm = std::fs::read(repo().join("measurements/tests/data/svsm-synthetic.bin")).unwrap();
    let mut args = SnpMeasurementArgs::new(Mode::SnpSvsm, amdsev(), sig("EPYC-Genoa"));
    args.svsm = Some(&svsm);
    args.vars_size = 540672;
    // sev-snp-measure --mode snp:svsm --vcpus 2 --vcpu-type EPYC-Genoa --ovmf OVMF.amdsev.fd
    //   --svsm svsm-synthetic.bin --vars-size 540672
    assert_eq!(
        hex_of(guest::launch_digest(&args, 2).unwrap()),
        "5cd6ea7139bfc35031b09286741822b355e41be398dd7c24f50954e13eb3925978abe26b6000c7771c69ee5eca62cee1"
    );
}

#[test]
fn rejects_kernel_with_generic_ovmf() {
    // The reference refuses both (exit 1):
    // sev-snp-measure --mode snp --vcpus 4 --vcpu-type EPYC-v4 --ovmf OVMF.fd --kernel kernel
    //   -> "Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section"
    // sev-snp-measure --mode sev --ovmf OVMF.fd --kernel kernel
    //   -> "Kernel specified but OVMF doesn't support kernel/initrd/cmdline measurement"
    let hashes = KernelHashes::new(sha256(&kernel()), None, None);
    let mut args = snp(generic(), "EPYC-v4");
    args.kernel = Some(hashes);
    assert_eq!(guest::launch_digest(&args, 4), Err(GuestError::NoKernelHashesSection));
    let mut sev = SnpMeasurementArgs::new(Mode::Sev, generic(), 0);
    sev.kernel = Some(hashes);
    let err = guest::launch_digest(&sev, 0).unwrap_err();
    assert_eq!(err, GuestError::KernelHashesUnsupported);
    assert!(err.to_string().contains("7255371f-3a3b-4b04-927b-1da6efa8d454"));
}

/// VMSA pages equal the reference's `--dump-vmsa` files (measurements/tests/data/vmsa/, made by
/// scripts/snp-kat-reference.sh with the command in each case).
#[test]
fn vmsa_pages_equal_reference_dumps() {
    let dir = repo().join("measurements/tests/data/vmsa");
    let svsm = std::fs::read(repo().join("measurements/tests/data/svsm-synthetic.bin")).unwrap();
    let check = |name: &str, args: &SnpMeasurementArgs<'_>| {
        let pages = guest::vmsa_pages(args, 2).unwrap();
        for (i, page) in pages.iter().enumerate() {
            let want = std::fs::read(dir.join(format!("{name}-vmsa{i}.bin"))).unwrap();
            assert_eq!(&page[..], &want[..], "{name} vmsa{i}");
        }
    };
    // --mode snp --vcpus 2 --vcpu-type EPYC-Milan --ovmf OVMF.amdsev.fd --dump-vmsa
    check("snp-qemu", &snp(amdsev(), "EPYC-Milan"));
    // --mode snp --vcpus 2 --vmm-type ec2 --guest-features 0x21 --ovmf OVMF.amdsev.fd --dump-vmsa
    let mut ec2 = SnpMeasurementArgs::new(Mode::Snp, amdsev(), 0);
    ec2.vmm = VmmType::Ec2;
    ec2.guest_features = 0x21;
    check("snp-ec2", &ec2);
    // --mode snp --vcpus 2 --vmm-type gce --ovmf OVMF.amdsev.fd --dump-vmsa
    let mut gce = SnpMeasurementArgs::new(Mode::Snp, amdsev(), 0);
    gce.vmm = VmmType::Gce;
    check("snp-gce", &gce);
    // --mode seves --vcpus 2 --vcpu-sig 0x800f12 --ovmf OVMF.amdsev.fd --dump-vmsa
    check("seves-qemu", &SnpMeasurementArgs::new(Mode::SevEs, amdsev(), 0x800f12));
    // --mode snp:svsm --vcpus 2 --vcpu-type EPYC-Genoa --ovmf OVMF.amdsev.fd --svsm svsm-synthetic.bin
    //   --vars-size 540672 --dump-vmsa
    let mut sv = SnpMeasurementArgs::new(Mode::SnpSvsm, amdsev(), sig("EPYC-Genoa"));
    sv.svsm = Some(&svsm);
    sv.vars_size = 540672;
    check("svsm-qemu", &sv);
}

#[test]
fn explain_lists_every_page_and_ends_at_the_digest() {
    let args = snp(amdsev(), "EPYC-v4");
    let pages = guest::explain(&args, 4).unwrap();
    // 1024 firmware pages, 9+3+1+1+1+31+1 metadata pages, 4 VMSAs.
    assert_eq!(pages.len(), 1024 + 47 + 4);
    assert_eq!(pages[0].gpa, 0xffc0_0000);
    assert_eq!(pages.last().unwrap().digest.to_string(), hex_of(guest::launch_digest(&args, 4).unwrap()));
    assert_eq!(
        guest::explain(&SnpMeasurementArgs::new(Mode::Sev, amdsev(), 0), 1),
        Err(GuestError::NotAPageChain { mode: Mode::Sev })
    );
}
