//! Host-name normalization and partner host patterns.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::HostError;

/// Normalizes a host from a request (authority or `Host`) or from configuration.
///
/// - ASCII lowercase; one trailing dot dropped; a `:port` suffix removed.
/// - IPv6 literals, bracketed (`[2001:DB8::1]:80`) or bare (`2001:db8::1`), come out in their
///   canonical text form **inside brackets**: `[2001:db8::1]`, as in a URL authority.
/// - Rejected: empty names, non-ASCII (write IDNs as `xn--`), spaces, control characters and
///   anything else outside letters, digits, `-`, `_` and `.`; empty labels; labels over 63
///   characters; names over 253; a numeric last label that is not a dotted-quad IPv4 address
///   (so `127.1` or `0x7f.0.0.1` never pass as names).
///
/// The result is a fixed point: normalizing it again returns it unchanged.
pub fn normalize_host(host: &str) -> Result<String, HostError> {
    if host.is_empty() {
        return Err(HostError::Empty);
    }
    if !host.is_ascii() {
        return Err(HostError::NonAscii {
            host: host.to_owned(),
        });
    }
    if let Some(rest) = host.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return Err(HostError::InvalidIpv6 {
                host: host.to_owned(),
            });
        };
        if !after.is_empty() {
            match after.strip_prefix(':') {
                Some(port) => check_port(host, port)?,
                None => {
                    return Err(HostError::InvalidPort {
                        host: host.to_owned(),
                    });
                }
            }
        }
        let ip: Ipv6Addr = literal.parse().map_err(|_| HostError::InvalidIpv6 {
            host: host.to_owned(),
        })?;
        return Ok(format!("[{ip}]"));
    }
    let name = match host.bytes().filter(|&b| b == b':').count() {
        0 => host,
        1 => {
            let (name, port) = host.split_once(':').unwrap_or((host, ""));
            check_port(host, port)?;
            name
        }
        _ => {
            let ip: Ipv6Addr = host.parse().map_err(|_| HostError::InvalidIpv6 {
                host: host.to_owned(),
            })?;
            return Ok(format!("[{ip}]"));
        }
    };
    let mut name = name.to_ascii_lowercase();
    if name.ends_with('.') {
        name.pop();
    }
    check_dns_name(host, &name)?;
    Ok(name)
}

/// `port = *DIGIT` (RFC 3986 §3.2.3), so an empty port is allowed; a present one must fit u16.
fn check_port(host: &str, port: &str) -> Result<(), HostError> {
    if port.is_empty() {
        return Ok(());
    }
    if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
        return Err(HostError::InvalidPort {
            host: host.to_owned(),
        });
    }
    Ok(())
}

fn check_dns_name(host: &str, name: &str) -> Result<(), HostError> {
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.len() > 253 {
        return Err(HostError::TooLong {
            host: host.to_owned(),
        });
    }
    if let Some(ch) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
    {
        return Err(HostError::InvalidChar {
            host: host.to_owned(),
            ch,
        });
    }
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel {
                host: host.to_owned(),
            });
        }
        if label.len() > 63 {
            return Err(HostError::LabelTooLong {
                host: host.to_owned(),
            });
        }
        last = label;
    }
    // No top-level domain is numeric: a numeric last label means an IPv4 literal, and only the
    // unambiguous dotted-quad form is accepted.
    if last.bytes().all(|b| b.is_ascii_digit()) && name.parse::<Ipv4Addr>().is_err() {
        return Err(HostError::InvalidIpv4 {
            host: host.to_owned(),
        });
    }
    Ok(())
}

/// A partner host pattern from `hosts = [...]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// Exactly this normalized name (or IP literal).
    Exact(String),
    /// `*.parent`: any name ending in `.parent`, at any depth (`a.parent`, `a.b.parent`), never
    /// `parent` itself. The same rule as nginx's `server_name *.example.com`.
    Subdomains(String),
}

