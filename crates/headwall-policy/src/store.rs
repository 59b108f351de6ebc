//! What a shared store's URL says about its transport: which hosts it reaches, whether they are
//! this machine, and (PostgreSQL) which `sslmode` it asks for. The loader uses it to refuse a
//! URL that would carry identity across a network in clear; the audit crate uses
//! [`PgSslMode`] to set up the connection the way the URL asks.
//!
//! Only the URL forms the config accepts are read: `postgres://` / `postgresql://` and
//! `redis://` / `rediss://`. Nothing here prints a URL's user information.

/// `sslmode` of a PostgreSQL URL (libpq's names and meanings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgSslMode {
    /// `disable`: plaintext.
    Disable,
    /// `prefer` (the default): TLS when the server offers it, else plaintext.
    Prefer,
    /// `require`: TLS or no connection. The server's certificate is checked against
    /// `tls_ca_file` when one is given (as libpq does), else not at all.
    Require,
    /// `verify-ca`: TLS; the server's chain must lead to a trusted CA (any name).
    VerifyCa,
    /// `verify-full`: TLS; the chain must lead to a trusted CA and name the host connected to.
    VerifyFull,
}

impl PgSslMode {
    /// Every value and its name, in order of strength.
    pub const ALL: [(&'static str, PgSslMode); 5] = [
        ("disable", PgSslMode::Disable),
        ("prefer", PgSslMode::Prefer),
        ("require", PgSslMode::Require),
        ("verify-ca", PgSslMode::VerifyCa),
        ("verify-full", PgSslMode::VerifyFull),
    ];

    /// The `sslmode` query parameter of `url` (the last one given, as libpq reads it), or
    /// [`PgSslMode::Prefer`] without one. The error names the value that is not a mode.
    pub fn of_url(url: &str) -> Result<PgSslMode, String> {
        let Some(value) = query_pairs(url)
            .filter(|(key, _)| *key == "sslmode")
            .map(|(_, value)| value)
            .last()
        else {
            return Ok(PgSslMode::Prefer);
        };
        PgSslMode::ALL
            .iter()
            .find(|(name, _)| *name == value)
            .map(|(_, mode)| *mode)
            .ok_or_else(|| {
                let names: Vec<&str> = PgSslMode::ALL.iter().map(|(name, _)| *name).collect();
                format!("`sslmode={value}` is not one of {}", names.join(", "))
            })
    }

    /// Whether a connection in this mode can only be encrypted.
    pub fn always_encrypts(self) -> bool {
        matches!(
            self,
            PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
        )
    }
}

/// `url` without its `sslmode` parameters (the PostgreSQL client library knows only three of
/// the five modes; the audit crate applies the mode itself).
pub fn without_sslmode(url: &str) -> String {
    let (before_fragment, fragment) = match url.find('#') {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    let Some((base, query)) = before_fragment.split_once('?') else {
        return url.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("sslmode"))
        .collect();
    if kept.is_empty() {
        format!("{base}{fragment}")
    } else {
        format!("{base}?{}{fragment}", kept.join("&"))
    }
}

/// The hosts `url` connects to: the authority's (comma-separated, ports and user information
/// removed, percent-decoded, IPv6 brackets dropped) and those of `host=` query parameters.
pub fn url_hosts(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let hosts = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    let mut found: Vec<String> = hosts
        .split(',')
        .filter(|host| !host.is_empty())
        .map(|host| percent_decode(strip_port(host)))
        .filter(|host| !host.is_empty())
        .collect();
    for (key, value) in query_pairs(url) {
        if key == "host" {
            found.extend(
                value
                    .split(',')
                    .map(percent_decode)
                    .filter(|host| !host.is_empty()),
            );
        }
    }
    found
}

/// Whether `host` is this machine: `localhost`, a loopback address, or a Unix socket path.
pub fn is_local_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host.starts_with('@')
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|addr| addr.is_loopback())
}

/// The first of `url`'s hosts that is not this machine, if any. No host at all (a Unix socket
/// default) counts as local.
pub fn first_remote_host(url: &str) -> Option<String> {
    url_hosts(url).into_iter().find(|host| !is_local_host(host))
}

fn strip_port(host: &str) -> &str {
    if let Some(inside) = host.strip_prefix('[') {
        return inside.split(']').next().unwrap_or(inside);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn query_pairs(url: &str) -> impl Iterator<Item = (&str, &str)> {
    let before_fragment = url.split('#').next().unwrap_or(url);
    let query = before_fragment
        .split_once('?')
        .map_or("", |(_, query)| query);
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// `%XX` decoded; a `%` not followed by two hex digits is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[at] == b'%'
            && at + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[at + 1]), hex(bytes[at + 2]))
        {
            out.push((high * 16 + low) as u8);
            at += 3;
            continue;
        }
        out.push(bytes[at]);
        at += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_from_urls() {
        assert_eq!(PgSslMode::of_url("postgres://db/a"), Ok(PgSslMode::Prefer));
        assert_eq!(
            PgSslMode::of_url("postgres://db/a?application_name=x&sslmode=verify-full"),
            Ok(PgSslMode::VerifyFull)
        );
        assert_eq!(
            PgSslMode::of_url("postgres://db/a?sslmode=require&sslmode=disable"),
            Ok(PgSslMode::Disable)
        );
        let error = PgSslMode::of_url("postgres://u:pw@db/a?sslmode=allow").unwrap_err();
        assert!(error.contains("`sslmode=allow`"), "{error}");
        assert!(!error.contains("pw"), "{error}");
    }

    #[test]
    fn sslmode_is_removed_and_the_rest_kept() {
        assert_eq!(
            without_sslmode("postgres://db/a?sslmode=verify-full"),
            "postgres://db/a"
        );
        assert_eq!(
            without_sslmode("postgres://db/a?x=1&sslmode=require&y=2"),
            "postgres://db/a?x=1&y=2"
        );
        assert_eq!(without_sslmode("postgres://db/a"), "postgres://db/a");
    }

    #[test]
    fn hosts() {
        assert_eq!(
            url_hosts("postgres://u:p%40ss@db1.example:5432,[::1]:5433,10.0.0.9/a"),
            ["db1.example", "::1", "10.0.0.9"]
        );
        assert_eq!(
            url_hosts("postgres://%2Frun%2Fpostgresql/a"),
            ["/run/postgresql"]
        );
        assert_eq!(
            url_hosts("postgres:///a?host=/run/pg,db.example"),
            ["/run/pg", "db.example"]
        );
        assert_eq!(url_hosts("rediss://:pw@cache:6380/0"), ["cache"]);
        assert_eq!(url_hosts("redis://127.0.0.1"), ["127.0.0.1"]);
    }

    #[test]
    fn local_hosts() {
        for local in [
            "localhost",
            "LOCALHOST.",
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "/run/pg",
        ] {
            assert!(is_local_host(local), "{local}");
        }
        for remote in [
            "db.example",
            "10.0.0.1",
            "::ffff:10.0.0.1",
            "localhost.example",
        ] {
            assert!(!is_local_host(remote), "{remote}");
        }
        assert_eq!(first_remote_host("postgres://127.0.0.1/a"), None);
        assert_eq!(first_remote_host("postgres:///a"), None);
        assert_eq!(
            first_remote_host("postgres://127.0.0.1,db.example/a").as_deref(),
            Some("db.example")
        );
    }
}
