//! The demo's HTTPS act: the same subscriber knowledge answering CAMARA's questions (issue 15).
//!
//! A shop's app on the subscriber's phone opens `/authorize` over TLS and is identified by the
//! network; the shop's backend exchanges the code with a signed client assertion and asks
//! Number Verification and KYC Age Verification. A self-signed certificate is made at start
//! with rcgen, so the act needs no set-up; the demo's own client trusts only it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use headwall_identity::{SigningKey, TokenIssuer};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Checks;

const API_NAME: &str = "api.operator.test";
const ISSUER: &str = "https://api.operator.test";
const CLIENT: &str = "shop-app";
const REDIRECT: &str = "https://shop.test/callback";
const PURPOSE: &str = "dpv:FraudPreventionAndDetection";
/// The shop backend's Ed25519 key seed (a demo value; its public half is registered).
const CLIENT_SEED: [u8; 32] = [0x5c; 32];

/// Writes the listener's certificate and key (0600) and the client's public keys into `dir`;
/// returns the certificate, the demo client's only trust root.
pub(super) fn prepare(dir: &Path) -> anyhow::Result<CertificateDer<'static>> {
    let certified = rcgen::generate_simple_self_signed(vec![API_NAME.to_owned()])
        .context("self-signed certificate for the demo API")?;
    std::fs::write(dir.join("api.crt"), certified.cert.pem())?;
    let key = dir.join("api.key");
    std::fs::write(&key, certified.key_pair.serialize_pem())?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    let client = SigningKey::from_seed(&CLIENT_SEED)?;
    std::fs::write(
        dir.join("shop-app.jwks.json"),
        json!({ "keys": [client.public_jwk()] }).to_string(),
    )?;
    Ok(certified.cert.der().clone())
}

/// The `[api]` tables of the demo configuration.
pub(super) fn config() -> String {
    format!(
        r#"
[api]
listen = "127.0.0.1:0"
public_url = "{ISSUER}"
tls_cert_file = "api.crt"
tls_key_file = "api.key"
subscriber_networks = ["127.0.0.0/29"]

[[api.client]]
id = "{CLIENT}"
jwks_file = "shop-app.jwks.json"
redirect_uris = ["{REDIRECT}"]
scopes = ["number-verification:verify", "kyc-age-verification:verify"]
purpose = "{PURPOSE}"
"#
    )
}

/// The act, from the phone at `device` and an unbound device at `wifi`.
pub(super) async fn act(
    api: SocketAddr,
    root: &CertificateDer<'static>,
    device: Ipv4Addr,
    wifi: Ipv4Addr,
    number: &str,
    checks: &mut Checks,
) -> anyhow::Result<()> {
    let client = Client {
        api,
        root: root.clone(),
    };
    println!(
        "9. HTTPS: the shop's app on subscriber A's phone ({device}) opens {ISSUER}/authorize"
    );
    let code = client
        .authorize(device, "number-verification:verify")
        .await?;
    println!(
        "   redirected to {REDIRECT}?code=… : the device was identified by the mobile network"
    );
    checks.expect(
        "HTTPS: /authorize gave the bound phone a code",
        code.is_some(),
    );
    let code = code.context("no code for the bound phone")?;
    let token = client.token(&code, "demo-1").await?;
    let sub = token
        .as_deref()
        .and_then(claims)
        .and_then(|c| c["sub"].as_str().map(str::to_owned))
        .unwrap_or_default();
    println!(
        "   the shop's backend exchanged it with a signed client assertion: an access token for \
         pairwise sub {}…",
        sub.get(..8).unwrap_or(&sub)
    );
    let token = token.context("no access token")?;
    let right = json!({ "phoneNumber": format!("+{number}") });
    let (status, answer) = client
        .post("/number-verification/v2/verify", &token, &right)
        .await?;
    println!("   POST /number-verification/v2/verify {right} -> {status} {answer}");
    checks.expect(
        "HTTPS: the right number is verified true",
        status == 200 && answer == json!({ "devicePhoneNumberVerified": true }),
    );
    let (status, answer) = client
        .post("/number-verification/v2/verify", &token, &right)
        .await?;
    println!("   the same token again -> {status} {}", answer["code"]);
    checks.expect(
        "HTTPS: a used number-verification token is refused",
        status == 401,
    );

    let code = client
        .authorize(device, "number-verification:verify")
        .await?
        .context("no second code")?;
    let token = client
        .token(&code, "demo-2")
        .await?
        .context("no second token")?;
    let wrong = json!({ "phoneNumber": "+447700900999" });
    let (status, answer) = client
        .post("/number-verification/v2/verify", &token, &wrong)
        .await?;
    println!("   a fresh token, {wrong} -> {status} {answer}");
    checks.expect(
        "HTTPS: a wrong number is verified false",
        status == 200 && answer == json!({ "devicePhoneNumberVerified": false }),
    );

    let code = client
        .authorize(device, "kyc-age-verification:verify")
        .await?
        .context("no age-check code")?;
    let token = client
        .token(&code, "demo-3")
        .await?
        .context("no age-check token")?;
    let ask = json!({ "ageThreshold": 18 });
    let (status, answer) = client
        .post("/kyc-age-verification/v0.2/verify", &token, &ask)
        .await?;
    println!("   POST /kyc-age-verification/v0.2/verify {ask} -> {status} {answer}");
    checks.expect(
        "HTTPS: the age check answers from the subscriber profile",
        status == 200 && answer["ageCheck"] == "true",
    );

    let denied = client.authorize(wifi, "number-verification:verify").await?;
    println!(
        "   a device on Wi-Fi ({wifi}, bound to nobody) -> {}\n",
        if denied.is_none() {
            "error=access_denied"
        } else {
            "a code (WRONG)"
        }
    );
    checks.expect(
        "HTTPS: an unidentified device gets access_denied",
        denied.is_none(),
    );
    Ok(())
}

