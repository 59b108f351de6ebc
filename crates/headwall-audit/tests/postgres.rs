//! The audit log on a real PostgreSQL (started by the test, see `headwall_testkit::postgres`):
//! group commit, one chain per node, tampering named by node, failures, queries across nodes,
//! retention and the fleet's kill switch.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{disclosure, options, public_key, write_many};

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use headwall_audit::{
    AuditError, AuditLog, DisclosureRow, EventKind, ExposureFilter, PgAuditReader, TimeRange,
    VerifyFailure, VerifyReport, verify_postgres,
};
use headwall_identity::Msisdn;
use headwall_policy::{ApiTls, StoreTls};
use headwall_testkit::postgres::{ServerTls, TestPostgres, USER};
use headwall_testkit::tls::TestCa;

/// A new database on this process's server: its name and URL.
fn database() -> (&'static TestPostgres, String, String) {
    let server = TestPostgres::shared();
    let name = server.fresh_database();
    let url = server.url(&name);
    (server, name, url)
}

async fn verified(url: &str) -> VerifyReport {
    match verify_postgres(url, &StoreTls::default(), &public_key())
        .await
        .unwrap()
    {
        Ok(report) => report,
        Err(failure) => panic!("verify failed: {failure}"),
    }
}

async fn failure(url: &str) -> VerifyFailure {
    match verify_postgres(url, &StoreTls::default(), &public_key())
        .await
        .unwrap()
    {
        Ok(report) => panic!("verify passed a damaged log: {report:?}"),
        Err(failure) => failure,
    }
}