/// Why a host pattern in configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPatternError {
    /// Empty string.
    #[error("empty host pattern; write an exact name such as `www.example.com`")]
    Empty,
    /// A bare `*`.
    #[error("bare `*` host pattern would match every website; list exact names or `*.example.com`")]
    BareWildcard,
    /// `*.tld` with a single label after the star.
    #[error(
        "host pattern `{pattern}` would match every name under a top-level domain; \
         name the partner's own domain, e.g. `*.example.com`"
    )]
    TopLevelWildcard {
        /// The pattern as written.
        pattern: String,
    },
    /// A `*` anywhere except as the whole first label.
    #[error(
        "host pattern `{pattern}` puts `*` where it is not supported; `*` may only be the whole \
         first label, as in `*.example.com` (which matches subdomains, not `example.com` itself)"
    )]
    WildcardPlacement {
        /// The pattern as written.
        pattern: String,
    },
    /// Looks like a regular expression or glob.
    #[error(
        "host pattern `{pattern}` looks like a regular expression; host patterns are exact names \
         or `*.example.com`"
    )]
    Regex {
        /// The pattern as written.
        pattern: String,
    },
    /// A leading dot or a single label: looks like a substring or suffix match.
    #[error(
        "host pattern `{pattern}` looks like a substring or suffix; write fully qualified exact \
         names (`example.com`) and/or `*.example.com` for subdomains"
    )]
    Substring {
        /// The pattern as written.
        pattern: String,
    },
    /// Contains a port.
    #[error(
        "host pattern `{pattern}` contains a port; list host names in `hosts` and ports in `ports`"
    )]
    Port {
        /// The pattern as written.
        pattern: String,
    },
    /// A wildcard over an IP literal.
    #[error("host pattern `{pattern}` puts a wildcard over an IP address; list the address itself")]
    WildcardIp {
        /// The pattern as written.
        pattern: String,
    },
    /// Not a valid host name.
    #[error("invalid host pattern: {0}")]
    Host(#[from] HostError),
}

impl HostPattern {
    /// Parses and normalizes a pattern as written in configuration.
    ///
    /// Accepted: an exact fully qualified name or IP literal, or `*.` followed by a name of at
    /// least two labels. Rejected: empty, bare `*`, `*.tld`, any other `*`, regex or glob
    /// characters, leading dots and single-label names (substring-looking), ports, non-ASCII.
    pub fn parse(pattern: &str) -> Result<HostPattern, HostPatternError> {
        let owned = || pattern.to_owned();
        if pattern.is_empty() {
            return Err(HostPatternError::Empty);
        }
        if pattern == "*" {
            return Err(HostPatternError::BareWildcard);
        }
        if !pattern.is_ascii() {
            return Err(HostError::NonAscii { host: owned() }.into());
        }
        if pattern.contains(['^', '$', '(', ')', '{', '}', '|', '+', '?', '\\', '~', '/'])
            || (pattern.contains('[') && !pattern.starts_with('['))
        {
            return Err(HostPatternError::Regex { pattern: owned() });
        }
        if let Some(parent) = pattern.strip_prefix("*.") {
            if parent.contains('*') {
                return Err(HostPatternError::WildcardPlacement { pattern: owned() });
            }
            if parent.starts_with('[') || parent.contains(':') && parent.parse::<IpAddr>().is_ok() {
                return Err(HostPatternError::WildcardIp { pattern: owned() });
            }
            if parent.contains(':') {
                return Err(HostPatternError::Port { pattern: owned() });
            }
            let parent = normalize_host(parent)?;
            if parent.parse::<IpAddr>().is_ok() {
                return Err(HostPatternError::WildcardIp { pattern: owned() });
            }
            if !parent.contains('.') {
                return Err(HostPatternError::TopLevelWildcard { pattern: owned() });
            }
            return Ok(HostPattern::Subdomains(parent));
        }
        if pattern.contains('*') {
            return Err(HostPatternError::WildcardPlacement { pattern: owned() });
        }
        if pattern.starts_with('.') {
            return Err(HostPatternError::Substring { pattern: owned() });
        }
        let normalized = normalize_host(pattern)?;
        let has_port = if pattern.starts_with('[') {
            !pattern.ends_with(']')
        } else {
            pattern.bytes().filter(|&b| b == b':').count() == 1
        };
        if has_port {
            return Err(HostPatternError::Port { pattern: owned() });
        }
        if !normalized.contains('.') && !normalized.starts_with('[') {
            return Err(HostPatternError::Substring { pattern: owned() });
        }
        Ok(HostPattern::Exact(normalized))
    }

    /// Whether a normalized host matches: equality for [`HostPattern::Exact`]; for
    /// [`HostPattern::Subdomains`], ends in `.parent` with at least one more character before.
    pub fn matches(&self, normalized_host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => normalized_host == name,
            HostPattern::Subdomains(parent) => is_strict_subdomain(normalized_host, parent),
        }
    }

    /// The pattern as it is written in configuration: `www.example.com` or `*.example.com`.
    pub fn as_config_str(&self) -> String {
        match self {
            HostPattern::Exact(name) => name.clone(),
            HostPattern::Subdomains(parent) => format!("*.{parent}"),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Subdomains(parent) => write!(f, "*.{parent}"),
        }
    }
}

impl std::str::FromStr for HostPattern {
    type Err = HostPatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostPattern::parse(s)
    }
}

