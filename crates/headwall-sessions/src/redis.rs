//! Shared bindings in Redis (or Redis Cluster) for a fleet of gateways.
//!
//! Keys (every operation touches one key, so the same code runs on a single node and on a
//! cluster):
//!
//! - `headwall:bind:<network>` — a hash `msisdn, imsi, session_id, nas, updated_at` for one
//!   bound network (`10.1.2.3/32`, or an IPv6 prefix such as `2001:db8:1:2::/64` as the packet
//!   gateway sent it in Framed-IPv6-Prefix). It expires `stale_after` after the last accounting
//!   packet, so a silent session disappears by itself.
//! - `headwall:nas:<nas>` — a set of the binding keys a NAS created, for Accounting-On/Off.
//! - `headwall:v6lengths` — the IPv6 prefix lengths in use, for longest-prefix lookups.
//!
//! Start replaces the binding; Interim refreshes it only when unbound or the same session; Stop
//! is a server-side compare-and-delete on Acct-Session-Id, so a late Stop never removes a newer
//! binding; Accounting-On/Off deletes each indexed key whose `nas` still matches. Every call has
//! a deadline well under a second: a slow or unreachable Redis is an error, which the data plane
//! turns into "no identity" and RADIUS into "no acknowledgement".
//!
//! `rediss://` URLs connect over TLS (rustls): the server's chain is checked against
//! [`RedisTls::ca_pem`], else the system's trust store, and must name the host; a client
//! certificate is offered when given. The configuration refuses `redis://` toward another
//! machine.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use headwall_identity::{Imsi, Msisdn};
use ipnet::{IpNet, Ipv6Net};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisResult, Script};
use tokio::sync::RwLock;

use crate::store::{Change, StoreError};
use crate::table::{Binding, Lookup, canonical_network};

/// Every Redis call must finish within this, or it counts as a failure.
pub const REDIS_DEADLINE: Duration = Duration::from_millis(250);
/// How long a canary binding lives if the canary never removes it.
const EPHEMERAL_TTL: Duration = Duration::from_secs(60);

const BIND: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'msisdn', ARGV[1], 'imsi', ARGV[2], 'session_id', ARGV[3],
           'nas', ARGV[4], 'updated_at', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1";

const REFRESH: &str = r"
local current = redis.call('HGET', KEYS[1], 'session_id')
if current and current ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'msisdn', ARGV[1], 'imsi', ARGV[2], 'session_id', ARGV[3],
           'nas', ARGV[4], 'updated_at', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1";

const UNBIND_IF: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// `[sessions]`' TLS material for `rediss://`, PEM as read from its files.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// `tls_ca_file`'s content: the CA certificates the server's chain must lead to. `None`:
    /// the system's trust store.
    pub ca_pem: Option<Vec<u8>>,
    /// `tls_cert_file`'s and `tls_key_file`'s content: a client certificate chain and its key.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Certificates are public, but the key is not: neither is printed.
        f.debug_struct("RedisTls")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<set>"))
            .field("client", &self.client.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl RedisTls {
    fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.ca_pem.clone(),
        }
    }
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    /// Connected lazily and again after failures, by `ensure_cluster`.
    Cluster(
        Arc<RwLock<Option<ClusterConnection>>>,
        Arc<redis::cluster::ClusterClient>,
    ),
}

/// Bindings shared through Redis. Clone freely.
#[derive(Clone)]
pub struct RedisSessions {
    connection: Connection,
    stale_after: Duration,
    scripts: Arc<Scripts>,
    health: Arc<Health>,
}

struct Scripts {
    bind: Script,
    refresh: Script,
    unbind_if: Script,
}

#[derive(Default)]
struct Health {
    errors: AtomicU64,
    degraded: AtomicBool,
}

