//! The validated configuration model. Built only by [`crate::load`].

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::policy::Policy;

/// A whole validated `headwall.toml`. Relative paths are already resolved against the config
/// file's folder.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[gateway]`: the data-plane listeners. Required.
    pub gateway: Gateway,
    /// `[admin]`: the admin API.
    pub admin: Admin,
    /// `[radius]`: the accounting listener; `None` when there is no `[radius]` table.
    pub radius: Option<Radius>,
    /// `[sessions]`: where subscriber bindings live.
    pub sessions: Sessions,
    /// `[subscribers]`: optional profile data; `None` when absent.
    pub subscribers: Option<Subscribers>,
    /// `[audit]`: the disclosure log.
    pub audit: Audit,
    /// `[identity]`: key files and token issuer.
    pub identity: IdentitySettings,
    /// `[canary]`: the leak prober; `None` when absent.
    pub canary: Option<Canary>,
    /// `[api]`: the HTTPS listener for OIDC and the CAMARA APIs; `None` when absent. Its
    /// clients (`[[api.client]]`) are part of the policy.
    pub api: Option<Api>,
    /// `[access_log]`: one JSON line per request; `None` (off) when absent.
    pub access_log: Option<AccessLog>,
    /// `[change]`: what a reload that widens exposure needs.
    pub change: ChangeGate,
    /// The compiled policy from `[[partner]]` tables, `[[api.client]]` tables and `[strip]`.
    pub policy: Policy,
    /// The state folder relative state paths resolved against (docs/operations.md, "State
    /// folder"), for state that has no key of its own (the suspended partners).
    pub state_dir: PathBuf,
}

/// `[change]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeGate {
    /// `widening`: `"allow"` (default) applies a widening reload like any other; `"refuse"`
    /// applies it only with the new policy's hash as approval (`POST /v1/policy/reload
    /// {"approve": "<hash>"}`), so what goes live is what `headwall plan` showed a reviewer.
    pub refuse_widening: bool,
}

/// `[access_log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// `path = "-"`: lines go to standard error.
    Stderr,
    /// A file, resolved in the state folder (default `state/access.log`); opened for appending
    /// and opened again on SIGHUP, for logrotate.
    File(PathBuf),
}

/// `[gateway]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// `listen`: explicit forward-proxy listener. Required. Port 0 binds an ephemeral port.
    pub listen: SocketAddr,
    /// `transparent_listen`: listener for intercepted traffic. Default: none.
    pub transparent_listen: Option<SocketAddr>,
    /// `proxy_protocol`: accept PROXY protocol v2 on the listeners. Default `false`.
    pub proxy_protocol: bool,
    /// `proxy_protocol_from`: load balancers trusted to send PROXY headers. Default `[]`.
    pub proxy_protocol_from: Vec<IpNet>,
    /// `clients`: the client networks the proxy listeners serve (the subscriber's address,
    /// after PROXY protocol); others are closed at accept. Default: none given, any client.
    pub clients: Option<Vec<IpNet>>,
    /// `connect_ports`: ports CONNECT may reach. Default `[443]`.
    pub connect_ports: Vec<u16>,
    /// `connect_timeout`: upstream connect timeout. Default 5 s.
    pub connect_timeout: Duration,
    /// `header_read_timeout`: time allowed for a client's request head. Default 10 s.
    pub header_read_timeout: Duration,
    /// `idle_timeout`: idle keep-alive connections are closed after this. Default 60 s.
    pub idle_timeout: Duration,
    /// `max_connections`: concurrent client connections. Default 20000.
    pub max_connections: usize,
    /// `[gateway.hosts]`: static name → address overrides consulted before DNS; keys normalized.
    pub hosts: HashMap<String, IpAddr>,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// `listen`: admin API address. Default `127.0.0.1:9090`.
    pub listen: SocketAddr,
    /// `token_file`: bearer token for `/v1/*`. Default `state/admin.token`, resolved.
    pub token_file: PathBuf,
    /// `read_token_file`: a second, read-only token (GET endpoints only; audit answers redact
    /// numbers to their last three digits), created like `token_file` when missing. Default:
    /// none.
    pub read_token_file: Option<PathBuf>,
    /// `tls_cert_file` and `tls_key_file` (both or neither), resolved against the config
    /// file's folder: the admin API over HTTPS. `None`: plain HTTP (keep it on loopback).
    pub tls: Option<ApiTls>,
}

/// `[radius]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Radius {
    /// `listen`: UDP accounting address. Default `127.0.0.1:1813`.
    pub listen: SocketAddr,
    /// `country_code`: digits put in place of a single leading `0` of a national-format
    /// Calling-Station-Id (e.g. "44": `07700900123` -> `447700900123`). None: national-format
    /// numbers are rejected (the packet is not acknowledged).
    pub country_code: Option<String>,
    /// `min_ipv6_prefix`: a Framed-IPv6-Prefix shorter than this is malformed (not
    /// acknowledged, never bound). Default 48; 32 to 128.
    pub min_ipv6_prefix: u8,
    /// `[[radius.clients]]`: packet gateways allowed to send accounting. At least one.
    pub clients: Vec<RadiusClient>,
}

/// One `[[radius.clients]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusClient {
    /// `source`: address or CIDR the packets come from.
    pub source: IpNet,
    /// `secret` or `secret_file` (exactly one).
    pub secret: RadiusSecret,
}

