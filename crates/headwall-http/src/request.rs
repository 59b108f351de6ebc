//! Request heads (RFC 9112 §3): request line, target form, fields, and the request's framing.

use std::mem::MaybeUninit;

use crate::common::{
    ConnectionOptions, Field, FieldKind, Framing, FramingFields, Limits, Span, Version, head_error,
    trim_ows,
};
use crate::error::HeadError;

/// A request method (RFC 9110 §9), case-sensitive: `get` is an [`Method::Other`] token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: its response has no body.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
    /// `CONNECT`: authority-form target; a 2xx answer opens a tunnel.
    Connect,
    /// `OPTIONS`: the only method with the asterisk form.
    Options,
    /// `TRACE`.
    Trace,
    /// `PATCH`.
    Patch,
    /// Any other token; [`RequestHead::method_bytes`] has it.
    Other,
}

impl Method {
    /// The method a token names (case-sensitive): what a response's framing depends on.
    pub fn from_token(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// The form of a request target (RFC 9112 §3.2), with spans into the head's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `absolute-path [ "?" query ]`: what a transparent listener and an origin get.
    Origin {
        /// The whole target, starting with `/`.
        path: Span,
    },
    /// `scheme "://" authority path-abempty [ "?" query ]`: what a client sends a proxy.
    Absolute {
        /// The scheme, as sent (compare case-insensitively).
        scheme: Span,
        /// The authority, possibly with `userinfo@` (the data plane removes it).
        authority: Span,
        /// Path and query; empty when the target has none (send `/`).
        path: Span,
    },
    /// `uri-host ":" port`, for CONNECT only.
    Authority {
        /// The whole target.
        authority: Span,
    },
    /// `*`, for OPTIONS only.
    Asterisk,
}

/// A parsed request head. Holds spans into the buffer it was parsed from (pass that buffer to
/// the accessors); the fields are kept in arrival order with their raw names and values.
///
/// A `RequestHead` exists only for a head that passed every check in the crate docs: its
/// framing is decided and unambiguous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    method: Method,
    method_span: Span,
    target: Target,
    target_span: Span,
    version: Version,
    fields: Vec<Field>,
    framing: Framing,
    host: Option<Span>,
    connection: ConnectionOptions,
    expect_continue: bool,
    length_overridden: bool,
}

impl RequestHead {
    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The method token as sent.
    pub fn method_bytes<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.method_span.of(buf)
    }

    /// The target's form and parts.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The whole request target as sent.
    pub fn target_bytes<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.target_span.of(buf)
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Every field line, in arrival order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Names and values of every field line, in arrival order.
    pub fn field_bytes<'a>(
        &'a self,
        buf: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone + 'a {
        self.fields
            .iter()
            .map(move |field| (field.name.of(buf), field.value.of(buf)))
    }

    /// How the body that follows the head is delimited: [`Framing::None`],
    /// [`Framing::Length`] or [`Framing::Chunked`], never close-delimited.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The `Host` value (the only one: several are refused), when there is one.
    pub fn host(&self) -> Option<Span> {
        self.host
    }

    /// The `Connection` and `Proxy-Connection` options.
    pub fn connection(&self) -> ConnectionOptions {
        self.connection
    }

    /// `Expect: 100-continue` in an HTTP/1.1 request (RFC 9110 §10.1.1: a 1.0 client's is
    /// ignored).
    pub fn expect_continue(&self) -> bool {
        self.expect_continue
    }

    /// Whether the message carried both `Transfer-Encoding: chunked` and `Content-Length`:
    /// it is framed as chunked, the length must not be forwarded, and the connection must
    /// close after the response (RFC 9112 §6.1, §6.3 ¶3).
    pub fn length_overridden(&self) -> bool {
        self.length_overridden
    }

    /// Whether the client connection may carry another request after this one's response
    /// (RFC 9112 §9.3): not with `close`, not after a length overridden by chunked, and for
    /// HTTP/1.0 only with `keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.connection.close || self.length_overridden {
            return false;
        }
        match self.version {
            Version::Http11 => true,
            Version::Http10 => self.connection.keep_alive,
        }
    }
}

