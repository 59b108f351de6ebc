//! One request on the explicit listener: target, strip, connect, decide, enrich, forward.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use headwall_http::HeadError;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::{Either, Full};
use tokio::io::AsyncWriteExt as _;

use headwall_audit::LogLimit;
use std::time::Instant;

use headwall_audit::{Disclosure, EventKind};
use headwall_policy::{Decision, WithholdReason};

use crate::access_log::Entry;
use crate::gateway::Gateway;
use crate::idle::{Activity, until_idle};
use crate::listener::Slot;
use crate::metrics::Outcome;
use crate::respond::{self, ProxyBody};
use crate::serve::{ClientBody, OnUpgrade};
use crate::strip::Codings;
use crate::upstream::{self, SendError, UpstreamError};

static AUDIT_FAILED: LogLimit = LogLimit::new();
static BAD_BODY: LogLimit = LogLimit::new();

/// Which door a request came in by, and what that door knows about its destination.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Front {
    /// `[gateway].listen`: the destination is the absolute-form request target.
    Explicit,
    /// `[gateway].transparent_listen`: the destination is the address the client actually
    /// connected to before interception (`SO_ORIGINAL_DST`, or the PROXY header's destination);
    /// the `Host` header only names it, and is never resolved.
    Transparent {
        /// The original destination.
        original: SocketAddr,
    },
}

/// Handles one client request end to end and counts its outcome.
pub(crate) async fn handle(
    gateway: Arc<Gateway>,
    client: SocketAddr,
    front: Front,
    slot: Slot,
    request: Request<ClientBody>,
    entry: &mut Option<Entry>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let (response, outcome) = match (request.method() == Method::CONNECT, front) {
        (true, Front::Explicit) => crate::connect::tunnel(&gateway, &slot, request).await,
        (true, Front::Transparent { .. }) => bad_request(
            "headwall: CONNECT is for the explicit proxy listener, not intercepted traffic\n",
        ),
        (false, _) => forward(&gateway, client, front, &slot, request, entry).await,
    };
    if let Some(entry) = entry {
        entry.outcome = outcome;
    }
    // Until the response head is ready: streaming the body is the client's and origin's time.
    slot.count(outcome, Some(started.elapsed()));
    tracing::debug!(
        outcome = outcome.as_str(),
        status = response.status().as_u16(),
        "request done"
    );
    response
}

/// Where a request goes: the name the policy matches, the port, the `Host` value to send, the
/// path, and — for intercepted traffic — the one address to connect to.
struct Target {
    host: String,
    port: u16,
    host_header: Option<HeaderValue>,
    path: PathAndQuery,
    pinned: Option<SocketAddr>,
}

fn target(front: Front, request: &Request<ClientBody>) -> Result<Target, &'static str> {
    let uri = request.uri();
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    match front {
        // Explicit mode: the destination is the absolute-form request target (RFC 9112 §3.2.2),
        // and Host follows it, whatever the client sent.
        Front::Explicit => {
            if uri.scheme() != Some(&Scheme::HTTP) {
                return Err(if uri.scheme().is_none() {
                    "headwall: this is an HTTP proxy; send absolute-form requests (GET http://host/path)\n"
                } else {
                    "headwall: only http:// targets are proxied; use CONNECT for TLS\n"
                });
            }
            let authority = uri
                .authority()
                .ok_or("headwall: request target has no host\n")?;
            let host = headwall_policy::normalize_host(authority.host())
                .map_err(|_| "headwall: request target host is not a valid name\n")?;
            let port = authority_port(authority)?.unwrap_or(80);
            let host_header = host_value(authority)?;
            Ok(Target {
                host,
                port,
                host_header: Some(host_header),
                path,
                pinned: None,
            })
        }
        // Transparent mode: the client connected to `original`; the name comes from the target
        // (if absolute-form) or Host, and is only used to match the policy. The port is the one
        // actually connected to.
        Front::Transparent { original } => {
            let invalid_name = |_| "headwall: Host header is not a valid name\n";
            let (host, host_header) = match uri.authority() {
                Some(authority) => {
                    authority_port(authority)?;
                    (
                        headwall_policy::normalize_host(authority.host()).map_err(invalid_name)?,
                        Some(host_value(authority)?),
                    )
                }
                None => {
                    let value = request
                        .headers()
                        .get(header::HOST)
                        .and_then(|value| value.to_str().ok())
                        .ok_or("headwall: request has no Host header\n")?;
                    let authority: http::uri::Authority = value
                        .parse()
                        .map_err(|_| "headwall: Host header is not a valid host\n")?;
                    authority_port(&authority)?;
                    let host =
                        headwall_policy::normalize_host(authority.host()).map_err(invalid_name)?;
                    (host, None)
                }
            };
            Ok(Target {
                host,
                port: original.port(),
                host_header,
                path,
                pinned: Some(original),
            })
        }
    }
}

