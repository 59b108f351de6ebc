//! Applies the strip set to a client request: hop-by-hop first, then identity headers.
//!
//! Order matters (DESIGN, Stripping): `Connection` and the names it lists are consumed before
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
    /// The `Upgrade` value when the client asked for a protocol upgrade (`Connection: upgrade`).
    pub upgrade: Option<HeaderValue>,
}

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1), plus the
/// `Proxy-*` names of the client-to-proxy hop.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Removes hop-by-hop headers (and every name `Connection` lists), then every header in `set`.
pub fn strip_request(headers: &mut HeaderMap, set: &StripSet) -> StripOutcome {
    let mut outcome = StripOutcome::default();
    let upgrade_requested =
        connection_tokens(headers, |token| token.eq_ignore_ascii_case("upgrade"));
    if upgrade_requested {
        outcome.upgrade = headers.get(header::UPGRADE).cloned();
    }
    let mut listed: Vec<HeaderName> = Vec::new();
    connection_tokens(headers, |token| {
        if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
            listed.push(name);
        }
        false
    });
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }

    let mut identity: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if set.contains(name.as_str()) {
            identity.push(name.clone());
        }
    }
    for name in &identity {
        if let header::Entry::Occupied(entry) = headers.entry(name) {
            outcome.identity_removed += entry.remove_entry_mult().1.count();
        }
    }
    outcome
}

/// Removes hop-by-hop headers from an upstream response before it goes back to the client.
pub(crate) fn strip_response(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut listed: Vec<HeaderName> = Vec::new();
    connection_tokens(headers, |token| {
        if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
            listed.push(name);
        }
        false
    });
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        if keep_upgrade && (name == header::UPGRADE || name == header::CONNECTION) {
            continue;
        }
        headers.remove(name);
    }
}

/// Calls `visit` with each comma-separated token of `Connection` and `Proxy-Connection`;
/// returns true when any call returned true.
fn connection_tokens(headers: &HeaderMap, mut visit: impl FnMut(&str) -> bool) -> bool {
    let mut any = false;
    for name in [
        header::CONNECTION,
        HeaderName::from_static("proxy-connection"),
    ] {
        for value in headers.get_all(&name) {
            let Ok(text) = value.to_str() else { continue };
            for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                any |= visit(token);
            }
        }
    }
    any
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
}
