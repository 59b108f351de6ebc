//! Partners get exactly their configured headers, with correct values, once; nobody else does.

use std::time::Duration;

use base64::Engine as _;
use headwall_identity::{Msisdn, PseudonymKey};

use crate::harness::{
    self, PSEUDONYM_KEY, SUBSCRIBER, assert_no_identity, only, start, subscriber_ip, unbound_ip,
};

fn expected_pseudonym(partner: &str) -> String {
    PseudonymKey::from_bytes(&PSEUDONYM_KEY)
        .unwrap()
        .for_partner(partner)
        .pseudonym(&Msisdn::parse(SUBSCRIBER).unwrap())
        .as_str()
        .to_owned()
}

#[tokio::test]
async fn age_partner_gets_exactly_its_headers() {
    let h = start("").await;
    let response = h.get(subscriber_ip(), &h.agecheck_url(), &[]).await;
    assert_eq!(response.status, 200);
    let got = only(&h.agecheck);
    assert_eq!(got.header_values("x-age-verified"), ["true"]);
    assert_eq!(
        got.header_values("x-subscriber-id"),
        [expected_pseudonym("agecheck").as_str()]
    );
    // Minimum necessary: the age partner never sees the number itself.
    assert!(
        got.headers.iter().all(|(_, v)| !v.contains(SUBSCRIBER)),
        "{got:?}"
    );
    assert!(got.header("x-msisdn").is_none());
    assert_eq!(h.gateway.metrics().disclosures(), 2);
}

#[tokio::test]
async fn billing_partner_gets_number_and_a_verifiable_token() {
    let h = start("").await;
    h.get(subscriber_ip(), &h.billing_url(), &[]).await;
    let got = only(&h.billing);
    assert_eq!(got.header_values("x-msisdn"), [SUBSCRIBER]);
    let token = got.header("x-billing-token").expect("one token");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
    assert_eq!(claims["aud"], "carrierpay");
    assert_eq!(claims["iss"], "headwall.test");
    assert_eq!(claims["purpose"], "billing");
    assert_eq!(claims["sub"], expected_pseudonym("carrierpay").as_str());
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 60);
    assert!(iat.abs_diff(harness::now()) < 30);
}

#[tokio::test]
async fn pseudonyms_differ_between_partners() {
    assert_ne!(
        expected_pseudonym("agecheck"),
        expected_pseudonym("carrierpay")
    );
}

#[tokio::test]
async fn website_gets_nothing_from_a_bound_subscriber() {
    let h = start("").await;
    h.get(subscriber_ip(), &h.website_url(), &[]).await;
    assert_no_identity(&only(&h.website));
    assert_eq!(h.gateway.metrics().disclosures(), 0);
}

#[tokio::test]
async fn unbound_client_gets_nothing_even_to_a_partner() {
    let h = start("").await;
    h.get(unbound_ip(), &h.agecheck_url(), &[]).await;
    assert_no_identity(&only(&h.agecheck));
}

