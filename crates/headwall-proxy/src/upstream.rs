//! Upstream connections: name resolution (static hosts, then DNS), TCP connect with a deadline,
//! a small keep-alive pool keyed by the address actually connected to, and the exchange of one
//! request and its response on the gateway's own HTTP/1.1 codec (`headwall-http`).
//!
//! The pool key is the connected `SocketAddr`, not the host name, because destination pinning
//! decides on the address the request really goes to (docs/design.md, Matching).
//!
//! One exchange, in the order the code runs ([`send`]):
//!
//! 1. the request head is written in one buffer, framed as the client framed its body
//!    (`Content-Length` as sent, re-chunked when the client sent chunked, none otherwise);
//! 2. a body, if any, is pumped upstream by a task of its own, so that an origin that answers
//!    before reading the whole body (a 413, a redirect) is heard at once;
//! 3. the response head is read and checked by the codec (anything ambiguous is a 502); 1xx
//!    interim answers are skipped, a 101 is handed over as a tunnel;
//! 4. the body streams to the client through [`UpstreamBody`], decoded by its framing.
//!
//! The connection goes back to the pool only when both directions ended cleanly: the request
//! body was written to its end, the response body was read to its end with no byte after it,
//! and neither side asked to close (issue 14, defect 3; issue 20). An idle pooled connection
//! holds only its socket: no buffer, no task.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf as _, Bytes, BytesMut};
use headwall_http::{BodyDecoder, Framing, HeadError, Method, Version};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

use crate::gateway::GatewaySettings;
use crate::serve::ClientBody;

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

/// A TCP connection to one upstream address, ready for a request.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    stream: TcpStream,
    /// Taken from the pool: a close before any answer byte may be the origin's idle timeout
    /// racing our request, and a request without a body is then sent again once, fresh.
    reused: bool,
    /// Whether the connection may be pooled after its exchange (not for upgrades).
    poolable: bool,
}

/// Bytes read from an upstream at a time.
const READ_CHUNK: usize = 8 * 1024;
pub(crate) struct Upstreams {
    hosts: HashMap<String, IpAddr>,
    connect_timeout: Duration,
    own: RwLock<Vec<SocketAddr>>,
    pool: Arc<Pool>,
    /// New upstream connections' TCP handshakes (`headwall_upstream_connect_duration_seconds`).
    pub(crate) connect_time: headwall_audit::latency::Histogram,
}

