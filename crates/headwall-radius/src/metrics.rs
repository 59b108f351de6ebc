//! `headwall_radius_packets_total{status,result}`: every datagram counted once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use headwall_audit::latency::{Histogram, Snapshot};

/// The `status` label values, in index order.
pub const STATUS_LABELS: [&str; 6] = ["start", "interim", "stop", "on", "off", "other"];
/// The `result` label values, in index order.
pub const RESULT_LABELS: [&str; 5] = [
    "accepted",
    "duplicate",
    "bad_authenticator",
    "unknown_client",
    "malformed",
];

/// How a datagram was handled (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketResult {
    /// Authentic, applied durably and answered.
    Accepted,
    /// A retransmission of an answered packet: answered again, not applied twice.
    Duplicate,
    /// The Request Authenticator did not match the client's secret.
    BadAuthenticator,
    /// The source address is not a configured client.
    UnknownClient,
    /// Not a well-formed Accounting-Request, or missing what its status needs.
    Malformed,
}

/// Packet counters by status and result.
#[derive(Debug, Default)]
pub struct RadiusMetrics {
    packets: [[AtomicU64; 5]; 6],
    /// How long making a binding change durable took (`headwall_radius_commit_duration_seconds`):
    /// the time between an authentic packet and its Accounting-Response.
    commit: Histogram,
}

impl RadiusMetrics {
    /// Packets counted with `status` (index into [`STATUS_LABELS`]) and `result`.
    pub fn packets(&self, status: &str, result: PacketResult) -> u64 {
        STATUS_LABELS
            .iter()
            .position(|label| *label == status)
            .map_or(0, |index| {
                self.packets[index][result as usize].load(Ordering::Relaxed)
            })
    }

    /// Every (status, result, count), for exposition.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut rows = Vec::new();
        for (status, row) in STATUS_LABELS.iter().zip(&self.packets) {
            for (result, count) in RESULT_LABELS.iter().zip(row) {
                rows.push((*status, *result, count.load(Ordering::Relaxed)));
            }
        }
        rows
    }

    /// The binding changes' commit times.
    pub fn commit_durations(&self) -> Snapshot {
        self.commit.snapshot()
    }

    pub(crate) fn observe_commit(&self, elapsed: Duration) {
        self.commit.observe(elapsed);
    }

    pub(crate) fn count(&self, status: &str, result: PacketResult) {
        let index = STATUS_LABELS
            .iter()
            .position(|label| *label == status)
            .unwrap_or(STATUS_LABELS.len() - 1);
        self.packets[index][result as usize].fetch_add(1, Ordering::Relaxed);
    }
}
