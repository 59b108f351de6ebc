//! check, keygen and demo, run as an operator would.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::{binary, repo_root};

/// Every configuration the repository ships as an example loads: examples/headwall.toml (every
/// key) and each file in examples/configs/.
#[test]
fn check_accepts_every_example_config() {
    let mut examples = vec![repo_root().join("examples/headwall.toml")];
    let mut configs: Vec<_> = std::fs::read_dir(repo_root().join("examples/configs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    configs.sort();
    assert!(configs.len() >= 4, "examples/configs/: {configs:?}");
    examples.extend(configs);
    for example in examples {
        let output = Command::new(binary())
            .args(["check", "--config"])
            .arg(&example)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}: {}",
            example.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
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
    let output = Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
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
    let output = Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
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
        let output = Command::new(binary())
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
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
