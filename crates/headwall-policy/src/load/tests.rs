//! `load` and `load_policy` end to end: defaults, and every error with its position.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::diagnostic::position;
use super::{Folders, load, load_policy};
use crate::config::{
    AccessLog, ApiTls, AuditBackend, RadiusSecret, Secret, SessionsBackend, StoreTls,
};
use crate::host::HostPattern;
use crate::policy::Policy;

const GW: &str = "[gateway]\nlisten = \"127.0.0.1:8080\"\n";

fn errors(text: &str) -> Vec<String> {
    match load("t.toml", text, &Folders::both(Path::new("/cfg"))) {
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
    let config = load("t.toml", GW, &Folders::both(Path::new("/cfg"))).unwrap();
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
    assert_eq!(config.audit.commit_window, Duration::from_millis(1));
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

/// Files headwall writes resolve against the state folder; files the operator provides against
/// the configuration's folder (docs/design.md, Operations, "State folder").
#[test]
fn written_files_resolve_in_the_state_folder_read_files_beside_the_config() {
    let text = format!(
        "{GW}[radius]\n[[radius.clients]]\nsource = \"10.0.0.1\"\nsecret_file = \"pgw.secret\"\n\
         [subscribers]\nfile = \"subs.csv\"\n[audit]\npath = \"audit.db\"\n{}",
        partner("a", "")
    );
    let folders = Folders {
        config: Path::new("/etc/headwall"),
        state: Path::new("/var/lib/headwall"),
    };
    let config = load("t.toml", &text, &folders).unwrap();
    let state = Path::new("/var/lib/headwall");
    assert_eq!(config.admin.token_file, state.join("state/admin.token"));
    assert_eq!(
        config.identity.signing_key_file,
        state.join("state/signing.key")
    );
    assert_eq!(
        config.identity.pseudonym_key_file,
        state.join("state/pseudonym.key")
    );
    assert_eq!(
        config.audit.backend,
        AuditBackend::Embedded {
            path: state.join("audit.db")
        }
    );
    assert_eq!(
        config.sessions.backend,
        SessionsBackend::Embedded {
            path: state.join("state/sessions")
        }
    );
    assert_eq!(
        config.subscribers.unwrap().file,
        Path::new("/etc/headwall/subs.csv")
    );
    assert_eq!(
        config.radius.unwrap().clients[0].secret,
        RadiusSecret::File("/etc/headwall/pgw.secret".into())
    );
}

#[test]
fn the_access_log_is_off_unless_asked_and_written_in_the_state_folder() {
    let folders = Folders {
        config: Path::new("/etc/headwall"),
        state: Path::new("/var/lib/headwall"),
    };
    let with = |table: &str| {
        let text = format!("{GW}{table}{}", partner("a", ""));
        load("t.toml", &text, &folders).unwrap().access_log
    };
    assert_eq!(with(""), None);
    assert_eq!(
        with("[access_log]\n"),
        Some(AccessLog::File("/var/lib/headwall/state/access.log".into()))
    );
    assert_eq!(
        with("[access_log]\npath = \"logs/access.log\"\n"),
        Some(AccessLog::File("/var/lib/headwall/logs/access.log".into()))
    );
    assert_eq!(
        with("[access_log]\npath = \"-\"\n"),
        Some(AccessLog::Stderr)
    );
}

#[test]
fn defaults_of_optional_tables() {
    let text = format!(
        "{GW}[radius]\n[[radius.clients]]\nsource = \"10.0.0.1\"\nsecret = \"s\"\n\
         [canary]\nurl = \"http://leak.test/\"\nmsisdn = \"447700900000\"\n\
         [subscribers]\nfile = \"/abs/subs.csv\"\n{}",
        partner("a", "")
    );
    let config = load("t.toml", &text, &Folders::both(Path::new("/cfg"))).unwrap();
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
             transparent_listen, proxy_protocol, proxy_protocol_from, clients, \
             connect_ports, connect_timeout, header_read_timeout, idle_timeout, \
             max_connections, hosts (did you mean `listen`?)"
        ]
    );
    assert_eq!(
        errors(&format!("{GW}[gatway]\n")),
        [
            "t.toml:3:2: unknown key `gatway` at the top level; expected one of: gateway, \
             admin, radius, sessions, subscribers, audit, identity, strip, canary, api, access_log, \
             change, partner (did you mean `gateway`?)"
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
        [
            "t.toml:2:10: `listen` in [gateway]: expected a string in double quotes, got integer `8080`"
        ]
    );
    assert_eq!(
        errors(&format!("{GW}max_connections = \"many\"\n")),
        [
            "t.toml:3:19: `max_connections` in [gateway]: expected a whole number (without \
             quotes), got string \"many\""
        ]
    );
    assert_eq!(
        errors(&format!("{GW}proxy_protocol = \"yes\"\n")),
        [
            "t.toml:3:18: `proxy_protocol` in [gateway]: expected true or false (without \
             quotes), got string \"yes\""
        ]
    );
    // An array given one value, and a duration given as a number: the line to write.
    assert_eq!(
        errors(&format!("{GW}connect_ports = 443\n")),
        [
            "t.toml:3:17: `connect_ports` in [gateway]: expected an array, got integer `443`; \
             write `connect_ports = [443]` (an array, even of one)"
        ]
    );
    assert_eq!(
        errors(&partner("a", "hosts = \"a.example.com\"")),
        [
            "t.toml:7:9: `hosts` in [[partner]]: expected an array, got string \
             \"a.example.com\"; write `hosts = [\"a.example.com\"]` (an array, even of one)"
        ]
    );
    assert_eq!(
        errors(&format!("{GW}connect_timeout = 5\n")),
        [
            "t.toml:3:19: `connect_timeout` in [gateway]: a duration is a string with its \
             unit, got integer `5`; write `connect_timeout = \"5s\"` (units: ms, s, m, h, d)"
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
fn the_commit_window_is_off_or_at_most_ten_milliseconds() {
    let window = |value: &str| {
        load(
            "t.toml",
            &format!("{GW}[audit]\ncommit_window = \"{value}\"\n"),
            &Folders::both(Path::new("/cfg")),
        )
        .map(|config| config.audit.commit_window)
    };
    assert_eq!(window("0s").unwrap(), Duration::ZERO);
    assert_eq!(window("10ms").unwrap(), Duration::from_millis(10));
    assert_eq!(
        errors(&format!("{GW}[audit]\ncommit_window = \"20ms\"\n")),
        [
            "t.toml:4:17: `commit_window` in [audit] is at most \"10ms\": every partner request \
          may wait that long for its record (default \"1ms\"; \"0s\" turns it off)"
        ]
    );
    assert_eq!(
        errors(&format!("{GW}[audit]\ncommit_window = \"soon\"\n")).len(),
        1
    );
}

#[test]
fn canary_unverified_after_and_on_unverified() {
    let folders = Folders::both(Path::new("/cfg"));
    let canary = |extra: &str| {
        format!(
            "{GW}[canary]\nurl = \"http://leak.test/api/v1/check\"\nmsisdn = \"447700900000\"\n{extra}"
        )
    };
    let config = load("t.toml", &canary(""), &folders).unwrap();
    let defaults = config.canary.unwrap();
    assert_eq!(defaults.unverified_after, Duration::from_secs(300));
    assert!(!defaults.pause_when_unverified);
    // Long intervals: two of them.
    let config = load("t.toml", &canary("interval = \"1h\"\n"), &folders).unwrap();
    assert_eq!(
        config.canary.unwrap().unverified_after,
        Duration::from_secs(7200)
    );
    let set = canary("unverified_after = \"2m\"\non_unverified = \"pause\"\n");
    let config = load("t.toml", &set, &folders).unwrap().canary.unwrap();
    assert_eq!(config.unverified_after, Duration::from_secs(120));
    assert!(config.pause_when_unverified);
    assert_eq!(
        errors(&canary(
            "interval = \"5m\"\nunverified_after = \"1m\"\non_unverified = \"stop\"\n"
        )),
        [
            "t.toml:7:20: `unverified_after` in [canary] must be longer than `interval`: a run \
             completes only once an interval, so a shorter limit would call every gap \
             unverified (default \"5m\")",
            "t.toml:8:17: `on_unverified` in [canary] is \"alert\" or \"pause\", not \"stop\"; \
             \"pause\" holds enrichment off until a canary run completes again",
        ]
    );
}

#[test]
fn a_secret_of_the_wrong_type_is_not_repeated_in_the_error() {
    let text = format!(
        "{GW}[radius]\n[[radius.clients]]\nsource = \"127.0.0.1/32\"\nsecret = 1234567890123456\n"
    );
    assert_eq!(
        errors(&text),
        [
            "t.toml:6:10: `secret` in [[radius.clients]]: expected a string in double quotes, got \
          integer"
        ]
    );
    // Other keys still show what was written.
    assert!(errors(&format!("{GW}max_connections = \"many\"\n"))[0].contains("\"many\""));
}

#[test]
fn admin_tls_is_both_files_or_neither() {
    let folders = Folders::both(Path::new("/cfg"));
    let both = format!("{GW}[admin]\ntls_cert_file = \"a.crt\"\ntls_key_file = \"a.key\"\n");
    let tls = load("t.toml", &both, &folders).unwrap().admin.tls.unwrap();
    assert_eq!(tls.cert_file, Path::new("/cfg/a.crt"));
    assert_eq!(tls.key_file, Path::new("/cfg/a.key"));
    assert!(load("t.toml", GW, &folders).unwrap().admin.tls.is_none());
    assert_eq!(
        errors(&format!("{GW}[admin]\ntls_key_file = \"a.key\"\n")),
        [
            "t.toml:4:16: [admin] needs both `tls_cert_file` and `tls_key_file` (PEM certificate \
          chain and its key), or neither for plain HTTP on loopback"
        ]
    );
}

#[test]
fn change_widening_is_allow_or_refuse() {
    let folders = Folders::both(Path::new("/cfg"));
    assert!(!load("t.toml", GW, &folders).unwrap().change.refuse_widening);
    let text = format!("{GW}[change]\nwidening = \"refuse\"\n");
    assert!(
        load("t.toml", &text, &folders)
            .unwrap()
            .change
            .refuse_widening
    );
    assert_eq!(
        errors(&format!("{GW}[change]\nwidening = \"ask\"\n")),
        [
            "t.toml:4:12: `widening` in [change] is \"allow\" or \"refuse\", not \"ask\"; \
          \"refuse\" applies a reload that widens exposure only with the new policy's hash as \
          approval"
        ]
    );
}

#[test]
fn gateway_clients_are_networks_and_not_none() {
    let folders = Folders::both(Path::new("/cfg"));
    let text = format!("{GW}clients = [\"10.64.0.0/10\", \"2001:db8::/32\"]\n");
    let config = load("t.toml", &text, &folders).unwrap();
    assert_eq!(
        config.gateway.clients,
        Some(vec![
            "10.64.0.0/10".parse().unwrap(),
            "2001:db8::/32".parse().unwrap()
        ])
    );
    assert_eq!(load("t.toml", GW, &folders).unwrap().gateway.clients, None);
    assert_eq!(
        errors(&format!("{GW}clients = []\n")),
        [
            "t.toml:3:11: `clients` in [gateway] is empty, so every connection would be closed; \
          list the subscriber networks, e.g. clients = [\"10.64.0.0/10\"], or remove the key \
          to serve any client"
        ]
    );
    assert_eq!(
        errors(&format!("{GW}clients = [\"10.0.0.0/33\"]\n")),
        [
            "t.toml:3:12: invalid address or network `10.0.0.0/33` in `clients` in [gateway]: \
          expected an IP address or CIDR, e.g. \"192.0.2.10\", \"10.0.0.0/8\" or \
          \"2001:db8::/32\""
        ]
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
    let config = load("t.toml", &text, &Folders::both(Path::new("/"))).unwrap();
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
        ["t.toml:10:8: partner name `a` is already used on line 4; partner names must be unique"]
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
    let radius = |client: &str| errors(&format!("{GW}[radius]\n[[radius.clients]]\n{client}\n"));
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
        &Folders::both(Path::new("/cfg")),
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
        [
            "t.toml:4:7: `url` in [canary] is https://, but the canary must probe over plain \
          HTTP: enrichment happens only on plain HTTP (a TLS request passes as a tunnel and is \
          never enriched), so an https probe would always come back clean; point it at the \
          leak-check API's http:// address"
        ]
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
        &Folders::both(Path::new("/")),
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
        ["t.toml:4:11: unknown sessions backend `memcached`; expected \"embedded\" or \"redis\""]
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
            "{GW}[sessions]\nbackend = \"redis\"\nredis_url = \"rediss://10.0.0.1:6379/0\"\n\
             [audit]\nbackend = \"postgres\"\nurl = \"postgres://h@db:5432/h?sslmode=verify-full\"\n\
             tls_ca_file = \"ca.pem\"\ntls_cert_file = \"client.pem\"\ntls_key_file = \"client.key\"\n"
        ),
        &Folders::both(Path::new("/etc/hw")),
    )
    .unwrap();
    assert_eq!(
        config.sessions.backend,
        SessionsBackend::Redis {
            url: "rediss://10.0.0.1:6379/0".into(),
            tls: StoreTls::default(),
        }
    );
    assert_eq!(
        config.audit.backend,
        AuditBackend::Postgres {
            url: "postgres://h@db:5432/h?sslmode=verify-full".into(),
            node: None,
            tls: StoreTls {
                ca_file: Some("/etc/hw/ca.pem".into()),
                client: Some(ApiTls {
                    cert_file: "/etc/hw/client.pem".into(),
                    key_file: "/etc/hw/client.key".into(),
                }),
            },
        }
    );
    let config = load(
        "t.toml",
        &format!(
            "{GW}[audit]\nbackend = \"postgres\"\nurl = \"postgres://127.0.0.1/h\"\nnode = \"gw-1\"\n"
        ),
        &Folders::both(Path::new("/")),
    )
    .unwrap();
    assert!(matches!(
        config.audit.backend,
        AuditBackend::Postgres { node: Some(ref node), .. } if node == "gw-1"
    ));
    assert_eq!(
        errors(&format!(
            "{GW}[audit]\nbackend = \"postgres\"\nurl = \"postgres:///h\"\nnode = \"gw 1/x\"\n"
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

/// A shared store on another machine is reached over TLS or not at all: `prefer` (the
/// PostgreSQL default) and `redis://` would carry identity in clear.
#[test]
fn shared_stores_on_other_machines_need_tls() {
    let audit = |url: &str, extra: &str| {
        errors(&format!(
            "{GW}[audit]\nbackend = \"postgres\"\nurl = \"{url}\"\n{extra}"
        ))
    };
    let cleartext = |host: &str, given: &str| {
        format!(
            "t.toml:5:7: `url` in [audit] reaches {host} without TLS for certain: {given}, and \
             every disclosed number would cross the network in clear; add \
             `?sslmode=verify-full` to the URL (the server's certificate is checked against \
             `tls_ca_file`, or the system's trust store without it)"
        )
    };
    let prefer = "sslmode=prefer (the default) falls back to plaintext";
    assert_eq!(
        audit("postgres://h:pw@db.example/a", ""),
        [cleartext("db.example", prefer)]
    );
    assert_eq!(
        audit("postgres://h@db.example/a?sslmode=prefer", ""),
        [cleartext("db.example", prefer)]
    );
    assert_eq!(
        audit("postgres://127.0.0.1,10.1.2.3:5433/a?sslmode=disable", ""),
        [cleartext("10.1.2.3", "sslmode=disable is plaintext")]
    );
    assert_eq!(
        audit("postgres://h@db.example/a?sslmode=verify", ""),
        [
            "t.toml:5:7: `sslmode=verify` is not one of disable, prefer, require, verify-ca, \
          verify-full in `url` in [audit]; use sslmode=verify-full toward another machine"
        ]
    );
    assert_eq!(
        audit(
            "postgres://127.0.0.1/a?sslmode=disable",
            "tls_ca_file = \"ca.pem\"\n"
        ),
        [
            "t.toml:6:15: the TLS keys in [audit] are never used with sslmode=disable; remove \
          them or set sslmode=verify-full"
        ]
    );
    assert_eq!(
        audit(
            "postgres://db.example/a?sslmode=verify-full",
            "tls_cert_file = \"c.pem\"\n"
        ),
        [
            "t.toml:6:17: [audit] needs both `tls_cert_file` and `tls_key_file` (PEM certificate \
          chain and its key), or neither for no client certificate"
        ]
    );
    for fine in [
        "postgres://db.example/a?sslmode=verify-full",
        "postgres://db.example/a?sslmode=verify-ca",
        "postgres://db.example/a?sslmode=require",
        "postgres://127.0.0.1/a",
        "postgres://localhost:5432/a?sslmode=disable",
        "postgres://%2Frun%2Fpostgresql/a",
    ] {
        assert_eq!(audit(fine, ""), Vec::<String>::new(), "{fine}");
    }

    let sessions = |url: &str, extra: &str| {
        errors(&format!(
            "{GW}[sessions]\nbackend = \"redis\"\nredis_url = \"{url}\"\n{extra}"
        ))
    };
    assert_eq!(
        sessions("redis://127.0.0.1:7000,redis://10.0.0.2:7000", ""),
        [
            "t.toml:5:13: `redis_url` in [sessions] reaches 10.0.0.2 over plain redis://, and every \
          binding of a number to an address would cross the network in clear; use rediss:// \
          (the server's certificate is checked against `tls_ca_file`, or the system's trust \
          store without it)"
        ]
    );
    assert_eq!(
        sessions("rediss://cache.example:6380/0#insecure", ""),
        [
            "t.toml:5:13: `redis_url` in [sessions] has a `#` fragment (`#insecure` turns \
          certificate checks off); remove it and give the server's CA as `tls_ca_file`"
        ]
    );
    assert_eq!(
        sessions("redis://127.0.0.1:6379/0", "tls_ca_file = \"ca.pem\"\n"),
        [
            "t.toml:6:15: the TLS keys in [sessions] are only used with a rediss:// URL; remove \
          them or use rediss://"
        ]
    );
    assert_eq!(
        errors(&format!("{GW}[sessions]\ntls_ca_file = \"ca.pem\"\n")),
        ["t.toml:4:15: the TLS keys are only used with backend = \"redis\"; remove them"]
    );
    for fine in [
        "rediss://cache.example:6380/0",
        "redis://localhost:6379",
        "redis://[::1]:6379",
    ] {
        assert_eq!(sessions(fine, ""), Vec::<String>::new(), "{fine}");
    }
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
        &Folders::both(Path::new("/")),
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
         transparent_listen, proxy_protocol, proxy_protocol_from, clients, connect_ports, \
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
