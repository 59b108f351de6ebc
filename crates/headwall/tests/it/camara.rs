//! CAMARA's own test definitions as the peer suite (issue 15): the three Gherkin feature files
//! vendored in crates/headwall-api/tests/camara/ run with the `cucumber` crate against the
//! real binary over real TLS, with step definitions of ours.
//!
//! CAMARA's steps are prose. Ours give them meaning with real parts only: a device bound by
//! `radclient` (127.0.0.5 is 447700900123, born 2000-01-15 with an ID check; 127.0.0.6 is
//! 447700900124, of whom nothing is known), valid tokens from the real `/authorize` and
//! `/token` flow with a `private_key_jwt` assertion, and the tokens CAMARA asks to be broken
//! made from a real one: re-signed with the gateway's own key with `exp` in the past
//! (expired) or `amr` without `nba` (not network-authenticated), or carrying a signature by
//! another key (invalid). A token "without the required scope" is a real token for another
//! API. The subject behind each stays live on the server, so each is refused for exactly the
//! reason the scenario names.
//!
//! Every response body is validated against the operation's response in CAMARA's OpenAPI
//! file (the status must be one the operation documents), after the run, in one call of the
//! test environment's jsonschema.
//!
//! Scenarios that do not apply are listed in [`NOT_APPLICABLE`] with the reason; every other
//! scenario must pass, and the count of those that ran is checked, so a scenario lost to a
//! filter or a parse error fails the test. Known defects of the feature files (docs/design.md,
//! "HTTPS: network-based authentication and the CAMARA APIs"):
//! NV verify 400.3 has no `When` step (the request is sent at the first `Then`); the KYC
//! response-schema step names `/components/schemas/...` without `#`.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cucumber::writer::Stats as _;
use cucumber::{World as _, given, then, when};
use headwall_testkit::{ServeProcess, loopback, radclient};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api;

/// The number the bound test device has (Ofcom drama range).
const NUMBER: &str = "+447700900123";
/// A valid number that is not the device's.
const OTHER_NUMBER: &str = "+447700900999";
/// A well-formed `x-correlator`.
const CORRELATOR: &str = "b4333c46-49c0-4f62-80d7-f0ef930f1c46";

/// Scenarios that do not apply to headwall, by feature file and tag, with the reason.
const NOT_APPLICABLE: &[(&str, &str, &str)] = &[
    (
        "number-verification-phoneNumberVerify.feature",
        "phone_number_verify_C02.01_phone_number_not_schema_compliant",
        "needs a 2-legged token (one that identifies no single number): headwall issues only \
         3-legged tokens, by network-based authentication, by design",
    ),
    (
        "kyc-age-verification.feature",
        "verifyAge_C02.01_phone_number_not_schema_compliant",
        "needs a 2-legged token: headwall issues none by design",
    ),
    (
        "kyc-age-verification.feature",
        "verifyAge_C02.02_phone_number_not_found",
        "needs a 2-legged token naming a number in the body: headwall issues none by design",
    ),
    (
        "kyc-age-verification.feature",
        "verifyAge_C02.04_missing_phone_number",
        "needs a 2-legged token: headwall issues none by design",
    ),
    (
        "kyc-age-verification.feature",
        "verifyAge_C02.05_phone_number_not_supported",
        "headwall offers age verification for every subscriber; one without age data is \
         answered ageCheck not_available (verifyAge_3)",
    ),
];

/// What every scenario shares: the running gateway and its trust root and keys.
struct Fixture {
    gateway: ServeProcess,
    root: rustls::pki_types::CertificateDer<'static>,
    /// The gateway's identity signing key, for the broken tokens made from real ones.
    issuer: headwall_identity::TokenIssuer,
    /// Bodies to validate after the run: (OpenAPI file, schema or response ref, body).
    bodies: Mutex<Vec<(&'static str, String, Value)>>,
}

/// Set by the test for the run, taken back after it (so the gateway stops with the test).
static FIXTURE: Mutex<Option<Arc<Fixture>>> = Mutex::new(None);

fn fixture() -> Arc<Fixture> {
    FIXTURE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .expect("the fixture is set for the run")
}

/// The kind of `Authorization` header a scenario asks for; made when the request is sent.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Token {
    #[default]
    Valid,
    None,
    Expired,
    Invalid,
    WithoutScope,
    NotNetworkAuthenticated,
}

