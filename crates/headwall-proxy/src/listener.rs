//! The accept loop and per-connection serving for a gateway listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

use crate::gateway::Gateway;
use crate::idle::{Activity, Tracked, until_idle};
use crate::metrics::{Listener, Outcome};

/// Accepts client connections until `shutdown` resolves. A bad connection never stops the loop;
/// only the shutdown signal does.
pub(crate) async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    kind: Listener,
    shutdown: impl Future<Output = ()>,
) {
    if let Ok(addr) = listener.local_addr() {
        gateway.add_own_address(addr);
        tracing::info!(listener = kind.as_str(), %addr, "gateway listening");
    }
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                warn_limited(&ACCEPT_ERRORS, || tracing::warn!(%error, "accept failed"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = gateway.connections.clone().try_acquire_owned() else {
            gateway.metrics.count_request(kind, Outcome::Refused);
            warn_limited(&LIMIT_REACHED, || {
                tracing::warn!("max_connections reached; closing new client connections");
            });
            drop(stream);
            continue;
        };
        tokio::spawn(serve_connection(
            gateway.clone(),
            stream,
            peer,
            kind,
            permit,
        ));
    }
}

async fn serve_connection(
    gateway: Arc<Gateway>,
    mut stream: TcpStream,
    peer: SocketAddr,
    kind: Listener,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let (client, front) = match crate::front::identify(&gateway.settings, &mut stream, peer, kind)
        .await
    {
        Ok(identified) => identified,
        Err(refusal) => {
            gateway.metrics.count_request(kind, Outcome::Refused);
            warn_limited(&REFUSED_CONNECTIONS, || {
                tracing::warn!(client.addr = %peer, reason = refusal.as_str(), "connection closed");
            });
            return;
        }
    };
    let activity = Activity::new();
    let io = TokioIo::new(Tracked::new(stream, activity.clone()));
    let service_gateway = gateway.clone();
    let service = hyper::service::service_fn(move |request| {
        let gateway = service_gateway.clone();
        async move {
            Ok::<_, std::convert::Infallible>(
                crate::forward::handle(gateway, client, front, request).await,
            )
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(gateway.settings.header_read_timeout)
        .keep_alive(true)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut drain = gateway.drain.subscribe();
    // On drain: finish the request in flight, then close (idle keep-alive closes at once).
    let served = async {
        tokio::select! {
            result = connection.as_mut() => result,
            () = async { drop(drain.wait_for(|draining| *draining).await) } => {
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        }
    };
    match until_idle(&activity, gateway.settings.idle_timeout, served).await {
        Some(Ok(())) => {}
        Some(Err(error)) if error.is_parse() || error.is_parse_too_large() => {
            // hyper already answered 400/431/414; count it and keep serving others.
            gateway.metrics.count_request(kind, Outcome::BadRequest);
            warn_limited(&MALFORMED, || {
                tracing::debug!(client.addr = %peer, %error, "malformed request");
            });
        }
        Some(Err(error)) => tracing::debug!(client.addr = %peer, %error, "client connection error"),
        None => tracing::debug!(client.addr = %peer, "client connection idle; closed"),
    }
}

static ACCEPT_ERRORS: AtomicU64 = AtomicU64::new(0);
static LIMIT_REACHED: AtomicU64 = AtomicU64::new(0);
static MALFORMED: AtomicU64 = AtomicU64::new(0);
static REFUSED_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Runs `log` at most once per 10 seconds per `last` slot: malformed input is counted on every
/// occurrence but logged rarely, so a flood cannot fill the disk.
pub(crate) fn warn_limited(last: &AtomicU64, log: impl FnOnce()) {
    let now = headwall_sessions::unix_now();
    let previous = last.load(Ordering::Relaxed);
    if now >= previous + 10
        && last
            .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        log();
    }
}
