//! `http_head`: the HTTP/1.1 codec (`headwall_http`): request and response heads, framing,
//! the chunked decoder and the head writer.
//!
//! Input: the first byte picks the method a response answers (and seeds the chunk sizes and
//! split points below); the rest is read as a request head, as a response head and as a
//! chunked body. Checked: no panic; a head's spans lie inside the bytes it consumed; a parsed
//! head written back by `write_request_head`/`write_response_head` (which must accept it)
//! re-parses to the same head — method, target and its form, version, fields in order,
//! framing — consuming exactly the written bytes; framing is `Chunked` exactly when a
//! `Transfer-Encoding` field is present, `Length(n)` only without one and then every
//! `Content-Length` member is `n`, and a request is never close-delimited; the chunked
//! decoder fed the rest whole and fed it byte by byte gives the same data, the same verdict
//! and the same end; and the rest encoded as chunks of sizes drawn from the seed and decoded
//! with input cut at seeded points gives back the rest exactly, with nothing left over.

use headwall_http::{
    BodyDecoder, ChunkedDecoder, Field, FieldKind, Framing, Method, RequestHead, ResponseHead,
    parse_request_head, parse_response_head, write_chunk, write_last_chunk, write_request_head,
    write_response_head,
};

const METHODS: [Method; 4] = [Method::Get, Method::Head, Method::Connect, Method::Post];

pub fn check(data: &[u8]) {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    request_round_trip(rest);
    response_round_trip(rest, METHODS[usize::from(seed) % METHODS.len()]);
    chunked_in_any_pieces(rest);
    chunked_round_trip(rest, seed);
}

fn request_round_trip(bytes: &[u8]) {
    let Ok(Some((head, used))) = parse_request_head(bytes) else {
        return;
    };
    let buf = &bytes[..used];
    spans_inside(head.fields(), used);
    framing_is_unambiguous(&head.framing(), head.fields(), buf, false);
    let mut out = Vec::new();
    write_request_head(
        &mut out,
        head.method_bytes(buf),
        head.target_bytes(buf),
        head.version(),
        head.field_bytes(buf),
    )
    .expect("the writer refused a head the parser accepted");
    let (again, again_used) = match parse_request_head(&out) {
        Ok(Some(parsed)) => parsed,
        other => panic!("a written request head does not re-parse: {other:?}"),
    };
    assert_eq!(
        again_used,
        out.len(),
        "the written head re-parsed to another length"
    );
    same_request(&head, buf, &again, &out);
}

fn same_request(a: &RequestHead, a_buf: &[u8], b: &RequestHead, b_buf: &[u8]) {
    assert_eq!(a.method(), b.method());
    assert_eq!(a.method_bytes(a_buf), b.method_bytes(b_buf));
    assert_eq!(a.target_bytes(a_buf), b.target_bytes(b_buf));
    assert_eq!(
        std::mem::discriminant(&a.target()),
        std::mem::discriminant(&b.target())
    );
    assert_eq!(a.version(), b.version());
    assert!(
        a.field_bytes(a_buf).eq(b.field_bytes(b_buf)),
        "fields differ"
    );
    assert_eq!(a.framing(), b.framing());
    assert_eq!(a.keep_alive(), b.keep_alive());
    assert_eq!(a.expect_continue(), b.expect_continue());
}

fn response_round_trip(bytes: &[u8], method: Method) {
    let Ok(Some((head, used))) = parse_response_head(bytes, method) else {
        return;
    };
    let buf = &bytes[..used];
    spans_inside(head.fields(), used);
    if head.framing() != Framing::None {
        framing_is_unambiguous(&head.framing(), head.fields(), buf, true);
    }
    let mut out = Vec::new();
    write_response_head(
        &mut out,
        head.version(),
        head.status(),
        head.reason(buf),
        head.field_bytes(buf),
    )
    .expect("the writer refused a head the parser accepted");
    let (again, again_used) = match parse_response_head(&out, method) {
        Ok(Some(parsed)) => parsed,
        other => panic!("a written response head does not re-parse: {other:?}"),
    };
    assert_eq!(again_used, out.len());
    same_response(&head, buf, &again, &out);
}

fn same_response(a: &ResponseHead, a_buf: &[u8], b: &ResponseHead, b_buf: &[u8]) {
    assert_eq!(a.version(), b.version());
    assert_eq!(a.status(), b.status());
    assert_eq!(a.reason(a_buf), b.reason(b_buf));
    assert!(
        a.field_bytes(a_buf).eq(b.field_bytes(b_buf)),
        "fields differ"
    );
    assert_eq!(a.framing(), b.framing());
    assert_eq!(a.keep_alive(), b.keep_alive());
}

