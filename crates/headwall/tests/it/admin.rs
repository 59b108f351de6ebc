//! The admin API of the real binary: open endpoints, the bearer token, metrics that count what
//! happened without carrying request or subscriber data, the kill switch that survives a
//! restart, and reload by API and SIGHUP.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use headwall_testkit::{ProbeResponse, ServeProcess, origin, radclient, send_raw};

use crate::binary;
use crate::radius::{SECRET, accounting, config, pseudonyms_seen};

pub(crate) async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> ProbeResponse {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    send_raw(addr, None, request.as_bytes(), Duration::from_secs(10))
        .await
        .unwrap()
}

fn json(response: &ProbeResponse) -> serde_json::Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|error| {
        panic!(
            "{error}: {} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )
    })
}

fn text(response: &ProbeResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

fn token(gateway: &ServeProcess) -> String {
    let path = gateway.path("state/admin.token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token file created 0600");
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

#[tokio::test]
async fn open_endpoints_and_the_bearer_token() {
    let agecheck = origin(2).await;
    let gateway = ServeProcess::start(binary(), &config(agecheck.addr().port()));
    let token = token(&gateway);

    assert_eq!(
        admin(gateway.admin, "GET", "/healthz", None, "")
            .await
            .status,
        200
    );
    let ready = admin(gateway.admin, "GET", "/readyz", None, "").await;
    assert_eq!((ready.status, text(&ready).trim()), (200, "ready"));
    let jwks = admin(gateway.admin, "GET", "/.well-known/jwks.json", None, "").await;
    assert_eq!(json(&jwks)["keys"][0]["kty"], "OKP");

    for path in [
        "/v1/policy",
        "/v1/sessions/127.0.0.5",
        "/v1/audit/exposure",
        "/v1/audit/subscriber/447700900123",
    ] {
        let response = admin(gateway.admin, "GET", path, None, "").await;
        assert_eq!(response.status, 401, "{path} without a token");
        assert!(
            json(&response)["error"]
                .as_str()
                .unwrap()
                .contains("Bearer")
        );
        let response = admin(gateway.admin, "GET", path, Some("not-the-token-at-all"), "").await;
        assert_eq!(response.status, 401, "{path} with a wrong token");
    }
    let policy = admin(gateway.admin, "GET", "/v1/policy", Some(&token), "").await;
    assert_eq!(policy.status, 200);
    let policy = json(&policy);
    assert_eq!(policy["partners"][0]["name"], "agecheck");
    assert_eq!(policy["enrichment_enabled"], true);
    let missing = admin(gateway.admin, "GET", "/v1/nothing", Some(&token), "").await;
    assert_eq!(missing.status, 404);
}

/// RFC 9110 §11.1: the scheme is case-insensitive. And a body with a field the API does not
/// know is refused, like an unknown config key, instead of half-understood.
#[tokio::test]
async fn any_case_scheme_and_unknown_fields_refused() {
    let agecheck = origin(2).await;
    let gateway = ServeProcess::start(binary(), &config(agecheck.addr().port()));
    let token = token(&gateway);
    for scheme in ["bearer", "BEARER", "Bearer "] {
        let request = format!(
            "GET /v1/policy HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\
             Authorization: {scheme} {token}\r\n\r\n"
        );
        let response = send_raw(
            gateway.admin,
            None,
            request.as_bytes(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(response.status, 200, "scheme {scheme:?}");
    }
    let request = format!(
        "GET /v1/policy HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\
         Authorization: Basic {token}\r\n\r\n"
    );
    let basic = send_raw(
        gateway.admin,
        None,
        request.as_bytes(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(basic.status, 401, "another scheme with the right token");

    let extra = admin(
        gateway.admin,
        "POST",
        "/v1/enrichment",
        Some(&token),
        "{\"enabled\":false,\"until\":\"tomorrow\"}",
    )
    .await;
    assert_eq!(extra.status, 400, "{}", text(&extra));
    let policy = json(&admin(gateway.admin, "GET", "/v1/policy", Some(&token), "").await);
    assert_eq!(
        policy["enrichment_enabled"], true,
        "a refused body changed nothing"
    );
}

#[tokio::test]
async fn sessions_metrics_audit_and_kill_switch() {
    let agecheck = origin(2).await;
    let website = origin(3).await;
    let text_config = config(agecheck.addr().port()).replace(
        "\"verify.agecheck.test\" = \"127.0.0.2\"",
        "\"verify.agecheck.test\" = \"127.0.0.2\"\n\"news.example.test\" = \"127.0.0.3\"",
    );
    let gateway = ServeProcess::start(binary(), &text_config);
    let token = token(&gateway);
    let radius = gateway.radius.expect("radius listener");
    assert!(radclient(radius, SECRET, &accounting("Start", "s1")));

    // Who is on 127.0.0.5: bound, number masked to its last three digits.
    let session = admin(
        gateway.admin,
        "GET",
        "/v1/sessions/127.0.0.5",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(session.status, 200);
    let session = json(&session);
    assert_eq!(session["state"], "bound");
    assert_eq!(session["session_id"], "s1");
    assert!(session["msisdn"].as_str().unwrap().ends_with("123"));
    assert!(!session.to_string().contains("7700900123"));
    // The same subscriber by the spelling a dual-stack socket uses, answered canonically.
    let mapped = admin(
        gateway.admin,
        "GET",
        "/v1/sessions/::ffff:127.0.0.5",
        Some(&token),
        "",
    )
    .await;
    let mapped = json(&mapped);
    assert_eq!(
        (&mapped["state"], &mapped["ip"]),
        (&"bound".into(), &"127.0.0.5".into())
    );
    let unbound = admin(
        gateway.admin,
        "GET",
        "/v1/sessions/127.0.0.6",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(unbound.status, 404);
    let bad = admin(
        gateway.admin,
        "GET",
        "/v1/sessions/not-an-ip",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(bad.status, 400);

    // Traffic: one disclosure, one ordinary website visit with a spoof.
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);
    let url = format!("http://news.example.test:{}/", website.addr().port());
    send_raw(
        gateway.explicit,
        Some(headwall_testkit::loopback(5)),
        &headwall_testkit::proxy_get(&url, &[("X-MSISDN", "447700900123")]),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(website.take().len(), 1);

    let metrics = admin(gateway.admin, "GET", "/metrics", None, "").await;
    assert_eq!(metrics.status, 200);
    let metrics = text(&metrics);
    for expected in [
        "headwall_requests_total{listener=\"explicit\",outcome=\"enriched\"} 1",
        "headwall_requests_total{listener=\"explicit\",outcome=\"forwarded\"} 1",
        "headwall_disclosures_total{partner=\"agecheck\",purpose=\"age_verification\",kind=\"pseudonym\"} 1",
        "headwall_stripped_headers_total 1",
        "headwall_pinning_mismatches_total 0",
        "headwall_sessions_active 1",
        "headwall_radius_packets_total{status=\"start\",result=\"accepted\"} 1",
        "headwall_audit_write_failures_total 0",
        "headwall_enrichment_enabled 1",
        "headwall_request_duration_seconds_count 2",
        "# TYPE headwall_request_duration_seconds histogram",
        "# HELP headwall_requests_total ",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected:?} in:\n{metrics}"
        );
    }
    assert!(metrics.contains("headwall_policy_info{hash=\""));
    // Label values are fixed sets and partner names: no request hosts, no numbers.
    assert!(!metrics.contains("news.example.test"));
    assert!(!metrics.contains("7700900123"));

    // The audit endpoints answer from the record.
    let answer = admin(
        gateway.admin,
        "GET",
        "/v1/audit/subscriber/07700900123",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", text(&answer));
    let answer = json(&answer);
    assert_eq!(answer["disclosures"].as_array().unwrap().len(), 1);
    assert_eq!(answer["disclosures"][0]["partner"], "agecheck");
    let exposure = admin(
        gateway.admin,
        "GET",
        "/v1/audit/exposure?partner=agecheck&from=2000-01-01",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(json(&exposure)["exposure"][0]["subscribers"], 1);
    let bad_time = admin(
        gateway.admin,
        "GET",
        "/v1/audit/exposure?from=yesterday",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(bad_time.status, 400);

    // The kill switch: off by the operator, it stays off across a restart.
    let bad_body = admin(gateway.admin, "POST", "/v1/enrichment", Some(&token), "{}").await;
    assert_eq!(bad_body.status, 400);
    let off = admin(
        gateway.admin,
        "POST",
        "/v1/enrichment",
        Some(&token),
        "{\"enabled\":false}",
    )
    .await;
    assert_eq!(json(&off)["enabled"], false);
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );
    let (code, dir) = gateway.terminate();
    assert_eq!(code, Some(0));
    let gateway = ServeProcess::start_in(binary(), &text_config, dir);
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty(),
        "the kill switch must survive a restart"
    );
    let metrics = text(&admin(gateway.admin, "GET", "/metrics", None, "").await);
    assert!(metrics.contains("headwall_enrichment_enabled 0"));
    // Turning it back on needs the token.
    let anonymous = admin(
        gateway.admin,
        "POST",
        "/v1/enrichment",
        None,
        "{\"enabled\":true}",
    )
    .await;
    assert_eq!(anonymous.status, 401);
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );
    let on = admin(
        gateway.admin,
        "POST",
        "/v1/enrichment",
        Some(&token),
        "{\"enabled\":true}",
    )
    .await;
    assert_eq!(json(&on)["enabled"], true);
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);
}

#[tokio::test]
async fn reload_by_api_and_sighup_and_a_bad_file_changes_nothing() {
    let agecheck = origin(2).await;
    let original = config(agecheck.addr().port());
    let gateway = ServeProcess::start(binary(), &original);
    let token = token(&gateway);
    let radius = gateway.radius.expect("radius listener");
    assert!(radclient(radius, SECRET, &accounting("Start", "s1")));
    let config_path = gateway.path("headwall.toml");
    let policy_hash = |policy: serde_json::Value| policy["hash"].as_str().unwrap().to_owned();
    let before = policy_hash(json(
        &admin(gateway.admin, "GET", "/v1/policy", Some(&token), "").await,
    ));

    // An invalid file: 422 with file:line:col, the running policy stays.
    std::fs::write(
        &config_path,
        original.replace("purpose = \"age_verification\"", "purpose = \"everything\""),
    )
    .unwrap();
    let refused = admin(gateway.admin, "POST", "/v1/policy/reload", Some(&token), "").await;
    assert_eq!(refused.status, 422);
    let reason = json(&refused)["error"].as_str().unwrap().to_owned();
    assert!(reason.contains("headwall.toml:"), "{reason}");
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);

    // A valid change by API: the partner now also gets the age flag header name changed.
    std::fs::write(
        &config_path,
        original.replace(
            "\"X-Subscriber-Id\" = \"pseudonym\"",
            "\"X-Partner-Subscriber\" = \"pseudonym\"",
        ),
    )
    .unwrap();
    let applied = admin(gateway.admin, "POST", "/v1/policy/reload", Some(&token), "").await;
    assert_eq!(applied.status, 200, "{}", text(&applied));
    let applied = json(&applied);
    assert_eq!(applied["changed"], true);
    assert_ne!(applied["policy_hash"].as_str().unwrap(), before);
    let url = format!("http://verify.agecheck.test:{}/", agecheck.addr().port());
    let request = headwall_testkit::proxy_get(&url, &[]);
    send_raw(
        gateway.explicit,
        Some(headwall_testkit::loopback(5)),
        &request,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let got = agecheck.take();
    assert_eq!(got[0].header_values("x-partner-subscriber").len(), 1);
    assert!(got[0].header("x-subscriber-id").is_none());

    // SIGHUP: back to the original.
    std::fs::write(&config_path, &original).unwrap();
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("kill -HUP {}", gateway.pid()))
        .status()
        .unwrap();
    let back = headwall_testkit::eventually(Duration::from_secs(10), || {
        gateway
            .log()
            .iter()
            .any(|line| line.contains("configuration reloaded") && line.contains(&before))
    })
    .await;
    assert!(back, "SIGHUP reload not seen in the log");
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);
    let now = policy_hash(json(
        &admin(gateway.admin, "GET", "/v1/policy", Some(&token), "").await,
    ));
    assert_eq!(now, before);
}

#[tokio::test]
async fn delete_session_unbinds_an_address_durably_until_the_next_start() {
    let agecheck = origin(2).await;
    let text_config = config(agecheck.addr().port());
    let gateway = ServeProcess::start(binary(), &text_config);
    let radius = gateway.radius.unwrap();
    let token = token(&gateway);
    assert!(radclient(radius, SECRET, &accounting("Start", "s1")));
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);

    let anonymous = admin(gateway.admin, "DELETE", "/v1/sessions/127.0.0.5", None, "").await;
    assert_eq!(anonymous.status, 401);
    let bad = admin(
        gateway.admin,
        "DELETE",
        "/v1/sessions/127.0.0.5?prefix=40",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(bad.status, 400, "{}", text(&bad));
    let removed = admin(
        gateway.admin,
        "DELETE",
        "/v1/sessions/127.0.0.5",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(removed.status, 200, "{}", text(&removed));
    let answer = json(&removed);
    assert_eq!(answer["state"], "unbound");
    assert_eq!(answer["session_id"], "s1");
    assert!(!text(&removed).contains("7700900123"));
    // The partner now gets nothing from that address, and it stays so across a restart.
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );
    let again = admin(
        gateway.admin,
        "DELETE",
        "/v1/sessions/127.0.0.5",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(again.status, 404);
    let (code, dir) = gateway.terminate();
    assert_eq!(code, Some(0));
    let gateway = ServeProcess::start_in(binary(), &text_config, dir);
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );
    // The next Start binds it again.
    assert!(radclient(
        gateway.radius.unwrap(),
        SECRET,
        &accounting("Start", "s2")
    ));
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);
}

#[tokio::test]
async fn the_change_gate_applies_a_widening_reload_only_with_its_hash_as_approval() {
    let agecheck = origin(2).await;
    let original = format!(
        "{}\n[change]\nwidening = \"refuse\"\n",
        config(agecheck.addr().port())
    );
    // The widening: the partner also gets a signed token.
    let wide = original.replace(
        "headers = { \"X-Subscriber-Id\" = \"pseudonym\" }",
        "headers = { \"X-Subscriber-Id\" = \"pseudonym\", \"X-Partner-Token\" = \"token\" }",
    );
    assert_ne!(wide, original);
    let gateway = ServeProcess::start(binary(), &original);
    let token = token(&gateway);
    assert!(radclient(
        gateway.radius.unwrap(),
        SECRET,
        &accounting("Start", "s1")
    ));
    let config_path = gateway.path("headwall.toml");
    let url = format!("http://verify.agecheck.test:{}/", agecheck.addr().port());
    let token_seen = || async {
        crate::received_through(gateway.explicit, 5, &url, &agecheck)
            .await
            .header("x-partner-token")
            .is_some()
    };
    let reload = |body: String| {
        let token = token.clone();
        async move {
            admin(
                gateway.admin,
                "POST",
                "/v1/policy/reload",
                Some(&token),
                &body,
            )
            .await
        }
    };

    // Without approval: 409 naming the hash to approve; the partner still gets no number.
    std::fs::write(&config_path, &wide).unwrap();
    let refused = reload(String::new()).await;
    assert_eq!(refused.status, 409, "{}", text(&refused));
    let refused = json(&refused);
    let hash = refused["policy_hash"].as_str().unwrap().to_owned();
    assert!(
        refused["plan"].as_str().unwrap().contains("widen"),
        "{refused}"
    );
    assert!(refused["error"].as_str().unwrap().contains(&hash));
    assert!(!token_seen().await);
    // Approving another hash approves nothing; a malformed body is a 400.
    let wrong = reload(format!("{{\"approve\": \"{}\"}}", "0".repeat(64))).await;
    assert_eq!(wrong.status, 409);
    assert_eq!(reload("{\"approve\": 1}".to_owned()).await.status, 400);
    assert!(!token_seen().await);
    // SIGHUP carries no approval: refused too.
    gateway.signal("HUP");
    let refused_by_hup = headwall_testkit::eventually(Duration::from_secs(10), || {
        gateway
            .log()
            .iter()
            .filter(|line| line.contains("reload refused") && line.contains(&hash))
            .count()
            >= 3
    })
    .await;
    assert!(refused_by_hup, "{:?}", gateway.log());
    assert!(!token_seen().await);

    // The reviewed hash: applied, and logged at WARN as a widening.
    let approved = reload(format!("{{\"approve\": \"{hash}\"}}")).await;
    assert_eq!(approved.status, 200, "{}", text(&approved));
    assert_eq!(json(&approved)["policy_hash"], hash.as_str());
    assert!(token_seen().await);
    assert!(
        gateway
            .log()
            .iter()
            .any(|line| line.contains("WARN") && line.contains("reload widens exposure")),
        "{:?}",
        gateway.log()
    );
    // Narrowing back needs no approval.
    std::fs::write(&config_path, &original).unwrap();
    assert_eq!(reload(String::new()).await.status, 200);
    assert!(!token_seen().await);
}

#[tokio::test]
async fn the_read_only_token_reads_with_numbers_masked_and_changes_nothing() {
    let agecheck = origin(2).await;
    let text_config = config(agecheck.addr().port()).replace(
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
        "[admin]\nlisten = \"127.0.0.1:0\"\nread_token_file = \"state/admin-read.token\"\n",
    );
    assert!(text_config.contains("read_token_file"));
    let gateway = ServeProcess::start(binary(), &text_config);
    let operator = token(&gateway);
    let read_path = gateway.path("state/admin-read.token");
    let mode = std::fs::metadata(&read_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "read token file created 0600");
    let reader = std::fs::read_to_string(read_path)
        .unwrap()
        .trim()
        .to_owned();
    assert_ne!(reader, operator);
    assert!(radclient(
        gateway.radius.unwrap(),
        SECRET,
        &accounting("Start", "s1")
    ));
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);

    // Reads: the policy, a session, the exposure counts.
    for path in ["/v1/policy", "/v1/sessions/127.0.0.5", "/v1/audit/exposure"] {
        let answer = admin(gateway.admin, "GET", path, Some(&reader), "").await;
        assert_eq!(answer.status, 200, "{path}: {}", text(&answer));
    }
    // The audit answer names the record, with the number masked to its last three digits.
    let path = "/v1/audit/subscriber/07700900123";
    let masked = admin(gateway.admin, "GET", path, Some(&reader), "").await;
    assert_eq!(masked.status, 200, "{}", text(&masked));
    let body = text(&masked);
    assert!(!body.contains("7700900123"), "{body}");
    let masked = json(&masked);
    assert_eq!(masked["disclosures"].as_array().unwrap().len(), 1);
    assert!(masked["subscriber"].as_str().unwrap().ends_with("123"));
    assert!(
        masked["disclosures"][0]["msisdn"]
            .as_str()
            .unwrap()
            .ends_with("123")
    );
    // The operator token still sees the number.
    let full = admin(gateway.admin, "GET", path, Some(&operator), "").await;
    assert_eq!(json(&full)["disclosures"][0]["msisdn"], "447700900123");

    // Changes are the operator's: 403, and nothing changed.
    for (method, path, body) in [
        ("POST", "/v1/enrichment", "{\"enabled\":false}"),
        ("POST", "/v1/policy/reload", ""),
        ("DELETE", "/v1/sessions/127.0.0.5", ""),
    ] {
        let refused = admin(gateway.admin, method, path, Some(&reader), body).await;
        assert_eq!(refused.status, 403, "{method} {path}: {}", text(&refused));
    }
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);
    let wrong = admin(
        gateway.admin,
        "GET",
        "/v1/policy",
        Some("not-the-token-at-all"),
        "",
    )
    .await;
    assert_eq!(wrong.status, 401);
}

#[tokio::test]
async fn one_partner_suspended_gets_nothing_across_a_restart_until_resumed() {
    let agecheck = origin(2).await;
    let text_config = config(agecheck.addr().port());
    let gateway = ServeProcess::start(binary(), &text_config);
    let token = token(&gateway);
    assert!(radclient(
        gateway.radius.unwrap(),
        SECRET,
        &accounting("Start", "s1")
    ));
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);

    let path = "/v1/partners/agecheck/enrichment";
    let unknown = admin(
        gateway.admin,
        "POST",
        "/v1/partners/nobody/enrichment",
        Some(&token),
        "{\"enabled\":false}",
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        admin(gateway.admin, "POST", path, Some(&token), "{}")
            .await
            .status,
        400
    );
    assert_eq!(
        admin(gateway.admin, "POST", path, None, "{\"enabled\":false}")
            .await
            .status,
        401
    );
    let off = admin(
        gateway.admin,
        "POST",
        path,
        Some(&token),
        "{\"enabled\":false}",
    )
    .await;
    assert_eq!(off.status, 200, "{}", text(&off));
    assert_eq!(json(&off)["suspended"], serde_json::json!(["agecheck"]));
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );
    let policy = json(&admin(gateway.admin, "GET", "/v1/policy", Some(&token), "").await);
    assert_eq!(
        policy["suspended_partners"],
        serde_json::json!(["agecheck"])
    );
    // Only that partner: the switch for everyone stays on.
    assert_eq!(policy["enrichment_enabled"], true);

    // Kept across a restart.
    let (code, dir) = gateway.terminate();
    assert_eq!(code, Some(0));
    let mode = std::fs::metadata(dir.path().join("state/suspended-partners.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let gateway = ServeProcess::start_in(binary(), &text_config, dir);
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );
    let on = admin(
        gateway.admin,
        "POST",
        path,
        Some(&token),
        "{\"enabled\":true}",
    )
    .await;
    assert_eq!(on.status, 200, "{}", text(&on));
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);

    // On record: both switches, with the partner's name.
    let (_, dir) = gateway.terminate();
    let connection = crate::audit_index(&dir.path().join("state/audit.db"));
    let events: Vec<String> = connection
        .prepare("SELECT detail FROM security_events WHERE kind = 'partner_enrichment' ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].contains("\"enabled\":false") && events[0].contains("agecheck"));
    assert!(events[1].contains("\"enabled\":true"));
}

