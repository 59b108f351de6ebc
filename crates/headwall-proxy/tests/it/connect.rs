//! CONNECT: tunnels to allowed ports only, never enriched.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{SUBSCRIBER, only, start};

async fn connect(proxy: std::net::SocketAddr, target: &str) -> (TcpStream, String) {
    let mut client = TcpStream::connect(proxy).await.unwrap();
    let request =
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nX-MSISDN: {SUBSCRIBER}\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (client, String::from_utf8(head).unwrap())
}

#[tokio::test]
async fn connect_to_an_allowed_port_tunnels_bytes_untouched() {
    let h = start("").await;
    // connect_ports lists the website origin's port; speak plain HTTP inside the tunnel.
    let target = format!("news.example.test:{}", h.website.addr().port());
    let (mut client, head) = connect(h.proxy, &target).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    client
        .write_all(b"GET /inside HTTP/1.1\r\nHost: tunnel\r\nX_MSISDN: passthrough\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200"));
    let got = only(&h.website);
    assert_eq!(got.target, "/inside");
    // The gateway never touches tunnel content: it neither strips nor inserts there.
    assert_eq!(got.header("x_msisdn"), Some("passthrough"));
    assert!(got.headers.iter().all(|(_, v)| !v.contains(SUBSCRIBER)));
}

#[tokio::test]
async fn connect_to_other_ports_is_403() {
    let h = start("").await;
    let target = format!("verify.agecheck.test:{}", h.agecheck.addr().port());
    let (_, head) = connect(h.proxy, &target).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(h.agecheck.take().is_empty());
}

/// A tunnel to a partner would let the client write its own request, identity headers
/// included, straight to the partner from the gateway's trusted address. Here port P is both a
/// CONNECT port and one of agecheck's ports, and something listens at agecheck's address on P:
/// by name or by address, the tunnel is refused and nothing reaches it.
#[tokio::test]
async fn connect_never_opens_a_tunnel_to_a_partner() {
    let h = start("").await;
    let port = h.website.addr().port();
    let partner_side = tokio::net::TcpListener::bind(("127.0.0.2", port))
        .await
        .unwrap();
    for target in [
        format!("verify.agecheck.test:{port}"),
        format!("127.0.0.2:{port}"),
    ] {
        let (_, head) = connect(h.proxy, &target).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{target}: {head}");
    }
    let reached = tokio::time::timeout(Duration::from_millis(200), partner_side.accept()).await;
    assert!(reached.is_err(), "a tunnel connected to the partner");
    // The same port on a non-partner address still tunnels.
    let (_, head) = connect(h.proxy, &format!("news.example.test:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// Issue 14, defect 4: the connection's `max_connections` slot was released when hyper handed
/// the socket to the tunnel, so tunnels were unbounded. A tunnel keeps its slot until both
/// sockets close, and `headwall_tunnels_open` counts it.
#[tokio::test]
async fn tunnels_count_against_max_connections() {
    let h = start("max_connections = 3").await;
    let target = format!("news.example.test:{}", h.website.addr().port());
    let mut tunnels = Vec::new();
    for _ in 0..3 {
        let (client, head) = connect(h.proxy, &target).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        tunnels.push(client);
    }
    let metrics = h.gateway.metrics();
    assert!(
        headwall_testkit::eventually(Duration::from_secs(5), || metrics.tunnels_open() == 3).await,
        "tunnels_open is {}",
        metrics.tunnels_open()
    );
    assert_eq!(h.gateway.open_connections(), 3);
    // A fourth client finds no slot: closed without an answer.
    let mut fourth = TcpStream::connect(h.proxy).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), fourth.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "a fourth connection was served"
    );

    // One tunnel closes: its slot comes back, and a new tunnel opens.
    drop(tunnels.pop());
    assert!(
        headwall_testkit::eventually(Duration::from_secs(5), || metrics.tunnels_open() == 2).await,
        "tunnels_open is {} after a tunnel closed",
        metrics.tunnels_open()
    );
    let (_client, head) = connect(h.proxy, &target).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
