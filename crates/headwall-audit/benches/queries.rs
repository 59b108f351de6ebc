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
//! - The plans are SQLite's for the statements the reader itself runs for each question
//!   ([`AuditReader::statements`]), so they cannot drift from `src/query.rs` and
//!   `src/summary.rs`.
//!
//! Environment: `HEADWALL_BENCH_ROWS` (default 1000000), `HEADWALL_BENCH_RUNS` (default 5),
//! `HEADWALL_BENCH_COLD=0` skips the evicted-cache runs, `HEADWALL_BENCH_AGAINST_ALL=1` also
//! runs the single-partner policy over all time without a partner filter (about 95 % of the
//! log comes back, streamed through `against_each` as the CLI reads it; it takes over 30 s at
//! 10 M rows, so it is on by default only up to 2 M rows; the peak RSS is printed at the end).
//! The hand-run experiments that chose today's indexes and summary tables are gone from here;
//! their conclusions are in BENCH.md and the code.

#![allow(clippy::unwrap_used)] // a bench: a failed unwrap is a failed run

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use headwall_audit::{
    AuditLog, AuditOptions, AuditReader, DisclosureView, ExposureFilter, ExposureRow, TimeRange,
};
use headwall_identity::{Msisdn, SigningKey};
use headwall_policy::{Policy, load_policy};
use rusqlite::Connection;

const DAY: i64 = 86_400_000;
/// 2025-01-01T00:00:00Z.
const START: i64 = 1_735_689_600_000;
const SPAN_DAYS: i64 = 400;
const PARTNERS: usize = 20;
const HOSTS: usize = 50;
/// The partner and host the filtered queries name (mid-sized: hosts 7, 27 and 47).
const PARTNER: usize = 7;
const HOST: usize = 27;

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
        let mut reader = AuditReader::open(&path).unwrap();
        for query in &queries {
            println!("{}\n{}", query.name, plan(&connection, &mut reader, query));
        }
    }

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

/// `EXPLAIN QUERY PLAN` of every distinct statement the reader runs for `query` (parameters
/// bound as it bound them), indented by depth.
fn plan(connection: &Connection, reader: &mut AuditReader, query: &Query<'_>) -> String {
    let ((), statements) = reader.statements(|reader| {
        query.run(reader);
    });
    let mut seen = std::collections::HashSet::new();
    let mut out = String::new();
    for (sql, expanded) in statements {
        if seen.insert(sql) {
            let _ = writeln!(out, "  {expanded}");
            out.push_str(&plan_sql(connection, &expanded));
        }
    }
    out
}

fn plan_sql(connection: &Connection, sql: &str) -> String {
    let mut statement = connection
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    let rows: Vec<(i64, i64, String)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(3)?)))
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
        let _ = writeln!(out, "    {}- {detail}", "  ".repeat(level));
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
