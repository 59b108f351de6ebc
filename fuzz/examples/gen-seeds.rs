//! Writes the committed seed corpus, `fuzz/corpus/<target>/`, from realistic inputs: RADIUS
//! accounting packets built with the codec's own encoder, the shipped example configuration and
//! variants of it, PROXY v2 headers from the `proxy-header` encoder, host names and patterns
//! from the docs, request header sets, policy pairs that load, and HTTP heads and chunked
//! bodies like the smuggling corpus's. Every seed is run through its target's check before it
//! is written.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example gen-seeds` (stable is fine); it
//! replaces the `seed-*` files and leaves any other file (a fixed crash kept as a regression
//! input) alone.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use headwall_fuzz::{config, host, http, leak, plan, proxy, radius};
use headwall_radius::{AccountingRequest, AcctStatusType, encode_accounting_request};
use proxy_header::{ProxiedAddress, ProxyHeader, Tlv};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");
    write(&corpus, "radius_decode", radius_seeds(), radius::check);
    write(&corpus, "config_load", config_seeds(root), config::check);
    write(&corpus, "proxy_v2", proxy_seeds(), proxy::check);
    write(&corpus, "host", host_seeds(), host::check);
    write(&corpus, "leak_detect", leak_seeds(), leak::check);
    write(&corpus, "plan_diff", plan_seeds(), plan::check);
    write(&corpus, "http_head", http_seeds(), http::check);
}

fn write(corpus: &Path, target: &str, seeds: Vec<(&str, Vec<u8>)>, check: fn(&[u8])) {
    let dir: PathBuf = corpus.join(target);
    fs::create_dir_all(&dir).expect("create corpus dir");
    for entry in fs::read_dir(&dir).expect("read corpus dir").flatten() {
        if entry.file_name().to_string_lossy().starts_with("seed-") {
            fs::remove_file(entry.path()).expect("remove old seed");
        }
    }
    for (name, bytes) in &seeds {
        check(bytes);
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
    }
    println!("{target}: {} seeds", seeds.len());
}

// === radius_decode ===

fn request(status: AcctStatusType) -> AccountingRequest {
    AccountingRequest {
        identifier: 42,
        authenticator: [0; 16],
        status,
        framed_ip: None,
        framed_ipv6_prefix: None,
        calling_station_id: None,
        session_id: None,
        nas_ip: None,
        nas_identifier: None,
        imsi: None,
    }
}

/// Mode byte, then the datagram (see `headwall_fuzz::radius`).
fn with_mode(mode: u8, datagram: &[u8]) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend_from_slice(datagram);
    out
}

fn radius_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let secret = radius::SECRET;
    let mut start = request(AcctStatusType::Start);
    start.framed_ip = Some(Ipv4Addr::new(10, 1, 2, 3));
    start.calling_station_id = Some("447700900123".into());
    start.session_id = Some("pgw-1-0001".into());
    start.nas_ip = Some(Ipv4Addr::new(192, 0, 2, 1).into());
    start.nas_identifier = Some("pgw-1".into());
    start.imsi = Some("234150999999999".into());

    let mut interim = request(AcctStatusType::InterimUpdate);
    interim.identifier = 7;
    interim.framed_ipv6_prefix = Some("2001:db8:1:ff::/64".parse().expect("prefix"));
    interim.calling_station_id = Some("+447700900124".into());
    interim.session_id = Some("pgw-2-77".into());
    interim.nas_ip = Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into());

    let mut stop = start.clone();
    stop.identifier = 43;
    stop.status = AcctStatusType::Stop;

    let mut on = request(AcctStatusType::AccountingOn);
    on.nas_identifier = Some("pgw-1".into());

    // Hand-built attributes: a foreign vendor's VSA, an unknown attribute, then padding; the
    // target's mode 1 writes the authenticator.
    let mut attributes = vec![40, 6, 0, 0, 0, 1]; // Acct-Status-Type = Start
    attributes.extend_from_slice(&[8, 6, 100, 64, 0, 9]); // Framed-IP-Address
    attributes.extend_from_slice(&[31, 14]);
    attributes.extend_from_slice(b"447700900125");
    attributes.extend_from_slice(&[26, 9, 0, 0, 0, 9, 1, 3, b'x']); // vendor 9: ignored
    attributes.extend_from_slice(&[26, 23, 0, 0, 0x28, 0xaf, 1, 17]); // 3GPP-IMSI
    attributes.extend_from_slice(b"234150999999998");
    attributes.extend_from_slice(&[97, 12, 0, 56, 0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0]);
    attributes.extend_from_slice(&[200, 4, 1, 2]); // unknown: ignored
    let mut hand = vec![4, 9];
    hand.extend_from_slice(&((20 + attributes.len()) as u16).to_be_bytes());
    hand.extend_from_slice(&[0; 16]);
    hand.extend_from_slice(&attributes);
    let mut padded = hand.clone();
    padded.extend_from_slice(&[0xff; 5]);

    vec![
        (
            "start",
            with_mode(0, &encode_accounting_request(&start, secret)),
        ),
        (
            "interim-ipv6",
            with_mode(0, &encode_accounting_request(&interim, secret)),
        ),
        (
            "stop",
            with_mode(0, &encode_accounting_request(&stop, secret)),
        ),
        (
            "accounting-on",
            with_mode(0, &encode_accounting_request(&on, secret)),
        ),
        (
            "wrong-secret",
            with_mode(0, &encode_accounting_request(&start, b"another secret")),
        ),
        (
            "hand-built-authenticate",
            with_mode(radius::MODE_AUTHENTICATE, &padded),
        ),
        (
            "frame-and-authenticate",
            with_mode(radius::MODE_AUTHENTICATE | radius::MODE_FRAME, &hand),
        ),
    ]
}

