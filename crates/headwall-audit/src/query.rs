//! The regulator's three questions, answered from the log: everything disclosed about one
//! subscriber, who was disclosed to whom, and which disclosures a given policy would not have
//! allowed (breach scoping).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use headwall_identity::Msisdn;
use headwall_policy::{Decision, Policy};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::record::DisclosureRow;
use crate::time::format_rfc3339;

/// `--from` (inclusive) and `--to` (exclusive), Unix milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Records at or after this time.
    pub from: Option<i64>,
    /// Records before this time.
    pub to: Option<i64>,
}

/// What `audit exposure` looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExposureFilter {
    /// Only this host (normalized).
    pub host: Option<String>,
    /// Only this partner.
    pub partner: Option<String>,
    /// Only this time range.
    pub range: TimeRange,
}

/// One (partner, host) pair and how many distinct subscribers were disclosed to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExposureRow {
    /// Partner name.
    pub partner: String,
    /// Host the disclosures went to.
    pub host: String,
    /// Distinct subscribers.
    pub subscribers: i64,
    /// Disclosure records.
    pub disclosures: i64,
    /// The first record's time (RFC 3339).
    pub first: String,
    /// The last record's time (RFC 3339).
    pub last: String,
}

/// One subscriber disclosed to one (partner, host), and how often: a breach notification's
/// line. `Debug` redacts the MSISDN.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ExposedSubscriber {
    /// Partner name.
    pub partner: String,
    /// Host the disclosures went to.
    pub host: String,
    /// Subscriber MSISDN.
    pub msisdn: String,
    /// Disclosure records of this subscriber to this partner and host.
    pub disclosures: i64,
    /// The first one's time (RFC 3339).
    pub first: String,
    /// The last one's time (RFC 3339).
    pub last: String,
}

impl std::fmt::Debug for ExposedSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExposedSubscriber")
            .field("partner", &self.partner)
            .field("host", &self.host)
            .field("msisdn", &"<redacted>")
            .field("disclosures", &self.disclosures)
            .finish_non_exhaustive()
    }
}

/// The query behind [`ExposedSubscriber`] rows, over a `WHERE` clause (SQLite and PostgreSQL
/// alike): one row per (partner, host, subscriber), in that order.
pub(crate) fn exposed_subscribers_sql(where_clause: &str, collate: &str) -> String {
    format!(
        "SELECT partner, host, msisdn, COUNT(*), MIN(ts), MAX(ts)
         FROM disclosures {where_clause} GROUP BY partner, host, msisdn
         ORDER BY partner{collate}, host{collate}, msisdn{collate}"
    )
}

/// A disclosure the policy under test would not have allowed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unallowed {
    /// The record.
    #[serde(flatten)]
    pub record: DisclosureView,
    /// Why the policy would have withheld it.
    pub reason: String,
}

/// A disclosure record as the `audit` commands show it: times in RFC 3339. `Debug` redacts the
/// MSISDN.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct DisclosureView {
    /// The node that wrote it (PostgreSQL, where ids count per node); absent for the embedded
    /// log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Record id (within its node's chain, for PostgreSQL).
    pub id: i64,
    /// When it was written (RFC 3339).
    pub time: String,
    /// Partner name.
    pub partner: String,
    /// Partner purpose.
    pub purpose: String,
    /// Subscriber MSISDN.
    pub msisdn: String,
    /// Header names inserted.
    pub headers: Vec<String>,
    /// Their value kinds.
    pub kinds: Vec<String>,
    /// Request host.
    pub host: String,
    /// Request port.
    pub port: u16,
    /// Address connected to.
    pub upstream_ip: String,
    /// Subscriber address.
    pub client_ip: String,
    /// Policy in force.
    pub policy_hash: String,
    /// The gateway's request id.
    pub request_id: String,
}

impl std::fmt::Debug for DisclosureView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisclosureView")
            .field("node", &self.node)
            .field("id", &self.id)
            .field("partner", &self.partner)
            .field("msisdn", &"<redacted>")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl From<DisclosureRow> for DisclosureView {
    fn from(row: DisclosureRow) -> DisclosureView {
        let split = |text: &str| -> Vec<String> {
            text.split(',')
                .filter(|part| !part.is_empty())
                .map(str::to_owned)
                .collect()
        };
        DisclosureView {
            node: None,
            id: row.id,
            time: format_rfc3339(row.ts),
            headers: split(&row.headers),
            kinds: split(&row.kinds),
            partner: row.partner,
            purpose: row.purpose,
            msisdn: row.msisdn,
            host: row.host,
            port: row.port,
            upstream_ip: row.upstream_ip,
            client_ip: row.client_ip,
            policy_hash: row.policy_hash,
            request_id: row.request_id,
        }
    }
}

