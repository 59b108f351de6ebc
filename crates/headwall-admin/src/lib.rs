//! The admin listener: health and the public keys partners verify tokens with.
//!
//! This issue serves `GET /healthz` and `GET /.well-known/jwks.json`; readiness, metrics and
//! the bearer-token operator endpoints (DESIGN, Admin API) build on this router later.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

/// What the admin endpoints read.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The JWKS document (`{"keys":[...]}`) for the token signing key.
    pub jwks: Arc<str>,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(state)
}

/// Serves the admin API on `listener` until `shutdown` resolves; logs the bound address.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listener = "admin", %addr, "admin listening");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn jwks(axum::extract::State(state): axum::extract::State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        )],
        state.jwks.to_string(),
    )
}
