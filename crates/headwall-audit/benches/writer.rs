//! Group commit, measured: K concurrent tasks each awaiting [`AuditLog::disclose`] in a loop on a
//! real file, reporting disclosures per second, the latency of `disclose().await` and how many
//! commits (each one transaction and one fsync) the records shared.
//!
//! `cargo bench -p headwall-audit --bench writer`
//!
//! - Each setting (1, 16, 64, 256 tasks) writes `HEADWALL_BENCH_WRITES` disclosures (default
//!   20000) in total, or stops after `HEADWALL_BENCH_SECONDS` (default 30), into a new, empty
//!   log under `target/bench-writer/`.
//! - When `HEADWALL_BENCH_ROWS` names a database the `queries` bench has built
//!   (`target/bench-audit-<rows>.db`), the settings run again on a copy of it: appends to a log
//!   whose indexes no longer fit in SQLite's page cache. The copy is removed afterwards.
//! - A baseline line shows what one small write plus `fdatasync` costs on the same disk.

#![allow(clippy::unwrap_used)] // a bench: a failed unwrap is a failed run

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use headwall_audit::{AuditLog, AuditOptions, Disclosure};
use headwall_identity::{Msisdn, SigningKey};

const SETTINGS: [usize; 4] = [1, 16, 64, 256];

fn main() {
    let total = usize::try_from(env_u64("HEADWALL_BENCH_WRITES", 20_000)).unwrap();
    let bound = Duration::from_secs(env_u64("HEADWALL_BENCH_SECONDS", 30));
    let dir = target_dir().join("bench-writer");
    println!("load average at start: {}", load_average());
    std::fs::create_dir_all(&dir).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let (fsync_p50, fsync_p99) = fsync_baseline(&dir);
    println!(
        "fsync baseline: 4 KiB write + fdatasync, median {fsync_p50} ms, p99 {fsync_p99} ms \
         (200 runs, {})",
        dir.display()
    );
    println!("{}", header());

    let mut table = Vec::new();
    for &tasks in &SETTINGS {
        let path = dir.join(format!("empty-{tasks}.db"));
        remove_database(&path);
        let result = runtime.block_on(run(&path, tasks, total, bound));
        remove_database(&path);
        println!("{}", result.line("empty log"));
        table.push(("empty log".to_owned(), result));
    }

    if let Ok(rows) = std::env::var("HEADWALL_BENCH_ROWS") {
        let rows = rows.replace('_', "");
        let source = target_dir().join(format!("bench-audit-{rows}.db"));
        if source.exists() {
            let path = dir.join(format!("large-{rows}.db"));
            remove_database(&path);
            let started = Instant::now();
            std::fs::copy(&source, &path).unwrap();
            // Flush the copy now, or the kernel writes it back during the first setting and
            // its fsyncs wait behind gigabytes of dirty pages.
            std::fs::File::open(&path).unwrap().sync_all().unwrap();
            println!(
                "copied {} in {:.1} s",
                source.display(),
                started.elapsed().as_secs_f64()
            );
            let label = format!("{rows}-row log");
            for &tasks in &SETTINGS {
                let result = runtime.block_on(run(&path, tasks, total, bound));
                println!("{}", result.line(&label));
                table.push((label.clone(), result));
            }
            remove_database(&path);
        } else {
            println!(
                "{} is missing: run the queries bench with the same HEADWALL_BENCH_ROWS first",
                source.display()
            );
        }
    }
    println!("\n{}", markdown(&table));
    println!("load average at end: {}", load_average());
}

fn disclosure(sequence: u64) -> Disclosure {
    let partner = sequence % 20;
    Disclosure {
        request_id: format!("5eed0000-{sequence:x}"),
        partner: format!("partner{partner:02}"),
        purpose: "age_verification".into(),
        msisdn: Msisdn::parse(&format!(
            "4477{:08}",
            (sequence * 48_271 + 12_345) % 100_000_000
        ))
        .unwrap(),
        kinds: vec!["pseudonym".into(), "age_verified".into()],
        headers: vec!["X-Subscriber-Id".into(), "X-Age-Verified".into()],
        host: format!("h{}.partner{partner:02}.test", sequence % 50),
        port: 80,
        upstream_ip: IpAddr::from([10, 0, u8::try_from(partner).unwrap(), 1]),
        client_ip: IpAddr::from([100, 64, 0, 5]),
        policy_hash: "9f2c1e7d4b0a6f35e8d1c2b3a4958677f6e5d4c3b2a1908f7e6d5c4b3a291807".into(),
    }
}

