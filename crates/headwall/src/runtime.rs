//! Wiring: from a loaded configuration to running listeners. Shared by `serve` and `demo`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ConfigSource;
use anyhow::Context;
use headwall_admin::{Readiness, ReloadError, ReloadReport, Reloader};

use headwall_audit::{AuditLog, AuditOptions};
use headwall_policy::{AuditBackend, Config, RadiusSecret, SessionsBackend};
use headwall_proxy::{Gateway, GatewaySettings};
use headwall_radius::{RadiusClient, RadiusMetrics, RadiusSettings};
use headwall_sessions::{Change, Profiles, RedisSessions, SessionStore, SessionTable, Sessions};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running gateway: its listeners' addresses and a way to stop it.
pub(crate) struct Running {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) explicit_addr: SocketAddr,
    /// The transparent listener, when `[gateway].transparent_listen` is set.
    pub(crate) transparent_addr: Option<SocketAddr>,
    pub(crate) admin_addr: SocketAddr,
    /// The RADIUS accounting listener, when `[radius]` is configured.
    pub(crate) radius_addr: Option<SocketAddr>,
    /// The HTTPS API listener, when `[api]` is configured.
    pub(crate) api_addr: Option<SocketAddr>,
    pub(crate) radius_metrics: Arc<RadiusMetrics>,
    pub(crate) audit: AuditLog,
    pub(crate) readiness: Arc<Readiness>,
    reload: Reloader,
    shutdown: watch::Sender<bool>,
    admin_shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    admin_task: JoinHandle<()>,
}

/// Requested receive buffer of the RADIUS socket.
const RADIUS_RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

