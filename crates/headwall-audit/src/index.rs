//! The SQLite index of the embedded log: built from the journal's rows in bulk by the indexer
//! thread, by the writer at open and by every reader ([`catch_up`]), all through [`index`].
//!
//! The indexer owns the database connection. It takes what the writer handed over when
//! [`INDEX_EVERY`] has passed since the first row waited, when [`INDEX_BATCH`] rows wait, or
//! when a control job (retention, a checkpoint, shutdown) comes: the job then sees every record
//! before it. Retention runs here, so a long prune step holds up the index, never a
//! disclosure. Checkpoints are written here, after the rows they name are in SQLite, so a
//! checkpoint never names a record `verify` cannot find.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use headwall_identity::SigningKey;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::LogLimit;
use crate::journal::{Row, Scan, journal_paths};
use crate::record::{DisclosureRow, EventRow};
use crate::time::now_ms;
use crate::writer::{
    AuditError, Chain, ChainEnd, Checkpoint, Head, PRUNE_STEP, SUMMARY_PRUNE_STEP,
    encode_checkpoint_line,
};

/// Longest time a durable record waits to be indexed while the writer is busy: how far an
/// `audit` query made without catching up (a read-only copy) can lag.
pub(crate) const INDEX_EVERY: Duration = Duration::from_millis(500);
/// Rows that make the indexer start at once.
pub(crate) const INDEX_BATCH: usize = 8192;
/// Rows handed over and not yet indexed at most; beyond it disclosures fail (the journal could
/// not switch files and would grow without bound).
pub(crate) const MAX_UNINDEXED: usize = 262_144;
/// How long an index transaction waits for a reader's catch-up holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why rows could not be indexed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IndexError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A row does not follow the newest indexed record of its chain.
    #[error("{table} record {id} does not follow record {last} in the index")]
    Gap {
        table: &'static str,
        id: i64,
        last: i64,
    },
}

/// Inserts the rows SQLite does not hold yet, in one transaction that holds the write lock
/// from its start (another process's catch-up may have taken some of them already). Returns
/// how many were inserted.
pub(crate) fn index(connection: &mut Connection, rows: &[Row]) -> Result<u64, IndexError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut disclosures = Head::load(&transaction, Chain::Disclosures)?;
    let mut events = Head::load(&transaction, Chain::Events)?;
    let mut summary = crate::summary::Pending::default();
    let mut inserted = 0;
    for row in rows {
        let head = match row.chain() {
            Chain::Disclosures => &mut disclosures,
            Chain::Events => &mut events,
        };
        if row.id() < head.next_id {
            continue;
        }
        if row.id() != head.next_id || row.prev_hash() != head.last_hash {
            return Err(IndexError::Gap {
                table: row.chain().table(),
                id: row.id(),
                last: head.next_id - 1,
            });
        }
        match row {
            Row::Disclosure(row) => {
                insert_disclosure(&transaction, row)?;
                crate::summary::record(&mut summary, row);
            }
            Row::Event(row) => insert_event(&transaction, row)?,
        }
        head.next_id += 1;
        row.hash().clone_into(&mut head.last_hash);
        head.last_ts = row.ts();
        inserted += 1;
    }
    if inserted > 0 {
        crate::summary::finish(
            &transaction,
            &mut summary,
            disclosures.next_id - 1,
            disclosures.removed_through,
        )?;
    }
    transaction.commit()?;
    Ok(inserted)
}

