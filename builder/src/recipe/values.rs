//! Recipe values that are more than YAML scalars (sizes, VMM types, page orders, command-line layouts, QEMU
//! versions): they deserialize straight into their types, so that a bad value fails while the recipe is parsed, with
//! the recipe's line and column, rather than later in the build.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;

use crate::units::parse_size;

/// A non-zero size as written (`2G`, `4096M`): its bytes, and the text, which the manifest records as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteSize {
    bytes: u64,
    text: String,
}

impl ByteSize {
    /// Parses `text` (binary suffixes, [`crate::units::parse_size`]); zero is refused: no guest runs in no memory.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        match parse_size(text) {
            Ok(bytes) if bytes > 0 => Ok(ByteSize { bytes, text: text.to_owned() }),
            _ => Err(format!("`{text}`: expected a non-zero size such as `2G` or `4096M`")),
        }
    }

    /// The size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ByteSize::parse(text)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parsed(deserializer)
    }
}

/// Parses the scalar while the deserializer is still on it, so that an error carries the scalar's line and column
/// (an error raised after `String::deserialize` returned would point at the enclosing mapping).
struct ParseVisitor<T>(PhantomData<T>);

impl<T> Visitor<'_> for ParseVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }
}

/// A value written as text and parsed with its [`FromStr`] (a VMM type, a page order, a layout, a QEMU version);
/// use as `#[serde(deserialize_with = "values::parsed")]`.
pub(crate) fn parsed<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    deserializer.deserialize_str(ParseVisitor(PhantomData))
}

/// [`parsed`] for an optional field (with `#[serde(default)]`).
pub(crate) fn parsed_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    parsed(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use cvmforge_measure::snp::vmm_types::VmmType;
    use cvmforge_measure::tdx::mrtd::PageOrder;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Shape {
        memory: ByteSize,
        #[serde(default, deserialize_with = "parsed_opt")]
        page_order: Option<PageOrder>,
        #[serde(deserialize_with = "parsed")]
        vmm: VmmType,
    }

    #[test]
    fn parses_typed_values_and_keeps_the_size_as_written() {
        let s: Shape = serde_norway::from_str("memory: 2048M\npage_order: two-pass\nvmm: ec2\n").unwrap();
        assert_eq!((s.memory.bytes(), s.memory.as_str()), (2 << 30, "2048M"));
        assert_eq!((s.page_order, s.vmm), (Some(PageOrder::TwoPass), VmmType::Ec2));
        let s: Shape = serde_norway::from_str("memory: 1G\nvmm: QEMU\n").unwrap();
        assert_eq!(s.page_order, None);
    }

    #[test]
    fn rejects_bad_values_at_their_line_and_column() {
        for (yaml, needle, line) in [
            ("memory: 0\nvmm: QEMU\n", "`0`: expected a non-zero size", 1),
            ("memory: 4Q\nvmm: QEMU\n", "`4Q`: expected a non-zero size", 1),
            ("memory: 1G\nvmm: QEMU\npage_order: sideways\n", "expected `single-pass` or `two-pass`", 3),
            ("memory: 1G\nvmm: kvm\n", "unknown VMM type `kvm`", 2),
        ] {
            let err = serde_norway::from_str::<Shape>(yaml).unwrap_err();
            assert!(err.to_string().contains(needle), "{yaml:?}: {err}");
            assert_eq!(err.location().map(|l| l.line()), Some(line), "{yaml:?}: {err}");
        }
    }
}
