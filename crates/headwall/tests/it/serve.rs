//! `headwall serve` as a process: start-up, keys, JWKS, and a request through it.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use headwall_testkit::{ServeProcess, loopback, origin, proxy_get, send_raw};

use crate::binary;

fn config(website_port: u16) -> String {
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
[gateway.hosts]
"news.example.test" = "127.0.0.3"
[admin]
listen = "127.0.0.1:0"
[[partner]]
name = "agecheck"
purpose = "age_verification"
hosts = ["verify.agecheck.test"]
destinations = ["127.0.0.2/32"]
headers = {{ "X-Age-Verified" = "age_verified" }}
# website port {website_port} is not a partner port
"#
    )
}

/// GET news.example.test (a website, not a partner) through `gateway` from 127.0.0.5.
async fn get_website(
    gateway: &ServeProcess,
    website: &headwall_testkit::EchoOrigin,
    headers: &[(&str, &str)],
) -> headwall_testkit::ProbeResponse {
    let url = format!("http://news.example.test:{}/", website.addr().port());
    send_raw(
        gateway.explicit,
        Some(loopback(5)),
        &proxy_get(&url, headers),
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn serve_strips_spoofs_creates_keys_and_serves_jwks() {
    let website = origin(3).await;
    let gateway = ServeProcess::start(binary(), &config(website.addr().port()));

    // Keys were generated on first start, mode 0600.
    for name in ["state/pseudonym.key", "state/signing.key"] {
        let mode = std::fs::metadata(gateway.path(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }

    let spoof = [
        ("X-MSISDN", "447700900123"),
        ("x_wap_msisdn", "447700900123"),
    ];
    let response = get_website(&gateway, &website, &spoof).await;
    assert_eq!(response.status, 200);
    let received = website.take();
    assert_eq!(received.len(), 1);
    assert!(
        received[0]
            .headers
            .iter()
            .all(|(_, v)| !v.contains("447700900123")),
        "{received:?}"
    );

    let jwks = send_raw(
        gateway.admin,
        None,
        b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(jwks.status, 200);
    let document: serde_json::Value = serde_json::from_slice(&jwks.body).unwrap();
    assert_eq!(document["keys"][0]["kty"], "OKP");
    assert_eq!(document["keys"][0]["crv"], "Ed25519");

    // The spoofed number never reaches the log either.
    assert!(
        gateway
            .log()
            .iter()
            .all(|line| !line.contains("447700900123"))
    );
}

#[test]
fn serve_refuses_a_key_file_readable_by_others() {
    let dir = headwall_testkit::temp_dir();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let key = dir.path().join("state/pseudonym.key");
    std::fs::write(&key, headwall_identity::encode_key_file(&[1; 32])).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(dir.path().join("headwall.toml"), config(1)).unwrap();
    let output = std::process::Command::new(binary())
        .args(["serve", "--config"])
        .arg(dir.path().join("headwall.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

#[test]
fn json_logs_name_every_bound_address_one_object_per_line_and_ready_comes_last() {
    use std::io::{BufRead, BufReader};
    let dir = headwall_testkit::temp_dir();
    std::fs::write(dir.path().join("headwall.toml"), config(1)).unwrap();
    let mut child = std::process::Command::new(binary())
        .args(["serve", "--config"])
        .arg(dir.path().join("headwall.toml"))
        .env("HEADWALL_LOG_FORMAT", "json")
        .env("HEADWALL_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let ready = line.contains("headwall ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let ready = objects.last().expect("a ready line");
    assert_eq!(ready["message"], "headwall ready");
    assert!(
        ready["explicit"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(ready["admin"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(ready["radius"], "off");
    assert_eq!(ready["level"], "INFO");
    assert_eq!(ready["transparent"], "off");
    // "ready" comes after every listener said it listens, not before.
    for listening in ["gateway listening", "admin listening"] {
        assert!(
            objects.iter().any(|o| o["message"] == listening),
            "no {listening:?} before ready: {lines:?}"
        );
    }
    // Nothing but JSON objects, each with a level and a message.
    assert!(
        objects
            .iter()
            .all(|o| o["level"].is_string() && o["message"].is_string())
    );
}

#[tokio::test]
async fn sigterm_drains_the_request_in_flight_and_readyz_turns_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: usize = 32 * 1024 * 1024;
    let website = origin(3).await;
    let gateway = ServeProcess::start(binary(), &config(website.addr().port()));
    let admin = gateway.admin;
    let readyz = || async move {
        headwall_testkit::send_raw(
            admin,
            None,
            b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            std::time::Duration::from_secs(5),
        )
        .await
        .map(|response| response.status)
    };
    assert_eq!(readyz().await.unwrap(), 200);

    // A large streamed response, of which only the start has been read.
    let mut client = tokio::net::TcpStream::connect(gateway.explicit)
        .await
        .unwrap();
    let request = format!(
        "GET http://news.example.test:{}/bytes/{BODY} HTTP/1.1\r\nHost: news.example.test\r\nConnection: close\r\n\r\n",
        website.addr().port()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let mut received = vec![0u8; 64 * 1024];
    let mut total = client.read(&mut received).await.unwrap();
    assert!(total > 0);

    gateway.signal("TERM");
    // Draining: not ready any more, while the admin listener still answers.
    let mut draining = false;
    for _ in 0..200 {
        if readyz().await.ok() == Some(503) {
            draining = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(draining, "/readyz did not turn 503 while draining");

    // The request in flight still completes, to the last byte.
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    total += rest.len();
    assert!(total > BODY, "only {total} bytes arrived");
    assert!(rest.ends_with(b"0\r\n\r\n"), "the chunked body did not end");
    let (code, _) = gateway.wait();
    assert_eq!(code, Some(0));
}

/// Every file under `dir` and its mode, sorted by path.
fn modes_under(dir: &std::path::Path) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            let name = entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string();
            if entry.file_type().unwrap().is_dir() {
                folders.push(entry.path());
            }
            found.push((name, mode));
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn files_holding_subscriber_data_are_owner_only() {
    // The umask a gateway is usually started with; without headwall's own, files are 0644.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let website = origin(3).await;
    let gateway = ServeProcess::start(binary(), &config(website.addr().port()));
    let response = get_website(&gateway, &website, &[("X-MSISDN", "447700900123")]).await;
    assert_eq!(response.status, 200);
    let (_, dir) = gateway.terminate();
    let state = dir.path().join("state");
    let modes = modes_under(&state);
    for wanted in [
        "audit.db",
        "audit.journal.0",
        "audit.journal.1",
        "audit.checkpoints",
        "sessions/bindings.db",
    ] {
        assert!(
            modes.iter().any(|(name, _)| name == wanted),
            "{wanted}: {modes:?}"
        );
    }
    for (name, mode) in &modes {
        let owner_only = if name == "sessions" { 0o700 } else { 0o600 };
        assert_eq!(*mode, owner_only, "{name}: {modes:?}");
    }

    // Files an older version left world-readable are tightened at the next start, and said so.
    for name in ["audit.db", "sessions/bindings.db"] {
        std::fs::set_permissions(state.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let gateway = ServeProcess::start_in(binary(), &config(website.addr().port()), dir);
    for name in ["audit.db", "sessions/bindings.db"] {
        let mode = std::fs::metadata(gateway.path(&format!("state/{name}")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    let log = gateway.log();
    let warnings = log.iter().filter(|line| line.contains("now owner-only"));
    assert_eq!(warnings.count(), 2, "{log:?}");
}
