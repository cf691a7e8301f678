//! Timestamps in spec lines: RFC 3339 dates, or seconds since the epoch with
//! optional nanoseconds.

use crate::Timestamp;

const NANOS_PER_SEC: u32 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;
/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const EPOCH_DAYS: i64 = 719_468;
/// Days in a 400-year cycle of the Gregorian calendar.
const DAYS_PER_ERA: i64 = 146_097;

/// Parses `2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.25+02:00`, `1714564800`
/// or `-1.5` (half a second before 1969-12-31T23:59:59).
pub(super) fn parse(text: &str) -> Result<Timestamp, String> {
    let looks_numeric = text
        .strip_prefix('-')
        .unwrap_or(text)
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.');
    let parsed = if looks_numeric {
        seconds(text)
    } else {
        rfc3339(text)
    };
    parsed.ok_or_else(|| {
        format!(
            "`{text}` is not a time (RFC 3339 like 2024-05-01T12:00:00Z, or seconds like 1714564800.5)"
        )
    })
}

/// `[-]SECS[.FRACTION]`.
fn seconds(text: &str) -> Option<Timestamp> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    let secs = digits(whole)?;
    let nanos = match fraction {
        Some(f) => nanos(f)?,
        None => 0,
    };
    let secs = i64::try_from(secs).ok()?;
    if !negative {
        return Some(Timestamp { secs, nanos });
    }
    // -1.25 is 1.75 seconds after -3: the seconds round down, the
    // nanoseconds count up from there.
    Some(match nanos {
        0 => Timestamp { secs: -secs, nanos },
        _ => Timestamp {
            secs: -secs - 1,
            nanos: NANOS_PER_SEC - nanos,
        },
    })
}

/// A non-empty run of decimal digits.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// One to nine fraction digits as nanoseconds.
fn nanos(fraction: &str) -> Option<u32> {
    if fraction.len() > 9 {
        return None;
    }
    let value = u32::try_from(digits(fraction)?).ok()?;
    Some(value * 10u32.pow(9 - fraction.len() as u32))
}

/// `YYYY-MM-DDTHH:MM:SS[.FRACTION](Z|+HH:MM|-HH:MM)`.
fn rfc3339(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    // The first 19 bytes are ASCII, so the splits below fall on characters.
    if b.len() < 20 || !b[..19].is_ascii() || !(b[10] == b'T' || b[10] == b't') {
        return None;
    }
    let (date, rest) = text.split_at(10);
    let (clock, zone) = rest[1..].split_at(8);
    let day = civil_days(date)?;
    let secs_of_day = clock_secs(clock)?;
    let (nanos, zone) = match zone.strip_prefix('.') {
        Some(frac) => {
            let end = frac.find(|c: char| !c.is_ascii_digit())?;
            (nanos(&frac[..end])?, &frac[end..])
        }
        None => (0, zone),
    };
    let offset = zone_offset(zone)?;
    Some(Timestamp {
        secs: day * SECS_PER_DAY + secs_of_day - offset,
        nanos,
    })
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
fn civil_days(date: &str) -> Option<i64> {
    let mut parts = date.split('-');
    let year = fixed(parts.next()?, 4)?;
    let month = fixed(parts.next()?, 2)?;
    let day = fixed(parts.next()?, 2)?;
    if parts.next().is_some() {
        return None;
    }
    days_from_civil(year, month, day)
}

/// Days since 1970-01-01 of the proleptic Gregorian date `year-month-day`,
/// `None` if there is no such day: [`civil_from_days`] the other way. For
/// the dates that inputs give (spec times, FAT directory entries).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // Count from March, so the leap day ends a year (Hinnant's civil-day
    // arithmetic).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * DAYS_PER_ERA + day_of_era - EPOCH_DAYS)
}

/// The proleptic Gregorian `(year, month, day)` of a day count since
/// 1970-01-01: `civil_days` the other way (Hinnant's era arithmetic,
/// years counted from March so the leap day ends one). For the dates that
/// outputs print or store (`kiln info`, FAT directory entries).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + EPOCH_DAYS;
    let era = z.div_euclid(DAYS_PER_ERA);
    let day_of_era = z.rem_euclid(DAYS_PER_ERA);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Seconds into the day of `HH:MM:SS` (no leap second: the tree cannot
/// hold one).
fn clock_secs(clock: &str) -> Option<i64> {
    let mut parts = clock.split(':');
    let h = fixed(parts.next()?, 2)?;
    let m = fixed(parts.next()?, 2)?;
    let s = fixed(parts.next()?, 2)?;
    (parts.next().is_none() && h < 24 && m < 60 && s < 60).then_some(h * 3600 + m * 60 + s)
}

/// Seconds east of UTC of `Z`, `+HH:MM` or `-HH:MM`.
fn zone_offset(zone: &str) -> Option<i64> {
    if zone == "Z" || zone == "z" {
        return Some(0);
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = zone[1..].split_once(':')?;
    let (h, m) = (fixed(h, 2)?, fixed(m, 2)?);
    (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// Exactly `width` decimal digits.
fn fixed(text: &str, width: usize) -> Option<i64> {
    if text.len() != width {
        return None;
    }
    i64::try_from(digits(text)?).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_from_days_inverts_civil_days() {
        for days in (-700_000..2_000_000).step_by(97) {
            let (y, m, d) = super::civil_from_days(days);
            let date = format!("{y:04}-{m:02}-{d:02}");
            assert_eq!(super::civil_days(&date), Some(days), "{date}");
        }
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }

    use super::*;

    fn t(secs: i64, nanos: u32) -> Timestamp {
        Timestamp { secs, nanos }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Ok(t(0, 0)));
        assert_eq!(parse("2024-05-01T12:00:00Z"), Ok(t(1_714_564_800, 0)));
        assert_eq!(
            parse("2024-05-01T14:00:00.25+02:00"),
            Ok(t(1_714_564_800, 250_000_000))
        );
        assert_eq!(parse("2000-02-29t00:00:00z"), Ok(t(951_782_400, 0)));
        assert_eq!(parse("1969-12-31T23:59:59-00:00"), Ok(t(-1, 0)));
        assert_eq!(parse("1901-12-13T20:45:52Z"), Ok(t(-2_147_483_648, 0)));
        assert_eq!(
            parse("9999-12-31T23:59:59.999999999Z"),
            Ok(t(253_402_300_799, 999_999_999))
        );
    }

    #[test]
    fn seconds_since_the_epoch() {
        assert_eq!(parse("1714564800"), Ok(t(1_714_564_800, 0)));
        assert_eq!(parse("1.5"), Ok(t(1, 500_000_000)));
        assert_eq!(parse("-1.25"), Ok(t(-2, 750_000_000)));
        assert_eq!(parse("-3"), Ok(t(-3, 0)));
        assert_eq!(parse("0.000000001"), Ok(t(0, 1)));
    }

    #[test]
    fn refuses_bad_times() {
        for bad in [
            "",
            "-",
            "1.",
            ".5",
            "1.0000000001",
            "99999999999999999999",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:59:60Z",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00+0200",
            "2024-01-01T00:00:00.Z",
            "2024-1-01T00:00:00Z",
            "+2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00Zjunk",
            "2024-01-01T00:00:00+02:00:00",
            "1e9",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
