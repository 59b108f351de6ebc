//! The gateway under test and its surroundings.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use headwall_audit::{AuditLog, AuditOptions};
use headwall_identity::{Msisdn, PseudonymKey, SigningKey, TokenIssuer};
use headwall_proxy::{Gateway, GatewaySettings, IdentityKeys};
use headwall_sessions::{Binding, Profiles, Sessions};
use headwall_testkit::{EchoOrigin, ProbeResponse, ReceivedRequest, loopback, origin, send_raw};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub(crate) const SUBSCRIBER: &str = "447700900123";
pub(crate) const PSEUDONYM_KEY: [u8; 32] = [7; 32];
pub(crate) const SIGNING_SEED: [u8; 32] = [9; 32];

pub(crate) fn subscriber_ip() -> IpAddr {
    loopback(5)
}

pub(crate) fn unbound_ip() -> IpAddr {
    loopback(6)
}

pub(crate) struct Harness {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) proxy: SocketAddr,
    /// The transparent listener (loopback: only PROXY-protocol destinations reach it here).
    pub(crate) transparent: SocketAddr,
    /// agecheck (age_verification) on 127.0.0.2
    pub(crate) agecheck: EchoOrigin,
    /// an ordinary website on 127.0.0.3
    pub(crate) website: EchoOrigin,
    /// carrierpay (billing) on 127.0.0.4
    pub(crate) billing: EchoOrigin,
    /// The audit database the gateway writes.
    pub(crate) audit_path: std::path::PathBuf,
    _state: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
    _stop_transparent: oneshot::Sender<()>,
}

/// Starts origins and a gateway with the standard two-partner policy; `gateway_extra` is TOML
/// appended to `[gateway]`. The subscriber is bound to 127.0.0.5 and age-verified.
pub(crate) async fn start(gateway_extra: &str) -> Harness {
    let agecheck = origin(2).await;
    let website = origin(3).await;
    let billing = origin(4).await;
    let config = format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
connect_ports = [{website_port}]
{gateway_extra}
[gateway.hosts]
"verify.agecheck.test" = "127.0.0.2"
"old.agecheck.test" = "127.0.0.3"
"pay.carrierpay.test" = "127.0.0.4"
"news.example.test" = "127.0.0.3"

[[partner]]
name = "agecheck"
purpose = "age_verification"
hosts = ["verify.agecheck.test", "old.agecheck.test"]
ports = [{agecheck_port}, {website_port}]
destinations = ["127.0.0.2/32"]
headers = {{ "X-Age-Verified" = "age_verified", "X-Subscriber-Id" = "pseudonym" }}

[[partner]]
name = "carrierpay"
purpose = "billing"
hosts = ["*.carrierpay.test"]
ports = [{billing_port}]
destinations = ["127.0.0.4/32"]
headers = {{ "X-MSISDN" = "msisdn", "X-Billing-Token" = "token" }}
"#,
        agecheck_port = agecheck.addr().port(),
        website_port = website.addr().port(),
        billing_port = billing.addr().port(),
    );
    let config = headwall_policy::load(
        "test.toml",
        &config,
        &headwall_policy::Folders::both(std::path::Path::new(".")),
    )
    .unwrap_or_else(|errors| panic!("test config: {errors}"));
    let keys = IdentityKeys {
        pseudonym: PseudonymKey::from_bytes(&PSEUDONYM_KEY).unwrap(),
        issuer: TokenIssuer::new(
            SigningKey::from_seed(&SIGNING_SEED).unwrap(),
            "headwall.test",
        ),
    };
    let profiles = Profiles::parse(
        "s.csv",
        &format!("msisdn,age_verified\n{SUBSCRIBER},true\n"),
    )
    .unwrap();
    let sessions = Sessions::memory(config.sessions.stale_after.as_secs());
    let state = tempfile::tempdir().unwrap();
    let audit_path = state.path().join("audit.db");
    let audit = AuditLog::open(
        &audit_path,
        AuditOptions {
            signing_key: SigningKey::from_seed(&SIGNING_SEED).unwrap(),
            checkpoint_every: Duration::from_secs(60),
            commit_window: headwall_audit::DEFAULT_COMMIT_WINDOW,
        },
    )
    .unwrap();
    let gateway = Gateway::new(
        GatewaySettings::from_config(&config.gateway),
        config.policy.clone(),
        sessions,
        profiles,
        keys,
        audit,
    );
    bind(&gateway, subscriber_ip(), SUBSCRIBER, now());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let transparent_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let transparent = transparent_listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let (stop_transparent, transparent_stopped) = oneshot::channel::<()>();
    tokio::spawn(gateway.clone().serve_explicit(listener, async {
        let _ = stopped.await;
    }));
    tokio::spawn(
        gateway
            .clone()
            .serve_transparent(transparent_listener, async {
                let _ = transparent_stopped.await;
            }),
    );
    Harness {
        gateway,
        proxy,
        transparent,
        agecheck,
        website,
        billing,
        audit_path,
        _state: state,
        _stop: stop,
        _stop_transparent: stop_transparent,
    }
}

