//! Frequent security events, one per source address and second (docs/design.md, Audit log).
//!
//! A client that sends identity headers on every request used to cost one `spoof_stripped`
//! row per request: at 40k spoofed requests a second that is 40k rows a second for the audit
//! writer, on the gateway's own CPU. Here they are tallied per client address for the second
//! they happened in — the number of requests and the header names (never values) — and each
//! tally becomes one event when its second is over: at the first tally of a later second, or
//! when the owner calls [`EventWindow::flush`] (once a second, and at shutdown). The RADIUS
//! listener tallies `radius_rejected` the same way per packet source, with the reasons.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use crate::record::EventKind;
use crate::writer::AuditLog;

/// Sources tallied one by one in a second; occurrences from further sources in that second are
/// tallied together as one event (source `others`, with the number of sources), so a flood from
/// many (or forged UDP) source addresses is still a bounded number of rows a second.
pub const MAX_SOURCES_PER_SECOND: usize = 1024;

/// Per-source tallies of one event kind for the current second.
#[derive(Debug)]
pub struct EventWindow {
    kind: EventKind,
    fields: WindowFields,
    open: Mutex<Open>,
}

/// The names of an aggregated event's detail fields.
#[derive(Debug, Clone, Copy)]
pub struct WindowFields {
    /// The field that names the source address (`client_ip`, `source`).
    pub source: &'static str,
    /// The field that counts the occurrences (`requests`, `packets`).
    pub count: &'static str,
    /// The field that lists the names seen, sorted (`headers`, `reasons`); never values.
    pub names: &'static str,
}

#[derive(Debug, Default)]
struct Open {
    /// Unix second the tallies belong to.
    second: u64,
    by_source: HashMap<IpAddr, Tally>,
    /// Occurrences from sources past [`MAX_SOURCES_PER_SECOND`], and how many sources.
    others: Tally,
    other_sources: BTreeSet<IpAddr>,
}

#[derive(Debug, Default)]
struct Tally {
    count: u64,
    names: BTreeSet<String>,
}

impl EventWindow {
    /// A window for `kind` events whose details are named by `fields`.
    pub fn new(kind: EventKind, fields: WindowFields) -> EventWindow {
        EventWindow {
            kind,
            fields,
            open: Mutex::new(Open::default()),
        }
    }

    /// Tallies one occurrence from `source` at Unix second `now` with these `names`
    /// (normalized header names, reasons; never values). Tallies of an earlier second are
    /// closed first and go to `log`.
    pub fn add(
        &self,
        log: &AuditLog,
        now: u64,
        source: IpAddr,
        names: impl IntoIterator<Item = String>,
    ) {
        let source = source.to_canonical();
        let closed = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let closed = (open.second != now).then(|| take(&mut open, now));
            let open = &mut *open;
            let tally = if open.by_source.len() < MAX_SOURCES_PER_SECOND
                || open.by_source.contains_key(&source)
            {
                open.by_source.entry(source).or_default()
            } else {
                if open.other_sources.len() < MAX_SOURCES_PER_SECOND * 64 {
                    open.other_sources.insert(source);
                }
                &mut open.others
            };
            tally.count += 1;
            tally.names.extend(names);
            closed
        };
        if let Some(closed) = closed {
            self.emit(log, closed);
        }
    }

    /// Closes every tally of a second before `now` and sends it to `log`.
    pub fn flush(&self, log: &AuditLog, now: u64) {
        let closed = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            (open.second < now && !open.by_source.is_empty()).then(|| take(&mut open, now))
        };
        if let Some(closed) = closed {
            self.emit(log, closed);
        }
    }

    fn emit(&self, log: &AuditLog, closed: Open) {
        let at = crate::time::format_rfc3339(i64::try_from(closed.second).unwrap_or(0) * 1000);
        let mut tallies: Vec<(IpAddr, Tally)> = closed.by_source.into_iter().collect();
        tallies.sort_by_key(|(source, _)| *source);
        for (source, tally) in tallies {
            log.event(self.kind, &self.detail(source.to_string(), &at, &tally));
        }
        if closed.others.count > 0 {
            let mut detail = self.detail("others".to_owned(), &at, &closed.others);
            // At least this many sources (the set is bounded too).
            detail.insert("sources".into(), closed.other_sources.len().into());
            log.event(self.kind, &detail);
        }
    }

    /// One closed tally as its event's detail: source, second (RFC 3339, UTC), count, names.
    fn detail(
        &self,
        source: String,
        second: &str,
        tally: &Tally,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut detail = serde_json::Map::new();
        detail.insert(self.fields.source.into(), source.into());
        detail.insert("second".into(), second.into());
        detail.insert(self.fields.count.into(), tally.count.into());
        detail.insert(
            self.fields.names.into(),
            tally.names.iter().cloned().collect(),
        );
        detail
    }
}

/// Takes the open tallies (and their second) and starts `now`'s.
fn take(open: &mut Open, now: u64) -> Open {
    std::mem::replace(
        open,
        Open {
            second: now,
            ..Open::default()
        },
    )
}
