//! Property tests for the pure rules: host normalization, header-name equivalence, routing
//! never reaching a partner that was not declared for the host, and hash stability.

use std::net::IpAddr;
use std::path::Path;

use headwall_policy::{
    Decision, Folders, Policy, builtin_identity_headers, load, load_policy, normalize_header_name,
    normalize_host,
};
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../../../examples/headwall.toml");

const POLICY: &str = r#"
[gateway]
listen = "127.0.0.1:8080"
[[partner]]
name = "agecheck"
purpose = "age_verification"
hosts = ["verify.agecheck.test", "age.example.com"]
ports = [80, 8080]
destinations = ["127.0.0.2/32"]
headers = { "X-Age-Verified" = "age_verified" }
[[partner]]
name = "carrierpay"
purpose = "billing"
hosts = ["*.carrierpay.test", "*.pay.example.com"]
destinations = ["127.0.0.4/32", "10.4.0.0/16"]
headers = { "X-MSISDN" = "msisdn" }
[[partner]]
name = "selfcare"
purpose = "identification"
hosts = ["my.operator.test", "[2001:db8::5]", "192.0.2.5"]
destinations = ["2001:db8::/64", "192.0.2.5"]
headers = { "X-Operator-Token" = "token" }
"#;

fn policy() -> Policy {
    load("p.toml", POLICY, &Folders::both(Path::new(".")))
        .expect("test policy loads")
        .policy
}

/// Hosts built from labels that occur in the policy, so near misses are common.
fn near_miss_host() -> impl Strategy<Value = String> {
    let label = prop::sample::select(vec![
        "verify",
        "agecheck",
        "test",
        "age",
        "example",
        "com",
        "carrierpay",
        "xcarrierpay",
        "pay",
        "my",
        "operator",
        "www",
        "a",
        "b",
        "VERIFY",
        "Pay",
        "192",
        "0",
        "2",
        "5",
    ]);
    (
        prop::collection::vec(label, 1..6),
        any::<bool>(),
        prop::option::of(0u16..10000),
    )
        .prop_map(|(labels, trailing_dot, port)| {
            let mut host = labels.join(".");
            if trailing_dot {
                host.push('.');
            }
            if let Some(port) = port {
                host.push_str(&format!(":{port}"));
            }
            host
        })
}

fn any_host() -> impl Strategy<Value = String> {
    prop_oneof![
        near_miss_host(),
        "[a-zA-Z0-9._:\\[\\]*-]{0,40}",
        "\\PC{0,20}",
        any::<std::net::Ipv6Addr>().prop_map(|ip| format!("[{ip}]:443")),
        any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
    ]
}

