//! The leak-check service on a real socket: raw HTTP requests in, the contract's JSON
//! (docs/design.md, "Leak check and canary") and a page that never shows the number out.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use headwall_leakcheck::{ProbeResponse, proxy_get, send_raw, serve};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(10);

const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UD1A.231105.004) \
     AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36";

/// A leaky set: an identity header (underscore spelling), a number in an unfamiliar header, and
/// ordinary browser headers around them.
const LEAKY: &[(&str, &str)] = &[
    ("User-Agent", CHROME_ANDROID),
    ("X_MSISDN", "447700900123"),
    ("X-Client-Info", "msisdn=+447700900124"),
    ("Cookie", "_ga=GA1.2.1234567890.1700000000"),
];

const CLEAN: &[(&str, &str)] = &[
    ("User-Agent", CHROME_ANDROID),
    ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
    ("Accept-Language", "en-GB,en;q=0.9"),
    ("Cookie", "_ga=GA1.2.1234567890.1700000000; sid=8473920165"),
    ("If-None-Match", "\"1700000000\""),
];

struct Service {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Service {
    async fn start() -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, async {
            let _ = stopped.await;
        }));
        Service {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> ProbeResponse {
        let request = proxy_get(&format!("http://{}{path}", self.addr), headers);
        send_raw(self.addr, None, &request, DEADLINE).await.unwrap()
    }

    async fn shut_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(DEADLINE, &mut self.task).await;
        result.expect("serve ends after shutdown").unwrap().unwrap();
    }
}

fn header<'a>(response: &'a ProbeResponse, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn body(response: &ProbeResponse) -> String {
    String::from_utf8(response.body.clone()).unwrap()
}

/// Digits of the fictional numbers above that must never come back.
const SECRETS: &[&str] = &[
    "447700900123",
    "447700900124",
    "7700900",
    "0900123",
    "0900124",
];

#[tokio::test]
async fn api_reports_the_leak_exactly_as_designed() {
    let service = Service::start().await;
    let response = service.get("/api/v1/check", LEAKY).await;
    assert_eq!(response.status, 200);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    let text = body(&response);
    // proxy_get adds Host and Connection; hyper delivers names lowercased, in arrival order.
    let expected = serde_json::json!({
        "verdict": "leak",
        "findings": [
            {"header": "x_msisdn", "reason": "identity_header", "redacted": "•••••••••123"},
            {"header": "x-client-info", "reason": "phone_number",
             "redacted": format!("{}124", "•".repeat(17))},
        ],
        "headers_seen": LEAKY.len() + 2,
    });
    let actual: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(actual, expected);
    // Exactly the contract's keys (docs/design.md, "Leak check and canary"), in its order.
    assert!(text.starts_with(r#"{"verdict":"leak","findings":[{"header":"x_msisdn","reason""#));
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    service.shut_down().await;
}

#[tokio::test]
async fn api_reports_clean_traffic_as_clean() {
    let service = Service::start().await;
    let response = service.get("/api/v1/check", CLEAN).await;
    assert_eq!(response.status, 200);
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    assert_eq!(
        body(&response),
        format!(
            r#"{{"verdict":"clean","findings":[],"headers_seen":{}}}"#,
            CLEAN.len() + 2
        )
    );
    service.shut_down().await;
}

#[tokio::test]
async fn page_says_it_plainly_and_never_shows_the_number() {
    let service = Service::start().await;
    let response = service.get("/", LEAKY).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        header(&response, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    assert!(
        header(&response, "content-security-policy")
            .is_some_and(|csp| csp.contains("default-src 'none'"))
    );
    let page = body(&response);
    let verdict = page
        .find("This connection tells every website your phone number")
        .expect("verdict on the page");
    assert!(
        verdict < page.find("<table>").unwrap(),
        "verdict comes first"
    );
    assert!(page.contains("name=\"viewport\""));
    assert!(page.contains("•••••••••123"));
    assert!(page.contains("x_msisdn"));
    // The analytics cookie is shown with its long digit runs masked.
    assert!(page.contains("_ga=GA1.2.•••••••890.•••••••000"));
    for secret in SECRETS {
        assert!(!page.contains(secret), "{secret} on the page");
    }
    service.shut_down().await;
}

#[tokio::test]
async fn clean_page_says_so() {
    let service = Service::start().await;
    let response = service.get("/", CLEAN).await;
    assert_eq!(response.status, 200);
    let page = body(&response);
    assert!(page.contains("No identity headers seen"));
    assert!(!page.contains("class=\"flag\""));
    // The 10-digit session id is masked even though nothing was flagged.
    assert!(page.contains("sid=•••••••165"));
    service.shut_down().await;
}

#[tokio::test]
async fn other_paths_are_not_found_and_not_cached() {
    let service = Service::start().await;
    let response = service.get("/favicon.ico", LEAKY).await;
    assert_eq!(response.status, 404);
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    for secret in SECRETS {
        assert!(!body(&response).contains(secret));
    }
    service.shut_down().await;
}
