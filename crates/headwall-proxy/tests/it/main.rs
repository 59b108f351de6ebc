//! Data-plane tests on real sockets: an in-process gateway on 127.0.0.1, partner origins on
//! 127.0.0.2 and 127.0.0.4, an ordinary website on 127.0.0.3, subscribers on 127.0.0.5.
//! Every assertion is about what an origin (or the client) actually received.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod harness;

mod connect;
mod enrich;
mod forward;
mod framing;
mod front;
mod limits;
mod strip;
