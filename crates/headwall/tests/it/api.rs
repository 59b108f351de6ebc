//! `[api]` on the real binary over real TLS: discovery, JWKS and `/authorize` with
//! network-based authentication from RADIUS bindings (issue 15).

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use headwall_testkit::{ServeProcess, loopback, radclient, temp_dir};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::binary;

pub(crate) const SECRET: &str = "testing123";
pub(crate) const ISSUER: &str = "https://api.operator.test";
pub(crate) const REDIRECT: &str = "https://shop.test/cb";
pub(crate) const PURPOSE: &str = "dpv:FraudPreventionAndDetection";
/// RFC 7636 appendix B's verifier and its S256 challenge.
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// The app backend's Ed25519 key (private_key_jwt); its public half is in the JWKS file.
pub(crate) const CLIENT_SEED: [u8; 32] = [0x5c; 32];

/// The client's public JWKS.
pub(crate) fn client_jwks() -> String {
    let public = headwall_identity::SigningKey::from_seed(&CLIENT_SEED)
        .unwrap()
        .public_key_bytes();
    let x = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, public);
    format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"shop-1","x":"{x}"}}]}}"#)
}

/// jsonwebtoken's signing key for an Ed25519 seed: PKCS#8 v1 (RFC 8410 §7).
pub(crate) fn ed25519_key(seed: [u8; 32]) -> jsonwebtoken::EncodingKey {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    jsonwebtoken::EncodingKey::from_ed_der(&der)
}

/// A client assertion (RFC 7523) signed by jsonwebtoken with the client's key.
pub(crate) fn assertion(jti: &str, lifetime: u64) -> String {
    assertion_as("shop-app", jti, lifetime)
}

/// A client assertion for `client` with the tests' client key.
fn assertion_as(client: &str, jti: &str, lifetime: u64) -> String {
    let key = ed25519_key(CLIENT_SEED);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("shop-1".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": client, "sub": client, "aud": format!("{ISSUER}/token"),
        "iat": now, "exp": now + lifetime, "jti": jti,
    });
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// A gateway with RADIUS and `[api]`: devices 127.0.0.0/29 may be identified; a certificate
/// for api.operator.test from a test CA. Returns the process and the CA certificate (the
/// clients' trust root).
fn start() -> (ServeProcess, rustls::pki_types::CertificateDer<'static>) {
    start_with(
        "127.0.0.1:0",
        ISSUER,
        "api.operator.test",
        &client_jwks(),
        "",
        CLIENT_SCOPES,
    )
}

/// The scopes of the tests' client (no number sharing: that needs a justification).
pub(crate) const CLIENT_SCOPES: &str =
    r#"scopes = ["number-verification:verify", "kyc-age-verification:verify"]"#;

/// Like [`start`], listening on `listen` as `issuer` with a certificate for `name`, the client
/// registered with the JWK Set `jwks` and the `client` lines (its `scopes`, and a
/// `justification` when it may read numbers), and `gateway` lines added to `[gateway]` (they
/// may open further tables, such as `[sessions]`).
pub(crate) fn start_with(
    listen: &str,
    issuer: &str,
    name: &str,
    jwks: &str,
    gateway: &str,
    client: &str,
) -> (ServeProcess, rustls::pki_types::CertificateDer<'static>) {
    let dir = temp_dir();
    // A test CA (the clients' only trust root, `ca.crt`) and the listener's certificate for
    // `name` signed by it, as an operator's would be.
    let ca = headwall_testkit::tls::TestCa::new("headwall test CA");
    let ca_file = ca.write(dir.path(), "ca");
    ca.write_pair(dir.path(), "api", name, &[name]);
    std::fs::write(dir.path().join("shop.jwks.json"), jwks).unwrap();
    let admin_and_radius = crate::admin_and_radius(SECRET);
    let config = format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
{gateway}
{admin_and_radius}
[api]
listen = "{listen}"
public_url = "{issuer}"
tls_cert_file = "api.crt"
tls_key_file = "api.key"
subscriber_networks = ["127.0.0.0/29"]
[[api.client]]
id = "shop-app"
jwks_file = "shop.jwks.json"
redirect_uris = ["{REDIRECT}"]
{client}
purpose = "{PURPOSE}"
[subscribers]
file = "subscribers.csv"
"#
    );
    // The bound test subscriber: born 2000-01-15, ID checked, no content lock; parental
    // control unknown.
    std::fs::write(
        dir.path().join("subscribers.csv"),
        "msisdn,birthdate,verified,content_lock,parental_control\n447700900123,2000-01-15,true,false,\n",
    )
    .unwrap();
    let gateway = ServeProcess::start_in(binary(), &config, dir);
    use rustls::pki_types::pem::PemObject as _;
    let root = rustls::pki_types::CertificateDer::from_pem_file(&ca_file).unwrap();
    (gateway, root)
}

pub(crate) fn bind(gateway: &ServeProcess, ip: &str, session: &str, status: &str) -> bool {
    radclient(
        gateway.radius.expect("radius listener"),
        SECRET,
        &format!(
            "Acct-Status-Type = {status}\nFramed-IP-Address = {ip}\n\
             Calling-Station-Id = \"07700900123\"\nAcct-Session-Id = \"{session}\"\n\
             NAS-IP-Address = 127.0.0.1\n"
        ),
    )
}

/// One HTTPS GET from `source`, trusting only `root`: (status, head, body).
async fn get(
    api: SocketAddr,
    root: &rustls::pki_types::CertificateDer<'static>,
    source: IpAddr,
    path: &str,
) -> (u16, String, String) {
    https(api, root, source, "GET", path, &[], "").await
}

