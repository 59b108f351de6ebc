//! What the log holds: disclosures and security events, and the hash that chains them.

use std::fmt;
use std::net::IpAddr;

use headwall_identity::Msisdn;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The `prev_hash` of the first record of a chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One request that is about to leave with identity: what was disclosed, to whom, under which
/// policy. Written before the request is forwarded (no audit, no disclosure).
#[derive(Clone)]
pub struct Disclosure {
    /// The gateway's id of the request.
    pub request_id: String,
    /// The partner's configured name.
    pub partner: String,
    /// The partner's purpose (`age_verification`, `billing`, `identification`).
    pub purpose: String,
    /// The subscriber.
    pub msisdn: Msisdn,
    /// The value kinds inserted, in header order.
    pub kinds: Vec<String>,
    /// The header names inserted, in the same order as `kinds`.
    pub headers: Vec<String>,
    /// The normalized request host.
    pub host: String,
    /// The request port.
    pub port: u16,
    /// The address actually connected to.
    pub upstream_ip: IpAddr,
    /// The subscriber's address.
    pub client_ip: IpAddr,
    /// The hash of the policy in force.
    pub policy_hash: String,
}

impl fmt::Debug for Disclosure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disclosure")
            .field("request_id", &self.request_id)
            .field("partner", &self.partner)
            .field("msisdn", &self.msisdn)
            .field("headers", &self.headers)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// The kinds of security event (docs/design.md, Audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A client sent identity headers; they were removed (one event per client address and
    /// second, with the number of requests).
    SpoofStripped,
    /// A partner host connected outside the partner's destinations; identity withheld.
    PinningMismatch,
    /// The canary found identity at a non-partner endpoint.
    CanaryLeak,
    /// Enrichment was turned off or on.
    KillSwitch,
    /// A new policy was applied.
    PolicyChange,
    /// A RADIUS packet was rejected (unknown client, bad authenticator, malformed).
    RadiusRejected,
    /// No canary run has completed for `[canary].unverified_after`: nothing proves that
    /// non-partners see nothing.
    CanaryUnverified,
    /// The operator suspended one partner, or lifted the suspension.
    PartnerEnrichment,
}

impl EventKind {
    /// The `kind` column value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SpoofStripped => "spoof_stripped",
            EventKind::PinningMismatch => "pinning_mismatch",
            EventKind::CanaryLeak => "canary_leak",
            EventKind::KillSwitch => "kill_switch",
            EventKind::PolicyChange => "policy_change",
            EventKind::RadiusRejected => "radius_rejected",
            EventKind::CanaryUnverified => "canary_unverified",
            EventKind::PartnerEnrichment => "partner_enrichment",
        }
    }
}

/// A `disclosures` row as stored. `Debug` redacts the MSISDN; the row's fields are public for
/// the `audit` commands and the admin API, the only places a number may be shown.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct DisclosureRow {
    /// Position in the chain, from 1.
    pub id: i64,
    /// Unix milliseconds when the record was written.
    pub ts: i64,
    /// The gateway's id of the request.
    pub request_id: String,
    /// Partner name.
    pub partner: String,
    /// Partner purpose.
    pub purpose: String,
    /// Subscriber MSISDN (international digits).
    pub msisdn: String,
    /// Value kinds, comma-separated, in header order.
    pub kinds: String,
    /// Header names, comma-separated.
    pub headers: String,
    /// Request host (normalized).
    pub host: String,
    /// Request port.
    pub port: u16,
    /// Address connected to.
    pub upstream_ip: String,
    /// Subscriber address.
    pub client_ip: String,
    /// Hash of the policy in force.
    pub policy_hash: String,
    /// The previous record's `hash` (or [`GENESIS_HASH`], or the retention anchor).
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this record's content.
    pub hash: String,
}

