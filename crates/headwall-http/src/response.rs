//! Response heads (RFC 9112 §4) and their framing, which depends on the request (§6.3).

use std::mem::MaybeUninit;

use crate::common::{
    ConnectionOptions, Field, FieldKind, Framing, FramingFields, Limits, Span, Version, head_error,
};
use crate::error::HeadError;
use crate::request::Method;

/// A parsed response head: status, reason, fields in arrival order, and its framing for the
/// request it answers. Spans point into the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    version: Version,
    status: u16,
    reason: Span,
    fields: Vec<Field>,
    framing: Framing,
    connection: ConnectionOptions,
    length_overridden: bool,
}

impl ResponseHead {
    /// The version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The status code, 100..=599.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase as sent (may be empty).
    pub fn reason<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.reason.of(buf)
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

    /// How the body is delimited (RFC 9112 §6.3), for the request method given at parse time.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// A 1xx interim response (RFC 9110 §15.2): another head follows, except after a 101,
    /// when the connection speaks the upgraded protocol.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    /// `100 Continue`: the client may send the body it held back (RFC 9110 §10.1.1).
    pub fn is_continue(&self) -> bool {
        self.status == 100
    }

    /// `101 Switching Protocols`: after this head the connection is a tunnel.
    pub fn is_switching_protocols(&self) -> bool {
        self.status == 101
    }

    /// The `Connection` options.
    pub fn connection(&self) -> ConnectionOptions {
        self.connection
    }

    /// Whether the response carried both `Transfer-Encoding: chunked` and `Content-Length`:
    /// read as chunked, and the length is not passed on (RFC 9112 §6.1).
    pub fn length_overridden(&self) -> bool {
        self.length_overridden
    }

    /// Whether the upstream connection can carry another request after this response's body
    /// (RFC 9112 §9.3): not with `close`, not close-delimited, not after a length overridden
    /// by chunked, and from an HTTP/1.0 server only with `keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.connection.close
            || self.length_overridden
            || self.framing == Framing::CloseDelimited
        {
            return false;
        }
        match self.version {
            Version::Http11 => true,
            Version::Http10 => self.connection.keep_alive,
        }
    }
}

/// Parses a response head from the start of `buf`, the answer to a request with `method`
/// (its framing depends on it), with [`Limits::default`] (the target limit does not apply).
///
/// `Ok(None)`: not complete yet. `Ok(Some((head, n)))`: the head is `buf[..n]`. After an
/// interim head ([`ResponseHead::is_interim`]), parse the next head from `buf[n..]`.
pub fn parse_response_head(
    buf: &[u8],
    method: Method,
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    parse_response_head_with(buf, method, &Limits::default())
}