#[tokio::test]
async fn admin_over_tls_answers_https_with_its_certificate_and_refuses_plain_http() {
    let agecheck = origin(2).await;
    let dir = headwall_testkit::temp_dir();
    let keygen = std::process::Command::new(binary())
        .args(["keygen", "--tls", "localhost", "--out"])
        .arg(dir.path().join("tls"))
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let text_config = config(agecheck.addr().port()).replace(
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
        "[admin]\nlisten = \"127.0.0.1:0\"\ntls_cert_file = \"tls/api.crt\"\ntls_key_file = \"tls/api.key\"\n",
    );
    assert!(text_config.contains("tls_cert_file"));
    let gateway = ServeProcess::start_in(binary(), &text_config, dir);
    let token = token(&gateway);

    // A real TLS client that trusts only this certificate: the open and the token endpoints.
    let script = r#"
import json, ssl, sys, urllib.request
port, cafile, token = sys.argv[1], sys.argv[2], sys.argv[3]
context = ssl.create_default_context(cafile=cafile)
health = urllib.request.urlopen(f"https://localhost:{port}/healthz", context=context).read()
request = urllib.request.Request(f"https://localhost:{port}/v1/policy", headers={"Authorization": "Bearer " + token})
policy = json.load(urllib.request.urlopen(request, context=context))
print(health.decode().strip(), policy["partners"][0]["name"])
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(gateway.admin.port().to_string())
        .arg(gateway.path("tls/api.crt"))
        .arg(&token)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "ok agecheck"
    );

    // Plain HTTP to the TLS port gets no HTTP answer, and the listener keeps serving.
    let plain = send_raw(
        gateway.admin,
        None,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        plain
            .as_ref()
            .map_or(true, |response| response.status != 200),
        "{plain:?}"
    );
    let warned = headwall_testkit::eventually(Duration::from_secs(5), || {
        gateway
            .log()
            .iter()
            .any(|line| line.contains("WARN") && line.contains("admin TLS handshake failed"))
    })
    .await;
    assert!(warned, "{:?}", gateway.log());
    let again = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(gateway.admin.port().to_string())
        .arg(gateway.path("tls/api.crt"))
        .arg(&token)
        .output()
        .unwrap();
    assert!(again.status.success());
}