impl DisclosureRow {
    pub(crate) fn new(id: i64, ts: i64, disclosure: &Disclosure, prev_hash: &str) -> DisclosureRow {
        let mut row = DisclosureRow {
            id,
            ts,
            request_id: disclosure.request_id.clone(),
            partner: disclosure.partner.clone(),
            purpose: disclosure.purpose.clone(),
            msisdn: disclosure.msisdn.expose_digits().to_owned(),
            kinds: disclosure.kinds.join(","),
            headers: disclosure.headers.join(","),
            host: disclosure.host.clone(),
            port: disclosure.port,
            upstream_ip: disclosure.upstream_ip.to_string(),
            client_ip: disclosure.client_ip.to_string(),
            policy_hash: disclosure.policy_hash.clone(),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        row.hash = row.computed_hash();
        row
    }

    /// Like [`DisclosureRow::new`] for a PostgreSQL row of `node`'s chain: the node's name is
    /// hashed too ([`DisclosureRow::computed_hash_on`]).
    pub(crate) fn new_on(
        node: &str,
        id: i64,
        ts: i64,
        disclosure: &Disclosure,
        prev_hash: &str,
    ) -> DisclosureRow {
        let mut row = DisclosureRow::new(id, ts, disclosure, prev_hash);
        row.hash = row.computed_hash_on(node);
        row
    }

    /// The hash this row's content and `prev_hash` give (what `hash` must be).
    pub fn computed_hash(&self) -> String {
        self.hash_with(None)
    }

    /// The hash of a PostgreSQL row of `node`'s chain: the node's name is hashed before the
    /// other fields, so a row whose `node` column was changed no longer matches its hash.
    pub fn computed_hash_on(&self, node: &str) -> String {
        self.hash_with(Some(node))
    }

    fn hash_with(&self, node: Option<&str>) -> String {
        chain_hash(
            node,
            &self.prev_hash,
            &[
                &self.id.to_string(),
                &self.ts.to_string(),
                &self.request_id,
                &self.partner,
                &self.purpose,
                &self.msisdn,
                &self.kinds,
                &self.headers,
                &self.host,
                &self.port.to_string(),
                &self.upstream_ip,
                &self.client_ip,
                &self.policy_hash,
            ],
        )
    }
}

impl DisclosureRow {
    /// The SQLite columns, in the order [`DisclosureRow::from_sqlite`] reads them.
    pub const SQLITE_COLUMNS: &'static str = "id, ts, request_id, partner, purpose, msisdn, \
        kinds, headers, host, port, upstream_ip, client_ip, policy_hash, prev_hash, hash";

    /// A row selected with [`DisclosureRow::SQLITE_COLUMNS`].
    pub fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<DisclosureRow> {
        Ok(DisclosureRow {
            id: row.get(0)?,
            ts: row.get(1)?,
            request_id: row.get(2)?,
            partner: row.get(3)?,
            purpose: row.get(4)?,
            msisdn: row.get(5)?,
            kinds: row.get(6)?,
            headers: row.get(7)?,
            host: row.get(8)?,
            port: row.get(9)?,
            upstream_ip: row.get(10)?,
            client_ip: row.get(11)?,
            policy_hash: row.get(12)?,
            prev_hash: row.get(13)?,
            hash: row.get(14)?,
        })
    }
}

impl fmt::Debug for DisclosureRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DisclosureRow")
            .field("id", &self.id)
            .field("partner", &self.partner)
            .field("msisdn", &"<redacted>")
            .field("headers", &self.headers)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// A `security_events` row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    /// Position in the chain, from 1.
    pub id: i64,
    /// Unix milliseconds when the record was written.
    pub ts: i64,
    /// One of [`EventKind`]'s names.
    pub kind: String,
    /// A compact JSON object: counts, addresses, names, hashes; never a number or header value.
    pub detail: String,
    /// The previous event's `hash`.
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this record's content.
    pub hash: String,
}

