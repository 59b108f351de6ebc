//! Subscriber identifiers: [`Msisdn`] and [`Imsi`], with redacting `Debug`/`Display`.

use std::fmt;

use crate::error::{FormatRejection, IdentityError};
use crate::redact::write_masked;

/// A subscriber's phone number in international digits (E.164 without the `+`): 6 to 15 ASCII
/// digits, no leading 0.
///
/// `Debug` and `Display` redact all but the last three digits (`msisdn:•••••••••123`). The raw
/// number is available only through [`Msisdn::expose_digits`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn(String);

impl Msisdn {
    /// The fewest digits accepted.
    pub const MIN_DIGITS: usize = 6;
    /// The most digits accepted (E.164 maximum).
    pub const MAX_DIGITS: usize = 15;

    /// Parses international digits, optionally prefixed by one `+`: `447700900123` or
    /// `+447700900123`.
    ///
    /// Rejects spaces, separators, letters, `00`-prefixed and national (leading 0) forms, and
    /// lengths outside 6..=15. The error never contains the input.
    pub fn parse(s: &str) -> Result<Msisdn, IdentityError> {
        let digits = s.strip_prefix('+').unwrap_or(s);
        check_digits(digits, Self::MIN_DIGITS, Self::MAX_DIGITS)
            .map_err(IdentityError::InvalidMsisdn)?;
        if digits.starts_with('0') {
            return Err(IdentityError::InvalidMsisdn(FormatRejection::LeadingZero));
        }
        Ok(Msisdn(digits.to_owned()))
    }

    /// The raw international digits, without `+`.
    ///
    /// This is the only way to get the number out. Use it only where the number is meant to
    /// leave: the header inserter and the audit writer.
    #[must_use]
    pub fn expose_digits(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Msisdn {
    type Err = IdentityError;

    /// Same as [`Msisdn::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Msisdn::parse(s)
    }
}

impl fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_masked(f, "msisdn", &self.0)
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_masked(f, "msisdn", &self.0)
    }
}

/// A subscriber's IMSI: exactly 14 or 15 ASCII digits.
///
/// Leading zeros are allowed (test networks use MCC 001). `Debug` and `Display` redact all but
/// the last three digits (`imsi:••••••••••••789`); the raw value comes out only through
/// [`Imsi::expose_digits`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Imsi(String);

impl Imsi {
    /// Parses exactly 14 or 15 ASCII digits; nothing else (no `+`, spaces or separators).
    /// The error never contains the input.
    pub fn parse(s: &str) -> Result<Imsi, IdentityError> {
        check_digits(s, 14, 15).map_err(IdentityError::InvalidImsi)?;
        Ok(Imsi(s.to_owned()))
    }

    /// The raw digits. The only way to get the IMSI out; use it only where it is meant to leave.
    #[must_use]
    pub fn expose_digits(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Imsi {
    type Err = IdentityError;

    /// Same as [`Imsi::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Imsi::parse(s)
    }
}

impl fmt::Debug for Imsi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_masked(f, "imsi", &self.0)
    }
}

impl fmt::Display for Imsi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_masked(f, "imsi", &self.0)
    }
}

