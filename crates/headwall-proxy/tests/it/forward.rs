//! Forwarding itself: targets, Host, versions, keep-alive, streaming, upgrades, errors.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{only, start, subscriber_ip};

#[tokio::test]
async fn host_header_follows_the_request_target() {
    let h = start("").await;
    let url = h.website_url();
    let port = h.website.addr().port();
    h.get(
        subscriber_ip(),
        &url.replace("news.example.test", "NEWS.Example.TEST."),
        &[],
    )
    .await;
    let request = format!("GET {url} HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n");
    h.raw(subscriber_ip(), request.as_bytes()).await;
    let received = h.website.take();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[1].header_values("host"),
        [format!("news.example.test:{port}").as_str()]
    );
    // Upstream receives origin-form.
    assert_eq!(received[1].target, "/");
}

#[tokio::test]
async fn origin_form_on_the_explicit_listener_is_400() {
    let h = start("").await;
    let response = h
        .raw(
            subscriber_ip(),
            b"GET / HTTP/1.1\r\nHost: news.example.test\r\nConnection: close\r\n\r\n",
        )
        .await;
    assert_eq!(response.status, 400);
    assert!(h.website.take().is_empty());
}

#[tokio::test]
async fn malformed_request_is_400_and_the_gateway_keeps_serving() {
    let h = start("").await;
    let response = h
        .raw(
            subscriber_ip(),
            b"GET http://x/ HTTP/1.1\r\nBad Header\r\n\r\n",
        )
        .await;
    assert_eq!(response.status, 400);
    let response = h.get(subscriber_ip(), &h.website_url(), &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(only(&h.website).method, "GET");
}

#[tokio::test]
async fn http_1_0_requests_are_forwarded() {
    let h = start("").await;
    let request = format!("GET {} HTTP/1.0\r\n\r\n", h.website_url());
    let response = h.raw(subscriber_ip(), request.as_bytes()).await;
    assert_eq!(response.status, 200);
    assert_eq!(only(&h.website).version, "HTTP/1.1");
}

#[tokio::test]
async fn keep_alive_on_both_sides() {
    let h = start("").await;
    let mut client = TcpStream::connect(h.proxy).await.unwrap();
    let url = h.website_url();
    for _ in 0..3 {
        let request = format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        read_one_response(&mut client).await;
    }
    let received = h.website.take();
    assert_eq!(received.len(), 3, "three requests on one client connection");
    assert!(
        received.iter().all(|r| r.peer == received[0].peer),
        "the upstream connection was reused: {:?}",
        received.iter().map(|r| r.peer).collect::<Vec<_>>()
    );
}

/// Reads one response with a Content-Length body from a keep-alive connection.
async fn read_one_response(client: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            client.read(&mut byte).await.unwrap(),
            1,
            "connection closed early"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("content-length");
    let mut body = vec![0u8; length];
    client.read_exact(&mut body).await.unwrap();
    body
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let h = start("").await;
    // Upload: 100 MB chunked request body.
    let mut client = TcpStream::connect(h.proxy).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        h.website_url()
    );
    client.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'a'; 1024 * 1024];
    let chunk_head = format!("{:x}\r\n", chunk.len());
    for _ in 0..(SIZE / chunk.len() as u64) {
        client.write_all(chunk_head.as_bytes()).await.unwrap();
        client.write_all(&chunk).await.unwrap();
        client.write_all(b"\r\n").await.unwrap();
    }
    client.write_all(b"0\r\n\r\n").await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), client.read_to_end(&mut response))
        .await
        .expect("upload finished in time")
        .unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200"));
    assert_eq!(only(&h.website).body_len, SIZE);

    // Download: 100 MB streamed response, read and counted without keeping it.
    let url = format!("{}bytes/{SIZE}", h.website_url());
    let mut client = TcpStream::connect(h.proxy).await.unwrap();
    let request = format!("GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let read_all = async {
        loop {
            let n = client.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read_all)
        .await
        .expect("download in time");
    // Chunked framing adds a little on top of the payload.
    assert!(
        total > SIZE && total < SIZE + SIZE / 100,
        "received {total} bytes"
    );
}

