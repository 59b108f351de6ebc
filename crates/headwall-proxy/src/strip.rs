//! Applies the strip set to a client request: hop-by-hop first, then identity headers.
//!
//! Order matters (docs/design.md, Stripping): `Connection` and the names it lists are consumed before
//! enrichment and never forwarded, so a client cannot make the gateway drop or keep a header it
//! inserts later. Identity names are removed on every request, partner or not, before any
//! decision is taken.

use headwall_policy::StripSet;
use http::{HeaderMap, HeaderName, HeaderValue, header};

/// What stripping removed from one request.
#[derive(Debug, Default)]
pub struct StripOutcome {
    /// Identity header values removed (spoof attempts, or stale insertions by another box).
    pub identity_removed: usize,
    /// The names of the identity headers removed (each once), for the `spoof_stripped` event.
    pub identity_names: Vec<HeaderName>,
    /// The `Upgrade` value when the client asked for a protocol upgrade (`Connection: upgrade`).
    pub upgrade: Option<HeaderValue>,
}

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1), plus the
/// `Proxy-*` names of the client-to-proxy hop. A `static`, not a `const`: a `const` array is
/// built and dropped again at every use (callgrind: ~280 instructions per proxied request).
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];
/// Bits of [`hop_by_hop_bit`] for the headers that need more than their own removal.
const CONNECTION_BIT: u8 = 1 << 0;
const TRANSFER_ENCODING_BIT: u8 = 1 << 3;
const UPGRADE_BIT: u8 = 1 << 4;
const PROXY_CONNECTION_BIT: u8 = 1 << 7;

/// Removes hop-by-hop headers (and every name `Connection` lists), then every header in `set`.
///
/// Hot path (every request): one pass over the names present decides what to do, so a request
/// without hop-by-hop or identity headers costs no map lookups at all.
pub fn strip_request(headers: &mut HeaderMap, set: &StripSet) -> StripOutcome {
    let mut outcome = StripOutcome::default();
    let mut hop = 0u8;
    let mut identity: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        hop |= hop_by_hop_bit(name);
        if set.contains(name.as_str()) {
            identity.push(name.clone());
        }
    }
    if hop != 0 {
        outcome.upgrade = remove_hop_by_hop(headers, hop, false);
    }
    for name in &identity {
        if let header::Entry::Occupied(entry) = headers.entry(name) {
            outcome.identity_removed += entry.remove_entry_mult().1.count();
        }
    }
    outcome.identity_names = identity;
    outcome
}

/// Removes hop-by-hop headers from an upstream response before it goes back to the client;
/// with `keep_upgrade` (a 101 answer to an upgrade) `Connection` and `Upgrade` stay.
pub fn strip_response(headers: &mut HeaderMap, keep_upgrade: bool) {
    let hop = headers
        .keys()
        .fold(0, |hop, name| hop | hop_by_hop_bit(name));
    if hop != 0 {
        remove_hop_by_hop(headers, hop, keep_upgrade);
    }
}

/// What the transfer codings of a message say about its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codings {
    /// None, or `chunked` once: the only framing hyper decodes.
    Fine,
    /// A coding other than `chunked` (`gzip, chunked` would arrive de-chunked but still
    /// compressed, and unlabelled, since `Transfer-Encoding` is removed on the way through).
    Unsupported,
    /// `chunked` more than once (RFC 9112 §7.1: a sender must not), in one field or several:
    /// hyper decodes it once, a recipient that decodes twice reads another message.
    Repeated,
}

/// The [`Codings`] of `headers`' `Transfer-Encoding` fields; empty list elements are ignored.
pub(crate) fn transfer_codings(headers: &HeaderMap) -> Codings {
    let mut chunked = 0;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Codings::Unsupported;
        };
        for coding in text.split(',').map(str::trim) {
            if coding.eq_ignore_ascii_case("chunked") {
                chunked += 1;
            } else if !coding.is_empty() {
                return Codings::Unsupported;
            }
        }
    }
    if chunked > 1 {
        Codings::Repeated
    } else {
        Codings::Fine
    }
}

