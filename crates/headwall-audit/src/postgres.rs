//! The PostgreSQL backend (docs/design.md, "Scale-out"): the embedded log's schema, group commit
//! and checks in a database the whole fleet shares, with one hash chain per node.
//!
//! - [`writer`]: the [`crate::AuditLog`] task of one node (its own chains, fleet kill switch).
//! - [`migrate`]: `migrations/postgres/*.sql`, applied at open and tracked in
//!   `schema_migrations`.
//! - [`query`]: [`PgAuditReader`], the three questions across all nodes.
//! - [`verify`]: [`verify_postgres`], every node's chains and signed checkpoints.
//! - `tls`: rustls set up the way the URL's `sslmode` asks.
//!
//! Connections come from a small `deadpool-postgres` pool, over TLS unless the URL's `sslmode`
//! says otherwise toward this machine (see `docs/operations.md`, "PostgreSQL audit backend").
//! Errors carry the server's SQLSTATE and
//! message, never its DETAIL, HINT or WHERE fields: those can quote row values.

pub(crate) mod migrate;
pub(crate) mod query;
mod tls;
pub(crate) mod verify;
pub(crate) mod writer;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use headwall_policy::{PgSslMode, StoreTls};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::TargetError;

pub use query::{PgAuditReader, QueryError};
pub use verify::verify_postgres;

/// How often a PostgreSQL [`crate::AuditLog`] re-reads the fleet's kill-switch state (see
/// [`crate::AuditLog::enrichment_switched_off`]).
pub const KILL_SWITCH_REFRESH: Duration = Duration::from_secs(5);

/// Connecting, and waiting for a pooled connection, give up after this long: a disclosure has
/// failed closed long before (its [`crate::WRITE_DEADLINE`]).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed `[audit].url`, its TLS, and the part of it that may be shown.
pub(crate) struct Target {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// `postgres://user@host:port/database`: no password, no options.
    pub(crate) shown: String,
}

