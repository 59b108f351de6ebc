//! Tokens verified by an independent JWT implementation (`jsonwebtoken`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use headwall_identity::{
    Msisdn, PseudonymKey, SigningKey, Token, TokenIssuer, TokenRequest, decode_key_file,
    encode_key_file,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

const SEED: [u8; 32] = [0x42; 32];
const ISSUER: &str = "headwall.example-operator";
const PARTNER: &str = "agecheck";
const IAT: u64 = 1_700_000_000;
const NONCE: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xFF];

fn issuer() -> TokenIssuer {
    TokenIssuer::new(SigningKey::from_seed(&SEED).expect("32 bytes"), ISSUER)
}

fn issue(issuer: &TokenIssuer, issued_at: u64) -> (Token, String) {
    let msisdn = Msisdn::parse("447700900123").expect("valid");
    let pseudonym = PseudonymKey::from_bytes(&[9; 32])
        .expect("32 bytes")
        .for_partner(PARTNER)
        .pseudonym(&msisdn);
    let token = issuer.issue(&TokenRequest {
        audience: PARTNER,
        subject: &pseudonym,
        purpose: "age_verification",
        issued_at,
        nonce: NONCE,
    });
    (token, pseudonym.as_str().to_owned())
}

/// The decoding key as a partner builds it: from the JWK's `x`.
fn decoding_key(issuer: &TokenIssuer) -> DecodingKey {
    let jwks: Value = serde_json::from_str(&issuer.jwks_json()).expect("jwks is JSON");
    let x = jwks["keys"][0]["x"].as_str().expect("x is a string");
    DecodingKey::from_ed_components(x).expect("x decodes")
}

fn validation() -> Validation {
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&[PARTNER]);
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    // The fixed IAT is in the past; expiry against the real clock is tested separately.
    v.validate_exp = false;
    v
}

#[test]
fn verifies_with_jsonwebtoken_and_has_the_claims() {
    let issuer = issuer();
    let (token, sub) = issue(&issuer, IAT);

    let header = jsonwebtoken::decode_header(token.expose()).expect("header decodes");
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), Some(issuer.key_id().as_str()));

    let data = jsonwebtoken::decode::<Value>(token.expose(), &decoding_key(&issuer), &validation())
        .expect("token verifies");
    let c = &data.claims;
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["aud"], PARTNER, "aud is a plain string");
    assert!(c["aud"].is_string());
    assert_eq!(c["sub"], sub.as_str());
    assert_eq!(c["purpose"], "age_verification");
    assert_eq!(c["iat"], IAT);
    assert_eq!(
        c["exp"].as_u64().expect("exp") - c["iat"].as_u64().expect("iat"),
        60
    );
    assert_eq!(TokenIssuer::TOKEN_LIFETIME_SECS, 60);
    let jti = c["jti"].as_str().expect("jti");
    assert_eq!(jti.len(), 22);
    assert_eq!(
        URL_SAFE_NO_PAD.decode(jti).expect("jti is base64url"),
        NONCE
    );
    let keys: Vec<&str> = c
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 7, "exactly the designed claims: {keys:?}");
}

#[test]
fn header_is_exactly_as_designed() {
    let issuer = issuer();
    let (token, _) = issue(&issuer, IAT);
    let header_b64 = token.expose().split('.').next().expect("three parts");
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(header_b64).expect("b64")).expect("utf8");
    assert_eq!(
        header,
        format!(
            r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#,
            issuer.key_id()
        )
    );
    assert_eq!(token.expose().split('.').count(), 3);
    assert!(!token.expose().contains('='));
}

