//! Kernel build configuration: the `.config` text format (`CONFIG_X=y|m|"str"|n`, `# CONFIG_X is not set`), and
//! the configuration embedded in a bzImage by `CONFIG_IKCONFIG` (a gzip blob between `IKCFG_ST` and `IKCFG_ED`
//! in the decompressed kernel, see `kernel/configs.c`).
//!
//! # Example
//!
//! ```
//! use cvmforge::format::kconfig::{KernelConfig, Value};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = KernelConfig::parse("CONFIG_SEV_GUEST=m\n# CONFIG_KEXEC is not set\nCONFIG_LSM=\"lockdown\"\n")?;
//! assert_eq!(config.get("CONFIG_SEV_GUEST"), Some(&Value::Module));
//! assert!(!config.is_enabled("CONFIG_KEXEC"));
//! assert_eq!(config.get("CONFIG_LSM"), Some(&Value::Str("lockdown".into())));
//! # Ok(()) }
//! ```
//!
//! A distribution kernel usually ships its configuration beside it (`/boot/config-<release>`); when it does not,
//! [`KernelConfig::from_bzimage`] decompresses the kernel (gzip, xz, lzma or zstd) and extracts IKCONFIG, or fails
//! with [`KconfigError::NoIkconfig`].

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use thiserror::Error;

use crate::format::bzimage::{decompressed_kernel, PayloadError};
use crate::format::compress::decode::{read_bounded, DecodeError};

/// Marker before the gzip-compressed configuration (`kernel/configs.c`).
const IKCFG_START: &[u8] = b"IKCFG_ST";
/// Marker after it.
const IKCFG_END: &[u8] = b"IKCFG_ED";
/// Upper bound on a decompressed `.config` (a full distribution config is about 300 KiB).
const MAX_CONFIG_SIZE: u64 = 16 << 20;

/// A failure to read a kernel configuration.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KconfigError {
    /// A line that is neither an option, a `is not set` comment, another comment nor blank.
    #[error("line {line}: `{text}` is not a kernel config line (expected `CONFIG_NAME=value` or `# CONFIG_NAME is not set`)")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A quoted value without its closing quote.
    #[error("line {line}: unterminated string value for `{name}`")]
    BadString {
        /// 1-based line number.
        line: usize,
        /// The option.
        name: String,
    },
    /// The configuration is not UTF-8 text.
    #[error("the kernel configuration is not UTF-8 text")]
    NotText,
    /// The kernel was built without `CONFIG_IKCONFIG`.
    #[error(
        "the kernel has no embedded configuration (no `IKCFG_ST` marker in the decompressed kernel: built without \
         CONFIG_IKCONFIG); pass the `config-<release>` file shipped with the kernel instead"
    )]
    NoIkconfig,
    /// `IKCFG_ST` without a following `IKCFG_ED`.
    #[error(
        "the embedded configuration at offset {offset:#x} of the decompressed kernel has no `IKCFG_ED` end marker"
    )]
    UnterminatedIkconfig {
        /// Offset of the start marker.
        offset: usize,
    },
    /// The bzImage's kernel could not be read or decompressed.
    #[error(transparent)]
    Kernel(#[from] PayloadError),
    /// The embedded configuration does not decompress.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// The value of one option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum Value {
    /// `=y`: built in.
    Yes,
    /// `=m`: built as a module.
    Module,
    /// `=n` or `# CONFIG_X is not set` (displayed as `n`).
    No,
    /// A quoted string, unescaped.
    Str(String),
    /// A number or hex value, verbatim.
    Other(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Yes => f.write_str("y"),
            Value::Module => f.write_str("m"),
            Value::No => f.write_str("n"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Other(s) => f.write_str(s),
        }
    }
}

/// A parsed kernel configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KernelConfig {
    /// Options by name (`CONFIG_…`), sorted.
    pub options: BTreeMap<String, Value>,
}