/// Read-only access to an audit log (it never blocks the writer: WAL readers see a snapshot).
pub struct AuditReader {
    connection: Connection,
}

const COLUMNS: &str = DisclosureRow::SQLITE_COLUMNS;

/// `against` lists at most this many hosts to read; with more, it reads everything in the
/// filter (SQLite allows 32,766 parameters, and a list that long covers most of a log anyway).
const AGAINST_HOSTS_MAX: usize = 1_000;
/// `against` reads a list of hosts through the index only when they hold at most 1/this of the
/// records in the filter; otherwise it scans (at 10 M records, reading every host through the
/// index took 37 s against 6 s for the scan: crates/headwall-audit/BENCH.md).
const AGAINST_INDEX_SHARE: i64 = 20;

impl AuditReader {
    /// Opens the log at `path` for reading, after indexing what its journal holds beyond the
    /// index ([`catch_up`](crate::catch_up)).
    pub fn open(path: &Path) -> Result<AuditReader, String> {
        if !path.exists() {
            return Err(format!(
                "{}: no audit log here (check [audit].path)",
                path.display()
            ));
        }
        // Records durable in the journal and not indexed yet (the writer's last half second,
        // or a writer killed before it indexed them) are indexed first.
        crate::index::catch_up(path)?;
        let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|error| format!("{}: cannot open the audit log: {error}", path.display()))?;
        Ok(AuditReader { connection })
    }

    /// The statements `run` executes on this reader: each one's SQL text and its text with
    /// the parameters bound, in order, repeats included. For the query bench, which prints
    /// SQLite's plan of exactly what the reader runs; the texts can hold a subscriber's number.
    #[doc(hidden)]
    pub fn statements<R>(&mut self, run: impl FnOnce(&Self) -> R) -> (R, Vec<(String, String)>) {
        use std::sync::{Arc, Mutex, PoisonError};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let traced = self.connection.trace_v2(
            rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
            Some(move |event: rusqlite::trace::TraceEvent<'_>| {
                if let rusqlite::trace::TraceEvent::Stmt(statement, _) = event {
                    let sql = statement.sql().into_owned();
                    let expanded = statement.expanded_sql().unwrap_or_else(|| sql.clone());
                    sink.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((sql, expanded));
                }
            }),
        );
        let result = run(self);
        if traced.is_ok() {
            let _ = self.connection.trace_v2(
                rusqlite::trace::TraceEventCodes::empty(),
                None::<fn(rusqlite::trace::TraceEvent<'_>)>,
            );
        }
        let statements = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
        (result, statements)
    }

    /// Every disclosure of `msisdn` in `range`, oldest first (data-subject access).
    pub fn subscriber(
        &self,
        msisdn: &Msisdn,
        range: TimeRange,
    ) -> rusqlite::Result<Vec<DisclosureView>> {
        let mut conditions = vec!["msisdn = ?".to_owned()];
        let mut values = vec![Value::Text(msisdn.expose_digits().to_owned())];
        push_range(&mut conditions, &mut values, range);
        self.rows(&conditions, values, |row| Ok(row.into()))
    }

    /// Distinct subscribers and records per (partner, host), with the first and last record's
    /// time, ordered by partner and host. Answered from the writer's summary (milliseconds over
    /// all time; a window counts only the pairs it cuts), or by the plain query over
    /// `disclosures` when the summary does not cover the log (not yet migrated, or written by an
    /// older headwall since): both give the same answer.
    pub fn exposure(&self, filter: &ExposureFilter) -> rusqlite::Result<Vec<ExposureRow>> {
        // One read transaction: the summary and the rows it is checked against are one snapshot.
        let transaction = self.connection.unchecked_transaction()?;
        let rows = if crate::summary::current(&transaction)? {
            crate::summary::exposure(&transaction, filter)?
        } else {
            self.exposure_scan(filter)?
        };
        transaction.commit()?;
        Ok(rows)
    }

    /// `exposure` by the plain query over `disclosures`: what the summary must always equal.
    pub fn exposure_scan(&self, filter: &ExposureFilter) -> rusqlite::Result<Vec<ExposureRow>> {
        let (conditions, values) = filter_conditions(filter);
        let sql = format!(
            "SELECT partner, host, COUNT(DISTINCT msisdn), COUNT(*), MIN(ts), MAX(ts)
             FROM disclosures {} GROUP BY partner, host ORDER BY partner, host",
            where_clause(&conditions)
        );
        let mut statement = self.connection.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(values), |row| {
            Ok(ExposureRow {
                partner: row.get(0)?,
                host: row.get(1)?,
                subscribers: row.get(2)?,
                disclosures: row.get(3)?,
                first: format_rfc3339(row.get(4)?),
                last: format_rfc3339(row.get(5)?),
            })
        })?;
        rows.collect()
    }

    /// The distinct subscribers per (partner, host) in `filter`, each with its count and first
    /// and last time, handed to `visit` in (partner, host, number) order as SQLite produces
    /// them; `visit` returns `false` to stop. SQLite groups with the `host`/`partner` indexes
    /// or a sort; memory here holds one row.
    pub fn exposed_subscribers_each(
        &self,
        filter: &ExposureFilter,
        mut visit: impl FnMut(ExposedSubscriber) -> bool,
    ) -> rusqlite::Result<()> {
        let (conditions, values) = filter_conditions(filter);
        let sql = exposed_subscribers_sql(&where_clause(&conditions), "");
        let transaction = self.connection.unchecked_transaction()?;
        {
            let mut statement = transaction.prepare(&sql)?;
            let mut rows = statement.query(rusqlite::params_from_iter(values))?;
            while let Some(row) = rows.next()? {
                let exposed = ExposedSubscriber {
                    partner: row.get(0)?,
                    host: row.get(1)?,
                    msisdn: row.get(2)?,
                    disclosures: row.get(3)?,
                    first: format_rfc3339(row.get(4)?),
                    last: format_rfc3339(row.get(5)?),
                };
                if !visit(exposed) {
                    break;
                }
            }
        }
        transaction.commit()
    }

    /// The disclosures in `filter` that `policy` would not have allowed: no partner for the
    /// destination, an address outside the partner's destinations, another partner, or a
    /// header or kind the partner is not given. Collects the whole answer: prefer
    /// [`AuditReader::against_each`], which holds one record at a time.
    pub fn against(
        &self,
        policy: &Policy,
        filter: &ExposureFilter,
    ) -> rusqlite::Result<Vec<Unallowed>> {
        let mut found = Vec::new();
        self.against_each(policy, filter, |unallowed| {
            found.push(unallowed);
            true
        })?;
        Ok(found)
    }

    /// [`AuditReader::against`], streamed: `visit` gets each disclosure the policy would not have
    /// allowed, oldest first, as the scan finds it, and returns `false` to stop. The policy is
    /// asked once per distinct (partner, host, port, upstream address, headers, kinds); rows it
    /// allows are never copied out of SQLite.
    ///
    /// With the writer's shape summary (`exposure_shapes`), the policy is first asked about
    /// every shape on record: when it refuses none, nothing is read; when the hosts with a
    /// refused shape hold under 1/20 of the records, only their records are read. Otherwise,
    /// and without the summary (a log not yet upgraded, or written by an older headwall since),
    /// every record in the filter is read.
    pub fn against_each(
        &self,
        policy: &Policy,
        filter: &ExposureFilter,
        mut visit: impl FnMut(Unallowed) -> bool,
    ) -> rusqlite::Result<()> {
        // One read transaction: the shapes and the records they count are one snapshot.
        let transaction = self.connection.unchecked_transaction()?;
        let mut decisions = Decisions::default();
        let hosts = if crate::summary::shapes_current(&transaction)? {
            let shapes = crate::summary::shapes(
                &transaction,
                filter.partner.as_deref(),
                filter.host.as_deref(),
            )?;
            let mut refused = BTreeSet::new();
            for shape in &shapes {
                let verdict = decisions.decide(
                    policy,
                    Shape {
                        partner: &shape.partner,
                        host: &shape.host,
                        port: shape.port,
                        upstream_ip: &shape.upstream_ip,
                        headers: &shape.headers,
                        kinds: &shape.kinds,
                    },
                );
                if verdict.is_err() {
                    refused.insert(shape.host.as_str());
                }
            }
            if refused.is_empty() {
                return Ok(());
            }
            // Reading some hosts' records goes through an index, one row at a time in host
            // order, and is then sorted by id; a scan reads the table in order. The index wins
            // only when those hosts hold a small part of the records (counts over all time).
            let total: i64 = shapes.iter().map(|shape| shape.disclosures).sum();
            let on_refused: i64 = shapes
                .iter()
                .filter(|shape| refused.contains(shape.host.as_str()))
                .map(|shape| shape.disclosures)
                .sum();
            (on_refused.saturating_mul(AGAINST_INDEX_SHARE) <= total
                && refused.len() <= AGAINST_HOSTS_MAX)
                .then(|| refused.into_iter().map(str::to_owned).collect::<Vec<_>>())
        } else {
            None
        };
        let (mut conditions, mut values) = filter_conditions(filter);
        if let Some(hosts) = &hosts
            && filter.host.is_none()
        {
            conditions.push(format!("host IN ({})", vec!["?"; hosts.len()].join(", ")));
            values.extend(hosts.iter().cloned().map(Value::Text));
        }
        // `disclosures_partner (partner, ts)` yields a partner's rows in (ts, id) order, which is
        // id order (times never decrease along the chain), without a sort.
        let order = if filter.partner.is_some() && filter.host.is_none() {
            "ts, id"
        } else {
            "id"
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM disclosures {} ORDER BY {order}",
            where_clause(&conditions)
        );
        let mut statement = transaction.prepare(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(values))?;
        while let Some(row) = rows.next()? {
            let text =
                |column: usize| -> rusqlite::Result<&str> { Ok(row.get_ref(column)?.as_str()?) };
            let port: u16 = row.get(9)?;
            let verdict = decisions.decide(
                policy,
                Shape {
                    partner: text(3)?,
                    host: text(8)?,
                    port,
                    upstream_ip: text(10)?,
                    headers: text(7)?,
                    kinds: text(6)?,
                },
            );
            if let Err(reason) = verdict {
                let record = DisclosureRow::from_sqlite(row)?;
                if !visit(Unallowed {
                    record: record.into(),
                    reason,
                }) {
                    break;
                }
            }
        }
        drop(rows);
        drop(statement);
        transaction.commit()
    }

    fn rows<T>(
        &self,
        conditions: &[String],
        values: Vec<Value>,
        map: impl Fn(DisclosureRow) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        let mut out = Vec::new();
        let mut error = None;
        self.each(conditions, values, |row| match map(row) {
            Ok(item) => out.push(item),
            Err(e) => error = Some(e),
        })?;
        match error {
            Some(error) => Err(error),
            None => Ok(out),
        }
    }

    fn each(
        &self,
        conditions: &[String],
        values: Vec<Value>,
        mut visit: impl FnMut(DisclosureRow),
    ) -> rusqlite::Result<()> {
        let sql = format!(
            "SELECT {COLUMNS} FROM disclosures {} ORDER BY id",
            where_clause(conditions)
        );
        let mut statement = self.connection.prepare(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(values))?;
        while let Some(row) = rows.next()? {
            visit(DisclosureRow::from_sqlite(row)?);
        }
        Ok(())
    }
}

