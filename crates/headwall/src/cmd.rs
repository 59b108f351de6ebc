//! One file per command; `run` maps each to an exit code (DESIGN: 0 ok, 1 error or finding,
//! 2 cannot run, 3 plan widened).

mod audit;
mod check;
mod demo;
mod keygen;
mod plan;
mod serve;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Exit code for "cannot run": unreadable files, unbindable addresses.
pub(crate) const EXIT_CANNOT_RUN: u8 = 2;

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => serve::run(&config),
        Command::Demo { keep_running, .. } => demo::run(keep_running),
        Command::Check { config } => Ok(check::run(&config)),
        Command::Plan {
            from,
            to,
            json,
            fail_on_widen,
        } => Ok(plan::run(&from, &to, json, fail_on_widen)),
        Command::Audit { command } => audit::run(command),
        Command::Keygen { out } => keygen::run(&out),
        Command::Leakcheck { .. } => {
            anyhow::bail!("`headwall leakcheck` is not built yet")
        }
    }
}

/// Loads a configuration for a command, printing why it cannot: `Err` carries the exit code
/// (1 invalid, 2 unreadable).
pub(crate) fn load_config(path: &std::path::Path) -> Result<headwall_policy::Config, ExitCode> {
    crate::config::load(path).map_err(|error| {
        eprintln!("{error}");
        ExitCode::from(error.exit_code())
    })
}

/// The runtime every command that serves uses.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
