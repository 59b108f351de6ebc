//! A latency histogram of plain atomics, for the metrics docs/operations.md lists
//! (`*_duration_seconds`): observing is three relaxed adds, never a lock, so the data plane and
//! the writers can time every operation. `headwall-admin` reads a [`Snapshot`] at scrape time
//! and encodes it.
//!
//! It lives here because every crate that times something durable or on the wire depends on
//! this one (the proxy, RADIUS and the audit writer itself): one type serves every latency
//! metric.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds (seconds) for operations that wait on a disk or a network round trip:
/// 100 µs … 5 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counts of observations per bucket, their number and their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// What a histogram held when read.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Each bucket's upper bound and the observations in it alone (not cumulative); slower
    /// ones are only in `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

impl Histogram {
    /// An empty histogram with these bucket upper bounds (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one operation that took `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(index) = self.bounds.iter().position(|bound| seconds <= *bound) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// How many operations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The counts now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            buckets: self
                .bounds
                .iter()
                .zip(self.buckets.iter())
                .map(|(bound, count)| (*bound, count.load(Ordering::Relaxed)))
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new(LATENCY_BUCKETS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_lands_in_the_first_bucket_that_holds_it() {
        let histogram = Histogram::new(&[0.001, 0.01]);
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(1));
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_secs(1));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(0.001, 2), (0.01, 1)]);
        assert_eq!(snapshot.count, 4);
        assert!((snapshot.sum - 1.0065).abs() < 1e-9, "{}", snapshot.sum);
    }
}