fn filter_conditions(filter: &ExposureFilter) -> (Vec<String>, Vec<Value>) {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    if let Some(partner) = &filter.partner {
        conditions.push("partner = ?".to_owned());
        values.push(Value::Text(partner.clone()));
    }
    if let Some(host) = &filter.host {
        conditions.push("host = ?".to_owned());
        values.push(Value::Text(host.clone()));
    }
    push_range(&mut conditions, &mut values, filter.range);
    (conditions, values)
}

fn push_range(conditions: &mut Vec<String>, values: &mut Vec<Value>, range: TimeRange) {
    if let Some(from) = range.from {
        conditions.push("ts >= ?".to_owned());
        values.push(Value::Integer(from));
    }
    if let Some(to) = range.to {
        conditions.push("ts < ?".to_owned());
        values.push(Value::Integer(to));
    }
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    }
}

/// `Ok` when `policy` would have disclosed exactly this record's headers and kinds to this
/// partner at this destination.
pub fn allowed_by(policy: &Policy, row: &DisclosureRow) -> Result<(), String> {
    allowed_shape(
        policy,
        &Shape {
            partner: &row.partner,
            host: &row.host,
            port: row.port,
            upstream_ip: &row.upstream_ip,
            headers: &row.headers,
            kinds: &row.kinds,
        },
    )
}

