//! The bearer-token operator endpoints.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use headwall_audit::{ExposureFilter, TimeRange};
use headwall_sessions::Lookup;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq as _;

use crate::AdminState;

/// A JSON error with a reason.
pub(crate) fn error(status: StatusCode, reason: &str) -> Response {
    (status, Json(json!({ "error": reason }))).into_response()
}

/// 401 unless `Authorization: Bearer <token>` matches, compared in constant time. The scheme
/// is case-insensitive (RFC 9110 §11.1: `bearer`, `BEARER` alike).
pub(crate) async fn require_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_credentials);
    let Some(presented) = presented else {
        return unauthorized("send Authorization: Bearer <the token in [admin].token_file>");
    };
    let presented = presented.as_bytes();
    let role = if bool::from(presented.ct_eq(&state.token)) {
        Role::Operator
    } else if state
        .read_token
        .as_ref()
        .is_some_and(|read| bool::from(presented.ct_eq(read)))
    {
        Role::Reader
    } else {
        return unauthorized("wrong token; use the one in [admin].token_file");
    };
    if role == Role::Reader && request.method() != axum::http::Method::GET {
        return error(
            StatusCode::FORBIDDEN,
            "the read-only token ([admin].read_token_file) may only GET; changes need the \
             operator token ([admin].token_file)",
        );
    }
    let mut request = request;
    request.extensions_mut().insert(role);
    next.run(request).await
}

/// Which token a request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `[admin].token_file`: everything.
    Operator,
    /// `[admin].read_token_file`: GET only; subscriber numbers in audit answers masked to their
    /// last three digits.
    Reader,
}

/// `subscriber_json`'s answer with every number masked (`msisdn:•••••••••123`), for the
/// read-only token.
fn masked_numbers(mut answer: serde_json::Value) -> serde_json::Value {
    let mask = |value: &mut serde_json::Value| {
        let masked = value
            .as_str()
            .and_then(|digits| headwall_identity::Msisdn::parse(digits).ok())
            .map_or_else(|| "msisdn:•••".to_owned(), |msisdn| msisdn.to_string());
        *value = serde_json::Value::String(masked);
    };
    if let Some(subscriber) = answer.get_mut("subscriber") {
        mask(subscriber);
    }
    if let Some(records) = answer
        .get_mut("disclosures")
        .and_then(serde_json::Value::as_array_mut)
    {
        for record in records {
            if let Some(msisdn) = record.get_mut("msisdn") {
                mask(msisdn);
            }
        }
    }
    answer
}

/// The credentials of a `Bearer` authorization value: the scheme compared without case, then
/// one or more spaces, then the token.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
        .filter(|token| !token.is_empty())
}

fn unauthorized(reason: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, reason);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    response
}

/// `GET /v1/sessions/{ip}`: who the address is bound to. The number is masked to its last three
/// digits: the full number is for the audit endpoints, which answer from the record.
pub(crate) async fn session(State(state): State<AdminState>, Path(ip): Path<String>) -> Response {
    // Canonical, as every binding is: `::ffff:192.0.2.5` is `192.0.2.5`.
    let Ok(ip) = ip.parse::<IpAddr>().map(|ip| ip.to_canonical()) else {
        return error(StatusCode::BAD_REQUEST, "not an IP address");
    };
    match state
        .gateway
        .sessions()
        .lookup(ip, headwall_sessions::unix_now())
        .await
    {
        Err(failure) => error(StatusCode::SERVICE_UNAVAILABLE, &failure.to_string()),
        Ok(Lookup::Bound(binding)) => Json(json!({
            "ip": ip.to_string(),
            "state": "bound",
            "msisdn": binding.msisdn.to_string(),
            "imsi": binding.imsi.as_ref().map(ToString::to_string),
            "session_id": binding.session_id,
            "nas": binding.nas,
            "updated_at": headwall_audit::time::format_rfc3339(
                i64::try_from(binding.updated_at).unwrap_or(0) * 1000
            ),
        }))
        .into_response(),
        Ok(Lookup::Stale) => Json(json!({
            "ip": ip.to_string(),
            "state": "stale",
            "note": "no accounting for longer than [sessions].stale_after; never used",
        }))
        .into_response(),
        Ok(Lookup::Unbound) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "ip": ip.to_string(), "state": "unbound" })),
        )
            .into_response(),
    }
}

/// `DELETE /v1/sessions/{ip}?prefix=N`'s query: an IPv6 subscriber is bound by the prefix its
/// `Framed-IPv6-Prefix` gave, so that length is given with the network's first address.
#[derive(Deserialize)]
pub(crate) struct UnbindQuery {
    prefix: Option<u8>,
}

