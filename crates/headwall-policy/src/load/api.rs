//! `[api]` and `[[api.client]]`: the HTTPS listener's settings and the clients that may ask
//! the CAMARA APIs (docs/design.md, "HTTPS: network-based authentication and the CAMARA APIs").

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::{Loader, Str};
use crate::client::{ApiClient, ApiScope, TextPosition};
use crate::config::Api;
use crate::policy::Policy;

/// `[api].code_lifetime` when unset.
const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(60);
/// RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is RECOMMENDED".
const MAX_CODE_LIFETIME: Duration = Duration::from_secs(600);
/// `[api].access_token_lifetime` when unset, and its maximum (docs/design.md, HTTPS).
const MAX_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// Longest `client_id`.
const MAX_CLIENT_ID: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    listen: Option<Str>,
    public_url: Option<Str>,
    tls_cert_file: Option<Str>,
    tls_key_file: Option<Str>,
    proxy_protocol_from: Option<Vec<Str>>,
    subscriber_networks: Option<Spanned<Vec<Str>>>,
    code_lifetime: Option<Str>,
    access_token_lifetime: Option<Str>,
    #[serde(default)]
    client: Vec<Spanned<RawApiClient>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApiClient {
    id: Option<Str>,
    jwks_file: Option<Str>,
    redirect_uris: Option<Spanned<Vec<Str>>>,
    scopes: Option<Spanned<Vec<Str>>>,
    purpose: Option<Str>,
    justification: Option<Str>,
}

impl RawApi {
    /// The clients alone, for `load_policy`.
    pub(super) fn into_clients(self) -> Vec<Spanned<RawApiClient>> {
        self.client
    }
}

