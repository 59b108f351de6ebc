//! Loading: TOML text → raw serde tables (with spans) → validated [`Config`] and [`Policy`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{
    Admin, Audit, AuditBackend, Canary, Config, Gateway, IdentitySettings, Radius, RadiusClient,
    RadiusSecret, Secret, Sessions, SessionsBackend, Subscribers,
};
use crate::duration::parse_duration;
use crate::error::{ConfigError, ConfigErrors};
use crate::header::{is_field_name, normalize_header_name};
use crate::host::{HostPattern, normalize_host, parent_suffixes};
use crate::policy::{Partner, PartnerHeader, Policy, Purpose, ValueKind};

mod api;

type Str = Spanned<String>;

/// `[radius].min_ipv6_prefix` when unset: a Framed-IPv6-Prefix shorter than this is malformed.
const DEFAULT_MIN_IPV6_PREFIX: u8 = 48;
/// The shortest `min_ipv6_prefix` accepted: a /32 is a whole operator's allocation, never one
/// subscriber's.
const MIN_IPV6_PREFIX_FLOOR: u8 = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    gateway: Option<Spanned<RawGateway>>,
    admin: Option<RawAdmin>,
    radius: Option<Spanned<RawRadius>>,
    sessions: Option<RawSessions>,
    subscribers: Option<Spanned<RawSubscribers>>,
    audit: Option<RawAudit>,
    identity: Option<RawIdentity>,
    strip: Option<RawStrip>,
    canary: Option<Spanned<RawCanary>>,
    api: Option<Spanned<api::RawApi>>,
    #[serde(default)]
    partner: Vec<Spanned<RawPartner>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    listen: Option<Str>,
    transparent_listen: Option<Str>,
    proxy_protocol: Option<Spanned<bool>>,
    proxy_protocol_from: Option<Vec<Str>>,
    connect_ports: Option<Vec<Spanned<i64>>>,
    connect_timeout: Option<Str>,
    header_read_timeout: Option<Str>,
    idle_timeout: Option<Str>,
    max_connections: Option<Spanned<i64>>,
    hosts: Option<BTreeMap<Str, Str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<Str>,
    token_file: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRadius {
    listen: Option<Str>,
    country_code: Option<Str>,
    min_ipv6_prefix: Option<Spanned<i64>>,
    clients: Option<Spanned<Vec<Spanned<RawRadiusClient>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRadiusClient {
    source: Option<Str>,
    secret: Option<Str>,
    secret_file: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessions {
    backend: Option<Str>,
    path: Option<Str>,
    redis_url: Option<Str>,
    stale_after: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubscribers {
    file: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    backend: Option<Str>,
    path: Option<Str>,
    url: Option<Str>,
    node: Option<Str>,
    retention: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    pseudonym_key_file: Option<Str>,
    signing_key_file: Option<Str>,
    issuer: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStrip {
    headers: Option<Vec<Str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCanary {
    url: Option<Str>,
    interval: Option<Str>,
    msisdn: Option<Str>,
    kill_switch: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartner {
    name: Option<Str>,
    purpose: Option<Str>,
    hosts: Option<Spanned<Vec<Str>>>,
    ports: Option<Spanned<Vec<Spanned<i64>>>>,
    destinations: Option<Spanned<Vec<Str>>>,
    headers: Option<Spanned<BTreeMap<Str, Str>>>,
    justification: Option<Str>,
}

/// Header names a partner may not receive: framing, hop-by-hop and credentials (RFC 9110 §7.6.1,
/// RFC 9112 §6, §9.6); inserting them would change how the request is delivered or whose it is.
const FORBIDDEN_PARTNER_HEADERS: [&str; 11] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "cookie",
];

/// Loads and validates a whole configuration.
///
/// `origin` is the file as the user named it (shown in errors); `base_dir` is the folder that
/// relative paths resolve against (joined, not canonicalized; no I/O happens here). A TOML
/// syntax or type error is reported alone; otherwise every semantic error found is reported,
/// sorted by position.
pub fn load(origin: &str, text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let raw = parse(origin, text)?;
    let mut cx = Cx {
        lines: LineIndex::new(text),
        base_dir,
        errors: Vec::new(),
    };
    let gateway = cx.gateway(raw.gateway);
    let admin = cx.admin(raw.admin);
    let radius = raw.radius.map(|r| cx.radius(r));
    let sessions = cx.sessions(raw.sessions);
    let subscribers = raw.subscribers.map(|s| cx.subscribers(s));
    let audit = cx.audit(raw.audit);
    let identity = cx.identity(raw.identity);
    let canary = raw.canary.map(|c| cx.canary(c));
    let policy = cx.policy(raw.partner, raw.strip);
    let api = raw.api.as_ref().map(|a| cx.api(a));
    let clients = match raw.api {
        Some(raw) => cx.api_clients(raw.into_inner().into_clients(), &policy),
        None => Vec::new(),
    };
    let policy = policy.with_clients(clients);
    cx.finish(origin)?;
    Ok(Config {
        gateway,
        admin,
        radius,
        sessions,
        subscribers,
        audit,
        identity,
        canary,
        api,
        policy,
    })
}

/// Loads only the policy (`[[partner]]`, `[[api.client]]` and `[strip]`) from a whole configuration file,
/// as `headwall plan` needs. The file must still be valid TOML with no unknown keys; errors in
/// other tables are not reported and `[gateway]` is not required.
pub fn load_policy(origin: &str, text: &str) -> Result<Policy, ConfigErrors> {
    let raw = parse(origin, text)?;
    let mut cx = Cx {
        lines: LineIndex::new(text),
        base_dir: Path::new(""),
        errors: Vec::new(),
    };
    let policy = cx.policy(raw.partner, raw.strip);
    let clients = match raw.api {
        Some(raw) => cx.api_clients(raw.into_inner().into_clients(), &policy),
        None => Vec::new(),
    };
    let policy = policy.with_clients(clients);
    cx.finish(origin)?;
    Ok(policy)
}

fn parse(origin: &str, text: &str) -> Result<RawConfig, ConfigErrors> {
    toml::from_str::<RawConfig>(text).map_err(|err| {
        let offset = err.span().map_or(0, |span| span.start);
        let (line, column) = position(text, offset);
        ConfigErrors(vec![ConfigError {
            file: origin.to_owned(),
            line,
            column,
            message: toml_message(&err),
        }])
    })
}

/// 1-based line and character column of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).position(offset)
}

/// Byte offsets where lines start, so each position lookup is a binary search rather than a
/// scan of the text (a 1,000-partner file has thousands of spans).
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> LineIndex<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        (line, column)
    }
}

/// The key path toml attaches to a deserialization error. toml exposes it only through
/// `Display` when no input is attached (`in `a.b``), so render it that way.
fn error_keys(err: &toml::de::Error) -> Vec<String> {
    let mut bare = err.clone();
    bare.set_input(None);
    let rendered = bare.to_string();
    rendered
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("in `").and_then(|l| l.strip_suffix('`')))
        .map(|path| path.split('.').map(str::to_owned).collect())
        .unwrap_or_default()
}

fn table_label(keys: &[String]) -> String {
    match keys.join(".").as_str() {
        "" => "at the top level".to_owned(),
        path @ ("partner" | "radius.clients") => format!("in [[{path}]]"),
        path => format!("in [{path}]"),
    }
}

fn toml_message(err: &toml::de::Error) -> String {
    let message = err.message().trim_end();
    let keys = error_keys(err);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // rest = "name`, expected one of `a`, `b`": the quoted names sit at even split indices.
        let parts: Vec<&str> = rest.split('`').collect();
        let name = parts.first().copied().unwrap_or_default();
        let expected: Vec<&str> = parts.iter().skip(2).step_by(2).copied().collect();
        let mut text = format!("unknown key `{name}` {}", table_label(&keys));
        if expected.is_empty() {
            text.push_str("; this table takes no keys");
        } else {
            text.push_str(&format!("; expected one of: {}", expected.join(", ")));
            if let Some(close) = expected.iter().find(|e| edit_distance(name, e) <= 2) {
                text.push_str(&format!(" (did you mean `{close}`?)"));
            }
        }
        return text;
    }
    if message.starts_with("duplicate key") {
        return format!("{message}: a key may appear only once in a table; remove one");
    }
    let message = message.replace("expected i64", "expected an integer");
    // Map keys may contain dots, which the rendered key path cannot tell apart from nesting.
    let (field, table): (String, &[String]) = match keys.as_slice() {
        [a, b, rest @ ..] if a == "gateway" && b == "hosts" && !rest.is_empty() => {
            (rest.join("."), &keys[..2])
        }
        [a, b, rest @ ..] if a == "partner" && b == "headers" && !rest.is_empty() => {
            (rest.join("."), &keys[..2])
        }
        [parent @ .., field] => (field.clone(), parent),
        [] => return message,
    };
    let table = match table {
        [a, b] if a == "partner" && b == "headers" => "in `headers` of [[partner]]".to_owned(),
        other => table_label(other),
    };
    format!("`{field}` {table}: {message}")
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn unspecified_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
}

