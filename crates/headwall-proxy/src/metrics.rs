//! What the data plane counts. Exposed in Prometheus form by `headwall-admin` (a later issue);
//! label values are fixed sets, never request or subscriber data.

use std::sync::atomic::{AtomicU64, Ordering};

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

/// Data-plane counters (monotonic).
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; 5],
    stripped_headers: AtomicU64,
    pinning_mismatches: AtomicU64,
    disclosures: AtomicU64,
    withheld: AtomicU64,
    audit_write_failures: AtomicU64,
}

impl Metrics {
    /// Requests that ended with `outcome`.
    pub fn requests(&self, outcome: Outcome) -> u64 {
        self.requests[outcome as usize].load(Ordering::Relaxed)
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

    pub(crate) fn count_audit_write_failure(&self) {
        self.audit_write_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_request(&self, outcome: Outcome) {
        self.requests[outcome as usize].fetch_add(1, Ordering::Relaxed);
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
