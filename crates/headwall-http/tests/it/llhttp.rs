//! Differential against llhttp (Node.js's HTTP parser, strict): every corpus case's request
//! bytes through `tests/llhttp-framing.js`, compared with the codec's decision — refused or
//! not, and for each request its line, framing kind and decoded body. Each disagreement is in
//! [`DISAGREEMENTS`] with the rule we follow and llhttp's verdict; an unlisted disagreement
//! fails, and so does a listed case where the two now agree (the table must stay true).

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::cases::{End, Message, Outcome, codec, corpus};

/// Case name, llhttp's verdict (its error code, or `accepts`), and why we decide otherwise.
const DISAGREEMENTS: &[(&str, &str, &str)] = &[
    (
        "cl-short-rest-is-the-next-request",
        "HPE_INVALID_METHOD",
        "RFC 9110 §9.1: a method is any token (`loGET`), extensible; llhttp knows a fixed \
         list. We parse it as the next request, and it is as harmless as any: the smuggled \
         bytes are a request of their own, answered on their own, never inside the first",
    ),
    (
        "cl-then-te",
        "HPE_INVALID_TRANSFER_ENCODING",
        "RFC 9112 §6.3 ¶3: a server MAY reject both fields or read by Transfer-Encoding alone; \
         we read chunked (as today's hyper data plane does), drop the length and close after \
         the response (`RequestHead::length_overridden`, `keep_alive`). llhttp rejects",
    ),
    (
        "te-then-cl",
        "HPE_INVALID_CONTENT_LENGTH",
        "RFC 9112 §6.3 ¶3, as cl-then-te, in the other order",
    ),
    (
        "te-in-http10",
        "accepts",
        "RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message MUST be treated as faulty \
         framing; we refuse it (400). llhttp reads it as chunked",
    ),
    (
        "bare-lf-head",
        "HPE_INVALID_VERSION",
        "RFC 9112 §2.2: a recipient MAY accept a bare LF as a line terminator in the head; we \
         do (hyper does; the head is re-written with CRLF before it goes on). llhttp strict \
         requires CRLF",
    ),
    (
        "te-gzip-chunked",
        "accepts",
        "RFC 9112 §6.1: a server that receives a transfer coding it does not understand SHOULD \
         answer 501; we decode only chunked and refuse rather than forward a body de-chunked \
         but still compressed. llhttp frames by the final chunked and passes the gzip bytes up",
    ),
];

/// What the script prints per case.
#[derive(Debug, Deserialize)]
struct Verdict {
    messages: Vec<LlhttpMessage>,
    error: Option<String>,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LlhttpMessage {
    method: Option<String>,
    url: String,
    framing: String,
    body: String,
}

impl Verdict {
    /// The verdict in the codec's terms (any refusal, whatever its status).
    fn outcome(&self) -> Outcome {
        let messages = self
            .messages
            .iter()
            .map(|message| Message {
                line: format!(
                    "{} {}",
                    message.method.as_deref().unwrap_or("?"),
                    origin_form(&message.url)
                ),
                framing: message.framing.clone(),
                body: STANDARD.decode(&message.body).unwrap_or_default(),
            })
            .collect();
        let end = match self.error.as_deref() {
            None => End::Clean,
            Some("HPE_INVALID_EOF_STATE") => End::Incomplete,
            Some(_) => End::Refused(0),
        };
        Outcome { messages, end }
    }

    fn label(&self) -> &str {
        self.error.as_deref().unwrap_or("accepts")
    }
}

/// `http://host/path` as `/path` (what a proxy forwards); other targets as they are.
fn origin_form(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => rest[at..].to_owned(),
            Some(at) => format!("/{}", &rest[at..]),
            None => "/".to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Refusals compare as refusals: llhttp has no status codes.
fn normalized(mut outcome: Outcome) -> Outcome {
    if let End::Refused(_) = outcome.end {
        outcome.end = End::Refused(0);
    }
    outcome
}

fn llhttp(requests: &[Vec<u8>]) -> Vec<Verdict> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/llhttp-framing.js");
    let mut child = match Command::new("node")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => panic!(
            "cannot run `node` ({error}): the llhttp differential needs Node.js \
             (Debian package nodejs; scripts/test installs it)"
        ),
    };
    let mut input = String::new();
    for request in requests {
        input.push_str(&STANDARD.encode(request));
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "llhttp-framing.js failed: {:?}",
        output.status
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let verdicts: Vec<Verdict> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(verdicts.len(), requests.len(), "one verdict per case");
    verdicts
}

#[test]
fn llhttp_agrees_with_the_codec_except_where_listed() {
    let cases = corpus();
    let requests: Vec<Vec<u8>> = cases.iter().map(|case| case.request()).collect();
    let verdicts = llhttp(&requests);
    let mut failures = Vec::new();
    for ((case, request), verdict) in cases.iter().zip(&requests).zip(&verdicts) {
        let (ours, reason) = codec(request);
        let agree = normalized(ours.clone()) == verdict.outcome();
        let listed = DISAGREEMENTS.iter().find(|(name, _, _)| *name == case.name);
        match (agree, listed) {
            (true, None) => {}
            (false, Some((_, llhttp_verdict, _))) if *llhttp_verdict == verdict.label() => {}
            (false, Some((_, llhttp_verdict, _))) => failures.push(format!(
                "case {}: listed with llhttp verdict {llhttp_verdict}, llhttp now says {} ({:?})",
                case.name,
                verdict.label(),
                verdict.reason
            )),
            (true, Some(_)) => failures.push(format!(
                "case {}: listed as a disagreement, but llhttp and the codec now agree; remove it",
                case.name
            )),
            (false, None) => failures.push(format!(
                "case {} ({}): unexplained disagreement\n  codec:  {ours:?} (reason {reason:?})\n  \
                 llhttp: {:?} ({} {:?})",
                case.name,
                case.rfc,
                verdict.outcome(),
                verdict.label(),
                verdict.reason
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

#[test]
fn the_script_reports_refusals_and_bodies() {
    // The differential is only as good as the script: it must see llhttp refuse and decode.
    let verdicts = llhttp(&[
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            .to_vec(),
        b"GET /a HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n".to_vec(),
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel".to_vec(),
    ]);
    let outcomes: Vec<Outcome> = verdicts.iter().map(Verdict::outcome).collect();
    assert_eq!(outcomes[0].messages[0].body, b"hello");
    assert_eq!(outcomes[0].messages[0].framing, "chunked");
    assert_eq!(outcomes[0].end, End::Clean);
    assert_eq!(outcomes[1].end, End::Refused(0));
    assert_eq!(outcomes[2].end, End::Incomplete);
}

#[test]
fn origin_form_of_absolute_urls() {
    assert_eq!(origin_form("http://127.0.0.1:9/a?b"), "/a?b");
    assert_eq!(origin_form("http://x"), "/");
    assert_eq!(origin_form("http://x?q"), "/?q");
    assert_eq!(origin_form("/a"), "/a");
}