/// Whether an `Upgrade` value asks for WebSocket and nothing else.
pub(crate) fn only_websocket(upgrade: &HeaderValue) -> bool {
    upgrade.to_str().is_ok_and(|text| {
        text.split(',')
            .all(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"))
    })
}

/// For a WebSocket opening handshake (RFC 6455 §4.1: `Sec-WebSocket-Version: 13` and a
/// `Sec-WebSocket-Key` of 16 base64 bytes), the `Sec-WebSocket-Accept` its 101 must carry
/// (§4.2.2: base64 of SHA-1 over the key and the protocol's GUID); `None` when the request is
/// not such a handshake.
pub(crate) fn websocket_accept(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut versions = headers.get_all("sec-websocket-version").iter();
    if versions.next()?.as_bytes() != b"13" || versions.next().is_some() {
        return None;
    }
    let mut keys = headers.get_all("sec-websocket-key").iter();
    let key = keys.next()?.to_str().ok()?;
    if keys.next().is_some() {
        return None;
    }
    HeaderValue::from_str(&headwall_policy::websocket_accept(key)?).ok()
}

/// The bit of `name` in [`HOP_BY_HOP`] (0 for any other name).
fn hop_by_hop_bit(name: &HeaderName) -> u8 {
    HOP_BY_HOP
        .iter()
        .position(|hop| hop == name)
        .map_or(0, |index| 1 << index)
}

/// Removes the hop-by-hop headers whose bits are set in `present`, and every name that
/// `Connection` or `Proxy-Connection` lists. Returns the `Upgrade` value when `Connection`
/// asked for an upgrade (taken before it is removed).
///
/// With `Transfer-Encoding` present, `Content-Length` goes too: the message was framed by its
/// transfer coding (hyper read it so), and an intermediary forwarding such a message must drop
/// the length first (RFC 9112 §6.3). Kept, it would frame the re-encoded body again: a response
/// with both reached the client cut to the stale length.
fn remove_hop_by_hop(
    headers: &mut HeaderMap,
    present: u8,
    keep_upgrade: bool,
) -> Option<HeaderValue> {
    let mut upgrade_requested = false;
    let mut listed: Vec<HeaderName> = Vec::new();
    if present & (CONNECTION_BIT | PROXY_CONNECTION_BIT) != 0 {
        let view: &HeaderMap = headers;
        connection_tokens(view, |token| {
            if token.eq_ignore_ascii_case("upgrade") {
                upgrade_requested = true;
            }
            // Only a listed name that is present has anything to remove: the usual options
            // (`keep-alive`, `close`) then cost a lookup, not a new name.
            if !view.contains_key(token) {
                return;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                // Hop-by-hop names go below, by their bits.
                if hop_by_hop_bit(&name) == 0 {
                    listed.push(name);
                }
            }
        });
    }
    let upgrade = if upgrade_requested && present & UPGRADE_BIT != 0 {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    for name in &listed {
        headers.remove(name);
    }
    if present & TRANSFER_ENCODING_BIT != 0 {
        headers.remove(header::CONTENT_LENGTH);
    }
    for (index, name) in HOP_BY_HOP.iter().enumerate() {
        let kept = keep_upgrade && (name == header::UPGRADE || name == header::CONNECTION);
        if present & (1 << index) != 0 && !kept {
            headers.remove(name);
        }
    }
    upgrade
}

/// Calls `visit` with each comma-separated token of `Connection` and `Proxy-Connection`.
fn connection_tokens(headers: &HeaderMap, mut visit: impl FnMut(&str)) {
    for name in [&HOP_BY_HOP[0], &HOP_BY_HOP[7]] {
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else { continue };
            for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                visit(token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn removes_identity_names_in_any_spelling() {
        let set = headwall_policy::Policy::empty();
        let mut map = headers(&[
            ("X-MSISDN", "447700900123"),
            ("x_msisdn", "447700900123"),
            ("X_Up_Calling_Line_Id", "447700900123"),
            ("accept", "*/*"),
        ]);
        let outcome = strip_request(&mut map, set.strip());
        assert_eq!(outcome.identity_removed, 3);
        assert_eq!(map.len(), 1);
        assert!(map.contains_key("accept"));
    }

    #[test]
    fn connection_listed_names_are_removed_and_upgrade_is_kept_aside() {
        let set = headwall_policy::Policy::empty();
        let mut map = headers(&[
            ("connection", "keep-alive, x-foo, Upgrade"),
            ("x-foo", "1"),
            ("upgrade", "websocket"),
            ("keep-alive", "timeout=5"),
            ("accept", "*/*"),
        ]);
        let outcome = strip_request(&mut map, set.strip());
        assert_eq!(
            outcome.upgrade.as_ref().map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        let names: Vec<&str> = map.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["accept"]);
    }

    #[test]
    fn a_transfer_coding_takes_the_content_length_with_it() {
        let set = headwall_policy::Policy::empty();
        for order in [
            [("content-length", "5"), ("transfer-encoding", "chunked")],
            [("transfer-encoding", "chunked"), ("content-length", "5")],
        ] {
            let mut request = headers(&order);
            strip_request(&mut request, set.strip());
            assert!(request.is_empty(), "{request:?}");
            let mut response = headers(&order);
            strip_response(&mut response, false);
            assert!(response.is_empty(), "{response:?}");
        }
        // Without a transfer coding the length is the framing and stays.
        let mut response = headers(&[("content-length", "5"), ("connection", "keep-alive")]);
        strip_response(&mut response, false);
        assert_eq!(response.len(), 1);
    }

    #[test]
    fn only_the_chunked_coding_passes() {
        let only_chunked = |headers: &HeaderMap| transfer_codings(headers) == Codings::Fine;
        for (value, passes) in [
            ("chunked", true),
            ("Chunked", true),
            ("gzip, chunked", false),
            ("gzip", false),
            ("identity", false),
        ] {
            assert_eq!(
                only_chunked(&headers(&[("transfer-encoding", value)])),
                passes,
                "{value}"
            );
        }
        assert!(only_chunked(&headers(&[("content-length", "5")])));
        assert!(!only_chunked(&headers(&[
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "br"),
        ])));
    }

    #[test]
    fn websocket_accept_follows_rfc_6455() {
        let mut headers = HeaderMap::new();
        headers.insert("sec-websocket-version", HeaderValue::from_static("13"));
        headers.insert(
            "sec-websocket-key",
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        // RFC 6455 §1.3's own example.
        assert_eq!(
            websocket_accept(&headers).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        headers.insert("sec-websocket-version", HeaderValue::from_static("8"));
        assert!(websocket_accept(&headers).is_none());
        headers.insert("sec-websocket-version", HeaderValue::from_static("13"));
        headers.insert("sec-websocket-key", HeaderValue::from_static("c2hvcnQ="));
        assert!(
            websocket_accept(&headers).is_none(),
            "a key must be 16 bytes"
        );
        headers.remove("sec-websocket-key");
        assert!(websocket_accept(&headers).is_none());
    }

    #[test]
    fn only_websocket_is_websocket() {
        for (value, is) in [
            ("websocket", true),
            ("WebSocket", true),
            ("h2c", false),
            ("websocket, h2c", false),
            ("TLS/1.0", false),
        ] {
            assert_eq!(
                only_websocket(&HeaderValue::from_static(value)),
                is,
                "{value}"
            );
        }
    }

    #[test]
    fn listed_names_match_in_any_case_and_absent_ones_are_ignored() {
        let mut map = headers(&[
            ("connection", "close, X-Hop-Secret, x-absent, bad name"),
            ("proxy-connection", "X-Other"),
            ("x-hop-secret", "1"),
            ("x-other", "2"),
            ("close", "3"),
            ("accept", "*/*"),
        ]);
        strip_response(&mut map, false);
        let names: Vec<&str> = map.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["accept"]);
    }
}
