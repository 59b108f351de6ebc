//! Subscriber identity types and the values headwall discloses to partners.
//!
//! This crate is what turns a subscriber into a header value, and nothing else:
//!
//! - [`Msisdn`] and [`Imsi`] hold subscriber identifiers. Their `Debug` and `Display` redact,
//!   so logging one by accident shows only the last three digits; the raw value comes out only
//!   through the loudly named `expose_digits`.
//! - [`PseudonymKey`] derives one [`PartnerPseudonymKey`] per partner (HKDF-SHA256), which maps
//!   an MSISDN to a [`Pseudonym`]: stable for one partner, unlinkable across partners.
//! - [`SigningKey`] and [`TokenIssuer`] produce short-lived EdDSA-signed [`Token`]s (compact
//!   JWS) and the JWKS document partners verify them with.
//! - [`encode_key_file`] and [`decode_key_file`] define the text format of the key files.
//!
//! It is **pure**: no file or network I/O, no clock, no randomness source. Callers pass key bytes,
//! times and nonces in, so everything here is deterministic and tests in microseconds. It does
//! not decide *whether* a value may be disclosed — that is `headwall-policy` — and it never
//! prints or logs. Error messages never contain subscriber data or key material.
//!
//! Start with [`Msisdn::parse`], then [`PseudonymKey::for_partner`] or [`TokenIssuer::issue`]:
//!
//! ```
//! use headwall_identity::{Msisdn, PseudonymKey, SigningKey, TokenIssuer, TokenRequest};
//!
//! # fn main() -> Result<(), headwall_identity::IdentityError> {
//! let msisdn = Msisdn::parse("+447700900123")?;
//! assert_eq!(msisdn.to_string(), "msisdn:•••••••••123"); // logs never see the number
//!
//! // Key bytes come from the key files (see `decode_key_file`); fixed here for the example.
//! let agecheck = PseudonymKey::from_bytes(&[7; 32])?.for_partner("agecheck");
//! let pseudonym = agecheck.pseudonym(&msisdn);
//! assert_eq!(pseudonym.as_str().len(), 22);
//!
//! let issuer = TokenIssuer::new(SigningKey::from_seed(&[9; 32])?, "headwall.example-operator");
//! let token = issuer.issue(&TokenRequest {
//!     audience: "agecheck",
//!     subject: &pseudonym,
//!     purpose: "age_verification",
//!     issued_at: 1_700_000_000, // the caller's clock
//!     nonce: [0x5a; 16],        // the caller's randomness
//! });
//! assert_eq!(token.expose().split('.').count(), 3);
//! # Ok(())
//! # }
//! ```

mod error;
mod keyfile;
mod pseudonym;
mod redact;
mod secret;
mod subscriber;
mod token;

pub use error::{FormatRejection, IdentityError};
pub use keyfile::{KEY_FILE_CHARS, KEY_LEN, decode_key_file, encode_key_file};
pub use pseudonym::{PSEUDONYM_LEN, PartnerPseudonymKey, Pseudonym, PseudonymKey};
pub use subscriber::{Imsi, Msisdn};
pub use token::{SigningKey, Token, TokenIssuer, TokenRequest, verify_detached};
