//! The exposure summary of the embedded log: derived data that `audit exposure` answers from,
//! kept by the writer in the same transaction as the records it counts. Not part of the hash
//! chain: [`crate::verify`] never reads it, and it can always be rebuilt from `disclosures`.
//!
//! - `exposure_subscribers`: one row per (partner, host, msisdn) with its record count and the
//!   UTC day of its last record, so the writer knows when a subscriber is new to a pair (and
//!   retention when one is gone). `prev_day` is the writer's scratch: the `last_day` before the
//!   latest record, returned by the same upsert.
//! - `exposure_totals`: one row per (partner, host): distinct subscribers, records, first, last.
//!   `exposure` over all time (with `--partner` or `--host`) reads only this table.
//! - `exposure_days`: per (partner, host, UTC day) the records of that day and the subscribers
//!   whose last record falls on it. A subscriber was disclosed to the pair at or after `--from`
//!   exactly when its last record was, so `--from` without `--to` is a sum over the days after
//!   `--from`'s day, plus that one day's records at or after `--from`.
//! - `exposure_shapes`: per record shape — (host, partner, port, upstream address, headers,
//!   kinds), everything a policy decision depends on — its record count. `audit exposure
//!   --against` asks the policy once per shape, and reads nothing when it refuses none, or only
//!   the hosts of the refused shapes when those are few. It has its own state row, `exposure_shapes_state`, so a log written by a
//!   headwall that knew the other tables but not this one is seen as not covered.
//! - `exposure_state`: the last record id and retention anchor the summary covers. A reader
//!   trusts the summary only when they match the table (an older headwall that wrote or pruned
//!   without keeping the summary makes them differ); the writer rebuilds it at open when they do
//!   not.
//!
//! A time window (`--from`/`--to`) is answered per (partner, host): a pair whose records all lie
//! inside the window comes from `exposure_totals`, a pair with none is left out, a pair that
//! `--from` alone cuts comes from `exposure_days`, and a pair that `--to` cuts is counted from its
//! records in the window, through the covering index
//! `disclosures_host_window (host, ts, partner, msisdn)` (so that case grows with the window).
//!
//! Retention removes the oldest records: the summary subtracts them, drops the triples and pairs
//! left without records, and looks up the new `first` of each pair it touched (one index seek per
//! pair). Timestamps never decrease along the chain, so a pair's `last` only changes when nothing
//! is left of it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension as _, Transaction, TransactionBehavior, params};

use crate::query::{ExposureFilter, ExposureRow};
use crate::record::DisclosureRow;
use crate::time::format_rfc3339;

/// `PRAGMA user_version` of a log with the summary and its indexes.
pub(crate) const SUMMARY_VERSION: i64 = 1;

/// Applied once, when a log below [`SUMMARY_VERSION`] is opened by the writer, before the
/// summary is filled: a covering index that answers the pairs a window cuts (it replaces
/// `disclosures_host`), and `(partner, ts)` for `--partner` scans.
const NEW_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS disclosures_partner ON disclosures (partner, ts);
CREATE INDEX IF NOT EXISTS disclosures_host_window ON disclosures (host, ts, partner, msisdn);
";

/// Applied once after the summary is filled (which reads `disclosures_exposure` when it is
/// there): the summary replaces it.
const OLD_INDEXES: &str = "
DROP INDEX IF EXISTS disclosures_exposure;
DROP INDEX IF EXISTS disclosures_host;
";

/// A day's length: `exposure_days` counts UTC days (`ts` floored to a multiple of it).
const DAY: i64 = 86_400_000;

/// The UTC day of a time in milliseconds, as [`day`] computes it (floor, also before 1970).
macro_rules! day_sql {
    ($column:literal) => {
        concat!(
            "((",
            $column,
            " - ((",
            $column,
            " % 86400000) + 86400000) % 86400000) / 86400000)"
        )
    };
}

fn day(ts: i64) -> i64 {
    ts.div_euclid(DAY)
}

