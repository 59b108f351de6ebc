//! Upstream connections: name resolution (static hosts, then DNS), TCP connect with a deadline,
//! and a small keep-alive pool keyed by the address actually connected to.
//!
//! The pool key is the connected `SocketAddr`, not the host name, because destination pinning
//! decides on the address the request really goes to (DESIGN, Matching).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::gateway::GatewaySettings;

/// Why an upstream could not be used; each maps to a status and a short reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// No address for the host.
    Unresolvable,
    /// Every address refused or failed.
    ConnectFailed,
    /// Connecting took longer than `connect_timeout`.
    ConnectTimeout,
    /// The only addresses were the gateway's own listeners.
    Loop,
}

impl UpstreamError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            UpstreamError::Unresolvable => "headwall: cannot resolve the upstream host\n",
            UpstreamError::ConnectFailed => "headwall: cannot connect to the upstream\n",
            UpstreamError::ConnectTimeout => "headwall: upstream connect timed out\n",
            UpstreamError::Loop => "headwall: request is addressed to the gateway itself\n",
        }
    }
}

/// An HTTP/1.1 connection to one upstream address, ready for a request.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    pub(crate) sender: SendRequest<RequestBody>,
    /// Set once the request sent on it has given up its whole body (see [`RequestBody`]);
    /// `None` before a request is sent. The pool takes the connection back only when set.
    request_sent: Option<Arc<AtomicU8>>,
}

impl Upstream {
    fn new(addr: SocketAddr, sender: SendRequest<RequestBody>) -> Upstream {
        Upstream {
            addr,
            sender,
            request_sent: None,
        }
    }

    /// Whether the request written on this connection has ended: only then can the next
    /// request follow on it. A response may end first (an origin that answers a POST before
    /// reading its body): pooled then, the connection would hold the next subscriber's request
    /// behind this client's body for as long as the client likes (issue 14, defect 3).
    fn request_finished(&self) -> bool {
        self.request_sent
            .as_ref()
            .is_some_and(|state| state.load(Ordering::Acquire) == BODY_SENT)
    }
}

/// How long a pooled connection may take to be ready for the next request before it is given
/// up for a new one. A connection is pooled only once both its directions ended, so it is
/// ready at once; anything slower is a connection in an unknown state.
const POOLED_READY_DEADLINE: Duration = Duration::from_millis(100);

/// [`RequestBody`] states: still being read, read to its end, or broken by the client.
const BODY_PENDING: u8 = 0;
const BODY_SENT: u8 = 1;
const BODY_FAILED: u8 = 2;

/// A client's request body on its way upstream, marking when it has been read to its end, or
/// that the client broke it (a malformed chunk, a short body).
pub(crate) struct RequestBody {
    inner: Incoming,
    state: Arc<AtomicU8>,
}

