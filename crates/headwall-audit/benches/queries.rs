//! The regulator's questions against a large disclosure log, timed through the real
//! [`AuditReader`], with SQLite's query plan for each.
//!
//! `HEADWALL_BENCH_ROWS=10000000 cargo bench -p headwall-audit --bench queries`
//!
//! - The database (`target/bench-audit-<rows>.db`) is built once and reused while its schema
//!   matches what [`AuditLog::open`] creates today. Rows have a realistic shape (about rows / 5
//!   distinct MSISDNs, half the traffic from a tenth of them; 20 partners on 50 hosts with a
//!   skewed load; timestamps spread evenly over 400 days) but random chain hashes: query timing
//!   does not need a valid chain. The schema comes from `AuditLog::open`; the indexes are
//!   dropped during the bulk load and recreated from their own `CREATE INDEX` text.
//! - Each query is timed three ways: `cold` (the file evicted from the OS page cache with
//!   `dd iflag=nocache`, then a fresh reader), `fresh` (a fresh reader, so SQLite's own cache is
//!   empty, OS cache warm) and `warm` (one reader, after a warm-up run). Medians are shown.
//! - The plans are printed from the same SQL the reader builds (`src/query.rs` and
//!   `src/summary.rs`; keep them in step).
//!
//! Environment: `HEADWALL_BENCH_ROWS` (default 1000000), `HEADWALL_BENCH_RUNS` (default 5),
//! `HEADWALL_BENCH_COLD=0` skips the evicted-cache runs, `HEADWALL_BENCH_AGAINST_ALL=1` also
//! runs the single-partner policy over all time without a partner filter (about 95 % of the
//! log comes back, streamed through `against_each` as the CLI reads it; it takes over 30 s at
//! 10 M rows, so it is on by default only up to 2 M rows; the peak RSS is printed at the end),
//! `HEADWALL_BENCH_EXPERIMENTS=1` then tries the candidate fixes on a copy of the database
//! (`only`: skips the main table; `more`: only the second round, see [`more_experiments`]).

#![allow(clippy::unwrap_used)] // a bench: a failed unwrap is a failed run

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use headwall_audit::{
    AuditLog, AuditOptions, AuditReader, Disclosure, DisclosureRow, DisclosureView, ExposureFilter,
    ExposureRow, TimeRange, Unallowed, allowed_by,
};
use headwall_identity::{Msisdn, SigningKey};
use headwall_policy::{Policy, load_policy};
use rusqlite::Connection;
use rusqlite::types::Value;

const DAY: i64 = 86_400_000;
/// 2025-01-01T00:00:00Z.
const START: i64 = 1_735_689_600_000;
const SPAN_DAYS: i64 = 400;
const PARTNERS: usize = 20;
const HOSTS: usize = 50;
/// The partner and host the filtered queries name (mid-sized: hosts 7, 27 and 47).
const PARTNER: usize = 7;
const HOST: usize = 27;

const COLUMNS: &str = "id, ts, request_id, partner, purpose, msisdn, kinds, headers, host, port, \
                       upstream_ip, client_ip, policy_hash, prev_hash, hash";

fn main() {
    let rows = env_u64("HEADWALL_BENCH_ROWS", 1_000_000);
    let runs = usize::try_from(env_u64("HEADWALL_BENCH_RUNS", 5))
        .unwrap()
        .max(1);
    let cold = std::env::var("HEADWALL_BENCH_COLD").map_or(true, |v| v != "0");
    let shape = Shape::new(rows);
    println!("load average at start: {}", load_average());
    let path = target_dir().join(format!("bench-audit-{rows}.db"));
    ensure_database(&path, &shape);
    println!(
        "database: {} ({:.2} GB), {} rows",
        path.display(),
        file_gb(&path),
        rows
    );
    print_counts(&path);

    let policies = Policies::new();
    let mut queries = queries(&shape, &policies);
    let against_all =
        std::env::var("HEADWALL_BENCH_AGAINST_ALL").map_or(rows <= 2_000_000, |v| v == "1");
    if !against_all {
        queries.retain(|q| q.name != AGAINST_ALL_NAME);
    }

    println!("\n## Query plans\n");
    {
        let connection = Connection::open(&path).unwrap();
        for query in &queries {
            println!("{}\n{}", query.name, plan(&connection, query));
        }
    }

    let experiments_mode = std::env::var("HEADWALL_BENCH_EXPERIMENTS").unwrap_or_default();
    if experiments_mode != "only" && experiments_mode != "more" {
        println!("## Timings (median ms; {runs} runs per mode, 3 when a run takes over 3 s)\n");
        let mut table = Vec::new();
        for query in &queries {
            let timing = measure(&path, query, runs, cold);
            println!("{}", timing.line(&query.name));
            table.push((query.name.clone(), timing));
        }
        println!("\n{}", markdown(&table, cold));
        println!("load average at end: {}", load_average());
        println!("peak RSS of this process: {}", peak_rss());
    }
    if experiments_mode == "1" || experiments_mode == "only" {
        experiments(&path, &shape, runs);
    }
    if experiments_mode == "more" {
        more_experiments(&path, &shape, runs);
    }
}

// ---------------------------------------------------------------------------------------------
// The data.

/// The shape of the generated log.
struct Shape {
    rows: u64,
    /// MSISDNs that can occur.
    pool: u64,
    /// The first `heavy` of them take half the traffic.
    heavy: u64,
    partners: Vec<PartnerShape>,
    hosts: Vec<String>,
}

struct PartnerShape {
    name: String,
    purpose: &'static str,
    headers: &'static str,
    kinds: &'static str,
}

impl Shape {
    fn new(rows: u64) -> Shape {
        let pool = (rows * 22 / 100).max(1_000);
        let purposes = [
            (
                "age_verification",
                "X-Subscriber-Id,X-Age-Verified",
                "pseudonym,age_verified",
            ),
            ("billing", "X-MSISDN,X-Billing-Token", "msisdn,token"),
            (
                "identification",
                "X-Operator-Token,X-Age-Verified,X-MSISDN",
                "token,age_verified,msisdn",
            ),
        ];
        let partners = (0..PARTNERS)
            .map(|p| {
                let (purpose, headers, kinds) = purposes[p % 3];
                PartnerShape {
                    name: format!("partner{p:02}"),
                    purpose,
                    headers,
                    kinds,
                }
            })
            .collect();
        let hosts = (0..HOSTS)
            .map(|h| format!("h{h}.partner{:02}.test", h % PARTNERS))
            .collect();
        Shape {
            rows,
            pool,
            heavy: pool / 10,
            partners,
            hosts,
        }
    }

    /// The MSISDN with pool index `k` (a bijection onto 4477 + 8 digits).
    fn msisdn(k: u64) -> String {
        format!("4477{:08}", (k * 48_271 + 12_345) % 100_000_000)
    }

    fn ts(&self, index: u64) -> i64 {
        let offset = i128::from(index) * i128::from(SPAN_DAYS * DAY) / i128::from(self.rows);
        START + i64::try_from(offset).unwrap()
    }
}

/// Test data from a seed (testkit's SplitMix64).
type Rng = headwall_testkit::SplitMix64;

/// 32 random bytes as 64 hex digits, into `out`.
fn hex64(rng: &mut Rng, out: &mut String) {
    out.clear();
    for _ in 0..4 {
        let _ = write!(out, "{:016x}", rng.next_u64());
    }
}

