//! `headwall serve`: run the gateway; SIGHUP reloads, SIGTERM or Ctrl-C drains and stops.

use std::process::ExitCode;

use crate::cli::ConfigArgs;

pub(crate) fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let source = args.source();
    let config = match source.load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::from(error.exit_code()));
        }
    };
    // What `check` would call an error stops the start before anything is created.
    let mut refused = false;
    for finding in crate::preflight::run(&config) {
        match finding.severity {
            crate::preflight::Severity::Error => {
                eprintln!("{}: error: {}", source.path.display(), finding.message);
                refused = true;
            }
            crate::preflight::Severity::Warning => tracing::warn!("{}", finding.message),
        }
    }
    if refused {
        eprintln!("headwall: not started; `headwall check` shows the same findings");
        return Ok(ExitCode::from(super::EXIT_CANNOT_RUN));
    }
    if cfg!(feature = "bench-unaudited")
        && let Some(code) = refuse_unaudited(&config)
    {
        return Ok(code);
    }
    super::runtime()?.block_on(async {
        let running = crate::runtime::start(&config, &source).await?;
        let off_or = |addr: Option<std::net::SocketAddr>| {
            addr.map_or_else(|| "off".to_owned(), |addr| addr.to_string())
        };
        let radius = off_or(running.radius_addr);
        let transparent = off_or(running.transparent_addr);
        let api = off_or(running.api_addr);
        tracing::info!(
            explicit = %running.explicit_addr,
            transparent = %transparent,
            admin = %running.admin_addr,
            radius = %radius,
            api = %api,
            "headwall ready"
        );
        serve_signals(&running).await?;
        tracing::info!("draining and shutting down");
        running.stop().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// A `bench-unaudited` build discloses without an audit row: it serves loopback listeners only,
/// so it can never carry subscriber traffic by mistake.
fn refuse_unaudited(config: &headwall_policy::Config) -> Option<ExitCode> {
    let gateway = &config.gateway;
    let listeners = std::iter::once(gateway.listen).chain(gateway.transparent_listen);
    if listeners.into_iter().all(|addr| addr.ip().is_loopback()) {
        tracing::warn!("BENCHMARK BUILD (bench-unaudited): disclosures are NOT recorded");
        return None;
    }
    eprintln!(
        "headwall: this is a benchmark build (feature bench-unaudited) that does not record \
         disclosures; it serves loopback listeners only. Use a normal build."
    );
    Some(ExitCode::from(2))
}

/// SIGHUP reloads; SIGTERM or Ctrl-C returns (to drain and stop).
async fn serve_signals(running: &crate::runtime::Running) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            _ = hangup.recv() => {
                running.reopen_logs();
                // The outcome is logged by the reload itself.
                let _ = running.reload().await;
            }
        }
    }
}
