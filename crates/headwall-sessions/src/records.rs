//! Short-lived records kept beside the bindings: the API's authorization codes, the subjects
//! behind access tokens, and the client assertions already used: kept on the server, in the
//! sessions backend — memory with the embedded store, Redis for a fleet, so any node can redeem
//! (docs/design.md, "HTTPS: network-based authentication and the CAMARA APIs").
//!
//! A record is an opaque text value under a key, with a lifetime. Five operations, each on one
//! key and atomic, so the same protocol is correct on one node, on several nodes sharing one
//! Redis, and on Redis Cluster:
//!
//! - `insert_new`, `SET key value NX PX ttl`: create, never overwrite;
//! - `get`, `GET`;
//! - `take`, `GETDEL`: read and remove, so exactly one caller gets it;
//! - `swap`, `SET key value XX KEEPTTL GET`: replace an existing value, keeping its expiry,
//!   and return what was there, so exactly one caller sees the first value;
//! - `put`, `SET key value PX ttl`: overwrite (a tombstone).
//!
//! `GETDEL` and `SET … KEEPTTL GET` need Redis 6.2 or later.
//!
//! Callers choose keys that name nobody (digests, random ids) and values that hold no secret a
//! client sent. With Redis every call has [`crate::REDIS_DEADLINE`]; a failure is an error, which
//! the API answers with `temporarily_unavailable`, never a guess.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::redis::RedisSessions;
use crate::sessions::Sessions;
use crate::store::StoreError;

/// Records one node holds in memory at once; past this, new ones are refused (an error, so a
/// flood of `/authorize` or `/token` cannot grow memory without bound) until old ones expire.
pub const MAX_MEMORY_RECORDS: usize = 400_000;

/// Where the short-lived records live. Clone freely.
#[derive(Clone)]
pub enum Records {
    /// This node's memory (with the embedded sessions store).
    Memory(Arc<MemoryRecords>),
    /// Redis, shared by the fleet (with the Redis sessions store).
    Redis(RedisSessions),
}

impl Records {
    /// The records for a gateway whose bindings are in `sessions`: memory beside the embedded
    /// store, the same Redis beside Redis bindings.
    pub fn for_sessions(sessions: &Sessions) -> Records {
        match sessions {
            Sessions::Embedded { .. } => Records::Memory(Arc::default()),
            Sessions::Redis(redis) => Records::Redis(redis.clone()),
        }
    }

    /// Creates `key` with `value` for `ttl`; `false` when the key already exists.
    pub async fn insert_new(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Records::Memory(memory) => memory.insert_new(key, value, ttl),
            Records::Redis(redis) => {
                let set: Option<String> = redis
                    .call(
                        redis::cmd("SET")
                            .arg(key)
                            .arg(value)
                            .arg("NX")
                            .arg("PX")
                            .arg(millis(ttl))
                            .clone(),
                    )
                    .await?;
                Ok(set.is_some())
            }
        }
    }

    /// Overwrites `key` with `value` for `ttl`.
    pub async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        match self {
            Records::Memory(memory) => memory.put(key, value, ttl),
            Records::Redis(redis) => {
                let _: Option<String> = redis
                    .call(
                        redis::cmd("SET")
                            .arg(key)
                            .arg(value)
                            .arg("PX")
                            .arg(millis(ttl))
                            .clone(),
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// The live value of `key`.
    pub async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self {
            Records::Memory(memory) => Ok(memory.get(key)),
            Records::Redis(redis) => redis.call(redis::cmd("GET").arg(key).clone()).await,
        }
    }

    /// The live value of `key`, removed: of callers racing for one key, one gets it.
    pub async fn take(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self {
            Records::Memory(memory) => Ok(memory.take(key)),
            Records::Redis(redis) => redis.call(redis::cmd("GETDEL").arg(key).clone()).await,
        }
    }

    /// Replaces the live value of `key` with `value`, keeping its expiry, and returns what was
    /// there; nothing is written when the key does not exist. Of callers racing for one key,
    /// exactly one sees the value it had before any of them.
    pub async fn swap(&self, key: &str, value: &str) -> Result<Option<String>, StoreError> {
        match self {
            Records::Memory(memory) => Ok(memory.swap(key, value)),
            Records::Redis(redis) => {
                redis
                    .call(
                        redis::cmd("SET")
                            .arg(key)
                            .arg(value)
                            .arg("XX")
                            .arg("KEEPTTL")
                            .arg("GET")
                            .clone(),
                    )
                    .await
            }
        }
    }
}

/// The memory backend: one map under one lock (each operation is a few hash-map steps).
/// Expired records are swept every [`SWEEP_EVERY`] by the write that notices, so a steady flow
/// of flows holds only the live ones (it held every record until the map was full).
#[derive(Default)]
pub struct MemoryRecords {
    entries: Mutex<Entries>,
}

/// The records and when they were last swept.
#[derive(Default)]
struct Entries {
    map: HashMap<String, (String, Instant)>,
    swept: Option<Instant>,
}

/// Time between sweeps of expired records.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl MemoryRecords {
    fn insert_new(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.map.get(key).is_some_and(|(_, until)| *until > now) {
            return Ok(false);
        }
        entries.make_room(now)?;
        entries
            .map
            .insert(key.to_owned(), (value.to_owned(), now + ttl));
        Ok(true)
    }

    fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if !entries.map.contains_key(key) {
            entries.make_room(now)?;
        }
        entries
            .map
            .insert(key.to_owned(), (value.to_owned(), now + ttl));
        Ok(())
    }

    /// Records held, expired ones not yet swept included (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    fn get(&self, key: &str) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .map
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(value, _)| value.clone())
    }

    fn take(&self, key: &str) -> Option<String> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .map
            .remove(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(value, _)| value)
    }

    fn swap(&self, key: &str, value: &str) -> Option<String> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.map.get_mut(key) {
            Some((old, until)) if *until > now => Some(std::mem::replace(old, value.to_owned())),
            Some(_) => {
                entries.map.remove(key);
                None
            }
            None => None,
        }
    }
}

