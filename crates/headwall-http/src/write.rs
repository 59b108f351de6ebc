//! The head writer: a whole request or response head into one buffer, in one reservation.
//!
//! It checks every part before writing any of it, so it never emits bytes that read back as a
//! different head (a CR or LF in a value would start a new field: header injection). On an
//! error `out` is left as it was.

use crate::common::{Version, is_token, is_value_byte};
use crate::error::WriteError;

/// Writes `method SP target SP version CRLF`, each `name: value CRLF` in order, and the
/// final CRLF at the end of `out`.
pub fn write_request_head<'a, I>(
    out: &mut Vec<u8>,
    method: &[u8],
    target: &[u8],
    version: Version,
    fields: I,
) -> Result<(), WriteError>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    I::IntoIter: Clone,
{
    if !is_token(method) {
        return Err(WriteError::BadMethod);
    }
    if target.is_empty() || !target.iter().all(|&b| (b'!'..=b'~').contains(&b)) {
        return Err(WriteError::BadTarget);
    }
    let fields = fields.into_iter();
    let size = fields_size(fields.clone())?;
    let line = method.len() + 1 + target.len() + 1 + VERSION_LEN + 2;
    out.reserve(line + size + 2);
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.push(b' ');
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(b"\r\n");
    write_fields(out, fields);
    Ok(())
}

/// Writes `version SP status SP reason CRLF`, each `name: value CRLF` in order, and the final
/// CRLF at the end of `out`.
pub fn write_response_head<'a, I>(
    out: &mut Vec<u8>,
    version: Version,
    status: u16,
    reason: &[u8],
    fields: I,
) -> Result<(), WriteError>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    I::IntoIter: Clone,
{
    if !(100..=999).contains(&status) {
        return Err(WriteError::BadStatus);
    }
    if !reason.iter().all(|&b| is_value_byte(b)) {
        return Err(WriteError::BadReason);
    }
    let fields = fields.into_iter();
    let size = fields_size(fields.clone())?;
    out.reserve(VERSION_LEN + 5 + reason.len() + 2 + size + 2);
    out.extend_from_slice(version.as_bytes());
    // Three digits: 100..=999 checked above.
    out.extend_from_slice(&[
        b' ',
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    write_fields(out, fields);
    Ok(())
}

/// The bytes the fields take, after checking each.
fn fields_size<'a>(
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<usize, WriteError> {
    let mut size = 0;
    for (name, value) in fields {
        if !is_token(name) {
            return Err(WriteError::BadFieldName);
        }
        let padded = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
        if !value.iter().all(|&b| is_value_byte(b)) || padded(value.first()) || padded(value.last())
        {
            return Err(WriteError::BadFieldValue);
        }
        size += name.len() + 2 + value.len() + 2;
    }
    Ok(size)
}

fn write_fields<'a>(out: &mut Vec<u8>, fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) {
    for (name, value) in fields {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

const VERSION_LEN: usize = b"HTTP/1.1".len();

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Method, parse_request_head, parse_response_head};

    #[test]
    fn writes_a_request_head_in_order_with_crlf() {
        let mut out = b"kept".to_vec();
        let fields = [
            (&b"Host"[..], &b"example.com"[..]),
            (b"X-A", b"1"),
            (b"x-a", b""),
        ];
        write_request_head(&mut out, b"GET", b"/a?b", Version::Http11, fields).unwrap();
        assert_eq!(
            out,
            b"keptGET /a?b HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\nx-a: \r\n\r\n"
        );
        let (head, used) = parse_request_head(&out[4..]).unwrap().unwrap();
        assert_eq!(used, out.len() - 4);
        assert_eq!(head.field_bytes(&out[4..]).collect::<Vec<_>>(), fields);
    }

    #[test]
    fn writes_a_response_head() {
        let mut out = Vec::new();
        let fields = [(&b"Content-Length"[..], &b"2"[..])];
        write_response_head(&mut out, Version::Http11, 204, b"No Content", fields).unwrap();
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n");
        let (head, _) = parse_response_head(&out, Method::Get).unwrap().unwrap();
        assert_eq!(head.status(), 204);
        out.clear();
        write_response_head(&mut out, Version::Http10, 999, b"", []).unwrap();
        assert_eq!(out, b"HTTP/1.0 999 \r\n\r\n");
    }

    #[test]
    fn refuses_what_would_read_back_differently() {
        let none: [(&[u8], &[u8]); 0] = [];
        let request = |method: &[u8], target: &[u8], name: &[u8], value: &[u8]| {
            let mut out = b"kept".to_vec();
            let result =
                write_request_head(&mut out, method, target, Version::Http11, [(name, value)]);
            if result.is_err() {
                assert_eq!(out, b"kept", "wrote on error");
            }
            result
        };
        assert_eq!(request(b"GET", b"/", b"X-A", b"1"), Ok(()));
        assert_eq!(
            request(b"G T", b"/", b"X-A", b"1"),
            Err(WriteError::BadMethod)
        );
        assert_eq!(request(b"", b"/", b"X-A", b"1"), Err(WriteError::BadMethod));
        assert_eq!(
            request(b"GET", b"", b"X-A", b"1"),
            Err(WriteError::BadTarget)
        );
        assert_eq!(
            request(b"GET", b"/a b", b"X-A", b"1"),
            Err(WriteError::BadTarget)
        );
        assert_eq!(
            request(b"GET", b"/a\r\n", b"X-A", b"1"),
            Err(WriteError::BadTarget)
        );
        assert_eq!(
            request(b"GET", b"/", b"X A", b"1"),
            Err(WriteError::BadFieldName)
        );
        assert_eq!(
            request(b"GET", b"/", b"", b"1"),
            Err(WriteError::BadFieldName)
        );
        assert_eq!(
            request(b"GET", b"/", b"X:A", b"1"),
            Err(WriteError::BadFieldName)
        );
        for value in [
            &b"a\r\nX-MSISDN: 1"[..],
            b"a\nb",
            b"a\rb",
            b"a\x00b",
            b" a",
            b"a\t",
        ] {
            assert_eq!(
                request(b"GET", b"/", b"X-A", value),
                Err(WriteError::BadFieldValue),
                "{value:?}"
            );
        }
        let mut out = Vec::new();
        assert_eq!(
            write_response_head(&mut out, Version::Http11, 99, b"", none),
            Err(WriteError::BadStatus)
        );
        assert_eq!(
            write_response_head(&mut out, Version::Http11, 200, b"O\r\nK", none),
            Err(WriteError::BadReason)
        );
        assert!(out.is_empty());
    }
}
