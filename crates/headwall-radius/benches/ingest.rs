//! RADIUS ingest benchmark: Accounting-Requests acknowledged per second by the real listener.
//!
//! `cargo bench -p headwall-radius --bench ingest` runs two processes:
//!
//! - the **server** (this process, pinned to CPU `INGEST_SERVER_CPU`, default 0, with
//!   `taskset -a -p` before any thread exists, so every thread it starts inherits the pin):
//!   [`headwall_radius::serve`] on 127.0.0.1:0 on a current-thread tokio runtime, with an embedded
//!   [`Sessions`] (SQLite store, WAL, `synchronous = FULL`, group commit) and a real [`AuditLog`],
//!   both in a temporary folder;
//! - the **load generator** (this binary again, `HEADWALL_INGEST_ROLE=loadgen`, pinned to CPU
//!   `INGEST_LOADGEN_CPU`, default 1): `INGEST_SOCKETS` UDP sockets keep `INGEST_WINDOW`
//!   Accounting-Requests in flight in total (identifiers are 8-bit per source port, hence several
//!   sockets), Start for a new Framed-IP-Address each time and every `INGEST_INTERIM_EVERY`-th an
//!   Interim-Update of an earlier one, checks every answer with
//!   [`headwall_radius::response_is_valid`], retransmits after `INGEST_RTO_MS`, and stops after
//!   `INGEST_REQUESTS` requests or `INGEST_SECONDS` seconds.
//!
//! The server then reports acknowledged packets/s, latency percentiles, server CPU use, the
//! `fdatasync` calls of the session-store writer (counted with `perf stat` when available:
//! one per group commit, plus two per WAL checkpoint), and the rows in `bindings.db`, which must
//! cover every acknowledged subscriber.
//!
//! Environment (defaults): `INGEST_REQUESTS` (500000), `INGEST_SECONDS` (60), `INGEST_WINDOW`
//! (256), `INGEST_SOCKETS` (16), `INGEST_INTERIM_EVERY` (4; 0 = Starts only), `INGEST_RTO_MS`
//! (1000), `INGEST_SERVER_CPU` (0), `INGEST_LOADGEN_CPU` (1; empty = do not pin),
//! `INGEST_PERF` (1 = count fsyncs with `perf stat` if it is installed).

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use headwall_audit::{AuditLog, AuditOptions};
use headwall_identity::SigningKey;
use headwall_radius::{
    AccountingRequest, AcctStatusType, PacketResult, RadiusClient, RadiusMetrics, RadiusSettings,
    encode_accounting_request, response_is_valid, serve,
};
use headwall_sessions::{SessionStore, SessionTable, Sessions};
use tokio::net::UdpSocket;

const SECRET: &[u8] = b"bench-radius-secret";
const ROLE: &str = "HEADWALL_INGEST_ROLE";
const SERVER: &str = "HEADWALL_INGEST_SERVER";

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("loadgen") => loadgen(),
        _ => server(),
    }
}

/// A setting from the environment, or its default.
fn setting<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not valid")),
        Err(_) => default,
    }
}

fn text_setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

fn server() {
    let server_cpu = text_setting("INGEST_SERVER_CPU", "0");
    let pinned = pin_this_process(&server_cpu);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run_server(dir.path(), pinned));
}

/// Pins every thread of this process (only the main thread exists yet; later threads inherit).
fn pin_this_process(cpu: &str) -> Option<String> {
    if cpu.is_empty() {
        return None;
    }
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpu, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => Some(cpu.to_owned()),
        _ => {
            eprintln!("warning: could not pin to CPU {cpu} (taskset failed); running unpinned");
            None
        }
    }
}

