//! The admin listener (docs/design.md, Admin API).
//!
//! Open: `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus text), `GET
//! /.well-known/jwks.json`. Bearer token (`[admin].token_file`, compared in constant time):
//! `GET`/`DELETE /v1/sessions/{ip}`, `GET /v1/policy`, `POST /v1/policy/reload`, `POST /v1/enrichment`,
//! `GET /v1/audit/subscriber/{msisdn}`, `GET /v1/audit/exposure`. Errors are JSON
//! `{"error": "..."}` with a reason an operator can act on.
//!
//! Bind it to a management address only: it is not meant to face subscribers or the internet.

mod api;
mod metrics;
mod process;
mod ready;
pub mod suspended;
mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use headwall_proxy::Gateway;
use headwall_radius::RadiusMetrics;
use tokio::net::TcpListener;

pub use ready::Readiness;

/// What a reload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// Whether the policy changed (an identical file changes nothing).
    pub changed: bool,
    /// The hash of the policy now in force.
    pub policy_hash: String,
    /// What changed, in words: the hashes and `headwall plan`'s summary line.
    pub summary: String,
    /// Settings that differ from the running ones but take effect only after a restart.
    pub restart_needed: Vec<String>,
}

/// Why a reload left the running policy in force.
#[derive(Debug, Clone)]
pub enum ReloadError {
    /// The file could not be read or is invalid: `file:line:col: …`.
    Invalid(String),
    /// `[change].widening = "refuse"` and the new policy widens exposure without its hash as
    /// approval.
    Unapproved {
        /// The hash of the policy that was not applied: the approval it needs.
        policy_hash: String,
        /// `headwall plan`'s summary of what it would widen.
        plan: String,
    },
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Invalid(reason) => f.write_str(reason),
            ReloadError::Unapproved { policy_hash, plan } => write!(
                f,
                "the new policy widens exposure ({plan}) and [change].widening is \"refuse\": \
                 review it with `headwall plan`, then reload with {{\"approve\": \"{policy_hash}\"}}"
            ),
        }
    }
}

/// Re-reads and applies the configuration, with the hash of an approved new policy (`None`:
/// no approval given; SIGHUP); `Err` says why the old policy stays.
pub type Reloader = Arc<
    dyn Fn(
            Option<String>,
        ) -> Pin<Box<dyn Future<Output = Result<ReloadReport, ReloadError>> + Send>>
        + Send
        + Sync,
>;

/// The build, for `headwall_build_info`.
#[derive(Debug, Clone, Copy)]
pub struct BuildInfo {
    /// The package version.
    pub version: &'static str,
    /// The git commit it was built from (`unknown` outside a checkout).
    pub commit: &'static str,
}

/// How the last configuration reload went (`headwall_config_last_reload_successful`,
/// `headwall_config_last_reload_success_timestamp_seconds`). The configuration loaded at start
/// counts as the first success, as in Prometheus's own metrics of that name.
#[derive(Debug)]
pub struct ReloadStatus {
    successful: std::sync::atomic::AtomicBool,
    last_success: std::sync::atomic::AtomicU64,
}

impl ReloadStatus {
    /// A status whose last success is `at` (Unix seconds): the start.
    pub fn started(at: u64) -> ReloadStatus {
        ReloadStatus {
            successful: std::sync::atomic::AtomicBool::new(true),
            last_success: std::sync::atomic::AtomicU64::new(at),
        }
    }

    /// Records a reload's outcome at `at` (Unix seconds).
    pub fn record(&self, ok: bool, at: u64) {
        use std::sync::atomic::Ordering;
        self.successful.store(ok, Ordering::Relaxed);
        if ok {
            self.last_success.store(at, Ordering::Relaxed);
        }
    }

    /// Whether the last reload applied (or, before any, the start).
    pub fn successful(&self) -> bool {
        self.successful.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Unix seconds of the last reload that applied (or of the start).
    pub fn last_success(&self) -> u64 {
        self.last_success.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What the admin endpoints read and act on.
#[derive(Clone)]
pub struct AdminState {
    /// The data plane.
    pub gateway: Arc<Gateway>,
    /// RADIUS packet counters.
    pub radius: Arc<RadiusMetrics>,
    /// The HTTPS API's counters, when `[api]` is configured.
    pub api: Option<Arc<headwall_api::ApiMetrics>>,
    /// The audit log the audit endpoints read.
    pub audit: headwall_audit::AuditSource,
    /// `[radius].country_code`, for national-format numbers in audit queries.
    pub country_code: Option<String>,
    /// The bearer token for `/v1/*`.
    pub token: Arc<[u8]>,
    /// `[admin].read_token_file`'s token: GET endpoints only, audit numbers masked.
    pub read_token: Option<Arc<[u8]>>,
    /// Start-up and drain state for `/readyz`.
    pub readiness: Arc<Readiness>,
    /// `POST /v1/policy/reload` and SIGHUP.
    pub reload: Reloader,
    /// How the last reload went (the reloader records it).
    pub reloads: Arc<ReloadStatus>,
    /// The build.
    pub build: BuildInfo,
    /// Where the suspended partners are kept ([`suspended::path_in`] the state folder).
    pub suspended_file: PathBuf,
    /// Serializes changes to the suspended set (read, change, write, swap).
    pub suspend_lock: Arc<tokio::sync::Mutex<()>>,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    let jwks: Arc<str> = state.gateway.token_issuer().jwks_json().into();
    let registry = Arc::new(metrics::registry(&state));
    let open = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready::readyz))
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { metrics::exposition(&registry) }
            }),
        )
        .route(
            "/.well-known/jwks.json",
            get(move || {
                let jwks = jwks.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/jwk-set+json"),
                        )],
                        jwks.to_string(),
                    )
                        .into_response()
                }
            }),
        )
        .with_state(state.clone());
    let operator = Router::new()
        .route("/v1/sessions/{ip}", get(api::session).delete(api::unbind))
        .route("/v1/policy", get(api::policy))
        .route("/v1/policy/reload", post(api::reload))
        .route("/v1/enrichment", post(api::enrichment))
        .route(
            "/v1/partners/{name}/enrichment",
            post(api::partner_enrichment),
        )
        .route("/v1/audit/subscriber/{msisdn}", get(api::audit_subscriber))
        .route("/v1/audit/exposure", get(api::audit_exposure))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::require_token,
        ))
        .with_state(state);
    open.merge(operator)
        .fallback(|| async { api::error(axum::http::StatusCode::NOT_FOUND, "no such endpoint") })
}

/// Serves the admin API on `listener` until `shutdown` resolves — over TLS with `tls`
/// (`[admin]` `tls_cert_file`/`tls_key_file`), else plain HTTP; logs the bound address when
/// called, before the future runs.
pub fn serve(
    listener: TcpListener,
    state: AdminState,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listener = "admin", %addr, tls = tls.is_some(), "admin listening");
    }
    let router = router(state);
    match tls {
        None => Box::pin(std::future::IntoFuture::into_future(
            axum::serve(listener, router).with_graceful_shutdown(shutdown),
        )),
        Some(config) => match tls::TlsListener::new(listener, config) {
            Ok(listener) => Box::pin(std::future::IntoFuture::into_future(
                axum::serve(listener, router).with_graceful_shutdown(shutdown),
            )),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        },
    }
}
