//! CONNECT tunnels: allowed to `connect_ports` only, never enriched (the gateway cannot and
//! must not see inside), closed when idle.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::gateway::Gateway;
use crate::idle::{Activity, Tracked, until_idle};
use crate::metrics::Outcome;
use crate::respond::{self, ProxyBody};

pub(crate) async fn tunnel(
    gateway: &Arc<Gateway>,
    mut request: Request<Incoming>,
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
    let connected = match upstreams.resolve(&host, port).await {
        Ok(addrs) => upstreams.connect_tcp(&addrs).await,
        Err(error) => Err(error),
    };
    let upstream = match connected {
        Ok((stream, _)) => stream,
        Err(error) => return crate::forward::upstream_failure(error),
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let idle = gateway.settings.idle_timeout;
    tokio::spawn(async move {
        let Ok(client) = on_upgrade.await else {
            return;
        };
        let activity = Activity::new();
        let mut client = TokioIo::new(client);
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
