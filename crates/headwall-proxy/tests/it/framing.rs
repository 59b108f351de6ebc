//! The framing and smuggling corpus (`tests/corpus/framing.toml`): raw bytes through the real
//! explicit listener to a recording origin, asserting what the origin received — each request's
//! line, framing and decoded body, in order, and nothing else — and what the client got back.
//!
//! Every case names the RFC line it follows. The corpus is data so that the same cases can
//! drive the data plane's codec rewrite and a differential check against other parsers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{start, unbound_ip};

const CORPUS: &str = include_str!("../corpus/framing.toml");
const DEFAULT_ANSWER: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// The rule the expectation follows.
    rfc: String,
    /// What the client sends; `{origin}` is the recording origin's `IP:port`.
    request: String,
    /// The statuses the client receives, in order (every response on the connection).
    client: Vec<u16>,
    /// The bodies of those responses, when they matter.
    #[serde(default)]
    client_bodies: Option<Vec<String>>,
    /// What the origin receives, in order; empty: nothing at all.
    #[serde(default)]
    forwarded: Vec<Forwarded>,
    /// The origin's answer to every request (default: 200 with body `ok`).
    #[serde(default)]
    answer: Option<String>,
    /// The request is HEAD: its response has no body whatever its headers say.
    #[serde(default)]
    head: bool,
    /// A body that breaks mid-stream: the origin may have received the start of the request,
    /// never its end (recorded as one unparsable request, or nothing).
    #[serde(default)]
    origin_may_see_a_cut_request: bool,
}

#[derive(Debug, Deserialize, PartialEq, Eq, Clone)]
#[serde(deny_unknown_fields)]
struct Forwarded {
    /// Method and target as the origin sees them (`POST /a`).
    line: String,
    /// `length`, `chunked` or `none`.
    framing: String,
    /// The body after framing is removed.
    body: String,
}

/// What one origin connection received, parsed strictly; `Err` carries bytes it could not
/// read as HTTP/1.1 requests (which the test reports).
type Received = Arc<Mutex<Vec<Result<Forwarded, String>>>>;

/// A recording origin: reads requests strictly (its own small parser, RFC 9112 framing), records
/// each, answers each with `answer`, keeps the connection until the gateway closes it.
async fn recording_origin(answer: String) -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let record = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_origin(stream, answer.clone(), record.clone()));
        }
    });
    (addr, received)
}

async fn serve_origin(mut stream: TcpStream, answer: String, record: Received) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match parse_request(&pending) {
            Parsed::Complete(request, used) => {
                pending.drain(..used);
                record.lock().unwrap().push(Ok(request));
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                if answer.contains("\r\nConnection: close\r\n") {
                    return;
                }
                continue;
            }
            Parsed::Invalid => {
                record
                    .lock()
                    .unwrap()
                    .push(Err(String::from_utf8_lossy(&pending).into_owned()));
                return;
            }
            Parsed::Partial => {}
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => {
                if !pending.is_empty() {
                    record
                        .lock()
                        .unwrap()
                        .push(Err(String::from_utf8_lossy(&pending).into_owned()));
                }
                return;
            }
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

enum Parsed<T> {
    Complete(T, usize),
    Partial,
    Invalid,
}

fn parse_request(bytes: &[u8]) -> Parsed<Forwarded> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let head = match request.parse(bytes) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let line = format!(
        "{} {}",
        request.method.unwrap_or_default(),
        request.path.unwrap_or_default()
    );
    match body(request.headers, &bytes[head..]) {
        Parsed::Complete((framing, body), used) => Parsed::Complete(
            Forwarded {
                line,
                framing: framing.to_owned(),
                body,
            },
            head + used,
        ),
        Parsed::Partial => Parsed::Partial,
        Parsed::Invalid => Parsed::Invalid,
    }
}

/// Strict RFC 9112 §6 framing of a message body that follows its head: one `Content-Length`
/// of digits, or `Transfer-Encoding: chunked` alone (never both), else no body.
fn body(headers: &[httparse::Header<'_>], rest: &[u8]) -> Parsed<(&'static str, String)> {
    let values = |name: &str| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    };
    let lengths = values("content-length");
    let codings = values("transfer-encoding");
    match (lengths.as_slice(), codings.as_slice()) {
        ([], []) => Parsed::Complete(("none", String::new()), 0),
        ([length], []) => {
            let Some(length) = std::str::from_utf8(length)
                .ok()
                .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|text| text.parse::<usize>().ok())
            else {
                return Parsed::Invalid;
            };
            if rest.len() < length {
                return Parsed::Partial;
            }
            Parsed::Complete(
                (
                    "length",
                    String::from_utf8_lossy(&rest[..length]).into_owned(),
                ),
                length,
            )
        }
        ([], [coding]) if coding.eq_ignore_ascii_case(b"chunked") => match dechunk(rest) {
            Parsed::Complete(body, used) => Parsed::Complete(("chunked", body), used),
            Parsed::Partial => Parsed::Partial,
            Parsed::Invalid => Parsed::Invalid,
        },
        _ => Parsed::Invalid,
    }
}