/// `host` ends in `.parent` and has at least one character before that dot.
pub(crate) fn is_strict_subdomain(host: &str, parent: &str) -> bool {
    host.len() > parent.len() + 1
        && host.ends_with(parent)
        && host.as_bytes()[host.len() - parent.len() - 1] == b'.'
}

/// The proper label suffixes of a name, longest first: `a.b.c` gives `b.c`, then `c`.
pub(crate) fn parent_suffixes(host: &str) -> impl Iterator<Item = &str> {
    host.match_indices('.').map(move |(i, _)| &host[i + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        let cases = [
            ("Example.COM", "example.com"),
            ("example.com.", "example.com"),
            ("example.com:8080", "example.com"),
            ("example.com.:80", "example.com"),
            ("example.com:", "example.com"),
            ("127.0.0.1:80", "127.0.0.1"),
            ("[2001:DB8:0::1]:443", "[2001:db8::1]"),
            ("[::1]", "[::1]"),
            ("2001:db8::1", "[2001:db8::1]"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("_dmarc.example.com", "_dmarc.example.com"),
            ("localhost", "localhost"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_host(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            ".",
            "bücher.example",
            "exa mple.com",
            "example.com\r",
            "a..b",
            ".example.com",
            "example.com..",
            "ex*ample.com",
            "example.com:99999",
            "example.com:8a",
            "[::1",
            "[::1]x",
            "[nope]",
            "127.1",
            "0x7f.0.0.1",
            "1.2.3.4.5",
            "a:b:c",
            "a/b",
            "user@example.com",
        ] {
            assert!(normalize_host(bad).is_err(), "{bad:?}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(matches!(
            normalize_host(&long_label),
            Err(HostError::LabelTooLong { .. })
        ));
        let long_name = ["abcdefghi"; 26].join(".");
        assert!(matches!(
            normalize_host(&long_name),
            Err(HostError::TooLong { .. })
        ));
    }

    #[test]
    fn error_text_names_the_host() {
        let err = normalize_host("bücher.example").unwrap_err().to_string();
        assert_eq!(
            err,
            "host \"bücher.example\" is not ASCII; write internationalized names in their `xn--` \
             form"
        );
    }

    #[test]
    fn patterns() {
        assert_eq!(
            HostPattern::parse("*.Example.com.").unwrap(),
            HostPattern::Subdomains("example.com".into())
        );
        assert_eq!(
            HostPattern::parse("WWW.example.com").unwrap(),
            HostPattern::Exact("www.example.com".into())
        );
        assert_eq!(
            HostPattern::parse("127.0.0.1").unwrap(),
            HostPattern::Exact("127.0.0.1".into())
        );
        assert_eq!(
            HostPattern::parse("[::1]").unwrap(),
            HostPattern::Exact("[::1]".into())
        );
        let bad = [
            ("", "empty"),
            ("*", "bare"),
            ("*.com", "top-level"),
            ("*.com.", "top-level"),
            ("a.*.example.com", "`*` where"),
            ("*example.com", "`*` where"),
            ("example.*", "`*` where"),
            ("*.*.example.com", "`*` where"),
            ("**.example.com", "`*` where"),
            ("^www\\.example\\.com$", "regular expression"),
            (".*\\.example\\.com", "regular expression"),
            ("(a|b).example.com", "regular expression"),
            ("[a-z]+.example.com", "regular expression"),
            (".example.com", "substring"),
            ("example", "substring"),
            ("example.com:80", "port"),
            ("*.example.com:80", "port"),
            ("*.10.0.0.1", "IP"),
            ("bücher.example", "xn--"),
            ("exa mple.com", "not valid"),
        ];
        for (pattern, fragment) in bad {
            let err = HostPattern::parse(pattern).unwrap_err().to_string();
            assert!(err.contains(fragment), "{pattern:?}: {err}");
        }
    }

    #[test]
    fn wildcard_depth() {
        let p = HostPattern::parse("*.example.com").unwrap();
        assert!(p.matches("a.example.com"));
        assert!(p.matches("a.b.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("xexample.com"));
        assert!(!p.matches(".example.com"));
        assert!(!p.matches("example.com.evil.test"));
        assert_eq!(p.as_config_str(), "*.example.com");
        let e = HostPattern::parse("example.com").unwrap();
        assert!(e.matches("example.com"));
        assert!(!e.matches("a.example.com"));
    }

    #[test]
    fn suffixes() {
        let got: Vec<&str> = parent_suffixes("a.b.example.com").collect();
        assert_eq!(got, ["b.example.com", "example.com", "com"]);
        assert_eq!(parent_suffixes("localhost").count(), 0);
    }
}
