//! check, keygen and demo, run as an operator would.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::{binary, repo_root};

/// Every configuration the repository ships as an example passes `check`'s preflight once the
/// files it names exist: examples/headwall.toml as shipped (with a state folder of its own, in
/// which `check` creates nothing), and each file in examples/configs/ beside a RADIUS secret
/// and a TLS pair made the way its comments say (and a CA file for the shared stores).
#[test]
fn check_accepts_every_example_config() {
    let state = headwall_testkit::temp_dir();
    let output = Command::new(binary())
        .args(["check", "--config"])
        .arg(repo_root().join("examples/headwall.toml"))
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "examples/headwall.toml: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read_dir(state.path()).unwrap().count(),
        0,
        "check wrote files"
    );

    let dir = headwall_testkit::temp_dir();
    let source = repo_root().join("examples/configs");
    std::fs::create_dir_all(dir.path().join("clients")).unwrap();
    std::fs::copy(
        source.join("clients/shop-app.jwks.json"),
        dir.path().join("clients/shop-app.jwks.json"),
    )
    .unwrap();
    let keygen = Command::new(binary())
        .args(["keygen", "--tls", "api.operator.example", "--out"])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    std::fs::copy(
        dir.path().join("state/api.crt"),
        dir.path().join("stores-ca.crt"),
    )
    .unwrap();
    let secret = dir.path().join("state/radius.secret");
    std::fs::write(&secret, "a-shared-secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut configs: Vec<_> = std::fs::read_dir(&source)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    configs.sort();
    assert!(configs.len() >= 4, "examples/configs/: {configs:?}");
    for example in configs {
        let copy = dir.path().join(example.file_name().unwrap());
        std::fs::copy(&example, &copy).unwrap();
        let output = check(&copy);
        assert!(
            output.status.success(),
            "{}: {}",
            example.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// examples/headwall.toml starts as shipped, with its state in a folder of its own, and does
/// the job: a packet gateway's Accounting-Start binds the subscriber, and the agecheck partner
/// receives the age flag for a request from that address. Nothing is written into examples/.
#[tokio::test]
async fn the_shipped_example_starts_and_enriches_a_radius_bound_client() {
    let listing = |dir: &std::path::Path| {
        let mut names: Vec<String> = walk(dir);
        names.sort();
        names
    };
    let examples = repo_root().join("examples");
    let before = listing(&examples);
    // The example's partner agecheck is verify.agecheck.test at 127.0.0.2, port 80.
    let agecheck = headwall_testkit::EchoOrigin::start("127.0.0.2:80".parse().unwrap())
        .await
        .expect("an origin on 127.0.0.2:80 (the example's agecheck partner)");
    let state = headwall_testkit::temp_dir();
    let mut command = Command::new(binary());
    command
        .args(["serve", "--config"])
        .arg(examples.join("headwall.toml"))
        .env("STATE_DIRECTORY", state.path());
    let gateway = headwall_testkit::ServeProcess::start_command(command, state);
    assert_eq!(gateway.explicit, "127.0.0.1:8080".parse().unwrap());
    let radius = gateway.radius.expect("the example's RADIUS listener");
    assert!(headwall_testkit::radclient(
        radius,
        "testing123",
        "Acct-Status-Type = Start\nFramed-IP-Address = 127.0.0.5\nCalling-Station-Id = \"447700900123\"\nAcct-Session-Id = \"ex-1\"\n",
    ));
    let response = headwall_testkit::send_raw(
        gateway.explicit,
        Some(headwall_testkit::loopback(5)),
        &headwall_testkit::proxy_get("http://verify.agecheck.test/", &[]),
        headwall_testkit::patience(std::time::Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    let received = agecheck.take();
    assert_eq!(received.len(), 1);
    let header = |name: &str| {
        received[0]
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-age-verified").as_deref(), Some("true"));
    assert!(header("x-subscriber-id").is_some());
    // State went to $STATE_DIRECTORY, nothing into the repository.
    for file in ["state/audit.db", "state/signing.key", "state/admin.token"] {
        assert!(
            gateway.path(file).exists(),
            "{file} not in the state folder"
        );
    }
    assert_eq!(listing(&examples), before, "serve wrote into examples/");
}

/// `headwall check --config path`, run to its end.
fn check(path: &std::path::Path) -> std::process::Output {
    Command::new(binary())
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

/// Every file under `dir`, relative to it.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

/// `check` reads every file the configuration names, finds listeners that would collide, and
/// says so with the key; `--json` gives the same findings. Warnings alone still exit 0.
#[test]
fn check_preflights_files_modes_and_listeners() {
    let dir = headwall_testkit::temp_dir();
    let secret = dir.path().join("pgw.secret");
    std::fs::write(&secret, "s3cret-value\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = dir.path().join("headwall.toml");
    std::fs::write(
        &path,
        "[gateway]\nlisten = \"127.0.0.1:18080\"\n[admin]\nlisten = \"127.0.0.1:18080\"\n\
         [radius]\n[[radius.clients]]\nsource = \"127.0.0.1\"\nsecret_file = \"pgw.secret\"\n\
         [subscribers]\nfile = \"missing.csv\"\n",
    )
    .unwrap();
    let output = check(&path);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "error: `file` in [subscribers]: ",
        "missing.csv does not exist",
        "is accessible by group or others (mode 644); run `chmod 600",
        "[gateway].listen (127.0.0.1:18080) and [admin].listen (127.0.0.1:18080) are the same",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in: {stderr}");
    }
    assert!(
        !stderr.contains("s3cret-value"),
        "a secret in the output: {stderr}"
    );
    let json = Command::new(binary())
        .args(["check", "--json", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["findings"].as_array().unwrap().len(),
        3,
        "{report:#}"
    );
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "error")
    );

    // Fixed, and the gateway moved beyond loopback: a warning, exit 0.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dir.path().join("missing.csv"), "msisdn,age_verified\n").unwrap();
    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .unwrap()
            .replacen("127.0.0.1:18080", "0.0.0.0:18080", 1)
            .replace(
                "[admin]\nlisten = \"127.0.0.1:18080\"",
                "[admin]\nlisten = \"127.0.0.1:0\"",
            ),
    )
    .unwrap();
    let output = check(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: the gateway listens on 0.0.0.0:18080"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("ok (0 partners, policy "),
        "{output:?}"
    );
}

/// A start that fails — a preflight error, or an address another process holds — leaves the
/// state folder as it was: no keys, no token, no databases.
#[test]
fn a_failed_start_creates_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for (name, config) in [
        (
            "address in use",
            format!(
                "[gateway]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"
            ),
        ),
        (
            "missing subscribers file",
            "[gateway]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [subscribers]\nfile = \"absent.csv\"\n"
                .to_owned(),
        ),
    ] {
        let dir = headwall_testkit::temp_dir();
        let path = dir.path().join("headwall.toml");
        std::fs::write(&path, &config).unwrap();
        let state = dir.path().join("state-folder");
        let output = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&path)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}: {output:?}");
        assert!(!state.exists(), "{name}: {:?}", walk(&state));
        assert_eq!(walk(dir.path()).len(), 1, "{name}: {:?}", walk(dir.path()));
    }
    drop(taken);
}

#[test]
fn check_reports_file_line_col_and_exits_1() {
    let dir = headwall_testkit::temp_dir();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[gateway]\nlisten = \"127.0.0.1:8080\"\n\n[[partner]]\nname = \"everyone\"\npurpose = \"billing\"\nhosts = [\"*\"]\ndestinations = [\"0.0.0.0/0\"]\nheaders = { \"X-MSISDN\" = \"msisdn\" }\n",
    )
    .unwrap();
    let output = check(&path);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("{}:7:", path.display());
    assert!(
        stderr.contains(&expected),
        "expected {expected} in: {stderr}"
    );
}

#[test]
fn check_unknown_key_points_at_it() {
    let dir = headwall_testkit::temp_dir();
    let path = dir.path().join("typo.toml");
    std::fs::write(
        &path,
        "[gateway]\nlisten = \"127.0.0.1:8080\"\nconect_timeout = \"5s\"\n",
    )
    .unwrap();
    let output = check(&path);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!("{}:3:1:", path.display())),
        "{stderr}"
    );
}