/// What a policy decision depends on in a record.
pub(crate) struct Shape<'a> {
    pub(crate) partner: &'a str,
    pub(crate) host: &'a str,
    pub(crate) port: u16,
    pub(crate) upstream_ip: &'a str,
    pub(crate) headers: &'a str,
    pub(crate) kinds: &'a str,
}

fn allowed_shape(policy: &Policy, row: &Shape<'_>) -> Result<(), String> {
    // An API answer names its endpoint path as its host (docs/design.md, "HTTPS:
    // network-based authentication and the CAMARA APIs"): the question is whether that client
    // may still learn it there.
    if headwall_policy::is_api_endpoint(row.host) {
        return match policy.api_client(row.partner) {
            Some(client) if client.may_learn_at(row.host) => Ok(()),
            Some(client) => Err(format!(
                "API client {} is not registered for what {} answers",
                client.id, row.host
            )),
            None => Err(format!("no API client {}", row.partner)),
        };
    }
    let Ok(upstream) = row.upstream_ip.parse::<IpAddr>() else {
        return Err("the record's upstream address is unreadable".into());
    };
    let partner = match policy.decide(row.host, row.port, upstream) {
        Decision::Disclose(partner) => partner,
        Decision::Withhold(reason) => {
            return Err(match reason {
                headwall_policy::WithholdReason::NoPartner => {
                    format!("no partner for {}:{}", row.host, row.port)
                }
                headwall_policy::WithholdReason::PinningMismatch => format!(
                    "{} is outside the destinations of the partner for {}:{}",
                    row.upstream_ip, row.host, row.port
                ),
                other => other.as_str().to_owned(),
            });
        }
    };
    if partner.name != row.partner {
        return Err(format!(
            "the destination belongs to partner {}, not {}",
            partner.name, row.partner
        ));
    }
    for (header, kind) in row.headers.split(',').zip(row.kinds.split(',')) {
        let granted = partner
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(header) && h.kind.as_str() == kind);
        if !granted {
            return Err(format!(
                "{header} ({kind}) is not given to {}",
                partner.name
            ));
        }
    }
    Ok(())
}

