//! Latency summaries from a sorted vector of samples, and CPU accounting from /proc.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Latency samples in nanoseconds.
#[derive(Default)]
pub(crate) struct Samples(Vec<u64>);

impl Samples {
    pub(crate) fn push(&mut self, d: Duration) {
        self.0.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub(crate) fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// n, mean, min, p50, p90, p99, p99.9 and max, in milliseconds (nearest rank).
    pub(crate) fn summary(mut self) -> Value {
        self.0.sort_unstable();
        let v = &self.0;
        if v.is_empty() {
            return json!({ "n": 0 });
        }
        let ms = |ns: u64| (ns as f64 / 1e6 * 1000.0).round() / 1000.0;
        let rank = |p: f64| {
            let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[i.clamp(1, v.len()) - 1]
        };
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        json!({
            "n": v.len(),
            "mean_ms": ms(mean as u64),
            "min_ms": ms(v[0]),
            "p50_ms": ms(rank(50.0)),
            "p90_ms": ms(rank(90.0)),
            "p99_ms": ms(rank(99.0)),
            "p999_ms": ms(rank(99.9)),
            "max_ms": ms(v[v.len() - 1]),
        })
    }
}

/// What the server process, the CPUs and this process had used at one instant.
pub(crate) struct CpuSnapshot {
    at: Instant,
    /// utime + stime of the server process (every thread), clock ticks.
    server_ticks: Option<u64>,
    /// On-CPU nanoseconds of every server thread (/proc/PID/task/*/schedstat).
    server_sched_ns: Option<u64>,
    /// (busy, total, steal) ticks of the server's CPU, from /proc/stat.
    server_cpu: Option<(u64, u64, u64)>,
    /// (busy, total, steal) ticks of the CPU this load generator runs on.
    load_cpu: Option<(u64, u64, u64)>,
    /// utime + stime of this process, clock ticks.
    self_ticks: Option<u64>,
}

/// Where to look: the server's pid and CPU, this process's CPU, the clock tick.
#[derive(Clone)]
pub(crate) struct CpuWatch {
    pub(crate) server_pid: Option<u32>,
    pub(crate) server_cpu: Option<usize>,
    pub(crate) load_cpu: Option<usize>,
    pub(crate) clk_tck: u64,
}

impl CpuWatch {
    pub(crate) fn snapshot(&self) -> CpuSnapshot {
        CpuSnapshot {
            at: Instant::now(),
            server_ticks: self
                .server_pid
                .and_then(|p| stat_ticks(&format!("/proc/{p}"))),
            server_sched_ns: self.server_pid.and_then(sched_ns),
            server_cpu: self.server_cpu.and_then(cpu_line),
            load_cpu: self.load_cpu.and_then(cpu_line),
            self_ticks: stat_ticks("/proc/self"),
        }
    }

    /// The CPU used between `a` and `b`, per `items` (answers or flows) where it says so.
    pub(crate) fn between(&self, a: &CpuSnapshot, b: &CpuSnapshot, items: usize) -> Value {
        let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let tick_us = 1e6 / self.clk_tck as f64;
        let items = items.max(1) as f64;
        let round = |x: f64, digits: i32| {
            let f = 10f64.powi(digits);
            (x * f).round() / f
        };
        let mut out = serde_json::Map::new();
        out.insert("wall_s".into(), json!(round(wall, 3)));
        if let (Some(x), Some(y)) = (a.server_ticks, b.server_ticks) {
            let us = (y - x) as f64 * tick_us;
            out.insert("server_cpu_s".into(), json!(round(us / 1e6, 3)));
            out.insert("server_cpu_us_per_item".into(), json!(round(us / items, 1)));
            out.insert(
                "server_cpu_pct_of_wall".into(),
                json!(round(100.0 * us / 1e6 / wall, 1)),
            );
            if let (Some((b0, t0, s0)), Some((b1, t1, s1))) = (a.server_cpu, b.server_cpu) {
                let total = (t1 - t0).max(1) as f64;
                let server = (y - x) as f64;
                let other = ((b1 - b0) as f64 - server).max(0.0);
                out.insert(
                    "server_cpu_other_load_pct".into(),
                    json!(round(100.0 * other / total, 1)),
                );
                out.insert(
                    "server_cpu_steal_pct".into(),
                    json!(round(100.0 * (s1 - s0) as f64 / total, 1)),
                );
            }
        }
        if let (Some(x), Some(y)) = (a.server_sched_ns, b.server_sched_ns) {
            out.insert(
                "server_sched_us_per_item".into(),
                json!(round((y.saturating_sub(x)) as f64 / 1e3 / items, 1)),
            );
        }
        if let (Some(x), Some(y)) = (a.self_ticks, b.self_ticks) {
            let us = (y - x) as f64 * tick_us;
            out.insert(
                "load_cpu_pct_of_wall".into(),
                json!(round(100.0 * us / 1e6 / wall, 1)),
            );
            out.insert("load_cpu_us_per_item".into(), json!(round(us / items, 1)));
        }
        if let (Some((b0, t0, _)), Some((b1, t1, _))) = (a.load_cpu, b.load_cpu) {
            out.insert(
                "load_cpu_busy_pct".into(),
                json!(round(100.0 * (b1 - b0) as f64 / (t1 - t0).max(1) as f64, 1)),
            );
        }
        Value::Object(out)
    }
}

/// utime + stime (fields 14 and 15 of `DIR/stat`), every thread included.
fn stat_ticks(dir: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Nanoseconds on CPU, summed over every thread of `pid`.
fn sched_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        total += text
            .split_whitespace()
            .next()
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// (busy, total, steal) ticks of `cpu` in /proc/stat.
fn cpu_line(cpu: usize) -> Option<(u64, u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let prefix = format!("cpu{cpu} ");
    let line = text.lines().find(|l| l.starts_with(&prefix))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 8 {
        return None;
    }
    let total: u64 = v[..8].iter().sum();
    let idle = v[3] + v[4];
    Some((total - idle, total, v[7]))
}

/// The clock tick (`getconf CLK_TCK`), 100 when it cannot be asked.
pub(crate) fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Samples::default();
        for ms in 1..=100u64 {
            s.push(Duration::from_millis(ms));
        }
        let v = s.summary();
        assert_eq!(v["n"], 100);
        assert_eq!(v["p50_ms"], 50.0);
        assert_eq!(v["p99_ms"], 99.0);
        assert_eq!(v["max_ms"], 100.0);
        assert_eq!(v["min_ms"], 1.0);
    }

    #[test]
    fn this_process_has_cpu_ticks() {
        assert!(stat_ticks("/proc/self").is_some());
        assert!(sched_ns(std::process::id()).is_some());
    }
}