/// [`parse_response_head`] with explicit limits.
pub fn parse_response_head_with(
    buf: &[u8],
    method: Method,
    limits: &Limits,
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; Limits::MAX_FIELDS];
    let slots = slots
        .get_mut(..limits.max_fields.min(Limits::MAX_FIELDS))
        .unwrap_or_default();
    let mut response = httparse::Response::new(&mut []);
    // The strict defaults: no whitespace before a colon and no obs-fold in responses either
    // (RFC 9112 §5.1, §5.2: a proxy rejects folding or replaces it; we reject).
    let status = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut response, window, slots)
        .map_err(|error| head_error(error, window))?;
    let length = match status {
        httparse::Status::Complete(length) => length,
        httparse::Status::Partial if buf.len() >= limits.max_head_bytes => {
            return Err(HeadError::HeadTooLarge);
        }
        httparse::Status::Partial => return Ok(None),
    };
    let (Some(minor), Some(status), Some(reason)) =
        (response.version, response.code, response.reason)
    else {
        return Err(HeadError::BadStatusLine);
    };
    let version = Version::from_minor(minor)?;
    if !(100..=599).contains(&status) {
        return Err(HeadError::BadStatusLine);
    }
    // httparse hands back an empty reason that may not point into `buf`.
    let reason = Span::within(buf, reason.as_bytes()).unwrap_or_default();

    let mut fields = Vec::with_capacity(response.headers.len());
    let mut framing = FramingFields::default();
    let mut connection = ConnectionOptions::default();
    for header in response.headers.iter() {
        let name = header.name.as_bytes();
        let value = header.value;
        let field = Field {
            name: Span::within(buf, name).ok_or(HeadError::BadFieldName)?,
            value: Span::within(buf, value).ok_or(HeadError::BadFieldValue)?,
            kind: FieldKind::of(name),
        };
        match field.kind {
            FieldKind::ContentLength => framing.add_content_length(value),
            FieldKind::TransferEncoding => framing.add_transfer_encoding(value),
            FieldKind::Connection => connection.add(value),
            _ => {}
        }
        fields.push(field);
    }
    let bodiless = method == Method::Head
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (method == Method::Connect && (200..300).contains(&status));
    let (framing, length_overridden) = if bodiless {
        // RFC 9112 §6.3 ¶1-2: whatever the fields say, there is no body.
        (Framing::None, false)
    } else {
        let overridden = framing.transfer_encoding && framing.content_length_present;
        let decided = framing.decide(version)?.unwrap_or(Framing::CloseDelimited);
        (decided, overridden)
    };
    Ok(Some((
        ResponseHead {
            version,
            status,
            reason,
            fields,
            framing,
            connection,
            length_overridden,
        },
        length,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8], method: Method) -> Result<ResponseHead, HeadError> {
        match parse_response_head(bytes, method) {
            Ok(Some((head, length))) => {
                assert_eq!(length, bytes.len());
                Ok(head)
            }
            Ok(None) => panic!("partial: {:?}", String::from_utf8_lossy(bytes)),
            Err(error) => Err(error),
        }
    }

    fn framing(bytes: &[u8], method: Method) -> Result<Framing, HeadError> {
        head(bytes, method).map(|head| head.framing())
    }

    #[test]
    fn parses_status_reason_and_fields() {
        let buf = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nX-A: b\r\n\r\n";
        let head = head(buf, Method::Get).unwrap();
        assert_eq!(head.status(), 404);
        assert_eq!(head.reason(buf), b"Not Found");
        assert_eq!(head.version(), Version::Http11);
        let fields: Vec<_> = head.field_bytes(buf).collect();
        assert_eq!(
            fields,
            [(&b"Content-Length"[..], &b"2"[..]), (b"X-A", b"b")]
        );
        assert_eq!(head.framing(), Framing::Length(2));
        assert!(head.keep_alive());
        let buf = b"HTTP/1.0 200 \r\n\r\n";
        let head = self::head(buf, Method::Get).unwrap();
        assert_eq!(head.reason(buf), b"");
        assert_eq!(head.framing(), Framing::CloseDelimited);
        assert!(!head.keep_alive());
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        use Method::{Connect, Get, Head};
        let cl5 = b"Content-Length: 5\r\n\r\n";
        let with = |status: &str, rest: &[u8]| {
            let mut buf = format!("HTTP/1.1 {status}\r\n").into_bytes();
            buf.extend_from_slice(rest);
            buf
        };
        assert_eq!(framing(&with("200 OK", cl5), Get), Ok(Framing::Length(5)));
        assert_eq!(framing(&with("200 OK", cl5), Head), Ok(Framing::None));
        for status in [
            "100 Continue",
            "101 Switching",
            "103 Early Hints",
            "204 No",
            "304 Not",
        ] {
            assert_eq!(
                framing(&with(status, cl5), Get),
                Ok(Framing::None),
                "{status}"
            );
        }
        assert_eq!(framing(&with("200 OK", cl5), Connect), Ok(Framing::None));
        assert_eq!(
            framing(&with("407 Auth", cl5), Connect),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing(&with("200 OK", b"\r\n"), Get),
            Ok(Framing::CloseDelimited)
        );
        let chunked = with(
            "200 OK",
            b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let head = self::head(&chunked, Get).unwrap();
        assert_eq!(head.framing(), Framing::Chunked);
        assert!(head.length_overridden());
        assert!(!head.keep_alive());
        assert_eq!(
            framing(
                &with("200 OK", b"Content-Length: 2\r\nContent-Length: 4\r\n\r\n"),
                Get
            ),
            Err(HeadError::ContentLengthMismatch)
        );
        assert_eq!(
            framing(
                &with("200 OK", b"Transfer-Encoding: chunked, chunked\r\n\r\n"),
                Get
            ),
            Err(HeadError::ChunkedRepeated)
        );
        // A coding we do not decode is refused (the data plane answers 502), not read to the
        // close as RFC 9112 §6.3 ¶4 would allow.
        assert_eq!(
            framing(&with("200 OK", b"Transfer-Encoding: gzip\r\n\r\n"), Get),
            Err(HeadError::ChunkedNotFinal)
        );
        // Bodiless statuses ignore even broken framing fields.
        assert_eq!(
            framing(&with("304 Not Modified", b"Content-Length: x\r\n\r\n"), Get),
            Ok(Framing::None)
        );
    }

    #[test]
    fn interim_responses_precede_the_final_one() {
        let buf = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (first, used) = parse_response_head(buf, Method::Get).unwrap().unwrap();
        assert!(first.is_interim());
        let rest = &buf[used..];
        let (last, used) = parse_response_head(rest, Method::Get).unwrap().unwrap();
        assert!(!last.is_interim());
        assert_eq!(&rest[used..], b"ok");
        let continue_ = head(b"HTTP/1.1 100 Continue\r\n\r\n", Method::Post).unwrap();
        assert!(continue_.is_continue() && continue_.is_interim());
        let switching = head(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            Method::Get,
        )
        .unwrap();
        assert!(switching.is_switching_protocols() && !switching.is_interim());
    }

    #[test]
    fn malformed_status_lines_and_fields() {
        for bad in [
            &b"HTTP/1.1 20 OK\r\n\r\n"[..],
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/1.1 600 High\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
        ] {
            assert_eq!(
                head(bad, Method::Get).err(),
                Some(HeadError::BadStatusLine),
                "{bad:?}"
            );
        }
        assert_eq!(
            head(b"HTTP/2.0 200 OK\r\n\r\n", Method::Get).err(),
            Some(HeadError::BadVersion)
        );
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", Method::Get).err(),
            Some(HeadError::ObsFold)
        );
        assert_eq!(
            head(
                b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n",
                Method::Get
            )
            .err(),
            Some(HeadError::WhitespaceBeforeColon)
        );
        assert_eq!(
            head(
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Method::Get
            )
            .err(),
            Some(HeadError::TransferEncodingInHttp10)
        );
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nA: b", Method::Get),
            Ok(None)
        );
        let limits = Limits {
            max_head_bytes: 24,
            ..Limits::default()
        };
        assert_eq!(
            parse_response_head_with(
                b"HTTP/1.1 200 OK\r\nA: bcdefghijk\r\n\r\n",
                Method::Get,
                &limits
            ),
            Err(HeadError::HeadTooLarge)
        );
    }
}
