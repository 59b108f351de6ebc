//! Signed tokens: Ed25519 keys, compact JWS issuance and the JWKS document.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::IdentityError;
use crate::pseudonym::Pseudonym;

/// How many bytes of SHA-256(public key) make up the key id (16 base64url characters).
const KID_BYTES: usize = 12;

/// An Ed25519 signing key, made from a 32-byte seed.
///
/// `Debug` shows only the key id, never the seed; the seed is zeroed on drop (by
/// `ed25519-dalek`'s `zeroize` feature).
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// Takes exactly 32 seed bytes (for example from [`crate::decode_key_file`]).
    pub fn from_seed(bytes: &[u8]) -> Result<SigningKey, IdentityError> {
        let seed: &[u8; 32] = bytes.try_into().map_err(|_| IdentityError::KeyLength {
            what: "signing key seed",
            expected: 32,
            actual: bytes.len(),
        })?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(seed)))
    }

    /// The raw 32-byte Ed25519 public key.
    #[must_use]
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The key id (`kid`): unpadded base64url of the first 12 bytes of SHA-256 of the public
    /// key bytes (16 characters). Stable for a key, changes when the key is rotated.
    #[must_use]
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.public_key_bytes());
        URL_SAFE_NO_PAD.encode(&digest[..KID_BYTES])
    }

    /// The public key as a JWK (RFC 8037):
    /// `{"kty":"OKP","crv":"Ed25519","x":..,"kid":..,"alg":"EdDSA","use":"sig"}`.
    #[must_use]
    pub fn public_jwk(&self) -> serde_json::Value {
        // Serializing a struct of strings cannot fail.
        serde_json::to_value(self.jwk()).expect("a JWK always serializes")
    }

    /// Signs `message` (a detached Ed25519 signature), e.g. an audit checkpoint.
    #[must_use]
    pub fn sign_detached(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    fn jwk(&self) -> PublicJwk {
        PublicJwk {
            kty: "OKP",
            crv: "Ed25519",
            x: URL_SAFE_NO_PAD.encode(self.public_key_bytes()),
            kid: self.key_id(),
            alg: "EdDSA",
            use_: "sig",
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(kid={}, <redacted>)", self.key_id())
    }
}

/// Whether `signature` is `public_key`'s Ed25519 signature of `message` (strict verification).
#[must_use]
pub fn verify_detached(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok()
}

/// What one token says: who it is for, about whom, why, and when.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    /// The partner name; becomes the `aud` claim (a string).
    pub audience: &'a str,
    /// The partner's pseudonym for the subscriber; becomes `sub`.
    pub subject: &'a Pseudonym,
    /// The partner's purpose (`age_verification`, `billing`, `identification`); becomes
    /// `purpose`.
    pub purpose: &'a str,
    /// Issue time in Unix seconds; becomes `iat`, and `exp` is 60 s later.
    pub issued_at: u64,
    /// 16 random bytes from the caller; unpadded base64url of them becomes `jti`.
    pub nonce: [u8; 16],
}

/// The protected header, in the order it is serialized.
#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'a str,
    kid: &'a str,
}

/// One public key as a JWK (RFC 8037), in the order it is serialized.
#[derive(Serialize)]
struct PublicJwk {
    kty: &'static str,
    crv: &'static str,
    x: String,
    kid: String,
    alg: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
}

/// A JWK set: `{"keys":[..]}`.
#[derive(Serialize)]
struct JwkSet<'a> {
    keys: &'a [PublicJwk],
}

/// The claims of a token, in the order they are serialized.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    purpose: &'a str,
    iat: u64,
    exp: u64,
    jti: &'a str,
}

/// Issues compact JWS tokens (EdDSA over Ed25519) with one signing key and issuer name.
pub struct TokenIssuer {
    key: SigningKey,
    issuer: String,
    /// The encoded protected header, constant for one key.
    header_b64: String,
}

impl TokenIssuer {
    /// Seconds between `iat` and `exp` of every token.
    pub const TOKEN_LIFETIME_SECS: u64 = 60;