impl Loader<'_> {
    /// `[api]` without its clients (see [`Loader::api_clients`]).
    pub(super) fn api(&mut self, raw: &Spanned<RawApi>) -> Api {
        const T: &str = "[api]";
        let span = raw.span();
        let raw = raw.get_ref();
        let listen = self.socket_or(
            raw.listen.as_ref(),
            "`listen` in [api]",
            SocketAddr::from((Ipv4Addr::LOCALHOST, 8443)),
        );
        let public_url = match &raw.public_url {
            Some(url) => self.public_url(url),
            None => {
                self.missing(
                    span.clone(),
                    "public_url",
                    T,
                    "\"https://api.operator.example\"",
                );
                String::new()
            }
        };
        let proxy_protocol_from: Vec<IpNet> = raw
            .proxy_protocol_from
            .iter()
            .flatten()
            .filter_map(|net| self.net(net, "`proxy_protocol_from` in [api]"))
            .collect();
        let tls = match self.tls_pair(
            "[api]",
            raw.tls_cert_file.as_ref(),
            raw.tls_key_file.as_ref(),
            "behind a TLS-terminating balancer",
        ) {
            Some(Some(pair)) => Some(pair),
            None => None,
            Some(None) => {
                if proxy_protocol_from.is_empty() {
                    self.error(
                        span.start,
                        "[api] without `tls_cert_file` and `tls_key_file` serves plain HTTP, \
                         which is allowed only behind TLS-terminating balancers: add \
                         tls_cert_file = \"state/api.crt\" and tls_key_file = \"state/api.key\" \
                         (`headwall keygen --tls NAME --out state` makes a first pair), or list \
                         the balancers in `proxy_protocol_from`",
                    );
                }
                None
            }
        };
        let subscriber_networks = match &raw.subscriber_networks {
            Some(list) if list.get_ref().is_empty() => {
                self.error(
                    list.span().start,
                    "`subscriber_networks` in [api] is empty; list the device address ranges \
                     /authorize may identify, e.g. [\"10.0.0.0/8\"]",
                );
                Vec::new()
            }
            Some(list) => list
                .get_ref()
                .iter()
                .filter_map(|value| {
                    let net = self.net(value, "`subscriber_networks` in [api]")?;
                    if net.prefix_len() == 0 {
                        self.error(
                            value.span().start,
                            format!(
                                "`{}` in `subscriber_networks` of [api] is every address; list \
                                 only the ranges your subscribers' devices are given",
                                value.get_ref()
                            ),
                        );
                        return None;
                    }
                    Some(net)
                })
                .collect(),
            None => {
                self.missing(span, "subscriber_networks", T, "[\"10.0.0.0/8\"]");
                Vec::new()
            }
        };
        let code_lifetime = self.bounded_duration(
            raw.code_lifetime.as_ref(),
            "`code_lifetime` in [api]",
            DEFAULT_CODE_LIFETIME,
            MAX_CODE_LIFETIME,
        );
        let access_token_lifetime = self.bounded_duration(
            raw.access_token_lifetime.as_ref(),
            "`access_token_lifetime` in [api]",
            MAX_ACCESS_TOKEN_LIFETIME,
            MAX_ACCESS_TOKEN_LIFETIME,
        );
        Api {
            listen,
            public_url,
            tls,
            proxy_protocol_from,
            subscriber_networks,
            code_lifetime,
            access_token_lifetime,
        }
    }

    /// `[[api.client]]` tables; `policy` is the partners', whose names a client id must not take.
    pub(super) fn api_clients(
        &mut self,
        raw: Vec<Spanned<RawApiClient>>,
        policy: &Policy,
    ) -> Vec<ApiClient> {
        let mut ids = HashSet::new();
        raw.into_iter()
            .filter_map(|client| self.api_client(client, policy, &mut ids))
            .collect()
    }

    fn api_client(
        &mut self,
        raw: Spanned<RawApiClient>,
        policy: &Policy,
        ids: &mut HashSet<String>,
    ) -> Option<ApiClient> {
        let span = raw.span();
        let raw = raw.into_inner();
        let Some(id) = raw.id.as_ref() else {
            self.missing(span, "id", "[[api.client]]", "\"shop-app\"");
            return None;
        };
        let label = format!("[[api.client]] `{}`", id.get_ref());
        self.client_id(id, policy, ids);
        let (jwks_file, jwks_file_at) = match &raw.jwks_file {
            Some(value) => {
                let (line, column) = self.lines.position(value.span().start);
                (
                    self.path(
                        Some(value),
                        &format!("`jwks_file` in {label}"),
                        "clients/app.jwks.json",
                    ),
                    TextPosition { line, column },
                )
            }
            None => {
                self.missing(
                    span.clone(),
                    "jwks_file",
                    &label,
                    "\"clients/shop-app.jwks.json\"",
                );
                (Default::default(), TextPosition { line: 1, column: 1 })
            }
        };
        let redirect_uris = match &raw.redirect_uris {
            Some(list) if list.get_ref().is_empty() => {
                self.error(
                    list.span().start,
                    format!(
                        "`redirect_uris` in {label} is empty; list the exact callback URLs, \
                         e.g. [\"https://shop.example/callback\"]"
                    ),
                );
                Vec::new()
            }
            Some(list) => {
                let mut seen = HashSet::new();
                let mut uris = Vec::new();
                for value in list.get_ref() {
                    if !self.redirect_uri(value, &label) {
                        continue;
                    }
                    if !seen.insert(value.get_ref().clone()) {
                        self.error(
                            value.span().start,
                            format!("redirect URI listed twice in {label}; remove one"),
                        );
                        continue;
                    }
                    uris.push(value.get_ref().clone());
                }
                uris
            }
            None => {
                self.missing(
                    span.clone(),
                    "redirect_uris",
                    &label,
                    "[\"https://shop.example/callback\"]",
                );
                Vec::new()
            }
        };
        let scopes = self.scopes(raw.scopes.as_ref(), &label, span.clone());
        let purpose = match &raw.purpose {
            Some(value) => {
                self.dpv_purpose(value, &label);
                value.get_ref().clone()
            }
            None => {
                self.missing(
                    span.clone(),
                    "purpose",
                    &label,
                    "\"dpv:FraudPreventionAndDetection\"",
                );
                String::new()
            }
        };
        let justification = match &raw.justification {
            Some(value) if value.get_ref().trim().is_empty() => {
                self.error(
                    value.span().start,
                    format!(
                        "`justification` in {label} is empty; explain why the client needs \
                         what its scopes reveal, or remove the key"
                    ),
                );
                None
            }
            Some(value) => Some(value.get_ref().clone()),
            None => None,
        };
        if justification.is_none() {
            let needing: Vec<&str> = scopes
                .iter()
                .filter(|scope| scope.needs_justification())
                .map(|scope| scope.as_str())
                .collect();
            if let (false, Some(at)) = (needing.is_empty(), raw.scopes.as_ref()) {
                self.error(
                    at.span().start,
                    format!(
                        "{label} is given `{}`, which hands the device's number itself to the \
                         client: add a `justification` saying why it needs more than \
                         `number-verification:verify`",
                        needing.join("`, `")
                    ),
                );
            }
        }
        Some(ApiClient {
            id: id.get_ref().clone(),
            jwks_file,
            jwks_file_at,
            redirect_uris,
            scopes,
            purpose,
            justification,
        })
    }

    fn client_id(&mut self, id: &Str, policy: &Policy, ids: &mut HashSet<String>) {
        let text = id.get_ref();
        let at = id.span().start;
        if text.is_empty()
            || text.len() > MAX_CLIENT_ID
            || !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        {
            self.error(
                at,
                format!(
                    "client `id` must be 1 to {MAX_CLIENT_ID} letters, digits, `-`, `_`, `.` or \
                     `~`, e.g. \"shop-app\""
                ),
            );
        } else if policy.partner(text).is_some() {
            self.error(
                at,
                format!(
                    "client id `{text}` is also a [[partner]] name; the audit log names both by \
                     it, so give the client a name of its own"
                ),
            );
        } else if !ids.insert(text.clone()) {
            self.error(
                at,
                format!("client id `{text}` is used by another [[api.client]]; ids are unique"),
            );
        }
    }

    fn scopes(
        &mut self,
        raw: Option<&Spanned<Vec<Str>>>,
        label: &str,
        table: std::ops::Range<usize>,
    ) -> Vec<ApiScope> {
        let known: Vec<&str> = ApiScope::ALL.iter().map(|s| s.as_str()).collect();
        let Some(list) = raw else {
            self.missing(table, "scopes", label, "[\"number-verification:verify\"]");
            return Vec::new();
        };
        let mut scopes = Vec::new();
        for value in list.get_ref() {
            let text = value.get_ref().as_str();
            let at = value.span().start;
            if text == "openid" {
                // Always implied: every flow is OpenID Connect.
                continue;
            }
            if text.starts_with("dpv:") {
                self.error(
                    at,
                    format!(
                        "`{text}` in `scopes` of {label} is a purpose: a client has exactly one, \
                         given as `purpose = \"dpv:...\"`; remove it from `scopes`"
                    ),
                );
                continue;
            }
            match ApiScope::from_scope_str(text) {
                Some(scope) if scopes.contains(&scope) => self.error(
                    at,
                    format!("scope `{text}` listed twice in {label}; remove one"),
                ),
                Some(scope) => scopes.push(scope),
                None => self.error(
                    at,
                    format!(
                        "unknown scope `{text}` in {label}; use one of `{}`",
                        known.join("`, `")
                    ),
                ),
            }
        }
        if list
            .get_ref()
            .iter()
            .all(|value| value.get_ref() == "openid")
        {
            self.error(
                list.span().start,
                format!(
                    "{label} has no API scope; give at least one of `{}`",
                    known.join("`, `")
                ),
            );
        }
        scopes.sort();
        scopes
    }

    /// `purpose`: exactly one W3C Data Privacy Vocabulary purpose, `dpv:` then a term in the
    /// vocabulary's UpperCamelCase (`dpv:FraudPreventionAndDetection`), as CAMARA's ICM profile
    /// puts it in the scope.
    fn dpv_purpose(&mut self, value: &Str, label: &str) {
        let text = value.get_ref();
        let term = text.strip_prefix("dpv:");
        let well_formed = term.is_some_and(|term| {
            term.starts_with(|c: char| c.is_ascii_uppercase())
                && term.chars().all(|c| c.is_ascii_alphanumeric())
        });
        if text.matches("dpv:").count() > 1 {
            self.error(
                value.span().start,
                format!(
                    "`purpose` in {label} names more than one purpose; a client has exactly one \
                     DPV purpose, e.g. \"dpv:FraudPreventionAndDetection\""
                ),
            );
        } else if !well_formed {
            self.error(
                value.span().start,
                format!(
                    "`purpose` in {label} must be one W3C DPV purpose, `dpv:` and its term, e.g. \
                     \"dpv:FraudPreventionAndDetection\" or \"dpv:IdentityVerification\""
                ),
            );
        }
    }

    /// `public_url`: the issuer. `https://host[:port][/path]`, no query, fragment, user info or
    /// trailing `/` (OpenID Connect Discovery §3: the issuer is compared exactly).
    fn public_url(&mut self, value: &Str) -> String {
        let text = value.get_ref();
        let problem = match split_url(text) {
            Err(why) => Some(why),
            Ok(url) if url.scheme != "https" => {
                Some("it must be https:// (OpenID Connect issuers are https)")
            }
            Ok(url) if url.has_query => Some("it must not have a query (`?`)"),
            Ok(url) if url.path.ends_with('/') => Some("remove the trailing `/`"),
            Ok(_) => None,
        };
        if let Some(why) = problem {
            self.error(
                value.span().start,
                format!(
                    "invalid `public_url` in [api]: {why}; e.g. \"https://api.operator.example\""
                ),
            );
        }
        text.clone()
    }

    /// One redirect URI; reports and returns false when it cannot be registered. RFC 6749
    /// §3.1.2: absolute, no fragment; https, or http to a loopback address for native apps
    /// (RFC 8252 §7.3).
    fn redirect_uri(&mut self, value: &Str, label: &str) -> bool {
        let text = value.get_ref();
        let problem = match split_url(text) {
            Err(why) => Some(why),
            Ok(url) if url.host.contains('*') => {
                Some("wildcards are not allowed: redirect URIs match exactly")
            }
            Ok(url) if url.scheme == "https" => None,
            Ok(url) if url.scheme == "http" && is_loopback_host(url.host) => None,
            Ok(_) => Some("it must be https://, or http:// to a loopback address"),
        };
        match problem {
            None => true,
            Some(why) => {
                self.error(
                    value.span().start,
                    format!(
                        "invalid redirect URI in {label}: {why}; e.g. \
                         \"https://shop.example/callback\""
                    ),
                );
                false
            }
        }
    }

    /// A duration with a default and an upper bound.
    fn bounded_duration(
        &mut self,
        value: Option<&Str>,
        what: &str,
        default: Duration,
        max: Duration,
    ) -> Duration {
        let duration = self.duration(value, what, default);
        match value {
            Some(value) if duration > max => {
                self.error(
                    value.span().start,
                    format!("{what} is at most {}s; shorten it", max.as_secs()),
                );
                max
            }
            _ => duration,
        }
    }
}

