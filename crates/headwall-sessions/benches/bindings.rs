//! Binding benchmarks: memory per binding, lookup time, and start-up time with N bindings.
//!
//! `cargo bench -p headwall-sessions --bench bindings` runs each case in a fresh child process
//! (this binary again, `HEADWALL_BINDINGS_CASE=<case>`), so one case's heap never inflates
//! another's RSS, and prints a summary table:
//!
//! - `v4` / `v6`: VmRSS (from `/proc/self/status`) before and after binding N IPv4 /32 (or IPv6
//!   /64) addresses in a [`SessionTable`], then single-thread [`SessionTable::lookup`] and [`SessionTable::lookup_subscriber`] time over
//!   `BINDINGS_LOOKUPS` random bound addresses, random unbound addresses, and a hot set of 1,024
//!   bound addresses (cache-resident). Timed in batches of 1,024 lookups; the median of the
//!   batch means is reported, with p99 and the overall mean.
//! - `startup`: N rows written straight into `bindings.db` with rusqlite in the store's schema
//!   (a [`SessionStore`] is opened once first to create it), then `BINDINGS_STARTUP_RUNS` fresh
//!   processes each time [`SessionStore::open`] loading them (what `headwall serve` does at start),
//!   plus one process that only scans the rows with rusqlite (the SQLite share of the time).
//!
//! - `floor`: one dependent memory access into an array the size of the 10 M table, as a
//!   random pointer chase: the floor under a random lookup on this machine.
//!
//! Environment (defaults): `BINDINGS_N` (1000000), `BINDINGS_LOOKUPS` (5000000),
//! `BINDINGS_CASES` (`v4,v6,startup`), `BINDINGS_IMSI` (1: every binding carries a 3GPP-IMSI),
//! `BINDINGS_RESERVE` (0; 1: the table is sized for N before the fill, as a start-up load does),
//! `BINDINGS_STARTUP_RUNS` (3), `BINDINGS_FLOOR_MIB` (1024), `BINDINGS_DB_DIR` (a temporary folder; give one to keep the
//! filled database between runs: it is refilled only when its row count differs from N).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use headwall_identity::{Imsi, Msisdn};
use headwall_sessions::{Binding, Lookup, SessionStore, SessionTable};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

const CASE: &str = "HEADWALL_BINDINGS_CASE";
const DB_DIR: &str = "HEADWALL_BINDINGS_DB";
const BATCH: usize = 1024;

fn main() {
    match std::env::var(CASE).as_deref() {
        Ok("v4") => memory_and_lookup(false),
        Ok("v6") => memory_and_lookup(true),
        Ok("floor") => memory_floor(),
        Ok("fill") => fill_database(),
        Ok("open") => open_store(),
        Ok("scan") => scan_rows(),
        Ok(other) => panic!("unknown case {other}"),
        Err(_) => orchestrate(),
    }
}

fn setting<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not valid")),
        Err(_) => default,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// VmRSS of this process in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// AnonHugePages of this process in MiB (from `/proc/self/smaps_rollup`): whether the table
/// sits on transparent huge pages (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, docs/operations.md).
fn huge_pages_mib() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("AnonHugePages:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// User + system CPU seconds of this process so far (all threads), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // After the command name: utime and stime are fields 14 and 15 of proc(5).
    let ticks = |index: usize| -> f64 {
        fields
            .get(index)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let per_second: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0);
    (ticks(11) + ticks(12)) / per_second
}

fn result(case: &str, pairs: &[(&str, String)]) {
    let mut line = format!("RESULT case={case}");
    for (key, value) in pairs {
        line.push_str(&format!(" {key}={value}"));
    }
    println!("{line}");
}

// ---------------------------------------------------------------------------------------------
// Orchestration
// ---------------------------------------------------------------------------------------------

type Results = Vec<BTreeMap<String, String>>;

fn orchestrate() {
    let n = setting("BINDINGS_N", 1_000_000usize);
    let cases = std::env::var("BINDINGS_CASES").unwrap_or_else(|_| "v4,v6,startup".into());
    let mut results: Results = Vec::new();
    let temporary = tempfile::tempdir().unwrap();
    for case in cases.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        match case {
            "v4" | "v6" | "floor" => results.extend(child(case, None)),
            "startup" => {
                let dir = std::env::var("BINDINGS_DB_DIR")
                    .map_or_else(|_| temporary.path().to_owned(), PathBuf::from);
                results.extend(child("fill", Some(&dir)));
                results.extend(child("scan", Some(&dir)));
                for _ in 0..setting("BINDINGS_STARTUP_RUNS", 3usize) {
                    results.extend(child("open", Some(&dir)));
                }
            }
            other => panic!("unknown case {other} in BINDINGS_CASES"),
        }
    }
    report(n, &results);
}

