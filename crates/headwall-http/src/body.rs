//! Body decoders: state machines over `&[u8]` that hand back the body's data and say where it
//! ends. They copy nothing: data comes back as slices of the input.
//!
//! Each call to `decode` consumes a prefix of its input and returns at most one contiguous
//! piece of data from within that prefix; call again with the rest. A decoder can be fed one
//! byte at a time and gives the same data as when fed everything at once.

use crate::common::{Framing, is_tchar, is_value_byte};
use crate::error::BodyError;

/// What one `decode` call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Input bytes consumed (framing and data); the rest belongs to a later call, or, once
    /// `done`, to the next message.
    pub consumed: usize,
    /// Body data found in the consumed bytes (possibly empty).
    pub data: &'a [u8],
    /// The body ended; nothing more will be consumed.
    pub done: bool,
}

/// Bounds on a chunked body's framing (its data is not bounded here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// The longest chunk line, size and extensions, without its CRLF.
    pub max_chunk_line: usize,
    /// The largest trailer section, every trailer line with its CRLF.
    pub max_trailer_bytes: usize,
}

impl Default for BodyLimits {
    /// 4 KiB chunk lines, 16 KiB of trailers.
    fn default() -> BodyLimits {
        BodyLimits {
            max_chunk_line: 4 * 1024,
            max_trailer_bytes: 16 * 1024,
        }
    }
}

/// A decoder for any [`Framing`]: the one a connection keeps between reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyDecoder {
    /// No body: done before the first byte.
    None,
    /// `Content-Length`.
    Length(LengthDecoder),
    /// `chunked`.
    Chunked(ChunkedDecoder),
    /// Everything until the connection closes.
    CloseDelimited,
}

impl BodyDecoder {
    /// The decoder for `framing`, with default chunk limits.
    pub fn new(framing: Framing) -> BodyDecoder {
        BodyDecoder::with_limits(framing, BodyLimits::default())
    }

    /// The decoder for `framing`.
    pub fn with_limits(framing: Framing, limits: BodyLimits) -> BodyDecoder {
        match framing {
            Framing::None => BodyDecoder::None,
            Framing::Length(length) => BodyDecoder::Length(LengthDecoder::new(length)),
            Framing::Chunked => BodyDecoder::Chunked(ChunkedDecoder::with_limits(limits)),
            Framing::CloseDelimited => BodyDecoder::CloseDelimited,
        }
    }

    /// Decodes from `input`; see [`Decoded`].
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>, BodyError> {
        match self {
            BodyDecoder::None => Ok(Decoded {
                consumed: 0,
                data: &[],
                done: true,
            }),
            BodyDecoder::Length(decoder) => Ok(decoder.decode(input)),
            BodyDecoder::Chunked(decoder) => decoder.decode(input),
            BodyDecoder::CloseDelimited => Ok(Decoded {
                consumed: input.len(),
                data: input,
                done: false,
            }),
        }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::None => true,
            BodyDecoder::Length(decoder) => decoder.is_done(),
            BodyDecoder::Chunked(decoder) => decoder.is_done(),
            BodyDecoder::CloseDelimited => false,
        }
    }

    /// The connection closed: `Ok` when that ends the body (it was done, or close-delimited),
    /// [`BodyError::Incomplete`] when the body was cut.
    pub fn finish(&self) -> Result<(), BodyError> {
        if self.is_done() || *self == BodyDecoder::CloseDelimited {
            Ok(())
        } else {
            Err(BodyError::Incomplete)
        }
    }
}

/// Counts a `Content-Length` body down to zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthDecoder {
    remaining: u64,
}

impl LengthDecoder {
    /// A body of `length` octets.
    pub fn new(length: u64) -> LengthDecoder {
        LengthDecoder { remaining: length }
    }

    /// Octets still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether every octet has come.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Takes up to the remaining length from `input`.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Decoded<'a> {
        let take = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        self.remaining -= take as u64;
        Decoded {
            consumed: take,
            data: input.get(..take).unwrap_or_default(),
            done: self.remaining == 0,
        }
    }
}

/// Decodes `Transfer-Encoding: chunked` (RFC 9112 §7.1) strictly: hex sizes with an overflow
/// check, extensions skipped, CRLF (never a bare LF) after every line and every chunk's data,
/// trailer fields read, checked for shape and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: State,
    limits: BodyLimits,
    /// Bytes of the current chunk line, or of the trailer section so far.
    counted: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `digits` so far.
    Size { size: u64, digits: u32 },
    /// Whitespace after the size: only `;` may follow (BWS, RFC 9112 §7.1.1).
    SizeSpace { size: u64 },
    /// Inside chunk extensions, until CR.
    Extension { size: u64 },
    /// CR seen after the chunk line: LF must follow.
    SizeLf { size: u64 },
    /// Chunk data, `remaining` octets.
    Data { remaining: u64 },
    /// CR after the data.
    DataCr,
    /// LF after the data.
    DataLf,
    /// At the start of a trailer line or the final CRLF.
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value.
    TrailerValue,
    /// CR seen at the end of a trailer line: LF must follow.
    TrailerLf,
    /// CR of the final empty line seen: LF must follow.
    FinalLf,
    /// The body ended.
    Done,
}

