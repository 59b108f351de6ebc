//! The leak-check page: a verdict in plain words, then every header received, redacted.

use std::fmt::Write as _;

use crate::detect::{self, Reason, Report, Verdict, redact_value};

/// The HTML page for one request's headers (name, value) in arrival order.
///
/// Self-contained (inline CSS, no scripts, images or fonts) and readable on a phone. Values are
/// redacted with [`redact_value`] and HTML-escaped; names are escaped.
pub(crate) fn render(headers: &[(String, String)]) -> String {
    let (report, reasons) = detect::examine(headers);
    let (headline, explanation) = verdict_text(&report);
    let verdict_class = report.verdict.as_str();

    let mut html = String::with_capacity(4096 + headers.len() * 160);
    html.push_str(HEAD_START);
    let _ = write!(html, "<title>Leak check: {}</title>", escape(headline));
    html.push_str(STYLE);
    html.push_str("</head>\n<body>\n<main>\n");
    let _ = write!(
        html,
        "<section class=\"verdict {verdict_class}\" role=\"status\">\n<h1>{}</h1>\n<p>{}</p>\n</section>\n",
        escape(headline),
        escape(explanation),
    );
    // On a phone the table may start below the fold: name the evidence in the verdict itself.
    if !report.findings.is_empty() {
        html.push_str("<ul class=\"evidence\">\n");
        for finding in &report.findings {
            let _ = writeln!(
                html,
                "<li><code>{}</code>: {}</li>",
                escape(&finding.header),
                escape(&finding.redacted)
            );
        }
        html.push_str("</ul>\n");
    }
    let _ = writeln!(
        html,
        "<h2>Headers this page received ({})</h2>",
        report.headers_seen
    );
    html.push_str(
        "<table>\n<thead><tr><th scope=\"col\">Header</th><th scope=\"col\">Value (redacted)</th>\
         <th scope=\"col\">Finding</th></tr></thead>\n<tbody>\n",
    );
    // Flagged headers first, then the rest, each in arrival order.
    let mut rows: Vec<_> = headers.iter().zip(&reasons).collect();
    rows.sort_by_key(|(_, reasons)| reasons.is_empty());
    for ((name, value), reasons) in rows {
        let flagged = !reasons.is_empty();
        let finding = reasons
            .iter()
            .map(|&reason| reason_label(reason))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            html,
            "<tr{}><td class=\"name\">{}</td><td class=\"value\">{}</td><td class=\"finding\">{}</td></tr>",
            if flagged { " class=\"flag\"" } else { "" },
            escape(name),
            escape(&redact_value(value, flagged)),
            if flagged {
                escape(&finding)
            } else {
                String::new()
            },
        );
    }
    html.push_str("</tbody>\n</table>\n");
    html.push_str(FOOTER);
    html.push_str("</main>\n</body>\n</html>\n");
    html
}

/// The headline and one sentence under it, worst finding first.
fn verdict_text(report: &Report) -> (&'static str, &'static str) {
    let has = |wanted: &[Reason]| {
        report
            .findings
            .iter()
            .any(|finding| wanted.contains(&finding.reason))
    };
    if report.verdict == Verdict::Clean {
        (
            "No identity headers seen",
            "None of the headers this page received carries a phone number, a SIM identity or an \
             operator tracking ID.",
        )
    } else if has(&[Reason::PhoneNumber, Reason::IdentityHeader]) {
        (
            "This connection tells every website your phone number",
            "Something between your phone and this page added the highlighted headers. Every \
             website you visit over plain HTTP can read them.",
        )
    } else if has(&[Reason::Imsi]) {
        (
            "This connection tells every website your SIM card's identity (IMSI)",
            "The IMSI identifies your SIM card to your mobile network. Every website you visit \
             over plain HTTP can read it in the highlighted headers.",
        )
    } else {
        (
            "This connection gives every website a tracking ID for you",
            "Your mobile network adds an ID that stays the same on every website you visit over \
             plain HTTP, even after you clear cookies.",
        )
    }
}

fn reason_label(reason: Reason) -> &'static str {
    match reason {
        Reason::IdentityHeader => "identity header",
        Reason::PhoneNumber => "phone number",
        Reason::Imsi => "SIM identity (IMSI)",
        Reason::TrackingId => "tracking ID",
    }
}

