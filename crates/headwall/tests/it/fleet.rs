//! Two gateways sharing their bindings through a real Redis: accounting sent to either node
//! serves both, and a Redis outage fails closed (traffic flows without identity, RADIUS is not
//! acknowledged, /readyz says degraded) and recovers.

use std::net::SocketAddr;
use std::time::Duration;

use headwall_testkit::{RedisServer, ServeProcess, origin, radclient, send_raw};

use crate::binary;
use crate::radius::{SECRET, accounting, config, pseudonyms_seen};

/// Both nodes share Redis and the identity keys (as a fleet must: the same subscriber gets the
/// same pseudonym from every node).
fn fleet_config(agecheck_port: u16, redis: &RedisServer, keys: &std::path::Path) -> String {
    format!(
        "{}\n[sessions]\nbackend = \"redis\"\nredis_url = \"{}\"\n[identity]\npseudonym_key_file = \"{}\"\nsigning_key_file = \"{}\"\n",
        config(agecheck_port),
        redis.url(),
        keys.join("pseudonym.key").display(),
        keys.join("signing.key").display(),
    )
}

/// A folder with the identity keys every node of a test fleet shares.
fn fleet_keys() -> tempfile::TempDir {
    let keys = headwall_testkit::temp_dir();
    let keygen = std::process::Command::new(binary())
        .args(["keygen", "--out"])
        .arg(keys.path())
        .status()
        .unwrap();
    assert!(keygen.success());
    keys
}