fn options() -> AuditOptions {
    AuditOptions {
        signing_key: SigningKey::from_seed(&[0x42; 32]).unwrap(),
        checkpoint_every: Duration::from_secs(60),
        commit_window: headwall_audit::DEFAULT_COMMIT_WINDOW,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Opens and closes an [`AuditLog`] on `path`, which applies the crate's schema.
fn apply_schema(path: &Path) {
    runtime().block_on(async {
        let log = AuditLog::open(path, options()).unwrap();
        log.close().await;
    });
}

/// Every schema object's SQL, as `AuditLog::open` leaves it.
fn schema_text(connection: &Connection) -> String {
    let mut statement = connection
        .prepare("SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok(format!(
                "{} {} {}\n",
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn fresh_schema() -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.db");
    apply_schema(&path);
    schema_text(&Connection::open(&path).unwrap())
}

fn marker(path: &Path) -> PathBuf {
    path.with_extension("db.done")
}

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm", ".done"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
    let _ = std::fs::remove_file(headwall_audit::checkpoint_path(path));
}

/// Builds the database unless a complete one with today's schema is cached.
fn ensure_database(path: &Path, shape: &Shape) {
    let expected = format!("rows {}\n{}", shape.rows, fresh_schema());
    let cached = std::fs::read_to_string(marker(path)).unwrap_or_default();
    if cached == expected {
        println!("reusing {}", path.display());
        return;
    }
    // A complete database of the same size from an older schema: upgrade it in place, as an
    // operator's log is (the writer's migration at open), and time that.
    if cached.starts_with(&format!("rows {}\n", shape.rows)) && path.exists() {
        println!("upgrading {} in place (AuditLog::open)", path.display());
        let started = Instant::now();
        apply_schema(path);
        let took = started.elapsed();
        let _ = std::fs::remove_file(headwall_audit::checkpoint_path(path));
        let upgraded = schema_text(&Connection::open(path).unwrap());
        if format!("rows {}\n{upgraded}", shape.rows) == expected {
            println!(
                "  upgraded in {:.1} s ({:.2} GB now)",
                took.as_secs_f64(),
                file_gb(path)
            );
            std::fs::write(marker(path), expected).unwrap();
            return;
        }
        println!("  the upgraded schema differs from a new log's: rebuilding");
    }
    remove_database(path);
    println!("building {} ({} rows)", path.display(), shape.rows);
    let started = Instant::now();
    apply_schema(path);
    let mut connection = Connection::open(path).unwrap();
    let mode: String = connection
        .query_row("PRAGMA journal_mode = OFF", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "off");
    connection
        .execute_batch(
            "PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000; PRAGMA threads = 2;",
        )
        .unwrap();
    let indexes: Vec<(String, String)> = {
        let mut statement = connection
            .prepare(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' \
                 AND tbl_name = 'disclosures' AND sql IS NOT NULL ORDER BY name",
            )
            .unwrap();
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    for (name, _) in &indexes {
        connection
            .execute_batch(&format!("DROP INDEX {name}"))
            .unwrap();
    }

    let load_started = Instant::now();
    insert_rows(&mut connection, shape);
    let load = load_started.elapsed();
    println!("  rows inserted in {:.1} s", load.as_secs_f64());
    let mut index_total = Duration::ZERO;
    for (name, sql) in &indexes {
        let index_started = Instant::now();
        connection.execute_batch(sql).unwrap();
        let took = index_started.elapsed();
        index_total += took;
        println!("  {name} built in {:.1} s", took.as_secs_f64());
    }
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(connection);
    // Opening the writer again proves it accepts the file, and rebuilds the exposure summary:
    // the rows went in behind its back.
    let summary_started = Instant::now();
    apply_schema(path);
    println!(
        "  exposure summary rebuilt at open in {:.1} s",
        summary_started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_file(headwall_audit::checkpoint_path(path));
    let built = schema_text(&Connection::open(path).unwrap());
    assert_eq!(format!("rows {}\n{built}", shape.rows), expected);
    std::fs::write(marker(path), expected).unwrap();
    println!(
        "  built in {:.1} s (insert {:.1} s, indexes {:.1} s)",
        started.elapsed().as_secs_f64(),
        load.as_secs_f64(),
        index_total.as_secs_f64()
    );
}

fn insert_rows(connection: &mut Connection, shape: &Shape) {
    let mut rng = Rng::new(0x00c0_ffee);
    let policy_hashes: Vec<String> = (0..=SPAN_DAYS / 30)
        .map(|_| {
            let mut text = String::new();
            hex64(&mut rng, &mut text);
            text
        })
        .collect();
    let transaction = connection.transaction().unwrap();
    {
        let mut insert = transaction
            .prepare(
                "INSERT INTO disclosures (id, ts, request_id, partner, purpose, msisdn, kinds, \
                 headers, host, port, upstream_ip, client_ip, policy_hash, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )
            .unwrap();
        let mut prev_hash = headwall_audit::GENESIS_HASH.to_owned();
        let mut hash = String::with_capacity(64);
        let mut request_id = String::new();
        let mut upstream = String::new();
        let mut client = String::new();
        for index in 0..shape.rows {
            let ts = shape.ts(index);
            let epoch = (ts - START) / (30 * DAY);
            // Hosts skewed towards the low numbers: host 0 takes 14 %, host 49 1 %.
            let host = ((rng.unit().powi(2) * HOSTS as f64) as usize).min(HOSTS - 1);
            let partner = &shape.partners[host % PARTNERS];
            let k = if rng.unit() < 0.5 {
                rng.below(shape.heavy)
            } else {
                rng.below(shape.pool)
            };
            let port: u16 = if partner.purpose == "billing" && rng.below(4) == 0 {
                8080
            } else {
                80
            };
            upstream.clear();
            // One record in 200 went to an address outside the /26 the test policies allow.
            if rng.below(200) == 0 {
                let _ = write!(upstream, "10.0.{}.{}", host % PARTNERS, 100 + rng.below(50));
            } else {
                let _ = write!(upstream, "10.0.{}.{}", host % PARTNERS, 1 + rng.below(8));
            }
            client.clear();
            let _ = write!(
                client,
                "100.{}.{}.{}",
                64 + rng.below(64),
                rng.below(256),
                1 + rng.below(254)
            );
            request_id.clear();
            let _ = write!(
                request_id,
                "{:08x}-{:x}",
                0x5eed_0000_u64 + u64::try_from(epoch).unwrap(),
                index
            );
            hex64(&mut rng, &mut hash);
            insert
                .execute(rusqlite::params![
                    i64::try_from(index).unwrap() + 1,
                    ts,
                    request_id,
                    partner.name,
                    partner.purpose,
                    Shape::msisdn(k),
                    partner.kinds,
                    partner.headers,
                    shape.hosts[host],
                    port,
                    upstream,
                    client,
                    policy_hashes[usize::try_from(epoch).unwrap()],
                    prev_hash,
                    hash,
                ])
                .unwrap();
            std::mem::swap(&mut prev_hash, &mut hash);
            if (index + 1) % 1_000_000 == 0 {
                println!("  {} rows", index + 1);
            }
        }
    }
    transaction.commit().unwrap();
}

fn print_counts(path: &Path) {
    let connection = Connection::open(path).unwrap();
    let count = |sql: &str| -> i64 { connection.query_row(sql, [], |row| row.get(0)).unwrap() };
    println!(
        "distinct msisdns {}, partners {}, hosts {}, days {:.0}",
        count("SELECT COUNT(*) FROM (SELECT DISTINCT msisdn FROM disclosures)"),
        count("SELECT COUNT(DISTINCT partner) FROM disclosures"),
        count("SELECT COUNT(DISTINCT host) FROM disclosures"),
        count("SELECT MAX(ts) - MIN(ts) FROM disclosures") as f64 / DAY as f64,
    );
}

// ---------------------------------------------------------------------------------------------
// The queries.

struct Policies {
    /// Only partner07, its destinations narrowed to the /26 most of its records went to.
    one: Policy,
    /// All 20 partners, each narrowed the same way: about 0.5 % of the log is not allowed.
    all: Policy,
    /// All 20 partners with their whole /24: every record is allowed (the check after a policy
    /// change that should not have taken anything away).
    wide: Policy,
}

impl Policies {
    fn new() -> Policies {
        let partner = |p: usize, prefix: u8| -> String {
            let (purpose, headers) = match p % 3 {
                0 => (
                    "age_verification",
                    r#"{ "X-Subscriber-Id" = "pseudonym", "X-Age-Verified" = "age_verified" }"#,
                ),
                1 => (
                    "billing",
                    r#"{ "X-MSISDN" = "msisdn", "X-Billing-Token" = "token" }"#,
                ),
                _ => (
                    "identification",
                    r#"{ "X-Operator-Token" = "token", "X-Age-Verified" = "age_verified", "X-MSISDN" = "msisdn" }"#,
                ),
            };
            let hosts: Vec<String> = (p..HOSTS)
                .step_by(PARTNERS)
                .map(|h| format!("\"h{h}.partner{p:02}.test\""))
                .collect();
            format!(
                "[[partner]]\nname = \"partner{p:02}\"\npurpose = \"{purpose}\"\nhosts = [{}]\n\
                 ports = [80, 8080]\ndestinations = [\"10.0.{p}.0/{prefix}\"]\nheaders = {headers}\n\n",
                hosts.join(", ")
            )
        };
        let load = |text: &str| match load_policy("bench.toml", text) {
            Ok(policy) => policy,
            Err(errors) => panic!("bench policy: {errors}"),
        };
        let all: String = (0..PARTNERS).map(|p| partner(p, 26)).collect();
        let wide: String = (0..PARTNERS).map(|p| partner(p, 24)).collect();
        Policies {
            one: load(&partner(PARTNER, 26)),
            all: load(&all),
            wide: load(&wide),
        }
    }
}

enum Kind<'p> {
    Subscriber(Msisdn, TimeRange),
    Exposure(ExposureFilter),
    Against(&'p Policy, ExposureFilter),
}

struct Query<'p> {
    name: String,
    kind: Kind<'p>,
}

const AGAINST_ALL_NAME: &str = "against partner07 policy, all time, no --partner";

fn queries<'p>(shape: &Shape, policies: &'p Policies) -> Vec<Query<'p>> {
    let all_time = TimeRange::default();
    let month = TimeRange {
        from: Some(START + 200 * DAY),
        to: Some(START + 230 * DAY),
    };
    let day = TimeRange {
        from: Some(START + 300 * DAY),
        to: Some(START + 301 * DAY),
    };
    let partner = Some(format!("partner{PARTNER:02}"));
    let host = Some(shape.hosts[HOST].clone());
    let heavy = Msisdn::parse(&Shape::msisdn(0)).unwrap();
    let light = Msisdn::parse(&Shape::msisdn(shape.pool - 1)).unwrap();
    let query = |name: &str, kind| Query {
        name: name.to_owned(),
        kind,
    };
    vec![
        query(
            "subscriber (heavy user), all time",
            Kind::Subscriber(heavy.clone(), all_time),
        ),
        query(
            "subscriber (heavy user), 30 days",
            Kind::Subscriber(heavy, month),
        ),
        query(
            "subscriber (light user), all time",
            Kind::Subscriber(light, all_time),
        ),
        query(
            "exposure, all time",
            Kind::Exposure(ExposureFilter::default()),
        ),
        query(
            "exposure --partner partner07",
            Kind::Exposure(ExposureFilter {
                partner: partner.clone(),
                ..ExposureFilter::default()
            }),
        ),
        query(
            "exposure --host h27.partner07.test",
            Kind::Exposure(ExposureFilter {
                host,
                ..ExposureFilter::default()
            }),
        ),
        query(
            "exposure, 30 days",
            Kind::Exposure(ExposureFilter {
                range: month,
                ..ExposureFilter::default()
            }),
        ),
        query(
            "exposure, 1 day",
            Kind::Exposure(ExposureFilter {
                range: day,
                ..ExposureFilter::default()
            }),
        ),
        query(
            "exposure --host h27.partner07.test, 30 days",
            Kind::Exposure(ExposureFilter {
                host: Some(shape.hosts[HOST].clone()),
                range: month,
                ..ExposureFilter::default()
            }),
        ),
        query(
            "exposure --partner partner07, 30 days",
            Kind::Exposure(ExposureFilter {
                partner: partner.clone(),
                range: month,
                ..ExposureFilter::default()
            }),
        ),
        query(
            "exposure --from day 100 (300 days)",
            Kind::Exposure(ExposureFilter {
                range: TimeRange {
                    from: Some(START + 100 * DAY),
                    to: None,
                },
                ..ExposureFilter::default()
            }),
        ),
        query(
            "exposure, all time as a window (--from before the first record)",
            Kind::Exposure(ExposureFilter {
                range: TimeRange {
                    from: Some(START - DAY),
                    to: None,
                },
                ..ExposureFilter::default()
            }),
        ),
        query(
            "against partner07 policy, 1 day",
            Kind::Against(
                &policies.one,
                ExposureFilter {
                    range: day,
                    ..ExposureFilter::default()
                },
            ),
        ),
        query(
            "against partner07 policy --partner partner07, 1 day",
            Kind::Against(
                &policies.one,
                ExposureFilter {
                    partner: partner.clone(),
                    range: day,
                    ..ExposureFilter::default()
                },
            ),
        ),
        query(
            "against partner07 policy --partner partner07, all time",
            Kind::Against(
                &policies.one,
                ExposureFilter {
                    partner,
                    ..ExposureFilter::default()
                },
            ),
        ),
        query(
            "against 20-partner policy, all time (full scan)",
            Kind::Against(&policies.all, ExposureFilter::default()),
        ),
        query(
            "against 20-partner policy allowing every record, all time",
            Kind::Against(&policies.wide, ExposureFilter::default()),
        ),
        query(
            AGAINST_ALL_NAME,
            Kind::Against(&policies.one, ExposureFilter::default()),
        ),
    ]
}

impl Query<'_> {
    /// Runs the query through the reader; returns the rows it answered and the heap bytes the
    /// answer held.
    fn run(&self, reader: &AuditReader) -> (usize, usize) {
        match &self.kind {
            Kind::Subscriber(msisdn, range) => {
                let answer = black_box(reader.subscriber(msisdn, *range).unwrap());
                (answer.len(), answer.iter().map(view_bytes).sum())
            }
            Kind::Exposure(filter) => {
                let answer = black_box(reader.exposure(filter).unwrap());
                (answer.len(), answer.len() * size_of::<ExposureRow>())
            }
            Kind::Against(policy, filter) => {
                // Streamed, as the CLI reads it: one record held at a time.
                let mut rows = 0;
                let mut largest = 0;
                reader
                    .against_each(policy, filter, |unallowed| {
                        rows += 1;
                        largest = largest
                            .max(view_bytes(&unallowed.record) + unallowed.reason.capacity());
                        black_box(unallowed);
                        true
                    })
                    .unwrap();
                (rows, largest)
            }
        }
    }

    /// The SQL `src/query.rs` builds for this query, and its parameters.
    fn sql(&self) -> (String, Vec<Value>) {
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        let range = match &self.kind {
            Kind::Subscriber(msisdn, range) => {
                conditions.push("msisdn = ?");
                values.push(Value::Text(msisdn.expose_digits().to_owned()));
                *range
            }
            Kind::Exposure(filter) | Kind::Against(_, filter) => {
                if let Some(partner) = &filter.partner {
                    conditions.push("partner = ?");
                    values.push(Value::Text(partner.clone()));
                }
                if let Some(host) = &filter.host {
                    conditions.push("host = ?");
                    values.push(Value::Text(host.clone()));
                }
                filter.range
            }
        };
        if let Some(from) = range.from {
            conditions.push("ts >= ?");
            values.push(Value::Integer(from));
        }
        if let Some(to) = range.to {
            conditions.push("ts < ?");
            values.push(Value::Integer(to));
        }
        let filter_text = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = match &self.kind {
            // The summary (src/summary.rs): the pairs, then for each pair a window cuts, its
            // records in the window (shown for the last pair's parameters).
            Kind::Exposure(filter) if filter.range == TimeRange::default() => {
                return (
                    "SELECT partner, host, subscribers, disclosures, first, last \
                     FROM exposure_totals WHERE (?1 IS NULL OR partner = ?1) \
                     AND (?2 IS NULL OR host = ?2) ORDER BY partner, host"
                        .to_owned(),
                    vec![
                        filter.partner.clone().map_or(Value::Null, Value::Text),
                        filter.host.clone().map_or(Value::Null, Value::Text),
                    ],
                );
            }
            Kind::Exposure(filter) if filter.range.to.is_none() => {
                return (
                    "SELECT COALESCE(SUM(disclosures), 0), COALESCE(SUM(lasts), 0) \
                     FROM exposure_days WHERE partner = ?1 AND host = ?2 AND day > ?3"
                        .to_owned(),
                    vec![
                        Value::Text(filter.partner.clone().unwrap_or_else(|| "partner00".into())),
                        Value::Text(
                            filter
                                .host
                                .clone()
                                .unwrap_or_else(|| "h0.partner00.test".into()),
                        ),
                        Value::Integer(filter.range.from.unwrap_or(0).div_euclid(DAY)),
                    ],
                );
            }
            Kind::Exposure(filter) => {
                return (
                    "SELECT msisdn, ts FROM disclosures INDEXED BY disclosures_host_window \
                     WHERE host = ?1 AND ts >= ?2 AND ts < ?4 AND partner = ?3"
                        .to_owned(),
                    vec![
                        Value::Text(
                            filter
                                .host
                                .clone()
                                .unwrap_or_else(|| "h0.partner00.test".into()),
                        ),
                        Value::Integer(filter.range.from.unwrap_or(i64::MIN)),
                        Value::Text(filter.partner.clone().unwrap_or_else(|| "partner00".into())),
                        Value::Integer(filter.range.to.unwrap_or(i64::MAX)),
                    ],
                );
            }
            Kind::Against(_, filter) if filter.partner.is_some() && filter.host.is_none() => {
                format!(
                    "SELECT {COLUMNS} FROM disclosures {filter_sql} ORDER BY ts, id",
                    filter_sql = filter_text
                )
            }
            _ => format!("SELECT {COLUMNS} FROM disclosures {filter_text} ORDER BY id"),
        };
        (sql, values)
    }
}

/// Heap bytes one record of an answer holds (its strings' capacities plus the struct).
fn view_bytes(view: &DisclosureView) -> usize {
    let strings = [
        &view.time,
        &view.partner,
        &view.purpose,
        &view.msisdn,
        &view.host,
        &view.upstream_ip,
        &view.client_ip,
        &view.policy_hash,
        &view.request_id,
    ];
    size_of::<DisclosureView>()
        + strings.iter().map(|s| s.capacity()).sum::<usize>()
        + [&view.headers, &view.kinds]
            .iter()
            .map(|v| {
                v.capacity() * size_of::<String>() + v.iter().map(String::capacity).sum::<usize>()
            })
            .sum::<usize>()
}

/// `EXPLAIN QUERY PLAN`, indented by depth.
fn plan(connection: &Connection, query: &Query<'_>) -> String {
    let (sql, values) = query.sql();
    plan_sql(connection, &sql, values)
}

fn plan_sql(connection: &Connection, sql: &str, values: Vec<Value>) -> String {
    let mut statement = connection
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    let rows: Vec<(i64, i64, String)> = statement
        .query_map(rusqlite::params_from_iter(values), |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut depth: Vec<(i64, usize)> = Vec::new();
    let mut out = String::new();
    for (id, parent, detail) in rows {
        let level = depth
            .iter()
            .find(|(node, _)| *node == parent)
            .map_or(0, |(_, level)| level + 1);
        depth.push((id, level));
        let _ = writeln!(out, "  {}- {detail}", "  ".repeat(level));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Timing.

struct Timing {
    rows: usize,
    cold: Option<Duration>,
    fresh: Duration,
    warm: Duration,
    runs: usize,
    /// Heap the answer held (strings and structs, before allocator overhead), MB.
    answer_mb: f64,
}

impl Timing {
    fn line(&self, name: &str) -> String {
        format!(
            "{name:<56} rows {:>9}  cold {:>10}  fresh {:>10}  warm {:>10}  (runs {}, held {:.3} MB)",
            self.rows,
            self.cold.map_or("-".to_owned(), ms),
            ms(self.fresh),
            ms(self.warm),
            self.runs,
            self.answer_mb
        )
    }
}

fn ms(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.0}")
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Drops the file's pages from the OS page cache (`posix_fadvise(DONTNEED)` through `dd`).
fn evict(path: &Path) {
    let status = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .unwrap();
    assert!(status.success(), "dd iflag=nocache failed");
}

fn measure(path: &Path, query: &Query<'_>, runs: usize, cold: bool) -> Timing {
    measure_by(
        path,
        runs,
        cold,
        || AuditReader::open(path).unwrap(),
        |reader| query.run(reader),
    )
}

/// Times `run` on a connection from `open`: `fresh` opens one per run, `warm` reuses one after
/// a warm-up, `cold` evicts the file from the OS page cache before each fresh open. `run`
/// returns the rows answered and the heap bytes the answer held.
fn measure_by<T>(
    path: &Path,
    runs: usize,
    cold: bool,
    open: impl Fn() -> T,
    run: impl Fn(&T) -> (usize, usize),
) -> Timing {
    let timed = |connection: &T| {
        let started = Instant::now();
        let (rows, bytes) = run(connection);
        (started.elapsed(), rows, bytes)
    };
    // The first run also decides how many runs are affordable.
    let (first, rows, bytes) = timed(&open());
    let runs = if first > Duration::from_secs(3) {
        runs.min(3)
    } else {
        runs
    };
    let mut fresh = vec![first];
    for _ in 1..runs {
        let (took, count, _) = timed(&open());
        assert_eq!(count, rows);
        fresh.push(took);
    }
    let warm = {
        let connection = open();
        timed(&connection);
        (0..runs).map(|_| timed(&connection).0).collect()
    };
    let cold = cold.then(|| {
        (0..runs.min(3))
            .map(|_| {
                evict(path);
                timed(&open()).0
            })
            .collect()
    });
    Timing {
        rows,
        cold: cold.map(median),
        fresh: median(fresh),
        warm: median(warm),
        runs,
        answer_mb: bytes as f64 / 1e6,
    }
}

fn markdown(table: &[(String, Timing)], cold: bool) -> String {
    let mut out = String::from(
        "| query | rows returned | cold ms | fresh reader ms | warm ms |\n|---|--:|--:|--:|--:|\n",
    );
    for (name, timing) in table {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            timing.rows,
            if cold {
                timing.cold.map_or("-".to_owned(), ms)
            } else {
                "-".to_owned()
            },
            ms(timing.fresh),
            ms(timing.warm)
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Experiments: candidate fixes tried by hand on a copy of the database.

const EXPOSURE_REWRITE: &str = "SELECT partner, host, COUNT(*), SUM(n), MIN(first), MAX(last)
     FROM (SELECT partner, host, msisdn, COUNT(*) AS n, MIN(ts) AS first, MAX(ts) AS last
           FROM disclosures {filter} GROUP BY partner, host, msisdn)
     GROUP BY partner, host ORDER BY partner, host";

/// The summary a writer could maintain (emulated here by a trigger, which costs the same
/// statements per record): distinct subscribers per (partner, host) for all time.
const SUMMARY: &str = "
CREATE TABLE exposure_subscribers (
    partner TEXT NOT NULL, host TEXT NOT NULL, msisdn TEXT NOT NULL,
    disclosures INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,
    PRIMARY KEY (partner, host, msisdn)) WITHOUT ROWID;
CREATE TABLE exposure_totals (
    partner TEXT NOT NULL, host TEXT NOT NULL, subscribers INTEGER NOT NULL,
    disclosures INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,
    PRIMARY KEY (partner, host)) WITHOUT ROWID;
INSERT INTO exposure_subscribers
    SELECT partner, host, msisdn, COUNT(*), MIN(ts), MAX(ts) FROM disclosures
    GROUP BY partner, host, msisdn;
INSERT INTO exposure_totals
    SELECT partner, host, COUNT(*), SUM(disclosures), MIN(first), MAX(last)
    FROM exposure_subscribers GROUP BY partner, host;
";

const SUMMARY_TRIGGER: &str = "
CREATE TRIGGER exposure_summary AFTER INSERT ON disclosures BEGIN
    INSERT INTO exposure_totals (partner, host, subscribers, disclosures, first, last)
        VALUES (NEW.partner, NEW.host,
                NOT EXISTS (SELECT 1 FROM exposure_subscribers WHERE partner = NEW.partner
                            AND host = NEW.host AND msisdn = NEW.msisdn),
                1, NEW.ts, NEW.ts)
        ON CONFLICT (partner, host) DO UPDATE SET
            subscribers = subscribers + excluded.subscribers,
            disclosures = disclosures + 1, last = excluded.last;
    INSERT INTO exposure_subscribers VALUES (NEW.partner, NEW.host, NEW.msisdn, 1, NEW.ts, NEW.ts)
        ON CONFLICT (partner, host, msisdn) DO UPDATE SET
            disclosures = disclosures + 1, last = excluded.last;
END;
";

fn read_only(path: &Path) -> Connection {
    Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Steps every row of `sql`, touching each column without copying it.
fn step_all(connection: &Connection, sql: &str, values: &[Value], read: bool) -> (usize, usize) {
    let mut statement = connection.prepare_cached(sql).unwrap();
    let columns = statement.column_count();
    let mut rows = statement
        .query(rusqlite::params_from_iter(values.iter()))
        .unwrap();
    let mut count = 0;
    while let Some(row) = rows.next().unwrap() {
        if read {
            for column in 0..columns {
                black_box(row.get_ref(column).unwrap());
            }
        }
        count += 1;
    }
    (count, 0)
}

/// Exposure rows as plain tuples, to compare two ways of computing them.
fn exposure_rows(
    connection: &Connection,
    sql: &str,
    values: &[Value],
) -> Vec<(String, String, i64, i64, i64, i64)> {
    let mut statement = connection.prepare(sql).unwrap();
    statement
        .query_map(rusqlite::params_from_iter(values.iter()), |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `against` evaluated once per distinct (partner, host, port, upstream, headers, kinds) with
/// the columns read in place; only the records the policy would not allow are copied out.
fn against_streaming(
    connection: &Connection,
    policy: &Policy,
    sql: &str,
    values: &[Value],
) -> Vec<Unallowed> {
    let mut statement = connection.prepare_cached(sql).unwrap();
    let mut rows = statement
        .query(rusqlite::params_from_iter(values.iter()))
        .unwrap();
    let mut decisions: HashMap<String, Option<String>> = HashMap::new();
    let mut key = String::new();
    let mut found = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let text = |column: usize| row.get_ref(column).unwrap().as_str().unwrap();
        let port: i64 = row.get(9).unwrap();
        key.clear();
        for part in [text(3), text(8), text(10), text(7), text(6)] {
            key.push_str(part);
            key.push('\u{1f}');
        }
        let _ = write!(key, "{port}");
        let reason = match decisions.get(key.as_str()) {
            Some(decision) => decision.clone(),
            None => {
                let probe = DisclosureRow {
                    id: 0,
                    ts: 0,
                    request_id: String::new(),
                    partner: text(3).to_owned(),
                    purpose: String::new(),
                    msisdn: String::new(),
                    kinds: text(6).to_owned(),
                    headers: text(7).to_owned(),
                    host: text(8).to_owned(),
                    port: u16::try_from(port).unwrap(),
                    upstream_ip: text(10).to_owned(),
                    client_ip: String::new(),
                    policy_hash: String::new(),
                    prev_hash: String::new(),
                    hash: String::new(),
                };
                let decision = allowed_by(policy, &probe).err();
                decisions.insert(key.clone(), decision.clone());
                decision
            }
        };
        if let Some(reason) = reason {
            let record = DisclosureRow {
                id: row.get(0).unwrap(),
                ts: row.get(1).unwrap(),
                request_id: text(2).to_owned(),
                partner: text(3).to_owned(),
                purpose: text(4).to_owned(),
                msisdn: text(5).to_owned(),
                kinds: text(6).to_owned(),
                headers: text(7).to_owned(),
                host: text(8).to_owned(),
                port: u16::try_from(port).unwrap(),
                upstream_ip: text(10).to_owned(),
                client_ip: text(11).to_owned(),
                policy_hash: text(12).to_owned(),
                prev_hash: text(13).to_owned(),
                hash: text(14).to_owned(),
            };
            found.push(Unallowed {
                record: record.into(),
                reason,
            });
        }
    }
    found
}

/// Sizes of the tables and indexes of `disclosures` (and the summary), MB, from `dbstat`.
fn sizes(path: &Path) -> String {
    let connection = read_only(path);
    let mut statement = connection
        .prepare(
            "SELECT name, SUM(pgsize) FROM dbstat WHERE name LIKE 'disclosures%' \
             OR name LIKE 'exp%' OR name LIKE 'sqlite_autoindex%' GROUP BY name ORDER BY name",
        )
        .unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok(format!(
                "{} {:.0} MB",
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)? as f64 / 1e6
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect::<Vec<_>>().join(", ")
}

/// Writes `total` disclosures from `tasks` concurrent tasks through the real writer.
fn writer_rate(path: &Path, tasks: usize, total: usize) -> String {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let log = AuditLog::open(path, options()).unwrap();
        let per_task = total.div_ceil(tasks);
        let before = log.commits();
        let started = Instant::now();
        let purposes = Arc::new(Shape::new(1_000).partners);
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let log = log.clone();
                let purposes = purposes.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(per_task);
                    for i in 0..per_task {
                        let sequence = (task * per_task + i) as u64;
                        let partner = sequence % PARTNERS as u64;
                        // The same purposes and headers as the generated rows, so the
                        // policies allow these records.
                        let shape = &purposes[usize::try_from(partner).unwrap() % 3];
                        let split = |text: &str| -> Vec<String> {
                            text.split(',').map(str::to_owned).collect()
                        };
                        let record = Disclosure {
                            request_id: format!("5eedffff-{sequence:x}"),
                            partner: format!("partner{partner:02}"),
                            purpose: shape.purpose.to_owned(),
                            msisdn: Msisdn::parse(&Shape::msisdn(sequence * 7_919 % 2_000_000))
                                .unwrap(),
                            kinds: split(shape.kinds),
                            headers: split(shape.headers),
                            host: format!("h{partner}.partner{partner:02}.test"),
                            port: 80,
                            upstream_ip: IpAddr::from([10, 0, u8::try_from(partner).unwrap(), 1]),
                            client_ip: IpAddr::from([100, 64, 0, 5]),
                            policy_hash: "0".repeat(64),
                        };
                        let sent = Instant::now();
                        log.disclose(record).await.unwrap();
                        latencies.push(sent.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for handle in handles {
            latencies.extend(handle.await.unwrap());
        }
        let elapsed = started.elapsed();
        let commits = log.commits() - before;
        log.close().await;
        latencies.sort();
        let at = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
        format!(
            "tasks {tasks:>3}: {:>6.0} disclosures/s, p50 {} ms, p99 {} ms, {:.1} records/commit",
            latencies.len() as f64 / elapsed.as_secs_f64(),
            ms(at(50)),
            ms(at(99)),
            latencies.len() as f64 / commits.max(1) as f64
        )
    })
}

/// [`writer_rate`] twice: the machine is shared, so one sample can mislead.
fn writer_rates(path: &Path, tasks: usize, total: usize) -> String {
    format!(
        "{} | again: {}",
        writer_rate(path, tasks, total),
        writer_rate(path, tasks, total)
    )
}

fn execute_timed(path: &Path, sql: &str) -> Duration {
    let connection = Connection::open(path).unwrap();
    connection
        .execute_batch("PRAGMA cache_size = -1000000; PRAGMA threads = 2;")
        .unwrap();
    let started = Instant::now();
    connection.execute_batch(sql).unwrap();
    started.elapsed()
}

/// `sql` with `INDEXED BY index` (or `NOT INDEXED`) after the table name.
fn hinted(sql: &str, index: &str) -> String {
    let hint = if index == "NOT INDEXED" {
        "NOT INDEXED".to_owned()
    } else {
        format!("INDEXED BY {index}")
    };
    sql.replacen("FROM disclosures", &format!("FROM disclosures {hint}"), 1)
}

/// What [`AuditReader::against`] does, on any SQL: every row read into a `DisclosureRow`, the
/// policy asked for each.
fn against_sql(connection: &Connection, policy: &Policy, sql: &str, values: &[Value]) -> usize {
    let mut statement = connection.prepare_cached(sql).unwrap();
    let mut rows = statement
        .query(rusqlite::params_from_iter(values.iter()))
        .unwrap();
    let mut found = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let row = read_row(row);
        if let Err(reason) = allowed_by(policy, &row) {
            found.push(Unallowed {
                record: row.into(),
                reason,
            });
        }
    }
    black_box(found).len()
}

type Variant<'a> = (String, Box<dyn Fn(&Connection) -> usize + 'a>);

/// Times the variants of one question interleaved (A, B, C, A, B, C, ...), so that the load of
/// a shared machine falls on all of them alike. Same three modes as [`measure_by`].
fn compare(
    path: &Path,
    runs: usize,
    cold: bool,
    variants: &[Variant<'_>],
) -> Vec<(String, Timing)> {
    let timed = |variant: &Variant<'_>, connection: &Connection| {
        let started = Instant::now();
        let rows = (variant.1)(connection);
        (started.elapsed(), rows)
    };
    let mut fresh: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    let mut rows = vec![0; variants.len()];
    for (index, variant) in variants.iter().enumerate() {
        let (took, count) = timed(variant, &read_only(path));
        fresh[index].push(took);
        rows[index] = count;
    }
    let slowest = fresh
        .iter()
        .map(|samples| samples[0])
        .max()
        .unwrap_or_default();
    let runs = if slowest > Duration::from_secs(3) {
        runs.min(3)
    } else {
        runs
    };
    for _ in 1..runs {
        for (index, variant) in variants.iter().enumerate() {
            let (took, count) = timed(variant, &read_only(path));
            assert_eq!(count, rows[index], "{}", variant.0);
            fresh[index].push(took);
        }
    }
    let connections: Vec<Connection> = variants
        .iter()
        .map(|variant| {
            let connection = read_only(path);
            timed(variant, &connection);
            connection
        })
        .collect();
    let mut warm: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    for _ in 0..runs {
        for (index, variant) in variants.iter().enumerate() {
            warm[index].push(timed(variant, &connections[index]).0);
        }
    }
    drop(connections);
    let mut cold_samples: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    if cold {
        for _ in 0..runs.min(3) {
            for (index, variant) in variants.iter().enumerate() {
                evict(path);
                cold_samples[index].push(timed(variant, &read_only(path)).0);
            }
        }
    }
    variants
        .iter()
        .enumerate()
        .map(|(index, variant)| {
            let timing = Timing {
                rows: rows[index],
                cold: cold.then(|| median(cold_samples[index].clone())),
                fresh: median(fresh[index].clone()),
                warm: median(warm[index].clone()),
                runs,
                answer_mb: 0.0,
            };
            println!("{}", timing.line(&variant.0));
            (variant.0.clone(), timing)
        })
        .collect()
}

fn experiments(path: &Path, shape: &Shape, runs: usize) {
    let copy = path.with_file_name(format!("bench-audit-{}-experiment.db", shape.rows));
    remove_database(&copy);
    let started = Instant::now();
    std::fs::copy(path, &copy).unwrap();
    println!(
        "\n## Experiments on a copy ({}, copied in {:.1} s)\n",
        copy.display(),
        started.elapsed().as_secs_f64()
    );
    let policies = Policies::new();
    let queries = queries(shape, &policies);
    let find = |name: &str| queries.iter().find(|q| q.name == name).unwrap();
    let exposure_all = find("exposure, all time");
    let exposure_month = find("exposure, 30 days");
    let exposure_host = find("exposure --host h27.partner07.test");
    let against_partner_day = find("against partner07 policy --partner partner07, 1 day");
    let against_partner_all = find("against partner07 policy --partner partner07, all time");
    let against_day = find("against partner07 policy, 1 day");
    let full_scan = find("against 20-partner policy, all time (full scan)");
    let writes = 20_000;
    let mut table: Vec<(String, Timing)> = Vec::new();

    // Writer before any change (measured again at the end, to bracket the machine's load).
    println!("sizes before: {}", sizes(&copy));
    println!("writer, schema as is: {}", writer_rates(&copy, 1, 2_000));
    println!("writer, schema as is: {}", writer_rates(&copy, 64, writes));

    // ANALYZE (bounded, as `PRAGMA optimize` runs it): does it change any plan? Then undone.
    let took = execute_timed(&copy, "PRAGMA analysis_limit = 1000; ANALYZE;");
    println!(
        "\nANALYZE (analysis_limit 1000): {:.1} s",
        took.as_secs_f64()
    );
    for query in &queries {
        let before = plan(&read_only(path), query);
        let after = plan(&read_only(&copy), query);
        println!(
            "{}: {}",
            query.name,
            if before == after {
                "same plan after ANALYZE".to_owned()
            } else {
                format!("plan after ANALYZE:\n{after}")
            }
        );
    }
    execute_timed(&copy, "DELETE FROM sqlite_stat1; DELETE FROM sqlite_stat4;");

    // Every candidate, side by side with what is there; each comparison forces the index with
    // INDEXED BY and interleaves the runs.
    println!();
    for (name, sql) in [
        (
            "exp_ts_cover (ts, partner, host, msisdn)",
            "CREATE INDEX exp_ts_cover ON disclosures (ts, partner, host, msisdn);",
        ),
        (
            "exp_host_cover (host, ts, partner, msisdn)",
            "CREATE INDEX exp_host_cover ON disclosures (host, ts, partner, msisdn);",
        ),
        (
            "exp_partner (partner)",
            "CREATE INDEX exp_partner ON disclosures (partner);",
        ),
        (
            "exp_partner_ts (partner, ts)",
            "CREATE INDEX exp_partner_ts ON disclosures (partner, ts);",
        ),
        (
            "exp_shape (host, port, upstream_ip, partner, headers, kinds, ts)",
            "CREATE INDEX exp_shape ON disclosures \
             (host, port, upstream_ip, partner, headers, kinds, ts);",
        ),
        ("summary tables", SUMMARY),
    ] {
        let took = execute_timed(&copy, sql);
        println!("built {name} in {:.1} s", took.as_secs_f64());
    }
    println!("sizes with every candidate: {}", sizes(&copy));
    println!("\nplans the planner picks by itself with every candidate present:");
    for query in &queries {
        if query.name != AGAINST_ALL_NAME {
            println!("{}\n{}", query.name, plan(&read_only(&copy), query));
        }
    }

    let exposure_variant = |label: &str, sql: String, values: Vec<Value>| -> Variant<'_> {
        (
            label.to_owned(),
            Box::new(move |c: &Connection| exposure_rows(c, &sql, &values).len()),
        )
    };
    let summary_sql = |filter: &str| {
        format!(
            "SELECT partner, host, subscribers, disclosures, first, last FROM exposure_totals \
             {filter} ORDER BY partner, host"
        )
    };

    // Exposure, all time.
    {
        let (sql, values) = exposure_all.sql();
        let rewritten = EXPOSURE_REWRITE.replace("{filter}", "");
        let summary = summary_sql("");
        let expected = exposure_rows(&read_only(&copy), &sql, &values);
        assert_eq!(
            exposure_rows(&read_only(&copy), &rewritten, &values),
            expected
        );
        assert_eq!(
            exposure_rows(&read_only(&copy), &summary, &values),
            expected
        );
        show_plan_of(&copy, "exposure, all time, rewritten", &rewritten, &values);
        table.extend(compare(
            &copy,
            runs,
            true,
            &[
                exposure_variant("exposure, all time [as is]", sql.clone(), values.clone()),
                exposure_variant(
                    "exposure, all time [rewritten: GROUP BY msisdn, then GROUP BY]",
                    rewritten,
                    values.clone(),
                ),
                exposure_variant(
                    "exposure, all time [without COUNT(DISTINCT), for scale]",
                    sql.replace("COUNT(DISTINCT msisdn)", "0"),
                    values.clone(),
                ),
                exposure_variant("exposure, all time [summary table]", summary, vec![]),
            ],
        ));
    }

    // Exposure over 30 days, and --host.
    {
        let (sql, values) = exposure_month.sql();
        table.extend(compare(
            &copy,
            runs,
            true,
            &[
                exposure_variant(
                    "exposure, 30 days [disclosures_ts (ts), as is]",
                    hinted(&sql, "disclosures_ts"),
                    values.clone(),
                ),
                exposure_variant(
                    "exposure, 30 days [covering (ts, partner, host, msisdn)]",
                    hinted(&sql, "exp_ts_cover"),
                    values.clone(),
                ),
            ],
        ));
        let (sql, values) = exposure_host.sql();
        let host = vec![Value::Text(shape.hosts[HOST].clone())];
        assert_eq!(
            exposure_rows(&read_only(&copy), &summary_sql("WHERE host = ?"), &host),
            exposure_rows(&read_only(&copy), &sql, &values)
        );
        table.extend(compare(
            &copy,
            runs,
            true,
            &[
                exposure_variant(
                    "exposure --host [disclosures_host (host, ts), as is]",
                    hinted(&sql, "disclosures_host"),
                    values.clone(),
                ),
                exposure_variant(
                    "exposure --host [covering (host, ts, partner, msisdn)]",
                    hinted(&sql, "exp_host_cover"),
                    values.clone(),
                ),
                exposure_variant(
                    "exposure --host [summary table]",
                    summary_sql("WHERE host = ?"),
                    host,
                ),
            ],
        ));
    }

    // against --partner, and 1 day without it.
    for (query, label, indexes) in [
        (
            against_partner_all,
            "against --partner, all time",
            [
                ("disclosures_exposure, as is", "disclosures_exposure"),
                ("(partner)", "exp_partner"),
                ("(partner, ts)", "exp_partner_ts"),
            ]
            .as_slice(),
        ),
        (
            against_partner_day,
            "against --partner, 1 day",
            [
                ("disclosures_exposure, as is", "disclosures_exposure"),
                ("(partner, ts)", "exp_partner_ts"),
            ]
            .as_slice(),
        ),
        (
            against_day,
            "against, 1 day",
            [
                ("disclosures_ts, as is", "disclosures_ts"),
                ("covering (ts, partner, host, msisdn)", "exp_ts_cover"),
            ]
            .as_slice(),
        ),
    ] {
        let Kind::Against(policy, _) = &query.kind else {
            unreachable!()
        };
        let (sql, values) = query.sql();
        let variants: Vec<Variant<'_>> = indexes
            .iter()
            .map(|(name, index)| -> Variant<'_> {
                let sql = hinted(&sql, index);
                let values = values.clone();
                (
                    format!("{label} [{name}]"),
                    Box::new(move |c: &Connection| against_sql(c, policy, &sql, &values)),
                )
            })
            .collect();
        for (name, index) in indexes {
            show_plan_of(
                &copy,
                &format!("{label} [{name}]"),
                &hinted(&sql, index),
                &values,
            );
        }
        table.extend(compare(&copy, runs, true, &variants));
    }

    // The full-scan against.
    {
        let Kind::Against(policy, _) = &full_scan.kind else {
            unreachable!()
        };
        let (sql, values) = full_scan.sql();
        let expected = AuditReader::open(&copy)
            .unwrap()
            .against(policy, &ExposureFilter::default())
            .unwrap();
        let connection = read_only(&copy);
        assert_eq!(
            against_streaming(&connection, policy, &sql, &values),
            expected
        );
        assert_eq!(against_narrow(&connection, policy), expected);
        assert_eq!(against_by_shape(&connection, policy), expected);
        println!("distinct shapes: {}", distinct_shapes(&connection).len());
        drop(connection);
        show_plan_of(
            &copy,
            "next shape",
            NEXT_SHAPE,
            &vec![Value::Text(String::new()); 6],
        );
        show_plan_of(
            &copy,
            "rows of one shape",
            SHAPE_ROWS,
            &vec![Value::Null; 6],
        );
        let scan = hinted(&sql, "NOT INDEXED");
        table.extend(compare(
            &copy,
            runs,
            false,
            &[
                (
                    "against, full scan [as is]".to_owned(),
                    Box::new(|c: &Connection| against_sql(c, policy, &scan, &values)),
                ),
                (
                    "against, full scan [SQLite step only, for scale]".to_owned(),
                    Box::new(|c: &Connection| step_all(c, &scan, &values, false).0),
                ),
                (
                    "against, full scan [columns read in place, policy per combination]".to_owned(),
                    Box::new(|c: &Connection| against_streaming(c, policy, &scan, &values).len()),
                ),
                (
                    "against, full scan [7 columns, policy per combination, fetch by id]"
                        .to_owned(),
                    Box::new(|c: &Connection| against_narrow(c, policy).len()),
                ),
                (
                    "against, all time [shape index skip scan, fetch unallowed shapes]".to_owned(),
                    Box::new(|c: &Connection| against_by_shape(c, policy).len()),
                ),
            ],
        ));
        table.extend(compare(
            &copy,
            runs,
            true,
            &[(
                "against, all time [shape index skip scan, fetch unallowed shapes]".to_owned(),
                Box::new(|c: &Connection| against_by_shape(c, policy).len()),
            )],
        ));
    }

    // The writer with the proposed set: covering indexes in place of (ts) and (host),
    // (partner, ts), the summary trigger, with and without the shape index.
    // `AuditLog::open` recreates a missing `disclosures_ts` or `disclosures_host` (CREATE INDEX IF
    // NOT EXISTS), so the covering versions take those names.
    let took = execute_timed(
        &copy,
        "DROP INDEX disclosures_ts; DROP INDEX disclosures_host; DROP INDEX exp_partner;
         DROP INDEX exp_ts_cover; DROP INDEX exp_host_cover;
         CREATE INDEX disclosures_ts ON disclosures (ts, partner, host, msisdn);
         CREATE INDEX disclosures_host ON disclosures (host, ts, partner, msisdn);",
    );
    println!(
        "\ncovering indexes rebuilt under the old names in {:.1} s",
        took.as_secs_f64()
    );
    execute_timed(&copy, SUMMARY_TRIGGER);
    println!("sizes, proposed set: {}", sizes(&copy));
    println!(
        "writer, proposed set + shape index + summary trigger: {}",
        writer_rates(&copy, 1, 2_000)
    );
    println!(
        "writer, proposed set + shape index + summary trigger: {}",
        writer_rates(&copy, 64, writes)
    );
    execute_timed(&copy, "DROP INDEX exp_shape;");
    println!(
        "writer, proposed set + summary trigger: {}",
        writer_rates(&copy, 64, writes)
    );
    execute_timed(&copy, "DROP TRIGGER exposure_summary;");
    println!(
        "writer, proposed indexes only: {}",
        writer_rates(&copy, 64, writes)
    );
    execute_timed(
        &copy,
        "DROP INDEX disclosures_ts; DROP INDEX disclosures_host; DROP INDEX exp_partner_ts;
         CREATE INDEX disclosures_ts ON disclosures (ts);
         CREATE INDEX disclosures_host ON disclosures (host, ts);",
    );
    println!(
        "writer, schema as is again: {}",
        writer_rates(&copy, 1, 2_000)
    );
    println!(
        "writer, schema as is again: {}",
        writer_rates(&copy, 64, writes)
    );

    println!("\n{}", markdown(&table, true));
    println!("load average at end: {}", load_average());
    remove_database(&copy);
}

/// `SELECT partner, host, msisdn, ts ...` aggregated in Rust (distinct MSISDNs as integers in a
/// hash set per group) instead of SQLite's COUNT(DISTINCT) temp b-trees.
fn exposure_in_rust(
    connection: &Connection,
    sql: &str,
    values: &[Value],
) -> Vec<(String, String, i64, i64, i64, i64)> {
    struct Group {
        subscribers: std::collections::HashSet<u64>,
        disclosures: i64,
        first: i64,
        last: i64,
    }
    let mut statement = connection.prepare_cached(sql).unwrap();
    let mut rows = statement
        .query(rusqlite::params_from_iter(values.iter()))
        .unwrap();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<(String, String, Group)> = Vec::new();
    let mut key = String::new();
    while let Some(row) = rows.next().unwrap() {
        let partner = row.get_ref(0).unwrap().as_str().unwrap();
        let host = row.get_ref(1).unwrap().as_str().unwrap();
        // MSISDNs are digits without a leading zero: the number is a faithful key.
        let msisdn: u64 = row.get_ref(2).unwrap().as_str().unwrap().parse().unwrap();
        let ts: i64 = row.get(3).unwrap();
        key.clear();
        key.push_str(partner);
        key.push('\u{1f}');
        key.push_str(host);
        let slot = match index.get(key.as_str()) {
            Some(&slot) => slot,
            None => {
                groups.push((
                    partner.to_owned(),
                    host.to_owned(),
                    Group {
                        subscribers: std::collections::HashSet::new(),
                        disclosures: 0,
                        first: i64::MAX,
                        last: i64::MIN,
                    },
                ));
                index.insert(key.clone(), groups.len() - 1);
                groups.len() - 1
            }
        };
        let group = &mut groups[slot].2;
        group.subscribers.insert(msisdn);
        group.disclosures += 1;
        group.first = group.first.min(ts);
        group.last = group.last.max(ts);
    }
    let mut out: Vec<_> = groups
        .into_iter()
        .map(|(partner, host, group)| {
            (
                partner,
                host,
                i64::try_from(group.subscribers.len()).unwrap(),
                group.disclosures,
                group.first,
                group.last,
            )
        })
        .collect();
    out.sort();
    out
}

/// The second round: where the time goes in the shape approach, aggregating exposure in Rust,
/// bigger SQLite caches for the reader, and the writer when the summary replaces
/// `disclosures_exposure`.
fn more_experiments(path: &Path, shape: &Shape, runs: usize) {
    let copy = path.with_file_name(format!("bench-audit-{}-experiment.db", shape.rows));
    remove_database(&copy);
    let started = Instant::now();
    std::fs::copy(path, &copy).unwrap();
    println!(
        "\n## More experiments on a copy ({}, copied in {:.1} s)\n",
        copy.display(),
        started.elapsed().as_secs_f64()
    );
    let policies = Policies::new();
    let queries = queries(shape, &policies);
    let find = |name: &str| queries.iter().find(|q| q.name == name).unwrap();
    let exposure_all = find("exposure, all time");
    let exposure_month = find("exposure, 30 days");
    let exposure_host = find("exposure --host h27.partner07.test");
    let against_partner_all = find("against partner07 policy --partner partner07, all time");
    let full_scan = find("against 20-partner policy, all time (full scan)");
    let mut table: Vec<(String, Timing)> = Vec::new();
    for (name, sql) in [
        (
            "exp_ts_cover (ts, partner, host, msisdn)",
            "CREATE INDEX exp_ts_cover ON disclosures (ts, partner, host, msisdn);",
        ),
        (
            "exp_shape (host, port, upstream_ip, partner, headers, kinds, ts)",
            "CREATE INDEX exp_shape ON disclosures \
             (host, port, upstream_ip, partner, headers, kinds, ts);",
        ),
    ] {
        let took = execute_timed(&copy, sql);
        println!("built {name} in {:.1} s", took.as_secs_f64());
    }

    // Exposure aggregated in Rust.
    {
        let (sql, values) = exposure_all.sql();
        let scan = "SELECT partner, host, msisdn, ts FROM disclosures \
                    INDEXED BY disclosures_exposure";
        assert_eq!(
            exposure_in_rust(&read_only(&copy), scan, &[]),
            exposure_rows(&read_only(&copy), &sql, &values)
        );
        let (month_sql, month_values) = exposure_month.sql();
        let month_scan = "SELECT partner, host, msisdn, ts FROM disclosures \
                          INDEXED BY exp_ts_cover WHERE ts >= ? AND ts < ?";
        assert_eq!(
            exposure_in_rust(&read_only(&copy), month_scan, &month_values),
            exposure_rows(&read_only(&copy), &month_sql, &month_values)
        );
        let as_is_month = hinted(&month_sql, "disclosures_ts");
        let cover_month = hinted(&month_sql, "exp_ts_cover");
        table.extend(compare(
            &copy,
            runs,
            true,
            &[
                (
                    "exposure, all time [as is]".to_owned(),
                    Box::new(|c: &Connection| exposure_rows(c, &sql, &values).len()),
                ),
                (
                    "exposure, all time [index scan, aggregated in Rust]".to_owned(),
                    Box::new(|c: &Connection| exposure_in_rust(c, scan, &[]).len()),
                ),
                (
                    "exposure, 30 days [as is]".to_owned(),
                    Box::new(|c: &Connection| exposure_rows(c, &as_is_month, &month_values).len()),
                ),
                (
                    "exposure, 30 days [covering (ts, partner, host, msisdn)]".to_owned(),
                    Box::new(|c: &Connection| exposure_rows(c, &cover_month, &month_values).len()),
                ),
                (
                    "exposure, 30 days [covering, aggregated in Rust]".to_owned(),
                    Box::new(|c: &Connection| exposure_in_rust(c, month_scan, &month_values).len()),
                ),
            ],
        ));
    }

    // Reader caches: SQLite's default page cache is 2 MB; mmap is capped at 2 GB in this build.
    {
        let Kind::Against(policy, _) = &against_partner_all.kind else {
            unreachable!()
        };
        let (against_sql_text, against_values) = against_partner_all.sql();
        let (host_sql, host_values) = exposure_host.sql();
        let with = |pragma: &'static str| {
            move |c: &Connection| {
                if !pragma.is_empty() {
                    // `mmap_size` answers with a row, `cache_size` with none.
                    let mut statement = c.prepare_cached(pragma).unwrap();
                    let mut rows = statement.query([]).unwrap();
                    while rows.next().unwrap().is_some() {}
                }
            }
        };
        let mut variants: Vec<Variant<'_>> = Vec::new();
        for (label, pragma) in [
            ("default cache", ""),
            ("mmap_size 2 GB", "PRAGMA mmap_size = 2147418112"),
            ("cache_size 512 MB", "PRAGMA cache_size = -524288"),
        ] {
            let setup = with(pragma);
            let sql = against_sql_text.clone();
            let values = against_values.clone();
            variants.push((
                format!("against --partner, all time [{label}]"),
                Box::new(move |c: &Connection| {
                    setup(c);
                    against_sql(c, policy, &sql, &values)
                }),
            ));
        }
        for (label, pragma) in [
            ("default cache", ""),
            ("mmap_size 2 GB", "PRAGMA mmap_size = 2147418112"),
        ] {
            let setup = with(pragma);
            let sql = host_sql.clone();
            let values = host_values.clone();
            variants.push((
                format!("exposure --host [{label}]"),
                Box::new(move |c: &Connection| {
                    setup(c);
                    exposure_rows(c, &sql, &values).len()
                }),
            ));
        }
        table.extend(compare(&copy, runs, true, &variants));
    }

    // The shape approach, step by step.
    {
        let Kind::Against(policy, _) = &full_scan.kind else {
            unreachable!()
        };
        let unallowed: Vec<ShapeKey> = distinct_shapes(&read_only(&copy))
            .into_iter()
            .filter(|shape| allowed_by(policy, &probe(shape)).is_err())
            .collect();
        println!("unallowed shapes: {}", unallowed.len());
        let fetch = |c: &Connection| -> usize {
            let mut rows_of = c.prepare_cached(SHAPE_ROWS).unwrap();
            let mut count = 0;
            for shape in &unallowed {
                let mut rows = rows_of
                    .query(rusqlite::params![
                        shape.0, shape.1, shape.2, shape.3, shape.4, shape.5
                    ])
                    .unwrap();
                while let Some(row) = rows.next().unwrap() {
                    black_box(read_row(row));
                    count += 1;
                }
            }
            count
        };
        let ids = |c: &Connection| -> usize {
            let sql = SHAPE_ROWS.replacen(
                "SELECT id, ts, request_id, partner, purpose, msisdn, kinds, headers, host, \
                 port, upstream_ip, client_ip, policy_hash, prev_hash, hash",
                "SELECT id",
                1,
            );
            let mut rows_of = c.prepare_cached(&sql).unwrap();
            let mut count = 0;
            for shape in &unallowed {
                let mut rows = rows_of
                    .query(rusqlite::params![
                        shape.0, shape.1, shape.2, shape.3, shape.4, shape.5
                    ])
                    .unwrap();
                while rows.next().unwrap().is_some() {
                    count += 1;
                }
            }
            count
        };
        table.extend(compare(
            &copy,
            runs,
            true,
            &[
                (
                    "shape approach: skip scan for the shapes only".to_owned(),
                    Box::new(|c: &Connection| distinct_shapes(c).len()),
                ),
                (
                    "shape approach: ids of the unallowed shapes' rows (index only)".to_owned(),
                    Box::new(ids),
                ),
                (
                    "shape approach: the unallowed shapes' rows (index + table)".to_owned(),
                    Box::new(fetch),
                ),
                (
                    "shape approach: everything".to_owned(),
                    Box::new(|c: &Connection| against_by_shape(c, policy).len()),
                ),
            ],
        ));
    }

    // The writer when the summary replaces `disclosures_exposure`. `AuditLog::open` recreates a
    // missing index of that name, so an empty partial index takes it.
    execute_timed(&copy, "DROP INDEX exp_shape; DROP INDEX exp_ts_cover;");
    let writes = 20_000;
    println!("\nwriter, schema as is: {}", writer_rates(&copy, 1, 2_000));
    println!("writer, schema as is: {}", writer_rates(&copy, 64, writes));
    let took = execute_timed(
        &copy,
        &format!(
            "{SUMMARY}{SUMMARY_TRIGGER}
             DROP INDEX disclosures_exposure;
             CREATE INDEX disclosures_exposure ON disclosures (id) WHERE 0;"
        ),
    );
    println!(
        "summary in place of disclosures_exposure in {:.1} s; sizes: {}",
        took.as_secs_f64(),
        sizes(&copy)
    );
    println!(
        "writer, summary trigger instead of disclosures_exposure: {}",
        writer_rates(&copy, 1, 2_000)
    );
    println!(
        "writer, summary trigger instead of disclosures_exposure: {}",
        writer_rates(&copy, 64, writes)
    );
    {
        // The summary still answers as the index did.
        let connection = read_only(&copy);
        let (sql, values) = exposure_all.sql();
        assert_eq!(
            exposure_rows(
                &connection,
                "SELECT partner, host, subscribers, disclosures, first, last \
                 FROM exposure_totals ORDER BY partner, host",
                &[]
            ),
            exposure_rows(&connection, &hinted(&sql, "NOT INDEXED"), &values)
        );
    }
    execute_timed(
        &copy,
        "DROP TRIGGER exposure_summary;
         DROP INDEX disclosures_exposure;
         CREATE INDEX disclosures_exposure ON disclosures (partner, host, msisdn, ts);",
    );
    println!(
        "writer, schema as is again: {}",
        writer_rates(&copy, 1, 2_000)
    );
    println!(
        "writer, schema as is again: {}",
        writer_rates(&copy, 64, writes)
    );

    println!("\n{}", markdown(&table, true));
    println!("load average at end: {}", load_average());
    remove_database(&copy);
}

fn show_plan_of(path: &Path, label: &str, sql: &str, values: &[Value]) {
    println!(
        "plan, {label}:\n{}",
        plan_sql(&read_only(path), sql, values.to_vec())
    );
}

/// The next (host, port, upstream_ip, partner, headers, kinds) after the given one, by the
/// shape index: a skip scan, one seek per shape.
const NEXT_SHAPE: &str = "SELECT host, port, upstream_ip, partner, headers, kinds FROM disclosures
     WHERE (host, port, upstream_ip, partner, headers, kinds) > (?, ?, ?, ?, ?, ?)
     ORDER BY host, port, upstream_ip, partner, headers, kinds LIMIT 1";

const SHAPE_ROWS: &str =
    "SELECT id, ts, request_id, partner, purpose, msisdn, kinds, headers, host, \
     port, upstream_ip, client_ip, policy_hash, prev_hash, hash FROM disclosures
     WHERE host = ? AND port = ? AND upstream_ip = ? AND partner = ? AND headers = ? AND kinds = ?";

/// (host, port, upstream_ip, partner, headers, kinds)
type ShapeKey = (String, i64, String, String, String, String);

fn distinct_shapes(connection: &Connection) -> Vec<ShapeKey> {
    let mut next = connection.prepare_cached(NEXT_SHAPE).unwrap();
    let mut shapes: Vec<ShapeKey> = Vec::new();
    // Port is an integer and sorts before every text; start below everything.
    let mut last: (Value, Value, Value, Value, Value, Value) = (
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
    );
    // NULL compares as unknown, so the first shape comes from a plain MIN.
    let first = connection
        .query_row(
            "SELECT host, port, upstream_ip, partner, headers, kinds FROM disclosures
             ORDER BY host, port, upstream_ip, partner, headers, kinds LIMIT 1",
            [],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            },
        )
        .ok();
    let Some(first) = first else { return shapes };
    shapes.push(first);
    loop {
        let current = shapes.last().unwrap().clone();
        last.0 = Value::Text(current.0);
        last.1 = Value::Integer(current.1);
        last.2 = Value::Text(current.2);
        last.3 = Value::Text(current.3);
        last.4 = Value::Text(current.4);
        last.5 = Value::Text(current.5);
        let found: Option<ShapeKey> = next
            .query_row(
                rusqlite::params![last.0, last.1, last.2, last.3, last.4, last.5],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                    ))
                },
            )
            .ok();
        match found {
            Some(shape) => shapes.push(shape),
            None => return shapes,
        }
    }
}