/// The request body a scenario builds.
#[derive(Debug, Default, Clone)]
enum Body {
    /// "compliant with the schema": made per operation when the request is sent.
    #[default]
    Default,
    Absent,
    Raw(String),
    /// Built property by property.
    Object(serde_json::Map<String, Value>),
}

#[derive(Debug, Default, cucumber::World)]
struct Camara {
    /// The resource path the feature names (a base for Number Verification, the whole path
    /// for KYC Age Verification).
    resource: String,
    headers: Vec<(String, String)>,
    token: Token,
    body: Body,
    /// The device the token is for: 127.0.0.5 unless the scenario needs a subscriber without
    /// age data (127.0.0.6).
    unknown_age: bool,
    /// The age threshold the scenario's age information is compared with.
    threshold: Option<u64>,
    /// The operation sent, and the answer: status, head, body.
    operation: Option<Operation>,
    response: Option<(u16, String, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operation {
    PhoneNumberVerify,
    PhoneNumberShare,
    VerifyAge,
}

impl Operation {
    fn openapi(self) -> &'static str {
        match self {
            Operation::PhoneNumberVerify | Operation::PhoneNumberShare => {
                "number-verification.yaml"
            }
            Operation::VerifyAge => "kyc-age-verification.yaml",
        }
    }

    fn scope(self) -> &'static str {
        match self {
            Operation::PhoneNumberVerify => "number-verification:verify",
            Operation::PhoneNumberShare => "number-verification:device-phone-number:read",
            Operation::VerifyAge => "kyc-age-verification:verify",
        }
    }

    /// A real scope of the client's that is not this operation's.
    fn other_scope(self) -> &'static str {
        match self {
            Operation::PhoneNumberVerify | Operation::PhoneNumberShare => {
                "kyc-age-verification:verify"
            }
            Operation::VerifyAge => "number-verification:verify",
        }
    }

    /// The OpenAPI ref an answer with `status` must validate against; `None` for a status
    /// the operation does not document.
    fn response_ref(self, status: u16) -> Option<&'static str> {
        Some(match (self, status) {
            (Operation::PhoneNumberVerify, 200) => {
                "#/components/schemas/NumberVerificationMatchResponse"
            }
            (Operation::PhoneNumberShare, 200) => {
                "#/components/schemas/NumberVerificationShareResponse"
            }
            (Operation::VerifyAge, 200) => "#/components/schemas/VerifyResponseBody",
            (_, 400) => "#/components/responses/Generic400",
            (_, 401) => "#/components/responses/Generic401",
            (Operation::PhoneNumberVerify | Operation::PhoneNumberShare, 403) => {
                "#/components/responses/PhoneNumberVerificationPermissionDenied403"
            }
            (Operation::VerifyAge, 403) => "#/components/responses/Generic403",
            (Operation::VerifyAge, 404) => "#/components/responses/Generic404",
            (Operation::VerifyAge, 422) => "#/components/responses/Generic422",
            _ => return None,
        })
    }
}

impl Camara {
    fn object(&mut self) -> &mut serde_json::Map<String, Value> {
        if !matches!(self.body, Body::Object(_)) {
            self.body = Body::Object(serde_json::Map::new());
        }
        match &mut self.body {
            Body::Object(object) => object,
            _ => unreachable!("just made an object"),
        }
    }

    fn set(&mut self, property: &str, value: Value) {
        let name = property.trim_start_matches("$.").to_owned();
        self.object().insert(name, value);
    }

    fn response(&self) -> &(u16, String, Value) {
        self.response.as_ref().expect("a request was sent")
    }

    /// The response property at `$.name`.
    fn property(&self, path: &str) -> Option<&Value> {
        self.response().2.get(path.trim_start_matches("$."))
    }

