//! Error types: configuration errors with positions, and host-name errors.

use std::fmt;

/// One problem in a configuration file, with the position of the offending value.
///
/// Displays as `file:line:column: message`; line and column are 1-based, the column counted in
/// characters. The message says what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration file, sorted by position; never empty.
///
/// A TOML syntax or type error stops parsing, so it is reported alone; semantic errors are all
/// collected. Displays one error per line.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors, sorted by line and column.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Why a host name (from a request or from configuration) was rejected.
///
/// Messages quote the host (escaped) and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Nothing left after removing the port and trailing dot.
    #[error("empty host name")]
    Empty,
    /// Contains a byte outside ASCII.
    #[error("host {host:?} is not ASCII; write internationalized names in their `xn--` form")]
    NonAscii {
        /// The host as given.
        host: String,
    },
    /// Contains a character not valid in a DNS name or IP literal.
    #[error(
        "host {host:?} contains {ch:?}, which is not valid in a host name \
         (letters, digits, `-`, `_` and `.` only)"
    )]
    InvalidChar {
        /// The host as given.
        host: String,
        /// The first offending character.
        ch: char,
    },
    /// Two dots in a row, or a leading dot.
    #[error("host {host:?} has an empty label (`..` or a leading `.`)")]
    EmptyLabel {
        /// The host as given.
        host: String,
    },
    /// A label longer than 63 characters.
    #[error("host {host:?} has a label longer than 63 characters")]
    LabelTooLong {
        /// The host as given.
        host: String,
    },
    /// A name longer than 253 characters.
    #[error("host {host:?} is longer than 253 characters")]
    TooLong {
        /// The host as given.
        host: String,
    },
    /// The part after `:` is not a port number.
    #[error("host {host:?} has an invalid port; expected `name:1-65535`")]
    InvalidPort {
        /// The host as given.
        host: String,
    },
    /// A bracketed or multi-colon literal that is not an IPv6 address.
    #[error("host {host:?} is not a valid IPv6 literal; write it as `[2001:db8::1]`")]
    InvalidIpv6 {
        /// The host as given.
        host: String,
    },
    /// A name whose last label is numeric but which is not a dotted-quad IPv4 address.
    #[error(
        "host {host:?} ends in a numeric label but is not an IPv4 address; \
         write IPv4 addresses as four decimal numbers, e.g. `192.0.2.1`"
    )]
    InvalidIpv4 {
        /// The host as given.
        host: String,
    },
}
