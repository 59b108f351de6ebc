//! Header names: normalization, the built-in identity list, and the strip set.

use std::collections::HashSet;

use crate::fasthash::FxBuild;

/// The built-in identity header list, one name a line, `#` comments.
const BUILTIN_IDENTITY_HEADERS: &str = include_str!("../identity-headers.txt");

/// Longest name [`StripSet::contains`] normalizes on the stack; longer names allocate.
const STACK_NAME_LEN: usize = 64;

/// The built-in identity header names (already normalized: lowercase, `-`), in file order.
pub fn builtin_identity_headers() -> impl Iterator<Item = &'static str> {
    BUILTIN_IDENTITY_HEADERS
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
}

/// The form header names are compared in (docs/design.md, Stripping): ASCII lowercase, every
/// run of characters other than letters and digits one `-`, none at either end. `X_MSISDN`,
/// `x.msisdn`, `X__MSISDN_` and `X~MSISDN` are all `x-msisdn`: server stacks map punctuation to
/// `_` (or drop it) in different ways, so a partner behind any of them could read any spelling
/// as its own header.
pub fn normalize_header_name(name: &str) -> String {
    let mut buf = vec![0u8; name.len()];
    let used = normalize_into(name.as_bytes(), &mut buf);
    buf.truncate(used);
    // Only ASCII letters, digits and `-` are ever written.
    String::from_utf8(buf).unwrap_or_default()
}

/// Writes the normalized form of `name` into `out` (at least `name.len()` long: the form is
/// never longer) and returns its length.
#[inline]
fn normalize_into(name: &[u8], out: &mut [u8]) -> usize {
    let mut used = 0;
    let mut separator = false;
    for &b in name {
        if b.is_ascii_alphanumeric() {
            if separator && used > 0 {
                out[used] = b'-';
                used += 1;
            }
            separator = false;
            out[used] = b.to_ascii_lowercase();
            used += 1;
        } else {
            separator = true;
        }
    }
    used
}

/// The `Sec-WebSocket-Accept` a server must answer a WebSocket opening handshake's
/// `Sec-WebSocket-Key` with (RFC 6455 §4.2.2: base64 of SHA-1 over the key and the protocol's
/// GUID); `None` when the key is not 16 bytes in base64. The gateway opens a tunnel to a
/// partner only on a 101 that carries it: proof that the partner read this handshake as
/// WebSocket, not as some other protocol.
pub fn websocket_accept(key: &str) -> Option<String> {
    use base64::Engine;
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let engine = base64::engine::general_purpose::STANDARD;
    if engine.decode(key).ok()?.len() != 16 {
        return None;
    }
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(GUID);
    Some(engine.encode(sha1.digest().bytes()))
}

/// Whether `name` is an HTTP field-name: a non-empty `token` (RFC 9110 §5.1, §5.6.2).
pub fn is_field_name(name: &str) -> bool {
    headwall_http::is_token(name.as_bytes())
}

/// Every header name removed from every client request: the built-in identity list, every name
/// any partner receives, and `[strip].headers`.
///
/// Stored normalized; [`StripSet::contains`] ignores case and treats `_` as `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripSet {
    /// Normalized names as bytes: lookups hash the stack buffer directly, with no UTF-8 check.
    names: HashSet<Box<[u8]>, FxBuild>,
}

impl StripSet {
    /// The built-in list plus `extra` names (normalized here).
    pub(crate) fn with_builtin<'a>(extra: impl IntoIterator<Item = &'a str>) -> StripSet {
        let names = builtin_identity_headers()
            .map(|name| Box::from(name.as_bytes()))
            .chain(
                extra
                    .into_iter()
                    .map(|name| normalize_header_name(name).into_bytes().into_boxed_slice()),
            )
            .collect();
        StripSet { names }
    }

    /// Whether a client-sent header with this name must be removed: compared in
    /// [`normalize_header_name`]'s form (case and punctuation runs ignored).
    ///
    /// Hot path: names up to 64 bytes are normalized into a stack buffer, then one hash lookup;
    /// no heap allocation.
    pub fn contains(&self, header_name: &str) -> bool {
        // Every stored name is an ASCII token, so a non-ASCII name cannot be in the set.
        if !header_name.is_ascii() {
            return false;
        }
        let bytes = header_name.as_bytes();
        if bytes.len() > STACK_NAME_LEN {
            return self
                .names
                .contains(normalize_header_name(header_name).as_bytes());
        }
        let mut buf = [0u8; STACK_NAME_LEN];
        let used = normalize_into(bytes, &mut buf);
        self.names.contains(&buf[..used])
    }

    /// Number of distinct normalized names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the set is empty (never, in practice: the built-in list is always present).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The normalized names, sorted.
    pub fn names(&self) -> Vec<&str> {
        // Every stored name came from a `&str`, so the conversion cannot fail.
        let mut names: Vec<&str> = self
            .names
            .iter()
            .filter_map(|n| std::str::from_utf8(n).ok())
            .collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_list_is_normalized() {
        let names: Vec<&str> = builtin_identity_headers().collect();
        assert!(names.contains(&"x-msisdn"));
        assert!(names.contains(&"x-up-calling-line-id"));
        assert!(!names.iter().any(|n| n.contains('#') || n.is_empty()));
        for name in names {
            assert_eq!(normalize_header_name(name), name);
            assert!(is_field_name(name), "{name}");
        }
    }

    #[test]
    fn contains_ignores_case_and_underscores() {
        let set = StripSet::with_builtin(["X-Partner_Extra"]);
        assert!(set.contains("X-MSISDN"));
        assert!(set.contains("x_msisdn"));
        assert!(set.contains("X_Up_Calling_Line_ID"));
        assert!(set.contains("x-partner-extra"));
        assert!(set.contains("X_PARTNER_EXTRA"));
        assert!(!set.contains("x-msisdnx"));
        for spelling in [
            "X.MSISDN",
            "X~MSISDN",
            "X__MSISDN",
            "X-MSISDN_",
            "_x-_msisdn",
            "X-.MSISDN",
        ] {
            assert!(set.contains(spelling), "{spelling}");
            assert_eq!(normalize_header_name(spelling), "x-msisdn");
        }
        assert!(!set.contains("xmsisdn"), "a separator is not nothing");
        assert!(!set.contains("accept"));
        assert!(!set.contains("x-msisdñ"));
        assert!(!set.contains(&"x".repeat(100)));
        let long = format!("X-{}", "A".repeat(80));
        let set = StripSet::with_builtin([long.as_str()]);
        assert!(set.contains(&long.to_lowercase().replace('-', "_")));
    }

    #[test]
    fn field_names() {
        assert!(is_field_name("X-Age-Verified"));
        assert!(is_field_name("x_b!#$%&'*+-.^_`|~9"));
        assert!(!is_field_name(""));
        assert!(!is_field_name("X Age"));
        assert!(!is_field_name("X:Age"));
        assert!(!is_field_name("X-Ägé"));
    }
}
