//! Wiring: from a loaded configuration to running listeners. Shared by `serve` and `demo`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use headwall_policy::Config;
use headwall_proxy::{Gateway, GatewaySettings};
use headwall_sessions::{Profiles, SessionTable};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running gateway: its listeners' addresses and a way to stop it.
pub(crate) struct Running {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) explicit_addr: SocketAddr,
    pub(crate) admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Loads keys and profiles, binds every listener and starts serving.
pub(crate) async fn start(config: &Config) -> anyhow::Result<Running> {
    let keys = crate::keys::identity_keys(&config.identity)?;
    let profiles = match &config.subscribers {
        Some(subscribers) => load_profiles(&subscribers.file)?,
        None => Profiles::default(),
    };
    let sessions = Arc::new(SessionTable::new(config.sessions.stale_after.as_secs()));
    let gateway = Gateway::new(
        GatewaySettings::from_config(&config.gateway),
        config.policy.clone(),
        sessions,
        profiles,
        keys,
    );
    tracing::info!(
        policy.hash = gateway.policy().policy.hash(),
        partners = gateway.policy().policy.partners().len(),
        "policy loaded"
    );

    let explicit = TcpListener::bind(config.gateway.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} ([gateway].listen)",
                config.gateway.listen
            )
        })?;
    let admin = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("cannot listen on {} ([admin].listen)", config.admin.listen))?;
    let explicit_addr = explicit.local_addr()?;
    let admin_addr = admin.local_addr()?;

    let (shutdown, watcher) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(
        gateway
            .clone()
            .serve_explicit(explicit, stopped(watcher.clone())),
    ));
    let admin_state = headwall_admin::AdminState {
        jwks: gateway.token_issuer().jwks_json().into(),
    };
    let admin_watcher = watcher.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(error) = headwall_admin::serve(admin, admin_state, stopped(admin_watcher)).await
        {
            tracing::warn!(%error, "admin listener failed");
        }
    }));
    Ok(Running {
        gateway,
        explicit_addr,
        admin_addr,
        shutdown,
        tasks,
    })
}

impl Running {
    /// Stops accepting and waits for the listener tasks.
    pub(crate) async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn stopped(mut watcher: watch::Receiver<bool>) {
    let _ = watcher.wait_for(|stop| *stop).await;
}

fn load_profiles(path: &std::path::Path) -> anyhow::Result<Profiles> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read [subscribers].file", path.display()))?;
    Profiles::parse(&path.display().to_string(), &text).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })
}