    /// A bearer token of the kind the scenario asked for, for `operation`.
    async fn bearer(&self, operation: Operation) -> Option<String> {
        let fixture = fixture();
        let scope = match self.token {
            Token::None => return None,
            Token::WithoutScope => operation.other_scope(),
            _ => operation.scope(),
        };
        let device = loopback(if self.unknown_age { 6 } else { 5 });
        let real = real_token(&fixture, device, scope).await;
        Some(match self.token {
            Token::Valid | Token::WithoutScope | Token::None => real,
            Token::Expired => {
                let mut claims = api::claims(&real);
                let now = unix_now();
                claims["iat"] = json!(now - 600);
                claims["exp"] = json!(now - 300);
                fixture.issuer.sign("at+jwt", &claims).expose().to_owned()
            }
            Token::NotNetworkAuthenticated => {
                let mut claims = api::claims(&real);
                claims["amr"] = json!(["pwd"]);
                fixture.issuer.sign("at+jwt", &claims).expose().to_owned()
            }
            Token::Invalid => {
                // The real header and claims, signed by another Ed25519 key.
                let (signed, _) = real.rsplit_once('.').expect("a compact JWS");
                let other =
                    headwall_identity::SigningKey::from_seed(&[0x42; 32]).expect("a 32-byte seed");
                let signature = other.sign_detached(signed.as_bytes());
                format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
            }
        })
    }

    async fn send(&mut self, operation: Operation) {
        let fixture = fixture();
        let api = fixture.gateway.api.expect("api listener");
        let (method, path) = match operation {
            Operation::PhoneNumberVerify => ("POST", format!("{}/verify", self.resource)),
            Operation::PhoneNumberShare => {
                ("GET", format!("{}/device-phone-number", self.resource))
            }
            Operation::VerifyAge => ("POST", self.resource.clone()),
        };
        let body = match &self.body {
            Body::Absent => String::new(),
            Body::Raw(text) => text.clone(),
            Body::Object(object) => Value::Object(object.clone()).to_string(),
            Body::Default => match operation {
                Operation::PhoneNumberVerify => json!({ "phoneNumber": NUMBER }).to_string(),
                Operation::PhoneNumberShare => String::new(),
                Operation::VerifyAge => {
                    json!({ "ageThreshold": self.threshold.unwrap_or(18) }).to_string()
                }
            },
        };
        let mut headers = self.headers.clone();
        if let Some(token) = self.bearer(operation).await {
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let (status, head, text) = api::https(
            api,
            &fixture.root,
            loopback(1),
            method,
            &path,
            &headers,
            &body,
        )
        .await;
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON ({status}): {head}"));
        let reference = operation.response_ref(status).unwrap_or_else(|| {
            panic!("{method} {path}: status {status} is not in the OpenAPI file")
        });
        fixture
            .bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((operation.openapi(), reference.to_owned(), body.clone()));
        self.operation = Some(operation);
        self.response = Some((status, head, body));
    }

    /// Sends the Number Verification request when a scenario's `Then` comes without a `When`
    /// (the verify feature's 400.3).
    async fn ensure_sent(&mut self) {
        if self.response.is_none() {
            self.send(Operation::PhoneNumberVerify).await;
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A real access token for the device at `device` and `scope`: `/authorize` from the device,
/// then `/token` with a fresh client assertion.
async fn real_token(fixture: &Fixture, device: IpAddr, scope: &str) -> String {
    let api: SocketAddr = fixture.gateway.api.expect("api listener");
    let code = api::code_from(api, &fixture.root, device, scope).await;
    let jti = format!("cucumber-{}", URL_SAFE_NO_PAD.encode(random_bytes()));
    let (status, tokens) = api::redeem(api, &fixture.root, &code, &api::assertion(&jti, 60)).await;
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

fn random_bytes() -> [u8; 12] {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes
}

// ---- Given: the request ----

#[given(regex = r##"^the resource "([^"]+)"(?: as base url)?$"##)]
async fn resource(w: &mut Camara, path: String) {
    w.resource = path;
}

#[given(regex = r##"^an environment at "apiRoot"$"##)]
async fn environment(_: &mut Camara) {}

#[given(regex = r##"^the header "Content-Type" is set to "application/json"$"##)]
async fn content_type(w: &mut Camara) {
    w.headers
        .push(("Content-Type".into(), "application/json".into()));
}

#[given(
    regex = r##"^the header "x-correlator" complies with the schema at "#/components/schemas/XCorrelator"$"##
)]
async fn correlator(w: &mut Camara) {
    w.headers.push(("x-correlator".into(), CORRELATOR.into()));
}

#[given(
    regex = r##"^the header "Authorization" is set to a valid access token(?: identifying a phone number)?$"##
)]
async fn valid_token(w: &mut Camara) {
    w.token = Token::Valid;
}

#[given(regex = r##"^the header "Authorization" is (?:removed|not sent)$"##)]
async fn no_token(w: &mut Camara) {
    w.token = Token::None;
}

#[given(regex = r##"^the header "Authorization" is set to an expired access token$"##)]
async fn expired_token(w: &mut Camara) {
    w.token = Token::Expired;
}

#[given(
    regex = r##"^the header "Authorization" is set to an invalid access token(?: which is invalid for reasons other than lifetime expiry)?$"##
)]
async fn invalid_token(w: &mut Camara) {
    w.token = Token::Invalid;
}

