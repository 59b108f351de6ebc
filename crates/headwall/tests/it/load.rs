//! Bounded load against the real binary: a crash mid-load loses no record of what a partner
//! received; reloads (valid and invalid) while traffic flows fail no request and never apply a
//! policy that did not validate; a thousand idle keep-alive clients do not lock out a new one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use headwall_testkit::{ServeProcess, loopback, origin, proxy_get, radclient, send_raw};

use crate::binary;
use crate::radius::{SECRET, accounting, config};

async fn partner_request(gateway: SocketAddr, port: u16) -> Option<u16> {
    let url = format!("http://verify.agecheck.test:{port}/");
    send_raw(
        gateway,
        Some(loopback(5)),
        &proxy_get(&url, &[]),
        Duration::from_secs(10),
    )
    .await
    .ok()
    .map(|response| response.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_loses_no_record_of_a_disclosure() {
    let agecheck = origin(2).await;
    let port = agecheck.addr().port();
    let gateway = ServeProcess::start(binary(), &config(port));
    assert!(radclient(
        gateway.radius.unwrap(),
        SECRET,
        &accounting("Start", "s1")
    ));

    // 8 clients, at most 400 requests each, until the gateway is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, sent, explicit) = (stop.clone(), sent.clone(), gateway.explicit);
        clients.push(tokio::spawn(async move {
            for _ in 0..400 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if partner_request(explicit, port).await.is_none() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sent.load(Ordering::Relaxed) < 300 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dir = gateway.kill();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }

    let received = agecheck.take();
    let with_identity = received
        .iter()
        .filter(|request| request.header("x-subscriber-id").is_some())
        .count();
    assert!(with_identity >= 100, "too little load: {with_identity}");
    let rows: i64 = crate::audit_index(&dir.path().join("state/audit.db"))
        .query_row("SELECT COUNT(*) FROM disclosures", [], |row| row.get(0))
        .unwrap();
    let rows = usize::try_from(rows).unwrap();
    assert!(
        rows >= with_identity,
        "the partner received {with_identity} enriched requests but only {rows} are recorded"
    );
    let output = std::process::Command::new(binary())
        .args(["audit", "verify", "--config"])
        .arg(dir.path().join("headwall.toml"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_traffic_fail_nothing_and_never_apply_an_invalid_policy() {
    let agecheck = origin(2).await;
    let port = agecheck.addr().port();
    let policy_a = config(port);
    let policy_b = policy_a.replace(
        "\"X-Subscriber-Id\" = \"pseudonym\"",
        "\"X-Partner-Subscriber\" = \"pseudonym\"",
    );
    // Invalid: the raw number for age verification without a justification. Had it been
    // applied, the partner would see X-MSISDN.
    let invalid = policy_a.replace(
        "\"X-Subscriber-Id\" = \"pseudonym\"",
        "\"X-Subscriber-Id\" = \"pseudonym\", \"X-MSISDN\" = \"msisdn\"",
    );
    let gateway = ServeProcess::start(binary(), &policy_a);
    assert!(radclient(
        gateway.radius.unwrap(),
        SECRET,
        &accounting("Start", "s1")
    ));
    let config_path = gateway.path("headwall.toml");

    let done = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (done, explicit) = (done.clone(), gateway.explicit);
        clients.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..300 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                statuses.push(partner_request(explicit, port).await);
            }
            statuses
        }));
    }
    for text in [
        &policy_b, &invalid, &policy_a, &invalid, &policy_b, &policy_a,
    ] {
        std::fs::write(&config_path, text).unwrap();
        gateway.signal("HUP");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    done.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        for status in client.await.unwrap() {
            assert_eq!(status, Some(200), "a request failed during reloads");
            answered += 1;
        }
    }
    assert!(answered > 0);
    let received = agecheck.take();
    assert_eq!(received.len(), answered);
    for request in &received {
        let a = request.header_values("x-subscriber-id").len();
        let b = request.header_values("x-partner-subscriber").len();
        // Exactly one policy's header set, never both, never the invalid one's.
        assert_eq!(a + b, 1, "{request:?}");
        assert!(
            request.header("x-msisdn").is_none(),
            "invalid policy applied"
        );
    }
    let log = gateway.log().join("\n");
    assert!(
        log.contains("reload refused"),
        "invalid reloads were not reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_keep_alive_clients_do_not_lock_out_a_new_one() {
    let agecheck = origin(2).await;
    let port = agecheck.addr().port();
    let gateway = ServeProcess::start(binary(), &config(port));
    let mut idle = Vec::with_capacity(1000);
    for index in 0..1000 {
        let stream = tokio::net::TcpStream::connect(gateway.explicit)
            .await
            .unwrap_or_else(|error| {
                panic!("idle connection {index}: {error} (raise `ulimit -n` above 2100)")
            });
        idle.push(stream);
    }
    // A new client is served while all of them are held open.
    for _ in 0..5 {
        assert_eq!(partner_request(gateway.explicit, port).await, Some(200));
    }
    assert_eq!(agecheck.take().len(), 5);
    // The idle ones were not dropped by the gateway: each still gets an answer.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = proxy_get(&format!("http://verify.agecheck.test:{port}/"), &[]);
    for stream in idle.iter_mut().step_by(100) {
        stream.write_all(&request).await.unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
    }
}
