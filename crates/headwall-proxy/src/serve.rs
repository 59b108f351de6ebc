//! One client connection on the gateway's own HTTP/1.1 server side (`headwall-http`): read a
//! request head, hand the request to [`crate::forward::handle`], write its response, and go
//! round again while both sides keep the connection alive.
//!
//! In the order the code runs, for each request:
//!
//! 1. wait for the next request's first byte **without a buffer** (an idle keep-alive
//!    connection holds its socket and nothing else), closing at `idle_timeout` or on drain;
//! 2. read the head within `header_read_timeout` and parse it with the codec: anything it
//!    refuses is answered with the codec's status (400, 414, 431, 501) and the connection
//!    closes;
//! 3. the body, if the head frames one, is a [`ClientBody`] that owns the connection's read
//!    half while it is read (sending `100 Continue` first when the client asked for it) and
//!    gives it back, with any pipelined bytes after it, when it ends;
//! 4. the response head goes out in one buffer, with the first piece of its body when that is
//!    already there; the body follows, framed by its length, chunked, or (to an HTTP/1.0
//!    client) to the close;
//! 5. after a `101` or a `2xx` to CONNECT the socket becomes the tunnel the request asked for
//!    ([`OnUpgrade`]).

use headwall_audit::LogLimit;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes, BytesMut};
use headwall_http::{BodyDecoder, Framing, HeadError, Version};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

use crate::access_log::Entry;
use crate::forward::Front;
use crate::gateway::Gateway;
use crate::idle::Activity;
use crate::listener::Slot;
use crate::metrics::{Listener, Outcome};
use crate::respond::ProxyBody;

/// Bytes read from a client at a time.
const READ_CHUNK: usize = 4 * 1024;
/// Response bytes gathered before a write (a head and its first body piece go out together).
const WRITE_GATHER: usize = 16 * 1024;

static MALFORMED: LogLimit = LogLimit::new();

