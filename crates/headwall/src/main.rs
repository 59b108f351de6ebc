//! `headwall`: the header-enrichment gateway that cannot leak. See README.md and docs/design.md.

mod canary;
mod cli;
mod cmd;
mod config;
mod keys;
mod preflight;
mod private;
mod runtime;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    private::create_owner_only();
    let cli = cli::Cli::parse();
    // The demo's output is its report: keep the log to warnings unless asked for more.
    let default_filter = match cli.command {
        cli::Command::Demo { .. } => "warn",
        _ => "info",
    };
    init_tracing(default_filter);
    match cmd::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("headwall: {error:#}");
            ExitCode::from(cmd::EXIT_CANNOT_RUN)
        }
    }
}

/// Logs go to stderr; the filter comes from `HEADWALL_LOG` (default `info`; `warn` for demo).
/// `HEADWALL_LOG_FORMAT=json` writes one JSON object per line (for journald or a collector).
fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEADWALL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // A closed stderr (a dead pipe, a restarted journal) must never stop the gateway: by
    // default the subscriber reports write errors with eprintln!, which panics then.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .log_internal_errors(false);
    if std::env::var("HEADWALL_LOG_FORMAT").is_ok_and(|format| format == "json") {
        builder.json().flatten_event(true).init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}
