//! Bench-only spike, not part of headwall and never shipped: examples/floor.rs's job done the way
//! headwall's data plane does it — hyper's `server::conn::http1` for the client, hyper's
//! `client::conn::http1` (its connection driven by its own task) for the upstream, bodies passed
//! through as hyper's `Incoming` — with nothing else: no session, policy, audit, pool or limits.
//! Measured beside examples/floor.rs and headwall, it splits headwall's CPU per request into what
//! hyper costs and what headwall adds on top (issue 7).
//!
//! ```text
//! floor_hyper LISTEN PARTNER_HOST=IP OTHER_HOST=IP NUMBER
//! ```

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Job {
    /// (host, address); the first host is the partner.
    routes: Vec<(String, IpAddr)>,
    number: HeaderValue,
}

static X_MSISDN: HeaderName = HeaderName::from_static("x-msisdn");

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, partner, other, number] = args.as_slice() else {
        return Err("usage: floor_hyper LISTEN PARTNER_HOST=IP OTHER_HOST=IP NUMBER".into());
    };
    let listen: SocketAddr = listen.parse()?;
    let mut routes = Vec::new();
    for route in [partner, other] {
        let (host, ip) = route.split_once('=').ok_or("a route is HOST=IP")?;
        routes.push((host.to_ascii_lowercase(), ip.parse()?));
    }
    let job = Rc::new(Job {
        routes,
        number: HeaderValue::from_str(number)?,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(listen).await?;
        println!("floor_hyper ready on {}", listener.local_addr()?);
        loop {
            let (client, _) = listener.accept().await?;
            let _ = client.set_nodelay(true);
            let job = job.clone();
            tokio::task::spawn_local(serve(client, job));
        }
    })
}

type Upstream = Rc<RefCell<Option<(IpAddr, SendRequest<Incoming>)>>>;

async fn serve(client: TcpStream, job: Rc<Job>) {
    let upstream: Upstream = Rc::new(RefCell::new(None));
    let service = hyper::service::service_fn(move |request| {
        let (job, upstream) = (job.clone(), upstream.clone());
        async move {
            Ok::<_, std::convert::Infallible>(match forward(&job, &upstream, request).await {
                Ok(response) => response.map(Either::Left),
                Err(_) => {
                    let mut response = Response::new(Either::Right(Empty::<Bytes>::new()));
                    *response.status_mut() = StatusCode::BAD_GATEWAY;
                    response
                }
            })
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(client), service)
        .await;
}

async fn forward(
    job: &Job,
    upstream: &Upstream,
    mut request: Request<Incoming>,
) -> Result<Response<Incoming>, Error> {
    let uri = request.uri();
    let host = uri.host().ok_or("not absolute-form")?;
    let route = job
        .routes
        .iter()
        .position(|(h, _)| h.eq_ignore_ascii_case(host))
        .ok_or("unknown host")?;
    let addr = SocketAddr::new(job.routes[route].1, uri.port_u16().unwrap_or(80));
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = Uri::try_from(path)?;
    let headers = request.headers_mut();
    headers.remove(&X_MSISDN);
    if route == 0 {
        headers.insert(X_MSISDN.clone(), job.number.clone());
    }
    let held = upstream.borrow_mut().take();
    let mut sender = match held {
        Some((ip, sender)) if ip == addr.ip() && !sender.is_closed() => sender,
        _ => {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::task::spawn_local(connection);
            sender
        }
    };
    sender.ready().await?;
    let response = sender.send_request(request).await;
    *upstream.borrow_mut() = Some((addr.ip(), sender));
    Ok(response?)
}