proptest! {
    #[test]
    fn host_normalization_is_idempotent(host in any_host()) {
        if let Ok(normalized) = normalize_host(&host) {
            prop_assert_eq!(normalize_host(&normalized), Ok(normalized.clone()));
            prop_assert!(!normalized.ends_with('.'));
            prop_assert_eq!(normalized.to_ascii_lowercase(), normalized);
        }
    }

    #[test]
    fn listed_header_names_match_in_any_case_and_separator(
        index in any::<prop::sample::Index>(),
        flips in prop::collection::vec(any::<(bool, bool)>(), 64),
    ) {
        let names: Vec<&str> = builtin_identity_headers().collect();
        let name = names[index.index(names.len())];
        let variant: String = name
            .chars()
            .zip(flips.iter().cycle())
            .map(|(c, &(upper, underscore))| match c {
                '-' if underscore => '_',
                c if upper => c.to_ascii_uppercase(),
                c => c,
            })
            .collect();
        let empty = Policy::empty();
        prop_assert!(empty.strip().contains(&variant), "{}", variant);
        prop_assert_eq!(normalize_header_name(&variant), name);
        let with_partners = policy();
        prop_assert!(with_partners.strip().contains(&variant));
        prop_assert!(with_partners.strip().contains("x_operator_TOKEN"));
    }

    /// A host routes to a partner only if it is one of the partner's exact names or a strict
    /// subdomain of one of its wildcards, on one of its ports; and every such host does route.
    #[test]
    fn routing_matches_declared_hosts_only(
        raw in any_host(),
        port in prop::sample::select(vec![80u16, 443, 8080, 8081]),
        ip in prop::sample::select(vec!["127.0.0.2", "127.0.0.4", "10.4.9.9", "2001:db8::9", "192.0.2.5", "127.0.0.3"]),
    ) {
        let Ok(host) = normalize_host(&raw) else { return Ok(()) };
        let policy = policy();
        let declared: Vec<_> = policy
            .partners()
            .iter()
            .filter(|p| p.ports.contains(&port) && p.hosts.iter().any(|h| h.matches(&host)))
            .collect();
        prop_assert!(declared.len() <= 1, "validation forbids overlaps");
        let routed = policy.route(&host, port);
        prop_assert_eq!(routed, declared.first().copied(), "{}", host);
        let ip: IpAddr = ip.parse().unwrap();
        match policy.decide(&host, port, ip) {
            Decision::Disclose(p) => {
                prop_assert_eq!(Some(p), routed);
                prop_assert!(p.destinations.iter().any(|net| net.contains(&ip)));
            }
            Decision::Withhold(_) => {
                prop_assert!(routed.is_none_or(|p| !p.destinations.iter().any(|n| n.contains(&ip))));
            }
        }
    }

    /// Comments, blank lines, trailing whitespace and partner order do not change the hash.
    #[test]
    fn hash_ignores_layout_comments_and_partner_order(
        noise in prop::collection::vec((0u8..4, "[ \t]{0,3}", "[a-z ]{0,12}"), 200),
        order in Just((0..3usize).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let base = load_policy("e.toml", EXAMPLE).unwrap();
        let (head, partners) = split_partners(EXAMPLE);
        let mut reordered = head.to_owned();
        for i in &order {
            reordered.push_str(&partners[*i]);
        }
        let mut text = String::new();
        for (line, (kind, space, comment)) in reordered.lines().zip(noise.iter().cycle()) {
            match kind {
                0 => text.push_str(&format!("{line}\n")),
                1 => text.push_str(&format!("{line}{space}\n\n")),
                2 => text.push_str(&format!("# {comment}\n{line}\n")),
                _ => text.push_str(&format!("{space}{line}{space} # {comment}\n")),
            }
        }
        let shuffled = load_policy("e.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        prop_assert_eq!(shuffled.hash(), base.hash());
    }
}

/// The example up to its first `[[partner]]`, and each partner block.
fn split_partners(text: &str) -> (&str, Vec<String>) {
    let first = text.find("\n[[partner]]").expect("example has partners") + 1;
    let (head, rest) = text.split_at(first);
    let blocks = rest
        .split("[[partner]]")
        .filter(|b| !b.trim().is_empty())
        .map(|b| format!("[[partner]]{b}\n"))
        .collect();
    (head, blocks)
}

#[test]
fn hash_changes_with_the_policy() {
    let base = load_policy("e.toml", EXAMPLE).unwrap();
    let widened = EXAMPLE.replace("\"127.0.0.2/32\"", "\"127.0.0.0/24\"");
    assert_ne!(load_policy("e.toml", &widened).unwrap().hash(), base.hash());
    let renamed = EXAMPLE.replace(
        "\"X-Age-Verified\" = \"age_verified\", \"X-Subscriber-Id\"",
        "\"X-Age-Verified\" = \"age_verified\", \"X-Sub-Id\"",
    );
    assert_ne!(load_policy("e.toml", &renamed).unwrap().hash(), base.hash());
    assert!(
        base.hash()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
}

#[test]
fn decide_pins_destinations() {
    let policy = policy();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let name = |d: Decision<'_>| match d {
        Decision::Disclose(p) => p.name.clone(),
        Decision::Withhold(r) => r.as_str().to_owned(),
    };
    assert_eq!(
        name(policy.decide("verify.agecheck.test", 8080, ip("127.0.0.2"))),
        "agecheck"
    );
    assert_eq!(
        name(policy.decide("verify.agecheck.test", 443, ip("127.0.0.2"))),
        "no_partner"
    );
    assert_eq!(
        name(policy.decide("verify.agecheck.test", 80, ip("127.0.0.3"))),
        "pinning_mismatch"
    );
    // An IPv4-mapped IPv6 upstream address is the IPv4 address.
    assert_eq!(
        name(policy.decide("verify.agecheck.test", 80, ip("::ffff:127.0.0.2"))),
        "agecheck"
    );
    assert_eq!(
        name(policy.decide("a.b.pay.example.com", 80, ip("10.4.200.1"))),
        "carrierpay"
    );
    assert_eq!(
        name(policy.decide("pay.example.com", 80, ip("10.4.200.1"))),
        "no_partner"
    );
    assert_eq!(
        name(policy.decide("[2001:db8::5]", 80, ip("2001:db8::5"))),
        "selfcare"
    );
    assert_eq!(
        name(policy.decide("192.0.2.5", 80, ip("192.0.2.5"))),
        "selfcare"
    );
    assert_eq!(
        name(policy.decide("192.0.2.5", 80, ip("192.0.2.6"))),
        "pinning_mismatch"
    );
}
