//! The repository's `examples/headwall.toml` loads, and rejects an unknown key in every table.

use std::path::Path;

use headwall_policy::{AuditBackend, Decision, Folders, SessionsBackend, WithholdReason, load};

const EXAMPLE: &str = include_str!("../../../../examples/headwall.toml");

#[test]
fn example_loads() {
    let config = load(
        "examples/headwall.toml",
        EXAMPLE,
        &Folders::both(Path::new("/etc/headwall")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.gateway.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.gateway.hosts.len(), 4);
    assert_eq!(
        config.admin.token_file,
        Path::new("/etc/headwall/state/admin.token")
    );
    let radius = config.radius.as_ref().unwrap();
    assert_eq!(radius.clients.len(), 1);
    assert_eq!(
        format!("{:?}", radius.clients[0].secret),
        "Inline(<redacted>)"
    );
    assert!(!format!("{config:?}").contains("testing123"));
    assert!(matches!(
        config.sessions.backend,
        SessionsBackend::Embedded { .. }
    ));
    assert!(matches!(
        config.audit.backend,
        AuditBackend::Embedded { .. }
    ));
    assert_eq!(config.identity.issuer, "headwall.example-operator");
    assert_eq!(config.canary.as_ref().unwrap().msisdn, "447700900000");
    let policy = &config.policy;
    assert_eq!(policy.partners().len(), 3);
    assert!(policy.strip().contains("x_operator_subscriber"));
    assert!(policy.strip().contains("X-Billing-Token"));
    let ip = |s: &str| s.parse().unwrap();
    assert!(matches!(
        policy.decide("verify.agecheck.test", 80, ip("127.0.0.2")),
        Decision::Disclose(p) if p.name == "agecheck"
    ));
    assert!(matches!(
        policy.decide("a.b.pay.carrierpay.test", 8080, ip("127.0.0.4")),
        Decision::Disclose(p) if p.name == "carrierpay"
    ));
    assert_eq!(
        policy.decide("carrierpay.test", 80, ip("127.0.0.4")),
        Decision::Withhold(WithholdReason::NoPartner)
    );
    assert_eq!(
        policy.decide("verify.agecheck.test", 80, ip("127.0.0.3")),
        Decision::Withhold(WithholdReason::PinningMismatch)
    );
    // What CONNECT refuses: a partner's address on a partner's port, by address alone
    // (IPv4-mapped IPv6 included); other ports and addresses are not partners.
    let at = |s: &str| {
        policy
            .partner_at(s.parse().unwrap())
            .map(|p| p.name.as_str())
    };
    assert_eq!(at("127.0.0.2:80"), Some("agecheck"));
    assert_eq!(at("[::ffff:127.0.0.4]:8080"), Some("carrierpay"));
    assert_eq!(at("127.0.0.2:443"), None);
    assert_eq!(at("127.0.0.3:80"), None);
}

/// hickory-dns's `test_reject_unknown_fields`: an unknown key after every table header fails on
/// that line.
#[test]
fn unknown_key_in_every_table_fails_on_its_line() {
    let lines: Vec<&str> = EXAMPLE.lines().collect();
    let mut tables = 0;
    for (index, line) in lines.iter().enumerate() {
        let header = line.split('#').next().unwrap().trim();
        if !header.starts_with('[') || header == "[gateway.hosts]" {
            continue;
        }
        tables += 1;
        let mut edited: Vec<&str> = lines.clone();
        edited.insert(index + 1, "bogus_key = 1");
        let text = edited.join("\n");
        let errors = load("ex.toml", &text, &Folders::both(Path::new(".")))
            .expect_err(header)
            .0;
        assert_eq!(errors.len(), 1, "{header}: {errors:?}");
        let error = &errors[0];
        assert_eq!(
            (error.line, error.column),
            (index + 2, 1),
            "{header}: {error}"
        );
        let table = header.trim_start_matches('[').trim_end_matches(']');
        assert!(
            error.message.starts_with("unknown key `bogus_key` in ["),
            "{header}: {error}"
        );
        assert!(error.message.contains(table), "{header}: {error}");
    }
    // gateway, admin, radius, its client, sessions, subscribers, audit, identity, strip,
    // canary, 3 partners
    assert_eq!(tables, 13);
}
