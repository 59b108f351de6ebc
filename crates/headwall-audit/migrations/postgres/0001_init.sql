-- headwall audit log, PostgreSQL backend: the embedded schema with one hash chain per node.
-- Applied once by the first gateway that opens the database (tracked in schema_migrations,
-- serialized across nodes by an advisory lock). Never edit a released migration: add 0002_….
--
-- Each node appends to its own chains, so nodes never contend on a single chain head: the key
-- of every record is (node, id), id counting from 1 within the node's chain. A record's hash
-- covers the node's name (see record.rs), so moving a row to another node breaks it.
-- Times are Unix milliseconds, as in the embedded log.

CREATE TABLE disclosures (
    node        TEXT NOT NULL,
    id          BIGINT NOT NULL,
    ts          BIGINT NOT NULL,
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
    hash        TEXT NOT NULL,
    PRIMARY KEY (node, id)
);
-- The same indexes as the embedded log; ts and the queries span every node.
CREATE INDEX disclosures_msisdn ON disclosures (msisdn, ts);
CREATE INDEX disclosures_ts ON disclosures (ts);
CREATE INDEX disclosures_exposure ON disclosures (partner, host, msisdn, ts);
CREATE INDEX disclosures_host ON disclosures (host, ts);

CREATE TABLE security_events (
    node      TEXT NOT NULL,
    id        BIGINT NOT NULL,
    ts        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    PRIMARY KEY (node, id)
);
CREATE INDEX security_events_ts ON security_events (ts);
-- The fleet's kill-switch state: the newest kill_switch event of any node.
CREATE INDEX security_events_kind ON security_events (kind, ts);

-- Retention: per node and chain, the last removed record and its hash.
CREATE TABLE chain_anchor (
    node            TEXT NOT NULL,
    chain           TEXT NOT NULL,
    removed_through BIGINT NOT NULL,
    hash            TEXT NOT NULL,
    PRIMARY KEY (node, chain)
);

-- Signed checkpoints (the embedded log's audit.checkpoints file): body is the checkpoint JSON
-- including the node, signature its base64url Ed25519 signature, key_id the signing key's id.
CREATE TABLE checkpoints (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node      TEXT NOT NULL,
    ts        BIGINT NOT NULL,
    body      TEXT NOT NULL,
    signature TEXT NOT NULL,
    key_id    TEXT NOT NULL
);
CREATE INDEX checkpoints_node ON checkpoints (node, seq);
