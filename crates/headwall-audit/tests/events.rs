//! Frequent security events (spoof_stripped, radius_rejected, pinning_mismatch) wait for the
//! writer's next commit instead of waking it each: they must still land on their own, in the
//! order they happened, and with the commit of a disclosure that came after them. (Which kinds
//! wait is a unit test in src/pending.rs.)

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::IpAddr;
use std::time::{Duration, Instant};

use headwall_audit::{
    AuditLog, AuditOptions, Disclosure, EventKind, EventWindow, MAX_SOURCES_PER_SECOND,
    WindowFields, verify,
};
use headwall_identity::{Msisdn, SigningKey};
use rusqlite::Connection;

const SEED: [u8; 32] = [0x17; 32];

fn open(path: &std::path::Path) -> AuditLog {
    AuditLog::open(
        path,
        AuditOptions {
            signing_key: SigningKey::from_seed(&SEED).unwrap(),
            checkpoint_every: Duration::from_secs(60),
            commit_window: headwall_audit::DEFAULT_COMMIT_WINDOW,
        },
    )
    .unwrap()
}

/// `security_events` rows as (kind, detail), in chain order, read by a second connection while
/// the writer is running.
fn events(path: &std::path::Path) -> Vec<(String, String)> {
    let db = Connection::open(path).unwrap();
    let mut statement = db
        .prepare("SELECT kind, detail FROM security_events ORDER BY id")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Polls until `count` spoof_stripped rows are visible, at most 10 s (the flush deadline is
/// 5 ms; the bound only keeps a broken build from hanging).
fn wait_for_spoof_rows(path: &std::path::Path, count: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = events(path);
        let spoofs = rows.iter().filter(|(k, _)| k == "spoof_stripped").count();
        if spoofs >= count || Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn buffered_events_land_without_anything_else_to_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let log = open(&path);
    for count in 1..=3 {
        log.event(
            EventKind::SpoofStripped,
            &serde_json::json!({ "count": count }),
        );
    }
    // No disclosure, no close: only the flush deadline can write them.
    let rows = wait_for_spoof_rows(&path, 3);
    let details: Vec<&str> = rows
        .iter()
        .filter(|(kind, _)| kind == "spoof_stripped")
        .map(|(_, detail)| detail.as_str())
        .collect();
    assert_eq!(
        details,
        [r#"{"count":1}"#, r#"{"count":2}"#, r#"{"count":3}"#]
    );
    assert_eq!(log.dropped_events(), 0);
    log.close().await;
    let report = verify(
        &path,
        &SigningKey::from_seed(&SEED).unwrap().public_key_bytes(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(report.security_events, 3, "{report:?}");
}

#[tokio::test]
async fn a_disclosure_commit_takes_the_buffered_events_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let log = open(&path);
    log.event(EventKind::SpoofStripped, &serde_json::json!({ "count": 1 }));
    log.disclose(Disclosure {
        request_id: "r1".into(),
        partner: "p".into(),
        purpose: "billing".into(),
        msisdn: Msisdn::parse("447700900123").unwrap(),
        kinds: vec!["msisdn".into()],
        headers: vec!["X-MSISDN".into()],
        host: "partner.test".into(),
        port: 80,
        upstream_ip: IpAddr::from([127, 0, 0, 2]),
        client_ip: IpAddr::from([127, 0, 0, 1]),
        policy_hash: "h".into(),
    })
    .await
    .unwrap();
    // The disclosure's commit took the buffered event with it: durable as soon as disclose()
    // returned, without waiting for the deadline (read as every reader does, after indexing
    // what the journal holds).
    headwall_audit::catch_up(&path).unwrap();
    let rows = events(&path);
    assert!(
        rows.iter().any(|(kind, _)| kind == "spoof_stripped"),
        "{rows:?}"
    );
    log.close().await;
}

/// A flood from more sources than [`MAX_SOURCES_PER_SECOND`] in one second (forged UDP sources
/// cost an attacker nothing) is still that many rows and one `others` row, which counts every
/// occurrence and the sources it stands for; an IPv4-mapped source is its IPv4 address.
#[tokio::test]
async fn a_window_bounds_its_rows_per_second_whatever_the_sources() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let log = open(&path);
    let window = EventWindow::new(
        EventKind::RadiusRejected,
        WindowFields {
            source: "source",
            count: "packets",
            names: "reasons",
        },
    );
    let extra = 500u32;
    let sources = u32::try_from(MAX_SOURCES_PER_SECOND).unwrap() + extra;
    for n in 0..sources {
        let source = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
        window.add(&log, 1_000, source, ["bad_authenticator".to_owned()]);
        window.add(&log, 1_000, source, ["truncated".to_owned()]);
    }
    let mapped: IpAddr = "::ffff:10.0.0.0".parse().unwrap();
    window.add(&log, 1_000, mapped, ["truncated".to_owned()]);
    window.flush(&log, 1_001);
    log.close().await;

    let details: Vec<serde_json::Value> = events(&path)
        .iter()
        .filter(|(kind, _)| kind == "radius_rejected")
        .map(|(_, detail)| serde_json::from_str(detail).unwrap())
        .collect();
    assert_eq!(details.len(), MAX_SOURCES_PER_SECOND + 1);
    let first = &details[0];
    assert_eq!(first["source"], "10.0.0.0");
    assert_eq!(first["packets"], 3, "the mapped source is the same source");
    assert_eq!(
        first["reasons"],
        serde_json::json!(["bad_authenticator", "truncated"])
    );
    let others = details.last().unwrap();
    assert_eq!(others["source"], "others");
    assert_eq!(others["sources"], extra);
    assert_eq!(others["packets"], 2 * extra);
    let total: u64 = details.iter().map(|d| d["packets"].as_u64().unwrap()).sum();
    assert_eq!(total, 2 * u64::from(sources) + 1);
}
