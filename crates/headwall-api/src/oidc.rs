//! OpenID Connect discovery, the JWKS, and `/authorize` with network-based authentication.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use headwall_policy::{ApiClient, ApiScope};
use headwall_sessions::Lookup;
use serde_json::json;

use crate::codes::Grant;
use crate::metrics::Endpoint;
use crate::{ApiState, Peer};

/// A token request is a few hundred bytes and one assertion; an RSA-signed assertion with a
/// certificate chain in its header stays well below this.
const TOKEN_BODY_LIMIT: usize = 16 * 1024;

pub(crate) fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/authorize", get(authorize))
        .route(
            headwall_policy::TOKEN_PATH,
            axum::routing::post(crate::token::counted)
                .layer(axum::extract::DefaultBodyLimit::max(TOKEN_BODY_LIMIT)),
        )
        .route(
            ApiScope::NumberVerify.endpoint_path(),
            axum::routing::post(crate::camara::verify_counted)
                .layer(axum::extract::DefaultBodyLimit::max(TOKEN_BODY_LIMIT)),
        )
        .route(
            ApiScope::NumberShare.endpoint_path(),
            get(crate::camara::share_counted),
        )
        .route(
            ApiScope::AgeVerify.endpoint_path(),
            axum::routing::post(crate::camara::kyc_counted)
                .layer(axum::extract::DefaultBodyLimit::max(TOKEN_BODY_LIMIT)),
        )
        .with_state(state)
}

/// OpenID Connect Discovery 1.0 §3, for what this server does and nothing more.
async fn discovery(State(state): State<Arc<ApiState>>) -> Response {
    let issuer = &state.settings.public_url;
    let mut scopes = vec!["openid"];
    scopes.extend(ApiScope::ALL.iter().map(|scope| scope.as_str()));
    let document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": scopes,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr"],
        "request_parameter_supported": true,
        "request_object_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        "request_uri_parameter_supported": false,
    });
    no_store(Json(document).into_response())
}

/// The identity signing key, which signs access and ID tokens.
async fn jwks(State(state): State<Arc<ApiState>>) -> Response {
    let mut response = state.gateway.token_issuer().jwks_json().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    response
}

/// Why `/authorize` refused, as RFC 6749 §4.1.2.1 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    InvalidRequest,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    TemporarilyUnavailable,
}

