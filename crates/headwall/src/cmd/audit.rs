//! `headwall audit subscriber | exposure | verify`: the regulator's three questions, answered
//! from the audit log. These commands and the admin API are the only places a subscriber number
//! is printed.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use headwall_audit::{
    AuditSource, DisclosureView, ExposedSubscriber, ExposureFilter, ExposureRow, SubscriberSet,
    TimeRange, Unallowed,
};

use super::check::plural;
use crate::cli::AuditCommand;

pub(crate) fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Subscriber {
            msisdn,
            from,
            to,
            json,
            config,
        } => {
            let config = match super::load_config(&config) {
                Ok(config) => config,
                Err(code) => return Ok(code),
            };
            let country_code = config
                .radius
                .as_ref()
                .and_then(|r| r.country_code.as_deref());
            let Some(msisdn) =
                headwall_radius::msisdn_from_calling_station_id(&msisdn, country_code)
            else {
                eprintln!(
                    "headwall audit subscriber: not a subscriber number; give international \
                     digits (447700900123), +CC… or 00CC…, or a national 0… number with \
                     [radius].country_code set"
                );
                return Ok(ExitCode::from(1));
            };
            let range = TimeRange { from, to };
            let source = crate::runtime::audit_source(&config.audit.backend);
            let records = match query(source.subscriber(&msisdn, range))? {
                Ok(records) => records,
                Err(code) => return Ok(code),
            };
            if json {
                print_json(&headwall_audit::subscriber_json(&msisdn, range, &records));
            } else {
                print!("{}", subscriber_text(&msisdn, range, &records));
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Exposure {
            host,
            partner,
            from,
            to,
            against,
            subscribers,
            json,
            config,
        } => {
            let config = match super::load_config(&config) {
                Ok(config) => config,
                Err(code) => return Ok(code),
            };
            let host = match host
                .map(|h| headwall_policy::normalize_host(&h))
                .transpose()
            {
                Ok(host) => host,
                Err(error) => {
                    eprintln!("headwall audit exposure: --host: {error}");
                    return Ok(ExitCode::from(1));
                }
            };
            let filter = ExposureFilter {
                host,
                partner,
                range: TimeRange { from, to },
            };
            let source = crate::runtime::audit_source(&config.audit.backend);
            if subscribers {
                return subscribers_answer(&source, &filter, json);
            }
            match against {
                None => {
                    let rows = match query(source.exposure(&filter))? {
                        Ok(rows) => rows,
                        Err(code) => return Ok(code),
                    };
                    if json {
                        print_json(&headwall_audit::exposure_json(&filter, &rows));
                    } else {
                        print!("{}", exposure_table(&rows, filter.range));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(policy_path) => {
                    let policy = match load_policy(&policy_path) {
                        Ok(policy) => policy,
                        Err(code) => return Ok(code),
                    };
                    against_answer(&source, &policy, &policy_path, &filter, json)
                }
            }
        }
        AuditCommand::Verify { config } => {
            let config = match super::load_config(&config) {
                Ok(config) => config,
                Err(code) => return Ok(code),
            };
            let source = crate::runtime::audit_source(&config.audit.backend);
            let place = match &source {
                AuditSource::Embedded(path) => path.display().to_string(),
                AuditSource::Postgres { .. } => "PostgreSQL audit log".to_owned(),
            };
            let seed = crate::keys::read_key(&config.identity.signing_key_file)?;
            let public_key = headwall_identity::SigningKey::from_seed(&seed)
                .map_err(|error| anyhow::anyhow!("signing key: {error}"))?
                .public_key_bytes();
            match query(source.verify(&public_key))? {
                Err(code) => Ok(code),
                Ok(Err(failure)) => {
                    println!("{place}: audit log damaged: {failure}");
                    Ok(ExitCode::from(1))
                }
                Ok(Ok(report)) => {
                    let reaches = match (&report.checkpoint, report.nodes.len()) {
                        (Some(checkpoint), _) => format!(
                            "; reaches the signed checkpoint of {}",
                            headwall_audit::time::format_rfc3339(checkpoint.ts)
                        ),
                        (None, 0) => "; no checkpoint yet (written every minute while records \
                                      arrive, and at shutdown)"
                            .to_owned(),
                        (None, nodes) => {
                            format!("; {nodes} nodes, each checked to its latest checkpoint")
                        }
                    };
                    println!(
                        "{place}: audit log intact: {}, {}{reaches}",
                        plural(report.disclosures, "disclosure", "disclosures"),
                        plural(report.security_events, "security event", "security events"),
                    );
                    for node in &report.nodes {
                        println!(
                            "  node {}: {}, {}",
                            node.node,
                            plural(node.disclosures, "disclosure", "disclosures"),
                            plural(node.security_events, "security event", "security events"),
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
    }
}

/// Runs one audit query; an unreachable or unreadable log prints why and exits 2.
fn query<T>(
    work: impl std::future::Future<Output = Result<T, String>>,
) -> anyhow::Result<Result<T, ExitCode>> {
    Ok(super::runtime()?.block_on(work).map_err(|reason| {
        eprintln!("{reason}");
        ExitCode::from(super::EXIT_CANNOT_RUN)
    }))
}

/// The human answer of `audit subscriber` (also shown by `demo`).
pub(super) fn subscriber_text(
    msisdn: &headwall_identity::Msisdn,
    range: TimeRange,
    records: &[DisclosureView],
) -> String {
    let mut out = format!(
        "Disclosures of subscriber {} {}: {}\n",
        msisdn.expose_digits(),
        describe_range(range),
        records.len()
    );
    if !records.is_empty() {
        out.push('\n');
        out.push_str(&disclosure_table(records));
    }
    out
}

/// A whole config file as a policy (only its `[[partner]]` tables matter); prints why not.
fn load_policy(path: &Path) -> Result<headwall_policy::Policy, ExitCode> {
    crate::config::load_policy(path).map_err(|error| {
        eprintln!("{error}");
        ExitCode::from(error.exit_code())
    })
}

fn print_json(value: &serde_json::Value) {
    // A Value always serializes.
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn describe_range(range: TimeRange) -> String {
    let time = headwall_audit::time::format_rfc3339;
    match (range.from, range.to) {
        (None, None) => "(all records)".to_owned(),
        (Some(from), None) => format!("(from {})", time(from)),
        (None, Some(to)) => format!("(before {})", time(to)),
        (Some(from), Some(to)) => format!("(from {} to {})", time(from), time(to)),
    }
}

fn disclosure_table(records: &[DisclosureView]) -> String {
    let header = [
        "TIME",
        "PARTNER",
        "PURPOSE",
        "DESTINATION",
        "HEADERS (KINDS)",
        "UPSTREAM",
        "CLIENT",
    ];
    let rows: Vec<Vec<String>> = records.iter().map(record_cells).collect();
    table(&header, &rows)
}

/// A record's cells in a table, without its subscriber: time, partner, purpose, destination,
/// headers with kinds, upstream, client.
fn record_cells(record: &DisclosureView) -> Vec<String> {
    // An API answer's "host" is its endpoint path (docs/design.md, "HTTPS: network-based
    // authentication and the CAMARA APIs"): say what the client learned.
    let (destination, what) = if headwall_policy::is_api_endpoint(&record.host) {
        (format!("API {}", record.host), api_learned(record))
    } else {
        (
            format!("{}:{}", record.host, record.port),
            headers_with_kinds(&record.headers, &record.kinds),
        )
    };
    vec![
        record.time.clone(),
        record.partner.clone(),
        record.purpose.clone(),
        destination,
        what,
        record.upstream_ip.clone(),
        record.client_ip.clone(),
    ]
}

/// What an API client learned from one answer, in words: `learned: number matches (true)`.
fn api_learned(record: &DisclosureView) -> String {
    let kind = record.kinds.first().map(String::as_str).unwrap_or_default();
    let fields = record.headers.join(", ");
    let what = match kind {
        "number_match" if fields.ends_with("=true") => "number matches (true)".to_owned(),
        "number_match" => "number does not match (false)".to_owned(),
        "msisdn" => "the number itself".to_owned(),
        "pseudonym" => "its pairwise sub for the subscriber".to_owned(),
        "age_check" => format!("age check ({fields})"),
        other => format!("{other} ({fields})"),
    };
    format!("learned: {what}")
}

fn exposure_table(rows: &[ExposureRow], range: TimeRange) -> String {
    let total: i64 = rows.iter().map(|row| row.disclosures).sum();
    let mut out = format!(
        "Exposure {}: {}, {}\n",
        describe_range(range),
        plural(rows.len(), "partner/host pair", "partner/host pairs"),
        plural(total, "disclosure", "disclosures"),
    );
    if rows.is_empty() {
        return out;
    }
    out.push('\n');
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.partner.clone(),
                row.host.clone(),
                row.subscribers.to_string(),
                row.disclosures.to_string(),
                row.first.clone(),
                row.last.clone(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "PARTNER",
            "HOST",
            "SUBSCRIBERS",
            "DISCLOSURES",
            "FIRST",
            "LAST",
        ],
        &body,
    ));
    out
}

/// `audit exposure --subscribers`: prints each (partner, host) and under it every subscriber
/// disclosed to it, as the scan finds them (memory holds one row and the set of subscribers
/// seen), then the totals. Exit 0, or 2 when the log cannot be read.
fn subscribers_answer(
    source: &AuditSource,
    filter: &ExposureFilter,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let printer = Arc::new(Mutex::new(SubscribersPrinter::new(json)));
    if json {
        let head = format!(
            "{{\n  \"host\": {},\n  \"partner\": {},\n  \"from\": {},\n  \"to\": {},\n  \"subscribers\": [",
            serde_json::Value::from(filter.host.clone()),
            serde_json::Value::from(filter.partner.clone()),
            serde_json::Value::from(filter.range.from.map(headwall_audit::time::format_rfc3339)),
            serde_json::Value::from(filter.range.to.map(headwall_audit::time::format_rfc3339)),
        );
        lock(&printer).write(&head);
    } else {
        let head = format!("Subscribers exposed {}\n", describe_range(filter.range));
        lock(&printer).write(&head);
    }
    let visit = {
        let printer = printer.clone();
        move |exposed: ExposedSubscriber| lock(&printer).push(&exposed)
    };
    let outcome = super::runtime()?.block_on(source.exposed_subscribers_each(filter, visit));
    let mut printer = lock(&printer);
    let error = outcome.err();
    printer.finish(error.is_some());
    if let Some(error) = error {
        eprintln!("{error}");
        return Ok(ExitCode::from(super::EXIT_CANNOT_RUN));
    }
    if printer.out.broken {
        return Ok(ExitCode::from(super::EXIT_CANNOT_RUN));
    }
    Ok(ExitCode::SUCCESS)
}

/// The longest subscriber number (E.164: 15 digits), the text listing's first column.
const NUMBER_WIDTH: usize = 15;

/// The streamed answer of `--subscribers`, text or JSON.
struct SubscribersPrinter {
    json: bool,
    rows: u64,
    pairs: u64,
    current: Option<(String, String)>,
    distinct: SubscriberSet,
    out: Out,
}

impl SubscribersPrinter {
    fn new(json: bool) -> SubscribersPrinter {
        SubscribersPrinter {
            json,
            rows: 0,
            pairs: 0,
            current: None,
            distinct: SubscriberSet::default(),
            out: Out::default(),
        }
    }

    fn write(&mut self, text: &str) {
        self.out.write(text);
    }

    /// Prints one subscriber; `false` stops the scan (stdout is gone).
    fn push(&mut self, exposed: &ExposedSubscriber) -> bool {
        self.rows += 1;
        self.distinct.insert(&exposed.msisdn);
        let new_pair = self
            .current
            .as_ref()
            .is_none_or(|(partner, host)| *partner != exposed.partner || *host != exposed.host);
        if new_pair {
            self.pairs += 1;
            self.current = Some((exposed.partner.clone(), exposed.host.clone()));
        }
        if self.json {
            // A struct of strings and numbers always serializes.
            let item = serde_json::to_string(exposed).unwrap_or_default();
            let separator = if self.rows == 1 { "" } else { "," };
            self.write(&format!("{separator}\n    {item}"));
        } else {
            if new_pair {
                self.write(&format!(
                    "\n{} {}\n  {:<NUMBER_WIDTH$}  {:>11}  {:<24}  LAST\n",
                    exposed.partner, exposed.host, "SUBSCRIBER", "DISCLOSURES", "FIRST"
                ));
            }
            self.write(&format!(
                "  {:<NUMBER_WIDTH$}  {:>11}  {:<24}  {}\n",
                exposed.msisdn, exposed.disclosures, exposed.first, exposed.last
            ));
        }
        !self.out.broken
    }

    /// The totals; after a failed read, says the list is incomplete.
    fn finish(&mut self, failed: bool) {
        let (rows, pairs, distinct) = (self.rows, self.pairs, self.distinct.len());
        if self.json {
            self.write(&format!(
                "\n  ],\n  \"complete\": {},\n  \"pairs\": {pairs},\n  \"distinct_subscribers\": {distinct}\n}}\n",
                !failed
            ));
        } else {
            let pairs_word = if pairs == 1 { "pair" } else { "pairs" };
            let subscribers_word = if distinct == 1 {
                "subscriber"
            } else {
                "subscribers"
            };
            let incomplete = if failed {
                " (INCOMPLETE: the read failed)"
            } else {
                ""
            };
            self.write(&format!(
                "\n{distinct} distinct {subscribers_word} over {pairs} partner/host \
                 {pairs_word} ({rows} lines){incomplete}\n"
            ));
        }
        self.out.flush();
    }
}

/// `audit exposure --against`: prints each disclosure the policy would not have allowed as the
/// scan finds it (memory holds one record, the column widths and the set of subscribers seen),
/// then the count. Exit 1 when there is any, 2 when the log cannot be read.
fn against_answer(
    source: &AuditSource,
    policy: &headwall_policy::Policy,
    policy_path: &Path,
    filter: &ExposureFilter,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let printer = Arc::new(Mutex::new(AgainstPrinter::new(json)));
    if json {
        let head = format!(
            "{{\n  \"policy\": {},\n  \"policy_hash\": {},\n  \"unallowed\": [",
            serde_json::Value::from(policy_path.display().to_string()),
            serde_json::Value::from(policy.hash()),
        );
        lock(&printer).write(&head);
    }
    let visit = {
        let printer = printer.clone();
        move |unallowed: Unallowed| lock(&printer).push(&unallowed)
    };
    let outcome = super::runtime()?.block_on(source.against_each(policy, filter, visit));
    let mut printer = lock(&printer);
    let error = outcome.err();
    printer.finish(policy_path, filter.range, error.as_deref());
    if let Some(error) = error {
        eprintln!("{error}");
        return Ok(ExitCode::from(super::EXIT_CANNOT_RUN));
    }
    if printer.out.broken {
        return Ok(ExitCode::from(super::EXIT_CANNOT_RUN));
    }
    Ok(if printer.found == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn lock<T>(printer: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    printer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Rows held back to size the text table's columns; later rows use the same widths.
const WIDTH_SAMPLE: usize = 500;

/// The streamed answer of `--against`, text or JSON.
struct AgainstPrinter {
    json: bool,
    found: u64,
    subscribers: SubscriberSet,
    /// Text: the first rows, until the column widths are fixed.
    held: Vec<Vec<String>>,
    widths: Option<Vec<usize>>,
    out: Out,
}

/// Stdout for a streamed answer, which notices when it went away (a closed pipe): the scan
/// then stops.
struct Out {
    broken: bool,
    out: std::io::Stdout,
}

impl Default for Out {
    fn default() -> Out {
        Out {
            broken: false,
            out: std::io::stdout(),
        }
    }
}

impl Out {
    fn write(&mut self, text: &str) {
        if !self.broken && self.out.lock().write_all(text.as_bytes()).is_err() {
            self.broken = true;
        }
    }

    fn flush(&mut self) {
        if !self.broken && self.out.lock().flush().is_err() {
            self.broken = true;
        }
    }
}

pub(crate) const AGAINST_HEADER: [&str; 9] = [
    "TIME",
    "SUBSCRIBER",
    "PARTNER",
    "PURPOSE",
    "DESTINATION",
    "HEADERS (KINDS)",
    "UPSTREAM",
    "CLIENT",
    "WHY NOT ALLOWED",
];

impl AgainstPrinter {
    fn new(json: bool) -> AgainstPrinter {
        AgainstPrinter {
            json,
            found: 0,
            subscribers: SubscriberSet::default(),
            held: Vec::new(),
            widths: None,
            out: Out::default(),
        }
    }

    fn write(&mut self, text: &str) {
        self.out.write(text);
    }

    /// Prints one finding; `false` stops the scan (stdout is gone).
    fn push(&mut self, unallowed: &Unallowed) -> bool {
        self.found += 1;
        self.subscribers.insert(&unallowed.record.msisdn);
        if self.json {
            // A struct of strings and numbers always serializes.
            let item = serde_json::to_string_pretty(unallowed).unwrap_or_default();
            let item = item.replace('\n', "\n    ");
            let separator = if self.found == 1 { "" } else { "," };
            self.write(&format!("{separator}\n    {item}"));
        } else {
            let row = against_row(unallowed);
            match &self.widths {
                Some(widths) => {
                    let line = table_line(widths, &row);
                    self.write(&line);
                }
                None => {
                    self.held.push(row);
                    if self.held.len() >= WIDTH_SAMPLE {
                        self.release();
                    }
                }
            }
        }
        !self.out.broken
    }

    /// Fixes the column widths from the rows held, and prints them.
    fn release(&mut self) {
        let header: Vec<String> = AGAINST_HEADER.iter().map(|h| (*h).to_owned()).collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &self.held {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut text = table_line(&widths, &header);
        for row in std::mem::take(&mut self.held) {
            text.push_str(&table_line(&widths, &row));
        }
        self.widths = Some(widths);
        self.write(&text);
    }

    /// The end of the answer: the JSON document's close (with the error, if the scan failed),
    /// or the text count.
    fn finish(&mut self, policy: &Path, range: TimeRange, error: Option<&str>) {
        if self.json {
            let tail = match error {
                None => "\n  ]\n}\n".to_owned(),
                Some(error) => format!(
                    "\n  ],\n  \"error\": {}\n}}\n",
                    serde_json::Value::from(error)
                ),
            };
            self.write(&tail);
        } else {
            if self.found > 0 && self.widths.is_none() {
                self.release();
            }
            let blank = if self.found > 0 { "\n" } else { "" };
            let summary = format!(
                "{blank}Disclosures {} that {} would not have allowed: {} ({}){}\n",
                describe_range(range),
                policy.display(),
                self.found,
                plural(self.subscribers.len(), "subscriber", "subscribers"),
                if error.is_some() {
                    " before the scan failed"
                } else {
                    ""
                }
            );
            self.write(&summary);
        }
        self.out.flush();
    }
}

/// `X-Name (kind), X-Other (kind)`: each header with the kind of value it carried.
fn headers_with_kinds(headers: &[String], kinds: &[String]) -> String {
    let pairs: Vec<String> = headers
        .iter()
        .zip(kinds)
        .map(|(name, kind)| format!("{name} ({kind})"))
        .collect();
    pairs.join(", ")
}

/// A finding's cells: the record's, with its subscriber after the time, then the reason.
pub(crate) fn against_row(unallowed: &Unallowed) -> Vec<String> {
    let mut cells = record_cells(&unallowed.record);
    cells.insert(1, unallowed.record.msisdn.clone());
    cells.push(unallowed.reason.clone());
    cells
}

/// Left-aligned columns, two spaces apart, widths from the widest cell.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut out = table_line(&widths, &header);
    for row in rows {
        out.push_str(&table_line(&widths, row));
    }
    out
}

/// One line of [`table`]: each cell but the last padded to its column's width.
fn table_line(widths: &[usize], cells: &[String]) -> String {
    let mut text = String::new();
    for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if index + 1 == cells.len() {
            text.push_str(cell);
        } else {
            text.push_str(&format!("{cell:<width$}  "));
        }
    }
    let mut line = text.trim_end().to_owned();
    line.push('\n');
    line
}
