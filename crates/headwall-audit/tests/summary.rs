//! The exposure summary against the plain query it replaces: on random records, windows that
//! cut the pairs anywhere, after retention, after a migration of a log written before the
//! summary existed, and after an older headwall wrote past it. And `--against` answered from the
//! record shapes against asking the policy about every record.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{options, public_key};

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use headwall_audit::{
    AuditLog, AuditReader, Disclosure, ExposureFilter, TimeRange, Unallowed, verify,
};
use headwall_identity::Msisdn;
use rusqlite::Connection;

/// Deterministic random data, so a failure can be replayed (testkit's SplitMix64).
type Rng = headwall_testkit::SplitMix64;

const PARTNERS: [&str; 3] = ["agecheck", "carrierpay", "idcheck"];
const HOSTS: [&str; 4] = [
    "verify.agecheck.test",
    "pay.carrierbilling.test",
    "id.idcheck.test",
    "shared.example.test",
];

fn random_disclosure(rng: &mut Rng) -> Disclosure {
    let msisdn = format!("4477009{:05}", rng.index(25));
    Disclosure {
        request_id: "r".into(),
        partner: PARTNERS[rng.index(PARTNERS.len())].into(),
        purpose: "age_verification".into(),
        msisdn: Msisdn::parse(&msisdn).unwrap(),
        kinds: vec!["pseudonym".into()],
        headers: vec!["X-Subscriber-Id".into()],
        host: HOSTS[rng.index(HOSTS.len())].into(),
        port: 80,
        // Now and then outside the partner's destinations: another shape on the same host.
        upstream_ip: IpAddr::from([127, 0, 0, if rng.index(4) == 0 { 3 } else { 2 }]),
        client_ip: IpAddr::from([127, 0, 0, 5]),
        policy_hash: "policy-1".into(),
    }
}