impl Target {
    /// Parses `url` (a `postgres://` URL or a `key=value` connection string) and sets up TLS
    /// with `tls` the way its `sslmode` asks. The error names what is wrong without repeating
    /// the URL, which may hold a password.
    pub(crate) fn parse(url: &str, tls: &StoreTls) -> Result<Target, TargetError> {
        let mode = PgSslMode::of_url(url).map_err(TargetError::SslMode)?;
        // tokio-postgres knows three of libpq's five modes: it is told whether to encrypt,
        // and the connector decides what is checked.
        let mut config: tokio_postgres::Config = headwall_policy::without_sslmode(url)
            .parse()
            .map_err(|error: tokio_postgres::Error| TargetError::Url(error.into()))?;
        config.ssl_mode(match mode {
            PgSslMode::Disable => SslMode::Disable,
            PgSslMode::Prefer => SslMode::Prefer,
            PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => SslMode::Require,
        });
        let tls = tls::connector(mode, tls)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("headwall");
        }
        if config.get_tcp_user_timeout().is_none() {
            // A peer gone silent (a partition, no RST) fails the connection instead of
            // holding the writer until TCP gives up.
            config.tcp_user_timeout(CONNECT_TIMEOUT * 2);
        }
        let shown = shown(&config);
        Ok(Target { config, tls, shown })
    }

    /// A pool of at most `size` connections; none is opened before the first `get`. With
    /// `statement_timeout`, the server cancels any statement running longer (a lock held by
    /// someone else, an overloaded server), so the caller gets an error in bounded time.
    pub(crate) fn pool(
        &self,
        size: usize,
        statement_timeout: Option<Duration>,
    ) -> Result<Pool, TargetError> {
        let mut config = self.config.clone();
        if let Some(timeout) = statement_timeout {
            let option = format!("-c statement_timeout={}", timeout.as_millis());
            let options = match config.get_options() {
                Some(given) if !given.trim().is_empty() => format!("{given} {option}"),
                _ => option,
            };
            config.options(options);
        }
        let manager = Manager::from_config(
            config,
            self.tls.clone(),
            ManagerConfig {
                // An empty query before each reuse (one round trip per batch, next to an
                // fsync): a connection the server dropped (a restart, a failover,
                // pg_terminate_backend) is replaced before a batch fails on it.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(TargetError::Pool)
    }
}

fn shown(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    let user = config
        .get_user()
        .map(|user| format!("{user}@"))
        .unwrap_or_default();
    let port = if ports.is_empty() {
        String::new()
    } else {
        format!(":{}", ports.join(","))
    };
    format!(
        "postgres://{user}{}{port}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

/// What went wrong, for an operator: the server's message and SQLSTATE (which name tables,
/// columns and constraints), or the client's error and its cause. Never the DETAIL, HINT or
/// WHERE of a server error: `Failing row contains (…)` would print a subscriber number.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// [`describe`] for the pool's errors.
pub(crate) fn describe_pool(error: &PoolError) -> String {
    match error {
        PoolError::Backend(error) => describe(error),
        PoolError::Timeout(_) => format!("no database connection within {CONNECT_TIMEOUT:?}"),
        other => other.to_string(),
    }
}

/// Whether `node` is a usable node name: 1–64 ASCII letters, digits, `.`, `-`, `_`.
pub(crate) fn valid_node(node: &str) -> bool {
    (1..=64).contains(&node.len())
        && node
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_'))
}

/// Every node that has records, anchors or checkpoints, in byte order. One index probe per
/// node and table (a loose index scan), so it stays cheap on large tables.
pub(crate) const NODES_SQL: &str = "
WITH RECURSIVE
  d(node) AS (
      (SELECT node FROM disclosures ORDER BY node LIMIT 1)
    UNION ALL
      SELECT (SELECT t.node FROM disclosures t WHERE t.node > d.node ORDER BY t.node LIMIT 1)
      FROM d WHERE d.node IS NOT NULL),
  e(node) AS (
      (SELECT node FROM security_events ORDER BY node LIMIT 1)
    UNION ALL
      SELECT (SELECT t.node FROM security_events t WHERE t.node > e.node ORDER BY t.node LIMIT 1)
      FROM e WHERE e.node IS NOT NULL),
  c(node) AS (
      (SELECT node FROM checkpoints ORDER BY node LIMIT 1)
    UNION ALL
      SELECT (SELECT t.node FROM checkpoints t WHERE t.node > c.node ORDER BY t.node LIMIT 1)
      FROM c WHERE c.node IS NOT NULL)
SELECT node FROM (
  SELECT node FROM d UNION SELECT node FROM e UNION SELECT node FROM c
  UNION SELECT node FROM chain_anchor
) nodes WHERE node IS NOT NULL ORDER BY node COLLATE \"C\"";

/// Every node's name (see [`NODES_SQL`]).
pub(crate) async fn nodes(
    client: &tokio_postgres::Client,
) -> Result<Vec<String>, tokio_postgres::Error> {
    client
        .query(NODES_SQL, &[])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect()
}

/// The `kill_switch` event that decides the fleet's state: the newest of any node. Whether it
/// turned enrichment off (`false` when there is none).
pub(crate) async fn fleet_switched_off(
    client: &tokio_postgres::Client,
) -> Result<bool, tokio_postgres::Error> {
    let detail: Option<String> = client
        .query_opt(
            "SELECT detail FROM security_events WHERE kind = 'kill_switch'
             ORDER BY ts DESC, node DESC, id DESC LIMIT 1",
            &[],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    Ok(crate::writer::switched_off(detail.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_target_has_no_password() {
        let target = Target::parse(
            "postgres://headwall:s3cret@db.example:5433/audit",
            &StoreTls::default(),
        )
        .unwrap();
        assert_eq!(target.shown, "postgres://headwall@db.example:5433/audit");
        let target = Target::parse(
            "host=/run/pg user=h password=s3cret dbname=a",
            &StoreTls::default(),
        )
        .unwrap();
        assert!(!target.shown.contains("s3cret"), "{}", target.shown);
        let error = Target::parse(
            "postgres://h:s3cret@db/a?sslmode=bogus",
            &StoreTls::default(),
        )
        .err()
        .unwrap();
        let error = crate::Causes(&error).to_string();
        assert!(!error.contains("s3cret"), "{error}");
    }

    /// A certificate or key file that cannot be used is a typed error naming the file, with
    /// what is wrong as its cause; shown with its causes, the text is the one operators see.
    #[test]
    fn unusable_tls_files_are_typed_errors_with_their_causes() {
        use std::error::Error as _;
        use std::os::unix::fs::PermissionsExt as _;

        use crate::{FileProblem, TargetError};

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing-ca.pem");
        let tls = StoreTls {
            ca_file: Some(missing.clone()),
            client: None,
        };
        let error = Target::parse("postgres://h@db/a?sslmode=verify-full", &tls)
            .err()
            .unwrap();
        assert!(
            matches!(&error, TargetError::File { path, problem: FileProblem::Certificate(_) } if *path == missing),
            "{error:?}"
        );
        assert!(error.source().is_some());
        let shown = crate::Causes(&error).to_string();
        assert!(
            shown.starts_with(&format!(
                "{}: no usable PEM certificate: ",
                missing.display()
            )),
            "{shown}"
        );

        let key = dir.path().join("client.key");
        std::fs::write(&key, "not a key").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let tls = StoreTls {
            ca_file: None,
            client: Some(headwall_policy::ApiTls {
                cert_file: dir.path().join("client.pem"),
                key_file: key.clone(),
            }),
        };
        std::fs::write(dir.path().join("client.pem"), "").unwrap();
        let error = Target::parse("postgres://h@127.0.0.1/a?sslmode=require", &tls)
            .err()
            .unwrap();
        let shown = crate::Causes(&error).to_string();
        assert!(
            matches!(
                &error,
                TargetError::File {
                    problem: FileProblem::NoCertificate,
                    ..
                }
            ),
            "{shown}"
        );
        std::fs::write(
            dir.path().join("client.pem"),
            "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let error = Target::parse("postgres://h@127.0.0.1/a?sslmode=require", &tls)
            .err()
            .unwrap();
        let shown = crate::Causes(&error).to_string();
        assert!(
            matches!(&error, TargetError::File { path, problem: FileProblem::Mode(0o644) } if *path == key),
            "{shown}"
        );
        assert_eq!(
            shown,
            format!(
                "{}: the TLS key can be read by others (mode 644); chmod 600 it",
                key.display()
            )
        );
    }

    #[test]
    fn node_names() {
        assert!(valid_node("gw-1.lon_a"));
        assert!(!valid_node(""));
        assert!(!valid_node("a b"));
        assert!(!valid_node("ü"));
        assert!(!valid_node(&"a".repeat(65)));
    }
}
