//! Connection limits and timeouts.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{only, start, subscriber_ip};

/// Reads until EOF or `limit`; true when the peer closed within it.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read_until_eof = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_until_eof).await.is_ok()
}

#[tokio::test]
async fn connections_past_max_connections_are_closed() {
    let h = start("max_connections = 2").await;
    let mut first = TcpStream::connect(h.proxy).await.unwrap();
    let mut second = TcpStream::connect(h.proxy).await.unwrap();
    // Make sure both are being served before the third arrives.
    for client in [&mut first, &mut second] {
        let request = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", h.website_url());
        client.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 12];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
    }
    let mut third = TcpStream::connect(h.proxy).await.unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(5)).await,
        "third connection was served"
    );
    drop(first);
    // A slot frees up: new connections are served again.
    let mut served = false;
    for _ in 0..50 {
        let response = headwall_testkit::send_raw(
            h.proxy,
            Some(subscriber_ip()),
            &headwall_testkit::proxy_get(&h.website_url(), &[]),
            Duration::from_secs(5),
        )
        .await;
        if response.is_ok_and(|r| r.status == 200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served,
        "gateway did not serve again after a connection closed"
    );
}

#[tokio::test]
async fn slow_request_head_is_cut_off() {
    let h = start(r#"header_read_timeout = "300ms""#).await;
    let mut client = TcpStream::connect(h.proxy).await.unwrap();
    client
        .write_all(b"GET http://news.example.test/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut client, Duration::from_secs(5)).await);
    assert!(h.website.take().is_empty());
}

#[tokio::test]
async fn idle_connection_is_closed() {
    let h = start(r#"idle_timeout = "300ms""#).await;
    let mut client = TcpStream::connect(h.proxy).await.unwrap();
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", h.website_url());
    client.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 12];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    assert!(closed_within(&mut client, Duration::from_secs(5)).await);
    assert_eq!(only(&h.website).method, "GET");
}

/// `header_read_timeout` also bounds the wait for the next request on a keep-alive connection
/// (docs/operations.md), whatever `idle_timeout` says; a connection still in use is not cut.
#[tokio::test]
async fn keep_alive_waits_for_the_next_head_only_header_read_timeout() {
    let h = start("header_read_timeout = \"400ms\"\nidle_timeout = \"60s\"").await;
    let mut client = TcpStream::connect(h.proxy).await.unwrap();
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", h.website_url());
    for _ in 0..3 {
        // Within the timeout each time: the connection carries the next request.
        tokio::time::sleep(Duration::from_millis(150)).await;
        client.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 12];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        let mut rest = [0u8; 512];
        let _ = tokio::time::timeout(Duration::from_millis(50), client.read(&mut rest)).await;
    }
    let started = std::time::Instant::now();
    assert!(closed_within(&mut client, Duration::from_secs(5)).await);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(h.website.take().len(), 3);
}