/// The parts of an absolute URL that registration checks.
struct UrlParts<'a> {
    scheme: &'a str,
    host: &'a str,
    path: &'a str,
    has_query: bool,
}

/// Splits `scheme://authority/path?query`; refuses what no redirect URI or issuer may hold:
/// whitespace and control characters, a fragment, user info, an empty host, a bad port.
fn split_url(text: &str) -> Result<UrlParts<'_>, &'static str> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it holds whitespace or control characters");
    }
    if text.contains('#') {
        return Err("it must not have a fragment (`#`)");
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err("it must be an absolute URL, `https://host/path`");
    };
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase())
        && scheme.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        });
    if !scheme_ok {
        return Err("its scheme must be lowercase, e.g. `https`");
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err("it must not hold user info (`user@`)");
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inside, after_host)) = bracketed.split_once(']') else {
            return Err("its IPv6 host lacks `]`");
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("its IPv6 host is not an address");
        }
        (&authority[..inside.len() + 2], after_host.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("it has no host");
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !valid {
            return Err("its port must be 1 to 65535");
        }
    }
    let (path, has_query) = match after.split_once('?') {
        Some((path, _)) => (path, true),
        None => (after, false),
    };
    Ok(UrlParts {
        scheme,
        host,
        path,
        has_query,
    })
}

