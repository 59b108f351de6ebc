//! Why a head, a body or a write was refused: one variant per reason, each with a label.

use std::fmt;

/// Why a request or response head was refused.
///
/// Every variant is its own reason with an [`as_str`](HeadError::as_str) label (for metrics and
/// logs; it never carries a header value). [`status`](HeadError::status) is the answer a server
/// gives a client for a refused *request* head; a proxy that refuses an upstream *response*
/// answers 502 whatever the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeadError {
    /// The head did not end within `Limits::max_head_bytes` (431, RFC 6585 §5).
    HeadTooLarge,
    /// More field lines than `Limits::max_fields` (431).
    TooManyFields,
    /// The request target is longer than `Limits::max_target_bytes` (414, RFC 9110 §15.5.15).
    TargetTooLong,
    /// The request line is not `method SP request-target SP HTTP-version` (RFC 9112 §3): a
    /// method that is not a token, an empty target, several spaces, a control character.
    BadRequestLine,
    /// The status line is not `HTTP-version SP 3DIGIT SP reason-phrase` (RFC 9112 §4), or the
    /// code is outside 100..=599.
    BadStatusLine,
    /// Not `HTTP/1.0` or `HTTP/1.1` (RFC 9112 §2.3).
    BadVersion,
    /// A CR not followed by LF where a line ends (RFC 9112 §2.2).
    BadLineEnding,
    /// The request target is none of the four forms of RFC 9112 §3.2 that fit its method
    /// (origin-form, absolute-form, authority-form for CONNECT only, `*` for OPTIONS only), or
    /// holds a byte outside US-ASCII or a fragment.
    BadTarget,
    /// A field name that is not a token (RFC 9110 §5.1), or a line without a colon.
    BadFieldName,
    /// Whitespace between a field name and its colon (RFC 9112 §5.1: a server MUST reject).
    WhitespaceBeforeColon,
    /// A field line that starts with whitespace: obsolete line folding (RFC 9112 §5.2), or
    /// whitespace before the first field (§2.2).
    ObsFold,
    /// NUL, a bare CR or another control character in a field value (RFC 9110 §5.5).
    BadFieldValue,
    /// An HTTP/1.1 request without `Host` (RFC 9112 §3.2: 400).
    MissingHost,
    /// More than one `Host` field line (RFC 9112 §3.2: 400).
    MultipleHost,
    /// A `Host` value that is not `uri-host [":" port]` (RFC 9112 §3.2: 400).
    BadHost,
    /// A `Content-Length` that is not 1*DIGIT (RFC 9110 §8.6), in any list member.
    BadContentLength,
    /// A `Content-Length` past 2^64 − 1 (RFC 9110 §8.6: beyond what the recipient can hold).
    ContentLengthOverflow,
    /// `Content-Length` values that differ (RFC 9112 §6.3 ¶5: unrecoverable).
    ContentLengthMismatch,
    /// `Transfer-Encoding` whose final coding is not `chunked` (RFC 9112 §6.3 ¶4: a request's
    /// length cannot be determined: 400; a response's is not read to the close here either).
    ChunkedNotFinal,
    /// `chunked` applied more than once, in one field or several (RFC 9112 §7.1).
    ChunkedRepeated,
    /// A transfer coding other than `chunked` before it (`gzip, chunked`): we decode none
    /// (RFC 9112 §6.1: 501 for a request).
    UnsupportedCoding,
    /// `Transfer-Encoding` in an HTTP/1.0 message (RFC 9112 §6.1: faulty framing).
    TransferEncodingInHttp10,
}

impl HeadError {
    /// The status a server answers a request refused for this reason with.
    pub fn status(self) -> u16 {
        match self {
            HeadError::HeadTooLarge | HeadError::TooManyFields => 431,
            HeadError::TargetTooLong => 414,
            HeadError::UnsupportedCoding => 501,
            _ => 400,
        }
    }