impl KernelConfig {
    /// Parses `.config` text. A later line for the same option wins, as in Kconfig.
    pub fn parse(text: &str) -> Result<KernelConfig, KconfigError> {
        let mut options = BTreeMap::new();
        for (index, raw) in text.lines().enumerate() {
            if let Some((name, value)) = parse_line(index + 1, raw.trim())? {
                options.insert(name, value);
            }
        }
        Ok(KernelConfig { options })
    }

    /// Parses `.config` bytes (which must be UTF-8).
    pub fn parse_bytes(bytes: &[u8]) -> Result<KernelConfig, KconfigError> {
        Self::parse(std::str::from_utf8(bytes).map_err(|_| KconfigError::NotText)?)
    }

    /// Extracts and parses the IKCONFIG configuration embedded in a bzImage.
    pub fn from_bzimage(bzimage: &[u8]) -> Result<KernelConfig, KconfigError> {
        Ok(Self::from_bzimage_with_text(bzimage)?.0)
    }

    /// Like [`KernelConfig::from_bzimage`], also returning the extracted `.config` text (for its digest).
    pub fn from_bzimage_with_text(bzimage: &[u8]) -> Result<(KernelConfig, Vec<u8>), KconfigError> {
        let vmlinux = decompressed_kernel(bzimage)?;
        let start = memchr::memmem::find(&vmlinux, IKCFG_START).ok_or(KconfigError::NoIkconfig)?;
        let blob_start = start + IKCFG_START.len();
        let tail = vmlinux.get(blob_start..).unwrap_or_default();
        let len = memchr::memmem::find(tail, IKCFG_END).ok_or(KconfigError::UnterminatedIkconfig { offset: start })?;
        let blob = tail.get(..len).unwrap_or_default();
        let text = read_bounded(flate2::read::GzDecoder::new(blob), "IKCONFIG", "gzip", MAX_CONFIG_SIZE)?;
        Ok((Self::parse_bytes(&text)?, text))
    }