// === config_load ===

fn config_seeds(root: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let example =
        fs::read_to_string(root.join("../examples/headwall.toml")).expect("examples/headwall.toml");
    let minimal = "[gateway]\nlisten = \"127.0.0.1:8080\"\n\n[[partner]]\nname = \"agecheck\"\n\
                   purpose = \"age_verification\"\nhosts = [\"verify.agecheck.test\"]\n\
                   destinations = [\"127.0.0.2/32\"]\n\
                   headers = { \"X-Age-Verified\" = \"age_verified\" }\n";
    let fleet = example
        .replace(
            "backend = \"embedded\"                   # \"embedded\" or \"redis\"\npath = \"state/sessions\"",
            "backend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379/0\"",
        )
        .replace(
            "backend = \"embedded\"                   # \"embedded\" (SQLite) or \"postgres\"\npath = \"state/audit.db\"",
            "backend = \"postgres\"\nurl = \"postgres://headwall@127.0.0.1:5432/headwall\"\nnode = \"gw-1\"",
        );
    let wildcards = "[gateway]\nlisten = \"[::1]:8080\"\nproxy_protocol = true\n\
                     proxy_protocol_from = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n\n\
                     [[partner]]\nname = \"carrierpay\"\npurpose = \"billing\"\n\
                     hosts = [\"*.carrierpay.test\", \"pay.example.com\", \"[2001:db8::7]\"]\n\
                     ports = [80, 8080]\ndestinations = [\"10.4.0.0/16\", \"2001:db8::/64\"]\n\
                     headers = { \"X-MSISDN\" = \"msisdn\", \"X-Billing-Token\" = \"token\" }\n\n\
                     [[partner]]\nname = \"selfcare\"\npurpose = \"identification\"\n\
                     hosts = [\"my.operator.test\", \"192.0.2.5\"]\n\
                     destinations = [\"192.0.2.5\"]\n\
                     headers = { \"X_Operator_Token\" = \"token\" }\n\
                     justification = \"self-care portal\"\n";
    // Many semantic errors at once: each should carry its own position.
    let broken = "[gateway]\nlisten = \"localhost:8080\"\nconnect_ports = [0, 70000]\n\
                  idle_timeout = \"0s\"\n\n[[partner]]\nname = \"Bad Name\"\npurpose = \"ads\"\n\
                  hosts = [\"*\", \"*.com\", \"ex*ample.com\", \"example.com:80\"]\nports = []\n\
                  destinations = [\"0.0.0.0/0\", \"10.0.0.1/8\"]\n\
                  headers = { \"Host\" = \"msisdn\", \"X-A\" = \"phone\" }\n\n\
                  [[partner]]\nname = \"twin\"\npurpose = \"billing\"\nhosts = [\"a.example.com\"]\n\
                  destinations = [\"192.0.2.1\"]\nheaders = { \"X-A\" = \"msisdn\" }\n\n\
                  [[partner]]\nname = \"twin\"\npurpose = \"billing\"\n\
                  hosts = [\"*.example.com\"]\ndestinations = [\"192.0.2.1\"]\n\
                  headers = { \"X-A\" = \"msisdn\" }\n";
    let syntax = "[gateway]\nlisten = \"127.0.0.1:8080\"\n[[partner]\nname = \"x\"\n";
    let policy_only = "[strip]\nheaders = [\"X-Operator-Subscriber\", \"X_Legacy_Id\"]\n\n\
                       [[partner]]\nname = \"agecheck\"\npurpose = \"age_verification\"\n\
                       hosts = [\"verify.agecheck.test\"]\ndestinations = [\"127.0.0.2/32\"]\n\
                       headers = { \"X-Age-Verified\" = \"age_verified\", \"X-Subscriber-Id\" = \"pseudonym\" }\n";
    vec![
        ("example", example.clone().into_bytes()),
        ("minimal", minimal.as_bytes().to_vec()),
        ("fleet-redis-postgres", fleet.into_bytes()),
        ("wildcards-ipv6-proxy", wildcards.as_bytes().to_vec()),
        ("semantic-errors", broken.as_bytes().to_vec()),
        ("syntax-error", syntax.as_bytes().to_vec()),
        ("policy-only", policy_only.as_bytes().to_vec()),
    ]
}