/// In-flight requests get this long to finish after SIGTERM.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Loads keys and profiles, binds every listener and starts serving. `source` is re-read on
/// reload.
pub(crate) async fn start(config: &Config, source: &ConfigSource) -> anyhow::Result<Running> {
    // Everything that can fail without writing comes first — the listeners, the files the
    // operator provides — so that a start that fails creates no keys, token or databases.
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
    let transparent = match config.gateway.transparent_listen {
        Some(listen) => Some(TcpListener::bind(listen).await.with_context(|| {
            format!("cannot listen on {listen} ([gateway].transparent_listen)")
        })?),
        None => None,
    };
    let transparent_addr = match &transparent {
        Some(listener) => Some(listener.local_addr()?),
        None => None,
    };
    let api = match &config.api {
        Some(api) => {
            // The certificate and key first: a bad pair must not leave a bound port behind.
            let tls = match &api.tls {
                Some(tls) => Some(headwall_api::server_config(&tls.cert_file, &tls.key_file)?),
                None => None,
            };
            let listener = TcpListener::bind(api.listen)
                .await
                .with_context(|| format!("cannot listen on {} ([api].listen)", api.listen))?;
            Some((listener, tls, api.clone()))
        }
        None => None,
    };
    let api_addr = match &api {
        Some((listener, _, _)) => Some(listener.local_addr()?),
        None => None,
    };
    let api_metrics = api
        .as_ref()
        .map(|_| Arc::new(headwall_api::ApiMetrics::default()));
    let admin_addr = admin.local_addr()?;
    let radius = match &config.radius {
        Some(radius) => {
            let socket = UdpSocket::bind(radius.listen)
                .await
                .with_context(|| format!("cannot listen on {} ([radius].listen)", radius.listen))?;
            // Bursts of accounting (a packet gateway restarting) must not overflow the default
            // ~200 KiB buffer; the kernel caps this at net.core.rmem_max.
            let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(RADIUS_RECEIVE_BUFFER);
            Some((socket, radius_settings(radius)?))
        }
        None => None,
    };
    let radius_addr = match &radius {
        Some((socket, _)) => Some(socket.local_addr()?),
        None => None,
    };
    let profiles = match &config.subscribers {
        Some(subscribers) => load_profiles(&subscribers.file)?,
        None => Profiles::default(),
    };
    // From here on, state is created when missing.
    let keys = crate::keys::identity_keys(&config.identity)?;
    let audit = match &config.audit.backend {
        AuditBackend::Embedded { path } => {
            let mut files = crate::private::sqlite_files(path).to_vec();
            files.push(headwall_audit::checkpoint_path(path));
            files.extend(headwall_audit::journal_paths(path));
            crate::private::tighten(&files)?;
            AuditLog::open(
                path,
                AuditOptions {
                    signing_key: crate::keys::signing_key(&config.identity)?,
                    checkpoint_every: Duration::from_secs(60),
                    commit_window: config.audit.commit_window,
                },
            )?
        }
        AuditBackend::Postgres { url, node, tls } => {
            let node = match node {
                Some(node) => node.clone(),
                None => host_name()?,
            };
            AuditLog::open_postgres(
                url,
                tls,
                &node,
                AuditOptions {
                    signing_key: crate::keys::signing_key(&config.identity)?,
                    checkpoint_every: Duration::from_secs(60),
                    commit_window: headwall_audit::DEFAULT_COMMIT_WINDOW,
                },
            )
            .await?
        }
    };
    let sessions = match &config.sessions.backend {
        SessionsBackend::Embedded { path } => {
            crate::private::tighten(&crate::private::sqlite_files(
                &headwall_sessions::database_path(path),
            ))?;
            let table = Arc::new(SessionTable::new(config.sessions.stale_after.as_secs()));
            let store = SessionStore::open(path, table.clone())?;
            Sessions::Embedded {
                table,
                store: Some(store),
            }
        }
        // Several comma-separated URLs: the seed nodes of a Redis Cluster.
        SessionsBackend::Redis { url, tls } => {
            let urls: Vec<String> = url.split(',').map(|u| u.trim().to_owned()).collect();
            Sessions::Redis(RedisSessions::connect(
                &urls,
                config.sessions.stale_after,
                &redis_tls(tls)?,
            )?)
        }
    };
    let suspended_file = headwall_admin::suspended::path_in(&config.state_dir);
    let suspended_partners =
        headwall_admin::suspended::load(&suspended_file).map_err(anyhow::Error::msg)?;
    // Before anything is created: a pair that cannot be used stops the start here.
    let admin_tls = match &config.admin.tls {
        Some(tls) => Some(headwall_api::server_config(&tls.cert_file, &tls.key_file)?),
        None => None,
    };
    let admin_token = crate::keys::admin_token(&config.admin.token_file)?;
    let read_token = match &config.admin.read_token_file {
        Some(path) => {
            let token = crate::keys::admin_token(path)?;
            anyhow::ensure!(
                token != admin_token,
                "{}: the read-only token is the operator token; give it a token of its own \
                 (delete the file and a new one is generated)",
                path.display()
            );
            Some(token)
        }
        None => None,
    };
    let mut settings = GatewaySettings::from_config(&config.gateway);
    if let Some(target) = &config.access_log {
        settings.access_log =
            Some(
                headwall_proxy::AccessLog::open(target).with_context(|| match target {
                    headwall_policy::AccessLog::File(path) => {
                        format!("cannot open the access log {}", path.display())
                    }
                    headwall_policy::AccessLog::Stderr => "cannot start the access log".to_owned(),
                })?,
            );
    }
    let gateway = Gateway::new(
        settings,
        config.policy.clone(),
        sessions.clone(),
        profiles,
        keys,
        audit.clone(),
    );
    if !suspended_partners.is_empty() {
        tracing::warn!(
            partners = ?suspended_partners,
            "partners an operator suspended stay suspended; POST \
             /v1/partners/{{name}}/enrichment {{\"enabled\":true}} lifts it"
        );
    }
    gateway.set_suspended(suspended_partners);
    if audit.enrichment_switched_off() {
        gateway.set_enrichment(false, "kept off across restart");
        tracing::warn!(
            "enrichment is off: the kill switch on record turned it off; \
             POST /v1/enrichment {{\"enabled\":true}} turns it on"
        );
    }
    tracing::info!(
        policy.hash = gateway.policy().policy.hash(),
        partners = gateway.policy().policy.partners().len(),
        "policy loaded"
    );

    let radius_metrics = Arc::new(RadiusMetrics::default());

    let (shutdown, watcher) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(
        gateway
            .clone()
            .serve_explicit(explicit, stopped(watcher.clone())),
    ));
    if let Some(listener) = transparent {
        tasks.push(tokio::spawn(
            gateway
                .clone()
                .serve_transparent(listener, stopped(watcher.clone())),
        ));
    }
    let readiness = Arc::new(Readiness::default());
    let policy_loaded = Arc::new(tokio::sync::Notify::new());
    let reloads = Arc::new(headwall_admin::ReloadStatus::started(
        headwall_sessions::unix_now(),
    ));
    let reload = reloader(
        source.clone(),
        config.clone(),
        gateway.clone(),
        policy_loaded.clone(),
        reloads.clone(),
    );
    let admin_state = headwall_admin::AdminState {
        gateway: gateway.clone(),
        radius: radius_metrics.clone(),
        api: api_metrics.clone(),
        audit: audit_source(&config.audit.backend),
        country_code: config.radius.as_ref().and_then(|r| r.country_code.clone()),
        token: admin_token.into_bytes().into(),
        read_token: read_token.map(|token| token.into_bytes().into()),
        readiness: readiness.clone(),
        reload: reload.clone(),
        reloads,
        suspended_file,
        suspend_lock: Arc::default(),
        build: headwall_admin::BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            commit: env!("HEADWALL_COMMIT"),
        },
    };
    let (admin_shutdown, admin_watcher) = watch::channel(false);
    // Called here, not in the task, so "admin listening" is logged before "headwall ready".
    let admin_served = headwall_admin::serve(admin, admin_state, admin_tls, stopped(admin_watcher));
    let admin_task = tokio::spawn(async move {
        if let Err(error) = admin_served.await {
            tracing::warn!(%error, "admin listener failed");
        }
    });
    if let (Some((listener, tls, settings)), Some(metrics)) = (api, &api_metrics) {
        let state = headwall_api::ApiState::new(settings, gateway.clone(), metrics.clone());
        tasks.push(tokio::spawn(headwall_api::serve(
            listener,
            tls,
            state,
            stopped(watcher.clone()),
        )));
    }
    if let Some((socket, settings)) = radius {
        tasks.push(tokio::spawn(headwall_radius::serve(
            socket,
            settings,
            sessions.clone(),
            radius_metrics.clone(),
            audit.clone(),
            stopped(watcher.clone()),
        )));
    }
    tasks.push(tokio::spawn(sweep_stale(
        sessions,
        config.sessions.stale_after,
        stopped(watcher.clone()),
    )));
    if let Some(canary) = &config.canary {
        tasks.push(tokio::spawn(crate::canary::run(
            gateway.clone(),
            canary.clone(),
            explicit_addr,
            policy_loaded,
            stopped(watcher.clone()),
        )));
    }
    if matches!(config.audit.backend, AuditBackend::Postgres { .. }) {
        tasks.push(tokio::spawn(follow_fleet_kill_switch(
            gateway.clone(),
            audit.clone(),
            stopped(watcher.clone()),
        )));
    }
    tasks.push(tokio::spawn(retention(
        audit.clone(),
        config.audit.retention,
        stopped(watcher.clone()),
    )));
    readiness.set_ready();
    Ok(Running {
        readiness,
        reload,
        admin_shutdown,
        admin_task,
        audit,
        gateway,
        explicit_addr,
        transparent_addr,
        admin_addr,
        radius_addr,
        api_addr,
        radius_metrics,
        shutdown,
        tasks,
    })
}