fn sql(server: &TestPostgres, name: &str, statement: &str) -> String {
    server
        .psql(name, statement)
        .unwrap_or_else(|error| panic!("{statement}: {error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_disclosures_share_commits_and_verify_passes() {
    let (server, name, url) = database();
    let log = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-1", options())
        .await
        .unwrap();
    write_many(&log, 500).await;
    log.event(
        EventKind::SpoofStripped,
        &serde_json::json!({"count": 2, "client_ip": "127.0.0.5"}),
    );
    let commits = log.commits();
    log.close().await;
    assert!(
        commits < 500,
        "group commit: {commits} commits for 500 records"
    );

    // Durable: another connection sees every row, all of this node's chain.
    assert_eq!(
        sql(
            server,
            &name,
            "SELECT COUNT(*), MIN(id), MAX(id) FROM disclosures WHERE node = 'gw-1'"
        ),
        "500|1|500"
    );
    assert_eq!(
        sql(server, &name, "SELECT version FROM schema_migrations"),
        "1"
    );
    let report = verified(&url).await;
    assert_eq!((report.disclosures, report.security_events), (500, 1));
    assert_eq!(report.nodes.len(), 1);
    let checkpoint = report.nodes[0]
        .checkpoint
        .clone()
        .expect("close writes a checkpoint");
    assert_eq!(checkpoint.disclosures.last_id, 500);
    assert_eq!(checkpoint.security_events.last_id, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_keep_their_own_chains() {
    let (server, name, url) = database();
    // Both open at once on an empty database: the migration runs once.
    let plain = StoreTls::default();
    let (a, b) = tokio::join!(
        AuditLog::open_postgres(&url, &plain, "gw-a", options()),
        AuditLog::open_postgres(&url, &plain, "gw-b", options()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    tokio::join!(write_many(&a, 200), write_many(&b, 150));
    a.event(EventKind::PolicyChange, &serde_json::json!({"hash": "p"}));
    a.close().await;
    b.close().await;
    // Each chain counts from 1 on its own.
    assert_eq!(
        sql(
            server,
            &name,
            "SELECT node || ':' || COUNT(*) || ':' || MIN(id) || '-' || MAX(id)
             FROM disclosures GROUP BY node ORDER BY node"
        ),
        "gw-a:200:1-200\ngw-b:150:1-150"
    );
    let report = verified(&url).await;
    assert_eq!((report.disclosures, report.security_events), (350, 1));
    let nodes: Vec<_> = report
        .nodes
        .iter()
        .map(|node| (node.node.as_str(), node.disclosures, node.security_events))
        .collect();
    assert_eq!(nodes, [("gw-a", 200, 1), ("gw-b", 150, 0)]);

    // A node reopening continues its own chain.
    let b = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-b", options())
        .await
        .unwrap();
    write_many(&b, 3).await;
    b.close().await;
    assert_eq!(verified(&url).await.nodes[1].disclosures, 153);
}

#[tokio::test]
async fn altered_removed_and_cut_off_records_are_named() {
    let (server, name, url) = database();
    for node in ["gw-a", "gw-b"] {
        let log = AuditLog::open_postgres(&url, &StoreTls::default(), node, options())
            .await
            .unwrap();
        write_many(&log, 10).await;
        log.close().await;
    }
    verified(&url).await;
    sql(
        server,
        &name,
        "CREATE TABLE pristine AS SELECT * FROM disclosures;
         CREATE TABLE pristine_checkpoints AS SELECT * FROM checkpoints",
    );
    let restore = || {
        sql(
            server,
            &name,
            "DELETE FROM disclosures; INSERT INTO disclosures SELECT * FROM pristine;
             DELETE FROM checkpoints;
             INSERT INTO checkpoints OVERRIDING SYSTEM VALUE
               SELECT * FROM pristine_checkpoints",
        );
    };

    // Altered content: a partner renamed after the fact.
    sql(
        server,
        &name,
        "UPDATE disclosures SET partner = 'other' WHERE node = 'gw-b' AND id = 4",
    );
    let found = failure(&url).await;
    assert_eq!(
        (found.node.as_deref(), found.table, found.id),
        (Some("gw-b"), "disclosures", 4)
    );
    assert!(found.reason.contains("altered"), "{found}");
    assert!(
        found
            .to_string()
            .starts_with("node gw-b: disclosures record 4"),
        "{found}"
    );
    restore();

    // A record removed from the middle.
    sql(
        server,
        &name,
        "DELETE FROM disclosures WHERE node = 'gw-a' AND id = 6",
    );
    let found = failure(&url).await;
    assert_eq!((found.node.as_deref(), found.id), (Some("gw-a"), 6));
    assert!(found.reason.contains("missing"), "{found}");
    restore();

    // A record moved to another node's chain: the node is hashed, so it no longer matches.
    sql(
        server,
        &name,
        "UPDATE disclosures SET node = 'gw-a', id = 11 WHERE node = 'gw-b' AND id = 10",
    );
    let found = failure(&url).await;
    assert_eq!(
        (found.node.as_deref(), found.table, found.id),
        (Some("gw-a"), "disclosures", 11)
    );
    restore();

    // A whole node renamed, with its checkpoints: every record's hash names the old node.
    sql(
        server,
        &name,
        "UPDATE disclosures SET node = 'gw-c' WHERE node = 'gw-b';
         UPDATE checkpoints SET node = 'gw-c' WHERE node = 'gw-b'",
    );
    let found = failure(&url).await;
    assert_eq!(
        (found.node.as_deref(), found.id),
        (Some("gw-c"), 1),
        "{found}"
    );
    assert!(found.reason.contains("altered"), "{found}");
    restore();

    // Re-hashed from record 7 on to hide an edit: the chain is consistent again, but the
    // signed checkpoint does not match the last record any more.
    rehash_from(&url, "gw-b", 7).await;
    let found = failure(&url).await;
    assert_eq!(
        (found.node.as_deref(), found.id),
        (Some("gw-b"), 10),
        "{found}"
    );
    assert!(found.reason.contains("checkpoint"), "{found}");
    restore();

    // The newest records cut off.
    sql(
        server,
        &name,
        "DELETE FROM disclosures WHERE node = 'gw-a' AND id > 8",
    );
    let found = failure(&url).await;
    assert_eq!(
        (found.node.as_deref(), found.id),
        (Some("gw-a"), 9),
        "{found}"
    );
    assert!(found.reason.contains("cut off"), "{found}");
    restore();

    // A forged checkpoint body.
    sql(
        server,
        &name,
        "UPDATE checkpoints SET body = replace(body, '\"last_id\":10', '\"last_id\":9')
         WHERE node = 'gw-b'",
    );
    let found = failure(&url).await;
    assert_eq!(
        (found.node.as_deref(), found.table),
        (Some("gw-b"), "checkpoints")
    );
    restore();

    // A checkpoint passed off as another node's.
    sql(
        server,
        &name,
        "DELETE FROM checkpoints WHERE node = 'gw-b';
         INSERT INTO checkpoints (node, ts, body, signature, key_id)
           SELECT 'gw-b', ts, body, signature, key_id FROM pristine_checkpoints
           WHERE node = 'gw-a'",
    );
    let found = failure(&url).await;
    assert_eq!(
        (found.node.as_deref(), found.table),
        (Some("gw-b"), "checkpoints")
    );
    assert!(found.reason.contains("gw-a"), "{found}");
    restore();

    verified(&url).await;
}

/// Changes record `from` of `node` and recomputes every hash after it, as someone hiding an
/// edit would.
async fn rehash_from(url: &str, node: &str, from: i64) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "UPDATE disclosures SET host = 'evil.test' WHERE node = $1 AND id = $2",
            &[&node, &from],
        )
        .await
        .unwrap();
    let mut previous: String = client
        .query_one(
            "SELECT hash FROM disclosures WHERE node = $1 AND id = $2",
            &[&node, &(from - 1)],
        )
        .await
        .unwrap()
        .get(0);
    let rows = client
        .query(
            "SELECT id, ts, request_id, partner, purpose, msisdn, kinds, headers, host, port,
                    upstream_ip, client_ip, policy_hash, prev_hash, hash
             FROM disclosures WHERE node = $1 AND id >= $2 ORDER BY id",
            &[&node, &from],
        )
        .await
        .unwrap();
    for row in rows {
        let port: i32 = row.get(9);
        let mut stored = DisclosureRow {
            id: row.get(0),
            ts: row.get(1),
            request_id: row.get(2),
            partner: row.get(3),
            purpose: row.get(4),
            msisdn: row.get(5),
            kinds: row.get(6),
            headers: row.get(7),
            host: row.get(8),
            port: u16::try_from(port).unwrap(),
            upstream_ip: row.get(10),
            client_ip: row.get(11),
            policy_hash: row.get(12),
            prev_hash: previous.clone(),
            hash: String::new(),
        };
        stored.hash = stored.computed_hash_on(node);
        client
            .execute(
                "UPDATE disclosures SET prev_hash = $1, hash = $2 WHERE node = $3 AND id = $4",
                &[&stored.prev_hash, &stored.hash, &node, &stored.id],
            )
            .await
            .unwrap();
        previous = stored.hash;
    }
}

#[tokio::test]
async fn a_failing_database_fails_the_disclosure_and_the_log_recovers() {
    let (server, name, url) = database();
    let (log_lines, _guard) = capture_logs();
    let log = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-1", options())
        .await
        .unwrap();
    write_many(&log, 1).await;

    sql(server, &name, "ALTER TABLE disclosures RENAME TO moved");
    let result = log
        .disclose(disclosure(
            "447700900123",
            "agecheck",
            "verify.agecheck.test",
        ))
        .await;
    assert!(matches!(result, Err(AuditError::Commit(_))), "{result:?}");
    sql(server, &name, "ALTER TABLE moved RENAME TO disclosures");
    log.disclose(disclosure(
        "447700900123",
        "agecheck",
        "verify.agecheck.test",
    ))
    .await
    .unwrap();

    // A constraint whose server error DETAIL would quote the whole row, number included.
    sql(
        server,
        &name,
        "ALTER TABLE disclosures ADD CONSTRAINT no_999 CHECK (msisdn <> '447700900999')",
    );
    let result = log
        .disclose(disclosure(
            "447700900999",
            "agecheck",
            "verify.agecheck.test",
        ))
        .await;
    let Err(AuditError::Commit(reason)) = result else {
        panic!("{result:?}");
    };
    assert!(reason.contains("no_999"), "{reason}");
    assert!(!reason.contains("447700900999"), "{reason}");
    sql(
        server,
        &name,
        "ALTER TABLE disclosures DROP CONSTRAINT no_999",
    );
    log.disclose(disclosure(
        "447700900123",
        "agecheck",
        "verify.agecheck.test",
    ))
    .await
    .unwrap();

    // The server drops the writer's connections: the pool opens new ones.
    sql(
        server,
        &name,
        "SELECT COUNT(pg_terminate_backend(pid)) >= 0 FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    let mut written = 3;
    let mut recovered = false;
    for _ in 0..3 {
        let result = log
            .disclose(disclosure(
                "447700900123",
                "agecheck",
                "verify.agecheck.test",
            ))
            .await;
        match result {
            Ok(()) => {
                written += 1;
                recovered = true;
                break;
            }
            Err(AuditError::Commit(_)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(recovered, "the log did not reconnect");

    log.close().await;
    assert!(matches!(
        log.disclose(disclosure(
            "447700900123",
            "agecheck",
            "verify.agecheck.test"
        ))
        .await,
        Err(AuditError::WriterStopped)
    ));
    assert_eq!(verified(&url).await.disclosures, written);
    let logged = log_lines
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let logged = String::from_utf8_lossy(&logged);
    assert!(logged.contains("audit commit failed"), "{logged}");
    assert!(!logged.contains("447700900"), "{logged}");
}

#[tokio::test]
async fn an_unreachable_database_fails_open_without_the_password() {
    let server = TestPostgres::shared();
    let url = format!(
        "postgres://headwall:s3cret@127.0.0.1:{}/no_such_database",
        server.port()
    );
    let error = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-1", options())
        .await
        .err()
        .unwrap();
    let text = error.to_string();
    assert!(matches!(error, AuditError::Connect { .. }), "{text}");
    assert!(text.contains("no_such_database"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let error = AuditLog::open_postgres(
        &server.url("postgres"),
        &StoreTls::default(),
        "no spaces",
        options(),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(error, AuditError::InvalidNode(_)), "{error}");
    let error = PgAuditReader::open(&server.url("postgres"), &StoreTls::default())
        .await
        .err()
        .unwrap();
    assert!(error.contains("no headwall audit schema"), "{error}");
}

#[tokio::test]
async fn the_three_questions_across_nodes() {
    let (_, _, url) = database();
    let a = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-a", options())
        .await
        .unwrap();
    let b = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-b", options())
        .await
        .unwrap();
    let start = headwall_audit::time::now_ms();
    for (log, msisdn, partner, host) in [
        (&a, "447700900123", "agecheck", "verify.agecheck.test"),
        (&b, "447700900123", "agecheck", "verify.agecheck.test"),
        (&b, "447700900456", "agecheck", "verify.agecheck.test"),
        (&a, "447700900123", "carrierpay", "pay.carrierbilling.test"),
    ] {
        log.disclose(disclosure(msisdn, partner, host))
            .await
            .unwrap();
        // Distinct times, so the expected order does not depend on node names.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    a.close().await;
    b.close().await;
    // Through the Unix socket, its folder percent-encoded as the host.
    let server = TestPostgres::shared();
    let socket = server
        .socket_dir()
        .display()
        .to_string()
        .replace('/', "%2F");
    let name = url.rsplit('/').next().unwrap();
    let reader = PgAuditReader::open(
        &format!("postgres://headwall@{socket}:{}/{name}", server.port()),
        &StoreTls::default(),
    )
    .await
    .unwrap();

    let subscriber = Msisdn::parse("447700900123").unwrap();
    let all = reader
        .subscriber(&subscriber, TimeRange::default())
        .await
        .unwrap();
    let seen: Vec<_> = all
        .iter()
        .map(|view| (view.node.as_deref(), view.id, view.partner.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("gw-a"), 1, "agecheck"),
            (Some("gw-b"), 1, "agecheck"),
            (Some("gw-a"), 2, "carrierpay"),
        ]
    );
    assert_eq!(all[0].headers, ["X-Subscriber-Id", "X-Age-Verified"]);
    let json = headwall_audit::subscriber_json(&subscriber, TimeRange::default(), &all);
    assert_eq!(json["disclosures"][1]["node"], "gw-b");
    let none = reader
        .subscriber(
            &subscriber,
            TimeRange {
                from: None,
                to: Some(start - 1),
            },
        )
        .await
        .unwrap();
    assert!(none.is_empty());

    let exposure = reader.exposure(&ExposureFilter::default()).await.unwrap();
    assert_eq!(exposure.len(), 2);
    assert_eq!(
        (
            exposure[0].partner.as_str(),
            exposure[0].subscribers,
            exposure[0].disclosures
        ),
        ("agecheck", 2, 3)
    );
    // The subscribers themselves: one row each per (partner, host), adding up to the counts.
    let mut listed = Vec::new();
    reader
        .exposed_subscribers_each(&ExposureFilter::default(), |row| {
            listed.push(row);
            true
        })
        .await
        .unwrap();
    for pair in &exposure {
        let rows: Vec<_> = listed
            .iter()
            .filter(|row| row.partner == pair.partner && row.host == pair.host)
            .collect();
        assert_eq!(rows.len() as i64, pair.subscribers, "{}", pair.partner);
        let disclosures: i64 = rows.iter().map(|row| row.disclosures).sum();
        assert_eq!(disclosures, pair.disclosures, "{}", pair.partner);
    }
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .windows(2)
            .all(|w| (&w[0].partner, &w[0].host, &w[0].msisdn)
                < (&w[1].partner, &w[1].host, &w[1].msisdn))
    );
    assert!(!format!("{:?}", listed[0]).contains(&listed[0].msisdn));
    let only = reader
        .exposure(&ExposureFilter {
            partner: Some("carrierpay".into()),
            ..ExposureFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    let later = reader
        .exposure(&ExposureFilter {
            host: Some("verify.agecheck.test".into()),
            range: TimeRange {
                from: Some(start),
                to: None,
            },
            ..ExposureFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(later[0].disclosures, 3);

    let policy = headwall_policy::load_policy(
        "narrow.toml",
        r#"
[[partner]]
name = "agecheck"
purpose = "age_verification"
hosts = ["verify.agecheck.test"]
destinations = ["127.0.0.2/32"]
headers = { "X-Subscriber-Id" = "pseudonym", "X-Age-Verified" = "age_verified" }
"#,
    )
    .unwrap();
    let unallowed = reader
        .against(&policy, &ExposureFilter::default())
        .await
        .unwrap();
    assert_eq!(unallowed.len(), 1, "{unallowed:?}");
    assert_eq!(unallowed[0].record.partner, "carrierpay");
    assert_eq!(unallowed[0].record.node.as_deref(), Some("gw-a"));
    assert!(
        unallowed[0].reason.contains("no partner"),
        "{}",
        unallowed[0].reason
    );
}

#[tokio::test]
async fn retention_per_node_keeps_verify_passing() {
    let (server, name, url) = database();
    let a = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-a", options())
        .await
        .unwrap();
    let b = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-b", options())
        .await
        .unwrap();
    write_many(&a, 5).await;
    write_many(&b, 4).await;
    b.event(EventKind::PolicyChange, &serde_json::json!({"hash": "p"}));
    b.checkpoint().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = headwall_audit::time::now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    write_many(&a, 5).await;
    write_many(&b, 5).await;

    // One node's retention prunes every node's chains, each to its own anchor.
    assert_eq!(a.prune(cutoff).await.unwrap(), 5 + 4 + 1);
    assert_eq!(a.prune(cutoff).await.unwrap(), 0);
    assert_eq!(b.prune(cutoff).await.unwrap(), 0);
    a.close().await;
    b.close().await;
    assert_eq!(
        sql(
            server,
            &name,
            "SELECT node || ':' || chain || ':' || removed_through FROM chain_anchor
             ORDER BY node, chain"
        ),
        "gw-a:disclosures:5\ngw-b:disclosures:4\ngw-b:security_events:1"
    );
    let report = verified(&url).await;
    assert_eq!((report.disclosures, report.security_events), (10, 0));

    // After a restart each chain continues from its anchor; everything pruned leaves the
    // anchors alone to carry the chains.
    let b = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-b", options())
        .await
        .unwrap();
    write_many(&b, 2).await;
    assert_eq!(
        b.prune(headwall_audit::time::now_ms() + 1000)
            .await
            .unwrap(),
        5 + 7
    );
    write_many(&b, 1).await;
    b.close().await;
    let report = verified(&url).await;
    assert_eq!(report.disclosures, 1);
    assert_eq!(
        sql(
            server,
            &name,
            "SELECT id FROM disclosures WHERE node = 'gw-b'"
        ),
        "12"
    );
}

#[tokio::test]
async fn the_kill_switch_is_the_fleets() {
    let (_, _, url) = database();
    let a = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-a", options())
        .await
        .unwrap();
    let b = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-b", options())
        .await
        .unwrap();
    assert!(!a.enrichment_switched_off() && !b.enrichment_switched_off());

    // A leak seen by one node switches the others off too: at their next refresh, and at
    // every open after it.
    a.event(
        EventKind::KillSwitch,
        &serde_json::json!({"enabled": false, "reason": "canary"}),
    );
    a.checkpoint().await.unwrap();
    let c = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-c", options())
        .await
        .unwrap();
    assert!(c.enrichment_switched_off());
    let refreshed = headwall_testkit::eventually(headwall_audit::KILL_SWITCH_REFRESH * 3, || {
        b.enrichment_switched_off()
    })
    .await;
    assert!(refreshed, "gw-b never saw the fleet's kill switch");

    // An operator turning enrichment on anywhere turns it on everywhere.
    tokio::time::sleep(Duration::from_millis(5)).await;
    c.event(
        EventKind::KillSwitch,
        &serde_json::json!({"enabled": true, "reason": "operator"}),
    );
    for log in [&a, &b, &c] {
        log.close().await;
    }
    let reopened = AuditLog::open_postgres(&url, &StoreTls::default(), "gw-a", options())
        .await
        .unwrap();
    assert!(!reopened.enrichment_switched_off());
    reopened.close().await;
}

/// Everything logged at any level while the guard lives, on this thread (the writer task runs
/// here too: `#[tokio::test]` is single-threaded).
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(lines.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (lines, tracing::subscriber::set_default(subscriber))
}

/// TLS to PostgreSQL (docs/config.md, "TLS to PostgreSQL and Redis"): a server that takes TCP
/// connections over TLS only, with a client certificate, its certificate for 127.0.0.1 made by
/// a test CA. The right CA and certificate write, read and verify; plaintext, someone else's
/// CA, a name the certificate does not hold (verify-full) and no client certificate are all
/// refused before a record could be sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_postgres_checks_the_server_and_offers_the_client_certificate() {
    let dir = headwall_testkit::temp_dir();
    let ca = TestCa::new("audit database CA");
    let clients = TestCa::new("gateway client CA");
    let (cert_pem, key_pem) = ca.issue("audit-db", &["127.0.0.1", "localhost"]);
    let server = TestPostgres::start_tls(&ServerTls {
        cert_pem,
        key_pem,
        client_ca_pem: Some(clients.pem()),
    });
    let name = server.fresh_database();
    let plain_url = server.url(&name);
    let ca_file = ca.write(dir.path(), "ca");
    let stranger_file = TestCa::new("someone else's CA").write(dir.path(), "stranger");
    let client = clients.write_pair(dir.path(), "client", USER, &[]);
    let tls = |ca_file: Option<&std::path::Path>, with_client: bool| StoreTls {
        ca_file: ca_file.map(std::path::Path::to_owned),
        client: with_client.then(|| ApiTls {
            cert_file: client.cert_file.clone(),
            key_file: client.key_file.clone(),
        }),
    };
    let refused = async |url: &str, tls: StoreTls| {
        let error = AuditLog::open_postgres(url, &tls, "gw-1", options())
            .await
            .err()
            .expect("the connection is refused");
        assert!(matches!(error, AuditError::Connect { .. }), "{error}");
        error.to_string()
    };

    let url = format!("{plain_url}?sslmode=verify-full");
    let good = tls(Some(&ca_file), true);
    let log = AuditLog::open_postgres(&url, &good, "gw-1", options())
        .await
        .unwrap();
    log.disclose(disclosure(
        "447700900123",
        "agecheck",
        "verify.agecheck.test",
    ))
    .await
    .unwrap();
    log.close().await;
    assert_eq!(sql(&server, &name, "SELECT COUNT(*) FROM disclosures"), "1");
    let reader = PgAuditReader::open(&url, &good).await.unwrap();
    let subscriber = Msisdn::parse("447700900123").unwrap();
    let found = reader
        .subscriber(&subscriber, TimeRange::default())
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    match verify_postgres(&url, &good, &public_key()).await.unwrap() {
        Ok(report) => assert_eq!(report.disclosures, 1),
        Err(failure) => panic!("verify failed: {failure}"),
    }

    // The server takes TLS only, so a plaintext client is turned away by the server itself.
    let error = refused(&format!("{plain_url}?sslmode=disable"), tls(None, false)).await;
    assert!(error.contains("no encryption"), "{error}");
    // Someone else's CA: the server's certificate does not lead to a trusted root.
    let error = refused(&url, tls(Some(&stranger_file), true)).await;
    assert!(error.contains("UnknownIssuer"), "{error}");
    // verify-full compares the name connected to (db.example here, reached at 127.0.0.1) with
    // the certificate's; verify-ca does not.
    let elsewhere = format!(
        "postgres://{USER}@db.example:{}/{name}?hostaddr=127.0.0.1",
        server.port()
    );
    let error = refused(
        &format!("{elsewhere}&sslmode=verify-full"),
        tls(Some(&ca_file), true),
    )
    .await;
    assert!(error.contains("not valid for name"), "{error}");
    AuditLog::open_postgres(
        &format!("{elsewhere}&sslmode=verify-ca"),
        &tls(Some(&ca_file), true),
        "gw-1",
        options(),
    )
    .await
    .unwrap()
    .close()
    .await;
    // The server asks for a client certificate; without one it refuses.
    let error = refused(&url, tls(Some(&ca_file), false)).await;
    assert!(error.contains("certificate"), "{error}");
    // `require` without a CA file encrypts without checking the server (libpq's meaning).
    AuditLog::open_postgres(
        &format!("{plain_url}?sslmode=require"),
        &tls(None, true),
        "gw-1",
        options(),
    )
    .await
    .unwrap()
    .close()
    .await;
}
