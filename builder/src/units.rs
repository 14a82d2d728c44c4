//! Sizes (`512M`, `4G`) and durations (`120s`, `2m`) as written in recipes and on the command line (the one parser
//! of each), and sizes rendered the way QEMU reads them.
//!
//! Size suffixes are binary (K = 1024), as in QEMU's `qemu_strtosz`. A bare number is bytes here; note that QEMU's
//! own `-m` reads a bare number as MiB, which is why [`qemu_size`] always writes a suffix.

use std::time::Duration;

use thiserror::Error;

/// The size suffixes, each with its multiplier (binary, as in QEMU).
const SIZE_UNITS: &[(char, u64)] = &[('K', 1 << 10), ('M', 1 << 20), ('G', 1 << 30), ('T', 1 << 40)];

/// The duration suffixes, each with its number of seconds.
const DURATION_UNITS: &[(char, u64)] = &[('s', 1), ('m', 60), ('h', 3600)];

/// Why a size could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SizeError {
    /// Not digits followed by at most one unit letter.
    #[error(
        "invalid size `{input}`: expected a number with an optional K, M, G or T suffix (binary units), e.g. `512M`"
    )]
    Syntax {
        /// The text given.
        input: String,
    },
    /// The value does not fit in 64 bits.
    #[error("size `{input}` is too large")]
    Overflow {
        /// The text given.
        input: String,
    },
}

/// Why a duration could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not digits followed by at most one unit letter.
    #[error("invalid duration `{input}`: expected seconds, or a number with an s, m or h suffix, e.g. `120s` or `2m`")]
    Syntax {
        /// The text given.
        input: String,
    },
    /// The value does not fit in 64 bits of seconds.
    #[error("duration `{input}` is too large")]
    Overflow {
        /// The text given.
        input: String,
    },
    /// Zero: a timeout of zero would fail every run.
    #[error("duration `{input}` is zero; expected at least one second")]
    Zero {
        /// The text given.
        input: String,
    },
}

/// Splits `input` into its decimal digits and an optional one-letter suffix; `None` if it is anything else.
fn split_number(input: &str) -> Option<(&str, Option<char>)> {
    let digits_end = input.find(|c: char| !c.is_ascii_digit()).unwrap_or(input.len());
    let (digits, rest) = input.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    let mut suffix = rest.chars();
    let unit = suffix.next();
    if suffix.next().is_some() {
        return None;
    }
    Some((digits, unit))
}

/// Parses a size in bytes: `4096`, `64K`, `512M`, `2G`, `1T` (binary units; the suffix may be lower case).
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let syntax = || SizeError::Syntax { input: input.to_owned() };
    let overflow = || SizeError::Overflow { input: input.to_owned() };
    let (digits, unit) = split_number(input).ok_or_else(syntax)?;
    // `digits` is non-empty ASCII digits, so the only possible parse error is overflow.
    let value = digits.parse::<u64>().map_err(|_| overflow())?;
    let multiplier = match unit {
        None => 1,
        Some(c) => SIZE_UNITS.iter().find(|(u, _)| u.eq_ignore_ascii_case(&c)).map(|(_, m)| *m).ok_or_else(syntax)?,
    };
    value.checked_mul(multiplier).ok_or_else(overflow)
}

/// Parses a duration: `120` (seconds), `120s`, `2m` or `1h`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax { input: input.to_owned() };
    let overflow = || DurationError::Overflow { input: input.to_owned() };
    let (digits, unit) = split_number(input).ok_or_else(syntax)?;
    // `digits` is non-empty ASCII digits, so the only possible parse error is overflow.
    let value = digits.parse::<u64>().map_err(|_| overflow())?;
    let seconds_per_unit = match unit {
        None => 1,
        Some(c) => DURATION_UNITS.iter().find(|(u, _)| *u == c).map(|(_, s)| *s).ok_or_else(syntax)?,
    };
    let seconds = value.checked_mul(seconds_per_unit).ok_or_else(overflow)?;
    if seconds == 0 {
        return Err(DurationError::Zero { input: input.to_owned() });
    }
    Ok(Duration::from_secs(seconds))
}

/// Renders a byte count for QEMU (`-m`, `size=`): with the largest binary suffix that divides it exactly, or with
/// QEMU's `B` (bytes) suffix. Always suffixed, since `-m 1024` would mean 1024 MiB.
pub fn qemu_size(bytes: u64) -> String {
    let unit = SIZE_UNITS.iter().rev().find(|(_, m)| bytes != 0 && bytes.is_multiple_of(*m));
    match unit {
        Some((u, m)) => format!("{}{u}", bytes / m),
        None => format!("{bytes}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("512M"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("0001G"), Ok(1 << 30));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn rejects_bad_sizes() {
        for bad in ["", "G", "1.5G", "-1G", "1 G", "1GB", "1GiB", "1X", " 1G", "1G ", "0x10", "+1"] {
            assert_eq!(parse_size(bad), Err(SizeError::Syntax { input: bad.to_owned() }), "{bad:?}");
        }
    }

    #[test]
    fn rejects_overflowing_sizes() {
        for bad in ["18446744073709551616", "99999999999999999999999", "16777216T", "17179869184G"] {
            assert_eq!(parse_size(bad), Err(SizeError::Overflow { input: bad.to_owned() }), "{bad:?}");
        }
        // The largest exact multiple still fits.
        assert_eq!(parse_size("16777215T"), Ok(16_777_215 << 40));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("120"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("007s"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in ["", "s", "1.5s", "-1", "2M", "2 m", "1d", "2ms", "1m30s", "PT2M"] {
            assert_eq!(parse_duration(bad), Err(DurationError::Syntax { input: bad.to_owned() }), "{bad:?}");
        }
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero { input: "0s".into() }));
        assert_eq!(parse_duration("0"), Err(DurationError::Zero { input: "0".into() }));
        for bad in ["18446744073709551616", "307445734561825861m", "5124095576030432h"] {
            assert_eq!(parse_duration(bad), Err(DurationError::Overflow { input: bad.to_owned() }), "{bad:?}");
        }
    }

    #[test]
    fn qemu_sizes_always_carry_a_suffix() {
        assert_eq!(qemu_size(1 << 30), "1G");
        assert_eq!(qemu_size(3 << 29), "1536M");
        assert_eq!(qemu_size(4 << 40), "4T");
        assert_eq!(qemu_size(4096), "4K");
        assert_eq!(qemu_size(1000), "1000B");
        assert_eq!(qemu_size(0), "0B");
    }

    #[test]
    fn qemu_sizes_round_trip() {
        for bytes in [1u64, 1023, 1024, 1 << 20, (1 << 30) + (1 << 20), 7 << 40] {
            let text = qemu_size(bytes);
            let parsed = parse_size(text.trim_end_matches('B')).unwrap();
            assert_eq!(parsed, bytes, "{text}");
        }
    }
}