#[tokio::test]
async fn upstream_down_is_502_with_a_reason() {
    let h = start("").await;
    // Nothing listens on 127.0.0.7:1.
    let response = h.get(subscriber_ip(), "http://127.0.0.7:1/", &[]).await;
    assert_eq!(response.status, 502);
    assert!(String::from_utf8_lossy(&response.body).contains("cannot connect"));
    let response = h
        .get(subscriber_ip(), "http://no-such-host.invalid/", &[])
        .await;
    assert_eq!(response.status, 502);
}

#[tokio::test]
async fn request_to_the_gateway_itself_is_refused() {
    let h = start("").await;
    let port = h.proxy.port();
    // The listener's own address, and the spellings that reach it too: the wildcard (a
    // connection to 0.0.0.0 is a connection to this host) and the IPv4-mapped form.
    for url in [
        format!("http://{}/", h.proxy),
        format!("http://0.0.0.0:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::]:{port}/"),
    ] {
        let response = h.get(subscriber_ip(), &url, &[]).await;
        assert_eq!(response.status, 403, "{url}");
    }
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    let h = start("").await;
    let mut client = TcpStream::connect(h.proxy).await.unwrap();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        h.website_url()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        client.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    client.write_all(b"ping-through-tunnel").await.unwrap();
    let mut echoed = [0u8; 19];
    tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"ping-through-tunnel");
    let got = only(&h.website);
    assert_eq!(got.header("upgrade"), Some("websocket"));
}

/// RFC 9112 §6.3: with both `Transfer-Encoding` and `Content-Length`, the chunked framing is the
/// message's, and an intermediary that forwards it must drop `Content-Length` first. Kept, the
/// stale length made the upstream side cut the body at 5 bytes.
#[tokio::test]
async fn a_request_with_both_framings_is_forwarded_whole_and_chunked() {
    let h = start("").await;
    let body = "0123456789abcdefghij";
    for framing in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 5",
    ] {
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: x\r\n{framing}\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            h.website_url(),
            body.len()
        );
        let response = h.raw(subscriber_ip(), request.as_bytes()).await;
        assert_eq!(response.status, 200);
        let received = only(&h.website);
        assert_eq!(received.body_len, body.len() as u64);
        assert!(
            received.header_values("content-length").is_empty(),
            "{:?}",
            received.headers
        );
    }
}

#[tokio::test]
async fn a_response_with_both_framings_reaches_the_client_whole() {
    let h = start("").await;
    let body = "0123456789abcdefghij";
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let response = h.get_answered_by(&answer).await;
    assert_eq!(response.status, 200);
    assert_eq!(String::from_utf8_lossy(&response.body), body);
    assert!(
        response
            .headers
            .iter()
            .all(|(name, _)| name != "content-length"),
        "{:?}",
        response.headers
    );
}

