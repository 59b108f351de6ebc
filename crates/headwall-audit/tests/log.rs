//! The audit log on real SQLite files: durability, group commit, the chain, checkpoints,
//! retention and the three questions.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{disclosure, options, public_key, write_many};

use std::path::{Path, PathBuf};
use std::time::Duration;

use headwall_audit::{
    AuditError, AuditLog, AuditOptions, AuditReader, EventKind, ExposureFilter, TimeRange,
    checkpoint_path, verify,
};
use headwall_identity::Msisdn;
use rusqlite::Connection;

fn database(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("audit.db")
}

fn verified(path: &Path) -> headwall_audit::VerifyReport {
    match verify(path, &public_key()).unwrap() {
        Ok(report) => report,
        Err(failure) => panic!("verify failed: {failure}"),
    }
}

fn failure(path: &Path) -> headwall_audit::VerifyFailure {
    match verify(path, &public_key()).unwrap() {
        Ok(report) => panic!("verify passed a damaged log: {report:?}"),
        Err(failure) => failure,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_disclosures_share_commits_and_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir);
    let log = AuditLog::open(&path, options()).unwrap();
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

    // Durable: another connection sees every row.
    let connection = Connection::open(&path).unwrap();
    let rows: i64 = connection
        .query_row("SELECT COUNT(*) FROM disclosures", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 500);
    let report = verified(&path);
    assert_eq!((report.disclosures, report.security_events), (500, 1));
    let checkpoint = report.checkpoint.expect("close writes a checkpoint");
    assert_eq!(checkpoint.disclosures.last_id, 500);
}

#[tokio::test]
async fn reopening_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir);
    let log = AuditLog::open(&path, options()).unwrap();
    write_many(&log, 3).await;
    log.close().await;
    let log = AuditLog::open(&path, options()).unwrap();
    write_many(&log, 3).await;
    log.close().await;
    assert_eq!(verified(&path).disclosures, 6);
}

#[tokio::test]
async fn altered_removed_and_cut_off_records_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir);
    let log = AuditLog::open(&path, options()).unwrap();
    write_many(&log, 10).await;
    log.close().await;
    let pristine = std::fs::read(&path).unwrap();
    let restore = || {
        std::fs::write(&path, &pristine).unwrap();
        let _ = std::fs::remove_file(path.with_extension("db-wal"));
        let _ = std::fs::remove_file(path.with_extension("db-shm"));
    };
    let connection = || Connection::open(&path).unwrap();

    // Altered content: a partner renamed after the fact.
    connection()
        .execute("UPDATE disclosures SET partner = 'other' WHERE id = 4", [])
        .unwrap();
    let found = failure(&path);
    assert_eq!((found.table, found.id), ("disclosures", 4));
    assert!(found.reason.contains("altered"), "{}", found.reason);
    restore();

    // A record removed from the middle.
    connection()
        .execute("DELETE FROM disclosures WHERE id = 6", [])
        .unwrap();
    let found = failure(&path);
    assert_eq!(found.id, 6);
    restore();

    // Re-hashed from record 7 on to hide an edit: the chain is consistent again, but the
    // signed checkpoint does not match the last record any more.
    {
        let connection = connection();
        connection
            .execute("UPDATE disclosures SET host = 'evil.test' WHERE id = 7", [])
            .unwrap();
        let mut previous: String = connection
            .query_row("SELECT hash FROM disclosures WHERE id = 6", [], |r| {
                r.get(0)
            })
            .unwrap();
        for id in 7..=10 {
            let mut stored = raw_row(&connection, id);
            stored.prev_hash = previous.clone();
            stored.hash = stored.computed_hash();
            connection
                .execute(
                    "UPDATE disclosures SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
                    rusqlite::params![stored.prev_hash, stored.hash, id],
                )
                .unwrap();
            previous = stored.hash;
        }
    }
    let found = failure(&path);
    assert_eq!(found.id, 10, "{found}");
    assert!(found.reason.contains("checkpoint"), "{}", found.reason);
    restore();

    // The newest records cut off, from the index and the journal (from the index alone they
    // come back: the journal is the durable record).
    connection()
        .execute("DELETE FROM disclosures WHERE id > 8", [])
        .unwrap();
    let journal = headwall_audit::journal_paths(&path).map(|file| std::fs::read(file).unwrap());
    assert_eq!(
        verified(&path).disclosures,
        10,
        "indexed again from the journal"
    );
    connection()
        .execute("DELETE FROM disclosures WHERE id > 8", [])
        .unwrap();
    for file in headwall_audit::journal_paths(&path) {
        std::fs::remove_file(file).unwrap();
    }
    let found = failure(&path);
    assert!(found.reason.contains("cut off"), "{}", found.reason);
    restore();
    for (file, bytes) in headwall_audit::journal_paths(&path).iter().zip(&journal) {
        std::fs::write(file, bytes).unwrap();
    }

    // A forged checkpoint line.
    let checkpoints = checkpoint_path(&path);
    let text = std::fs::read_to_string(&checkpoints).unwrap();
    std::fs::write(
        &checkpoints,
        text.replace("\"last_id\":10", "\"last_id\":9"),
    )
    .unwrap();
    let found = failure(&path);
    assert_eq!(found.table, "checkpoints");
    std::fs::write(&checkpoints, text).unwrap();

    verified(&path);
}