#[tokio::test]
async fn stale_binding_is_not_used() {
    let h = start(r#""#).await;
    // Default stale_after is 2h: a binding last refreshed 3h ago must not be used.
    harness::bind(
        &h.gateway,
        harness::unbound_ip(),
        "447700900777",
        harness::now() - 3 * 3600,
    );
    h.get(unbound_ip(), &h.agecheck_url(), &[]).await;
    let got = only(&h.agecheck);
    assert_no_identity(&got);
    assert!(got.headers.iter().all(|(_, v)| !v.contains("447700900777")));
}

#[tokio::test]
async fn unknown_age_omits_the_header() {
    let h = start("").await;
    harness::bind(
        &h.gateway,
        harness::unbound_ip(),
        "447700900778",
        harness::now(),
    );
    h.get(unbound_ip(), &h.agecheck_url(), &[]).await;
    let got = only(&h.agecheck);
    assert!(got.header_values("x-age-verified").is_empty(), "{got:?}");
    assert_eq!(got.header_values("x-subscriber-id").len(), 1);
}

#[tokio::test]
async fn pinning_mismatch_gets_nothing_and_is_counted() {
    let h = start("").await;
    // old.agecheck.test matches the partner's host and port but resolves to 127.0.0.3,
    // outside the partner's destinations (127.0.0.2/32).
    let url = format!("http://old.agecheck.test:{}/", h.website.addr().port());
    h.get(subscriber_ip(), &url, &[]).await;
    assert_no_identity(&only(&h.website));
    assert_eq!(h.gateway.metrics().pinning_mismatches(), 1);
}

#[tokio::test]
async fn partner_host_on_an_unlisted_port_gets_nothing() {
    let h = start("").await;
    // A second server at the billing partner's address, on a port the partner does not list.
    let other = headwall_testkit::origin(4).await;
    let url = format!("http://pay.carrierpay.test:{}/", other.addr().port());
    let response = h.get(subscriber_ip(), &url, &[]).await;
    assert_eq!(response.status, 200);
    assert_no_identity(&only(&other));
    assert_eq!(h.gateway.metrics().disclosures(), 0);
}

#[tokio::test]
async fn kill_switch_off_withholds() {
    let h = start("").await;
    h.gateway.set_enrichment(false, "test");
    h.get(subscriber_ip(), &h.agecheck_url(), &[]).await;
    assert_no_identity(&only(&h.agecheck));
    h.gateway.set_enrichment(true, "test");
    h.get(subscriber_ip(), &h.agecheck_url(), &[]).await;
    assert_eq!(only(&h.agecheck).header_values("x-age-verified"), ["true"]);
    let recorded = headwall_testkit::eventually(std::time::Duration::from_secs(5), || {
        h.security_events()
            .iter()
            .filter(|(kind, _)| kind == "kill_switch")
            .count()
            == 2
    })
    .await;
    assert!(recorded, "{:?}", h.security_events());
}

#[tokio::test]
async fn policy_swap_applies_to_the_next_request() {
    let h = start("").await;
    let before = h.gateway.policy().policy.hash().to_owned();
    h.gateway.set_policy(headwall_policy::Policy::empty());
    h.get(subscriber_ip(), &h.agecheck_url(), &[]).await;
    assert_no_identity(&only(&h.agecheck));
    // Start and reload are both on record, each naming the policy in force.
    let recorded = headwall_testkit::eventually(std::time::Duration::from_secs(5), || {
        h.security_events().len() >= 2
    })
    .await;
    assert!(recorded);
    let events = h.security_events();
    assert_eq!(events[0].0, "policy_change");
    assert_eq!(events[0].1["policy_hash"], before.as_str());
    assert_eq!(events[1].0, "policy_change");
    assert_eq!(events[1].1["previous_hash"], before.as_str());
    assert_eq!(events[1].1["partners"], serde_json::json!([]));
    // Removing every partner narrows: the plan summary is on record, not widening.
    assert_eq!(events[1].1["widens"], false);
    assert!(events[1].1["plan"].as_str().unwrap().contains("change"));
}

#[tokio::test]
async fn every_disclosure_is_recorded_before_it_leaves() {
    let h = start("").await;
    h.get(subscriber_ip(), &h.agecheck_url(), &[]).await;
    h.get(subscriber_ip(), &h.billing_url(), &[]).await;
    h.get(subscriber_ip(), &h.website_url(), &[]).await;
    h.get(unbound_ip(), &h.agecheck_url(), &[]).await;
    let got = h.agecheck.take();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header_values("x-age-verified"), ["true"]);
    assert_no_identity(&got[1]);
    // Exactly what each partner received, and nothing for the website or the unbound client.
    assert_eq!(
        h.disclosures(),
        [
            (
                "agecheck".to_owned(),
                SUBSCRIBER.to_owned(),
                "x-age-verified,x-subscriber-id".to_owned(),
                "verify.agecheck.test".to_owned()
            ),
            (
                "carrierpay".to_owned(),
                SUBSCRIBER.to_owned(),
                "x-msisdn,x-billing-token".to_owned(),
                "pay.carrierpay.test".to_owned()
            ),
        ]
    );
    match headwall_audit::verify(
        &h.audit_path,
        &headwall_identity::SigningKey::from_seed(&harness::SIGNING_SEED)
            .unwrap()
            .public_key_bytes(),
    )
    .unwrap()
    {
        Ok(report) => assert_eq!(report.disclosures, 2),
        Err(failure) => panic!("{failure}"),
    }
}