/// `headwall_session_store_errors_total` of the node whose admin listener is `admin`.
async fn store_errors(admin: SocketAddr) -> f64 {
    let (_, metrics) = get(admin, "/metrics").await;
    metrics
        .lines()
        .find(|line| line.starts_with("headwall_session_store_errors_total "))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or(0.0)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let response = send_raw(addr, None, request.as_bytes(), Duration::from_secs(10))
        .await
        .unwrap();
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

#[tokio::test]
async fn two_nodes_share_bindings_and_an_outage_fails_closed() {
    let agecheck = origin(2).await;
    let mut redis = RedisServer::start();
    let keys = fleet_keys();
    let text = fleet_config(agecheck.addr().port(), &redis, keys.path());
    let a = ServeProcess::start(binary(), &text);
    let b = ServeProcess::start(binary(), &text);

    // Accounting to A; traffic through B is enriched, with the same pseudonym as through A.
    assert!(radclient(
        a.radius.unwrap(),
        SECRET,
        &accounting("Start", "s1")
    ));
    let through_b = pseudonyms_seen(b.explicit, &agecheck).await;
    assert_eq!(through_b.len(), 1);
    assert_eq!(pseudonyms_seen(a.explicit, &agecheck).await, through_b);

    // A late Stop of another session via B leaves it; the right Stop via B ends it on A too.
    assert!(radclient(
        b.radius.unwrap(),
        SECRET,
        &accounting("Stop", "old")
    ));
    assert_eq!(pseudonyms_seen(a.explicit, &agecheck).await.len(), 1);
    assert!(radclient(
        b.radius.unwrap(),
        SECRET,
        &accounting("Stop", "s1")
    ));
    assert!(pseudonyms_seen(a.explicit, &agecheck).await.is_empty());

    // Outage: no acknowledgement, traffic flows without identity, counted, degraded not down.
    assert!(radclient(
        a.radius.unwrap(),
        SECRET,
        &accounting("Start", "s2")
    ));
    redis.stop();
    assert!(
        !radclient(a.radius.unwrap(), SECRET, &accounting("Start", "s3")),
        "accounting acknowledged while Redis is down"
    );
    assert!(pseudonyms_seen(a.explicit, &agecheck).await.is_empty());
    let (status, body) = get(a.admin, "/readyz").await;
    assert_eq!(status, 200, "a degraded store keeps the node in service");
    assert!(body.contains("degraded"), "{body}");
    assert!(
        store_errors(a.admin).await >= 1.0,
        "no session store error counted"
    );

    // Back (empty: the test server keeps nothing): accounting works again, then enrichment.
    redis.restart();
    let mut acknowledged = false;
    for _ in 0..50 {
        if radclient(a.radius.unwrap(), SECRET, &accounting("Start", "s4")) {
            acknowledged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(acknowledged, "never recovered");
    // B notices the outage ended on its next call (fail closed until it has reconnected).
    let mut enriched = false;
    for _ in 0..50 {
        if pseudonyms_seen(b.explicit, &agecheck).await.len() == 1 {
            enriched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(enriched, "node B never used the shared binding again");
    let (_, body) = get(a.admin, "/readyz").await;
    assert_eq!(body.trim(), "ready");
    // No subscriber number in either node's log.
    for node in [&a, &b] {
        assert!(!node.log().join("\n").contains("7700900123"));
    }
}

/// A fleet's full shape: bindings in Redis and one audit log in PostgreSQL, each node with its
/// own chain; the `audit` commands answer across the fleet.
#[tokio::test]
async fn a_fleet_shares_one_postgres_audit_log() {
    use std::process::Command;
    let agecheck = origin(2).await;
    let redis = RedisServer::start();
    let postgres = headwall_testkit::postgres::TestPostgres::start();
    let url = postgres.url(&postgres.fresh_database());
    let keys = fleet_keys();
    let node = |name: &str| {
        format!(
            "{}[audit]\nbackend = \"postgres\"\nurl = \"{url}\"\nnode = \"{name}\"\n",
            fleet_config(agecheck.addr().port(), &redis, keys.path())
        )
    };
    let a = ServeProcess::start(binary(), &node("gw-a"));
    let b = ServeProcess::start(binary(), &node("gw-b"));
    assert!(radclient(
        a.radius.unwrap(),
        SECRET,
        &accounting("Start", "s1")
    ));
    assert_eq!(pseudonyms_seen(a.explicit, &agecheck).await.len(), 1);
    assert_eq!(pseudonyms_seen(b.explicit, &agecheck).await.len(), 1);

    let config_path = a.path("headwall.toml");
    let audit = |args: &[&str]| {
        Command::new(binary())
            .arg("audit")
            .args(args)
            .arg("--config")
            .arg(&config_path)
            .output()
            .unwrap()
    };
    // Both disclosures, one from each node, from either node's configuration.
    let output = audit(&["subscriber", "07700900123", "--json"]);
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut nodes: Vec<&str> = json["disclosures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["node"].as_str().unwrap())
        .collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["gw-a", "gw-b"]);

    // The kill switch is fleet-wide: switched off on A, B follows within seconds.
    let token = std::fs::read_to_string(a.path("state/admin.token")).unwrap();
    let body = "{\"enabled\":false}";
    let request = format!(
        "POST /v1/enrichment HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        token.trim(),
        body.len()
    );
    let answer = send_raw(a.admin, None, request.as_bytes(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let mut followed = false;
    for _ in 0..100 {
        let (_, metrics) = get(b.admin, "/metrics").await;
        if metrics.contains("headwall_enrichment_enabled 0") {
            followed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(followed, "node B did not follow the fleet's kill switch");
    assert!(pseudonyms_seen(b.explicit, &agecheck).await.is_empty());

    // Stop both gracefully (final checkpoints), then verify every node's chain.
    let (code_a, _dir_a) = a.terminate();
    let (code_b, _dir_b) = b.terminate();
    assert_eq!((code_a, code_b), (Some(0), Some(0)));
    let output = audit(&["verify"]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stdout}{output:?}");
    assert!(stdout.contains("2 disclosures"), "{stdout}");
    assert!(
        stdout.contains("node gw-a") && stdout.contains("node gw-b"),
        "{stdout}"
    );
}

/// The shared stores over TLS (docs/config.md, "TLS to PostgreSQL and Redis"): Redis and
/// PostgreSQL that speak only TLS and ask for a client certificate. A node with the right CA
/// and certificates binds over rediss://, discloses with its record in PostgreSQL
/// (`sslmode=verify-full`), and the `audit` commands read it; a node given someone else's CA
/// does not start, and says why.
#[tokio::test]
async fn a_node_reaches_its_shared_stores_over_tls_only() {
    use headwall_testkit::tls::TestCa;
    use std::process::Command;
    let dir = headwall_testkit::temp_dir();
    let ca = TestCa::new("store CA");
    let clients = TestCa::new("gateway client CA");
    let clients_file = clients.write(dir.path(), "clients");
    let redis_pair = ca.write_pair(dir.path(), "redis", "redis", &["127.0.0.1"]);
    let redis = RedisServer::start_tls(&redis_pair, Some(&clients_file));
    let (cert_pem, key_pem) = ca.issue("audit-db", &["127.0.0.1"]);
    let postgres = headwall_testkit::postgres::TestPostgres::start_tls(
        &headwall_testkit::postgres::ServerTls {
            cert_pem,
            key_pem,
            client_ca_pem: Some(clients.pem()),
        },
    );
    let url = format!(
        "{}?sslmode=verify-full",
        postgres.url(&postgres.fresh_database())
    );
    let ca_file = ca.write(dir.path(), "ca");
    let stranger_file = TestCa::new("someone else's CA").write(dir.path(), "stranger");
    let client = clients.write_pair(dir.path(), "client", "headwall", &[]);
    let agecheck = origin(2).await;
    let keys = fleet_keys();
    let node = |ca_file: &std::path::Path| {
        let tls = format!(
            "tls_ca_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            ca_file.display(),
            client.cert_file.display(),
            client.key_file.display()
        );
        format!(
            "{}\n[sessions]\nbackend = \"redis\"\nredis_url = \"{}\"\n{tls}[identity]\n\
             pseudonym_key_file = \"{}\"\nsigning_key_file = \"{}\"\n\
             [audit]\nbackend = \"postgres\"\nurl = \"{url}\"\nnode = \"gw-tls\"\n{tls}",
            config(agecheck.addr().port()),
            redis.tls_url(),
            keys.path().join("pseudonym.key").display(),
            keys.path().join("signing.key").display(),
        )
    };

    let gateway = ServeProcess::start(binary(), &node(&ca_file));
    assert!(radclient(
        gateway.radius.unwrap(),
        SECRET,
        &accounting("Start", "s1")
    ));
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);
    let output = Command::new(binary())
        .args(["audit", "subscriber", "07700900123", "--json", "--config"])
        .arg(gateway.path("headwall.toml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json["disclosures"].as_array().map(Vec::len),
        Some(1),
        "{json}"
    );
    drop(gateway);

    // Someone else's CA: the audit log cannot be opened, so the node refuses to start.
    let folder = headwall_testkit::temp_dir();
    let config_path = folder.path().join("headwall.toml");
    std::fs::write(&config_path, node(&stranger_file)).unwrap();
    let output = Command::new("timeout")
        .args(["60", binary().to_str().unwrap(), "serve", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
}

/// Two gateways on a real Redis Cluster (three masters): subscribers bound over every master's
/// slots through either node. One master stops: requests from its subscribers go out without
/// identity, their accounting is not acknowledged and the store errors are counted, while the
/// other masters' subscribers are enriched and acknowledged as before; when it is back, its
/// slots serve again.
#[tokio::test]
async fn two_nodes_on_a_redis_cluster_fail_closed_for_a_dead_masters_slots_only() {
    let agecheck = origin(2).await;
    let mut cluster = headwall_testkit::RedisCluster::start();
    let keys = fleet_keys();
    let text = format!(
        "{}\n[sessions]\nbackend = \"redis\"\nredis_url = \"{}\"\n[identity]\npseudonym_key_file = \"{}\"\nsigning_key_file = \"{}\"\n",
        config(agecheck.addr().port()),
        cluster.urls().join(","),
        keys.path().join("pseudonym.key").display(),
        keys.path().join("signing.key").display(),
    );
    let a = ServeProcess::start(binary(), &text);
    let b = ServeProcess::start(binary(), &text);
    let start = |source: u8, session: &str| {
        format!(
            "Acct-Status-Type = Start\nFramed-IP-Address = 127.0.0.{source}\nCalling-Station-Id = \"07700900{source:03}\"\nAcct-Session-Id = \"{session}\"\nNAS-IP-Address = 127.0.0.1\n"
        )
    };
    let url = format!("http://verify.agecheck.test:{}/", agecheck.addr().port());
    let enriched = async |gateway: &ServeProcess, source: u8| {
        !crate::received_through(gateway.explicit, source, &url, &agecheck)
            .await
            .header_values("x-subscriber-id")
            .is_empty()
    };

    // One subscriber address per master, none on the master holding the NAS's index (every
    // bind adds its key there).
    let nas_owner = cluster.owner("headwall:nas:127.0.0.1");
    let mut on: [Option<u8>; 3] = [None; 3];
    for source in 10..=250u8 {
        let owner = cluster.owner(&format!("headwall:bind:127.0.0.{source}/32"));
        on[owner].get_or_insert(source);
    }
    let on: Vec<u8> = on.into_iter().map(Option::unwrap).collect();
    let down = (nas_owner + 1) % 3;
    for &source in &on {
        assert!(radclient(a.radius.unwrap(), SECRET, &start(source, "s1")));
        assert!(enriched(&b, source).await, "127.0.0.{source} through B");
    }

    cluster.nodes[down].stop();
    let live: Vec<u8> = (0..3).filter(|i| *i != down).map(|i| on[i]).collect();
    let mut settled = false;
    for _ in 0..100 {
        let mut all = true;
        for &source in &live {
            all &= enriched(&b, source).await;
        }
        if all {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        settled,
        "the live masters' subscribers were never enriched again"
    );
    for node in [&a, &b] {
        assert!(
            !enriched(node, on[down]).await,
            "a dead master's subscriber was enriched"
        );
        for &source in &live {
            assert!(enriched(node, source).await, "127.0.0.{source}");
        }
    }
    assert!(
        !radclient(a.radius.unwrap(), SECRET, &start(on[down], "s2")),
        "accounting for a dead master's slot was acknowledged"
    );
    assert!(radclient(b.radius.unwrap(), SECRET, &start(live[0], "s2")));
    assert!(
        store_errors(b.admin).await >= 1.0,
        "no session store error counted"
    );

    // Back, empty (the test servers keep no data): accounting binds on its slots again.
    cluster.nodes[down].restart();
    cluster.wait_until_ok();
    let mut recovered = false;
    for _ in 0..50 {
        if radclient(a.radius.unwrap(), SECRET, &start(on[down], "s3"))
            && enriched(&b, on[down]).await
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the restarted master's subscribers were never enriched again"
    );
    for node in [&a, &b] {
        assert!(!node.log().join("\n").contains("7700900"));
    }
}