    /// The value of `name`, if the configuration mentions it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.options.get(name)
    }

    /// True when `name` is `y` or `m`.
    pub fn is_enabled(&self, name: &str) -> bool {
        matches!(self.get(name), Some(Value::Yes | Value::Module))
    }

    /// True when `name` is `y`.
    pub fn is_builtin(&self, name: &str) -> bool {
        matches!(self.get(name), Some(Value::Yes))
    }

    /// Renders the configuration as `.config` text, one line per option in name order (`n` as
    /// `# CONFIG_X is not set`, strings quoted with `\"` and `\\` escaped, as `scripts/kconfig/confdata.c` writes).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.options {
            let line = match value {
                Value::No => format!("# {name} is not set"),
                Value::Str(s) => format!("{name}=\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
                other => format!("{name}={other}"),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// Fuzzing entry point (`fuzz/fuzz_targets/kconfig.rs`): parses arbitrary bytes as `.config` text and as a bzImage
/// with IKCONFIG; whatever parses must survive a [`KernelConfig::to_text`] round trip unchanged.
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(config) = KernelConfig::parse_bytes(data) {
        let reparsed = KernelConfig::parse(&config.to_text());
        assert!(matches!(&reparsed, Ok(c) if *c == config), "round trip changed {config:?} into {reparsed:?}");
    }
    let _ = KernelConfig::from_bzimage(data);
}

fn valid_name(name: &str) -> bool {
    name.len() > "CONFIG_".len()
        && name.starts_with("CONFIG_")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parse_line(line: usize, text: &str) -> Result<Option<(String, Value)>, KconfigError> {
    let bad = || KconfigError::BadLine { line, text: text.to_string() };
    if let Some(comment) = text.strip_prefix('#') {
        let unset = comment.trim().strip_suffix(" is not set").filter(|n| valid_name(n));
        return Ok(unset.map(|name| (name.to_string(), Value::No)));
    }
    if text.is_empty() {
        return Ok(None);
    }
    let (name, raw) = text.split_once('=').ok_or_else(bad)?;
    if !valid_name(name) {
        return Err(bad());
    }
    let value = match raw {
        "y" => Value::Yes,
        "m" => Value::Module,
        "n" => Value::No,
        quoted if quoted.starts_with('"') => {
            Value::Str(unquote(quoted).ok_or_else(|| KconfigError::BadString { line, name: name.to_string() })?)
        }
        other if !other.is_empty() && !other.contains(char::is_whitespace) => Value::Other(other.to_string()),
        _ => return Err(bad()),
    };
    Ok(Some((name.to_string(), value)))
}

/// Removes the quotes and the `\"`/`\\` escapes Kconfig writes (`scripts/kconfig/confdata.c`).
fn unquote(quoted: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = quoted.strip_prefix('"')?.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return chars.as_str().is_empty().then_some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use cvmforge_measure::bzimage::SetupHeaderError;

    use super::*;
    use crate::format::bzimage::kernel_release;
    use crate::format::bzimage::testing::bzimage;

    const SAMPLE: &str = "#\n# Automatically generated file; DO NOT EDIT.\n#\nCONFIG_CC_VERSION_TEXT=\"gcc (Debian 12.2.0-14) \\\"12\\\"\"\nCONFIG_AMD_MEM_ENCRYPT=y\nCONFIG_SEV_GUEST=m\n# CONFIG_KEXEC is not set\nCONFIG_NR_CPUS=512\nCONFIG_PHYSICAL_START=0x1000000\nCONFIG_X=n\n\n";

    #[test]
    fn parses_values_of_every_kind() {
        let c = KernelConfig::parse(SAMPLE).unwrap();
        assert_eq!(c.get("CONFIG_AMD_MEM_ENCRYPT"), Some(&Value::Yes));
        assert_eq!(c.get("CONFIG_SEV_GUEST"), Some(&Value::Module));
        assert_eq!(c.get("CONFIG_KEXEC"), Some(&Value::No));
        assert_eq!(c.get("CONFIG_X"), Some(&Value::No));
        assert_eq!(c.get("CONFIG_NR_CPUS"), Some(&Value::Other("512".into())));
        assert_eq!(c.get("CONFIG_PHYSICAL_START"), Some(&Value::Other("0x1000000".into())));
        assert_eq!(c.get("CONFIG_CC_VERSION_TEXT"), Some(&Value::Str("gcc (Debian 12.2.0-14) \"12\"".into())));
        assert_eq!(c.options.len(), 7);
        assert!(c.is_enabled("CONFIG_SEV_GUEST") && !c.is_builtin("CONFIG_SEV_GUEST"));
    }

    #[test]
    fn rejects_malformed_lines_with_line_number() {
        let err = KernelConfig::parse("CONFIG_A=y\nthis is junk\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: `this is junk` is not a kernel config line (expected `CONFIG_NAME=value` or `# CONFIG_NAME is not set`)");
        assert!(matches!(KernelConfig::parse("CONFIG_A=\"open\n"), Err(KconfigError::BadString { line: 1, .. })));
        assert!(matches!(KernelConfig::parse("FOO=y\n"), Err(KconfigError::BadLine { line: 1, .. })));
        assert!(matches!(KernelConfig::parse("CONFIG_A=\n"), Err(KconfigError::BadLine { .. })));
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn vmlinux_with_ikconfig(config: &str) -> Vec<u8> {
        let mut v = b"\x7fELF fake kernel text ".to_vec();
        v.extend_from_slice(b"IKCFG_ST");
        v.extend_from_slice(&gzip(config.as_bytes()));
        v.extend_from_slice(b"IKCFG_ED more text");
        v
    }

    #[test]
    fn extracts_ikconfig_from_gzip_xz_and_zstd_kernels() {
        let vmlinux = vmlinux_with_ikconfig(SAMPLE);
        let xz = {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
            e.write_all(&vmlinux).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::encode_all(&vmlinux[..], 3).unwrap();
        let lzma = {
            let options = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
            let stream = liblzma::stream::Stream::new_lzma_encoder(&options).unwrap();
            let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
            e.write_all(&vmlinux).unwrap();
            e.finish().unwrap()
        };
        assert_eq!(&lzma[..3], b"\x5d\x00\x00", "legacy .lzma header (lc=3 lp=0 pb=2)");
        for payload in [gzip(&vmlinux), xz, zst, lzma] {
            let config = KernelConfig::from_bzimage(&bzimage("6.1.0-test (x@y) #1", &payload)).unwrap();
            assert_eq!(config, KernelConfig::parse(SAMPLE).unwrap());
        }
    }

    #[test]
    fn rejects_kernel_without_ikconfig() {
        let image = bzimage("6.1.0", &gzip(b"\x7fELF no config here"));
        let err = KernelConfig::from_bzimage(&image).unwrap_err();
        assert!(matches!(err, KconfigError::NoIkconfig), "{err}");
        assert!(err.to_string().contains("CONFIG_IKCONFIG"));
    }

    #[test]
    fn rejects_unsupported_and_corrupt_payloads() {
        let err = KernelConfig::from_bzimage(&bzimage("6.1.0", b"BZh91AY&SY")).unwrap_err();
        assert!(err.to_string().contains("bzip2"), "{err}");
        let mut bad = gzip(b"some kernel");
        bad.truncate(12);
        let err = KernelConfig::from_bzimage(&bzimage("6.1.0", &bad)).unwrap_err();
        assert!(err.to_string().contains("cannot decompress the gzip kernel payload"), "{err}");
        assert!(matches!(
            KernelConfig::from_bzimage(b"MZ"),
            Err(KconfigError::Kernel(PayloadError::Header(SetupHeaderError::Read(_))))
        ));
        let not = vec![0u8; 0x300];
        assert!(matches!(
            KernelConfig::from_bzimage(&not),
            Err(KconfigError::Kernel(PayloadError::Header(SetupHeaderError::NoMagic { .. })))
        ));
    }

    #[test]
    fn reads_kernel_release_from_setup_header() {
        let image = bzimage("6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP", b"");
        assert_eq!(kernel_release(&image).unwrap(), "6.1.0-56-amd64");
        let mut no_pointer = image.clone();
        no_pointer[0x20e..0x210].copy_from_slice(&[0, 0]);
        assert!(matches!(kernel_release(&no_pointer), Err(SetupHeaderError::BadVersionString { .. })));
        for len in 0..image.len() {
            let _ = kernel_release(&image[..len]);
            let _ = KernelConfig::from_bzimage(&image[..len]);
        }
    }

    #[test]
    fn to_text_round_trips_every_value_kind() {
        let c = KernelConfig::parse(SAMPLE).unwrap();
        let text = c.to_text();
        assert!(text.contains("CONFIG_CC_VERSION_TEXT=\"gcc (Debian 12.2.0-14) \\\"12\\\"\"\n"), "{text}");
        assert!(text.contains("# CONFIG_X is not set\n"), "{text}");
        assert_eq!(KernelConfig::parse(&text).unwrap(), c);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
            let _ = KernelConfig::parse(&text);
            fuzz_parse(text.as_bytes());
        }

        #[test]
        fn valid_lines_parse_and_round_trip(lines in proptest::collection::vec(
            "# CONFIG_[A-Z0-9_]{1,6} is not set|CONFIG_[A-Z0-9_]{1,6}=(y|m|n|[0-9a-fx]{1,4}|\"([a-z #=]|\\\\[\\\\\"]){0,8}\")", 0..12)) {
            let text = lines.join("\n");
            proptest::prop_assert!(KernelConfig::parse(&text).is_ok(), "{}", text);
            fuzz_parse(text.as_bytes());
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            fuzz_parse(&bytes);
        }
    }
}
