//! The leak-check page in a real browser: Debian's headless Chromium loads `headwall leakcheck`
//! through the real gateway, and the rendered page says what a subscriber would read. Chromium
//! sends no identity headers itself; a leak comes only from the gateway (a partner wildcard that
//! covers the leak-check host, with the browser's address bound to a subscriber by `radclient`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use headwall_testkit::{ServeProcess, patience, radclient, temp_dir};

use crate::radius::SECRET;
use crate::{agecheck_config, binary};

/// The subscriber's number as the RADIUS accounting sends it (national; country code 44).
const SUBSCRIBER: &str = "07700900123";
/// Digits of the number that must never reach the page, in any of its forms.
const NUMBER_CORE: &str = "7700900123";

const LEAK_VERDICT: &str = "This connection tells every website your phone number";
const CLEAN_VERDICT: &str = "No identity headers seen";

#[test]
fn chromium_shows_the_leak_verdict_and_only_the_last_3_digits() {
    let check = LeakcheckProcess::start();
    let gateway = ServeProcess::start(
        binary(),
        &agecheck_config(
            &[check.addr.port()],
            check.addr,
            "[\"*.example.test\"]",
            false,
        ),
    );
    bind_browser_to_subscriber(&gateway);

    let dom = dump_dom(gateway.explicit, &page_url(check.addr));

    let verdict = dom
        .find(LEAK_VERDICT)
        .unwrap_or_else(|| panic!("no leak verdict {LEAK_VERDICT:?} in the rendered page:\n{dom}"));
    let table = dom.find("<table").expect("no header table");
    assert!(verdict < table, "the verdict is not first:\n{dom}");
    assert!(dom.contains("class=\"verdict leak\""), "{dom}");

    let row = header_row(&dom, "x-msisdn")
        .unwrap_or_else(|| panic!("no x-msisdn row in the rendered page:\n{dom}"));
    assert!(
        row.starts_with(" class=\"flag\""),
        "x-msisdn not flagged: {row}"
    );
    let value = cell(row, "value").expect("x-msisdn value cell");
    assert!(
        value.ends_with("123") && value[..value.len() - 3].chars().all(|c| c == '•'),
        "x-msisdn not redacted to its last 3 digits: {value:?}"
    );
    assert!(
        !dom.contains(NUMBER_CORE),
        "the full number reached the rendered page:\n{dom}"
    );
}

#[test]
fn chromium_shows_no_identity_headers_through_a_correct_gateway() {
    let check = LeakcheckProcess::start();
    let exact = "[\"verify.agecheck.example.test\"]";
    let gateway = ServeProcess::start(
        binary(),
        &agecheck_config(&[check.addr.port()], check.addr, exact, false),
    );
    // Bound like the leak test: clean because of the policy, not for want of a subscriber.
    bind_browser_to_subscriber(&gateway);

    let dom = dump_dom(gateway.explicit, &page_url(check.addr));

    assert!(
        dom.contains(CLEAN_VERDICT),
        "no clean verdict {CLEAN_VERDICT:?} in the rendered page:\n{dom}"
    );
    assert!(dom.contains("class=\"verdict clean\""), "{dom}");
    assert!(!dom.contains(LEAK_VERDICT), "{dom}");
    // The page was reached through the gateway: only its [gateway.hosts] knows this name.
    let host = format!("check.example.test:{}", check.addr.port());
    assert!(
        dom.contains(&host),
        "the page did not see Host {host}:\n{dom}"
    );
    for header in ["x-msisdn", "x-subscriber-id", "class=\"flag\""] {
        assert!(
            !dom.contains(header),
            "{header} in the rendered page:\n{dom}"
        );
    }
}

fn page_url(check: SocketAddr) -> String {
    format!("http://check.example.test:{}/", check.port())
}

/// Chromium connects to the gateway from 127.0.0.1: bind that address to the subscriber.
fn bind_browser_to_subscriber(gateway: &ServeProcess) {
    let start = format!(
        "Acct-Status-Type = Start\nFramed-IP-Address = 127.0.0.1\nCalling-Station-Id = \"{SUBSCRIBER}\"\nAcct-Session-Id = \"browser1\"\n"
    );
    assert!(
        radclient(gateway.radius.expect("radius listener"), SECRET, &start),
        "radclient got no accounting response"
    );
}

