//! An origin that records what it received and echoes the headers back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the origin saw it on the wire.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// The request target as received (origin-form expected from a gateway).
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Every header in arrival order, names lowercased by the parser.
    pub headers: Vec<(String, String)>,
    /// Request body bytes received (counted while streaming, never buffered).
    pub body_len: u64,
    /// The address the request came from (the gateway's side of the connection).
    pub peer: SocketAddr,
}

impl ReceivedRequest {
    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of header `name`, if it arrived exactly once.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.header_values(name).as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

/// A recording HTTP/1.1 origin on a local address.
///
/// Paths: `/bytes/N` answers N bytes (chunked, streamed); a request with `Upgrade` gets
/// `101 Switching Protocols` and every byte sent afterwards is echoed; anything else answers
/// `200` with a JSON object of the received headers. Request bodies are counted, not kept.
pub struct EchoOrigin {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<ReceivedRequest>>>,
    task: JoinHandle<()>,
}

impl EchoOrigin {
    /// Binds `addr` (port 0 picks a free port) and starts serving on the current runtime.
    pub async fn start(addr: SocketAddr) -> std::io::Result<EchoOrigin> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        respond(request, peer, log.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(EchoOrigin {
            addr,
            received,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything received so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Everything received so far, and forget it.
    pub fn take(&self) -> Vec<ReceivedRequest> {
        std::mem::take(&mut *self.received.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for EchoOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type EchoBody = BoxBody<Bytes, std::io::Error>;

async fn respond(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    log: Arc<Mutex<Vec<ReceivedRequest>>>,
) -> Result<Response<EchoBody>, Infallible> {
    let upgrade = request.headers().get(header::UPGRADE).cloned();
    let websocket_key = request
        .headers()
        .get("sec-websocket-key")
        .and_then(|key| key.to_str().ok())
        .map(str::to_owned);
    let on_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
    let (parts, mut body) = request.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into(),
            )
        })
        .collect();
    let mut body_len = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            body_len += data.len() as u64;
        }
    }
    let echo = serde_json::Value::Object(
        headers
            .iter()
            .map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    );
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(ReceivedRequest {
            method: parts.method.to_string(),
            target: parts.uri.to_string(),
            version: format!("{:?}", parts.version),
            headers,
            body_len,
            peer,
        });

    if let (Some(protocol), Some(on_upgrade)) = (upgrade, on_upgrade) {
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 4096];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, protocol);
        // As a WebSocket server would (RFC 6455 §4.2.2), when asked with a key.
        if let Some(accept) = websocket_key
            .as_deref()
            .and_then(headwall_policy::websocket_accept)
        {
            response = response.header("sec-websocket-accept", accept);
        }
        let response = response.body(empty());
        return Ok(response.unwrap_or_else(|_| Response::new(empty())));
    }

    if let Some(count) = parts
        .uri
        .path()
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<u64>().ok())
    {
        return Ok(Response::new(streamed_bytes(count)));
    }
    let text = Bytes::from(echo.to_string());
    let mut response = Response::new(Full::new(text).map_err(|never| match never {}).boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn empty() -> EchoBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// `count` bytes of `x` in 64 KiB chunks, produced lazily so nothing large is held.
fn streamed_bytes(count: u64) -> EchoBody {
    RepeatBody {
        remaining: count,
        chunk: Bytes::from(vec![b'x'; 64 * 1024]),
    }
    .boxed()
}

struct RepeatBody {
    remaining: u64,
    chunk: Bytes,
}

impl hyper::body::Body for RepeatBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return std::task::Poll::Ready(None);
        }
        let len = self.remaining.min(self.chunk.len() as u64);
        self.remaining -= len;
        let data = self.chunk.slice(..len as usize);
        std::task::Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }
}