/// The port an authority names: `None` when it names none (or an empty one, RFC 3986 §3.2.3:
/// the scheme's default). Anything else that is not 1 to 65535 in plain digits (`:8a`,
/// `:99999`, `:0`, `:+80`) is an error, never a default (docs/design.md, Matching): the `http` crate
/// reads such a port as absent, and the request went to port 80 with identity while its
/// `Host` still said `:8a`.
fn authority_port(authority: &http::uri::Authority) -> Result<Option<u16>, &'static str> {
    const BAD_PORT: &str = "headwall: the port is not a number from 1 to 65535\n";
    let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
    // After an IPv6 literal's `]`, else after the name: nothing, or `:` and the port.
    let after_host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, after)| after),
        None => host_port.find(':').map_or("", |colon| &host_port[colon..]),
    };
    let digits = match after_host.strip_prefix(':') {
        None if after_host.is_empty() => return Ok(None),
        None => return Err(BAD_PORT),
        Some("") => return Ok(None),
        Some(digits) => digits,
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BAD_PORT);
    }
    match digits.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Some(port)),
        _ => Err(BAD_PORT),
    }
}

/// The `Host` value for a target's authority: host and port as the client wrote them, without
/// any `userinfo@` (RFC 9110 §4.2.4: never sent on; it would carry a password to the origin).
fn host_value(authority: &http::uri::Authority) -> Result<HeaderValue, &'static str> {
    let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
    HeaderValue::from_str(host_port)
        .map_err(|_| "headwall: request target host is not a valid header value\n")
}

/// A step's early answer: the response and the outcome counted for it.
type Answer = (Response<ProxyBody>, Outcome);

/// One request through the steps of docs/life-of-a-request.md, in their order: target, strip,
/// resolve, connect, decide and disclose, send, finish.
async fn forward(
    gateway: &Arc<Gateway>,
    client: SocketAddr,
    front: Front,
    slot: &Slot,
    mut request: Request<ClientBody>,
    entry: &mut Option<Entry>,
) -> Answer {
    let target = match target(front, &request) {
        Ok(target) => target,
        Err(reason) => return bad_request(reason),
    };
    if let Some(entry) = entry {
        entry.host = Some(target.host.clone());
        entry.port = Some(target.port);
    }
    // The policy is pinned for the whole request: a reload in flight never mixes two policies.
    let active = gateway.policy.load_full();
    let stripped = match strip(gateway, client, &active, &mut request) {
        Ok(stripped) => stripped,
        Err(codings) => return refused_codings(codings),
    };
    let addrs = match resolve(gateway, &target).await {
        Ok(addrs) => addrs,
        Err(error) => return upstream_failure(error),
    };
    let upgrade = upgrade(&active, &addrs, stripped.upgrade, &mut request);
    let upstream = match gateway
        .upstreams
        .http(&addrs, upgrade.protocol.is_some())
        .await
    {
        Ok(upstream) => upstream,
        Err(error) => return upstream_failure(error),
    };
    let upstream_addr = upstream.addr;
    let inserted = disclose(
        gateway,
        &active,
        client,
        &target,
        upstream_addr,
        &mut request,
        entry,
    )
    .await;
    let outcome = if inserted > 0 {
        Outcome::Enriched
    } else {
        Outcome::Forwarded
    };
    rewrite(&mut request, target, upgrade.protocol.as_ref());
    let response = match upstream::send(&gateway.upstreams, upstream, request).await {
        Ok(response) => response,
        Err(error) => return send_failure(error, upstream_addr),
    };
    finish(gateway, slot, response, upgrade, outcome)
}

