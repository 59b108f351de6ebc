//! [`AuditSource`]: where the record is read from — this node's SQLite file or the fleet's
//! PostgreSQL — with one async interface for the `audit` commands and the admin API.

use std::path::PathBuf;

use headwall_identity::Msisdn;
use headwall_policy::{Policy, StoreTls};

use crate::{
    AuditReader, DisclosureView, ExposedSubscriber, ExposureFilter, ExposureRow, PgAuditReader,
    TimeRange, Unallowed, VerifyFailure, VerifyReport,
};

/// A configured audit log to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSource {
    /// The embedded SQLite log at this path.
    Embedded(PathBuf),
    /// The PostgreSQL log at `url` (every node), reached with `[audit]`'s TLS keys.
    Postgres {
        /// `[audit].url`.
        url: String,
        /// `tls_ca_file`, `tls_cert_file`, `tls_key_file`.
        tls: StoreTls,
    },
}

impl AuditSource {
    /// Every disclosure of `msisdn` in `range`, oldest first.
    pub async fn subscriber(
        &self,
        msisdn: &Msisdn,
        range: TimeRange,
    ) -> Result<Vec<DisclosureView>, String> {
        match self {
            AuditSource::Embedded(path) => {
                let (path, msisdn) = (path.clone(), msisdn.clone());
                blocking(move || {
                    AuditReader::open(&path)?
                        .subscriber(&msisdn, range)
                        .map_err(|error| error.to_string())
                })
                .await
            }
            AuditSource::Postgres { url, tls } => PgAuditReader::open(url, tls)
                .await?
                .subscriber(msisdn, range)
                .await
                .map_err(|error| error.to_string()),
        }
    }

    /// Distinct subscribers and records per (partner, host).
    pub async fn exposure(&self, filter: &ExposureFilter) -> Result<Vec<ExposureRow>, String> {
        match self {
            AuditSource::Embedded(path) => {
                let (path, filter) = (path.clone(), filter.clone());
                blocking(move || {
                    AuditReader::open(&path)?
                        .exposure(&filter)
                        .map_err(|error| error.to_string())
                })
                .await
            }
            AuditSource::Postgres { url, tls } => PgAuditReader::open(url, tls)
                .await?
                .exposure(filter)
                .await
                .map_err(|error| error.to_string()),
        }
    }

    /// The distinct subscribers per (partner, host), streamed to `visit` (see
    /// [`AuditReader::exposed_subscribers_each`]).
    pub async fn exposed_subscribers_each(
        &self,
        filter: &ExposureFilter,
        mut visit: impl FnMut(ExposedSubscriber) -> bool + Send + 'static,
    ) -> Result<(), String> {
        match self {
            AuditSource::Embedded(path) => {
                let (path, filter) = (path.clone(), filter.clone());
                blocking(move || {
                    AuditReader::open(&path)?
                        .exposed_subscribers_each(&filter, &mut visit)
                        .map_err(|error| error.to_string())
                })
                .await
            }
            AuditSource::Postgres { url, tls } => PgAuditReader::open(url, tls)
                .await?
                .exposed_subscribers_each(filter, visit)
                .await
                .map_err(|error| error.to_string()),
        }
    }

    /// The disclosures `policy` would not have allowed.
    pub async fn against(
        &self,
        policy: &Policy,
        filter: &ExposureFilter,
    ) -> Result<Vec<Unallowed>, String> {
        match self {
            AuditSource::Embedded(path) => {
                let (path, policy, filter) = (path.clone(), policy.clone(), filter.clone());
                blocking(move || {
                    AuditReader::open(&path)?
                        .against(&policy, &filter)
                        .map_err(|error| error.to_string())
                })
                .await
            }
            AuditSource::Postgres { url, tls } => PgAuditReader::open(url, tls)
                .await?
                .against(policy, filter)
                .await
                .map_err(|error| error.to_string()),
        }
    }

    /// The disclosures `policy` would not have allowed, streamed: `visit` gets each one, oldest
    /// first, as the scan finds it (one record held at a time), and returns `false` to stop.
    /// The embedded log's scan runs on the blocking pool, so `visit` runs there too.
    pub async fn against_each(
        &self,
        policy: &Policy,
        filter: &ExposureFilter,
        mut visit: impl FnMut(Unallowed) -> bool + Send + 'static,
    ) -> Result<(), String> {
        match self {
            AuditSource::Embedded(path) => {
                let (path, policy, filter) = (path.clone(), policy.clone(), filter.clone());
                blocking(move || {
                    AuditReader::open(&path)?
                        .against_each(&policy, &filter, &mut visit)
                        .map_err(|error| error.to_string())
                })
                .await
            }
            AuditSource::Postgres { url, tls } => PgAuditReader::open(url, tls)
                .await?
                .against_each(policy, filter, visit)
                .await
                .map_err(|error| error.to_string()),
        }
    }

    /// Walks the chains (every node's, for PostgreSQL) and checks the latest checkpoints.
    pub async fn verify(
        &self,
        public_key: &[u8; 32],
    ) -> Result<Result<VerifyReport, VerifyFailure>, String> {
        match self {
            AuditSource::Embedded(path) => {
                let (path, key) = (path.clone(), *public_key);
                blocking(move || crate::verify(&path, &key)).await
            }
            AuditSource::Postgres { url, tls } => {
                crate::verify_postgres(url, tls, public_key).await
            }
        }
    }
}

/// SQLite reads run on the blocking pool, never on a runtime worker.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| Err("audit query failed".to_owned()))
}
