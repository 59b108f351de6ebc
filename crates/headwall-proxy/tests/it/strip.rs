//! Spoofed identity headers never arrive, in any spelling, at partners or anyone else.

use crate::harness::{
    SUBSCRIBER, assert_no_identity, only, raw_origin, start, subscriber_ip, unbound_ip,
};

const FORGED: &str = "447700900999";

fn spoofs() -> Vec<(&'static str, &'static str)> {
    vec![
        ("X-MSISDN", FORGED),
        ("x_msisdn", FORGED),
        ("X_Msisdn", FORGED),
        ("MSISDN", FORGED),
        ("X-Up-Calling-Line-ID", FORGED),
        ("x_up_calling_line_id", FORGED),
        ("X-Nokia-MSISDN", FORGED),
        ("X-UIDH", FORGED),
        ("X-Subscriber-Id", "forged-pseudonym"),
        ("x_subscriber_id", "forged-pseudonym-2"),
        ("X-Age-Verified", "true"),
        ("X_AGE_VERIFIED", "true"),
        ("X-Billing-Token", "forged.token.value"),
        // Other punctuation: runs of non-alphanumerics are one `-` (issue 14).
        ("X.MSISDN", FORGED),
        ("X~MSISDN", FORGED),
        ("X__MSISDN", FORGED),
        ("X-MSISDN_", FORGED),
        ("X.Age.Verified", "true"),
    ]
}

#[tokio::test]
async fn website_never_sees_spoofed_identity() {
    let h = start("").await;
    h.get(subscriber_ip(), &h.website_url(), &spoofs()).await;
    let got = only(&h.website);
    assert_no_identity(&got);
    assert!(got.headers.iter().all(|(_, v)| !v.contains(FORGED)));
    assert_eq!(
        h.gateway.metrics().stripped_headers(),
        spoofs().len() as u64
    );
}

#[tokio::test]
async fn partner_gets_one_true_copy_of_each_header_despite_spoofs() {
    let h = start("").await;
    h.get(subscriber_ip(), &h.agecheck_url(), &spoofs()).await;
    let got = only(&h.agecheck);
    assert_eq!(got.header_values("x-subscriber-id").len(), 1);
    assert_ne!(got.header("x-subscriber-id"), Some("forged-pseudonym"));
    assert_eq!(got.header_values("x-age-verified"), ["true"]);
    assert!(
        got.headers.iter().all(|(_, v)| !v.contains(FORGED)),
        "{got:?}"
    );
    assert!(got.header("x-msisdn").is_none());
}

#[tokio::test]
async fn unbound_client_spoofing_to_partner_gets_nothing_through() {
    let h = start("").await;
    h.get(unbound_ip(), &h.billing_url(), &spoofs()).await;
    let got = only(&h.billing);
    assert_no_identity(&got);
    assert!(got.headers.iter().all(|(_, v)| !v.contains(FORGED)));
}

#[tokio::test]
async fn connection_header_cannot_remove_inserted_headers() {
    let h = start("").await;
    let headers = [
        (
            "Connection",
            "keep-alive, X-Age-Verified, X-Subscriber-Id, x-custom",
        ),
        ("x-custom", "1"),
    ];
    h.get(subscriber_ip(), &h.agecheck_url(), &headers).await;
    let got = only(&h.agecheck);
    assert_eq!(got.header_values("x-age-verified"), ["true"]);
    assert_eq!(got.header_values("x-subscriber-id").len(), 1);
    assert!(
        got.header("x-custom").is_none(),
        "Connection-listed header was forwarded"
    );
    assert!(
        got.header("connection")
            .is_none_or(|v| !v.to_ascii_lowercase().contains("x-age"))
    );
}

#[tokio::test]
async fn configured_extra_strip_names_are_removed() {
    // [strip] headers is tested through the policy; here: a partner header name is stripped
    // from requests to a website even though it is not on the built-in list.
    let h = start("").await;
    h.get(
        subscriber_ip(),
        &h.website_url(),
        &[("X-Billing-Token", "x"), ("X_Age_Verified", "true")],
    )
    .await;
    let got = only(&h.website);
    assert!(got.header("x-billing-token").is_none() && got.header("x-age-verified").is_none());
    assert!(!got.headers.iter().any(|(_, v)| v.contains(SUBSCRIBER)));
}

/// Trailers are headers too: a chunked request announcing `Trailer: X-MSISDN` and carrying a
/// forged number after its last chunk must not deliver it (an origin that merges trailers into
/// headers would believe it). The gateway drops request trailers: `Trailer` is hop-by-hop here,
/// and hyper's client sends only the trailer fields the forwarded request announces.
#[tokio::test]
async fn identity_in_request_trailers_never_arrives() {
    let h = start("").await;
    // Read up to the last chunk (`0`) and the blank line that ends the trailer section.
    let (url, serve) = raw_origin(
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
        |seen| seen.windows(5).any(|w| w == b"\r\n0\r\n") && seen.ends_with(b"\r\n\r\n"),
    )
    .await;
    let request = format!(
        "POST {url} HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nTrailer: X-MSISDN, X-Up-Calling-Line-Id\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         5\r\nhello\r\n0\r\nX-MSISDN: {FORGED}\r\nX-Up-Calling-Line-Id: {FORGED}\r\n\r\n"
    );
    let response = h.raw(subscriber_ip(), request.as_bytes()).await;
    assert_eq!(response.status, 200);
    let seen = String::from_utf8_lossy(&serve.await.unwrap()).into_owned();
    assert!(seen.contains("hello"), "{seen}");
    assert!(!seen.contains(FORGED), "{seen}");
}
