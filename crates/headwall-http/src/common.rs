//! What request and response heads share: versions, spans, fields, limits, and the framing
//! rules of RFC 9112 §6 (Content-Length, Transfer-Encoding) both directions apply.

use crate::error::HeadError;

/// `HTTP/1.0` or `HTTP/1.1` (RFC 9112 §2.3); no other version parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl Version {
    /// The version as it is written on the wire.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }

    pub(crate) fn from_minor(minor: u8) -> Result<Version, HeadError> {
        match minor {
            0 => Ok(Version::Http10),
            1 => Ok(Version::Http11),
            _ => Err(HeadError::BadVersion),
        }
    }
}

/// A byte range in the buffer a head was parsed from (offsets from the buffer's start, which is
/// the start of the head). Heads store spans, not borrows, so a connection can keep a parsed
/// head while its buffer moves or grows; [`Span::of`] reads the bytes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The bytes of this span in `buf` (the buffer the head was parsed from); empty when `buf`
    /// is too short, never a panic.
    pub fn of(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    /// The offset of the first byte.
    pub fn start(self) -> usize {
        self.start as usize
    }

    /// The offset past the last byte.
    pub fn end(self) -> usize {
        self.end as usize
    }

    /// The length in bytes.
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether the span is empty.
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    /// The span of `part`, a subslice of `buf` (`None` when it is not one).
    pub(crate) fn within(buf: &[u8], part: &[u8]) -> Option<Span> {
        let base = buf.as_ptr() as usize;
        let at = (part.as_ptr() as usize).checked_sub(base)?;
        let end = at.checked_add(part.len())?;
        if end > buf.len() {
            return None;
        }
        Some(Span {
            start: u32::try_from(at).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }

    /// `self` narrowed to `[from, to)` relative to its start.
    pub(crate) fn sub(self, from: usize, to: usize) -> Span {
        let len = self.len();
        let (from, to) = (from.min(len), to.min(len));
        Span {
            start: self.start + from as u32,
            end: self.start + to.max(from) as u32,
        }
    }
}

/// One field line, as it arrived: raw name (case kept) and value (OWS around it removed,
/// RFC 9112 §5.1), plus what the codec recognised the name as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Field {
    /// The field name, case as sent.
    pub name: Span,
    /// The field value without leading and trailing whitespace.
    pub value: Span,
    /// The name, if it is one the codec or the data plane acts on.
    pub kind: FieldKind,
}

/// Field names the codec reads, or the data plane treats as hop-by-hop (RFC 9110 §7.6.1),
/// recognised once at parse time (names compare case-insensitively, RFC 9110 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldKind {
    /// Any other name.
    Other,
    /// `Host`.
    Host,
    /// `Content-Length`.
    ContentLength,
    /// `Transfer-Encoding`.
    TransferEncoding,
    /// `Connection`.
    Connection,
    /// `Keep-Alive`.
    KeepAlive,
    /// `Proxy-Connection` (not standard; clients still send it to proxies).
    ProxyConnection,
    /// `Proxy-Authorization`.
    ProxyAuthorization,
    /// `TE`.
    Te,
    /// `Trailer`.
    Trailer,
    /// `Upgrade`.
    Upgrade,
    /// `Expect`.
    Expect,
}

impl FieldKind {
    /// Recognises `name` (any case).
    pub fn of(name: &[u8]) -> FieldKind {
        // Dispatch on length first: most names are none of these and cost one compare.
        let candidate = match name.len() {
            2 => (FieldKind::Te, &b"te"[..]),
            4 => (FieldKind::Host, &b"host"[..]),
            6 => (FieldKind::Expect, &b"expect"[..]),
            7 => match name.first().map(u8::to_ascii_lowercase) {
                Some(b'u') => (FieldKind::Upgrade, &b"upgrade"[..]),
                _ => (FieldKind::Trailer, &b"trailer"[..]),
            },
            10 => match name.first().map(u8::to_ascii_lowercase) {
                Some(b'c') => (FieldKind::Connection, &b"connection"[..]),
                _ => (FieldKind::KeepAlive, &b"keep-alive"[..]),
            },
            14 => (FieldKind::ContentLength, &b"content-length"[..]),
            16 => (FieldKind::ProxyConnection, &b"proxy-connection"[..]),
            17 => (FieldKind::TransferEncoding, &b"transfer-encoding"[..]),
            19 => (FieldKind::ProxyAuthorization, &b"proxy-authorization"[..]),
            _ => return FieldKind::Other,
        };
        if name.eq_ignore_ascii_case(candidate.1) {
            candidate.0
        } else {
            FieldKind::Other
        }
    }
}