struct Outcome {
    tasks: usize,
    written: usize,
    failed: usize,
    elapsed: Duration,
    commits: u64,
    latencies: Vec<Duration>,
}

async fn run(path: &Path, tasks: usize, total: usize, bound: Duration) -> Outcome {
    let log = AuditLog::open(
        path,
        AuditOptions {
            signing_key: SigningKey::from_seed(&[0x42; 32]).unwrap(),
            checkpoint_every: Duration::from_secs(60),
            commit_window: headwall_audit::DEFAULT_COMMIT_WINDOW,
        },
    )
    .unwrap();
    let per_task = total.div_ceil(tasks);
    let commits_before = log.commits();
    let started = Instant::now();
    let deadline = started + bound;
    let sequence = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let log = log.clone();
        let sequence = sequence.clone();
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            let mut failed = 0;
            for _ in 0..per_task {
                if Instant::now() >= deadline {
                    break;
                }
                let record =
                    disclosure(sequence.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                let sent = Instant::now();
                let result = log.disclose(record).await;
                latencies.push(sent.elapsed());
                if result.is_err() {
                    failed += 1;
                }
            }
            (latencies, failed)
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for handle in handles {
        let (task_latencies, task_failed) = handle.await.unwrap();
        latencies.extend(task_latencies);
        failed += task_failed;
    }
    let elapsed = started.elapsed();
    let commits = log.commits() - commits_before;
    log.close().await;
    latencies.sort();
    Outcome {
        tasks,
        written: latencies.len() - failed,
        failed,
        elapsed,
        commits,
        latencies,
    }
}

impl Outcome {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index =
            ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[index - 1]
    }

    fn rate(&self) -> f64 {
        self.written as f64 / self.elapsed.as_secs_f64()
    }

    fn line(&self, label: &str) -> String {
        format!(
            "{label:<14} tasks {:>4}  written {:>6}  failed {:>3}  {:>6.1} s  {:>8.0} /s  \
             p50 {:>8} ms  p99 {:>8} ms  max {:>8} ms  commits {:>6}  records/commit {:>7.1}  \
             commits/record {:.4}",
            self.tasks,
            self.written,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.rate(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
            self.commits,
            self.written as f64 / self.commits.max(1) as f64,
            self.commits as f64 / self.written.max(1) as f64,
        )
    }
}

fn header() -> String {
    "log            tasks  written  failed  time  disclosures/s  latency  commits".to_owned()
}

fn markdown(table: &[(String, Outcome)]) -> String {
    let mut out = String::from(
        "| log | tasks | written | failed | s | disclosures/s | p50 ms | p99 ms | max ms | commits | records/commit | commits/record |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for (label, outcome) in table {
        out.push_str(&format!(
            "| {label} | {} | {} | {} | {:.1} | {:.0} | {} | {} | {} | {} | {:.1} | {:.4} |\n",
            outcome.tasks,
            outcome.written,
            outcome.failed,
            outcome.elapsed.as_secs_f64(),
            outcome.rate(),
            ms(outcome.percentile(0.50)),
            ms(outcome.percentile(0.99)),
            ms(outcome.latencies.last().copied().unwrap_or_default()),
            outcome.commits,
            outcome.written as f64 / outcome.commits.max(1) as f64,
            outcome.commits as f64 / outcome.written.max(1) as f64,
        ));
    }
    out
}

/// Median and p99 of a 4 KiB append plus `fdatasync` on the bench directory's disk, ms.
fn fsync_baseline(dir: &Path) -> (String, String) {
    let path = dir.join("fsync-baseline");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .unwrap();
    let block = [0x5a_u8; 4096];
    let mut samples: Vec<Duration> = (0..200)
        .map(|_| {
            let started = Instant::now();
            file.write_all(&block).unwrap();
            file.sync_data().unwrap();
            started.elapsed()
        })
        .collect();
    drop(file);
    let _ = std::fs::remove_file(&path);
    samples.sort();
    (
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() * 99 / 100]),
    )
}

fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
    let _ = std::fs::remove_file(headwall_audit::checkpoint_path(path));
    for journal in headwall_audit::journal_paths(path) {
        let _ = std::fs::remove_file(journal);
    }
}

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

/// `/proc/loadavg`'s first three fields: the machine is shared, so say how busy it was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
