//! The canary (docs/design.md, Leak check and canary): proof, after every policy load and
//! every `[canary].interval`, that a non-partner sees nothing.
//!
//! Each run binds the gateway's own address to the synthetic subscriber `[canary].msisdn` (in
//! memory, never in the durable store; in Redis for a fleet, expiring within a minute), sends one request through the gateway's
//! real explicit listener to `[canary].url` (a `headwall leakcheck` API), then removes the
//! binding. Any finding is a `canary_leak` security event, counts in
//! `headwall_canary_leaks_total`, and with `kill_switch` turns enrichment off until an operator
//! turns it on. A clean run sets `headwall_canary_last_success_timestamp_seconds`; a run that
//! cannot complete counts in `headwall_canary_errors_total`; when none completes for
//! `unverified_after`, a `canary_unverified` event, and with `on_unverified = "pause"` a hold on
//! enrichment until one does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use headwall_audit::EventKind;
use headwall_identity::Msisdn;
use headwall_leakcheck::Verdict;
use headwall_policy::Canary;
use headwall_proxy::Gateway;
use headwall_sessions::{Binding, unix_now};
use tokio::sync::Notify;

const SESSION_ID: &str = "headwall-canary";

/// Runs the canary until `shutdown`: once at start, after every `reloaded` notification, and
/// every `interval`.
pub(crate) async fn run(
    gateway: Arc<Gateway>,
    canary: Canary,
    listener: SocketAddr,
    reloaded: Arc<Notify>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let Ok(msisdn) = Msisdn::parse(&canary.msisdn) else {
        // The policy crate validated it; fail loudly rather than probe as nobody.
        tracing::error!("[canary].msisdn is not a valid number; canary disabled");
        return;
    };
    // Connect to the listener's own address (loopback when it listens on all addresses) and
    // send from that same address: it is the gateway's, never a subscriber's.
    let target = SocketAddr::new(own_address(listener.ip()), listener.port());
    tokio::pin!(shutdown);
    // The start counts as the last proof: unverified_after runs from there until a run completes.
    let mut verified_at = tokio::time::Instant::now();
    let mut unverified = false;
    loop {
        if once(&gateway, &canary, &msisdn, target).await.is_some() {
            verified_at = tokio::time::Instant::now();
            if unverified {
                unverified = false;
                gateway.set_canary_hold(false);
                tracing::info!("canary run completed again; verified");
            }
        }
        let next_run = tokio::time::sleep(canary.interval);
        tokio::pin!(next_run);
        loop {
            let deadline = verified_at + canary.unverified_after;
            tokio::select! {
                () = &mut shutdown => return,
                () = reloaded.notified() => break,
                () = &mut next_run => break,
                () = tokio::time::sleep_until(deadline), if !unverified => {
                    unverified = true;
                    raise_unverified(&gateway, &canary);
                }
            }
        }
    }
}

/// No run has completed for `unverified_after`: a `canary_unverified` event, an error line,
/// and with `on_unverified = "pause"` enrichment held off until one completes.
fn raise_unverified(gateway: &Gateway, canary: &Canary) {
    let action = if canary.pause_when_unverified {
        "pause"
    } else {
        "alert"
    };
    tracing::error!(
        url = %canary.url,
        unverified_after = ?canary.unverified_after,
        action,
        "CANARY UNVERIFIED: no canary run has completed; nothing proves non-partners see nothing"
    );
    gateway.audit().event(
        EventKind::CanaryUnverified,
        &serde_json::json!({
            "url": canary.url,
            "unverified_after_seconds": canary.unverified_after.as_secs(),
            "action": action,
            "policy_hash": gateway.policy().policy.hash(),
        }),
    );
    if canary.pause_when_unverified {
        gateway.set_canary_hold(true);
    }
}

/// The probe request, from a socket the gateway knows is the canary's: its requests are served
/// like any other but kept out of `headwall_requests_total`.
async fn probe(
    gateway: &Gateway,
    canary: &Canary,
    target: SocketAddr,
) -> Result<headwall_leakcheck::Report, String> {
    let socket = headwall_leakcheck::probe_socket(target, Some(target.ip()))
        .map_err(|error| format!("no socket to probe from: {error}"))?;
    let local = socket
        .local_addr()
        .map_err(|error| format!("no socket to probe from: {error}"))?;
    let _marked = gateway.canary_probe(local);
    headwall_leakcheck::check_on(socket, target, &canary.url, Duration::from_secs(10)).await
}

fn own_address(listen: IpAddr) -> IpAddr {
    match listen {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// One canary run; returns whether it found a leak (`None`: it could not complete).
pub(crate) async fn once(
    gateway: &Gateway,
    canary: &Canary,
    msisdn: &Msisdn,
    target: SocketAddr,
) -> Option<bool> {
    let source = target.ip();
    let network = ipnet::IpNet::from(source);
    let bound = gateway
        .sessions()
        .bind_ephemeral(
            network,
            Binding {
                msisdn: msisdn.clone(),
                imsi: None,
                session_id: SESSION_ID.to_owned(),
                nas: SESSION_ID.to_owned(),
                updated_at: unix_now(),
            },
        )
        .await;
    if let Err(error) = bound {
        tracing::warn!(%error, "canary could not bind its synthetic subscriber");
        gateway.metrics().record_canary_error();
        return None;
    }
    let result = probe(gateway, canary, target).await;
    if let Err(error) = gateway
        .sessions()
        .unbind_ephemeral(network, SESSION_ID)
        .await
    {
        tracing::warn!(%error, "canary could not remove its binding (it expires by itself)");
    }
    let report = match result {
        Ok(report) => report,
        Err(reason) => {
            tracing::warn!(%reason, "canary run could not complete");
            gateway.metrics().record_canary_error();
            return None;
        }
    };
    let leaked = report.verdict == Verdict::Leak;
    gateway.metrics().record_canary(leaked, unix_now());
    if !leaked {
        tracing::debug!(headers = report.headers_seen, "canary: no identity seen");
        return Some(false);
    }
    let findings: Vec<serde_json::Value> = report
        .findings
        .iter()
        .map(|finding| {
            serde_json::json!({ "header": finding.header, "reason": finding.reason.as_str() })
        })
        .collect();
    tracing::error!(
        url = %canary.url,
        findings = findings.len(),
        kill_switch = canary.kill_switch,
        "CANARY LEAK: a non-partner endpoint received subscriber identity"
    );
    gateway.audit().event(
        EventKind::CanaryLeak,
        &serde_json::json!({
            "url": canary.url,
            "findings": findings,
            "policy_hash": gateway.policy().policy.hash(),
            "kill_switch": canary.kill_switch,
        }),
    );
    if canary.kill_switch {
        gateway.set_enrichment(false, "canary_leak");
    }
    Some(true)
}
