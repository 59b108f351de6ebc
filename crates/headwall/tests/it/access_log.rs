//! `[access_log]`: one JSON line per request that joins its audit row by `request_id`, holds
//! no number, token, header value or query string, and follows logrotate on SIGHUP; and a
//! debug line per RADIUS change without the number.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use headwall_testkit::{
    ServeProcess, eventually, loopback, origin, patience, proxy_get, radclient, send_raw,
};
use serde_json::Value;

use crate::radius::{SECRET, accounting};
use crate::{audit_index, binary};

/// The RADIUS tests' gateway (partner agecheck at 127.0.0.2) with an access log.
fn config(agecheck_port: u16) -> String {
    format!(
        "{}\n[access_log]\npath = \"logs/access.log\"\n",
        crate::radius::config(agecheck_port)
    )
}

/// The access log's lines once there are `count` of them.
async fn lines(path: &std::path::Path, count: usize) -> Vec<Value> {
    let read = || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("each line is JSON"))
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(patience(Duration::from_secs(10)), || read().len() >= count).await,
        "{} lines, expected {count}",
        read().len()
    );
    read()
}

#[tokio::test]
async fn a_line_per_request_joins_its_audit_row_and_holds_no_identity() {
    let agecheck = origin(2).await;
    let news = origin(3).await;
    let gateway = ServeProcess::start(binary(), &config(agecheck.addr().port()));
    let radius = gateway.radius.unwrap();
    assert!(radclient(radius, SECRET, &accounting("Start", "acc-1")));
    let patience = patience(Duration::from_secs(10));

    // A partner request whose query carries a number and a token of its own.
    let partner_url = format!(
        "http://verify.agecheck.test:{}/check?msisdn=447700900123&token=s3cret",
        agecheck.addr().port()
    );
    let response = send_raw(
        gateway.explicit,
        Some(loopback(5)),
        &proxy_get(&partner_url, &[]),
        patience,
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200);
    let pseudonym = agecheck.take()[0].header_values("x-subscriber-id")[0].to_owned();
    // A non-partner request with a spoofed identity header.
    let news_url = format!("http://127.0.0.3:{}/story?id=7", news.addr().port());
    let response = send_raw(
        gateway.explicit,
        Some(loopback(5)),
        &proxy_get(&news_url, &[("X-MSISDN", "447700900999")]),
        patience,
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(news.take().len(), 1);
    // A head the codec refuses.
    let response = send_raw(
        gateway.explicit,
        Some(loopback(5)),
        b"GET http://127.0.0.3/ HTTP/1.1\r\nHost: 127.0.0.3\r\nBad Name: x\r\n\r\n",
        patience,
    )
    .await
    .unwrap();
    assert_eq!(response.status, 400);

    let path = gateway.path("logs/access.log");
    let lines = lines(&path, 3).await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    let (enriched, forwarded, refused) = (&lines[0], &lines[1], &lines[2]);
    assert_eq!(enriched["outcome"], "enriched");
    assert_eq!(enriched["partner"], "agecheck");
    assert_eq!(enriched["status"], 200);
    assert_eq!(enriched["host"], "verify.agecheck.test");
    assert_eq!(enriched["port"], agecheck.addr().port());
    assert_eq!(enriched["path"], "/check");
    assert_eq!(enriched["method"], "GET");
    assert_eq!(enriched["listener"], "explicit");
    assert!(
        enriched["client"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.5:")
    );
    assert!(enriched["bytes_out"].as_u64().unwrap() > 0);
    assert!(enriched["bytes_in"].as_u64().unwrap() > 0);
    assert_eq!(forwarded["outcome"], "forwarded");
    assert_eq!(forwarded["partner"], Value::Null);
    assert_eq!(forwarded["path"], "/story");
    assert_eq!(refused["outcome"], "bad_request");
    assert_eq!(refused["status"], 400);
    let ids: Vec<&str> = lines
        .iter()
        .map(|line| line["request_id"].as_str().unwrap())
        .collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);

    // The disclosure's audit row carries the enriched line's id.
    let index = audit_index(&gateway.path("state/audit.db"));
    let recorded: Vec<String> = index
        .prepare("SELECT request_id FROM disclosures")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(recorded, vec![ids[0].to_owned()]);

    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [
        "447700900123",
        "07700900123",
        "447700900999",
        "s3cret",
        "msisdn=",
        "id=7",
        pseudonym.as_str(),
    ] {
        assert!(!text.contains(secret), "the access log holds {secret:?}");
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "client addresses are the owner's only");

    // logrotate moves the file; SIGHUP opens a new one, and the next line goes there.
    std::fs::rename(&path, gateway.path("logs/access.log.1")).unwrap();
    gateway.signal("HUP");
    let rotated = eventually(patience, || {
        gateway
            .log()
            .iter()
            .any(|line| line.contains("configuration reloaded"))
    })
    .await;
    assert!(rotated, "no reload after SIGHUP: {:?}", gateway.log());
    let response = send_raw(
        gateway.explicit,
        Some(loopback(5)),
        &proxy_get(&news_url, &[]),
        patience,
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200);
    let after = self::lines(&path, 1).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["path"], "/story");
    let moved = std::fs::read_to_string(gateway.path("logs/access.log.1")).unwrap();
    assert_eq!(moved.lines().count(), 3);

    // RADIUS changes are logged at debug with their session and address, never the number.
    let log = gateway.log();
    assert!(
        log.iter()
            .any(|line| line.contains("radius accounting applied")
                && line.contains("acc-1")
                && line.contains("127.0.0.5")),
        "{log:?}"
    );
    assert!(!log.iter().any(|line| line.contains("7700900123")));
}
