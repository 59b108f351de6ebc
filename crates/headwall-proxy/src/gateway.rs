//! The gateway's shared state: settings, the active policy, sessions, keys and counters.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use headwall_audit::{AuditLog, EventKind, EventWindow, WindowFields};
use headwall_identity::{PartnerPseudonymKey, PseudonymKey, TokenIssuer};
use headwall_policy::{Policy, ValueKind};
use headwall_sessions::{Profiles, Sessions};
use http::HeaderName;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::{DisclosureLabels, Listener, Metrics};
use crate::upstream::Upstreams;

/// Listener and upstream settings taken from `[gateway]`.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// CONNECT is allowed to these ports only.
    pub connect_ports: Vec<u16>,
    /// Time allowed to establish an upstream TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed for a client to send a complete request head (hyper starts it when the
    /// connection begins waiting for a head, so it also closes idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// A connection or tunnel with no bytes moving for this long is closed.
    pub idle_timeout: Duration,
    /// Client connections held at once; more are closed on accept.
    pub max_connections: usize,
    /// Static name -> address overrides, consulted before DNS.
    pub hosts: HashMap<String, IpAddr>,
    /// Expect a PROXY protocol v2 header on every client connection.
    pub proxy_protocol: bool,
    /// Load balancers allowed to send it; connections from elsewhere are closed.
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
    /// `[gateway].clients`: the only client networks served (after PROXY protocol); `None`,
    /// any client.
    pub clients: Option<Vec<ipnet::IpNet>>,
    /// `[access_log]`, opened: one line per request; `None`, off.
    pub access_log: Option<crate::AccessLog>,
}

impl GatewaySettings {
    /// The settings of a loaded `[gateway]` table.
    pub fn from_config(gateway: &headwall_policy::Gateway) -> GatewaySettings {
        GatewaySettings {
            connect_ports: gateway.connect_ports.clone(),
            connect_timeout: gateway.connect_timeout,
            header_read_timeout: gateway.header_read_timeout,
            idle_timeout: gateway.idle_timeout,
            max_connections: gateway.max_connections,
            hosts: gateway.hosts.clone(),
            proxy_protocol: gateway.proxy_protocol,
            proxy_protocol_from: gateway.proxy_protocol_from.clone(),
            clients: gateway.clients.clone(),
            access_log: None,
        }
    }
}

/// The identity keys the gateway derives values from.
pub struct IdentityKeys {
    /// Root pseudonym key; per-partner keys are derived from it when a policy is activated.
    pub pseudonym: PseudonymKey,
    /// Signs `token` values.
    pub issuer: TokenIssuer,
}

/// A compiled policy plus what the data plane precomputes from it, swapped as one value so a
/// request sees either the old or the new policy, never a mix.
pub struct ActivePolicy {
    /// The compiled policy.
    pub policy: Policy,
    /// When it was activated (Unix milliseconds).
    pub loaded_at_ms: i64,
    partners: HashMap<String, PartnerRuntime>,
}

pub(crate) struct PartnerRuntime {
    pub(crate) pseudonym_key: PartnerPseudonymKey,
    /// Each header with its kind and its `headwall_disclosures_total` counter.
    pub(crate) headers: Vec<(HeaderName, ValueKind, Arc<AtomicU64>)>,
}

impl ActivePolicy {
    /// Precomputes per-partner keys and header names. A partner header name that is not a valid
    /// HTTP field name cannot occur (the policy validates names), but if one did, that partner
    /// is left out and never enriched (fail closed).
    pub fn new(policy: Policy, keys: &IdentityKeys, metrics: &Metrics) -> ActivePolicy {
        let mut partners = HashMap::new();
        for partner in policy.partners() {
            let headers: Result<Vec<_>, _> = partner
                .headers
                .iter()
                .map(|h| {
                    HeaderName::from_bytes(h.name.as_bytes()).map(|name| {
                        let counter = metrics.disclosure_counter(DisclosureLabels {
                            partner: partner.name.clone(),
                            purpose: partner.purpose.as_str(),
                            kind: h.kind.as_str(),
                        });
                        (name, h.kind, counter)
                    })
                })
                .collect();
            let Ok(headers) = headers else {
                tracing::warn!(partner = %partner.name, "partner header name rejected; partner disabled");
                continue;
            };
            partners.insert(
                partner.name.clone(),
                PartnerRuntime {
                    pseudonym_key: keys.pseudonym.for_partner(&partner.name),
                    headers,
                },
            );
        }
        ActivePolicy {
            policy,
            loaded_at_ms: headwall_audit::time::now_ms(),
            partners,
        }
    }

