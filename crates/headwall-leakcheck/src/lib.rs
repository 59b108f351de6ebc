//! Header-echo origins: the seed of the public leak-check page.
//!
//! The 2012 leak was found by a page that printed the headers a phone sent. [`EchoOrigin`] is
//! that page in its simplest form: an HTTP server that records every request it receives and
//! answers with the headers as JSON. `headwall demo` uses it to show what each origin received,
//! and the tests use it to assert on what actually arrived upstream. The leak detector, the
//! HTML page and the canary prober come later in this crate; [`send_raw`] is the prober's first
//! piece: one request through a gateway from a chosen source address.

mod echo;
mod probe;

pub use echo::{EchoOrigin, ReceivedRequest};
pub use probe::{ProbeResponse, proxy_get, send_raw};