/// One HTTPS request from `source`, trusting only `root`: (status, head, body).
pub(crate) async fn https(
    api: SocketAddr,
    root: &rustls::pki_types::CertificateDer<'static>,
    source: IpAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let tcp = socket.connect(api).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("api.operator.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: api.operator.test\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response));
    // A peer closing without close_notify is still a complete response here.
    let _ = read.await.expect("response within 10 s");
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

pub(crate) fn location(head: &str) -> Option<&str> {
    head.lines().find_map(|line| {
        line.split_once(':')
            .filter(|(name, _)| name.eq_ignore_ascii_case("location"))
            .map(|(_, value)| value.trim())
    })
}

pub(crate) fn authorize_path(client: &str, redirect: &str, scope: &str, extra: &str) -> String {
    let scope = scope.replace(' ', "%20");
    format!(
        "/authorize?client_id={client}&redirect_uri={redirect}&response_type=code&scope={scope}\
         &state=st4te&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}"
    )
}

#[tokio::test]
async fn discovery_and_jwks_name_the_issuer_and_its_key() {
    let (gateway, root) = start();
    let api = gateway.api.expect("api listener");
    let (status, _, body) = get(api, &root, loopback(1), "/.well-known/openid-configuration").await;
    assert_eq!(status, 200, "{body}");
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["issuer"], ISSUER);
    assert_eq!(
        document["authorization_endpoint"],
        format!("{ISSUER}/authorize")
    );
    assert_eq!(document["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(
        document["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        document["token_endpoint_auth_methods_supported"],
        serde_json::json!(["private_key_jwt"])
    );
    let (status, head, body) = get(api, &root, loopback(1), "/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("application/jwk-set+json"),
        "{head}"
    );
    let jwks: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(jwks["keys"][0].get("d").is_none(), "private key published");
}

/// Network-based authentication: a code only for a bound device inside `subscriber_networks`;
/// `access_denied` (by redirect, with the state) for an unbound one, one outside the networks
/// and one whose session stopped; and no redirect at all for an unknown client or an
/// unregistered redirect URI.
#[tokio::test]
async fn authorize_gives_a_code_only_to_a_bound_device() {
    let (gateway, root) = start();
    let api = gateway.api.expect("api listener");
    assert!(bind(&gateway, "127.0.0.5", "s5", "Start"));
    assert!(bind(&gateway, "127.0.0.9", "s9", "Start"));
    let scope = format!("openid {PURPOSE} number-verification:verify");
    let path = authorize_path("shop-app", REDIRECT, &scope, "");

    let (status, head, _) = get(api, &root, loopback(5), &path).await;
    assert_eq!(status, 302, "{head}");
    let to = location(&head).expect("a redirect");
    let query = to
        .strip_prefix(&format!("{REDIRECT}?"))
        .expect("to the registered URI");
    let code = query
        .strip_prefix("code=")
        .and_then(|rest| rest.strip_suffix("&state=st4te"))
        .unwrap_or_else(|| panic!("code and state in {to}"));
    assert_eq!(code.len(), 43, "{code}");

    let denied = format!("{REDIRECT}?error=access_denied");
    // .6 is bound by nobody; .9 is bound but outside subscriber_networks (127.0.0.0/29).
    for device in [6, 9] {
        let (status, head, _) = get(api, &root, loopback(device), &path).await;
        assert_eq!(status, 302, "{head}");
        let to = location(&head).unwrap();
        assert!(
            to.starts_with(&denied) && to.ends_with("&state=st4te"),
            "{device}: {to}"
        );
    }

    for (extra_path, why) in [
        (
            authorize_path("nobody", REDIRECT, &scope, ""),
            "unknown client",
        ),
        (
            authorize_path("shop-app", "https://evil.test/cb", &scope, ""),
            "unregistered redirect",
        ),
        (format!("{path}&state=again"), "repeated parameter"),
    ] {
        let (status, head, body) = get(api, &root, loopback(5), &extra_path).await;
        assert_eq!(status, 400, "{why}: {head}");
        assert!(location(&head).is_none(), "{why}: redirected: {head}");
        assert!(body.contains("refused"), "{why}: {body}");
    }

    for (bad, error) in [
        (
            path.replace("&code_challenge_method=S256", ""),
            "invalid_request",
        ),
        (path.replace(CHALLENGE, "short"), "invalid_request"),
        (
            path.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            authorize_path(
                "shop-app",
                REDIRECT,
                &format!("openid {PURPOSE} number-verification:device-phone-number:read"),
                "",
            ),
            "invalid_scope",
        ),
        (
            authorize_path(
                "shop-app",
                REDIRECT,
                "openid number-verification:verify",
                "",
            ),
            "invalid_scope",
        ),
    ] {
        let (status, head, _) = get(api, &root, loopback(5), &bad).await;
        assert_eq!(status, 302, "{bad}: {head}");
        let to = location(&head).unwrap();
        assert!(
            to.starts_with(&format!("{REDIRECT}?error={error}")),
            "{bad}: {to}"
        );
    }

    // After the session's Stop the same device is no longer anyone.
    assert!(bind(&gateway, "127.0.0.5", "s5", "Stop"));
    let (_, head, _) = get(api, &root, loopback(5), &path).await;
    assert!(location(&head).unwrap().starts_with(&denied), "{head}");

    let log = gateway.log().join("\n");
    assert!(!log.contains("7700900123"), "a number in the log");
    assert!(!log.contains(code), "a code in the log");
}

/// A key readable by others is refused at start, naming the file, before anything listens.
#[test]
fn a_tls_key_readable_by_others_stops_the_start() {
    let dir = temp_dir();
    let certified = rcgen::generate_simple_self_signed(vec!["api.operator.test".to_owned()])
        .expect("self-signed certificate");
    std::fs::write(dir.path().join("api.crt"), certified.cert.pem()).unwrap();
    let key = dir.path().join("api.key");
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        dir.path().join("headwall.toml"),
        format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[api]\n\
             listen = \"127.0.0.1:0\"\npublic_url = \"{ISSUER}\"\ntls_cert_file = \"api.crt\"\n\
             tls_key_file = \"api.key\"\nsubscriber_networks = [\"127.0.0.0/29\"]\n"
        ),
    )
    .unwrap();
    let output = std::process::Command::new(binary())
        .args(["serve", "--config"])
        .arg(dir.path().join("headwall.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("api.key is accessible by group or others (mode 644)"),
        "{stderr}"
    );
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
}

/// A code from `/authorize` for the device at 127.0.0.5, for Number Verification.
async fn code_for(api: SocketAddr, root: &rustls::pki_types::CertificateDer<'static>) -> String {
    code_with(api, root, "number-verification:verify").await
}

/// A code from `/authorize` for the device at 127.0.0.5, for `api_scope`.
async fn code_with(
    api: SocketAddr,
    root: &rustls::pki_types::CertificateDer<'static>,
    api_scope: &str,
) -> String {
    code_from(api, root, loopback(5), api_scope).await
}

/// A code from `/authorize` for the device at `device`, for `api_scope`.
pub(crate) async fn code_from(
    api: SocketAddr,
    root: &rustls::pki_types::CertificateDer<'static>,
    device: IpAddr,
    api_scope: &str,
) -> String {
    let scope = format!("openid {PURPOSE} {api_scope}");
    let (_, head, _) = get(
        api,
        root,
        device,
        &authorize_path("shop-app", REDIRECT, &scope, "&nonce=n0nce"),
    )
    .await;
    let to = location(&head).unwrap_or_else(|| panic!("no redirect: {head}"));
    to.split("code=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap_or_else(|| panic!("no code in {to}"))
        .to_owned()
}

/// `/token` from the app backend (127.0.0.1): (status, JSON body).
pub(crate) async fn redeem(
    api: SocketAddr,
    root: &rustls::pki_types::CertificateDer<'static>,
    code: &str,
    assertion: &str,
) -> (u16, serde_json::Value) {
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}\
         &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
         &client_assertion={assertion}"
    );
    let (status, head, body) = https(
        api,
        root,
        loopback(1),
        "POST",
        "/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    )
    .await;
    assert!(
        head.to_ascii_lowercase()
            .contains("cache-control: no-store"),
        "{head}"
    );
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// `POST /number-verification/v2/verify` with `token`: (status, head, JSON body).
async fn verify(
    api: SocketAddr,
    root: &rustls::pki_types::CertificateDer<'static>,
    token: &str,
    body: &str,
) -> (u16, String, serde_json::Value) {
    let bearer = format!("Bearer {token}");
    let (status, head, body) = https(
        api,
        root,
        loopback(1),
        "POST",
        "/number-verification/v2/verify",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
            ("x-correlator", "c0rr-1"),
        ],
        body,
    )
    .await;
    (
        status,
        head,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

pub(crate) fn claims(jws: &str) -> serde_json::Value {
    let payload = jws.split('.').nth(1).unwrap();
    let bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The whole Number Verification flow as an app backend runs it, with the refusals that keep
/// it honest: a replayed assertion, a code redeemed twice (which revokes the first token), a
/// token used twice, a scope the client lacks, and what the audit holds afterwards.
#[tokio::test]
async fn number_verification_answers_once_per_token_from_a_durable_record() {
    let (gateway, root) = start();
    let api = gateway.api.expect("api listener");
    assert!(bind(&gateway, "127.0.0.5", "s5", "Start"));

    let code = code_for(api, &root).await;
    let first = assertion("a-1", 60);
    let (status, tokens) = redeem(api, &root, &code, &first).await;
    assert_eq!(status, 200, "{tokens}\n{}", gateway.log().join("\n"));
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 300);
    assert_eq!(
        tokens["scope"],
        format!("openid {PURPOSE} number-verification:verify")
    );
    assert!(tokens.get("refresh_token").is_none());
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let at = claims(&access);
    assert_eq!(at["iss"], ISSUER);
    assert_eq!(at["client_id"], "shop-app");
    assert_eq!(at["amr"], serde_json::json!(["nba"]));
    let sub = at["sub"].as_str().unwrap().to_owned();
    assert!(!sub.contains("7700900123"), "the number in the token");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        (id["aud"].as_str(), id["sub"].as_str()),
        (Some("shop-app"), Some(sub.as_str()))
    );
    assert_eq!(id["nonce"], "n0nce");

    // The same assertion again, with a fresh code: replayed.
    let second_code = code_for(api, &root).await;
    let (status, refused) = redeem(api, &root, &second_code, &first).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // An assertion living longer than 300 s.
    let (status, refused) = redeem(api, &root, &second_code, &assertion("a-long", 301)).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (401, Some("invalid_client"))
    );

    let (status, head, answer) =
        verify(api, &root, &access, r#"{"phoneNumber":"+447700900123"}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        serde_json::json!({ "devicePhoneNumberVerified": true })
    );
    assert!(
        head.to_ascii_lowercase().contains("x-correlator: c0rr-1"),
        "{head}"
    );
    // Single use.
    let (status, _, answer) =
        verify(api, &root, &access, r#"{"phoneNumber":"+447700900123"}"#).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );

    // A wrong number on a fresh token is false; the hashed form of the right one is true.
    let (_, tokens) = redeem(api, &root, &second_code, &assertion("a-2", 60)).await;
    let token = tokens["access_token"].as_str().unwrap();
    let (status, _, answer) = verify(api, &root, token, r#"{"phoneNumber":"+447700900999"}"#).await;
    assert_eq!(
        (status, &answer),
        (
            200,
            &serde_json::json!({ "devicePhoneNumberVerified": false })
        )
    );
    let (_, tokens) = redeem(
        api,
        &root,
        &code_for(api, &root).await,
        &assertion("a-3", 60),
    )
    .await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    use sha2::Digest as _;
    let hashed: String = sha2::Sha256::digest(b"+447700900123")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (status, _, answer) = verify(
        api,
        &root,
        &token,
        &format!(r#"{{"hashedPhoneNumber":"{hashed}"}}"#),
    )
    .await;
    assert_eq!(
        (status, &answer),
        (
            200,
            &serde_json::json!({ "devicePhoneNumberVerified": true })
        )
    );

    // No share scope: 403; a malformed body: 400; no token: 401.
    let (_, tokens) = redeem(
        api,
        &root,
        &code_for(api, &root).await,
        &assertion("a-4", 60),
    )
    .await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let (status, _, body) = https(
        api,
        &root,
        loopback(1),
        "GET",
        "/number-verification/v2/device-phone-number",
        &[("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("PERMISSION_DENIED"), "{body}");
    let (status, _, answer) = verify(api, &root, &token, r#"{"phoneNumber":"447700900123"}"#).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    let (status, _, answer) = verify(
        api,
        &root,
        "not-a-token",
        r#"{"phoneNumber":"+447700900123"}"#,
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );

    // A code redeemed twice: refused, and the token of its first redemption stops working.
    let code = code_for(api, &root).await;
    let (status, tokens) = redeem(api, &root, &code, &assertion("a-5", 60)).await;
    assert_eq!(status, 200);
    let revoked = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, refused) = redeem(api, &root, &code, &assertion("a-6", 60)).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _, _) = verify(api, &root, &revoked, r#"{"phoneNumber":"+447700900123"}"#).await;
    assert_eq!(status, 401, "a revoked token answered");

    // The metrics count each endpoint's outcomes and the tokens per client.
    let scrape = crate::admin::admin(gateway.admin, "GET", "/metrics", None, "").await;
    let metrics = String::from_utf8_lossy(&scrape.body).into_owned();
    for line in [
        "headwall_api_requests_total{endpoint=\"nv_verify\",outcome=\"ok\"} 3",
        "headwall_api_requests_total{endpoint=\"nv_verify\",outcome=\"unauthenticated\"} 3",
        "headwall_api_requests_total{endpoint=\"nv_verify\",outcome=\"bad_request\"} 1",
        "headwall_api_requests_total{endpoint=\"nv_share\",outcome=\"forbidden\"} 1",
        "headwall_api_requests_total{endpoint=\"token\",outcome=\"ok\"} 5",
        "headwall_api_requests_total{endpoint=\"token\",outcome=\"unauthenticated\"} 2",
        "headwall_api_requests_total{endpoint=\"token\",outcome=\"bad_request\"} 1",
        "headwall_api_requests_total{endpoint=\"authorize\",outcome=\"ok\"} 5",
        "headwall_api_tokens_issued_total{client=\"shop-app\"} 5",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }

    // Every answer is a durable disclosure to the client, with its result and never the
    // number it asserted.
    let db = crate::audit_index(&gateway.path("state/audit.db"));
    let rows: Vec<(String, String, String, String, String)> = db
        .prepare("SELECT partner, purpose, kinds, headers, host FROM disclosures ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let answers: Vec<&str> = rows
        .iter()
        .filter(|row| row.2 == "number_match")
        .map(|row| row.3.as_str())
        .collect();
    assert_eq!(
        answers,
        [
            "devicePhoneNumberVerified=true",
            "devicePhoneNumberVerified=false",
            "devicePhoneNumberVerified=true"
        ]
    );
    let subs = rows
        .iter()
        .filter(|row| row.2 == "pseudonym" && row.4 == "/token")
        .count();
    assert_eq!(subs, 5, "one row per token issued: {rows:?}");
    assert!(
        rows.iter()
            .all(|row| row.0 == "shop-app" && row.1 == PURPOSE)
    );
    assert!(!rows.iter().any(|row| row.3.contains("7700900999")));
    // The data subject's view: what the client learned, beside the header disclosures.
    let output = std::process::Command::new(binary())
        .args(["audit", "subscriber", "447700900123", "--config"])
        .arg(gateway.path("headwall.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("Disclosures of subscriber 447700900123 (all records): 8"),
        "{text}"
    );
    assert_eq!(
        text.matches("learned: number matches (true)").count(),
        2,
        "{text}"
    );
    assert_eq!(
        text.matches("learned: number does not match (false)")
            .count(),
        1,
        "{text}"
    );
    assert_eq!(
        text.matches("learned: its pairwise sub for the subscriber")
            .count(),
        5,
        "{text}"
    );
    assert!(
        text.contains("API /number-verification/v2/verify"),
        "{text}"
    );
    let log = gateway.log().join("\n");
    assert!(
        !log.contains("7700900123") && !log.contains(&access),
        "a number or token in the log"
    );
}

/// The Python the API tests drive a client library with: `HEADWALL_TEST_PYTHON`, which
/// scripts/test sets to the virtual environment it makes from tests/python/requirements.txt.
pub(crate) fn client_python() -> std::path::PathBuf {
    let python = std::env::var_os("HEADWALL_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target/test-venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run scripts/test, which makes the virtual environment with Authlib \
         (crates/headwall/tests/python/requirements.txt)",
        python.display()
    );
    python
}

/// A real OAuth/OIDC client library we did not write (Authlib, ES256 `private_key_jwt`,
/// PKCE S256) runs discovery, the device's authorization, the token exchange and one verify
/// against the real binary over TLS with our certificate as its only trust root. A device
/// nobody bound gets `access_denied` through the same library.
#[test]
fn an_oidc_client_library_runs_the_whole_flow() {
    let python = client_python();
    let script = crate::repo_root().join("crates/headwall/tests/python/oidc_flow.py");
    let keys = temp_dir();
    let status = std::process::Command::new(&python)
        .arg(&script)
        .arg("keygen")
        .arg(keys.path())
        .status()
        .unwrap();
    assert!(status.success());
    let jwks = std::fs::read_to_string(keys.path().join("client.jwks.json")).unwrap();
    // The issuer is the address Authlib connects to: a free port, taken again at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = format!("https://127.0.0.1:{port}");
    let (gateway, _) = start_with(
        &format!("127.0.0.1:{port}"),
        &issuer,
        "127.0.0.1",
        &jwks,
        "",
        CLIENT_SCOPES,
    );
    assert!(bind(&gateway, "127.0.0.5", "s5", "Start"));
    let ca = gateway.path("ca.crt");
    let run = |device: &str| {
        let output = std::process::Command::new(&python)
            .arg(&script)
            .arg("flow")
            .arg(&issuer)
            .arg(&ca)
            .arg(keys.path().join("client.jwk"))
            .arg(device)
            .arg("+447700900123")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let (bound, unbound) = (run("127.0.0.5"), run("127.0.0.6"));
    assert_eq!(
        bound,
        serde_json::json!({
            "issuer": issuer,
            "authorize_status": 302,
            "redirected_to_registered_uri": true,
            "token_type": "Bearer",
            "has_id_token": true,
            "has_refresh_token": false,
            "verify_status": 200,
            "verify": { "devicePhoneNumberVerified": true },
            "correlator": "authlib-1",
            "again_status": 401,
        })
    );
    assert_eq!(unbound["authorize_error"], "access_denied", "{unbound}");
    assert_eq!(unbound["redirected_to_registered_uri"], true);
}

/// KYC Age Verification answers from `[subscribers]` profile data: the age from the birthdate
/// for any threshold, `verifiedStatus`, and content lock and parental control only when asked
/// (unknown is `not_available`). The token answers more than once; a phone number in the body
/// is 422; a Number Verification token is 403 here. Every answer is a disclosure row.
#[tokio::test]
async fn age_verification_answers_from_the_profile() {
    let (gateway, root) = start();
    let api = gateway.api.expect("api listener");
    assert!(bind(&gateway, "127.0.0.5", "s5", "Start"));
    let code = code_with(api, &root, "kyc-age-verification:verify").await;
    let (status, tokens) = redeem(api, &root, &code, &assertion("k-1", 60)).await;
    assert_eq!(status, 200, "{tokens}");
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let ask = |body: String| {
        let bearer = bearer.clone();
        let root = root.clone();
        async move {
            let (status, _, body) = https(
                api,
                &root,
                loopback(1),
                "POST",
                "/kyc-age-verification/v0.2/verify",
                &[
                    ("Authorization", &bearer),
                    ("Content-Type", "application/json"),
                ],
                &body,
            )
            .await;
            (
                status,
                serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    // Born 2000-01-15: 18 or older, not yet 60.
    let (status, answer) = ask(
        r#"{"ageThreshold":18,"includeContentLock":true,"includeParentalControl":true}"#.into(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        serde_json::json!({
            "ageCheck": "true",
            "verifiedStatus": true,
            "contentLock": "false",
            "parentalControl": "not_available",
        })
    );
    let (status, answer) = ask(r#"{"ageThreshold":60}"#.into()).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        serde_json::json!({ "ageCheck": "false", "verifiedStatus": true })
    );
    let (status, answer) = ask(r#"{"ageThreshold":18,"phoneNumber":"+447700900123"}"#.into()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (422, Some("UNNECESSARY_IDENTIFIER"))
    );
    let (status, answer) = ask(r#"{"ageThreshold":121}"#.into()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("OUT_OF_RANGE"))
    );

    let code = code_for(api, &root).await;
    let (_, tokens) = redeem(api, &root, &code, &assertion("k-2", 60)).await;
    let nv = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let (status, _, body) = https(
        api,
        &root,
        loopback(1),
        "POST",
        "/kyc-age-verification/v0.2/verify",
        &[("Authorization", &nv), ("Content-Type", "application/json")],
        r#"{"ageThreshold":18}"#,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("PERMISSION_DENIED"), "{body}");

    let db = crate::audit_index(&gateway.path("state/audit.db"));
    let answers: Vec<String> = db
        .prepare("SELECT headers FROM disclosures WHERE kinds = 'age_check' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        answers,
        [
            "ageCheck=true,verifiedStatus=true,contentLock=false,parentalControl=not_available",
            "ageCheck=false,verifiedStatus=true",
        ]
    );

    // Breach scoping covers API answers: the policy in force allowed all of them; one where
    // the client lost the age scope would not have allowed the two age checks; one without the
    // client, none of its four answers (two tokens, two age checks).
    let config = std::fs::read_to_string(gateway.path("headwall.toml")).unwrap();
    let narrower = gateway.path("narrower.toml");
    std::fs::write(
        &narrower,
        config.replace(
            r#"scopes = ["number-verification:verify", "kyc-age-verification:verify"]"#,
            r#"scopes = ["number-verification:verify"]"#,
        ),
    )
    .unwrap();
    let none = gateway.path("none.toml");
    std::fs::write(&none, "[gateway]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let against = |policy: &std::path::Path| {
        let output = std::process::Command::new(binary())
            .args(["audit", "exposure", "--json", "--config"])
            .arg(gateway.path("headwall.toml"))
            .arg("--against")
            .arg(policy)
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)));
        let hosts: Vec<String> = json["unallowed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["host"].as_str().unwrap().to_owned())
            .collect();
        (output.status.code(), hosts)
    };
    assert_eq!(against(&gateway.path("headwall.toml")), (Some(0), vec![]));
    let kyc = "/kyc-age-verification/v0.2/verify".to_owned();
    assert_eq!(
        against(&narrower),
        (Some(1), vec![kyc.clone(), kyc.clone()])
    );
    let (code, hosts) = against(&none);
    assert_eq!(code, Some(1));
    assert_eq!(
        hosts,
        ["/token", kyc.as_str(), kyc.as_str(), "/token"].map(String::from)
    );
}

/// No audit, no answer; and the one kill switch stops API answers too. With the audit table
/// unwritable a reusable age-check token gets 503 and a code exchange gets
/// `temporarily_unavailable` — nothing about the subscriber leaves; once it is writable again
/// the same token answers. With enrichment switched off by the operator, `/authorize` is
/// `access_denied` and the token is 503.
#[tokio::test]
async fn without_a_durable_record_or_with_the_kill_switch_on_nothing_is_answered() {
    let (gateway, root) = start();
    let api = gateway.api.expect("api listener");
    assert!(bind(&gateway, "127.0.0.5", "s5", "Start"));
    let code = code_with(api, &root, "kyc-age-verification:verify").await;
    let (_, tokens) = redeem(api, &root, &code, &assertion("f-1", 60)).await;
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let ask = || {
        let (bearer, root) = (bearer.clone(), root.clone());
        async move {
            let (status, _, body) = https(
                api,
                &root,
                loopback(1),
                "POST",
                "/kyc-age-verification/v0.2/verify",
                &[
                    ("Authorization", &bearer),
                    ("Content-Type", "application/json"),
                ],
                r#"{"ageThreshold":18}"#,
            )
            .await;
            (status, body)
        }
    };
    let db = crate::audit_index(&gateway.path("state/audit.db"));
    db.execute_batch("ALTER TABLE disclosures RENAME TO unavailable")
        .unwrap();
    // An answer is durable once in the journal; the index's next try fails (no table), and
    // from then on nothing is answered.
    let mut answered = 0;
    let (status, body) = loop {
        let (status, body) = ask().await;
        if status != 200 || answered == 60 {
            break (status, body);
        }
        answered += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains("ageCheck"), "{body}");
    let code = code_with(api, &root, "kyc-age-verification:verify").await;
    let (status, refused) = redeem(api, &root, &code, &assertion("f-2", 60)).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    assert!(refused.get("access_token").is_none());
    db.execute_batch("ALTER TABLE unavailable RENAME TO disclosures")
        .unwrap();
    // Answered again once the index's next try succeeds.
    let mut tries = 0;
    let (status, body) = loop {
        let (status, body) = ask().await;
        if status == 200 || tries == 60 {
            break (status, body);
        }
        tries += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status, 200, "{body}");

    let token = std::fs::read_to_string(gateway.path("state/admin.token")).unwrap();
    let off = crate::admin::admin(
        gateway.admin,
        "POST",
        "/v1/enrichment",
        Some(token.trim()),
        "{\"enabled\":false}",
    )
    .await;
    assert_eq!(off.status, 200);
    let (status, body) = ask().await;
    assert_eq!(status, 503, "{body}");
    let scope = format!("openid {PURPOSE} kyc-age-verification:verify");
    let (_, head, _) = get(
        api,
        &root,
        loopback(5),
        &authorize_path("shop-app", REDIRECT, &scope, ""),
    )
    .await;
    assert!(
        location(&head)
            .unwrap()
            .starts_with(&format!("{REDIRECT}?error=access_denied")),
        "{head}"
    );
}

/// A signed request object (RFC 9101), signed with `seed`'s Ed25519 key.
fn request_object(seed: [u8; 32], claims: &serde_json::Value) -> String {
    let key = ed25519_key(seed);
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// `/authorize` with a request object: its parameters are the request's (a redirect URI in
/// the query outside it is ignored); one signed by another key, or for another audience, gets
/// a 400 page and no redirect.
#[tokio::test]
async fn authorize_takes_a_signed_request_object() {
    let (gateway, root) = start();
    let api = gateway.api.expect("api listener");
    assert!(bind(&gateway, "127.0.0.5", "s5", "Start"));
    let claims = serde_json::json!({
        "iss": "shop-app", "aud": ISSUER, "client_id": "shop-app",
        "redirect_uri": REDIRECT, "response_type": "code",
        "scope": format!("openid {PURPOSE} number-verification:verify"),
        "state": "from-the-object", "code_challenge": CHALLENGE, "code_challenge_method": "S256",
    });
    let path = |jwt: &str| {
        format!("/authorize?client_id=shop-app&redirect_uri=https://evil.test/cb&request={jwt}")
    };
    let (status, head, _) = get(
        api,
        &root,
        loopback(5),
        &path(&request_object(CLIENT_SEED, &claims)),
    )
    .await;
    assert_eq!(status, 302, "{head}");
    let to = location(&head).unwrap();
    assert!(to.starts_with(&format!("{REDIRECT}?code=")), "{to}");
    assert!(to.ends_with("&state=from-the-object"), "{to}");

    let mut wrong_audience = claims.clone();
    wrong_audience["aud"] = serde_json::json!("https://other.test");
    for (jwt, why) in [
        (request_object([0x11; 32], &claims), "another key"),
        (
            request_object(CLIENT_SEED, &wrong_audience),
            "another audience",
        ),
        ("not.a.jwt".to_owned(), "malformed"),
    ] {
        let (status, head, _) = get(api, &root, loopback(5), &path(&jwt)).await;
        assert_eq!(status, 400, "{why}: {head}");
        assert!(location(&head).is_none(), "{why}: redirected: {head}");
    }
}

/// Runs CAMARA's OpenAPI file over `cases` (schema or response ref, body) with the test
/// virtual environment's jsonschema; fails naming the first body that does not validate.
pub(crate) fn assert_camara_valid(openapi: &str, cases: &[(&str, serde_json::Value)]) {
    use std::io::Write as _;
    let yaml = crate::repo_root()
        .join("crates/headwall-api/tests/camara")
        .join(openapi);
    let script = crate::repo_root().join("crates/headwall/tests/python/camara_schema.py");
    let mut child = std::process::Command::new(client_python())
        .arg(script)
        .arg(yaml)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for (reference, body) in cases {
        input.push_str(&serde_json::json!({ "ref": reference, "body": body }).to_string());
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok ")).count(),
        cases.len(),
        "{report}"
    );
}

/// Every kind of answer the resource endpoints give validates against CAMARA's own OpenAPI
/// files (vendored in crates/headwall-api/tests/camara/): 200s, and the 400, 401, 403 and
/// 422 `ErrorInfo` bodies with their codes.
#[tokio::test]
async fn answers_validate_against_camaras_openapi_files() {
    let (gateway, root) = start();
    let api = gateway.api.expect("api listener");
    assert!(bind(&gateway, "127.0.0.5", "s5", "Start"));
    let fresh = |jti: &'static str, scope: &'static str| {
        let root = root.clone();
        async move {
            let code = code_with(api, &root, scope).await;
            let (_, tokens) = redeem(api, &root, &code, &assertion(jti, 60)).await;
            tokens["access_token"].as_str().unwrap().to_owned()
        }
    };
    let call = |method: &'static str, path: &'static str, token: String, body: &'static str| {
        let root = root.clone();
        async move {
            let bearer = format!("Bearer {token}");
            let (status, _, body) = https(
                api,
                &root,
                loopback(1),
                method,
                path,
                &[
                    ("Authorization", &bearer),
                    ("Content-Type", "application/json"),
                ],
                body,
            )
            .await;
            (
                status,
                serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    let nv = "/number-verification/v2/verify";
    let share = "/number-verification/v2/device-phone-number";
    let kyc = "/kyc-age-verification/v0.2/verify";
    let mut nv_cases = Vec::new();
    let mut kyc_cases = Vec::new();
    let token = fresh("s-1", "number-verification:verify").await;
    let (status, body) = call(
        "POST",
        nv,
        token.clone(),
        r#"{"phoneNumber":"+447700900123"}"#,
    )
    .await;
    assert_eq!(status, 200);
    nv_cases.push(("#/components/schemas/NumberVerificationMatchResponse", body));
    let (status, body) = call("POST", nv, token, r#"{"phoneNumber":"+447700900123"}"#).await;
    assert_eq!(status, 401);
    nv_cases.push(("#/components/responses/Generic401", body));
    let token = fresh("s-2", "number-verification:verify").await;
    let (status, body) = call(
        "POST",
        nv,
        token.clone(),
        r#"{"phoneNumber":"0447700900123"}"#,
    )
    .await;
    assert_eq!(status, 400);
    nv_cases.push(("#/components/responses/Generic400", body));
    let (status, body) = call("GET", share, token, "").await;
    assert_eq!(status, 403);
    nv_cases.push((
        "#/components/responses/PhoneNumberVerificationPermissionDenied403",
        body,
    ));

    let token = fresh("s-3", "kyc-age-verification:verify").await;
    let all = r#"{"ageThreshold":21,"includeContentLock":true,"includeParentalControl":true}"#;
    let (status, body) = call("POST", kyc, token.clone(), all).await;
    assert_eq!(status, 200);
    kyc_cases.push(("#/components/schemas/VerifyResponseBody", body));
    let (status, body) = call("POST", kyc, token.clone(), r#"{"ageThreshold":"21"}"#).await;
    assert_eq!(status, 400);
    kyc_cases.push(("#/components/responses/Generic400", body));
    let (status, body) = call(
        "POST",
        kyc,
        token,
        r#"{"ageThreshold":21,"phoneNumber":"+447700900123"}"#,
    )
    .await;
    assert_eq!(status, 422);
    kyc_cases.push(("#/components/responses/Generic422", body));
    let (status, body) = call("POST", kyc, "forged".into(), r#"{"ageThreshold":21}"#).await;
    assert_eq!(status, 401);
    kyc_cases.push(("#/components/responses/Generic401", body));
    let token = fresh("s-4", "number-verification:verify").await;
    let (status, body) = call("POST", kyc, token, r#"{"ageThreshold":21}"#).await;
    assert_eq!(status, 403);
    kyc_cases.push(("#/components/responses/Generic403", body));

    assert_camara_valid("number-verification.yaml", &nv_cases);
    assert_camara_valid("kyc-age-verification.yaml", &kyc_cases);
}

/// The API listener holds at most `[gateway].max_connections` connections of its own: past
/// that a new one is closed at once (it cannot pile up TLS state), and a place freed is
/// usable again.
#[tokio::test]
async fn api_connections_are_bounded() {
    let (gateway, root) = start_with(
        "127.0.0.1:0",
        ISSUER,
        "api.operator.test",
        &client_jwks(),
        "max_connections = 2",
        CLIENT_SCOPES,
    );
    let api = gateway.api.expect("api listener");
    // Two connections that never start their handshake hold both places.
    let first = tokio::net::TcpStream::connect(api).await.unwrap();
    let _second = tokio::net::TcpStream::connect(api).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = tokio::net::TcpStream::connect(api).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut byte))
        .await
        .expect("the third connection is closed at once, not left waiting");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _, _) = get(api, &root, loopback(1), "/.well-known/jwks.json").await;
    assert_eq!(status, 200, "a freed place serves again");
}

/// A fleet: two nodes sharing bindings and API records through a real Redis (and the identity
/// keys, as a fleet must). A code from one node is redeemed at the other, a single-use token
/// answers once in the whole fleet, an assertion used at one node is a replay at the other,
/// and a code redeemed twice on two nodes revokes the first redemption's token everywhere.
#[tokio::test]
async fn a_fleet_shares_codes_tokens_and_used_assertions_through_redis() {
    let mut redis = headwall_testkit::RedisServer::start();
    let keys = temp_dir();
    let keygen = std::process::Command::new(binary())
        .args(["keygen", "--out"])
        .arg(keys.path())
        .status()
        .unwrap();
    assert!(keygen.success());
    let shared = format!(
        "[sessions]\nbackend = \"redis\"\nredis_url = \"{}\"\n[identity]\n\
         pseudonym_key_file = \"{}\"\nsigning_key_file = \"{}\"\n",
        redis.url(),
        keys.path().join("pseudonym.key").display(),
        keys.path().join("signing.key").display(),
    );
    let node = || {
        start_with(
            "127.0.0.1:0",
            ISSUER,
            "api.operator.test",
            &client_jwks(),
            &shared,
            CLIENT_SCOPES,
        )
    };
    let ((a, root_a), (b, root_b)) = (node(), node());
    let (api_a, api_b) = (a.api.unwrap(), b.api.unwrap());
    assert!(bind(&a, "127.0.0.5", "s5", "Start"));

    // Authorized at A, redeemed at B, answered at A; the token is then used up at B too.
    let code = code_for(api_a, &root_a).await;
    let used = assertion("fleet-1", 60);
    let (status, tokens) = redeem(api_b, &root_b, &code, &used).await;
    assert_eq!(status, 200, "{tokens}\n{}", b.log().join("\n"));
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, _, answer) =
        verify(api_a, &root_a, &token, r#"{"phoneNumber":"+447700900123"}"#).await;
    assert_eq!(
        (status, &answer),
        (200, &serde_json::json!({"devicePhoneNumberVerified": true}))
    );
    let (status, _, _) = verify(api_b, &root_b, &token, r#"{"phoneNumber":"+447700900123"}"#).await;
    assert_eq!(
        status, 401,
        "a single-use token answered twice in the fleet"
    );

    // The assertion B accepted is a replay at A.
    let code = code_for(api_b, &root_b).await;
    let (status, refused) = redeem(api_a, &root_a, &code, &used).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // Redeemed at A, then again at B: B refuses and A's token is revoked fleet-wide.
    let (status, first) = redeem(api_a, &root_a, &code, &assertion("fleet-2", 60)).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = redeem(api_b, &root_b, &code, &assertion("fleet-3", 60)).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let revoked = first["access_token"].as_str().unwrap();
    let (status, _, _) = verify(
        api_a,
        &root_a,
        revoked,
        r#"{"phoneNumber":"+447700900123"}"#,
    )
    .await;
    assert_eq!(status, 401, "a revoked token answered");

    // Nothing of the subscriber's in Redis but the binding: codes by digest, tokens by id.
    let output = std::process::Command::new("redis-cli")
        .args(["-u", &redis.url(), "--scan", "--pattern", "headwall:api:*"])
        .output()
        .unwrap();
    let keys = String::from_utf8_lossy(&output.stdout);
    assert!(
        keys.contains("headwall:api:code:") && keys.contains("headwall:api:jti:"),
        "{keys}"
    );
    assert!(!keys.contains("7700900123"), "{keys}");

    // Redis gone: a code issued before cannot be redeemed (503), nothing is guessed.
    let code = code_for(api_a, &root_a).await;
    redis.stop();
    let (status, refused) = redeem(api_b, &root_b, &code, &assertion("fleet-4", 60)).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
}

/// The device is who RADIUS says it is at `/authorize`, and a token stays with that subscriber:
/// a stale binding is nobody; a late Stop of an old session leaves the newer binding; a token
/// from before the address was rebound answers about its own subscriber, never the new one; a
/// code issued to one client is refused to another.
#[tokio::test]
async fn tokens_stay_with_their_subscriber_and_client_through_rebinds_and_stale_sessions() {
    // A second client, other-app, registered with the same key file.
    let client = format!(
        "{CLIENT_SCOPES}\npurpose = \"{PURPOSE}\"\n[[api.client]]\nid = \"other-app\"\n\
         jwks_file = \"shop.jwks.json\"\nredirect_uris = [\"{REDIRECT}\"]\n{CLIENT_SCOPES}"
    );
    let (gateway, root) = start_with(
        "127.0.0.1:0",
        ISSUER,
        "api.operator.test",
        &client_jwks(),
        "[sessions]\nstale_after = \"2s\"",
        &client,
    );
    let api = gateway.api.expect("api listener");
    let start = |ip: &str, number: &str, session: &str, status: &str| {
        radclient(
            gateway.radius.unwrap(),
            SECRET,
            &format!(
                "Acct-Status-Type = {status}\nFramed-IP-Address = {ip}\n\
                 Calling-Station-Id = \"{number}\"\nAcct-Session-Id = \"{session}\"\n\
                 NAS-IP-Address = 127.0.0.1\n"
            ),
        )
    };
    let a = r#"{"phoneNumber":"+447700900123"}"#;
    let b = r#"{"phoneNumber":"+447700900124"}"#;

    // A code for subscriber A; then the address goes to B, and A's late Stop arrives.
    assert!(start("127.0.0.5", "07700900123", "s-a", "Start"));
    let code_a = code_for(api, &root).await;
    let code_a2 = code_for(api, &root).await;
    assert!(start("127.0.0.5", "07700900124", "s-b", "Start"));
    assert!(start("127.0.0.5", "07700900123", "s-a", "Stop"));
    let (status, tokens) = redeem(api, &root, &code_a, &assertion("r-1", 60)).await;
    assert_eq!(status, 200, "{tokens}");
    let token_a = tokens["access_token"].as_str().unwrap().to_owned();
    let (_, _, answer) = verify(api, &root, &token_a, b).await;
    assert_eq!(
        answer,
        serde_json::json!({"devicePhoneNumberVerified": false}),
        "told about B"
    );
    let (_, tokens) = redeem(api, &root, &code_a2, &assertion("r-2", 60)).await;
    let (_, _, answer) = verify(api, &root, tokens["access_token"].as_str().unwrap(), a).await;
    assert_eq!(
        answer,
        serde_json::json!({"devicePhoneNumberVerified": true})
    );
    // The late Stop left B's binding: the device is B now.
    let code_b = code_for(api, &root).await;
    let (_, tokens) = redeem(api, &root, &code_b, &assertion("r-3", 60)).await;
    let (_, _, answer) = verify(api, &root, tokens["access_token"].as_str().unwrap(), b).await;
    assert_eq!(
        answer,
        serde_json::json!({"devicePhoneNumberVerified": true})
    );

    // Shop-app's code is nothing to other-app, whose assertion is otherwise good.
    let code = code_for(api, &root).await;
    let (status, refused) = redeem(api, &root, &code, &assertion_as("other-app", "r-4", 60)).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // A binding with no accounting for longer than stale_after is nobody.
    assert!(start("127.0.0.4", "07700900123", "s-c", "Start"));
    let scope = format!("openid {PURPOSE} number-verification:verify");
    let path = authorize_path("shop-app", REDIRECT, &scope, "");
    let (_, head, _) = get(api, &root, loopback(4), &path).await;
    assert!(location(&head).unwrap().contains("code="), "{head}");
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let (_, head, _) = get(api, &root, loopback(4), &path).await;
    assert!(
        location(&head)
            .unwrap()
            .starts_with(&format!("{REDIRECT}?error=access_denied")),
        "{head}"
    );
}
