//! The accept loop and per-connection serving for a gateway listener.

use headwall_audit::LogLimit;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

use crate::gateway::Gateway;
use crate::idle::{Activity, until_idle};
use crate::metrics::{Listener, Outcome};

/// Accepts client connections until `shutdown` resolves. A bad connection never stops the loop;
/// only the shutdown signal does. The listener's address is recorded as the gateway's own (so
/// requests aimed at it are refused) and logged at once, before the returned future first
/// runs: whatever a caller logs after this call comes after "gateway listening".
pub(crate) fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    kind: Listener,
    shutdown: impl Future<Output = ()>,
) -> impl Future<Output = ()> {
    if let Ok(addr) = listener.local_addr() {
        gateway.add_own_address(addr);
        tracing::info!(listener = kind.as_str(), %addr, "gateway listening");
    }
    accept(gateway, listener, kind, shutdown)
}

async fn accept(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    kind: Listener,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    // Closes each second's security-event tallies even when no new event comes to close them.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {
                gateway.spoofs.flush(&gateway.audit, headwall_sessions::unix_now());
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                ACCEPT_ERRORS.run(|| tracing::warn!(%error, "accept failed"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = gateway.connections.clone().try_acquire_owned() else {
            gateway.metrics.count_request(kind, Outcome::Refused);
            LIMIT_REACHED.run(|| {
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

/// A client connection's place under `max_connections`. The connection holds it while it is
/// served; a tunnel made from the connection (CONNECT, a WebSocket 101) takes it over, so the
/// slot is free only once the tunnel's sockets have closed too — otherwise every tunnel would
/// be an unbounded file descriptor past the limit. While it is held the connection counts in
/// `headwall_connections_open`.
#[derive(Clone)]
pub(crate) struct Slot {
    held: Arc<Held>,
}

struct Held {
    _permit: OwnedSemaphorePermit,
    gateway: Arc<Gateway>,
    kind: Listener,
    /// The canary's own probe: served like any other, kept out of the request metrics.
    canary: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gateway.metrics.connection_closed(self.kind);
    }
}

impl Slot {
    fn new(
        gateway: &Arc<Gateway>,
        permit: OwnedSemaphorePermit,
        kind: Listener,
        peer: SocketAddr,
    ) -> Slot {
        gateway.metrics.connection_opened(kind);
        Slot {
            held: Arc::new(Held {
                _permit: permit,
                gateway: gateway.clone(),
                kind,
                canary: gateway.is_canary_peer(peer),
            }),
        }
    }

    /// Counts a request of this connection's in `headwall_requests_total` (and, with its
    /// time to the response head, in the duration histogram) unless it is the canary's.
    pub(crate) fn count(&self, outcome: Outcome, elapsed: Option<Duration>) {
        if self.held.canary {
            return;
        }
        let metrics = &self.held.gateway.metrics;
        metrics.count_request(self.held.kind, outcome);
        if let Some(elapsed) = elapsed {
            metrics.observe_duration(elapsed);
        }
    }

    /// The guard a tunnel task holds for as long as it runs: the slot, and one in
    /// `headwall_tunnels_open`.
    pub(crate) fn tunnel(&self, gateway: &Arc<Gateway>) -> TunnelGuard {
        gateway.metrics.tunnel_opened();
        TunnelGuard {
            _slot: self.clone(),
            gateway: gateway.clone(),
        }
    }
}

/// Held by a running tunnel; dropped when both its sockets are done.
pub(crate) struct TunnelGuard {
    _slot: Slot,
    gateway: Arc<Gateway>,
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.gateway.metrics.tunnel_closed();
    }
}

async fn serve_connection(
    gateway: Arc<Gateway>,
    mut stream: TcpStream,
    peer: SocketAddr,
    kind: Listener,
    permit: OwnedSemaphorePermit,
) {
    let slot = Slot::new(&gateway, permit, kind, peer);
    let _ = stream.set_nodelay(true);
    let (client, front) =
        match crate::front::identify(&gateway.settings, &mut stream, peer, kind).await {
            Ok(identified) => identified,
            Err(refusal) => {
                slot.count(Outcome::Refused, None);
                REFUSED_CONNECTIONS.run(|| {
                tracing::warn!(client.addr = %peer, reason = refusal.as_str(), "connection closed");
            });
                return;
            }
        };
    if let Some(clients) = &gateway.settings.clients
        && !slot.held.canary
        && !clients.iter().any(|net| net.contains(&client.ip()))
    {
        // Not a subscriber network: closed unanswered, like a firewall would.
        gateway.metrics.count_client_refused(kind);
        NOT_A_CLIENT.run(|| {
            tracing::warn!(client.addr = %client, "client outside [gateway].clients; connection closed");
        });
        return;
    }
    let activity = Activity::new();
    let served = crate::serve::connection(
        gateway.clone(),
        stream,
        client,
        front,
        slot,
        kind,
        activity.clone(),
    );
    if until_idle(&activity, gateway.settings.idle_timeout, served)
        .await
        .is_none()
    {
        tracing::debug!(client.addr = %peer, "client connection idle; closed");
    }
}

static ACCEPT_ERRORS: LogLimit = LogLimit::new();
static LIMIT_REACHED: LogLimit = LogLimit::new();
static REFUSED_CONNECTIONS: LogLimit = LogLimit::new();
static NOT_A_CLIENT: LogLimit = LogLimit::new();