impl Refusal {
    fn code(self) -> &'static str {
        match self {
            Refusal::InvalidRequest => "invalid_request",
            Refusal::UnsupportedResponseType => "unsupported_response_type",
            Refusal::InvalidScope => "invalid_scope",
            Refusal::AccessDenied => "access_denied",
            Refusal::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// `GET /authorize`: the authorization code flow with PKCE (S256), `prompt=none` implied.
///
/// An unknown client or a redirect URI it did not register gets a 400 page and no redirect
/// (RFC 6749 §4.1.2.1: never send a user agent to an unverified URI). Every other refusal is a
/// redirect with `error` and the client's `state`. The device must be in
/// `subscriber_networks` and bound, not stale; otherwise — and with the kill switch on or the
/// store unreachable — `access_denied` (CAMARA ICM: the device is not identified).
async fn authorize(
    State(state): State<Arc<ApiState>>,
    peer: Extension<Peer>,
    query: RawQuery,
) -> Response {
    let response = authorize_inner(&state, peer, query).await;
    state.metrics.record(Endpoint::Authorize, response)
}

async fn authorize_inner(
    state: &ApiState,
    Extension(Peer(device)): Extension<Peer>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(params) = params(query.as_deref().unwrap_or("")) else {
        return page("the request's parameters are malformed or repeated (RFC 6749 §3.1)");
    };
    let active = state.gateway.policy();
    let Some(client) = params
        .get("client_id")
        .and_then(|id| active.policy.api_client(id))
    else {
        return page("unknown client_id");
    };
    if params.contains_key("request_uri") {
        return page("request_uri is not supported; send the request object itself as request");
    }
    // A signed request object (RFC 9101 §5): its parameters are the request's, and only they.
    let params = match params.get("request") {
        None => params,
        Some(request) => {
            let from_object = state.assertions.request_object(
                request,
                &client.id,
                &client.jwks_file,
                &state.settings.public_url,
            );
            match from_object {
                Ok(object) if object.get("client_id").is_none_or(|id| *id == client.id) => object,
                _ => {
                    tracing::debug!(client = %client.id, "request object refused");
                    return page("the request object is not signed by this client, or not for us");
                }
            }
        }
    };
    let get = |name: &str| params.get(name).map(String::as_str);
    let Some(redirect_uri) = get("redirect_uri") else {
        return page("redirect_uri is required");
    };
    if !client.redirect_uris.iter().any(|uri| uri == redirect_uri) {
        return page("redirect_uri is not registered for this client");
    }
    let client_state = get("state");
    let refuse = |refusal: Refusal, description: &str| {
        redirect(
            redirect_uri,
            client_state,
            &[
                ("error", refusal.code()),
                ("error_description", description),
            ],
        )
    };
    if get("response_type") != Some("code") {
        return refuse(
            Refusal::UnsupportedResponseType,
            "response_type must be code",
        );
    }
    if client_state.is_none_or(str::is_empty) {
        return refuse(Refusal::InvalidRequest, "state is required");
    }
    let Some(code_challenge) = get("code_challenge").filter(|c| is_s256_challenge(c)) else {
        return refuse(
            Refusal::InvalidRequest,
            "code_challenge (43 base64url characters) is required",
        );
    };
    if get("code_challenge_method") != Some("S256") {
        return refuse(
            Refusal::InvalidRequest,
            "code_challenge_method must be S256",
        );
    }
    if let Some(prompt) = get("prompt")
        && prompt != "none"
    {
        return refuse(
            Refusal::InvalidRequest,
            "only prompt=none: the device is identified by the network",
        );
    }
    let scopes = match granted_scopes(client, get("scope").unwrap_or("")) {
        Ok(scopes) => scopes,
        Err(description) => return refuse(Refusal::InvalidScope, description),
    };

    // Network-based authentication: the device's address on the mobile network.
    let identified = state
        .settings
        .subscriber_networks
        .iter()
        .any(|net| net.contains(&device));
    if !identified || !state.gateway.enrichment_enabled() {
        return refuse(
            Refusal::AccessDenied,
            "the device is not identified by the mobile network",
        );
    }
    let now = headwall_sessions::unix_now();
    let msisdn = match state
        .gateway
        .sessions()
        .lookup_subscriber(device, now)
        .await
    {
        Ok(Lookup::Bound(msisdn)) => msisdn,
        Ok(Lookup::Unbound | Lookup::Stale) | Err(_) => {
            return refuse(
                Refusal::AccessDenied,
                "the device is not identified by the mobile network",
            );
        }
    };
    let grant = Grant {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        code_challenge: code_challenge.to_owned(),
        msisdn,
        scopes,
        nonce: get("nonce").map(str::to_owned),
        auth_time: now,
        device,
    };
    match state.codes.issue(&grant).await {
        Ok(Some(code)) => redirect(redirect_uri, client_state, &[("code", &code)]),
        Ok(None) => refuse(Refusal::TemporarilyUnavailable, "try again shortly"),
        Err(error) => {
            tracing::warn!(%error, "api records unavailable; no code issued");
            refuse(Refusal::TemporarilyUnavailable, "try again shortly")
        }
    }
}

/// The API scopes a request asks for, when it may have them: `openid`, exactly the client's
/// purpose, and at least one API scope the client is registered for; nothing else.
fn granted_scopes(client: &ApiClient, scope: &str) -> Result<Vec<ApiScope>, &'static str> {
    let mut openid = false;
    let mut purposes = 0;
    let mut scopes = Vec::new();
    for item in scope.split(' ').filter(|item| !item.is_empty()) {
        if item == "openid" {
            openid = true;
        } else if item.starts_with("dpv:") {
            if item != client.purpose {
                return Err("the purpose is not the one the client is registered for");
            }
            purposes += 1;
        } else {
            match ApiScope::from_scope_str(item) {
                Some(api) if client.allows(api) => {
                    if !scopes.contains(&api) {
                        scopes.push(api);
                    }
                }
                _ => return Err("a scope the client is not registered for"),
            }
        }
    }
    if !openid {
        return Err("scope must include openid");
    }
    if purposes != 1 {
        return Err("scope must include the client's one dpv: purpose");
    }
    if scopes.is_empty() {
        return Err("scope must include an API scope");
    }
    scopes.sort();
    Ok(scopes)
}

/// RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters of the base64url alphabet.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The query's parameters, or `None` when one is repeated or the encoding is malformed.
pub(crate) fn params(query: &str) -> Option<HashMap<String, String>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    let mut params = HashMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if params.insert(name, value).is_some() {
            return None;
        }
    }
    Some(params)
}

