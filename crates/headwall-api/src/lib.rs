//! headwall-api: HTTPS for the era after header enrichment (docs/design.md, "HTTPS: network-based
//! authentication and the CAMARA APIs").
//!
//! An app backend asks the operator about the subscriber whose device opened `/authorize`:
//! the device is identified by its address on the mobile network ("network-based
//! authentication") from the same bindings the data plane uses, through the same
//! [`Gateway`] — its sessions handle, policy, kill switch, keys and audit log. The same
//! principles hold: an unknown client, an unbound or stale device, an unreachable store or the
//! kill switch all end in a refusal, never a guess.
//!
//! Here: the TLS listener (or plain HTTP behind PROXY v2 balancers), discovery, JWKS,
//! `/authorize` (with signed request objects), `/token` (`private_key_jwt`), Number
//! Verification (`/verify`, `/device-phone-number`) and KYC Age Verification, each answer a
//! durable disclosure before it leaves. Codes, token subjects and used assertion ids are
//! records in the sessions backend (memory, or Redis for a fleet, so any node redeems).

mod assertion;
mod camara;
mod codes;
mod issued;
mod metrics;
mod oidc;
mod tls;
mod token;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use headwall_policy::Api;
use headwall_proxy::Gateway;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

pub use metrics::{ApiMetrics, ApiOutcome, Endpoint};
pub use tls::{TlsError, server_config};

/// The connection limit is logged at most every 10 s.
static LIMIT_WARNED: headwall_audit::LogLimit = headwall_audit::LogLimit::new();

/// A client gets this long for its TLS handshake (or PROXY header) and its request head.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the endpoints share.
pub struct ApiState {
    settings: Api,
    gateway: Arc<Gateway>,
    codes: codes::Codes,
    assertions: assertion::Assertions,
    issued: issued::IssuedTokens,
    /// Where codes, token subjects and used assertion ids live (memory, or the fleet's Redis).
    records: headwall_sessions::Records,
    /// The port of `public_url`, as audit rows record it.
    public_port: u16,
    metrics: Arc<ApiMetrics>,
    /// Connections held at once: `[gateway].max_connections` of the API's own, so a flood of
    /// API connections cannot take the data plane's places, nor grow without bound.
    connections: Arc<tokio::sync::Semaphore>,
}

impl ApiState {
    /// The API over `gateway`'s bindings, policy (its `[[api.client]]` tables), kill switch,
    /// keys and audit log, with `[api]`'s `settings`, counting into `metrics`.
    pub fn new(settings: Api, gateway: Arc<Gateway>, metrics: Arc<ApiMetrics>) -> Arc<ApiState> {
        let records = headwall_sessions::Records::for_sessions(gateway.sessions());
        Arc::new(ApiState {
            codes: codes::Codes::new(settings.code_lifetime, records.clone()),
            assertions: assertion::Assertions::default(),
            issued: issued::IssuedTokens::new(records.clone(), settings.access_token_lifetime),
            records,
            public_port: public_port(&settings.public_url),
            metrics,
            connections: Arc::new(tokio::sync::Semaphore::new(gateway.max_connections())),
            settings,
            gateway,
        })
    }
}

/// The address a request came from: the socket peer, or the PROXY v2 source a trusted
/// balancer sent. Canonical (an IPv4-mapped address is the IPv4 address). At `/authorize` it
/// is the device's; at `/token` and the resource endpoints, the client backend's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) IpAddr);

/// The port of an `https://host[:port]/...` URL (443 when none is written).
fn public_port(url: &str) -> u16 {
    let authority = url
        .strip_prefix("https://")
        .unwrap_or(url)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let port = match authority.rsplit_once(']') {
        Some((_, rest)) => rest.strip_prefix(':'),
        None => authority.rsplit_once(':').map(|(_, port)| port),
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(443)
}

/// Serves `[api]` on `listener` until `shutdown` resolves: TLS with `tls`, or plain HTTP when
/// `tls` is `None` (then every connection must come from a `proxy_protocol_from` balancer and
/// open with a PROXY v2 header).
///
/// Logs the bound address when called, before the future runs.
pub fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()>,
) -> impl std::future::Future<Output = ()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listener = "api", %addr, tls = tls.is_some(), "api listening");
    }
    accept(listener, tls, state, shutdown)
}

async fn accept(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let router = oidc::router(state.clone());
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "api accept failed");
                    continue;
                }
            },
        };
        let Ok(permit) = state.connections.clone().try_acquire_owned() else {
            // Closed at once; said at most every 10 s.
            LIMIT_WARNED.run(|| {
                tracing::warn!("api: max_connections reached; closing new connections");
            });
            drop(stream);
            continue;
        };
        let (router, acceptor, state) = (router.clone(), acceptor.clone(), state.clone());
        tokio::spawn(async move {
            connection(stream, peer, router, acceptor, &state).await;
            drop(permit);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: &ApiState,
) {
    let _ = stream.set_nodelay(true);
    let peer_ip = peer.ip().to_canonical();
    let balanced = state
        .settings
        .proxy_protocol_from
        .iter()
        .any(|net| net.contains(&peer_ip));
    let device = if balanced {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, proxy_source(&mut stream)).await {
            Ok(Some(source)) => source,
            _ => {
                tracing::debug!(%peer, "api connection without a valid PROXY v2 header closed");
                return;
            }
        }
    } else if acceptor.is_none() {
        // Plain HTTP is for balancers only: anyone else could claim any device address.
        return;
    } else {
        peer_ip
    };
    let router = router.layer(axum::Extension(Peer(device)));
    match acceptor {
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_http(tls, router).await,
                _ => tracing::debug!(%peer, "api TLS handshake failed"),
            }
        }
        None => serve_http(stream, router).await,
    }
}

async fn serve_http<S>(stream: S, router: Router)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT);
    if let Err(error) = builder
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "api connection ended with an error");
    }
}

/// Reads one PROXY v2 header and returns its source address (canonical), or `None` for a
/// missing, malformed or LOCAL header.
async fn proxy_source(stream: &mut TcpStream) -> Option<IpAddr> {
    let mut fixed = [0u8; 16];
    stream.read_exact(&mut fixed).await.ok()?;
    let length = headwall_proxy::proxy_v2_length(&fixed)?;
    let mut header = fixed.to_vec();
    header.resize(length, 0);
    stream.read_exact(&mut header[16..]).await.ok()?;
    let (source, _) = headwall_proxy::parse_proxy_v2(&header)??;
    Some(source.ip())
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_public_port_is_written_or_443() {
        assert_eq!(super::public_port("https://api.test"), 443);
        assert_eq!(super::public_port("https://api.test:8443/base"), 8443);
        assert_eq!(super::public_port("https://[2001:db8::1]:9443"), 9443);
        assert_eq!(super::public_port("https://[2001:db8::1]"), 443);
    }
}
