//! HTTP/1.1 over TLS by hand: one request written, one response read by its
//! `Content-Length` (the server is hyper, which frames every answer it gives this way).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::Failure;

/// Heads larger than this are refused (the server's are a few hundred bytes).
const MAX_HEAD: usize = 16 * 1024;
/// Bodies larger than this are refused (a token answer is about 1.5 KiB).
const MAX_BODY: usize = 64 * 1024;

/// One answer.
pub(crate) struct Response {
    pub(crate) status: u16,
    /// Header names lower-cased, values trimmed.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The server said it closes the connection after this answer.
    pub(crate) fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// What the TLS handshake agreed, for the report.
pub(crate) struct Negotiated {
    pub(crate) version: String,
    pub(crate) suite: String,
    pub(crate) group: String,
    pub(crate) alpn: String,
}

/// One TLS connection and the bytes read past the last answer.
pub(crate) struct Conn {
    tls: TlsStream<TcpStream>,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Conn {
    /// TCP from `source` (port chosen by the kernel) to `api`, then the TLS handshake.
    pub(crate) async fn open(
        api: SocketAddr,
        source: IpAddr,
        name: &ServerName<'static>,
        config: &Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<Conn, Failure> {
        let open = async {
            let socket = match source {
                IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .map_err(|e| Failure::io("connect: socket", &e))?;
            // The server closes first (Connection: close), so TIME_WAIT is on its side; this
            // only keeps a busy source address from running out of bindable ports.
            let _ = socket.set_reuseaddr(true);
            socket
                .bind(SocketAddr::new(source, 0))
                .map_err(|e| Failure::io("connect: bind", &e))?;
            let tcp = socket
                .connect(api)
                .await
                .map_err(|e| Failure::io("connect", &e))?;
            let _ = tcp.set_nodelay(true);
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| Failure::io("tls handshake", &e))?;
            Ok(Conn {
                tls,
                buf: Vec::with_capacity(4096),
                timeout,
            })
        };
        tokio::time::timeout(timeout, open)
            .await
            .unwrap_or_else(|_| Err(Failure::new("timeout: connect + tls handshake", "")))
    }

    pub(crate) fn negotiated(&self) -> Negotiated {
        let (_, session) = self.tls.get_ref();
        Negotiated {
            version: session
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            suite: session
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            group: session
                .negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name()))
                .unwrap_or_default(),
            alpn: session
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
        }
    }

    /// Writes `request` and reads one answer, within the request timeout.
    pub(crate) async fn exchange(&mut self, request: &[u8]) -> Result<Response, Failure> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.exchange_inner(request))
            .await
            .unwrap_or_else(|_| Err(Failure::new("timeout: no complete answer", "")))
    }

    async fn exchange_inner(&mut self, request: &[u8]) -> Result<Response, Failure> {
        self.tls
            .write_all(request)
            .await
            .map_err(|e| Failure::io("write", &e))?;
        self.tls
            .flush()
            .await
            .map_err(|e| Failure::io("write", &e))?;
        // The head.
        let mut searched = 0;
        let head_end = loop {
            if let Some(at) = find(&self.buf[searched..], b"\r\n\r\n") {
                break searched + at + 4;
            }
            searched = self.buf.len().saturating_sub(3);
            if self.buf.len() > MAX_HEAD {
                return Err(Failure::new("bad answer: head too large", ""));
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| Failure::new("bad answer: head not UTF-8", ""))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let (version, status) = (parts.next(), parts.next());
        if version != Some("HTTP/1.1") {
            return Err(Failure::new("bad answer: not HTTP/1.1", status_line));
        }
        let status: u16 = status
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Failure::new("bad answer: status line", status_line))?;
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| Failure::new("bad answer: header line", ""))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if response.header("transfer-encoding").is_some() {
            return Err(Failure::new(
                "bad answer: Transfer-Encoding instead of Content-Length",
                "",
            ));
        }
        let length = match response.header("content-length") {
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| Failure::new("bad answer: Content-Length", v))?,
            None if status == 204 || status == 304 || status < 200 => 0,
            None => return Err(Failure::new("bad answer: no Content-Length", "")),
        };
        if length > MAX_BODY {
            return Err(Failure::new("bad answer: body too large", ""));
        }
        while self.buf.len() < head_end + length {
            self.fill().await?;
        }
        response.body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Ok(response)
    }

    async fn fill(&mut self) -> Result<(), Failure> {
        self.buf.reserve(4096);
        match self.tls.read_buf(&mut self.buf).await {
            Ok(0) => Err(Failure::new(
                "closed by the server before a complete answer",
                "",
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(Failure::io("read", &e)),
        }
    }

    /// After a `Connection: close` answer: waits (bounded) for the server's close, so the
    /// server closes first and the client side keeps no TIME_WAIT.
    pub(crate) async fn wait_close(mut self) {
        let mut sink = [0u8; 512];
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(n) = self.tls.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #[test]
    fn find_finds_the_first_match() {
        assert_eq!(super::find(b"ab\r\n\r\ncd\r\n\r\n", b"\r\n\r\n"), Some(2));
        assert_eq!(super::find(b"ab\r\n\r", b"\r\n\r\n"), None);
    }
}
