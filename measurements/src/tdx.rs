//! Intel TDX launch (MRTD) and boot-time (RTMR0-3) measurements for a TD booted by TDVF.
//!
//! Spec: `docs/specs/tdx-measurement.md`.
//!
//! - [`tdvf`]: the TDVF metadata descriptor (which file ranges become which TD pages);
//! - [`mrtd`]: MRTD, in both page-add orders;
//! - [`pe`]: the kernel's PE/COFF Authenticode SHA-384 (RTMR1);
//! - [`qemu`]: QEMU's setup-header patching of the kernel before it is measured (QEMU ≤ 10.1);
//! - [`load_options`]: the EFI LoadOptions that the firmware builds from the command line (RTMR2);
//! - [`fv`]: detecting the LoadOptions layout from the firmware's compressed volume;
//! - [`rtmr`]: event lists, replay and the TCG-style event log.

pub mod fuzzing;
pub mod fv;
pub mod guest;
pub mod load_options;
pub mod mrtd;
pub mod pe;
pub mod qemu;
pub mod rtmr;
pub mod secure_boot;
pub mod tdvf;

pub use crate::digest::{Sha384, SHA384_LEN};

#[cfg(test)]
pub(crate) mod test_fixtures {
    use sha2::{Digest, Sha256};

    /// Decompresses a firmware fixture and checks its sha256 against tests/fixtures/firmware/README.md.
    pub(crate) fn fixture(name: &str, sha256: &str) -> Vec<u8> {
        let path = format!("{}/../tests/fixtures/firmware/{name}.xz", env!("CARGO_MANIFEST_DIR"));
        let xz = std::fs::read(&path).unwrap();
        let out = liblzma::decode_all(&xz[..]).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&out)), sha256, "{path}");
        out
    }

    /// Debian OVMF.inteltdx.ms.fd 2026.08+ds-2 (decompressed once per test binary).
    pub(crate) fn tdx_firmware() -> Vec<u8> {
        static FW: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        FW.get_or_init(|| {
            fixture("OVMF.inteltdx.ms.fd", "a265075b4147a096109e501e76196df1ec8a18659c26f7401492c597ec88f312")
        })
        .clone()
    }
}