    /// A short stable label: metric label, log field.
    pub fn as_str(self) -> &'static str {
        match self {
            HeadError::HeadTooLarge => "head_too_large",
            HeadError::TooManyFields => "too_many_fields",
            HeadError::TargetTooLong => "target_too_long",
            HeadError::BadRequestLine => "bad_request_line",
            HeadError::BadStatusLine => "bad_status_line",
            HeadError::BadVersion => "bad_version",
            HeadError::BadLineEnding => "bad_line_ending",
            HeadError::BadTarget => "bad_target",
            HeadError::BadFieldName => "bad_field_name",
            HeadError::WhitespaceBeforeColon => "whitespace_before_colon",
            HeadError::ObsFold => "obs_fold",
            HeadError::BadFieldValue => "bad_field_value",
            HeadError::MissingHost => "missing_host",
            HeadError::MultipleHost => "multiple_host",
            HeadError::BadHost => "bad_host",
            HeadError::BadContentLength => "bad_content_length",
            HeadError::ContentLengthOverflow => "content_length_overflow",
            HeadError::ContentLengthMismatch => "content_length_mismatch",
            HeadError::ChunkedNotFinal => "chunked_not_final",
            HeadError::ChunkedRepeated => "chunked_repeated",
            HeadError::UnsupportedCoding => "unsupported_coding",
            HeadError::TransferEncodingInHttp10 => "transfer_encoding_in_http10",
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed HTTP head: {}", self.as_str())
    }
}

impl std::error::Error for HeadError {}

/// Why a message body could not be decoded. A request body refused mid-way is answered with
/// 400 (when no response has started) and the connection closed: its end is unknowable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyError {
    /// A chunk size that is not 1*HEXDIG (RFC 9112 §7.1).
    BadChunkSize,
    /// A chunk size past 2^64 − 1 (RFC 9112 §7.1: beyond what the recipient can hold).
    ChunkSizeOverflow,
    /// A chunk extension with a control character, or whitespace not followed by `;`
    /// (RFC 9112 §7.1.1).
    BadChunkExtension,
    /// A chunk line (size and extensions) longer than `BodyLimits::max_chunk_line`.
    ChunkLineTooLong,
    /// A chunk line, chunk data or trailer line not ended by CRLF (RFC 9112 §7.1: a bare LF
    /// is not accepted inside a chunked body).
    BadLineEnding,
    /// Chunk data longer than its size: the octet after the data is not CR (RFC 9112 §7.1).
    ChunkDataTooLong,
    /// A trailer line that is not a field line (RFC 9112 §7.1.2).
    BadTrailer,
    /// The trailer section is larger than `BodyLimits::max_trailer_bytes`.
    TrailersTooLarge,
    /// The connection closed before the body ended.
    Incomplete,
}

impl BodyError {
    /// A short stable label: metric label, log field.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyError::BadChunkSize => "bad_chunk_size",
            BodyError::ChunkSizeOverflow => "chunk_size_overflow",
            BodyError::BadChunkExtension => "bad_chunk_extension",
            BodyError::ChunkLineTooLong => "chunk_line_too_long",
            BodyError::BadLineEnding => "bad_line_ending",
            BodyError::ChunkDataTooLong => "chunk_data_too_long",
            BodyError::BadTrailer => "bad_trailer",
            BodyError::TrailersTooLarge => "trailers_too_large",
            BodyError::Incomplete => "incomplete",
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed HTTP body: {}", self.as_str())
    }
}

impl std::error::Error for BodyError {}

/// Why the head writer refused to write a head: it never writes bytes that would read back as
/// another head (header injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteError {
    /// A method that is not a token.
    BadMethod,
    /// A target that is empty or holds a space or a control character.
    BadTarget,
    /// A reason phrase with CR, LF or another control character but HTAB.
    BadReason,
    /// A status code outside 100..=999 (three digits).
    BadStatus,
    /// A field name that is not a token.
    BadFieldName,
    /// A field value with NUL, CR, LF or another control character but HTAB, or with
    /// whitespace at either end (it would not read back the same).
    BadFieldValue,
}

impl WriteError {
    /// A short stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteError::BadMethod => "bad_method",
            WriteError::BadTarget => "bad_target",
            WriteError::BadReason => "bad_reason",
            WriteError::BadStatus => "bad_status",
            WriteError::BadFieldName => "bad_field_name",
            WriteError::BadFieldValue => "bad_field_value",
        }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused to write HTTP head: {}", self.as_str())
    }
}

impl std::error::Error for WriteError {}