    /// An issuer signing with `key`; `issuer` becomes the `iss` claim.
    #[must_use]
    pub fn new(key: SigningKey, issuer: impl Into<String>) -> TokenIssuer {
        let kid = key.key_id();
        let header = Header {
            alg: "EdDSA",
            typ: "JWT",
            kid: &kid,
        };
        // Serializing a struct of strings cannot fail.
        let header_json = serde_json::to_vec(&header).expect("header always serializes");
        let header_b64 = URL_SAFE_NO_PAD.encode(header_json);
        TokenIssuer {
            key,
            issuer: issuer.into(),
            header_b64,
        }
    }

    /// The `iss` claim this issuer writes.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key id (`kid`) in every token's header.
    #[must_use]
    pub fn key_id(&self) -> String {
        self.key.key_id()
    }

    /// Signs one token: header `{"alg":"EdDSA","typ":"JWT","kid":..}`, claims `iss`, `aud`,
    /// `sub`, `purpose`, `iat`, `exp` (= `iat` + 60), `jti`.
    #[must_use]
    pub fn issue(&self, request: &TokenRequest<'_>) -> Token {
        let jti = URL_SAFE_NO_PAD.encode(request.nonce);
        let claims = Claims {
            iss: &self.issuer,
            aud: request.audience,
            sub: request.subject.as_str(),
            purpose: request.purpose,
            iat: request.issued_at,
            exp: request.issued_at.saturating_add(Self::TOKEN_LIFETIME_SECS),
            jti: &jti,
        };
        // Serializing a struct of strings and integers to a Vec cannot fail.
        let claims_json = serde_json::to_vec(&claims).expect("claims always serialize");
        self.signed(&self.header_b64, &claims_json)
    }

    /// `header_b64.base64url(claims_json).base64url(signature)`.
    fn signed(&self, header_b64: &str, claims_json: &[u8]) -> Token {
        let mut token = String::with_capacity(header_b64.len() + claims_json.len() * 4 / 3 + 92);
        token.push_str(header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut token);
        let signature = self.key.0.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
        Token(token)
    }

    /// Signs arbitrary `claims` (a JSON object) with header `{"alg":"EdDSA","typ":typ,"kid":..}`:
    /// the access and ID tokens of `[api]` (`typ` `at+jwt` and `JWT`, RFC 9068 §2.1).
    #[must_use]
    pub fn sign(&self, typ: &str, claims: &serde_json::Value) -> Token {
        let kid = self.key.key_id();
        let header = Header {
            alg: "EdDSA",
            typ,
            kid: &kid,
        };
        // Serializing strings and a JSON value cannot fail.
        let header_json = serde_json::to_vec(&header).expect("header always serializes");
        let claims_json = serde_json::to_vec(claims).expect("a JSON value always serializes");
        self.signed(&URL_SAFE_NO_PAD.encode(header_json), &claims_json)
    }

    /// The claims of `token` when it is a compact JWS this issuer signed (EdDSA, this key's
    /// `kid`, a valid signature, a JSON object payload); `None` otherwise. Says nothing about
    /// expiry or audience: the caller checks the claims it relies on.
    #[must_use]
    pub fn verify(&self, token: &str) -> Option<serde_json::Value> {
        let mut parts = token.split('.');
        let (header_b64, claims_b64, signature_b64) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).ok()?).ok()?;
        if header["alg"] != "EdDSA" || header["kid"] != self.key.key_id().as_str() {
            return None;
        }
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .ok()?
            .try_into()
            .ok()?;
        let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
        if !verify_detached(&self.key.public_key_bytes(), signed.as_bytes(), &signature) {
            return None;
        }
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims_b64).ok()?).ok()?;
        claims.is_object().then_some(claims)
    }

    /// The JWKS document for `/.well-known/jwks.json`: `{"keys":[public_jwk]}`, members in
    /// the order documented on [`SigningKey::public_jwk`].
    #[must_use]
    pub fn jwks_json(&self) -> String {
        let keys = [self.key.jwk()];
        // Serializing a struct of strings cannot fail.
        serde_json::to_string(&JwkSet { keys: &keys }).expect("a JWK set always serializes")
    }
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("key", &self.key)
            .finish()
    }
}

/// A signed token (compact JWS). It is a bearer credential naming a subscriber, so `Debug` and
/// `Display` redact it entirely; the header value comes from [`Token::expose`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// The compact JWS text, for the header inserter.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("token:<redacted>")
    }
}
