//! The leak-check service: `GET /` (the page) and `GET /api/v1/check` (the report as JSON).

use std::future::Future;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, Json, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::detect::{self, Report};
use crate::page;

/// The leak-check router: `GET /` and `GET /api/v1/check` (docs/design.md, "Leak check and
/// canary").
///
/// Every response, errors included, carries `Cache-Control: no-store` (a verdict describes one
/// connection, and a shared cache must not hand someone else's headers back), a content
/// security policy that allows nothing but the page's inline style, `nosniff` and
/// `Referrer-Policy: no-referrer`. Nothing is logged or stored.
pub fn router() -> Router {
    Router::new()
        .route("/", get(check_page))
        .route("/api/v1/check", get(check_api))
        .layer(axum::middleware::map_response(protect))
}

/// Serves [`router`] on `listener` until `shutdown` resolves; logs the bound address.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listener = "leakcheck", %addr, "leak-check page listening");
    }
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}

async fn check_page(headers: HeaderMap) -> Html<String> {
    Html(page::render(&received(&headers)))
}

async fn check_api(headers: HeaderMap) -> Json<Report> {
    Json(detect::inspect(&received(&headers)))
}

/// The request's header fields in arrival order, values decoded lossily (a value that is not
/// UTF-8 is still inspected: its digits survive).
fn received(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
             form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