impl RequestBody {
    fn new(inner: Incoming) -> RequestBody {
        let start = if inner.is_end_stream() {
            BODY_SENT
        } else {
            BODY_PENDING
        };
        RequestBody {
            inner,
            state: Arc::new(AtomicU8::new(start)),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let state = match &polled {
            Poll::Ready(None) => BODY_SENT,
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => BODY_SENT,
            // The client's fault (bad chunk framing, closed mid-body): never marked sent.
            Poll::Ready(Some(Err(_))) => BODY_FAILED,
            Poll::Ready(Some(Ok(_))) | Poll::Pending => return polled,
        };
        this.state.store(state, Ordering::Release);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pub(crate) struct Upstreams {
    hosts: HashMap<String, IpAddr>,
    connect_timeout: Duration,
    own: RwLock<Vec<SocketAddr>>,
    pool: Arc<Pool>,
}

impl Upstreams {
    pub(crate) fn new(settings: &GatewaySettings) -> Upstreams {
        Upstreams {
            hosts: settings.hosts.clone(),
            connect_timeout: settings.connect_timeout,
            own: RwLock::new(Vec::new()),
            pool: Arc::new(Pool::new(settings.idle_timeout)),
        }
    }

    pub(crate) fn add_own_address(&self, addr: SocketAddr) {
        self.own
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(addr);
    }

    /// Whether connecting to `addr` would reach one of the gateway's own listeners: the same
    /// port on the same address, any address when the listener is on a wildcard, and the
    /// wildcard target itself (`0.0.0.0:port` reaches local listeners), each compared in
    /// canonical form (`[::ffff:127.0.0.1]:port` is `127.0.0.1:port`).
    pub(crate) fn is_own_address(&self, addr: SocketAddr) -> bool {
        let target = addr.ip().to_canonical();
        self.own
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|own| {
                let own_ip = own.ip().to_canonical();
                own.port() == addr.port()
                    && (own_ip == target || own_ip.is_unspecified() || target.is_unspecified())
            })
    }

    /// Addresses for `host:port`: `[gateway.hosts]` first, an IP literal as itself, else DNS.
    pub(crate) async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, UpstreamError> {
        if let Some(ip) = self.hosts.get(host) {
            return Ok(vec![SocketAddr::new(ip.to_canonical(), port)]);
        }
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip.to_canonical(), port)]);
        }
        let lookup =
            tokio::time::timeout(self.connect_timeout, tokio::net::lookup_host((host, port)));
        match lookup.await {
            Ok(Ok(addrs)) => {
                let addrs: Vec<SocketAddr> = addrs.map(crate::front::canonical).collect();
                if addrs.is_empty() {
                    Err(UpstreamError::Unresolvable)
                } else {
                    Ok(addrs)
                }
            }
            Ok(Err(_)) => Err(UpstreamError::Unresolvable),
            Err(_) => Err(UpstreamError::ConnectTimeout),
        }
    }

    /// A TCP connection to the first of `addrs` that accepts, skipping the gateway's own.
    pub(crate) async fn connect_tcp(
        &self,
        addrs: &[SocketAddr],
    ) -> Result<(TcpStream, SocketAddr), UpstreamError> {
        let mut error = UpstreamError::Loop;
        for &addr in addrs {
            if self.is_own_address(addr) {
                continue;
            }
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    // Small request/response exchanges: don't wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    return Ok((stream, addr));
                }
                Ok(Err(failure)) => {
                    tracing::debug!(upstream.addr = %addr, error = %failure, "upstream connect failed");
                    error = UpstreamError::ConnectFailed;
                }
                Err(_) => {
                    tracing::debug!(upstream.addr = %addr, "upstream connect timed out");
                    error = UpstreamError::ConnectTimeout;
                }
            }
        }
        Err(error)
    }

    /// A ready HTTP connection to one of `addrs`: a pooled one if any is idle, else a new one.
    /// `upgrade` connections are never pooled (they become tunnels).
    pub(crate) async fn http(
        &self,
        addrs: &[SocketAddr],
        upgrade: bool,
    ) -> Result<Upstream, UpstreamError> {
        if !upgrade {
            for &addr in addrs {
                while let Some(mut sender) = self.pool.checkout(addr) {
                    // Not ready in time: dropped (the connection closes), the next one tried.
                    let ready = tokio::time::timeout(POOLED_READY_DEADLINE, sender.ready()).await;
                    if matches!(ready, Ok(Ok(()))) {
                        return Ok(Upstream::new(addr, sender));
                    }
                }
            }
        }
        self.fresh(addrs, upgrade).await
    }

    /// A new HTTP connection, never from the pool.
    pub(crate) async fn fresh(
        &self,
        addrs: &[SocketAddr],
        upgrade: bool,
    ) -> Result<Upstream, UpstreamError> {
        let (stream, addr) = self.connect_tcp(addrs).await?;
        let handshake = hyper::client::conn::http1::Builder::new()
            .handshake::<_, RequestBody>(TokioIo::new(stream))
            .await;
        let Ok((sender, connection)) = handshake else {
            return Err(UpstreamError::ConnectFailed);
        };
        tokio::spawn(async move {
            let result = if upgrade {
                connection.with_upgrades().await
            } else {
                connection.await
            };
            if let Err(error) = result {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
        Ok(Upstream::new(addr, sender))
    }

    /// Wraps the body of a response whose connection must not be pooled (an upgrade).
    pub(crate) fn unpooled_body(&self, body: Incoming) -> PooledBody {
        PooledBody {
            inner: body,
            checkin: None,
        }
    }

    /// Wraps a response body so that the connection returns to the pool once it is read.
    pub(crate) fn pooled_body(&self, body: Incoming, upstream: Upstream) -> PooledBody {
        let mut pooled = PooledBody {
            inner: body,
            checkin: Some((self.pool.clone(), upstream)),
        };
        if pooled.inner.is_end_stream() {
            pooled.check_in();
        }
        pooled
    }
}

/// Idle upstream connections by connected address, newest last. An address is in the map only
/// while it has idle connections: one taken out last removes it, and every `sweep_every` a
/// check-in drops the closed and expired connections of every address. Without that, each
/// address the gateway ever connected to kept an entry (and the closed connections in it) for
/// the life of the process — on a gateway carrying all subscriber traffic, a slow leak.
struct Pool {
    idle: Mutex<Idle>,
    /// How long a connection may wait in the pool (`[gateway].idle_timeout`).
    max_idle: Duration,
    sweep_every: Duration,
}

#[derive(Default)]
struct Idle {
    by_addr: HashMap<SocketAddr, Vec<IdleConnection>>,
    swept: Option<Instant>,
}

/// The longest time between sweeps of the whole pool (shorter when `idle_timeout` is: sweeping
/// more often than connections can expire finds nothing new).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A pooled connection and when it went idle.
type IdleConnection = (SendRequest<RequestBody>, Instant);

/// Idle connections kept per upstream address.
const MAX_IDLE_PER_ADDRESS: usize = 64;

impl Pool {
    fn new(max_idle: Duration) -> Pool {
        Pool::sweeping(max_idle, max_idle.min(SWEEP_EVERY))
    }

    fn sweeping(max_idle: Duration, sweep_every: Duration) -> Pool {
        Pool {
            idle: Mutex::new(Idle::default()),
            max_idle,
            sweep_every,
        }
    }

    fn checkout(&self, addr: SocketAddr) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.by_addr.get_mut(&addr)?;
        let mut found = None;
        while let Some((sender, since)) = list.pop() {
            if !sender.is_closed() && since.elapsed() < self.max_idle {
                found = Some(sender);
                break;
            }
        }
        if list.is_empty() {
            idle.by_addr.remove(&addr);
        }
        found
    }

    /// Takes `upstream` back for the next request, if both directions of its exchange ended
    /// cleanly (the response when this is called, the request per `request_finished`); else
    /// drops it, which closes the connection once hyper is done with it.
    fn checkin(&self, upstream: Upstream) {
        if upstream.sender.is_closed() || !upstream.request_finished() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle
            .swept
            .is_none_or(|at| now.duration_since(at) >= self.sweep_every)
        {
            idle.swept = Some(now);
            let max_idle = self.max_idle;
            idle.by_addr.retain(|_, list| {
                list.retain(|(sender, since)| {
                    !sender.is_closed() && now.duration_since(*since) < max_idle
                });
                !list.is_empty()
            });
        }
        let list = idle.by_addr.entry(upstream.addr).or_default();
        if list.len() < MAX_IDLE_PER_ADDRESS {
            list.push((upstream.sender, now));
        }
    }

    /// Addresses with idle connections (tests).
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_addr
            .len()
    }
}

