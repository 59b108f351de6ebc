//! `headwall audit verify` against PostgreSQL: every node's two chains from their anchors, and
//! that each reaches the node's latest signed checkpoint, all in one snapshot.

use deadpool_postgres::Transaction;
use headwall_policy::StoreTls;
use tokio_postgres::IsolationLevel;

use super::query::{COLUMNS, disclosure_row};
use super::writer::NodeCheckpoint;
use super::{describe, describe_pool};
use crate::record::{EventRow, GENESIS_HASH};
use crate::verify::{
    ChainWalk, NodeReport, Reach, VerifyFailure, VerifyReport, Walked, reach, reach_compare,
    signed_checkpoint,
};
use crate::writer::{Chain, ChainEnd, Checkpoint};

/// Rows fetched per round trip while walking a chain.
const FETCH: i32 = 10_000;

/// Checks the PostgreSQL log at `url`: for every node (every name in any of the tables), both
/// chains and the latest checkpoint's signature with `public_key`. Runs in one read-only
/// repeatable-read transaction, so gateways may keep writing. `Err` is a log that cannot be
/// read at all; `Ok(Err(..))` names the first bad record: node, table and id.
pub async fn verify_postgres(
    url: &str,
    tls: &StoreTls,
    public_key: &[u8; 32],
) -> Result<Result<VerifyReport, VerifyFailure>, String> {
    let target = super::Target::parse(url, tls)
        .map_err(|reason| format!("[audit].url: {}", crate::Causes(&reason)))?;
    let fail = |reason: String| format!("{}: {reason}", target.shown);
    let pool = target
        .pool(1, None)
        .map_err(|error| fail(crate::Causes(&error).to_string()))?;
    let mut client = pool
        .get()
        .await
        .map_err(|error| fail(describe_pool(&error)))?;
    let read_error = |error: tokio_postgres::Error| fail(describe(&error));
    match super::migrate::schema_version(&client).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(fail(
                "no headwall audit schema in this database (check [audit].url)".into(),
            ));
        }
        Err(error) => return Err(read_error(error)),
    }
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(read_error)?;
    let nodes = super::nodes(transaction.client())
        .await
        .map_err(read_error)?;
    let mut report = VerifyReport {
        disclosures: 0,
        security_events: 0,
        checkpoint: None,
        nodes: Vec::new(),
    };
    for node in nodes {
        let node_report = match verify_node(&transaction, &node, public_key).await {
            Ok(Ok(node_report)) => node_report,
            Ok(Err(failure)) => return Ok(Err(failure)),
            Err(reason) => return Err(fail(reason)),
        };
        report.disclosures += node_report.disclosures;
        report.security_events += node_report.security_events;
        report.nodes.push(node_report);
    }
    transaction.commit().await.map_err(read_error)?;
    Ok(Ok(report))
}

async fn verify_node(
    transaction: &Transaction<'_>,
    node: &str,
    public_key: &[u8; 32],
) -> Result<Result<NodeReport, VerifyFailure>, String> {
    let disclosures = match walk(transaction, node, Chain::Disclosures).await? {
        Ok(walked) => walked,
        Err(failure) => return Ok(Err(failure)),
    };
    let events = match walk(transaction, node, Chain::Events).await? {
        Ok(walked) => walked,
        Err(failure) => return Ok(Err(failure)),
    };
    let checkpoint = match latest_checkpoint(transaction, node, public_key).await? {
        Ok(checkpoint) => checkpoint,
        Err(failure) => return Ok(Err(failure)),
    };
    if let Some(checkpoint) = &checkpoint {
        for (walked, end, chain) in [
            (&disclosures, &checkpoint.disclosures, Chain::Disclosures),
            (&events, &checkpoint.security_events, Chain::Events),
        ] {
            if let Err(failure) = reaches(transaction, node, chain, walked, end).await? {
                return Ok(Err(failure));
            }
        }
    }
    Ok(Ok(NodeReport {
        node: node.to_owned(),
        disclosures: disclosures.rows,
        security_events: events.rows,
        checkpoint,
    }))
}