/// Runs one case in a fresh process; its `RESULT` lines come back parsed, the rest is echoed.
fn child(case: &str, dir: Option<&Path>) -> Results {
    eprintln!("-- case {case}");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .env(CASE, case)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(dir) = dir {
        command.env(DB_DIR, dir);
    }
    let mut process = command.spawn().unwrap();
    let mut results = Vec::new();
    for line in BufReader::new(process.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        eprintln!("   {line}");
        if let Some(rest) = line.strip_prefix("RESULT ") {
            results.push(
                rest.split_whitespace()
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            );
        }
    }
    assert!(process.wait().unwrap().success(), "case {case} failed");
    results
}

/// The rows of `case` (and `kind`, when given).
fn find<'a>(
    results: &'a Results,
    case: &'a str,
    kind: Option<&'a str>,
) -> impl Iterator<Item = &'a BTreeMap<String, String>> {
    results.iter().filter(move |row| {
        row.get("case").map(String::as_str) == Some(case)
            && kind.is_none_or(|kind| row.get("kind").map(String::as_str) == Some(kind))
    })
}

fn report(n: usize, results: &Results) {
    let find = |case, kind| find(results, case, kind);
    let get = |row: &BTreeMap<String, String>, key: &str| row.get(key).cloned().unwrap_or_default();
    println!();
    println!("## Bindings (N = {n}, IMSI on every binding: {})", {
        if setting("BINDINGS_IMSI", 1u8) != 0 {
            "yes"
        } else {
            "no"
        }
    });
    println!();
    println!("| measure | result | target |");
    println!("|---|---|---|");
    for case in ["v4", "v6"] {
        for row in find(case, Some("memory")) {
            println!(
                "| RSS per binding, {case} ({} bindings, {} MiB -> {} MiB, {} MiB on huge pages, filled in {} s) | **{} B** | <= 150 B |",
                get(row, "bindings"),
                get(row, "rss_before_mib"),
                get(row, "rss_after_mib"),
                get(row, "huge_pages_mib"),
                get(row, "fill_seconds"),
                get(row, "bytes_per_binding"),
            );
        }
        for row in find(case, Some("lookup")) {
            println!(
                "| lookup {case} {} ({} lookups): median / p99 / mean ns | **{}** / {} / {} | <= 300 ns (random, 10 M) |",
                get(row, "set"),
                get(row, "lookups"),
                get(row, "median_ns"),
                get(row, "p99_ns"),
                get(row, "mean_ns"),
            );
        }
    }
    for row in find("floor", None) {
        println!(
            "| one dependent memory access, random over {} MiB ({} MiB on huge pages): median / p99 / mean ns | **{}** / {} / {} | the floor under a random lookup |",
            get(row, "mib"),
            get(row, "huge_pages_mib"),
            get(row, "median_ns"),
            get(row, "p99_ns"),
            get(row, "mean_ns"),
        );
    }
    for row in find("fill", None) {
        let written = match get(row, "written_seconds").as_str() {
            "reused" => "reused from BINDINGS_DB_DIR".to_owned(),
            seconds => format!("written in {seconds} s"),
        };
        println!(
            "| bindings.db: {} rows, {} MiB ({written}) | | |",
            get(row, "rows"),
            get(row, "db_mib"),
        );
    }
    for row in find("scan", None) {
        println!(
            "| SQLite share: scan every row into strings, no parse or bind | {} s | |",
            get(row, "seconds"),
        );
    }
    let mut opens: Vec<f64> = find("open", None)
        .filter_map(|row| row.get("seconds").and_then(|s| s.parse().ok()))
        .collect();
    for row in find("open", None) {
        println!(
            "| start-up run: SessionStore::open loads {} bindings | {} s wall, {} s CPU (RSS +{} B/binding) | <= 10 s |",
            get(row, "loaded"),
            get(row, "seconds"),
            get(row, "cpu_seconds"),
            get(row, "bytes_per_binding"),
        );
    }
    if !opens.is_empty() {
        opens.sort_by(f64::total_cmp);
        println!(
            "| **start-up (median of {} runs)** | **{:.2} s** | <= 10 s |",
            opens.len(),
            opens[opens.len() / 2]
        );
    }
    println!();
}