/// A partner under construction, with the spans overlap errors point at.
struct Compiled {
    partner: Partner,
    host_spans: Vec<usize>,
}

struct Cx<'a> {
    lines: LineIndex<'a>,
    base_dir: &'a Path,
    errors: Vec<(usize, String)>,
}

impl Cx<'_> {
    fn error(&mut self, at: usize, message: impl Into<String>) {
        self.errors.push((at, message.into()));
    }

    fn finish(self, origin: &str) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let mut errors: Vec<ConfigError> = self
            .errors
            .into_iter()
            .map(|(offset, message)| {
                let (line, column) = self.lines.position(offset);
                ConfigError {
                    file: origin.to_owned(),
                    line,
                    column,
                    message,
                }
            })
            .collect();
        errors.sort_by_key(|e| (e.line, e.column));
        Err(ConfigErrors(errors))
    }

    fn line_of(&self, offset: usize) -> usize {
        self.lines.position(offset).0
    }

    fn socket(&mut self, value: &Str, what: &str) -> Option<SocketAddr> {
        match value.get_ref().parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    value.span().start,
                    format!(
                        "invalid address `{}` for {what}: expected IP:port, e.g. \
                         \"127.0.0.1:8080\" or \"[::1]:8080\" (host names are not accepted)",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn socket_or(&mut self, value: Option<&Str>, what: &str, default: SocketAddr) -> SocketAddr {
        value.and_then(|v| self.socket(v, what)).unwrap_or(default)
    }

    fn duration(&mut self, value: Option<&Str>, what: &str, default: Duration) -> Duration {
        let Some(value) = value else { return default };
        match parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.error(
                    value.span().start,
                    format!("{what} must be greater than zero, e.g. \"30s\""),
                );
                default
            }
            Ok(d) => d,
            Err(why) => {
                self.error(
                    value.span().start,
                    format!("invalid duration `{}` for {what}: {why}", value.get_ref()),
                );
                default
            }
        }
    }

    fn net(&mut self, value: &Str, what: &str) -> Option<IpNet> {
        let text = value.get_ref().as_str();
        let net = if text.contains('/') {
            text.parse::<IpNet>().ok()
        } else {
            text.parse::<IpAddr>().ok().map(IpNet::from)
        };
        match net {
            Some(net) if net.trunc() != net => {
                self.error(
                    value.span().start,
                    format!(
                        "network `{text}` in {what} has bits set after the prefix; write `{}` \
                         for the whole network, or `{}/{}` for the one address",
                        net.trunc(),
                        net.addr(),
                        net.max_prefix_len()
                    ),
                );
                None
            }
            Some(net) => Some(net),
            None => {
                self.error(
                    value.span().start,
                    format!(
                        "invalid address or network `{text}` in {what}: expected an IP address or \
                         CIDR, e.g. \"192.0.2.10\", \"10.0.0.0/8\" or \"2001:db8::/32\""
                    ),
                );
                None
            }
        }
    }

    fn port(&mut self, value: &Spanned<i64>, what: &str) -> Option<u16> {
        match u16::try_from(*value.get_ref()) {
            Ok(port) if port != 0 => Some(port),
            _ => {
                self.error(
                    value.span().start,
                    format!(
                        "port {} in {what} is out of range; use 1 to 65535",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn path(&mut self, value: Option<&Str>, what: &str, default: &str) -> PathBuf {
        match value {
            Some(v) if v.get_ref().trim().is_empty() => {
                self.error(
                    v.span().start,
                    format!("{what} is empty; give a file path, e.g. \"{default}\""),
                );
                self.base_dir.join(default)
            }
            Some(v) => self.base_dir.join(v.get_ref()),
            None => self.base_dir.join(default),
        }
    }

    fn url(&mut self, value: &Str, what: &str, schemes: &[&str]) -> String {
        let url = value.get_ref();
        let ok = schemes.iter().any(|scheme| {
            url.strip_prefix(scheme)
                .and_then(|rest| rest.strip_prefix("://"))
                .is_some_and(|rest| !rest.is_empty())
        });
        if !ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            let forms: Vec<String> = schemes.iter().map(|s| format!("{s}://...")).collect();
            self.error(
                value.span().start,
                format!("invalid URL for {what}: expected {}", forms.join(" or ")),
            );
        }
        url.clone()
    }

    fn missing(&mut self, table: Range<usize>, key: &str, table_name: &str, example: &str) {
        self.error(
            table.start,
            format!("missing required key `{key}` in {table_name}; add e.g. {key} = {example}"),
        );
    }

    fn gateway(&mut self, raw: Option<Spanned<RawGateway>>) -> Gateway {
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
            connect_ports,
            connect_timeout,
            header_read_timeout,
            idle_timeout,
            max_connections,
            hosts,
        }
    }

    fn admin(&mut self, raw: Option<RawAdmin>) -> Admin {
        let raw = raw.unwrap_or(RawAdmin {
            listen: None,
            token_file: None,
        });
        Admin {
            listen: self.socket_or(
                raw.listen.as_ref(),
                "`listen` in [admin]",
                SocketAddr::from((Ipv4Addr::LOCALHOST, 9090)),
            ),
            token_file: self.path(
                raw.token_file.as_ref(),
                "`token_file` in [admin]",
                "state/admin.token",
            ),
        }
    }

    fn radius(&mut self, raw: Spanned<RawRadius>) -> Radius {
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

    fn sessions(&mut self, raw: Option<RawSessions>) -> Sessions {
        let raw = raw.unwrap_or(RawSessions {
            backend: None,
            path: None,
            redis_url: None,
            stale_after: None,
        });
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
                SessionsBackend::Embedded {
                    path: self.path(raw.path.as_ref(), "`path` in [sessions]", "state/sessions"),
                }
            }
            Some(("redis", span)) => {
                if let Some(path) = &raw.path {
                    self.error(
                        path.span().start,
                        "`path` is only used with backend = \"embedded\"; remove it",
                    );
                }
                match &raw.redis_url {
                    Some(url) => SessionsBackend::Redis {
                        url: self.url(url, "`redis_url` in [sessions]", &["redis", "rediss"]),
                    },
                    None => {
                        self.error(
                            span.start,
                            "backend = \"redis\" needs `redis_url` in [sessions]; add e.g. \
                             redis_url = \"redis://127.0.0.1:6379/0\"",
                        );
                        SessionsBackend::Redis { url: String::new() }
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

    fn subscribers(&mut self, raw: Spanned<RawSubscribers>) -> Subscribers {
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

    fn audit(&mut self, raw: Option<RawAudit>) -> Audit {
        let raw = raw.unwrap_or(RawAudit {
            backend: None,
            path: None,
            url: None,
            node: None,
            retention: None,
        });
        let retention = self.duration(
            raw.retention.as_ref(),
            "`retention` in [audit]",
            Duration::from_secs(400 * 86_400),
        );
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
                AuditBackend::Embedded {
                    path: self.path(raw.path.as_ref(), "`path` in [audit]", "state/audit.db"),
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
                match &raw.url {
                    Some(url) => AuditBackend::Postgres {
                        url: self.url(url, "`url` in [audit]", &["postgres", "postgresql"]),
                        node,
                    },
                    None => {
                        self.error(
                            span.start,
                            "backend = \"postgres\" needs `url` in [audit]; add e.g. \
                             url = \"postgres://headwall@127.0.0.1:5432/headwall\"",
                        );
                        AuditBackend::Postgres {
                            url: String::new(),
                            node,
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
        Audit { backend, retention }
    }

    fn identity(&mut self, raw: Option<RawIdentity>) -> IdentitySettings {
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
            pseudonym_key_file: self.path(
                raw.pseudonym_key_file.as_ref(),
                "`pseudonym_key_file` in [identity]",
                "state/pseudonym.key",
            ),
            signing_key_file: self.path(
                raw.signing_key_file.as_ref(),
                "`signing_key_file` in [identity]",
                "state/signing.key",
            ),
            issuer,
        }
    }

    fn canary(&mut self, raw: Spanned<RawCanary>) -> Canary {
        let span = raw.span();
        let raw = raw.into_inner();
        let url = match &raw.url {
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
        Canary {
            url,
            interval: self.duration(
                raw.interval.as_ref(),
                "`interval` in [canary]",
                Duration::from_secs(30),
            ),
            msisdn,
            kill_switch: raw.kill_switch.unwrap_or(true),
        }
    }

    fn policy(&mut self, raw: Vec<Spanned<RawPartner>>, strip: Option<RawStrip>) -> Policy {
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut compiled = Vec::with_capacity(raw.len());
        for partner in raw {
            compiled.push(self.partner(partner, &mut names));
        }
        self.overlaps(&compiled);
        let mut extra = Vec::new();
        for name in strip.and_then(|s| s.headers).into_iter().flatten() {
            if is_field_name(name.get_ref()) {
                extra.push(name.into_inner());
            } else {
                self.error(
                    name.span().start,
                    format!(
                        "`{}` in [strip] headers is not a valid header name; use letters, digits \
                         and `-` (any HTTP token), e.g. \"X-Customer-Id\"",
                        name.get_ref()
                    ),
                );
            }
        }
        Policy::build(compiled.into_iter().map(|c| c.partner).collect(), &extra)
    }

    fn partner(
        &mut self,
        raw: Spanned<RawPartner>,
        names: &mut HashMap<String, usize>,
    ) -> Compiled {
        let span = raw.span();
        let p = raw.into_inner();
        let name = match &p.name {
            Some(v) => {
                let name = v.get_ref();
                let at = v.span().start;
                if name.is_empty()
                    || !name.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
                {
                    self.error(
                        at,
                        format!(
                            "invalid partner name `{name}`: use lowercase letters, digits, `_` \
                             and `-` only, e.g. \"agecheck\""
                        ),
                    );
                } else if let Some(line) = names.get(name) {
                    self.error(
                        at,
                        format!(
                            "partner name `{name}` is already used on line {line}; partner \
                             names must be unique"
                        ),
                    );
                } else {
                    names.insert(name.clone(), self.line_of(at));
                }
                name.clone()
            }
            None => {
                self.missing(span.clone(), "name", "[[partner]]", "\"agecheck\"");
                String::new()
            }
        };
        let label = if name.is_empty() {
            "[[partner]]".to_owned()
        } else {
            format!("[[partner]] `{name}`")
        };
        let purpose = match &p.purpose {
            Some(v) => match Purpose::from_config_str(v.get_ref()) {
                Some(purpose) => Some(purpose),
                None => {
                    self.error(
                        v.span().start,
                        format!(
                            "unknown purpose `{}` in {label}; expected one of: age_verification, \
                             billing, identification",
                            v.get_ref()
                        ),
                    );
                    None
                }
            },
            None => {
                self.missing(span.clone(), "purpose", &label, "\"age_verification\"");
                None
            }
        };

        let mut hosts = Vec::new();
        let mut host_spans = Vec::new();
        match &p.hosts {
            Some(list) if list.get_ref().is_empty() => self.error(
                list.span().start,
                format!(
                    "`hosts` in {label} is empty; list exact names or `*.example.com` patterns"
                ),
            ),
            Some(list) => {
                for host in list.get_ref() {
                    match HostPattern::parse(host.get_ref()) {
                        Ok(pattern) if hosts.contains(&pattern) => self.error(
                            host.span().start,
                            format!("host `{pattern}` is listed twice in {label}; remove one"),
                        ),
                        Ok(pattern) => {
                            hosts.push(pattern);
                            host_spans.push(host.span().start);
                        }
                        Err(why) => self.error(host.span().start, format!("{why}")),
                    }
                }
            }
            None => self.missing(span.clone(), "hosts", &label, "[\"www.example.com\"]"),
        }

        let what_ports = format!("`ports` in {label}");
        let mut ports: Vec<u16> = match &p.ports {
            None => vec![80],
            Some(list) if list.get_ref().is_empty() => {
                self.error(
                    list.span().start,
                    format!(
                        "`ports` in {label} is empty; list the ports, or leave it out for [80]"
                    ),
                );
                Vec::new()
            }
            Some(list) => list
                .get_ref()
                .iter()
                .filter_map(|v| self.port(v, &what_ports))
                .collect(),
        };
        ports.sort_unstable();
        ports.dedup();

        let what_dest = format!("`destinations` in {label}");
        let destinations: Vec<IpNet> = match &p.destinations {
            None => {
                self.missing(span.clone(), "destinations", &label, "[\"192.0.2.10/32\"]");
                Vec::new()
            }
            Some(list) if list.get_ref().is_empty() => {
                self.error(
                    list.span().start,
                    format!(
                        "`destinations` in {label} is empty; list the addresses this partner may \
                         be reached at, e.g. [\"192.0.2.10/32\"]"
                    ),
                );
                Vec::new()
            }
            Some(list) => list
                .get_ref()
                .iter()
                .filter_map(|v| {
                    let net = self.net(v, &what_dest)?;
                    if net.prefix_len() == 0 {
                        // A /0 destination would make pinning mean nothing.
                        self.error(
                            v.span().start,
                            format!(
                                "{what_dest} allows every address (`{net}`), which turns \
                                 destination pinning off; list the partner's own addresses"
                            ),
                        );
                        return None;
                    }
                    Some(net)
                })
                .collect(),
        };

        let justification = match &p.justification {
            Some(v) if v.get_ref().trim().is_empty() => {
                self.error(
                    v.span().start,
                    format!(
                        "`justification` in {label} is empty; explain why the partner needs \
                         the kind, or remove the key"
                    ),
                );
                None
            }
            Some(v) => Some(v.get_ref().clone()),
            None => None,
        };

        let mut headers = Vec::new();
        match &p.headers {
            None => self.missing(
                span,
                "headers",
                &label,
                "{ \"X-Subscriber-Id\" = \"pseudonym\" }",
            ),
            Some(map) if map.get_ref().is_empty() => self.error(
                map.span().start,
                format!(
                    "`headers` in {label} is empty; map each header name to a kind, e.g. \
                     {{ \"X-Subscriber-Id\" = \"pseudonym\" }}"
                ),
            ),
            Some(map) => {
                let mut entries: Vec<(&Str, &Str)> = map.get_ref().iter().collect();
                entries.sort_by_key(|(k, _)| k.span().start);
                let mut seen: HashMap<String, String> = HashMap::new();
                for (key, kind) in entries {
                    let header = key.get_ref();
                    let at = key.span().start;
                    let normalized = normalize_header_name(header);
                    if !is_field_name(header) {
                        self.error(
                            at,
                            format!(
                                "`{header}` in {label} headers is not a valid header name; use \
                                 letters, digits and `-` (any HTTP token), e.g. \"X-Subscriber-Id\""
                            ),
                        );
                    } else if FORBIDDEN_PARTNER_HEADERS.contains(&normalized.as_str()) {
                        self.error(
                            at,
                            format!(
                                "header `{header}` in {label} controls how the request is \
                                 delivered or authenticated and cannot carry identity; choose \
                                 another name, e.g. \"X-Subscriber-Id\""
                            ),
                        );
                    } else if let Some(first) = seen.get(&normalized) {
                        self.error(
                            at,
                            format!(
                                "header `{header}` in {label} is the same header as `{first}` \
                                 (names ignore case and treat `_` as `-`); keep one"
                            ),
                        );
                    } else {
                        seen.insert(normalized, header.clone());
                    }
                    let Some(value_kind) = ValueKind::from_config_str(kind.get_ref()) else {
                        self.error(
                            kind.span().start,
                            format!(
                                "unknown kind `{}` for header `{header}` in {label}; expected one \
                                 of: msisdn, pseudonym, age_verified, token",
                                kind.get_ref()
                            ),
                        );
                        continue;
                    };
                    if let Some(purpose) = purpose
                        && !value_kind.allowed_for(purpose)
                        && justification.is_none()
                    {
                        let allowed: Vec<&str> = Purpose::ALL
                            .into_iter()
                            .filter(|&pp| value_kind.allowed_for(pp))
                            .map(|pp| pp.as_str())
                            .collect();
                        self.error(
                            kind.span().start,
                            format!(
                                "kind `{value_kind}` is not allowed for purpose `{purpose}` (it \
                                 is for: {}); give a less identifying kind such as `pseudonym` \
                                 or `token`, or add a `justification` to {label}",
                                allowed.join(", ")
                            ),
                        );
                    }
                    headers.push(PartnerHeader {
                        name: header.clone(),
                        kind: value_kind,
                    });
                }
            }
        }

        Compiled {
            partner: Partner {
                name,
                purpose: purpose.unwrap_or(Purpose::Identification),
                hosts,
                ports,
                destinations,
                headers,
                justification,
            },
            host_spans,
        }
    }

    /// Two partners that could match the same (host, port): one error on the later partner's
    /// host, naming the earlier one. Found from the covered pattern's side with hash lookups:
    /// an exact name against the same name and every wildcard above it, a wildcard against the
    /// same wildcard and every wildcard above it.
    fn overlaps(&mut self, compiled: &[Compiled]) {
        let mut exact: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
        let mut wildcard: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
        for (pi, c) in compiled.iter().enumerate() {
            for (hi, host) in c.partner.hosts.iter().enumerate() {
                match host {
                    HostPattern::Exact(name) => exact.entry(name).or_default().push((pi, hi)),
                    HostPattern::Subdomains(parent) => {
                        wildcard.entry(parent).or_default().push((pi, hi));
                    }
                }
            }
        }
        // (later partner, earlier partner) -> (later host, earlier host, common port)
        let mut conflicts: BTreeMap<(usize, usize), (usize, usize, u16)> = BTreeMap::new();
        for (pi, c) in compiled.iter().enumerate() {
            for (hi, host) in c.partner.hosts.iter().enumerate() {
                let (same, name) = match host {
                    HostPattern::Exact(name) => (exact.get(name.as_str()), name.as_str()),
                    HostPattern::Subdomains(parent) => {
                        (wildcard.get(parent.as_str()), parent.as_str())
                    }
                };
                let above = parent_suffixes(name).filter_map(|s| wildcard.get(s));
                for &(pj, hj) in same.into_iter().chain(above).flatten() {
                    if pj == pi {
                        continue;
                    }
                    let Some(port) = c
                        .partner
                        .ports
                        .iter()
                        .find(|p| compiled[pj].partner.ports.contains(p))
                    else {
                        continue;
                    };
                    let key = if pi > pj { (pi, pj) } else { (pj, pi) };
                    let hosts = if pi > pj { (hi, hj) } else { (hj, hi) };
                    conflicts.entry(key).or_insert((hosts.0, hosts.1, *port));
                }
            }
        }
        let mut reported: HashSet<(usize, usize)> = HashSet::new();
        for ((later, earlier), (lh, eh, port)) in conflicts {
            if !reported.insert((later, earlier)) {
                continue;
            }
            let (l, e) = (&compiled[later], &compiled[earlier]);
            let (Some(l_host), Some(e_host), Some(&at), Some(&e_at)) = (
                l.partner.hosts.get(lh),
                e.partner.hosts.get(eh),
                l.host_spans.get(lh),
                e.host_spans.get(eh),
            ) else {
                continue;
            };
            self.error(
                at,
                format!(
                    "host `{l_host}` of partner `{}` overlaps `{e_host}` of partner `{}` (line \
                     {}) on port {port}: a request could match both; each (host, port) must \
                     belong to one partner, so remove or narrow one of them",
                    l.partner.name,
                    e.partner.name,
                    self.line_of(e_at)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: &str = "[gateway]\nlisten = \"127.0.0.1:8080\"\n";

    fn errors(text: &str) -> Vec<String> {
        match load("t.toml", text, Path::new("/cfg")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    /// `[gateway]` on lines 1-2, then one valid partner (lines 3-8) with `extra` lines appended
    /// from line 9 on, replacing keys of the same name.
    fn partner(name: &str, extra: &str) -> String {
        let mut lines = vec![
            "[[partner]]".to_owned(),
            format!("name = \"{name}\""),
            "purpose = \"billing\"".to_owned(),
            format!("hosts = [\"{name}.example.com\"]"),
            "destinations = [\"192.0.2.10/32\"]".to_owned(),
            "headers = { \"X-MSISDN\" = \"msisdn\" }".to_owned(),
        ];
        for line in extra.lines() {
            let key = line.split('=').next().unwrap_or_default().trim();
            for l in &mut lines {
                if !key.is_empty() && l.split('=').next().unwrap_or_default().trim() == key {
                    *l = "# replaced".to_owned();
                }
            }
            lines.push(line.to_owned());
        }
        lines.join("\n") + "\n"
    }

    fn one(extra: &str) -> Vec<String> {
        errors(&format!("{GW}{}", partner("a", extra)))
    }

    #[test]
    fn minimal_config_has_defaults() {
        let config = load("t.toml", GW, Path::new("/cfg")).unwrap();
        let g = &config.gateway;
        assert_eq!(g.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(g.transparent_listen, None);
        assert!(!g.proxy_protocol);
        assert_eq!(g.connect_ports, [443]);
        assert_eq!(g.connect_timeout, Duration::from_secs(5));
        assert_eq!(g.header_read_timeout, Duration::from_secs(10));
        assert_eq!(g.idle_timeout, Duration::from_secs(60));
        assert_eq!(g.max_connections, 20_000);
        assert!(g.hosts.is_empty());
        assert_eq!(config.admin.listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(config.admin.token_file, Path::new("/cfg/state/admin.token"));
        assert!(config.radius.is_none());
        assert!(config.subscribers.is_none());
        assert!(config.canary.is_none());
        assert_eq!(
            config.sessions.backend,
            SessionsBackend::Embedded {
                path: "/cfg/state/sessions".into()
            }
        );
        assert_eq!(config.sessions.stale_after, Duration::from_secs(7200));
        assert_eq!(
            config.audit.backend,
            AuditBackend::Embedded {
                path: "/cfg/state/audit.db".into()
            }
        );
        assert_eq!(config.audit.retention, Duration::from_secs(400 * 86_400));
        assert_eq!(config.identity.issuer, "headwall");
        assert_eq!(
            config.identity.pseudonym_key_file,
            Path::new("/cfg/state/pseudonym.key")
        );
        assert_eq!(
            config.identity.signing_key_file,
            Path::new("/cfg/state/signing.key")
        );
        assert!(config.policy.partners().is_empty());
        assert_eq!(config.policy.hash(), Policy::empty().hash());
    }

    #[test]
    fn defaults_of_optional_tables() {
        let text = format!(
            "{GW}[radius]\n[[radius.clients]]\nsource = \"10.0.0.1\"\nsecret = \"s\"\n\
             [canary]\nurl = \"http://leak.test/\"\nmsisdn = \"447700900000\"\n\
             [subscribers]\nfile = \"/abs/subs.csv\"\n{}",
            partner("a", "")
        );
        let config = load("t.toml", &text, Path::new("/cfg")).unwrap();
        let radius = config.radius.unwrap();
        assert_eq!(radius.listen, "127.0.0.1:1813".parse().unwrap());
        assert_eq!(radius.clients[0].source, "10.0.0.1/32".parse().unwrap());
        assert_eq!(
            radius.clients[0].secret,
            RadiusSecret::Inline(Secret::new("s"))
        );
        let canary = config.canary.unwrap();
        assert_eq!(canary.interval, Duration::from_secs(30));
        assert!(canary.kill_switch);
        assert_eq!(config.subscribers.unwrap().file, Path::new("/abs/subs.csv"));
        let p = &config.policy.partners()[0];
        assert_eq!(p.ports, [80]);
        assert_eq!(p.justification, None);
    }

    #[test]
    fn syntax_error_is_reported_alone_with_position() {
        assert_eq!(
            errors("[gateway\nlisten = 1\n"),
            ["t.toml:1:9: unclosed table, expected `]`"]
        );
        assert_eq!(
            errors("[gateway]\nlisten = \"127.0.0.1:8080\"\nlisten = \"x\"\n"),
            ["t.toml:3:1: duplicate key: a key may appear only once in a table; remove one"]
        );
    }

    #[test]
    fn unknown_keys() {
        assert_eq!(
            errors("[gateway]\nlistne = \"127.0.0.1:8080\"\n"),
            [
                "t.toml:2:1: unknown key `listne` in [gateway]; expected one of: listen, \
                 transparent_listen, proxy_protocol, proxy_protocol_from, connect_ports, \
                 connect_timeout, header_read_timeout, idle_timeout, max_connections, hosts \
                 (did you mean `listen`?)"
            ]
        );
        assert_eq!(
            errors(&format!("{GW}[gatway]\n")),
            [
                "t.toml:3:2: unknown key `gatway` at the top level; expected one of: gateway, \
                 admin, radius, sessions, subscribers, audit, identity, strip, canary, api, \
                 partner (did you mean `gateway`?)"
            ]
        );
        assert_eq!(
            one("colour = \"blue\""),
            [
                "t.toml:9:1: unknown key `colour` in [[partner]]; expected one of: name, \
                 purpose, hosts, ports, destinations, headers, justification"
            ]
        );
    }

    #[test]
    fn wrong_types() {
        assert_eq!(
            errors("[gateway]\nlisten = 8080\n"),
            ["t.toml:2:10: `listen` in [gateway]: invalid type: integer `8080`, expected a string"]
        );
        assert_eq!(
            errors(&format!("{GW}max_connections = \"many\"\n")),
            [
                "t.toml:3:19: `max_connections` in [gateway]: invalid type: string \"many\", \
                 expected an integer"
            ]
        );
        assert_eq!(
            errors(&format!("{GW}proxy_protocol = \"yes\"\n")),
            [
                "t.toml:3:18: `proxy_protocol` in [gateway]: invalid type: string \"yes\", \
                 expected a boolean"
            ]
        );
    }

    #[test]
    fn gateway_is_required() {
        assert_eq!(
            errors("[admin]\nlisten = \"127.0.0.1:9090\"\n"),
            [
                "t.toml:1:1: missing required table [gateway]; add it with at least \
                 `listen = \"127.0.0.1:8080\"`"
            ]
        );
        assert_eq!(
            errors("# comment\n[gateway]\nidle_timeout = \"1m\"\n"),
            [
                "t.toml:2:1: missing required key `listen` in [gateway]; add e.g. \
                 listen = \"127.0.0.1:8080\""
            ]
        );
    }

    #[test]
    fn bad_socket_addresses() {
        assert_eq!(
            errors("[gateway]\nlisten = \"localhost:8080\"\n"),
            [
                "t.toml:2:10: invalid address `localhost:8080` for `listen` in [gateway]: \
                 expected IP:port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\" (host names are \
                 not accepted)"
            ]
        );
        assert_eq!(
            errors(&format!("{GW}[admin]\nlisten = \"127.0.0.1\"\n")),
            [
                "t.toml:4:10: invalid address `127.0.0.1` for `listen` in [admin]: expected \
                 IP:port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\" (host names are not accepted)"
            ]
        );
        // Port 0 is fine for listeners: tests bind ephemeral ports.
        assert!(errors("[gateway]\nlisten = \"127.0.0.1:0\"\n").is_empty());
    }

    #[test]
    fn bad_durations() {
        assert_eq!(
            errors(&format!("{GW}connect_timeout = \"5 seconds\"\n")),
            [
                "t.toml:3:19: invalid duration `5 seconds` for `connect_timeout` in [gateway]: \
                 expected an integer followed by a unit (ms, s, m, h or d), e.g. \"500ms\", \
                 \"30s\", \"5m\", \"2h\", \"400d\""
            ]
        );
        assert_eq!(
            errors(&format!("{GW}[sessions]\nstale_after = \"0s\"\n")),
            ["t.toml:4:15: `stale_after` in [sessions] must be greater than zero, e.g. \"30s\""]
        );
    }

    #[test]
    fn bad_networks() {
        assert_eq!(
            errors(&format!(
                "{GW}proxy_protocol = true\nproxy_protocol_from = [\"10.0.0.0/33\", \"10.1.2.3/8\"]\n"
            )),
            [
                "t.toml:4:24: invalid address or network `10.0.0.0/33` in `proxy_protocol_from` \
                 in [gateway]: expected an IP address or CIDR, e.g. \"192.0.2.10\", \
                 \"10.0.0.0/8\" or \"2001:db8::/32\"",
                "t.toml:4:39: network `10.1.2.3/8` in `proxy_protocol_from` in [gateway] has \
                 bits set after the prefix; write `10.0.0.0/8` for the whole network, or \
                 `10.1.2.3/32` for the one address",
            ]
        );
        assert_eq!(
            one("destinations = [\"example.com\"]"),
            [
                "t.toml:9:17: invalid address or network `example.com` in `destinations` in \
                 [[partner]] `a`: expected an IP address or CIDR, e.g. \"192.0.2.10\", \
                 \"10.0.0.0/8\" or \"2001:db8::/32\""
            ]
        );
    }

    #[test]
    fn proxy_protocol_needs_trusted_sources() {
        assert_eq!(
            errors(&format!("{GW}proxy_protocol = true\n")),
            [
                "t.toml:3:18: proxy_protocol = true but `proxy_protocol_from` lists no load \
                 balancers, so every connection would be closed; add proxy_protocol_from = \
                 [\"CIDR\", ...]"
            ]
        );
    }

    #[test]
    fn port_zero_and_out_of_range() {
        assert_eq!(
            errors(&format!("{GW}connect_ports = [443, 0]\n")),
            ["t.toml:3:23: port 0 in `connect_ports` in [gateway] is out of range; use 1 to 65535"]
        );
        assert_eq!(
            one("ports = [80, 70000]"),
            [
                "t.toml:9:14: port 70000 in `ports` in [[partner]] `a` is out of range; use 1 to \
                 65535"
            ]
        );
        assert_eq!(
            one("ports = []"),
            [
                "t.toml:9:9: `ports` in [[partner]] `a` is empty; list the ports, or leave it \
                 out for [80]"
            ]
        );
    }

    #[test]
    fn max_connections_positive() {
        assert_eq!(
            errors(&format!("{GW}max_connections = 0\n")),
            [
                "t.toml:3:19: `max_connections` in [gateway] must be a positive number, got 0; \
                 the default is 20000"
            ]
        );
    }

    #[test]
    fn host_patterns() {
        let cases = [
            (
                "*",
                "bare `*` host pattern would match every website; list exact names or \
                 `*.example.com`",
            ),
            (
                "*.com",
                "host pattern `*.com` would match every name under a top-level domain; name the \
                 partner's own domain, e.g. `*.example.com`",
            ),
            (
                "a.*.example.com",
                "host pattern `a.*.example.com` puts `*` where it is not supported; `*` may only \
                 be the whole first label, as in `*.example.com` (which matches subdomains, not \
                 `example.com` itself)",
            ),
            (
                "*example.com",
                "host pattern `*example.com` puts `*` where it is not supported; `*` may only be \
                 the whole first label, as in `*.example.com` (which matches subdomains, not \
                 `example.com` itself)",
            ),
            (
                "^pay\\\\.example\\\\.com$",
                "host pattern `^pay\\.example\\.com$` looks like a regular expression; host \
                 patterns are exact names or `*.example.com`",
            ),
            (
                ".example.com",
                "host pattern `.example.com` looks like a substring or suffix; write fully \
                 qualified exact names (`example.com`) and/or `*.example.com` for subdomains",
            ),
            (
                "example",
                "host pattern `example` looks like a substring or suffix; write fully qualified \
                 exact names (`example.com`) and/or `*.example.com` for subdomains",
            ),
            (
                "bücher.example",
                "invalid host pattern: host \"bücher.example\" is not ASCII; write \
                 internationalized names in their `xn--` form",
            ),
            (
                "",
                "empty host pattern; write an exact name such as `www.example.com`",
            ),
            (
                "pay.example.com:8080",
                "host pattern `pay.example.com:8080` contains a port; list host names in `hosts` \
                 and ports in `ports`",
            ),
        ];
        for (pattern, message) in cases {
            assert_eq!(
                one(&format!("hosts = [\"ok.example.com\", \"{pattern}\"]")),
                [format!("t.toml:9:28: {message}")],
                "{pattern}"
            );
        }
        assert_eq!(
            one("hosts = []"),
            [
                "t.toml:9:9: `hosts` in [[partner]] `a` is empty; list exact names or \
                 `*.example.com` patterns"
            ]
        );
        assert_eq!(
            one("hosts = [\"A.Example.COM.\", \"a.example.com\"]"),
            ["t.toml:9:28: host `a.example.com` is listed twice in [[partner]] `a`; remove one"]
        );
    }

    #[test]
    fn host_patterns_are_normalized() {
        let text = format!(
            "{GW}{}",
            partner("a", "hosts = [\"WWW.Example.COM.\", \"*.CDN.example.com\"]")
        );
        let config = load("t.toml", &text, Path::new("/")).unwrap();
        assert_eq!(
            config.policy.partners()[0].hosts,
            [
                HostPattern::Exact("www.example.com".into()),
                HostPattern::Subdomains("cdn.example.com".into())
            ]
        );
    }

    #[test]
    fn partner_names() {
        assert_eq!(
            one("name = \"Age Check\""),
            [
                "t.toml:9:8: invalid partner name `Age Check`: use lowercase letters, digits, `_` \
                 and `-` only, e.g. \"agecheck\""
            ]
        );
        assert_eq!(
            one("name = \"\""),
            [
                "t.toml:9:8: invalid partner name ``: use lowercase letters, digits, `_` and `-` \
                 only, e.g. \"agecheck\""
            ]
        );
        let text = format!(
            "{GW}{}{}",
            partner("a", ""),
            partner("a", "hosts = [\"other.example.com\"]")
        );
        assert_eq!(
            errors(&text),
            [
                "t.toml:10:8: partner name `a` is already used on line 4; partner names must be unique"
            ]
        );
        assert_eq!(
            errors(&format!("{GW}[[partner]]\npurpose = \"billing\"\n")),
            [
                "t.toml:3:1: missing required key `name` in [[partner]]; add e.g. name = \
                 \"agecheck\"",
                "t.toml:3:1: missing required key `hosts` in [[partner]]; add e.g. hosts = \
                 [\"www.example.com\"]",
                "t.toml:3:1: missing required key `destinations` in [[partner]]; add e.g. \
                 destinations = [\"192.0.2.10/32\"]",
                "t.toml:3:1: missing required key `headers` in [[partner]]; add e.g. headers = \
                 { \"X-Subscriber-Id\" = \"pseudonym\" }",
            ]
        );
    }

    #[test]
    fn purposes_and_kinds() {
        assert_eq!(
            one("purpose = \"marketing\""),
            [
                "t.toml:9:11: unknown purpose `marketing` in [[partner]] `a`; expected one of: \
                 age_verification, billing, identification"
            ]
        );
        assert_eq!(
            one("headers = { \"X-Id\" = \"imsi\" }"),
            [
                "t.toml:9:22: unknown kind `imsi` for header `X-Id` in [[partner]] `a`; expected \
                 one of: msisdn, pseudonym, age_verified, token"
            ]
        );
    }

    #[test]
    fn partner_headers() {
        assert_eq!(
            one("headers = {}"),
            [
                "t.toml:9:11: `headers` in [[partner]] `a` is empty; map each header name to a \
                 kind, e.g. { \"X-Subscriber-Id\" = \"pseudonym\" }"
            ]
        );
        assert_eq!(
            one("headers = { \"X Id\" = \"token\" }"),
            [
                "t.toml:9:13: `X Id` in [[partner]] `a` headers is not a valid header name; use \
                 letters, digits and `-` (any HTTP token), e.g. \"X-Subscriber-Id\""
            ]
        );
        assert_eq!(
            one("headers = { \"X-Msisdn\" = \"msisdn\", \"x_msisdn\" = \"token\" }"),
            [
                "t.toml:9:36: header `x_msisdn` in [[partner]] `a` is the same header as \
                 `X-Msisdn` (names ignore case and treat `_` as `-`); keep one"
            ]
        );
        for forbidden in [
            "Host",
            "Connection",
            "Content-Length",
            "Transfer-Encoding",
            "Upgrade",
            "TE",
            "Trailer",
            "Keep-Alive",
            "Proxy-Connection",
            "Proxy-Authorization",
            "Cookie",
            "content_length",
        ] {
            assert_eq!(
                one(&format!("headers = {{ \"{forbidden}\" = \"token\" }}")),
                [format!(
                    "t.toml:9:13: header `{forbidden}` in [[partner]] `a` controls how the \
                     request is delivered or authenticated and cannot carry identity; choose \
                     another name, e.g. \"X-Subscriber-Id\""
                )]
            );
        }
    }

    #[test]
    fn kind_outside_purpose_needs_justification() {
        assert_eq!(
            one("purpose = \"age_verification\"\nheaders = { \"X-MSISDN\" = \"msisdn\" }"),
            [
                "t.toml:10:26: kind `msisdn` is not allowed for purpose `age_verification` (it \
                 is for: billing, identification); give a less identifying kind such as \
                 `pseudonym` or `token`, or add a `justification` to [[partner]] `a`"
            ]
        );
        assert_eq!(
            one("headers = { \"X-Age\" = \"age_verified\" }"),
            [
                "t.toml:9:23: kind `age_verified` is not allowed for purpose `billing` (it is \
                 for: age_verification, identification); give a less identifying kind such as \
                 `pseudonym` or `token`, or add a `justification` to [[partner]] `a`"
            ]
        );
        assert!(
            one("headers = { \"X-Age\" = \"age_verified\" }\njustification = \"DPIA 2024-17\"")
                .is_empty()
        );
        assert_eq!(
            one("headers = { \"X-Age\" = \"age_verified\" }\njustification = \" \""),
            [
                "t.toml:9:23: kind `age_verified` is not allowed for purpose `billing` (it is \
                 for: age_verification, identification); give a less identifying kind such as \
                 `pseudonym` or `token`, or add a `justification` to [[partner]] `a`",
                "t.toml:10:17: `justification` in [[partner]] `a` is empty; explain why the \
                 partner needs the kind, or remove the key",
            ]
        );
    }

    #[test]
    fn destinations_must_not_be_everything() {
        assert_eq!(
            one("destinations = [\"0.0.0.0/0\"]"),
            vec![
                "t.toml:9:17: `destinations` in [[partner]] `a` allows every address \
                 (`0.0.0.0/0`), which turns destination pinning off; list the partner's own \
                 addresses"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn destinations_required() {
        assert_eq!(
            one("destinations = []"),
            [
                "t.toml:9:16: `destinations` in [[partner]] `a` is empty; list the addresses \
                 this partner may be reached at, e.g. [\"192.0.2.10/32\"]"
            ]
        );
        let text = format!(
            "{GW}[[partner]]\nname = \"a\"\npurpose = \"billing\"\nhosts = [\"a.example.com\"]\nheaders = {{ \"X-A\" = \"token\" }}\n"
        );
        assert_eq!(
            errors(&text),
            [
                "t.toml:3:1: missing required key `destinations` in [[partner]] `a`; add e.g. \
                 destinations = [\"192.0.2.10/32\"]"
            ]
        );
    }

    #[test]
    fn overlapping_partners() {
        let overlap = |first: &str, second: &str| {
            errors(&format!(
                "{GW}{}{}",
                partner("a", &format!("hosts = [\"{first}\"]")),
                partner("b", &format!("hosts = [\"x.example.com\", \"{second}\"]"))
            ))
        };
        assert_eq!(
            overlap("pay.example.com", "PAY.example.com."),
            [
                "t.toml:16:27: host `pay.example.com` of partner `b` overlaps `pay.example.com` \
                 of partner `a` (line 9) on port 80: a request could match both; each (host, \
                 port) must belong to one partner, so remove or narrow one of them"
            ]
        );
        assert_eq!(
            overlap("*.example.com", "y.example.org").len(),
            1,
            "x.example.com (the second's first host) is under *.example.com"
        );
        assert_eq!(
            overlap("*.pay.example.com", "a.b.pay.example.com"),
            [
                "t.toml:16:27: host `a.b.pay.example.com` of partner `b` overlaps \
                 `*.pay.example.com` of partner `a` (line 9) on port 80: a request could match \
                 both; each (host, port) must belong to one partner, so remove or narrow one of \
                 them"
            ]
        );
        assert_eq!(
            overlap("a.b.pay.example.com", "*.pay.example.com"),
            [
                "t.toml:16:27: host `*.pay.example.com` of partner `b` overlaps \
                 `a.b.pay.example.com` of partner `a` (line 9) on port 80: a request could match \
                 both; each (host, port) must belong to one partner, so remove or narrow one of \
                 them"
            ]
        );
        assert_eq!(
            overlap("*.pay.example.org", "*.eu.pay.example.org"),
            [
                "t.toml:16:27: host `*.eu.pay.example.org` of partner `b` overlaps \
                 `*.pay.example.org` of partner `a` (line 9) on port 80: a request could match \
                 both; each (host, port) must belong to one partner, so remove or narrow one of \
                 them"
            ]
        );
        // A wildcard never covers its own parent, nor a sibling suffix.
        assert!(overlap("*.pay.example.org", "pay.example.org").is_empty());
        assert!(overlap("*.pay.example.org", "xpay.example.org").is_empty());
        // Same host on disjoint ports is fine.
        let text = format!(
            "{GW}{}{}",
            partner("a", "hosts = [\"pay.example.com\"]\nports = [80]"),
            partner("b", "hosts = [\"pay.example.com\"]\nports = [8080]")
        );
        assert!(errors(&text).is_empty());
        let text = format!(
            "{GW}{}{}",
            partner("a", "hosts = [\"pay.example.com\"]\nports = [80, 8080]"),
            partner("b", "hosts = [\"pay.example.com\"]\nports = [8443, 8080]")
        );
        assert_eq!(errors(&text).len(), 1);
        assert!(
            errors(&text)[0].contains("on port 8080"),
            "{:?}",
            errors(&text)
        );
    }

    #[test]
    fn min_ipv6_prefix_is_a_prefix_length() {
        let radius = |line: &str| {
            errors(&format!(
                "{GW}[radius]\n{line}\n[[radius.clients]]\nsource = \"10.0.0.1/32\"\nsecret = \"s\"\n"
            ))
        };
        assert_eq!(radius("min_ipv6_prefix = 64"), Vec::<String>::new());
        assert_eq!(
            radius("min_ipv6_prefix = 0"),
            [
                "t.toml:4:19: `min_ipv6_prefix` in [radius] must be a prefix length from 32 to \
                 128, got 0; the default is 48 (subscribers usually get a /64)"
            ]
        );
        assert_eq!(radius("min_ipv6_prefix = 129").len(), 1);
    }

    #[test]
    fn radius_clients() {
        let radius =
            |client: &str| errors(&format!("{GW}[radius]\n[[radius.clients]]\n{client}\n"));
        assert_eq!(
            radius("source = \"10.0.0.1/32\"\nsecret = \"s\"\nsecret_file = \"f\""),
            [
                "t.toml:6:10: [[radius.clients]] sets both `secret` and `secret_file`; keep \
                 exactly one"
            ]
        );
        assert_eq!(
            radius("source = \"10.0.0.1/32\""),
            [
                "t.toml:4:1: [[radius.clients]] needs exactly one of `secret` or `secret_file`; \
                 add e.g. secret_file = \"radius.secret\""
            ]
        );
        assert_eq!(
            radius("source = \"pgw1\"\nsecret = \"s\""),
            [
                "t.toml:5:10: invalid address or network `pgw1` in `source` in \
                 [[radius.clients]]: expected an IP address or CIDR, e.g. \"192.0.2.10\", \
                 \"10.0.0.0/8\" or \"2001:db8::/32\""
            ]
        );
        assert_eq!(
            radius("secret = \"s\""),
            [
                "t.toml:4:1: missing required key `source` in [[radius.clients]]; add e.g. \
                 source = \"192.0.2.1/32\""
            ]
        );
        let config = load(
            "t.toml",
            &format!("{GW}[radius]\n[[radius.clients]]\nsource = \"10.0.0.0/8\"\nsecret_file = \"r.secret\"\n"),
            Path::new("/cfg"),
        )
        .unwrap();
        assert_eq!(
            config.radius.unwrap().clients[0].secret,
            RadiusSecret::File("/cfg/r.secret".into())
        );
    }

    #[test]
    fn canary_msisdn() {
        let canary = |msisdn: &str| {
            errors(&format!(
                "{GW}[canary]\nurl = \"http://leak.test/\"\nmsisdn = \"{msisdn}\"\n"
            ))
        };
        let message = "t.toml:5:10: `msisdn` in [canary] must be 6 to 15 digits in international \
                       form, no `+` or spaces, e.g. \"447700900000\"";
        for bad in [
            "+447700900000",
            "44 7700 900000",
            "12345",
            "1234567890123456",
            "",
        ] {
            assert_eq!(canary(bad), [message], "{bad}");
        }
        assert!(canary("447700900000").is_empty());
        assert_eq!(
            errors(&format!(
                "{GW}[canary]\nurl = \"https://leak.test/\"\nmsisdn = \"447700900000\"\n"
            )),
            ["t.toml:4:7: invalid URL for `url` in [canary]: expected http://..."]
        );
    }

    #[test]
    fn strip_headers() {
        assert_eq!(
            errors(&format!("{GW}[strip]\nheaders = [\"X-Ok\", \"X:Bad\"]\n")),
            [
                "t.toml:4:20: `X:Bad` in [strip] headers is not a valid header name; use \
                 letters, digits and `-` (any HTTP token), e.g. \"X-Customer-Id\""
            ]
        );
        let config = load(
            "t.toml",
            &format!("{GW}[strip]\nheaders = [\"X-Extra_ID\"]\n"),
            Path::new("/"),
        )
        .unwrap();
        assert!(config.policy.strip().contains("x_extra-id"));
    }

    #[test]
    fn backends() {
        assert_eq!(
            errors(&format!("{GW}[sessions]\nbackend = \"redis\"\n")),
            [
                "t.toml:4:11: backend = \"redis\" needs `redis_url` in [sessions]; add e.g. \
                 redis_url = \"redis://127.0.0.1:6379/0\""
            ]
        );
        assert_eq!(
            errors(&format!("{GW}[sessions]\nbackend = \"memcached\"\n")),
            [
                "t.toml:4:11: unknown sessions backend `memcached`; expected \"embedded\" or \"redis\""
            ]
        );
        assert_eq!(
            errors(&format!("{GW}[audit]\nbackend = \"postgres\"\n")),
            [
                "t.toml:4:11: backend = \"postgres\" needs `url` in [audit]; add e.g. \
                 url = \"postgres://headwall@127.0.0.1:5432/headwall\""
            ]
        );
        assert_eq!(
            errors(&format!("{GW}[audit]\nurl = \"postgres://db/h\"\n")),
            [
                "t.toml:4:7: `url` is set but [audit] backend is \"embedded\"; remove it or set \
                 backend = \"postgres\""
            ]
        );
        let config = load(
            "t.toml",
            &format!(
                "{GW}[sessions]\nbackend = \"redis\"\nredis_url = \"redis://10.0.0.1:6379/0\"\n\
                 [audit]\nbackend = \"postgres\"\nurl = \"postgres://h@db:5432/h\"\n"
            ),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(
            config.sessions.backend,
            SessionsBackend::Redis {
                url: "redis://10.0.0.1:6379/0".into()
            }
        );
        assert_eq!(
            config.audit.backend,
            AuditBackend::Postgres {
                url: "postgres://h@db:5432/h".into(),
                node: None,
            }
        );
        let config = load(
            "t.toml",
            &format!(
                "{GW}[audit]\nbackend = \"postgres\"\nurl = \"postgres://db/h\"\nnode = \"gw-1\"\n"
            ),
            Path::new("/"),
        )
        .unwrap();
        assert!(matches!(
            config.audit.backend,
            AuditBackend::Postgres { node: Some(ref node), .. } if node == "gw-1"
        ));
        assert_eq!(
            errors(&format!(
                "{GW}[audit]\nbackend = \"postgres\"\nurl = \"postgres://db/h\"\nnode = \"gw 1/x\"\n"
            )),
            [
                "t.toml:6:8: `node` in [audit] must be 1 to 64 letters, digits, `.`, `-` or `_` \
                 (a name unique in the fleet, e.g. node = \"gw-1\")"
            ]
        );
        assert_eq!(
            errors(&format!("{GW}[audit]\nnode = \"gw-1\"\n")),
            ["t.toml:4:8: `node` is only used with backend = \"postgres\"; remove it"]
        );
    }

    #[test]
    fn gateway_hosts() {
        assert_eq!(
            errors(&format!(
                "{GW}[gateway.hosts]\n\"Pay.Example.com.\" = \"nowhere\"\n"
            )),
            [
                "t.toml:4:22: invalid IP address `nowhere` for `Pay.Example.com.` in \
                 [gateway.hosts]; write an address such as \"192.0.2.10\" or \"2001:db8::10\""
            ]
        );
        assert_eq!(
            errors(&format!(
                "{GW}[gateway.hosts]\n\"a b.test\" = \"127.0.0.1\"\n"
            )),
            [
                "t.toml:4:1: invalid host name in [gateway.hosts]: host \"a b.test\" contains ' ', \
                 which is not valid in a host name (letters, digits, `-`, `_` and `.` only)"
            ]
        );
        let config = load(
            "t.toml",
            &format!("{GW}[gateway.hosts]\n\"Pay.Example.com.\" = \"::1\"\n"),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(
            config.gateway.hosts["pay.example.com"],
            "::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn every_semantic_error_is_reported_in_line_order() {
        let text = format!(
            "{GW}connect_timeout = \"soon\"\n{}{}[canary]\nurl = \"http://x.test/\"\nmsisdn = \"1\"\n",
            partner("a", "ports = [0]"),
            partner("b", "purpose = \"age_verification\"")
        );
        let errors = errors(&text);
        let lines: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').nth(1).unwrap())
            .collect();
        assert_eq!(lines, ["3", "10", "16", "20"], "{errors:#?}");
    }

    #[test]
    fn load_policy_ignores_other_tables() {
        let text = format!("[admin]\nlisten = \"bad\"\n{}", partner("a", ""));
        let policy = load_policy("p.toml", &text).unwrap();
        assert_eq!(policy.partners()[0].name, "a");
        assert_eq!(
            load_policy("p.toml", "[gateway]\nbogus = 1\n")
                .unwrap_err()
                .to_string(),
            "p.toml:2:1: unknown key `bogus` in [gateway]; expected one of: listen, \
             transparent_listen, proxy_protocol, proxy_protocol_from, connect_ports, \
             connect_timeout, header_read_timeout, idle_timeout, max_connections, hosts"
        );
    }

    #[test]
    fn column_counts_characters() {
        assert_eq!(position("ab\ncdé€f", 3 + 2 + 2 + 3), (2, 5));
        assert_eq!(position("", 0), (1, 1));
        assert_eq!(position("a\nb\n", 2), (2, 1));
        assert_eq!(position("a\nb\n", 4), (3, 1));
        assert_eq!(position("a\nb\n", 99), (3, 1));
    }
}