/// Step 4, strip: refuses framings the data plane does not carry (the codings, answered by
/// [`refused_codings`]), removes hop-by-hop and identity headers, and records a spoofing
/// client (one event per client and second).
fn strip(
    gateway: &Gateway,
    client: SocketAddr,
    active: &crate::ActivePolicy,
    request: &mut Request<ClientBody>,
) -> Result<crate::StripOutcome, Codings> {
    let codings = crate::strip::transfer_codings(request.headers());
    if codings != Codings::Fine {
        return Err(codings);
    }
    let stripped = crate::strip::strip_request(request.headers_mut(), active.policy.strip());
    gateway.metrics.count_stripped(stripped.identity_removed);
    if stripped.identity_removed > 0 {
        tracing::debug!(
            count = stripped.identity_removed,
            "identity headers stripped from client request"
        );
        // The header names go into the record; values never do.
        gateway.spoofs.add(
            &gateway.audit,
            headwall_sessions::unix_now(),
            client.ip(),
            stripped
                .identity_names
                .iter()
                .map(|name| headwall_policy::normalize_header_name(name.as_str())),
        );
    }
    Ok(stripped)
}

/// The answer to a request whose transfer codings the data plane does not carry.
fn refused_codings(codings: Codings) -> Answer {
    match codings {
        Codings::Repeated => {
            bad_request("headwall: the chunked transfer coding is applied more than once\n")
        }
        Codings::Fine | Codings::Unsupported => (
            respond::text(
                StatusCode::NOT_IMPLEMENTED,
                "headwall: only the chunked transfer coding is supported\n",
            ),
            Outcome::BadRequest,
        ),
    }
}

/// Step 5, resolve: intercepted traffic goes where the client was going (a name is never
/// resolved for it); explicit traffic to the target's addresses.
async fn resolve(gateway: &Gateway, target: &Target) -> Result<Vec<SocketAddr>, UpstreamError> {
    match target.pinned {
        Some(original) => Ok(vec![original]),
        None => gateway.upstreams.resolve(&target.host, target.port).await,
    }
}

/// A switch of protocols the request may make, and what its 101 must prove.
struct Upgrade {
    /// The `Upgrade` value that goes upstream.
    protocol: Option<HeaderValue>,
    /// For a WebSocket handshake to a partner, the `Sec-WebSocket-Accept` its 101 must carry.
    websocket_accept: Option<HeaderValue>,
    /// The client's side of the tunnel, once the 101 is written.
    client: Option<OnUpgrade>,
}

/// After a 101 the connection is a tunnel the gateway does not read. To a partner only
/// WebSocket may open one (its frames carry no HTTP headers); any other protocol (`h2c`,
/// `TLS/1.0`) would let the client send requests with its own identity headers from the
/// gateway's address (see `Policy::partner_at`, and CONNECT). There the request goes on without
/// `Upgrade`, as a plain request — and a WebSocket upgrade only when it is one (RFC 6455 §4.1:
/// version 13 and a key), so that the 101 can be checked against it.
fn upgrade(
    active: &crate::ActivePolicy,
    addrs: &[SocketAddr],
    asked: Option<HeaderValue>,
    request: &mut Request<ClientBody>,
) -> Upgrade {
    let to_partner = addrs
        .iter()
        .any(|addr| active.policy.partner_at(*addr).is_some());
    let mut websocket_accept = None;
    let protocol = asked.filter(|protocol| {
        if !to_partner {
            return true;
        }
        websocket_accept = crate::strip::only_websocket(protocol)
            .then(|| crate::strip::websocket_accept(request.headers()))
            .flatten();
        websocket_accept.is_some()
    });
    let client = protocol.as_ref().and_then(|_| OnUpgrade::take(request));
    Upgrade {
        protocol,
        websocket_accept,
        client,
    }
}