/// Writes `bursts` bursts of records through the writer, a few milliseconds apart, so that the
/// records have many distinct times. A burst's records are sent at once, so that the writer
/// folds them into few batches, in which a subscriber often has more than one record (the
/// summary gathers a batch in memory before writing it); the test fails if no batch did.
async fn write_bursts(log: &AuditLog, rng: &mut Rng, bursts: usize, per_burst: usize) {
    let commits = log.commits();
    for _ in 0..bursts {
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..per_burst {
            let (log, disclosure) = (log.clone(), random_disclosure(rng));
            burst.spawn(async move { log.disclose(disclosure).await });
        }
        while let Some(written) = burst.join_next().await {
            written.unwrap().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    if per_burst > 1 {
        assert!(
            log.commits() - commits < (bursts * per_burst) as u64,
            "every record had a batch of its own"
        );
    }
}

fn times(path: &Path) -> Vec<i64> {
    headwall_audit::catch_up(path).unwrap();
    let connection = Connection::open(path).unwrap();
    let mut statement = connection
        .prepare("SELECT DISTINCT ts FROM disclosures ORDER BY ts")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Whether the reader will answer from the summary: it covers every record.
fn summary_in_use(path: &Path) -> bool {
    headwall_audit::catch_up(path).unwrap();
    let connection = Connection::open(path).unwrap();
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    if version < 1 {
        return false;
    }
    let (state, table): ((i64, i64), (i64, i64)) = connection
        .query_row(
            "SELECT (SELECT last_id FROM exposure_state), (SELECT removed_through FROM exposure_state),
                    COALESCE((SELECT MAX(id) FROM disclosures),
                             (SELECT removed_through FROM chain_anchor
                              WHERE chain = 'disclosures'), 0),
                    COALESCE((SELECT removed_through FROM chain_anchor
                              WHERE chain = 'disclosures'), 0)",
            [],
            |row| Ok(((row.get(0)?, row.get(1)?), (row.get(2)?, row.get(3)?))),
        )
        .unwrap();
    state == table
}

/// A time bound for a random window: none, a record's time, or one millisecond either side.
fn bound(rng: &mut Rng, times: &[i64]) -> Option<i64> {
    if times.is_empty() || rng.index(5) == 0 {
        return None;
    }
    let ts = times[rng.index(times.len())];
    Some(match rng.index(3) {
        0 => ts - 1,
        1 => ts,
        _ => ts + 1,
    })
}

/// The summary's answers equal the plain query's for `filters` random filters.
fn assert_same_answers(path: &Path, rng: &mut Rng, filters: usize) {
    let times = times(path);
    let reader = AuditReader::open(path).unwrap();
    let mut fixed = vec![ExposureFilter::default()];
    for partner in PARTNERS {
        fixed.push(ExposureFilter {
            partner: Some(partner.into()),
            ..ExposureFilter::default()
        });
    }
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        // Windows that hold everything, nothing, and cut at the very ends.
        for (from, to) in [
            (Some(*first), Some(*last + 1)),
            (Some(*first + 1), None),
            (None, Some(*last)),
            (Some(*last + 1), None),
            (None, Some(*first)),
            (Some(*last), Some(*first)),
        ] {
            fixed.push(ExposureFilter {
                range: TimeRange { from, to },
                ..ExposureFilter::default()
            });
        }
    }
    let random = (0..filters).map(|_| ExposureFilter {
        partner: (rng.index(3) == 0).then(|| PARTNERS[rng.index(PARTNERS.len())].to_owned()),
        host: (rng.index(3) == 0).then(|| HOSTS[rng.index(HOSTS.len())].to_owned()),
        range: TimeRange {
            from: bound(rng, &times),
            to: bound(rng, &times),
        },
    });
    for filter in fixed.into_iter().chain(random) {
        let fast = reader.exposure(&filter).unwrap();
        let plain = reader.exposure_scan(&filter).unwrap();
        assert_eq!(fast, plain, "{filter:?}");
    }
}

#[tokio::test]
async fn the_summary_answers_like_the_plain_query_through_writes_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut rng = Rng::new(7);
    let log = AuditLog::open(&path, options()).unwrap();
    write_bursts(&log, &mut rng, 12, 15).await;
    assert!(summary_in_use(&path));
    assert_same_answers(&path, &mut rng, 300);

    // Retention at a time that cuts the log (and some triples) in two.
    let times = times(&path);
    let cutoff = times[times.len() / 2];
    assert!(log.prune(cutoff).await.unwrap() > 0);
    assert!(summary_in_use(&path));
    assert_same_answers(&path, &mut rng, 300);

    // More records, then retention of all but the newest burst, then of everything.
    write_bursts(&log, &mut rng, 4, 10).await;
    let times = self::times(&path);
    assert!(log.prune(times[times.len() - 3]).await.unwrap() > 0);
    assert_same_answers(&path, &mut rng, 200);
    assert!(
        log.prune(headwall_audit::time::now_ms() + 1_000)
            .await
            .unwrap()
            > 0
    );
    assert_same_answers(&path, &mut rng, 20);
    let reader = AuditReader::open(&path).unwrap();
    assert!(
        reader
            .exposure(&ExposureFilter::default())
            .unwrap()
            .is_empty()
    );
    write_bursts(&log, &mut rng, 3, 10).await;
    assert!(summary_in_use(&path));
    assert_same_answers(&path, &mut rng, 100);
    log.close().await;

    // Derived data only: the chain still verifies, and reopening changes nothing.
    let key = public_key();
    assert!(verify(&path, &key).unwrap().is_ok());
    let log = AuditLog::open(&path, options()).unwrap();
    log.close().await;
    assert!(summary_in_use(&path));
    assert_same_answers(&path, &mut rng, 50);
}

/// The schema before the summary (what `AuditLog::open` created until now).
const OLD_SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE disclosures (
    id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, request_id TEXT NOT NULL,
    partner TEXT NOT NULL, purpose TEXT NOT NULL, msisdn TEXT NOT NULL, kinds TEXT NOT NULL,
    headers TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,
    upstream_ip TEXT NOT NULL, client_ip TEXT NOT NULL, policy_hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX disclosures_msisdn ON disclosures (msisdn, ts);
CREATE INDEX disclosures_ts ON disclosures (ts);
CREATE INDEX disclosures_exposure ON disclosures (partner, host, msisdn, ts);
CREATE INDEX disclosures_host ON disclosures (host, ts);
CREATE TABLE security_events (
    id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX security_events_ts ON security_events (ts);
CREATE TABLE chain_anchor (
    chain TEXT PRIMARY KEY, removed_through INTEGER NOT NULL, hash TEXT NOT NULL);
";

/// Appends `count` rows straight into the table, as a writer that knows nothing of the
/// summary would (chain hashes are not the point here), at times spread over `days` days.
fn insert_raw(connection: &Connection, rng: &mut Rng, count: usize, start: i64) -> i64 {
    let next: i64 = connection
        .query_row(
            "SELECT COALESCE(MAX(id), 0) + 1 FROM disclosures",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let mut ts = start;
    for id in next..next + i64::try_from(count).unwrap() {
        // Times never decrease along the chain; several records share a millisecond.
        ts += i64::try_from(rng.index(3)).unwrap() * 3_600_000;
        connection
            .execute(
                "INSERT INTO disclosures VALUES (?1, ?2, 'r', ?3, 'age_verification', ?4,
                 'pseudonym', 'X-Subscriber-Id', ?5, 80, '127.0.0.2', '127.0.0.5', 'p', 'x', 'y')",
                rusqlite::params![
                    id,
                    ts,
                    PARTNERS[rng.index(PARTNERS.len())],
                    format!("4477009{:05}", rng.index(25)),
                    HOSTS[rng.index(HOSTS.len())],
                ],
            )
            .unwrap();
    }
    ts
}

#[tokio::test]
async fn a_log_from_before_the_summary_is_migrated_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut rng = Rng::new(11);
    let end = {
        let connection = Connection::open(&path).unwrap();
        connection.execute_batch(OLD_SCHEMA).unwrap();
        insert_raw(&connection, &mut rng, 400, 1_735_689_600_000)
    };
    // A reader of the old log answers with the plain query.
    assert!(!summary_in_use(&path));
    let before = AuditReader::open(&path)
        .unwrap()
        .exposure(&ExposureFilter::default())
        .unwrap();

    let log = AuditLog::open(&path, options()).unwrap();
    log.close().await;
    assert!(summary_in_use(&path));
    let connection = Connection::open(&path).unwrap();
    let indexes: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'disclosures' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        indexes,
        [
            "disclosures_host_window",
            "disclosures_msisdn",
            "disclosures_partner",
            "disclosures_ts"
        ]
    );
    let reader = AuditReader::open(&path).unwrap();
    assert_eq!(reader.exposure(&ExposureFilter::default()).unwrap(), before);
    assert_same_answers(&path, &mut rng, 300);

    // An older headwall writes past the summary: readers fall back to the plain query, and the
    // next open rebuilds it.
    insert_raw(&connection, &mut rng, 50, end);
    assert!(!summary_in_use(&path));
    assert_same_answers(&path, &mut rng, 50);
    let log = AuditLog::open(&path, options()).unwrap();
    log.close().await;
    assert!(summary_in_use(&path));
    assert_same_answers(&path, &mut rng, 300);

    // ... or prunes past it.
    connection
        .execute_batch(
            "DELETE FROM disclosures WHERE id <= 100;
             INSERT INTO chain_anchor VALUES ('disclosures', 100, 'y')
             ON CONFLICT (chain) DO UPDATE SET removed_through = 100",
        )
        .unwrap();
    assert!(!summary_in_use(&path));
    assert_same_answers(&path, &mut rng, 50);
    let log = AuditLog::open(&path, options()).unwrap();
    log.close().await;
    assert!(summary_in_use(&path));
    assert_same_answers(&path, &mut rng, 300);
}

#[tokio::test]
async fn writes_and_retention_across_days_keep_the_day_counts_exact() {
    // Records spread over weeks (written behind the writer's back, so the next open rebuilds
    // the summary), then new ones through the writer: every returning subscriber's last record
    // moves from an old day to today.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut rng = Rng::new(19);
    AuditLog::open(&path, options()).unwrap().close().await;
    {
        let connection = Connection::open(&path).unwrap();
        insert_raw(&connection, &mut rng, 600, 1_735_689_600_000);
    }
    let log = AuditLog::open(&path, options()).unwrap();
    assert!(summary_in_use(&path));
    assert_same_answers(&path, &mut rng, 200);
    write_bursts(&log, &mut rng, 4, 25).await;
    assert!(summary_in_use(&path));
    assert_same_answers(&path, &mut rng, 300);

    // Retention steps that end mid-day, on older and older cutoffs.
    let times = times(&path);
    for share in [5, 3, 2] {
        let cutoff = times[times.len() / share] + 1;
        while log.prune(cutoff).await.unwrap() > 0 {}
        assert!(summary_in_use(&path));
        assert_same_answers(&path, &mut rng, 200);
        write_bursts(&log, &mut rng, 1, 10).await;
        assert_same_answers(&path, &mut rng, 100);
    }
    log.close().await;
}

#[tokio::test]
async fn against_streams_and_can_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut rng = Rng::new(3);
    let log = AuditLog::open(&path, options()).unwrap();
    write_bursts(&log, &mut rng, 3, 20).await;
    log.close().await;
    let policy = headwall_policy::load_policy("narrow.toml", NARROW_POLICY).unwrap();
    let every = against_every_record(&path, &policy, &ExposureFilter::default());
    assert!(every.len() > 10, "{}", every.len());
    assert_against_like_every_record(&path, &mut rng, &policy);
    let reader = AuditReader::open(&path).unwrap();
    let filter = ExposureFilter::default();
    let mut seen = 0;
    reader
        .against_each(&policy, &filter, |_| {
            seen += 1;
            seen < 5
        })
        .unwrap();
    assert_eq!(seen, 5);
}