/// Brings the SQLite index of the log at `database` up to its journal, and returns how many
/// records it added. Every reader does this at open, so an `audit` command sees every durable
/// record, also those a writer killed a moment ago had not indexed. Needs write access to the
/// database; a reader without it (a copy on read-only media) reads the index as it is.
pub fn catch_up(database: &Path) -> Result<u64, String> {
    if !journal_paths(database).iter().any(|path| path.exists()) {
        return Ok(0);
    }
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        format!("{}: cannot {what}: {error}", database.display())
    };
    // What the index lacks, asked without taking the write lock: usually nothing.
    let heads = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|connection| {
            Ok((
                Head::load(&connection, Chain::Disclosures)?.next_id,
                Head::load(&connection, Chain::Events)?.next_id,
            ))
        })
        .map_err(|e| failed("open the audit log", &e))?;
    let scan =
        Scan::read(database, Some(heads)).map_err(|e| failed("read the audit journal", &e))?;
    let rows = scan.rows_from(heads.0, heads.1);
    if rows.is_empty() {
        return Ok(0);
    }
    let opened = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_WRITE).and_then(
        |connection| {
            connection.busy_timeout(BUSY_TIMEOUT)?;
            connection.execute_batch("PRAGMA synchronous = FULL;")?;
            Ok(connection)
        },
    );
    let mut connection = match opened {
        Ok(connection) => connection,
        Err(error) => {
            tracing::debug!(path = %database.display(), %error, "audit index read as it is");
            return Ok(0);
        }
    };
    match index(&mut connection, &rows) {
        Ok(inserted) => Ok(inserted),
        Err(IndexError::Sqlite(error))
            if error.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) =>
        {
            tracing::debug!(path = %database.display(), "audit index read as it is (read-only)");
            Ok(0)
        }
        Err(error) => Err(failed("index the audit journal", &error)),
    }
}

pub(crate) fn insert_disclosure(
    transaction: &Transaction<'_>,
    row: &DisclosureRow,
) -> rusqlite::Result<()> {
    transaction
        .prepare_cached(
            "INSERT INTO disclosures (id, ts, request_id, partner, purpose, msisdn, kinds, headers,
               host, port, upstream_ip, client_ip, policy_hash, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?
        .execute(params![
            row.id,
            row.ts,
            row.request_id,
            row.partner,
            row.purpose,
            row.msisdn,
            row.kinds,
            row.headers,
            row.host,
            row.port,
            row.upstream_ip,
            row.client_ip,
            row.policy_hash,
            row.prev_hash,
            row.hash
        ])?;
    Ok(())
}

fn insert_event(transaction: &Transaction<'_>, row: &EventRow) -> rusqlite::Result<()> {
    transaction
        .prepare_cached(
            "INSERT INTO security_events (id, ts, kind, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            row.id,
            row.ts,
            row.kind,
            row.detail,
            row.prev_hash,
            row.hash
        ])?;
    Ok(())
}

/// What the indexer is asked besides rows; each sees every row handed over before it.
pub(crate) enum Control {
    Prune(i64, oneshot::Sender<Result<u64, AuditError>>),
    Checkpoint(oneshot::Sender<()>),
}

/// Rows and jobs passed from the writer thread to the indexer thread. The writer never waits
/// for the indexer and wakes it only when it has something to do now, not per commit.
#[derive(Default)]
pub(crate) struct Handoff {
    state: Mutex<Handed>,
    wake: Condvar,
    /// The last journal seq whose record is durably in SQLite.
    indexed: AtomicU64,
    /// The last index transaction failed: the writer refuses disclosures until one succeeds.
    failing: AtomicBool,
}

#[derive(Default)]
struct Handed {
    rows: Vec<Row>,
    /// The journal seq of the last row in `rows`.
    last_seq: u64,
    /// When the oldest row in `rows` was handed over.
    since: Option<Instant>,
    control: Vec<Control>,
    stop: bool,
}

