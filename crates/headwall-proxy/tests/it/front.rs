//! The transparent listener and PROXY protocol v2 on real sockets. Without a kernel redirect on
//! loopback, the transparent listener's original destination comes from the PROXY header here;
//! `SO_ORIGINAL_DST` itself is tested in network namespaces by the binary's tests.

use std::net::SocketAddr;
use std::time::Duration;

use proxy_header::{ProxiedAddress, ProxyHeader};

use crate::harness::{SUBSCRIBER, assert_no_identity, only, start, subscriber_ip};

fn v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut bytes = Vec::new();
    ProxyHeader::with_address(ProxiedAddress::stream(source, destination))
        .encode_v2(&mut bytes)
        .unwrap();
    bytes
}

/// Sends `prefix` then `request` to `listener` from `from`; `None` when the gateway closed the
/// connection without an answer.
async fn send(
    listener: SocketAddr,
    from: std::net::IpAddr,
    prefix: &[u8],
    request: &[u8],
) -> Option<headwall_testkit::ProbeResponse> {
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(request);
    headwall_testkit::send_raw(listener, Some(from), &bytes, Duration::from_secs(5))
        .await
        .ok()
}

fn origin_form(host: &str) -> Vec<u8> {
    format!("GET /page HTTP/1.1\r\nHost: {host}\r\nX-MSISDN: 000\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

const TRUSTED: &str = "proxy_protocol = true\nproxy_protocol_from = [\"127.0.0.1/32\"]";

#[tokio::test]
async fn proxy_header_names_the_subscriber_on_the_explicit_listener() {
    let h = start(TRUSTED).await;
    let subscriber = SocketAddr::new(subscriber_ip(), 40000);
    let header = v2(subscriber, h.proxy);
    let request = headwall_testkit::proxy_get(&h.agecheck_url(), &[]);
    let response = send(h.proxy, "127.0.0.1".parse().unwrap(), &header, &request)
        .await
        .expect("answered");
    assert_eq!(response.status, 200);
    // The balancer (127.0.0.1) is unbound; the subscriber in the header is bound: enriched.
    assert_eq!(only(&h.agecheck).header_values("x-age-verified"), ["true"]);
}

#[tokio::test]
async fn untrusted_balancers_and_missing_headers_are_closed() {
    let h = start(TRUSTED).await;
    let header = v2(SocketAddr::new(subscriber_ip(), 40000), h.proxy);
    let request = headwall_testkit::proxy_get(&h.agecheck_url(), &[]);
    // From an address not in proxy_protocol_from, even with a valid header.
    let untrusted = send(h.proxy, "127.0.0.7".parse().unwrap(), &header, &request).await;
    assert!(untrusted.is_none(), "{untrusted:?}");
    // From the trusted balancer without a header (plain HTTP first).
    let bare = send(h.proxy, "127.0.0.1".parse().unwrap(), &[], &request).await;
    assert!(bare.is_none(), "{bare:?}");
    assert!(h.agecheck.take().is_empty(), "nothing reached the partner");
    assert_eq!(
        h.gateway.metrics().requests(
            headwall_proxy::Listener::Explicit,
            headwall_proxy::Outcome::Refused
        ),
        2
    );
}

#[tokio::test]
async fn transparent_goes_to_the_original_destination_and_pins_by_it() {
    let h = start(TRUSTED).await;
    let subscriber = SocketAddr::new(subscriber_ip(), 40000);
    let lb = "127.0.0.1".parse().unwrap();

    // Origin-form to the partner's real address: enriched, Host left as sent.
    let header = v2(subscriber, h.agecheck.addr());
    let response = send(
        h.transparent,
        lb,
        &header,
        &origin_form("verify.agecheck.test"),
    )
    .await
    .expect("answered");
    assert_eq!(response.status, 200);
    let got = only(&h.agecheck);
    assert_eq!(got.target, "/page");
    assert_eq!(got.header("host"), Some("verify.agecheck.test"));
    assert_eq!(got.header_values("x-age-verified"), ["true"]);
    assert!(got.header("x-msisdn").is_none(), "spoof stripped");

    // A client naming the partner in Host while going somewhere else gets nothing there.
    let header = v2(subscriber, h.website.addr());
    send(
        h.transparent,
        lb,
        &header,
        &origin_form("verify.agecheck.test"),
    )
    .await
    .expect("answered");
    let got = only(&h.website);
    assert_no_identity(&got);
    assert!(!got.headers.iter().any(|(_, v)| v.contains(SUBSCRIBER)));
    assert_eq!(h.gateway.metrics().pinning_mismatches(), 1);
    assert_eq!(
        h.gateway.metrics().requests(
            headwall_proxy::Listener::Transparent,
            headwall_proxy::Outcome::Enriched
        ),
        1
    );
}

#[tokio::test]
async fn transparent_without_a_redirect_is_refused() {
    let h = start("").await;
    // Straight to the transparent listener on loopback: no original destination.
    let response = send(
        h.transparent,
        subscriber_ip(),
        &[],
        &origin_form("verify.agecheck.test"),
    )
    .await;
    assert!(response.is_none(), "{response:?}");
    assert!(h.agecheck.take().is_empty());
}

/// Issue 14, defect 5, intercepted traffic: a Host whose port is not a port is a 400, and the
/// partner at the original destination receives nothing.
#[tokio::test]
async fn transparent_host_with_an_unparsable_port_is_a_400() {
    let h = start(TRUSTED).await;
    let subscriber = SocketAddr::new(subscriber_ip(), 40000);
    let lb = "127.0.0.1".parse().unwrap();
    for host in ["verify.agecheck.test:8a", "verify.agecheck.test:99999"] {
        let header = v2(subscriber, h.agecheck.addr());
        let response = send(h.transparent, lb, &header, &origin_form(host))
            .await
            .expect("answered");
        assert_eq!(response.status, 400, "Host: {host}");
    }
    assert!(
        h.agecheck.take().is_empty(),
        "the partner received a request"
    );
    assert!(h.disclosures().is_empty());
}
