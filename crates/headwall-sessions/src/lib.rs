//! Subscriber bindings: which subscriber is behind a client address right now.
//!
//! The data plane asks one question per partner-bound request, [`SessionTable::lookup`], and it
//! must be answered from memory without a lock: the table is a `papaya` map (lock-free reads, no
//! guard held across `.await`). RADIUS accounting (a later issue) feeds it through
//! [`SessionTable::bind`] / [`SessionTable::unbind`]; durable persistence wraps these calls.
//!
//! Not here: RADIUS parsing (`headwall-radius`), what to disclose (`headwall-policy`).

mod profiles;
mod table;

pub use profiles::{ProfileError, Profiles};
pub use table::{Binding, Lookup, SessionTable};
