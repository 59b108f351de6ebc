//! Integration tests for headwall-identity: the public API as other crates use it.

mod redaction;
mod token;