impl ChunkedDecoder {
    /// A decoder with default limits.
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder::with_limits(BodyLimits::default())
    }

    /// A decoder with `limits`.
    pub fn with_limits(limits: BodyLimits) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            limits,
            counted: 0,
        }
    }

    /// Whether the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`: consumes framing up to and including at most one run of data.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>, BodyError> {
        let mut at = 0;
        while at < input.len() {
            if let State::Data { remaining } = self.state {
                let available = input.len() - at;
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(available);
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining: left }
                };
                return Ok(Decoded {
                    consumed: at + take,
                    data: input.get(at..at + take).unwrap_or_default(),
                    done: false,
                });
            }
            if self.state == State::Done {
                break;
            }
            let byte = input.get(at).copied().unwrap_or_default();
            self.step(byte)?;
            at += 1;
        }
        Ok(Decoded {
            consumed: at,
            data: &[],
            done: self.state == State::Done,
        })
    }

    /// One framing byte.
    fn step(&mut self, byte: u8) -> Result<(), BodyError> {
        self.state = match self.state {
            State::Size { size, digits } => {
                self.count_line(byte)?;
                match byte {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = u64::from(hex_value(byte));
                        let size = size
                            .checked_mul(16)
                            .and_then(|size| size.checked_add(digit))
                            .ok_or(BodyError::ChunkSizeOverflow)?;
                        State::Size {
                            size,
                            digits: digits + 1,
                        }
                    }
                    _ if digits == 0 => return Err(BodyError::BadChunkSize),
                    b';' => State::Extension { size },
                    b' ' | b'\t' => State::SizeSpace { size },
                    b'\r' => State::SizeLf { size },
                    b'\n' => return Err(BodyError::BadLineEnding),
                    _ => return Err(BodyError::BadChunkSize),
                }
            }
            State::SizeSpace { size } => {
                self.count_line(byte)?;
                match byte {
                    b' ' | b'\t' => State::SizeSpace { size },
                    b';' => State::Extension { size },
                    _ => return Err(BodyError::BadChunkExtension),
                }
            }
            State::Extension { size } => {
                self.count_line(byte)?;
                match byte {
                    b'\r' => State::SizeLf { size },
                    b'\n' => return Err(BodyError::BadLineEnding),
                    _ if is_value_byte(byte) => State::Extension { size },
                    _ => return Err(BodyError::BadChunkExtension),
                }
            }
            State::SizeLf { size } => {
                if byte != b'\n' {
                    return Err(BodyError::BadLineEnding);
                }
                self.counted = 0;
                if size == 0 {
                    State::TrailerStart
                } else {
                    State::Data { remaining: size }
                }
            }
            // Reached only with a zero-length remainder, which `decode` never leaves.
            State::Data { .. } => State::DataCr,
            State::DataCr => match byte {
                b'\r' => State::DataLf,
                _ => return Err(BodyError::ChunkDataTooLong),
            },
            State::DataLf => match byte {
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return Err(BodyError::BadLineEnding),
            },
            State::TrailerStart => {
                self.count_trailer()?;
                match byte {
                    b'\r' => State::FinalLf,
                    b'\n' => return Err(BodyError::BadLineEnding),
                    _ if is_tchar(byte) => State::TrailerName,
                    _ => return Err(BodyError::BadTrailer),
                }
            }
            State::TrailerName => {
                self.count_trailer()?;
                match byte {
                    b':' => State::TrailerValue,
                    _ if is_tchar(byte) => State::TrailerName,
                    _ => return Err(BodyError::BadTrailer),
                }
            }
            State::TrailerValue => {
                self.count_trailer()?;
                match byte {
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err(BodyError::BadLineEnding),
                    _ if is_value_byte(byte) => State::TrailerValue,
                    _ => return Err(BodyError::BadTrailer),
                }
            }
            State::TrailerLf => {
                self.count_trailer()?;
                match byte {
                    b'\n' => State::TrailerStart,
                    _ => return Err(BodyError::BadLineEnding),
                }
            }
            State::FinalLf => match byte {
                b'\n' => State::Done,
                _ => return Err(BodyError::BadLineEnding),
            },
            State::Done => State::Done,
        };
        Ok(())
    }

    /// Counts one byte of a chunk line; its ending CR is not part of it.
    fn count_line(&mut self, byte: u8) -> Result<(), BodyError> {
        if byte == b'\r' {
            return Ok(());
        }
        self.counted += 1;
        if self.counted > self.limits.max_chunk_line {
            return Err(BodyError::ChunkLineTooLong);
        }
        Ok(())
    }

    fn count_trailer(&mut self) -> Result<(), BodyError> {
        self.counted += 1;
        if self.counted > self.limits.max_trailer_bytes {
            return Err(BodyError::TrailersTooLarge);
        }
        Ok(())
    }
}

