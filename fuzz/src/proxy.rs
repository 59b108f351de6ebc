//! `proxy_v2`: `headwall_proxy::parse_proxy_v2` and `proxy_v2_length`, the PROXY protocol v2
//! header the listener reads from a trusted load balancer.
//!
//! Input: the bytes as they would arrive. Checked, on the whole input and on the header prefix
//! the listener would read (`proxy_v2_length` of the first 16 bytes): no panic;
//! `proxy_v2_length` reads the fixed 16-byte part only and answers 16..=1024 or nothing; parse
//! never accepts bytes whose length disagrees with `proxy_v2_length`; addresses it returns are
//! canonical (no IPv4-mapped IPv6: `ip.to_canonical() == ip`).

use std::net::SocketAddr;

use headwall_proxy::{parse_proxy_v2, proxy_v2_length};

const FIXED: usize = 16;
const MAX: usize = 1024;

pub fn check(data: &[u8]) {
    let length = proxy_v2_length(data);
    if let Some(n) = length {
        assert!((FIXED..=MAX).contains(&n), "proxy_v2_length gave {n}");
        assert!(data.len() >= FIXED);
        assert_eq!(
            proxy_v2_length(&data[..FIXED]),
            length,
            "proxy_v2_length looked past the fixed part"
        );
    }
    if data.len() < FIXED {
        assert_eq!(length, None, "a length from fewer than 16 bytes");
    }
    parsed_is_consistent(data);
    // What the listener does: read the fixed part, then exactly the announced length.
    if let Some(n) = length
        && n <= data.len()
    {
        parsed_is_consistent(&data[..n]);
        if n < data.len() {
            assert_eq!(
                parse_proxy_v2(data),
                None,
                "parse accepted a header followed by {} more bytes",
                data.len() - n
            );
        }
    }
}

fn parsed_is_consistent(header: &[u8]) {
    let Some(parsed) = parse_proxy_v2(header) else {
        return;
    };
    assert_eq!(
        proxy_v2_length(header),
        Some(header.len()),
        "parse accepted {} bytes, proxy_v2_length says {:?}",
        header.len(),
        proxy_v2_length(header)
    );
    if let Some((source, destination)) = parsed {
        for (what, addr) in [("source", source), ("destination", destination)] {
            assert_canonical(what, addr);
        }
    }
}

fn assert_canonical(what: &str, addr: SocketAddr) {
    let ip = addr.ip();
    assert_eq!(
        ip.to_canonical(),
        ip,
        "{what} address {addr} is IPv4-mapped, not canonical"
    );
}
