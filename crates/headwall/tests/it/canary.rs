//! The canary and `headwall probe` against the real leak-check service: a clean policy keeps
//! proving itself; a routine change that widens a wildcard over a non-partner is caught right
//! after the reload, and the kill switch stops enrichment.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use headwall_testkit::{ServeProcess, origin, radclient, send_raw};

use crate::radius::SECRET;
use crate::{agecheck_config, binary};

/// A leak-check service on 127.0.0.3 (the "non-partner" the 2012 leak reached).
pub(crate) async fn leakcheck() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.3:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(headwall_leakcheck::serve(listener, std::future::pending()));
    addr
}

pub(crate) async fn metrics_text(admin: SocketAddr) -> String {
    let response = send_raw(
        admin,
        None,
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    String::from_utf8_lossy(&response.body).into_owned()
}

/// The value of the sample `name` (a name, or a name with its labels as exposed).
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn a_widening_reload_is_caught_by_the_canary_and_switches_enrichment_off() {
    let agecheck = origin(2).await;
    let check = leakcheck().await;
    let port = agecheck.addr().port();
    let exact = "[\"verify.agecheck.example.test\"]";
    let gateway = ServeProcess::start(
        binary(),
        &agecheck_config(&[port, check.port()], check, exact, true),
    );

    // The first run at start: clean.
    let (clean, text) = metrics_until(gateway.admin, |text| {
        metric(text, "headwall_canary_last_success_timestamp_seconds").is_some_and(|t| t > 0.0)
    })
    .await;
    assert!(clean, "no clean canary run:\n{text}");
    assert_eq!(metric(&text, "headwall_canary_leaks_total"), Some(0.0));
    assert_eq!(metric(&text, "headwall_enrichment_enabled"), Some(1.0));

    // The routine change: the partner's hosts become a wildcard over the whole domain.
    std::fs::write(
        gateway.path("headwall.toml"),
        agecheck_config(&[port, check.port()], check, "[\"*.example.test\"]", true),
    )
    .unwrap();
    let token = std::fs::read_to_string(gateway.path("state/admin.token")).unwrap();
    let reload = format!(
        "POST /v1/policy/reload HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        token.trim()
    );
    let answer = send_raw(
        gateway.admin,
        None,
        reload.as_bytes(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200);
    assert!(String::from_utf8_lossy(&answer.body).contains("widen"));

    // Right after the load, not an interval (1 h) later: caught, and enrichment is off.
    let (caught, text) = metrics_until(gateway.admin, |text| {
        metric(text, "headwall_canary_leaks_total") == Some(1.0)
    })
    .await;
    assert!(caught, "the canary did not catch the leak:\n{text}");
    assert_eq!(metric(&text, "headwall_enrichment_enabled"), Some(0.0));

    // A real subscriber's request to the partner now carries nothing.
    assert!(radclient(
        gateway.radius.unwrap(),
        SECRET,
        "Acct-Status-Type = Start\nFramed-IP-Address = 127.0.0.5\nCalling-Station-Id = \"07700900123\"\nAcct-Session-Id = \"s1\"\n"
    ));
    let url = format!("http://verify.agecheck.example.test:{port}/");
    let got = send_raw(
        gateway.explicit,
        Some(headwall_testkit::loopback(5)),
        &headwall_testkit::proxy_get(&url, &[]),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(got.status, 200);
    let received = agecheck.take();
    assert!(received[0].header("x-msisdn").is_none());

    // On record: the canary leak (names and reasons, no values) and the switch.
    let (code, dir) = gateway.terminate();
    assert_eq!(code, Some(0));
    let connection = crate::audit_index(&dir.path().join("state/audit.db"));
    let events: Vec<(String, String)> = connection
        .prepare("SELECT kind, detail FROM security_events ORDER BY id")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let leak = events
        .iter()
        .find(|(kind, _)| kind == "canary_leak")
        .expect("canary_leak");
    assert!(leak.1.contains("x-msisdn"), "{}", leak.1);
    assert!(!leak.1.contains("447700900000"), "{}", leak.1);
    assert!(
        events
            .iter()
            .any(|(kind, detail)| kind == "kill_switch" && detail.contains("canary_leak"))
    );
}

#[tokio::test]
async fn probe_exits_1_on_a_leak_and_0_when_clean() {
    let agecheck = origin(2).await;
    let check = leakcheck().await;
    let port = agecheck.addr().port();
    let check_url = format!("http://check.example.test:{}/api/v1/check", check.port());
    // The leak-check service runs on this test's runtime: run the probe off it.
    let probe = |proxy: SocketAddr| {
        let check_url = check_url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(binary())
                    .args(["probe", "--proxy"])
                    .arg(format!("http://{proxy}"))
                    .args(["--check-url", &check_url])
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };

    // The probe sends from 127.0.0.1; bind that address to a subscriber.
    let start = "Acct-Status-Type = Start\nFramed-IP-Address = 127.0.0.1\nCalling-Station-Id = \"07700900123\"\nAcct-Session-Id = \"p1\"\n";
    let exact = "[\"verify.agecheck.example.test\"]";
    let gateway = ServeProcess::start(
        binary(),
        &agecheck_config(&[port, check.port()], check, exact, false),
    );
    assert!(radclient(gateway.radius.unwrap(), SECRET, start));
    let output = probe(gateway.explicit).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("clean"));
    drop(gateway);

    let gateway = ServeProcess::start(
        binary(),
        &agecheck_config(&[port, check.port()], check, "[\"*.example.test\"]", false),
    );
    assert!(radclient(gateway.radius.unwrap(), SECRET, start));
    let output = probe(gateway.explicit).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("leak") && stdout.contains("x-msisdn"),
        "{stdout}"
    );
    // Values are redacted to their last three characters.
    assert!(!stdout.contains("447700900123"), "{stdout}");
    // And the partner itself still works for its own host.
    assert_eq!(pseudonyms_seen_on(gateway.explicit, &agecheck).await, 1);

    // Cannot run: nothing listens there.
    let output = Command::new(binary())
        .args([
            "probe",
            "--proxy",
            "http://127.0.0.1:9",
            "--check-url",
            &check_url,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

async fn pseudonyms_seen_on(gateway: SocketAddr, partner: &headwall_testkit::EchoOrigin) -> usize {
    let url = format!(
        "http://verify.agecheck.example.test:{}/",
        partner.addr().port()
    );
    crate::received_through(gateway, 1, &url, partner)
        .await
        .header_values("x-subscriber-id")
        .len()
}

/// Scrapes `/metrics` until `check` holds (10 s, stretched by HEADWALL_TEST_PATIENCE).
pub(crate) async fn metrics_until(
    admin: SocketAddr,
    check: impl Fn(&str) -> bool,
) -> (bool, String) {
    let deadline = std::time::Instant::now() + headwall_testkit::patience(Duration::from_secs(10));
    loop {
        let text = metrics_text(admin).await;
        if check(&text) {
            return (true, text);
        }
        if std::time::Instant::now() > deadline {
            return (false, text);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_canary_that_cannot_run_raises_unverified_and_pause_holds_enrichment_until_it_runs() {
    let agecheck = origin(2).await;
    // The leak-check page's address, with nothing listening there yet: every run fails.
    let check = {
        let reserved = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
        reserved.local_addr().unwrap()
    };
    let port = agecheck.addr().port();
    let exact = "[\"verify.agecheck.example.test\"]";
    let config = agecheck_config(&[port, check.port()], check, exact, true).replace(
        "interval = \"1h\"\n",
        "interval = \"1s\"\nunverified_after = \"4s\"\non_unverified = \"pause\"\n",
    );
    assert!(config.contains("on_unverified"));
    let gateway = ServeProcess::start(binary(), &config);
    assert!(radclient(
        gateway.radius.unwrap(),
        SECRET,
        "Acct-Status-Type = Start\nFramed-IP-Address = 127.0.0.5\nCalling-Station-Id = \"07700900123\"\nAcct-Session-Id = \"s1\"\n"
    ));
    let url = format!("http://verify.agecheck.example.test:{port}/");
    let seen = || async {
        crate::received_through(gateway.explicit, 5, &url, &agecheck)
            .await
            .header_values("x-subscriber-id")
            .len()
    };
    // Within unverified_after of the start: served.
    assert_eq!(seen().await, 1);

    // No run completes: unverified, and enrichment is held off.
    let (held, text) = metrics_until(gateway.admin, |text| {
        metric(text, "headwall_enrichment_enabled") == Some(0.0)
    })
    .await;
    assert!(held, "enrichment not held:\n{text}");
    assert!(metric(&text, "headwall_canary_errors_total").is_some_and(|n| n >= 2.0));
    assert_eq!(seen().await, 0);
    assert!(
        gateway
            .log()
            .iter()
            .any(|line| line.contains("ERROR") && line.contains("CANARY UNVERIFIED")),
        "{:?}",
        gateway.log()
    );

    // The page comes up: the next run completes and the hold lifts by itself.
    let listener = tokio::net::TcpListener::bind(check).await.unwrap();
    tokio::spawn(headwall_leakcheck::serve(listener, std::future::pending()));
    let (lifted, text) = metrics_until(gateway.admin, |text| {
        metric(text, "headwall_enrichment_enabled") == Some(1.0)
    })
    .await;
    assert!(lifted, "hold not lifted:\n{text}");
    assert_eq!(seen().await, 1);

    let (code, dir) = gateway.terminate();
    assert_eq!(code, Some(0));
    let connection = crate::audit_index(&dir.path().join("state/audit.db"));
    let detail: String = connection
        .query_row(
            "SELECT detail FROM security_events WHERE kind = 'canary_unverified'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(detail.contains("\"action\":\"pause\""), "{detail}");
    // A hold is not the kill switch: nothing was switched off on record.
    let switched: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM security_events WHERE kind = 'kill_switch'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(switched, 0);
}
