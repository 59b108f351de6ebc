//! The codec's per-request work on a browser-like request through a proxy: parsing the head
//! (13 fields, absolute-form), writing it back as origin-form, and decoding a small chunked
//! body. Compare with `cargo bench -p headwall-proxy --bench strip` for the rest of a request.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use headwall_http::{BodyDecoder, Framing, Target, parse_request_head, write_request_head};

const REQUEST: &[u8] = b"GET http://www.example.com/articles/2024/05/some-long-slug?utm_source=x HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Accept-Language: en-GB,en;q=0.9\r\n\
Accept-Encoding: gzip, deflate\r\n\
Cookie: session=4f1c2a9e7b; consent=yes; theme=dark\r\n\
Referer: http://www.example.com/\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Proxy-Connection: keep-alive\r\n\
Cache-Control: max-age=0\r\n\
X-MSISDN: 447700900123\r\n\
X_Up_Calling_Line_Id: 447700900123\r\n\
DNT: 1\r\n\r\n";

const CHUNKED: &[u8] = b"400\r\n\
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\
\r\n0\r\n\r\n";

fn parse(c: &mut Criterion) {
    c.bench_function("parse_request_head", |b| {
        b.iter(|| parse_request_head(black_box(REQUEST)))
    });
}

fn write(c: &mut Criterion) {
    let Ok(Some((head, _))) = parse_request_head(REQUEST) else {
        panic!("the bench request does not parse");
    };
    let Target::Absolute { path, .. } = head.target() else {
        panic!("the bench request is not absolute-form");
    };
    let mut out = Vec::with_capacity(1024);
    c.bench_function("write_request_head", |b| {
        b.iter(|| {
            out.clear();
            write_request_head(
                &mut out,
                head.method_bytes(REQUEST),
                path.of(REQUEST),
                head.version(),
                head.field_bytes(REQUEST),
            )
        })
    });
}

fn chunked(c: &mut Criterion) {
    c.bench_function("decode_chunked_1k", |b| {
        b.iter(|| {
            let mut decoder = BodyDecoder::new(Framing::Chunked);
            let mut input = black_box(CHUNKED);
            let mut total = 0;
            while !decoder.is_done() {
                let Ok(decoded) = decoder.decode(input) else {
                    break;
                };
                total += decoded.data.len();
                input = &input[decoded.consumed..];
            }
            total
        })
    });
}

criterion_group!(benches, parse, write, chunked);
criterion_main!(benches);
