//! [`Sessions`]: the one handle the data plane, RADIUS, the canary and the admin API use,
//! whichever backend holds the bindings.

use std::net::IpAddr;
use std::sync::Arc;

use headwall_identity::Msisdn;
use ipnet::IpNet;

use crate::redis::RedisSessions;
use crate::store::{Change, SessionStore, StoreError};
use crate::table::{Binding, Lookup, SessionTable};

/// Where bindings live: this node's memory (made durable in SQLite), or Redis for a fleet.
#[derive(Clone)]
pub enum Sessions {
    /// One node: lookups from the in-memory table; changes committed to SQLite first (when a
    /// store is attached) and then applied to the table.
    Embedded {
        /// The in-memory table lookups read.
        table: Arc<SessionTable>,
        /// The durable side; `None` only in tests that bind the table directly.
        store: Option<SessionStore>,
    },
    /// A fleet: every lookup and change goes to Redis, with a deadline.
    Redis(RedisSessions),
}

impl Sessions {
    /// In-memory bindings without persistence (tests, tools).
    pub fn memory(stale_after_secs: u64) -> Sessions {
        Sessions::Embedded {
            table: Arc::new(SessionTable::new(stale_after_secs)),
            store: None,
        }
    }

    /// Who is behind `ip` at `now`. `Err` means the store could not say (fail closed).
    pub async fn lookup(&self, ip: IpAddr, now: u64) -> Result<Lookup, StoreError> {
        match self {
            Sessions::Embedded { table, .. } => Ok(table.lookup(ip, now)),
            Sessions::Redis(redis) => redis.lookup(ip, now).await,
        }
    }

    /// Who the subscriber behind `ip` is at `now`, and nothing else about the session (the data
    /// plane's question; the embedded table answers it without copying the session's fields).
    pub async fn lookup_subscriber(
        &self,
        ip: IpAddr,
        now: u64,
    ) -> Result<Lookup<Msisdn>, StoreError> {
        match self {
            Sessions::Embedded { table, .. } => Ok(table.lookup_subscriber(ip, now)),
            Sessions::Redis(redis) => Ok(match redis.lookup(ip, now).await? {
                Lookup::Bound(binding) => Lookup::Bound(binding.msisdn),
                Lookup::Unbound => Lookup::Unbound,
                Lookup::Stale => Lookup::Stale,
            }),
        }
    }

    /// Applies an accounting change durably; resolves once it is acknowledged.
    pub async fn apply(&self, change: Change) -> Result<bool, StoreError> {
        match self {
            Sessions::Embedded {
                store: Some(store), ..
            } => store.apply(change).await,
            Sessions::Embedded { table, store: None } => {
                Ok(crate::store::apply_to_table(table, change))
            }
            Sessions::Redis(redis) => redis.apply(change).await,
        }
    }

    /// Binds `network` for a moment, without persistence (the canary's synthetic subscriber).
    pub async fn bind_ephemeral(&self, network: IpNet, binding: Binding) -> Result<(), StoreError> {
        match self {
            Sessions::Embedded { table, .. } => {
                table.bind(network, binding);
                Ok(())
            }
            Sessions::Redis(redis) => redis.bind_ephemeral(network, &binding).await,
        }
    }

    /// Removes an ephemeral binding if it is still `session_id`'s.
    pub async fn unbind_ephemeral(
        &self,
        network: IpNet,
        session_id: &str,
    ) -> Result<(), StoreError> {
        match self {
            Sessions::Embedded { table, .. } => {
                table.unbind(network, session_id);
                Ok(())
            }
            Sessions::Redis(redis) => redis.unbind_ephemeral(network, session_id).await,
        }
    }

    /// The in-memory table, for the embedded backend.
    pub fn table(&self) -> Option<&Arc<SessionTable>> {
        match self {
            Sessions::Embedded { table, .. } => Some(table),
            Sessions::Redis(_) => None,
        }
    }

    /// Bindings held in this node's memory (`None` with Redis: they live there).
    pub fn local_len(&self) -> Option<usize> {
        self.table().map(|table| table.len())
    }

    /// Failed or timed-out shared-store calls (`headwall_session_store_errors_total`).
    pub fn errors(&self) -> u64 {
        match self {
            Sessions::Embedded { .. } => 0,
            Sessions::Redis(redis) => redis.errors(),
        }
    }

    /// Whether the shared store's last call failed (reported by `/readyz`).
    pub fn degraded(&self) -> bool {
        match self {
            Sessions::Embedded { .. } => false,
            Sessions::Redis(redis) => redis.degraded(),
        }
    }
}
