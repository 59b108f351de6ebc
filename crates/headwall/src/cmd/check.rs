//! `headwall check`: validate a configuration, then preflight it (crate::preflight): what
//! `serve` would refuse to start with is an error, what an operator should look at a warning.
//! Exit 0 with warnings only, 1 on any error, 2 when the file cannot be read.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::cli::ConfigArgs;
use crate::config::LoadError;
use crate::preflight::{self, Severity};

pub(crate) fn run(args: &ConfigArgs, json: bool) -> ExitCode {
    let shown = args.config.display().to_string();
    let config = match args.source().load() {
        Ok(config) => config,
        Err(error) => {
            if json {
                print_json(&refused(&shown, &error));
            } else {
                eprintln!("{error}");
            }
            return ExitCode::from(error.exit_code());
        }
    };
    let findings = preflight::run(&config);
    let errors = findings
        .iter()
        .filter(|finding| finding.severity == Severity::Error)
        .count();
    let partners = config.policy.partners().len();
    let clients = config.policy.api_clients().len();
    if json {
        let findings: Vec<Value> = findings
            .iter()
            .map(|finding| json!({"severity": finding.severity.as_str(), "message": finding.message}))
            .collect();
        print_json(&json!({
            "config": shown,
            "ok": errors == 0,
            "partners": partners,
            "api_clients": clients,
            "policy_hash": config.policy.hash(),
            "findings": findings,
        }));
    } else {
        for finding in &findings {
            eprintln!(
                "{shown}: {}: {}",
                finding.severity.as_str(),
                finding.message
            );
        }
        if errors == 0 {
            let clients = match clients {
                0 => String::new(),
                n => format!(", {}", plural(n, "API client", "API clients")),
            };
            let warnings = match findings.len() {
                0 => String::new(),
                n => format!(", {}", plural(n, "warning", "warnings")),
            };
            println!(
                "{shown}: ok ({}{clients}, policy {}{warnings})",
                plural(partners, "partner", "partners"),
                config.policy.hash()
            );
        }
    }
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `1 partner`, `2 partners`.
pub(crate) fn plural(
    n: impl TryInto<u64> + std::fmt::Display + Copy,
    one: &str,
    many: &str,
) -> String {
    if n.try_into().ok() == Some(1) {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `check --json` for a configuration that did not load: its errors with their positions.
fn refused(shown: &str, error: &LoadError) -> Value {
    let findings: Vec<Value> = match error {
        LoadError::Invalid(errors) => errors
            .0
            .iter()
            .map(|e| {
                json!({
                    "severity": "error",
                    "file": e.file,
                    "line": e.line,
                    "column": e.column,
                    "message": e.message,
                })
            })
            .collect(),
        LoadError::Unreadable(..) => {
            vec![json!({"severity": "error", "message": error.to_string()})]
        }
    };
    json!({"config": shown, "ok": false, "findings": findings})
}

fn print_json(value: &Value) {
    println!("{value:#}");
}