/// Steps 7 to 9, decide and disclose: the policy decides with the address actually connected
/// to; for a partner, the values are computed, the disclosure is made durable, and only then
/// inserted. Returns how many values went in.
async fn disclose(
    gateway: &Gateway,
    active: &crate::ActivePolicy,
    client: SocketAddr,
    target: &Target,
    upstream_addr: SocketAddr,
    request: &mut Request<ClientBody>,
    entry: &mut Option<Entry>,
) -> usize {
    let (host, port) = (&target.host, target.port);
    let mut inserted = 0;
    match active.policy.decide(host, port, upstream_addr.ip()) {
        Decision::Disclose(partner) => {
            if let Some(entry) = entry.as_mut() {
                entry.partner = Some(partner.name.clone());
            }
            match crate::enrich::prepare(gateway, active, partner, client.ip()).await {
                Ok(prepared) if prepared.values.is_empty() => {}
                Ok(prepared) => {
                    let record = Disclosure {
                        // The access log's line for this request carries the same id.
                        request_id: entry.as_ref().map_or_else(
                            || gateway.next_request_id(),
                            |entry| entry.request_id.clone(),
                        ),
                        partner: partner.name.clone(),
                        purpose: partner.purpose.as_str().to_owned(),
                        msisdn: prepared.msisdn.clone(),
                        kinds: prepared
                            .values
                            .iter()
                            .map(|(_, _, kind, _)| kind.as_str().to_owned())
                            .collect(),
                        headers: prepared
                            .values
                            .iter()
                            .map(|(name, _, _, _)| name.as_str().to_owned())
                            .collect(),
                        host: host.clone(),
                        port,
                        upstream_ip: upstream_addr.ip(),
                        client_ip: client.ip(),
                        policy_hash: active.policy.hash().to_owned(),
                    };
                    // No audit, no disclosure: the values go in only once the record is durable.
                    match record_disclosure(gateway, record).await {
                        Ok(()) => inserted = prepared.insert(request.headers_mut()),
                        Err(error) => {
                            gateway.metrics.count_audit_write_failure();
                            gateway.metrics.count_withheld();
                            AUDIT_FAILED.run(|| {
                                tracing::warn!(%error, "audit log unavailable; identity withheld");
                            });
                        }
                    }
                }
                Err(reason) => {
                    gateway.metrics.count_withheld();
                    tracing::debug!(partner = %partner.name, reason = reason.as_str(), "identity withheld");
                }
            }
        }
        Decision::Withhold(WithholdReason::PinningMismatch) => {
            gateway.metrics.count_pinning_mismatch();
            tracing::warn!(upstream.addr = %upstream_addr, "pinning mismatch: partner host connected outside its destinations; identity withheld");
            gateway.audit.event(
                EventKind::PinningMismatch,
                &serde_json::json!({
                    "host": host,
                    "port": port,
                    "upstream_ip": upstream_addr.ip().to_string(),
                    "client_ip": client.ip().to_string(),
                    "policy_hash": active.policy.hash(),
                }),
            );
        }
        Decision::Withhold(_) => {}
    }
    gateway.metrics.count_disclosures(inserted);
    inserted
}

/// Step 10, the head that goes upstream: `Host` from the target, the upgrade kept aside during
/// stripping, origin-form, and the gateway's own HTTP version.
fn rewrite(request: &mut Request<ClientBody>, target: Target, upgrade: Option<&HeaderValue>) {
    let headers = request.headers_mut();
    if let Some(value) = target.host_header {
        headers.insert(header::HOST, value);
    }
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
    *request.uri_mut() = Uri::from(target.path);
    *request.version_mut() = Version::HTTP_11;
}

/// The answer when the exchange with the upstream failed: the client's 400 for its own broken
/// body, else a 502 that says what the upstream did (logged with its address).
fn send_failure(error: SendError, upstream_addr: SocketAddr) -> Answer {
    match error {
        SendError::ClientBody => {
            BAD_BODY.run(|| {
                tracing::debug!("malformed or short request body; answered 400");
            });
            bad_request("headwall: the request body is malformed or incomplete\n")
        }
        SendError::Upstream => {
            tracing::debug!(upstream.addr = %upstream_addr, "upstream closed or broke the connection before its answer");
            bad_gateway("headwall: upstream closed the connection\n")
        }
        SendError::BadResponse(error) => {
            tracing::debug!(upstream.addr = %upstream_addr, error = error.as_str(), "malformed upstream response head");
            bad_gateway(match error {
                HeadError::ChunkedNotFinal
                | HeadError::ChunkedRepeated
                | HeadError::UnsupportedCoding
                | HeadError::TransferEncodingInHttp10 => {
                    "headwall: upstream used a transfer coding other than chunked\n"
                }
                _ => "headwall: upstream sent a malformed response\n",
            })
        }
    }
}

