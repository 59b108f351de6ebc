//! Key file text format: one line of 43 unpadded base64url characters (32 bytes).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::IdentityError;

/// Length in bytes of every key headwall keeps in a file (pseudonym key, Ed25519 seed).
pub const KEY_LEN: usize = 32;

/// Characters of key text in a key file: 32 bytes as unpadded base64url.
pub const KEY_FILE_CHARS: usize = 43;

/// Encodes key bytes as key file text: unpadded base64url and a newline (44 characters).
#[must_use]
pub fn encode_key_file(bytes: &[u8; KEY_LEN]) -> String {
    let mut text = URL_SAFE_NO_PAD.encode(bytes);
    text.push('\n');
    text
}

/// Decodes key file text written by [`encode_key_file`].
///
/// Surrounding whitespace (a trailing newline, CRLF) is ignored. Anything but exactly 43
/// unpadded base64url characters is an error; the error never echoes the file's content.
pub fn decode_key_file(text: &str) -> Result<[u8; KEY_LEN], IdentityError> {
    let trimmed = text.trim();
    if trimmed.len() != KEY_FILE_CHARS {
        return Err(IdentityError::KeyFileLength {
            expected: KEY_FILE_CHARS,
            actual: trimmed.chars().count(),
        });
    }
    let mut key = [0u8; KEY_LEN];
    // Decoding straight into the fixed array leaves no heap copy of the key behind. 43 valid
    // characters decode to exactly 32 bytes, and the last one must carry no stray bits.
    match URL_SAFE_NO_PAD.decode_slice(trimmed.as_bytes(), &mut key) {
        Ok(KEY_LEN) => Ok(key),
        Ok(_) | Err(_) => {
            key.fill(0);
            Err(IdentityError::KeyFileEncoding)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for key in [
            [0u8; 32],
            [0xFF; 32],
            std::array::from_fn(|i| (i * 37) as u8),
        ] {
            let text = encode_key_file(&key);
            assert_eq!(text.len(), 44);
            assert!(text.ends_with('\n'));
            assert_eq!(text.trim_end().len(), KEY_FILE_CHARS);
            assert!(!text.contains('='));
            assert_eq!(decode_key_file(&text), Ok(key));
            assert_eq!(decode_key_file(text.trim_end()), Ok(key));
            assert_eq!(
                decode_key_file(&format!("  {}\r\n\r\n", text.trim_end())),
                Ok(key)
            );
        }
    }

    #[test]
    fn known_encoding() {
        let text = encode_key_file(&[0xFF; 32]);
        assert_eq!(text, format!("{}8\n", "_".repeat(42)));
    }

    #[test]
    fn bad_inputs() {
        let good = encode_key_file(&[0x5A; 32]);
        let good = good.trim_end();
        let cases: Vec<(String, IdentityError)> = vec![
            (
                String::new(),
                IdentityError::KeyFileLength {
                    expected: 43,
                    actual: 0,
                },
            ),
            (
                "\n".into(),
                IdentityError::KeyFileLength {
                    expected: 43,
                    actual: 0,
                },
            ),
            (
                good[..42].into(),
                IdentityError::KeyFileLength {
                    expected: 43,
                    actual: 42,
                },
            ),
            (
                format!("{good}A"),
                IdentityError::KeyFileLength {
                    expected: 43,
                    actual: 44,
                },
            ),
            // Padded standard form of 32 bytes.
            (
                format!("{good}="),
                IdentityError::KeyFileLength {
                    expected: 43,
                    actual: 44,
                },
            ),
            // Standard-alphabet characters.
            (format!("+{}", &good[1..]), IdentityError::KeyFileEncoding),
            (format!("/{}", &good[1..]), IdentityError::KeyFileEncoding),
            // Whitespace inside.
            (
                format!("{} {}", &good[..20], &good[21..]),
                IdentityError::KeyFileEncoding,
            ),
            // Last character with non-zero trailing bits ('_' = 63 has low bits set).
            (format!("{}_", &good[..42]), IdentityError::KeyFileEncoding),
            // Two keys in one file.
            (
                format!("{good}\n{good}\n"),
                IdentityError::KeyFileLength {
                    expected: 43,
                    actual: 87,
                },
            ),
        ];
        for (input, want) in cases {
            let err = decode_key_file(&input).expect_err("must reject");
            assert_eq!(err, want, "input {input:?}");
            let shown = format!("{err} {err:?}");
            if input.len() >= 8 {
                assert!(!shown.contains(&good[..8]), "{shown}");
            }
        }
    }

    #[test]
    fn non_ascii_length_counts_characters() {
        let err = decode_key_file("é").expect_err("must reject");
        assert_eq!(
            err,
            IdentityError::KeyFileLength {
                expected: 43,
                actual: 1
            }
        );
    }
}
