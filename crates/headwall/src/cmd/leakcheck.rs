//! `headwall leakcheck [--listen ADDR]`: the public leak-check page and API.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

pub(crate) fn run(listen: SocketAddr) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (--listen)"))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "headwall leakcheck ready");
        headwall_leakcheck::serve(listener, super::terminated()).await?;
        Ok(ExitCode::SUCCESS)
    })
}
