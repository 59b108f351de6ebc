//! Sending one request through a gateway, byte for byte, from a chosen source address.
//!
//! Raw bytes on purpose: a probe must be able to send header spellings that HTTP libraries
//! normalise away (`X_MSISDN`, mixed case, duplicates), because clients in the wild do.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// What came back from one probe request.
#[derive(Debug, Clone)]
pub struct ProbeResponse {
    /// The status code.
    pub status: u16,
    /// Response headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// Sends `request` (a complete HTTP/1.1 request head and body, which should carry
/// `Connection: close`) to `gateway` from `source` (any local address when `None`), and reads
/// the response until the connection closes or `deadline` passes.
pub async fn send_raw(
    gateway: SocketAddr,
    source: Option<IpAddr>,
    request: &[u8],
    deadline: Duration,
) -> std::io::Result<ProbeResponse> {
    send_on(probe_socket(gateway, source)?, gateway, request, deadline).await
}

/// A socket to reach `gateway` from, bound to `source` (port chosen by the kernel) when given:
/// its `local_addr()` is known before it connects, which is how the gateway tells the canary's
/// own connections apart.
pub fn probe_socket(gateway: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpSocket> {
    let socket = if gateway.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    Ok(socket)
}

/// [`send_raw`] on a socket made by [`probe_socket`].
pub async fn send_on(
    socket: TcpSocket,
    gateway: SocketAddr,
    request: &[u8],
    deadline: Duration,
) -> std::io::Result<ProbeResponse> {
    let exchange = async {
        let mut stream = socket.connect(gateway).await?;
        stream.write_all(request).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse_response(&raw)
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "probe timed out"))?
}

/// A `GET` of `url` (absolute-form) through a proxy with `headers` added verbatim.
pub fn proxy_get(url: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let mut request = format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    request.into_bytes()
}

/// Sends one `GET check_url` through the gateway at `proxy` (from `source` when given) and reads
/// the leak-check API's verdict: the canary's and `headwall probe`'s one mechanism. `check_url`
/// is an `http://` URL of a `headwall leakcheck` API endpoint (`…/api/v1/check`). Errors say
/// what went wrong without echoing any header value.
pub async fn check_through(
    proxy: SocketAddr,
    source: Option<IpAddr>,
    check_url: &str,
    deadline: Duration,
) -> Result<crate::Report, String> {
    let socket = probe_socket(proxy, source)
        .map_err(|error| format!("no socket to reach the gateway at {proxy} from: {error}"))?;
    check_on(socket, proxy, check_url, deadline).await
}

/// [`check_through`] on a socket made by [`probe_socket`].
pub async fn check_on(
    socket: TcpSocket,
    proxy: SocketAddr,
    check_url: &str,
    deadline: Duration,
) -> Result<crate::Report, String> {
    if !check_url.starts_with("http://") {
        return Err(format!(
            "{check_url}: the check URL must be http:// (plain HTTP is what gets enriched)"
        ));
    }
    let response = send_on(socket, proxy, &proxy_get(check_url, &[]), deadline)
        .await
        .map_err(|error| format!("no answer through the gateway at {proxy}: {error}"))?;
    if response.status != 200 {
        return Err(format!(
            "{check_url} answered {} through the gateway (expected 200 from a leak-check API)",
            response.status
        ));
    }
    serde_json::from_slice(&response.body).map_err(|_| {
        format!("{check_url} did not answer with a leak-check report; point it at …/api/v1/check")
    })
}

fn parse_response(raw: &[u8]) -> std::io::Result<ProbeResponse> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no complete response head"))?;
    let head =
        std::str::from_utf8(&raw[..end]).map_err(|_| invalid("response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| invalid("bad chunked body"))?;
    }
    Ok(ProbeResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_response() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"abcde");
    }

    #[test]
    fn builds_absolute_form_request() {
        let request = proxy_get("http://a.test:81/x", &[("X_Msisdn", "1")]);
        let text = String::from_utf8(request).unwrap();
        assert!(text.starts_with("GET http://a.test:81/x HTTP/1.1\r\nHost: a.test:81\r\n"));
        assert!(text.contains("X_Msisdn: 1\r\n"));
    }
}