// === proxy_v2 ===

fn v2(address: Option<ProxiedAddress>, tlvs: Vec<Tlv<'_>>) -> Vec<u8> {
    let mut out = Vec::new();
    ProxyHeader::with_tlvs(address, tlvs)
        .encode_v2(&mut out)
        .expect("encode PROXY v2");
    out
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

fn proxy_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let tcp4 = ProxiedAddress::stream(addr("10.0.0.5:40000"), addr("192.0.2.7:80"));
    let tcp6 = ProxiedAddress::stream(addr("[2001:db8::5]:40000"), addr("[2001:db8::7]:8080"));
    let mapped = ProxiedAddress::stream(
        addr("[::ffff:10.0.0.5]:40000"),
        addr("[::ffff:192.0.2.7]:80"),
    );
    let udp4 = ProxiedAddress::datagram(addr("10.0.0.6:5353"), addr("192.0.2.8:53"));
    let mut followed = v2(Some(tcp4.clone()), Vec::new());
    followed.extend_from_slice(b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n");
    vec![
        ("tcp4", v2(Some(tcp4.clone()), Vec::new())),
        ("tcp6", v2(Some(tcp6), Vec::new())),
        ("tcp6-ipv4-mapped", v2(Some(mapped), Vec::new())),
        ("local", v2(None, Vec::new())),
        ("udp4", v2(Some(udp4), Vec::new())),
        (
            "tcp4-tlvs",
            v2(
                Some(tcp4),
                vec![
                    Tlv::Authority("pay.carrierpay.test".into()),
                    Tlv::Alpn(b"http/1.1".as_slice().into()),
                    Tlv::UniqueId(b"lb-1-0001".as_slice().into()),
                ],
            ),
        ),
        ("tcp4-then-request", followed),
        (
            "v1-text",
            b"PROXY TCP4 10.0.0.5 192.0.2.7 40000 80\r\n".to_vec(),
        ),
    ]
}

// === host ===

fn host_seeds() -> Vec<(&'static str, Vec<u8>)> {
    [
        ("exact", "verify.agecheck.test\nverify.agecheck.test"),
        ("wildcard-deep", "*.example.com\na.b.example.com"),
        ("wildcard-parent", "*.Example.COM.\nexample.com:8080"),
        ("ipv6-literal", "[2001:DB8::1]\n2001:db8:0::1"),
        ("ipv4-port", "127.0.0.1\n127.0.0.1:80"),
        ("idn", "xn--bcher-kva.example\nXN--BCHER-KVA.example.:443"),
        ("wildcard-ip", "*.10.0.0.1\n10.0.0.1"),
        ("numeric-tld", "127.1\n0x7f.0.0.1"),
        ("regex-like", "^www\\.example\\.com$\nwww.example.com"),
        ("underscore", "_dmarc.example.com\nexample.com."),
    ]
    .into_iter()
    .map(|(name, text)| (name, text.as_bytes().to_vec()))
    .collect()
}

// === leak_detect ===

fn leak_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let browser = "Host: example.com\nUser-Agent: Mozilla/5.0 (Linux; Android 14; Pixel 8) \
                   AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36\n\
                   Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\n\
                   Accept-Language: en-GB,en;q=0.9\nAccept-Encoding: gzip, deflate\n\
                   Cookie: _ga=GA1.2.1234567890.1700000000; session=8f3a9c\n";
    let enriched = "Host: verify.agecheck.test\nX-MSISDN: 447700900123\nX-Up-Calling-Line-Id: \
                    447700900123\nX_Nokia_MSISDN: 447700900123\nUser-Agent: curl/8.5.0\n";
    let in_values = "Host: shop.example\nReferer: http://shop.example/?msisdn=%2B447700900123\n\
                     X-Caller: +44 7700 900123\nX-Sub: tel:+1-202-555-0143\n\
                     X-Device: imsi=234150999999999\n";
    let tracking = "Host: news.example\nX-UIDH: OTgxNTk2NDk0ADJVquRu5NS5+rSbBANlrp+13QL7CXLGsFHpMi4LsUHw\n\
                    X-ACR: 12345\nX-VF-ACR: abc\n";
    let digits = "X-Request-Id: 1700000000123456789\nX-Version: 1.2.3.4567890\n\
                  X-Order: 20240517-0001234567\nX-Empty:\nX-Phoneish: 07700 900123\n";
    vec![
        ("browser-clean", browser.as_bytes().to_vec()),
        ("enriched-names", enriched.as_bytes().to_vec()),
        ("numbers-in-values", in_values.as_bytes().to_vec()),
        ("tracking-ids", tracking.as_bytes().to_vec()),
        ("digit-runs", digits.as_bytes().to_vec()),
        (
            "non-utf8",
            b"X-Bin: \xff\xfe447700900123\nX-\xc3\x28: 1\n".to_vec(),
        ),
    ]
}

