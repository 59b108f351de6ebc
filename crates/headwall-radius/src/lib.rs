//! RADIUS accounting (RFC 2866): the codec and the UDP listener that feeds subscriber sessions.
//!
//! The codec ([`decode_accounting_request`], [`encode_accounting_response`]) is pure: it checks
//! the Request Authenticator over exactly `Length` octets in constant time before interpreting
//! any attribute. The [`serve`] listener turns authentic packets into session-store changes and
//! answers only after they are durable. Written here rather than taken from the `radius` crate,
//! which authenticates over the whole datagram, not in constant time (docs/design.md,
//! Dependencies).

mod codec;
mod listener;
mod metrics;

pub use codec::{
    AccountingRequest, AcctStatusType, DecodeError, decode_accounting_request,
    encode_accounting_request, encode_accounting_response, response_is_valid,
};
pub use listener::{RadiusClient, RadiusSettings, msisdn_from_calling_station_id, serve};
pub use metrics::{PacketResult, RESULT_LABELS, RadiusMetrics, STATUS_LABELS};
