//! `headwall_api_requests_total{endpoint,outcome}` and `headwall_api_tokens_issued_total{client}`
//! (docs/design.md, HTTPS, `[api]`): plain atomics and a small map, read by the admin listener at scrape time.
//! Labels are fixed names and configured client ids, never anything from a request.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use axum::http::{StatusCode, header};
use axum::response::Response;

/// The endpoints counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/authorize`
    Authorize,
    /// `/token`
    Token,
    /// `/number-verification/v2/verify`
    NvVerify,
    /// `/number-verification/v2/device-phone-number`
    NvShare,
    /// `/kyc-age-verification/v0.2/verify`
    KycAge,
}

impl Endpoint {
    /// Every endpoint, in label order.
    pub const ALL: [Endpoint; 5] = [
        Endpoint::Authorize,
        Endpoint::Token,
        Endpoint::NvVerify,
        Endpoint::NvShare,
        Endpoint::KycAge,
    ];

    /// The `endpoint` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Authorize => "authorize",
            Endpoint::Token => "token",
            Endpoint::NvVerify => "nv_verify",
            Endpoint::NvShare => "nv_share",
            Endpoint::KycAge => "kyc_age",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiOutcome {
    /// Answered (a code, tokens, a result).
    Ok,
    /// The device was not identified: `access_denied`.
    Denied,
    /// The request was malformed or not allowed as asked (400, 422, an `/authorize` error).
    BadRequest,
    /// No valid client or token (401).
    Unauthenticated,
    /// A token without the scope (403).
    Forbidden,
    /// We could not answer (5xx: the audit, the kill switch, a full table).
    Error,
}

impl ApiOutcome {
    /// Every outcome, in label order.
    pub const ALL: [ApiOutcome; 6] = [
        ApiOutcome::Ok,
        ApiOutcome::Denied,
        ApiOutcome::BadRequest,
        ApiOutcome::Unauthenticated,
        ApiOutcome::Forbidden,
        ApiOutcome::Error,
    ];

    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiOutcome::Ok => "ok",
            ApiOutcome::Denied => "denied",
            ApiOutcome::BadRequest => "bad_request",
            ApiOutcome::Unauthenticated => "unauthenticated",
            ApiOutcome::Forbidden => "forbidden",
            ApiOutcome::Error => "error",
        }
    }

    /// The outcome a response stands for: by status, and for a redirect by its `error`.
    fn of(response: &Response) -> ApiOutcome {
        let status = response.status();
        if status == StatusCode::FOUND {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            return if location.contains("error=access_denied") {
                ApiOutcome::Denied
            } else if location.contains("error=temporarily_unavailable") {
                ApiOutcome::Error
            } else if location.contains("error=") {
                ApiOutcome::BadRequest
            } else {
                ApiOutcome::Ok
            };
        }
        match status.as_u16() {
            200..=299 => ApiOutcome::Ok,
            401 => ApiOutcome::Unauthenticated,
            403 => ApiOutcome::Forbidden,
            500..=599 => ApiOutcome::Error,
            _ => ApiOutcome::BadRequest,
        }
    }
}

/// The API's counters.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    requests: [[AtomicU64; 6]; 5],
    tokens: Mutex<BTreeMap<String, u64>>,
}

impl ApiMetrics {
    /// Counts `response` for `endpoint` and hands it back.
    pub(crate) fn record(&self, endpoint: Endpoint, response: Response) -> Response {
        let outcome = ApiOutcome::of(&response);
        let (e, o) = (endpoint as usize, outcome as usize);
        self.requests[e][o].fetch_add(1, Ordering::Relaxed);
        response
    }

    pub(crate) fn token_issued(&self, client: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        *tokens.entry(client.to_owned()).or_default() += 1;
    }

    /// Every (endpoint, outcome, count), zeros included.
    pub fn requests(&self) -> Vec<(Endpoint, ApiOutcome, u64)> {
        let mut all = Vec::with_capacity(30);
        for endpoint in Endpoint::ALL {
            for outcome in ApiOutcome::ALL {
                let value =
                    self.requests[endpoint as usize][outcome as usize].load(Ordering::Relaxed);
                all.push((endpoint, outcome, value));
            }
        }
        all
    }

    /// Access tokens issued per client id.
    pub fn tokens_issued(&self) -> Vec<(String, u64)> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.iter().map(|(c, n)| (c.clone(), *n)).collect()
    }
}