const NARROW_POLICY: &str = r#"
[[partner]]
name = "agecheck"
purpose = "age_verification"
hosts = ["verify.agecheck.test"]
destinations = ["127.0.0.2/32"]
headers = { "X-Subscriber-Id" = "pseudonym" }
"#;

/// What `against` must answer: the policy asked about every record in the filter, oldest first.
fn against_every_record(
    path: &Path,
    policy: &headwall_policy::Policy,
    filter: &ExposureFilter,
) -> Vec<Unallowed> {
    headwall_audit::catch_up(path).unwrap();
    let connection = Connection::open(path).unwrap();
    let mut statement = connection
        .prepare(&format!(
            "SELECT {} FROM disclosures ORDER BY id",
            headwall_audit::DisclosureRow::SQLITE_COLUMNS
        ))
        .unwrap();
    statement
        .query_map([], headwall_audit::DisclosureRow::from_sqlite)
        .unwrap()
        .map(Result::unwrap)
        .filter(|row| {
            filter.partner.as_ref().is_none_or(|p| *p == row.partner)
                && filter.host.as_ref().is_none_or(|h| *h == row.host)
                && filter.range.from.is_none_or(|from| row.ts >= from)
                && filter.range.to.is_none_or(|to| row.ts < to)
        })
        .filter_map(|row| {
            headwall_audit::allowed_by(policy, &row)
                .err()
                .map(|reason| Unallowed {
                    record: row.into(),
                    reason,
                })
        })
        .collect()
}

