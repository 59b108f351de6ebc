//! No value of this crate shows subscriber data or key material through `Debug` or `Display`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use headwall_identity::{
    IdentityError, Imsi, Msisdn, PseudonymKey, SigningKey, TokenIssuer, TokenRequest,
    decode_key_file,
};

const DIGITS: &str = "447700900123";

fn assert_hidden(shown: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!shown.contains(secret), "{shown:?} shows {secret:?}");
    }
}

#[test]
fn subscriber_values_redact() {
    let m = Msisdn::parse(DIGITS).expect("valid");
    let i = Imsi::parse("234150999999789").expect("valid");
    for shown in [
        format!("{m:?}"),
        m.to_string(),
        format!("{m:#?}"),
        format!("{:?}", vec![&m]),
    ] {
        assert_hidden(&shown, &[DIGITS, "447700900", "7700900"]);
        assert!(shown.ends_with("123") || shown.ends_with("123]"), "{shown}");
    }
    for shown in [format!("{i:?}"), i.to_string()] {
        assert_hidden(&shown, &["234150999999789", "234150999"]);
    }
}

#[test]
fn keys_redact() {
    let bytes = [0xA5u8; 32];
    let b64 = URL_SAFE_NO_PAD.encode(bytes);
    let pk = PseudonymKey::from_bytes(&bytes).expect("32 bytes");
    let ppk = pk.for_partner("agecheck");
    let sk = SigningKey::from_seed(&bytes).expect("32 bytes");
    let issuer = TokenIssuer::new(SigningKey::from_seed(&bytes).expect("32 bytes"), "iss");
    for shown in [
        format!("{pk:?}"),
        format!("{ppk:?}"),
        format!("{sk:?}"),
        format!("{issuer:?}"),
    ] {
        assert_hidden(&shown, &[&b64[..12], "165", "a5", "A5", "0xa5"]);
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}

#[test]
fn tokens_and_pseudonyms_redact() {
    let m = Msisdn::parse(DIGITS).expect("valid");
    let p = PseudonymKey::from_bytes(&[3; 32])
        .expect("32 bytes")
        .for_partner("agecheck")
        .pseudonym(&m);
    let issuer = TokenIssuer::new(SigningKey::from_seed(&[4; 32]).expect("32 bytes"), "iss");
    let request = TokenRequest {
        audience: "agecheck",
        subject: &p,
        purpose: "billing",
        issued_at: 1,
        nonce: [5; 16],
    };
    let t = issuer.issue(&request);
    let raw_token = t.expose().to_owned();
    for shown in [
        format!("{t:?}"),
        t.to_string(),
        format!("{:?}", Some(t.clone())),
    ] {
        assert_hidden(
            &shown,
            &[
                &raw_token,
                &raw_token[..20],
                &raw_token[raw_token.len() - 10..],
            ],
        );
        assert_hidden(&shown, &[p.as_str()]);
    }
    for shown in [format!("{p:?}"), p.to_string()] {
        assert_hidden(&shown, &[p.as_str(), &p.as_str()[..19]]);
    }
    // TokenRequest derives Debug; it must show only the redacted pseudonym.
    assert_hidden(&format!("{request:?}"), &[p.as_str(), &p.as_str()[..10]]);
}

#[test]
fn errors_never_echo_input() {
    let inputs = [
        "44770090012345678",
        "447700900123x",
        "0044770090012",
        "+44 7700 900123",
    ];
    for input in inputs {
        let err: IdentityError = Msisdn::parse(input).expect_err("invalid");
        assert_hidden(&format!("{err} {err:?}"), &["4477", "7700", "900"]);
        let err = Imsi::parse(input).expect_err("invalid");
        assert_hidden(&format!("{err} {err:?}"), &["4477", "7700", "900"]);
    }
    let secret = "S3cr3tKeyMaterialThatIsNotBase64!!";
    let err = decode_key_file(secret).expect_err("invalid");
    assert_hidden(&format!("{err} {err:?}"), &["S3cr3t", "Material"]);
    let err = decode_key_file(&format!("{}!", "A".repeat(42))).expect_err("invalid");
    assert_hidden(&format!("{err} {err:?}"), &["AAAA"]);
}