fn spans_inside(fields: &[Field], used: usize) {
    for field in fields {
        assert!(field.name.end() <= used && field.value.end() <= used);
        assert!(!field.name.is_empty(), "an empty field name");
    }
}

/// Chunked exactly with Transfer-Encoding; a length only without it, and equal to every
/// Content-Length member; never close-delimited for a request.
fn framing_is_unambiguous(framing: &Framing, fields: &[Field], buf: &[u8], response: bool) {
    let te = fields
        .iter()
        .any(|field| field.kind == FieldKind::TransferEncoding);
    match framing {
        Framing::Chunked => assert!(te, "chunked without Transfer-Encoding"),
        Framing::Length(n) => {
            assert!(!te, "a length with Transfer-Encoding present");
            for field in fields.iter().filter(|f| f.kind == FieldKind::ContentLength) {
                for member in field.value.of(buf).split(|&b| b == b',') {
                    let digits = member.trim_ascii();
                    let value = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| d.parse::<u64>().ok());
                    assert_eq!(
                        value,
                        Some(*n),
                        "Content-Length member {digits:?} is not {n}"
                    );
                }
            }
        }
        Framing::None => {
            assert!(!response, "checked only for responses that may have a body");
            assert!(!te, "no body with Transfer-Encoding present");
            assert!(
                !fields.iter().any(|f| f.kind == FieldKind::ContentLength),
                "no body with Content-Length present"
            );
        }
        Framing::CloseDelimited => {
            assert!(response, "a close-delimited request");
            assert!(!te && !fields.iter().any(|f| f.kind == FieldKind::ContentLength));
        }
    }
}

/// The decoder gives the same answer fed whole and byte by byte.
fn chunked_in_any_pieces(bytes: &[u8]) {
    let whole = drain(bytes, bytes.len().max(1));
    let bytewise = drain(bytes, 1);
    assert_eq!(
        whole, bytewise,
        "fed whole and byte by byte, the decoder disagrees"
    );
}

/// Data, error, and the bytes consumed, feeding `step` new bytes at a time.
fn drain(bytes: &[u8], step: usize) -> (Vec<u8>, Option<headwall_http::BodyError>, usize, bool) {
    let mut decoder = ChunkedDecoder::new();
    let mut data = Vec::new();
    let mut at = 0;
    let mut fed = 0;
    loop {
        fed = (fed + step).min(bytes.len());
        match decoder.decode(&bytes[at..fed]) {
            Ok(decoded) => {
                assert!(decoded.consumed <= fed - at);
                data.extend_from_slice(decoded.data);
                at += decoded.consumed;
                if decoded.done {
                    return (data, None, at, true);
                }
                if decoded.consumed == 0 && fed == bytes.len() {
                    return (data, None, at, false);
                }
            }
            // Where the error is found depends on the pieces; what came before it does not.
            Err(error) => return (data, Some(error), 0, false),
        }
    }
}

/// `bytes` as chunks, then decoded from pieces cut at seeded points: the same bytes.
fn chunked_round_trip(bytes: &[u8], seed: u8) {
    let mut random = SplitMix(u64::from(seed) ^ ((bytes.len() as u64) << 8));
    let mut encoded = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let size = 1 + (random.next() % 300) as usize;
        let end = (at + size).min(bytes.len());
        write_chunk(&mut encoded, &bytes[at..end]);
        at = end;
    }
    write_last_chunk(&mut encoded);
    let mut decoder = BodyDecoder::new(Framing::Chunked);
    let mut data = Vec::new();
    let mut at = 0;
    let mut fed = 0;
    while !decoder.is_done() {
        fed = (fed + 1 + (random.next() % 64) as usize).min(encoded.len());
        let decoded = decoder
            .decode(&encoded[at..fed])
            .expect("our own chunked encoding was refused");
        data.extend_from_slice(decoded.data);
        at += decoded.consumed;
        assert!(
            decoded.consumed > 0 || fed < encoded.len() || decoded.done,
            "stuck"
        );
    }
    assert_eq!(at, encoded.len(), "bytes left after the last chunk");
    assert_eq!(data, bytes, "chunked round trip changed the data");
}

/// SplitMix64: cheap, seeded, enough to pick sizes and cuts.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
