//! The observability pack (docs/operations.md, Metrics): every metric `deploy/grafana` and
//! `deploy/prometheus` name is exported, the alert rules pass `promtool`, and the metrics
//! added for operations measure what happened — on the real binary.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use headwall_testkit::{ServeProcess, loopback, origin, proxy_get, radclient, send_raw};

use crate::canary::{leakcheck, metric as value, metrics_text as scrape, metrics_until};
use crate::radius::SECRET;
use crate::{agecheck_config, binary, repo_root};

/// Whether `/metrics` describes `name`: a histogram or a family with no samples yet still has
/// its `# TYPE` line (counters are typed under their name without `_total`).
fn exported(text: &str, name: &str) -> bool {
    let base = name.strip_suffix("_total").unwrap_or(name);
    text.lines().any(|line| {
        line.strip_prefix("# TYPE ")
            .and_then(|rest| rest.split(' ').next())
            .is_some_and(|typed| typed == name || typed == base)
    })
}

/// Scrapes until `check` holds, or the patience runs out; the last scrape either way.
async fn until(admin: SocketAddr, check: impl Fn(&str) -> bool) -> String {
    metrics_until(admin, check).await.1
}

fn promtool(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian package prometheus; scripts/test installs it)")
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_name_is_exported_and_the_rules_pass_promtool() {
    let agecheck = origin(2).await;
    let check = leakcheck().await;
    let exact = "[\"verify.agecheck.example.test\"]";
    let gateway = ServeProcess::start(
        binary(),
        &agecheck_config(&[agecheck.addr().port(), check.port()], check, exact, true),
    );
    let text = scrape(gateway.admin).await;

    let names = Command::new(repo_root().join("scripts/metric-names"))
        .output()
        .unwrap();
    assert!(names.status.success(), "{names:?}");
    let names = String::from_utf8(names.stdout).unwrap();
    let names: Vec<&str> = names.lines().collect();
    assert!(names.len() >= 30, "too few names read: {names:?}");
    let missing: Vec<&&str> = names.iter().filter(|n| !exported(&text, n)).collect();
    assert!(
        missing.is_empty(),
        "named in deploy/ but not exported: {missing:?}\n{text}"
    );
    // And the check itself can fail.
    assert!(!exported(&text, "headwall_no_such_metric_total"));

    let rules = repo_root().join("deploy/prometheus");
    let checked = promtool(&["check", "rules", "headwall-rules.yml"], &rules);
    assert!(checked.status.success(), "{checked:?}");
    let tested = promtool(&["test", "rules", "headwall-rules.test.yml"], &rules);
    assert!(tested.status.success(), "{tested:?}");
}