impl Entries {
    /// Makes room for one more record: sweeps expired ones every [`SWEEP_EVERY`], and at once
    /// when the map is full; refuses when it is still full.
    fn make_room(&mut self, now: Instant) -> Result<(), StoreError> {
        let due = self
            .swept
            .is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY);
        if due || self.map.len() >= MAX_MEMORY_RECORDS {
            self.swept = Some(now);
            self.map.retain(|_, (_, until)| *until > now);
        }
        if self.map.len() >= MAX_MEMORY_RECORDS {
            return Err(StoreError::Commit(format!(
                "{MAX_MEMORY_RECORDS} short-lived API records held; refusing more until some expire"
            )));
        }
        Ok(())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Records {
        Records::Memory(Arc::default())
    }

    #[tokio::test]
    async fn insert_new_never_overwrites_and_take_hands_out_once() {
        let records = memory();
        let ttl = Duration::from_secs(60);
        assert!(records.insert_new("k", "one", ttl).await.unwrap());
        assert!(!records.insert_new("k", "two", ttl).await.unwrap());
        assert_eq!(records.get("k").await.unwrap().as_deref(), Some("one"));
        assert_eq!(records.take("k").await.unwrap().as_deref(), Some("one"));
        assert_eq!(records.take("k").await.unwrap(), None);
        assert!(records.insert_new("k", "three", ttl).await.unwrap());
    }

    #[tokio::test]
    async fn swap_returns_the_first_value_to_one_caller_and_writes_nothing_new() {
        let records = memory();
        assert_eq!(records.swap("absent", "x").await.unwrap(), None);
        assert_eq!(records.get("absent").await.unwrap(), None);
        records
            .put("k", "fresh", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            records.swap("k", "a").await.unwrap().as_deref(),
            Some("fresh")
        );
        assert_eq!(records.swap("k", "b").await.unwrap().as_deref(), Some("a"));
    }

    #[test]
    fn expired_records_are_swept_without_waiting_for_a_full_map() {
        let memory = MemoryRecords::default();
        for i in 0..100 {
            assert!(
                memory
                    .insert_new(&format!("k{i}"), "v", Duration::ZERO)
                    .unwrap()
            );
        }
        // The first write swept (nothing then); the next sweep is due in SWEEP_EVERY.
        assert!(memory.len() >= 99);
        memory.entries.lock().unwrap().swept = Some(Instant::now() - SWEEP_EVERY);
        assert!(
            memory
                .insert_new("live", "v", Duration::from_secs(60))
                .unwrap()
        );
        assert_eq!(memory.len(), 1);
    }

    #[tokio::test]
    async fn an_expired_record_is_gone_for_every_operation() {
        let records = memory();
        assert!(records.insert_new("k", "v", Duration::ZERO).await.unwrap());
        assert_eq!(records.get("k").await.unwrap(), None);
        assert_eq!(records.swap("k", "w").await.unwrap(), None);
        assert!(
            records
                .insert_new("k", "v2", Duration::from_secs(1))
                .await
                .unwrap()
        );
        assert_eq!(records.get("k").await.unwrap().as_deref(), Some("v2"));
    }
}
