//! The durable writer: one thread folds every queued record into one journal append and one
//! `fdatasync` (group commit), chains each record to the one before, and answers each waiting
//! request only after its record is on disk. The SQLite index is built behind it by the
//! indexer thread (`index.rs`); see `journal.rs` for why.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use headwall_identity::SigningKey;
use rusqlite::{Connection, OptionalExtension as _};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::index::{Control, Handoff, Indexer};
use crate::journal::{Journal, Row, Scan};
use crate::latency::{Histogram, Snapshot};
use crate::pending::{self, FLUSH_AFTER, PendingEvents, Pushed};
use crate::record::{Disclosure, DisclosureRow, EventKind, EventRow, GENESIS_HASH};
use crate::time::now_ms;

/// Records waiting at most; beyond it a disclosure fails at once (the request goes out without
/// identity) rather than waiting for a slow disk.
pub const QUEUE_DEPTH: usize = 8192;
/// Records folded into one transaction at most.
pub(crate) const MAX_BATCH: usize = 4096;
/// A disclosure not durable within this time fails closed: its request goes out without
/// identity. The record may still land later (over-recording is the safe direction).
pub const WRITE_DEADLINE: Duration = Duration::from_secs(2);
/// Rows removed by one retention step at most, so appends are never held up for long.
pub(crate) const PRUNE_STEP: i64 = 50_000;
/// Disclosures removed by one retention step of the embedded log at most: each also updates
/// the exposure summary (10 M-row log: about 0.8 s per 10,000 rows, 3.5 s per 50,000; see
/// BENCH.md), and the index waits for the step (disclosures do not).
pub(crate) const SUMMARY_PRUNE_STEP: i64 = 10_000;

/// Why the log could not be opened or a record made durable. Never carries record content.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database could not be opened, created or read.
    #[error("{}: cannot open the audit log: {reason}", path.display())]
    Open {
        /// The database path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The queue is full: the disk is not keeping up.
    #[error("the audit queue is full")]
    QueueFull,
    /// The writer has stopped; nothing more is durable.
    #[error("the audit writer has stopped")]
    WriterStopped,
    /// The embedded log's index cannot be written (the last try failed; see the log): no
    /// disclosure is made until it can.
    #[error("the audit index cannot be written")]
    IndexFailing,
    /// The transaction or its fsync failed; the records in it were not written.
    #[error("audit commit failed: {0}")]
    Commit(String),
    /// The record was not durable within [`WRITE_DEADLINE`].
    #[error("the audit write did not complete within {0:?}")]
    Timeout(Duration),
    /// The PostgreSQL log could not be reached, migrated or read at open. `target` is the URL
    /// without its password.
    #[error("{target}: cannot open the PostgreSQL audit log: {reason}")]
    Connect {
        /// `postgres://user@host:port/database`, never the password.
        target: String,
        /// What failed (the server's SQLSTATE and message, or the connection error).
        reason: String,
    },
    /// The node name given to [`AuditLog::open_postgres`] is unusable.
    #[error(
        "audit node name {0:?}: give 1 to 64 characters of ASCII letters, digits, `.`, `-` or `_`"
    )]
    InvalidNode(String),
}

/// What the writer needs besides the path.
pub struct AuditOptions {
    /// Signs the checkpoints (the identity signing key).
    pub signing_key: SigningKey,
    /// Time between checkpoints while records arrive. docs/design.md, Audit log: every minute.
    pub checkpoint_every: Duration,
    /// Embedded log: longest wait for more disclosures to share a flush while they come close
    /// together (`[audit].commit_window`; zero: none). See `Writer::gather`.
    pub commit_window: Duration,
}

/// `[audit].commit_window` when not set.
pub const DEFAULT_COMMIT_WINDOW: Duration = Duration::from_millis(1);