fn assert_against_like_every_record(path: &Path, rng: &mut Rng, policy: &headwall_policy::Policy) {
    let reader = AuditReader::open(path).unwrap();
    let times = times(path);
    let mut filters = vec![ExposureFilter::default()];
    filters.extend(PARTNERS.iter().map(|p| ExposureFilter {
        partner: Some((*p).into()),
        ..ExposureFilter::default()
    }));
    filters.extend(HOSTS.iter().map(|h| ExposureFilter {
        host: Some((*h).into()),
        ..ExposureFilter::default()
    }));
    for _ in 0..20 {
        filters.push(ExposureFilter {
            partner: (rng.index(3) == 0).then(|| PARTNERS[rng.index(PARTNERS.len())].into()),
            host: (rng.index(3) == 0).then(|| HOSTS[rng.index(HOSTS.len())].into()),
            range: TimeRange {
                from: bound(rng, &times),
                to: bound(rng, &times),
            },
        });
    }
    for filter in &filters {
        assert_eq!(
            reader.against(policy, filter).unwrap(),
            against_every_record(path, policy, filter),
            "{filter:?}"
        );
    }
}

#[tokio::test]
async fn against_reads_only_what_the_shapes_say_and_only_while_they_cover_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut rng = Rng::new(23);
    let policy = headwall_policy::load_policy("narrow.toml", NARROW_POLICY).unwrap();
    let log = AuditLog::open(&path, options()).unwrap();
    write_bursts(&log, &mut rng, 6, 20).await;
    assert!(!against_every_record(&path, &policy, &ExposureFilter::default()).is_empty());
    assert_against_like_every_record(&path, &mut rng, &policy);

    // Retention subtracts what it removes from the shapes.
    let times = times(&path);
    while log.prune(times[times.len() / 2]).await.unwrap() > 0 {}
    write_bursts(&log, &mut rng, 2, 20).await;
    assert_against_like_every_record(&path, &mut rng, &policy);
    log.close().await;

    // While the shapes' state matches the table, the reader trusts them: with the shapes gone
    // it finds nothing to read.
    let connection = Connection::open(&path).unwrap();
    connection
        .execute("DELETE FROM exposure_shapes", [])
        .unwrap();
    let reader = AuditReader::open(&path).unwrap();
    assert_eq!(
        reader.against(&policy, &ExposureFilter::default()).unwrap(),
        Vec::new()
    );
    // A record written by a headwall that does not keep the shapes: they no longer cover the
    // log, and the reader reads every record instead.
    insert_raw(&connection, &mut rng, 30, times[times.len() - 1] + 10);
    drop(connection);
    assert_against_like_every_record(&path, &mut rng, &policy);
    // The next open counts the shapes again, and the answers stay the same.
    let log = AuditLog::open(&path, options()).unwrap();
    log.close().await;
    let connection = Connection::open(&path).unwrap();
    let shapes: i64 = connection
        .query_row("SELECT COUNT(*) FROM exposure_shapes", [], |row| row.get(0))
        .unwrap();
    assert!(shapes > 0);
    assert_against_like_every_record(&path, &mut rng, &policy);
}