#[test]
fn also_verifies_via_jwk_set_and_against_the_real_clock() {
    let issuer = issuer();
    let now = jsonwebtoken::get_current_timestamp();
    let (token, _) = issue(&issuer, now);
    let set: JwkSet = serde_json::from_str(&issuer.jwks_json()).expect("a JWK set");
    let kid = jsonwebtoken::decode_header(token.expose())
        .expect("header")
        .kid
        .expect("kid");
    let jwk = set.find(&kid).expect("the token's kid is in the JWKS");
    let key = DecodingKey::from_jwk(jwk).expect("usable JWK");
    let mut v = validation();
    v.validate_exp = true;
    v.leeway = 0;
    jsonwebtoken::decode::<Value>(token.expose(), &key, &v).expect("fresh token verifies");

    // A token issued two lifetimes ago is expired.
    let (old, _) = issue(&issuer, now - 120);
    let err = jsonwebtoken::decode::<Value>(old.expose(), &key, &v).expect_err("expired");
    assert_eq!(
        err.kind(),
        &jsonwebtoken::errors::ErrorKind::ExpiredSignature
    );
}

#[test]
fn tampering_fails_verification() {
    let issuer = issuer();
    let key = decoding_key(&issuer);
    let (token, _) = issue(&issuer, IAT);
    let parts: Vec<&str> = token.expose().split('.').collect();

    // Changed claims, original signature.
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    claims["aud"] = Value::from("someone-else");
    let forged_claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
    let mut v = validation();
    v.validate_aud = false;
    assert!(jsonwebtoken::decode::<Value>(&forged, &key, &v).is_err());

    // Flipped signature byte.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("b64");
    sig[0] ^= 1;
    let forged = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    assert!(jsonwebtoken::decode::<Value>(&forged, &key, &validation()).is_err());

    // Another key's signature.
    let other = TokenIssuer::new(
        SigningKey::from_seed(&[0x43; 32]).expect("32 bytes"),
        ISSUER,
    );
    let (foreign, _) = issue(&other, IAT);
    assert!(jsonwebtoken::decode::<Value>(foreign.expose(), &key, &validation()).is_err());

    // Wrong audience is rejected by a partner that checks it.
    let mut v = validation();
    v.set_audience(&["billing-co"]);
    assert!(jsonwebtoken::decode::<Value>(token.expose(), &key, &v).is_err());

    // The untouched token still verifies.
    assert!(jsonwebtoken::decode::<Value>(token.expose(), &key, &validation()).is_ok());
}

#[test]
fn deterministic_for_same_inputs_and_unique_per_nonce() {
    let issuer = issuer();
    let (a, _) = issue(&issuer, IAT);
    let (b, _) = issue(&issuer, IAT);
    assert_eq!(
        a, b,
        "Ed25519 is deterministic; the nonce makes tokens unique"
    );
    let pseudonym = PseudonymKey::from_bytes(&[9; 32])
        .expect("32 bytes")
        .for_partner(PARTNER)
        .pseudonym(&Msisdn::parse("447700900123").expect("valid"));
    let c = issuer.issue(&TokenRequest {
        audience: PARTNER,
        subject: &pseudonym,
        purpose: "age_verification",
        issued_at: IAT,
        nonce: [7; 16],
    });
    assert_ne!(a, c);
}

#[test]
fn jwks_and_jwk_shape() {
    let key = SigningKey::from_seed(&SEED).expect("32 bytes");
    let kid = key.key_id();
    assert_eq!(kid.len(), 16);
    assert!(
        kid.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );

    let jwk = key.public_jwk();
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["alg"], "EdDSA");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kid"], kid.as_str());
    let x = URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().expect("x"))
        .expect("x is base64url");
    assert_eq!(x, key.public_key_bytes());
    assert_eq!(
        jwk.as_object().expect("object").len(),
        6,
        "no private member such as d"
    );
    assert!(jwk.get("d").is_none());

    // kid recomputed independently.
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(x);
    assert_eq!(kid, URL_SAFE_NO_PAD.encode(&digest[..12]));

    let issuer = TokenIssuer::new(key, ISSUER);
    let jwks_text = issuer.jwks_json();
    let jwks: Value = serde_json::from_str(&jwks_text).expect("jwks is JSON");
    let keys = jwks["keys"].as_array().expect("keys array");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0], jwk);
    assert!(jwks_text.contains(&kid));
    assert_eq!(issuer.key_id(), kid);
    assert_eq!(issuer.issuer(), ISSUER);

    // Different seeds give different kids.
    assert_ne!(
        SigningKey::from_seed(&[1; 32]).expect("32 bytes").key_id(),
        kid
    );
}