impl Upstreams {
    pub(crate) fn new(settings: &GatewaySettings) -> Upstreams {
        Upstreams {
            hosts: settings.hosts.clone(),
            connect_timeout: settings.connect_timeout,
            own: RwLock::new(Vec::new()),
            pool: Arc::new(Pool::new(settings.idle_timeout)),
            connect_time: headwall_audit::latency::Histogram::default(),
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
            let started = Instant::now();
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    self.connect_time.observe(started.elapsed());
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

    /// A ready connection to one of `addrs`: a pooled one if any is idle and alive, else a new
    /// one. `upgrade` connections are never pooled, before or after (they become tunnels).
    pub(crate) async fn http(
        &self,
        addrs: &[SocketAddr],
        upgrade: bool,
    ) -> Result<Upstream, UpstreamError> {
        if !upgrade {
            for &addr in addrs {
                if let Some(stream) = self.pool.checkout(addr) {
                    return Ok(Upstream {
                        addr,
                        stream,
                        reused: true,
                        poolable: true,
                    });
                }
            }
        }
        self.fresh(addrs, upgrade).await
    }

    /// A new connection, never from the pool.
    pub(crate) async fn fresh(
        &self,
        addrs: &[SocketAddr],
        upgrade: bool,
    ) -> Result<Upstream, UpstreamError> {
        let (stream, addr) = self.connect_tcp(addrs).await?;
        Ok(Upstream {
            addr,
            stream,
            reused: false,
            poolable: !upgrade,
        })
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
type IdleConnection = (TcpStream, Instant);

/// Idle connections kept per upstream address.
const MAX_IDLE_PER_ADDRESS: usize = 64;

/// Whether an idle connection is still usable: open, and with nothing to read. An origin that
/// closed it (a FIN) reads as end of file; one that sent bytes nobody asked for has put it in
/// an unknown state. Either way it is dropped.
fn idle_and_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
}

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

    fn checkout(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.by_addr.get_mut(&addr)?;
        let mut found = None;
        while let Some((stream, since)) = list.pop() {
            if since.elapsed() < self.max_idle && idle_and_open(&stream) {
                found = Some(stream);
                break;
            }
        }
        if list.is_empty() {
            idle.by_addr.remove(&addr);
        }
        found
    }

    /// Takes `stream`, whose exchange with `addr` ended cleanly in both directions, back for
    /// the next request.
    fn checkin(&self, addr: SocketAddr, stream: TcpStream) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle
            .swept
            .is_none_or(|at| now.duration_since(at) >= self.sweep_every)
        {
            idle.swept = Some(now);
            let max_idle = self.max_idle;
            idle.by_addr.retain(|_, list| {
                list.retain(|(stream, since)| {
                    now.duration_since(*since) < max_idle && idle_and_open(stream)
                });
                !list.is_empty()
            });
        }
        let list = idle.by_addr.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_ADDRESS {
            list.push((stream, now));
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

/// Why a request got no usable upstream response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The client's request body was malformed or cut short: the client's fault (400).
    ClientBody,
    /// The upstream closed or broke the connection (502).
    Upstream,
    /// The upstream's response head is malformed or ambiguous (502).
    BadResponse(HeadError),
}

/// How the request body ended, from the task that pumped it upstream.
#[derive(Debug)]
enum Pumped {
    /// Written to its end: the write half, for the pool.
    Done(OwnedWriteHalf),
    /// The client's body broke (malformed chunk, short body, closed).
    ClientFailed,
    /// The upstream stopped taking it.
    UpstreamFailed,
}

/// The reading side of an exchange: the whole socket, or its read half while a task owns the
/// write half to pump the request body.
enum ReadSide {
    Whole(TcpStream),
    Half(OwnedReadHalf),
}

/// The upstream connection of one exchange, from the response head's first byte on.
struct Exchange {
    read: ReadSide,
    /// The body pump's verdict, until it arrives.
    pump: Option<oneshot::Receiver<Pumped>>,
    /// The write half, once the pump gave it back.
    write: Option<OwnedWriteHalf>,
    /// The pump failed on the upstream's side: the connection is in an unknown state.
    broken: bool,
}

impl Exchange {
    /// Takes the pump's verdict if it has come; `Some(Pumped::ClientFailed)` when the client's
    /// body broke.
    fn poll_pump(&mut self, cx: &mut Context<'_>) -> Option<Pumped> {
        let rx = self.pump.as_mut()?;
        let Poll::Ready(verdict) = Pin::new(rx).poll(cx) else {
            return None;
        };
        self.pump = None;
        match verdict {
            Ok(Pumped::Done(half)) => {
                self.write = Some(half);
                None
            }
            Ok(Pumped::ClientFailed) => Some(Pumped::ClientFailed),
            Ok(Pumped::UpstreamFailed) | Err(_) => {
                self.broken = true;
                None
            }
        }
    }

    /// Reads what the upstream sent next into `buf`: the number of bytes (0 at end of file).
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        buf.reserve(READ_CHUNK);
        match &mut self.read {
            ReadSide::Whole(stream) => tokio_util::io::poll_read_buf(Pin::new(stream), cx, buf),
            ReadSide::Half(half) => tokio_util::io::poll_read_buf(Pin::new(half), cx, buf),
        }
    }

    /// The socket again, when the request was written to its end and nothing went wrong.
    fn into_stream(mut self) -> Option<TcpStream> {
        if self.broken {
            return None;
        }
        if let Some(rx) = self.pump.as_mut()
            && let Ok(Pumped::Done(half)) = rx.try_recv()
        {
            self.write = Some(half);
        }
        match self.read {
            ReadSide::Whole(stream) => Some(stream),
            ReadSide::Half(read) => read.reunite(self.write?).ok(),
        }
    }
}

/// Sends `request` (origin-form target, headers already stripped and enriched) on `upstream`
/// and reads the response head. A pooled connection that turns out closed before any byte of
/// an answer is replaced once by a fresh one to the same address, for a request without a
/// body (one with a body cannot be sent twice).
pub(crate) async fn send(
    upstreams: &Upstreams,
    upstream: Upstream,
    request: Request<ClientBody>,
) -> Result<Response<UpstreamBody>, SendError> {
    let (parts, body) = request.into_parts();
    let method = Method::from_token(parts.method.as_str().as_bytes());
    // As the codec read the client's head (its chunks are decoded here and re-chunked;
    // `Transfer-Encoding` was removed as hop-by-hop, a length stays as sent).
    let framing = body.framing();
    let head = request_head(&parts, framing)?;
    if framing != Framing::None {
        return exchange(upstreams, upstream, &head, method, Some((body, framing)))
            .await
            .map_err(Failure::into_send_error);
    }
    let (reused, addr) = (upstream.reused, upstream.addr);
    match exchange(upstreams, upstream, &head, method, None).await {
        Err(Failure::BeforeAnswer) if reused => {
            let fresh = upstreams
                .fresh(&[addr], false)
                .await
                .map_err(|_| SendError::Upstream)?;
            exchange(upstreams, fresh, &head, method, None)
                .await
                .map_err(Failure::into_send_error)
        }
        other => other.map_err(Failure::into_send_error),
    }
}

/// How an exchange failed.
enum Failure {
    /// The connection ended or broke before any byte of an answer.
    BeforeAnswer,
    Send(SendError),
}

impl Failure {
    fn into_send_error(self) -> SendError {
        match self {
            Failure::BeforeAnswer => SendError::Upstream,
            Failure::Send(error) => error,
        }
    }
}

/// The request head as it goes upstream, in one buffer.
fn request_head(parts: &http::request::Parts, framing: Framing) -> Result<Vec<u8>, SendError> {
    let target = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let chunked: &[(&[u8], &[u8])] = if framing == Framing::Chunked {
        &[(b"transfer-encoding", b"chunked")]
    } else {
        &[]
    };
    let fields: Vec<(&[u8], &[u8])> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
        .chain(chunked.iter().copied())
        .collect();
    let mut head = Vec::new();
    headwall_http::write_request_head(
        &mut head,
        parts.method.as_str().as_bytes(),
        target.as_bytes(),
        Version::Http11,
        fields,
    )
    // The http crate's types cannot hold what the writer refuses; a 502 if they ever did.
    .map_err(|_| SendError::Upstream)?;
    Ok(head)
}

/// Pumps the client's body upstream in `framing` (trailers dropped), then gives the write half
/// back. The head goes out with the body's first bytes when those are there already, as
/// hyper's client did: a body that breaks at once leaves the origin with nothing at all.
async fn pump_body(
    mut write: OwnedWriteHalf,
    mut body: ClientBody,
    framing: Framing,
    head: Vec<u8>,
) -> Pumped {
    let chunked = framing == Framing::Chunked;
    let mut out = head;
    loop {
        // What the client has sent already goes out with the head; if nothing has come yet
        // the head goes alone, so the origin hears of the request while the body is slow.
        let frame = match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx)))
            .await
        {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !out.is_empty() {
                    if write.write_all(&out).await.is_err() {
                        return Pumped::UpstreamFailed;
                    }
                    out.clear();
                }
                body.frame().await
            }
        };
        let Some(frame) = frame else {
            break;
        };
        let Ok(frame) = frame else {
            return Pumped::ClientFailed;
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let written = if chunked {
            headwall_http::write_chunk(&mut out, &data);
            write.write_all(&out).await
        } else if out.is_empty() {
            write.write_all(&data).await
        } else {
            out.extend_from_slice(&data);
            write.write_all(&out).await
        };
        out.clear();
        if written.is_err() {
            return Pumped::UpstreamFailed;
        }
    }
    if chunked {
        headwall_http::write_last_chunk(&mut out);
    }
    if !out.is_empty() && write.write_all(&out).await.is_err() {
        return Pumped::UpstreamFailed;
    }
    Pumped::Done(write)
}