    pub(crate) fn partner(&self, name: &str) -> Option<&PartnerRuntime> {
        self.partners.get(name)
    }
}

/// One gateway: share it behind an `Arc` between listeners and the admin side.
pub struct Gateway {
    pub(crate) settings: GatewaySettings,
    pub(crate) policy: ArcSwap<ActivePolicy>,
    pub(crate) sessions: Sessions,
    pub(crate) profiles: ArcSwap<Profiles>,
    pub(crate) keys: Arc<IdentityKeys>,
    pub(crate) enrichment_enabled: AtomicBool,
    /// `[canary].on_unverified = "pause"` holds enrichment off while no canary run completes;
    /// apart from the kill switch, so it lifts by itself and is not state across restarts.
    canary_hold: AtomicBool,
    /// Partners the operator suspended: their requests are forwarded without identity.
    suspended: ArcSwap<std::collections::BTreeSet<String>>,
    pub(crate) metrics: Metrics,
    pub(crate) upstreams: Upstreams,
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) audit: AuditLog,
    /// `spoof_stripped` tallies per client address for the current second.
    pub(crate) spoofs: EventWindow,
    /// Set once at shutdown: connections finish their request in flight and close.
    pub(crate) drain: tokio::sync::watch::Sender<bool>,
    request_ids: RequestIds,
    canary_peers: CanaryPeers,
}

/// The source addresses of the canary's own connections, so that its probes are kept out of
/// the request metrics (they are not traffic). Accepting a connection reads only an atomic
/// count unless a probe is running.
#[derive(Default)]
struct CanaryPeers {
    count: std::sync::atomic::AtomicUsize,
    peers: std::sync::Mutex<Vec<SocketAddr>>,
}

/// A registered canary connection; dropping it forgets the address.
pub struct CanaryProbe<'a> {
    gateway: &'a Gateway,
    peer: SocketAddr,
}

