//! Differential against hyper's HTTP/1 server (what the data plane runs on today): every
//! corpus case's request bytes into `hyper::server::conn::http1` over an in-memory pipe,
//! recording what its service saw — request line, framing (from the fields hyper let
//! through), decoded body — and whether hyper refused (an error status of its own, a body
//! error, a parse error). Compared with the codec as the llhttp test does; each disagreement
//! is listed with the rule we follow.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use headwall_http::{Method, parse_response_head};

use crate::cases::{End, Message, Outcome, codec, corpus};

/// Case name, hyper's verdict (`accepts` or `refuses`), and why we decide otherwise.
const DISAGREEMENTS: &[(&str, &str, &str)] = &[
    (
        "te-chunked-chunked",
        "accepts",
        "RFC 9112 §7.1: a sender MUST NOT apply chunked more than once; hyper frames by the \
         final chunked and decodes once, and the data plane refuses above it \
         (headwall-proxy strip::transfer_codings). The codec refuses it itself (400)",
    ),
    (
        "te-chunked-in-two-fields",
        "accepts",
        "RFC 9112 §7.1, RFC 9110 §5.3: two fields are one list, chunked twice; as \
         te-chunked-chunked (400)",
    ),
    (
        "te-gzip-chunked",
        "accepts",
        "RFC 9112 §6.1: a coding we do not decode is 501; hyper de-chunks and passes the gzip \
         bytes up, and the data plane refuses above it (strip::transfer_codings). The codec \
         refuses it itself",
    ),
];

type Records = Arc<Mutex<Vec<Result<Message, String>>>>;

/// What hyper made of `bytes`: the requests its service got, and how the connection ended.
async fn hyper_outcome(bytes: &[u8]) -> (Outcome, String) {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let records: Records = Arc::default();
    let record = records.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let record = record.clone();
        async move {
            let headers = request.headers();
            let framing = if headers.contains_key(header::TRANSFER_ENCODING) {
                "chunked"
            } else if headers.contains_key(header::CONTENT_LENGTH) {
                "length"
            } else {
                "none"
            };
            let target = request
                .uri()
                .path_and_query()
                .map_or("/", |path| path.as_str())
                .to_owned();
            let line = format!("{} {target}", request.method());
            let body = request.into_body().collect().await;
            record.lock().unwrap().push(match body {
                Ok(body) => Ok(Message {
                    line,
                    framing: framing.to_owned(),
                    body: body.to_bytes().to_vec(),
                }),
                Err(error) => Err(error.to_string()),
            });
            Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
        }
    });
    let connection = tokio::spawn(async move {
        // The client closes its side after writing; half-close lets hyper still answer
        // everything it read (without it, the read EOF ends the connection at once).
        hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .serve_connection(TokioIo::new(server), service)
            .await
    });
    // A refused request may leave the rest unread: a failed write is part of the verdict.
    let _ = client.write_all(bytes).await;
    let _ = client.shutdown().await;
    let mut answers = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answers)).await;
    let served = tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("hyper's connection did not end")
        .expect("hyper's connection task panicked");

    let statuses = statuses(&answers);
    let records = records.lock().unwrap().clone();
    let messages: Vec<Message> = records.iter().filter_map(|r| r.clone().ok()).collect();
    let body_error = records.iter().find_map(|r| r.clone().err());
    let end = if body_error.is_some() || statuses.iter().any(|&status| status >= 400) {
        End::Refused(0)
    } else {
        match &served {
            Ok(()) => End::Clean,
            Err(error) if error.is_incomplete_message() => End::Incomplete,
            Err(_) => End::Refused(0),
        }
    };
    let label = format!(
        "statuses {statuses:?}, body error {body_error:?}, connection {:?}",
        served.err().map(|error| error.to_string())
    );
    (Outcome { messages, end }, label)
}

/// The statuses of the responses in `bytes` (hyper's own, or our service's 200s).
fn statuses(mut bytes: &[u8]) -> Vec<u16> {
    let mut statuses = Vec::new();
    while let Ok(Some((head, used))) = parse_response_head(bytes, Method::Get) {
        statuses.push(head.status());
        // Our service's answers and hyper's error answers carry no body, or a short one.
        let length = head
            .field_bytes(bytes)
            .find(|(name, _)| name.eq_ignore_ascii_case(b"content-length"))
            .and_then(|(_, value)| std::str::from_utf8(value).ok()?.parse::<usize>().ok())
            .unwrap_or(0);
        bytes = bytes.get(used + length..).unwrap_or_default();
    }
    statuses
}

fn normalized(mut outcome: Outcome) -> Outcome {
    if let End::Refused(_) = outcome.end {
        outcome.end = End::Refused(0);
    }
    outcome
}

#[tokio::test]
async fn hyper_agrees_with_the_codec_except_where_listed() {
    let cases = corpus();
    let mut failures = Vec::new();
    for case in &cases {
        let request = case.request();
        let (ours, reason) = codec(&request);
        let (theirs, label) = hyper_outcome(&request).await;
        let verdict = if theirs.end == End::Refused(0) {
            "refuses"
        } else {
            "accepts"
        };
        let agree = normalized(ours.clone()) == theirs;
        let listed = DISAGREEMENTS.iter().find(|(name, _, _)| *name == case.name);
        match (agree, listed) {
            (true, None) => {}
            (false, Some((_, expected, _))) if *expected == verdict => {}
            (false, Some((_, expected, _))) => failures.push(format!(
                "case {}: listed with hyper verdict {expected}, hyper now {verdict}s ({label})",
                case.name
            )),
            (true, Some(_)) => failures.push(format!(
                "case {}: listed as a disagreement, but hyper and the codec now agree; remove it",
                case.name
            )),
            (false, None) => failures.push(format!(
                "case {} ({}): unexplained disagreement\n  codec: {ours:?} (reason {reason:?})\n  \
                 hyper: {theirs:?} ({label})",
                case.name, case.rfc
            )),
        }
    }
    for (name, _, _) in DISAGREEMENTS {
        if !cases.iter().any(|case| case.name == *name) {
            failures.push(format!(
                "DISAGREEMENTS names {name}, which is not a corpus case"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn the_harness_sees_hyper_refuse_and_decode() {
    let (outcome, _) = hyper_outcome(
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(outcome.end, End::Clean);
    assert_eq!(outcome.messages[0].body, b"hello");
    let (outcome, label) = hyper_outcome(b"GET /a HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n").await;
    assert_eq!(outcome.end, End::Refused(0), "{label}");
    let (outcome, label) =
        hyper_outcome(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            .await;
    assert_eq!(outcome.end, End::Refused(0), "{label}");
}