/// `DELETE /v1/sessions/{ip}`: removes the binding of `ip` (IPv4: its `/32`; IPv6: the
/// `?prefix=` network it was bound as, default 128) durably, as an Accounting-Stop of its
/// session would. The address's requests carry no identity until the next Start binds it.
pub(crate) async fn unbind(
    State(state): State<AdminState>,
    Path(ip): Path<String>,
    Query(query): Query<UnbindQuery>,
) -> Response {
    let Ok(ip) = ip.parse::<IpAddr>().map(|ip| ip.to_canonical()) else {
        return error(StatusCode::BAD_REQUEST, "not an IP address");
    };
    let full = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = query.prefix.unwrap_or(full);
    let Ok(network) = ipnet::IpNet::new(ip, prefix).map(|net| net.trunc()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "prefix must be at most 32 for IPv4, 128 for IPv6",
        );
    };
    if network.addr() != ip {
        return error(
            StatusCode::BAD_REQUEST,
            "give the network's first address with its prefix (as GET /v1/sessions shows it)",
        );
    }
    let sessions = state.gateway.sessions();
    let binding = match sessions.lookup(ip, headwall_sessions::unix_now()).await {
        Err(failure) => return error(StatusCode::SERVICE_UNAVAILABLE, &failure.to_string()),
        Ok(Lookup::Bound(binding)) => binding,
        Ok(Lookup::Stale) => {
            return (
                StatusCode::CONFLICT,
                Json(json!({
                    "ip": ip.to_string(),
                    "state": "stale",
                    "note": "already never used; the next sweep removes it",
                })),
            )
                .into_response();
        }
        Ok(Lookup::Unbound) => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({ "ip": ip.to_string(), "state": "unbound" })),
            )
                .into_response();
        }
    };
    let change = headwall_sessions::Change::Unbind(network, binding.session_id.clone());
    match sessions.apply(change).await {
        Err(failure) => error(StatusCode::SERVICE_UNAVAILABLE, &failure.to_string()),
        Ok(false) => error(
            StatusCode::CONFLICT,
            "no binding of that network with the session found (bound under another prefix, or \
             rebound meanwhile); check GET /v1/sessions and the prefix",
        ),
        Ok(true) => {
            tracing::info!(
                %network,
                session_id = %binding.session_id,
                nas = %binding.nas,
                "binding removed by the operator"
            );
            Json(json!({
                "ip": ip.to_string(),
                "network": network.to_string(),
                "state": "unbound",
                "session_id": binding.session_id,
            }))
            .into_response()
        }
    }
}

