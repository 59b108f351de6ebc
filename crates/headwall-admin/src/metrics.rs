//! `GET /metrics`: the metrics docs/design.md lists under Metrics, and the process metrics
//! (`process.rs`), in Prometheus text format (0.0.4).
//!
//! The data plane counts with plain atomics (no lock on the hot path); this collector reads
//! them at scrape time and encodes them with `prometheus-client`. Label values are fixed enums
//! or configured partner names — never hosts from requests or subscriber data.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headwall_audit::latency::Snapshot;
use headwall_proxy::{Gateway, Listener, Outcome};
use headwall_radius::RadiusMetrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::AdminState;

/// A registry holding the one collector.
pub(crate) fn registry(state: &AdminState) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(HeadwallCollector {
        gateway: state.gateway.clone(),
        radius: state.radius.clone(),
        api: state.api.clone(),
        reloads: state.reloads.clone(),
        build: state.build,
        started: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64()),
    }));
    registry
}

pub(crate) fn exposition(registry: &Registry) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::prometheus_text::encode(&mut text, registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics encoding failed\n",
        )
            .into_response(),
    }
}

struct HeadwallCollector {
    gateway: Arc<Gateway>,
    radius: Arc<RadiusMetrics>,
    api: Option<Arc<headwall_api::ApiMetrics>>,
    reloads: Arc<crate::ReloadStatus>,
    build: crate::BuildInfo,
    /// When the collector was made (start-up): the process start time when /proc hides it.
    started: f64,
}

impl std::fmt::Debug for HeadwallCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadwallCollector")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    snapshot: &Snapshot,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(snapshot.sum, snapshot.count, &snapshot.buckets, None)
}

/// `process_*`: the names every exporter uses, so existing dashboards work.
fn process(encoder: &mut DescriptorEncoder<'_>, started: f64) -> Result<(), std::fmt::Error> {
    let usage = crate::process::Usage::read(started);
    if let Some(seconds) = usage.cpu_seconds {
        let metric = ConstCounter::new(seconds);
        metric.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent, in seconds.",
            Some(&Unit::Seconds),
            metric.metric_type(),
        )?)?;
    }
    if let Some(bytes) = usage.resident_bytes {
        let metric = ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX));
        metric.encode(encoder.encode_descriptor(
            "process_resident_memory",
            "Resident memory size, in bytes.",
            Some(&Unit::Bytes),
            metric.metric_type(),
        )?)?;
    }
    for (name, help, value) in [
        ("process_open_fds", "Open file descriptors.", usage.open_fds),
        (
            "process_max_fds",
            "The file descriptor limit (RLIMIT_NOFILE).",
            usage.max_fds,
        ),
    ] {
        if let Some(value) = value {
            gauge(
                encoder,
                name,
                help,
                i64::try_from(value).unwrap_or(i64::MAX),
            )?;
        }
    }
    if let Some(seconds) = usage.start_time_seconds {
        let metric = ConstGauge::new(seconds);
        metric.encode(encoder.encode_descriptor(
            "process_start_time",
            "Start time of the process since the Unix epoch, in seconds.",
            Some(&Unit::Seconds),
            metric.metric_type(),
        )?)?;
    }
    Ok(())
}