impl RedisSessions {
    /// Connects lazily: the gateway starts and serves (without identity) while Redis is
    /// unreachable, and reconnects with backoff. `urls` is one `redis://` URL for a single
    /// node, or several (comma-separated in the config) for Redis Cluster; `rediss://` ones
    /// use `tls`.
    pub fn connect(
        urls: &[String],
        stale_after: Duration,
        tls: &RedisTls,
    ) -> Result<RedisSessions, StoreError> {
        let invalid = |error: redis::RedisError| {
            StoreError::Commit(format!("[sessions].redis_url: {}", error.category()))
        };
        let connection = match urls {
            [single] => {
                let client = if single.starts_with("rediss://") {
                    redis::Client::build_with_tls(single.as_str(), tls.certificates())
                } else {
                    redis::Client::open(single.as_str())
                }
                .map_err(invalid)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_DEADLINE))
                    .set_response_timeout(Some(REDIS_DEADLINE))
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(5))
                    .set_number_of_retries(3);
                Connection::Single(
                    ConnectionManager::new_lazy_with_config(client, config).map_err(invalid)?,
                )
            }
            nodes => {
                let mut builder = redis::cluster::ClusterClientBuilder::new(nodes.to_vec());
                if nodes.iter().any(|url| url.starts_with("rediss://")) {
                    builder = builder.certs(tls.certificates());
                }
                let client = builder
                    .connection_timeout(REDIS_DEADLINE)
                    .response_timeout(REDIS_DEADLINE)
                    .retries(2)
                    .build()
                    .map_err(invalid)?;
                Connection::Cluster(Arc::new(RwLock::new(None)), Arc::new(client))
            }
        };
        Ok(RedisSessions {
            connection,
            stale_after,
            scripts: Arc::new(Scripts {
                bind: Script::new(BIND),
                refresh: Script::new(REFRESH),
                unbind_if: Script::new(UNBIND_IF),
            }),
            health: Arc::default(),
        })
    }

    /// Failed or timed-out Redis calls since start (`headwall_session_store_errors_total`).
    pub fn errors(&self) -> u64 {
        self.health.errors.load(Ordering::Relaxed)
    }

    /// Whether the last Redis call failed.
    pub fn degraded(&self) -> bool {
        self.health.degraded.load(Ordering::Relaxed)
    }

    /// Who is behind `ip`. IPv4 by exact address; IPv6 by the longest bound prefix.
    pub async fn lookup(&self, ip: IpAddr, now: u64) -> Result<Lookup, StoreError> {
        let found = match ip.to_canonical() {
            IpAddr::V4(v4) => self.get(&key(&IpNet::from(IpAddr::V4(v4)))).await?,
            IpAddr::V6(v6) => {
                let mut lengths: Vec<u8> = self
                    .call(redis::cmd("SMEMBERS").arg("headwall:v6lengths").clone())
                    .await?;
                lengths.sort_unstable_by(|a, b| b.cmp(a));
                let mut found = None;
                for length in lengths {
                    let Ok(prefix) = Ipv6Net::new(v6, length.min(128)) else {
                        continue;
                    };
                    if let Some(binding) = self.get(&key(&IpNet::V6(prefix.trunc()))).await? {
                        found = Some(binding);
                        break;
                    }
                }
                found
            }
        };
        Ok(match found {
            None => Lookup::Unbound,
            Some(binding)
                if now.saturating_sub(binding.updated_at) > self.stale_after.as_secs() =>
            {
                Lookup::Stale
            }
            Some(binding) => Lookup::Bound(binding),
        })
    }

    /// Applies one accounting change; resolves once Redis acknowledged it.
    pub async fn apply(&self, change: Change) -> Result<bool, StoreError> {
        let ttl = millis(self.stale_after);
        match change {
            Change::Bind(network, binding) => {
                self.write(&self.scripts.bind, network, &binding, ttl).await
            }
            Change::Refresh(network, binding) => {
                self.write(&self.scripts.refresh, network, &binding, ttl)
                    .await
            }
            Change::Unbind(network, session_id) => {
                self.unbind_if(&key(&canonical_network(network)), "session_id", &session_id)
                    .await
            }
            Change::UnbindNas(nas) => {
                let index = nas_key(&nas);
                let members: Vec<String> = self
                    .call(redis::cmd("SMEMBERS").arg(&index).clone())
                    .await?;
                let mut removed = false;
                for member in members {
                    removed |= self.unbind_if(&member, "nas", &nas).await?;
                }
                let _: i64 = self.call(redis::cmd("DEL").arg(&index).clone()).await?;
                Ok(removed)
            }
            // Keys expire at stale_after by themselves.
            Change::Sweep(_) => Ok(false),
        }
    }

    /// A binding that lives at most a minute and never enters a NAS index (the canary's).
    pub async fn bind_ephemeral(
        &self,
        network: IpNet,
        binding: &Binding,
    ) -> Result<(), StoreError> {
        let ttl = millis(EPHEMERAL_TTL.min(self.stale_after));
        self.write(&self.scripts.bind, network, binding, ttl)
            .await
            .map(|_| ())
    }

    /// Removes what [`RedisSessions::bind_ephemeral`] bound, if it is still that session's.
    pub async fn unbind_ephemeral(
        &self,
        network: IpNet,
        session_id: &str,
    ) -> Result<(), StoreError> {
        self.unbind_if(&key(&canonical_network(network)), "session_id", session_id)
            .await
            .map(|_| ())
    }

    async fn write(
        &self,
        script: &Script,
        network: IpNet,
        binding: &Binding,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let network = canonical_network(network);
        let key = key(&network);
        let imsi = binding
            .imsi
            .as_ref()
            .map(|imsi| imsi.expose_digits().to_owned())
            .unwrap_or_default();
        let mut invocation = script.key(&key);
        invocation
            .arg(binding.msisdn.expose_digits())
            .arg(imsi)
            .arg(&binding.session_id)
            .arg(&binding.nas)
            .arg(binding.updated_at)
            .arg(ttl_ms);
        let changed: i64 = self
            .deadline(async {
                match &self.connection {
                    Connection::Single(manager) => {
                        invocation.invoke_async(&mut manager.clone()).await
                    }
                    Connection::Cluster(..) => {
                        let mut cluster = self.cluster().await?;
                        invocation.invoke_async(&mut cluster).await
                    }
                }
            })
            .await?;
        if changed == 1 {
            let index = nas_key(&binding.nas);
            let _: i64 = self
                .call(redis::cmd("SADD").arg(&index).arg(&key).clone())
                .await?;
            let _: i64 = self
                .call(
                    redis::cmd("PEXPIRE")
                        .arg(&index)
                        .arg(ttl_ms.saturating_mul(2))
                        .clone(),
                )
                .await?;
            if let IpNet::V6(prefix) = network {
                let _: i64 = self
                    .call(
                        redis::cmd("SADD")
                            .arg("headwall:v6lengths")
                            .arg(prefix.prefix_len())
                            .clone(),
                    )
                    .await?;
            }
        }
        Ok(changed == 1)
    }

    async fn unbind_if(&self, key: &str, field: &str, expected: &str) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.unbind_if.key(key);
        invocation.arg(field).arg(expected);
        let removed: i64 = self
            .deadline(async {
                match &self.connection {
                    Connection::Single(manager) => {
                        invocation.invoke_async(&mut manager.clone()).await
                    }
                    Connection::Cluster(..) => {
                        let mut cluster = self.cluster().await?;
                        invocation.invoke_async(&mut cluster).await
                    }
                }
            })
            .await?;
        Ok(removed == 1)
    }

    async fn get(&self, key: &str) -> Result<Option<Binding>, StoreError> {
        let fields: std::collections::HashMap<String, String> =
            self.call(redis::cmd("HGETALL").arg(key).clone()).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        // A hash that cannot be read is treated as no binding (fail closed), never guessed.
        let binding = (|| {
            Some(Binding {
                msisdn: Msisdn::parse(fields.get("msisdn")?).ok()?,
                imsi: fields
                    .get("imsi")
                    .filter(|imsi| !imsi.is_empty())
                    .and_then(|imsi| Imsi::parse(imsi).ok()),
                session_id: fields.get("session_id")?.clone(),
                nas: fields.get("nas")?.clone(),
                updated_at: fields.get("updated_at")?.parse().ok()?,
            })
        })();
        Ok(binding)
    }

    pub(crate) async fn call<T: FromRedisValue>(&self, command: Cmd) -> Result<T, StoreError> {
        self.deadline(async {
            match &self.connection {
                Connection::Single(manager) => command.query_async(&mut manager.clone()).await,
                Connection::Cluster(..) => {
                    let mut cluster = self.cluster().await?;
                    command.query_async(&mut cluster).await
                }
            }
        })
        .await
    }

    /// The cluster connection, connecting when there is none.
    async fn cluster(&self) -> RedisResult<ClusterConnection> {
        let Connection::Cluster(slot, client) = &self.connection else {
            return Err((redis::ErrorKind::Client, "not a cluster").into());
        };
        if let Some(connection) = slot.read().await.as_ref() {
            return Ok(connection.clone());
        }
        let mut slot = slot.write().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = client.get_async_connection().await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `call` within [`REDIS_DEADLINE`], recording health. Errors name the failure's
    /// category, never a key or value.
    async fn deadline<T>(
        &self,
        call: impl std::future::Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let outcome = match tokio::time::timeout(REDIS_DEADLINE, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(StoreError::Unreachable(format!(
                "redis: {} error",
                error.category()
            ))),
            Err(_) => Err(StoreError::Unreachable(format!(
                "redis: no answer within {} ms",
                REDIS_DEADLINE.as_millis()
            ))),
        };
        match &outcome {
            Ok(_) => self.health.degraded.store(false, Ordering::Relaxed),
            Err(_) => {
                self.health.errors.fetch_add(1, Ordering::Relaxed);
                self.health.degraded.store(true, Ordering::Relaxed);
                if let Connection::Cluster(slot, _) = &self.connection {
                    // Reconnect next time: topology may have changed.
                    if let Ok(mut slot) = slot.try_write() {
                        *slot = None;
                    }
                }
            }
        }
        outcome
    }
}

fn key(network: &IpNet) -> String {
    format!("headwall:bind:{network}")
}

fn nas_key(nas: &str) -> String {
    format!("headwall:nas:{nas}")
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}