#[tokio::test]
async fn against_reads_only_the_hosts_the_policy_refuses_when_they_are_few() {
    // Most records are allowed; a few on one host are not: `against` reads that host's records
    // through the index instead of scanning (they hold under 1/20 of the log).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut rng = Rng::new(29);
    let policy = headwall_policy::load_policy("narrow.toml", NARROW_POLICY).unwrap();
    let log = AuditLog::open(&path, options()).unwrap();
    let allowed = || Disclosure {
        partner: "agecheck".into(),
        host: "verify.agecheck.test".into(),
        ..random_disclosure(&mut Rng::new(1))
    };
    for round in 0..4 {
        let mut burst = tokio::task::JoinSet::new();
        for i in 0..100 {
            let disclosure = if i == 7 * round + 3 {
                Disclosure {
                    host: "shared.example.test".into(),
                    ..allowed()
                }
            } else {
                Disclosure {
                    upstream_ip: IpAddr::from([127, 0, 0, 2]),
                    ..allowed()
                }
            };
            let log = log.clone();
            burst.spawn(async move { log.disclose(disclosure).await });
        }
        while let Some(written) = burst.join_next().await {
            written.unwrap().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    log.close().await;
    let every = against_every_record(&path, &policy, &ExposureFilter::default());
    assert_eq!(every.len(), 4);
    assert!(every.iter().all(|u| u.record.host == "shared.example.test"));
    assert_against_like_every_record(&path, &mut rng, &policy);
}
