//! `headwall audit verify`: walks both hash chains from their anchors and checks that they
//! reach the latest signed checkpoint.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _};

use crate::record::{DisclosureRow, EventRow, GENESIS_HASH};
use crate::writer::{ChainEnd, Checkpoint, checkpoint_path};

/// An intact log: what was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Disclosure records checked (of every node, for PostgreSQL).
    pub disclosures: u64,
    /// Security events checked (of every node, for PostgreSQL).
    pub security_events: u64,
    /// The latest checkpoint the chains reach, when there is one. Always `None` for
    /// PostgreSQL, where each node has its own: see `nodes`.
    pub checkpoint: Option<Checkpoint>,
    /// PostgreSQL: each node's chains, in byte order of the names. Empty for the embedded log.
    pub nodes: Vec<NodeReport>,
}

/// One node's chains in a PostgreSQL log, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// The node's name.
    pub node: String,
    /// Its disclosure records checked.
    pub disclosures: u64,
    /// Its security events checked.
    pub security_events: u64,
    /// Its latest signed checkpoint, which its chains reach; `None` before its first.
    pub checkpoint: Option<Checkpoint>,
}

/// The first bad record (or checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The node whose chain is broken (PostgreSQL); `None` for the embedded log.
    pub node: Option<String>,
    /// `disclosures`, `security_events` or `checkpoints`.
    pub table: &'static str,
    /// The record's id (for checkpoints: the line number, or the `seq` column in PostgreSQL;
    /// 0 when not about one record).
    pub id: i64,
    /// What is wrong, in words.
    pub reason: String,
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(node) = &self.node {
            write!(f, "node {node}: ")?;
        }
        write!(f, "{} record {}: {}", self.table, self.id, self.reason)
    }
}

/// Checks the log at `path`. `public_key` is the identity signing key's public half; the
/// latest checkpoint's signature is checked with it. `Err` is a log that cannot be read at
/// all; `Ok(Err(..))` names the first bad record.
pub fn verify(
    path: &Path,
    public_key: &[u8; 32],
) -> Result<Result<VerifyReport, VerifyFailure>, String> {
    if !path.exists() {
        return Err(format!("{}: no audit log here", path.display()));
    }
    // The journal's records not indexed yet are walked too: indexed first, each checked
    // against its own hash and the record before it as it goes in.
    crate::index::catch_up(path)?;
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|error| format!("{}: cannot open the audit log: {error}", path.display()))?;
    let read_error = |error: rusqlite::Error| format!("{}: {error}", path.display());

    let disclosures =
        match walk(&connection, "disclosures", DisclosureRow::from_sqlite).map_err(read_error)? {
            Ok(walked) => walked,
            Err(failure) => return Ok(Err(failure)),
        };
    let events = match walk(&connection, "security_events", |row| {
        Ok(EventRow {
            id: row.get(0)?,
            ts: row.get(1)?,
            kind: row.get(2)?,
            detail: row.get(3)?,
            prev_hash: row.get(4)?,
            hash: row.get(5)?,
        })
    })
    .map_err(read_error)?
    {
        Ok(walked) => walked,
        Err(failure) => return Ok(Err(failure)),
    };

    let checkpoint = match latest_checkpoint(&checkpoint_path(path), public_key) {
        Ok(checkpoint) => checkpoint,
        Err(failure) => return Ok(Err(failure)),
    };
    if let Some(checkpoint) = &checkpoint {
        for (walked, end) in [
            (&disclosures, &checkpoint.disclosures),
            (&events, &checkpoint.security_events),
        ] {
            if let Err(failure) = reaches(&connection, walked, end).map_err(read_error)? {
                return Ok(Err(failure));
            }
        }
    }
    Ok(Ok(VerifyReport {
        disclosures: disclosures.rows,
        security_events: events.rows,
        checkpoint,
        nodes: Vec::new(),
    }))
}

/// A chain rows that can be hashed.
trait Chained {
    fn id(&self) -> i64;
    fn prev_hash(&self) -> &str;
    fn hash(&self) -> &str;
    fn computed_hash(&self) -> String;
}

