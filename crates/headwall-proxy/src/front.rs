//! Who a connection is from and where it was going, before any HTTP is read: the PROXY protocol
//! v2 header from a trusted load balancer, and `SO_ORIGINAL_DST` for intercepted traffic.

use std::net::SocketAddr;
use std::time::Duration;

use proxy_header::{ParseConfig, ProxyHeader};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::forward::Front;
use crate::gateway::GatewaySettings;
use crate::metrics::Listener;

/// The fixed part of a v2 header: 12-byte signature, version/command, family, length.
const V2_FIXED: usize = 16;
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v2 header larger than this is refused (addresses plus generous TLVs).
const V2_MAX: usize = 1024;

/// Why a connection is closed before any HTTP is read (a fixed set: counted and logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// PROXY protocol is on and the peer is not in `proxy_protocol_from`.
    UntrustedProxy,
    /// PROXY protocol is on and no valid v2 header arrived in time.
    BadProxyHeader,
    /// The transparent listener got a connection the kernel did not redirect.
    NotRedirected,
}

impl Refusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::UntrustedProxy => "PROXY protocol connection from an untrusted source",
            Refusal::BadProxyHeader => "no valid PROXY protocol v2 header",
            Refusal::NotRedirected => {
                "connection to the transparent listener was not redirected (no original destination)"
            }
        }
    }
}

/// The client's address and the request's front door for one accepted connection.
pub(crate) async fn identify(
    settings: &GatewaySettings,
    stream: &mut TcpStream,
    peer: SocketAddr,
    kind: Listener,
) -> Result<(SocketAddr, Front), Refusal> {
    let peer = canonical(peer);
    let (client, proxied_destination) = if settings.proxy_protocol {
        let peer_ip = peer.ip();
        if !settings
            .proxy_protocol_from
            .iter()
            .any(|net| net.contains(&peer_ip))
        {
            return Err(Refusal::UntrustedProxy);
        }
        match read_v2(stream, settings.header_read_timeout).await {
            // PROXY with addresses: the subscriber and where they were going.
            Some(Some((source, destination))) => (source, Some(destination)),
            // LOCAL (the balancer's own health check): the balancer is the client.
            Some(None) => (peer, None),
            None => return Err(Refusal::BadProxyHeader),
        }
    } else {
        (peer, None)
    };
    let front = match kind {
        Listener::Explicit => Front::Explicit,
        Listener::Transparent => {
            let original = match proxied_destination {
                Some(destination) => destination,
                None => original_destination(stream)
                    .map(canonical)
                    .ok_or(Refusal::NotRedirected)?,
            };
            // Not redirected: the "original" destination is this listener itself.
            if stream
                .local_addr()
                .is_ok_and(|local| canonical(local) == original)
            {
                return Err(Refusal::NotRedirected);
            }
            Front::Transparent { original }
        }
    };
    Ok((client, front))
}

/// Reads exactly one v2 header (never a byte of the HTTP that follows). `Some(None)` is a LOCAL
/// header; `None` is anything invalid, oversized, v1, or too slow.
async fn read_v2(
    stream: &mut TcpStream,
    deadline: Duration,
) -> Option<Option<(SocketAddr, SocketAddr)>> {
    let read = async {
        let mut buffer = vec![0u8; V2_FIXED];
        stream.read_exact(&mut buffer).await.ok()?;
        let length = proxy_v2_length(&buffer)?;
        buffer.resize(length, 0);
        stream.read_exact(&mut buffer[V2_FIXED..]).await.ok()?;
        parse_proxy_v2(&buffer)
    };
    tokio::time::timeout(deadline, read).await.ok().flatten()
}

/// The whole length of the PROXY v2 header whose fixed 16-byte part `fixed` is, or `None`
/// when it is not a v2 signature or announces more than the gateway accepts.
pub fn proxy_v2_length(fixed: &[u8]) -> Option<usize> {
    if fixed.len() < V2_FIXED || fixed[..12] != V2_SIGNATURE {
        return None;
    }
    let length = V2_FIXED + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    (length <= V2_MAX).then_some(length)
}