impl Collector for HeadwallCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let metrics = self.gateway.metrics();

        let mut family = encoder.encode_descriptor(
            "headwall_requests",
            "Client requests by listener and how they ended.",
            None,
            MetricType::Counter,
        )?;
        for listener in Listener::ALL {
            for outcome in Outcome::ALL {
                let labels = [
                    ("listener", listener.as_str()),
                    ("outcome", outcome.as_str()),
                ];
                ConstCounter::new(metrics.requests(listener, outcome))
                    .encode(family.encode_family(&labels)?)?;
            }
        }

        histogram(
            &mut encoder,
            "headwall_request_duration",
            "Time from a request's head to its response head, in seconds.",
            &metrics.request_durations(),
        )?;
        let mut family = encoder.encode_descriptor(
            "headwall_connections_open",
            "Client connections open now by listener, the tunnels made from them included.",
            None,
            MetricType::Gauge,
        )?;
        for listener in Listener::ALL {
            let open = i64::try_from(metrics.connections_open(listener)).unwrap_or(i64::MAX);
            ConstGauge::new(open)
                .encode(family.encode_family(&[("listener", listener.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "headwall_client_refused",
            "Connections closed at accept because the client is outside [gateway].clients.",
            None,
            MetricType::Counter,
        )?;
        for listener in Listener::ALL {
            ConstCounter::new(metrics.clients_refused(listener))
                .encode(family.encode_family(&[("listener", listener.as_str())])?)?;
        }
        histogram(
            &mut encoder,
            "headwall_upstream_connect_duration",
            "TCP handshakes of new upstream connections, in seconds.",
            &self.gateway.upstream_connect_durations(),
        )?;

        let mut family = encoder.encode_descriptor(
            "headwall_disclosures",
            "Identity headers inserted, by partner, purpose and value kind.",
            None,
            MetricType::Counter,
        )?;
        for (labels, value) in metrics.disclosures_by_partner() {
            let labels = [
                ("partner", labels.partner.as_str()),
                ("purpose", labels.purpose),
                ("kind", labels.kind),
            ];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }

        gauge(
            &mut encoder,
            "headwall_tunnels_open",
            "CONNECT and WebSocket tunnels open now; each holds a max_connections slot.",
            i64::try_from(metrics.tunnels_open()).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut encoder,
            "headwall_stripped_headers",
            "Identity headers removed from client requests.",
            metrics.stripped_headers(),
        )?;
        counter(
            &mut encoder,
            "headwall_pinning_mismatches",
            "Partner-host requests that connected outside the partner's destinations.",
            metrics.pinning_mismatches(),
        )?;
        let sessions = self.gateway.sessions();
        if let Some(held) = sessions.local_len() {
            gauge(
                &mut encoder,
                "headwall_sessions_active",
                "Subscriber bindings held in this node's memory (stale ones until swept).",
                i64::try_from(held).unwrap_or(i64::MAX),
            )?;
        }
        counter(
            &mut encoder,
            "headwall_session_store_errors",
            "Shared session store (Redis) calls that failed or timed out; identity withheld.",
            sessions.errors(),
        )?;

        let mut family = encoder.encode_descriptor(
            "headwall_radius_packets",
            "RADIUS accounting datagrams by Acct-Status-Type and result.",
            None,
            MetricType::Counter,
        )?;
        for (status, result, value) in self.radius.snapshot() {
            let labels = [("status", status), ("result", result)];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }

        histogram(
            &mut encoder,
            "headwall_radius_commit_duration",
            "Time to make a RADIUS binding change durable before answering it, in seconds.",
            &self.radius.commit_durations(),
        )?;

        let audit = self.gateway.audit();
        histogram(
            &mut encoder,
            "headwall_audit_commit_duration",
            "Audit commits (journal write and fdatasync, or PostgreSQL transaction), in seconds.",
            &audit.commit_durations(),
        )?;
        gauge(
            &mut encoder,
            "headwall_audit_queue_depth",
            "Disclosures and security events waiting for an audit commit.",
            i64::try_from(audit.queue_depth()).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut encoder,
            "headwall_audit_write_failures",
            "Disclosures withheld because their audit record could not be made durable.",
            metrics.audit_write_failures(),
        )?;
        counter(
            &mut encoder,
            "headwall_audit_dropped_events",
            "Security events dropped because the audit queue was full or stopped.",
            self.gateway.audit().dropped_events(),
        )?;
        counter(
            &mut encoder,
            "headwall_access_log_dropped",
            "Access log lines dropped because its writer fell behind (0 without [access_log]).",
            self.gateway.access_log().map_or(0, |log| log.dropped()),
        )?;
        gauge(
            &mut encoder,
            "headwall_enrichment_enabled",
            "1 while enrichment is on, 0 when switched off (kill switch or operator).",
            i64::from(self.gateway.enrichment_enabled()),
        )?;

        counter(
            &mut encoder,
            "headwall_canary_leaks",
            "Canary runs that found identity at the non-partner leak-check endpoint.",
            metrics.canary_leaks(),
        )?;
        counter(
            &mut encoder,
            "headwall_canary_errors",
            "Canary runs that could not complete (no answer, not a leak-check API).",
            metrics.canary_errors(),
        )?;
        gauge(
            &mut encoder,
            "headwall_canary_last_success_timestamp_seconds",
            "Unix time of the last canary run that found nothing (0: none yet).",
            i64::try_from(metrics.canary_last_success()).unwrap_or(i64::MAX),
        )?;

        // Without [api] the families are still described (with no samples), so a dashboard
        // or alert that names them finds them on every gateway.
        let mut family = encoder.encode_descriptor(
            "headwall_api_requests",
            "HTTPS API requests by endpoint and outcome.",
            None,
            MetricType::Counter,
        )?;
        for (endpoint, outcome, value) in self.api.iter().flat_map(|api| api.requests()) {
            let labels = [
                ("endpoint", endpoint.as_str()),
                ("outcome", outcome.as_str()),
            ];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "headwall_api_tokens_issued",
            "Access tokens issued, by API client.",
            None,
            MetricType::Counter,
        )?;
        for (client, value) in self.api.iter().flat_map(|api| api.tokens_issued()) {
            let labels = [("client", client.as_str())];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }

        let active = self.gateway.policy();
        let mut family = encoder.encode_descriptor(
            "headwall_policy_info",
            "The policy in force, by hash (always 1).",
            None,
            MetricType::Gauge,
        )?;
        let labels = [("hash", active.policy.hash())];
        ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;

        gauge(
            &mut encoder,
            "headwall_config_last_reload_successful",
            "1 when the last configuration reload applied (or none was tried), 0 when refused.",
            i64::from(self.reloads.successful()),
        )?;
        gauge(
            &mut encoder,
            "headwall_config_last_reload_success_timestamp_seconds",
            "Unix time of the last reload that applied (the start before any).",
            i64::try_from(self.reloads.last_success()).unwrap_or(i64::MAX),
        )?;
        let mut family = encoder.encode_descriptor(
            "headwall_build_info",
            "The running build (always 1).",
            None,
            MetricType::Gauge,
        )?;
        let labels = [
            ("version", self.build.version),
            ("commit", self.build.commit),
        ];
        ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;

        process(&mut encoder, self.started)
    }
}
