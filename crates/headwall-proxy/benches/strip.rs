//! The per-request strip on a realistic browser request (20 headers, two of them spoofed
//! identity headers), against a policy with 1,000 partners; on a minimal request (what `wrk`
//! sends in bench/run); and the response strip on a typical origin response.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};

fn policy_with_partners(count: usize) -> headwall_policy::Policy {
    let mut config = String::from("[gateway]\nlisten = \"127.0.0.1:8080\"\n");
    for i in 0..count {
        config.push_str(&format!(
            "[[partner]]\nname = \"p{i}\"\npurpose = \"identification\"\nhosts = [\"www.partner{i}.test\"]\ndestinations = [\"10.{}.{}.0/24\"]\nheaders = {{ \"X-Partner{i}-Id\" = \"pseudonym\" }}\n",
            i / 256,
            i % 256
        ));
    }
    headwall_policy::load(
        "bench.toml",
        &config,
        &headwall_policy::Folders::both(std::path::Path::new(".")),
    )
    .expect("bench policy")
    .policy
}

fn request_headers() -> HeaderMap {
    let pairs = [
        ("host", "www.example.test"),
        (
            "user-agent",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0.6099.43 Mobile Safari/537.36",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.9"),
        ("accept-encoding", "gzip, deflate"),
        ("connection", "keep-alive"),
        (
            "cookie",
            "session=abc123; prefs=dark; _ga=GA1.2.1234567890.1700000000",
        ),
        ("referer", "http://www.example.test/news/"),
        ("upgrade-insecure-requests", "1"),
        ("cache-control", "max-age=0"),
        ("if-none-match", "\"5f1c-6123abc\""),
        ("if-modified-since", "Tue, 21 Nov 2023 10:00:00 GMT"),
        ("dnt", "1"),
        ("sec-ch-ua-mobile", "?1"),
        ("sec-ch-ua-platform", "\"Android\""),
        ("x-requested-with", "com.example.app"),
        ("pragma", "no-cache"),
        ("x-forwarded-proto", "http"),
        ("x-msisdn", "447700900123"),
        ("x_up_calling_line_id", "447700900123"),
    ];
    map(&pairs)
}

fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_static(value),
        );
    }
    map
}

fn strip(c: &mut Criterion) {
    let policy = policy_with_partners(1000);
    let template = request_headers();
    c.bench_function("strip_request 20 headers, 1000 partners", |b| {
        b.iter_batched(
            || template.clone(),
            |mut headers| black_box(headwall_proxy::strip_request(&mut headers, policy.strip())),
            criterion::BatchSize::SmallInput,
        );
    });
    let minimal = map(&[("host", "partner.test:8080"), ("x-msisdn", "000")]);
    c.bench_function("strip_request 2 headers (bench/run's request)", |b| {
        b.iter_batched(
            || minimal.clone(),
            |mut headers| black_box(headwall_proxy::strip_request(&mut headers, policy.strip())),
            criterion::BatchSize::SmallInput,
        );
    });
    let response = map(&[
        ("server", "nginx/1.22.1"),
        ("date", "Thu, 26 Nov 2026 05:00:00 GMT"),
        ("content-type", "text/plain"),
        ("content-length", "3"),
        ("connection", "keep-alive"),
    ]);
    c.bench_function("strip_response 5 headers, Connection: keep-alive", |b| {
        b.iter_batched(
            || response.clone(),
            |mut headers| {
                headwall_proxy::strip_response(&mut headers, false);
                black_box(headers)
            },
            criterion::BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, strip);
criterion_main!(benches);