#[given(
    regex = r##"^the header "Authorization" is set to an access token without the required scope$"##
)]
async fn token_without_scope(w: &mut Camara) {
    w.token = Token::WithoutScope;
}

#[given(
    regex = r##"^the header "Authorization" is set to a token for which neither Network-based nor SIM-based authentication was used$"##
)]
async fn token_not_network_authenticated(w: &mut Camara) {
    w.token = Token::NotNetworkAuthenticated;
}

#[given(
    regex = r##"^the request body is set (?:by default to a request body compliant with the schema|to a valid request body)$"##
)]
async fn default_body(w: &mut Camara) {
    w.body = Body::Default;
}

#[given(regex = r##"^the request body is not included$"##)]
async fn no_body(w: &mut Camara) {
    w.body = Body::Absent;
}

#[given(regex = r##"^the request body is set to "(.*)"$"##)]
async fn raw_body(w: &mut Camara, text: String) {
    w.body = Body::Raw(text);
}

// ---- Given: the subscriber and the token (true of the bound device; nothing to do) ----

#[given(
    regex = r"^a valid (?:testing )?(?:phone number|phoneNumber) supported by the service, identified by the (?:access )?token(?: or provided in the request body)?$"
)]
async fn bound_device(_: &mut Camara) {}

#[given(regex = r"^the token has been obtained by a supported authentication method$")]
async fn network_authenticated(_: &mut Camara) {}

#[given(regex = r##"^the same phone number is compliant with OAS schema at "[^"]+"$"##)]
async fn number_is_compliant(_: &mut Camara) {}

// ---- Given: Number Verification bodies ----

#[given(regex = r"^a valid phone number identified by the token and provided in the request body$")]
async fn body_with_the_number(w: &mut Camara) {
    w.set("phoneNumber", json!(NUMBER));
}

#[given(
    regex = r##"^the (?:request )?body property "(\$\.phoneNumber|\$\.hashedPhoneNumber)" is set to (the phone number identified by the access token|a valid phone number different from the one identified by the access token|a valid phone number(?: compliant with OAS schema at "[^"]+")?)(, hashed in SHA-256 \(in hexadecimal representation\))?$"##
)]
async fn body_number(w: &mut Camara, property: String, which: String, _form: String) {
    // KYC's "phone number not to be included" scenario: a body that is otherwise valid.
    if w.resource.starts_with("/kyc-age-verification") && !matches!(w.body, Body::Object(_)) {
        w.set("ageThreshold", json!(18));
    }
    let number = if which.contains("different") {
        OTHER_NUMBER
    } else {
        NUMBER
    };
    let value = if property == "$.hashedPhoneNumber" {
        let digest = Sha256::digest(number.as_bytes());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    } else {
        number.to_owned()
    };
    w.set(&property, json!(value));
}

