//! `radius_decode`: the RFC 2866 Accounting-Request codec of `headwall-radius`.
//!
//! Input: one mode byte, then the datagram. Mode bit 1 first sets Code = 4 (Accounting-Request)
//! and Length = the datagram's length (so the structure checks pass more often); mode bit 0
//! then recomputes the Request Authenticator with [`SECRET`] (RFC 2866 §3: MD5(Code +
//! Identifier + Length + 16 zero octets + Attributes + Secret)), so the attribute parser is
//! reached. Mode 0 decodes the bytes as they are.
//!
//! Checked: no panic; a packet that decodes fails authentication under any other secret, and
//! with its identifier or authenticator changed; a decoded request re-encodes
//! (`encode_accounting_request`) to a packet that decodes to the same request (the round trip
//! the codec's proptest `encode_decode_round_trip` holds), and re-encoding is deterministic;
//! the Accounting-Response to it is valid; its `Debug` never shows Calling-Station-Id or IMSI
//! in full.

use headwall_radius::{
    AccountingRequest, DecodeError, decode_accounting_request, encode_accounting_request,
    encode_accounting_response, response_is_valid,
};
use md5::{Digest, Md5};

/// The shared secret every fuzzed datagram is decoded with.
pub const SECRET: &[u8] = b"testing123";

const HEADER_LEN: usize = 20;
const MAX_LEN: usize = 4096;

/// Mode bit: recompute the Request Authenticator.
pub const MODE_AUTHENTICATE: u8 = 1;
/// Mode bit: set Code = 4 and Length = the datagram length first.
pub const MODE_FRAME: u8 = 2;

/// The datagram the target decodes, from the fuzz input.
pub fn prepare(data: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut datagram = rest.to_vec();
    if mode & MODE_FRAME != 0 && datagram.len() >= HEADER_LEN {
        datagram[0] = 4;
        let length = datagram.len().min(MAX_LEN) as u16;
        datagram[2..4].copy_from_slice(&length.to_be_bytes());
    }
    if mode & MODE_AUTHENTICATE != 0 {
        authenticate(&mut datagram, SECRET);
    }
    datagram
}

/// Writes the Request Authenticator for the packet's own Length field (octets past it are
/// padding); leaves datagrams whose Length is out of range alone.
pub fn authenticate(datagram: &mut [u8], secret: &[u8]) {
    if datagram.len() < HEADER_LEN {
        return;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if !(HEADER_LEN..=MAX_LEN.min(datagram.len())).contains(&length) {
        return;
    }
    let mut md5 = Md5::new();
    md5.update(&datagram[..4]);
    md5.update([0u8; 16]);
    md5.update(&datagram[HEADER_LEN..length]);
    md5.update(secret);
    let digest: [u8; 16] = md5.finalize().into();
    datagram[4..HEADER_LEN].copy_from_slice(&digest);
}

pub fn check(data: &[u8]) {
    let datagram = prepare(data);
    let request = match decode_accounting_request(&datagram, SECRET) {
        Ok(request) => request,
        Err(error) => {
            assert!(!error.as_str().is_empty());
            let _ = error.to_string();
            return;
        }
    };

    // Authentication: the same bytes under another secret, or with the identifier or the
    // authenticator changed, never decode.
    assert_eq!(
        decode_accounting_request(&datagram, b"not the secret"),
        Err(DecodeError::BadAuthenticator),
        "a packet authenticated with {SECRET:?} also decodes under another secret"
    );
    for at in [1, 4, HEADER_LEN - 1] {
        let mut tampered = datagram.clone();
        tampered[at] ^= 0x01;
        assert_eq!(
            decode_accounting_request(&tampered, SECRET),
            Err(DecodeError::BadAuthenticator),
            "flipping octet {at} still decodes"
        );
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if length > HEADER_LEN {
        let mut tampered = datagram.clone();
        tampered[length - 1] ^= 0x80;
        assert!(
            decode_accounting_request(&tampered, SECRET).is_err(),
            "flipping the last attribute octet still decodes"
        );
    }

    // Round trip through the encoder.
    let encoded = encode_accounting_request(&request, SECRET);
    let again = decode_accounting_request(&encoded, SECRET)
        .unwrap_or_else(|e| panic!("re-encoded {request:?} does not decode: {e}"));
    assert_eq!(
        again.authenticator[..],
        encoded[4..HEADER_LEN],
        "decoded authenticator is not the packet's"
    );
    let mut normalized = again.clone();
    normalized.authenticator = request.authenticator;
    assert_eq!(
        normalized, request,
        "encode/decode round trip changed the request"
    );
    assert_eq!(
        encode_accounting_request(&again, SECRET),
        encoded,
        "re-encoding is not deterministic"
    );

    let response = encode_accounting_response(request.identifier, &request.authenticator, SECRET);
    assert!(response_is_valid(
        &response,
        request.identifier,
        &request.authenticator,
        SECRET
    ));
    assert!(!response_is_valid(
        &response,
        request.identifier.wrapping_add(1),
        &request.authenticator,
        SECRET
    ));

    debug_is_redacted(&request);
}

/// `Debug` shows the last 3 characters of Calling-Station-Id and IMSI, never the whole value
/// (unless the same text is inside another text field, or the value is its own redaction).
fn debug_is_redacted(request: &AccountingRequest) {
    let debug = format!("{request:?}");
    let redacted = [&request.calling_station_id, &request.imsi];
    let texts = [
        &request.calling_station_id,
        &request.imsi,
        &request.session_id,
        &request.nas_identifier,
    ];
    for (index, value) in redacted
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v.as_deref()?)))
    {
        let chars: Vec<char> = value.chars().collect();
        if chars.len() <= 3 {
            continue;
        }
        let tail: String = chars[chars.len() - 3..].iter().collect();
        let shown = format!("•••{tail}");
        let elsewhere = texts
            .iter()
            .enumerate()
            .any(|(i, t)| i != index && t.as_deref().is_some_and(|t| t.contains(value)));
        if value == shown || elsewhere {
            continue;
        }
        let quoted = format!("{value:?}");
        assert!(
            !debug.contains(&quoted),
            "Debug of a request shows {quoted} in full: {debug}"
        );
    }
}