pub(crate) enum Job {
    Disclose(Box<Disclosure>, oneshot::Sender<Result<(), AuditError>>),
    Event(EventKind, String),
    /// The first event went into the empty [`PendingEvents`] buffer: commit it by the deadline.
    EventsPending,
    Prune(i64, oneshot::Sender<Result<u64, AuditError>>),
    Checkpoint(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// The audit log's writing side. Clones share one writer thread.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Queue,
    /// Frequent security events waiting for the SQLite writer's next commit (unused with
    /// PostgreSQL, whose writer takes every event from its queue).
    pending: Arc<PendingEvents>,
    /// Shared with the embedded writer, which also drops events while it refuses records.
    dropped_events: Arc<AtomicU64>,
    stats: Arc<WriterStats>,
    enrichment_off: Arc<AtomicBool>,
    worker: Mutex<Option<Worker>>,
}

/// What a writer reports to the metrics: how long each commit took (their number is the
/// commit count), and how many records wait for one.
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    pub(crate) commit: Histogram,
    /// Disclosures and events queued and not yet through a commit (written or refused).
    queued: AtomicU64,
}

impl WriterStats {
    fn queued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// The writer took these jobs out of the queue for a commit.
    pub(crate) fn taken(&self, jobs: &[Job]) {
        let records = jobs
            .iter()
            .filter(|job| matches!(job, Job::Disclose(..) | Job::Event(..)))
            .count() as u64;
        if records > 0 {
            self.queued.fetch_sub(records, Ordering::Relaxed);
        }
    }
}

/// The writer's inbox: a bounded channel to the SQLite thread or to the PostgreSQL task.
enum Queue {
    Sqlite(mpsc::SyncSender<Job>),
    Postgres(tokio::sync::mpsc::Sender<Job>),
}

enum Worker {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

/// What a started writer hands back to [`AuditLog`].
pub(crate) struct Started {
    pub(crate) queue: tokio::sync::mpsc::Sender<Job>,
    pub(crate) stats: Arc<WriterStats>,
    pub(crate) enrichment_off: Arc<AtomicBool>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

/// The file beside the database that holds the signed checkpoints (`audit.db` ->
/// `audit.checkpoints`).
pub fn checkpoint_path(database: &Path) -> PathBuf {
    database.with_extension("checkpoints")
}

impl AuditLog {
    /// Opens (creating when missing) the embedded log at `path` — the SQLite index there and
    /// the journal beside it — indexes what the journal holds beyond the index (a crash), and
    /// starts the writer and indexer threads.
    pub fn open(path: &Path, options: AuditOptions) -> Result<AuditLog, AuditError> {
        let open_error = |reason: &dyn std::fmt::Display| AuditError::Open {
            path: path.to_owned(),
            reason: reason.to_string(),
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_error(&e))?;
        }
        let mut connection = Connection::open(path).map_err(|e| open_error(&e))?;
        connection
            .execute_batch(crate::SCHEMA)
            .map_err(|e| open_error(&e))?;
        crate::summary::prepare(&mut connection).map_err(|e| open_error(&e))?;
        // Recovery: what the journal holds and the index does not.
        let lacking = (
            Head::load(&connection, Chain::Disclosures)
                .map_err(|e| open_error(&e))?
                .next_id,
            Head::load(&connection, Chain::Events)
                .map_err(|e| open_error(&e))?
                .next_id,
        );
        let scan = Scan::read(path, Some(lacking)).map_err(|e| open_error(&e))?;
        let recovered = crate::index::index(&mut connection, &scan.rows_from(lacking.0, lacking.1))
            .map_err(|error| match error {
                crate::index::IndexError::Gap { .. } => open_error(&format_args!(
                    "{error}: the journal beside it ({}) holds records that do not follow the \
                 database's; restore the database that belongs with it, or move both journal \
                 files away to start a new log",
                    crate::journal::journal_paths(path)
                        .iter()
                        .map(|file| file.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                other => open_error(&other),
            })?;
        let journal = Journal::open(path, &scan).map_err(|e| open_error(&e))?;
        let disclosures =
            Head::load(&connection, Chain::Disclosures).map_err(|e| open_error(&e))?;
        let events = Head::load(&connection, Chain::Events).map_err(|e| open_error(&e))?;
        let enrichment_off = last_switched_off(&connection).map_err(|e| open_error(&e))?;
        tracing::info!(
            path = %path.display(),
            disclosures = disclosures.next_id - 1 - disclosures.removed_through,
            recovered,
            "audit log opened"
        );
        let handoff = Arc::new(Handoff::new(journal.last_seq()));
        let indexer = Indexer::new(
            connection,
            checkpoint_path(path),
            options.signing_key,
            options.checkpoint_every,
        )
        .map_err(|e| open_error(&e))?;
        let indexer = {
            let handoff = handoff.clone();
            std::thread::Builder::new()
                .name("headwall-audit-index".into())
                .spawn(move || indexer.run(&handoff))
                .map_err(|e| open_error(&e))?
        };
        let stats = Arc::new(WriterStats::default());
        let dropped_events = Arc::new(AtomicU64::new(0));
        let pending = Arc::new(PendingEvents::default());
        let writer = Writer {
            stats: stats.clone(),
            dropped_events: dropped_events.clone(),
            pending: pending.clone(),
            journal,
            disclosures,
            events,
            unwritten: Vec::new(),
            handoff,
            indexer: Some(indexer),
            last_batch: None,
            window: options.commit_window,
            skip: 0,
            backoff: 0,
        };
        let (queue, receiver) = mpsc::sync_channel(QUEUE_DEPTH);
        let thread = std::thread::Builder::new()
            .name("headwall-audit-writer".into())
            .spawn(move || writer.run(&receiver))
            .map_err(|e| open_error(&e))?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                queue: Queue::Sqlite(queue),
                pending,
                dropped_events,
                stats,
                enrichment_off: Arc::new(AtomicBool::new(enrichment_off)),
                worker: Mutex::new(Some(Worker::Thread(thread))),
            }),
        })
    }