#[given(regex = r##"^the request body property "(\$\.\w+)" is set to "([^"]*)"$"##)]
async fn body_string(w: &mut Camara, property: String, value: String) {
    w.set(&property, json!(value));
}

#[given(
    regex = r##"^the request body does not contain neither "\$\.phoneNumber" nor "\$\.hashedPhoneNumber"$"##
)]
async fn body_without_numbers(w: &mut Camara) {
    let object = w.object();
    object.remove("phoneNumber");
    object.remove("hashedPhoneNumber");
}

// ---- Given: KYC Age Verification bodies and age data ----

#[given(
    regex = r##"^the request body property "\$\.ageThreshold" is set to a valid value compliant with the OAS schema at "[^"]+"$"##
)]
async fn threshold(w: &mut Camara) {
    let value = w.threshold.unwrap_or(18);
    w.set("ageThreshold", json!(value));
}

/// The device's subscriber is 26 (born 2000-01-15).
#[given(
    regex = r"^the age information associated with the mobile subscription is (equal or greater|lower) that the age threshold provided$"
)]
async fn age_relation(w: &mut Camara, relation: String) {
    let threshold = if relation == "lower" { 30 } else { 18 };
    w.threshold = Some(threshold);
    w.set("ageThreshold", json!(threshold));
}

#[given(regex = r"^the API Provider cannot verify the age information$")]
async fn no_age_data(w: &mut Camara) {
    w.unknown_age = true;
}

#[given(
    regex = r##"^the request body optionally contains the property "\$\.(\w+)" with a value compliant with OAS schema at "[^"]+"$"##
)]
async fn optional_property(w: &mut Camara, property: String) {
    let value = match property.as_str() {
        "idDocument" => json!("66666666q"),
        "name" => json!("Federica Sanchez Arjona"),
        "givenName" => json!("Federica"),
        "familyName" => json!("Sanchez Arjona"),
        "middleNames" => json!("Sanchez"),
        "familyNameAtBirth" => json!("YYYY"),
        "birthdate" => json!("1978-08-22"),
        "email" => json!("federica@example.com"),
        other => panic!("no compliant value written for {other}"),
    };
    w.set(&property, value);
}

#[given(
    regex = r##"^the request body property "\$\.(includeContentLock|includeParentalControl)" is set to true$"##
)]
async fn include_flag(w: &mut Camara, property: String) {
    if !matches!(w.body, Body::Object(_)) {
        w.set("ageThreshold", json!(18));
    }
    w.set(&property, json!(true));
}

#[given(
    regex = r##"^the request body property "\$\.ageThreshold" is set to a value that is not withing the range defined in OAS schema "[^"]+"$"##
)]
async fn threshold_out_of_range(w: &mut Camara) {
    w.set("ageThreshold", json!(121));
}

#[given(
    regex = r##"^the request body is set to any value which is not compliant with the OAS schema at "[^"]+"$"##
)]
async fn noncompliant_body(w: &mut Camara) {
    w.body = Body::Raw(json!({ "ageThreshold": "eighteen" }).to_string());
}

// ---- When ----

#[when(regex = r##"^the request "(phoneNumberVerify|phoneNumberShare)" is sent$"##)]
async fn send_number_verification(w: &mut Camara, operation: String) {
    let operation = if operation == "phoneNumberVerify" {
        Operation::PhoneNumberVerify
    } else {
        Operation::PhoneNumberShare
    };
    w.send(operation).await;
}

#[when(regex = r##"^the HTTP "POST" request is sent$"##)]
async fn send_age_verification(w: &mut Camara) {
    w.send(Operation::VerifyAge).await;
}

// ---- Then ----

#[then(regex = r##"^the response status code is "?(\d{3})"?$"##)]
async fn status(w: &mut Camara, expected: u16) {
    w.ensure_sent().await;
    let (status, head, body) = w.response();
    assert_eq!(*status, expected, "{head}\n{body}");
}