impl Drop for CanaryProbe<'_> {
    fn drop(&mut self) {
        let peers = &self.gateway.canary_peers;
        let mut held = peers
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(index) = held.iter().position(|peer| *peer == self.peer) {
            held.swap_remove(index);
            peers.count.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Request ids: a random per-process prefix and a counter, unique across restarts and cheap.
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl Gateway {
    /// A gateway enforcing `policy`, reading bindings from `sessions`.
    pub fn new(
        settings: GatewaySettings,
        policy: Policy,
        sessions: Sessions,
        profiles: Profiles,
        keys: IdentityKeys,
        audit: AuditLog,
    ) -> Arc<Gateway> {
        audit.event(
            EventKind::PolicyChange,
            &policy_event("start", &policy, None),
        );
        let metrics = Metrics::default();
        let active = ActivePolicy::new(policy, &keys, &metrics);
        let connections = Arc::new(Semaphore::new(settings.max_connections));
        let upstreams = Upstreams::new(&settings);
        Arc::new(Gateway {
            settings,
            policy: ArcSwap::from_pointee(active),
            sessions,
            profiles: ArcSwap::from_pointee(profiles),
            keys: Arc::new(keys),
            enrichment_enabled: AtomicBool::new(true),
            canary_hold: AtomicBool::new(false),
            suspended: ArcSwap::from_pointee(std::collections::BTreeSet::new()),
            metrics,
            upstreams,
            connections,
            audit,
            spoofs: EventWindow::new(
                EventKind::SpoofStripped,
                WindowFields {
                    source: "client_ip",
                    count: "requests",
                    names: "headers",
                },
            ),
            drain: tokio::sync::watch::Sender::new(false),
            request_ids: RequestIds {
                prefix: random_prefix(),
                next: AtomicU64::new(1),
            },
            canary_peers: CanaryPeers::default(),
        })
    }

    /// Marks connections from `peer` (the canary's socket, bound before it connects) as the
    /// canary's own until the guard is dropped: they are served like any other, but not
    /// counted in `headwall_requests_total` or the request duration histogram.
    pub fn canary_probe(&self, peer: SocketAddr) -> CanaryProbe<'_> {
        let peer = crate::front::canonical(peer);
        self.canary_peers
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(peer);
        self.canary_peers.count.fetch_add(1, Ordering::SeqCst);
        CanaryProbe {
            gateway: self,
            peer,
        }
    }

    /// Whether a connection from `peer` is one of the canary's.
    pub(crate) fn is_canary_peer(&self, peer: SocketAddr) -> bool {
        self.canary_peers.count.load(Ordering::SeqCst) > 0
            && self
                .canary_peers
                .peers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&crate::front::canonical(peer))
    }

    /// New upstream connections' handshake times.
    pub fn upstream_connect_durations(&self) -> headwall_audit::latency::Snapshot {
        self.upstreams.connect_time.snapshot()
    }

    /// A new request id (`prefix-counter`, hex).
    pub(crate) fn next_request_id(&self) -> String {
        let n = self.request_ids.next.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{n:x}", self.request_ids.prefix)
    }

    /// The access log, when `[access_log]` turned it on.
    pub fn access_log(&self) -> Option<&crate::AccessLog> {
        self.settings.access_log.as_ref()
    }

    /// The audit log disclosures and security events go to.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Activates a new policy atomically; requests in flight finish under the old one. Records
    /// a `policy_change` security event naming both hashes and the exposure plan's summary, and
    /// returns the plan.
    pub fn set_policy(&self, policy: Policy) -> headwall_policy::Plan {
        let previous = self.policy.load_full();
        let plan = headwall_policy::plan(&previous.policy, &policy);
        let mut detail = policy_event("reload", &policy, Some(previous.policy.hash()));
        detail["plan"] = serde_json::json!(plan.summary());
        detail["widens"] = serde_json::json!(plan.widens());
        self.audit.event(EventKind::PolicyChange, &detail);
        self.policy.store(Arc::new(ActivePolicy::new(
            policy,
            &self.keys,
            &self.metrics,
        )));
        plan
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<ActivePolicy> {
        self.policy.load_full()
    }

    /// The subscriber profiles in force.
    pub fn profiles(&self) -> Arc<Profiles> {
        self.profiles.load_full()
    }

    /// Replaces the subscriber profiles.
    pub fn set_profiles(&self, profiles: Profiles) {
        self.profiles.store(Arc::new(profiles));
    }

    /// Turns enrichment on or off (the kill switch). Off: every request is forwarded without
    /// identity.
    /// A change of state is recorded as a `kill_switch` security event with `reason`.
    pub fn set_enrichment(&self, enabled: bool, reason: &str) {
        let was = self.enrichment_enabled.swap(enabled, Ordering::SeqCst);
        if was != enabled {
            self.audit.event(
                EventKind::KillSwitch,
                &serde_json::json!({ "enabled": enabled, "reason": reason }),
            );
        }
    }

    /// Whether enrichment is on.
    pub fn enrichment_enabled(&self) -> bool {
        self.enrichment_enabled.load(Ordering::SeqCst) && !self.canary_hold.load(Ordering::SeqCst)
    }

    /// Holds enrichment off (`true`) while the canary cannot verify, or lifts the hold. The
    /// kill switch is separate: lifting the hold does not turn on what an operator or a leak
    /// turned off.
    pub fn set_canary_hold(&self, held: bool) {
        self.canary_hold.store(held, Ordering::SeqCst);
    }

    /// Replaces the set of suspended partners (names; one not in the policy just waits).
    pub fn set_suspended(&self, partners: std::collections::BTreeSet<String>) {
        self.suspended.store(Arc::new(partners));
    }

    /// The partners suspended now.
    pub fn suspended(&self) -> Arc<std::collections::BTreeSet<String>> {
        self.suspended.load_full()
    }

    /// Whether `partner` is suspended.
    pub(crate) fn is_suspended(&self, partner: &str) -> bool {
        let suspended = self.suspended.load();
        !suspended.is_empty() && suspended.contains(partner)
    }

    /// Whether the canary's hold is on.
    pub fn canary_hold(&self) -> bool {
        self.canary_hold.load(Ordering::SeqCst)
    }

    /// The subscriber bindings this gateway reads.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Counters of what the data plane did.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The signing side of `token` values (for the JWKS endpoint).
    pub fn token_issuer(&self) -> &TokenIssuer {
        &self.keys.issuer
    }

    /// The root pseudonym key (the API derives each client's pairwise `sub` from it, as the
    /// data plane derives each partner's pseudonyms).
    pub fn pseudonym_key(&self) -> &PseudonymKey {
        &self.keys.pseudonym
    }

    /// Serves the explicit forward-proxy listener until `shutdown` resolves. Logs the bound
    /// address when called, before the future runs.
    pub fn serve_explicit(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> impl std::future::Future<Output = ()> {
        crate::listener::serve(self, listener, Listener::Explicit, shutdown)
    }

    /// Serves the transparent listener (intercepted traffic, redirected to it by the kernel)
    /// until `shutdown` resolves. Logs the bound address when called.
    pub fn serve_transparent(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> impl std::future::Future<Output = ()> {
        crate::listener::serve(self, listener, Listener::Transparent, shutdown)
    }

    /// Begins draining: every client connection finishes the request it is serving and closes;
    /// idle keep-alive connections close at once. Stop the accept loops separately.
    pub fn begin_drain(&self) {
        self.drain.send_replace(true);
    }

    /// Waits until every client connection has closed, or `deadline` passes. Returns whether
    /// all closed in time.
    pub async fn drained(&self, deadline: Duration) -> bool {
        let all = u32::try_from(self.settings.max_connections).unwrap_or(u32::MAX);
        tokio::time::timeout(deadline, self.connections.acquire_many(all))
            .await
            .is_ok_and(|permits| permits.is_ok())
    }

    /// Sends the security events of every second that is over to the audit log (the
    /// listeners call it once a second; call it once more before closing the log).
    pub fn flush_security_events(&self) {
        self.spoofs
            .flush(&self.audit, headwall_sessions::unix_now().saturating_add(1));
    }

    /// `[gateway].max_connections`.
    pub fn max_connections(&self) -> usize {
        self.settings.max_connections
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.settings
            .max_connections
            .saturating_sub(self.connections.available_permits())
    }

    /// Records a listener address so that requests aimed at it are refused instead of looping.
    pub fn add_own_address(&self, addr: SocketAddr) {
        self.upstreams.add_own_address(addr);
    }
}

fn random_prefix() -> u32 {
    let mut bytes = [0u8; 4];
    // Without a random source the ids stay unique within the process (the counter).
    let _ = getrandom::fill(&mut bytes);
    u32::from_be_bytes(bytes)
}

/// The detail of a `policy_change` event: which policy, which partners, and what it replaced.
fn policy_event(reason: &str, policy: &Policy, previous_hash: Option<&str>) -> serde_json::Value {
    let partners: Vec<&str> = policy.partners().iter().map(|p| p.name.as_str()).collect();
    serde_json::json!({
        "reason": reason,
        "policy_hash": policy.hash(),
        "previous_hash": previous_hash,
        "partners": partners,
    })
}