// === plan_diff ===

/// Inputs whose two policies load: the first few that widen and the first few that do not,
/// from a fixed pseudo-random sequence (so regenerating gives the same files).
fn plan_seeds() -> Vec<(&'static str, Vec<u8>)> {
    const NAMES_WIDE: [&str; 3] = ["widens-1", "widens-2", "widens-3"];
    const NAMES_NARROW: [&str; 3] = ["no-widening-1", "no-widening-2", "no-widening-3"];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut wide, mut narrow) = (Vec::new(), Vec::new());
    for _ in 0..2_000_000 {
        if wide.len() == 3 && narrow.len() == 3 {
            break;
        }
        let len = 64 + (next() % 256) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let Some((old, new, _, _)) = plan::policies(&bytes) else {
            continue;
        };
        if old.partners().len() < 2 || new.partners().is_empty() {
            continue;
        }
        let widens = headwall_policy::plan(&old, &new).widens();
        let list = if widens { &mut wide } else { &mut narrow };
        if list.len() < 3 {
            list.push(bytes);
        }
    }
    assert!(
        wide.len() == 3 && narrow.len() == 3,
        "found {} widening and {} non-widening plan seeds",
        wide.len(),
        narrow.len()
    );
    NAMES_WIDE
        .into_iter()
        .zip(wide)
        .chain(NAMES_NARROW.into_iter().zip(narrow))
        .collect()
}

// === http_head ===

/// The first byte picks the method a response answers (0 GET, 1 HEAD, 2 CONNECT, 3 POST).
fn http_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let seeds: [(&str, u8, &[u8]); 10] = [
        ("request-absolute-cl", 3, b"POST http://example.com/a HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello"),
        ("request-chunked", 3, b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
        ("request-cl-and-te", 3, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("request-connect", 2, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        ("request-bare-lf", 0, b"GET /a HTTP/1.0\nConnection: keep-alive\nX-MSISDN: 447700900123\n\n"),
        ("request-obs-fold", 0, b"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n chunked\r\n\r\n"),
        ("response-chunked", 0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n14\r\nabcdefghijklmnopqrst\r\n0\r\n\r\n"),
        ("response-head-length", 1, b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"),
        ("response-103", 0, b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"),
        ("chunked-body", 3, b"ffffffffffffffff\r\nab\r\n"),
    ];
    seeds
        .into_iter()
        .map(|(name, method, bytes)| {
            let mut seed = vec![method];
            seed.extend_from_slice(bytes);
            (name, seed)
        })
        .collect()
}
