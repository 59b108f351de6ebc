//! `POST /token`: the authorization code grant with `private_key_jwt` (docs/design.md, HTTPS, `[api]`).
//!
//! Order of checks: the request's shape, the client's assertion (401 `invalid_client`), then
//! the code — redeemed once, for this client, this redirect URI and this PKCE verifier
//! (`invalid_grant`; a second redemption also revokes what the first was given). The client
//! learns the subscriber's pairwise `sub` here, so that is a disclosure: its audit row is
//! durable before the tokens leave, and if it cannot be written the client gets 503
//! `temporarily_unavailable` and nothing else. No refresh tokens.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use headwall_audit::Disclosure;
use headwall_policy::ApiScope;
use serde_json::json;

use crate::assertion::{self, JWT_BEARER, pkce_matches};
use crate::codes::Redeemed;
use crate::issued::Issued;
use crate::metrics::Endpoint;
use crate::oidc::params;
use crate::{ApiState, Peer};

/// An RFC 6749 §5.2 error.
fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response();
    no_store(response.headers_mut());
    response
}

fn invalid_request(description: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_client() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    )
}

fn invalid_grant() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "the code is invalid, expired, already used, or not this client's",
    )
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "try again shortly",
    )
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// `/token`, counted.
pub(crate) async fn counted(
    State(state): State<Arc<ApiState>>,
    peer: Extension<Peer>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let response = token(&state, peer, headers, body).await;
    state.metrics.record(Endpoint::Token, response)
}