/// Checks that `s` is only ASCII digits, `min..=max` of them.
fn check_digits(s: &str, min: usize, max: usize) -> Result<(), FormatRejection> {
    if s.is_empty() {
        return Err(FormatRejection::Empty);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FormatRejection::NotDigits);
    }
    if s.len() < min {
        return Err(FormatRejection::TooShort);
    }
    if s.len() > max {
        return Err(FormatRejection::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msisdn_accepts() {
        for (input, digits) in [
            ("447700900123", "447700900123"),
            ("+447700900123", "447700900123"),
            ("123456", "123456"),
            ("+123456", "123456"),
            ("123456789012345", "123456789012345"),
            ("+123456789012345", "123456789012345"),
            ("14155550100", "14155550100"),
        ] {
            let m = Msisdn::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(m.expose_digits(), digits);
        }
    }

    #[test]
    fn msisdn_rejects() {
        use FormatRejection::*;
        for (input, why) in [
            ("", Empty),
            ("+", Empty),
            ("++447700900123", NotDigits),
            ("44 7700 900123", NotDigits),
            (" 447700900123", NotDigits),
            ("447700900123 ", NotDigits),
            ("44-7700-900123", NotDigits),
            ("44770090012a", NotDigits),
            ("tel:447700900123", NotDigits),
            ("４４７７００９００１２３", NotDigits), // full-width digits are not ASCII digits
            ("447700900123+", NotDigits),
            ("00447700900123", LeadingZero),
            ("+00447700900123", LeadingZero),
            ("07700900123", LeadingZero),
            ("12345", TooShort),
            ("+12345", TooShort),
            ("1234567890123456", TooLong),
            ("+1234567890123456", TooLong),
        ] {
            assert_eq!(
                Msisdn::parse(input),
                Err(IdentityError::InvalidMsisdn(why)),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn msisdn_error_does_not_echo_input() {
        for input in [
            "4477009001234567",
            "44770090012a",
            "00447700900123",
            "447 700900123",
        ] {
            let err = Msisdn::parse(input).expect_err("must reject");
            let text = format!("{err} {err:?}");
            assert!(!text.contains("4477"), "{text}");
            assert!(!text.contains("7700"), "{text}");
            assert!(!text.contains("900"), "{text}");
        }
    }

    #[test]
    fn msisdn_redacts() {
        let m = Msisdn::parse("447700900123").expect("valid");
        assert_eq!(m.to_string(), "msisdn:•••••••••123");
        assert_eq!(format!("{m:?}"), "msisdn:•••••••••123");
        assert_eq!(format!("{:?}", Some(&m)), "Some(msisdn:•••••••••123)");
        for shown in [m.to_string(), format!("{m:?}"), format!("{m:#?}")] {
            assert!(!shown.contains("447700900123"));
            assert!(!shown.contains("4477"));
        }
    }

    #[test]
    fn msisdn_equality_ignores_plus() {
        let a = Msisdn::parse("447700900123").expect("valid");
        let b = Msisdn::parse("+447700900123").expect("valid");
        assert_eq!(a, b);
        let mut set = std::collections::HashSet::new();
        set.insert(a);
        assert!(set.contains(&b));
    }

    #[test]
    fn from_str_matches_parse() {
        let m: Msisdn = "+447700900123".parse().expect("valid");
        assert_eq!(m, Msisdn::parse("447700900123").expect("valid"));
        assert!("0447700900123".parse::<Msisdn>().is_err());
        let i: Imsi = "234150999999999".parse().expect("valid");
        assert_eq!(i.expose_digits(), "234150999999999");
    }

    #[test]
    fn imsi_accepts() {
        for input in ["234150999999999", "00101012345678", "001010123456789"] {
            let i = Imsi::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(i.expose_digits(), input);
        }
    }

    #[test]
    fn imsi_rejects() {
        use FormatRejection::*;
        for (input, why) in [
            ("", Empty),
            ("+234150999999999", NotDigits),
            ("23415099999999a", NotDigits),
            ("234 150999999999", NotDigits),
            ("2341509999999", TooShort),
            ("2341509999999999", TooLong),
        ] {
            assert_eq!(
                Imsi::parse(input),
                Err(IdentityError::InvalidImsi(why)),
                "input {input:?}"
            );
        }
        let err = Imsi::parse("23415099999999x").expect_err("must reject");
        assert!(!format!("{err} {err:?}").contains("234150"));
    }

    #[test]
    fn imsi_redacts() {
        let i = Imsi::parse("234150999999789").expect("valid");
        assert_eq!(i.to_string(), "imsi:••••••••••••789");
        assert_eq!(format!("{i:?}"), "imsi:••••••••••••789");
        assert!(!format!("{i:#?}").contains("234150"));
    }
}
