//! One request's policy work against a 1,000-partner policy: 20 realistic header names through
//! `StripSet::contains`, then `Policy::route` and `Policy::decide` for its destination.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use headwall_policy::{Policy, load};

/// 1,000 partners: even ones an exact host, odd ones a wildcard, each on its own /24.
fn policy(count: usize) -> Policy {
    let mut text = String::from("[gateway]\nlisten = \"127.0.0.1:8080\"\n");
    for i in 0..count {
        let host = if i % 2 == 0 {
            format!("www.partner{i}.test")
        } else {
            format!("*.partner{i}.example.net")
        };
        text.push_str(&format!(
            "[[partner]]\nname = \"p{i}\"\npurpose = \"identification\"\nhosts = [\"{host}\"]\n\
             ports = [80, 8080]\ndestinations = [\"10.{}.{}.0/24\"]\n\
             headers = {{ \"X-Partner{i}-Id\" = \"pseudonym\", \"X-Partner{i}-Age\" = \"age_verified\" }}\n",
            i / 256,
            i % 256
        ));
    }
    match load(
        "bench.toml",
        &text,
        &headwall_policy::Folders::both(Path::new(".")),
    ) {
        Ok(config) => config.policy,
        Err(errors) => panic!("bench policy: {errors}"),
    }
}

/// A browser request with two spoofed identity headers, in the case and spelling clients use.
const HEADERS: [&str; 20] = [
    "Host",
    "User-Agent",
    "Accept",
    "Accept-Language",
    "Accept-Encoding",
    "Connection",
    "Cookie",
    "Referer",
    "Upgrade-Insecure-Requests",
    "Cache-Control",
    "If-None-Match",
    "If-Modified-Since",
    "DNT",
    "Sec-CH-UA-Mobile",
    "Sec-CH-UA-Platform",
    "X-Requested-With",
    "Sec-Fetch-Site",
    "Sec-Fetch-Mode",
    "X-MSISDN",
    "x_up_calling_line_id",
];

fn one_request(policy: &Policy, host: &str, port: u16, ip: IpAddr) -> (usize, bool) {
    let stripped = HEADERS
        .iter()
        .filter(|name| policy.strip().contains(black_box(name)))
        .count();
    let routed = policy.route(black_box(host), port).is_some();
    let decision = policy.decide(black_box(host), port, ip);
    (
        stripped,
        routed && matches!(decision, headwall_policy::Decision::Disclose(_)),
    )
}

fn bench(c: &mut Criterion) {
    let policy = policy(1_000);
    assert_eq!(policy.partners().len(), 1_000);
    let partner_ip: IpAddr = "10.1.243.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    // Partner 499 is a wildcard: *.partner499.example.net on 10.1.243.0/24.
    assert_eq!(
        one_request(&policy, "cdn.partner499.example.net", 80, partner_ip),
        (2, true)
    );
    let other_ip: IpAddr = "192.0.2.80".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    assert_eq!(
        one_request(&policy, "news.example.org", 80, other_ip),
        (2, false)
    );

    c.bench_function(
        "request: strip 20 + route + decide, 1000 partners, non-partner",
        |b| {
            b.iter(|| one_request(&policy, "static.news.example.org", 80, other_ip));
        },
    );
    c.bench_function(
        "request: strip 20 + route + decide, 1000 partners, wildcard partner",
        |b| {
            b.iter(|| one_request(&policy, "cdn.partner499.example.net", 80, partner_ip));
        },
    );
    c.bench_function(
        "request: strip 20 + route + decide, 1000 partners, exact partner",
        |b| {
            let ip: IpAddr = "10.1.244.9".parse().unwrap_or(partner_ip);
            b.iter(|| one_request(&policy, "www.partner500.test", 8080, ip));
        },
    );
    c.bench_function("load + compile 1000 partners", |b| {
        b.iter(|| policy_len(1_000))
    });
}

fn policy_len(count: usize) -> usize {
    policy(count).partners().len()
}

criterion_group!(benches, bench);
criterion_main!(benches);
