//! headwall-policy: the configuration model, its validation, and the compiled policy that the
//! data plane asks "may this request carry identity, and which?".
//!
//! Pure: no file or network I/O. The caller reads `headwall.toml` and passes its text to
//! [`load`], which returns a [`Config`] or every problem as `file:line:col: message`
//! ([`ConfigErrors`]). The [`Policy`] inside answers [`Policy::decide`] (host, port and the
//! address actually connected to must all match one partner) and holds the [`StripSet`] of
//! header names removed from every request. Start at [`load`] and [`Policy`].

mod client;
mod config;
mod duration;
mod error;
mod fasthash;
mod header;
mod host;
mod load;
mod plan;
mod policy;
mod store;

pub use client::{ApiClient, ApiScope, TOKEN_PATH, TextPosition, is_api_endpoint};
pub use config::{
    AccessLog, Admin, Api, ApiTls, Audit, AuditBackend, Canary, ChangeGate, Config, Gateway,
    IdentitySettings, Radius, RadiusClient, RadiusSecret, Secret, Sessions, SessionsBackend,
    StoreTls, Subscribers,
};
pub use duration::parse_duration;
pub use error::{ConfigError, ConfigErrors, HostError};
pub use header::{
    StripSet, builtin_identity_headers, is_field_name, normalize_header_name, websocket_accept,
};
pub use host::{HostPattern, HostPatternError, normalize_host};
pub use load::{Folders, load, load_policy};
pub use plan::{
    Change, ClientChange, ClientPlan, Grant, HostPlan, JustificationChange, KIND_ORDER, PairChange,
    PartnerPlan, Plan, StripPlan, Widening, plan,
};
pub use policy::{Decision, Partner, PartnerHeader, Policy, Purpose, ValueKind, WithholdReason};
pub use store::{PgSslMode, first_remote_host, is_local_host, url_hosts, without_sslmode};
