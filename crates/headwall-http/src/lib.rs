//! The data plane's HTTP/1.1 codec: request and response heads (on `httparse`), body framing,
//! chunked decoding and a head writer. Pure: no I/O, no async, no logging; every function
//! works on byte slices and can be driven one byte at a time.
//!
//! It is not a server or a client: a connection task in `headwall-proxy` reads into a buffer,
//! calls [`parse_request_head`] (`Ok(None)`: read more), then feeds the bytes after the head to
//! a [`BodyDecoder`] built from [`RequestHead::framing`], and writes what goes upstream with
//! [`write_request_head`] and [`write_chunk`]. Heads keep [`Span`]s (offsets) into that buffer
//! rather than copies: one allocation per head, for its field list.
//!
//! # Strictness, rule by rule
//!
//! Every way a request is refused is a [`HeadError`] or [`BodyError`] variant; a server
//! answers a refused request head with [`HeadError::status`] (400, 414, 431 or 501) and a
//! refused body with 400, and closes the connection. A proxy answers a refused upstream
//! response with 502.
//!
//! * **Line endings** (RFC 9112 §2.2). In a head a bare LF ends a line: a recipient MAY accept
//!   it, hyper (today's data plane) does, and the head we forward is re-written with CRLF, so
//!   nothing downstream sees the bare LF. A bare CR is refused everywhere ("MUST consider
//!   invalid"). Inside a chunked body every line must end in CRLF: a bare LF there is
//!   refused, since that is where parsers disagree about where a chunk ends. Empty lines
//!   before a request line are skipped (§2.2 SHOULD).
//! * **Request line** (§3): exactly one SP between method, target and version (the MAY of
//!   §3 for other whitespace is not taken); the method is a token, case-sensitive (RFC 9110
//!   §9.1); only `HTTP/1.0` and `HTTP/1.1` (§2.3, others 400).
//! * **Target** (§3.2): origin-form, absolute-form (`scheme://authority[path]`), authority-form
//!   only for CONNECT (`host:port`, digits), `*` only for OPTIONS; any other combination is
//!   400. Bytes outside US-ASCII and a `#` fragment are refused: no form contains them.
//!   Longer than [`Limits::max_target_bytes`]: 414 (RFC 9110 §15.5.15).
//! * **Fields** (§5): kept in arrival order with raw names and values (OWS trimmed, §5.1).
//!   Whitespace between name and colon: 400 (§5.1 MUST). Obsolete line folding: 400 in
//!   requests (§5.2 allows reject), and refused in responses too (§5.2 lets a proxy reject or
//!   replace; we reject, the data plane answers 502). Whitespace before the first field is
//!   folding too (§2.2). Names must be tokens (RFC 9110 §5.1); NUL, bare CR and other
//!   controls but HTAB in a value are refused (RFC 9110 §5.5); obs-text is allowed.
//! * **Limits**: a head past [`Limits::max_head_bytes`] or with more than
//!   [`Limits::max_fields`] fields is 431 (RFC 6585 §5).
//! * **Host** (§3.2): an HTTP/1.1 request without `Host`, any request with two, or a value
//!   that is not `uri-host [":" port]` by its bytes: 400.
//! * **Content-Length** (RFC 9110 §8.6, RFC 9112 §6.3 ¶5): `1*DIGIT` (no sign, space, hex),
//!   at most 2^64 − 1. Repeated fields and lists are accepted when every member is the same
//!   number (the ¶5 MAY, as hyper does; the data plane writes one length); differing members
//!   are 400.
//! * **Transfer-Encoding** (§6.1, §6.3 ¶3-4, §7.1): only `chunked`, once, last. Chunked more
//!   than once (in one field or several) is 400; a final coding other than chunked
//!   (`xchunked`, `"chunked"`, `chunked;q=1.0`, `chunked, gzip`, empty) is 400, since the
//!   length cannot be known; `gzip, chunked` is 501: framed, but a coding we do not decode,
//!   never forwarded de-chunked and still compressed. In HTTP/1.0: 400 (§6.1 "faulty
//!   framing"). With Content-Length as well, chunked wins (§6.3 ¶3), as today's data plane
//!   does: the request is read as chunked, [`RequestHead::length_overridden`] says the length
//!   must not be forwarded, and [`RequestHead::keep_alive`] is false (the §6.3 ¶3 MUST close).
//!   Responses follow the same rules, except that a coding we do not decode is refused rather
//!   than read to the close (§6.3 ¶4 allows the latter; the data plane answers 502).
//! * **Response framing** (§6.3 ¶1-2, ¶8): no body after HEAD, 1xx, 204, 304 or a 2xx to
//!   CONNECT, whatever the fields say; otherwise chunked, a length, or to the close.
//! * **Chunked bodies** (§7.1): size `1*HEXDIG` with an overflow check (past 2^64 − 1: 400);
//!   extensions (`;…`, after optional BWS) are skipped, not checked against the grammar,
//!   but no control bytes and at most [`BodyLimits::max_chunk_line`]; chunk data must be
//!   followed by CRLF; trailer lines are checked to be `token ":" value` and dropped (never
//!   forwarded: RFC 9110 §6.5), at most [`BodyLimits::max_trailer_bytes`].
//!
//! Where llhttp (Node.js) and hyper decide otherwise on the smuggling corpus
//! (`crates/headwall-proxy/tests/corpus/framing.toml`), `tests/it/llhttp.rs` and
//! `tests/it/hyper_server.rs` list each case with the rule we follow.

mod body;
mod common;
mod error;
mod request;
mod response;
mod write;

pub use body::{
    BodyDecoder, BodyLimits, ChunkedDecoder, Decoded, LengthDecoder, write_chunk, write_last_chunk,
};
pub use common::{ConnectionOptions, Field, FieldKind, Framing, Limits, Span, Version, is_token};
pub use error::{BodyError, HeadError, WriteError};
pub use request::{Method, RequestHead, Target, parse_request_head, parse_request_head_with};
pub use response::{ResponseHead, parse_response_head, parse_response_head_with};
pub use write::{write_request_head, write_response_head};