/// Parses one complete PROXY v2 header, exactly `header.len()` bytes long: `Some(Some((source,
/// destination)))` for PROXY with addresses (canonical: an IPv4-mapped address is the IPv4
/// address), `Some(None)` for LOCAL, `None` for anything else (v1, bad signature, trailing or
/// missing bytes, oversized). Pure, for the listener and the fuzzer alike.
pub fn parse_proxy_v2(header: &[u8]) -> Option<Option<(SocketAddr, SocketAddr)>> {
    if proxy_v2_length(header)? != header.len() {
        return None;
    }
    let config = ParseConfig {
        include_tlvs: false,
        allow_v1: false,
        allow_v2: true,
    };
    let (parsed, used) = ProxyHeader::parse(header, config).ok()?;
    if used != header.len() {
        return None;
    }
    Some(
        parsed
            .proxied_address()
            .map(|address| (canonical(address.source), canonical(address.destination))),
    )
}

/// `addr` with an IPv4-mapped IPv6 address (`[::ffff:192.0.2.5]:p`, as a dual-stack socket
/// reports an IPv4 peer) turned into the IPv4 address: one address, one spelling, everywhere
/// (docs/design.md, RADIUS accounting: addresses are canonical).
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// `SO_ORIGINAL_DST` (IPv4) or `IP6T_SO_ORIGINAL_DST` (IPv6) of a redirected connection.
fn original_destination(stream: &TcpStream) -> Option<SocketAddr> {
    let socket = socket2::SockRef::from(stream);
    let local = stream.local_addr().ok()?;
    let original = if local.is_ipv4() {
        socket.original_dst_v4()
    } else {
        socket
            .original_dst_v6()
            .or_else(|_| socket.original_dst_v4())
    };
    original.ok()?.as_socket()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proxy_header::ProxiedAddress;
    use tokio::io::AsyncWriteExt;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn header(source: &str, destination: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        ProxyHeader::with_address(ProxiedAddress::stream(
            source.parse().unwrap(),
            destination.parse().unwrap(),
        ))
        .encode_v2(&mut bytes)
        .unwrap();
        bytes
    }

    #[tokio::test]
    async fn reads_exactly_the_header_and_leaves_the_request() {
        let (mut client, mut server) = pair().await;
        let mut sent = header("10.0.0.5:40000", "192.0.2.7:80");
        sent.extend_from_slice(b"GET / HTTP/1.1\r\n");
        client.write_all(&sent).await.unwrap();
        let read = read_v2(&mut server, Duration::from_secs(2)).await;
        assert_eq!(
            read,
            Some(Some((
                "10.0.0.5:40000".parse().unwrap(),
                "192.0.2.7:80".parse().unwrap()
            )))
        );
        let mut rest = [0u8; 16];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn truncated_and_wrongly_signed_headers_are_refused() {
        let valid = header("10.0.0.5:40000", "192.0.2.7:80");
        let mut wrong_signature = valid.clone();
        wrong_signature[3] ^= 0xff;
        let mut wrong_version = valid.clone();
        wrong_version[12] = 0x11; // version 1 in the v2 framing
        let truncated = valid[..valid.len() - 4].to_vec();
        let mut overlong = valid.clone();
        overlong[14..16].copy_from_slice(&2000u16.to_be_bytes());
        for sent in [wrong_signature, wrong_version, truncated, overlong] {
            let (mut client, mut server) = pair().await;
            client.write_all(&sent).await.unwrap();
            assert_eq!(read_v2(&mut server, Duration::from_millis(200)).await, None);
        }
    }

    #[tokio::test]
    async fn v1_garbage_and_silence_are_refused() {
        for sent in [
            b"PROXY TCP4 10.0.0.5 192.0.2.7 40000 80\r\n".to_vec(),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Vec::new(),
        ] {
            let (mut client, mut server) = pair().await;
            client.write_all(&sent).await.unwrap();
            assert_eq!(read_v2(&mut server, Duration::from_millis(200)).await, None);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_after_the_signature_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let (mut client, mut server) = pair().await;
                let mut sent = V2_SIGNATURE.to_vec();
                sent.extend_from_slice(&tail);
                client.write_all(&sent).await.unwrap();
                drop(client);
                let _ = read_v2(&mut server, Duration::from_millis(200)).await;
            });
        }
    }
}