/// A client connection after the switch to another protocol: its socket and the bytes the
/// client sent after the request head, which belong to the new protocol.
pub(crate) struct Upgraded {
    stream: TcpStream,
    early: Bytes,
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.early.is_empty() {
            let n = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early[..n]);
            this.early.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Resolves to the client's socket once the response that switches protocols has been written
/// (like hyper's `upgrade::on`).
pub(crate) struct OnUpgrade(oneshot::Receiver<Upgraded>);

/// Where a request that may switch protocols (CONNECT, or one with `Upgrade`) carries its
/// [`OnUpgrade`] in its extensions (which must be `Clone`).
#[derive(Clone)]
struct UpgradeSlot(Arc<std::sync::Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl OnUpgrade {
    /// Takes the handle out of `request`, if it may switch protocols.
    pub(crate) fn take<B>(request: &mut Request<B>) -> Option<OnUpgrade> {
        let slot = request.extensions_mut().remove::<UpgradeSlot>()?;
        let receiver = slot
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()?;
        Some(OnUpgrade(receiver))
    }
}

impl Future for OnUpgrade {
    type Output = Result<Upgraded, oneshot::error::RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// What a request body gives back to its connection when it ends or is dropped: the read half,
/// the bytes read past the body (the next request's, if pipelined), and whether the body was
/// read to its end (otherwise the connection cannot go on).
struct Returned {
    read: OwnedReadHalf,
    buf: BytesMut,
    clean: bool,
    /// Body bytes decoded (the access log's `bytes_in`, beside the head).
    received: u64,
}

/// A client's request body, decoded by its framing as the upstream side reads it.
pub(crate) struct ClientBody {
    /// How the client framed the body, as the codec read its head: how it goes upstream.
    framing: Framing,
    read: Option<OwnedReadHalf>,
    buf: BytesMut,
    decoder: BodyDecoder,
    done: bool,
    give_back: Option<oneshot::Sender<Returned>>,
    /// Fired at the first read when the client sent `Expect: 100-continue`.
    continue_wanted: Option<oneshot::Sender<()>>,
    activity: Activity,
    /// Body bytes handed on so far.
    received: u64,
}

impl ClientBody {
    /// A body that has none (the connection keeps its read half).
    fn empty(activity: Activity) -> ClientBody {
        ClientBody {
            framing: Framing::None,
            read: None,
            buf: BytesMut::new(),
            decoder: BodyDecoder::None,
            done: true,
            give_back: None,
            continue_wanted: None,
            activity,
            received: 0,
        }
    }

    /// The body's framing: none (also for `Content-Length: 0`), a length, or chunked.
    pub(crate) fn framing(&self) -> Framing {
        self.framing
    }

    fn give_back(&mut self, clean: bool) {
        if let (Some(tx), Some(read)) = (self.give_back.take(), self.read.take()) {
            let _ = tx.send(Returned {
                read,
                buf: std::mem::take(&mut self.buf),
                clean,
                received: self.received,
            });
        }
    }

    fn fail(&mut self, error: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.done = true;
        self.give_back(false);
        Poll::Ready(Some(Err(error)))
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        let clean = self.done;
        self.give_back(clean);
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        // The first read of the body is when the client hears it may send it (as hyper does,
        // even when the body came with the head).
        if let Some(wanted) = this.continue_wanted.take() {
            let _ = wanted.send(());
        }
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if !this.buf.is_empty() {
                let step = match decode_step(&mut this.decoder, &mut this.buf) {
                    Ok(step) => step,
                    Err(error) => {
                        return this.fail(io::Error::new(io::ErrorKind::InvalidData, error));
                    }
                };
                if let Some(chunk) = &step.data {
                    this.received += chunk.len() as u64;
                }
                if step.finished {
                    this.done = true;
                    this.give_back(true);
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
            let Some(read) = this.read.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(poll_read_into(read, cx, &mut this.buf)) {
                Ok(0) => {
                    let error = this.decoder.finish().err();
                    return this.fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        error.map_or("closed", |e| e.as_str()),
                    ));
                }
                Ok(_) => this.activity.touch(),
                Err(error) => return this.fail(error),
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

/// One step of decoding `buf` with `decoder`.
pub(crate) struct Step {
    /// Body data found, sharing `buf`'s memory.
    pub(crate) data: Option<Bytes>,
    /// Whether any bytes were consumed (framing or data): if not, more must be read.
    pub(crate) consumed: bool,
    /// The body ended.
    pub(crate) finished: bool,
}

/// Decodes what `buf` holds with `decoder`, taking the consumed bytes off its front.
pub(crate) fn decode_step(
    decoder: &mut BodyDecoder,
    buf: &mut BytesMut,
) -> Result<Step, headwall_http::BodyError> {
    let decoded = decoder.decode(buf)?;
    let (consumed, finished) = (decoded.consumed, decoded.done);
    let data = (!decoded.data.is_empty()).then(|| {
        let start = decoded.data.as_ptr().addr() - buf.as_ptr().addr();
        start..start + decoded.data.len()
    });
    let mut taken = buf.split_to(consumed);
    let data = data.map(|range| {
        taken.truncate(range.end);
        taken.advance(range.start);
        taken.freeze()
    });
    Ok(Step {
        data,
        consumed: consumed > 0,
        finished,
    })
}

/// Reads what the peer sent next into `buf`'s spare capacity (at least [`READ_CHUNK`] of it,
/// never zero-filled): the number of bytes, 0 at end of file.
pub(crate) fn poll_read_into<R: AsyncRead + Unpin>(
    read: &mut R,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    buf.reserve(READ_CHUNK);
    tokio_util::io::poll_read_buf(Pin::new(read), cx, buf)
}

/// How waiting for a request head ended.
enum Head {
    /// A complete head, `length` bytes at the start of the buffer.
    Complete(headwall_http::RequestHead, usize),
    /// The client closed, went quiet, or the gateway is draining: close without a word.
    Gone,
    /// The head is refused: answer with its status and close.
    Refused(HeadError),
}

/// Serves `stream` from `client` until either side closes it, it idles, the gateway drains,
/// or it becomes a tunnel.
pub(crate) async fn connection(
    gateway: Arc<Gateway>,
    stream: TcpStream,
    client: SocketAddr,
    front: Front,
    slot: Slot,
    kind: Listener,
    activity: Activity,
) {
    let (read_half, mut write) = stream.into_split();
    // Lent to a request body while it is read, and given back with the bytes after it.
    let mut read = Some(read_half);
    let mut buf = BytesMut::new();
    let mut drain = gateway.drain.subscribe();
    loop {
        let Some(reader) = read.as_mut() else {
            return;
        };
        let (head, length) = match read_head(&gateway, reader, &mut buf, &mut drain, &activity)
            .await
        {
            Head::Complete(head, length) => (head, length),
            Head::Gone => return,
            Head::Refused(error) => {
                slot.count(Outcome::BadRequest, None);
                MALFORMED.run(|| {
                    tracing::debug!(client.addr = %client, error = error.as_str(), "malformed request");
                });
                refuse(&gateway, &mut write, kind, client, error, buf.len()).await;
                return;
            }
        };
        let head_bytes = buf.split_to(length).freeze();
        let Some(mut request) = request_of(&head, &head_bytes) else {
            slot.count(Outcome::BadRequest, None);
            refuse(
                &gateway,
                &mut write,
                kind,
                client,
                HeadError::BadRequestLine,
                length,
            )
            .await;
            return;
        };
        let mut entry = Entry::start(&gateway, kind, client);
        if let Some(entry) = entry.as_mut() {
            entry.request(&request);
            entry.bytes_in = length as u64;
        }
        let head_request = request.method() == Method::HEAD;
        let connect = request.method() == Method::CONNECT;
        let version = request.version();

        // A body takes the read half, and the bytes after the head, with it.
        let framing = head.framing();
        let (continue_wanted, mut continue_rx) = if head.expect_continue() {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let mut lent = None;
        let decoder = BodyDecoder::new(framing);
        // No body, or an empty one (`Content-Length: 0`): the connection keeps its read half.
        let body = if decoder.is_done() {
            ClientBody::empty(activity.clone())
        } else {
            let (give_back, back) = oneshot::channel();
            lent = Some(back);
            ClientBody {
                framing,
                read: read.take(),
                buf: std::mem::take(&mut buf),
                decoder,
                done: false,
                give_back: Some(give_back),
                continue_wanted,
                activity: activity.clone(),
                received: 0,
            }
        };
        let mut upgrade_tx = None;
        if connect || request.headers().contains_key(header::UPGRADE) {
            let (tx, rx) = oneshot::channel();
            upgrade_tx = Some(tx);
            request
                .extensions_mut()
                .insert(UpgradeSlot(Arc::new(std::sync::Mutex::new(Some(rx)))));
        }
        let request = request.map(|()| body);

        // Boxed: the request's work lives on the heap only while it runs, so an idle
        // connection's task is small (issue 20: idle connections in 2 KiB).
        let mut handled = Box::pin(crate::forward::handle(
            gateway.clone(),
            client,
            front,
            slot.clone(),
            request,
            &mut entry,
        ));
        let response = loop {
            let Some(rx) = continue_rx.as_mut() else {
                break (&mut handled).await;
            };
            tokio::select! {
                biased;
                // First: a 100 Continue asked for always goes out before the final answer.
                wanted = rx => {
                    continue_rx = None;
                    if wanted.is_ok() {
                        if write.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                            return;
                        }
                        activity.touch();
                    }
                }
                response = &mut handled => break response,
            }
        };
        drop(handled);

        let status = response.status();
        let mut sent = 0;
        let switching =
            status == StatusCode::SWITCHING_PROTOCOLS || (connect && status.is_success());
        let close = !head.keep_alive() || *drain.borrow();
        // Boxed like the request's work: not part of an idle connection's task.
        let written = Box::pin(write_response(
            &mut write,
            response,
            head_request || switching,
            version,
            close,
            &activity,
            &mut sent,
        ))
        .await;
        if let Some(entry) = entry.as_mut() {
            entry.status = status.as_u16();
            entry.bytes_out = sent;
        }
        let Ok(complete) = written else {
            return;
        };

        // What became of the request body decides whether the connection goes on.
        if let Some(back) = lent {
            let Ok(returned) = back.await else {
                return;
            };
            if let Some(entry) = entry.as_mut() {
                entry.bytes_in += returned.received;
            }
            read = Some(returned.read);
            buf = returned.buf;
            if !returned.clean {
                return;
            }
        }
        if switching {
            let Some(upgrade_tx) = upgrade_tx.filter(|tx| !tx.is_closed()) else {
                return;
            };
            let Some(Ok(stream)) = read.take().map(|half| half.reunite(write)) else {
                return;
            };
            let _ = upgrade_tx.send(Upgraded {
                stream,
                early: buf.freeze(),
            });
            return;
        }
        if close || !complete {
            return;
        }
        if buf.is_empty() {
            // Idle between requests: no buffer held.
            buf = BytesMut::new();
        }
    }
}

/// Waits for a request head within `header_read_timeout`: for its first byte without a buffer
/// (closing on drain, or when the client closes), then for the rest. The timer starts whenever
/// the connection waits for a head, so it also closes a keep-alive connection idle between
/// requests for that long (as hyper's did).
async fn read_head(
    gateway: &Gateway,
    read: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    drain: &mut tokio::sync::watch::Receiver<bool>,
    activity: &Activity,
) -> Head {
    let reading = async {
        if buf.is_empty() {
            if *drain.borrow() {
                return Head::Gone;
            }
            tokio::select! {
                ready = read.readable() => if ready.is_err() { return Head::Gone },
                _ = drain.wait_for(|draining| *draining) => return Head::Gone,
            }
        }
        loop {
            match headwall_http::parse_request_head(buf) {
                Ok(Some((head, length))) => return Head::Complete(head, length),
                Ok(None) => {}
                Err(error) => return Head::Refused(error),
            }
            match std::future::poll_fn(|cx| poll_read_into(read, cx, buf)).await {
                Ok(0) | Err(_) => return Head::Gone,
                Ok(_) => activity.touch(),
            }
        }
    };
    tokio::time::timeout(gateway.settings.header_read_timeout, reading)
        .await
        .unwrap_or(Head::Gone)
}

/// The `http` request a head describes (no body yet); `None` when its parts do not fit the
/// `http` crate's types. The target and the field values share `buf`'s memory (no copies).
fn request_of(head: &headwall_http::RequestHead, buf: &Bytes) -> Option<Request<()>> {
    let method = Method::from_bytes(head.method_bytes(buf)).ok()?;
    let uri = Uri::from_maybe_shared(buf.slice_ref(head.target_bytes(buf))).ok()?;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = match head.version() {
        Version::Http10 => http::Version::HTTP_10,
        Version::Http11 => http::Version::HTTP_11,
    };
    let headers = request.headers_mut();
    headers.reserve(head.fields().len());
    for (name, value) in head.field_bytes(buf) {
        let name = HeaderName::from_bytes(name).ok()?;
        // Chunked won over a length (RFC 9112 §6.3 ¶3): the length is not passed on.
        if name == header::CONTENT_LENGTH && head.length_overridden() {
            continue;
        }
        headers.append(
            name,
            HeaderValue::from_maybe_shared(buf.slice_ref(value)).ok()?,
        );
    }
    Some(request)
}

/// Writes the refusal of a head (`length` bytes of it were read) and logs it.
async fn refuse(
    gateway: &Gateway,
    write: &mut OwnedWriteHalf,
    kind: Listener,
    client: SocketAddr,
    error: HeadError,
    length: usize,
) {
    let answer = refusal(error);
    let written = write.write_all(&answer).await.is_ok();
    if let Some(mut entry) = Entry::start(gateway, kind, client) {
        entry.status = error.status();
        entry.bytes_in = length as u64;
        entry.bytes_out = if written { answer.len() as u64 } else { 0 };
    }
}

/// The answer to a refused head: its status, a one-line reason, and the close.
fn refusal(error: HeadError) -> Vec<u8> {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let reason = format!("headwall: {}\n", error.as_str());
    let length = reason.len().to_string();
    let date = crate::date::header();
    let fields: [(&[u8], &[u8]); 4] = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", length.as_bytes()),
        (b"connection", b"close"),
        (b"date", date.as_bytes()),
    ];
    let mut out = Vec::new();
    let _ = headwall_http::write_response_head(
        &mut out,
        Version::Http11,
        status.as_u16(),
        status.canonical_reason().unwrap_or("").as_bytes(),
        fields,
    );
    out.extend_from_slice(reason.as_bytes());
    out
}

/// How a response body goes to the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    /// No body bytes: HEAD, 1xx, 204, 304, or a switch of protocols.
    Nothing,
    Length,
    Chunked,
    /// HTTP/1.0 client, length unknown: the body ends with the connection.
    ToClose,
}

/// Writes `response` to the client; `Ok(true)` when its body was written whole and the
/// connection may carry another request.
async fn write_response(
    write: &mut OwnedWriteHalf,
    response: Response<ProxyBody>,
    no_body: bool,
    version: http::Version,
    close: bool,
    activity: &Activity,
    sent: &mut u64,
) -> io::Result<bool> {
    let (mut parts, mut body) = response.into_parts();
    let status = parts.status;
    let headers = &mut parts.headers;
    let out = if no_body
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Out::Nothing
    } else if headers.contains_key(header::CONTENT_LENGTH) {
        Out::Length
    } else if let Some(length) = body.size_hint().exact() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        Out::Length
    } else if version == http::Version::HTTP_11 {
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        Out::Chunked
    } else {
        Out::ToClose
    };
    let close = close || out == Out::ToClose;
    if close && status != StatusCode::SWITCHING_PROTOCOLS {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    } else if version == http::Version::HTTP_10 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
    if !headers.contains_key(header::DATE) {
        headers.insert(header::DATE, crate::date::header());
    }
    let fields: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
        .collect();
    let mut pending = Vec::with_capacity(512);
    headwall_http::write_response_head(
        &mut pending,
        Version::Http11,
        status.as_u16(),
        status.canonical_reason().unwrap_or("").as_bytes(),
        fields,
    )
    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response head"))?;
    if out == Out::Nothing {
        write.write_all(&pending).await?;
        *sent += pending.len() as u64;
        activity.touch();
        return Ok(true);
    }
    loop {
        // What the body has now goes out with what is pending; then wait for more.
        let frame = match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx)))
            .await
        {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !pending.is_empty() {
                    write.write_all(&pending).await?;
                    *sent += pending.len() as u64;
                    activity.touch();
                    pending.clear();
                }
                body.frame().await
            }
        };
        match frame {
            None => break,
            Some(Err(_)) => {
                // The upstream broke the body: what is pending (perhaps the head itself) is
                // never sent; the client sees the connection end.
                return Err(io::Error::other("response body failed"));
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                if out == Out::Chunked {
                    headwall_http::write_chunk(&mut pending, &data);
                } else if pending.is_empty() && data.len() >= WRITE_GATHER {
                    write.write_all(&data).await?;
                    *sent += data.len() as u64;
                    activity.touch();
                    continue;
                } else {
                    pending.extend_from_slice(&data);
                }
                if pending.len() >= WRITE_GATHER {
                    write.write_all(&pending).await?;
                    *sent += pending.len() as u64;
                    activity.touch();
                    pending.clear();
                }
            }
        }
    }
    if out == Out::Chunked {
        headwall_http::write_last_chunk(&mut pending);
    }
    if !pending.is_empty() {
        write.write_all(&pending).await?;
        *sent += pending.len() as u64;
        activity.touch();
    }
    Ok(out != Out::ToClose)
}