/// Recomputes the whole summary from `disclosures`.
const REBUILD: &str = concat!(
    "
DELETE FROM exposure_subscribers;
DELETE FROM exposure_totals;
DELETE FROM exposure_days;
INSERT INTO exposure_subscribers (partner, host, msisdn, disclosures, last_day)
    SELECT partner, host, msisdn, COUNT(*), ",
    day_sql!("MAX(ts)"),
    " FROM disclosures
    GROUP BY partner, host, msisdn;
INSERT INTO exposure_days (partner, host, day, disclosures, lasts)
    SELECT partner, host, day, SUM(n), SUM(lasts) FROM (
        SELECT partner, host, ",
    day_sql!("ts"),
    " AS day, COUNT(*) AS n, 0 AS lasts
        FROM disclosures INDEXED BY disclosures_host_window GROUP BY host, day, partner
      UNION ALL
        SELECT partner, host, last_day AS day, 0 AS n, COUNT(*) AS lasts
        FROM exposure_subscribers GROUP BY partner, host, last_day)
    GROUP BY partner, host, day;
INSERT INTO exposure_totals (partner, host, subscribers, disclosures, first, last)
    SELECT s.partner, s.host, COUNT(*), SUM(s.disclosures),
        (SELECT d.ts FROM disclosures AS d INDEXED BY disclosures_host_window
         WHERE d.host = s.host AND d.partner = s.partner ORDER BY d.ts LIMIT 1),
        (SELECT d.ts FROM disclosures AS d INDEXED BY disclosures_host_window
         WHERE d.host = s.host AND d.partner = s.partner ORDER BY d.ts DESC LIMIT 1)
    FROM exposure_subscribers AS s GROUP BY s.partner, s.host;
"
);

/// Recomputes `exposure_shapes` from `disclosures`: one scan of the table, counted in memory
/// (shapes are few). SQLite's `GROUP BY` over the six columns sorts every record first: 113 s
/// at 10 M records, against ~5 s for this.
fn rebuild_shapes(connection: &Connection) -> rusqlite::Result<()> {
    connection.execute("DELETE FROM exposure_shapes", [])?;
    let mut counts: HashMap<String, ShapeRow> = HashMap::new();
    let mut key = String::new();
    let mut statement = connection
        .prepare("SELECT host, partner, port, upstream_ip, headers, kinds FROM disclosures")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let text = |column: usize| -> rusqlite::Result<&str> { Ok(row.get_ref(column)?.as_str()?) };
        let port: u16 = row.get(2)?;
        key.clear();
        for column in [0, 1, 3, 4, 5] {
            key.push_str(text(column)?);
            key.push('\0');
        }
        key.push_str(&port.to_string());
        match counts.get_mut(key.as_str()) {
            Some(shape) => shape.disclosures += 1,
            None => {
                let shape = ShapeRow {
                    host: text(0)?.to_owned(),
                    partner: text(1)?.to_owned(),
                    port,
                    upstream_ip: text(3)?.to_owned(),
                    headers: text(4)?.to_owned(),
                    kinds: text(5)?.to_owned(),
                    disclosures: 1,
                };
                counts.insert(key.clone(), shape);
            }
        }
    }
    drop(rows);
    let mut insert = connection.prepare(
        "INSERT INTO exposure_shapes (host, partner, port, upstream_ip, headers, kinds, disclosures)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for shape in counts.values() {
        insert.execute(params![
            shape.host,
            shape.partner,
            shape.port,
            shape.upstream_ip,
            shape.headers,
            shape.kinds,
            shape.disclosures
        ])?;
    }
    Ok(())
}

/// The last record id the table holds (or held, when retention removed everything) and the
/// retention anchor: what `exposure_state` must say for the summary to be current.
const TABLE_STATE: &str = "
SELECT COALESCE((SELECT MAX(id) FROM disclosures),
                (SELECT removed_through FROM chain_anchor WHERE chain = 'disclosures'), 0),
       COALESCE((SELECT removed_through FROM chain_anchor WHERE chain = 'disclosures'), 0)";