/// One request and its response head on `upstream`.
async fn exchange(
    upstreams: &Upstreams,
    upstream: Upstream,
    head: &[u8],
    method: Method,
    body: Option<(ClientBody, Framing)>,
) -> Result<Response<UpstreamBody>, Failure> {
    let Upstream {
        addr,
        mut stream,
        poolable,
        ..
    } = upstream;
    let mut exchange = match body {
        None => {
            if stream.write_all(head).await.is_err() {
                return Err(Failure::BeforeAnswer);
            }
            Exchange {
                read: ReadSide::Whole(stream),
                pump: None,
                write: None,
                broken: false,
            }
        }
        Some((body, framing)) => {
            let (read, write) = stream.into_split();
            let (verdict, pump) = oneshot::channel();
            let head = head.to_vec();
            tokio::spawn(async move {
                let _ = verdict.send(pump_body(write, body, framing, head).await);
            });
            Exchange {
                read: ReadSide::Half(read),
                pump: Some(pump),
                write: None,
                broken: false,
            }
        }
    };

    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut answered = false;
    let (response_head, length) = loop {
        match headwall_http::parse_response_head(&buf, method) {
            // 100 Continue and the other 1xx: the client gets the gateway's own 100 Continue
            // (serve.rs); the origin's interim answers end here.
            Ok(Some((response, length)))
                if response.is_interim() && !response.is_switching_protocols() =>
            {
                buf.advance(length);
                continue;
            }
            Ok(Some(parsed)) => break parsed,
            Ok(None) => {}
            Err(error) => return Err(Failure::Send(SendError::BadResponse(error))),
        }
        let read = std::future::poll_fn(|cx| {
            if let Some(Pumped::ClientFailed) = exchange.poll_pump(cx) {
                return Poll::Ready(Err(None));
            }
            exchange.poll_read_into(cx, &mut buf).map_err(Some)
        })
        .await;
        match read {
            // The client's body broke: its fault, whatever the origin does now.
            Err(None) => return Err(Failure::Send(SendError::ClientBody)),
            Ok(0) | Err(Some(_)) if !answered => return Err(Failure::BeforeAnswer),
            Ok(0) | Err(Some(_)) => return Err(Failure::Send(SendError::Upstream)),
            Ok(_) => answered = true,
        }
    };

    let status = StatusCode::from_u16(response_head.status())
        .map_err(|_| Failure::Send(SendError::BadResponse(HeadError::BadStatusLine)))?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    // The field values share the head's memory (no copies).
    let head_bytes = buf.split_to(length).freeze();
    for (name, value) in response_head.field_bytes(&head_bytes) {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_maybe_shared(head_bytes.slice_ref(value)),
        ) else {
            return Err(Failure::Send(SendError::BadResponse(
                HeadError::BadFieldValue,
            )));
        };
        // Chunked won over a length (RFC 9112 §6.3 ¶3): the length is not passed on.
        if name == header::CONTENT_LENGTH && response_head.length_overridden() {
            continue;
        }
        headers.append(name, value);
    }
    let framing = response_head.framing();
    let reusable = poolable
        && response_head.keep_alive()
        && !response_head.is_switching_protocols()
        && framing != Framing::CloseDelimited;
    let mut body = UpstreamBody {
        exchange: Some(exchange),
        buf,
        decoder: BodyDecoder::new(framing),
        checkin: reusable.then(|| (upstreams.pool.clone(), addr)),
        done: false,
    };
    // Nothing to read (no body, or an empty one): the exchange is over now, whether or not
    // anybody polls the body.
    if body.decoder.is_done() && !response_head.is_switching_protocols() {
        body.end();
    }
    Ok(response.map(|()| body))
}

