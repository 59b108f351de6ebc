//! api-load: the load generator of `bench/api` (issue 15, "Performance").
//!
//! Two phases against headwall's `[api]` listener, both bounded in count and in time:
//!
//! - **flow**: N complete OIDC flows, C at a time. Each flow is one phone and one app
//!   backend: a new TCP + TLS connection from the bound device address (full handshake, no
//!   resumption), `GET /authorize` → 302 with a code; then, on the backend's keep-alive
//!   connection, `POST /token` with a fresh `private_key_jwt` assertion and the flow's PKCE
//!   verifier → an access token; then one `POST /number-verification/v2/verify` with the right
//!   number → `{"devicePhoneNumberVerified":true}`. Per-step latency and flows/s.
//! - **verify**: M access tokens obtained first (number-verification tokens are single-use),
//!   then M verifies over K keep-alive TLS connections: answers/s and latency.
//!
//! Every answer is checked (status, body, headers that matter); any failure makes the run fail
//! (exit 1) and is counted by kind. With `--server-pid` the server's CPU time (utime + stime,
//! and schedstat) is read around each measured part. A JSON summary goes to stdout, progress
//! to stderr. Nothing secret is printed: no code, token, assertion or number.
//!
//! ```text
//! api-load keygen --out DIR [--kid KID]
//! api-load run --api ADDR --ca FILE --client-key FILE [options]   (api-load help)
//! ```

mod http;
mod stats;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SecureRandom as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

use crate::http::{Conn, Response};
use crate::stats::{CpuWatch, Samples};

const USAGE: &str = "\
api-load keygen --out DIR [--kid KID]
    Writes DIR/client.key (Ed25519 PKCS#8 DER, 0600) and DIR/client.jwks.json (its public JWK).

api-load run [options]
  --api ADDR               the [api] listener (required)
  --ca FILE                PEM CA certificate, the only trust root (required)
  --client-key FILE        the client's key from keygen (required)
  --server-name NAME       TLS server name and Host (default api.operator.test)
  --issuer URL             [api].public_url (default https://api.operator.test)
  --client-id ID           (default bench-shop)     --kid KID (default bench-1)
  --redirect URI           a registered redirect URI (default https://shop.test/cb)
  --purpose DPV            the client's purpose (default dpv:FraudPreventionAndDetection)
  --number E164            the bound subscriber's number, +digits (required)
  --device IP              the bound device address (default 127.0.0.5)
  --backend IP             the app backend's source address (default 127.0.0.1)
  --phase flow|verify|both (default both)
  --flows N                measured flows (default 2000)
  --flow-warmup N          unmeasured flows first (default 200)
  --flow-concurrency C     flows at once (default 32)
  --flow-rate R            pace the measured flows at R/s (open loop, up to C in flight;
                           default 0: closed loop, as fast as C flows at a time go)
  --verifies M             measured verifies (default 20000)
  --verify-warmup N        unmeasured verifies first (default 500)
  --connections K          keep-alive connections for verifies (default 50)
  --verify-rate R          pace the measured verifies at R/s (default 0: closed loop)
  --prep-concurrency P     token-fetching workers before the verify phase (default 32)
  --deadline S             hard time limit per phase, seconds (default 120)
  --request-timeout S      per request and per handshake, seconds (default 10)
  --max-failures N         stop a phase after this many failures (default 100)
  --server-pid PID         read the server's CPU time around each measured part
  --server-cpu N           the CPU the server is pinned to, for its other load (default 0)
  --load-cpu N             the CPU this process is pinned to (default 1)
";

// ---------------------------------------------------------------------------------------
// failures

/// One thing that went wrong: counted by `kind`; `detail` kept for the first few.
#[derive(Debug)]
pub(crate) struct Failure {
    kind: String,
    detail: String,
}

impl Failure {
    pub(crate) fn new(kind: impl Into<String>, detail: impl Into<String>) -> Failure {
        Failure {
            kind: kind.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn io(what: &str, error: &std::io::Error) -> Failure {
        Failure::new(format!("{what}: {:?}", error.kind()), error.to_string())
    }

    fn step(self, step: &str) -> Failure {
        Failure {
            kind: format!("{step}: {}", self.kind),
            detail: self.detail,
        }
    }
}

#[derive(Default)]
struct Failures {
    by_kind: BTreeMap<String, u64>,
    examples: Vec<String>,
}

impl Failures {
    fn add(&mut self, failure: Failure) {
        *self.by_kind.entry(failure.kind.clone()).or_default() += 1;
        if self.examples.len() < 10 {
            self.examples.push(if failure.detail.is_empty() {
                failure.kind
            } else {
                format!("{}: {}", failure.kind, failure.detail)
            });
        }
    }

    fn merge(&mut self, other: Failures) {
        for (kind, n) in other.by_kind {
            *self.by_kind.entry(kind).or_default() += n;
        }
        for example in other.examples {
            if self.examples.len() < 10 {
                self.examples.push(example);
            }
        }
    }

    fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }

    fn json(&self) -> Value {
        json!({ "total": self.total(), "by_kind": self.by_kind, "examples": self.examples })
    }
}

/// When a phase stops starting new work: its deadline, or too many failures.
struct Stop {
    deadline: Instant,
    failures: AtomicUsize,
    max_failures: usize,
    deadline_hit: AtomicBool,
}

impl Stop {
    fn new(deadline: Duration, max_failures: usize) -> Arc<Stop> {
        Arc::new(Stop {
            deadline: Instant::now() + deadline,
            failures: AtomicUsize::new(0),
            max_failures,
            deadline_hit: AtomicBool::new(false),
        })
    }

    fn now(&self) -> bool {
        if Instant::now() >= self.deadline {
            self.deadline_hit.store(true, Ordering::Relaxed);
            return true;
        }
        self.failures.load(Ordering::Relaxed) >= self.max_failures
    }

    fn failed(&self, failures: &mut Failures, failure: Failure) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        failures.add(failure);
    }
}

// ---------------------------------------------------------------------------------------
// flags

struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String], known: &[&str]) -> Result<Flags, String> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .filter(|n| known.contains(n))
                .ok_or_else(|| format!("unknown argument {flag}"))?;
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            map.insert(name.to_owned(), value.clone());
        }
        Ok(Flags(map))
    }

    fn required(&self, name: &str) -> Result<&str, String> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.0.get(name).map_or(default, String::as_str)
    }

    fn num<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name} {v}: not a number")),
        }
    }

    fn opt<T: FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.0
            .get(name)
            .map(|v| v.parse().map_err(|_| format!("--{name} {v}: not valid")))
            .transpose()
    }
}