/// Where a RADIUS shared secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RadiusSecret {
    /// `secret = "..."` inline.
    Inline(Secret),
    /// `secret_file = "..."`, resolved; the caller reads it (first line, trimmed).
    File(PathBuf),
}

/// A secret string whose `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The raw secret, for the code that needs it (the RADIUS authenticator check).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `[sessions]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sessions {
    /// `backend` with its settings. Default embedded at `state/sessions`.
    pub backend: SessionsBackend,
    /// `stale_after`: a binding with no accounting for this long is never used. Default 2 h.
    pub stale_after: Duration,
}

/// `[sessions].backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionsBackend {
    /// `backend = "embedded"`, persisted at `path` (default `state/sessions`, resolved).
    Embedded {
        /// Persistence path.
        path: PathBuf,
    },
    /// `backend = "redis"` at `redis_url` (required).
    Redis {
        /// `redis://` or `rediss://` URL; several, comma-separated, are a Redis Cluster's seed
        /// nodes. `redis://` only toward this machine.
        url: String,
        /// `tls_ca_file`, `tls_cert_file`, `tls_key_file` for `rediss://`.
        tls: StoreTls,
    },
}

/// `[subscribers]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribers {
    /// `file`: CSV with a header row naming `msisdn` and its other columns (docs/config.md),
    /// resolved. Required in the table.
    pub file: PathBuf,
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// `backend` with its settings. Default embedded at `state/audit.db`.
    pub backend: AuditBackend,
    /// `retention`: records older than this are removed. Default 400 d.
    pub retention: Duration,
    /// `commit_window`: embedded log, longest wait for more disclosures to share one flush
    /// while they come close together. Default 1 ms, at most 10 ms; `"0s"` turns it off.
    pub commit_window: Duration,
}

/// `[audit].backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditBackend {
    /// `backend = "embedded"` (SQLite) at `path` (default `state/audit.db`, resolved).
    Embedded {
        /// Database path.
        path: PathBuf,
    },
    /// `backend = "postgres"` at `url` (required).
    Postgres {
        /// `postgres://` or `postgresql://` URL. Its `sslmode` must encrypt (`require`,
        /// `verify-ca`, `verify-full`) unless every host is this machine.
        url: String,
        /// `tls_ca_file`, `tls_cert_file`, `tls_key_file`.
        tls: StoreTls,
        /// `node`: this gateway's name in the shared log (its own hash chain). Default: the
        /// host name.
        node: Option<String>,
    },
}

/// `[identity]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    /// `pseudonym_key_file`: default `state/pseudonym.key`, resolved.
    pub pseudonym_key_file: PathBuf,
    /// `signing_key_file`: default `state/signing.key`, resolved.
    pub signing_key_file: PathBuf,
    /// `issuer`: the `iss` claim of tokens. Default `headwall`.
    pub issuer: String,
}

/// `[canary]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    /// `url`: an `http://` non-partner endpoint running `headwall leakcheck`. Required.
    pub url: String,
    /// `interval`: time between probes. Default 30 s.
    pub interval: Duration,
    /// `msisdn`: the synthetic subscriber, 6 to 15 digits. Required.
    pub msisdn: String,
    /// `kill_switch`: a detected leak turns enrichment off. Default `true`.
    pub kill_switch: bool,
    /// `unverified_after`: no completed run (clean or not) for this long is a
    /// `canary_unverified` event. Default 5 minutes (two intervals when those are longer);
    /// longer than `interval`.
    pub unverified_after: Duration,
    /// `on_unverified = "pause"`: hold enrichment off while unverified, until a run completes.
    /// Default `"alert"`: the event and an error log line only.
    pub pause_when_unverified: bool,
}

/// `[api]`: network-based authentication and the CAMARA APIs over HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// `listen`: default `127.0.0.1:8443`.
    pub listen: SocketAddr,
    /// `public_url`: the OIDC issuer, `https://` with no query or fragment and no trailing
    /// `/`; every discovery URL is under it. Required.
    pub public_url: String,
    /// `tls_cert_file` and `tls_key_file` (both or neither), resolved. `None`: plain HTTP,
    /// allowed only behind `proxy_protocol_from` balancers.
    pub tls: Option<ApiTls>,
    /// `proxy_protocol_from`: TLS-terminating balancers that send PROXY v2. Default `[]`.
    pub proxy_protocol_from: Vec<IpNet>,
    /// `subscriber_networks`: device addresses `/authorize` may identify. Required, non-empty.
    pub subscriber_networks: Vec<IpNet>,
    /// `code_lifetime`: default 60 s, at most 600 s (RFC 6749 §4.1.2).
    pub code_lifetime: Duration,
    /// `access_token_lifetime`: default 300 s, at most 300 s.
    pub access_token_lifetime: Duration,
}

/// TLS toward a shared store, resolved: `[audit]`'s PostgreSQL and `[sessions]`' Redis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTls {
    /// `tls_ca_file`: PEM CA certificates the server's chain must lead to. `None`: the
    /// system's trust store.
    pub ca_file: Option<PathBuf>,
    /// `tls_cert_file` and `tls_key_file` (0600): a client certificate, when the server asks
    /// for one.
    pub client: Option<ApiTls>,
}

/// A certificate chain and key (PEM), resolved: `[api]`'s and `[admin]`'s listeners, and a
/// shared store's client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTls {
    /// `tls_cert_file`.
    pub cert_file: PathBuf,
    /// `tls_key_file` (0600).
    pub key_file: PathBuf,
}