/// The `<tr …>` of header `name`: the text after `<tr` up to `</tr>`.
fn header_row<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!("<td class=\"name\">{name}</td>");
    dom.split("<tr")
        .find(|row| row.contains(&needle))
        .map(|row| row.split("</tr>").next().unwrap_or(row))
}

/// The text of `<td class="{class}">` in `row`.
fn cell<'a>(row: &'a str, class: &str) -> Option<&'a str> {
    let open = format!("<td class=\"{class}\">");
    let start = row.find(&open)? + open.len();
    let end = row[start..].find("</td>")? + start;
    Some(&row[start..end])
}

/// Debian's `chromium`: on PATH, else /usr/bin/chromium; a clear failure (never a skip) without.
fn chromium() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| {
            let fallback = Path::new("/usr/bin/chromium");
            fallback.is_file().then(|| fallback.to_path_buf())
        })
        .unwrap_or_else(|| {
            panic!(
                "chromium not found on PATH or at /usr/bin/chromium: install Debian package \
                 chromium (scripts/test does)"
            )
        })
}

/// Loads `url` in headless Chromium through the HTTP proxy `proxy` and returns the rendered DOM
/// (`--dump-dom`). Chromium runs under `timeout` (30 s, stretched by HEADWALL_TEST_PATIENCE),
/// with a new profile, HOME and XDG folders in a temporary folder.
fn dump_dom(proxy: SocketAddr, url: &str) -> String {
    let chromium = chromium();
    let work = temp_dir();
    let profile = work.path().join("profile");
    let dom_path = work.path().join("dom.html");
    let log_path = work.path().join("chromium.log");
    let limit = patience(Duration::from_secs(30));
    let started = Instant::now();
    let status = Command::new("timeout")
        .args(["--kill-after=5", &format!("{}s", limit.as_secs())])
        .arg(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--proxy-server=http://{proxy}"))
        .arg("--dump-dom")
        .arg(url)
        .env("HOME", work.path())
        .env("XDG_CONFIG_HOME", work.path().join("config"))
        .env("XDG_CACHE_HOME", work.path().join("cache"))
        .stdin(Stdio::null())
        // Files, not pipes: a lingering helper process cannot hold the test up.
        .stdout(std::fs::File::create(&dom_path).unwrap())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .status()
        .expect("cannot run `timeout` (coreutils)");
    let elapsed = started.elapsed();
    eprintln!("chromium --dump-dom {url}: {elapsed:.1?}");
    let log = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        text.lines()
            .filter(|line| !line.contains("dbus/"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match status.code() {
        Some(0) => {}
        Some(124 | 137) => panic!(
            "{} did not finish within {limit:?}; its log:\n{}",
            chromium.display(),
            log()
        ),
        _ => panic!(
            "{} failed ({status}); its log:\n{}",
            chromium.display(),
            log()
        ),
    }
    let dom = std::fs::read_to_string(&dom_path).unwrap();
    assert!(
        dom.contains("<html"),
        "chromium printed no DOM for {url}; its log:\n{}",
        log()
    );
    dom
}

/// The real `headwall leakcheck` on 127.0.0.3 (the "non-partner" website); killed on drop.
struct LeakcheckProcess {
    child: Child,
    addr: SocketAddr,
}

impl LeakcheckProcess {
    fn start() -> LeakcheckProcess {
        let mut child = Command::new(binary())
            .args(["leakcheck", "--listen", "127.0.0.3:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start headwall leakcheck");
        let stderr = child.stderr.take().expect("piped stderr");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("headwall leakcheck ready") {
                    let _ = ready_tx.send(Ok(line.clone()));
                }
                log.push(line);
            }
            let _ = ready_tx.send(Err(log.join("\n")));
        });
        let line = match ready_rx.recv_timeout(patience(Duration::from_secs(20))) {
            Ok(Ok(line)) => line,
            Ok(Err(log)) => panic!("headwall leakcheck exited before ready; log:\n{log}"),
            Err(_) => {
                let _ = child.kill();
                panic!("headwall leakcheck did not become ready");
            }
        };
        let addr = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("addr="))
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| panic!("no addr= in the ready line: {line}"));
        LeakcheckProcess { child, addr }
    }
}

impl Drop for LeakcheckProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
