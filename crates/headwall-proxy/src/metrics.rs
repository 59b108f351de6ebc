//! What the data plane counts. Exposed in Prometheus form by `headwall-admin`; label values are
//! fixed sets or configured partner names, never request or subscriber data.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How a request ended (`headwall_requests_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded with identity.
    Enriched,
    /// Forwarded without identity (including CONNECT tunnels).
    Forwarded,
    /// Refused by the gateway (CONNECT port, loop, connection limit).
    Refused,
    /// Malformed or not a proxy request.
    BadRequest,
    /// The upstream could not be resolved, reached or read.
    UpstreamError,
}

impl Outcome {
    /// All outcomes, in label order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Enriched,
        Outcome::Forwarded,
        Outcome::Refused,
        Outcome::BadRequest,
        Outcome::UpstreamError,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Enriched => "enriched",
            Outcome::Forwarded => "forwarded",
            Outcome::Refused => "refused",
            Outcome::BadRequest => "bad_request",
            Outcome::UpstreamError => "upstream_error",
        }
    }
}

/// Which front door a request came in by (`headwall_requests_total{listener}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `[gateway].listen`: absolute-form requests and CONNECT.
    Explicit,
    /// `[gateway].transparent_listen`: intercepted origin-form requests.
    Transparent,
}

impl Listener {
    /// All listeners, in label order.
    pub const ALL: [Listener; 2] = [Listener::Explicit, Listener::Transparent];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Explicit => "explicit",
            Listener::Transparent => "transparent",
        }
    }
}

/// Upper bounds (seconds) of the request duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// One disclosure counter: a partner, its purpose and a value kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DisclosureLabels {
    /// Configured partner name.
    pub partner: String,
    /// The partner's purpose.
    pub purpose: &'static str,
    /// The value kind.
    pub kind: &'static str,
}

/// Data-plane counters (monotonic). Plain atomics: the hot path never takes a lock; the admin
/// side reads them at scrape time.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [[AtomicU64; 5]; 2],
    stripped_headers: AtomicU64,
    pinning_mismatches: AtomicU64,
    disclosures: AtomicU64,
    withheld: AtomicU64,
    audit_write_failures: AtomicU64,
    /// Per (partner, purpose, kind); entries are created when a policy is activated, so
    /// requests only increment. They outlive reloads, so counts never go backwards.
    by_partner: Mutex<BTreeMap<DisclosureLabels, Arc<AtomicU64>>>,
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_nanos: AtomicU64,
    canary_leaks: AtomicU64,
    canary_last_success: AtomicU64,
    tunnels_open: AtomicU64,
}

impl Metrics {
    /// Requests by `listener` that ended with `outcome`.
    pub fn requests(&self, listener: Listener, outcome: Outcome) -> u64 {
        self.requests[listener as usize][outcome as usize].load(Ordering::Relaxed)
    }

    /// Identity header values removed from client requests.
    pub fn stripped_headers(&self) -> u64 {
        self.stripped_headers.load(Ordering::Relaxed)
    }

    /// Partner-host requests that connected outside the partner's destinations.
    pub fn pinning_mismatches(&self) -> u64 {
        self.pinning_mismatches.load(Ordering::Relaxed)
    }

    /// Identity headers inserted.
    pub fn disclosures(&self) -> u64 {
        self.disclosures.load(Ordering::Relaxed)
    }

    /// Partner-bound requests forwarded without identity (no binding, stale, switched off...).
    pub fn withheld(&self) -> u64 {
        self.withheld.load(Ordering::Relaxed)
    }

    /// Disclosures whose audit record could not be made durable (identity withheld).
    pub fn audit_write_failures(&self) -> u64 {
        self.audit_write_failures.load(Ordering::Relaxed)
    }

    /// Every disclosure counter with its value, in label order.
    pub fn disclosures_by_partner(&self) -> Vec<(DisclosureLabels, u64)> {
        self.by_partner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(labels, count)| (labels.clone(), count.load(Ordering::Relaxed)))
            .collect()
    }

    /// The request duration histogram: the count of each bucket of [`DURATION_BUCKETS`] (not
    /// cumulative; slower requests are only in the total), the total count and the sum in
    /// seconds.
    pub fn request_durations(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let buckets = DURATION_BUCKETS
            .iter()
            .zip(&self.duration_buckets)
            .map(|(bound, count)| (*bound, count.load(Ordering::Relaxed)))
            .collect();
        let count = self.duration_count.load(Ordering::Relaxed);
        let sum = self.duration_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (buckets, count, sum)
    }

    /// CONNECT and WebSocket tunnels open now (each also holds a `max_connections` slot).
    pub fn tunnels_open(&self) -> u64 {
        self.tunnels_open.load(Ordering::Relaxed)
    }

    pub(crate) fn tunnel_opened(&self) {
        self.tunnels_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tunnel_closed(&self) {
        self.tunnels_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Canary runs that found identity at the non-partner endpoint.
    pub fn canary_leaks(&self) -> u64 {
        self.canary_leaks.load(Ordering::Relaxed)
    }

    /// Unix seconds of the last canary run that found nothing (0: none yet).
    pub fn canary_last_success(&self) -> u64 {
        self.canary_last_success.load(Ordering::Relaxed)
    }

    /// Records one completed canary run.
    pub fn record_canary(&self, leaked: bool, at_unix_secs: u64) {
        if leaked {
            self.canary_leaks.fetch_add(1, Ordering::Relaxed);
        } else {
            self.canary_last_success
                .store(at_unix_secs, Ordering::Relaxed);
        }
    }

    pub(crate) fn disclosure_counter(&self, labels: DisclosureLabels) -> Arc<AtomicU64> {
        self.by_partner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(labels)
            .or_default()
            .clone()
    }

    pub(crate) fn observe_duration(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(index) = DURATION_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.duration_buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.duration_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn count_audit_write_failure(&self) {
        self.audit_write_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_request(&self, listener: Listener, outcome: Outcome) {
        self.requests[listener as usize][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_stripped(&self, n: usize) {
        if n > 0 {
            self.stripped_headers.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_pinning_mismatch(&self) {
        self.pinning_mismatches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_disclosures(&self, n: usize) {
        self.disclosures.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn count_withheld(&self) {
        self.withheld.fetch_add(1, Ordering::Relaxed);
    }
}