/// Bounds on a head, checked before anything is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest head, from its first byte to the empty line included (431 past it).
    pub max_head_bytes: usize,
    /// The most field lines (431 past it); at most [`Limits::MAX_FIELDS`] whatever is set.
    pub max_fields: usize,
    /// The longest request target (414 past it).
    pub max_target_bytes: usize,
}

impl Limits {
    /// The ceiling on `max_fields`: the parser's field slots live on the stack.
    pub const MAX_FIELDS: usize = 256;
}

impl Default for Limits {
    /// 16 KiB heads, 100 fields, 8 KiB targets: nginx's `large_client_header_buffers` allows an
    /// 8 KiB request line, hyper 100 fields.
    fn default() -> Limits {
        Limits {
            max_head_bytes: 16 * 1024,
            max_fields: 100,
            max_target_bytes: 8 * 1024,
        }
    }
}

/// How a message body is delimited (RFC 9112 §6.3). One value, never two: a message framed by
/// both a length and chunked is read as chunked or refused, never "both".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// No body: a request without `Content-Length` or `Transfer-Encoding`; a response to HEAD,
    /// a 1xx, 204 or 304, or a 2xx to CONNECT.
    None,
    /// Exactly this many octets (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked` (RFC 9112 §7.1).
    Chunked,
    /// A response without framing: the body runs to the close (RFC 9112 §6.3 ¶8). Never a
    /// request's.
    CloseDelimited,
}

/// What the framing fields of a head say, gathered during the one pass over its fields.
#[derive(Debug, Default)]
pub(crate) struct FramingFields {
    /// A `Transfer-Encoding` field was present (even empty).
    pub(crate) transfer_encoding: bool,
    /// `chunked` codings seen.
    pub(crate) chunked: u32,
    /// Whether the last non-empty coding seen so far is `chunked`.
    pub(crate) chunked_last: bool,
    /// A non-empty coding other than `chunked` was seen.
    pub(crate) other_coding: bool,
    /// The `Content-Length`, once one was seen; all later values must equal it.
    pub(crate) content_length: Option<u64>,
    /// The first `Content-Length` error, kept until framing is decided: with
    /// `Transfer-Encoding` present the length is ignored (RFC 9112 §6.3 ¶3).
    pub(crate) content_length_error: Option<HeadError>,
    /// A `Content-Length` field was present.
    pub(crate) content_length_present: bool,
}

impl FramingFields {
    /// Adds one `Transfer-Encoding` field value (RFC 9110 §5.6.1 list; empty members ignored).
    pub(crate) fn add_transfer_encoding(&mut self, value: &[u8]) {
        self.transfer_encoding = true;
        for coding in value.split(|&b| b == b',').map(trim_ows) {
            if coding.is_empty() {
                continue;
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.chunked += 1;
                self.chunked_last = true;
            } else {
                self.other_coding = true;
                self.chunked_last = false;
            }
        }
    }

    /// Adds one `Content-Length` field value: `1*DIGIT`, or a list of identical ones
    /// (RFC 9112 §6.3 ¶5, RFC 9110 §8.6).
    pub(crate) fn add_content_length(&mut self, value: &[u8]) {
        self.content_length_present = true;
        if self.content_length_error.is_some() {
            return;
        }
        for member in value.split(|&b| b == b',').map(trim_ows) {
            match parse_length(member) {
                Ok(length) => match self.content_length {
                    Some(seen) if seen != length => {
                        self.content_length_error = Some(HeadError::ContentLengthMismatch);
                        return;
                    }
                    _ => self.content_length = Some(length),
                },
                Err(error) => {
                    self.content_length_error = Some(error);
                    return;
                }
            }
        }
    }