impl Running {
    /// Drains and stops: `/readyz` turns 503, listeners stop accepting, connections finish
    /// the request in flight (up to 30 s), then the audit log is flushed with a final
    /// checkpoint and the admin listener closes last.
    pub(crate) async fn stop(self) {
        self.readiness.set_draining();
        let _ = self.shutdown.send(true);
        self.gateway.begin_drain();
        if !self.gateway.drained(DRAIN_DEADLINE).await {
            tracing::warn!(
                open = self.gateway.open_connections(),
                "drain deadline passed; closing the remaining connections"
            );
        }
        for task in self.tasks {
            let _ = task.await;
        }
        self.gateway.flush_security_events();
        self.audit.close().await;
        let _ = self.admin_shutdown.send(true);
        let _ = self.admin_task.await;
    }

    /// Re-reads the configuration and applies it (SIGHUP and `POST /v1/policy/reload`).
    pub(crate) async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        (self.reload)(None).await
    }

    /// Opens the access log's file again, after logrotate moved it (SIGHUP).
    pub(crate) fn reopen_logs(&self) {
        if let Some(log) = self.gateway.access_log() {
            log.reopen();
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

fn radius_settings(radius: &headwall_policy::Radius) -> anyhow::Result<RadiusSettings> {
    let mut clients = Vec::new();
    for client in &radius.clients {
        let secret = match &client.secret {
            RadiusSecret::Inline(secret) => secret.expose().to_owned(),
            RadiusSecret::File(path) => crate::keys::read_private(path, "RADIUS secret file")?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        };
        clients.push(RadiusClient {
            source: client.source,
            secret: secret.into_bytes(),
        });
    }
    Ok(RadiusSettings {
        clients,
        country_code: radius.country_code.clone(),
        min_ipv6_prefix: radius.min_ipv6_prefix,
    })
}

/// Removes stale bindings from disk and memory, at most every minute (and more often when
/// `stale_after` is shorter). Lookups never use a stale binding anyway; this keeps the table
/// from growing. (Redis keys expire by themselves; the sweep is a no-op there.)
async fn sweep_stale(
    store: Sessions,
    stale_after: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let period = stale_after.min(std::time::Duration::from_secs(60));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(period) => {}
        }
        let now = headwall_sessions::unix_now();
        if let Err(error) = store.apply(Change::Sweep(now)).await {
            tracing::warn!(%error, "stale binding sweep failed");
        }
    }
}