/// An upstream response body, decoded by its framing as it is read. When it has been read to
/// its end with nothing after it, the connection goes back to the pool (if both sides allow).
/// Dropped early, the connection closes (its state is unknown).
pub(crate) struct UpstreamBody {
    exchange: Option<Exchange>,
    /// Bytes read and not yet decoded.
    buf: BytesMut,
    decoder: BodyDecoder,
    checkin: Option<(Arc<Pool>, SocketAddr)>,
    done: bool,
}

impl UpstreamBody {
    /// The body has ended: the connection goes to the pool when clean, else closes.
    fn end(&mut self) {
        self.done = true;
        let exchange = self.exchange.take();
        if let (Some((pool, addr)), Some(exchange)) = (self.checkin.take(), exchange)
            && self.buf.is_empty()
            && let Some(stream) = exchange.into_stream()
        {
            pool.checkin(addr, stream);
        }
    }

    /// After a 101: the upstream socket and the bytes it sent after the response head, which
    /// belong to the new protocol. `None` when the request's own body is still being written.
    pub(crate) fn into_tunnel(mut self) -> Option<(TcpStream, Bytes)> {
        let exchange = self.exchange.take()?;
        let stream = exchange.into_stream()?;
        Some((stream, std::mem::take(&mut self.buf).freeze()))
    }