fn raw_row(connection: &Connection, id: i64) -> headwall_audit::DisclosureRow {
    connection
        .query_row(
            &format!(
                "SELECT {} FROM disclosures WHERE id = ?1",
                headwall_audit::DisclosureRow::SQLITE_COLUMNS
            ),
            [id],
            headwall_audit::DisclosureRow::from_sqlite,
        )
        .unwrap()
}

#[tokio::test]
async fn retention_keeps_the_chain_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir);
    let log = AuditLog::open(&path, options()).unwrap();
    write_many(&log, 5).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = headwall_audit::time::now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    write_many(&log, 5).await;
    log.event(EventKind::PolicyChange, &serde_json::json!({"hash": "p"}));
    assert_eq!(log.prune(cutoff).await.unwrap(), 5);
    assert_eq!(log.prune(cutoff).await.unwrap(), 0);
    log.close().await;
    let report = verified(&path);
    assert_eq!(report.disclosures, 5);

    // After a restart the chain continues from the anchor.
    let log = AuditLog::open(&path, options()).unwrap();
    write_many(&log, 2).await;
    // Everything pruned: the anchor alone carries the chain.
    assert_eq!(
        log.prune(headwall_audit::time::now_ms() + 1000)
            .await
            .unwrap(),
        8
    );
    write_many(&log, 1).await;
    log.close().await;
    assert_eq!(verified(&path).disclosures, 1);
}

/// The journal is the durable record and SQLite its index: a database that cannot be written
/// fails nothing a partner waits for, and what it missed is indexed once it works again.
#[tokio::test]
async fn a_failing_index_loses_nothing_and_the_log_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir);
    let log = AuditLog::open(&path, options()).unwrap();
    write_many(&log, 1).await;
    log.checkpoint().await.unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch("ALTER TABLE disclosures RENAME TO moved")
        .unwrap();
    log.disclose(disclosure(
        "447700900123",
        "agecheck",
        "verify.agecheck.test",
    ))
    .await
    .expect("durable in the journal while the index fails");
    // The indexer's try fails (no `disclosures` table): the record stays in the journal, and
    // no more disclosures are made until the index can be written.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let refused = log
        .disclose(disclosure(
            "447700900123",
            "agecheck",
            "verify.agecheck.test",
        ))
        .await;
    assert!(
        matches!(refused, Err(AuditError::IndexFailing)),
        "{refused:?}"
    );
    let moved: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM moved", [], |row| row.get(0))
        .unwrap();
    assert_eq!(moved, 1, "the second record could not be indexed");
    Connection::open(&path)
        .unwrap()
        .execute_batch("ALTER TABLE moved RENAME TO disclosures")
        .unwrap();
    // The indexer's next try succeeds.
    tokio::time::sleep(Duration::from_millis(800)).await;
    log.disclose(disclosure(
        "447700900123",
        "agecheck",
        "verify.agecheck.test",
    ))
    .await
    .unwrap();
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
    let report = verified(&path);
    assert_eq!(report.disclosures, 3);
    assert_eq!(report.checkpoint.unwrap().disclosures.last_id, 3);
}

#[tokio::test]
async fn the_three_questions() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir);
    let log = AuditLog::open(&path, options()).unwrap();
    let start = headwall_audit::time::now_ms();
    for (msisdn, partner, host) in [
        ("447700900123", "agecheck", "verify.agecheck.test"),
        ("447700900123", "agecheck", "verify.agecheck.test"),
        ("447700900456", "agecheck", "verify.agecheck.test"),
        ("447700900123", "carrierpay", "pay.carrierbilling.test"),
    ] {
        log.disclose(disclosure(msisdn, partner, host))
            .await
            .unwrap();
    }
    log.close().await;
    let reader = AuditReader::open(&path).unwrap();

    let subscriber = Msisdn::parse("447700900123").unwrap();
    let all = reader
        .subscriber(&subscriber, TimeRange::default())
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].partner, "carrierpay");
    assert_eq!(all[0].headers, ["X-Subscriber-Id", "X-Age-Verified"]);
    let none = reader
        .subscriber(
            &subscriber,
            TimeRange {
                from: None,
                to: Some(start - 1),
            },
        )
        .unwrap();
    assert!(none.is_empty());

    let exposure = reader.exposure(&ExposureFilter::default()).unwrap();
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
        .unwrap();
    assert_eq!(only.len(), 1);

    // Breach scoping: a policy that never contracted carrierpay, and gives agecheck only the
    // pseudonym.
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
    let unallowed = reader.against(&policy, &ExposureFilter::default()).unwrap();
    assert_eq!(unallowed.len(), 1, "{unallowed:?}");
    assert_eq!(unallowed[0].record.partner, "carrierpay");
    assert!(
        unallowed[0].reason.contains("no partner"),
        "{}",
        unallowed[0].reason
    );
}