async fn run_server(dir: &Path, pinned: Option<String>) {
    let table = Arc::new(SessionTable::new(7200));
    let store = SessionStore::open(dir, table.clone()).unwrap();
    let sessions = Sessions::Embedded {
        table: table.clone(),
        store: Some(store),
    };
    let audit = AuditLog::open(
        &dir.join("audit.db"),
        AuditOptions {
            signing_key: SigningKey::from_seed(&[7; 32]).unwrap(),
            checkpoint_every: Duration::from_secs(60),
            commit_window: headwall_audit::DEFAULT_COMMIT_WINDOW,
        },
    )
    .unwrap();
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let address = socket.local_addr().unwrap();
    let settings = RadiusSettings {
        clients: vec![RadiusClient {
            source: "127.0.0.0/8".parse().unwrap(),
            secret: SECRET.to_vec(),
        }],
        country_code: Some("44".into()),
        min_ipv6_prefix: 48,
    };
    let metrics = Arc::new(RadiusMetrics::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = tokio::spawn(serve(
        socket,
        settings,
        sessions.clone(),
        metrics.clone(),
        audit.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    // Every thread of the server exists now (tokio's blocking pool grows on demand, but it only
    // carries the queue hand-off); `perf stat -p` follows the threads present when it attaches.
    let perf = start_perf(dir);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let loadgen_cpu = text_setting("INGEST_LOADGEN_CPU", "1");
    let exe = std::env::current_exe().unwrap();
    let mut command = if loadgen_cpu.is_empty() {
        Command::new(&exe)
    } else {
        let mut command = Command::new("taskset");
        command.args(["-c", &loadgen_cpu]).arg(&exe);
        command
    };
    command
        .env(ROLE, "loadgen")
        .env(SERVER, address.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let cpu_before = process_cpu_seconds();
    let wall_before = Instant::now();
    let child = command.spawn().unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let wall = wall_before.elapsed().as_secs_f64();
    let server_cpu = process_cpu_seconds() - cpu_before;
    let syncs = perf.map(stop_perf);
    assert!(output.status.success(), "load generator failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result = parse_result(&stdout);

    // Let the last commits land, stop the listener, and count what is on disk.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(());
    let _ = listener.await;
    let rows = count_rows(&dir.join("bindings.db"));

    let get = |key: &str| result.get(key).cloned().unwrap_or_default();
    let number = |key: &str| get(key).parse::<f64>().unwrap_or(f64::NAN);
    let acked = number("acked");
    let busy = number("busy_seconds");
    let accepted = ["start", "interim"]
        .iter()
        .map(|status| metrics.packets(status, PacketResult::Accepted))
        .sum::<u64>();
    let duplicates = ["start", "interim"]
        .iter()
        .map(|status| metrics.packets(status, PacketResult::Duplicate))
        .sum::<u64>();
    println!();
    println!("## RADIUS ingest (headwall_radius::serve, embedded SQLite sessions, real audit log)");
    println!();
    println!(
        "server CPU pin: {}, load generator CPU pin: {}, window {} over {} sockets, \
         1 Interim per {} requests, RTO {} ms",
        pinned.as_deref().unwrap_or("none"),
        if loadgen_cpu.is_empty() {
            "none"
        } else {
            &loadgen_cpu
        },
        get("window"),
        get("sockets"),
        get("interim_every"),
        get("rto_ms"),
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| requests issued | {} |", get("issued"));
    println!(
        "| acknowledged (valid Accounting-Response) | {} |",
        get("acked")
    );
    println!(
        "| **acknowledged / s** (first send to last answer, {busy:.2} s) | **{:.0}** |",
        acked / busy
    );
    println!(
        "| latency p50 / p99 / p99.9 / max (ms) | {} / {} / {} / {} |",
        get("p50_ms"),
        get("p99_ms"),
        get("p999_ms"),
        get("max_ms")
    );
    println!(
        "| retransmissions / given up / unanswered at the end | {} / {} / {} |",
        get("retransmits"),
        get("given_up"),
        get("unanswered")
    );
    println!(
        "| answers not matching an outstanding request (late duplicates) | {} |",
        get("unmatched")
    );
    println!("| server: accepted / duplicate (metrics) | {accepted} / {duplicates} |");
    println!(
        "| server CPU (all threads, on its pinned core) | {server_cpu:.2} s of {wall:.2} s wall = {:.0} % |",
        100.0 * server_cpu / wall
    );
    println!(
        "| load generator CPU | {} s = {:.0} % |",
        get("cpu_seconds"),
        100.0 * number("cpu_seconds") / busy
    );
    match &syncs {
        Some(Ok(syncs)) => {
            println!(
                "| fdatasync+fsync: sessions writer / whole server | {} / {} |",
                syncs.writer, syncs.total
            );
            if syncs.writer > 0 {
                println!(
                    "| acknowledged packets per writer sync (~ per group commit) | {:.1} |",
                    accepted as f64 / syncs.writer as f64
                );
            }
        }
        Some(Err(error)) => println!("| fsync count | not available ({error}) |"),
        None => println!("| fsync count | not measured (INGEST_PERF=0 or no perf) |"),
    }
    println!(
        "| distinct subscribers acknowledged | {} |",
        get("acked_subscribers")
    );
    println!("| rows in bindings.db after the run | {rows} |");
    let acked_subscribers = number("acked_subscribers");
    let durable = rows as f64 >= acked_subscribers;
    println!(
        "| every acknowledged subscriber on disk | {} |",
        if durable { "yes" } else { "**NO**" }
    );
    println!();
    drop(sessions);
    drop(audit);
    assert!(
        durable,
        "fewer rows ({rows}) than acknowledged subscribers ({acked_subscribers})"
    );
}

fn parse_result(stdout: &str) -> HashMap<String, String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("RESULT "))
        .flat_map(|line| line.split_whitespace())
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

fn count_rows(path: &Path) -> i64 {
    let connection =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    connection
        .query_row("SELECT count(*) FROM bindings", [], |row| row.get(0))
        .unwrap()
}

/// User + system CPU seconds of this process (all threads) from `/proc/self/stat`.
fn process_cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/self/stat")
}

fn cpu_seconds_of(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After ") ": state is field 3 of stat(5); utime and stime are fields 14 and 15.
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

struct Perf {
    child: Child,
    output: std::path::PathBuf,
}

struct Syncs {
    writer: u64,
    total: u64,
}

fn start_perf(dir: &Path) -> Option<Perf> {
    if setting("INGEST_PERF", 1u8) == 0 {
        return None;
    }
    let output = dir.join("perf-stat.csv");
    let child = Command::new("perf")
        .args([
            "stat",
            "--per-thread",
            "-x",
            ",",
            "-e",
            "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync",
            "-p",
            &std::process::id().to_string(),
            "-o",
        ])
        .arg(&output)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some(Perf { child, output })
}

fn stop_perf(mut perf: Perf) -> Result<Syncs, String> {
    let _ = Command::new("kill")
        .args(["-INT", &perf.child.id().to_string()])
        .status();
    let status = perf.child.wait().map_err(|e| e.to_string())?;
    let csv = std::fs::read_to_string(&perf.output).map_err(|e| e.to_string())?;
    let mut syncs = Syncs {
        writer: 0,
        total: 0,
    };
    let mut counted = false;
    for line in csv.lines().filter(|line| !line.starts_with('#')) {
        let fields: Vec<&str> = line.split(',').collect();
        let (Some(thread), Some(Ok(count))) = (fields.first(), fields.get(1).map(|c| c.parse()))
        else {
            continue;
        };
        let count: u64 = count;
        counted = true;
        syncs.total += count;
        if thread.starts_with("headwall-sessio") {
            syncs.writer += count;
        }
    }
    if !counted {
        return Err(format!("perf stat gave no counts (exit {status})"));
    }
    Ok(syncs)
}

// ---------------------------------------------------------------------------------------------
// Load generator side
// ---------------------------------------------------------------------------------------------

struct Plan {
    server: SocketAddr,
    total: u64,
    deadline: Instant,
    interim_every: u64,
    rto: Duration,
    next: AtomicU64,
}

impl Plan {
    /// The next request index to send, while any are left and time remains.
    fn take(&self) -> Option<u64> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        (index < self.total).then_some(index)
    }

    /// Which subscriber request `index` is about, and whether it is an Interim-Update.
    fn subject(&self, index: u64) -> (u64, AcctStatusType) {
        let every = self.interim_every;
        if every > 1 && index % every == every - 1 {
            // An Interim-Update for the subscriber started `every - 1` requests earlier.
            (index - (every - 1), AcctStatusType::InterimUpdate)
        } else {
            (index, AcctStatusType::Start)
        }
    }

    fn datagram(&self, index: u64, identifier: u8) -> (Vec<u8>, u32) {
        let (subscriber, status) = self.subject(index);
        let ip = Ipv4Addr::from(0x0a00_0001 + subscriber as u32);
        let request = AccountingRequest {
            identifier,
            authenticator: [0; 16],
            status,
            framed_ip: Some(ip),
            framed_ipv6_prefix: None,
            calling_station_id: Some(format!("+4477{:08}", subscriber % 100_000_000)),
            session_id: Some(format!("{:016x}", 0x5eed_0000_0000_0000 | subscriber)),
            nas_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            nas_identifier: Some("pgw-bench-1".into()),
            imsi: Some(format!("23415{:010}", subscriber)),
        };
        (
            encode_accounting_request(&request, SECRET),
            subscriber as u32,
        )
    }
}

struct InFlight {
    datagram: Vec<u8>,
    authenticator: [u8; 16],
    subscriber: u32,
    first_sent: Instant,
    last_sent: Instant,
    tries: u32,
}

#[derive(Default)]
struct Tally {
    issued: u64,
    acked: u64,
    retransmits: u64,
    given_up: u64,
    unanswered: u64,
    unmatched: u64,
    latencies_us: Vec<u32>,
    acked_subscribers: Vec<u32>,
    last_answer: Option<Instant>,
}

const MAX_TRIES: u32 = 5;

fn loadgen() {
    let cpu_before = process_cpu_seconds();
    let total = setting("INGEST_REQUESTS", 500_000u64);
    let seconds = setting("INGEST_SECONDS", 60u64);
    let window = setting("INGEST_WINDOW", 256usize).max(1);
    let sockets = setting("INGEST_SOCKETS", 16usize).max(window.div_ceil(128));
    let interim_every = setting("INGEST_INTERIM_EVERY", 4u64);
    let rto_ms = setting("INGEST_RTO_MS", 1000u64);
    let start = Instant::now();
    let plan = Arc::new(Plan {
        server: std::env::var(SERVER).unwrap().parse().unwrap(),
        total,
        deadline: start + Duration::from_secs(seconds),
        interim_every,
        rto: Duration::from_millis(rto_ms),
        next: AtomicU64::new(0),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tallies = runtime.block_on(async {
        let mut tasks = Vec::new();
        for index in 0..sockets {
            // Spread the window evenly; every socket keeps at most 128 of its 256 identifiers
            // busy, so an identifier is reused only long after its last answer.
            let share = window / sockets + usize::from(index < window % sockets);
            tasks.push(tokio::spawn(drive(plan.clone(), share)));
        }
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await.unwrap());
        }
        tallies
    });
    let mut all = Tally::default();
    for tally in tallies {
        all.issued += tally.issued;
        all.acked += tally.acked;
        all.retransmits += tally.retransmits;
        all.given_up += tally.given_up;
        all.unanswered += tally.unanswered;
        all.unmatched += tally.unmatched;
        all.latencies_us.extend(tally.latencies_us);
        all.acked_subscribers.extend(tally.acked_subscribers);
        all.last_answer = all.last_answer.max(tally.last_answer);
    }
    all.latencies_us.sort_unstable();
    all.acked_subscribers.sort_unstable();
    all.acked_subscribers.dedup();
    let busy = all
        .last_answer
        .map_or(0.0, |last| (last - start).as_secs_f64());
    let percentile = |p: f64| {
        let latencies = &all.latencies_us;
        if latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        f64::from(latencies[rank.clamp(1, latencies.len()) - 1]) / 1000.0
    };
    let cpu = process_cpu_seconds() - cpu_before;
    println!(
        "RESULT issued={} acked={} busy_seconds={busy:.3} p50_ms={:.2} p99_ms={:.2} p999_ms={:.2} \
         max_ms={:.2} retransmits={} given_up={} unanswered={} unmatched={} acked_subscribers={} \
         cpu_seconds={cpu:.2} window={window} sockets={sockets} interim_every={interim_every} \
         rto_ms={rto_ms}",
        all.issued,
        all.acked,
        percentile(50.0),
        percentile(99.0),
        percentile(99.9),
        percentile(100.0),
        all.retransmits,
        all.given_up,
        all.unanswered,
        all.unmatched,
        all.acked_subscribers.len(),
    );
}

/// One source port: keeps `window` requests in flight until the plan runs out.
async fn drive(plan: Arc<Plan>, window: usize) -> Tally {
    let mut tally = Tally::default();
    if window == 0 {
        return tally;
    }
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    socket.connect(plan.server).await.unwrap();
    let mut slots: Vec<Option<InFlight>> = (0..256).map(|_| None).collect();
    let mut free: VecDeque<u8> = (0..=255).collect();
    let mut outstanding = 0usize;
    let mut exhausted = false;
    let mut buffer = [0u8; 512];
    let tick = Duration::from_millis(50);
    let mut next_scan = Instant::now() + tick;
    let grace = plan.rto * (MAX_TRIES + 1);
    loop {
        while !exhausted && outstanding < window {
            let Some(index) = plan.take() else {
                exhausted = true;
                break;
            };
            let identifier = free.pop_front().unwrap();
            let (datagram, subscriber) = plan.datagram(index, identifier);
            let mut authenticator = [0u8; 16];
            authenticator.copy_from_slice(&datagram[4..20]);
            let now = Instant::now();
            let _ = socket.send(&datagram).await;
            slots[usize::from(identifier)] = Some(InFlight {
                datagram,
                authenticator,
                subscriber,
                first_sent: now,
                last_sent: now,
                tries: 1,
            });
            outstanding += 1;
            tally.issued += 1;
        }
        if exhausted && outstanding == 0 {
            break;
        }
        if Instant::now() > plan.deadline + grace {
            tally.unanswered += outstanding as u64;
            break;
        }
        let wait = next_scan.saturating_duration_since(Instant::now());
        if let Ok(Ok(len)) = tokio::time::timeout(wait, socket.recv(&mut buffer)).await {
            let mut len = len;
            loop {
                outstanding -= answer(&buffer[..len], &mut slots, &mut free, &mut tally);
                match socket.try_recv(&mut buffer) {
                    Ok(next) => len = next,
                    Err(_) => break,
                }
            }
        }
        let now = Instant::now();
        if now >= next_scan {
            next_scan = now + tick;
            for slot in slots.iter_mut() {
                let Some(flight) = slot else { continue };
                if now.duration_since(flight.last_sent) < plan.rto {
                    continue;
                }
                if flight.tries >= MAX_TRIES {
                    tally.given_up += 1;
                    free.push_back(flight.datagram[1]);
                    *slot = None;
                    outstanding -= 1;
                    continue;
                }
                flight.tries += 1;
                flight.last_sent = now;
                tally.retransmits += 1;
                let _ = socket.send(&flight.datagram).await;
            }
        }
    }
    tally
}

/// Matches one answer to its request; returns 1 when it completed one.
fn answer(
    response: &[u8],
    slots: &mut [Option<InFlight>],
    free: &mut VecDeque<u8>,
    tally: &mut Tally,
) -> usize {
    let Some(&identifier) = response.get(1) else {
        tally.unmatched += 1;
        return 0;
    };
    let slot = &mut slots[usize::from(identifier)];
    let valid = slot.as_ref().is_some_and(|flight| {
        response_is_valid(response, identifier, &flight.authenticator, SECRET)
    });
    if !valid {
        tally.unmatched += 1;
        return 0;
    }
    let now = Instant::now();
    let flight = slot.take().unwrap();
    let micros = now.duration_since(flight.first_sent).as_micros();
    tally
        .latencies_us
        .push(u32::try_from(micros).unwrap_or(u32::MAX));
    tally.acked_subscribers.push(flight.subscriber);
    tally.acked += 1;
    tally.last_answer = Some(now);
    free.push_back(identifier);
    1
}