    fn failed(&mut self, error: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.done = true;
        self.exchange = None;
        self.checkin = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if !this.buf.is_empty() || this.decoder.is_done() {
                let step = match crate::serve::decode_step(&mut this.decoder, &mut this.buf) {
                    Ok(step) => step,
                    Err(error) => {
                        return this.failed(io::Error::new(io::ErrorKind::InvalidData, error));
                    }
                };
                if step.finished {
                    this.end();
                }
                if let Some(chunk) = step.data {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                if step.finished {
                    return Poll::Ready(None);
                }
                if step.consumed {
                    continue;
                }
            }
            let Some(exchange) = this.exchange.as_mut() else {
                return Poll::Ready(None);
            };
            // A body the client is still sending does not hold up the answer; its verdict
            // only decides whether the connection can be pooled.
            let _ = exchange.poll_pump(cx);
            let read = ready!(exchange.poll_read_into(cx, &mut this.buf));
            match read {
                Ok(0) => {
                    // End of file: the end of a close-delimited body, else a cut one.
                    return match this.decoder.finish() {
                        Ok(()) => {
                            this.done = true;
                            this.exchange = None;
                            Poll::Ready(None)
                        }
                        Err(error) => {
                            this.failed(io::Error::new(io::ErrorKind::UnexpectedEof, error))
                        }
                    };
                }
                Ok(_) => {}
                Err(error) => return this.failed(error),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match &self.decoder {
            BodyDecoder::None => SizeHint::with_exact(0),
            BodyDecoder::Length(decoder) => SizeHint::with_exact(decoder.remaining()),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    /// A real TCP connection on loopback: the near end for the pool, the far end (the
    /// "origin") for the test to keep open or close.
    async fn connection() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (far, _) = listener.accept().await.unwrap();
        (near, far)
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 2], port))
    }

    /// Checks in one connection to each of 40 addresses; returns the far ends.
    async fn check_in_forty(pool: &Pool) -> Vec<TcpStream> {
        let mut far_ends = Vec::new();
        for port in 0..40 {
            let (near, far) = connection().await;
            pool.checkin(addr(9000 + port), near);
            far_ends.push(far);
        }
        assert_eq!(pool.addresses(), 40);
        far_ends
    }

    #[tokio::test]
    async fn an_address_leaves_the_pool_with_its_last_connection() {
        let pool = Pool::new(Duration::from_secs(60));
        let (near, _far) = connection().await;
        pool.checkin(addr(8001), near);
        assert_eq!(pool.addresses(), 1);
        assert!(pool.checkout(addr(8001)).is_some());
        assert_eq!(pool.addresses(), 0);
        assert!(pool.checkout(addr(8001)).is_none());
    }

    #[tokio::test]
    async fn a_connection_the_origin_closed_or_wrote_on_is_never_handed_out() {
        let pool = Pool::new(Duration::from_secs(60));
        let (near, far) = connection().await;
        pool.checkin(addr(8002), near);
        drop(far);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.checkout(addr(8002)).is_none(), "closed by the origin");
        let (near, mut far) = connection().await;
        pool.checkin(addr(8003), near);
        far.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            pool.checkout(addr(8003)).is_none(),
            "bytes nobody asked for"
        );
        let (near, _far) = connection().await;
        pool.checkin(addr(8004), near);
        assert!(pool.checkout(addr(8004)).is_some());
    }

    #[tokio::test]
    async fn a_sweep_drops_addresses_whose_connections_closed() {
        // Sweeping at every check-in, connections never old enough to expire.
        let pool = Pool::sweeping(Duration::from_secs(3600), Duration::ZERO);
        let mut far_ends = check_in_forty(&pool).await;
        // Half of the origins close their end: listed until a sweep.
        far_ends.drain(..20);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.addresses(), 40);
        let (near, _far) = connection().await;
        pool.checkin(addr(7000), near);
        assert_eq!(pool.addresses(), 21);
    }

    #[tokio::test]
    async fn a_sweep_drops_addresses_whose_connections_expired() {
        let pool = Pool::sweeping(Duration::from_millis(50), Duration::ZERO);
        let _far_ends = check_in_forty(&pool).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        let (near, _far) = connection().await;
        pool.checkin(addr(7000), near);
        assert_eq!(pool.addresses(), 1);
    }
}
