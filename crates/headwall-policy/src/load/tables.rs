//! One compiler per table, from `[gateway]` to `[canary]`; the partners are in `partner`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::Loader;
use super::raw::{
    RawAccessLog, RawAdmin, RawAudit, RawCanary, RawChange, RawGateway, RawIdentity, RawRadius,
    RawSessions, RawSubscribers, Str,
};
use super::store::RawTls;
use crate::config::{
    AccessLog, Admin, ApiTls, Audit, AuditBackend, Canary, ChangeGate, Gateway, IdentitySettings,
    Radius, RadiusClient, RadiusSecret, Secret, Sessions, SessionsBackend, Subscribers,
};
use crate::host::normalize_host;

/// `[radius].min_ipv6_prefix` when unset: a Framed-IPv6-Prefix shorter than this is malformed.
const DEFAULT_MIN_IPV6_PREFIX: u8 = 48;
/// The shortest `min_ipv6_prefix` accepted: a /32 is a whole operator's allocation, never one
/// subscriber's.
const MIN_IPV6_PREFIX_FLOOR: u8 = 32;

fn unspecified_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
}

/// Longest `[audit].commit_window` accepted.
const MAX_COMMIT_WINDOW: Duration = Duration::from_millis(10);

impl Loader<'_> {
    pub(super) fn gateway(&mut self, raw: Option<Spanned<RawGateway>>) -> Gateway {
        const T: &str = "[gateway]";
        let Some(raw) = raw else {
            self.error(
                0,
                "missing required table [gateway]; add it with at least \
                 `listen = \"127.0.0.1:8080\"`",
            );
            return Gateway {
                listen: unspecified_addr(),
                transparent_listen: None,
                proxy_protocol: false,
                proxy_protocol_from: Vec::new(),
                clients: None,
                connect_ports: vec![443],
                connect_timeout: Duration::from_secs(5),
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                max_connections: 20_000,
                hosts: HashMap::new(),
            };
        };
        let span = raw.span();
        let g = raw.into_inner();
        let listen = match &g.listen {
            Some(v) => self
                .socket(v, "`listen` in [gateway]")
                .unwrap_or_else(unspecified_addr),
            None => {
                self.missing(span, "listen", T, "\"127.0.0.1:8080\"");
                unspecified_addr()
            }
        };
        let transparent_listen = g
            .transparent_listen
            .as_ref()
            .and_then(|v| self.socket(v, "`transparent_listen` in [gateway]"));
        let proxy_protocol_from: Vec<IpNet> = g
            .proxy_protocol_from
            .iter()
            .flatten()
            .filter_map(|v| self.net(v, "`proxy_protocol_from` in [gateway]"))
            .collect();
        let clients = g.clients.as_ref().map(|list| {
            if list.get_ref().is_empty() {
                self.error(
                    list.span().start,
                    "`clients` in [gateway] is empty, so every connection would be closed; \
                     list the subscriber networks, e.g. clients = [\"10.64.0.0/10\"], or \
                     remove the key to serve any client",
                );
            }
            list.get_ref()
                .iter()
                .filter_map(|v| self.net(v, "`clients` in [gateway]"))
                .collect::<Vec<IpNet>>()
        });
        let proxy_protocol = g.proxy_protocol.as_ref().is_some_and(|v| *v.get_ref());
        if let Some(flag) = &g.proxy_protocol
            && *flag.get_ref()
            && g.proxy_protocol_from.as_ref().is_none_or(Vec::is_empty)
        {
            self.error(
                flag.span().start,
                "proxy_protocol = true but `proxy_protocol_from` lists no load balancers, so \
                 every connection would be closed; add proxy_protocol_from = [\"CIDR\", ...]",
            );
        }
        let connect_ports = match &g.connect_ports {
            Some(ports) => ports
                .iter()
                .filter_map(|p| self.port(p, "`connect_ports` in [gateway]"))
                .collect(),
            None => vec![443],
        };
        let connect_timeout = self.duration(
            g.connect_timeout.as_ref(),
            "`connect_timeout` in [gateway]",
            Duration::from_secs(5),
        );
        let header_read_timeout = self.duration(
            g.header_read_timeout.as_ref(),
            "`header_read_timeout` in [gateway]",
            Duration::from_secs(10),
        );
        let idle_timeout = self.duration(
            g.idle_timeout.as_ref(),
            "`idle_timeout` in [gateway]",
            Duration::from_secs(60),
        );
        let max_connections = match &g.max_connections {
            None => 20_000,
            Some(v) => match usize::try_from(*v.get_ref()) {
                Ok(n) if n > 0 => n,
                _ => {
                    self.error(
                        v.span().start,
                        format!(
                            "`max_connections` in [gateway] must be a positive number, got {}; \
                             the default is 20000",
                            v.get_ref()
                        ),
                    );
                    20_000
                }
            },
        };
        let mut hosts = HashMap::new();
        for (name, addr) in g.hosts.iter().flatten() {
            let at = name.span().start;
            let host = match normalize_host(name.get_ref()) {
                Ok(host) if name.get_ref().contains(':') && !host.starts_with('[') => {
                    self.error(
                        at,
                        format!(
                            "[gateway.hosts] key `{}` contains a port; map the host name only",
                            name.get_ref()
                        ),
                    );
                    continue;
                }
                Ok(host) => host,
                Err(why) => {
                    self.error(at, format!("invalid host name in [gateway.hosts]: {why}"));
                    continue;
                }
            };
            let Ok(ip) = addr.get_ref().parse::<IpAddr>() else {
                self.error(
                    addr.span().start,
                    format!(
                        "invalid IP address `{}` for `{}` in [gateway.hosts]; write an address \
                         such as \"192.0.2.10\" or \"2001:db8::10\"",
                        addr.get_ref(),
                        name.get_ref()
                    ),
                );
                continue;
            };
            if hosts.insert(host.clone(), ip).is_some() {
                self.error(
                    at,
                    format!(
                        "host `{host}` appears twice in [gateway.hosts] (names compare \
                         case-insensitively, without a trailing dot); keep one"
                    ),
                );
            }
        }
        Gateway {
            listen,
            transparent_listen,
            proxy_protocol,
            proxy_protocol_from,
            clients,
            connect_ports,
            connect_timeout,
            header_read_timeout,
            idle_timeout,
            max_connections,
            hosts,
        }
    }

    pub(super) fn admin(&mut self, raw: Option<RawAdmin>) -> Admin {
        let raw = raw.unwrap_or(RawAdmin {
            listen: None,
            token_file: None,
            read_token_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        });
        let tls = self
            .tls_pair(
                "[admin]",
                raw.tls_cert_file.as_ref(),
                raw.tls_key_file.as_ref(),
                "for plain HTTP on loopback",
            )
            .flatten();
        let read_token_file = raw.read_token_file.as_ref().map(|path| {
            self.state_path(
                Some(path),
                "`read_token_file` in [admin]",
                "state/admin-read.token",
            )
        });
        Admin {
            listen: self.socket_or(
                raw.listen.as_ref(),
                "`listen` in [admin]",
                SocketAddr::from((Ipv4Addr::LOCALHOST, 9090)),
            ),
            token_file: self.state_path(
                raw.token_file.as_ref(),
                "`token_file` in [admin]",
                "state/admin.token",
            ),
            read_token_file,
            tls,
        }
    }

    /// A listener's `tls_cert_file` and `tls_key_file`, resolved against the config file's
    /// folder: `Some(Some(pair))` with both, `Some(None)` with neither, `None` (an error
    /// reported) with one alone. `neither` says what leaving both out means for `table`.
    pub(super) fn tls_pair(
        &mut self,
        table: &str,
        cert: Option<&Str>,
        key: Option<&Str>,
        neither: &str,
    ) -> Option<Option<ApiTls>> {
        match (cert, key) {
            (Some(cert), Some(key)) => Some(Some(ApiTls {
                cert_file: self.path(Some(cert), &format!("`tls_cert_file` in {table}"), ""),
                key_file: self.path(Some(key), &format!("`tls_key_file` in {table}"), ""),
            })),
            (Some(one), None) | (None, Some(one)) => {
                self.error(
                    one.span().start,
                    format!(
                        "{table} needs both `tls_cert_file` and `tls_key_file` (PEM certificate \
                         chain and its key), or neither {neither}"
                    ),
                );
                None
            }
            (None, None) => Some(None),
        }
    }

    pub(super) fn radius(&mut self, raw: Spanned<RawRadius>) -> Radius {
        let span = raw.span();
        let raw = raw.into_inner();
        let listen = self.socket_or(
            raw.listen.as_ref(),
            "`listen` in [radius]",
            SocketAddr::from((Ipv4Addr::LOCALHOST, 1813)),
        );
        let mut clients = Vec::new();
        match raw.clients {
            None => self.error(
                span.start,
                "[radius] has no [[radius.clients]], so every accounting packet would be dropped; \
                 add one per packet gateway with `source` and `secret` or `secret_file`, or \
                 remove [radius]",
            ),
            Some(list) => {
                let mut seen: HashMap<IpNet, usize> = HashMap::new();
                for client in list.into_inner() {
                    let cspan = client.span();
                    let client = client.into_inner();
                    let source = match &client.source {
                        Some(v) => {
                            let net = self.net(v, "`source` in [[radius.clients]]");
                            if let Some(net) = net
                                && let Some(line) = seen.insert(net, self.line_of(v.span().start))
                            {
                                self.error(
                                    v.span().start,
                                    format!(
                                        "RADIUS client source `{net}` is already listed on line \
                                         {line}; keep one entry per source"
                                    ),
                                );
                            }
                            net
                        }
                        None => {
                            self.missing(
                                cspan.clone(),
                                "source",
                                "[[radius.clients]]",
                                "\"192.0.2.1/32\"",
                            );
                            None
                        }
                    };
                    let secret = match (&client.secret, &client.secret_file) {
                        (Some(secret), None) => {
                            if secret.get_ref().is_empty() {
                                self.error(
                                    secret.span().start,
                                    "`secret` in [[radius.clients]] is empty; set the shared \
                                     secret configured on the packet gateway",
                                );
                            }
                            Some(RadiusSecret::Inline(Secret::new(secret.get_ref().clone())))
                        }
                        (None, Some(file)) => Some(RadiusSecret::File(self.path(
                            Some(file),
                            "`secret_file` in [[radius.clients]]",
                            "radius.secret",
                        ))),
                        (Some(secret), Some(_)) => {
                            self.error(
                                secret.span().start,
                                "[[radius.clients]] sets both `secret` and `secret_file`; keep \
                                 exactly one",
                            );
                            None
                        }
                        (None, None) => {
                            self.error(
                                cspan.start,
                                "[[radius.clients]] needs exactly one of `secret` or \
                                 `secret_file`; add e.g. secret_file = \"radius.secret\"",
                            );
                            None
                        }
                    };
                    if let (Some(source), Some(secret)) = (source, secret) {
                        clients.push(RadiusClient { source, secret });
                    }
                }
            }
        }
        let country_code = raw.country_code.as_ref().and_then(|v| {
            let text = v.get_ref();
            let valid = (1..=3).contains(&text.len())
                && text.bytes().all(|b| b.is_ascii_digit())
                && !text.starts_with('0');
            if valid {
                Some(text.clone())
            } else {
                self.error(
                    v.span().start,
                    "`country_code` in [radius] must be 1 to 3 digits without `+` or leading 0, \
                     e.g. \"44\"",
                );
                None
            }
        });
        let min_ipv6_prefix = match &raw.min_ipv6_prefix {
            None => DEFAULT_MIN_IPV6_PREFIX,
            Some(v) => match u8::try_from(*v.get_ref()) {
                Ok(n) if (MIN_IPV6_PREFIX_FLOOR..=128).contains(&n) => n,
                _ => {
                    self.error(
                        v.span().start,
                        format!(
                            "`min_ipv6_prefix` in [radius] must be a prefix length from \
                             {MIN_IPV6_PREFIX_FLOOR} to 128, got {}; the default is \
                             {DEFAULT_MIN_IPV6_PREFIX} (subscribers usually get a /64)",
                            v.get_ref()
                        ),
                    );
                    DEFAULT_MIN_IPV6_PREFIX
                }
            },
        };
        Radius {
            listen,
            country_code,
            min_ipv6_prefix,
            clients,
        }
    }

    pub(super) fn sessions(&mut self, raw: Option<RawSessions>) -> Sessions {
        let raw = raw.unwrap_or(RawSessions {
            backend: None,
            path: None,
            redis_url: None,
            stale_after: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        });
        let raw_tls = RawTls {
            ca_file: raw.tls_ca_file.as_ref(),
            cert_file: raw.tls_cert_file.as_ref(),
            key_file: raw.tls_key_file.as_ref(),
        };
        let stale_after = self.duration(
            raw.stale_after.as_ref(),
            "`stale_after` in [sessions]",
            Duration::from_secs(2 * 3600),
        );
        let backend = match raw
            .backend
            .as_ref()
            .map(|b| (b.get_ref().as_str(), b.span()))
        {
            None | Some(("embedded", _)) => {
                if let Some(url) = &raw.redis_url {
                    self.error(
                        url.span().start,
                        "`redis_url` is set but [sessions] backend is \"embedded\"; remove it or \
                         set backend = \"redis\"",
                    );
                }
                self.unused_tls(&raw_tls, "redis");
                SessionsBackend::Embedded {
                    path: self.state_path(
                        raw.path.as_ref(),
                        "`path` in [sessions]",
                        "state/sessions",
                    ),
                }
            }
            Some(("redis", span)) => {
                if let Some(path) = &raw.path {
                    self.error(
                        path.span().start,
                        "`path` is only used with backend = \"embedded\"; remove it",
                    );
                }
                let tls = self.store_tls("[sessions]", &raw_tls);
                match &raw.redis_url {
                    Some(url) => {
                        let checked =
                            self.url(url, "`redis_url` in [sessions]", &["redis", "rediss"]);
                        self.redis_transport(url, &raw_tls);
                        SessionsBackend::Redis { url: checked, tls }
                    }
                    None => {
                        self.error(
                            span.start,
                            "backend = \"redis\" needs `redis_url` in [sessions]; add e.g. \
                             redis_url = \"redis://127.0.0.1:6379/0\"",
                        );
                        SessionsBackend::Redis {
                            url: String::new(),
                            tls,
                        }
                    }
                }
            }
            Some((other, span)) => {
                self.error(
                    span.start,
                    format!(
                        "unknown sessions backend `{other}`; expected \"embedded\" or \"redis\""
                    ),
                );
                SessionsBackend::Embedded {
                    path: PathBuf::new(),
                }
            }
        };
        Sessions {
            backend,
            stale_after,
        }
    }

    pub(super) fn subscribers(&mut self, raw: Spanned<RawSubscribers>) -> Subscribers {
        let span = raw.span();
        let raw = raw.into_inner();
        if raw.file.is_none() {
            self.missing(span, "file", "[subscribers]", "\"subscribers.csv\"");
        }
        Subscribers {
            file: self.path(
                raw.file.as_ref(),
                "`file` in [subscribers]",
                "subscribers.csv",
            ),
        }
    }

    /// `[access_log]`: `path` in the state folder, or `"-"` for standard error.
    pub(super) fn access_log(&mut self, raw: RawAccessLog) -> AccessLog {
        match raw.path {
            Some(path) if path.get_ref().trim() == "-" => AccessLog::Stderr,
            path => AccessLog::File(self.state_path(
                path.as_ref(),
                "`path` in [access_log]",
                "state/access.log",
            )),
        }
    }

    /// `[change]`: `widening = "allow" | "refuse"`.
    pub(super) fn change(&mut self, raw: RawChange) -> ChangeGate {
        let refuse_widening = match &raw.widening {
            None => false,
            Some(value) => match value.get_ref().as_str() {
                "allow" => false,
                "refuse" => true,
                other => {
                    self.error(
                        value.span().start,
                        format!(
                            "`widening` in [change] is \"allow\" or \"refuse\", not \"{other}\"; \
                             \"refuse\" applies a reload that widens exposure only with the \
                             new policy's hash as approval"
                        ),
                    );
                    false
                }
            },
        };
        ChangeGate { refuse_widening }
    }

    /// `commit_window` in [audit]: zero turns it off, more than [`MAX_COMMIT_WINDOW`] is refused.
    fn commit_window(&mut self, value: Option<&Str>) -> Duration {
        const DEFAULT: Duration = Duration::from_millis(1);
        let Some(value) = value else { return DEFAULT };
        match crate::duration::parse_duration(value.get_ref()) {
            Ok(window) if window <= MAX_COMMIT_WINDOW => window,
            Ok(_) => {
                self.error(
                    value.span().start,
                    "`commit_window` in [audit] is at most \"10ms\": every partner request may \
                     wait that long for its record (default \"1ms\"; \"0s\" turns it off)",
                );
                DEFAULT
            }
            Err(why) => {
                self.error(
                    value.span().start,
                    format!(
                        "invalid duration `{}` for `commit_window` in [audit]: {why}",
                        value.get_ref()
                    ),
                );
                DEFAULT
            }
        }
    }

    pub(super) fn audit(&mut self, raw: Option<RawAudit>) -> Audit {
        let raw = raw.unwrap_or(RawAudit {
            backend: None,
            path: None,
            url: None,
            node: None,
            retention: None,
            commit_window: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        });
        let raw_tls = RawTls {
            ca_file: raw.tls_ca_file.as_ref(),
            cert_file: raw.tls_cert_file.as_ref(),
            key_file: raw.tls_key_file.as_ref(),
        };
        let retention = self.duration(
            raw.retention.as_ref(),
            "`retention` in [audit]",
            Duration::from_secs(400 * 86_400),
        );
        let commit_window = self.commit_window(raw.commit_window.as_ref());
        let backend = match raw
            .backend
            .as_ref()
            .map(|b| (b.get_ref().as_str(), b.span()))
        {
            None | Some(("embedded", _)) => {
                if let Some(url) = &raw.url {
                    self.error(
                        url.span().start,
                        "`url` is set but [audit] backend is \"embedded\"; remove it or set \
                         backend = \"postgres\"",
                    );
                }
                if let Some(node) = &raw.node {
                    self.error(
                        node.span().start,
                        "`node` is only used with backend = \"postgres\"; remove it",
                    );
                }
                self.unused_tls(&raw_tls, "postgres");
                AuditBackend::Embedded {
                    path: self.state_path(raw.path.as_ref(), "`path` in [audit]", "state/audit.db"),
                }
            }
            Some(("postgres", span)) => {
                if let Some(path) = &raw.path {
                    self.error(
                        path.span().start,
                        "`path` is only used with backend = \"embedded\"; remove it",
                    );
                }
                let node = raw.node.as_ref().map(|node| {
                    let name = node.get_ref();
                    let valid = (1..=64).contains(&name.len())
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
                    if !valid {
                        self.error(
                            node.span().start,
                            "`node` in [audit] must be 1 to 64 letters, digits, `.`, `-` or `_` \
                             (a name unique in the fleet, e.g. node = \"gw-1\")",
                        );
                    }
                    name.clone()
                });
                let tls = self.store_tls("[audit]", &raw_tls);
                match &raw.url {
                    Some(url) => {
                        let checked =
                            self.url(url, "`url` in [audit]", &["postgres", "postgresql"]);
                        self.postgres_transport(url, &raw_tls);
                        AuditBackend::Postgres {
                            url: checked,
                            node,
                            tls,
                        }
                    }
                    None => {
                        self.error(
                            span.start,
                            "backend = \"postgres\" needs `url` in [audit]; add e.g. \
                             url = \"postgres://headwall@127.0.0.1:5432/headwall\"",
                        );
                        AuditBackend::Postgres {
                            url: String::new(),
                            node,
                            tls,
                        }
                    }
                }
            }
            Some((other, span)) => {
                self.error(
                    span.start,
                    format!(
                        "unknown audit backend `{other}`; expected \"embedded\" or \"postgres\""
                    ),
                );
                AuditBackend::Embedded {
                    path: PathBuf::new(),
                }
            }
        };
        Audit {
            backend,
            retention,
            commit_window,
        }
    }

    pub(super) fn identity(&mut self, raw: Option<RawIdentity>) -> IdentitySettings {
        let raw = raw.unwrap_or(RawIdentity {
            pseudonym_key_file: None,
            signing_key_file: None,
            issuer: None,
        });
        let issuer = match &raw.issuer {
            Some(v) if v.get_ref().trim().is_empty() => {
                self.error(
                    v.span().start,
                    "`issuer` in [identity] is empty; name the operator, e.g. \
                     issuer = \"headwall.example-operator\"",
                );
                String::new()
            }
            Some(v) => v.get_ref().clone(),
            None => "headwall".to_owned(),
        };
        IdentitySettings {
            pseudonym_key_file: self.state_path(
                raw.pseudonym_key_file.as_ref(),
                "`pseudonym_key_file` in [identity]",
                "state/pseudonym.key",
            ),
            signing_key_file: self.state_path(
                raw.signing_key_file.as_ref(),
                "`signing_key_file` in [identity]",
                "state/signing.key",
            ),
            issuer,
        }
    }

    pub(super) fn canary(&mut self, raw: Spanned<RawCanary>) -> Canary {
        let span = raw.span();
        let raw = raw.into_inner();
        let url = match &raw.url {
            Some(url) if url.get_ref().starts_with("https://") => {
                self.error(
                    url.span().start,
                    "`url` in [canary] is https://, but the canary must probe over plain HTTP: \
                     enrichment happens only on plain HTTP (a TLS request passes as a tunnel \
                     and is never enriched), so an https probe would always come back clean; \
                     point it at the leak-check API's http:// address",
                );
                url.get_ref().clone()
            }
            Some(url) => self.url(url, "`url` in [canary]", &["http"]),
            None => {
                self.missing(
                    span.clone(),
                    "url",
                    "[canary]",
                    "\"http://leakcheck.example/api/v1/check\"",
                );
                String::new()
            }
        };
        let msisdn = match &raw.msisdn {
            Some(v) => {
                let digits = v.get_ref();
                if !(6..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    self.error(
                        v.span().start,
                        "`msisdn` in [canary] must be 6 to 15 digits in international form, no \
                         `+` or spaces, e.g. \"447700900000\"",
                    );
                }
                digits.clone()
            }
            None => {
                self.missing(span, "msisdn", "[canary]", "\"447700900000\"");
                String::new()
            }
        };
        let interval = self.duration(
            raw.interval.as_ref(),
            "`interval` in [canary]",
            Duration::from_secs(30),
        );
        // Default 5 minutes, or two intervals when those are longer (a run comes only once an
        // interval).
        let unverified_after = self.duration(
            raw.unverified_after.as_ref(),
            "`unverified_after` in [canary]",
            Duration::from_secs(300).max(interval.saturating_mul(2)),
        );
        if let Some(value) = &raw.unverified_after
            && unverified_after <= interval
        {
            self.error(
                value.span().start,
                "`unverified_after` in [canary] must be longer than `interval`: a run completes \
                 only once an interval, so a shorter limit would call every gap unverified \
                 (default \"5m\")",
            );
        }
        let pause_when_unverified = match &raw.on_unverified {
            None => false,
            Some(value) => match value.get_ref().as_str() {
                "alert" => false,
                "pause" => true,
                other => {
                    self.error(
                        value.span().start,
                        format!(
                            "`on_unverified` in [canary] is \"alert\" or \"pause\", not \
                             \"{other}\"; \"pause\" holds enrichment off until a canary run \
                             completes again"
                        ),
                    );
                    false
                }
            },
        };
        Canary {
            url,
            interval,
            msisdn,
            kill_switch: raw.kill_switch.unwrap_or(true),
            unverified_after,
            pause_when_unverified,
        }
    }
}