/// Brings the summary of a log the writer just opened up to date: the one-off migration of a
/// log written before it existed (fills it, swaps the indexes; a minute at 10 M rows), or a
/// rebuild when an older headwall wrote to the log meanwhile.
pub(crate) fn prepare(connection: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version >= SUMMARY_VERSION {
        if current(connection)? {
            if !shapes_current(connection)? {
                // A headwall from before the shapes summary wrote to this log (or this is the
                // first open since it came): count the shapes once.
                let started = Instant::now();
                tracing::info!("audit log: counting record shapes for `exposure --against` (once)");
                let transaction =
                    connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                rebuild_shapes(&transaction)?;
                let (last_id, removed_through): (i64, i64) =
                    transaction.query_row(TABLE_STATE, [], |row| Ok((row.get(0)?, row.get(1)?)))?;
                set_shapes_state(&transaction, last_id, removed_through)?;
                transaction.commit()?;
                tracing::info!(
                    seconds = started.elapsed().as_secs_f64(),
                    "audit log: record shapes counted"
                );
            }
            return Ok(());
        }
        let started = Instant::now();
        tracing::warn!(
            "the audit exposure summary does not cover every record (written or pruned by an \
             older headwall?); rebuilding it"
        );
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        rebuild(&transaction)?;
        transaction.commit()?;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "audit exposure summary rebuilt"
        );
        return Ok(());
    }
    let started = Instant::now();
    let rows: i64 = connection.query_row(
        "SELECT COALESCE(MAX(id), 0) - COALESCE(MIN(id), 1) + 1 FROM disclosures",
        [],
        |row| row.get(0),
    )?;
    if rows > 0 {
        tracing::info!(
            records = rows,
            "audit log migration: building the exposure summary and its indexes (once; about a \
             minute per 10 million records)"
        );
    }
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute_batch(NEW_INDEXES)?;
    rebuild(&transaction)?;
    transaction.execute_batch(OLD_INDEXES)?;
    transaction.pragma_update(None, "user_version", SUMMARY_VERSION)?;
    transaction.commit()?;
    if rows > 0 {
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "audit log migration done"
        );
    }
    Ok(())
}

fn rebuild(transaction: &Transaction<'_>) -> rusqlite::Result<()> {
    transaction.execute_batch(REBUILD)?;
    rebuild_shapes(transaction)?;
    let (last_id, removed_through): (i64, i64) =
        transaction.query_row(TABLE_STATE, [], |row| Ok((row.get(0)?, row.get(1)?)))?;
    set_state(transaction, last_id, removed_through)?;
    set_shapes_state(transaction, last_id, removed_through)
}

/// The state row of the summary tables (`exposure_state`) and of the shapes
/// (`exposure_shapes_state`): the last record id and retention anchor each covers.
const SUMMARY_STATE: &str = "exposure_state";
const SHAPES_STATE: &str = "exposure_shapes_state";

fn set_state_of(
    connection: &Connection,
    table: &str,
    last_id: i64,
    removed_through: i64,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO {table} (id, last_id, removed_through) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id,
               removed_through = excluded.removed_through"
        ))?
        .execute(params![last_id, removed_through])?;
    Ok(())
}

