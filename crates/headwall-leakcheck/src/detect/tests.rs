use proptest::prelude::*;

use super::*;

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// The reasons one header is flagged for.
fn reasons(name: &str, value: &str) -> Vec<Reason> {
    header_reasons(name, value)
}

fn phone(value: &str) -> bool {
    reasons("X-Anything", value) == [Reason::PhoneNumber]
}

fn clean(name: &str, value: &str) -> bool {
    reasons(name, value).is_empty()
}

#[test]
fn report_shape_and_json() {
    let report = inspect(&headers(&[
        ("Host", "leakcheck.example"),
        ("X-MSISDN", "447700900123"),
        (
            "User-Agent",
            "Mozilla/5.0 (Linux; Android 14) Chrome/120.0.6099.109 Mobile",
        ),
    ]));
    assert_eq!(report.verdict, Verdict::Leak);
    assert_eq!(report.headers_seen, 3);
    let json = serde_json::to_string(&report).unwrap();
    assert_eq!(
        json,
        r#"{"verdict":"leak","findings":[{"header":"X-MSISDN","reason":"identity_header","redacted":"•••••••••123"}],"headers_seen":3}"#
    );
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn clean_report() {
    let report = inspect(&headers(&[("Accept", "*/*"), ("User-Agent", "curl/8.5.0")]));
    assert_eq!(report.verdict, Verdict::Clean);
    assert!(report.findings.is_empty());
    assert_eq!(
        serde_json::to_string(&report).unwrap(),
        r#"{"verdict":"clean","findings":[],"headers_seen":2}"#
    );
}

#[test]
fn identity_header_names_ignore_case_and_underscores() {
    for name in [
        "X-MSISDN",
        "x-msisdn",
        "X_Msisdn",
        "x_up_calling_line_id",
        "X-Nokia-MSISDN",
    ] {
        assert_eq!(
            reasons(name, "447700900123"),
            [Reason::IdentityHeader],
            "{name}"
        );
    }
    // The name alone is enough: an IMSI or an opaque value in an identity header.
    assert_eq!(
        reasons("x-imsi", "234150999999999"),
        [Reason::IdentityHeader]
    );
    assert_eq!(reasons("X-Orange-ID", "a8f3c2"), [Reason::IdentityHeader]);
    // An empty identity header discloses nothing.
    assert!(clean("X-MSISDN", ""));
    assert!(clean("X-MSISDN", "  "));
}

#[test]
fn every_builtin_name_is_flagged() {
    for name in headwall_policy::builtin_identity_headers() {
        assert!(!clean(name, "x"), "{name}");
        assert!(
            !clean(&name.to_ascii_uppercase().replace('-', "_"), "x"),
            "{name}"
        );
    }
}

#[test]
fn tracking_headers_whatever_their_value() {
    for name in [
        "X-UIDH",
        "x-acr",
        "X-VF-ACR",
        "X-AMOBEE-1",
        "x-up-subno",
        "X_UIDH",
    ] {
        assert_eq!(reasons(name, "opaque"), [Reason::TrackingId], "{name}");
    }
    assert_eq!(
        reasons("x-acr", "8B1E0C2F7A94D3E6;ncc=310410;type=Dyna"),
        [Reason::TrackingId]
    );
    assert!(clean(
        "x-wap-profile",
        "\"http://wap.samsungmobile.com/uaprof/SM-G991B.xml\""
    ));
}

#[test]
fn phone_numbers_international() {
    for value in [
        "+447700900123",
        "+44 7700 900123",
        "+44 (0)7700 900123",
        "(+44) 7700 900123",
        "[+447700900123]",
        "+44 07700 900123",
        "+44-7700-900-123",
        "+44.7700.900.123",
        "00447700900123",
        "0044 7700 900123",
        "+1 (202) 555-0143",
        "+1-202-555-0143",
        "+12025550143",
        "001 202 555 0143",
        "+61 491 570 156",
        "+33 6 39 98 12 34",
        "+46 70 174 06 05",
        "tel:+447700900123",
        "<sip:+447700900123@ims.operator.example;user=phone>",
        "%2B447700900123",
    ] {
        assert!(phone(value), "{value}");
    }
}

#[test]
fn phone_numbers_national_and_bare() {
    for value in [
        "07700 900123",
        "07700900123",
        "07700-900-123",
        "(07700) 900123",
        "0491 570 157",
        "0491570158",
        "06.39.98.45.67",
        "070-174 06 05",
        "(202) 555-0164",
        "202-555-0171",
        "202.555.0172",
        "1 (202) 555-0110",
        "447700900123",
        "46701740699",
        "44 7700 900123",
        "Call 07700 900123.",
        "447700900123 447700900124",
        "+447700900123, +447700900124",
        "(020) 7946 0123",
    ] {
        assert!(phone(value), "{value}");
    }
}

#[test]
fn phone_numbers_in_unfamiliar_headers_and_keys() {
    assert_eq!(
        reasons("X-Client-Info", "msisdn=447700900123"),
        [Reason::PhoneNumber]
    );
    assert_eq!(
        reasons("X-Gateway-Data", "session=7f3a;mdn=2025550187;apn=internet"),
        [Reason::PhoneNumber]
    );
    assert_eq!(
        reasons("X-Acme-Trace", r#"{"sub":"x","phoneNumber":"2025550123"}"#),
        [Reason::PhoneNumber]
    );
    // A phone-number header name is context too.
    assert_eq!(
        reasons("X-Caller-Phone", "2025550123"),
        [Reason::PhoneNumber]
    );
    assert_eq!(
        reasons("X-Info", "msisdn=12025550199"),
        [Reason::PhoneNumber]
    );
    // Without a key, bare NANP digits look like any id and are let through.
    assert!(clean("X-Anything", "2025550123"));
    assert!(clean("X-Anything", "12025550199"));
}

#[test]
fn imsis() {
    assert_eq!(reasons("X-Sim", "234150999999999"), [Reason::Imsi]);
    assert_eq!(
        reasons("X-Device", "imsi=310150123456789;x=1"),
        [Reason::Imsi]
    );
    assert_eq!(reasons("X-Lab", "001010000000001"), [Reason::Imsi]);
    // 15 digits, MCC 100 is unassigned: a Facebook-style user id.
    assert!(clean("Cookie", "c_user=100012345678901"));
    // 14 or 16 digits are not IMSIs.
    assert!(clean("X-Sim", "23415099999999"));
    assert!(clean("X-Sim", "2341509999999991"));
    assert_eq!(
        reasons("X-Info", "msisdn=447700900123;imsi=234150999999999"),
        [Reason::PhoneNumber, Reason::Imsi]
    );
}

#[test]
fn browser_traffic_is_clean() {
    let cases = [
        (
            "User-Agent",
            "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 \
             (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.109 Mobile Safari/537.36",
        ),
        (
            "User-Agent",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2_1 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
        ),
        (
            "Cookie",
            "_ga=GA1.2.1234567890.1700000000; _gid=GA1.2.447700900123.1700000000; \
             _fbp=fb.1.1700000000000.1234567890; sid=8473920165; visitor=1024381755",
        ),
        ("If-None-Match", "W/\"447700900-1700000000\""),
        ("ETag", "\"9043827164\""),
        ("Content-Length", "1048576"),
        ("Date", "Tue, 14 Nov 2023 08:12:31 GMT"),
        ("X-Request-Id", "4f8a3c2e-9b1d-4e6f-8a7b-1c2d3e4f5a6b"),
        ("X-Request-Id", "12345678-1234-5678-1234-567812345678"),
        ("Accept-Language", "en-GB,en-US;q=0.9,en;q=0.8"),
        (
            "Referer",
            "https://shop.example/products/447700900123?page=2",
        ),
        ("X-Timestamp", "1700000000"),
        ("X-Timestamp-Ms", "1700000000123"),
        (
            "X-Forwarded-For",
            "203.0.113.45, 10.64.12.7, 172.16.254.101",
        ),
        ("X-Forwarded-For", "49.12.145.167:51234"),
        ("Range", "bytes=1048576-2097151"),
        ("X-Build-Date", "06-11-2023 08:12:31"),
        ("X-Build-Date", "2023-11-14 0812"),
        (
            "Sec-CH-UA-Full-Version-List",
            "\"Chromium\";v=\"120.0.6099.109\", \"Not?A_Brand\";v=\"8.0.0.0\"",
        ),
        (
            "Content-Type",
            "multipart/form-data; boundary=---------------------------9051914041544843365972754266",
        ),
        ("X-Datadog-Trace-Id", "4721394832"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("DPR", "2.625"),
        ("X-Geo", "51.50735091,-0.12775829"),
    ];
    for (name, value) in cases {
        assert!(
            clean(name, value),
            "{name}: {value} -> {:?}",
            reasons(name, value)
        );
    }
}

#[test]
fn numbers_must_stand_alone() {
    for value in [
        "id447700900123",
        "447700900123abc",
        "v/447700900123",
        "x.447700900123",
        "order-447700900123",
        "447700900123.html",
        "a+447700900123",
    ] {
        assert!(clean("X-Anything", value), "{value}");
    }
}

#[test]
fn redacts_flagged_values_to_the_last_three() {
    assert_eq!(redact_value("447700900123", true), "•••••••••123");
    assert_eq!(redact_value("+44 7700 900123", true), "••••••••••••123");
    assert_eq!(redact_value("abcd", true), "•bcd");
    assert_eq!(redact_value("abc", true), "•••");
    assert_eq!(redact_value("", true), "");
    assert_eq!(redact_value("ünï©ødé", true), "••••ødé");
}

#[test]
fn redacts_long_digit_runs_in_other_values() {
    assert_eq!(
        redact_value("_ga=GA1.2.1234567890.1700000000", false),
        "_ga=GA1.2.•••••••890.•••••••000"
    );
    assert_eq!(redact_value("1234567", false), "••••567");
    assert_eq!(redact_value("123456 x", false), "123456 x");
    assert_eq!(
        redact_value("Chrome/120.0.6099.109", false),
        "Chrome/120.0.6099.109"
    );
    assert_eq!(redact_value("07700 900123", false), "07700 900123");
    assert_eq!(redact_value("ab12345678cd", false), "ab•••••678cd");
    // A NUL is a character of the value like any other (found by fuzz/ leak_detect).
    assert_eq!(
        redact_value("1700000000012\u{0}\u{0}3456789", false),
        "••••••••••012\u{0}\u{0}••••789"
    );
}

#[test]
fn findings_carry_only_redacted_values() {
    let report = inspect(&headers(&[("X-Client-Info", "msisdn=447700900123")]));
    assert_eq!(
        report.findings,
        [Finding {
            header: "X-Client-Info".into(),
            reason: Reason::PhoneNumber,
            redacted: format!("{}123", "•".repeat(16)),
        }]
    );
    assert!(!format!("{report:?}").contains("7700900"));
}

#[test]
fn reason_labels_round_trip() {
    for reason in Reason::ALL {
        assert_eq!(Reason::from_label(reason.as_str()), Some(reason));
        assert_eq!(
            serde_json::to_string(&reason).unwrap(),
            format!("\"{}\"", reason.as_str())
        );
    }
    assert_eq!(Reason::from_label("msisdn"), None);
}

/// How often a random bare digit string of each length is taken for a phone number or IMSI:
/// the price of flagging unprefixed numbers in unfamiliar headers. Printed with `--nocapture`.
#[test]
fn random_digit_ids_are_rarely_flagged() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next_digit = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        char::from(b'0' + ((state >> 33) % 10) as u8)
    };
    const SAMPLES: usize = 20_000;
    for len in 8..=16 {
        let flagged = (0..SAMPLES)
            .filter(|_| {
                let id: String = (0..len).map(|_| next_digit()).collect();
                !clean("X-Id", &format!("id={id}"))
            })
            .count();
        let rate = flagged as f64 / SAMPLES as f64;
        println!("random {len:>2}-digit ids flagged: {:5.2}%", rate * 100.0);
    }
}

/// Long hostile values finish: scanning is linear (bounded runs, bounded candidates).
#[test]
fn hostile_values_are_scanned_in_bounded_time() {
    let patterns = [
        "1 ", "1-", "(1", "1)", "+1 ", "%2B1 ", "0", "9.", "1 (", "44 7700 ",
    ];
    for pattern in patterns {
        let value = pattern.repeat(64 * 1024 / pattern.len());
        let report = inspect(&headers(&[("X-Hostile", &value)]));
        assert_eq!(report.headers_seen, 1);
    }
}

fn digit_heavy() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[0-9 +()%2Bb.\\-=:;,/a-z]{0,60}").unwrap()
}