/// A 302 to `uri` with `pairs` and the client's `state` added to its query.
fn redirect(uri: &str, client_state: Option<&str>, pairs: &[(&str, &str)]) -> Response {
    let mut all: Vec<(&str, &str)> = pairs.to_vec();
    if let Some(client_state) = client_state {
        all.push(("state", client_state));
    }
    let query = serde_urlencoded::to_string(&all).unwrap_or_default();
    let separator = if uri.contains('?') { '&' } else { '?' };
    let location = format!("{uri}{separator}{query}");
    match HeaderValue::from_str(&location) {
        Ok(location) => {
            let mut response = StatusCode::FOUND.into_response();
            response.headers_mut().insert(header::LOCATION, location);
            no_store(response)
        }
        Err(_) => page("the redirect cannot be formed"),
    }
}

/// A refusal shown to the user agent itself: no redirect.
fn page(why: &str) -> Response {
    no_store(
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("authorization request refused: {why}\n"),
        )
            .into_response(),
    )
}

/// RFC 6749 §5.1 and §4.1.2: nothing about a subscriber is cached.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ApiClient {
        ApiClient {
            id: "shop".into(),
            jwks_file: Default::default(),
            jwks_file_at: headwall_policy::TextPosition { line: 1, column: 1 },
            redirect_uris: vec!["https://shop.test/cb".into()],
            scopes: vec![ApiScope::NumberVerify],
            purpose: "dpv:FraudPreventionAndDetection".into(),
            justification: None,
        }
    }

    #[test]
    fn scope_is_openid_the_purpose_and_registered_api_scopes() {
        let client = client();
        let ok = "openid dpv:FraudPreventionAndDetection number-verification:verify";
        assert_eq!(
            granted_scopes(&client, ok),
            Ok(vec![ApiScope::NumberVerify])
        );
        for bad in [
            "dpv:FraudPreventionAndDetection number-verification:verify",
            "openid number-verification:verify",
            "openid dpv:Marketing number-verification:verify",
            "openid dpv:FraudPreventionAndDetection dpv:FraudPreventionAndDetection number-verification:verify",
            "openid dpv:FraudPreventionAndDetection kyc-age-verification:verify",
            "openid dpv:FraudPreventionAndDetection",
            "openid dpv:FraudPreventionAndDetection number-verification:verify profile",
        ] {
            assert!(granted_scopes(&client, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(params("a=1&b=2").is_some());
        assert!(params("a=1&a=2").is_none());
        assert_eq!(params("s=a%20b").unwrap()["s"], "a b");
    }

    #[test]
    fn the_redirect_keeps_the_uris_query_and_adds_state() {
        let response = redirect("https://shop.test/cb?x=1", Some("s t"), &[("code", "abc")]);
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://shop.test/cb?x=1&code=abc&state=s+t"
        );
    }
}
