//! The data plane: listeners, strip, decide, enrich, forward, CONNECT.
//!
//! Life of a request (see `docs/life-of-a-request.md`): the [`listener`] accepts a client
//! connection (bounded by `max_connections`, watched by timeouts); [`forward`] parses the
//! request target, removes hop-by-hop and identity headers ([`strip`]) before anything else,
//! connects upstream through the [`upstream`] pool (keyed by the address actually connected to),
//! asks the policy for a decision with that address, and only on `Decision::Disclose` with a
//! fresh subscriber binding inserts identity values ([`enrich`]). Anything uncertain withholds:
//! the request is still forwarded, without identity.
//!
//! Where to start: [`Gateway`].

mod access_log;
mod connect;
mod date;
mod enrich;
mod forward;
mod front;
mod gateway;
mod idle;
mod listener;
mod metrics;
mod respond;
mod serve;
mod strip;
mod upstream;

pub use access_log::AccessLog;
pub use front::{parse_proxy_v2, proxy_v2_length};
pub use gateway::{ActivePolicy, CanaryProbe, Gateway, GatewaySettings, IdentityKeys};
pub use metrics::{DURATION_BUCKETS, DisclosureLabels, Listener, Metrics, Outcome};
pub use strip::{StripOutcome, strip_request, strip_response};