impl Default for ChunkedDecoder {
    fn default() -> ChunkedDecoder {
        ChunkedDecoder::new()
    }
}

fn hex_value(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        b'A'..=b'F' => byte - b'A' + 10,
        _ => 0,
    }
}

/// Writes `data` as one chunk (size in hex, CRLF, data, CRLF) into `out`; nothing for empty
/// data (an empty chunk would end the body).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut size = data.len();
    while size > 0 || at == digits.len() {
        at -= 1;
        digits[at] = HEX[size % 16];
        size /= 16;
    }
    out.reserve(digits.len() - at + data.len() + 4);
    out.extend_from_slice(digits.get(at..).unwrap_or_default());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Writes the last chunk and an empty trailer section: the end of a chunked body.
pub fn write_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

const HEX: [u8; 16] = *b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes all of `input` in pieces of `step` bytes; the data, and what is left after
    /// the body.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), BodyError> {
        let mut decoder = ChunkedDecoder::new();
        let mut data = Vec::new();
        let mut at = 0;
        let mut fed = 0;
        while !decoder.is_done() {
            fed = (fed + step).min(input.len());
            let decoded = decoder.decode(&input[at..fed])?;
            data.extend_from_slice(decoded.data);
            at += decoded.consumed;
            if decoded.consumed == 0 && fed == input.len() && !decoded.done {
                return Err(BodyError::Incomplete);
            }
        }
        Ok((data, input.len() - at))
    }

    fn decode(input: &[u8]) -> Result<(Vec<u8>, usize), BodyError> {
        let whole = decode_in_steps(input, input.len().max(1));
        for step in 1..4 {
            assert_eq!(decode_in_steps(input, step), whole, "step {step}");
        }
        whole
    }

    #[test]
    fn decodes_chunks_and_stops_at_the_end() {
        assert_eq!(
            decode(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET"),
            Ok((b"hello world".to_vec(), 3))
        );
        assert_eq!(decode(b"0\r\n\r\n"), Ok((Vec::new(), 0)));
        assert_eq!(
            decode(b"A\r\n0123456789\r\n0\r\n\r\n"),
            Ok((b"0123456789".to_vec(), 0))
        );
        assert_eq!(
            decode(b"000a\r\n0123456789\r\n0\r\n\r\n"),
            Ok((b"0123456789".to_vec(), 0))
        );
    }

    #[test]
    fn extensions_are_ignored_and_trailers_dropped() {
        assert_eq!(
            decode(b"5;name=value\r\nhello\r\n0;last\r\n\r\n"),
            Ok((b"hello".to_vec(), 0))
        );
        assert_eq!(
            decode(b"5 ;a=\"b c\"\r\nhello\r\n0\r\n\r\n"),
            Ok((b"hello".to_vec(), 0))
        );
        assert_eq!(
            decode(b"5\r\nhello\r\n0\r\nX-MSISDN: 447700900999\r\nA:\r\n\r\n"),
            Ok((b"hello".to_vec(), 0))
        );
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for (input, error) in [
            (&b"zz\r\nhello\r\n0\r\n\r\n"[..], BodyError::BadChunkSize),
            (b"\r\nhello\r\n0\r\n\r\n", BodyError::BadChunkSize),
            (b";x\r\n", BodyError::BadChunkSize),
            (b"-5\r\nhello\r\n", BodyError::BadChunkSize),
            (b"0x5\r\nhello\r\n", BodyError::BadChunkSize),
            (
                b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
                BodyError::ChunkSizeOverflow,
            ),
            (b"10000000000000000\r\n", BodyError::ChunkSizeOverflow),
            (b"5\nhello\r\n0\r\n\r\n", BodyError::BadLineEnding),
            (b"5\rhello\r\n", BodyError::BadLineEnding),
            (b"5;a\nhello\r\n", BodyError::BadLineEnding),
            (b"5;a\x00\r\nhello\r\n", BodyError::BadChunkExtension),
            (b"5 \r\nhello\r\n", BodyError::BadChunkExtension),
            (b"5 x\r\nhello\r\n", BodyError::BadChunkExtension),
            (b"3\r\nhello\r\n0\r\n\r\n", BodyError::ChunkDataTooLong),
            (b"5\r\nhello\n0\r\n\r\n", BodyError::ChunkDataTooLong),
            (b"5\r\nhello\rX0\r\n\r\n", BodyError::BadLineEnding),
            (b"0\r\n\n", BodyError::BadLineEnding),
            (b"0\r\nA: b\n\r\n", BodyError::BadLineEnding),
            (b"0\r\nA: b\rX: c\r\n\r\n", BodyError::BadLineEnding),
            (b"0\r\n b\r\n\r\n", BodyError::BadTrailer),
            (b"0\r\nA b: c\r\n\r\n", BodyError::BadTrailer),
            (b"0\r\nA: b\x00\r\n\r\n", BodyError::BadTrailer),
            (b"0\r\n\rX", BodyError::BadLineEnding),
        ] {
            assert_eq!(
                decode(input),
                Err(error),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // The largest size that fits is a size, not an overflow.
        let mut decoder = ChunkedDecoder::new();
        let decoded = decoder.decode(b"ffffffffffffffff\r\nab").unwrap();
        assert_eq!(decoded.data, b"ab");
    }

    #[test]
    fn limits_bound_chunk_lines_and_trailers() {
        let limits = BodyLimits {
            max_chunk_line: 8,
            max_trailer_bytes: 10,
        };
        let run = |input: &[u8]| {
            let mut decoder = ChunkedDecoder::with_limits(limits);
            let mut at = 0;
            loop {
                let decoded = decoder.decode(&input[at..])?;
                at += decoded.consumed;
                if decoded.done || decoded.consumed == 0 {
                    return Ok(decoded.done);
                }
            }
        };
        assert_eq!(run(b"5;abcdef\r\nhello\r\n0\r\n\r\n"), Ok(true));
        assert_eq!(
            run(b"5;abcdefg\r\nhello\r\n"),
            Err(BodyError::ChunkLineTooLong)
        );
        assert_eq!(run(b"0\r\nA: 1234\r\n\r\n"), Ok(true));
        assert_eq!(
            run(b"0\r\nA: 12345\r\n\r\n"),
            Err(BodyError::TrailersTooLarge)
        );
    }

    #[test]
    fn incomplete_bodies_wait_then_fail_at_close() {
        let mut decoder = BodyDecoder::new(Framing::Chunked);
        let decoded = decoder.decode(b"5\r\nhel").unwrap();
        assert_eq!(
            decoded,
            Decoded {
                consumed: 6,
                data: b"hel",
                done: false
            }
        );
        assert_eq!(decoder.finish(), Err(BodyError::Incomplete));
        let decoded = decoder.decode(b"lo\r\n0\r\n\r\n").unwrap();
        assert_eq!(decoded.data, b"lo");
        let decoded = decoder
            .decode(&b"lo\r\n0\r\n\r\n"[decoded.consumed..])
            .unwrap();
        assert!(decoded.done && decoded.data.is_empty());
        assert_eq!(decoder.finish(), Ok(()));
        // Done means done: later bytes belong to the next message.
        assert_eq!(decoder.decode(b"GET").unwrap().consumed, 0);
    }

    #[test]
    fn length_bodies_count_down() {
        let mut decoder = BodyDecoder::new(Framing::Length(5));
        let decoded = decoder.decode(b"hel").unwrap();
        assert_eq!(
            decoded,
            Decoded {
                consumed: 3,
                data: b"hel",
                done: false
            }
        );
        assert_eq!(decoder.finish(), Err(BodyError::Incomplete));
        let decoded = decoder.decode(b"loGET").unwrap();
        assert_eq!(
            decoded,
            Decoded {
                consumed: 2,
                data: b"lo",
                done: true
            }
        );
        assert_eq!(decoder.finish(), Ok(()));
        let mut huge = LengthDecoder::new(u64::MAX);
        assert_eq!(huge.decode(b"abc").consumed, 3);
        assert_eq!(huge.remaining(), u64::MAX - 3);
        assert!(BodyDecoder::new(Framing::Length(0)).is_done());
    }

    #[test]
    fn no_body_and_close_delimited() {
        let mut none = BodyDecoder::new(Framing::None);
        assert_eq!(
            none.decode(b"GET").unwrap(),
            Decoded {
                consumed: 0,
                data: b"",
                done: true
            }
        );
        let mut until_close = BodyDecoder::new(Framing::CloseDelimited);
        assert_eq!(until_close.decode(b"abc").unwrap().data, b"abc");
        assert!(!until_close.is_done());
        assert_eq!(until_close.finish(), Ok(()));
    }

    #[test]
    fn written_chunks_decode_to_the_data() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello");
        write_chunk(&mut out, b"");
        write_chunk(&mut out, &[b'x'; 300]);
        write_last_chunk(&mut out);
        assert!(out.starts_with(b"5\r\nhello\r\n12c\r\n"));
        let mut want = b"hello".to_vec();
        want.extend_from_slice(&[b'x'; 300]);
        assert_eq!(decode(&out), Ok((want, 0)));
    }
}