proptest! {
    #[test]
    fn inspect_never_panics(
        pairs in proptest::collection::vec((any::<String>(), any::<String>()), 0..6),
        numeric in proptest::collection::vec(digit_heavy(), 0..6),
    ) {
        let mut all: Vec<(String, String)> = pairs;
        all.extend(numeric.into_iter().map(|value| ("X-Value".to_string(), value)));
        let report = inspect(&all);
        prop_assert_eq!(report.headers_seen, all.len());
        prop_assert_eq!(report.verdict == Verdict::Leak, !report.findings.is_empty());
        for finding in &report.findings {
            // A flagged value never shows more than its last 3 characters.
            prop_assert!(finding.redacted.chars().filter(|&c| c != MASK).count() <= 3);
        }
    }

    #[test]
    fn unflagged_redaction_leaves_no_long_digit_run(value in any::<String>(), digits in digit_heavy()) {
        for value in [value, digits] {
            let redacted = redact_value(&value, false);
            prop_assert_eq!(redacted.chars().count(), value.chars().count());
            let mut run = 0;
            for c in redacted.chars() {
                run = if c.is_ascii_digit() { run + 1 } else { 0 };
                prop_assert!(run < MASKED_DIGIT_RUN, "{}", redacted);
            }
        }
    }
}
