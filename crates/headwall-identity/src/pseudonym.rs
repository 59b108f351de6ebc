//! Per-partner pseudonyms: HKDF-SHA256 derives a key per partner, HMAC-SHA256 maps an MSISDN.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::IdentityError;
use crate::redact::write_masked;
use crate::secret::SecretBytes;
use crate::subscriber::Msisdn;

/// HKDF salt for per-partner pseudonym keys. Changing it changes every pseudonym.
const HKDF_SALT: &[u8] = b"headwall pseudonym v1";

/// How many bytes of the HMAC output a pseudonym keeps (128 bits).
const PSEUDONYM_BYTES: usize = 16;

/// Length in characters of every [`Pseudonym`]: 16 bytes in unpadded base64url.
pub const PSEUDONYM_LEN: usize = 22;

/// The operator's pseudonym master key: 32 secret bytes.
///
/// Never used directly on an MSISDN: [`PseudonymKey::for_partner`] derives one key per partner,
/// so pseudonyms are stable for a partner and unlinkable across partners. `Debug` shows
/// nothing of the key, and the bytes are overwritten with zeros on drop.
pub struct PseudonymKey(SecretBytes);

impl PseudonymKey {
    /// Takes exactly 32 key bytes (for example from [`crate::decode_key_file`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<PseudonymKey, IdentityError> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| IdentityError::KeyLength {
            what: "pseudonym key",
            expected: 32,
            actual: bytes.len(),
        })?;
        Ok(PseudonymKey(SecretBytes(key)))
    }

    /// Derives the key for one partner: HKDF-SHA256 with the master key as input keying
    /// material, salt `b"headwall pseudonym v1"` and the partner name's bytes as info; 32 bytes.
    ///
    /// The partner name is used exactly as given; callers must pass the configured name.
    #[must_use]
    pub fn for_partner(&self, partner: &str) -> PartnerPseudonymKey {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), &self.0.0);
        let mut okm = SecretBytes([0u8; 32]);
        // HKDF-SHA256 can expand up to 255 * 32 bytes; 32 always fits.
        hk.expand(partner.as_bytes(), &mut okm.0)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        PartnerPseudonymKey(okm)
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

/// One partner's pseudonym key, derived by [`PseudonymKey::for_partner`].
///
/// Cheap to keep per partner in a compiled policy. `Debug` shows nothing of the key; the bytes
/// are overwritten with zeros on drop.
pub struct PartnerPseudonymKey(SecretBytes);

impl PartnerPseudonymKey {
    /// The partner's pseudonym for `msisdn`: HMAC-SHA256 keyed with this partner key over the
    /// MSISDN's international digits (no `+`), first 16 bytes, unpadded base64url (22 chars).
    #[must_use]
    pub fn pseudonym(&self, msisdn: &Msisdn) -> Pseudonym {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0.0)
            .expect("HMAC-SHA256 accepts a key of any length");
        mac.update(msisdn.expose_digits().as_bytes());
        let tag = mac.finalize().into_bytes();
        Pseudonym(URL_SAFE_NO_PAD.encode(&tag[..PSEUDONYM_BYTES]))
    }
}

impl fmt::Debug for PartnerPseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PartnerPseudonymKey(<redacted>)")
    }
}

/// A per-partner pseudonym: 22 characters of unpadded base64url.
///
/// It identifies a subscriber to one partner, so `Debug` and `Display` still redact all but the
/// last three characters; the header value comes from [`Pseudonym::as_str`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym(String);

impl Pseudonym {
    /// The header value: 22 base64url characters.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_masked(f, "pseudonym", &self.0)
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_masked(f, "pseudonym", &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PseudonymKey {
        PseudonymKey::from_bytes(&[7u8; 32]).expect("32 bytes")
    }

    fn msisdn(s: &str) -> Msisdn {
        Msisdn::parse(s).expect("valid msisdn")
    }

    #[test]
    fn shape() {
        let p = key()
            .for_partner("agecheck")
            .pseudonym(&msisdn("447700900123"));
        assert_eq!(p.as_str().len(), PSEUDONYM_LEN);
        assert!(
            p.as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{}",
            p.as_str()
        );
    }

    #[test]
    fn stable_and_separated() {
        let k = key();
        let a = k.for_partner("agecheck");
        let b = k.for_partner("billing-co");
        let m1 = msisdn("447700900123");
        let m2 = msisdn("447700900124");
        assert_eq!(a.pseudonym(&m1), a.pseudonym(&m1));
        assert_eq!(a.pseudonym(&m1), k.for_partner("agecheck").pseudonym(&m1));
        assert_eq!(a.pseudonym(&m1), a.pseudonym(&msisdn("+447700900123")));
        assert_ne!(a.pseudonym(&m1), b.pseudonym(&m1));
        assert_ne!(a.pseudonym(&m1), a.pseudonym(&m2));
        // Partner names are taken as given: case matters.
        assert_ne!(a.pseudonym(&m1), k.for_partner("AgeCheck").pseudonym(&m1));
        // A different master key gives different pseudonyms.
        let other = PseudonymKey::from_bytes(&[8u8; 32]).expect("32 bytes");
        assert_ne!(
            a.pseudonym(&m1),
            other.for_partner("agecheck").pseudonym(&m1)
        );
    }

    #[test]
    fn known_answer_recomputed_independently() {
        let master: [u8; 32] = std::array::from_fn(|i| i as u8);
        let partner = "agecheck";
        let digits = "447700900123";

        let mut partner_key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"headwall pseudonym v1"), &master)
            .expand(partner.as_bytes(), &mut partner_key)
            .unwrap();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&partner_key).unwrap();
        mac.update(digits.as_bytes());
        let full = mac.finalize().into_bytes();
        let expected = URL_SAFE_NO_PAD.encode(&full[..16]);

        let got = PseudonymKey::from_bytes(&master)
            .unwrap()
            .for_partner(partner)
            .pseudonym(&msisdn(digits));
        assert_eq!(got.as_str(), expected);
    }

    #[test]
    fn key_length_checked() {
        for len in [0, 16, 31, 33, 64] {
            let err = PseudonymKey::from_bytes(&vec![1u8; len]).expect_err("wrong length");
            assert_eq!(
                err,
                IdentityError::KeyLength {
                    what: "pseudonym key",
                    expected: 32,
                    actual: len
                }
            );
        }
    }

    #[test]
    fn redacted() {
        let k = PseudonymKey::from_bytes(&[0xAB; 32]).expect("32 bytes");
        assert_eq!(format!("{k:?}"), "PseudonymKey(<redacted>)");
        let pk = k.for_partner("agecheck");
        assert_eq!(format!("{pk:?}"), "PartnerPseudonymKey(<redacted>)");
        let p = pk.pseudonym(&msisdn("447700900123"));
        let raw = p.as_str().to_owned();
        for shown in [p.to_string(), format!("{p:?}")] {
            assert!(!shown.contains(&raw), "{shown}");
            assert!(!shown.contains(&raw[..10]), "{shown}");
            assert!(shown.starts_with("pseudonym:"));
            assert!(shown.ends_with(&raw[raw.len() - 3..]));
        }
    }
}
