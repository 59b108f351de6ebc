//! Durations written as `<integer><unit>`.

use std::time::Duration;

const FORMS: &str = "expected an integer followed by a unit (ms, s, m, h or d), \
                     e.g. \"500ms\", \"30s\", \"5m\", \"2h\", \"400d\"";

/// Parses `<integer><unit>` with unit `ms`, `s`, `m`, `h` or `d` (for example `30s`, `400d`).
///
/// No spaces, signs, fractions or compound forms. The error text lists the accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let digits_end = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() {
        return Err(FORMS.to_owned());
    }
    let value: u64 = number
        .parse()
        .map_err(|_| format!("number too large; {FORMS}"))?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(FORMS.to_owned()),
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration too large; {FORMS}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(
            parse_duration("400d"),
            Ok(Duration::from_secs(400 * 86_400))
        );
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects() {
        for bad in [
            "", "s", "5", "5 s", " 5s", "5S", "1.5s", "-1s", "5sec", "1h30m", "+5s",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("ms, s, m, h or d"), "{bad}: {err}");
        }
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("999999999999999999d").is_err());
    }
}
