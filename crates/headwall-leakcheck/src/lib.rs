//! Finding subscriber identity in HTTP request headers, and showing it to the subscriber.
//!
//! The 2012 leak was found by a page that printed the headers a phone sent. This crate is that
//! page, made precise:
//!
//! - [`inspect`] is the leak detector: pure, no I/O, no logging. It flags known identity and
//!   tracking header names and phone numbers or IMSIs in any header value, and returns a
//!   [`Report`] that holds only redacted values ([`redact_value`]).
//! - [`router`] and [`serve`] are the public leak-check service (`headwall leakcheck`):
//!   `GET /` is a phone-readable page with the verdict first, `GET /api/v1/check` the report as
//!   JSON, both `Cache-Control: no-store`.
//! - [`EchoOrigin`] records what an origin received (used by `headwall demo` and the tests), and
//!   [`send_raw`] / [`proxy_get`] send one request byte for byte through a gateway: the pieces
//!   of the canary prober.
//!
//! The detector's rules, its labelled corpus (`corpus/`) and its measured precision and recall
//! are described in this crate's `README.md`.

mod detect;
mod echo;
mod page;
mod probe;
mod service;

pub use detect::{Finding, Reason, Report, Verdict, inspect, redact_value};
pub use echo::{EchoOrigin, ReceivedRequest};
pub use probe::{
    ProbeResponse, check_on, check_through, probe_socket, proxy_get, send_on, send_raw,
};
pub use service::{router, serve};