impl Chained for DisclosureRow {
    fn id(&self) -> i64 {
        self.id
    }
    fn prev_hash(&self) -> &str {
        &self.prev_hash
    }
    fn hash(&self) -> &str {
        &self.hash
    }
    fn computed_hash(&self) -> String {
        DisclosureRow::computed_hash(self)
    }
}

impl Chained for EventRow {
    fn id(&self) -> i64 {
        self.id
    }
    fn prev_hash(&self) -> &str {
        &self.prev_hash
    }
    fn hash(&self) -> &str {
        &self.hash
    }
    fn computed_hash(&self) -> String {
        EventRow::computed_hash(self)
    }
}

/// A chain walked to its end without a fault.
pub(crate) struct Walked {
    node: Option<String>,
    table: &'static str,
    pub(crate) rows: u64,
    removed_through: i64,
    last_id: i64,
}

/// What is left to check of a checkpoint's chain end once the chain was walked.
pub(crate) enum Reach {
    /// Nothing: the chain reaches the checkpoint (or it lies before the anchor).
    Reached,
    /// Compare record `id`'s stored hash with the checkpoint's ([`reach_compare`]).
    Compare(i64),
}

/// Whether the walked chain can contain the checkpoint's last record: `Err` when the chain
/// ends before it (its newest records were cut off).
pub(crate) fn reach(walked: &Walked, end: &ChainEnd) -> Result<Reach, VerifyFailure> {
    if end.last_id == 0 || end.last_id <= walked.removed_through {
        return Ok(Reach::Reached);
    }
    if end.last_id > walked.last_id {
        return Err(VerifyFailure {
            node: walked.node.clone(),
            table: walked.table,
            id: walked.last_id + 1,
            reason: format!(
                "the chain ends at record {} but the latest checkpoint saw record {}: newer \
                 records were cut off",
                walked.last_id, end.last_id
            ),
        });
    }
    Ok(Reach::Compare(end.last_id))
}

/// Whether the stored hash of the checkpoint's last record is the one it signed.
pub(crate) fn reach_compare(
    walked: &Walked,
    end: &ChainEnd,
    stored: Option<&str>,
) -> Result<(), VerifyFailure> {
    if stored == Some(end.last_hash.as_str()) {
        return Ok(());
    }
    Err(VerifyFailure {
        node: walked.node.clone(),
        table: walked.table,
        id: end.last_id,
        reason: "differs from the record the latest checkpoint signed".into(),
    })
}

fn walk<R: Chained>(
    connection: &Connection,
    table: &'static str,
    read: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<R>,
) -> rusqlite::Result<Result<Walked, VerifyFailure>> {
    let anchor: Option<(i64, String)> = connection
        .query_row(
            "SELECT removed_through, hash FROM chain_anchor WHERE chain = ?1",
            [table],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let (removed_through, anchor_hash) = anchor.unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));
    let columns = if table == "disclosures" {
        DisclosureRow::SQLITE_COLUMNS
    } else {
        "id, ts, kind, detail, prev_hash, hash"
    };
    let mut statement =
        connection.prepare(&format!("SELECT {columns} FROM {table} ORDER BY id"))?;
    let mut rows = statement.query([])?;
    let mut walk = ChainWalk::new(None, table, removed_through, anchor_hash);
    while let Some(row) = rows.next()? {
        let record = read(row)?;
        let computed = record.computed_hash();
        if let Err(failure) = walk.step(record.id(), record.prev_hash(), record.hash(), &computed) {
            return Ok(Err(failure));
        }
    }
    Ok(Ok(walk.finish()))
}

/// One chain checked record by record, in id order, from its anchor.
pub(crate) struct ChainWalk {
    node: Option<String>,
    table: &'static str,
    removed_through: i64,
    expected_id: i64,
    previous: String,
    rows: u64,
}

impl ChainWalk {
    /// A walk starting after `removed_through` (0: from the first record) at `anchor_hash`.
    pub(crate) fn new(
        node: Option<&str>,
        table: &'static str,
        removed_through: i64,
        anchor_hash: String,
    ) -> ChainWalk {
        ChainWalk {
            node: node.map(str::to_owned),
            table,
            removed_through,
            expected_id: removed_through + 1,
            previous: anchor_hash,
            rows: 0,
        }
    }

