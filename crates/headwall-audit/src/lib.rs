//! The disclosure log: no audit, no disclosure (docs/design.md, Principles 4 and "Audit log").
//!
//! - [`AuditLog`] is the writing side. Embedded (one node): a writer thread chains each record to
//!   the one before and appends every record queued meanwhile to the **journal** with one
//!   `pwrite` and one `fdatasync` (group commit; `journal.rs`). [`AuditLog::disclose`] resolves
//!   only once the record is durable there; a full queue, a failed write, a failing index or
//!   [`WRITE_DEADLINE`] makes it fail, and the caller then forwards the request without
//!   identity (fail closed). An indexer thread builds the SQLite **index** (WAL,
//!   `synchronous = FULL`) from the same rows in bulk, a fraction of a second behind, and runs
//!   retention and checkpoints (`index.rs`); [`catch_up`] indexes what the journal holds beyond
//!   it, and every reader and every open calls it, so no answer misses a durable record. Why a
//!   journal: a SQLite commit writes ~8 pages and an fsync whatever it holds, ~240 µs of CPU per
//!   record at a few hundred disclosures a second; the journal's flush costs ~50–65 µs per
//!   batch and SQLite then commits a thousand rows at a time (BENCH.md, 2026-12-03).
//! - Each record carries `prev_hash` and `hash` = SHA-256 over the previous hash and the
//!   record's fields (length-prefixed, see [`record`]'s `chain_hash`): `disclosures` and
//!   `security_events` are two chains. Retention removes the oldest records and keeps the hash
//!   of the last removed one in `chain_anchor`, so [`verify`] still passes from the oldest
//!   remaining record.
//! - A hash chain cannot show that its newest records were cut off, so the indexer appends a
//!   checkpoint (chain ends, signed with the identity signing key) to `audit.checkpoints` beside
//!   the database every minute while records arrive and at shutdown, naming only indexed
//!   records; [`verify`] checks that the chains reach the latest checkpoint.
//! - [`AuditReader`] answers the regulator's questions with indexed SQL; `exposure` from a
//!   summary per (partner, host), per (partner, host, subscriber) and per (partner, host, day)
//!   that the indexer keeps in the same transaction as each record (derived data, outside the
//!   chain; see `summary.rs`). `against` streams ([`AuditReader::against_each`]).
//!
//! ## PostgreSQL (a fleet)
//!
//! [`AuditLog::open_postgres`] gives the same [`AuditLog`] over a database the whole fleet
//! shares (`[audit] backend = "postgres"`; schema in `migrations/postgres/`, applied at open
//! and tracked in `schema_migrations`). Each node appends to its own two chains — rows keyed
//! by `(node, id)`, the node's name hashed into each record — so nodes never contend on one
//! chain head. The writer is a tokio task with the same bounded queue, group commit (one
//! transaction per batch, answered after `COMMIT`), [`WRITE_DEADLINE`] and fail-fast on a
//! full queue (no journal, no commit window). Checkpoints are rows of `checkpoints`, signed as
//! in the file. Differences:
//! [`AuditLog::prune`] prunes every node's chains (a departed node's records still expire);
//! [`AuditLog::enrichment_switched_off`] is the fleet's state (the newest `kill_switch` event
//! of any node: a leak anywhere means off everywhere), refreshed every
//! [`KILL_SWITCH_REFRESH`]. [`PgAuditReader`] and [`verify_postgres`] answer across every
//! node. No TLS: see `docs/operations.md`, "PostgreSQL audit backend".
//!
//! MSISDNs live in this database and in what the `audit` commands print, nowhere else: record
//! types redact them in `Debug`, and errors never carry record content (PostgreSQL errors keep
//! the server's message and SQLSTATE, never its DETAIL, which can quote a row).

mod error;
mod index;
mod journal;
pub mod latency;
mod limit;
mod pending;
mod postgres;
mod query;
pub mod record;
mod source;
mod summary;
pub mod time;
mod verify;
mod window;
mod writer;

pub use error::{Causes, FileProblem, PgFailure, TargetError};
pub use index::catch_up;
pub use journal::journal_paths;
pub use limit::LogLimit;
pub use postgres::{KILL_SWITCH_REFRESH, PgAuditReader, QueryError, verify_postgres};
pub use query::{
    AuditReader, DisclosureView, ExposedSubscriber, ExposureFilter, ExposureRow, TimeRange,
    Unallowed, allowed_by, exposure_json, subscriber_json,
};
pub use record::{Disclosure, DisclosureRow, EventKind, EventRow, GENESIS_HASH};
pub use source::AuditSource;
pub use summary::SubscriberSet;
pub use verify::{NodeReport, VerifyFailure, VerifyReport, verify};
pub use window::{EventWindow, MAX_SOURCES_PER_SECOND, WindowFields};
pub use writer::{
    AuditError, AuditLog, AuditOptions, ChainEnd, Checkpoint, DEFAULT_COMMIT_WINDOW, QUEUE_DEPTH,
    WRITE_DEADLINE, checkpoint_path,
};

/// The schema, applied at every open (idempotent). The exposure summary's indexes and its
/// one-off fill come after, from [`summary`] (`PRAGMA user_version` 1).
pub(crate) const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS disclosures (
    id          INTEGER PRIMARY KEY,
    ts          INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    partner     TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    msisdn      TEXT NOT NULL,
    kinds       TEXT NOT NULL,
    headers     TEXT NOT NULL,
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    upstream_ip TEXT NOT NULL,
    client_ip   TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS disclosures_msisdn ON disclosures (msisdn, ts);
CREATE INDEX IF NOT EXISTS disclosures_ts ON disclosures (ts);
CREATE TABLE IF NOT EXISTS security_events (
    id        INTEGER PRIMARY KEY,
    ts        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS security_events_ts ON security_events (ts);
CREATE TABLE IF NOT EXISTS chain_anchor (
    chain           TEXT PRIMARY KEY,
    removed_through INTEGER NOT NULL,
    hash            TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS exposure_subscribers (
    partner     TEXT NOT NULL,
    host        TEXT NOT NULL,
    msisdn      TEXT NOT NULL,
    disclosures INTEGER NOT NULL,
    last_day    INTEGER NOT NULL,
    prev_day    INTEGER,
    PRIMARY KEY (partner, host, msisdn)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exposure_days (
    partner     TEXT NOT NULL,
    host        TEXT NOT NULL,
    day         INTEGER NOT NULL,
    disclosures INTEGER NOT NULL,
    lasts       INTEGER NOT NULL,
    PRIMARY KEY (partner, host, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exposure_totals (
    partner     TEXT NOT NULL,
    host        TEXT NOT NULL,
    subscribers INTEGER NOT NULL,
    disclosures INTEGER NOT NULL,
    first       INTEGER NOT NULL,
    last        INTEGER NOT NULL,
    PRIMARY KEY (partner, host)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exposure_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    last_id         INTEGER NOT NULL,
    removed_through INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS exposure_shapes (
    host        TEXT NOT NULL,
    partner     TEXT NOT NULL,
    port        INTEGER NOT NULL,
    upstream_ip TEXT NOT NULL,
    headers     TEXT NOT NULL,
    kinds       TEXT NOT NULL,
    disclosures INTEGER NOT NULL,
    PRIMARY KEY (host, partner, port, upstream_ip, headers, kinds)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exposure_shapes_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    last_id         INTEGER NOT NULL,
    removed_through INTEGER NOT NULL
);
";