#[tokio::test]
async fn audit_failure_withholds_identity_and_keeps_serving() {
    let h = start("").await;
    rusqlite::Connection::open(&h.audit_path)
        .unwrap()
        .execute_batch("ALTER TABLE disclosures RENAME TO unavailable")
        .unwrap();
    // A record is durable once in the journal; the index's next try fails (no `disclosures`
    // table), and from then on identity is withheld while the requests keep being served.
    let mut enriched = 0;
    let mut withheld = false;
    for _ in 0..100 {
        let response = h.get(subscriber_ip(), &h.agecheck_url(), &[]).await;
        assert_eq!(response.status, 200);
        let received = only(&h.agecheck);
        if received.header_values("x-age-verified").is_empty() {
            assert_no_identity(&received);
            withheld = true;
            break;
        }
        enriched += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(withheld, "identity still disclosed with the index failing");
    assert!(h.gateway.metrics().audit_write_failures() >= 1);

    // The log recovers: the next requests are recorded and enriched again, and every request
    // that carried identity has its record.
    rusqlite::Connection::open(&h.audit_path)
        .unwrap()
        .execute_batch("ALTER TABLE unavailable RENAME TO disclosures")
        .unwrap();
    let mut again = false;
    for _ in 0..100 {
        h.get(subscriber_ip(), &h.agecheck_url(), &[]).await;
        if only(&h.agecheck).header_values("x-age-verified") == ["true"] {
            again = true;
            enriched += 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        again,
        "enrichment did not resume once the index could be written"
    );
    assert_eq!(h.disclosures().len() as u64, enriched);
}

#[tokio::test]
async fn spoofs_and_pinning_mismatches_are_security_events() {
    let h = start("").await;
    h.get(
        unbound_ip(),
        &h.website_url(),
        &[
            ("X-MSISDN", "447700900999"),
            ("x_up_calling_line_id", "447700900999"),
        ],
    )
    .await;
    let url = format!("http://old.agecheck.test:{}/", h.website.addr().port());
    h.get(subscriber_ip(), &url, &[]).await;
    let traffic_events = || -> Vec<(String, serde_json::Value)> {
        h.security_events()
            .into_iter()
            .filter(|(kind, _)| kind != "policy_change")
            .collect()
    };
    let recorded = headwall_testkit::eventually(std::time::Duration::from_secs(5), || {
        traffic_events().len() >= 2
    })
    .await;
    assert!(recorded, "{:?}", h.security_events());
    let events = traffic_events();
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, d)| d)
            .collect()
    };
    let spoofs = of("spoof_stripped");
    assert_eq!(spoofs.len(), 1, "{events:?}");
    assert_eq!(spoofs[0]["client_ip"], "127.0.0.6");
    assert_eq!(spoofs[0]["requests"], 1);
    assert_eq!(
        spoofs[0]["headers"],
        serde_json::json!(["x-msisdn", "x-up-calling-line-id"])
    );
    assert!(!spoofs[0].to_string().contains("447700900999"));
    let mismatches = of("pinning_mismatch");
    assert_eq!(mismatches.len(), 1, "{events:?}");
    assert_eq!(mismatches[0]["upstream_ip"], "127.0.0.3");
}

/// docs/design.md, Audit log: `spoof_stripped` is one event per client address and second, with the
/// number of requests and the header names: a client that spoofs on every request costs one row
/// a second, not one row a request. Every spoofed request is counted in exactly one row.
#[tokio::test]
async fn spoof_events_are_one_row_per_client_and_second() {
    let h = start("").await;
    let started = std::time::Instant::now();
    for n in 0..30 {
        let name = if n % 2 == 0 {
            "X-MSISDN"
        } else {
            "X.Nokia.MSISDN"
        };
        h.get(unbound_ip(), &h.website_url(), &[(name, "447700900999")])
            .await;
        h.get(subscriber_ip(), &h.website_url(), &[("X-UIDH", "forged")])
            .await;
    }
    let seconds = started.elapsed().as_secs() + 2;
    let spoofs = || -> Vec<serde_json::Value> {
        h.security_events()
            .into_iter()
            .filter(|(kind, _)| kind == "spoof_stripped")
            .map(|(_, detail)| detail)
            .collect()
    };
    let requests_of = |client: &str| -> u64 {
        spoofs()
            .iter()
            .filter(|d| d["client_ip"] == client)
            .map(|d| d["requests"].as_u64().unwrap())
            .sum()
    };
    let all_counted = headwall_testkit::eventually(std::time::Duration::from_secs(5), || {
        requests_of("127.0.0.6") == 30 && requests_of("127.0.0.5") == 30
    })
    .await;
    assert!(all_counted, "{:?}", spoofs());
    let rows = spoofs();
    for client in ["127.0.0.5", "127.0.0.6"] {
        let of_client = rows.iter().filter(|d| d["client_ip"] == client).count() as u64;
        assert!(
            of_client <= seconds,
            "{of_client} rows for {client} in about {seconds} s: {rows:?}"
        );
    }
    let names: std::collections::BTreeSet<String> = rows
        .iter()
        .filter(|d| d["client_ip"] == "127.0.0.6")
        .flat_map(|d| d["headers"].as_array().unwrap().clone())
        .map(|name| name.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["x-msisdn", "x-nokia-msisdn"].map(String::from).into()
    );
}