    /// Checks the next record: its id, its link to the previous one, and that `computed` (the
    /// hash its content gives) is its stored `hash`.
    pub(crate) fn step(
        &mut self,
        id: i64,
        prev_hash: &str,
        hash: &str,
        computed: &str,
    ) -> Result<(), VerifyFailure> {
        if id != self.expected_id {
            return Err(self.failure(
                self.expected_id,
                format!(
                    "missing (the next record present is {id}): records were removed from the \
                     middle or the start of the chain"
                ),
            ));
        }
        if prev_hash != self.previous {
            return Err(self.failure(
                id,
                "prev_hash does not match the previous record's hash: the chain was broken here"
                    .into(),
            ));
        }
        if computed != hash {
            return Err(self.failure(
                id,
                "content does not match its hash: the record was altered".into(),
            ));
        }
        hash.clone_into(&mut self.previous);
        self.expected_id += 1;
        self.rows += 1;
        Ok(())
    }

    pub(crate) fn finish(self) -> Walked {
        Walked {
            node: self.node,
            table: self.table,
            rows: self.rows,
            removed_through: self.removed_through,
            last_id: self.expected_id - 1,
        }
    }

    fn failure(&self, id: i64, reason: String) -> VerifyFailure {
        VerifyFailure {
            node: self.node.clone(),
            table: self.table,
            id,
            reason,
        }
    }
}

/// Whether the walked chain contains the checkpoint's last record, unchanged.
fn reaches(
    connection: &Connection,
    walked: &Walked,
    end: &ChainEnd,
) -> rusqlite::Result<Result<(), VerifyFailure>> {
    let id = match reach(walked, end) {
        Ok(Reach::Reached) => return Ok(Ok(())),
        Ok(Reach::Compare(id)) => id,
        Err(failure) => return Ok(Err(failure)),
    };
    let hash: Option<String> = connection
        .query_row(
            &format!("SELECT hash FROM {} WHERE id = ?1", walked.table),
            [id],
            |row| row.get(0),
        )
        .optional()?;
    Ok(reach_compare(walked, end, hash.as_deref()))
}

/// The last line of the checkpoint file, its signature checked. `None` when no checkpoint was
/// written yet.
fn latest_checkpoint(
    path: &Path,
    public_key: &[u8; 32],
) -> Result<Option<Checkpoint>, VerifyFailure> {
    let fail = |line: usize, reason: String| VerifyFailure {
        node: None,
        table: "checkpoints",
        id: i64::try_from(line).unwrap_or(i64::MAX),
        reason,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(fail(0, format!("{}: {error}", path.display()))),
    };
    let Some((number, line)) = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .last()
    else {
        return Ok(None);
    };
    let number = number + 1;
    let mut parts = line.split('\t');
    let (Some(body), Some(signature)) = (parts.next(), parts.next()) else {
        return Err(fail(number, "not a checkpoint line".into()));
    };
    signed_checkpoint(body, signature, public_key)
        .map(Some)
        .map_err(|reason| fail(number, reason))
}

/// A checkpoint body (`T`: its JSON shape) whose base64url `signature` verifies with
/// `public_key`; `Err` says what is wrong.
pub(crate) fn signed_checkpoint<T: serde::de::DeserializeOwned>(
    body: &str,
    signature: &str,
    public_key: &[u8; 32],
) -> Result<T, String> {
    let signature: Option<[u8; 64]> = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok());
    let Some(signature) = signature else {
        return Err("the signature is not 64 bytes of base64url".into());
    };
    if !headwall_identity::verify_detached(public_key, body.as_bytes(), &signature) {
        return Err(format!(
            "the signature does not verify with the signing key in {}: the checkpoint was \
             altered or signed with another key",
            "[identity].signing_key_file"
        ));
    }
    serde_json::from_str(body).map_err(|error| format!("unreadable checkpoint: {error}"))
}
