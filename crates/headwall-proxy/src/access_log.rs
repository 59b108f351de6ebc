//! The access log (`[access_log]`): one JSON line per request on the proxy listeners.
//!
//! A line names what happened to a request — listener, client address, method, host, port,
//! path without its query, status, outcome, partner, bytes and duration — and its
//! `request_id`, the id the audit record of a disclosure carries, so that the two can be
//! joined. It never holds a header value, a query string, a number or a token: the audit log
//! is the one place identity is written (docs/design.md, Operations).
//!
//! Lines are formatted on the data plane and written by a thread of their own, so a slow disk
//! never holds a request. The queue between them is bounded: when it is full a line is
//! dropped and counted (`headwall_access_log_dropped_total`), never waited for.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use std::time::Instant;

use http::Method;
use serde::Serialize;

use crate::gateway::Gateway;
use crate::metrics::{Listener, Outcome};

/// Lines waiting for the writer thread at most; more are dropped.
const QUEUE: usize = 65_536;

use headwall_policy::AccessLog as Target;

/// The handle the gateway writes lines to. Cheap to share; the writer thread ends when the
/// last handle is dropped, after writing what it was sent.
#[derive(Clone)]
pub struct AccessLog {
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

enum Message {
    Line(String),
    /// Close and open the file again (SIGHUP, after logrotate moved it).
    Reopen,
}

/// One request as the access log shows it (docs/operations.md, "Access log").
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    request_id: Option<&'a str>,
    listener: &'static str,
    client: SocketAddr,
    method: Option<&'a str>,
    host: Option<&'a str>,
    port: Option<u16>,
    path: Option<&'a str>,
    status: u16,
    outcome: &'static str,
    partner: Option<&'a str>,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
}

/// A request's line while it is served: the steps fill in what they learn, and the line is
/// written when the entry is dropped — after the response, or wherever the exchange ended.
pub(crate) struct Entry {
    log: AccessLog,
    started: Instant,
    time_ms: i64,
    listener: Listener,
    client: SocketAddr,
    /// The id a disclosure of this request is recorded with.
    pub(crate) request_id: String,
    pub(crate) method: Option<Method>,
    pub(crate) path: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) partner: Option<String>,
    pub(crate) status: u16,
    pub(crate) outcome: Outcome,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

impl Entry {
    /// An entry for a request whose head was just read; `None` when the log is off.
    pub(crate) fn start(gateway: &Gateway, listener: Listener, client: SocketAddr) -> Option<Self> {
        let log = gateway.access_log()?.clone();
        Some(Entry {
            log,
            started: Instant::now(),
            time_ms: headwall_audit::time::now_ms(),
            listener,
            client,
            request_id: gateway.next_request_id(),
            method: None,
            path: None,
            host: None,
            port: None,
            partner: None,
            status: 0,
            outcome: Outcome::BadRequest,
            bytes_in: 0,
            bytes_out: 0,
        })
    }

    /// The method, and the path without its query; for CONNECT, the host and port it names
    /// (other requests' targets are filled in by `forward` once it has read them).
    pub(crate) fn request<B>(&mut self, request: &http::Request<B>) {
        self.method = Some(request.method().clone());
        let uri = request.uri();
        if request.method() == Method::CONNECT {
            self.host = uri.host().map(str::to_ascii_lowercase);
            self.port = uri.port_u16();
        } else if !uri.path().is_empty() {
            self.path = Some(uri.path().to_owned());
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let line = Line {
            time: headwall_audit::time::format_rfc3339(self.time_ms),
            request_id: Some(&self.request_id),
            listener: self.listener.as_str(),
            client: self.client,
            method: self.method.as_ref().map(Method::as_str),
            host: self.host.as_deref(),
            port: self.port,
            path: self.path.as_deref(),
            status: self.status,
            outcome: self.outcome.as_str(),
            partner: self.partner.as_deref(),
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            duration_ms: (self.started.elapsed().as_micros() as f64) / 1000.0,
        };
        self.log.write(&line);
    }
}

impl AccessLog {
    /// Opens where `[access_log]` says lines go (a file is created owner-only and appended
    /// to) and starts the writer.
    pub fn open(target: &Target) -> io::Result<AccessLog> {
        let mut sink = Sink::open(target)?;
        let (queue, lines) = std::sync::mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("headwall-access-log".into())
            .spawn(move || sink.run(&lines))?;
        Ok(AccessLog {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Asks the writer to open its file again (a no-op for standard error).
    pub fn reopen(&self) {
        let _ = self.queue.send(Message::Reopen);
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn write(&self, line: &Line<'_>) {
        let Ok(mut text) = serde_json::to_string(line) else {
            return;
        };
        text.push('\n');
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(Message::Line(text))
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer thread's end: the open file (or standard error) and how to open it again.
struct Sink {
    path: Option<PathBuf>,
    out: Box<dyn Write + Send>,
}

impl Sink {
    fn open(target: &Target) -> io::Result<Sink> {
        match target {
            Target::Stderr => Ok(Sink {
                path: None,
                out: Box::new(io::stderr()),
            }),
            Target::File(path) => Ok(Sink {
                out: Box::new(io::BufWriter::new(open_file(path)?)),
                path: Some(path.clone()),
            }),
        }
    }

    /// Writes lines as they come; flushes whenever the queue is empty, so a line is on disk
    /// (in the page cache) a moment after its request, and a burst costs one write.
    fn run(&mut self, lines: &Receiver<Message>) {
        while let Ok(message) = lines.recv() {
            self.take(message);
            while let Ok(message) = lines.try_recv() {
                self.take(message);
            }
            let _ = self.out.flush();
        }
        let _ = self.out.flush();
    }

    fn take(&mut self, message: Message) {
        match message {
            Message::Line(text) => {
                if let Err(error) = self.out.write_all(text.as_bytes()) {
                    WRITE_FAILED.run(|| {
                        tracing::warn!(%error, "access log write failed; lines are lost until it works again");
                    });
                }
            }
            Message::Reopen => {
                let _ = self.out.flush();
                if let Some(path) = &self.path {
                    match open_file(path) {
                        Ok(file) => self.out = Box::new(io::BufWriter::new(file)),
                        Err(error) => tracing::warn!(
                            path = %path.display(),
                            %error,
                            "access log could not be opened again; still writing to the old file"
                        ),
                    }
                }
            }
        }
    }
}

static WRITE_FAILED: headwall_audit::LogLimit = headwall_audit::LogLimit::new();

/// Client addresses are personal data: the file is the owner's only.
fn open_file(path: &std::path::Path) -> io::Result<File> {
    if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}