/// Whether the state row in `table` matches the records in the table (read in the caller's
/// transaction).
fn covers(connection: &Connection, table: &str) -> rusqlite::Result<bool> {
    let state: Option<(i64, i64)> = connection
        .query_row(
            &format!("SELECT last_id, removed_through FROM {table} WHERE id = 1"),
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let table: (i64, i64) =
        connection.query_row(TABLE_STATE, [], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(state == Some(table))
}

fn set_state(connection: &Connection, last_id: i64, removed_through: i64) -> rusqlite::Result<()> {
    set_state_of(connection, SUMMARY_STATE, last_id, removed_through)
}

fn set_shapes_state(
    connection: &Connection,
    last_id: i64,
    removed_through: i64,
) -> rusqlite::Result<()> {
    set_state_of(connection, SHAPES_STATE, last_id, removed_through)
}

/// Whether `exposure_shapes` covers exactly the records in the table (read in the caller's
/// transaction).
pub(crate) fn shapes_current(connection: &Connection) -> rusqlite::Result<bool> {
    covers(connection, SHAPES_STATE)
}

/// One record shape and how many records have it.
pub(crate) struct ShapeRow {
    pub(crate) host: String,
    pub(crate) partner: String,
    pub(crate) port: u16,
    pub(crate) upstream_ip: String,
    pub(crate) headers: String,
    pub(crate) kinds: String,
    pub(crate) disclosures: i64,
}

/// The record shapes, optionally of one partner and/or host (the caller checked
/// [`shapes_current`] in the same read transaction).
pub(crate) fn shapes(
    connection: &Connection,
    partner: Option<&str>,
    host: Option<&str>,
) -> rusqlite::Result<Vec<ShapeRow>> {
    let mut statement = connection.prepare_cached(
        "SELECT host, partner, port, upstream_ip, headers, kinds, disclosures FROM exposure_shapes
         WHERE (?1 IS NULL OR partner = ?1) AND (?2 IS NULL OR host = ?2) AND disclosures > 0",
    )?;
    statement
        .query_map(params![partner, host], |row| {
            Ok(ShapeRow {
                host: row.get(0)?,
                partner: row.get(1)?,
                port: row.get(2)?,
                upstream_ip: row.get(3)?,
                headers: row.get(4)?,
                kinds: row.get(5)?,
                disclosures: row.get(6)?,
            })
        })?
        .collect()
}

/// Whether the summary covers exactly the records in the table (read in the caller's
/// transaction).
pub(crate) fn current(connection: &Connection) -> rusqlite::Result<bool> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version < SUMMARY_VERSION {
        return Ok(false);
    }
    covers(connection, SUMMARY_STATE)
}

/// What one batch adds to the summary, gathered in memory and written once at its end (or
/// before a retention step): a subscriber who makes many requests to one pair in a batch costs
/// one read and one write of its row, not one per record.
#[derive(Default)]
pub(crate) struct Pending {
    /// Per pair, keyed by [`pair_key`]: looked up by a reused buffer, so a record of a pair
    /// already in the batch allocates nothing.
    pairs: HashMap<String, PairPending>,
    key: String,
    touched: bool,
}

struct PairPending {
    partner: String,
    host: String,
    records: i64,
    first: i64,
    last: i64,
    /// Records per UTC day.
    days: BTreeMap<i64, i64>,
    /// Per subscriber: records in the batch and the time of the latest.
    subscribers: HashMap<String, (i64, i64)>,
    /// Per record shape within the pair, keyed by [`shape_key`]: its parts and records.
    shapes: HashMap<String, (ShapeParts, i64)>,
}

/// The rest of a record's shape, besides its pair.
struct ShapeParts {
    port: u16,
    upstream_ip: String,
    headers: String,
    kinds: String,
}

fn shape_key(buffer: &mut String, row: &DisclosureRow) {
    use std::fmt::Write as _;
    buffer.clear();
    let _ = write!(buffer, "{}", row.port);
    for part in [&row.upstream_ip, &row.headers, &row.kinds] {
        buffer.push('\0');
        buffer.push_str(part);
    }
}

/// `partner` and `host` as one map key (neither holds a NUL: names from the policy, a
/// normalized host name).
fn pair_key(buffer: &mut String, partner: &str, host: &str) {
    buffer.clear();
    buffer.push_str(partner);
    buffer.push('\0');
    buffer.push_str(host);
}

/// Counts one record just inserted into `disclosures` (written at [`finish`]).
pub(crate) fn record(pending: &mut Pending, row: &DisclosureRow) {
    let (partner, host, msisdn, ts) = (&row.partner, &row.host, &row.msisdn, row.ts);
    pending.touched = true;
    pair_key(&mut pending.key, partner, host);
    if !pending.pairs.contains_key(pending.key.as_str()) {
        pending.pairs.insert(
            pending.key.clone(),
            PairPending {
                partner: partner.to_owned(),
                host: host.to_owned(),
                records: 0,
                first: ts,
                last: ts,
                days: BTreeMap::new(),
                subscribers: HashMap::new(),
                shapes: HashMap::new(),
            },
        );
    }
    let Some(pair) = pending.pairs.get_mut(pending.key.as_str()) else {
        return;
    };
    shape_key(&mut pending.key, row);
    match pair.shapes.get_mut(pending.key.as_str()) {
        Some((_, records)) => *records += 1,
        None => {
            let parts = ShapeParts {
                port: row.port,
                upstream_ip: row.upstream_ip.clone(),
                headers: row.headers.clone(),
                kinds: row.kinds.clone(),
            };
            pair.shapes.insert(pending.key.clone(), (parts, 1));
        }
    }
    pair.records += 1;
    pair.first = pair.first.min(ts);
    pair.last = pair.last.max(ts);
    *pair.days.entry(day(ts)).or_insert(0) += 1;
    match pair.subscribers.get_mut(msisdn.as_str()) {
        Some((records, last)) => {
            *records += 1;
            *last = (*last).max(ts);
        }
        None => {
            pair.subscribers.insert(msisdn.clone(), (1, ts));
        }
    }
}

/// Writes what the batch gathered so far (before a retention step, and at the end of the
/// batch): each subscriber's row, then per pair its days and totals.
pub(crate) fn flush_totals(
    transaction: &Transaction<'_>,
    pending: &mut Pending,
) -> rusqlite::Result<()> {
    // Read, then write: an upsert with RETURNING made SQLite allocate and free a large buffer
    // per row, which glibc returned to the kernel each time (one madvise and page faults per
    // disclosure, measured with perf on the partner path).
    let mut select = transaction.prepare_cached(
        "SELECT disclosures, last_day FROM exposure_subscribers
         WHERE partner = ?1 AND host = ?2 AND msisdn = ?3",
    )?;
    let mut insert = transaction.prepare_cached(
        "INSERT INTO exposure_subscribers (partner, host, msisdn, disclosures, last_day, prev_day)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
    )?;
    let mut update = transaction.prepare_cached(
        "UPDATE exposure_subscribers SET disclosures = ?4, prev_day = ?5, last_day = ?6
         WHERE partner = ?1 AND host = ?2 AND msisdn = ?3",
    )?;
    let mut upsert_day = transaction.prepare_cached(
        "INSERT INTO exposure_days (partner, host, day, disclosures, lasts)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (partner, host, day) DO UPDATE SET
           disclosures = disclosures + excluded.disclosures,
           lasts = lasts + excluded.lasts",
    )?;
    let mut upsert_shape = transaction.prepare_cached(
        "INSERT INTO exposure_shapes (host, partner, port, upstream_ip, headers, kinds, disclosures)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (host, partner, port, upstream_ip, headers, kinds) DO UPDATE SET
           disclosures = disclosures + excluded.disclosures",
    )?;
    let mut upsert_total = transaction.prepare_cached(
        "INSERT INTO exposure_totals (partner, host, subscribers, disclosures, first, last)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (partner, host) DO UPDATE SET
           subscribers = subscribers + excluded.subscribers,
           disclosures = disclosures + excluded.disclosures,
           first = MIN(first, excluded.first), last = MAX(last, excluded.last)",
    )?;
    for (_, pair) in pending.pairs.drain() {
        let (partner, host) = (&pair.partner, &pair.host);
        // Per day: (records, subscribers whose last record moved onto it).
        let mut days: BTreeMap<i64, (i64, i64)> = pair
            .days
            .iter()
            .map(|(&day, &records)| (day, (records, 0)))
            .collect();
        let mut new_subscribers = 0;
        for (msisdn, (records, last_ts)) in &pair.subscribers {
            let before: Option<(i64, i64)> = select
                .query_row(params![partner, host, msisdn], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            let today = day(*last_ts);
            match before {
                None => {
                    insert.execute(params![partner, host, msisdn, records, today])?;
                    new_subscribers += 1;
                    days.entry(today).or_insert((0, 0)).1 += 1;
                }
                Some((count, last_day)) => {
                    let new_last = last_day.max(today);
                    update.execute(params![
                        partner,
                        host,
                        msisdn,
                        count + records,
                        last_day,
                        new_last
                    ])?;
                    if new_last != last_day {
                        days.entry(last_day).or_insert((0, 0)).1 -= 1;
                        days.entry(new_last).or_insert((0, 0)).1 += 1;
                    }
                }
            }
        }
        for (shape, records) in pair.shapes.values() {
            upsert_shape.execute(params![
                host,
                partner,
                shape.port,
                shape.upstream_ip,
                shape.headers,
                shape.kinds,
                records
            ])?;
        }
        for (day, (records, lasts)) in days {
            if (records, lasts) != (0, 0) {
                upsert_day.execute(params![partner, host, day, records, lasts])?;
            }
        }
        upsert_total.execute(params![
            partner,
            host,
            new_subscribers,
            pair.records,
            pair.first,
            pair.last
        ])?;
    }
    Ok(())
}

/// Ends the batch: the per-pair counts and the state the summary now covers.
pub(crate) fn finish(
    transaction: &Transaction<'_>,
    pending: &mut Pending,
    last_id: i64,
    removed_through: i64,
) -> rusqlite::Result<()> {
    if !pending.touched {
        return Ok(());
    }
    flush_totals(transaction, pending)?;
    set_state(transaction, last_id, removed_through)?;
    set_shapes_state(transaction, last_id, removed_through)?;
    pending.touched = false;
    Ok(())
}

/// Before a retention step deletes the records with `id <= through`: notes what they count.
pub(crate) fn before_prune(
    transaction: &Transaction<'_>,
    pending: &mut Pending,
    through: i64,
) -> rusqlite::Result<()> {
    flush_totals(transaction, pending)?;
    pending.touched = true;
    transaction.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS pruned (
             partner TEXT NOT NULL, host TEXT NOT NULL, msisdn TEXT NOT NULL,
             n INTEGER NOT NULL, PRIMARY KEY (partner, host, msisdn)) WITHOUT ROWID;
         CREATE TEMP TABLE IF NOT EXISTS pruned_days (
             partner TEXT NOT NULL, host TEXT NOT NULL, day INTEGER NOT NULL,
             n INTEGER NOT NULL, PRIMARY KEY (partner, host, day)) WITHOUT ROWID;
         CREATE TEMP TABLE IF NOT EXISTS pruned_shapes (
             host TEXT NOT NULL, partner TEXT NOT NULL, port INTEGER NOT NULL,
             upstream_ip TEXT NOT NULL, headers TEXT NOT NULL, kinds TEXT NOT NULL,
             n INTEGER NOT NULL,
             PRIMARY KEY (host, partner, port, upstream_ip, headers, kinds)) WITHOUT ROWID;
         DELETE FROM temp.pruned;
         DELETE FROM temp.pruned_days;
         DELETE FROM temp.pruned_shapes;",
    )?;
    transaction.execute(
        "INSERT INTO temp.pruned_shapes (host, partner, port, upstream_ip, headers, kinds, n)
         SELECT host, partner, port, upstream_ip, headers, kinds, COUNT(*)
         FROM disclosures NOT INDEXED WHERE id <= ?1
         GROUP BY host, partner, port, upstream_ip, headers, kinds",
        [through],
    )?;
    transaction.execute(
        concat!(
            "INSERT INTO temp.pruned_days (partner, host, day, n)
             SELECT partner, host, ",
            day_sql!("ts"),
            " AS day, COUNT(*) FROM disclosures NOT INDEXED WHERE id <= ?1
             GROUP BY partner, host, day"
        ),
        [through],
    )?;
    transaction.execute(
        "INSERT INTO temp.pruned (partner, host, msisdn, n)
         SELECT partner, host, msisdn, COUNT(*) FROM disclosures NOT INDEXED WHERE id <= ?1
         GROUP BY partner, host, msisdn",
        [through],
    )?;
    Ok(())
}

/// After the retention step's delete: subtracts the removed records.
pub(crate) fn after_prune(transaction: &Transaction<'_>) -> rusqlite::Result<()> {
    transaction.execute_batch(
        "
UPDATE exposure_subscribers SET disclosures = disclosures - (
    SELECT p.n FROM temp.pruned AS p
    WHERE p.partner = exposure_subscribers.partner AND p.host = exposure_subscribers.host
      AND p.msisdn = exposure_subscribers.msisdn)
WHERE (partner, host, msisdn) IN (SELECT partner, host, msisdn FROM temp.pruned);

UPDATE exposure_totals SET disclosures = exposure_totals.disclosures - x.n,
                           subscribers = exposure_totals.subscribers - x.gone
FROM (SELECT p.partner AS partner, p.host AS host, SUM(p.n) AS n,
             SUM(s.disclosures <= 0) AS gone
      FROM temp.pruned AS p CROSS JOIN exposure_subscribers AS s
        ON s.partner = p.partner AND s.host = p.host AND s.msisdn = p.msisdn
      GROUP BY p.partner, p.host) AS x
WHERE exposure_totals.partner = x.partner AND exposure_totals.host = x.host;

UPDATE exposure_days SET disclosures = disclosures - (
    SELECT p.n FROM temp.pruned_days AS p
    WHERE p.partner = exposure_days.partner AND p.host = exposure_days.host
      AND p.day = exposure_days.day)
WHERE (partner, host, day) IN (SELECT partner, host, day FROM temp.pruned_days);

-- CROSS JOIN keeps the pruned triples the outer loop (one key lookup each), not a scan of
-- exposure_subscribers.
UPDATE exposure_days SET lasts = exposure_days.lasts - x.gone
FROM (SELECT s.partner AS partner, s.host AS host, s.last_day AS day, COUNT(*) AS gone
      FROM temp.pruned AS p CROSS JOIN exposure_subscribers AS s
        ON s.partner = p.partner AND s.host = p.host AND s.msisdn = p.msisdn
      WHERE s.disclosures <= 0
      GROUP BY s.partner, s.host, day) AS x
WHERE exposure_days.partner = x.partner AND exposure_days.host = x.host
  AND exposure_days.day = x.day;

DELETE FROM exposure_days
WHERE disclosures <= 0
  AND (partner, host, day) IN (SELECT partner, host, day FROM temp.pruned_days);

DELETE FROM exposure_subscribers
WHERE disclosures <= 0
  AND (partner, host, msisdn) IN (SELECT partner, host, msisdn FROM temp.pruned);

DELETE FROM exposure_totals WHERE disclosures <= 0;

UPDATE exposure_totals SET first = (
    SELECT d.ts FROM disclosures AS d INDEXED BY disclosures_host_window
    WHERE d.host = exposure_totals.host AND d.partner = exposure_totals.partner
    ORDER BY d.ts LIMIT 1)
WHERE (partner, host) IN (SELECT partner, host FROM temp.pruned);

UPDATE exposure_shapes SET disclosures = disclosures - (
    SELECT p.n FROM temp.pruned_shapes AS p
    WHERE p.host = exposure_shapes.host AND p.partner = exposure_shapes.partner
      AND p.port = exposure_shapes.port AND p.upstream_ip = exposure_shapes.upstream_ip
      AND p.headers = exposure_shapes.headers AND p.kinds = exposure_shapes.kinds)
WHERE (host, partner, port, upstream_ip, headers, kinds) IN
    (SELECT host, partner, port, upstream_ip, headers, kinds FROM temp.pruned_shapes);

DELETE FROM exposure_shapes WHERE disclosures <= 0;

DELETE FROM temp.pruned;
DELETE FROM temp.pruned_days;
DELETE FROM temp.pruned_shapes;
",
    )
}

/// `exposure` from the summary (the caller checked [`current`], in the same read transaction).
pub(crate) fn exposure(
    connection: &Connection,
    filter: &ExposureFilter,
) -> rusqlite::Result<Vec<ExposureRow>> {
    let mut statement = connection.prepare_cached(
        "SELECT partner, host, subscribers, disclosures, first, last FROM exposure_totals
         WHERE (?1 IS NULL OR partner = ?1) AND (?2 IS NULL OR host = ?2)
         ORDER BY partner, host",
    )?;
    let pairs = statement
        .query_map(params![filter.partner, filter.host], |row| {
            Ok(Pair {
                partner: row.get(0)?,
                host: row.get(1)?,
                subscribers: row.get(2)?,
                disclosures: row.get(3)?,
                first: row.get(4)?,
                last: row.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<Pair>>>()?;
    let from = filter.range.from.unwrap_or(i64::MIN);
    let to = filter.range.to.unwrap_or(i64::MAX);
    let unbounded = filter.range.to.is_none();
    let mut out = BTreeMap::new();
    for pair in pairs {
        let inside = |ts: i64| ts >= from && (unbounded || ts < to);
        let answer = if inside(pair.first) && inside(pair.last) {
            // Every record of the pair is in the window.
            Some(pair.row())
        } else if pair.last < from || (!unbounded && pair.first >= to) {
            None
        } else if unbounded {
            since(connection, &pair, from)?
        } else {
            window(connection, &pair, from, to)?
        };
        if let Some(row) = answer {
            out.insert((row.partner.clone(), row.host.clone()), row);
        }
    }
    Ok(out.into_values().collect())
}

struct Pair {
    partner: String,
    host: String,
    subscribers: i64,
    disclosures: i64,
    first: i64,
    last: i64,
}

impl Pair {
    fn row(self) -> ExposureRow {
        ExposureRow {
            partner: self.partner,
            host: self.host,
            subscribers: self.subscribers,
            disclosures: self.disclosures,
            first: format_rfc3339(self.first),
            last: format_rfc3339(self.last),
        }
    }
}

/// One pair's records at or after `from` (no `--to`), which the pair has: whole days from
/// `exposure_days`, `from`'s own day from its records (and their subscribers' last times).
fn since(connection: &Connection, pair: &Pair, from: i64) -> rusqlite::Result<Option<ExposureRow>> {
    let from_day = day(from);
    let day_end = (from_day + 1).saturating_mul(DAY);
    let (mut disclosures, mut subscribers): (i64, i64) = connection
        .prepare_cached(
            "SELECT COALESCE(SUM(disclosures), 0), COALESCE(SUM(lasts), 0) FROM exposure_days
             WHERE partner = ?1 AND host = ?2 AND day > ?3",
        )?
        .query_row(params![pair.partner, pair.host, from_day], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    // The rest of `from`'s day: its records, and the subscribers whose last record is among
    // them.
    let mut statement = connection.prepare_cached(
        "SELECT msisdn, ts FROM disclosures INDEXED BY disclosures_host_window
         WHERE host = ?1 AND ts >= ?2 AND ts < ?4 AND partner = ?3",
    )?;
    let mut rows = statement.query(params![pair.host, from, pair.partner, day_end])?;
    // Looked up in key order below: neighbouring keys share pages, which matters when the
    // table is not in the page cache (about 7 times faster cold at 10 M rows).
    let mut seen = BTreeSet::new();
    let mut first = None;
    while let Some(row) = rows.next()? {
        let msisdn = row.get_ref(0)?.as_str()?;
        let ts: i64 = row.get(1)?;
        first.get_or_insert(ts);
        disclosures += 1;
        if !seen.contains(msisdn) {
            seen.insert(msisdn.to_owned());
        }
    }
    let mut last_day_of = connection.prepare_cached(
        "SELECT last_day FROM exposure_subscribers
         WHERE partner = ?1 AND host = ?2 AND msisdn = ?3",
    )?;
    for msisdn in &seen {
        let last_day: Option<i64> = last_day_of
            .query_row(params![pair.partner, pair.host, msisdn], |row| row.get(0))
            .optional()?;
        if last_day.is_some_and(|last_day| last_day <= from_day) {
            subscribers += 1;
        }
    }
    if disclosures == 0 {
        return Ok(None);
    }
    let first = match first {
        Some(first) => first,
        None => connection
            .prepare_cached(
                "SELECT ts FROM disclosures INDEXED BY disclosures_host_window
                 WHERE host = ?1 AND ts >= ?2 AND partner = ?3 ORDER BY ts LIMIT 1",
            )?
            .query_row(params![pair.host, day_end, pair.partner], |row| row.get(0))?,
    };
    Ok(Some(ExposureRow {
        partner: pair.partner.clone(),
        host: pair.host.clone(),
        subscribers,
        disclosures,
        first: format_rfc3339(first),
        last: format_rfc3339(pair.last),
    }))
}

/// One pair's records in `[from, to)`, counted from the covering index.
fn window(
    connection: &Connection,
    pair: &Pair,
    from: i64,
    to: i64,
) -> rusqlite::Result<Option<ExposureRow>> {
    let mut statement = connection.prepare_cached(
        "SELECT msisdn, ts FROM disclosures INDEXED BY disclosures_host_window
         WHERE host = ?1 AND ts >= ?2 AND ts < ?4 AND partner = ?3",
    )?;
    let mut rows = statement.query(params![pair.host, from, pair.partner, to])?;
    let mut subscribers = SubscriberSet::default();
    let (mut count, mut first, mut last) = (0_i64, i64::MAX, i64::MIN);
    while let Some(row) = rows.next()? {
        subscribers.insert(row.get_ref(0)?.as_str()?);
        let ts: i64 = row.get(1)?;
        count += 1;
        first = first.min(ts);
        last = last.max(ts);
    }
    Ok((count > 0).then(|| ExposureRow {
        partner: pair.partner.clone(),
        host: pair.host.clone(),
        subscribers: subscribers.len(),
        disclosures: count,
        first: format_rfc3339(first),
        last: format_rfc3339(last),
    }))
}

/// A set of subscriber numbers for counting distinct ones: international digits are kept as
/// integers (8 bytes, no allocation per number), anything else as text.
#[derive(Default)]
pub struct SubscriberSet {
    numbers: HashSet<u64>,
    other: HashSet<String>,
}

impl SubscriberSet {
    /// Adds `msisdn` (no-op when present).
    pub fn insert(&mut self, msisdn: &str) {
        // Only a canonical decimal (no leading zero, fits in u64) maps one-to-one to a number.
        let canonical = !msisdn.is_empty()
            && msisdn.len() <= 19
            && !msisdn.starts_with('0')
            && msisdn.bytes().all(|byte| byte.is_ascii_digit());
        match msisdn.parse::<u64>() {
            Ok(number) if canonical => {
                self.numbers.insert(number);
            }
            _ => {
                if !self.other.contains(msisdn) {
                    self.other.insert(msisdn.to_owned());
                }
            }
        }
    }

    /// Distinct numbers added.
    pub fn len(&self) -> i64 {
        i64::try_from(self.numbers.len() + self.other.len()).unwrap_or(i64::MAX)
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty() && self.other.is_empty()
    }
}
