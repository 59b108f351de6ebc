//! The framing corpus of the data plane (`crates/headwall-proxy/tests/corpus/framing.toml`),
//! read as data, and the codec driven over a case's request bytes the way a connection will
//! drive it: head, body, next head, from one buffer.

use headwall_http::{BodyDecoder, Framing, RequestHead, Target, parse_request_head};
use serde::Deserialize;

const CORPUS: &str = include_str!("../../../headwall-proxy/tests/corpus/framing.toml");

/// What the substituted `{origin}` becomes: a discard address, never connected to.
pub(crate) const ORIGIN: &str = "127.0.0.1:9";

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

/// One corpus case; only the fields the codec is judged by (the rest are the data plane's).
#[derive(Debug, Deserialize)]
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) rfc: String,
    request: String,
    client: Vec<u16>,
    #[serde(default)]
    forwarded: Vec<Forwarded>,
}

#[derive(Debug, Deserialize)]
struct Forwarded {
    line: String,
    framing: String,
    body: String,
}

impl Case {
    /// The raw request bytes.
    pub(crate) fn request(&self) -> Vec<u8> {
        self.request.replace("{origin}", ORIGIN).into_bytes()
    }

    /// What the case says the gateway does with its requests: the messages forwarded, then a
    /// refusal when the client got more answers than were forwarded and the last is an error.
    pub(crate) fn expected(&self) -> Outcome {
        let messages = self
            .forwarded
            .iter()
            .map(|forwarded| Message {
                line: forwarded.line.clone(),
                framing: forwarded.framing.clone(),
                body: forwarded.body.clone().into_bytes(),
            })
            .collect();
        let refused = match self.client.last() {
            Some(&status) if status >= 400 && self.client.len() > self.forwarded.len() => {
                End::Refused(status)
            }
            _ => End::Clean,
        };
        Outcome {
            messages,
            end: refused,
        }
    }
}

/// Every case of the corpus.
pub(crate) fn corpus() -> Vec<Case> {
    let corpus: Corpus = toml::from_str(CORPUS).expect("framing.toml parses");
    assert!(
        corpus.case.len() >= 47,
        "the corpus lost cases: {}",
        corpus.case.len()
    );
    corpus.case
}

/// One request as a peer would forward it: `METHOD origin-form`, framing kind, decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) line: String,
    /// `none`, `length` or `chunked`.
    pub(crate) framing: String,
    pub(crate) body: Vec<u8>,
}

/// How the bytes of a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// Every byte belonged to a complete request.
    Clean,
    /// Refused with this status (and the codec's reason, when it is ours).
    Refused(u16),
    /// The bytes stopped inside a request.
    Incomplete,
}

/// What a parser made of a case's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) messages: Vec<Message>,
    pub(crate) end: End,
}

/// Runs `bytes` through the codec: heads and bodies one after another from one buffer, as
/// the connection task will. A refusal stops the connection.
pub(crate) fn codec(bytes: &[u8]) -> (Outcome, Option<&'static str>) {
    let mut messages = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let (head, used) = match parse_request_head(rest) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                return (
                    Outcome {
                        messages,
                        end: End::Incomplete,
                    },
                    None,
                );
            }
            Err(error) => {
                let end = End::Refused(error.status());
                return (Outcome { messages, end }, Some(error.as_str()));
            }
        };
        let line = line(&head, rest);
        at += used;
        let mut decoder = BodyDecoder::new(head.framing());
        let mut body = Vec::new();
        while !decoder.is_done() {
            match decoder.decode(&bytes[at..]) {
                Ok(decoded) => {
                    body.extend_from_slice(decoded.data);
                    at += decoded.consumed;
                    if decoded.consumed == 0 && !decoded.done {
                        return (
                            Outcome {
                                messages,
                                end: End::Incomplete,
                            },
                            None,
                        );
                    }
                }
                Err(error) => {
                    return (
                        Outcome {
                            messages,
                            end: End::Refused(400),
                        },
                        Some(error.as_str()),
                    );
                }
            }
        }
        let framing = match head.framing() {
            Framing::None => "none",
            Framing::Length(_) => "length",
            Framing::Chunked => "chunked",
            Framing::CloseDelimited => "close-delimited",
        };
        messages.push(Message {
            line,
            framing: framing.to_owned(),
            body,
        });
    }
    (
        Outcome {
            messages,
            end: End::Clean,
        },
        None,
    )
}

/// `METHOD origin-form-target`, as the origin sees the forwarded request.
fn line(head: &RequestHead, buf: &[u8]) -> String {
    let target = match head.target() {
        Target::Absolute { path, .. } if path.is_empty() => &b"/"[..],
        Target::Absolute { path, .. } => path.of(buf),
        _ => head.target_bytes(buf),
    };
    format!(
        "{} {}",
        String::from_utf8_lossy(head.method_bytes(buf)),
        String::from_utf8_lossy(target)
    )
}