/// Escapes text for HTML element content and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

const HEAD_START: &str = "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"robots\" content=\"noindex\">\n";

const STYLE: &str = "\n<style>
:root { color-scheme: light dark; }
body { margin: 0; font: 16px/1.45 system-ui, -apple-system, \"Segoe UI\", Roboto, sans-serif; }
main { max-width: 48rem; margin: 0 auto; padding: 1rem; }
.verdict { border-radius: .6rem; padding: 1rem 1.1rem; margin-bottom: 1.5rem; color: #fff; }
.verdict h1 { font-size: 1.6rem; line-height: 1.2; margin: 0 0 .5rem; }
.verdict p { margin: 0; font-size: 1.05rem; }
.evidence { margin: -0.8rem 0 1.5rem; padding-left: 1.2rem; font-size: 1.05rem; }
.evidence code { font-weight: bold; }
.leak { background: #b3261e; }
.clean { background: #1e6b34; }
h2 { font-size: 1.1rem; margin: 0 0 .5rem; }
table { width: 100%; border-collapse: collapse; table-layout: fixed; }
th, td { text-align: left; vertical-align: top; padding: .45rem .4rem;
  border-bottom: 1px solid #8886; overflow-wrap: anywhere; }
th:nth-child(1) { width: 30%; } th:nth-child(3) { width: 22%; }
td.value { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .9rem; }
tr.flag td { background: #b3261e22; font-weight: 600; }
tr.flag td.finding { color: #b3261e; }
@media (prefers-color-scheme: dark) { tr.flag td.finding { color: #ff8a80; } }
@media (max-width: 30rem) {
  thead { display: none; }
  tr { display: block; border-bottom: 1px solid #8886; padding: .3rem 0; }
  td { display: block; border: 0; padding: .1rem .2rem; }
  td.finding:empty { display: none; }
}
footer { margin-top: 1.5rem; font-size: .9rem; opacity: .8; }
</style>\n";

const FOOTER: &str = "<footer>\n<p>Values are shown redacted: a flagged value only by its last 3 \
characters, long digit runs elsewhere by their last 3 digits. This page does not log or store the \
headers it receives.</p>\n<p>Only unencrypted (<code>http://</code>) requests can be enriched by \
a mobile network; check over mobile data, with Wi-Fi off. Machine-readable result: \
<a href=\"/api/v1/check\">/api/v1/check</a>.</p>\n</footer>\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn leak_page_leads_with_the_verdict_and_hides_the_number() {
        let page = render(&headers(&[
            ("host", "leakcheck.example"),
            ("x-msisdn", "447700900123"),
            ("cookie", "_ga=GA1.2.1234567890.1700000000"),
        ]));
        let verdict = page
            .find("This connection tells every website your phone number")
            .unwrap();
        assert!(verdict < page.find("<table>").unwrap());
        assert!(page.contains("<tr class=\"flag\"><td class=\"name\">x-msisdn</td>"));
        assert!(page.contains("•••••••••123"));
        assert!(!page.contains("7700900"));
        assert!(page.contains("_ga=GA1.2.•••••••890.•••••••000"));
        assert!(page.contains("name=\"viewport\""));
        // No external assets: nothing is fetched, so nothing else learns the page was read.
        for asset in ["src=", "<link", "<script", "url("] {
            assert!(!page.contains(asset), "{asset}");
        }
    }

    #[test]
    fn wording_follows_the_worst_finding() {
        let imsi = render(&headers(&[("x-sim", "234150999999999")]));
        assert!(imsi.contains("your SIM card&#39;s identity (IMSI)"));
        let tracking = render(&headers(&[("x-uidh", "OTgxNTk2NDk0ADJVquRu5NS5")]));
        assert!(tracking.contains("gives every website a tracking ID"));
        let clean = render(&headers(&[("accept", "*/*")]));
        assert!(clean.contains("<h1>No identity headers seen</h1>"));
        assert!(clean.contains("class=\"verdict clean\""));
    }

    #[test]
    fn escapes_names_and_values() {
        let page = render(&headers(&[("x-evil", "<script>alert('x')</script>&\"")]));
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
    }
}