// ---------------------------------------------------------------------------------------------
// Bindings and addresses
// ---------------------------------------------------------------------------------------------

/// The k-th bound network: 10.0.0.1 + k as a /32, or 2001:db8::/32 + k as a /64.
fn network(v6: bool, k: u64) -> IpNet {
    if v6 {
        IpNet::V6(Ipv6Net::new(v6_prefix(0x2001_0db8, k), 64).unwrap())
    } else {
        IpNet::V4(Ipv4Net::from(Ipv4Addr::from(0x0a00_0001 + k as u32)))
    }
}

fn v6_prefix(top: u64, k: u64) -> Ipv6Addr {
    Ipv6Addr::from(u128::from((top << 32) | k) << 64)
}

/// A binding shaped like the listener makes one: 12-digit MSISDN, 15-digit IMSI, 16-hex-digit
/// Acct-Session-Id, NAS-IP-Address as text.
fn binding(k: u64, now: u64, with_imsi: bool) -> Binding {
    Binding {
        msisdn: Msisdn::parse(&format!("4477{:08}", k % 100_000_000)).unwrap(),
        imsi: with_imsi.then(|| Imsi::parse(&format!("23415{k:010}")).unwrap()),
        session_id: format!("{:016x}", 0x5eed_0000_0000_0000 | k),
        nas: "192.0.2.1".to_owned(),
        updated_at: now,
    }
}

/// Reproducible addresses (testkit's SplitMix64).
type SplitMix = headwall_testkit::SplitMix64;

/// A random address inside bound network `k`.
fn bound_address(v6: bool, k: u64, random: &mut SplitMix) -> IpAddr {
    if v6 {
        let prefix = u128::from(v6_prefix(0x2001_0db8, k));
        IpAddr::V6(Ipv6Addr::from(prefix | u128::from(random.next_u64())))
    } else {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + k as u32))
    }
}