#[then(regex = r##"^the response header "Content-Type" is "application/json"$"##)]
async fn json_content_type(w: &mut Camara) {
    let head = w.response().1.to_ascii_lowercase();
    assert!(
        head.lines()
            .any(|l| l.starts_with("content-type: application/json")),
        "{head}"
    );
}

#[then(
    regex = r##"^the response header "x-correlator" has same value as the request header "x-correlator"$"##
)]
async fn correlator_echoed(w: &mut Camara) {
    let head = &w.response().1;
    let echoed = head.lines().find_map(|line| {
        line.split_once(':')
            .filter(|(name, _)| name.eq_ignore_ascii_case("x-correlator"))
            .map(|(_, value)| value.trim().to_owned())
    });
    assert_eq!(echoed.as_deref(), Some(CORRELATOR), "{head}");
}

#[then(
    regex = r##"^the response body complies with the OAS schema at "#?(/components/schemas/\w+)"$"##
)]
async fn body_complies(w: &mut Camara, schema: String) {
    let operation = w.operation.expect("a request was sent");
    let body = w.response().2.clone();
    fixture()
        .bodies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((operation.openapi(), format!("#{schema}"), body));
}

#[then(regex = r##"^the response property "(\$\.\w+)" == (true|false)$"##)]
async fn property_is_bool(w: &mut Camara, path: String, expected: bool) {
    assert_eq!(
        w.property(&path),
        Some(&json!(expected)),
        "{}",
        w.response().2
    );
}

#[then(regex = r##"^the response property "(\$\.\w+)" is (\d+)$"##)]
async fn property_is_number(w: &mut Camara, path: String, expected: u64) {
    assert_eq!(
        w.property(&path),
        Some(&json!(expected)),
        "{}",
        w.response().2
    );
}

#[then(regex = r##"^the response property "(\$\.\w+)" is "([^"]+)"$"##)]
async fn property_is_text(w: &mut Camara, path: String, expected: String) {
    assert_eq!(
        w.property(&path),
        Some(&json!(expected)),
        "{}",
        w.response().2
    );
}

/// KYC 401.1 accepts either; the OpenAPI file lists only `UNAUTHENTICATED`, which is ours.
#[then(
    regex = r##"^the response property "\$\.code" is "UNAUTHENTICATED" or "AUTHENTICATION_REQUIRED"$"##
)]
async fn code_unauthenticated(w: &mut Camara) {
    assert_eq!(w.property("$.code"), Some(&json!("UNAUTHENTICATED")));
}

#[then(regex = r##"^the response property "\$\.message" contains a user friendly text$"##)]
async fn message_is_text(w: &mut Camara) {
    let message = w.property("$.message").and_then(Value::as_str);
    assert!(
        message.is_some_and(|m| m.len() > 10 && m.contains(' ')),
        "{}",
        w.response().2
    );
}

#[then(
    regex = r##"^the response property "\$\.devicePhoneNumber" is equal to the phone number associated with the access token$"##
)]
async fn shared_number(w: &mut Camara) {
    assert_eq!(w.property("$.devicePhoneNumber"), Some(&json!(NUMBER)));
}

#[then(
    regex = r##"^if the response contains property "\$\.verifiedStatus", the value is one of \[true, false\]$"##
)]
async fn verified_status(w: &mut Camara) {
    if let Some(value) = w.property("$.verifiedStatus") {
        assert!(value.is_boolean(), "{value}");
    }
}

#[then(
    regex = r##"^if the response contains property "\$\.identityMatchScore", the value is compliant with OAS schema at "#/components/schemas/IdentityMatchScore"$"##
)]
async fn identity_match_score(w: &mut Camara) {
    if let Some(value) = w.property("$.identityMatchScore").cloned() {
        fixture()
            .bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((
                "kyc-age-verification.yaml",
                "#/components/schemas/IdentityMatchScore".into(),
                value,
            ));
    }
}

