//! The real `headwall` binary: commands, exit codes, files, and a served request.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod access_log;
mod admin;
mod api;
mod audit;
mod browser;
mod camara;
mod canary;
mod cli;
mod docs;
mod fleet;
mod load;
mod observability;
mod package;
mod plan;
mod radius;
mod serve;
mod soak;
mod transparent;

use std::path::Path;

pub(crate) fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_headwall"))
}

/// The audit log's SQLite index at `database`, brought up to its journal first (as every
/// `audit` command does): records durable in the journal that the gateway, running or killed,
/// has not indexed yet are in it.
pub(crate) fn audit_index(database: &Path) -> rusqlite::Connection {
    headwall_audit::catch_up(database).unwrap();
    rusqlite::Connection::open(database).unwrap()
}

/// What `origin` received for one `GET url` sent through the gateway's explicit listener from
/// 127.0.0.`source` (the gateway answered 200, and exactly one request arrived).
pub(crate) async fn received_through(
    gateway: std::net::SocketAddr,
    source: u8,
    url: &str,
    origin: &headwall_testkit::EchoOrigin,
) -> headwall_testkit::ReceivedRequest {
    let response = headwall_testkit::send_raw(
        gateway,
        Some(headwall_testkit::loopback(source)),
        &headwall_testkit::proxy_get(url, &[]),
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200);
    let mut received = origin.take();
    assert_eq!(
        received.len(),
        1,
        "the origin received {} requests",
        received.len()
    );
    received.remove(0)
}

/// The `[admin]` and `[radius]` tables most test configs share: both on a loopback port the
/// kernel picks, accounting from 127.0.0.1 signed with `secret`, national numbers in +44.
pub(crate) fn admin_and_radius(secret: &str) -> String {
    format!(
        r#"[admin]
listen = "127.0.0.1:0"
[radius]
listen = "127.0.0.1:0"
country_code = "44"
[[radius.clients]]
source = "127.0.0.1/32"
secret = "{secret}"
"#
    )
}

pub(crate) fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The gateway of the leak tests: partner agecheck on verify.agecheck.example.test (127.0.0.2)
/// and the leak-check page on check.example.test (127.0.0.3). `hosts` is the partner's host
/// list: exact (correct) or a wildcard that also covers the leak-check host (the routine change
/// that leaks); `ports` the partner's ports; with `canary`, a `[canary]` probing the page.
pub(crate) fn agecheck_config(
    ports: &[u16],
    check: std::net::SocketAddr,
    hosts: &str,
    canary: bool,
) -> String {
    let canary = if canary {
        format!(
            "[canary]\nurl = \"http://check.example.test:{}/api/v1/check\"\ninterval = \"1h\"\nmsisdn = \"447700900000\"\nkill_switch = true\n",
            check.port()
        )
    } else {
        String::new()
    };
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let ports = ports.join(", ");
    let admin_and_radius = admin_and_radius(radius::SECRET);
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
[gateway.hosts]
"verify.agecheck.example.test" = "127.0.0.2"
"check.example.test" = "127.0.0.3"
{admin_and_radius}
{canary}
[[partner]]
name = "agecheck"
purpose = "identification"
hosts = {hosts}
ports = [{ports}]
destinations = ["127.0.0.0/24"]
headers = {{ "X-Subscriber-Id" = "pseudonym", "X-MSISDN" = "msisdn" }}
"#
    )
}
