//! Transparent mode for real: a subscriber, the gateway and the web in network namespaces this
//! test creates, an nftables REDIRECT sending the subscriber's port-80 traffic to the gateway's
//! transparent listener, and `SO_ORIGINAL_DST` (IPv4 and IPv6) deciding where it goes. Needs
//! root (CI runs as root) and `nft` (scripts/test installs nftables); without them it fails and
//! says so — it never skips.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use headwall_testkit::ServeProcess;

use crate::binary;
use crate::radius::SECRET;

/// The namespaces of one test; deleted (with their interfaces) on drop.
struct Topology {
    sub: String,
    gw: String,
    web: String,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for name in [&self.sub, &self.gw, &self.web] {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn sh(what: &str, command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|error| {
        panic!("{what}: cannot run ({error}); scripts/test installs iproute2 and nftables")
    });
    assert!(
        output.status.success(),
        "{what} failed: {}\n(transparent-mode tests need root to create network namespaces and \
         nftables rules; CI runs scripts/test as root)",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn ip(args: &[&str]) {
    sh(
        &format!("ip {}", args.join(" ")),
        Command::new("ip").args(args),
    );
}

fn in_ns(ns: &str, args: &[&str]) -> Output {
    sh(
        &format!("ip netns exec {ns} {}", args.join(" ")),
        Command::new("ip").args(["netns", "exec", ns]).args(args),
    )
}

/// subscriber (10.77.0.2, fd77::2) — gateway (10.77.0.1 | 10.78.0.1) — web (10.78.0.2 partner,
/// 10.78.0.3 anyone else; fd78::2, fd78::3), with port 80 from the subscriber redirected to the
/// gateway's :8081.
fn topology() -> Topology {
    let id = std::process::id() % 100_000;
    let t = Topology {
        sub: format!("hw{id}sub"),
        gw: format!("hw{id}gw"),
        web: format!("hw{id}web"),
    };
    for name in [&t.sub, &t.gw, &t.web] {
        ip(&["netns", "add", name]);
    }
    let (s0, g0, g1, w0) = (
        format!("h{id}s0"),
        format!("h{id}g0"),
        format!("h{id}g1"),
        format!("h{id}w0"),
    );
    ip(&["link", "add", &s0, "type", "veth", "peer", "name", &g0]);
    ip(&["link", "set", &s0, "netns", &t.sub]);
    ip(&["link", "set", &g0, "netns", &t.gw]);
    ip(&["link", "add", &g1, "type", "veth", "peer", "name", &w0]);
    ip(&["link", "set", &g1, "netns", &t.gw]);
    ip(&["link", "set", &w0, "netns", &t.web]);
    let addresses = [
        (&t.sub, &s0, ["10.77.0.2/24", "fd77::2/64"].as_slice()),
        (&t.gw, &g0, ["10.77.0.1/24", "fd77::1/64"].as_slice()),
        (&t.gw, &g1, ["10.78.0.1/24", "fd78::1/64"].as_slice()),
        (
            &t.web,
            &w0,
            ["10.78.0.2/24", "10.78.0.3/24", "fd78::2/64", "fd78::3/64"].as_slice(),
        ),
    ];
    for (ns, dev, addrs) in addresses {
        for addr in addrs {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev, "nodad"]);
        }
        ip(&["-n", ns, "link", "set", dev, "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    ip(&["-n", &t.sub, "route", "add", "default", "via", "10.77.0.1"]);
    ip(&[
        "-n", &t.sub, "-6", "route", "add", "default", "via", "fd77::1",
    ]);
    ip(&["-n", &t.web, "route", "add", "default", "via", "10.78.0.1"]);
    ip(&[
        "-n", &t.web, "-6", "route", "add", "default", "via", "fd78::1",
    ]);
    in_ns(&t.gw, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    in_ns(&t.gw, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    let rules = format!(
        "table inet headwall_test {{\n chain pre {{\n  type nat hook prerouting priority dstnat;\n  iifname \"{g0}\" tcp dport 80 redirect to :8081\n }}\n}}\n"
    );
    let mut nft = Command::new("ip");
    nft.args(["netns", "exec", &t.gw, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = nft
        .spawn()
        .unwrap_or_else(|error| panic!("nft: {error}; scripts/test installs nftables"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(rules.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "nft REDIRECT rule failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    t
}

/// A process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `headwall leakcheck` on every web address (port 80), inside the web namespace.
fn leakcheck(web: &str) -> Running {
    let mut child = Command::new("ip")
        .args(["netns", "exec", web])
        .arg(binary())
        .args(["leakcheck", "--listen", "[::]:80"])
        .env("HEADWALL_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let ready = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("headwall leakcheck ready"));
    assert!(ready, "leak-check page did not start in the web namespace");
    Running(child)
}

/// An origin-form request from the subscriber namespace straight to `address` (as a handset
/// sends it, knowing nothing of the gateway); the leak-check report of what arrived.
fn request_from_subscriber(sub: &str, address: &str, host: &str) -> serde_json::Value {
    try_request(sub, address, host).unwrap_or_else(|text| panic!("{text}"))
}

fn try_request(sub: &str, address: &str, host: &str) -> Result<serde_json::Value, String> {
    let script = format!(
        "exec 3<>/dev/tcp/{address}/80 && printf 'GET /api/v1/check HTTP/1.1\\r\\nHost: {host}\\r\\nX-MSISDN: 447700900999\\r\\nConnection: close\\r\\n\\r\\n' >&3 && timeout 10 cat <&3"
    );
    let output = Command::new("ip")
        .args(["netns", "exec", sub, "bash", "-c", &script])
        .output()
        .map_err(|error| error.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .ok_or_else(|| format!("no HTTP response from {address}: {text}"))?;
    serde_json::from_str(body).map_err(|_| format!("not a report from {address}: {text}"))
}

/// Waits until the path subscriber -> gateway -> web answers (veth links come up
/// asynchronously): a warm-up request to the non-partner address, retried for a while.
fn wait_for_path(sub: &str, address: &str, gateway: &ServeProcess) {
    let deadline =
        std::time::Instant::now() + headwall_testkit::patience(std::time::Duration::from_secs(10));
    loop {
        match try_request(sub, address, "warmup.test") {
            Ok(_) => return,
            Err(error) if std::time::Instant::now() > deadline => {
                panic!(
                    "the namespace path never worked: {error}\ngateway log:\n{}",
                    gateway.log().join("\n")
                )
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

fn config(transparent_listen: &str) -> String {
    let admin_and_radius = crate::admin_and_radius(SECRET);
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
transparent_listen = "{transparent_listen}"
{admin_and_radius}
[[partner]]
name = "operator-id"
purpose = "identification"
hosts = ["partner.test"]
ports = [80]
destinations = ["10.78.0.2/32", "fd78::2/128"]
headers = {{ "X-MSISDN" = "msisdn" }}
"#
    )
}

fn bind_subscriber(gw: &str, radius: std::net::SocketAddr, framed: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", gw, "radclient", "-r", "1", "-t", "3", "-q"])
        .arg(radius.to_string())
        .args(["acct", SECRET])
        .stdin(Stdio::piped())
        .spawn()
        .expect("radclient (freeradius-utils)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(
            stdin,
            "Acct-Status-Type = Start\n{framed}\nCalling-Station-Id = \"07700900123\"\nAcct-Session-Id = \"t1\""
        )
        .unwrap();
    }
    assert!(child.wait().unwrap().success(), "Start not acknowledged");
}

fn findings(report: &serde_json::Value, header: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["header"] == header)
        .map(|f| f["redacted"].as_str().unwrap().to_owned())
        .collect()
}

fn check_family(t: &Topology, listen: &str, framed: &str, partner: &str, other: &str) {
    let gateway = ServeProcess::start_in_netns(binary(), &config(listen), &t.gw);
    assert!(
        gateway.transparent.is_some(),
        "transparent listener not reported"
    );
    bind_subscriber(&t.gw, gateway.radius.unwrap(), framed);
    wait_for_path(&t.sub, other, &gateway);

    // To the partner's own address, naming it: exactly one X-MSISDN, the subscriber's.
    let report = request_from_subscriber(&t.sub, partner, "partner.test");
    let msisdn = findings(&report, "x-msisdn");
    assert_eq!(msisdn.len(), 1, "{report}");
    assert!(msisdn[0].ends_with("123"), "{report}");

    // Naming the partner in Host while connecting elsewhere: nothing (pinned by address).
    let report = request_from_subscriber(&t.sub, other, "partner.test");
    assert_eq!(report["verdict"], "clean", "{report}");
    // Anyone else: nothing, and the client's own spoof is gone.
    let report = request_from_subscriber(&t.sub, other, "news.test");
    assert_eq!(report["verdict"], "clean", "{report}");

    // The record names the real addresses.
    let (_, dir) = gateway.terminate();
    let connection = crate::audit_index(&dir.path().join("state/audit.db"));
    let rows: Vec<(String, String, String)> = connection
        .prepare("SELECT host, upstream_ip, client_ip FROM disclosures")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "partner.test");
    assert_eq!(rows[0].1, partner.trim_matches(['[', ']']));
}

#[test]
fn intercepted_traffic_goes_where_it_was_going_and_only_partners_get_identity() {
    let t = topology();
    let _web = leakcheck(&t.web);
    check_family(
        &t,
        "0.0.0.0:8081",
        "Framed-IP-Address = 10.77.0.2",
        "10.78.0.2",
        "10.78.0.3",
    );
    check_family(
        &t,
        "[::]:8081",
        "Framed-IPv6-Prefix = fd77::/64",
        "fd78::2",
        "fd78::3",
    );
}
