//! One node's writer task: folds every queued record into one transaction (group commit),
//! chains it to the node's own chain head, answers each waiting request after `COMMIT`
//! returned, and writes signed checkpoints into `checkpoints`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use headwall_identity::SigningKey;
use headwall_policy::StoreTls;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::{describe, describe_pool};
use crate::record::{DisclosureRow, EventRow, GENESIS_HASH};
use crate::time::now_ms;
use crate::writer::{
    AuditError, AuditOptions, Chain, ChainEnd, Checkpoint, Head, Job, MAX_BATCH, PRUNE_STEP,
    QUEUE_DEPTH, Started, WriterStats, sign_checkpoint,
};

/// A batch transaction (or one retention step) without an answer for this long is abandoned
/// and its connection closed, so a database that stopped answering cannot hold the writer.
/// Its waiters failed closed at [`crate::WRITE_DEADLINE`] already.
const TRANSACTION_DEADLINE: Duration = Duration::from_secs(10);

/// The writer needs one connection at a time; the second serves the open-time checks.
const POOL_SIZE: usize = 2;

/// A checkpoint row's signed body: the embedded log's checkpoint plus the node it is about,
/// so a checkpoint cannot be passed off as another node's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeCheckpoint {
    pub(crate) node: String,
    #[serde(flatten)]
    pub(crate) checkpoint: Checkpoint,
}

/// Connects, migrates, loads this node's chain heads and the fleet's kill-switch state, and
/// spawns the writer task.
pub(crate) async fn start(
    url: &str,
    tls: &StoreTls,
    node: &str,
    options: AuditOptions,
) -> Result<Started, AuditError> {
    if !super::valid_node(node) {
        return Err(AuditError::InvalidNode(node.to_owned()));
    }
    let target = super::Target::parse(url, tls).map_err(|error| AuditError::Connect {
        target: "[audit].url".into(),
        reason: crate::Causes(&error).to_string(),
    })?;
    let connect_error = |reason: String| AuditError::Connect {
        target: target.shown.clone(),
        reason,
    };
    let pool = target
        .pool(POOL_SIZE, Some(TRANSACTION_DEADLINE))
        .map_err(|error| connect_error(crate::Causes(&error).to_string()))?;
    let mut client = pool
        .get()
        .await
        .map_err(|error| connect_error(describe_pool(&error)))?;
    let db_error = |error: tokio_postgres::Error| connect_error(describe(&error));
    super::migrate::migrate(&mut client)
        .await
        .map_err(db_error)?;
    let synchronous_commit: String = client
        .query_one("SHOW synchronous_commit", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db_error)?;
    let force_sync = synchronous_commit == "off";
    if force_sync {
        tracing::warn!(
            target = %target.shown,
            "synchronous_commit is off on the audit database; the audit writer turns it on \
             for its own transactions (no audit, no disclosure)"
        );
    }
    let disclosures = load_head(&client, node, Chain::Disclosures)
        .await
        .map_err(db_error)?;
    let events = load_head(&client, node, Chain::Events)
        .await
        .map_err(db_error)?;
    let enrichment_off = super::fleet_switched_off(&client).await.map_err(db_error)?;
    drop(client);
    tracing::info!(
        target = %target.shown,
        node,
        disclosures = disclosures.next_id - 1 - disclosures.removed_through,
        "audit log opened (PostgreSQL)"
    );
    let stats = Arc::new(WriterStats::default());
    let enrichment_off = Arc::new(AtomicBool::new(enrichment_off));
    let writer = PgWriter {
        pool,
        node: node.to_owned(),
        stats: stats.clone(),
        enrichment_off: enrichment_off.clone(),
        disclosures,
        events,
        stale: false,
        force_sync,
        signing_key: options.signing_key,
        checkpointed: None,
    };
    let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
    let task = tokio::spawn(writer.run(receiver, options.checkpoint_every));
    Ok(Started {
        queue,
        stats,
        enrichment_off,
        task,
    })
}