    /// The framing the transfer codings and length give, for a message that may have a body.
    /// `Ok(None)`: neither field is present.
    pub(crate) fn decide(&self, version: Version) -> Result<Option<Framing>, HeadError> {
        if self.transfer_encoding {
            if version == Version::Http10 {
                return Err(HeadError::TransferEncodingInHttp10);
            }
            if self.chunked > 1 {
                return Err(HeadError::ChunkedRepeated);
            }
            if !self.chunked_last {
                return Err(HeadError::ChunkedNotFinal);
            }
            if self.other_coding {
                return Err(HeadError::UnsupportedCoding);
            }
            return Ok(Some(Framing::Chunked));
        }
        if let Some(error) = self.content_length_error {
            return Err(error);
        }
        Ok(self.content_length.map(Framing::Length))
    }
}

/// What `Connection` (and `Proxy-Connection`) options a head carries (RFC 9110 §7.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnectionOptions {
    /// `close`.
    pub close: bool,
    /// `keep-alive` (HTTP/1.0's persistence, RFC 9112 §9.3).
    pub keep_alive: bool,
    /// `upgrade`.
    pub upgrade: bool,
}

impl ConnectionOptions {
    pub(crate) fn add(&mut self, value: &[u8]) {
        for token in value.split(|&b| b == b',').map(trim_ows) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            }
        }
    }
}

/// `1*DIGIT` into a `u64`, refusing signs, spaces, hex and overflow.
fn parse_length(digits: &[u8]) -> Result<u64, HeadError> {
    if digits.is_empty() {
        return Err(HeadError::BadContentLength);
    }
    let mut length: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(HeadError::BadContentLength);
        }
        length = length
            .checked_mul(10)
            .and_then(|length| length.checked_add(u64::from(b - b'0')))
            .ok_or(HeadError::ContentLengthOverflow)?;
    }
    Ok(length)
}

/// `bytes` without leading and trailing SP and HTAB (OWS, RFC 9110 §5.6.3).
pub(crate) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |last| last + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// `tchar` (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// `token = 1*tchar` (RFC 9110 §5.6.2): a method, a field name, a transfer coding. The one
/// definition the codec and the policy's header-name check share.
pub fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_tchar(b))
}

/// A byte allowed in a field value: `field-vchar`, SP or HTAB (RFC 9110 §5.5).
pub(crate) fn is_value_byte(b: u8) -> bool {
    VALUE[usize::from(b)]
}

/// Byte classes as tables: the head writer checks every byte it writes, and a table lookup
/// per byte took `write_request_head` of a 13-field head from 0.92 to 0.31 µs
/// (benches/codec.rs).
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

static VALUE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte == b'\t' || (byte >= b' ' && byte <= b'~') || byte >= 0x80;
        b += 1;
    }
    table
};

