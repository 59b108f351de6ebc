//! CONNECT tunnels: allowed to `connect_ports` only, never enriched (the gateway cannot and
//! must not see inside), closed when idle.

use headwall_audit::LogLimit;
use std::sync::Arc;

use http::{Request, Response, StatusCode};

use crate::gateway::Gateway;
use crate::idle::{Activity, Tracked, until_idle};
use crate::listener::Slot;
use crate::metrics::Outcome;
use crate::respond::{self, ProxyBody};
use crate::serve::{ClientBody, OnUpgrade};

static PARTNER_REFUSED: LogLimit = LogLimit::new();

pub(crate) async fn tunnel(
    gateway: &Arc<Gateway>,
    slot: &Slot,
    mut request: Request<ClientBody>,
) -> (Response<ProxyBody>, Outcome) {
    let Some(authority) = request.uri().authority().cloned() else {
        return bad_target();
    };
    let Some(port) = authority.port_u16() else {
        return bad_target();
    };
    if !gateway.settings.connect_ports.contains(&port) {
        return (
            respond::text(
                StatusCode::FORBIDDEN,
                "headwall: CONNECT is not allowed to this port\n",
            ),
            Outcome::Refused,
        );
    }
    let Ok(host) = headwall_policy::normalize_host(authority.host()) else {
        return bad_target();
    };
    let upstreams = &gateway.upstreams;
    let addrs = match upstreams.resolve(&host, port).await {
        Ok(addrs) => addrs,
        Err(error) => return crate::forward::upstream_failure(error),
    };
    // By name or by address: a tunnel never reaches a partner (see `Policy::partner_at`).
    let policy = gateway.policy.load();
    if let Some(partner) = addrs
        .iter()
        .find_map(|addr| policy.policy.partner_at(*addr))
    {
        PARTNER_REFUSED.run(|| {
            tracing::warn!(partner = %partner.name, port, "CONNECT to a partner's address refused");
        });
        return (
            respond::text(
                StatusCode::FORBIDDEN,
                "headwall: CONNECT to a partner is refused; send its requests through the proxy\n",
            ),
            Outcome::Refused,
        );
    }
    drop(policy);
    let connected = upstreams.connect_tcp(&addrs).await;
    let upstream = match connected {
        Ok((stream, _)) => stream,
        Err(error) => return crate::forward::upstream_failure(error),
    };
    let Some(on_upgrade) = OnUpgrade::take(&mut request) else {
        return bad_target();
    };
    let idle = gateway.settings.idle_timeout;
    // The tunnel keeps the client connection's max_connections slot until both sockets close.
    let guard = slot.tunnel(gateway);
    tokio::spawn(async move {
        let _guard = guard;
        let Ok(client) = on_upgrade.await else {
            return;
        };
        let activity = Activity::new();
        let mut client = client;
        let mut upstream = Tracked::new(upstream, activity.clone());
        let copied = until_idle(
            &activity,
            idle,
            tokio::io::copy_bidirectional(&mut client, &mut upstream),
        )
        .await;
        if copied.is_none() {
            tracing::debug!("tunnel closed after idle timeout");
        }
    });
    (respond::empty(StatusCode::OK), Outcome::Forwarded)
}

fn bad_target() -> (Response<ProxyBody>, Outcome) {
    (
        respond::text(
            StatusCode::BAD_REQUEST,
            "headwall: CONNECT needs an authority target (host:port)\n",
        ),
        Outcome::BadRequest,
    )
}
