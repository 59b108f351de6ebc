//! The leak detector: which of the headers a request arrived with carry subscriber identity.
//!
//! Pure and quiet: no I/O, no logging, nothing kept. A [`Report`] holds header names, reasons
//! and redacted values only, so it can be printed, served and logged safely.
//!
//! A header is flagged for its name or for its value, and each header at most once per reason:
//!
//! 1. its name is a known tracking header ([`Reason::TrackingId`]) or on the built-in identity
//!    list ([`Reason::IdentityHeader`]), whatever the (non-empty) value — names compare as
//!    [`headwall_policy::normalize_header_name`] does, ignoring case and punctuation runs;
//! 2. otherwise its value holds a plausible phone number ([`Reason::PhoneNumber`]) or IMSI
//!    ([`Reason::Imsi`]), in any header, familiar or not. See `number.rs` for the rules and
//!    `tables.rs` for the numbering data behind them.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

mod number;
mod tables;

/// The result of inspecting one request's headers.
///
/// Serialises as the leak-check API's body (docs/design.md, "Leak check and canary"):
/// `{"verdict":"leak","findings":[{"header":..,"reason":..,"redacted":..}],"headers_seen":12}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// [`Verdict::Leak`] when there is any finding.
    pub verdict: Verdict,
    /// The findings, in the order the headers arrived.
    pub findings: Vec<Finding>,
    /// How many header fields were inspected (a repeated name counts each time).
    pub headers_seen: usize,
}

/// Whether a request carried identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At least one header carried subscriber identity.
    Leak,
    /// No header did.
    Clean,
}

/// One header that carried identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The header name as received (HTTP servers built on hyper receive it lowercased).
    pub header: String,
    /// Why it was flagged.
    pub reason: Reason,
    /// The value with all but its last 3 characters masked; never the value itself.
    pub redacted: String,
}

/// Why a header was flagged. Serialised as [`Reason::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The header name is on the built-in identity header list.
    IdentityHeader,
    /// The value holds a phone number.
    PhoneNumber,
    /// The value holds an IMSI.
    Imsi,
    /// The header is an operator tracking header (e.g. Verizon's `X-UIDH`).
    TrackingId,
}

/// Inspects one request's headers (name, value), in arrival order.
pub fn inspect(headers: &[(String, String)]) -> Report {
    examine(headers).0
}

/// A header value as the leak-check page and API show it.
///
/// A `flagged` value has every character but its last 3 masked with `•` (a value of 3
/// characters or fewer is masked whole, so a flagged value never appears in full). In any other
/// value, every run of 7 or more ASCII digits is masked but its last 3 digits.
pub fn redact_value(value: &str, flagged: bool) -> String {
    if flagged {
        let count = value.chars().count();
        let shown = if count > VISIBLE_TAIL {
            VISIBLE_TAIL
        } else {
            0
        };
        return value
            .chars()
            .enumerate()
            .map(|(index, c)| if index + shown < count { MASK } else { c })
            .collect();
    }
    let mut redacted = String::with_capacity(value.len());
    let mut digits = String::new();
    // `None` ends the value, so that every character of it, NUL included, is kept.
    for c in value.chars().map(Some).chain(std::iter::once(None)) {
        if let Some(digit) = c.filter(char::is_ascii_digit) {
            digits.push(digit);
            continue;
        }
        if digits.len() >= MASKED_DIGIT_RUN {
            let shown = digits.len() - VISIBLE_TAIL;
            redacted.extend(std::iter::repeat_n(MASK, shown));
            redacted.push_str(&digits[shown..]);
        } else {
            redacted.push_str(&digits);
        }
        digits.clear();
        if let Some(other) = c {
            redacted.push(other);
        }
    }
    redacted
}

// === impl Verdict ===

impl Verdict {
    /// `leak` or `clean`, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Leak => "leak",
            Verdict::Clean => "clean",
        }
    }
}

// === impl Reason ===

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 4] = [
        Reason::IdentityHeader,
        Reason::TrackingId,
        Reason::PhoneNumber,
        Reason::Imsi,
    ];

    /// `identity_header`, `phone_number`, `imsi` or `tracking_id`: the API value, and a
    /// stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::IdentityHeader => "identity_header",
            Reason::PhoneNumber => "phone_number",
            Reason::Imsi => "imsi",
            Reason::TrackingId => "tracking_id",
        }
    }

    /// The reason serialised as `label`, if any.
    pub fn from_label(label: &str) -> Option<Reason> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == label)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The report and, for each header in order, the reasons it was flagged for (empty when it
/// was not): the page highlights rows by index, the API lists the findings.
pub(crate) fn examine(headers: &[(String, String)]) -> (Report, Vec<Vec<Reason>>) {
    let reasons: Vec<Vec<Reason>> = headers
        .iter()
        .map(|(name, value)| header_reasons(name, value))
        .collect();
    let findings: Vec<Finding> = headers
        .iter()
        .zip(&reasons)
        .flat_map(|((name, value), reasons)| {
            reasons.iter().map(move |&reason| Finding {
                header: name.clone(),
                reason,
                redacted: redact_value(value, true),
            })
        })
        .collect();
    let report = Report {
        verdict: if findings.is_empty() {
            Verdict::Clean
        } else {
            Verdict::Leak
        },
        findings,
        headers_seen: headers.len(),
    };
    (report, reasons)
}

/// Why one header is flagged: by name first (then the value is not looked into), else by value.
fn header_reasons(name: &str, value: &str) -> Vec<Reason> {
    let normalized = headwall_policy::normalize_header_name(name.trim());
    let has_value = !value.trim().is_empty();
    if tables::TRACKING_HEADERS.contains(&normalized.as_str()) {
        return if has_value {
            vec![Reason::TrackingId]
        } else {
            Vec::new()
        };
    }
    if IDENTITY_HEADERS.contains(&normalized.as_str()) {
        return if has_value {
            vec![Reason::IdentityHeader]
        } else {
            Vec::new()
        };
    }
    let found = number::scan(value, number::hint_for_key(&normalized));
    let mut reasons = Vec::new();
    if found.phone_number {
        reasons.push(Reason::PhoneNumber);
    }
    if found.imsi {
        reasons.push(Reason::Imsi);
    }
    reasons
}

/// The built-in identity header list, normalized, loaded once.
static IDENTITY_HEADERS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| headwall_policy::builtin_identity_headers().collect());

/// The masking character.
const MASK: char = '•';
/// Characters (or digits) left visible at the end of a masked value (or digit run).
const VISIBLE_TAIL: usize = 3;
/// Digit runs at least this long are masked in values that were not flagged.
const MASKED_DIGIT_RUN: usize = 7;

#[cfg(test)]
mod tests;
