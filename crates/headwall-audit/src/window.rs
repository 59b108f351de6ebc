//! Frequent security events, one per source address and second (DESIGN, Audit log).
//!
//! A client that sends identity headers on every request used to cost one `spoof_stripped`
//! row per request: at 40k spoofed requests a second that is 40k rows a second for the audit
//! writer, on the gateway's own CPU. Here they are tallied per client address for the second
//! they happened in — the number of requests and the header names (never values) — and each
//! tally becomes one event when its second is over: at the first tally of a later second, or
//! when the owner calls [`EventWindow::flush`] (once a second, and at shutdown).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::record::EventKind;
use crate::writer::AuditLog;

/// Per-source tallies of one event kind for the current second.
#[derive(Debug)]
pub struct EventWindow {
    kind: EventKind,
    /// The detail field that names the source (`client_ip`, `source`).
    source_field: &'static str,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    /// Unix second the tallies belong to.
    second: u64,
    by_source: HashMap<IpAddr, Tally>,
}

#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    names: BTreeSet<String>,
}

/// One closed tally, as the event's detail.
#[derive(Serialize)]
struct Detail<'a> {
    #[serde(flatten)]
    source: HashMap<&'static str, String>,
    /// The second, RFC 3339 (UTC).
    second: String,
    /// Requests (or packets) in that second.
    requests: u64,
    /// Header names seen, normalized and sorted; never values.
    headers: &'a BTreeSet<String>,
}

impl EventWindow {
    /// A window for `kind` events whose detail names the source as `source_field`.
    pub fn new(kind: EventKind, source_field: &'static str) -> EventWindow {
        EventWindow {
            kind,
            source_field,
            open: Mutex::new(Open::default()),
        }
    }

    /// Tallies one occurrence from `source` at Unix second `now` with these header `names`
    /// (normalized; never values). Tallies
    /// of an earlier second are closed first and go to `log`.
    pub fn add(
        &self,
        log: &AuditLog,
        now: u64,
        source: IpAddr,
        names: impl IntoIterator<Item = String>,
    ) {
        let closed = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let closed = (open.second != now).then(|| take(&mut open, now));
            let tally = open.by_source.entry(source).or_default();
            tally.requests += 1;
            tally.names.extend(names);
            closed
        };
        if let Some((second, tallies)) = closed {
            self.emit(log, second, tallies);
        }
    }

    /// Closes every tally of a second before `now` and sends it to `log`.
    pub fn flush(&self, log: &AuditLog, now: u64) {
        let closed = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            (open.second < now && !open.by_source.is_empty()).then(|| take(&mut open, now))
        };
        if let Some((second, tallies)) = closed {
            self.emit(log, second, tallies);
        }
    }

    fn emit(&self, log: &AuditLog, second: u64, tallies: HashMap<IpAddr, Tally>) {
        let at = crate::time::format_rfc3339(i64::try_from(second).unwrap_or(0) * 1000);
        let mut tallies: Vec<(IpAddr, Tally)> = tallies.into_iter().collect();
        tallies.sort_by_key(|(source, _)| *source);
        for (source, tally) in tallies {
            let detail = Detail {
                source: HashMap::from([(self.source_field, source.to_string())]),
                second: at.clone(),
                requests: tally.requests,
                headers: &tally.names,
            };
            log.event(self.kind, &detail);
        }
    }
}

/// Takes the open tallies (and their second) and starts `now`'s.
fn take(open: &mut Open, now: u64) -> (u64, HashMap<IpAddr, Tally>) {
    let second = std::mem::replace(&mut open.second, now);
    (second, std::mem::take(&mut open.by_source))
}