#[tokio::test]
async fn the_kill_switch_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir);
    let log = AuditLog::open(&path, options()).unwrap();
    assert!(!log.enrichment_switched_off());
    log.event(
        EventKind::KillSwitch,
        &serde_json::json!({"enabled": false, "reason": "canary"}),
    );
    log.close().await;
    let log = AuditLog::open(&path, options()).unwrap();
    assert!(log.enrichment_switched_off());
    log.event(
        EventKind::KillSwitch,
        &serde_json::json!({"enabled": true, "reason": "operator"}),
    );
    log.close().await;
    assert!(
        !AuditLog::open(&path, options())
            .unwrap()
            .enrichment_switched_off()
    );
}

/// What a crash leaves: the journal holds records the index does not have yet. The files are
/// copied while the writer runs, right after the records became durable (a `kill -9` leaves
/// the same on disk), and the copy is opened as a restarted gateway would open it.
#[tokio::test]
async fn records_durable_in_the_journal_are_indexed_when_the_log_is_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir);
    let log = AuditLog::open(&path, options()).unwrap();
    write_many(&log, 40).await;
    log.event(EventKind::PolicyChange, &serde_json::json!({"hash": "p"}));
    write_many(&log, 1).await;
    let crashed = tempfile::tempdir().unwrap();
    let copy = database(&crashed);
    for (from, to) in [
        (path.clone(), copy.clone()),
        (path.with_extension("db-wal"), copy.with_extension("db-wal")),
        (
            headwall_audit::journal_paths(&path)[0].clone(),
            headwall_audit::journal_paths(&copy)[0].clone(),
        ),
        (
            headwall_audit::journal_paths(&path)[1].clone(),
            headwall_audit::journal_paths(&copy)[1].clone(),
        ),
    ] {
        if from.exists() {
            std::fs::copy(&from, &to).unwrap();
        }
    }
    log.close().await;
    let indexed: i64 = Connection::open(&copy)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM disclosures", [], |row| row.get(0))
        .unwrap();
    assert!(indexed < 41, "the index was not behind: {indexed} of 41");

    // The restarted writer indexes the rest at open and continues both chains after them.
    let log = AuditLog::open(&copy, options()).unwrap();
    let indexed: i64 = Connection::open(&copy)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM disclosures", [], |row| row.get(0))
        .unwrap();
    assert_eq!(indexed, 41);
    write_many(&log, 2).await;
    log.event(EventKind::PolicyChange, &serde_json::json!({"hash": "q"}));
    log.close().await;
    let report = verified(&copy);
    assert_eq!((report.disclosures, report.security_events), (43, 2));
    assert_eq!(report.checkpoint.unwrap().disclosures.last_id, 43);
}

/// Enough records to fill a journal file several times over: the writer switches between the
/// two files, overwriting the older one once it is indexed, and nothing is lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_switches_files_and_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir);
    let log = AuditLog::open(&path, options()).unwrap();
    // About 500 bytes a frame: 60,000 records are more than three 8 MiB files' worth.
    for _ in 0..30 {
        write_many(&log, 2_000).await;
    }
    log.close().await;
    let log = AuditLog::open(&path, options()).unwrap();
    write_many(&log, 100).await;
    log.close().await;
    let report = verified(&path);
    assert_eq!(report.disclosures, 60_100);
    let sizes: Vec<u64> = headwall_audit::journal_paths(&path)
        .iter()
        .map(|file| std::fs::metadata(file).unwrap().len())
        .collect();
    assert!(
        sizes.iter().all(|size| *size < 24 << 20),
        "the journal grew instead of switching: {sizes:?}"
    );
}

/// Disclosures arriving one at a time, about a millisecond apart (requests from many handsets,
/// not one client waiting for each answer): with a commit window they share flushes; without
/// one each gets its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_window_lets_disclosures_a_moment_apart_share_a_flush() {
    async fn commits_for_spread_arrivals(window: Duration) -> (u64, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = database(&dir);
        let log = AuditLog::open(
            &path,
            AuditOptions {
                commit_window: window,
                ..options()
            },
        )
        .unwrap();
        let before = log.commits();
        let mut waiting = tokio::task::JoinSet::new();
        for index in 0..100 {
            let log = log.clone();
            let msisdn = format!("4477009{index:05}");
            waiting.spawn(async move {
                log.disclose(disclosure(&msisdn, "agecheck", "verify.agecheck.test"))
                    .await
            });
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        while let Some(result) = waiting.join_next().await {
            result.unwrap().unwrap();
        }
        let commits = log.commits() - before;
        log.close().await;
        assert_eq!(verified(&path).disclosures, 100);
        (commits, 100)
    }
    // On a loaded machine a 1 ms sleep takes longer and a flush may too, which moves both
    // counts; what must hold whatever the load is that the window at least halves them.
    let (alone, records) = commits_for_spread_arrivals(Duration::ZERO).await;
    let (shared, _) = commits_for_spread_arrivals(Duration::from_millis(10)).await;
    assert!(
        shared * 2 <= alone && shared * 2 <= records,
        "a 10 ms window: {shared} commits for {records} records; no window: {alone}"
    );
}