/// `localhost`, 127.0.0.0/8 or `[::1]`.
fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{ApiScope, Folders, load, load_policy};

    const GW: &str = "[gateway]\nlisten = \"127.0.0.1:8080\"\n";

    /// `[api]` on lines 3-7 and one client on lines 8-13, with `extra` lines appended to the
    /// client.
    fn api(extra_api: &str, extra_client: &str) -> String {
        format!(
            "{GW}[api]\npublic_url = \"https://api.operator.test:8443\"\n\
             tls_cert_file = \"state/api.crt\"\ntls_key_file = \"state/api.key\"\n\
             subscriber_networks = [\"10.0.0.0/8\"]\n{extra_api}\
             [[api.client]]\nid = \"shop-app\"\njwks_file = \"clients/shop.jwks.json\"\n\
             redirect_uris = [\"https://shop.test/callback\"]\n\
             scopes = [\"openid\", \"kyc-age-verification:verify\", \"number-verification:verify\"]\n\
             purpose = \"dpv:FraudPreventionAndDetection\"\n{extra_client}"
        )
    }

    fn errors(text: &str) -> Vec<String> {
        match load("t.toml", text, &Folders::both(Path::new("/cfg"))) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    /// `text` with the client's line `key = ...` replaced by `line`.
    fn with_client_line(key: &str, line: &str) -> String {
        let base = api("", "");
        let mut out: Vec<String> = Vec::new();
        let mut in_client = false;
        for l in base.lines() {
            in_client |= l == "[[api.client]]";
            if in_client && l.split('=').next().unwrap_or_default().trim() == key {
                out.push(line.to_owned());
            } else {
                out.push(l.to_owned());
            }
        }
        out.join("\n") + "\n"
    }

    #[test]
    fn a_valid_api_table_and_client() {
        let config = load("t.toml", &api("", ""), &Folders::both(Path::new("/cfg"))).unwrap();
        let settings = config.api.expect("[api]");
        assert_eq!(settings.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(settings.public_url, "https://api.operator.test:8443");
        let tls = settings.tls.expect("tls");
        assert_eq!(tls.cert_file, Path::new("/cfg/state/api.crt"));
        assert_eq!(tls.key_file, Path::new("/cfg/state/api.key"));
        assert_eq!(
            settings.subscriber_networks,
            ["10.0.0.0/8".parse().unwrap()]
        );
        assert_eq!(settings.code_lifetime.as_secs(), 60);
        assert_eq!(settings.access_token_lifetime.as_secs(), 300);
        let clients = config.policy.api_clients();
        assert_eq!(clients.len(), 1);
        let client = &clients[0];
        assert_eq!(client.id, "shop-app");
        assert_eq!(client.jwks_file, Path::new("/cfg/clients/shop.jwks.json"));
        assert_eq!(
            (client.jwks_file_at.line, client.jwks_file_at.column),
            (10, 13)
        );
        assert_eq!(client.redirect_uris, ["https://shop.test/callback"]);
        assert_eq!(
            client.scopes,
            [ApiScope::NumberVerify, ApiScope::AgeVerify],
            "sorted, openid implied"
        );
        assert_eq!(client.purpose, "dpv:FraudPreventionAndDetection");
        assert!(config.policy.api_client("shop-app").is_some());
        assert!(config.policy.api_client("other").is_none());
    }

    #[test]
    fn plain_http_only_behind_balancers() {
        let plain = format!(
            "{GW}[api]\npublic_url = \"https://api.operator.test\"\nsubscriber_networks = [\"10.0.0.0/8\"]\n"
        );
        let found = errors(&plain);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("t.toml:3:1: [api] without `tls_cert_file`"),
            "{found:?}"
        );
        let balanced = plain.replace("[api]\n", "[api]\nproxy_protocol_from = [\"192.0.2.1\"]\n");
        let config = load("t.toml", &balanced, &Folders::both(Path::new("/cfg"))).unwrap();
        assert_eq!(config.api.unwrap().tls, None);
        let half = plain.replace("[api]\n", "[api]\ntls_cert_file = \"a.crt\"\n");
        assert_eq!(
            errors(&half),
            [
                "t.toml:4:17: [api] needs both `tls_cert_file` and `tls_key_file` (PEM certificate \
              chain and its key), or neither behind a TLS-terminating balancer"
            ]
        );
    }

    #[test]
    fn api_table_errors_point_at_their_values() {
        let cases = [
            (
                "public_url = \"http://api.operator.test\"\n",
                "t.toml:4:14: invalid `public_url` in [api]: it must be https://",
            ),
            (
                "public_url = \"https://api.operator.test/\"\n",
                "t.toml:4:14: invalid `public_url` in [api]: remove the trailing `/`",
            ),
            (
                "public_url = \"https://api.test?x=1\"\n",
                "t.toml:4:14: invalid `public_url` in [api]: it must not have a query",
            ),
            (
                "public_url = \"https://user@api.test\"\n",
                "t.toml:4:14: invalid `public_url` in [api]: it must not hold user info",
            ),
            (
                "subscriber_networks = [\"0.0.0.0/0\"]\n",
                "t.toml:7:24: `0.0.0.0/0` in `subscriber_networks` of [api] is every address",
            ),
            (
                "subscriber_networks = []\n",
                "t.toml:7:23: `subscriber_networks` in [api] is empty",
            ),
            (
                "access_token_lifetime = \"600s\"\n",
                "t.toml:8:25: `access_token_lifetime` in [api] is at most 300s",
            ),
            (
                "code_lifetime = \"11m\"\n",
                "t.toml:8:17: `code_lifetime` in [api] is at most 600s",
            ),
            (
                "listen = \"localhost:8443\"\n",
                "t.toml:8:10: invalid address `localhost:8443` for `listen` in [api]",
            ),
        ];
        for (line, want) in cases {
            let key = line.split('=').next().unwrap().trim();
            // Lines 3-7 are [api]; a key of its own is replaced in place, any other inserted
            // as line 8.
            let base = api("", "");
            let in_api = |n: usize, l: &str| (3..=7).contains(&n) && l.starts_with(key);
            let text: String = base
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    if in_api(i + 1, l) {
                        "# replaced".to_owned()
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let text = if base.lines().enumerate().any(|(i, l)| in_api(i + 1, l)) {
                text.replacen("# replaced", line.trim_end(), 1)
            } else {
                text.replacen("[[api.client]]", &format!("{}[[api.client]]", line), 1)
            };
            let found = errors(&(text + "\n"));
            assert_eq!(found.len(), 1, "{line}: {found:?}");
            assert!(found[0].starts_with(want), "{line}: {found:?}");
        }
        let found = errors(&format!("{GW}[api]\n"));
        assert!(
            found
                .iter()
                .any(|e| e.contains("missing required key `public_url`")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|e| e.contains("missing required key `subscriber_networks`")),
            "{found:?}"
        );
    }

    #[test]
    fn client_errors_point_at_their_values() {
        let cases = [
            (
                "scopes",
                "scopes = [\"number-verification:verify\", \"dpv:FraudPreventionAndDetection\"]",
                "t.toml:12:41: `dpv:FraudPreventionAndDetection` in `scopes` of [[api.client]] `shop-app` is a purpose",
            ),
            (
                "scopes",
                "scopes = [\"number-verification:check\"]",
                "t.toml:12:11: unknown scope `number-verification:check` in [[api.client]] `shop-app`",
            ),
            (
                "scopes",
                "scopes = [\"openid\"]",
                "t.toml:12:10: [[api.client]] `shop-app` has no API scope",
            ),
            (
                "scopes",
                "scopes = [\"kyc-age-verification:verify\", \"kyc-age-verification:verify\"]",
                "t.toml:12:42: scope `kyc-age-verification:verify` listed twice",
            ),
            (
                "scopes",
                "scopes = [\"number-verification:device-phone-number:read\"]",
                "t.toml:12:10: [[api.client]] `shop-app` is given `number-verification:device-phone-number:read`, which hands the device's number itself",
            ),
            (
                "purpose",
                "purpose = \"dpv:FraudPreventionAndDetection dpv:Marketing\"",
                "t.toml:13:11: `purpose` in [[api.client]] `shop-app` names more than one purpose",
            ),
            (
                "purpose",
                "purpose = \"fraud\"",
                "t.toml:13:11: `purpose` in [[api.client]] `shop-app` must be one W3C DPV purpose",
            ),
            (
                "redirect_uris",
                "redirect_uris = [\"http://shop.test/callback\"]",
                "t.toml:11:18: invalid redirect URI in [[api.client]] `shop-app`: it must be https://, or http:// to a loopback address",
            ),
            (
                "redirect_uris",
                "redirect_uris = [\"https://shop.test/cb#x\"]",
                "t.toml:11:18: invalid redirect URI in [[api.client]] `shop-app`: it must not have a fragment",
            ),
            (
                "redirect_uris",
                "redirect_uris = [\"https://*.shop.test/cb\"]",
                "t.toml:11:18: invalid redirect URI in [[api.client]] `shop-app`: wildcards are not allowed",
            ),
            (
                "redirect_uris",
                "redirect_uris = [\"com.shop.app:/cb\"]",
                "t.toml:11:18: invalid redirect URI in [[api.client]] `shop-app`: it must be an absolute URL",
            ),
            (
                "redirect_uris",
                "redirect_uris = [\"https://shop.test/a\", \"https://shop.test/a\"]",
                "t.toml:11:41: redirect URI listed twice",
            ),
            (
                "redirect_uris",
                "redirect_uris = []",
                "t.toml:11:17: `redirect_uris` in [[api.client]] `shop-app` is empty",
            ),
            (
                "id",
                "id = \"shop app\"",
                "t.toml:9:6: client `id` must be 1 to 64 letters",
            ),
            (
                "jwks_file",
                "jwks_file = \"\"",
                "t.toml:10:13: `jwks_file` in [[api.client]] `shop-app` is empty",
            ),
            (
                "jwks_file",
                "jwks = \"a.json\"",
                "t.toml:10:1: unknown key `jwks`",
            ),
        ];
        for (key, line, want) in cases {
            let found = errors(&with_client_line(key, line));
            assert_eq!(found.len(), 1, "{line}: {found:?}");
            assert!(found[0].starts_with(want), "{line}: {found:?}");
        }
        // Loopback http for native apps, and the share scope with a justification.
        let ok = with_client_line(
            "redirect_uris",
            "redirect_uris = [\"http://127.0.0.1:7000/cb\", \"http://[::1]/cb\", \"http://localhost/cb\"]",
        );
        assert_eq!(errors(&ok), Vec::<String>::new());
        let share = api(
            "",
            "justification = \"the shop pre-fills the number at checkout\"\n",
        )
        .replace(
            "\"number-verification:verify\"]",
            "\"number-verification:device-phone-number:read\"]",
        );
        let config = load("t.toml", &share, &Folders::both(Path::new("/cfg"))).unwrap();
        assert!(config.policy.api_clients()[0].allows(ApiScope::NumberShare));
    }

    #[test]
    fn client_ids_are_unique_and_never_a_partner_name() {
        let second = "[[api.client]]\nid = \"shop-app\"\njwks_file = \"b.json\"\n\
                      redirect_uris = [\"https://b.test/cb\"]\nscopes = [\"kyc-age-verification:verify\"]\n\
                      purpose = \"dpv:IdentityVerification\"\n";
        let found = errors(&(api("", "") + second));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("t.toml:15:6: client id `shop-app` is used by another"),
            "{found:?}"
        );
        let partner = "[[partner]]\nname = \"shop-app\"\npurpose = \"billing\"\nhosts = [\"a.example\"]\n\
                       destinations = [\"192.0.2.10/32\"]\nheaders = { \"X-MSISDN\" = \"msisdn\" }\n";
        let found = errors(&(api("", "") + partner));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("t.toml:9:6: client id `shop-app` is also a [[partner]] name"),
            "{found:?}"
        );
    }

    #[test]
    fn clients_are_in_the_policy_hash_and_plan_input() {
        let without = load("t.toml", GW, &Folders::both(Path::new("/cfg")))
            .unwrap()
            .policy;
        assert_eq!(
            without.hash(),
            crate::Policy::empty().hash(),
            "no clients: the old hash"
        );
        let with = load("t.toml", &api("", ""), &Folders::both(Path::new("/cfg")))
            .unwrap()
            .policy;
        assert_ne!(with.hash(), without.hash());
        // Order and key files do not change what a client may learn.
        let reordered = api("", "").replace(
            "[\"openid\", \"kyc-age-verification:verify\", \"number-verification:verify\"]",
            "[\"number-verification:verify\", \"kyc-age-verification:verify\"]",
        );
        let moved = api("", "").replace("clients/shop.jwks.json", "elsewhere/keys.json");
        for text in [reordered, moved] {
            let same = load("t.toml", &text, &Folders::both(Path::new("/cfg")))
                .unwrap()
                .policy;
            assert_eq!(same.hash(), with.hash());
        }
        let wider = api("", "").replace(
            "\"https://shop.test/callback\"]",
            "\"https://shop.test/callback\", \"https://shop.test/other\"]",
        );
        let wider = load("t.toml", &wider, &Folders::both(Path::new("/cfg")))
            .unwrap()
            .policy;
        assert_ne!(wider.hash(), with.hash());
        // `plan` reads only the policy: the clients come with it, [api]'s other keys need not.
        let policy =
            load_policy("t.toml", &api("", "").replace("public_url", "# public_url")).unwrap();
        assert_eq!(policy.hash(), with.hash());
    }
}