/// Walks `node`'s `chain` from its anchor, a few thousand rows per round trip.
async fn walk(
    transaction: &Transaction<'_>,
    node: &str,
    chain: Chain,
) -> Result<Result<Walked, VerifyFailure>, String> {
    let table = chain.table();
    let read_error = |error: tokio_postgres::Error| describe(&error);
    let anchor: Option<(i64, String)> = transaction
        .query_opt(
            "SELECT removed_through, hash FROM chain_anchor WHERE node = $1 AND chain = $2",
            &[&node, &table],
        )
        .await
        .map_err(read_error)?
        .map(|row| Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get(1)?)))
        .transpose()
        .map_err(read_error)?;
    let (removed_through, anchor_hash) = anchor.unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));
    let columns = match chain {
        Chain::Disclosures => COLUMNS,
        Chain::Events => "node, id, ts, kind, detail, prev_hash, hash",
    };
    let statement = transaction
        .prepare(&format!(
            "SELECT {columns} FROM {table} WHERE node = $1 ORDER BY id"
        ))
        .await
        .map_err(read_error)?;
    let portal = transaction
        .bind(&statement, &[&node])
        .await
        .map_err(read_error)?;
    let mut walk = ChainWalk::new(Some(node), table, removed_through, anchor_hash);
    loop {
        let rows = transaction
            .query_portal(&portal, FETCH)
            .await
            .map_err(read_error)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let step = match chain {
                Chain::Disclosures => {
                    let (_, record) = disclosure_row(row)?;
                    let computed = record.computed_hash_on(node);
                    walk.step(record.id, &record.prev_hash, &record.hash, &computed)
                }
                Chain::Events => {
                    let record = EventRow {
                        id: row.try_get(1).map_err(read_error)?,
                        ts: row.try_get(2).map_err(read_error)?,
                        kind: row.try_get(3).map_err(read_error)?,
                        detail: row.try_get(4).map_err(read_error)?,
                        prev_hash: row.try_get(5).map_err(read_error)?,
                        hash: row.try_get(6).map_err(read_error)?,
                    };
                    let computed = record.computed_hash_on(node);
                    walk.step(record.id, &record.prev_hash, &record.hash, &computed)
                }
            };
            if let Err(failure) = step {
                return Ok(Err(failure));
            }
        }
    }
    Ok(Ok(walk.finish()))
}

/// `node`'s newest checkpoint row, its signature checked and its body naming `node`. `None`
/// before the node's first.
async fn latest_checkpoint(
    transaction: &Transaction<'_>,
    node: &str,
    public_key: &[u8; 32],
) -> Result<Result<Option<Checkpoint>, VerifyFailure>, String> {
    let read_error = |error: tokio_postgres::Error| describe(&error);
    let row = transaction
        .query_opt(
            "SELECT seq, body, signature FROM checkpoints WHERE node = $1
             ORDER BY seq DESC LIMIT 1",
            &[&node],
        )
        .await
        .map_err(read_error)?;
    let Some(row) = row else {
        return Ok(Ok(None));
    };
    let seq: i64 = row.try_get(0).map_err(read_error)?;
    let body: String = row.try_get(1).map_err(read_error)?;
    let signature: String = row.try_get(2).map_err(read_error)?;
    let fail = |reason: String| {
        Ok(Err(VerifyFailure {
            node: Some(node.to_owned()),
            table: "checkpoints",
            id: seq,
            reason,
        }))
    };
    let signed: NodeCheckpoint = match signed_checkpoint(&body, &signature, public_key) {
        Ok(signed) => signed,
        Err(reason) => return fail(reason),
    };
    if signed.node != node {
        return fail(format!(
            "the signed checkpoint is node {}'s, not this node's: the row was moved",
            signed.node
        ));
    }
    Ok(Ok(Some(signed.checkpoint)))
}

async fn reaches(
    transaction: &Transaction<'_>,
    node: &str,
    chain: Chain,
    walked: &Walked,
    end: &ChainEnd,
) -> Result<Result<(), VerifyFailure>, String> {
    let id = match reach(walked, end) {
        Ok(Reach::Reached) => return Ok(Ok(())),
        Ok(Reach::Compare(id)) => id,
        Err(failure) => return Ok(Err(failure)),
    };
    let read_error = |error: tokio_postgres::Error| describe(&error);
    let hash: Option<String> = transaction
        .query_opt(
            &format!(
                "SELECT hash FROM {} WHERE node = $1 AND id = $2",
                chain.table()
            ),
            &[&node, &id],
        )
        .await
        .map_err(read_error)?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(read_error)?;
    Ok(reach_compare(walked, end, hash.as_deref()))
}
