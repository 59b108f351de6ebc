//! `headwall audit subscriber | exposure | verify`: the regulator's three questions, answered
//! from the audit log. These commands and the admin API are the only places a subscriber number
//! is printed.

use std::path::Path;
use std::process::ExitCode;

use headwall_audit::{
    AuditSource, DisclosureView, ExposureFilter, ExposureRow, TimeRange, Unallowed,
};
use serde_json::json;

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
                    let found = match query(source.against(&policy, &filter))? {
                        Ok(found) => found,
                        Err(code) => return Ok(code),
                    };
                    if json {
                        print_json(&json!({
                            "policy": policy_path.display().to_string(),
                            "policy_hash": policy.hash(),
                            "unallowed": found,
                        }));
                    } else {
                        print!("{}", against_table(&found, &policy_path, filter.range));
                    }
                    Ok(if found.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
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
                AuditSource::Postgres(_) => "PostgreSQL audit log".to_owned(),
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
                        "{place}: audit log intact: {} disclosures, {} security events{reaches}",
                        report.disclosures, report.security_events
                    );
                    for node in &report.nodes {
                        println!(
                            "  node {}: {} disclosures, {} security events",
                            node.node, node.disclosures, node.security_events
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
        out.push_str(&disclosure_table(records, None));
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

fn disclosure_table(records: &[DisclosureView], reasons: Option<&[&str]>) -> String {
    let mut header = vec![
        "TIME",
        "PARTNER",
        "PURPOSE",
        "DESTINATION",
        "HEADERS (KINDS)",
        "UPSTREAM",
        "CLIENT",
    ];
    if reasons.is_some() {
        header.insert(1, "SUBSCRIBER");
        header.push("WHY NOT ALLOWED");
    }
    let mut rows = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let headers: Vec<String> = record
            .headers
            .iter()
            .zip(&record.kinds)
            .map(|(name, kind)| format!("{name} ({kind})"))
            .collect();
        let mut row = vec![
            record.time.clone(),
            record.partner.clone(),
            record.purpose.clone(),
            format!("{}:{}", record.host, record.port),
            headers.join(", "),
            record.upstream_ip.clone(),
            record.client_ip.clone(),
        ];
        if let Some(reasons) = reasons {
            row.insert(1, record.msisdn.clone());
            row.push(reasons.get(index).copied().unwrap_or_default().to_owned());
        }
        rows.push(row);
    }
    table(&header, &rows)
}

fn exposure_table(rows: &[ExposureRow], range: TimeRange) -> String {
    let total: i64 = rows.iter().map(|row| row.disclosures).sum();
    let mut out = format!(
        "Exposure {}: {} partner/host pairs, {total} disclosures\n",
        describe_range(range),
        rows.len()
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

fn against_table(found: &[Unallowed], policy: &Path, range: TimeRange) -> String {
    let subscribers: std::collections::BTreeSet<&str> =
        found.iter().map(|u| u.record.msisdn.as_str()).collect();
    let mut out = format!(
        "Disclosures {} that {} would not have allowed: {} ({} subscribers)\n",
        describe_range(range),
        policy.display(),
        found.len(),
        subscribers.len()
    );
    if found.is_empty() {
        return out;
    }
    out.push('\n');
    let records: Vec<DisclosureView> = found.iter().map(|u| u.record.clone()).collect();
    let reasons: Vec<&str> = found.iter().map(|u| u.reason.as_str()).collect();
    out.push_str(&disclosure_table(&records, Some(&reasons)));
    out
}

/// Left-aligned columns, two spaces apart, widths from the widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