#[test]
fn rfc8032_test_vector_public_key() {
    // RFC 8032 section 7.1, TEST 1.
    let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    let public = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    let key = SigningKey::from_seed(&seed).expect("32 bytes");
    assert_eq!(key.public_key_bytes().to_vec(), public);
}

#[test]
fn seed_length_checked() {
    for len in [0, 31, 33, 64] {
        let err = SigningKey::from_seed(&vec![1; len]).expect_err("wrong length");
        assert!(err.to_string().contains("expected 32 bytes"), "{err}");
    }
}

#[test]
fn key_file_feeds_both_keys() {
    let text = encode_key_file(&SEED);
    let bytes = decode_key_file(&text).expect("round trip");
    let a = SigningKey::from_seed(&bytes).expect("32 bytes");
    assert_eq!(
        a.key_id(),
        SigningKey::from_seed(&SEED).expect("32 bytes").key_id()
    );
    PseudonymKey::from_bytes(&bytes).expect("32 bytes");
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn jwks_text_is_exactly_as_designed() {
    let issuer = issuer();
    let key = SigningKey::from_seed(&SEED).expect("32 bytes");
    let x = URL_SAFE_NO_PAD.encode(key.public_key_bytes());
    assert_eq!(
        issuer.jwks_json(),
        format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"{}","alg":"EdDSA","use":"sig"}}]}}"#,
            key.key_id()
        )
    );
}

#[test]
fn detached_signatures_verify_only_unchanged() {
    let key = SigningKey::from_seed(&SEED).expect("32 bytes");
    let public = key.public_key_bytes();
    let signature = key.sign_detached(b"checkpoint 42");
    assert!(headwall_identity::verify_detached(
        &public,
        b"checkpoint 42",
        &signature
    ));
    assert!(!headwall_identity::verify_detached(
        &public,
        b"checkpoint 43",
        &signature
    ));
    let other = SigningKey::from_seed(&[1; 32]).expect("32 bytes");
    assert!(!headwall_identity::verify_detached(
        &other.public_key_bytes(),
        b"checkpoint 42",
        &signature
    ));
}

/// `sign` makes tokens jsonwebtoken accepts with the header's `typ`; `verify` gives back the
/// claims of this issuer's tokens only: another key's, a changed payload, a changed algorithm
/// or a truncated token is `None`.
#[test]
fn signed_claims_verify_here_and_in_jsonwebtoken_and_nothing_else_does() {
    let issuer = issuer();
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": PARTNER, "sub": "x", "iat": IAT, "exp": IAT + 60, "jti": "j1",
    });
    let token = issuer.sign("at+jwt", &claims);
    let header = jsonwebtoken::decode_header(token.expose()).expect("a JWS header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let decoded =
        jsonwebtoken::decode::<Value>(token.expose(), &decoding_key(&issuer), &validation())
            .expect("jsonwebtoken verifies it");
    assert_eq!(decoded.claims, claims);
    assert_eq!(issuer.verify(token.expose()), Some(claims.clone()));

    let other = TokenIssuer::new(
        SigningKey::from_seed(&[0x43; 32]).expect("32 bytes"),
        ISSUER,
    );
    assert_eq!(issuer.verify(other.sign("at+jwt", &claims).expose()), None);
    let parts: Vec<&str> = token.expose().split('.').collect();
    let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"someone else"}"#);
    assert_eq!(
        issuer.verify(&format!("{}.{forged_claims}.{}", parts[0], parts[2])),
        None
    );
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    assert_eq!(
        issuer.verify(&format!("{none_header}.{}.{}", parts[1], parts[2])),
        None
    );
    assert_eq!(issuer.verify(&format!("{}.{}", parts[0], parts[1])), None);
    assert_eq!(issuer.verify(&format!("{}.x", token.expose())), None);
}