/// An upstream response body that gives its connection back to the pool when fully read.
/// Dropped early, the connection is closed instead (its state is unknown).
pub(crate) struct PooledBody {
    inner: Incoming,
    checkin: Option<(Arc<Pool>, Upstream)>,
}

impl PooledBody {
    fn check_in(&mut self) {
        if let Some((pool, upstream)) = self.checkin.take() {
            pool.checkin(upstream);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.check_in(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.check_in(),
            Poll::Ready(Some(Err(_))) => this.checkin = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.check_in();
        }
    }
}

/// Why a request got no upstream response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The client's request body was malformed or cut short: the client's fault (400).
    ClientBody,
    /// The upstream closed or broke the connection (502).
    Upstream,
}

/// Sends `request`; when a pooled connection turned out closed before the request was written,
/// retries once on a fresh connection to the same address.
pub(crate) async fn send(
    upstreams: &Upstreams,
    mut upstream: Upstream,
    request: Request<Incoming>,
) -> Result<(http::Response<Incoming>, Upstream), SendError> {
    let request = request.map(RequestBody::new);
    let state = request.body().state.clone();
    upstream.request_sent = Some(state.clone());
    let blame = |state: &AtomicU8| {
        if state.load(Ordering::Acquire) == BODY_FAILED {
            SendError::ClientBody
        } else {
            SendError::Upstream
        }
    };
    match upstream.sender.try_send_request(request).await {
        Ok(response) => Ok((response, upstream)),
        Err(mut error) => {
            let Some(request) = error.take_message() else {
                return Err(blame(&state));
            };
            let mut fresh = upstreams
                .fresh(&[upstream.addr], false)
                .await
                .map_err(|_| SendError::Upstream)?;
            fresh.request_sent = Some(state.clone());
            match fresh.sender.send_request(request).await {
                Ok(response) => Ok((response, fresh)),
                Err(_) => Err(blame(&state)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    /// A real HTTP/1 client connection over an in-memory pipe (nobody answers on the far end;
    /// the pool only looks at whether it is closed).
    async fn connection(
        port: u16,
    ) -> (
        Upstream,
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<()>,
    ) {
        let (near, far) = tokio::io::duplex(1024);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(near))
            .await
            .unwrap();
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let addr = SocketAddr::from(([127, 0, 0, 2], port));
        let upstream = Upstream {
            addr,
            sender,
            request_sent: Some(Arc::new(AtomicU8::new(BODY_SENT))),
        };
        (upstream, far, driver)
    }

    /// Checks in one connection to each of 40 addresses; the far ends stay open while the
    /// returned pairs live.
    async fn check_in_forty(
        pool: &Pool,
    ) -> Vec<(tokio::io::DuplexStream, tokio::task::JoinHandle<()>)> {
        let mut kept = Vec::new();
        for port in 0..40 {
            let (upstream, far, driver) = connection(9000 + port).await;
            pool.checkin(upstream);
            kept.push((far, driver));
        }
        assert_eq!(pool.addresses(), 40);
        kept
    }

    #[tokio::test]
    async fn an_address_leaves_the_pool_with_its_last_connection() {
        let pool = Pool::new(Duration::from_secs(60));
        let (upstream, _far, _driver) = connection(8001).await;
        let addr = upstream.addr;
        pool.checkin(upstream);
        assert_eq!(pool.addresses(), 1);
        assert!(pool.checkout(addr).is_some());
        assert_eq!(pool.addresses(), 0);
        assert!(pool.checkout(addr).is_none());
    }

    #[tokio::test]
    async fn a_connection_still_sending_its_request_is_not_pooled() {
        let pool = Pool::new(Duration::from_secs(60));
        let (mut upstream, _far, _driver) = connection(8002).await;
        upstream.request_sent = Some(Arc::new(AtomicU8::new(BODY_PENDING)));
        pool.checkin(upstream);
        assert_eq!(pool.addresses(), 0);
        let (mut unsent, _far, _driver) = connection(8003).await;
        unsent.request_sent = None;
        pool.checkin(unsent);
        assert_eq!(pool.addresses(), 0);
    }

    #[tokio::test]
    async fn a_sweep_drops_addresses_whose_connections_closed() {
        // Sweeping at every check-in, connections never old enough to expire.
        let pool = Pool::sweeping(Duration::from_secs(3600), Duration::ZERO);
        let mut kept = check_in_forty(&pool).await;
        // Half of the origins close their end: those connections end, but stay listed until a
        // sweep.
        for (far, driver) in kept.drain(..20) {
            drop(far);
            driver.await.unwrap();
        }
        assert_eq!(pool.addresses(), 40);
        let (upstream, _far, _driver) = connection(7000).await;
        pool.checkin(upstream);
        assert_eq!(pool.addresses(), 21);
    }

    #[tokio::test]
    async fn a_sweep_drops_addresses_whose_connections_expired() {
        let pool = Pool::sweeping(Duration::from_millis(50), Duration::ZERO);
        let _kept = check_in_forty(&pool).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        let (upstream, _far, _driver) = connection(7000).await;
        pool.checkin(upstream);
        assert_eq!(pool.addresses(), 1);
    }
}
