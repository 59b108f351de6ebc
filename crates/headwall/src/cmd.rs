//! One file per command; `run` maps each to an exit code (docs/design.md, Command line: 0 ok,
//! 1 error or finding, 2 cannot run, 3 plan widened).

mod audit;
mod check;
mod demo;
mod keygen;
mod leakcheck;
mod plan;
mod probe;
mod serve;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Exit code for "cannot run": unreadable files, unbindable addresses.
pub(crate) const EXIT_CANNOT_RUN: u8 = 2;

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => serve::run(&config),
        Command::Demo { keep_running, .. } => demo::run(keep_running),
        Command::Check { config, json } => Ok(check::run(&config, json)),
        Command::Plan {
            from,
            to,
            json,
            fail_on_widen,
        } => Ok(plan::run(&from, &to, json, fail_on_widen)),
        Command::Audit { command } => audit::run(command),
        Command::Keygen { out, tls } => keygen::run(&out, &tls),
        Command::Leakcheck { listen } => leakcheck::run(listen),
        Command::Probe { proxy, check_url } => probe::run(&proxy, &check_url),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "headwall", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out } => man(&out),
    }
}

/// `headwall man --out DIR`: `headwall.1` and `headwall-COMMAND.1` for each command (and
/// `headwall-audit-SUBCOMMAND.1`), from the same definitions as `--help`.
fn man(out: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    let command = <Cli as clap::CommandFactory>::command();
    clap_mangen::generate_to(command, out).with_context(|| format!("{}", out.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// Loads a configuration for a command, printing why it cannot: `Err` carries the exit code
/// (1 invalid, 2 unreadable).
pub(crate) fn load_config(
    args: &crate::cli::ConfigArgs,
) -> Result<headwall_policy::Config, ExitCode> {
    args.source().load().map_err(|error| {
        eprintln!("{error}");
        ExitCode::from(error.exit_code())
    })
}

/// The runtime every command that serves uses. `HEADWALL_WORKER_THREADS=N` sets the number of
/// worker threads (default: one per CPU); benchmarks pin the gateway to one CPU with `1`.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Ok(value) = std::env::var("HEADWALL_WORKER_THREADS") {
        let threads: usize =
            value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                anyhow::anyhow!("HEADWALL_WORKER_THREADS must be a positive number")
            })?;
        builder.worker_threads(threads);
    }
    Ok(builder.enable_all().build()?)
}

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn terminated() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
