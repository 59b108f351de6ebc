//! The process metrics every Prometheus exporter has (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`), read from `/proc/self` at scrape time. A value that cannot be
//! read (not Linux, `/proc` not mounted) is left out rather than reported as 0 — except the
//! start time, which needs the boot time from `/proc/stat`: systemd's `ProcSubset=pid` (the
//! shipped unit) hides that file, so the time the metrics were set up stands in for it.

/// What the process uses now.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Usage {
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) resident_bytes: Option<u64>,
    pub(crate) open_fds: Option<u64>,
    pub(crate) max_fds: Option<u64>,
    pub(crate) start_time_seconds: Option<f64>,
}

impl Usage {
    /// `started` (Unix seconds): when the metrics were set up, the start time's fallback.
    pub(crate) fn read(started: f64) -> Usage {
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let fields = stat.as_deref().map(stat_fields).unwrap_or_default();
        // Fields after the command name, from field 3 (state) on: utime is 14, stime 15,
        // starttime 22 (proc(5)).
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let cpu_seconds = match (field(14), field(15)) {
            (Some(user), Some(system)) if ticks > 0.0 => Some((user + system) as f64 / ticks),
            _ => None,
        };
        let start_time_seconds = match (field(22), boot_time()) {
            (Some(start), Some(boot)) if ticks > 0.0 => Some(boot as f64 + start as f64 / ticks),
            _ => Some(started),
        };
        let resident_bytes = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|pages| pages * rustix::param::page_size() as u64);
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as u64);
        let max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        Usage {
            cpu_seconds,
            resident_bytes,
            open_fds,
            max_fds,
            start_time_seconds,
        }
    }
}

/// `/proc/self/stat` after the command name (which is in parentheses and may hold spaces).
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// The kernel's boot time, Unix seconds (`btime` in `/proc/stat`).
fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 \
                    12345 1000 200";
        let fields = stat_fields(stat);
        assert_eq!(fields[0], "S");
        assert_eq!(fields[14 - 3], "250");
        assert_eq!(fields[15 - 3], "50");
        assert_eq!(fields[22 - 3], "12345");
    }

    #[test]
    fn this_process_reads_as_running_with_memory_and_descriptors() {
        let usage = Usage::read(0.0);
        assert!(usage.resident_bytes.is_some_and(|bytes| bytes > 1 << 20));
        assert!(usage.open_fds.is_some_and(|fds| fds >= 3));
        assert!(
            usage
                .max_fds
                .is_some_and(|max| max >= usage.open_fds.unwrap_or(0))
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let started = usage.start_time_seconds.unwrap_or_default();
        assert!(
            started > now - 3600.0 && started <= now + 1.0,
            "{started} vs {now}"
        );
        assert!(usage.cpu_seconds.is_some());
    }
}
