//! Audit timestamps: Unix milliseconds in the database, RFC 3339 (UTC) on every surface.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// `2026-11-26T02:19:46.123Z`.
pub fn format_rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Parses an RFC 3339 time (`2026-11-01T08:00:00Z`, `…+01:00`, fractional seconds allowed) or
/// a bare date (`2026-11-01`, midnight UTC) into Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not an RFC 3339 time; write e.g. 2026-11-01T08:00:00Z");
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = text.get(range).ok_or_else(bad)?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(bad());
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    if bytes.len() == 10 {
        return Ok(days * 86_400_000);
    }
    if bytes.len() < 20 || !matches!(bytes[10], b'T' | b't' | b' ') || bytes[13] != b':' {
        return Err(bad());
    }
    if bytes[16] != b':' {
        return Err(bad());
    }
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let mut scaled = 0i64;
        for (index, digit) in fraction.bytes().take(3).enumerate() {
            if index < digits {
                scaled = scaled * 10 + i64::from(digit - b'0');
            }
        }
        for _ in digits.min(3)..3 {
            scaled *= 10;
        }
        millis = scaled;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err(bad()),
            };
            if rest.len() != 6 || !rest.is_ascii() || rest.as_bytes()[3] != b':' {
                return Err(bad());
            }
            let hours: i64 = rest[1..3].parse().map_err(|_| bad())?;
            let minutes: i64 = rest[4..6].parse().map_err(|_| bad())?;
            if hours > 23 || minutes > 59 {
                return Err(bad());
            }
            sign * (hours * 60 + minutes)
        }
    };
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_795_659_809_123),
            "2026-11-26T02:23:29.123Z"
        );
        assert_eq!(
            parse_rfc3339("2026-11-26T02:23:29.123Z"),
            Ok(1_795_659_809_123)
        );
        assert_eq!(
            parse_rfc3339("2026-11-26T03:23:29.123+01:00"),
            Ok(1_795_659_809_123)
        );
        assert_eq!(parse_rfc3339("2026-11-26T02:23:29Z"), Ok(1_795_659_809_000));
        assert_eq!(
            parse_rfc3339("2026-11-26T02:23:29.1Z"),
            Ok(1_795_659_809_100)
        );
        assert_eq!(parse_rfc3339("2024-02-29"), Ok(1_709_164_800_000));
    }

    #[test]
    fn malformed_times_are_refused() {
        for text in [
            "",
            "2026",
            "2026-13-01",
            "2023-02-29",
            "2026-11-26T25:00:00Z",
            "2026-11-26T02:23:29",
            "2026-11-26T02:23:29+0100",
            "yesterday",
            "2026-11-26T02:23:29.Z",
            "2026-1-01",
        ] {
            assert!(parse_rfc3339(text).is_err(), "{text}");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ms in -62_135_596_800_000i64..253_402_300_799_999i64) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Ok(ms));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = parse_rfc3339(&text);
        }
    }
}
