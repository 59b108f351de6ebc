//! `host`: `headwall_policy::normalize_host` and `HostPattern` (crates/headwall-policy/src/host.rs).
//!
//! Input: UTF-8 text `PATTERN\nHOST` (without a newline, the text is both). Checked, as the
//! module documents them: no panic; an accepted host is a fixed point of `normalize_host`,
//! lowercase, without a trailing dot, either a bracketed IPv6 literal in canonical form or a
//! name of letters, digits, `-`, `_` and `.` with non-empty labels of at most 63 characters,
//! at most 253 in all, whose numeric last label means a dotted-quad IPv4 address; a parsed
//! pattern displays as `as_config_str`, parses back from it to itself, is the normalized
//! pattern text, and matches its own names (`Exact`: the name; `*.parent`: `x.parent` and
//! `x.y.parent`, never `parent`); `matches` on a normalized host is equality for `Exact` and
//! "ends in `.parent` with more before it" for `Subdomains`; and the compiled policy's hash
//! index agrees: a one-partner policy with `hosts = [PATTERN]` loads exactly when the pattern
//! parses, and routes (and discloses to) a normalized host exactly when the pattern matches it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use headwall_policy::{Decision, HostPattern, load_policy, normalize_host};

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern_text, host_text) = text.split_once('\n').unwrap_or((text, text));
    let host = normalize_host(host_text);
    if let Ok(host) = &host {
        check_normalized(host_text, host);
    }
    if let Ok(own) = normalize_host(pattern_text) {
        check_normalized(pattern_text, &own);
    }
    let pattern = HostPattern::parse(pattern_text);
    if let Ok(pattern) = &pattern {
        check_pattern(pattern_text, pattern);
        if let Ok(host) = &host {
            let expected = match pattern {
                HostPattern::Exact(name) => host == name,
                HostPattern::Subdomains(parent) => {
                    host.len() > parent.len() + 1 && host.ends_with(&format!(".{parent}"))
                }
            };
            assert_eq!(
                pattern.matches(host),
                expected,
                "{pattern:?}.matches({host:?}) disagrees with the documented rule"
            );
        }
    }
    check_routing(pattern_text, pattern.is_ok(), host.as_ref().ok());
}

fn check_normalized(input: &str, host: &str) {
    assert_eq!(
        normalize_host(host).as_deref(),
        Ok(host),
        "normalize_host({input:?}) = {host:?} is not a fixed point"
    );
    assert_eq!(host.to_ascii_lowercase(), host, "{host:?} is not lowercase");
    assert!(!host.ends_with('.'), "{host:?} keeps a trailing dot");
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .unwrap_or_else(|| panic!("{host:?} opens a bracket it does not close"));
        let ip: Ipv6Addr = inner
            .parse()
            .unwrap_or_else(|_| panic!("{host:?} is bracketed but not IPv6"));
        assert_eq!(ip.to_string(), inner, "{host:?} is not canonical IPv6 text");
        return;
    }
    assert!(host.len() <= 253, "{host:?} is longer than 253");
    assert!(
        host.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)),
        "{host:?} has a character outside [a-z0-9-_.]"
    );
    let labels: Vec<&str> = host.split('.').collect();
    assert!(
        labels.iter().all(|l| !l.is_empty() && l.len() <= 63),
        "{host:?} has an empty or over-long label"
    );
    let last = labels.last().copied().unwrap_or_default();
    if last.bytes().all(|b| b.is_ascii_digit()) {
        assert!(
            host.parse::<Ipv4Addr>().is_ok(),
            "{host:?} ends in a numeric label but is not a dotted quad"
        );
    }
}

fn check_pattern(text: &str, pattern: &HostPattern) {
    let written = pattern.as_config_str();
    assert_eq!(
        pattern.to_string(),
        written,
        "Display differs from as_config_str"
    );
    assert_eq!(
        HostPattern::parse(&written).as_ref(),
        Ok(pattern),
        "{written:?} (from {text:?}) does not parse back to {pattern:?}"
    );
    match pattern {
        HostPattern::Exact(name) => {
            assert_eq!(normalize_host(text).as_deref(), Ok(name.as_str()));
            assert!(
                name.contains('.') || name.starts_with('['),
                "single-label exact pattern {name:?}"
            );
            assert!(
                pattern.matches(name),
                "{pattern:?} does not match its own name"
            );
        }
        HostPattern::Subdomains(parent) => {
            let rest = text
                .strip_prefix("*.")
                .unwrap_or_else(|| panic!("{text:?} became a wildcard without `*.`"));
            assert_eq!(normalize_host(rest).as_deref(), Ok(parent.as_str()));
            assert!(
                parent.contains('.'),
                "wildcard over a top-level domain: {parent:?}"
            );
            assert!(
                parent.parse::<IpAddr>().is_err(),
                "wildcard over an address: {parent:?}"
            );
            assert!(pattern.matches(&format!("x.{parent}")));
            assert!(pattern.matches(&format!("x.y.{parent}")));
            assert!(!pattern.matches(parent), "{pattern:?} matches its parent");
        }
    }
}

/// A one-partner policy whose only host pattern is `pattern_text`.
fn policy_text(pattern_text: &str) -> String {
    format!(
        "[[partner]]\nname = \"p\"\npurpose = \"age_verification\"\nhosts = [{}]\n\
         ports = [80]\ndestinations = [\"192.0.2.10\"]\nheaders = {{ \"X-Id\" = \"pseudonym\" }}\n",
        toml_string(pattern_text)
    )
}

/// A TOML basic string holding exactly `value`.
pub fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn check_routing(pattern_text: &str, parses: bool, host: Option<&String>) {
    let text = policy_text(pattern_text);
    let policy = load_policy("host.toml", &text);
    assert_eq!(
        policy.is_ok(),
        parses,
        "a policy with hosts = [{pattern_text:?}] {} though HostPattern::parse {}",
        if policy.is_ok() { "loads" } else { "fails" },
        if parses { "accepts it" } else { "rejects it" }
    );
    let (Ok(policy), Some(host)) = (policy, host) else {
        return;
    };
    let partner = &policy.partners()[0];
    let matches = partner.hosts.iter().any(|p| p.matches(host));
    assert_eq!(
        policy.route(host, 80).is_some(),
        matches,
        "route({host:?}, 80) disagrees with {:?}.matches",
        partner.hosts
    );
    assert!(
        policy.route(host, 81).is_none(),
        "routed on a port not listed"
    );
    let destination: IpAddr = Ipv4Addr::new(192, 0, 2, 10).into();
    let disclosed = matches!(policy.decide(host, 80, destination), Decision::Disclose(_));
    assert_eq!(
        disclosed, matches,
        "decide disagrees with route for {host:?}"
    );
}