struct PgWriter {
    pool: Pool,
    node: String,
    stats: Arc<WriterStats>,
    enrichment_off: Arc<AtomicBool>,
    disclosures: Head,
    events: Head,
    /// The heads may be behind the database: a commit failed (perhaps after the server
    /// committed it), or another process writes under this node's name. Reloaded before the
    /// next batch.
    stale: bool,
    /// The server's `synchronous_commit` is off: each transaction turns it on.
    force_sync: bool,
    signing_key: SigningKey,
    /// The chain ends of the last checkpoint written by this process.
    checkpointed: Option<(i64, i64)>,
}

impl PgWriter {
    async fn run(mut self, mut queue: mpsc::Receiver<Job>, every: Duration) {
        // An interval of zero would panic.
        let every = every.max(Duration::from_millis(1));
        let mut checkpoints = tokio::time::interval_at(Instant::now() + every, every);
        checkpoints.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut refresh = tokio::time::interval_at(
            Instant::now() + super::KILL_SWITCH_REFRESH,
            super::KILL_SWITCH_REFRESH,
        );
        refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                job = queue.recv() => {
                    let Some(first) = job else {
                        // Every handle was dropped without close().
                        self.write_checkpoint().await;
                        return;
                    };
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    if self.process(batch).await {
                        return;
                    }
                }
                _ = checkpoints.tick() => self.write_checkpoint().await,
                _ = refresh.tick() => self.refresh_kill_switch().await,
            }
        }
    }

    /// Commits one batch, runs its retention steps and control jobs. Returns true when asked
    /// to shut down.
    async fn process(&mut self, batch: Vec<Job>) -> bool {
        let mut control = Vec::new();
        let mut prunes = Vec::new();
        let mut records = Vec::with_capacity(batch.len());
        for job in batch {
            match job {
                Job::Checkpoint(done) => control.push((false, done)),
                Job::Shutdown(done) => control.push((true, done)),
                Job::Prune(cutoff, done) => prunes.push((cutoff, done)),
                record => records.push(record),
            }
        }
        if !records.is_empty() {
            self.commit(records).await;
        }
        for (cutoff, done) in prunes {
            let _ = done.send(self.prune(cutoff).await);
        }
        let mut shutdown = false;
        for (stop, done) in control {
            self.write_checkpoint().await;
            let _ = done.send(());
            shutdown |= stop;
        }
        shutdown
    }

    /// A connection from the pool with fresh chain heads.
    async fn connection(&mut self) -> Result<Object, String> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|error| describe_pool(&error))?;
        if self.stale {
            let disclosures = load_head(&client, &self.node, Chain::Disclosures).await;
            let events = load_head(&client, &self.node, Chain::Events).await;
            match (disclosures, events) {
                (Ok(disclosures), Ok(events)) => {
                    self.disclosures = disclosures;
                    self.events = events;
                    self.stale = false;
                }
                (Err(error), _) | (_, Err(error)) => return Err(describe(&error)),
            }
        }
        Ok(client)
    }

    async fn commit(&mut self, records: Vec<Job>) {
        self.stats.taken(&records);
        // The disclosures' waiters, answered after the commit.
        let mut waiters: Vec<oneshot::Sender<Result<(), AuditError>>> =
            Vec::with_capacity(records.len());
        let mut client = match self.connection().await {
            Ok(client) => client,
            Err(reason) => {
                for job in records {
                    if let Job::Disclose(_, done) = job {
                        let _ = done.send(Err(AuditError::Commit(reason.clone())));
                    }
                }
                tracing::warn!(error = %reason, "audit commit failed; records not written");
                return;
            }
        };
        let mut disclosures = self.disclosures.clone();
        let mut events = self.events.clone();
        let mut disclosure_rows = Vec::new();
        let mut event_rows = Vec::new();
        let now = now_ms();
        for job in records {
            match job {
                Job::Disclose(disclosure, done) => {
                    waiters.push(done);
                    let ts = disclosures.next_ts(now);
                    let row = DisclosureRow::new_on(
                        &self.node,
                        disclosures.next_id,
                        ts,
                        &disclosure,
                        &disclosures.last_hash,
                    );
                    disclosures.next_id += 1;
                    disclosures.last_hash.clone_from(&row.hash);
                    disclosures.last_ts = ts;
                    disclosure_rows.push(row);
                }
                Job::Event(kind, detail) => {
                    let ts = events.next_ts(now);
                    let row = EventRow::new_on(
                        &self.node,
                        events.next_id,
                        ts,
                        kind,
                        detail,
                        &events.last_hash,
                    );
                    events.next_id += 1;
                    events.last_hash.clone_from(&row.hash);
                    events.last_ts = ts;
                    event_rows.push(row);
                }
                Job::Prune(..) | Job::Checkpoint(_) | Job::Shutdown(_) | Job::EventsPending => {}
            }
        }
        let records = waiters.len() + event_rows.len();
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            TRANSACTION_DEADLINE,
            insert(
                &mut client,
                &self.node,
                self.force_sync,
                &disclosure_rows,
                &event_rows,
            ),
        )
        .await;
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(describe(&error)),
            Err(_) => {
                // The connection is in an unknown state: close it rather than reuse it.
                drop(Object::take(client));
                Some(format!(
                    "no answer from the database within {TRANSACTION_DEADLINE:?}"
                ))
            }
        };
        match failure {
            None => {
                self.stats.commit.observe(started.elapsed());
                self.disclosures = disclosures;
                self.events = events;
                for done in waiters {
                    let _ = done.send(Ok(()));
                }
            }
            Some(reason) => {
                // The server may have committed before the connection failed; a duplicate id
                // means another process writes as this node. Either way, re-read the heads.
                self.stale = true;
                tracing::warn!(error = %reason, records, "audit commit failed; records not written");
                for done in waiters {
                    let _ = done.send(Err(AuditError::Commit(reason.clone())));
                }
            }
        }
    }

    /// One retention step over every node's chains (see [`crate::AuditLog::prune`]).
    async fn prune(&mut self, cutoff: i64) -> Result<u64, AuditError> {
        let mut client = self.connection().await.map_err(AuditError::Commit)?;
        let nodes = super::nodes(&client)
            .await
            .map_err(|error| AuditError::Commit(describe(&error)))?;
        let mut removed = 0;
        for node in &nodes {
            for chain in [Chain::Disclosures, Chain::Events] {
                let step = tokio::time::timeout(
                    TRANSACTION_DEADLINE,
                    prune_chain(&mut client, node, chain, cutoff),
                )
                .await;
                let (count, through) = match step {
                    Ok(Ok(step)) => step,
                    Ok(Err(error)) => {
                        let reason = describe(&error);
                        tracing::warn!(error = %reason, node, chain = chain.table(), "audit retention step failed");
                        return Err(AuditError::Commit(reason));
                    }
                    Err(_) => {
                        drop(Object::take(client));
                        return Err(AuditError::Commit(format!(
                            "no answer from the database within {TRANSACTION_DEADLINE:?}"
                        )));
                    }
                };
                removed += count;
                if *node == self.node
                    && let Some(through) = through
                {
                    match chain {
                        Chain::Disclosures => self.disclosures.removed_through = through,
                        Chain::Events => self.events.removed_through = through,
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Inserts a signed checkpoint row when either of this node's chains moved since the last.
    async fn write_checkpoint(&mut self) {
        let ends = (self.disclosures.next_id, self.events.next_id);
        if !self.stale && (self.checkpointed == Some(ends) || ends == (1, 1)) {
            return;
        }
        let client = match self.connection().await {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(%error, "cannot write the audit checkpoint");
                return;
            }
        };
        let ends = (self.disclosures.next_id, self.events.next_id);
        if self.checkpointed == Some(ends) || ends == (1, 1) {
            return;
        }
        // Another node's retention may have moved this node's anchors: count rows from the
        // stored ones.
        for chain in [Chain::Disclosures, Chain::Events] {
            if let Ok(Some(removed_through)) = anchor(&client, &self.node, chain).await {
                match chain {
                    Chain::Disclosures => self.disclosures.removed_through = removed_through,
                    Chain::Events => self.events.removed_through = removed_through,
                }
            }
        }
        let body = NodeCheckpoint {
            node: self.node.clone(),
            checkpoint: Checkpoint {
                ts: now_ms(),
                disclosures: ChainEnd::of(&self.disclosures),
                security_events: ChainEnd::of(&self.events),
            },
        };
        // A struct of integers and strings always serializes.
        let text = serde_json::to_string(&body).unwrap_or_default();
        let signature = sign_checkpoint(&text, &self.signing_key);
        let written = client
            .execute(
                "INSERT INTO checkpoints (node, ts, body, signature, key_id)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &self.node,
                    &body.checkpoint.ts,
                    &text,
                    &signature,
                    &self.signing_key.key_id(),
                ],
            )
            .await;
        match written {
            Ok(_) => self.checkpointed = Some(ends),
            Err(error) => {
                tracing::warn!(error = %describe(&error), "cannot write the audit checkpoint");
            }
        }
    }

    /// Re-reads the fleet's kill-switch state; keeps the last known one when the database
    /// cannot answer (disclosures fail closed then anyway).
    async fn refresh_kill_switch(&mut self) {
        let client = match self.pool.get().await {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!(error = %describe_pool(&error), "cannot read the fleet kill switch");
                return;
            }
        };
        match super::fleet_switched_off(&client).await {
            Ok(off) => {
                let before = self.enrichment_off.swap(off, Ordering::Relaxed);
                if before != off {
                    tracing::info!(
                        enrichment_off = off,
                        "the fleet's kill switch changed (audit security_events)"
                    );
                }
            }
            Err(error) => {
                tracing::debug!(error = %describe(&error), "cannot read the fleet kill switch");
            }
        }
    }
}

/// One transaction: both chains' new rows, each table in one statement.
async fn insert(
    client: &mut Object,
    node: &str,
    force_sync: bool,
    disclosures: &[DisclosureRow],
    events: &[EventRow],
) -> Result<(), tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    if force_sync {
        transaction
            .batch_execute("SET LOCAL synchronous_commit = on")
            .await?;
    }
    if !disclosures.is_empty() {
        let statement = transaction
            .prepare_cached(
                "INSERT INTO disclosures (node, id, ts, request_id, partner, purpose, msisdn,
                   kinds, headers, host, port, upstream_ip, client_ip, policy_hash, prev_hash,
                   hash)
                 SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[],
                   $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::INTEGER[],
                   $12::TEXT[], $13::TEXT[], $14::TEXT[], $15::TEXT[], $16::TEXT[])",
            )
            .await?;
        let column = |field: fn(&DisclosureRow) -> &String| -> Vec<&str> {
            disclosures.iter().map(|row| field(row).as_str()).collect()
        };
        let ids: Vec<i64> = disclosures.iter().map(|row| row.id).collect();
        let times: Vec<i64> = disclosures.iter().map(|row| row.ts).collect();
        let ports: Vec<i32> = disclosures.iter().map(|row| i32::from(row.port)).collect();
        transaction
            .execute(
                &statement,
                &[
                    &node,
                    &ids,
                    &times,
                    &column(|row| &row.request_id),
                    &column(|row| &row.partner),
                    &column(|row| &row.purpose),
                    &column(|row| &row.msisdn),
                    &column(|row| &row.kinds),
                    &column(|row| &row.headers),
                    &column(|row| &row.host),
                    &ports,
                    &column(|row| &row.upstream_ip),
                    &column(|row| &row.client_ip),
                    &column(|row| &row.policy_hash),
                    &column(|row| &row.prev_hash),
                    &column(|row| &row.hash),
                ],
            )
            .await?;
    }
    if !events.is_empty() {
        let statement = transaction
            .prepare_cached(
                "INSERT INTO security_events (node, id, ts, kind, detail, prev_hash, hash)
                 SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[],
                   $6::TEXT[], $7::TEXT[])",
            )
            .await?;
        let column = |field: fn(&EventRow) -> &String| -> Vec<&str> {
            events.iter().map(|row| field(row).as_str()).collect()
        };
        let ids: Vec<i64> = events.iter().map(|row| row.id).collect();
        let times: Vec<i64> = events.iter().map(|row| row.ts).collect();
        transaction
            .execute(
                &statement,
                &[
                    &node,
                    &ids,
                    &times,
                    &column(|row| &row.kind),
                    &column(|row| &row.detail),
                    &column(|row| &row.prev_hash),
                    &column(|row| &row.hash),
                ],
            )
            .await?;
    }
    transaction.commit().await
}