/// Why httparse refused a field line, found by reading the lines again (error path only):
/// obs-fold, whitespace before the colon, or a name that is no token.
pub(crate) fn classify_field_error(head: &[u8]) -> HeadError {
    // Skip the start line; then look at each field line until the bad one.
    let mut lines = head
        .split(|&b| b == b'\n')
        .skip_while(|line| trim_cr(line).is_empty());
    lines.next();
    for line in lines {
        let line = trim_cr(line);
        match line.first() {
            None => break,
            Some(b' ' | b'\t') => return HeadError::ObsFold,
            Some(_) => {}
        }
        let name_end = line
            .iter()
            .position(|&b| !is_tchar(b))
            .unwrap_or(line.len());
        let rest = line.get(name_end..).unwrap_or_default();
        if rest.first() == Some(&b':') && name_end > 0 {
            continue;
        }
        if name_end > 0 && trim_ows(rest).first() == Some(&b':') {
            return HeadError::WhitespaceBeforeColon;
        }
        return HeadError::BadFieldName;
    }
    HeadError::BadFieldName
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Gives the httparse error its [`HeadError`].
pub(crate) fn head_error(error: httparse::Error, head: &[u8]) -> HeadError {
    match error {
        httparse::Error::HeaderName => classify_field_error(head),
        httparse::Error::HeaderValue => HeadError::BadFieldValue,
        httparse::Error::NewLine => HeadError::BadLineEnding,
        httparse::Error::Status => HeadError::BadStatusLine,
        httparse::Error::Token => HeadError::BadRequestLine,
        httparse::Error::TooManyHeaders => HeadError::TooManyFields,
        httparse::Error::Version => HeadError::BadVersion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(fields: &[(&str, &str)], version: Version) -> Result<Option<Framing>, HeadError> {
        let mut seen = FramingFields::default();
        for (name, value) in fields {
            match FieldKind::of(name.as_bytes()) {
                FieldKind::ContentLength => seen.add_content_length(value.as_bytes()),
                FieldKind::TransferEncoding => seen.add_transfer_encoding(value.as_bytes()),
                _ => {}
            }
        }
        seen.decide(version)
    }

    #[test]
    fn content_length_is_digits_and_repeats_only_identically() {
        use Version::Http11;
        let cl = |value: &str| framing(&[("Content-Length", value)], Http11);
        assert_eq!(cl("5"), Ok(Some(Framing::Length(5))));
        assert_eq!(cl("0005"), Ok(Some(Framing::Length(5))));
        assert_eq!(cl("0"), Ok(Some(Framing::Length(0))));
        assert_eq!(
            cl("18446744073709551615"),
            Ok(Some(Framing::Length(u64::MAX)))
        );
        assert_eq!(
            cl("18446744073709551616"),
            Err(HeadError::ContentLengthOverflow)
        );
        assert_eq!(cl("5, 5"), Ok(Some(Framing::Length(5))));
        assert_eq!(cl("5,5 ,\t5"), Ok(Some(Framing::Length(5))));
        for bad in ["", "+5", "-1", "0x5", "5 5", "5,", ",5", "5;", "५"] {
            assert_eq!(cl(bad), Err(HeadError::BadContentLength), "{bad:?}");
        }
        assert_eq!(cl("3, 5"), Err(HeadError::ContentLengthMismatch));
        let two =
            |a: &str, b: &str| framing(&[("content-length", a), ("CONTENT-LENGTH", b)], Http11);
        assert_eq!(two("5", "5"), Ok(Some(Framing::Length(5))));
        assert_eq!(two("3", "5"), Err(HeadError::ContentLengthMismatch));
        assert_eq!(two("5", "x"), Err(HeadError::BadContentLength));
        assert_eq!(framing(&[], Http11), Ok(None));
    }

    #[test]
    fn only_chunked_alone_and_last_frames_a_body() {
        use Version::{Http10, Http11};
        let te = |value: &str| framing(&[("Transfer-Encoding", value)], Http11);
        assert_eq!(te("chunked"), Ok(Some(Framing::Chunked)));
        assert_eq!(te("Chunked"), Ok(Some(Framing::Chunked)));
        assert_eq!(te(" chunked , "), Ok(Some(Framing::Chunked)));
        assert_eq!(te("chunked, chunked"), Err(HeadError::ChunkedRepeated));
        assert_eq!(te("gzip, chunked"), Err(HeadError::UnsupportedCoding));
        for bad in [
            "",
            "xchunked",
            "\"chunked\"",
            "chunked;q=1.0",
            "chunked, gzip",
            "gzip",
        ] {
            assert_eq!(te(bad), Err(HeadError::ChunkedNotFinal), "{bad:?}");
        }
        let two = framing(
            &[
                ("Transfer-Encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            Http11,
        );
        assert_eq!(two, Err(HeadError::ChunkedRepeated));
        let split = framing(
            &[
                ("Transfer-Encoding", "gzip"),
                ("transfer-encoding", "chunked"),
            ],
            Http11,
        );
        assert_eq!(split, Err(HeadError::UnsupportedCoding));
        assert_eq!(
            framing(&[("Transfer-Encoding", "chunked")], Http10),
            Err(HeadError::TransferEncodingInHttp10)
        );
    }

    #[test]
    fn chunked_overrides_any_content_length_in_either_order() {
        for fields in [
            [("Content-Length", "3"), ("Transfer-Encoding", "chunked")],
            [("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
            [("Transfer-Encoding", "chunked"), ("Content-Length", "x")],
        ] {
            assert_eq!(
                framing(&fields, Version::Http11),
                Ok(Some(Framing::Chunked)),
                "{fields:?}"
            );
        }
    }

    #[test]
    fn field_kinds_ignore_case_and_nothing_else() {
        assert_eq!(FieldKind::of(b"HOST"), FieldKind::Host);
        assert_eq!(FieldKind::of(b"content-length"), FieldKind::ContentLength);
        assert_eq!(
            FieldKind::of(b"Transfer-Encoding"),
            FieldKind::TransferEncoding
        );
        assert_eq!(FieldKind::of(b"Connection"), FieldKind::Connection);
        assert_eq!(FieldKind::of(b"Keep-Alive"), FieldKind::KeepAlive);
        assert_eq!(FieldKind::of(b"upgrade"), FieldKind::Upgrade);
        assert_eq!(FieldKind::of(b"Trailer"), FieldKind::Trailer);
        assert_eq!(FieldKind::of(b"te"), FieldKind::Te);
        assert_eq!(FieldKind::of(b"Expect"), FieldKind::Expect);
        assert_eq!(
            FieldKind::of(b"Proxy-Connection"),
            FieldKind::ProxyConnection
        );
        assert_eq!(
            FieldKind::of(b"proxy-authorization"),
            FieldKind::ProxyAuthorization
        );
        for other in [
            &b"hosts"[..],
            b"hist",
            b"content_length",
            b"x-te",
            b"",
            b"Trailers",
        ] {
            assert_eq!(FieldKind::of(other), FieldKind::Other, "{other:?}");
        }
    }

    #[test]
    fn connection_options_are_tokens_in_any_case() {
        let mut options = ConnectionOptions::default();
        options.add(b"Keep-Alive, x-foo");
        options.add(b" UPGRADE ");
        assert_eq!(
            options,
            ConnectionOptions {
                close: false,
                keep_alive: true,
                upgrade: true
            }
        );
        options.add(b"closed");
        assert!(!options.close);
        options.add(b"close");
        assert!(options.close);
    }

    #[test]
    fn byte_classes_follow_rfc_9110() {
        let tchars: Vec<u8> = (0..=255u8).filter(|&b| is_tchar(b)).collect();
        let mut want: Vec<u8> = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\
                                  abcdefghijklmnopqrstuvwxyz"
            .to_vec();
        want.retain(|b| !b.is_ascii_whitespace());
        want.sort_unstable();
        assert_eq!(tchars, want);
        let values = (0..=255u8).filter(|&b| is_value_byte(b)).count();
        assert_eq!(values, 1 + 95 + 128, "HTAB, SP..=~, obs-text");
        for b in [0u8, b'\r', b'\n', 0x7f, 0x1f] {
            assert!(!is_value_byte(b), "{b:#x}");
        }
    }

    #[test]
    fn trim_ows_removes_spaces_and_tabs_only() {
        assert_eq!(trim_ows(b" \ta b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"\ra"), b"\ra");
    }

    #[test]
    fn spans_never_panic_on_the_wrong_buffer() {
        let buf = b"hello world";
        let span = Span::within(buf, &buf[6..]).unwrap();
        assert_eq!(span.of(buf), b"world");
        assert_eq!(span.of(b"short"), b"");
        assert_eq!(span.sub(1, 3).of(buf), b"or");
        assert_eq!(span.sub(4, 99).of(buf), b"d");
        assert_eq!(Span::within(buf, b"elsewhere"), None);
    }
}