/// Step 11, finish: a 101 becomes a tunnel only when it was asked for (and, to a partner,
/// proves it read the WebSocket handshake); hop-by-hop response headers are removed.
fn finish(
    gateway: &Arc<Gateway>,
    slot: &Slot,
    response: Response<crate::upstream::UpstreamBody>,
    upgrade: Upgrade,
    outcome: Outcome,
) -> Answer {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let mut response = response;
        crate::strip::strip_response(response.headers_mut(), false);
        return (response.map(Either::Left), outcome);
    }
    let Some(client_upgrade) = upgrade.client else {
        // Nobody asked to switch (RFC 9110 §15.2.2: a server must not); the connection is in an
        // unknown protocol now and is dropped here, never pooled.
        return bad_gateway("headwall: upstream switched protocols without being asked\n");
    };
    if let Some(expected) = &upgrade.websocket_accept
        && response.headers().get("sec-websocket-accept") != Some(expected)
    {
        // A partner that switched without proving it read this handshake: whatever it speaks
        // now is not known to be WebSocket, and no tunnel opens to it.
        return bad_gateway(
            "headwall: upstream answered the WebSocket upgrade without a valid Sec-WebSocket-Accept\n",
        );
    }
    let (mut parts, body) = response.into_parts();
    let Some((upstream_io, early)) = body.into_tunnel() else {
        return bad_gateway("headwall: upstream switched protocols before the request was sent\n");
    };
    let idle = gateway.settings.idle_timeout;
    let guard = slot.tunnel(gateway);
    tokio::spawn(async move {
        let _guard = guard;
        let Ok(client_io) = client_upgrade.await else {
            return;
        };
        let activity = Activity::new();
        let mut client_io = crate::idle::Tracked::new(client_io, activity.clone());
        let mut upstream_io = upstream_io;
        // What the origin sent right after its 101 is already the new protocol's.
        if !early.is_empty() && client_io.write_all(&early).await.is_err() {
            return;
        }
        let _ = until_idle(
            &activity,
            idle,
            tokio::io::copy_bidirectional(&mut client_io, &mut upstream_io),
        )
        .await;
    });
    crate::strip::strip_response(&mut parts.headers, true);
    let response = Response::from_parts(parts, Either::Right(Full::new(Bytes::new())));
    (response, outcome)
}

fn bad_gateway(reason: &'static str) -> (Response<ProxyBody>, Outcome) {
    (
        respond::text(StatusCode::BAD_GATEWAY, reason),
        Outcome::UpstreamError,
    )
}

/// Makes the disclosure record durable before its values go out (docs/design.md, Principles 4).
#[cfg(not(feature = "bench-unaudited"))]
async fn record_disclosure(
    gateway: &Gateway,
    record: Disclosure,
) -> Result<(), headwall_audit::AuditError> {
    gateway.audit.disclose(record).await
}

/// Benchmark-only build: records nothing, to measure what the durable audit costs. The
/// binary built with this feature refuses to serve on anything but loopback.
#[cfg(feature = "bench-unaudited")]
async fn record_disclosure(
    _gateway: &Gateway,
    record: Disclosure,
) -> Result<(), headwall_audit::AuditError> {
    drop(record);
    Ok(())
}

pub(crate) fn bad_request(reason: &'static str) -> (Response<ProxyBody>, Outcome) {
    (
        respond::text(StatusCode::BAD_REQUEST, reason),
        Outcome::BadRequest,
    )
}

/// The response for an upstream that could not be used: 504 for timeouts, 403 for a loop,
/// 502 otherwise.
pub(crate) fn upstream_failure(error: UpstreamError) -> (Response<ProxyBody>, Outcome) {
    let status = match error {
        UpstreamError::ConnectTimeout => StatusCode::GATEWAY_TIMEOUT,
        UpstreamError::Loop => StatusCode::FORBIDDEN,
        UpstreamError::Unresolvable | UpstreamError::ConnectFailed => StatusCode::BAD_GATEWAY,
    };
    let outcome = if error == UpstreamError::Loop {
        Outcome::Refused
    } else {
        Outcome::UpstreamError
    };
    (respond::text(status, error.reason()), outcome)
}