// ---------------------------------------------------------------------------------------
// keys

/// PKCS#8 v1 (RFC 8410 §7) of an Ed25519 seed, as jsonwebtoken takes it.
fn ed25519_pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(seed);
    der
}

fn keygen(flags: &Flags) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let out = std::path::Path::new(flags.required("out")?);
    let kid = flags.or("kid", "bench-1");
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| "no random bytes".to_owned())?;
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
        .map_err(|e| format!("ed25519 key: {e}"))?;
    let public = ring::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec();
    let key_path = out.join("client.key");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    file.write_all(&ed25519_pkcs8(&seed))
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let jwks = json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "kid": kid, "x": B64.encode(public),
    }]});
    let jwks_path = out.join("client.jwks.json");
    std::fs::write(&jwks_path, jwks.to_string())
        .map_err(|e| format!("{}: {e}", jwks_path.display()))?;
    eprintln!(
        "api-load: wrote {} and {}",
        key_path.display(),
        jwks_path.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// the client

/// Everything the requests are made from, and counters of good answers over the whole run
/// (warm-ups and token preparation included) for the audit cross-check.
struct Setup {
    api: SocketAddr,
    name: ServerName<'static>,
    host: String,
    issuer: String,
    client_id: String,
    kid: String,
    key: jsonwebtoken::EncodingKey,
    redirect_encoded: String,
    /// `{redirect}?code=`: how a good redirect starts.
    location_prefix: String,
    /// `GET /authorize?...&code_challenge=`: the request line up to the challenge.
    authorize_prefix: String,
    /// The scope a token must carry.
    scope: String,
    verify_body: String,
    device: IpAddr,
    backend: IpAddr,
    /// New-phone connections: full handshakes, no resumption.
    fresh: Arc<rustls::ClientConfig>,
    /// Keep-alive connections (the app backend's).
    keep: Arc<rustls::ClientConfig>,
    timeout: Duration,
    run_id: String,
    jti: AtomicU64,
    correlator: AtomicU64,
    rng: ring::rand::SystemRandom,
    codes_ok: AtomicU64,
    tokens_ok: AtomicU64,
    verifies_ok: AtomicU64,
    negotiated: Mutex<Option<http::Negotiated>>,
}

const STATE: &str = "bench";
const JWT_BEARER: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn tls_config(ca: &str, resumption: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca}: {e}"))? {
        roots
            .add(cert.map_err(|e| format!("{ca}: {e}"))?)
            .map_err(|e| format!("{ca}: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

impl Setup {
    fn new(flags: &Flags) -> Result<Setup, String> {
        let api: SocketAddr = flags
            .required("api")?
            .parse()
            .map_err(|_| "--api: not an address".to_owned())?;
        let ca = flags.required("ca")?;
        let key_path = flags.required("client-key")?;
        let der = std::fs::read(key_path).map_err(|e| format!("{key_path}: {e}"))?;
        let host = flags.or("server-name", "api.operator.test").to_owned();
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("--server-name: {e}"))?;
        let issuer = flags.or("issuer", "https://api.operator.test").to_owned();
        let client_id = flags.or("client-id", "bench-shop").to_owned();
        let redirect = flags.or("redirect", "https://shop.test/cb").to_owned();
        let purpose = flags
            .or("purpose", "dpv:FraudPreventionAndDetection")
            .to_owned();
        let number = flags.required("number")?;
        if !number.starts_with('+') || !number[1..].bytes().all(|b| b.is_ascii_digit()) {
            return Err("--number: +digits (E.164)".into());
        }
        let scope = format!("openid {purpose} number-verification:verify");
        let authorize_prefix = format!(
            "GET /authorize?client_id={}&redirect_uri={}&response_type=code&scope={}\
             &state={STATE}&code_challenge_method=S256&code_challenge=",
            encode(&client_id),
            encode(&redirect),
            encode(&scope)
        );
        let mut run_id = [0u8; 6];
        let rng = ring::rand::SystemRandom::new();
        rng.fill(&mut run_id)
            .map_err(|_| "no random bytes".to_owned())?;
        let ip = |flag: &str, default: &str| {
            flags
                .or(flag, default)
                .parse::<IpAddr>()
                .map_err(|_| format!("--{flag}: not an address"))
        };
        Ok(Setup {
            api,
            name,
            issuer,
            kid: flags.or("kid", "bench-1").to_owned(),
            key: jsonwebtoken::EncodingKey::from_ed_der(&der),
            redirect_encoded: encode(&redirect),
            location_prefix: format!("{redirect}?code="),
            authorize_prefix,
            scope,
            verify_body: json!({ "phoneNumber": number }).to_string(),
            device: ip("device", "127.0.0.5")?,
            backend: ip("backend", "127.0.0.1")?,
            fresh: tls_config(ca, false)?,
            keep: tls_config(ca, true)?,
            timeout: Duration::from_secs_f64(flags.num("request-timeout", 10.0)?),
            run_id: B64.encode(run_id),
            jti: AtomicU64::new(0),
            correlator: AtomicU64::new(0),
            rng,
            codes_ok: AtomicU64::new(0),
            tokens_ok: AtomicU64::new(0),
            verifies_ok: AtomicU64::new(0),
            negotiated: Mutex::new(None),
            client_id,
            host,
        })
    }

    async fn open(&self, source: IpAddr, fresh: bool) -> Result<Conn, Failure> {
        let config = if fresh { &self.fresh } else { &self.keep };
        let conn = Conn::open(self.api, source, &self.name, config, self.timeout).await?;
        let mut negotiated = self
            .negotiated
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if negotiated.is_none() {
            *negotiated = Some(conn.negotiated());
        }
        Ok(conn)
    }

    /// A fresh PKCE pair (RFC 7636): 256 random bits as the verifier, its S256 challenge.
    fn pkce(&self) -> Result<(String, String), Failure> {
        let mut bytes = [0u8; 32];
        self.rng
            .fill(&mut bytes)
            .map_err(|_| Failure::new("client: no random bytes", ""))?;
        let verifier = B64.encode(bytes);
        let challenge = B64.encode(ring::digest::digest(
            &ring::digest::SHA256,
            verifier.as_bytes(),
        ));
        Ok((verifier, challenge))
    }

    fn authorize_request(&self, challenge: &str, close: bool) -> Vec<u8> {
        let connection = if close { "Connection: close\r\n" } else { "" };
        format!(
            "{}{challenge} HTTP/1.1\r\nHost: {}\r\nUser-Agent: api-load\r\nAccept: */*\r\n\
             {connection}\r\n",
            self.authorize_prefix, self.host
        )
        .into_bytes()
    }

    /// A `private_key_jwt` client assertion (RFC 7523) with a `jti` never used before.
    fn assertion(&self) -> Result<String, Failure> {
        let n = self.jti.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let claims = json!({
            "iss": self.client_id, "sub": self.client_id, "aud": format!("{}/token", self.issuer),
            "iat": now, "exp": now + 60, "jti": format!("{}-{n}", self.run_id),
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| Failure::new("client: signing the assertion", e.to_string()))
    }

    fn token_request(&self, code: &str, verifier: &str) -> Result<Vec<u8>, Failure> {
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}\
             &client_assertion_type={JWT_BEARER}&client_assertion={}",
            self.redirect_encoded,
            self.assertion()?
        );
        Ok(format!(
            "POST /token HTTP/1.1\r\nHost: {}\r\nUser-Agent: api-load\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        )
        .into_bytes())
    }

    /// The verify request and the `x-correlator` it carries.
    fn verify_request(&self, token: &str) -> (Vec<u8>, String) {
        let correlator = format!(
            "{}-{}",
            self.run_id,
            self.correlator.fetch_add(1, Ordering::Relaxed)
        );
        let request = format!(
            "POST /number-verification/v2/verify HTTP/1.1\r\nHost: {}\r\nUser-Agent: api-load\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             x-correlator: {correlator}\r\nContent-Length: {}\r\n\r\n{}",
            self.host,
            self.verify_body.len(),
            self.verify_body
        );
        (request.into_bytes(), correlator)
    }

    /// A 302 to the registered redirect URI with a code and our state: the code.
    fn check_authorize(&self, r: &Response) -> Result<String, Failure> {
        if r.status != 302 {
            return Err(Failure::new(
                format!("authorize: status {}", r.status),
                excerpt(r),
            ));
        }
        let location = r
            .header("location")
            .ok_or_else(|| Failure::new("authorize: 302 without Location", ""))?;
        let Some(rest) = location.strip_prefix(&self.location_prefix) else {
            // Never the Location itself: it could hold a code. Only the error's name.
            let error = location
                .split_once("error=")
                .map(|(_, e)| e.split('&').next().unwrap_or_default().to_owned());
            return Err(match error {
                Some(error) => Failure::new(format!("authorize: redirect with error={error}"), ""),
                None => Failure::new("authorize: redirect without a code", ""),
            });
        };
        let (code, tail) = rest.split_once('&').unwrap_or((rest, ""));
        if tail != format!("state={STATE}") {
            return Err(Failure::new("authorize: redirect without our state", ""));
        }
        let well_formed = code.len() == 43
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(Failure::new("authorize: malformed code", ""));
        }
        self.codes_ok.fetch_add(1, Ordering::Relaxed);
        Ok(code.to_owned())
    }

    /// A 200 with a Bearer access token for exactly our scope: the token.
    fn check_token(&self, r: &Response) -> Result<String, Failure> {
        if r.status != 200 {
            return Err(Failure::new(
                format!("token: status {}", r.status),
                excerpt(r),
            ));
        }
        // The body holds tokens: never quoted in a failure.
        let body: Value = serde_json::from_slice(&r.body)
            .map_err(|_| Failure::new("token: 200 body is not JSON", ""))?;
        if body["token_type"] != "Bearer" {
            return Err(Failure::new("token: token_type is not Bearer", ""));
        }
        if body["scope"] != self.scope.as_str() {
            return Err(Failure::new("token: scope differs from the one asked", ""));
        }
        if !body["id_token"].is_string() {
            return Err(Failure::new("token: no id_token", ""));
        }
        let token = body["access_token"]
            .as_str()
            .filter(|t| t.split('.').count() == 3)
            .ok_or_else(|| Failure::new("token: no access_token (JWS)", ""))?;
        self.tokens_ok.fetch_add(1, Ordering::Relaxed);
        Ok(token.to_owned())
    }

    /// A 200 `{"devicePhoneNumberVerified":true}` with our correlator echoed.
    fn check_verify(&self, r: &Response, correlator: &str) -> Result<(), Failure> {
        if r.status != 200 {
            return Err(Failure::new(
                format!("verify: status {}", r.status),
                excerpt(r),
            ));
        }
        let body: Value = serde_json::from_slice(&r.body)
            .map_err(|_| Failure::new("verify: 200 body is not JSON", ""))?;
        if body != json!({ "devicePhoneNumberVerified": true }) {
            let said = match body.get("devicePhoneNumberVerified") {
                Some(Value::Bool(false)) => "devicePhoneNumberVerified false",
                _ => "another body",
            };
            return Err(Failure::new(format!("verify: 200 with {said}"), ""));
        }
        if r.header("x-correlator") != Some(correlator) {
            return Err(Failure::new("verify: x-correlator not echoed", ""));
        }
        self.verifies_ok.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The start of an error answer's body (OAuth error JSON, CAMARA ErrorInfo or the refusal
/// page: nothing secret); nothing for a 2xx or 3xx.
fn excerpt(r: &Response) -> String {
    if r.status < 400 {
        return String::new();
    }
    let text = String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).replace('\n', " ");
    let retry = r
        .header("retry-after")
        .map(|v| format!(" (Retry-After {v})"))
        .unwrap_or_default();
    format!("{}{retry}", text.trim())
}

/// One request on a keep-alive connection held in `slot`, opened (again) when empty; the slot
/// is emptied when the connection breaks or the server closes it.
async fn on_keepalive(
    setup: &Setup,
    slot: &mut Option<Conn>,
    source: IpAddr,
    request: &[u8],
    reconnects: &mut u64,
) -> Result<(Response, Duration), Failure> {
    if slot.is_none() {
        *reconnects += 1;
        *slot = Some(setup.open(source, false).await?);
    }
    let Some(conn) = slot.as_mut() else {
        return Err(Failure::new("client: no connection", ""));
    };
    let t = Instant::now();
    match conn.exchange(request).await {
        Ok(r) => {
            let took = t.elapsed();
            if r.closes() {
                *slot = None;
            }
            Ok((r, took))
        }
        Err(f) => {
            *slot = None;
            Err(f)
        }
    }
}

// ---------------------------------------------------------------------------------------
// phase "flow"

#[derive(Default)]
struct FlowSamples {
    /// Paced runs: how late each flow started against its schedule.
    lag: Samples,
    /// Paced runs: from each flow's scheduled start to its end (lag included: what a phone
    /// arriving on schedule would see).
    from_schedule: Samples,
    handshake: Samples,
    authorize: Samples,
    token: Samples,
    verify: Samples,
    flow: Samples,
}

impl FlowSamples {
    fn extend(&mut self, other: FlowSamples) {
        self.lag.extend(other.lag);
        self.from_schedule.extend(other.from_schedule);
        self.handshake.extend(other.handshake);
        self.authorize.extend(other.authorize);
        self.token.extend(other.token);
        self.verify.extend(other.verify);
        self.flow.extend(other.flow);
    }
}

/// What a group of workers brings back.
struct Worked<S> {
    samples: S,
    ok: usize,
    failures: Failures,
    /// Keep-alive connections, handed back for the next part.
    conns: Vec<Option<Conn>>,
    reconnects: u64,
}

/// An open-loop schedule: item `i` of a run starts at `start + i / rate`.
#[derive(Clone, Copy)]
struct Pace {
    start: Instant,
    rate: f64,
}

impl Pace {
    fn new(rate: f64) -> Option<Pace> {
        (rate > 0.0).then(|| Pace {
            start: Instant::now(),
            rate,
        })
    }

    /// Waits for item `i`'s turn (tokio's timer has 1 ms resolution: items due within the
    /// same millisecond start together); how late it starts.
    async fn wait(&self, i: usize) -> Duration {
        let due = self.start + Duration::from_secs_f64(i as f64 / self.rate);
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        Instant::now().saturating_duration_since(due)
    }
}

/// One phone and one app backend: new connection + handshake, /authorize, /token, /verify.
async fn one_flow(
    setup: &Setup,
    backend: &mut Option<Conn>,
    s: &mut FlowSamples,
    reconnects: &mut u64,
) -> Result<(), Failure> {
    let (verifier, challenge) = setup.pkce()?;
    let t = Instant::now();
    let mut device = setup
        .open(setup.device, true)
        .await
        .map_err(|f| f.step("device"))?;
    s.handshake.push(t.elapsed());
    let request = setup.authorize_request(&challenge, true);
    let t = Instant::now();
    let answer = device
        .exchange(&request)
        .await
        .map_err(|f| f.step("authorize"))?;
    s.authorize.push(t.elapsed());
    // The phone is done; the server closes (Connection: close), off the flow's path.
    tokio::spawn(device.wait_close());
    let code = setup.check_authorize(&answer)?;

    let request = setup.token_request(&code, &verifier)?;
    let (answer, took) = on_keepalive(setup, backend, setup.backend, &request, reconnects)
        .await
        .map_err(|f| f.step("token"))?;
    s.token.push(took);
    let token = setup.check_token(&answer)?;

    let (request, correlator) = setup.verify_request(&token);
    let (answer, took) = on_keepalive(setup, backend, setup.backend, &request, reconnects)
        .await
        .map_err(|f| f.step("verify"))?;
    s.verify.push(took);
    setup.check_verify(&answer, &correlator)
}

/// `n` flows over `backends.len()` workers.
async fn run_flows(
    setup: &Arc<Setup>,
    n: usize,
    backends: Vec<Option<Conn>>,
    pace: Option<Pace>,
    stop: &Arc<Stop>,
    progress: &Arc<AtomicUsize>,
) -> Worked<FlowSamples> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for mut backend in backends {
        let (setup, stop, next, progress) =
            (setup.clone(), stop.clone(), next.clone(), progress.clone());
        handles.push(tokio::spawn(async move {
            let mut w = Worked {
                samples: FlowSamples::default(),
                ok: 0,
                failures: Failures::default(),
                conns: Vec::new(),
                reconnects: 0,
            };
            while !stop.now() {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let lag = match pace {
                    Some(pace) => Some(pace.wait(i).await),
                    None => None,
                };
                let t = Instant::now();
                let flow = one_flow(&setup, &mut backend, &mut w.samples, &mut w.reconnects);
                match flow.await {
                    Ok(()) => {
                        let took = t.elapsed();
                        w.samples.flow.push(took);
                        if let Some(lag) = lag {
                            w.samples.lag.push(lag);
                            w.samples.from_schedule.push(lag + took);
                        }
                        w.ok += 1;
                    }
                    Err(f) => stop.failed(&mut w.failures, f),
                }
                progress.fetch_add(1, Ordering::Relaxed);
            }
            w.conns.push(backend);
            w
        }));
    }
    join(handles, stop, setup.timeout, FlowSamples::extend).await
}

/// Joins the workers, bounded: past the deadline plus one request timeout (and a margin) the
/// stragglers are aborted and counted as a failure.
async fn join<S: Default>(
    handles: Vec<tokio::task::JoinHandle<Worked<S>>>,
    stop: &Stop,
    timeout: Duration,
    merge: fn(&mut S, S),
) -> Worked<S> {
    let hard = tokio::time::Instant::from_std(stop.deadline + timeout + Duration::from_secs(5));
    let mut all = Worked {
        samples: S::default(),
        ok: 0,
        failures: Failures::default(),
        conns: Vec::new(),
        reconnects: 0,
    };
    let mut stuck = 0;
    for handle in handles {
        let abort = handle.abort_handle();
        match tokio::time::timeout_at(hard, handle).await {
            Ok(Ok(w)) => {
                merge(&mut all.samples, w.samples);
                all.ok += w.ok;
                all.failures.merge(w.failures);
                all.conns.extend(w.conns);
                all.reconnects += w.reconnects;
            }
            Ok(Err(e)) => all
                .failures
                .add(Failure::new("client: a worker panicked", e.to_string())),
            Err(_) => {
                abort.abort();
                stuck += 1;
            }
        }
    }
    if stuck > 0 {
        stop.deadline_hit.store(true, Ordering::Relaxed);
        all.failures.add(Failure::new(
            format!("hard deadline: {stuck} workers still waiting for an answer, aborted"),
            "",
        ));
    }
    all
}

/// Prints progress to stderr every 5 s until dropped.
struct Progress(tokio::task::JoinHandle<()>);

impl Progress {
    fn start(what: &'static str, total: usize, done: Arc<AtomicUsize>) -> Progress {
        Progress(tokio::spawn(async move {
            let start = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let n = done.load(Ordering::Relaxed);
                eprintln!(
                    "api-load: {what}: {n}/{total} after {:.0} s ({:.0}/s)",
                    start.elapsed().as_secs_f64(),
                    n as f64 / start.elapsed().as_secs_f64()
                );
            }
        }))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Plan {
    flows: usize,
    flow_warmup: usize,
    flow_concurrency: usize,
    flow_rate: f64,
    verifies: usize,
    verify_rate: f64,
    verify_warmup: usize,
    connections: usize,
    prep_concurrency: usize,
    deadline: Duration,
    max_failures: usize,
}

fn paced(rate: f64) -> String {
    if rate > 0.0 {
        format!(", paced at {rate}/s")
    } else {
        String::new()
    }
}

fn rate(n: usize, wall: Duration) -> f64 {
    (n as f64 / wall.as_secs_f64().max(1e-9) * 10.0).round() / 10.0
}

async fn flow_phase(
    setup: &Arc<Setup>,
    plan: &Plan,
    watch: &CpuWatch,
    failures: &mut Failures,
) -> Value {
    let stop = Stop::new(plan.deadline, plan.max_failures);
    let done = Arc::new(AtomicUsize::new(0));
    // The backends' keep-alive connections, opened before anything is measured.
    let mut backends = Vec::new();
    for _ in 0..plan.flow_concurrency {
        match setup.open(setup.backend, false).await {
            Ok(conn) => backends.push(Some(conn)),
            Err(f) => {
                stop.failed(failures, f.step("backend"));
                backends.push(None);
            }
        }
    }
    eprintln!(
        "api-load: flow: {} warm-up flows, then {} measured, {} at a time{}",
        plan.flow_warmup,
        plan.flows,
        plan.flow_concurrency,
        paced(plan.flow_rate)
    );
    let warm = run_flows(setup, plan.flow_warmup, backends, None, &stop, &done).await;
    failures.merge(warm.failures);
    let done = Arc::new(AtomicUsize::new(0));
    let progress = Progress::start("flow", plan.flows, done.clone());
    let before = watch.snapshot();
    let start = Instant::now();
    let pace = Pace::new(plan.flow_rate);
    let w = run_flows(setup, plan.flows, warm.conns, pace, &stop, &done).await;
    let wall = start.elapsed();
    let after = watch.snapshot();
    drop(progress);
    let failed = w.failures.total();
    failures.merge(w.failures);
    let s = w.samples;
    let flows_per_s = rate(w.ok, wall);
    eprintln!(
        "api-load: flow: {} ok, {failed} failed in {:.2} s: {flows_per_s} flows/s",
        w.ok,
        wall.as_secs_f64()
    );
    json!({
        "requested": plan.flows,
        "warmup": plan.flow_warmup,
        "concurrency": plan.flow_concurrency,
        "pace": (plan.flow_rate > 0.0).then(|| json!({
            "target_per_s": plan.flow_rate, "start_lag": s.lag.summary(),
            "from_schedule": s.from_schedule.summary(),
        })),
        "completed_ok": w.ok,
        "failed": failed,
        "wall_s": wall.as_secs_f64(),
        "flows_per_s": flows_per_s,
        "steps": {
            "tls_handshake": s.handshake.summary(),
            "authorize": s.authorize.summary(),
            "token": s.token.summary(),
            "verify": s.verify.summary(),
            "flow": s.flow.summary(),
        },
        "cpu": watch.between(&before, &after, w.ok),
        "backend_reconnects": warm.reconnects + w.reconnects,
        "deadline_hit": stop.deadline_hit.load(Ordering::Relaxed),
    })
}

// ---------------------------------------------------------------------------------------
// phase "verify"

/// `n` access tokens, each from its own /authorize + /token (device and backend on keep-alive
/// connections: this part is preparation, not measured).
async fn obtain_tokens(
    setup: &Arc<Setup>,
    n: usize,
    workers: usize,
    stop: &Arc<Stop>,
    done: &Arc<AtomicUsize>,
) -> Worked<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (setup, stop, next, done) = (setup.clone(), stop.clone(), next.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            let mut w = Worked {
                samples: Vec::new(),
                ok: 0,
                failures: Failures::default(),
                conns: Vec::new(),
                reconnects: 0,
            };
            let (mut device, mut backend) = (None, None);
            while !stop.now() && next.fetch_add(1, Ordering::Relaxed) < n {
                let got = async {
                    let (verifier, challenge) = setup.pkce()?;
                    let request = setup.authorize_request(&challenge, false);
                    let (answer, _) =
                        on_keepalive(&setup, &mut device, setup.device, &request, &mut 0)
                            .await
                            .map_err(|f| f.step("prep authorize"))?;
                    let code = setup.check_authorize(&answer)?;
                    let request = setup.token_request(&code, &verifier)?;
                    let (answer, _) =
                        on_keepalive(&setup, &mut backend, setup.backend, &request, &mut 0)
                            .await
                            .map_err(|f| f.step("prep token"))?;
                    setup.check_token(&answer)
                };
                match got.await {
                    Ok(token) => {
                        w.samples.push(token);
                        w.ok += 1;
                    }
                    Err(f) => stop.failed(&mut w.failures, f),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            w
        }));
    }
    join(
        handles,
        stop,
        setup.timeout,
        |all: &mut Vec<String>, more| all.extend(more),
    )
    .await
}

