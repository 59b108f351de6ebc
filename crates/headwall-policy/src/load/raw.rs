//! The raw serde model: each table as written, every value with the span errors point at.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::api;

pub(super) type Str = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) gateway: Option<Spanned<RawGateway>>,
    pub(super) admin: Option<RawAdmin>,
    pub(super) radius: Option<Spanned<RawRadius>>,
    pub(super) sessions: Option<RawSessions>,
    pub(super) subscribers: Option<Spanned<RawSubscribers>>,
    pub(super) audit: Option<RawAudit>,
    pub(super) identity: Option<RawIdentity>,
    pub(super) strip: Option<RawStrip>,
    pub(super) canary: Option<Spanned<RawCanary>>,
    pub(super) api: Option<Spanned<api::RawApi>>,
    pub(super) access_log: Option<RawAccessLog>,
    pub(super) change: Option<RawChange>,
    #[serde(default)]
    pub(super) partner: Vec<Spanned<RawPartner>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChange {
    pub(super) widening: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    pub(super) listen: Option<Str>,
    pub(super) transparent_listen: Option<Str>,
    pub(super) proxy_protocol: Option<Spanned<bool>>,
    pub(super) proxy_protocol_from: Option<Vec<Str>>,
    pub(super) clients: Option<Spanned<Vec<Str>>>,
    pub(super) connect_ports: Option<Vec<Spanned<i64>>>,
    pub(super) connect_timeout: Option<Str>,
    pub(super) header_read_timeout: Option<Str>,
    pub(super) idle_timeout: Option<Str>,
    pub(super) max_connections: Option<Spanned<i64>>,
    pub(super) hosts: Option<BTreeMap<Str, Str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Option<Str>,
    pub(super) token_file: Option<Str>,
    pub(super) read_token_file: Option<Str>,
    pub(super) tls_cert_file: Option<Str>,
    pub(super) tls_key_file: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRadius {
    pub(super) listen: Option<Str>,
    pub(super) country_code: Option<Str>,
    pub(super) min_ipv6_prefix: Option<Spanned<i64>>,
    pub(super) clients: Option<Spanned<Vec<Spanned<RawRadiusClient>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRadiusClient {
    pub(super) source: Option<Str>,
    pub(super) secret: Option<Str>,
    pub(super) secret_file: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessions {
    pub(super) backend: Option<Str>,
    pub(super) path: Option<Str>,
    pub(super) redis_url: Option<Str>,
    pub(super) stale_after: Option<Str>,
    pub(super) tls_ca_file: Option<Str>,
    pub(super) tls_cert_file: Option<Str>,
    pub(super) tls_key_file: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubscribers {
    pub(super) file: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub(super) backend: Option<Str>,
    pub(super) path: Option<Str>,
    pub(super) url: Option<Str>,
    pub(super) node: Option<Str>,
    pub(super) retention: Option<Str>,
    pub(super) commit_window: Option<Str>,
    pub(super) tls_ca_file: Option<Str>,
    pub(super) tls_cert_file: Option<Str>,
    pub(super) tls_key_file: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    pub(super) pseudonym_key_file: Option<Str>,
    pub(super) signing_key_file: Option<Str>,
    pub(super) issuer: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStrip {
    pub(super) headers: Option<Vec<Str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCanary {
    pub(super) url: Option<Str>,
    pub(super) interval: Option<Str>,
    pub(super) msisdn: Option<Str>,
    pub(super) kill_switch: Option<bool>,
    pub(super) unverified_after: Option<Str>,
    pub(super) on_unverified: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccessLog {
    pub(super) path: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPartner {
    pub(super) name: Option<Str>,
    pub(super) purpose: Option<Str>,
    pub(super) hosts: Option<Spanned<Vec<Str>>>,
    pub(super) ports: Option<Spanned<Vec<Spanned<i64>>>>,
    pub(super) destinations: Option<Spanned<Vec<Str>>>,
    pub(super) headers: Option<Spanned<BTreeMap<Str, Str>>>,
    pub(super) justification: Option<Str>,
}