impl Handoff {
    pub(crate) fn new(indexed: u64) -> Handoff {
        Handoff {
            indexed: AtomicU64::new(indexed),
            ..Handoff::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Handed> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands over durable rows, the last of them journal seq `last_seq`.
    pub(crate) fn rows(&self, rows: Vec<Row>, last_seq: u64) {
        let mut state = self.lock();
        // The first row waiting sets the indexer's deadline: wake it to take the deadline on.
        let first = state.since.is_none();
        state.since.get_or_insert_with(Instant::now);
        state.rows.extend(rows);
        state.last_seq = last_seq;
        if first || state.rows.len() >= INDEX_BATCH {
            self.wake.notify_one();
        }
    }

    pub(crate) fn control(&self, control: Control) {
        self.lock().control.push(control);
        self.wake.notify_one();
    }

    /// Asks the indexer to index what it has, write a checkpoint and stop.
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_one();
    }

    /// Rows handed over and not yet taken by the indexer.
    pub(crate) fn backlog(&self) -> usize {
        self.lock().rows.len()
    }

    /// The last journal seq durably indexed.
    pub(crate) fn indexed(&self) -> u64 {
        self.indexed.load(Ordering::Acquire)
    }

    /// Whether the last index transaction failed.
    pub(crate) fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

/// The thread that owns the SQLite connection.
pub(crate) struct Indexer {
    pub(crate) connection: Connection,
    pub(crate) checkpoints: PathBuf,
    pub(crate) signing_key: SigningKey,
    /// Time between checkpoints.
    pub(crate) every: Duration,
    /// The chain ends (next ids) of the last checkpoint written by this process.
    checkpointed: Option<(i64, i64)>,
}

/// One turn's work, taken from the [`Handoff`] under its lock.
struct Turn {
    rows: Vec<Row>,
    last_seq: u64,
    control: Vec<Control>,
    stop: bool,
}

impl Indexer {
    pub(crate) fn new(
        connection: Connection,
        checkpoints: PathBuf,
        signing_key: SigningKey,
        every: Duration,
    ) -> rusqlite::Result<Indexer> {
        connection.busy_timeout(BUSY_TIMEOUT)?;
        Ok(Indexer {
            connection,
            checkpoints,
            signing_key,
            every,
            checkpointed: None,
        })
    }

    pub(crate) fn run(mut self, handoff: &Handoff) {
        let mut next_checkpoint = Instant::now() + self.every;
        loop {
            let turn = Self::wait(handoff, next_checkpoint);
            if !turn.rows.is_empty() {
                self.index(handoff, turn.rows, turn.last_seq);
            }
            for control in turn.control {
                match control {
                    Control::Prune(cutoff, done) => {
                        let _ = done.send(self.prune(cutoff));
                    }
                    Control::Checkpoint(done) => {
                        self.write_checkpoint();
                        let _ = done.send(());
                    }
                }
            }
            if turn.stop {
                self.write_checkpoint();
                return;
            }
            // Every `every` while records arrive, busy or not.
            if Instant::now() >= next_checkpoint {
                self.write_checkpoint();
                next_checkpoint = Instant::now() + self.every;
            }
        }
    }

    /// Waits until there is something to do now, and takes it.
    fn wait(handoff: &Handoff, next_checkpoint: Instant) -> Turn {
        let mut state = handoff.lock();
        loop {
            let now = Instant::now();
            let due = state.since.map(|since| since + INDEX_EVERY);
            let ready = state.stop
                || !state.control.is_empty()
                || state.rows.len() >= INDEX_BATCH
                || due.is_some_and(|due| now >= due)
                || now >= next_checkpoint;
            if ready {
                state.since = None;
                return Turn {
                    rows: std::mem::take(&mut state.rows),
                    last_seq: state.last_seq,
                    control: std::mem::take(&mut state.control),
                    stop: state.stop,
                };
            }
            let until = due.map_or(next_checkpoint, |due| due.min(next_checkpoint));
            state = handoff
                .wake
                .wait_timeout(state, until.saturating_duration_since(now))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Indexes `rows`; on failure hands them back to be tried again (they are durable in the
    /// journal, which keeps them until they are indexed) and has the writer refuse disclosures
    /// meanwhile: a record that cannot be indexed cannot be answered for, so no more are made
    /// (the ones already acknowledged are safe in the journal).
    fn index(&mut self, handoff: &Handoff, rows: Vec<Row>, last_seq: u64) {
        match index(&mut self.connection, &rows) {
            Ok(_) => {
                handoff.indexed.store(last_seq, Ordering::Release);
                handoff.failing.store(false, Ordering::Relaxed);
            }
            Err(error) => {
                handoff.failing.store(true, Ordering::Relaxed);
                static FAILED: LogLimit = LogLimit::new();
                // SQLite errors name tables and constraints, never row content.
                FAILED.run(|| {
                    tracing::warn!(%error, records = rows.len(), "audit index commit failed; will retry");
                });
                // Tried again after INDEX_EVERY, ahead of what came meanwhile.
                let mut state = handoff.lock();
                let newer = std::mem::replace(&mut state.rows, rows);
                state.rows.extend(newer);
                state.since = Some(Instant::now());
            }
        }
    }

    /// One retention step over both chains, in its own transaction.
    fn prune(&mut self, cutoff: i64) -> Result<u64, AuditError> {
        let result = (|| -> rusqlite::Result<u64> {
            let transaction = self
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut disclosures = Head::load(&transaction, Chain::Disclosures)?;
            let mut events = Head::load(&transaction, Chain::Events)?;
            let mut summary = crate::summary::Pending::default();
            let removed = prune(
                &transaction,
                Chain::Disclosures,
                &mut disclosures,
                cutoff,
                Some(&mut summary),
            )? + prune(&transaction, Chain::Events, &mut events, cutoff, None)?;
            crate::summary::finish(
                &transaction,
                &mut summary,
                disclosures.next_id - 1,
                disclosures.removed_through,
            )?;
            transaction.commit()?;
            Ok(removed)
        })();
        result.map_err(|error| AuditError::Commit(error.to_string()))
    }

    /// Appends a signed checkpoint of what SQLite holds when either chain moved since the last
    /// one, and fsyncs it.
    fn write_checkpoint(&mut self) {
        let heads = Head::load(&self.connection, Chain::Disclosures).and_then(|disclosures| {
            Ok((disclosures, Head::load(&self.connection, Chain::Events)?))
        });
        let (disclosures, events) = match heads {
            Ok(heads) => heads,
            Err(error) => {
                tracing::warn!(%error, "cannot read the audit chains for a checkpoint");
                return;
            }
        };
        let ends = (disclosures.next_id, events.next_id);
        if self.checkpointed == Some(ends) || ends == (1, 1) {
            return;
        }
        let checkpoint = Checkpoint {
            ts: now_ms(),
            disclosures: ChainEnd::of(&disclosures),
            security_events: ChainEnd::of(&events),
        };
        let line = encode_checkpoint_line(&checkpoint, &self.signing_key);
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.checkpoints)
            .and_then(|mut file| {
                file.write_all(line.as_bytes())?;
                file.sync_data()
            });
        match written {
            Ok(()) => self.checkpointed = Some(ends),
            Err(error) => tracing::warn!(
                path = %self.checkpoints.display(),
                %error,
                "cannot write the audit checkpoint"
            ),
        }
    }
}

/// Removes the oldest contiguous run of records written before `cutoff` (at most
/// [`PRUNE_STEP`]) and moves the chain's anchor to the last removed record. `summary`: the
/// step's exposure summary, which the removed disclosures are subtracted from.
fn prune(
    transaction: &Transaction<'_>,
    chain: Chain,
    head: &mut Head,
    cutoff: i64,
    mut summary: Option<&mut crate::summary::Pending>,
) -> rusqlite::Result<u64> {
    let table = chain.table();
    let first_kept: Option<i64> = transaction.query_row(
        &format!("SELECT MIN(id) FROM {table} WHERE ts >= ?1"),
        [cutoff],
        |row| row.get(0),
    )?;
    let oldest = head.removed_through + 1;
    let last_old = first_kept.unwrap_or(head.next_id) - 1;
    // A step that also updates the exposure summary is kept smaller: the index waits for it.
    let step = if summary.is_some() {
        SUMMARY_PRUNE_STEP
    } else {
        PRUNE_STEP
    };
    let through = last_old.min(oldest + step - 1);
    if through < oldest {
        return Ok(0);
    }
    let anchor: String = transaction.query_row(
        &format!("SELECT hash FROM {table} WHERE id = ?1"),
        [through],
        |row| row.get(0),
    )?;
    if let Some(summary) = summary.as_deref_mut() {
        crate::summary::before_prune(transaction, summary, through)?;
    }
    let removed = transaction.execute(&format!("DELETE FROM {table} WHERE id <= ?1"), [through])?;
    if summary.is_some() {
        crate::summary::after_prune(transaction)?;
    }
    transaction.execute(
        "INSERT INTO chain_anchor (chain, removed_through, hash) VALUES (?1, ?2, ?3)
         ON CONFLICT (chain) DO UPDATE SET removed_through = excluded.removed_through,
           hash = excluded.hash",
        params![table, through, anchor],
    )?;
    head.removed_through = through;
    Ok(removed as u64)
}