async fn token(
    state: &ApiState,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if form_type != Some("application/x-www-form-urlencoded") {
        return invalid_request("the body must be application/x-www-form-urlencoded");
    }
    let Some(form) = params(&body) else {
        return invalid_request("parameters are malformed or repeated");
    };
    let get = |name: &str| form.get(name).map(String::as_str);
    if get("grant_type") != Some("authorization_code") {
        return error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code",
        );
    }
    let (Some(code), Some(redirect_uri), Some(verifier)) =
        (get("code"), get("redirect_uri"), get("code_verifier"))
    else {
        return invalid_request("code, redirect_uri and code_verifier are required");
    };

    // The client first: nothing about a code is said to someone who cannot prove who they are.
    if get("client_assertion_type") != Some(JWT_BEARER) {
        return invalid_client();
    }
    let Some(client_assertion) = get("client_assertion") else {
        return invalid_client();
    };
    let Some(claimed) = assertion::claimed_client(client_assertion) else {
        return invalid_client();
    };
    if get("client_id").is_some_and(|id| id != claimed) {
        return invalid_client();
    }
    let active = state.gateway.policy();
    let Some(client) = active.policy.api_client(&claimed) else {
        return invalid_client();
    };
    let issuer = &state.settings.public_url;
    let audiences = [format!("{issuer}/token"), issuer.clone()];
    let now = headwall_sessions::unix_now();
    let unused = match state.assertions.verify(
        client_assertion,
        &client.id,
        &client.jwks_file,
        &audiences,
        now,
    ) {
        Ok(unused) => unused,
        Err(why) => {
            tracing::debug!(client = %client.id, reason = ?why, "client assertion refused");
            return invalid_client();
        }
    };
    match state.records.insert_new(&unused.key, "1", unused.ttl).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(client = %client.id, "client assertion replayed");
            return invalid_client();
        }
        Err(error) => return store_failed(&error),
    }

    // The token's id is chosen before the code is redeemed, so that a second redemption,
    // even on another node a moment later, knows what to revoke.
    let Some(jti) = random_id() else {
        return unavailable();
    };
    let grant = match state.codes.redeem(code, &jti).await {
        Ok(Redeemed::Grant(grant)) => grant,
        Ok(Redeemed::Again(token_ids)) => {
            tracing::warn!(client = %client.id, "authorization code redeemed twice; its tokens are revoked");
            if let Err(error) = state.issued.revoke(&token_ids).await {
                return store_failed(&error);
            }
            return invalid_grant();
        }
        Ok(Redeemed::Unknown) => return invalid_grant(),
        Err(error) => return store_failed(&error),
    };
    let mismatch = if grant.client_id != client.id {
        Some("another client's code")
    } else if grant.redirect_uri != redirect_uri {
        Some("redirect_uri differs from the authorization request's")
    } else if !pkce_matches(verifier, &grant.code_challenge) {
        Some("code_verifier does not match the code_challenge")
    } else {
        None
    };
    if let Some(why) = mismatch {
        tracing::debug!(client = %client.id, why, "authorization code refused");
        return invalid_grant();
    }
    // The policy may have changed since /authorize: only what the client may still have.
    let scopes: Vec<ApiScope> = grant
        .scopes
        .iter()
        .copied()
        .filter(|scope| client.allows(*scope))
        .collect();
    if scopes.is_empty() || !state.gateway.enrichment_enabled() {
        return invalid_grant();
    }

    let pairwise = state
        .gateway
        .pseudonym_key()
        .for_partner(&client.id)
        .pseudonym(&grant.msisdn);
    let lifetime = state.settings.access_token_lifetime.as_secs();
    let mut scope_text: Vec<&str> = vec!["openid", client.purpose.as_str()];
    scope_text.extend(scopes.iter().map(|s| s.as_str()));
    let scope_text = scope_text.join(" ");
    let access_token = state.gateway.token_issuer().sign(
        "at+jwt",
        &json!({
            "iss": issuer,
            "aud": issuer,
            "sub": pairwise.as_str(),
            "client_id": client.id,
            "scope": scope_text,
            "amr": ["nba"],
            "iat": now,
            "exp": now + lifetime,
            "jti": jti,
        }),
    );
    let mut id_claims = json!({
        "iss": issuer,
        "sub": pairwise.as_str(),
        "aud": client.id,
        "amr": ["nba"],
        "auth_time": grant.auth_time,
        "iat": now,
        "exp": now + lifetime,
    });
    if let Some(nonce) = &grant.nonce {
        id_claims["nonce"] = json!(nonce);
    }
    let id_token = state.gateway.token_issuer().sign("JWT", &id_claims);

    // The subject is recorded first: if the code's second redemption revoked this id in the
    // meantime, the record cannot be created and the token never leaves.
    let issued = Issued {
        client_id: client.id.clone(),
        msisdn: grant.msisdn.clone(),
        scopes,
        device: grant.device,
    };
    match state.issued.insert(&jti, &issued).await {
        Ok(true) => {}
        Ok(false) => return invalid_grant(),
        Err(error) => return store_failed(&error),
    }
    // No audit, no answer: the pairwise sub is a disclosure to this client.
    let disclosure = Disclosure {
        request_id: format!("api-{jti}"),
        partner: client.id.clone(),
        purpose: client.purpose.clone(),
        msisdn: grant.msisdn.clone(),
        kinds: vec!["pseudonym".into()],
        headers: vec!["sub".into()],
        host: headwall_policy::TOKEN_PATH.into(),
        port: state.public_port,
        upstream_ip: peer,
        client_ip: grant.device,
        policy_hash: active.policy.hash().to_owned(),
    };
    if let Err(error) = state.gateway.audit().disclose(disclosure).await {
        tracing::warn!(%error, "audit write failed; token not issued");
        return unavailable();
    }
    state.metrics.token_issued(&client.id);
    let mut response = Json(json!({
        "access_token": access_token.expose(),
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": scope_text,
        "id_token": id_token.expose(),
    }))
    .into_response();
    no_store(response.headers_mut());
    response
}

/// The sessions backend could not keep a record: 503, logged without key or value.
fn store_failed(error: &headwall_sessions::StoreError) -> Response {
    tracing::warn!(%error, "api records unavailable; token not issued");
    unavailable()
}

/// 128 random bits, base64url.
fn random_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}
