//! RFC 3339 times (`2025-06-01T12:00:00Z`, `...+02:00`, fractions dropped) as seconds since the Unix epoch: the
//! `--now` of evidence checks. The only clock reading is in the CLI, when `--now` is not given.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

/// Parses an RFC 3339 date-time with a `Z` or `±HH:MM` offset into seconds since 1970-01-01T00:00:00Z.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let t = text.trim();
    let (date, rest) = t.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (year, month, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    if d.next().is_some() {
        return None;
    }
    let (clock, offset) = split_offset(rest)?;
    let mut c = clock.split(':');
    let (hour, minute) = (num(c.next()?, 2)?, num(c.next()?, 2)?);
    let second_text = c.next()?;
    if c.next().is_some() {
        return None;
    }
    let second = num(second_text.split('.').next()?, 2)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let local = days.checked_mul(86_400)? + i64::from(hour * 3600 + minute * 60 + second);
    u64::try_from(local.checked_sub(offset)?).ok()
}

fn num(text: &str, width: usize) -> Option<u32> {
    (text.len() == width && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
}

/// Splits `HH:MM:SS[.frac](Z|±HH:MM)` into the clock and the offset in seconds.
fn split_offset(rest: &str) -> Option<(&str, i64)> {
    if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    let at = rest.rfind(['+', '-'])?;
    let (clock, offset) = rest.split_at(at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let (h, m) = offset.get(1..)?.split_once(':')?;
    let seconds = i64::from(num(h, 2)?) * 3600 + i64::from(num(m, 2)?) * 60;
    Some((clock, sign * seconds))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: u32, month: u32, day: u32) -> Option<i64> {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00Z"), Some(1_767_225_600));
        assert_eq!(parse_rfc3339("2024-02-29T12:30:15.25Z"), Some(1_709_209_815));
        assert_eq!(parse_rfc3339("2026-01-01T02:00:00+02:00"), Some(1_767_225_600));
        assert_eq!(parse_rfc3339("2025-12-31T19:00:00-05:00"), Some(1_767_225_600));
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "",
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "26-01-01T00:00:00Z",
            "2026-01-01T00:00:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
