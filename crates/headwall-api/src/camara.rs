//! The CAMARA resource endpoints (Number Verification 2.1.0, KYC Age Verification 0.2.1):
//! request validation, `ErrorInfo` bodies, `x-correlator`, bearer tokens, and the disclosure of
//! every answer before it leaves.
//!
//! A token is ours when [`TokenIssuer::verify`](headwall_identity::TokenIssuer::verify)
//! accepts it, it has not expired, and its `jti` is a live entry of the issued tokens — which
//! is also where the subscriber is: the token itself names only the client's pairwise `sub`.
//! A token with a `number-verification` scope is used up by its first answer (docs/design.md, HTTPS).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use headwall_audit::Disclosure;
use headwall_policy::ApiScope;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::issued::Issued;
use crate::metrics::Endpoint;
use crate::{ApiState, Peer};

/// `x-correlator` (CAMARA's `XCorrelator` schema): `^[a-zA-Z0-9-_:;./<>{}]{0,256}$`.
fn correlator(headers: &HeaderMap) -> Result<Option<HeaderValue>, ()> {
    let Some(value) = headers.get("x-correlator") else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    let valid = bytes.len() <= 256
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_:;./<>{}".contains(&b));
    if valid {
        Ok(Some(value.clone()))
    } else {
        Err(())
    }
}

/// An answer with the correlator echoed and nothing cached.
fn answer(status: StatusCode, body: Value, correlator: Option<&HeaderValue>) -> Response {
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(value) = correlator {
        headers.insert("x-correlator", value.clone());
    }
    response
}

/// CAMARA's `ErrorInfo`.
fn error_info(
    status: StatusCode,
    code: &str,
    message: &str,
    correlator: Option<&HeaderValue>,
) -> Response {
    let body = json!({ "status": status.as_u16(), "code": code, "message": message });
    let mut response = answer(status, body, correlator);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    response
}

fn invalid_argument(correlator: Option<&HeaderValue>) -> Response {
    error_info(
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        "Client specified an invalid argument, request body or query param.",
        correlator,
    )
}

fn unauthenticated(correlator: Option<&HeaderValue>) -> Response {
    error_info(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "Request not authenticated due to missing, invalid, or expired credentials. A new \
         authentication is required.",
        correlator,
    )
}

fn unavailable(correlator: Option<&HeaderValue>) -> Response {
    error_info(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "Service unavailable.",
        correlator,
    )
}

/// A resource request let in: its correlator, and what its token stands for.
struct Admitted {
    correlator: Option<HeaderValue>,
    issued: Issued,
    jti: String,
    scope: ApiScope,
}

/// Lets a request in when its `x-correlator` is well-formed and its bearer token is ours,
/// live and allows `scope`; otherwise the error answer. A number-verification token is used
/// up only by an answer ([`respond`]): a request refused for its body can be sent again.
async fn admit(
    state: &ApiState,
    headers: &HeaderMap,
    scope: ApiScope,
) -> Result<Admitted, Box<Response>> {
    let correlator = self::correlator(headers).map_err(|()| Box::new(invalid_argument(None)))?;
    let (issued, jti) = check_token(state, headers, scope, correlator.as_ref()).await?;
    Ok(Admitted {
        correlator,
        issued,
        jti,
        scope,
    })
}

async fn check_token(
    state: &ApiState,
    headers: &HeaderMap,
    scope: ApiScope,
    correlator: Option<&HeaderValue>,
) -> Result<(Issued, String), Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| Box::new(unauthenticated(correlator)))?;
    let claims = state
        .gateway
        .token_issuer()
        .verify(token)
        .ok_or_else(|| Box::new(unauthenticated(correlator)))?;
    let now = headwall_sessions::unix_now();
    let live = claims["iss"] == state.settings.public_url.as_str()
        && claims["exp"].as_u64().is_some_and(|exp| exp > now);
    let Some(jti) = claims["jti"].as_str().filter(|_| live) else {
        return Err(Box::new(unauthenticated(correlator)));
    };
    let issued = match state.issued.get(jti).await {
        Ok(issued) => issued,
        Err(error) => {
            tracing::warn!(%error, "api records unavailable; request refused");
            return Err(Box::new(unavailable(correlator)));
        }
    };
    let issued = issued
        .filter(|issued| claims["client_id"] == issued.client_id.as_str())
        .ok_or_else(|| Box::new(unauthenticated(correlator)))?;
    let by_network = claims["amr"]
        .as_array()
        .is_some_and(|amr| amr.iter().any(|m| m == "nba"));
    if !by_network {
        return Err(Box::new(error_info(
            StatusCode::FORBIDDEN,
            "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK",
            "Client must authenticate via the mobile network to use this service",
            correlator,
        )));
    }
    // The client must still be registered for the scope: a reload may have narrowed it.
    let active = state.gateway.policy();
    let still = active
        .policy
        .api_client(&issued.client_id)
        .is_some_and(|client| client.allows(scope));
    if !issued.scopes.contains(&scope) || !still {
        return Err(Box::new(error_info(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Client does not have sufficient permissions to perform this action.",
            correlator,
        )));
    }
    if !state.gateway.enrichment_enabled() {
        return Err(Box::new(unavailable(correlator)));
    }
    Ok((issued, jti.to_owned()))
}