/// Response-queue poisoning: an origin that writes a second, unasked-for response right after
/// the first must not have it delivered as the answer to the next request sent on that pooled
/// connection (another client's, perhaps a partner request carrying identity).
#[tokio::test]
async fn an_unasked_for_response_is_never_the_answer_to_the_next_request() {
    let h = start("").await;
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", origin.local_addr().unwrap());
    let serve = tokio::spawn(async move {
        let mut accepted = 0;
        loop {
            let Ok(Ok((mut stream, _))) =
                tokio::time::timeout(Duration::from_secs(5), origin.accept()).await
            else {
                return accepted;
            };
            accepted += 1;
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                let mut answered = 0;
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let answer: &[u8] = if answered == 0 {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
                        } else {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"
                        };
                        answered += 1;
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let first = h.get(subscriber_ip(), &url, &[]).await;
    assert_eq!(String::from_utf8_lossy(&first.body), "first");
    let second = h.get(subscriber_ip(), &url, &[]).await;
    // The connection that carried the extra bytes is not reused: the second request goes on a
    // new one and gets that connection's own first answer.
    assert_eq!(String::from_utf8_lossy(&second.body), "first");
    serve.abort();
}

/// RFC 9110 §4.2.4: userinfo is never sent on. The target's `someone@` decides nothing (the
/// policy matches the host) and must not reach the origin in `Host`.
#[tokio::test]
async fn userinfo_in_the_target_is_not_forwarded() {
    let h = start("").await;
    let url = h.website_url().replace("http://", "http://someone:secret@");
    let request = format!("GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let response = h.raw(subscriber_ip(), request.as_bytes()).await;
    assert_eq!(response.status, 200);
    let received = only(&h.website);
    assert_eq!(
        received.header_values("host"),
        [format!("news.example.test:{}", h.website.addr().port()).as_str()]
    );
    assert!(received.headers.iter().all(|(_, v)| !v.contains("secret")));
}

/// A `101` nobody asked for (RFC 9110 §15.2.2) is the origin's error: the client gets a 502,
/// not a switch to an unknown protocol.
#[tokio::test]
async fn an_unrequested_switch_of_protocols_is_502() {
    let h = start("").await;
    let response = h.get_answered_by("HTTP/1.1 101 Switching Protocols\r\nUpgrade: other\r\nConnection: upgrade\r\n\r\nraw bytes").await;
    assert_eq!(response.status, 502);
    assert!(!String::from_utf8_lossy(&response.body).contains("raw bytes"));
}

/// Only `chunked` is decoded; `Transfer-Encoding` is removed on the way through, so anything
/// else (`gzip, chunked`) would arrive de-chunked but still compressed, unlabelled. Refused in
/// both directions instead of corrupted.
#[tokio::test]
async fn a_transfer_coding_other_than_chunked_is_refused_not_corrupted() {
    let h = start("").await;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        h.website_url()
    );
    let response = h.raw(subscriber_ip(), request.as_bytes()).await;
    assert_eq!(response.status, 501);
    assert!(h.website.take().is_empty());

    let response = h.get_answered_by("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n").await;
    assert_eq!(response.status, 502);
}

/// A 101 turns the connection into a tunnel the gateway does not read. To a partner, an `h2c`
/// upgrade would let the client speak HTTP/2 straight to it, identity headers of its choosing
/// included, from the gateway's address: the request goes on as a plain one instead (still
/// enriched). WebSocket to a partner, and any upgrade elsewhere, still switch.
#[tokio::test]
async fn only_websocket_may_switch_protocols_with_a_partner() {
    let h = start("").await;
    let upgrade = |url: String, protocol: &str| {
        format!(
            "GET {url} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: {protocol}\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    let status_line = |head: &str| head.lines().next().unwrap_or_default().to_owned();
    let mut outcomes = Vec::new();
    for (url, protocol) in [
        (h.agecheck_url(), "h2c"),
        (h.agecheck_url(), "websocket"),
        (h.website_url(), "h2c"),
    ] {
        // From the bound subscriber, so that the partner request is enriched.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::new(subscriber_ip(), 0))
            .unwrap();
        let mut client = socket.connect(h.proxy).await.unwrap();
        client
            .write_all(upgrade(url, protocol).as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            client.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        outcomes.push(status_line(&String::from_utf8(head).unwrap()));
    }
    assert!(outcomes[0].starts_with("HTTP/1.1 200"), "{outcomes:?}");
    assert!(outcomes[1].starts_with("HTTP/1.1 101"), "{outcomes:?}");
    assert!(outcomes[2].starts_with("HTTP/1.1 101"), "{outcomes:?}");
    let partner = h.agecheck.take();
    assert_eq!(partner.len(), 2);
    assert_eq!(partner[0].header("upgrade"), None);
    assert_eq!(partner[0].header_values("x-age-verified"), ["true"]);
    assert_eq!(partner[1].header("upgrade"), Some("websocket"));
    assert_eq!(only(&h.website).header("upgrade"), Some("h2c"));
}

/// Issue 14, defect 5: `http://partner:8a/` was sent to the partner on port 80 with identity
/// (the port read as absent). A port that is not 1..=65535 in digits is a 400 and nothing is
/// sent anywhere; an empty port is the default (RFC 3986 §3.2.3).
#[tokio::test]
async fn an_unparsable_port_is_a_400_never_port_80() {
    let h = start("").await;
    for port in ["8a", "65616", "99999", "0", "+80", "-1", " 80"] {
        let url = format!("http://verify.agecheck.test:{port}/");
        let response = h.get(subscriber_ip(), &url, &[]).await;
        assert_eq!(response.status, 400, "port {port:?}");
    }
    assert!(
        h.agecheck.take().is_empty(),
        "the partner received a request"
    );
    assert!(h.disclosures().is_empty(), "a disclosure was recorded");
    let empty = h
        .get(subscriber_ip(), "http://news.example.test:/", &[])
        .await;
    assert_ne!(empty.status, 400, "an empty port is the default port");
}

/// Issue 14, defect 3: an origin answers a POST right after its head, while the client is still
/// sending the body. The connection must not go back to the pool then: the next subscriber's
/// request to that origin would wait behind this client's body (forever, if it never comes).
/// The next request is answered on a connection of its own, and the slow body still arrives
/// in full on the first.
#[tokio::test]
async fn an_early_answer_to_a_slow_post_never_stalls_the_next_request() {
    use std::sync::{Arc, Mutex};
    let h = start(r#"idle_timeout = "30s""#).await;
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", origin.local_addr().unwrap());
    // Per connection: everything it received. Answers each request head at once.
    type Received = Arc<Mutex<Vec<u8>>>;
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let recorded = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = origin.accept().await else {
                return;
            };
            let bytes = Arc::new(Mutex::new(Vec::new()));
            recorded.lock().unwrap().push(bytes.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut heads_answered = 0;
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let heads = {
                        let mut all = bytes.lock().unwrap();
                        all.extend_from_slice(&buf[..n]);
                        all.windows(4).filter(|w| w == b"\r\n\r\n").count()
                    };
                    while heads_answered < heads {
                        heads_answered += 1;
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });

    // The slow client: a 1000-byte body, of which only 10 bytes come now.
    let mut slow = TcpStream::connect(h.proxy).await.unwrap();
    let head = format!("POST {url} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&[b'a'; 10]).await.unwrap();
    let mut answer = [0u8; 12];
    slow.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");

    // Another subscriber, same origin: answered, on a connection of its own.
    let next = headwall_testkit::send_raw(
        h.proxy,
        Some(subscriber_ip()),
        &headwall_testkit::proxy_get(&url, &[]),
        Duration::from_secs(10),
    )
    .await
    .expect("the next request was answered");
    assert_eq!(next.status, 200);
    assert_eq!(next.body, b"hello");
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the next request needs its own connection"
    );

    // The slow body completes, all of it on the first connection.
    slow.write_all(&[b'b'; 990]).await.unwrap();
    let first = seen.lock().unwrap()[0].clone();
    let complete = headwall_testkit::eventually(Duration::from_secs(5), || {
        let bytes = first.lock().unwrap();
        bytes.ends_with(&[b'b'; 990]) && bytes.windows(10).any(|w| w == [b'a'; 10])
    })
    .await;
    assert!(complete, "the slow body did not reach the origin whole");
}

/// Issue 14: a malformed chunked request body is the client's fault — 400 and `bad_request`,
/// not `502 upstream closed the connection` counted against the origin.
#[tokio::test]
async fn a_malformed_chunked_body_is_the_clients_400() {
    let h = start("").await;
    let url = h.website_url();
    let extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(20_000));
    let bodies = [
        "ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", // size overflow
        "5\nhello\r\n0\r\n\r\n",                      // bare LF after the size
        "3\r\nhello\r\n0\r\n\r\n",                    // data past its size
        extension.as_str(),                           // a 20 kB chunk extension
    ];
    for body in bodies {
        let request = format!(
            "POST {url} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}"
        );
        let response = h.raw(subscriber_ip(), request.as_bytes()).await;
        assert_eq!(
            response.status,
            400,
            "body {:?}",
            &body[..body.len().min(24)]
        );
    }
    let metrics = h.gateway.metrics();
    let explicit = headwall_proxy::Listener::Explicit;
    assert_eq!(
        metrics.requests(explicit, headwall_proxy::Outcome::BadRequest),
        4
    );
    assert_eq!(
        metrics.requests(explicit, headwall_proxy::Outcome::UpstreamError),
        0
    );
}

/// Issue 14: a WebSocket upgrade to a partner opened a raw tunnel whenever the partner said
/// 101. Now the request must be a real opening handshake (version 13, a 16-byte key), or it
/// goes on as a plain request; and the 101 must carry the key's `Sec-WebSocket-Accept`, or it
/// is a 502 and no tunnel opens.
#[tokio::test]
async fn a_partner_switches_to_websocket_only_with_a_valid_handshake() {
    let h = start("").await;
    // A partner address on one of agecheck's ports that answers 101 as told.
    let port = h.website.addr().port();
    let partner = tokio::net::TcpListener::bind(("127.0.0.2", port))
        .await
        .unwrap();
    let url = format!("http://verify.agecheck.test:{port}/");
    let handshake = |key_lines: &str| {
        format!(
            "GET {url} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\n\
             Upgrade: websocket\r\n{key_lines}\r\n"
        )
    };
    let valid_key = "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let accepts = ["", "Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBhbnN3ZXI=\r\n"];
    let serve = tokio::spawn(async move {
        for accept in accepts {
            let (mut stream, _) = partner.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\
                 Upgrade: websocket\r\n{accept}\r\n"
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
            // Held open a moment: a tunnel would be usable now.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    for accept in accepts {
        let response = h
            .raw(subscriber_ip(), handshake(valid_key).as_bytes())
            .await;
        assert_eq!(
            response.status, 502,
            "101 with accept {accept:?} was let through"
        );
    }
    serve.await.unwrap();

    // A handshake without version 13 and a key is no WebSocket handshake: sent on plain.
    let response = h
        .get(
            subscriber_ip(),
            &h.agecheck_url(),
            &[("Connection", "Upgrade"), ("Upgrade", "websocket")],
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(only(&h.agecheck).header("upgrade"), None);
}

/// An origin that closes a keep-alive connection soon after answering (its own idle timeout):
/// the pooled connection is found closed before it is used, so the next request — a POST, which
/// cannot be sent twice — goes on a new connection and is answered, never a 502.
#[tokio::test]
async fn an_origin_closing_its_idle_connection_costs_no_request() {
    let h = start(r#"idle_timeout = "30s""#).await;
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", origin.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = origin.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                // One request (head and, for a POST, its 4-byte body), one keep-alive answer,
                // then the origin closes 20 ms later without saying so in the answer.
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let body = if seen.starts_with(b"POST") { 4 } else { 0 };
                    if seen.len() >= end + 4 + body {
                        break;
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
        }
    });
    let first = h.get(subscriber_ip(), &url, &[]).await;
    assert_eq!(
        (first.status, first.body.as_slice()),
        (200, b"ok".as_slice())
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let post = format!(
        "POST {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbody"
    );
    let second = h.raw(subscriber_ip(), post.as_bytes()).await;
    assert_eq!(
        (second.status, second.body.as_slice()),
        (200, b"ok".as_slice())
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// A client that sends its head and takes its time with the body: the origin hears of the
/// request at once (it may answer early, or start reading), and the body follows when it comes.
#[tokio::test]
async fn the_origin_gets_the_head_before_a_slow_body() {
    let h = start("").await;
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", origin.local_addr().unwrap());
    let (head_seen, got_head) = tokio::sync::oneshot::channel();
    let served = tokio::spawn(async move {
        let (mut stream, _) = origin.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let mut head_seen = Some(head_seen);
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the body");
            seen.extend_from_slice(&buf[..n]);
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                if let Some(tx) = head_seen.take() {
                    let _ = tx.send(());
                }
                if seen.len() >= end + 4 + 4 {
                    break;
                }
            }
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await
            .unwrap();
        seen
    });
    let mut client = TcpStream::connect(h.proxy).await.unwrap();
    let head = format!("POST {url} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n");
    client.write_all(head.as_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), got_head)
        .await
        .expect("the head reached the origin before any body byte was sent")
        .unwrap();
    client.write_all(b"body").await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .unwrap()
        .unwrap();
    assert!(
        seen.ends_with(b"\r\n\r\nbody"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    assert_eq!(read_one_response(&mut client).await, b"ok");
}

/// Requests with an empty body (`Content-Length: 0`, as many POSTs are) keep the client's
/// connection alive like any other.
#[tokio::test]
async fn empty_bodies_keep_the_connection_alive() {
    let h = start("").await;
    let mut client = TcpStream::connect(h.proxy).await.unwrap();
    let url = h.website_url();
    for _ in 0..3 {
        let request = format!("POST {url} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        read_one_response(&mut client).await;
    }
    let received = h.website.take();
    assert_eq!(received.len(), 3, "three requests on one client connection");
}