#[tokio::test]
async fn the_operations_metrics_measure_what_happened() {
    let agecheck = origin(2).await;
    let check = leakcheck().await;
    let port = agecheck.addr().port();
    let exact = "[\"verify.agecheck.example.test\"]";
    let config = agecheck_config(&[port, check.port()], check, exact, true);
    let gateway = ServeProcess::start(binary(), &config);

    // The canary ran through the gateway, and its probe is not traffic.
    let text = until(gateway.admin, |text| {
        value(text, "headwall_canary_last_success_timestamp_seconds").is_some_and(|t| t > 0.0)
    })
    .await;
    assert!(
        value(&text, "headwall_canary_last_success_timestamp_seconds").is_some_and(|t| t > 0.0),
        "no clean canary run:\n{text}"
    );
    let requests: f64 = text
        .lines()
        .filter(|line| line.starts_with("headwall_requests_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(requests, 0.0, "the canary's probe was counted:\n{text}");
    assert_eq!(
        value(&text, "headwall_request_duration_seconds_count"),
        Some(0.0)
    );
    assert_eq!(value(&text, "headwall_canary_errors_total"), Some(0.0));
    // It connected upstream (to the leak-check page) once.
    assert_eq!(
        value(&text, "headwall_upstream_connect_duration_seconds_count"),
        Some(1.0)
    );

    // A RADIUS Start, then a partner request: one binding commit, at least one audit commit.
    assert!(radclient(
        gateway.radius.unwrap(),
        SECRET,
        "Acct-Status-Type = Start\nFramed-IP-Address = 127.0.0.5\nCalling-Station-Id = \"07700900123\"\nAcct-Session-Id = \"s1\"\n"
    ));
    let url = format!("http://verify.agecheck.example.test:{port}/");
    let got = crate::received_through(gateway.explicit, 5, &url, &agecheck).await;
    assert!(got.header("x-msisdn").is_some());
    let text = scrape(gateway.admin).await;
    assert_eq!(
        value(
            &text,
            "headwall_requests_total{listener=\"explicit\",outcome=\"enriched\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "headwall_request_duration_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "headwall_radius_commit_duration_seconds_count"),
        Some(1.0)
    );
    assert!(
        value(&text, "headwall_audit_commit_duration_seconds_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "headwall_upstream_connect_duration_seconds_count"),
        Some(2.0)
    );
    assert_eq!(value(&text, "headwall_audit_queue_depth"), Some(0.0));

    // An open keep-alive connection counts until it closes.
    let open = tokio::net::TcpStream::connect(gateway.explicit)
        .await
        .unwrap();
    let explicit_open = "headwall_connections_open{listener=\"explicit\"}";
    let text = until(gateway.admin, |text| {
        value(text, explicit_open) == Some(1.0)
    })
    .await;
    assert_eq!(value(&text, explicit_open), Some(1.0), "{text}");
    drop(open);
    let text = until(gateway.admin, |text| {
        value(text, explicit_open) == Some(0.0)
    })
    .await;
    assert_eq!(value(&text, explicit_open), Some(0.0), "{text}");

    // The build, as --version names it; the process as the kernel sees it.
    let version = Command::new(binary()).arg("--version").output().unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    let commit = text
        .lines()
        .find_map(|line| line.strip_prefix("headwall_build_info{"))
        .and_then(|labels| labels.split("commit=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("headwall_build_info with a commit");
    assert!(
        version.contains(&format!("(commit {commit}, ")),
        "{version} vs {commit}"
    );
    assert!(value(&text, "process_open_fds").is_some_and(|n| n > 5.0));
    assert!(value(&text, "process_resident_memory_bytes").is_some_and(|n| n > 1e6));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value(&text, "process_start_time_seconds").unwrap();
    assert!(started > now - 600.0 && started <= now + 1.0, "{started}");

    // Reloads: a refused one reads 0, the next good one 1 with a newer timestamp.
    assert_eq!(
        value(&text, "headwall_config_last_reload_successful"),
        Some(1.0)
    );
    let first = value(
        &text,
        "headwall_config_last_reload_success_timestamp_seconds",
    )
    .unwrap();
    let token = std::fs::read_to_string(gateway.path("state/admin.token")).unwrap();
    let reload = || {
        crate::admin::admin(
            gateway.admin,
            "POST",
            "/v1/policy/reload",
            Some(token.trim()),
            "",
        )
    };
    std::fs::write(gateway.path("headwall.toml"), "[gateway]\nlisten = 5\n").unwrap();
    let refused = reload().await;
    assert_ne!(refused.status, 200);
    let text = scrape(gateway.admin).await;
    assert_eq!(
        value(&text, "headwall_config_last_reload_successful"),
        Some(0.0)
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(gateway.path("headwall.toml"), &config).unwrap();
    let applied = reload().await;
    assert_eq!(applied.status, 200);
    let text = scrape(gateway.admin).await;
    assert_eq!(
        value(&text, "headwall_config_last_reload_successful"),
        Some(1.0)
    );
    let second = value(
        &text,
        "headwall_config_last_reload_success_timestamp_seconds",
    )
    .unwrap();
    assert!(second > first, "{second} after {first}");
}

#[tokio::test]
async fn a_client_outside_gateway_clients_is_closed_at_accept_and_counted() {
    let agecheck = origin(2).await;
    let check = leakcheck().await;
    let port = agecheck.addr().port();
    let exact = "[\"verify.agecheck.example.test\"]";
    // Subscribers are 127.0.0.5 only; the canary (from the gateway's own 127.0.0.1) still runs.
    let config = agecheck_config(&[port, check.port()], check, exact, true).replacen(
        "[gateway]\nlisten = \"127.0.0.1:0\"\n",
        "[gateway]\nlisten = \"127.0.0.1:0\"\nclients = [\"127.0.0.5/32\"]\n",
        1,
    );
    assert!(config.contains("clients = "));
    let gateway = ServeProcess::start(binary(), &config);
    let url = format!("http://verify.agecheck.example.test:{port}/");

    let outside = send_raw(
        gateway.explicit,
        Some(loopback(6)),
        &proxy_get(&url, &[]),
        Duration::from_secs(10),
    )
    .await;
    assert!(outside.is_err(), "answered: {outside:?}");
    assert!(
        agecheck.take().is_empty(),
        "a refused client reached the origin"
    );
    // From inside: served, and the origin received it.
    crate::received_through(gateway.explicit, 5, &url, &agecheck).await;

    let text = until(gateway.admin, |text| {
        value(text, "headwall_canary_last_success_timestamp_seconds").is_some_and(|t| t > 0.0)
    })
    .await;
    assert_eq!(
        value(
            &text,
            "headwall_client_refused_total{listener=\"explicit\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(&text, "headwall_canary_last_success_timestamp_seconds").is_some_and(|t| t > 0.0),
        "the canary must not be refused as a client:\n{text}"
    );
}
