//! RADIUS accounting from the real `radclient` into the real binary, and bindings that survive
//! `kill -9`.

use std::net::SocketAddr;
use std::time::Duration;

use headwall_testkit::{EchoOrigin, ServeProcess, origin, radclient};

use crate::binary;

pub(crate) const SECRET: &str = "testing123";

pub(crate) fn config(agecheck_port: u16) -> String {
    let admin_and_radius = crate::admin_and_radius(SECRET);
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
[gateway.hosts]
"verify.agecheck.test" = "127.0.0.2"
{admin_and_radius}
[[partner]]
name = "agecheck"
purpose = "age_verification"
hosts = ["verify.agecheck.test"]
ports = [{agecheck_port}]
destinations = ["127.0.0.2/32"]
headers = {{ "X-Subscriber-Id" = "pseudonym" }}
"#
    )
}

pub(crate) fn accounting(status: &str, session: &str) -> String {
    format!(
        "Acct-Status-Type = {status}\nFramed-IP-Address = 127.0.0.5\nCalling-Station-Id = \"07700900123\"\nAcct-Session-Id = \"{session}\"\nNAS-IP-Address = 127.0.0.1\n"
    )
}

/// The X-Subscriber-Id values the partner received for one request from the subscriber.
pub(crate) async fn pseudonyms_seen(gateway: SocketAddr, partner: &EchoOrigin) -> Vec<String> {
    let url = format!("http://verify.agecheck.test:{}/", partner.addr().port());
    crate::received_through(gateway, 5, &url, partner)
        .await
        .header_values("x-subscriber-id")
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn radclient_binds_and_bindings_survive_kill_9() {
    let agecheck = origin(2).await;
    let gateway = ServeProcess::start(binary(), &config(agecheck.addr().port()));
    let radius = gateway.radius.expect("radius listener");

    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty(),
        "enriched before any accounting"
    );
    assert!(
        radclient(radius, SECRET, &accounting("Start", "s1")),
        "Start not acknowledged"
    );
    let before = pseudonyms_seen(gateway.explicit, &agecheck).await;
    assert_eq!(before.len(), 1, "acknowledged Start must enrich at once");

    // kill -9: no shutdown, no flush. Every acknowledged binding must be back.
    let dir = gateway.kill();
    let gateway = ServeProcess::start_in(binary(), &config(agecheck.addr().port()), dir);
    let radius = gateway.radius.expect("radius listener");
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await, before);

    // A late Stop of another session leaves the binding; the right Stop ends it.
    assert!(radclient(
        radius,
        SECRET,
        &accounting("Stop", "old-session")
    ));
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await, before);
    assert!(radclient(radius, SECRET, &accounting("Stop", "s1")));
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );

    // The log never carries the number, in either form.
    let log = gateway.log().join("\n");
    assert!(!log.contains("7700900123"), "subscriber number in the log");
}

#[tokio::test]
async fn wrong_secret_gets_no_answer_and_accounting_off_unbinds() {
    let agecheck = origin(2).await;
    let gateway = ServeProcess::start(binary(), &config(agecheck.addr().port()));
    let radius = gateway.radius.expect("radius listener");
    assert!(!radclient(
        radius,
        "wrong-secret",
        &accounting("Start", "s1")
    ));
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );
    // The listener keeps serving after bad input.
    assert!(radclient(radius, SECRET, &accounting("Start", "s1")));
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);
    // Accounting-Off from the NAS removes its bindings.
    assert!(radclient(
        radius,
        SECRET,
        "Acct-Status-Type = Accounting-Off\nNAS-IP-Address = 127.0.0.1\n"
    ));
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_client_is_dropped() {
    let agecheck = origin(2).await;
    let text = config(agecheck.addr().port())
        .replace("source = \"127.0.0.1/32\"", "source = \"127.0.0.9/32\"");
    let gateway = ServeProcess::start(binary(), &text);
    let radius = gateway.radius.expect("radius listener");
    assert!(!radclient(radius, SECRET, &accounting("Start", "s1")));
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );
}