impl EventRow {
    pub(crate) fn new(id: i64, ts: i64, kind: EventKind, detail: String, prev: &str) -> EventRow {
        let mut row = EventRow {
            id,
            ts,
            kind: kind.as_str().to_owned(),
            detail,
            prev_hash: prev.to_owned(),
            hash: String::new(),
        };
        row.hash = row.computed_hash();
        row
    }

    /// Like [`EventRow::new`] for a PostgreSQL row of `node`'s chain.
    pub(crate) fn new_on(
        node: &str,
        id: i64,
        ts: i64,
        kind: EventKind,
        detail: String,
        prev: &str,
    ) -> EventRow {
        let mut row = EventRow::new(id, ts, kind, detail, prev);
        row.hash = row.computed_hash_on(node);
        row
    }

    /// The hash this row's content and `prev_hash` give.
    pub fn computed_hash(&self) -> String {
        self.hash_with(None)
    }

    /// The hash of a PostgreSQL row of `node`'s chain: the node's name is hashed before the
    /// other fields.
    pub fn computed_hash_on(&self, node: &str) -> String {
        self.hash_with(Some(node))
    }

    fn hash_with(&self, node: Option<&str>) -> String {
        chain_hash(
            node,
            &self.prev_hash,
            &[
                &self.id.to_string(),
                &self.ts.to_string(),
                &self.kind,
                &self.detail,
            ],
        )
    }
}

/// SHA-256 over the previous hash (as its 64 hex characters) and each field as an 8-byte
/// big-endian length followed by its UTF-8 bytes, as lowercase hex. Length prefixes make the
/// encoding unambiguous: no two different rows share an input. A PostgreSQL row's `node` is
/// one more field, before the others, so a row moved to another node's chain, or a node
/// renamed, no longer matches its hash.
pub(crate) fn chain_hash(node: Option<&str>, prev_hash: &str, fields: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    for field in node.iter().chain(fields) {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex(&hasher.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_boundaries_change_the_hash() {
        assert_ne!(
            chain_hash(None, GENESIS_HASH, &["ab", "c"]),
            chain_hash(None, GENESIS_HASH, &["a", "bc"])
        );
        assert_ne!(
            chain_hash(None, GENESIS_HASH, &["a"]),
            chain_hash(None, &chain_hash(None, GENESIS_HASH, &[]), &["a"])
        );
        assert_eq!(chain_hash(None, GENESIS_HASH, &["a"]).len(), 64);
    }

    #[test]
    fn the_node_is_hashed_for_postgres_rows() {
        let row = EventRow::new_on(
            "a",
            1,
            0,
            EventKind::PolicyChange,
            "{}".into(),
            GENESIS_HASH,
        );
        assert_eq!(row.hash, row.computed_hash_on("a"));
        assert_ne!(row.hash, row.computed_hash_on("b"));
        assert_ne!(row.hash, row.computed_hash());
        assert_eq!(
            chain_hash(Some("a"), GENESIS_HASH, &["b"]),
            chain_hash(None, GENESIS_HASH, &["a", "b"])
        );
    }

    #[test]
    fn row_debug_never_shows_the_number() {
        let disclosure = Disclosure {
            request_id: "r1".into(),
            partner: "agecheck".into(),
            purpose: "age_verification".into(),
            msisdn: Msisdn::parse("447700900123").expect("valid"),
            kinds: vec!["pseudonym".into()],
            headers: vec!["X-Subscriber-Id".into()],
            host: "verify.agecheck.test".into(),
            port: 80,
            upstream_ip: [127, 0, 0, 2].into(),
            client_ip: [127, 0, 0, 5].into(),
            policy_hash: "p".into(),
        };
        let row = DisclosureRow::new(1, 0, &disclosure, GENESIS_HASH);
        assert!(!format!("{disclosure:?}").contains("447700900123"));
        assert!(!format!("{row:?}").contains("447700900123"));
        assert_eq!(row.hash, row.computed_hash());
    }
}
