//! Logging that a flood cannot turn into a full disk: bad input is counted on every occurrence
//! (metrics, security events) but a log line about it is written at most once per
//! [`LogLimit::EVERY_SECS`] per place in the code. One mechanism for the data plane, RADIUS and
//! the API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// One place's rate limit, usually a `static`.
#[derive(Debug)]
pub struct LogLimit {
    /// Unix second of the last line written.
    last: AtomicU64,
}

impl LogLimit {
    /// Seconds between two lines from one place.
    pub const EVERY_SECS: u64 = 10;

    /// A limit that has logged nothing yet.
    #[must_use]
    pub const fn new() -> LogLimit {
        LogLimit {
            last: AtomicU64::new(0),
        }
    }

    /// Runs `log` if this place has not logged within [`LogLimit::EVERY_SECS`].
    pub fn run(&self, log: impl FnOnce()) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let previous = self.last.load(Ordering::Relaxed);
        if now >= previous + Self::EVERY_SECS
            && self
                .last
                .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log();
        }
    }
}

impl Default for LogLimit {
    fn default() -> LogLimit {
        LogLimit::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_place_logs_once_per_period() {
        let limit = super::LogLimit::new();
        let mut lines = 0;
        for _ in 0..1000 {
            limit.run(|| lines += 1);
        }
        assert_eq!(lines, 1);
    }
}