/// A random address no binding covers (100.64.0.0/10, or 2001:db9::/32).
fn unbound_address(v6: bool, random: &mut SplitMix) -> IpAddr {
    if v6 {
        let prefix = u128::from(v6_prefix(0x2001_0db9, random.below(1 << 32)));
        IpAddr::V6(Ipv6Addr::from(prefix | u128::from(random.next_u64())))
    } else {
        IpAddr::V4(Ipv4Addr::from(0x6440_0000 + random.below(1 << 22) as u32))
    }
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

fn memory_and_lookup(v6: bool) {
    let case = if v6 { "v6" } else { "v4" };
    let n = setting("BINDINGS_N", 1_000_000u64);
    let lookups = setting("BINDINGS_LOOKUPS", 5_000_000usize);
    let with_imsi = setting("BINDINGS_IMSI", 1u8) != 0;
    let now = unix_now();

    let table = SessionTable::new(7200);
    let before = rss_bytes();
    let started = Instant::now();
    if setting("BINDINGS_RESERVE", 0u8) != 0 {
        // As a start-up load does: the table sized once, no resize while filling.
        table.reserve(usize::try_from(n).unwrap());
    }
    for k in 0..n {
        table.bind(network(v6, k), binding(k, now, with_imsi));
    }
    let fill = started.elapsed();
    // Let the allocator settle (freed shard arrays of the last doublings) before measuring.
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_bytes();
    assert_eq!(table.len() as u64, n);
    let mib = |bytes: u64| format!("{:.0}", bytes as f64 / (1024.0 * 1024.0));
    result(
        case,
        &[
            ("kind", "memory".into()),
            ("bindings", n.to_string()),
            ("rss_before_mib", mib(before)),
            ("rss_after_mib", mib(after)),
            (
                "bytes_per_binding",
                format!("{:.0}", after.saturating_sub(before) as f64 / n as f64),
            ),
            ("fill_seconds", format!("{:.2}", fill.as_secs_f64())),
            ("huge_pages_mib", huge_pages_mib().to_string()),
        ],
    );

    let mut random = SplitMix::new(0x0bad_5eed);
    let bound: Vec<IpAddr> = (0..lookups)
        .map(|_| {
            let k = random.below(n);
            bound_address(v6, k, &mut random)
        })
        .collect();
    let unbound: Vec<IpAddr> = (0..lookups)
        .map(|_| unbound_address(v6, &mut random))
        .collect();
    let hot_set: Vec<IpAddr> = bound.iter().take(BATCH).copied().collect();
    let hot: Vec<IpAddr> = hot_set.iter().copied().cycle().take(lookups).collect();
    for (set, addresses, all_bound) in [
        ("random-bound", &bound, true),
        ("random-unbound", &unbound, false),
        ("hot-1024-bound", &hot, true),
    ] {
        // The whole binding (the admin API's question) and only the subscriber (the data
        // plane's and the API's).
        let whole = |address| matches!(table.lookup(address, now), Lookup::Bound(_));
        let subscriber =
            |address| matches!(table.lookup_subscriber(address, now), Lookup::Bound(_));
        for (question, ask) in [
            ("binding", &whole as &dyn Fn(IpAddr) -> bool),
            ("subscriber", &subscriber),
        ] {
            // One untimed pass over the first batches warms the code paths.
            time_lookups(ask, &addresses[..addresses.len().min(16 * BATCH)]);
            let (timing, found) = time_lookups(ask, addresses);
            let expected = if all_bound { addresses.len() } else { 0 };
            assert_eq!(found, expected, "{case} {set}: wrong lookup answers");
            result(
                case,
                &[
                    ("kind", "lookup".into()),
                    ("set", format!("{set}/{question}")),
                    ("lookups", addresses.len().to_string()),
                    ("median_ns", format!("{:.0}", timing.median)),
                    ("p99_ns", format!("{:.0}", timing.p99)),
                    ("mean_ns", format!("{:.0}", timing.mean)),
                ],
            );
        }
    }
    drop(table);
}

struct Timing {
    median: f64,
    p99: f64,
    mean: f64,
}

/// What a random lookup cannot beat on this machine: one dependent load per step of a pointer
/// chase through `BINDINGS_FLOOR_MIB` (1024, the 10 M table's size) of 64-byte lines in one
/// random cycle (Sattolo's shuffle), timed in batches like the lookups.
fn memory_floor() {
    let mib = setting("BINDINGS_FLOOR_MIB", 1024usize);
    let steps = setting("BINDINGS_LOOKUPS", 5_000_000usize);
    let lines = mib * 1024 * 1024 / 64;
    let mut next: Vec<[u64; 8]> = (0..lines as u64)
        .map(|line| [line, 0, 0, 0, 0, 0, 0, 0])
        .collect();
    let mut random = SplitMix::new(0xf1_0042);
    for i in (1..lines).rev() {
        let j = random.below(i as u64) as usize;
        let (low, high) = next.split_at_mut(i);
        std::mem::swap(&mut low[j][0], &mut high[0][0]);
    }
    let mut at = 0usize;
    let mut batch_means = Vec::with_capacity(steps / BATCH + 1);
    let started = Instant::now();
    for _ in 0..steps / BATCH {
        let start = Instant::now();
        for _ in 0..BATCH {
            at = next[black_box(at)][0] as usize;
        }
        batch_means.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    let timing = summarize(batch_means, started.elapsed(), steps / BATCH * BATCH);
    black_box(at);
    result(
        "floor",
        &[
            ("mib", mib.to_string()),
            ("huge_pages_mib", huge_pages_mib().to_string()),
            ("median_ns", format!("{:.0}", timing.median)),
            ("p99_ns", format!("{:.0}", timing.p99)),
            ("mean_ns", format!("{:.0}", timing.mean)),
        ],
    );
}

/// Median and p99 of per-batch means, and the overall mean over `count` operations.
fn summarize(mut batch_means: Vec<f64>, total: Duration, count: usize) -> Timing {
    batch_means.sort_by(f64::total_cmp);
    let at = |q: f64| {
        batch_means
            .get(((batch_means.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Timing {
        median: at(0.5),
        p99: at(0.99),
        mean: total.as_nanos() as f64 / count.max(1) as f64,
    }
}

/// Times `ask` (a lookup; true when bound) over `addresses` in batches; returns batch-mean
/// statistics and how many were bound.
fn time_lookups(ask: &dyn Fn(IpAddr) -> bool, addresses: &[IpAddr]) -> (Timing, usize) {
    let mut batch_means = Vec::with_capacity(addresses.len() / BATCH + 1);
    let mut found = 0usize;
    let started = Instant::now();
    for batch in addresses.chunks(BATCH) {
        let start = Instant::now();
        for address in batch {
            if ask(black_box(*address)) {
                found += 1;
            }
        }
        batch_means.push(start.elapsed().as_nanos() as f64 / batch.len() as f64);
    }
    (
        summarize(batch_means, started.elapsed(), addresses.len()),
        black_box(found),
    )
}

fn database_dir() -> PathBuf {
    PathBuf::from(std::env::var(DB_DIR).unwrap())
}

fn count_rows(path: &Path) -> Option<u64> {
    let connection =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    let rows: i64 = connection
        .query_row("SELECT count(*) FROM bindings", [], |row| row.get(0))
        .ok()?;
    u64::try_from(rows).ok()
}

fn fill_database() {
    let n = setting("BINDINGS_N", 1_000_000u64);
    let with_imsi = setting("BINDINGS_IMSI", 1u8) != 0;
    let dir = database_dir();
    let path = dir.join("bindings.db");
    let size_mib = |path: &Path| {
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        format!("{:.0}", bytes as f64 / (1024.0 * 1024.0))
    };
    if count_rows(&path) == Some(n) {
        result(
            "fill",
            &[
                ("rows", n.to_string()),
                ("db_mib", size_mib(&path)),
                ("written_seconds", "reused".into()),
            ],
        );
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("bindings.db{suffix}")));
    }
    // The store creates its own schema; opening an empty one loads nothing.
    drop(SessionStore::open(&dir, Arc::new(SessionTable::new(7200))).unwrap());
    let started = Instant::now();
    let mut connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -1048576;")
        .unwrap();
    let now = i64::try_from(unix_now()).unwrap();
    let mut k = 0u64;
    while k < n {
        let transaction = connection.transaction().unwrap();
        {
            let mut insert = transaction
                .prepare(
                    "INSERT INTO bindings (network, msisdn, imsi, session_id, nas, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .unwrap();
            let end = (k + 1_000_000).min(n);
            while k < end {
                let binding = binding(k, 0, with_imsi);
                insert
                    .execute((
                        network(false, k).to_string(),
                        binding.msisdn.expose_digits(),
                        binding.imsi.as_ref().map(Imsi::expose_digits),
                        binding.session_id.as_str(),
                        binding.nas.as_str(),
                        now,
                    ))
                    .unwrap();
                k += 1;
            }
        }
        transaction.commit().unwrap();
        eprintln!("   filled {k} rows");
    }
    connection
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(connection);
    assert_eq!(count_rows(&path), Some(n));
    result(
        "fill",
        &[
            ("rows", n.to_string()),
            ("db_mib", size_mib(&path)),
            (
                "written_seconds",
                format!("{:.1}", started.elapsed().as_secs_f64()),
            ),
        ],
    );
}

/// What `headwall serve` does at start: open the store, loading every row into the table.
fn open_store() {
    let dir = database_dir();
    let before = rss_bytes();
    let table = Arc::new(SessionTable::new(7200));
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let store = SessionStore::open(&dir, table.clone()).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let after = rss_bytes();
    let loaded = table.len();
    result(
        "open",
        &[
            ("loaded", loaded.to_string()),
            ("seconds", format!("{seconds:.2}")),
            ("cpu_seconds", format!("{cpu:.2}")),
            (
                "bytes_per_binding",
                format!(
                    "{:.0}",
                    after.saturating_sub(before) as f64 / loaded.max(1) as f64
                ),
            ),
        ],
    );
    drop(store);
}

/// The SQLite part of start-up alone: read every row's columns into strings.
fn scan_rows() {
    let dir = database_dir();
    let connection = rusqlite::Connection::open_with_flags(
        dir.join("bindings.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let started = Instant::now();
    let mut statement = connection
        .prepare("SELECT network, msisdn, imsi, session_id, nas, updated_at FROM bindings")
        .unwrap();
    let mut rows = statement.query([]).unwrap();
    let mut count = 0u64;
    let mut bytes = 0usize;
    while let Some(row) = rows.next().unwrap() {
        let network: String = row.get(0).unwrap();
        let msisdn: String = row.get(1).unwrap();
        let imsi: Option<String> = row.get(2).unwrap();
        let session: String = row.get(3).unwrap();
        let nas: String = row.get(4).unwrap();
        let updated_at: i64 = row.get(5).unwrap();
        bytes += network.len()
            + msisdn.len()
            + imsi.map_or(0, |i| i.len())
            + session.len()
            + nas.len()
            + usize::from(updated_at > 0);
        count += 1;
    }
    black_box(bytes);
    result(
        "scan",
        &[
            ("rows", count.to_string()),
            ("seconds", format!("{:.2}", started.elapsed().as_secs_f64())),
        ],
    );
}