#[derive(Default)]
struct VerifySamples {
    lag: Samples,
    from_schedule: Samples,
    latency: Samples,
}

impl VerifySamples {
    fn extend(&mut self, other: VerifySamples) {
        self.lag.extend(other.lag);
        self.from_schedule.extend(other.from_schedule);
        self.latency.extend(other.latency);
    }
}

/// Verifies `tokens[range]` over the keep-alive connections in `conns`, one worker each.
async fn run_verifies(
    setup: &Arc<Setup>,
    tokens: &Arc<Vec<String>>,
    range: std::ops::Range<usize>,
    conns: Vec<Option<Conn>>,
    pace: Option<Pace>,
    stop: &Arc<Stop>,
    done: &Arc<AtomicUsize>,
) -> Worked<VerifySamples> {
    let next = Arc::new(AtomicUsize::new(range.start));
    let mut handles = Vec::new();
    for mut conn in conns {
        let (setup, stop, next, done, tokens) = (
            setup.clone(),
            stop.clone(),
            next.clone(),
            done.clone(),
            tokens.clone(),
        );
        let end = range.end;
        handles.push(tokio::spawn(async move {
            let mut w = Worked {
                samples: VerifySamples::default(),
                ok: 0,
                failures: Failures::default(),
                conns: Vec::new(),
                reconnects: 0,
            };
            while !stop.now() {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let lag = match pace {
                    Some(pace) => Some(pace.wait(i - range.start).await),
                    None => None,
                };
                let (request, correlator) = setup.verify_request(&tokens[i]);
                let answer = on_keepalive(
                    &setup,
                    &mut conn,
                    setup.backend,
                    &request,
                    &mut w.reconnects,
                )
                .await;
                let checked = answer.and_then(|(answer, took)| {
                    w.samples.latency.push(took);
                    if let Some(lag) = lag {
                        w.samples.lag.push(lag);
                        w.samples.from_schedule.push(lag + took);
                    }
                    setup.check_verify(&answer, &correlator)
                });
                match checked {
                    Ok(()) => w.ok += 1,
                    Err(f) => stop.failed(&mut w.failures, f),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            w.conns.push(conn);
            w
        }));
    }
    join(handles, stop, setup.timeout, VerifySamples::extend).await
}

async fn verify_phase(
    setup: &Arc<Setup>,
    plan: &Plan,
    watch: &CpuWatch,
    failures: &mut Failures,
) -> Value {
    let stop = Stop::new(plan.deadline, plan.max_failures);
    let wanted = plan.verifies + plan.verify_warmup;
    eprintln!(
        "api-load: verify: obtaining {wanted} access tokens ({} workers)",
        plan.prep_concurrency
    );
    let done = Arc::new(AtomicUsize::new(0));
    let progress = Progress::start("verify prep", wanted, done.clone());
    let before = watch.snapshot();
    let prep_start = Instant::now();
    let prep = obtain_tokens(setup, wanted, plan.prep_concurrency, &stop, &done).await;
    let prep_wall = prep_start.elapsed();
    let prep_cpu = watch.between(&before, &watch.snapshot(), prep.ok);
    drop(progress);
    let prep_failed = prep.failures.total();
    failures.merge(prep.failures);
    let tokens = Arc::new(prep.samples);
    eprintln!(
        "api-load: verify: {} tokens in {:.2} s ({} /s), {prep_failed} failed",
        tokens.len(),
        prep_wall.as_secs_f64(),
        rate(tokens.len(), prep_wall)
    );

    // The keep-alive connections, opened before anything is measured.
    let mut conns = Vec::new();
    for _ in 0..plan.connections {
        match setup.open(setup.backend, false).await {
            Ok(conn) => conns.push(Some(conn)),
            Err(f) => {
                stop.failed(failures, f.step("verify connection"));
                conns.push(None);
            }
        }
    }
    let warm_end = plan.verify_warmup.min(tokens.len());
    let done = Arc::new(AtomicUsize::new(0));
    let warm = run_verifies(setup, &tokens, 0..warm_end, conns, None, &stop, &done).await;
    failures.merge(warm.failures);
    let measured = tokens.len() - warm_end;
    eprintln!(
        "api-load: verify: {warm_end} warm-up verifies, then {measured} measured over {} keep-alive connections{}",
        plan.connections,
        paced(plan.verify_rate)
    );
    let done = Arc::new(AtomicUsize::new(0));
    let progress = Progress::start("verify", measured, done.clone());
    let before = watch.snapshot();
    let start = Instant::now();
    let pace = Pace::new(plan.verify_rate);
    let range = warm_end..tokens.len();
    let w = run_verifies(setup, &tokens, range, warm.conns, pace, &stop, &done).await;
    let wall = start.elapsed();
    let after = watch.snapshot();
    drop(progress);
    let failed = w.failures.total();
    failures.merge(w.failures);
    let answers_per_s = rate(w.ok, wall);
    eprintln!(
        "api-load: verify: {} ok, {failed} failed in {:.2} s: {answers_per_s} answers/s",
        w.ok,
        wall.as_secs_f64()
    );
    json!({
        "prep": {
            "tokens_wanted": wanted,
            "tokens": tokens.len(),
            "failed": prep_failed,
            "workers": plan.prep_concurrency,
            "wall_s": prep_wall.as_secs_f64(),
            "tokens_per_s": rate(tokens.len(), prep_wall),
            "cpu": prep_cpu,
        },
        "requested": plan.verifies,
        "warmup": warm_end,
        "connections": plan.connections,
        "pace": (plan.verify_rate > 0.0).then(|| json!({
            "target_per_s": plan.verify_rate, "start_lag": w.samples.lag.summary(),
            "from_schedule": w.samples.from_schedule.summary(),
        })),
        "answered_ok": w.ok,
        "failed": failed,
        "wall_s": wall.as_secs_f64(),
        "answers_per_s": answers_per_s,
        "latency": w.samples.latency.summary(),
        "cpu": watch.between(&before, &after, w.ok),
        "reconnects": warm.reconnects + w.reconnects,
        "oldest_token_age_s": prep_start.elapsed().as_secs_f64(),
        "deadline_hit": stop.deadline_hit.load(Ordering::Relaxed),
    })
}

// ---------------------------------------------------------------------------------------
// main

fn run(flags: &Flags) -> Result<bool, String> {
    let setup = Arc::new(Setup::new(flags)?);
    let phase = flags.or("phase", "both");
    if !["flow", "verify", "both"].contains(&phase) {
        return Err("--phase flow|verify|both".into());
    }
    let plan = Plan {
        flows: flags.num("flows", 2000)?,
        flow_warmup: flags.num("flow-warmup", 200)?,
        flow_concurrency: flags.num("flow-concurrency", 32)?,
        flow_rate: flags.num("flow-rate", 0.0)?,
        verifies: flags.num("verifies", 20_000)?,
        verify_rate: flags.num("verify-rate", 0.0)?,
        verify_warmup: flags.num("verify-warmup", 500)?,
        connections: flags.num("connections", 50)?,
        prep_concurrency: flags.num("prep-concurrency", 32)?,
        deadline: Duration::from_secs_f64(flags.num("deadline", 120.0)?),
        max_failures: flags.num("max-failures", 100)?,
    };
    if plan.flow_concurrency == 0 || plan.connections == 0 || plan.prep_concurrency == 0 {
        return Err("concurrency and connections must be at least 1".into());
    }
    let watch = CpuWatch {
        server_pid: flags.opt("server-pid")?,
        server_cpu: Some(flags.num("server-cpu", 0)?),
        load_cpu: Some(flags.num("load-cpu", 1)?),
        clk_tck: stats::clk_tck(),
    };
    // One thread: the load generator gets one CPU (bench/api pins it to CPU 1).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (flow, verify, failures) = runtime.block_on(async {
        let mut failures = Failures::default();
        let flow = if phase != "verify" {
            flow_phase(&setup, &plan, &watch, &mut failures).await
        } else {
            Value::Null
        };
        let verify = if phase != "flow" {
            verify_phase(&setup, &plan, &watch, &mut failures).await
        } else {
            Value::Null
        };
        (flow, verify, failures)
    });
    let negotiated = setup
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let short = |v: &Value, key: &str, wanted: usize| {
        v.is_null() || v[key].as_u64().is_some_and(|n| n as usize >= wanted)
    };
    let complete =
        short(&flow, "completed_ok", plan.flows) && short(&verify, "answered_ok", plan.verifies);
    let ok = failures.total() == 0 && complete;
    let summary = json!({
        "tool": "api-load",
        "ok": ok,
        "phase": phase,
        "elapsed_s": started.elapsed().as_secs_f64(),
        "tls": negotiated.map(|n| json!({
            "version": n.version, "suite": n.suite, "key_exchange": n.group, "alpn": n.alpn,
        })),
        "clk_tck": watch.clk_tck,
        "server_pid": watch.server_pid,
        "flow": flow,
        "verify": verify,
        "answers_ok_whole_run": {
            "authorize_code": setup.codes_ok.load(Ordering::Relaxed),
            "token": setup.tokens_ok.load(Ordering::Relaxed),
            "verify_true": setup.verifies_ok.load(Ordering::Relaxed),
        },
        "failures": failures.json(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?
    );
    if !ok {
        eprintln!(
            "api-load: FAILED: {} failures{}",
            failures.total(),
            if complete {
                ""
            } else {
                ", and fewer answers than asked for"
            }
        );
        for (kind, n) in &failures.by_kind {
            eprintln!("api-load:   {n} × {kind}");
        }
    }
    Ok(ok)
}

const RUN_FLAGS: &[&str] = &[
    "api",
    "ca",
    "client-key",
    "server-name",
    "issuer",
    "client-id",
    "kid",
    "redirect",
    "purpose",
    "number",
    "device",
    "backend",
    "phase",
    "flows",
    "flow-warmup",
    "flow-concurrency",
    "flow-rate",
    "verifies",
    "verify-rate",
    "verify-warmup",
    "connections",
    "prep-concurrency",
    "deadline",
    "request-timeout",
    "max-failures",
    "server-pid",
    "server-cpu",
    "load-cpu",
];

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("keygen") => Flags::parse(&args[1..], &["out", "kid"])
            .and_then(|f| keygen(&f))
            .map(|()| true),
        Some("run") => Flags::parse(&args[1..], RUN_FLAGS).and_then(|f| run(&f)),
        Some("--version" | "version") => {
            println!("api-load {}", env!("CARGO_PKG_VERSION"));
            Ok(true)
        }
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(true)
        }
        _ => Err(format!("usage:\n{USAGE}")),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(message) => {
            eprintln!("api-load: {message}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_only_unreserved() {
        assert_eq!(
            encode("https://shop.test/cb"),
            "https%3A%2F%2Fshop.test%2Fcb"
        );
        assert_eq!(encode("a b:c"), "a%20b%3Ac");
    }

    #[test]
    fn the_pkcs8_key_signs_and_its_public_half_is_ring_s() {
        let seed = [7u8; 32];
        let key = jsonwebtoken::EncodingKey::from_ed_der(&ed25519_pkcs8(&seed));
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        let jwt = jsonwebtoken::encode(&header, &json!({"a": 1}), &key).expect("signs");
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
        let public = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        let decoding = jsonwebtoken::DecodingKey::from_ed_der(&public);
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        jsonwebtoken::decode::<Value>(&jwt, &decoding, &validation).expect("verifies");
    }
}