pub(crate) fn bind(gateway: &Gateway, ip: IpAddr, msisdn: &str, updated_at: u64) {
    gateway.sessions().table().expect("embedded").bind(
        ipnet::IpNet::from(ip),
        Binding {
            msisdn: Msisdn::parse(msisdn).unwrap(),
            imsi: None,
            session_id: format!("session-{msisdn}"),
            nas: "test-pgw".into(),
            updated_at,
        },
    );
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Harness {
    /// `(partner, msisdn, headers, host)` of every disclosure record, oldest first.
    pub(crate) fn disclosures(&self) -> Vec<(String, String, String, String)> {
        let connection = self.audit_index();
        let mut statement = connection
            .prepare("SELECT partner, msisdn, headers, host FROM disclosures ORDER BY id")
            .unwrap();
        statement
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// The audit log's SQLite index, brought up to its journal first as every reader does.
    fn audit_index(&self) -> rusqlite::Connection {
        headwall_audit::catch_up(&self.audit_path).unwrap();
        rusqlite::Connection::open(&self.audit_path).unwrap()
    }

    /// The `kind` of every security event, oldest first.
    pub(crate) fn security_events(&self) -> Vec<(String, serde_json::Value)> {
        let connection = self.audit_index();
        let mut statement = connection
            .prepare("SELECT kind, detail FROM security_events ORDER BY id")
            .unwrap();
        statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .map(|(kind, detail)| (kind, serde_json::from_str(&detail).unwrap()))
            .collect()
    }

    /// `GET url` through the gateway from `from`, with `headers` sent verbatim.
    pub(crate) async fn get(
        &self,
        from: IpAddr,
        url: &str,
        headers: &[(&str, &str)],
    ) -> ProbeResponse {
        self.raw(from, &headwall_testkit::proxy_get(url, headers))
            .await
    }

    /// A GET through the gateway, from the bound subscriber, to a [`raw_origin`] that answers
    /// with `answer` once it has read the request head.
    pub(crate) async fn get_answered_by(&self, answer: &str) -> ProbeResponse {
        let (url, serve) = raw_origin(answer.to_owned(), |seen| seen.ends_with(b"\r\n\r\n")).await;
        let response = self.get(subscriber_ip(), &url, &[]).await;
        serve.await.unwrap();
        response
    }

    pub(crate) async fn raw(&self, from: IpAddr, request: &[u8]) -> ProbeResponse {
        send_raw(self.proxy, Some(from), request, Duration::from_secs(20))
            .await
            .expect("request through the gateway")
    }

    pub(crate) fn agecheck_url(&self) -> String {
        format!(
            "http://verify.agecheck.test:{}/",
            self.agecheck.addr().port()
        )
    }

    pub(crate) fn billing_url(&self) -> String {
        format!("http://pay.carrierpay.test:{}/", self.billing.addr().port())
    }

    pub(crate) fn website_url(&self) -> String {
        format!("http://news.example.test:{}/", self.website.addr().port())
    }
}

/// An origin on 127.0.0.1 that takes one connection, reads until `done` says what it has seen is
/// the whole request, answers `answer` byte for byte, and hands back what it saw: for framings
/// and bytes an [`EchoOrigin`] would not send or not show. Returns its URL and the bytes seen.
pub(crate) async fn raw_origin(
    answer: String,
    done: fn(&[u8]) -> bool,
) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", origin.local_addr().unwrap());
    let serve = tokio::spawn(async move {
        let (mut stream, _) = origin.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !done(&seen) {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        stream.write_all(answer.as_bytes()).await.unwrap();
        seen
    });
    (url, serve)
}

/// The one request `origin` received since the last call.
pub(crate) fn only(origin: &EchoOrigin) -> ReceivedRequest {
    let mut received = origin.take();
    assert_eq!(
        received.len(),
        1,
        "expected exactly one request, got {received:?}"
    );
    received.remove(0)
}

/// Names that carry identity: the built-in list plus every partner header in the test policy.
pub(crate) fn identity_names() -> Vec<String> {
    let mut names: Vec<String> = headwall_policy::builtin_identity_headers()
        .map(str::to_owned)
        .collect();
    names.extend(
        [
            "x-age-verified",
            "x-subscriber-id",
            "x-msisdn",
            "x-billing-token",
        ]
        .map(String::from),
    );
    names
}

/// Asserts that `request` carries no identity header and no trace of the subscriber's number.
pub(crate) fn assert_no_identity(request: &ReceivedRequest) {
    let names = identity_names();
    for (name, value) in &request.headers {
        let normalized = headwall_policy::normalize_header_name(name);
        assert!(
            !names.contains(&normalized),
            "identity header {name} arrived: {request:?}"
        );
        assert!(
            !value.contains(SUBSCRIBER),
            "subscriber number arrived in {name}"
        );
    }
}