/// The end of `node`'s `chain` as stored: what its next record links to.
async fn load_head(
    client: &tokio_postgres::Client,
    node: &str,
    chain: Chain,
) -> Result<Head, tokio_postgres::Error> {
    let anchor: Option<(i64, String)> = client
        .query_opt(
            "SELECT removed_through, hash FROM chain_anchor WHERE node = $1 AND chain = $2",
            &[&node, &chain.table()],
        )
        .await?
        .map(|row| Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get(1)?)))
        .transpose()?;
    let (removed_through, anchor_hash) = anchor.unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));
    let last: Option<(i64, String, i64)> = client
        .query_opt(
            &format!(
                "SELECT id, hash, ts FROM {} WHERE node = $1 ORDER BY id DESC LIMIT 1",
                chain.table()
            ),
            &[&node],
        )
        .await?
        .map(|row| {
            Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
        })
        .transpose()?;
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

async fn anchor(
    client: &tokio_postgres::Client,
    node: &str,
    chain: Chain,
) -> Result<Option<i64>, tokio_postgres::Error> {
    client
        .query_opt(
            "SELECT removed_through FROM chain_anchor WHERE node = $1 AND chain = $2",
            &[&node, &chain.table()],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()
}

/// Removes the oldest contiguous run of `node`'s `chain` written before `cutoff` (at most
/// [`PRUNE_STEP`] rows) and moves its anchor to the last removed record. Pruners of one chain
/// take turns on an advisory lock; the chain's writer is not held up (it only appends after
/// the removed range). Returns the rows removed and the new anchor.
async fn prune_chain(
    client: &mut Object,
    node: &str,
    chain: Chain,
    cutoff: i64,
) -> Result<(u64, Option<i64>), tokio_postgres::Error> {
    let table = chain.table();
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&format!("headwall-audit-prune/{node}/{table}")],
        )
        .await?;
    let removed_through: i64 = transaction
        .query_opt(
            "SELECT removed_through FROM chain_anchor WHERE node = $1 AND chain = $2",
            &[&node, &table],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?
        .unwrap_or(0);
    // Timestamps never decrease along a chain, so the records before `cutoff` are a prefix.
    let window_end = removed_through + PRUNE_STEP + 1;
    let first_kept: Option<i64> = transaction
        .query_opt(
            &format!(
                "SELECT id FROM {table} WHERE node = $1 AND id > $2 AND id < $3 AND ts >= $4
                 ORDER BY id LIMIT 1"
            ),
            &[&node, &removed_through, &window_end, &cutoff],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    let last_removed: Option<(i64, String)> = transaction
        .query_opt(
            &format!(
                "SELECT id, hash FROM {table} WHERE node = $1 AND id > $2 AND id < $3
                 ORDER BY id DESC LIMIT 1"
            ),
            &[&node, &removed_through, &first_kept.unwrap_or(window_end)],
        )
        .await?
        .map(|row| Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get(1)?)))
        .transpose()?;
    let Some((through, hash)) = last_removed else {
        return Ok((0, None));
    };
    let removed = transaction
        .execute(
            &format!("DELETE FROM {table} WHERE node = $1 AND id > $2 AND id <= $3"),
            &[&node, &removed_through, &through],
        )
        .await?;
    transaction
        .execute(
            "INSERT INTO chain_anchor (node, chain, removed_through, hash) VALUES ($1, $2, $3, $4)
             ON CONFLICT (node, chain) DO UPDATE SET removed_through = excluded.removed_through,
               hash = excluded.hash",
            &[&node, &table, &through, &hash],
        )
        .await?;
    transaction.commit().await?;
    Ok((removed, Some(through)))
}
