//! Bench-only spike, not part of headwall and never shipped: the cheapest forward proxy for the
//! benchmark's job that we know how to write on tokio without hyper. It answers one question for
//! issue 7: how close to nginx's CPU per request can a hand-written tokio data plane get on the
//! bench rig? Its cost is the floor that a data plane rewrite could reach before adding what
//! headwall must do on top (session lookup, policy, audit, pinning, CONNECT, the rest of HTTP).
//!
//! It does exactly bench/run's job and nothing else: absolute-form requests with `Content-Length`
//! bodies (or none), a static host → address table, any `X-MSISDN` removed, `X-MSISDN: NUMBER`
//! inserted for one host, one upstream connection per client connection, responses framed by
//! `Content-Length`. Anything else closes the connection. bench/run verifies what the origin
//! receives through it before measuring, as for every peer.
//!
//! ```text
//! floor LISTEN PARTNER_HOST=IP OTHER_HOST=IP NUMBER
//! ```

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

struct Job {
    /// (host, address); the first host is the partner.
    routes: Vec<(String, IpAddr)>,
    number: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, partner, other, number] = args.as_slice() else {
        return Err("usage: floor LISTEN PARTNER_HOST=IP OTHER_HOST=IP NUMBER".into());
    };
    let listen: SocketAddr = listen.parse()?;
    let mut routes = Vec::new();
    for route in [partner, other] {
        let (host, ip) = route.split_once('=').ok_or("a route is HOST=IP")?;
        routes.push((host.to_ascii_lowercase(), ip.parse()?));
    }
    let job = Rc::new(Job {
        routes,
        number: number.clone(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(listen).await?;
        println!("floor ready on {}", listener.local_addr()?);
        loop {
            let (client, _) = listener.accept().await?;
            let _ = client.set_nodelay(true);
            let job = job.clone();
            tokio::task::spawn_local(async move {
                // A failed connection just closes: this is a measuring stick, not a gateway.
                let _ = serve(client, &job).await;
            });
        }
    })
}

/// Bytes read but not yet used, in one buffer that is compacted before it is refilled.
struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Input {
    fn new() -> Input {
        Input {
            buf: vec![0; MAX_HEAD],
            start: 0,
            end: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more; false at end of stream.
    async fn fill(&mut self, from: &mut TcpStream) -> std::io::Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(std::io::Error::other("head too large"));
        }
        let n = from.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n > 0)
    }
}

fn bad(what: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

fn content_length(headers: &[httparse::Header<'_>]) -> std::io::Result<usize> {
    let mut length = 0;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("transfer-encoding is outside the floor's job"));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(bad("bad content-length"))?;
        }
    }
    Ok(length)
}

fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "trailer",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

async fn serve(mut client: TcpStream, job: &Job) -> std::io::Result<()> {
    let mut input = Input::new();
    let mut upstream: Option<(IpAddr, TcpStream, Input)> = None;
    let mut out = Vec::with_capacity(4096);
    loop {
        // The request head.
        let (head_len, body_len, ip) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(input.data()).map_err(|_| bad("bad request"))? {
                httparse::Status::Complete(head_len) => {
                    let (method, target) = (req.method.unwrap_or("GET"), req.path.unwrap_or("/"));
                    let rest = target
                        .strip_prefix("http://")
                        .ok_or(bad("not absolute-form"))?;
                    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                    let host = authority.split(':').next().unwrap_or(authority);
                    let route = job
                        .routes
                        .iter()
                        .position(|(h, _)| h.eq_ignore_ascii_case(host))
                        .ok_or(bad("unknown host"))?;
                    let port: u16 = match authority.split_once(':') {
                        Some((_, p)) => p.parse().map_err(|_| bad("bad port"))?,
                        None => 80,
                    };
                    let body_len = content_length(req.headers)?;
                    out.clear();
                    out.extend_from_slice(method.as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(if path.is_empty() {
                        b"/"
                    } else {
                        path.as_bytes()
                    });
                    out.extend_from_slice(b" HTTP/1.1\r\n");
                    for h in req.headers.iter() {
                        if h.name.eq_ignore_ascii_case("x-msisdn") || hop_by_hop(h.name) {
                            continue;
                        }
                        out.extend_from_slice(h.name.as_bytes());
                        out.extend_from_slice(b": ");
                        out.extend_from_slice(h.value);
                        out.extend_from_slice(b"\r\n");
                    }
                    if route == 0 {
                        out.extend_from_slice(b"X-MSISDN: ");
                        out.extend_from_slice(job.number.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                    break (
                        head_len,
                        body_len,
                        SocketAddr::new(job.routes[route].1, port),
                    );
                }
                httparse::Status::Partial => {
                    if !input.fill(&mut client).await? {
                        return Ok(());
                    }
                }
            }
        };
        input.consume(head_len);

        // The upstream connection: kept while requests go to the same address.
        let reuse = matches!(&upstream, Some((a, _, _)) if *a == ip.ip());
        if !reuse {
            let stream = TcpStream::connect(ip).await?;
            stream.set_nodelay(true)?;
            upstream = Some((ip.ip(), stream, Input::new()));
        }
        let Some((_, up, up_input)) = upstream.as_mut() else {
            return Err(bad("no upstream"));
        };

        // The request body: what is buffered goes with the head in one write.
        let mut left = body_len;
        let have = left.min(input.data().len());
        out.extend_from_slice(&input.data()[..have]);
        input.consume(have);
        left -= have;
        up.write_all(&out).await?;
        while left > 0 {
            if !input.fill(&mut client).await? {
                return Err(bad("client closed mid-body"));
            }
            let have = left.min(input.data().len());
            up.write_all(&input.data()[..have]).await?;
            input.consume(have);
            left -= have;
        }

        // The response head, rebuilt without hop-by-hop headers, and its body.
        let (head_len, body_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp
                .parse(up_input.data())
                .map_err(|_| bad("bad response"))?
            {
                httparse::Status::Complete(head_len) => {
                    let body_len = content_length(resp.headers)?;
                    out.clear();
                    out.extend_from_slice(b"HTTP/1.1 ");
                    let (code, reason) = (resp.code.unwrap_or(502), resp.reason.unwrap_or(""));
                    write!(out, "{code} {reason}\r\n")?;
                    for h in resp.headers.iter().filter(|h| !hop_by_hop(h.name)) {
                        out.extend_from_slice(h.name.as_bytes());
                        out.extend_from_slice(b": ");
                        out.extend_from_slice(h.value);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                    break (head_len, body_len);
                }
                httparse::Status::Partial => {
                    if !up_input.fill(up).await? {
                        return Err(bad("upstream closed"));
                    }
                }
            }
        };
        up_input.consume(head_len);
        let mut left = body_len;
        let have = left.min(up_input.data().len());
        out.extend_from_slice(&up_input.data()[..have]);
        up_input.consume(have);
        left -= have;
        client.write_all(&out).await?;
        while left > 0 {
            if !up_input.fill(up).await? {
                return Err(bad("upstream closed mid-body"));
            }
            let have = left.min(up_input.data().len());
            client.write_all(&up_input.data()[..have]).await?;
            up_input.consume(have);
            left -= have;
        }
    }
}