/// Distinct record shapes seen above this many, the cache starts over (bounded memory).
const DECISIONS_KEPT: usize = 65_536;

/// The policy's answer per record shape, so a scan asks the policy once per shape.
#[derive(Default)]
pub(crate) struct Decisions {
    known: std::collections::HashMap<String, Option<String>>,
    key: String,
}

impl Decisions {
    pub(crate) fn decide(&mut self, policy: &Policy, shape: Shape<'_>) -> Result<(), String> {
        use std::fmt::Write as _;
        self.key.clear();
        for part in [
            shape.partner,
            shape.host,
            shape.upstream_ip,
            shape.headers,
            shape.kinds,
        ] {
            self.key.push_str(part);
            self.key.push('\u{1f}');
        }
        let _ = write!(self.key, "{}", shape.port);
        if let Some(known) = self.known.get(self.key.as_str()) {
            return match known {
                None => Ok(()),
                Some(reason) => Err(reason.clone()),
            };
        }
        let verdict = allowed_shape(policy, &shape);
        if self.known.len() >= DECISIONS_KEPT {
            self.known.clear();
        }
        self.known
            .insert(self.key.clone(), verdict.as_ref().err().cloned());
        verdict
    }
}

/// The JSON answer of `audit subscriber` and `GET /v1/audit/subscriber/{msisdn}`.
pub fn subscriber_json(
    msisdn: &Msisdn,
    range: TimeRange,
    records: &[DisclosureView],
) -> serde_json::Value {
    serde_json::json!({
        "subscriber": msisdn.expose_digits(),
        "from": range.from.map(format_rfc3339),
        "to": range.to.map(format_rfc3339),
        "disclosures": records,
    })
}

/// The JSON answer of `audit exposure` and `GET /v1/audit/exposure`.
pub fn exposure_json(filter: &ExposureFilter, rows: &[ExposureRow]) -> serde_json::Value {
    serde_json::json!({
        "host": filter.host,
        "partner": filter.partner,
        "from": filter.range.from.map(format_rfc3339),
        "to": filter.range.to.map(format_rfc3339),
        "exposure": rows,
    })
}