/// `GET /v1/policy`: the policy in force.
pub(crate) async fn policy(State(state): State<AdminState>) -> Response {
    let active = state.gateway.policy();
    let partners: Vec<serde_json::Value> = active
        .policy
        .partners()
        .iter()
        .map(|partner| {
            json!({
                "name": partner.name,
                "purpose": partner.purpose.as_str(),
                "hosts": partner.hosts.iter().map(|h| h.as_config_str()).collect::<Vec<_>>(),
                "ports": partner.ports,
                "destinations": partner.destinations.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "headers": partner.headers.iter().map(|h| json!({"name": h.name, "kind": h.kind.as_str()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({
        "hash": active.policy.hash(),
        "loaded_at": headwall_audit::time::format_rfc3339(active.loaded_at_ms),
        "enrichment_enabled": state.gateway.enrichment_enabled(),
        "suspended_partners": *state.gateway.suspended(),
        "strip_headers": active.policy.strip().len(),
        "partners": partners,
    }))
    .into_response()
}

/// `POST /v1/policy/reload`.
pub(crate) async fn reload(State(state): State<AdminState>, body: axum::body::Bytes) -> Response {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Approval {
        approve: String,
    }
    let approve = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<Approval>(&body) {
            Ok(approval) => Some(approval.approve),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "send no body, or {\"approve\": \"<the new policy hash headwall plan printed>\"}",
                );
            }
        }
    };
    match (state.reload)(approve).await {
        Ok(report) => Json(report).into_response(),
        Err(refused) => match &refused {
            crate::ReloadError::Unapproved { policy_hash, plan } => (
                StatusCode::CONFLICT,
                Json(json!({
                    "error": refused.to_string(),
                    "policy_hash": policy_hash,
                    "plan": plan,
                })),
            )
                .into_response(),
            crate::ReloadError::Invalid(_) => {
                error(StatusCode::UNPROCESSABLE_ENTITY, &refused.to_string())
            }
        },
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrichmentBody {
    enabled: bool,
}

/// What the two switches say to a body that is not `{"enabled": bool}`.
const ENABLED_BODY: &str =
    "send a JSON body {\"enabled\": true} or {\"enabled\": false}, no other fields";

/// `POST /v1/enrichment {"enabled": bool}`: the operator's switch (also how a canary's kill
/// switch is undone).
pub(crate) async fn enrichment(
    State(state): State<AdminState>,
    body: Result<Json<EnrichmentBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(StatusCode::BAD_REQUEST, ENABLED_BODY);
    };
    state.gateway.set_enrichment(body.enabled, "operator");
    // `enabled` is what requests get; `canary_hold` says when the canary, not the switch,
    // keeps it off ([canary].on_unverified = "pause").
    Json(json!({
        "enabled": state.gateway.enrichment_enabled(),
        "canary_hold": state.gateway.canary_hold(),
    }))
    .into_response()
}

/// `POST /v1/partners/{name}/enrichment {"enabled": bool}`: suspends one partner (its
/// requests are forwarded without identity) or lifts the suspension. Written durably before
/// it applies, and kept across restarts; recorded as a `partner_enrichment` event.
pub(crate) async fn partner_enrichment(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: Result<Json<EnrichmentBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(StatusCode::BAD_REQUEST, ENABLED_BODY);
    };
    if !state
        .gateway
        .policy()
        .policy
        .partners()
        .iter()
        .any(|partner| partner.name == name)
    {
        return error(
            StatusCode::NOT_FOUND,
            "no partner of that name in the policy in force",
        );
    }
    let _serialized = state.suspend_lock.lock().await;
    let mut suspended = (*state.gateway.suspended()).clone();
    let changed = if body.enabled {
        suspended.remove(&name)
    } else {
        suspended.insert(name.clone())
    };
    if changed {
        let (path, set) = (state.suspended_file.clone(), suspended.clone());
        let saved = tokio::task::spawn_blocking(move || crate::suspended::save(&path, &set)).await;
        if !matches!(saved, Ok(Ok(()))) {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the suspended-partners file could not be written; nothing changed",
            );
        }
        state.gateway.set_suspended(suspended.clone());
        state.gateway.audit().event(
            headwall_audit::EventKind::PartnerEnrichment,
            &json!({ "partner": name, "enabled": body.enabled, "reason": "operator" }),
        );
        tracing::info!(partner = %name, enabled = body.enabled, "partner enrichment switched");
    }
    Json(json!({
        "partner": name,
        "enabled": body.enabled,
        "suspended": suspended,
    }))
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    from: Option<String>,
    to: Option<String>,
    host: Option<String>,
    partner: Option<String>,
}

impl AuditQuery {
    /// The time range, or why a bound is not a time (for a 400).
    fn range(&self) -> Result<TimeRange, String> {
        let parse = |text: &Option<String>, name: &str| {
            text.as_deref()
                .map(headwall_audit::time::parse_rfc3339)
                .transpose()
                .map_err(|reason| format!("{name}: {reason}"))
        };
        Ok(TimeRange {
            from: parse(&self.from, "from")?,
            to: parse(&self.to, "to")?,
        })
    }
}

/// The answer of an audit query, or a 500 with its reason.
fn answer(result: Result<serde_json::Value, String>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(reason) => error(StatusCode::INTERNAL_SERVER_ERROR, &reason),
    }
}

/// `GET /v1/audit/subscriber/{msisdn}?from=&to=`.
pub(crate) async fn audit_subscriber(
    State(state): State<AdminState>,
    axum::Extension(role): axum::Extension<Role>,
    Path(msisdn): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let range = match query.range() {
        Ok(range) => range,
        Err(reason) => return error(StatusCode::BAD_REQUEST, &reason),
    };
    let Some(msisdn) =
        headwall_radius::msisdn_from_calling_station_id(&msisdn, state.country_code.as_deref())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "not a subscriber number; give international digits, +CC..., 00CC..., or 0... with [radius].country_code",
        );
    };
    answer(
        state
            .audit
            .subscriber(&msisdn, range)
            .await
            .map(|records| headwall_audit::subscriber_json(&msisdn, range, &records))
            .map(|answer| match role {
                Role::Operator => answer,
                Role::Reader => masked_numbers(answer),
            }),
    )
}

/// `GET /v1/audit/exposure?host=&partner=&from=&to=`.
pub(crate) async fn audit_exposure(
    State(state): State<AdminState>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let range = match query.range() {
        Ok(range) => range,
        Err(reason) => return error(StatusCode::BAD_REQUEST, &reason),
    };
    let host = match query
        .host
        .as_deref()
        .map(headwall_policy::normalize_host)
        .transpose()
    {
        Ok(host) => host,
        Err(_) => return error(StatusCode::BAD_REQUEST, "host: not a valid host name"),
    };
    let filter = ExposureFilter {
        host,
        partner: query.partner,
        range,
    };
    answer(
        state
            .audit
            .exposure(&filter)
            .await
            .map(|rows| headwall_audit::exposure_json(&filter, &rows)),
    )
}
