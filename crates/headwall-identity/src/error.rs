//! Errors of this crate; none of them ever carries subscriber data or key material.

/// Why a subscriber identifier was rejected. Carries no part of the rejected input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FormatRejection {
    /// The input was empty (or only a `+`).
    Empty,
    /// The input contained something other than ASCII digits (after an allowed leading `+`).
    NotDigits,
    /// Fewer digits than the format allows.
    TooShort,
    /// More digits than the format allows.
    TooLong,
    /// The number began with `0`: national or `00`-prefixed forms are not international digits.
    LeadingZero,
}

impl FormatRejection {
    /// A stable, lowercase label for metrics and logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::NotDigits => "not_digits",
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::LeadingZero => "leading_zero",
        }
    }

    const fn describe(self) -> &'static str {
        match self {
            Self::Empty => "it is empty",
            Self::NotDigits => "it contains characters other than digits",
            Self::TooShort => "it has too few digits",
            Self::TooLong => "it has too many digits",
            Self::LeadingZero => "it starts with 0 (national or 00-prefixed form)",
        }
    }
}

impl std::fmt::Display for FormatRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// Everything that can go wrong in this crate.
///
/// Messages say what is wrong and what is expected, never the offending value: inputs here are
/// phone numbers and keys.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// Not an MSISDN in international digits (6 to 15 digits, optional leading `+`, no leading 0).
    #[error(
        "invalid MSISDN: {0}; expected 6 to 15 international digits, optionally prefixed by +, \
         without a leading 0"
    )]
    InvalidMsisdn(FormatRejection),
    /// Not an IMSI (exactly 14 or 15 digits).
    #[error("invalid IMSI: {0}; expected exactly 14 or 15 digits")]
    InvalidImsi(FormatRejection),
    /// Key bytes of the wrong length were given.
    #[error("invalid {what}: expected {expected} bytes, got {actual}")]
    KeyLength {
        /// Which key, e.g. "pseudonym key".
        what: &'static str,
        /// The required length in bytes.
        expected: usize,
        /// The length that was given.
        actual: usize,
    },
    /// A key file did not hold exactly 43 base64url characters (after trimming whitespace).
    #[error(
        "invalid key file: expected {expected} base64url characters (32 bytes, no padding), \
         found {actual} characters"
    )]
    KeyFileLength {
        /// The required number of characters.
        expected: usize,
        /// The number of characters found after trimming whitespace.
        actual: usize,
    },
    /// A key file had the right length but was not valid unpadded base64url.
    #[error(
        "invalid key file: not valid base64url without padding (alphabet A-Z a-z 0-9 - _); \
         regenerate it with `headwall keygen`"
    )]
    KeyFileEncoding,
}

impl IdentityError {
    /// A stable, lowercase label for metrics and logs.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::InvalidMsisdn(_) => "invalid_msisdn",
            Self::InvalidImsi(_) => "invalid_imsi",
            Self::KeyLength { .. } => "key_length",
            Self::KeyFileLength { .. } => "key_file_length",
            Self::KeyFileEncoding => "key_file_encoding",
        }
    }
}