/// Removes audit records older than `[audit].retention`, every 10 minutes, in bounded steps so
/// that disclosures are never held up for long.
async fn retention(
    audit: AuditLog,
    retention: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = headwall_audit::time::now_ms().saturating_sub(retention_ms);
        loop {
            match audit.prune(cutoff).await {
                Ok(0) => break,
                Ok(removed) => tracing::info!(removed, "audit records past retention removed"),
                Err(error) => {
                    tracing::warn!(%error, "audit retention failed");
                    break;
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}

/// The one reload path, shared by SIGHUP and the admin API. A changed policy wakes the canary;
/// every outcome is recorded for the reload metrics.
fn reloader(
    source: ConfigSource,
    running: Config,
    gateway: Arc<Gateway>,
    policy_loaded: Arc<tokio::sync::Notify>,
    reloads: Arc<headwall_admin::ReloadStatus>,
) -> Reloader {
    let running = Arc::new(running);
    Arc::new(move |approve: Option<String>| {
        let (source, running, gateway) = (source.clone(), running.clone(), gateway.clone());
        let (policy_loaded, reloads) = (policy_loaded.clone(), reloads.clone());
        Box::pin(async move {
            let outcome = tokio::task::spawn_blocking(move || {
                reload(&source, &running, &gateway, approve.as_deref())
            })
            .await
            .unwrap_or_else(|_| Err(ReloadError::Invalid("reload failed".to_owned())));
            reloads.record(outcome.is_ok(), headwall_sessions::unix_now());
            if outcome.as_ref().is_ok_and(|report| report.changed) {
                policy_loaded.notify_one();
            }
            outcome
        })
    })
}

/// Re-reads `source`; on any error the old policy and profiles stay and the error says why.
/// With the running `[change].widening = "refuse"` (the file's own setting applies only after a
/// restart, so a change cannot lift its own gate), a policy that widens exposure is applied
/// only when `approve` is its hash.
fn reload(
    source: &ConfigSource,
    running: &Config,
    gateway: &Gateway,
    approve: Option<&str>,
) -> Result<ReloadReport, ReloadError> {
    let outcome = (|| {
        let invalid = |error: String| ReloadError::Invalid(error);
        let config = source.load().map_err(|error| invalid(error.to_string()))?;
        let profiles = match &config.subscribers {
            Some(subscribers) => {
                load_profiles(&subscribers.file).map_err(|e| invalid(e.to_string()))?
            }
            None => Profiles::default(),
        };
        let old_hash = gateway.policy().policy.hash().to_owned();
        let changed = old_hash != config.policy.hash();
        let new_hash = config.policy.hash().to_owned();
        if changed && running.change.refuse_widening && approve != Some(new_hash.as_str()) {
            let plan = headwall_policy::plan(&gateway.policy().policy, &config.policy);
            if plan.widens() {
                return Err(ReloadError::Unapproved {
                    policy_hash: new_hash,
                    plan: plan.summary(),
                });
            }
        }
        let summary = if changed {
            let plan = gateway.set_policy(config.policy.clone());
            if plan.widens() {
                // Who may now receive what they could not before: the change a reviewer
                // should have seen in `headwall plan`.
                tracing::warn!(
                    policy.from = old_hash,
                    policy.to = new_hash,
                    plan = %plan.summary(),
                    "reload widens exposure"
                );
            }
            format!(
                "policy {old_hash} replaced by {new_hash}: {}",
                plan.summary()
            )
        } else {
            "policy unchanged".to_owned()
        };
        gateway.set_profiles(profiles);
        Ok(ReloadReport {
            changed,
            policy_hash: new_hash,
            summary,
            restart_needed: restart_needed(running, &config),
        })
    })();
    match &outcome {
        Ok(report) => tracing::info!(
            changed = report.changed,
            policy.hash = report.policy_hash,
            restart_needed = ?report.restart_needed,
            "configuration reloaded"
        ),
        Err(error) => tracing::warn!(%error, "reload refused; the running policy stays"),
    }
    outcome
}

/// Tables whose settings changed but apply only after a restart (reload applies partners,
/// `[strip]` and `[subscribers]`).
fn restart_needed(running: &Config, new: &Config) -> Vec<String> {
    let mut tables = Vec::new();
    let mut differs = |table: &str, same: bool| {
        if !same {
            tables.push(table.to_owned());
        }
    };
    differs("[gateway]", running.gateway == new.gateway);
    differs("[admin]", running.admin == new.admin);
    differs("[radius]", running.radius == new.radius);
    differs("[sessions]", running.sessions == new.sessions);
    differs("[audit]", running.audit == new.audit);
    differs("[identity]", running.identity == new.identity);
    differs("[canary]", running.canary == new.canary);
    differs("[change]", running.change == new.change);
    differs("[access_log]", running.access_log == new.access_log);
    tables
}

/// Where the audit record is read from, for the admin API and the `audit` commands.
pub(crate) fn audit_source(backend: &AuditBackend) -> headwall_audit::AuditSource {
    match backend {
        AuditBackend::Embedded { path } => headwall_audit::AuditSource::Embedded(path.clone()),
        AuditBackend::Postgres { url, tls, .. } => headwall_audit::AuditSource::Postgres {
            url: url.clone(),
            tls: tls.clone(),
        },
    }
}

/// `[sessions]`' TLS files, read: the CA and client certificates as they are, the client key
/// only at mode 0600.
fn redis_tls(tls: &headwall_policy::StoreTls) -> anyhow::Result<headwall_sessions::RedisTls> {
    use anyhow::Context as _;
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).with_context(|| format!("{}: cannot read {what}", path.display()))
    };
    let ca_pem = match &tls.ca_file {
        Some(path) => Some(read(path, "[sessions] tls_ca_file")?),
        None => None,
    };
    let client = match &tls.client {
        Some(pair) => Some((
            read(&pair.cert_file, "[sessions] tls_cert_file")?,
            crate::keys::read_private(&pair.key_file, "[sessions] tls_key_file")?.into_bytes(),
        )),
        None => None,
    };
    Ok(headwall_sessions::RedisTls { ca_pem, client })
}

/// The default `[audit].node`: this machine's host name (`open_postgres` validates it).
fn host_name() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("cannot read the host name; set [audit].node")?;
    Ok(name.trim().to_owned())
}

/// With the shared PostgreSQL log the kill switch is fleet-wide: when the newest `kill_switch`
/// event of any node changes the state, this node follows (edge-triggered, so this node's own
/// switch and an operator's later one are never undone by an older fleet state).
async fn follow_fleet_kill_switch(
    gateway: Arc<Gateway>,
    audit: AuditLog,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut last = audit.enrichment_switched_off();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(headwall_audit::KILL_SWITCH_REFRESH) => {}
        }
        let off = audit.enrichment_switched_off();
        if off != last {
            last = off;
            gateway.set_enrichment(!off, "fleet kill switch");
            tracing::warn!(enabled = !off, "enrichment follows the fleet's kill switch");
        }
    }
}
