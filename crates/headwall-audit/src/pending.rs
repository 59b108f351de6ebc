//! Security events waiting for the embedded writer's next commit.
//!
//! A `spoof_stripped` event can come with every request of a misbehaving client, and the
//! RADIUS listener can reject thousands of packets a second. Sending each one to the writer
//! thread would wake it (a futex and a context switch) and, when nothing else is queued, give
//! each event a transaction and an fsync of its own. Instead they wait here, without waking
//! anyone, until the writer commits anyway (a disclosure came) or the [`FLUSH_AFTER`] deadline
//! passes. Only the first event into an empty buffer wakes the writer, to set that deadline.
//!
//! What this costs: an event is on disk at most [`FLUSH_AFTER`] after it happened (plus the
//! commit), and a crash can lose that much — as before, an event was never durable before the
//! request went on. Rare events that an operator acts on (`policy_change`, `kill_switch`,
//! `canary_leak`) do not wait here: they go to the writer at once.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::record::EventKind;

/// Longest time a buffered event waits for a commit. Short, because the writer shares the
/// gateway's CPU: a flush of 5 ms of spoofed traffic (~200 events at 40k requests/s) holds the
/// CPU well under a millisecond, while 50 ms of them pushed bench/run's pass-through p99 from
/// 4 to 5.5 ms at no saving in CPU per request (measured, bench/RESULTS.md).
pub(crate) const FLUSH_AFTER: Duration = Duration::from_millis(5);

/// Buffered events at most; beyond it an event is dropped and counted, as with a full queue.
pub(crate) const MAX_PENDING: usize = crate::writer::QUEUE_DEPTH;

/// Whether events of `kind` wait in the buffer (frequent kinds) or go to the writer at once.
pub(crate) fn buffered(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::SpoofStripped | EventKind::RadiusRejected | EventKind::PinningMismatch
    )
}

/// What [`PendingEvents::push`] did with an event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Buffered behind others: the writer already has a deadline.
    Queued,
    /// Buffered into an empty buffer: wake the writer so it sets its deadline.
    First,
    /// The buffer is full: the event is dropped.
    Full,
}

/// The buffer, shared by every [`AuditLog`](crate::AuditLog) clone and the writer thread.
#[derive(Default)]
pub(crate) struct PendingEvents {
    events: Mutex<Vec<(EventKind, String)>>,
}

impl PendingEvents {
    pub(crate) fn push(&self, kind: EventKind, detail: String) -> Pushed {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() >= MAX_PENDING {
            return Pushed::Full;
        }
        events.push((kind, detail));
        if events.len() == 1 {
            Pushed::First
        } else {
            Pushed::Queued
        }
    }

    /// Everything buffered, oldest first; the buffer is left empty.
    pub(crate) fn take(&self) -> Vec<(EventKind, String)> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_event_into_an_empty_buffer_wakes_the_writer() {
        let pending = PendingEvents::default();
        assert_eq!(
            pending.push(EventKind::SpoofStripped, "{}".into()),
            Pushed::First
        );
        assert_eq!(
            pending.push(EventKind::SpoofStripped, "{}".into()),
            Pushed::Queued
        );
        assert_eq!(pending.take().len(), 2);
        assert!(pending.take().is_empty());
        assert_eq!(
            pending.push(EventKind::RadiusRejected, "{}".into()),
            Pushed::First
        );
    }

    #[test]
    fn a_full_buffer_drops_instead_of_growing() {
        let pending = PendingEvents::default();
        for _ in 0..MAX_PENDING {
            assert_ne!(
                pending.push(EventKind::SpoofStripped, "{}".into()),
                Pushed::Full
            );
        }
        assert_eq!(
            pending.push(EventKind::SpoofStripped, "{}".into()),
            Pushed::Full
        );
        assert_eq!(pending.take().len(), MAX_PENDING);
    }

    #[test]
    fn operator_events_are_never_buffered() {
        assert!(!buffered(EventKind::PolicyChange));
        assert!(!buffered(EventKind::KillSwitch));
        assert!(!buffered(EventKind::CanaryLeak));
        assert!(buffered(EventKind::SpoofStripped));
    }
}
