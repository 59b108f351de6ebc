//! The durable writer: one thread owns the database connection, folds every queued record into
//! one transaction and one fsync (group commit), chains each record to the one before, and
//! answers each waiting request only after its record is on disk.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use headwall_identity::SigningKey;
use rusqlite::{Connection, OptionalExtension as _, Transaction, params};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

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
/// BENCH.md), and the step shares its transaction with the disclosures queued behind it.
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
}

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
    dropped_events: AtomicU64,
    commits: Arc<AtomicU64>,
    enrichment_off: Arc<AtomicBool>,
    worker: Mutex<Option<Worker>>,
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
    pub(crate) commits: Arc<AtomicU64>,
    pub(crate) enrichment_off: Arc<AtomicBool>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

/// The file beside the database that holds the signed checkpoints (`audit.db` ->
/// `audit.checkpoints`).
pub fn checkpoint_path(database: &Path) -> PathBuf {
    database.with_extension("checkpoints")
}

impl AuditLog {
    /// Opens (creating when missing) the embedded SQLite log at `path` and starts the writer
    /// thread.
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
        let disclosures =
            Head::load(&connection, Chain::Disclosures).map_err(|e| open_error(&e))?;
        let events = Head::load(&connection, Chain::Events).map_err(|e| open_error(&e))?;
        let enrichment_off = last_switched_off(&connection).map_err(|e| open_error(&e))?;
        tracing::info!(
            path = %path.display(),
            disclosures = disclosures.next_id - 1 - disclosures.removed_through,
            "audit log opened"
        );
        let commits = Arc::new(AtomicU64::new(0));
        let pending = Arc::new(PendingEvents::default());
        let writer = Writer {
            commits: commits.clone(),
            pending: pending.clone(),
            connection,
            disclosures,
            events,
            checkpoints: checkpoint_path(path),
            signing_key: options.signing_key,
            checkpointed: None,
        };
        let (queue, receiver) = mpsc::sync_channel(QUEUE_DEPTH);
        let every = options.checkpoint_every;
        let thread = std::thread::Builder::new()
            .name("headwall-audit-writer".into())
            .spawn(move || writer.run(&receiver, every))
            .map_err(|e| open_error(&e))?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                queue: Queue::Sqlite(queue),
                pending,
                dropped_events: AtomicU64::new(0),
                commits,
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
    /// each other's commits fail). See the crate documentation, "PostgreSQL".
    pub async fn open_postgres(
        url: &str,
        node: &str,
        options: AuditOptions,
    ) -> Result<AuditLog, AuditError> {
        let started = crate::postgres::writer::start(url, node, options).await?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                queue: Queue::Postgres(started.queue),
                pending: Arc::new(PendingEvents::default()),
                dropped_events: AtomicU64::new(0),
                commits: started.commits,
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
        if !queued {
            self.inner.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Security events dropped because the queue was full or the writer had stopped.
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
        self.inner.commits.load(Ordering::Relaxed)
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

#[derive(Clone, Copy)]
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
    fn load(connection: &Connection, chain: Chain) -> rusqlite::Result<Head> {
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

struct Writer {
    commits: Arc<AtomicU64>,
    pending: Arc<PendingEvents>,
    connection: Connection,
    disclosures: Head,
    events: Head,
    checkpoints: PathBuf,
    signing_key: SigningKey,
    /// The chain ends of the last checkpoint written by this process.
    checkpointed: Option<(i64, i64)>,
}

type Acks = Vec<Ack>;

enum Ack {
    Disclosed(oneshot::Sender<Result<(), AuditError>>),
    Pruned(oneshot::Sender<Result<u64, AuditError>>, u64),
}

impl Writer {
    fn run(mut self, queue: &mpsc::Receiver<Job>, every: Duration) {
        let mut next_checkpoint = Instant::now() + every;
        // When the buffered events must be committed at the latest (None: none are waiting).
        let mut flush_at: Option<Instant> = None;
        loop {
            let wake = flush_at.map_or(next_checkpoint, |at| at.min(next_checkpoint));
            let mut batch = Vec::new();
            match queue.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(job) => batch.push(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.process(self.pending_events());
                    self.write_checkpoint();
                    return;
                }
            }
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch.retain(|job| {
                if matches!(job, Job::EventsPending) {
                    flush_at.get_or_insert_with(|| Instant::now() + FLUSH_AFTER);
                    return false;
                }
                true
            });
            // Committing anyway, or the events' deadline passed: the buffered events go first
            // (they happened before what is in the queue now).
            if !batch.is_empty() || flush_at.is_some_and(|at| Instant::now() >= at) {
                flush_at = None;
                let mut jobs = self.pending_events();
                jobs.append(&mut batch);
                if self.process(jobs) {
                    return;
                }
            }
            // Every `every` while records arrive, busy or not.
            if Instant::now() >= next_checkpoint {
                self.write_checkpoint();
                next_checkpoint = Instant::now() + every;
            }
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

    /// Commits one batch and answers its waiters. Returns true when asked to shut down.
    fn process(&mut self, batch: Vec<Job>) -> bool {
        let mut control = Vec::new();
        let mut records = Vec::with_capacity(batch.len());
        for job in batch {
            match job {
                Job::Checkpoint(done) => control.push((false, done)),
                Job::Shutdown(done) => control.push((true, done)),
                Job::EventsPending => {}
                other => records.push(other),
            }
        }
        if !records.is_empty() {
            self.commit(records);
        }
        let mut shutdown = false;
        for (stop, done) in control {
            self.write_checkpoint();
            let _ = done.send(());
            shutdown |= stop;
        }
        shutdown
    }

    fn commit(&mut self, records: Vec<Job>) {
        let mut disclosures = self.disclosures.clone();
        let mut events = self.events.clone();
        let mut acks: Acks = Vec::with_capacity(records.len());
        let mut summary = crate::summary::Pending::default();
        let result = (|| -> rusqlite::Result<()> {
            let transaction = self.connection.transaction()?;
            let now = now_ms();
            for job in records {
                match job {
                    Job::Disclose(disclosure, done) => {
                        // Registered before the insert, so a failure answers this waiter too.
                        acks.push(Ack::Disclosed(done));
                        let ts = disclosures.next_ts(now);
                        let row = DisclosureRow::new(
                            disclosures.next_id,
                            ts,
                            &disclosure,
                            &disclosures.last_hash,
                        );
                        insert_disclosure(&transaction, &row)?;
                        crate::summary::record(&mut summary, &row);
                        disclosures.next_id += 1;
                        disclosures.last_hash = row.hash;
                        disclosures.last_ts = ts;
                    }
                    Job::Event(kind, detail) => {
                        let ts = events.next_ts(now);
                        let row =
                            EventRow::new(events.next_id, ts, kind, detail, &events.last_hash);
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
                        events.next_id += 1;
                        events.last_hash = row.hash;
                        events.last_ts = ts;
                    }
                    Job::Prune(cutoff, done) => {
                        acks.push(Ack::Pruned(done, 0));
                        let removed =
                            prune(
                                &transaction,
                                Chain::Disclosures,
                                &mut disclosures,
                                cutoff,
                                Some(&mut summary),
                            )? + prune(&transaction, Chain::Events, &mut events, cutoff, None)?;
                        if let Some(Ack::Pruned(_, count)) = acks.last_mut() {
                            *count = removed;
                        }
                    }
                    Job::Checkpoint(_) | Job::Shutdown(_) | Job::EventsPending => {}
                }
            }
            crate::summary::finish(
                &transaction,
                &mut summary,
                disclosures.next_id - 1,
                disclosures.removed_through,
            )?;
            transaction.commit()
        })();
        match result {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.disclosures = disclosures;
                self.events = events;
                for ack in acks {
                    match ack {
                        Ack::Disclosed(done) => {
                            let _ = done.send(Ok(()));
                        }
                        Ack::Pruned(done, removed) => {
                            let _ = done.send(Ok(removed));
                        }
                    }
                }
            }
            Err(error) => {
                // SQLite errors name tables and constraints, never row content.
                tracing::warn!(%error, records = acks.len(), "audit commit failed; records not written");
                for ack in acks {
                    match ack {
                        Ack::Disclosed(done) => {
                            let _ = done.send(Err(AuditError::Commit(error.to_string())));
                        }
                        Ack::Pruned(done, _) => {
                            let _ = done.send(Err(AuditError::Commit(error.to_string())));
                        }
                    }
                }
            }
        }
    }

    /// Appends a signed checkpoint when either chain moved since the last one, and fsyncs it.
    fn write_checkpoint(&mut self) {
        let ends = (self.disclosures.next_id, self.events.next_id);
        if self.checkpointed == Some(ends) || (ends == (1, 1)) {
            return;
        }
        let checkpoint = Checkpoint {
            ts: now_ms(),
            disclosures: ChainEnd::of(&self.disclosures),
            security_events: ChainEnd::of(&self.events),
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

fn insert_disclosure(transaction: &Transaction<'_>, row: &DisclosureRow) -> rusqlite::Result<()> {
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

/// Removes the oldest contiguous run of records written before `cutoff` (at most
/// [`PRUNE_STEP`]) and moves the chain's anchor to the last removed record. `summary`: the
/// batch's exposure summary, which the removed disclosures are subtracted from.
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
    // A step that also updates the exposure summary is kept smaller: it runs inside a
    // disclosure batch's transaction.
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
