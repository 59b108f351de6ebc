//! The schema in `migrations/postgres/`, applied in order at open and tracked in
//! `schema_migrations`; nodes starting together take turns on an advisory lock.

use deadpool_postgres::ClientWrapper;

/// One file of `migrations/postgres/`. Released migrations are never edited: a change is a new
/// file with the next version.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "0001_init",
    sql: include_str!("../../migrations/postgres/0001_init.sql"),
}];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// `pg_advisory_xact_lock` key serializing migrations across nodes ("headwall" in ASCII).
const MIGRATION_LOCK: i64 = 0x6865_6164_7761_6c6c;

/// Applies every migration the database has not seen, in one transaction. Returns the
/// database's schema version afterwards (higher than [`SCHEMA_VERSION`] when a newer headwall
/// migrated it: this one then logs a warning and carries on; an incompatible change fails its
/// inserts, and a failed insert fails closed).
pub(crate) async fn migrate(client: &mut ClientWrapper) -> Result<i64, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    // The writer's connections cancel slow statements; a migration (waiting for another
    // node's, or building an index on a large table) may take as long as it needs.
    transaction
        .batch_execute("SET LOCAL statement_timeout = 0")
        .await?;
    // Taken before CREATE TABLE IF NOT EXISTS, which is not safe against itself running
    // concurrently.
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let applied: Vec<i64> = transaction
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        transaction.batch_execute(migration.sql).await?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "audit schema migration applied"
        );
    }
    let version = applied.into_iter().max().unwrap_or(0).max(SCHEMA_VERSION);
    transaction.commit().await?;
    if version > SCHEMA_VERSION {
        tracing::warn!(
            database = version,
            known = SCHEMA_VERSION,
            "the audit schema is newer than this headwall; upgrade it"
        );
    }
    Ok(version)
}

/// The database's schema version, `None` when no headwall ever opened it (readers and verify
/// never create the schema: they may run with a read-only role).
pub(crate) async fn schema_version(
    client: &tokio_postgres::Client,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let present: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    if !present {
        return Ok(None);
    }
    client
        .query_one("SELECT MAX(version) FROM schema_migrations", &[])
        .await?
        .try_get(0)
}
