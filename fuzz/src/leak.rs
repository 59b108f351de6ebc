//! `leak_detect`: `headwall_leakcheck::inspect` and `redact_value`
//! (crates/headwall-leakcheck/src/detect.rs).
//!
//! Input: header lines, `name: value` separated by `\n` (bytes that are not UTF-8 become
//! U+FFFD; a line without `:` is a name with an empty value), so seeds read like requests.
//!
//! Checked against the module's contract: no panic; `headers_seen` is the number of headers;
//! the verdict is `leak` exactly when there are findings; findings come in arrival order, name
//! a header that arrived, at most once per header and reason, and carry that header's value as
//! `redact_value(value, true)`; a flagged redaction masks every character but the last 3 (all
//! of a value of 3 characters or fewer); an unflagged redaction masks every run of 7 or more
//! ASCII digits but its last 3 digits and changes nothing else, so no run of 7 digits of the
//! original survives.

use headwall_leakcheck::{Verdict, inspect, redact_value};

const MASK: char = '•';
const TAIL: usize = 3;
const RUN: usize = 7;

/// The headers a fuzz input stands for.
pub fn headers(data: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(data);
    text.split('\n')
        .filter(|line| !line.is_empty())
        .map(|line| match line.split_once(':') {
            Some((name, value)) => (name.to_owned(), value.trim_start().to_owned()),
            None => (line.to_owned(), String::new()),
        })
        .collect()
}

pub fn check(data: &[u8]) {
    let headers = headers(data);
    let report = inspect(&headers);
    assert_eq!(report.headers_seen, headers.len());
    assert_eq!(
        report.verdict == Verdict::Leak,
        !report.findings.is_empty(),
        "verdict {:?} with {} findings",
        report.verdict,
        report.findings.len()
    );

    // Findings follow the headers in order: walk both, each finding at the current header or
    // a later one, and a header's reasons never repeat.
    let mut at = 0;
    let mut reasons_here = Vec::new();
    for finding in &report.findings {
        let start = at;
        while at < headers.len()
            && !(headers[at].0 == finding.header
                && redact_value(&headers[at].1, true) == finding.redacted
                && !(at == start && reasons_here.contains(&finding.reason)))
        {
            at += 1;
        }
        assert!(
            at < headers.len(),
            "finding {finding:?} matches no header at or after #{start} of {}",
            headers.len()
        );
        if at != start {
            reasons_here.clear();
        }
        reasons_here.push(finding.reason);
    }

    for (_, value) in &headers {
        check_flagged(value, &redact_value(value, true));
        check_unflagged(value, &redact_value(value, false));
    }
    let _ = serde_json::to_string(&report).expect("a report serializes");
}

fn check_flagged(value: &str, redacted: &str) {
    let original: Vec<char> = value.chars().collect();
    let shown: Vec<char> = redacted.chars().collect();
    assert_eq!(
        shown.len(),
        original.len(),
        "flagged redaction changed the length"
    );
    let visible = if original.len() > TAIL { TAIL } else { 0 };
    let masked = original.len() - visible;
    assert!(
        shown[..masked].iter().all(|&c| c == MASK),
        "flagged redaction {redacted:?} shows more than the last {visible} characters"
    );
    assert_eq!(
        shown[masked..],
        original[masked..],
        "flagged redaction changed the tail"
    );
}

fn check_unflagged(value: &str, redacted: &str) {
    // The contract, written out: every maximal run of ASCII digits of length >= 7 becomes
    // (length - 3) masks and its last 3 digits; everything else stays as it is.
    let mut expected = String::with_capacity(value.len());
    let chars: Vec<char> = value.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            expected.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let run = &chars[start..i];
        if run.len() >= RUN {
            expected.extend(std::iter::repeat_n(MASK, run.len() - TAIL));
            expected.extend(&run[run.len() - TAIL..]);
        } else {
            expected.extend(run);
        }
    }
    assert_eq!(redacted, expected, "unflagged redaction of {value:?}");
    let mut run = 0;
    for c in redacted.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        assert!(run < RUN, "{redacted:?} still holds a run of {RUN} digits");
    }
}