/// The demo's HTTPS client: the app (from a device address) and the shop's backend.
struct Client {
    api: SocketAddr,
    root: CertificateDer<'static>,
}

impl Client {
    /// Opens the authorization URL from `device`: the code it is redirected with, or `None`
    /// when the redirect carries an error.
    async fn authorize(&self, device: Ipv4Addr, api_scope: &str) -> anyhow::Result<Option<String>> {
        // RFC 7636 appendix B's verifier and challenge.
        let scope = format!("openid%20{PURPOSE}%20{api_scope}");
        let path = format!(
            "/authorize?client_id={CLIENT}&redirect_uri={REDIRECT}&response_type=code\
             &scope={scope}&state=demo&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256"
        );
        let (status, head, _) = self.send(IpAddr::V4(device), "GET", &path, &[], "").await?;
        anyhow::ensure!(status == 302, "/authorize answered {status}");
        let location = head
            .lines()
            .find_map(|line| {
                line.split_once(':')
                    .filter(|(name, _)| name.eq_ignore_ascii_case("location"))
                    .map(|(_, value)| value.trim().to_owned())
            })
            .context("a redirect without Location")?;
        Ok(location
            .split_once("?code=")
            .and_then(|(_, rest)| rest.split('&').next())
            .map(str::to_owned))
    }

    /// Redeems `code` with a fresh client assertion (`jti`): the access token, or `None`.
    async fn token(&self, code: &str, jti: &str) -> anyhow::Result<Option<String>> {
        let key = SigningKey::from_seed(&CLIENT_SEED)?;
        let now = headwall_sessions::unix_now();
        let assertion = TokenIssuer::new(key, CLIENT).sign(
            "JWT",
            &json!({
                "iss": CLIENT, "sub": CLIENT, "aud": format!("{ISSUER}/token"),
                "iat": now, "exp": now + 60, "jti": jti,
            }),
        );
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT}\
             &code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk\
             &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
             &client_assertion={}",
            assertion.expose()
        );
        let (status, _, body) = self
            .send(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                "POST",
                "/token",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                &body,
            )
            .await?;
        let tokens: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        Ok((status == 200)
            .then(|| tokens["access_token"].as_str().map(str::to_owned))
            .flatten())
    }

    /// A JSON POST with `token`: (status, JSON body).
    async fn post(&self, path: &str, token: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let bearer = format!("Bearer {token}");
        let (status, _, body) = self
            .send(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                "POST",
                path,
                &[
                    ("Authorization", bearer.as_str()),
                    ("Content-Type", "application/json"),
                ],
                &body.to_string(),
            )
            .await?;
        Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// One HTTPS request from `source` on a fresh connection: (status, head, body).
    async fn send(
        &self,
        source: IpAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<(u16, String, String)> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.root.clone())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        let tcp = socket.connect(self.api).await?;
        let name = ServerName::try_from(API_NAME)?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .context("TLS handshake with the demo API")?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {API_NAME}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        tls.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        // The server may close without close_notify after a complete response.
        let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response))
            .await
            .context("no API response within 10 s")?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, head.to_owned(), body.to_owned()))
    }
}

/// A JWS's claims, unverified (the demo only shows its `sub`).
fn claims(jws: &str) -> Option<Value> {
    let payload = URL_SAFE_NO_PAD.decode(jws.split('.').nth(1)?).ok()?;
    serde_json::from_slice(&payload).ok()
}