/// Parses a request head from the start of `buf` with [`Limits::default`].
///
/// `Ok(None)`: the head is not complete yet; read more and call again with the longer buffer.
/// `Ok(Some((head, n)))`: the head is the first `n` bytes; the body (framed by
/// [`RequestHead::framing`]) or the next request starts at `buf[n..]`.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    parse_request_head_with(buf, &Limits::default())
}

/// [`parse_request_head`] with explicit limits.
pub fn parse_request_head_with(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    // Never look past the limit: a longer head is refused, not parsed.
    let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; Limits::MAX_FIELDS];
    let slots = slots
        .get_mut(..limits.max_fields.min(Limits::MAX_FIELDS))
        .unwrap_or_default();
    let mut request = httparse::Request::new(&mut []);
    let status = request
        .parse_with_uninit_headers(window, slots)
        .map_err(|error| head_error(error, window))?;
    let length = match status {
        httparse::Status::Complete(length) => length,
        httparse::Status::Partial => return incomplete(window, buf.len(), limits),
    };
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Err(HeadError::BadRequestLine);
    };
    let method_span = Span::within(buf, method.as_bytes()).ok_or(HeadError::BadRequestLine)?;
    let target_span = Span::within(buf, target.as_bytes()).ok_or(HeadError::BadRequestLine)?;
    if target.len() > limits.max_target_bytes {
        return Err(HeadError::TargetTooLong);
    }
    let method = Method::from_token(method.as_bytes());
    let version = Version::from_minor(minor)?;
    let target = target_form(method, target.as_bytes(), target_span)?;

    let mut fields = Vec::with_capacity(request.headers.len());
    let mut framing = FramingFields::default();
    let mut host = None;
    let mut hosts = 0;
    let mut connection = ConnectionOptions::default();
    let mut expect_continue = false;
    for header in request.headers.iter() {
        let name = header.name.as_bytes();
        let value = header.value;
        let field = Field {
            name: Span::within(buf, name).ok_or(HeadError::BadFieldName)?,
            value: Span::within(buf, value).ok_or(HeadError::BadFieldValue)?,
            kind: FieldKind::of(name),
        };
        match field.kind {
            FieldKind::Host => {
                hosts += 1;
                host = Some(field.value);
            }
            FieldKind::ContentLength => framing.add_content_length(value),
            FieldKind::TransferEncoding => framing.add_transfer_encoding(value),
            FieldKind::Connection | FieldKind::ProxyConnection => connection.add(value),
            FieldKind::Expect => {
                expect_continue |= trim_ows(value).eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
        fields.push(field);
    }
    match (hosts, version) {
        (0, Version::Http11) => return Err(HeadError::MissingHost),
        (0, Version::Http10) => {}
        (1, _) => {
            if !host.is_some_and(|host| is_host_value(host.of(buf))) {
                return Err(HeadError::BadHost);
            }
        }
        _ => return Err(HeadError::MultipleHost),
    }
    let length_overridden = framing.transfer_encoding && framing.content_length_present;
    let framing = framing.decide(version)?.unwrap_or(Framing::None);
    Ok(Some((
        RequestHead {
            method,
            method_span,
            target,
            target_span,
            version,
            fields,
            framing,
            host,
            connection,
            expect_continue: expect_continue && version == Version::Http11,
            length_overridden,
        },
        length,
    )))
}

/// A head that is not complete: wait for more, unless the limits are already passed.
fn incomplete(
    window: &[u8],
    buffered: usize,
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    // Still in the request line (no LF after any leading empty lines) and past the longest
    // target: 414, as early as we can tell.
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    let line = window.get(start..).unwrap_or_default();
    if !line.contains(&b'\n') && line.len() > limits.max_target_bytes + REQUEST_LINE_EXTRA {
        return Err(HeadError::TargetTooLong);
    }
    if buffered >= limits.max_head_bytes {
        return Err(HeadError::HeadTooLarge);
    }
    Ok(None)
}

/// Room for the method, the two spaces and the version around a target of the longest length.
const REQUEST_LINE_EXTRA: usize = 32;

/// Which form `target` has; refuses a form that does not fit the method (RFC 9112 §3.2),
/// non-ASCII bytes and fragments.
fn target_form(method: Method, target: &[u8], span: Span) -> Result<Target, HeadError> {
    // httparse lets obs-text and `#` through; neither is in any of the four forms.
    if target.iter().any(|&b| b >= 0x80 || b == b'#') {
        return Err(HeadError::BadTarget);
    }
    if method == Method::Connect {
        return if is_authority_form(target) {
            Ok(Target::Authority { authority: span })
        } else {
            Err(HeadError::BadTarget)
        };
    }
    match target.first() {
        Some(b'/') => return Ok(Target::Origin { path: span }),
        Some(b'*') if target.len() == 1 && method == Method::Options => {
            return Ok(Target::Asterisk);
        }
        _ => {}
    }
    // absolute-form: scheme ":" "//" authority path-abempty [ "?" query ] (RFC 3986 §3).
    let colon = target
        .iter()
        .position(|&b| b == b':')
        .ok_or(HeadError::BadTarget)?;
    let scheme = target.get(..colon).unwrap_or_default();
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
    let rest = target.get(colon + 1..).unwrap_or_default();
    if !scheme_ok || !rest.starts_with(b"//") {
        return Err(HeadError::BadTarget);
    }
    let authority_start = colon + 3;
    let after = target.get(authority_start..).unwrap_or_default();
    let authority_len = after
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(after.len());
    if authority_len == 0 {
        return Err(HeadError::BadTarget);
    }
    Ok(Target::Absolute {
        scheme: span.sub(0, colon),
        authority: span.sub(authority_start, authority_start + authority_len),
        path: span.sub(authority_start + authority_len, target.len()),
    })
}

/// `uri-host ":" port` with a non-empty host and `1*DIGIT` port (RFC 9112 §3.2.3).
fn is_authority_form(target: &[u8]) -> bool {
    let Some(colon) = target.iter().rposition(|&b| b == b':') else {
        return false;
    };
    let (host, port) = (
        target.get(..colon).unwrap_or_default(),
        target.get(colon + 1..).unwrap_or_default(),
    );
    let host_ok = match host.strip_prefix(b"[") {
        Some(literal) => literal
            .strip_suffix(b"]")
            .is_some_and(|inside| !inside.is_empty() && inside.iter().all(|&b| is_host_byte(b))),
        None => !host.is_empty() && host.iter().all(|&b| is_host_byte(b) && b != b':'),
    };
    host_ok && !port.is_empty() && port.iter().all(u8::is_ascii_digit)
}

/// A `Host` value: `uri-host [ ":" port ]`, or empty (RFC 9112 §3.2, RFC 9110 §7.2). Checked
/// by the bytes it may hold (RFC 3986 §3.2.2: unreserved, sub-delims, `%`, `:` and the
/// brackets of an IP literal); the data plane reads the name and port.
fn is_host_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| is_host_byte(b) || b == b'[' || b == b']')
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
        parse_request_head(bytes)
    }

    fn head(bytes: &[u8]) -> RequestHead {
        match parse(bytes) {
            Ok(Some((head, length))) => {
                assert_eq!(length, bytes.len(), "{:?}", String::from_utf8_lossy(bytes));
                head
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    fn error(bytes: &[u8]) -> HeadError {
        match parse(bytes) {
            Err(error) => error,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn parses_an_absolute_form_request_with_fields_in_order() {
        let buf = b"POST http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n\
                    X-One: 1\r\nx-one:  2 \r\nContent-Length: 5\r\n\r\nhello";
        let (head, length) = parse(buf).unwrap().unwrap();
        assert_eq!(&buf[length..], b"hello");
        assert_eq!(head.method(), Method::Post);
        assert_eq!(head.method_bytes(buf), b"POST");
        assert_eq!(head.version(), Version::Http11);
        assert_eq!(head.target_bytes(buf), b"http://example.com:8080/a/b?c=d");
        let Target::Absolute {
            scheme,
            authority,
            path,
        } = head.target()
        else {
            panic!("{:?}", head.target());
        };
        assert_eq!(scheme.of(buf), b"http");
        assert_eq!(authority.of(buf), b"example.com:8080");
        assert_eq!(path.of(buf), b"/a/b?c=d");
        let fields: Vec<_> = head.field_bytes(buf).collect();
        assert_eq!(
            fields,
            [
                (&b"Host"[..], &b"example.com:8080"[..]),
                (b"X-One", b"1"),
                (b"x-one", b"2"),
                (b"Content-Length", b"5"),
            ]
        );
        assert_eq!(head.fields()[3].kind, FieldKind::ContentLength);
        assert_eq!(head.framing(), Framing::Length(5));
        assert_eq!(
            head.host().map(|host| host.of(buf)),
            Some(&b"example.com:8080"[..])
        );
        assert!(head.keep_alive());
    }

    #[test]
    fn every_target_form_fits_its_method_only() {
        let buf = b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(head(buf).target(), Target::Origin { path } if path.of(buf) == b"/a?b"));
        let buf = b"GET http://x HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(head(buf).target(), Target::Absolute { path, .. } if path.is_empty()));
        let buf = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
        assert!(matches!(
            head(buf).target(),
            Target::Authority { authority } if authority.of(buf) == b"example.com:443"
        ));
        let buf = b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n";
        assert!(matches!(head(buf).target(), Target::Authority { .. }));
        assert_eq!(
            head(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").target(),
            Target::Asterisk
        );
        for bad in [
            &b"GET * HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET example.com:80 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT /a HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT http://x:1/ HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT example.com HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT example.com:https HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT :443 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET http:/x HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET 1http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(
                error(bad),
                HeadError::BadTarget,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn partial_heads_ask_for_more_at_every_length() {
        let buf = b"POST http://x/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
        for end in 0..buf.len() {
            assert_eq!(parse(&buf[..end]), Ok(None), "cut at {end}");
        }
        assert!(parse(buf).unwrap().is_some());
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let buf = b"\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let (head, length) = parse(buf).unwrap().unwrap();
        assert_eq!(length, buf.len());
        assert_eq!(head.target_bytes(buf), b"/a");
    }

    #[test]
    fn bare_lf_ends_lines_in_the_head_but_bare_cr_never() {
        // RFC 9112 §2.2: a recipient MAY take LF alone as a line terminator.
        let buf = b"GET http://x/a HTTP/1.1\nHost: x\nConnection: close\n\n";
        let head = head(buf);
        assert_eq!(head.field_bytes(buf).count(), 2);
        assert!(!head.keep_alive());
        assert_eq!(
            error(b"GET /a HTTP/1.1\rHost: x\r\n\r\n"),
            HeadError::BadLineEnding
        );
        assert_eq!(
            error(b"GET /a HTTP/1.1\r\nHost: x\r\r\n"),
            HeadError::BadFieldValue
        );
        assert_eq!(
            error(b"GET /a HTTP/1.1\r\nHost: x\r\n\rX"),
            HeadError::BadLineEnding
        );
    }

    #[test]
    fn field_syntax_errors_have_their_own_reasons() {
        let with = |line: &[u8]| {
            let mut buf = b"GET /a HTTP/1.1\r\nHost: x\r\n".to_vec();
            buf.extend_from_slice(line);
            buf.extend_from_slice(b"\r\n\r\n");
            error(&buf)
        };
        assert_eq!(
            with(b"Content-Length : 5"),
            HeadError::WhitespaceBeforeColon
        );
        assert_eq!(
            with(b"Content-Length\t: 5"),
            HeadError::WhitespaceBeforeColon
        );
        assert_eq!(with(b"X-A: a\r\n b"), HeadError::ObsFold);
        assert_eq!(with(b"X-A: a\r\n\tb"), HeadError::ObsFold);
        assert_eq!(with(b"X A: b"), HeadError::BadFieldName);
        assert_eq!(with(b"X@A: b"), HeadError::BadFieldName);
        assert_eq!(with(b"no-colon-here"), HeadError::BadFieldName);
        assert_eq!(with(b": no name"), HeadError::BadFieldName);
        assert_eq!(with(b"X-A: a\x00b"), HeadError::BadFieldValue);
        assert_eq!(with(b"X-A: a\rb"), HeadError::BadFieldValue);
        assert_eq!(with(b"X-A: a\x7fb"), HeadError::BadFieldValue);
        assert_eq!(with(b"X-A: a\x01b"), HeadError::BadFieldValue);
        // Whitespace before the first field is folding too (RFC 9112 §2.2).
        assert_eq!(
            error(b"GET /a HTTP/1.1\r\n Host: x\r\n\r\n"),
            HeadError::ObsFold
        );
        // obs-text is a valid value byte (RFC 9110 §5.5).
        let buf = b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: caf\xc3\xa9\r\n\r\n";
        assert_eq!(
            head(buf).field_bytes(buf).nth(1),
            Some((&b"X-A"[..], &b"caf\xc3\xa9"[..]))
        );
    }

    #[test]
    fn request_line_errors() {
        assert_eq!(
            error(b"GET /a HTTP/2.0\r\nHost: x\r\n\r\n"),
            HeadError::BadVersion
        );
        assert_eq!(
            error(b"GET /a HTTP/1.2\r\nHost: x\r\n\r\n"),
            HeadError::BadVersion
        );
        assert_eq!(
            error(b"GET /a\r\nHost: x\r\n\r\n"),
            HeadError::BadRequestLine
        );
        assert_eq!(
            error(b"GET  /a HTTP/1.1\r\nHost: x\r\n\r\n"),
            HeadError::BadRequestLine
        );
        assert_eq!(
            error(b"G(T /a HTTP/1.1\r\nHost: x\r\n\r\n"),
            HeadError::BadRequestLine
        );
        assert_eq!(
            error(b"GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n"),
            HeadError::BadRequestLine
        );
        // Methods are case-sensitive tokens; an unknown one is still a method.
        let buf = b"loGET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let head = head(buf);
        assert_eq!(head.method(), Method::Other);
        assert_eq!(head.method_bytes(buf), b"loGET");
    }

    #[test]
    fn host_is_required_once_in_http11() {
        assert_eq!(error(b"GET /a HTTP/1.1\r\n\r\n"), HeadError::MissingHost);
        assert_eq!(
            error(b"GET http://x/ HTTP/1.1\r\n\r\n"),
            HeadError::MissingHost
        );
        assert_eq!(
            error(b"GET /a HTTP/1.1\r\nHost: x\r\nhost: x\r\n\r\n"),
            HeadError::MultipleHost
        );
        assert_eq!(
            error(b"GET /a HTTP/1.0\r\nHost: x\r\nHOST: y\r\n\r\n"),
            HeadError::MultipleHost
        );
        for bad in [&b"a b"[..], b"x/y", b"u@x", b"x\"", b"x\xc3\xa9"] {
            let mut buf = b"GET /a HTTP/1.1\r\nHost: ".to_vec();
            buf.extend_from_slice(bad);
            buf.extend_from_slice(b"\r\n\r\n");
            assert_eq!(
                error(&buf),
                HeadError::BadHost,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(head(b"GET /a HTTP/1.0\r\n\r\n").host(), None);
        let buf = b"GET /a HTTP/1.1\r\nHost:\r\n\r\n";
        assert_eq!(head(buf).host().map(Span::is_empty), Some(true));
        head(b"GET /a HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
        head(b"GET /a HTTP/1.1\r\nHost: xn--bcher-kva.example:80\r\n\r\n");
    }

    #[test]
    fn framing_of_requests() {
        let framing = |fields: &str| {
            let text = format!("POST /a HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
            parse(text.as_bytes()).map(|parsed| parsed.map(|(head, _)| head.framing()))
        };
        assert_eq!(framing(""), Ok(Some(Framing::None)));
        assert_eq!(
            framing("Content-Length: 0\r\n"),
            Ok(Some(Framing::Length(0)))
        );
        assert_eq!(
            framing("Transfer-Encoding: chunked\r\n"),
            Ok(Some(Framing::Chunked))
        );
        assert_eq!(
            framing("Transfer-Encoding:\tchunked\r\n"),
            Ok(Some(Framing::Chunked))
        );
        assert_eq!(
            framing("Content-Length: 3\r\nContent-Length: 5\r\n"),
            Err(HeadError::ContentLengthMismatch)
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip, chunked\r\n"),
            Err(HeadError::UnsupportedCoding)
        );
        assert_eq!(HeadError::UnsupportedCoding.status(), 501);
        let buf = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        let head = head(buf);
        assert_eq!(head.framing(), Framing::Chunked);
        assert!(head.length_overridden());
        assert!(
            !head.keep_alive(),
            "RFC 9112 §6.3 ¶3: close after such a request"
        );
        assert_eq!(
            error(b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadError::TransferEncodingInHttp10
        );
    }

    #[test]
    fn keep_alive_follows_version_and_connection_options() {
        let keep = |text: &[u8]| head(text).keep_alive();
        assert!(keep(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!keep(
            b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        assert!(!keep(b"GET /a HTTP/1.0\r\n\r\n"));
        assert!(keep(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        assert!(keep(
            b"GET /a HTTP/1.0\r\nProxy-Connection: Keep-Alive\r\n\r\n"
        ));
        let upgrade = head(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\r\n");
        assert!(upgrade.connection().upgrade);
    }

    #[test]
    fn expect_continue_only_in_http11() {
        let buf =
            b"POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n";
        assert!(head(buf).expect_continue());
        let buf = b"POST /a HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
        assert!(!head(buf).expect_continue());
    }

    #[test]
    fn limits_map_to_431_and_414() {
        let limits = Limits {
            max_head_bytes: 64,
            max_fields: 2,
            max_target_bytes: 16,
        };
        let parse = |buf: &[u8]| parse_request_head_with(buf, &limits);
        assert!(
            parse(b"GET /a HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n")
                .unwrap()
                .is_some()
        );
        let three = parse(b"GET /a HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n");
        assert_eq!(three, Err(HeadError::TooManyFields));
        assert_eq!(HeadError::TooManyFields.status(), 431);
        let long =
            b"GET /a HTTP/1.1\r\nHost: x\r\nA: 0123456789012345678901234567890123456789\r\n\r\n";
        assert_eq!(parse(long), Err(HeadError::HeadTooLarge));
        assert_eq!(HeadError::HeadTooLarge.status(), 431);
        // Cut inside the field: still waiting, until the buffer reaches the limit.
        assert_eq!(parse(&long[..60]), Ok(None));
        assert_eq!(parse(&long[..64]), Err(HeadError::HeadTooLarge));
        // A complete target over the limit, and one still arriving.
        assert_eq!(
            parse(b"GET /0123456789abcdefg HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(HeadError::TargetTooLong)
        );
        let mut line = b"GET /".to_vec();
        line.extend_from_slice(&[b'a'; 35]);
        assert_eq!(parse(&line), Ok(None), "a line that may still end in time");
        line.extend_from_slice(&[b'a'; 25]);
        assert_eq!(parse(&line), Err(HeadError::TargetTooLong));
        assert_eq!(HeadError::TargetTooLong.status(), 414);
        // A limit above the stack slots is clamped, not a panic.
        let wide = Limits {
            max_fields: 100_000,
            ..Limits::default()
        };
        let mut many = b"GET /a HTTP/1.1\r\nHost: x\r\n".to_vec();
        for _ in 0..Limits::MAX_FIELDS {
            many.extend_from_slice(b"A: 1\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_request_head_with(&many, &wide),
            Err(HeadError::TooManyFields)
        );
    }

    #[test]
    fn pipelined_heads_parse_one_after_another() {
        let buf = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: y\r\n\r\n";
        let (first, used) = parse(buf).unwrap().unwrap();
        assert_eq!(first.target_bytes(buf), b"/a");
        let rest = &buf[used..];
        let (second, used) = parse(rest).unwrap().unwrap();
        assert_eq!(second.target_bytes(rest), b"/b");
        assert_eq!(used, rest.len());
    }
}