/// Chunked body (RFC 9112 §7.1), strictly: hex sizes, CRLF everywhere, no trailers expected
/// but tolerated.
fn dechunk(bytes: &[u8]) -> Parsed<String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(end) = find_crlf(&bytes[at..]) else {
            return Parsed::Partial;
        };
        let line = &bytes[at..at + end];
        let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
        let Some(size) = std::str::from_utf8(size_text)
            .ok()
            .filter(|text| !text.is_empty() && text.len() <= 8)
            .and_then(|text| usize::from_str_radix(text, 16).ok())
        else {
            return Parsed::Invalid;
        };
        at += end + 2;
        if size == 0 {
            // Trailer section, then the final CRLF.
            loop {
                let Some(end) = find_crlf(&bytes[at..]) else {
                    return Parsed::Partial;
                };
                at += end + 2;
                if end == 0 {
                    return Parsed::Complete(String::from_utf8_lossy(&body).into_owned(), at);
                }
            }
        }
        if bytes.len() < at + size + 2 {
            return Parsed::Partial;
        }
        body.extend_from_slice(&bytes[at..at + size]);
        if &bytes[at + size..at + size + 2] != b"\r\n" {
            return Parsed::Invalid;
        }
        at += size + 2;
    }
}

fn has_framing(headers: &[httparse::Header<'_>]) -> bool {
    headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("content-length")
            || h.name.eq_ignore_ascii_case("transfer-encoding")
    })
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// Every response the client got on its connection: status and decoded body.
fn responses(mut bytes: &[u8], first_is_head: bool) -> Result<Vec<(u16, String)>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(bytes) {
            Ok(httparse::Status::Complete(head)) => head,
            _ => return Err(String::from_utf8_lossy(bytes).into_owned()),
        };
        let status = response.code.unwrap_or_default();
        let bodiless = (100..200).contains(&status)
            || status == 204
            || status == 304
            || (first_is_head && out.is_empty());
        let (text, used) = if bodiless {
            (String::new(), 0)
        } else {
            match body(response.headers, &bytes[head..]) {
                Parsed::Complete((_, body), used) => (body, used),
                // Cut off by the gateway mid-body (what it must do with a broken upstream).
                Parsed::Partial if has_framing(response.headers) => {
                    out.push((status, "<cut>".to_owned()));
                    return Ok(out);
                }
                // A response without framing runs to the close (RFC 9112 §6.3 ¶8).
                _ if !has_framing(response.headers) => (
                    String::from_utf8_lossy(&bytes[head..]).into_owned(),
                    bytes.len() - head,
                ),
                _ => return Err(String::from_utf8_lossy(bytes).into_owned()),
            }
        };
        out.push((status, text));
        bytes = &bytes[head + used..];
    }
    Ok(out)
}

#[tokio::test]
async fn framing_corpus() {
    let corpus: Corpus = toml::from_str(CORPUS).expect("tests/corpus/framing.toml");
    assert!(corpus.case.len() >= 30, "the corpus lost cases");
    let h = start("").await;
    let mut failures = Vec::new();
    for case in &corpus.case {
        let answer = case
            .answer
            .clone()
            .unwrap_or_else(|| DEFAULT_ANSWER.to_owned());
        let (origin, received) = recording_origin(answer).await;
        let request = case.request.replace("{origin}", &origin.to_string());
        let raw = exchange(h.proxy, request.as_bytes()).await;
        // Let the origin finish reading what the gateway sent after the last answer.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got: Vec<Result<Forwarded, String>> = received.lock().unwrap().clone();
        let client = responses(&raw, case.head);
        let statuses: Option<Vec<u16>> = client
            .as_ref()
            .ok()
            .map(|all| all.iter().map(|(status, _)| *status).collect());
        let bodies: Option<Vec<String>> = client
            .as_ref()
            .ok()
            .map(|all| all.iter().map(|(_, body)| body.clone()).collect());
        let cut_only = case.origin_may_see_a_cut_request
            && case.forwarded.is_empty()
            && matches!(got.as_slice(), [Err(_)]);
        let forwarded_ok = cut_only
            || got.len() == case.forwarded.len()
                && got
                    .iter()
                    .zip(&case.forwarded)
                    .all(|(got, want)| got.as_ref() == Ok(want));
        let client_ok = statuses.as_ref() == Some(&case.client)
            && case
                .client_bodies
                .as_ref()
                .is_none_or(|want| bodies.as_ref() == Some(want));
        if !(forwarded_ok && client_ok) {
            failures.push(format!(
                "case {} ({}):\n  client got {client:?}, expected {:?} {:?}\n  origin got {got:?}\n  expected {:?}",
                case.name, case.rfc, case.client, case.client_bodies, case.forwarded
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Sends `bytes` from an unbound client and reads until the gateway closes or 5 s pass (the
/// corpus ends every exchange with `Connection: close` or an error the gateway closes on).
async fn exchange(proxy: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(unbound_ip(), 0)).unwrap();
    let mut stream = socket.connect(proxy).await.unwrap();
    // A client that stops writing early (the gateway refused) is fine.
    let _ = stream.write_all(bytes).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await;
    raw
}