fn read_row(row: &rusqlite::Row<'_>) -> DisclosureRow {
    DisclosureRow {
        id: row.get(0).unwrap(),
        ts: row.get(1).unwrap(),
        request_id: row.get(2).unwrap(),
        partner: row.get(3).unwrap(),
        purpose: row.get(4).unwrap(),
        msisdn: row.get(5).unwrap(),
        kinds: row.get(6).unwrap(),
        headers: row.get(7).unwrap(),
        host: row.get(8).unwrap(),
        port: row.get(9).unwrap(),
        upstream_ip: row.get(10).unwrap(),
        client_ip: row.get(11).unwrap(),
        policy_hash: row.get(12).unwrap(),
        prev_hash: row.get(13).unwrap(),
        hash: row.get(14).unwrap(),
    }
}

fn probe(shape: &ShapeKey) -> DisclosureRow {
    DisclosureRow {
        id: 0,
        ts: 0,
        request_id: String::new(),
        partner: shape.3.clone(),
        purpose: String::new(),
        msisdn: String::new(),
        kinds: shape.5.clone(),
        headers: shape.4.clone(),
        host: shape.0.clone(),
        port: u16::try_from(shape.1).unwrap(),
        upstream_ip: shape.2.clone(),
        client_ip: String::new(),
        policy_hash: String::new(),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// Shapes by skip scan over the shape index, the policy once per shape, then the rows of the
/// shapes it would not allow, by the same index; sorted by id as the reader returns them.
fn against_by_shape(connection: &Connection, policy: &Policy) -> Vec<Unallowed> {
    let mut found = Vec::new();
    let mut rows_of = connection.prepare_cached(SHAPE_ROWS).unwrap();
    for shape in distinct_shapes(connection) {
        let Err(reason) = allowed_by(policy, &probe(&shape)) else {
            continue;
        };
        let mut rows = rows_of
            .query(rusqlite::params![
                shape.0, shape.1, shape.2, shape.3, shape.4, shape.5
            ])
            .unwrap();
        while let Some(row) = rows.next().unwrap() {
            found.push(Unallowed {
                record: read_row(row).into(),
                reason: reason.clone(),
            });
        }
    }
    found.sort_by_key(|unallowed| unallowed.record.id);
    found
}

/// One scan reading only the columns the policy looks at, the policy once per combination, then
/// the unallowed records fetched by id.
fn against_narrow(connection: &Connection, policy: &Policy) -> Vec<Unallowed> {
    let mut scan = connection
        .prepare_cached(
            "SELECT id, host, port, upstream_ip, partner, headers, kinds FROM disclosures \
             ORDER BY id",
        )
        .unwrap();
    let mut rows = scan.query([]).unwrap();
    let mut decisions: HashMap<String, Option<String>> = HashMap::new();
    let mut key = String::new();
    let mut unallowed: Vec<(i64, String)> = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let text = |column: usize| row.get_ref(column).unwrap().as_str().unwrap();
        let port: i64 = row.get(2).unwrap();
        key.clear();
        for part in [text(1), text(3), text(4), text(5), text(6)] {
            key.push_str(part);
            key.push('\u{1f}');
        }
        let _ = write!(key, "{port}");
        let decision = match decisions.get(key.as_str()) {
            Some(decision) => decision.clone(),
            None => {
                let shape = (
                    text(1).to_owned(),
                    port,
                    text(3).to_owned(),
                    text(4).to_owned(),
                    text(5).to_owned(),
                    text(6).to_owned(),
                );
                let decision = allowed_by(policy, &probe(&shape)).err();
                decisions.insert(key.clone(), decision.clone());
                decision
            }
        };
        if let Some(reason) = decision {
            unallowed.push((row.get(0).unwrap(), reason));
        }
    }
    let mut by_id = connection
        .prepare_cached(&format!("SELECT {COLUMNS} FROM disclosures WHERE id = ?"))
        .unwrap();
    unallowed
        .into_iter()
        .map(|(id, reason)| Unallowed {
            record: by_id
                .query_row([id], |row| Ok(read_row(row)))
                .unwrap()
                .into(),
            reason,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}: not a number: {text}")),
        Err(_) => default,
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    )
}

fn file_gb(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e9)
}

/// `VmHWM` from `/proc/self/status`: the most memory this process held at once.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .map_or_else(|| "unknown".to_owned(), |value| value.trim().to_owned())
}

/// `/proc/loadavg`'s first three fields: the machine is shared, so say how busy it was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