/// Records what the client learns — `kind`, and the answer's `fields` with their values — and
/// only once that record is durable answers `body`; without it, 503 and nothing else.
async fn respond(
    state: &ApiState,
    admitted: &Admitted,
    peer: std::net::IpAddr,
    kind: &str,
    fields: Vec<String>,
    body: Value,
) -> Response {
    let correlator = admitted.correlator.as_ref();
    let path = admitted.scope.endpoint_path();
    let single_use = admitted
        .issued
        .scopes
        .iter()
        .any(|s| matches!(s, ApiScope::NumberVerify | ApiScope::NumberShare));
    if single_use {
        match state.issued.take(&admitted.jti).await {
            Ok(Some(_)) => {}
            // Another request used it a moment ago (on this node or another).
            Ok(None) => return unauthenticated(correlator),
            Err(error) => {
                tracing::warn!(%error, "api records unavailable; answer withheld");
                return unavailable(correlator);
            }
        }
    }
    let active = state.gateway.policy();
    let Some(client) = active.policy.api_client(&admitted.issued.client_id) else {
        return unavailable(correlator);
    };
    let disclosure = Disclosure {
        request_id: format!("api-{}", admitted.jti),
        partner: client.id.clone(),
        purpose: client.purpose.clone(),
        msisdn: admitted.issued.msisdn.clone(),
        kinds: vec![kind.to_owned()],
        headers: fields,
        host: path.to_owned(),
        port: state.public_port,
        upstream_ip: peer,
        client_ip: admitted.issued.device,
        policy_hash: active.policy.hash().to_owned(),
    };
    match state.gateway.audit().disclose(disclosure).await {
        Ok(()) => answer(StatusCode::OK, body, correlator),
        Err(error) => {
            tracing::warn!(%error, path, "audit write failed; API answer withheld");
            unavailable(correlator)
        }
    }
}

/// `POST /number-verification/v2/verify`: does the device's number match the one the client
/// holds (plain, or SHA-256 hex of the E.164 form with its `+`)?
pub(crate) async fn verify_counted(
    State(state): State<Arc<ApiState>>,
    peer: Extension<Peer>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let response = verify(&state, peer, headers, body).await;
    state.metrics.record(Endpoint::NvVerify, response)
}

