//! What the data plane counts. Exposed in Prometheus form by `headwall-admin`; label values are
//! fixed sets or configured partner names, never request or subscriber data.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use headwall_audit::latency::{Histogram, Snapshot};

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

    fn index(self) -> usize {
        self as usize
    }

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
    durations: RequestDurations,
    canary_leaks: AtomicU64,
    canary_errors: AtomicU64,
    canary_last_success: AtomicU64,
    tunnels_open: AtomicU64,
    connections_open: [AtomicU64; 2],
    clients_refused: [AtomicU64; 2],
}

/// The request duration histogram, with its own buckets.
#[derive(Debug)]
struct RequestDurations(Histogram);

impl Default for RequestDurations {
    fn default() -> RequestDurations {
        RequestDurations(Histogram::new(&DURATION_BUCKETS))
    }
}

impl Metrics {
    /// Requests by `listener` that ended with `outcome`.
    pub fn requests(&self, listener: Listener, outcome: Outcome) -> u64 {
        self.requests[listener.index()][outcome as usize].load(Ordering::Relaxed)
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

    /// The request duration histogram, in buckets of [`DURATION_BUCKETS`].
    pub fn request_durations(&self) -> Snapshot {
        self.durations.0.snapshot()
    }

    /// Client connections open now on `listener`, tunnels made from them included.
    pub fn connections_open(&self, listener: Listener) -> u64 {
        self.connections_open[listener.index()].load(Ordering::Relaxed)
    }

    pub(crate) fn connection_opened(&self, listener: Listener) {
        self.connections_open[listener.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self, listener: Listener) {
        self.connections_open[listener.index()].fetch_sub(1, Ordering::Relaxed);
    }

    /// Connections closed at accept because the client is outside `[gateway].clients`.
    pub fn clients_refused(&self, listener: Listener) -> u64 {
        self.clients_refused[listener.index()].load(Ordering::Relaxed)
    }

    pub(crate) fn count_client_refused(&self, listener: Listener) {
        self.clients_refused[listener.index()].fetch_add(1, Ordering::Relaxed);
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

    /// Canary runs that could not complete (no answer, not a leak-check API, no binding).
    pub fn canary_errors(&self) -> u64 {
        self.canary_errors.load(Ordering::Relaxed)
    }

    /// Records one canary run that could not complete.
    pub fn record_canary_error(&self) {
        self.canary_errors.fetch_add(1, Ordering::Relaxed);
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
        self.durations.0.observe(elapsed);
    }

    pub(crate) fn count_audit_write_failure(&self) {
        self.audit_write_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_request(&self, listener: Listener, outcome: Outcome) {
        self.requests[listener.index()][outcome as usize].fetch_add(1, Ordering::Relaxed);
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