/// Issue 14, defects 1 and 2. On a dual-stack listener (`[::]`) an IPv4 subscriber arrives as
/// `::ffff:127.0.0.5`: it must still be the IPv4 subscriber bound by RADIUS, in the lookup and
/// in the audit row. A signed Start for another number with `Framed-IPv6-Prefix =
/// ::ffff:0:0/96` (every IPv4-mapped address) or `::/0` (every IPv6 address) is malformed: not
/// acknowledged, never bound, and the partner keeps getting the right subscriber.
#[tokio::test]
async fn dual_stack_listener_keeps_ipv4_subscribers_and_refuses_catch_all_prefixes() {
    let agecheck = origin(2).await;
    let config = config(agecheck.addr().port()).replacen(
        "listen = \"127.0.0.1:0\"",
        "listen = \"[::]:0\"",
        1,
    );
    let gateway = ServeProcess::start(binary(), &config);
    assert!(
        gateway.explicit.is_ipv6(),
        "listener is {}",
        gateway.explicit
    );
    // Connect over IPv4: the dual-stack socket reports the peer IPv4-mapped.
    let explicit = SocketAddr::from(([127, 0, 0, 1], gateway.explicit.port()));
    let radius = gateway.radius.expect("radius listener");
    assert!(radclient(radius, SECRET, &accounting("Start", "v4")));
    let before = pseudonyms_seen(explicit, &agecheck).await;
    assert_eq!(
        before.len(),
        1,
        "IPv4 subscriber on a dual-stack listener not identified"
    );

    for prefix in ["::ffff:0:0/96", "::/0", "fe80::/64"] {
        let attack = format!(
            "Acct-Status-Type = Start\nFramed-IPv6-Prefix = {prefix}\n\
             Calling-Station-Id = \"07700900999\"\nAcct-Session-Id = \"catch-all\"\n\
             NAS-IP-Address = 127.0.0.1\n"
        );
        assert!(
            !radclient(radius, SECRET, &attack),
            "Start with Framed-IPv6-Prefix {prefix} acknowledged"
        );
    }
    assert_eq!(
        pseudonyms_seen(explicit, &agecheck).await,
        before,
        "the partner must keep receiving the IPv4 subscriber's pseudonym"
    );

    let connection = crate::audit_index(&gateway.path("state/audit.db"));
    let rows: Vec<(String, String)> = connection
        .prepare("SELECT msisdn, client_ip FROM disclosures ORDER BY id")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2);
    for (msisdn, client_ip) in &rows {
        assert_eq!(
            (msisdn.as_str(), client_ip.as_str()),
            ("447700900123", "127.0.0.5"),
            "audit rows name the IPv4 subscriber by its IPv4 address"
        );
    }
    let rejected: i64 = connection
        .query_row(
            "SELECT count(*) FROM security_events WHERE kind = 'radius_rejected'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(rejected >= 1, "no radius_rejected event");
    let log = gateway.log().join("\n");
    assert!(!log.contains("7700900999"), "refused number in the log");
}

/// docs/design.md, Audit log: `radius_rejected` is one event per source address and second,
/// counting every bad packet with its reasons — not one event per 10 s that drops the rest, and
/// not one row per packet. 300 forged packets (wrong secret) and 200 truncated ones from one
/// source in well under a second are at most two rows a second of sending, counting all 500.
#[tokio::test]
async fn bad_packets_are_one_rejection_row_per_source_and_second() {
    let agecheck = origin(2).await;
    let gateway = ServeProcess::start(binary(), &config(agecheck.addr().port()));
    let radius = gateway.radius.expect("radius listener");
    // An Accounting-Request header with a zero authenticator: fails authentication.
    let mut forged = vec![4u8, 7, 0, 20];
    forged.extend_from_slice(&[0u8; 16]);
    // From 127.0.0.1, a known client (127.0.0.1/32).
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let started = std::time::Instant::now();
    for i in 0..500u32 {
        let datagram: &[u8] = if i % 5 < 3 { &forged } else { &forged[..7] };
        socket.send_to(datagram, radius).await.unwrap();
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let seconds = started.elapsed().as_secs() + 1;
    // Still serving: a good Start is acknowledged after the flood.
    assert!(radclient(radius, SECRET, &accounting("Start", "after")));
    let (code, dir) = gateway.terminate();
    assert_eq!(code, Some(0));

    let connection = crate::audit_index(&dir.path().join("state/audit.db"));
    let details: Vec<serde_json::Value> = connection
        .prepare("SELECT detail FROM security_events WHERE kind = 'radius_rejected' ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|detail| serde_json::from_str(&detail.unwrap()).unwrap())
        .collect();
    assert!(
        !details.is_empty() && details.len() as u64 <= seconds + 1,
        "{} rows for {seconds} s of sending: {details:?}",
        details.len()
    );
    let packets: u64 = details
        .iter()
        .map(|detail| detail["packets"].as_u64().expect("packets counted"))
        .sum();
    assert_eq!(packets, 500, "every bad packet counted: {details:?}");
    let mut reasons = std::collections::BTreeSet::new();
    for detail in &details {
        assert_eq!(detail["source"], "127.0.0.1");
        assert!(detail["second"].is_string());
        for reason in detail["reasons"].as_array().expect("reasons") {
            reasons.insert(reason.as_str().unwrap().to_owned());
        }
    }
    assert_eq!(reasons.len(), 2, "both reasons named: {reasons:?}");
}
