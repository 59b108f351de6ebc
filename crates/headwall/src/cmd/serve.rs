//! `headwall serve`: run the gateway until SIGTERM or Ctrl-C.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, LoadError};

pub(crate) fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(error @ LoadError::Invalid(_)) => {
            eprintln!("{error}");
            return Ok(ExitCode::from(1));
        }
        Err(error) => return Err(error.into()),
    };
    super::runtime()?.block_on(async {
        let running = crate::runtime::start(&config).await?;
        let radius = running
            .radius_addr
            .map_or_else(|| "off".to_owned(), |addr| addr.to_string());
        tracing::info!(
            explicit = %running.explicit_addr,
            admin = %running.admin_addr,
            radius = %radius,
            "headwall ready"
        );
        wait_for_signal().await?;
        tracing::info!("shutting down");
        running.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}
