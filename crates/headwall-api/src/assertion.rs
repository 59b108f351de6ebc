//! Client authentication at `/token`: `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core
//! §9), and signed request objects at `/authorize` (RFC 9101), checked with the client's
//! registered public keys.
//!
//! The assertion must be signed with ES256, RS256 or EdDSA by a key in the client's JWKS file,
//! have `iss` = `sub` = the client id, an `aud` naming the token endpoint or the issuer, an
//! `exp` in the future at most 300 s after its `iat`, and a `jti` never seen before from that
//! client. The JWKS file is re-read when its modification time changes, so a client's key
//! rotation needs no restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The longest an assertion may live, `exp − iat` (docs/design.md, HTTPS).
const MAX_LIFETIME_SECS: u64 = 300;
/// Clock skew allowed on `exp` and `iat`.
const LEEWAY_SECS: u64 = 30;
/// `client_assertion_type` for a JWT (RFC 7523 §2.2).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Why an assertion does not authenticate its client. Said to the client only as
/// `invalid_client`; the variant is for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    Malformed,
    NoKeys,
    BadSignature,
    BadClaims,
    TooLong,
}

/// A well-signed assertion whose `jti` has still to be used up: the caller creates `key` in
/// the records for `ttl` (once in the whole fleet), and refuses the assertion as replayed when
/// it already exists.
#[derive(Debug)]
pub(crate) struct Unused {
    pub(crate) key: String,
    pub(crate) ttl: Duration,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    exp: u64,
    iat: Option<u64>,
    jti: Option<String>,
}

#[derive(Deserialize)]
struct Unverified {
    iss: Option<String>,
}

/// The `iss` an assertion claims, read before any key is chosen (the key is the client's).
pub(crate) fn claimed_client(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Unverified>(&bytes).ok()?.iss
}

/// A JWKS file's keys and the modification time they were read at.
type CachedKeys = (Option<SystemTime>, Arc<JwkSet>);

/// The registered keys of every client, cached by file and modification time. (The
/// assertions already used are records, kept where the codes are.)
#[derive(Default)]
pub(crate) struct Assertions {
    keys: Mutex<HashMap<PathBuf, CachedKeys>>,
}

impl Assertions {
    /// Checks `assertion` for `client_id` with the keys in `jwks_file`; `audiences` are the
    /// token endpoint's URL and the issuer. On success, what the caller must record to use the
    /// `jti` up.
    pub(crate) fn verify(
        &self,
        assertion: &str,
        client_id: &str,
        jwks_file: &Path,
        audiences: &[String],
        now: u64,
    ) -> Result<Unused, Rejected> {
        let claims: Claims = self.decode(
            assertion,
            client_id,
            jwks_file,
            audiences,
            &["exp", "iss", "aud", "sub"],
        )?;
        if claims.sub != client_id || claims.iss != client_id {
            return Err(Rejected::BadClaims);
        }
        let iat = claims.iat.ok_or(Rejected::BadClaims)?;
        if iat > now + LEEWAY_SECS {
            return Err(Rejected::BadClaims);
        }
        if claims.exp.saturating_sub(iat) > MAX_LIFETIME_SECS {
            return Err(Rejected::TooLong);
        }
        let jti = claims
            .jti
            .filter(|jti| !jti.is_empty() && jti.len() <= 256)
            .ok_or(Rejected::BadClaims)?;
        // Remembered until the assertion could no longer be accepted anyway.
        let digest = Sha256::digest(format!("{client_id}\0{jti}").as_bytes());
        Ok(Unused {
            key: format!("headwall:api:jti:{}", crate::hex(&digest)),
            ttl: Duration::from_secs((claims.exp + LEEWAY_SECS).saturating_sub(now).max(1)),
        })
    }

    /// A signed request object's parameters (RFC 9101): signed by `client_id` with a key in
    /// `jwks_file`, `iss` the client, `aud` the issuer, not expired when it says when it
    /// expires. Only string-valued members are parameters.
    pub(crate) fn request_object(
        &self,
        request: &str,
        client_id: &str,
        jwks_file: &Path,
        issuer: &str,
    ) -> Result<HashMap<String, String>, Rejected> {
        let claims: serde_json::Map<String, serde_json::Value> = self.decode(
            request,
            client_id,
            jwks_file,
            &[issuer.to_owned()],
            &["iss", "aud"],
        )?;
        Ok(claims
            .into_iter()
            .filter_map(|(name, value)| match value {
                serde_json::Value::String(text) => Some((name, text)),
                _ => None,
            })
            .collect())
    }

    /// A JWS signed with ES256, RS256 or EdDSA by one of the keys in `jwks_file` (its `kid`
    /// when the header names one), with `iss` = `client_id`, an `aud` among `audiences`, the
    /// `required` claims, and `exp` in the future when present; its claims as `T`.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        jwt: &str,
        client_id: &str,
        jwks_file: &Path,
        audiences: &[String],
        required: &[&str],
    ) -> Result<T, Rejected> {
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| Rejected::Malformed)?;
        if !matches!(
            header.alg,
            Algorithm::ES256 | Algorithm::RS256 | Algorithm::EdDSA
        ) {
            return Err(Rejected::BadSignature);
        }
        let keys = self.keys_of(jwks_file).ok_or(Rejected::NoKeys)?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(audiences);
        validation.set_issuer(&[client_id]);
        validation.set_required_spec_claims(required);
        validation.leeway = LEEWAY_SECS;
        let candidates = keys.keys.iter().filter(|jwk| {
            let family_fits = matches!(
                (&jwk.algorithm, header.alg),
                (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
                    | (AlgorithmParameters::RSA(_), Algorithm::RS256)
                    | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
            );
            let kid_fits = match (&header.kid, &jwk.common.key_id) {
                (Some(wanted), Some(kid)) => wanted == kid,
                _ => true,
            };
            family_fits && kid_fits
        });
        for jwk in candidates {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            if let Ok(data) = jsonwebtoken::decode::<T>(jwt, &key, &validation) {
                return Ok(data.claims);
            }
        }
        Err(Rejected::BadSignature)
    }

    /// The client's keys, re-read when the file changed; `None` when it cannot be read.
    fn keys_of(&self, path: &Path) -> Option<Arc<JwkSet>> {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut cache = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((when, keys)) = cache.get(path)
            && *when == modified
            && modified.is_some()
        {
            return Some(keys.clone());
        }
        let text = std::fs::read_to_string(path).ok()?;
        let set: JwkSet = serde_json::from_str(&text).ok()?;
        let keys = Arc::new(set);
        cache.insert(path.to_owned(), (modified, keys.clone()));
        Some(keys)
    }
}

/// RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge, for a verifier
/// of 43 to 128 unreserved characters (§4.1).
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_follows_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK",
            challenge
        ));
        assert!(!pkce_matches("short", challenge));
    }

    #[test]
    fn the_claimed_client_is_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"shop-app"}"#);
        assert_eq!(
            claimed_client(&format!("e30.{payload}.sig")).as_deref(),
            Some("shop-app")
        );
        assert_eq!(claimed_client("not-a-jwt"), None);
    }
}