#[then(
    regex = r##"^the response contains property "(\$\.\w+)" whose value is one of \["true", "false", "not_available"\]$"##
)]
async fn tri_state(w: &mut Camara, path: String) {
    let value = w.property(&path).and_then(Value::as_str);
    assert!(
        matches!(value, Some("true" | "false" | "not_available")),
        "{}",
        w.response().2
    );
}

/// Binds `ip` to `number` (national form) by RADIUS, as the packet gateway would.
fn bind_number(gateway: &ServeProcess, ip: &str, number: &str, session: &str) {
    assert!(radclient(
        gateway.radius.expect("radius listener"),
        api::SECRET,
        &format!(
            "Acct-Status-Type = Start\nFramed-IP-Address = {ip}\n\
             Calling-Station-Id = \"{number}\"\nAcct-Session-Id = \"{session}\"\n\
             NAS-IP-Address = 127.0.0.1\n"
        ),
    ));
}

/// Runs the three feature files; every applicable scenario must pass and every body must
/// validate against CAMARA's OpenAPI files.
#[tokio::test]
async fn camaras_feature_files_pass_against_the_real_binary() {
    let client = r#"scopes = ["number-verification:verify", "number-verification:device-phone-number:read", "kyc-age-verification:verify"]
justification = "the shop's checkout prefills the buyer's number (tests)""#;
    let (gateway, root) = api::start_with(
        "127.0.0.1:0",
        api::ISSUER,
        "api.operator.test",
        &api::client_jwks(),
        "",
        client,
    );
    bind_number(&gateway, "127.0.0.5", "07700900123", "s5");
    bind_number(&gateway, "127.0.0.6", "07700900124", "s6");
    let seed = std::fs::read_to_string(gateway.path("state/signing.key")).unwrap();
    let seed = headwall_identity::decode_key_file(&seed).unwrap();
    let key = headwall_identity::SigningKey::from_seed(&seed).unwrap();
    let fixture = Arc::new(Fixture {
        gateway,
        root,
        issuer: headwall_identity::TokenIssuer::new(key, api::ISSUER),
        bodies: Mutex::new(Vec::new()),
    });
    *FIXTURE.lock().unwrap() = Some(fixture.clone());
    // Taken back however the run ends, so that the gateway stops with the test.
    struct TakeBack;
    impl Drop for TakeBack {
        fn drop(&mut self) {
            *FIXTURE.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
    let take_back = TakeBack;

    let features = crate::repo_root().join("crates/headwall-api/tests/camara");
    let writer = Camara::cucumber()
        .with_default_cli()
        .max_concurrent_scenarios(4)
        .fail_on_skipped()
        .filter_run(features, |feature, _, scenario| {
            let file = feature
                .path
                .as_ref()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            !NOT_APPLICABLE
                .iter()
                .any(|(in_file, tag, _)| *in_file == file && scenario.tags.iter().any(|t| t == tag))
        })
        .await;
    drop(take_back);

    let scenarios = *writer.scenarios_stats();
    let steps = *writer.steps_stats();
    assert_eq!(writer.parsing_errors(), 0, "a feature file did not parse");
    assert_eq!(writer.hook_errors(), 0);
    assert_eq!(
        (
            scenarios.failed,
            scenarios.skipped,
            steps.failed,
            steps.skipped
        ),
        (0, 0, 0, 0),
        "scenarios {scenarios:?}, steps {steps:?} (output above)"
    );
    // Every scenario of the three files (15 verify, 7 share, 38 age with the three outlines'
    // 8 examples each), less the ones that do not apply.
    assert_eq!(
        scenarios.passed,
        15 + 7 + 38 - NOT_APPLICABLE.len(),
        "{scenarios:?}"
    );

    let bodies = std::mem::take(&mut *fixture.bodies.lock().unwrap());
    for file in ["number-verification.yaml", "kyc-age-verification.yaml"] {
        let cases: Vec<(&str, Value)> = bodies
            .iter()
            .filter(|(f, _, _)| *f == file)
            .map(|(_, reference, body)| (reference.as_str(), body.clone()))
            .collect();
        assert!(!cases.is_empty(), "no answers from {file}");
        api::assert_camara_valid(file, &cases);
    }
}
