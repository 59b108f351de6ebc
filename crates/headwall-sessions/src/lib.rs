//! Subscriber bindings: which subscriber is behind a client address right now.
//!
//! The data plane asks one question per partner-bound request, [`SessionTable::lookup`], and it
//! must be answered from memory, never waiting on I/O: the table is our own sharded
//! open-addressing map (`table::shards`), where a read holds its shard's read lock for one probe
//! and never across `.await`, and a writer holds one shard for one change. RADIUS accounting
//! feeds it through [`SessionStore::apply`], which commits each [`Change`] to SQLite before
//! applying it to the table.
//!
//! A fleet shares bindings in Redis instead ([`RedisSessions`]); [`Sessions`] is the one handle
//! every user holds, whichever backend is configured. Beside them, [`Records`] keeps the API's
//! short-lived codes and token subjects in the same backend.
//!
//! Not here: RADIUS parsing (`headwall-radius`), what to disclose (`headwall-policy`).

mod profiles;
mod records;
mod redis;
mod sessions;
mod store;
mod table;

pub use profiles::{Date, Profile, ProfileError, Profiles};
pub use records::{MAX_MEMORY_RECORDS, MemoryRecords, Records};
pub use redis::{REDIS_DEADLINE, RedisSessions, RedisTls};
pub use sessions::Sessions;
pub use store::{Change, SessionStore, StoreError, database_path};
pub use table::{Binding, Lookup, SessionTable, canonical_network, unix_now};