async fn verify(
    state: &ApiState,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let admitted = match admit(state, &headers, ApiScope::NumberVerify).await {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let Some(asserted) = asserted_number(&body) else {
        return invalid_argument(admitted.correlator.as_ref());
    };
    let e164 = format!("+{}", admitted.issued.msisdn.expose_digits());
    let verified = match asserted {
        Asserted::Plain(number) => number == e164,
        Asserted::Hashed(hex) => {
            let ours = crate::hex(&Sha256::digest(e164.as_bytes()));
            hex.eq_ignore_ascii_case(&ours)
        }
    };
    let field = format!("devicePhoneNumberVerified={verified}");
    let body = json!({ "devicePhoneNumberVerified": verified });
    respond(state, &admitted, peer, "number_match", vec![field], body).await
}

/// `GET /number-verification/v2/device-phone-number`: the device's number itself (a client
/// registered for it has a `justification`).
pub(crate) async fn share_counted(
    State(state): State<Arc<ApiState>>,
    peer: Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    let response = device_phone_number(&state, peer, headers).await;
    state.metrics.record(Endpoint::NvShare, response)
}

async fn device_phone_number(
    state: &ApiState,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    let admitted = match admit(state, &headers, ApiScope::NumberShare).await {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let number = format!("+{}", admitted.issued.msisdn.expose_digits());
    let fields = vec!["devicePhoneNumber".to_owned()];
    let body = json!({ "devicePhoneNumber": number });
    respond(state, &admitted, peer, "msisdn", fields, body).await
}

/// `POST /kyc-age-verification/v0.2/verify`: is the token's subscriber at least
/// `ageThreshold` years old, from `[subscribers]` profile data? `birthdate` answers any
/// threshold; `age_verified` alone answers thresholds up to 18; anything else is
/// `not_available`. `verifiedStatus` comes from `verified` when known; `contentLock` and
/// `parentalControl` only when asked for. Three-legged only: a `phoneNumber` in the body is
/// 422 `UNNECESSARY_IDENTIFIER` (the token already names the subscriber). The identity
/// attributes the schema allows (`name`, `idDocument`, …) are type-checked and otherwise
/// ignored: headwall holds no such data and answers no `identityMatchScore`.
pub(crate) async fn kyc_counted(
    State(state): State<Arc<ApiState>>,
    peer: Extension<Peer>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let response = kyc_age(&state, peer, headers, body).await;
    state.metrics.record(Endpoint::KycAge, response)
}

async fn kyc_age(
    state: &ApiState,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let admitted = match admit(state, &headers, ApiScope::AgeVerify).await {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let correlator = admitted.correlator.as_ref();
    let request = match age_request(&body) {
        Ok(request) => request,
        Err(AgeRequestError::Invalid) => return invalid_argument(correlator),
        Err(AgeRequestError::OutOfRange) => {
            return error_info(
                StatusCode::BAD_REQUEST,
                "OUT_OF_RANGE",
                "ageThreshold must be between 0 and 120.",
                correlator,
            );
        }
        Err(AgeRequestError::PhoneNumber) => {
            return error_info(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNNECESSARY_IDENTIFIER",
                "The device is already identified by the access token.",
                correlator,
            );
        }
    };
    let profile = state.gateway.profiles().profile(&admitted.issued.msisdn);
    let today = headwall_sessions::Date::from_unix(headwall_sessions::unix_now());
    let age_check = match (profile.birthdate, profile.age_verified) {
        (Some(born), _) => tri(Some(
            born.years_until(today) >= i32::from(request.threshold),
        )),
        (None, Some(adult)) if request.threshold <= 18 => tri(Some(adult)),
        _ => tri(None),
    };
    let mut answer_body = json!({ "ageCheck": age_check });
    let mut fields = vec![format!("ageCheck={age_check}")];
    if let Some(verified) = profile.verified {
        answer_body["verifiedStatus"] = json!(verified);
        fields.push(format!("verifiedStatus={verified}"));
    }
    if request.content_lock {
        let value = tri(profile.content_lock);
        answer_body["contentLock"] = json!(value);
        fields.push(format!("contentLock={value}"));
    }
    if request.parental_control {
        let value = tri(profile.parental_control);
        answer_body["parentalControl"] = json!(value);
        fields.push(format!("parentalControl={value}"));
    }
    respond(state, &admitted, peer, "age_check", fields, answer_body).await
}

/// CAMARA's three-valued answers: `"true"`, `"false"`, `"not_available"`.
fn tri(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "true",
        Some(false) => "false",
        None => "not_available",
    }
}

/// What an age check asks.
#[derive(Debug, PartialEq, Eq)]
struct AgeRequest {
    threshold: u8,
    content_lock: bool,
    parental_control: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum AgeRequestError {
    Invalid,
    OutOfRange,
    PhoneNumber,
}

/// `VerifyRequestBody`: `ageThreshold` 0..=120 required; the optional members of the right
/// types; `phoneNumber` refused (422) once the body is otherwise valid.
fn age_request(body: &[u8]) -> Result<AgeRequest, AgeRequestError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| AgeRequestError::Invalid)?;
    let object = value.as_object().ok_or(AgeRequestError::Invalid)?;
    // An integer outside 0..=120 is OUT_OF_RANGE (CAMARA's Generic400); anything else that
    // is not an integer is INVALID_ARGUMENT.
    let threshold = match object.get("ageThreshold") {
        Some(Value::Number(number)) if number.is_i64() || number.is_u64() => number
            .as_u64()
            .filter(|t| *t <= 120)
            .and_then(|t| u8::try_from(t).ok())
            .ok_or(AgeRequestError::OutOfRange)?,
        _ => return Err(AgeRequestError::Invalid),
    };
    let flag = |name: &str| match object.get(name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(AgeRequestError::Invalid),
    };
    let (content_lock, parental_control) =
        (flag("includeContentLock")?, flag("includeParentalControl")?);
    for name in [
        "idDocument",
        "name",
        "givenName",
        "familyName",
        "middleNames",
        "familyNameAtBirth",
        "email",
    ] {
        if object.get(name).is_some_and(|v| !v.is_string()) {
            return Err(AgeRequestError::Invalid);
        }
    }
    if let Some(birthdate) = object.get("birthdate") {
        let valid = birthdate
            .as_str()
            .and_then(headwall_sessions::Date::parse)
            .is_some();
        if !valid {
            return Err(AgeRequestError::Invalid);
        }
    }
    if let Some(number) = object.get("phoneNumber") {
        let well_formed = number.as_str().is_some_and(|n| {
            n.strip_prefix('+').is_some_and(|d| {
                (5..=15).contains(&d.len())
                    && !d.starts_with('0')
                    && d.bytes().all(|b| b.is_ascii_digit())
            })
        });
        return Err(if well_formed {
            AgeRequestError::PhoneNumber
        } else {
            AgeRequestError::Invalid
        });
    }
    Ok(AgeRequest {
        threshold,
        content_lock,
        parental_control,
    })
}

/// What a verify request asserts.
#[derive(Debug, PartialEq, Eq)]
enum Asserted {
    Plain(String),
    Hashed(String),
}

/// `NumberVerificationRequestBody`: a JSON object with exactly one property, `phoneNumber`
/// (`^\+[1-9][0-9]{4,14}$`) or `hashedPhoneNumber` (`^[a-fA-F0-9]{64}$`).
fn asserted_number(body: &[u8]) -> Option<Asserted> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    if let Some(number) = object.get("phoneNumber") {
        let number = number.as_str()?;
        let digits = number.strip_prefix('+')?;
        let valid = (5..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        return valid.then(|| Asserted::Plain(number.to_owned()));
    }
    let hashed = object.get("hashedPhoneNumber")?.as_str()?;
    let valid = hashed.len() == 64 && hashed.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| Asserted::Hashed(hashed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_body_is_exactly_one_well_formed_number() {
        let hash = "a".repeat(64);
        assert_eq!(
            asserted_number(br#"{"phoneNumber":"+447700900123"}"#),
            Some(Asserted::Plain("+447700900123".into()))
        );
        assert_eq!(
            asserted_number(format!(r#"{{"hashedPhoneNumber":"{hash}"}}"#).as_bytes()),
            Some(Asserted::Hashed(hash.clone()))
        );
        for bad in [
            r#"{}"#.to_owned(),
            r#"{"phoneNumber":"447700900123"}"#.to_owned(),
            r#"{"phoneNumber":"+0447700900123"}"#.to_owned(),
            r#"{"phoneNumber":"+1234"}"#.to_owned(),
            r#"{"phoneNumber":"+1234567890123456"}"#.to_owned(),
            r#"{"phoneNumber":447700900123}"#.to_owned(),
            format!(r#"{{"phoneNumber":"+447700900123","hashedPhoneNumber":"{hash}"}}"#),
            r#"{"hashedPhoneNumber":"abc"}"#.to_owned(),
            r#"{"other":"+447700900123"}"#.to_owned(),
            r#"["+447700900123"]"#.to_owned(),
            "not json".to_owned(),
        ] {
            assert_eq!(asserted_number(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn an_age_request_is_a_threshold_and_optional_flags() {
        assert_eq!(
            age_request(br#"{"ageThreshold":18,"includeContentLock":true,"name":"F"}"#),
            Ok(AgeRequest {
                threshold: 18,
                content_lock: true,
                parental_control: false
            })
        );
        for bad in [
            r#"{}"#,
            r#"{"ageThreshold":"18"}"#,
            r#"{"ageThreshold":18.5}"#,
            r#"{"ageThreshold":18,"includeContentLock":"yes"}"#,
            r#"{"ageThreshold":18,"name":5}"#,
            r#"{"ageThreshold":18,"birthdate":"22/08/1978"}"#,
            r#"{"ageThreshold":18,"phoneNumber":"12345"}"#,
        ] {
            assert_eq!(
                age_request(bad.as_bytes()),
                Err(AgeRequestError::Invalid),
                "{bad}"
            );
        }
        for out_of_range in [r#"{"ageThreshold":121}"#, r#"{"ageThreshold":-1}"#] {
            assert_eq!(
                age_request(out_of_range.as_bytes()),
                Err(AgeRequestError::OutOfRange),
                "{out_of_range}"
            );
        }
        assert_eq!(
            age_request(br#"{"ageThreshold":18,"phoneNumber":"+34629255833"}"#),
            Err(AgeRequestError::PhoneNumber)
        );
    }

    #[test]
    fn the_correlator_follows_camaras_pattern() {
        let mut headers = HeaderMap::new();
        assert_eq!(correlator(&headers), Ok(None));
        headers.insert(
            "x-correlator",
            HeaderValue::from_static("b4333c46-49c0:x/{y}"),
        );
        assert!(matches!(correlator(&headers), Ok(Some(_))));
        headers.insert("x-correlator", HeaderValue::from_static("has space"));
        assert_eq!(correlator(&headers), Err(()));
    }
}