/// Issue 15: `check` validates `[[api.client]]` key files at their `jwks_file` value: missing,
/// not a JWK Set, a private key where only public keys belong, or no key type `/token` checks.
#[test]
fn check_reads_each_api_clients_jwks_file() {
    let dir = headwall_testkit::temp_dir();
    let path = dir.path().join("api.toml");
    std::fs::write(
        &path,
        "[gateway]\nlisten = \"127.0.0.1:8080\"\n[api]\npublic_url = \"https://api.test\"\n\
         tls_cert_file = \"api.crt\"\ntls_key_file = \"api.key\"\n\
         subscriber_networks = [\"10.0.0.0/8\"]\n[[api.client]]\nid = \"shop-app\"\n\
         jwks_file = \"shop.jwks.json\"\nredirect_uris = [\"https://shop.test/cb\"]\n\
         scopes = [\"number-verification:verify\"]\npurpose = \"dpv:FraudPreventionAndDetection\"\n",
    )
    .unwrap();
    let check = || {
        let output = check(&path);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let at = format!(
        "{}:10:13: `jwks_file` of [[api.client]] `shop-app`: ",
        path.display()
    );
    let jwks = dir.path().join("shop.jwks.json");
    let public =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    let cases = [
        (None, "cannot read"),
        (Some("not json".to_owned()), "is not JSON"),
        (Some(r#"{"kid":"a"}"#.to_owned()), "has no \"keys\" array"),
        (
            Some(format!(
                r#"{{"keys":[{}]}}"#,
                public.replace('}', r#","d":"secret"}"#)
            )),
            "holds a private key",
        ),
        (
            Some(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.to_owned()),
            "has no key /token can check",
        ),
    ];
    for (contents, want) in cases {
        match &contents {
            Some(text) => std::fs::write(&jwks, text).unwrap(),
            None => {
                let _ = std::fs::remove_file(&jwks);
            }
        }
        let (code, stderr) = check();
        assert_eq!(code, Some(1), "{contents:?}: {stderr}");
        assert!(stderr.starts_with(&at), "{contents:?}: {stderr}");
        assert!(stderr.contains(want), "{contents:?}: {stderr}");
        assert!(
            !stderr.contains("secret"),
            "a key's value in the error: {stderr}"
        );
    }
    std::fs::write(&jwks, format!(r#"{{"keys":[{public}]}}"#)).unwrap();
    // The preflight reads the TLS pair too.
    let keygen = Command::new(binary())
        .args(["keygen", "--tls", "api.operator.test", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let (code, stderr) = check();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn check_on_a_missing_file_exits_2() {
    let output = Command::new(binary())
        .args(["check", "--config", "/nonexistent/headwall.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn keygen_writes_0600_keys_and_never_overwrites() {
    let dir = headwall_testkit::temp_dir();
    let out = dir.path().join("keys");
    let status = Command::new(binary())
        .args(["keygen", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for name in ["pseudonym.key", "signing.key"] {
        let meta = std::fs::metadata(out.join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(headwall_identity::decode_key_file(&text).is_ok());
    }
    let before = std::fs::read(out.join("pseudonym.key")).unwrap();
    let second = Command::new(binary())
        .args(["keygen", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!second.status.success(), "keygen overwrote existing keys");
    assert_eq!(std::fs::read(out.join("pseudonym.key")).unwrap(), before);
}

#[test]
fn demo_runs_and_all_its_checks_pass() {
    let output = Command::new(binary())
        .arg("demo")
        .env("HEADWALL_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
}

#[test]
fn the_systemd_unit_verifies_and_keeps_its_hardening() {
    let unit = std::fs::read_to_string(repo_root().join("deploy/headwall.service")).unwrap();
    for required in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=headwall",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(
            unit.contains(required),
            "deploy/headwall.service lost {required}"
        );
    }
    let dir = headwall_testkit::temp_dir();
    let path = dir.path().join("headwall.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/headwall", &binary().display().to_string()),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/test installs it)");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_closed_stderr_never_stops_a_server() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(binary())
        .args(["leakcheck", "--listen", "127.0.0.1:0"])
        .env("HEADWALL_LOG", "debug")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = line
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line}"));
    // The reader goes away (a dead pipe); the server logs again on every request.
    drop(reader);
    for _ in 0..3 {
        let response = headwall_testkit::send_raw(
            addr,
            None,
            b"GET /api/v1/check HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("still serving after its stderr closed");
        assert_eq!(response.status, 200);
    }
    assert!(child.try_wait().unwrap().is_none(), "the process exited");
    let _ = child.kill();
    let _ = child.wait();
}