    /// Opens the shared PostgreSQL log at `url` as fleet member `node` and starts the writer
    /// task on the current tokio runtime. Applies the migrations in
    /// `migrations/postgres/` first (idempotent, serialized across nodes by an advisory
    /// lock). `node` names this gateway's own chains (1–64 ASCII letters, digits, `.`, `-`,
    /// `_`; stable across restarts, unique in the fleet: two live processes with one name make
    /// each other's commits fail). `tls` is `[audit]`'s TLS keys, used as the URL's `sslmode`
    /// asks. See the crate documentation, "PostgreSQL".
    pub async fn open_postgres(
        url: &str,
        tls: &headwall_policy::StoreTls,
        node: &str,
        options: AuditOptions,
    ) -> Result<AuditLog, AuditError> {
        let started = crate::postgres::writer::start(url, tls, node, options).await?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                queue: Queue::Postgres(started.queue),
                pending: Arc::new(PendingEvents::default()),
                dropped_events: Arc::new(AtomicU64::new(0)),
                stats: started.stats,
                enrichment_off: started.enrichment_off,
                worker: Mutex::new(Some(Worker::Task(started.task))),
            }),
        })
    }

    /// Writes `disclosure` and resolves once it is durable. Fails at once when the queue is
    /// full, and after [`WRITE_DEADLINE`] at the latest: the caller then withholds identity.
    pub async fn disclose(&self, disclosure: Disclosure) -> Result<(), AuditError> {
        let (done, outcome) = oneshot::channel();
        self.inner
            .queue
            .try_send(Job::Disclose(Box::new(disclosure), done))?;
        self.inner.stats.queued();
        match tokio::time::timeout(WRITE_DEADLINE, outcome).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AuditError::WriterStopped),
            Err(_) => Err(AuditError::Timeout(WRITE_DEADLINE)),
        }
    }

    /// Queues a security event; never waits. `detail` is a JSON object of counts, addresses,
    /// names and hashes — never a subscriber number or a header value. When the queue is full
    /// the event is dropped and counted ([`AuditLog::dropped_events`]).
    ///
    /// Embedded log: frequent kinds wait up to 5 ms for a commit instead of waking the writer
    /// each (see `pending.rs`).
    ///
    /// `detail` is usually a `serde_json::json!` object; the data plane passes small structs
    /// that serialize to the same object without building one.
    pub fn event(&self, kind: EventKind, detail: &impl Serialize) {
        // Maps with string keys, numbers and strings always serialize.
        let detail = serde_json::to_string(detail).unwrap_or_else(|_| String::from("{}"));
        let queued = match &self.inner.queue {
            Queue::Sqlite(_) if pending::buffered(kind) => {
                match self.inner.pending.push(kind, detail) {
                    Pushed::Queued => true,
                    Pushed::First => {
                        // Failing to wake only delays the events to the next commit.
                        let _ = self.inner.queue.try_send(Job::EventsPending);
                        true
                    }
                    Pushed::Full => false,
                }
            }
            queue => queue.try_send(Job::Event(kind, detail)).is_ok(),
        };
        if queued {
            self.inner.stats.queued();
        } else {
            self.inner.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Security events dropped because the queue was full, the writer had stopped, or (embedded)
    /// the writer was refusing records (journal writes failing, or the index far behind).
    pub fn dropped_events(&self) -> u64 {
        self.inner.dropped_events.load(Ordering::Relaxed)
    }

    /// Whether the last `kill_switch` event on record turned enrichment off: the kill switch is
    /// state, and it stays off across restarts until an operator turns it on.
    ///
    /// Embedded log: this node's last event, read at open. PostgreSQL: the last `kill_switch`
    /// event of the whole fleet (a leak seen anywhere means off everywhere), read at open and
    /// refreshed by the writer every [`KILL_SWITCH_REFRESH`](crate::KILL_SWITCH_REFRESH), so a gateway that polls this
    /// follows an operator's or another node's switch.
    pub fn enrichment_switched_off(&self) -> bool {
        self.inner.enrichment_off.load(Ordering::Relaxed)
    }

    /// Transactions committed since open: with group commit, far fewer than records.
    pub fn commits(&self) -> u64 {
        self.inner.stats.commit.count()
    }

    /// How long each commit took (the journal's `pwrite` + `fdatasync`, or the PostgreSQL
    /// transaction), for `headwall_audit_commit_duration_seconds`.
    pub fn commit_durations(&self) -> Snapshot {
        self.inner.stats.commit.snapshot()
    }

    /// Disclosures and security events waiting for a commit (`headwall_audit_queue_depth`);
    /// the queue holds [`QUEUE_DEPTH`].
    pub fn queue_depth(&self) -> u64 {
        self.inner.stats.queued.load(Ordering::Relaxed)
    }

    /// Removes the oldest records written before `cutoff_ms` (Unix ms), at most a bounded step
    /// per call in each table, keeping the hash of the last removed record as the chain's
    /// anchor. Returns how many rows went; call again until it returns 0.
    ///
    /// PostgreSQL: every node's chains are pruned (each keeps its own anchor), so the records
    /// of a node that left the fleet still expire; give every node the same retention.
    pub async fn prune(&self, cutoff_ms: i64) -> Result<u64, AuditError> {
        let (done, outcome) = oneshot::channel();
        self.send(Job::Prune(cutoff_ms, done)).await?;
        outcome.await.unwrap_or(Err(AuditError::WriterStopped))
    }

    /// Writes a checkpoint now if records were added since the last one.
    pub async fn checkpoint(&self) -> Result<(), AuditError> {
        let (done, outcome) = oneshot::channel();
        self.send(Job::Checkpoint(done)).await?;
        outcome.await.map_err(|_| AuditError::WriterStopped)
    }

    /// Finishes every queued record, writes a final checkpoint and stops the writer.
    pub async fn close(&self) {
        let (done, outcome) = oneshot::channel();
        if self.send(Job::Shutdown(done)).await.is_ok() {
            let _ = outcome.await;
        }
        let worker = self
            .inner
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match worker {
            Some(Worker::Thread(thread)) => {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            Some(Worker::Task(task)) => {
                let _ = task.await;
            }
            None => {}
        }
    }

    /// Sends a control job, waiting for queue space.
    async fn send(&self, job: Job) -> Result<(), AuditError> {
        match &self.inner.queue {
            Queue::Sqlite(queue) => {
                // The std channel blocks: wait for space on the blocking pool.
                let queue = queue.clone();
                match tokio::task::spawn_blocking(move || queue.send(job).is_ok()).await {
                    Ok(true) => Ok(()),
                    _ => Err(AuditError::WriterStopped),
                }
            }
            Queue::Postgres(queue) => queue.send(job).await.map_err(|_| AuditError::WriterStopped),
        }
    }
}

impl Queue {
    /// Queues `job` without waiting: [`AuditError::QueueFull`] when there is no room.
    fn try_send(&self, job: Job) -> Result<(), AuditError> {
        match self {
            Queue::Sqlite(queue) => queue.try_send(job).map_err(|error| match error {
                mpsc::TrySendError::Full(_) => AuditError::QueueFull,
                mpsc::TrySendError::Disconnected(_) => AuditError::WriterStopped,
            }),
            Queue::Postgres(queue) => queue.try_send(job).map_err(|error| match error {
                tokio::sync::mpsc::error::TrySendError::Full(_) => AuditError::QueueFull,
                tokio::sync::mpsc::error::TrySendError::Closed(_) => AuditError::WriterStopped,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chain {
    Disclosures,
    Events,
}

impl Chain {
    pub(crate) fn table(self) -> &'static str {
        match self {
            Chain::Disclosures => "disclosures",
            Chain::Events => "security_events",
        }
    }
}

/// The end of one chain: what the next record links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) next_id: i64,
    pub(crate) last_hash: String,
    pub(crate) last_ts: i64,
    /// Records up to this id were removed by retention (0: none).
    pub(crate) removed_through: i64,
}

impl Head {
    /// The newest record of `chain` in SQLite (after retention's anchor when none is left).
    pub(crate) fn load(connection: &Connection, chain: Chain) -> rusqlite::Result<Head> {
        let anchor: Option<(i64, String)> = connection
            .query_row(
                "SELECT removed_through, hash FROM chain_anchor WHERE chain = ?1",
                [chain.table()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let (removed_through, anchor_hash) = anchor.unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));
        let last: Option<(i64, String, i64)> = connection
            .query_row(
                &format!(
                    "SELECT id, hash, ts FROM {} ORDER BY id DESC LIMIT 1",
                    chain.table()
                ),
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        Ok(match last {
            Some((id, hash, ts)) => Head {
                next_id: id + 1,
                last_hash: hash,
                last_ts: ts,
                removed_through,
            },
            None => Head {
                next_id: removed_through + 1,
                last_hash: anchor_hash,
                last_ts: 0,
                removed_through,
            },
        })
    }

    /// Moves the end past a record with `hash` written at `ts`.
    pub(crate) fn advance(&mut self, hash: &str, ts: i64) {
        self.next_id += 1;
        hash.clone_into(&mut self.last_hash);
        self.last_ts = ts;
    }

    /// A timestamp for the next record: the clock, but never before the previous record's.
    pub(crate) fn next_ts(&self, now: i64) -> i64 {
        now.max(self.last_ts)
    }
}

fn last_switched_off(connection: &Connection) -> rusqlite::Result<bool> {
    let detail: Option<String> = connection
        .query_row(
            "SELECT detail FROM security_events WHERE kind = 'kill_switch' ORDER BY id DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(switched_off(detail.as_deref()))
}

/// Whether a `kill_switch` event's detail turned enrichment off (`{"enabled": false}`).
pub(crate) fn switched_off(detail: Option<&str>) -> bool {
    detail
        .and_then(|detail| serde_json::from_str::<serde_json::Value>(detail).ok())
        .and_then(|detail| detail["enabled"].as_bool())
        .is_some_and(|enabled| !enabled)
}

/// One signed checkpoint: where both chains ended at `ts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Unix milliseconds when written.
    pub ts: i64,
    /// The `disclosures` chain.
    pub disclosures: ChainEnd,
    /// The `security_events` chain.
    pub security_events: ChainEnd,
}

/// The end of one chain at a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEnd {
    /// Rows present (after retention).
    pub rows: i64,
    /// The last record's id (0 when none was ever written).
    pub last_id: i64,
    /// The last record's hash.
    pub last_hash: String,
}

impl ChainEnd {
    pub(crate) fn of(head: &Head) -> ChainEnd {
        ChainEnd {
            rows: head.next_id - 1 - head.removed_through,
            last_id: head.next_id - 1,
            last_hash: head.last_hash.clone(),
        }
    }
}

/// A checkpoint line: `<checkpoint JSON> TAB <base64url Ed25519 signature of the JSON> TAB
/// <key id>`.
pub(crate) fn encode_checkpoint_line(checkpoint: &Checkpoint, key: &SigningKey) -> String {
    // A struct of integers and strings always serializes.
    let body = serde_json::to_string(checkpoint).unwrap_or_default();
    let signature = sign_checkpoint(&body, key);
    format!("{body}\t{signature}\t{}\n", key.key_id())
}

/// The base64url Ed25519 signature of a checkpoint body, as stored.
pub(crate) fn sign_checkpoint(body: &str, key: &SigningKey) -> String {
    URL_SAFE_NO_PAD.encode(key.sign_detached(body.as_bytes()))
}

/// The writer thread: chains each record to the one before, appends the batch to the journal
/// with one `fdatasync`, answers the waiters, and hands the rows to the indexer.
struct Writer {
    stats: Arc<WriterStats>,
    dropped_events: Arc<AtomicU64>,
    pending: Arc<PendingEvents>,
    journal: Journal,
    disclosures: Head,
    events: Head,
    /// Rows whose append failed: written again ahead of the next batch, then handed over.
    unwritten: Vec<Row>,
    handoff: Arc<Handoff>,
    indexer: Option<std::thread::JoinHandle<()>>,
    /// When the last batch holding a disclosure started.
    last_batch: Option<Instant>,
    /// Longest wait for more disclosures to share a batch's flush (see [`Writer::gather`]).
    window: Duration,
    /// Batches that skip the window after waits that gathered nothing, and how many the last
    /// such wait set.
    skip: u32,
    backoff: u32,
}

/// A batch this long is written without waiting for more (see [`Writer::gather`]).
const WINDOW_BELOW: usize = 4;

/// How soon a failed append is tried again when nothing else comes.
const RETRY_AFTER: Duration = Duration::from_millis(100);

impl Writer {
    fn run(mut self, queue: &mpsc::Receiver<Job>) {
        // When the buffered events must be committed at the latest (None: none are waiting).
        let mut flush_at: Option<Instant> = None;
        loop {
            let retry_at = (!self.unwritten.is_empty()).then(|| Instant::now() + RETRY_AFTER);
            let wake = match (flush_at, retry_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let mut batch = Vec::new();
            let received = match wake {
                Some(wake) => queue.recv_timeout(wake.saturating_duration_since(Instant::now())),
                None => queue
                    .recv()
                    .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(job) => batch.push(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let events = self.pending_events();
                    self.commit(events);
                    self.stop_indexer();
                    return;
                }
            }
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.gather(queue, &mut batch);
            batch.retain(|job| {
                if matches!(job, Job::EventsPending) {
                    flush_at.get_or_insert_with(|| Instant::now() + FLUSH_AFTER);
                    return false;
                }
                true
            });
            // Committing anyway, or the events' deadline passed: the buffered events go first
            // (they happened before what is in the queue now).
            let flush = flush_at.is_some_and(|at| Instant::now() >= at);
            if !batch.is_empty() || flush || !self.unwritten.is_empty() {
                flush_at = None;
                let mut jobs = self.pending_events();
                jobs.append(&mut batch);
                if self.process(jobs) {
                    return;
                }
            }
        }
    }

    /// The commit window: while disclosures come closer together than the window, a small
    /// batch holding one waits until the window since it started has passed, then takes what
    /// came meanwhile, to share one `fdatasync` (a flush costs ~50–65 µs of CPU here whatever
    /// it holds: BENCH.md). It sleeps rather than waking for each job, so senders do not wake
    /// it either. A lone disclosure (the batch before came longer ago) and a batch already
    /// [`WINDOW_BELOW`] long are written at once, and so is a batch after waits that gathered
    /// nothing.
    fn gather(&mut self, queue: &mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
        if self.window.is_zero() || !batch.iter().any(|job| matches!(job, Job::Disclose(..))) {
            return;
        }
        let started = Instant::now();
        let close = self
            .last_batch
            .replace(started)
            .is_some_and(|last| started.duration_since(last) < 2 * self.window);
        if !close || batch.len() >= WINDOW_BELOW {
            return;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        std::thread::sleep(self.window);
        let before = batch.len();
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A wait that gathered nothing (clients that send their next request only after this
        // answer: nobody else is coming) makes the next ones skip it, for twice as many batches
        // each time, up to 64; a wait that gathered something keeps it on.
        if batch[before..]
            .iter()
            .any(|job| matches!(job, Job::Disclose(..)))
        {
            self.backoff = 0;
        } else {
            self.backoff = (self.backoff * 2).clamp(1, 64);
            self.skip = self.backoff;
        }
    }

    /// The buffered security events, as jobs in the order they happened.
    fn pending_events(&self) -> Vec<Job> {
        self.pending
            .take()
            .into_iter()
            .map(|(kind, detail)| Job::Event(kind, detail))
            .collect()
    }

    /// Commits one batch and answers its waiters; control jobs go to the indexer behind the
    /// batch's rows. Returns true when asked to shut down.
    fn process(&mut self, batch: Vec<Job>) -> bool {
        let mut records = Vec::with_capacity(batch.len());
        let mut control = Vec::new();
        let mut shutdown = None;
        for job in batch {
            match job {
                Job::Disclose(..) | Job::Event(..) => records.push(job),
                Job::Prune(cutoff, done) => control.push(Control::Prune(cutoff, done)),
                Job::Checkpoint(done) => control.push(Control::Checkpoint(done)),
                Job::Shutdown(done) => shutdown = Some(done),
                Job::EventsPending => {}
            }
        }
        self.commit(records);
        for job in control {
            self.handoff.control(job);
        }
        match shutdown {
            Some(done) => {
                self.stop_indexer();
                let _ = done.send(());
                true
            }
            None => false,
        }
    }

    /// Indexes everything, writes the final checkpoint and waits for the indexer to stop.
    fn stop_indexer(&mut self) {
        self.handoff.stop();
        if let Some(indexer) = self.indexer.take() {
            let _ = indexer.join();
        }
    }

    fn commit(&mut self, records: Vec<Job>) {
        self.stats.taken(&records);
        if records.is_empty() && self.unwritten.is_empty() {
            return;
        }
        // The disk is not keeping up (appends failing, or the index far behind): refuse new
        // records rather than hold them without bound. While the index cannot be written,
        // refuse disclosures (what is not indexed cannot be answered for); events still go
        // to the journal.
        let refuse = self.unwritten.len() >= QUEUE_DEPTH
            || self.handoff.backlog() >= crate::index::MAX_UNINDEXED;
        let index_failing = self.handoff.failing();
        let mut rows = Vec::with_capacity(records.len());
        let mut acks = Vec::with_capacity(records.len());
        let now = now_ms();
        for job in records {
            match job {
                Job::Disclose(disclosure, done) => {
                    if refuse {
                        let _ = done.send(Err(AuditError::QueueFull));
                        continue;
                    }
                    if index_failing {
                        let _ = done.send(Err(AuditError::IndexFailing));
                        continue;
                    }
                    let head = &mut self.disclosures;
                    let ts = head.next_ts(now);
                    let row = DisclosureRow::new(head.next_id, ts, &disclosure, &head.last_hash);
                    head.advance(&row.hash, ts);
                    rows.push(Row::Disclosure(row));
                    acks.push(done);
                }
                Job::Event(kind, detail) if !refuse => {
                    let head = &mut self.events;
                    let ts = head.next_ts(now);
                    let row = EventRow::new(head.next_id, ts, kind, detail, &head.last_hash);
                    head.advance(&row.hash, ts);
                    rows.push(Row::Event(row));
                }
                Job::Event(..) => {
                    self.dropped_events.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        // The rows are chained from here on, written or not: a failed append is written again.
        let started = Instant::now();
        match self.journal.append(&rows) {
            Ok(()) => {
                self.stats.commit.observe(started.elapsed());
                for done in acks {
                    let _ = done.send(Ok(()));
                }
                let mut handed = std::mem::take(&mut self.unwritten);
                handed.append(&mut rows);
                self.handoff.rows(handed, self.journal.last_seq());
                self.journal.maybe_switch(self.handoff.indexed());
            }
            Err(error) => {
                static FAILED: crate::LogLimit = crate::LogLimit::new();
                FAILED.run(|| {
                    tracing::warn!(%error, "audit journal write failed; disclosures withheld until it works");
                });
                for done in acks {
                    let _ = done.send(Err(AuditError::Commit(error.to_string())));
                }
                self.unwritten.append(&mut rows);
            }
        }
    }
}
