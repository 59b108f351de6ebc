//! RADIUS accounting from the real `radclient` into the real binary, and bindings that survive
//! `kill -9`.

use std::net::SocketAddr;
use std::time::Duration;

use headwall_testkit::{
    EchoOrigin, ServeProcess, loopback, origin, proxy_get, radclient, send_raw,
};

use crate::binary;

pub(crate) const SECRET: &str = "testing123";

pub(crate) fn config(agecheck_port: u16) -> String {
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
[gateway.hosts]
"verify.agecheck.test" = "127.0.0.2"
[admin]
listen = "127.0.0.1:0"
[radius]
listen = "127.0.0.1:0"
country_code = "44"
[[radius.clients]]
source = "127.0.0.1/32"
secret = "{SECRET}"
[[partner]]
name = "agecheck"
purpose = "age_verification"
hosts = ["verify.agecheck.test"]
ports = [{agecheck_port}]
destinations = ["127.0.0.2/32"]
headers = {{ "X-Subscriber-Id" = "pseudonym" }}
"#
    )
}

pub(crate) fn accounting(status: &str, session: &str) -> String {
    format!(
        "Acct-Status-Type = {status}\nFramed-IP-Address = 127.0.0.5\nCalling-Station-Id = \"07700900123\"\nAcct-Session-Id = \"{session}\"\nNAS-IP-Address = 127.0.0.1\n"
    )
}

/// The X-Subscriber-Id values the partner received for one request from the subscriber.
pub(crate) async fn pseudonyms_seen(gateway: SocketAddr, partner: &EchoOrigin) -> Vec<String> {
    let url = format!("http://verify.agecheck.test:{}/", partner.addr().port());
    let response = send_raw(
        gateway,
        Some(loopback(5)),
        &proxy_get(&url, &[]),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200);
    let received = partner.take();
    assert_eq!(received.len(), 1);
    received[0]
        .header_values("x-subscriber-id")
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn radclient_binds_and_bindings_survive_kill_9() {
    let agecheck = origin(2).await;
    let gateway = ServeProcess::start(binary(), &config(agecheck.addr().port()));
    let radius = gateway.radius.expect("radius listener");

    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty(),
        "enriched before any accounting"
    );
    assert!(
        radclient(radius, SECRET, &accounting("Start", "s1")),
        "Start not acknowledged"
    );
    let before = pseudonyms_seen(gateway.explicit, &agecheck).await;
    assert_eq!(before.len(), 1, "acknowledged Start must enrich at once");

    // kill -9: no shutdown, no flush. Every acknowledged binding must be back.
    let dir = gateway.kill();
    let gateway = ServeProcess::start_in(binary(), &config(agecheck.addr().port()), dir);
    let radius = gateway.radius.expect("radius listener");
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await, before);

    // A late Stop of another session leaves the binding; the right Stop ends it.
    assert!(radclient(
        radius,
        SECRET,
        &accounting("Stop", "old-session")
    ));
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await, before);
    assert!(radclient(radius, SECRET, &accounting("Stop", "s1")));
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );

    // The log never carries the number, in either form.
    let log = gateway.log().join("\n");
    assert!(!log.contains("7700900123"), "subscriber number in the log");
}

#[tokio::test]
async fn wrong_secret_gets_no_answer_and_accounting_off_unbinds() {
    let agecheck = origin(2).await;
    let gateway = ServeProcess::start(binary(), &config(agecheck.addr().port()));
    let radius = gateway.radius.expect("radius listener");
    assert!(!radclient(
        radius,
        "wrong-secret",
        &accounting("Start", "s1")
    ));
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );
    // The listener keeps serving after bad input.
    assert!(radclient(radius, SECRET, &accounting("Start", "s1")));
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);
    // Accounting-Off from the NAS removes its bindings.
    assert!(radclient(
        radius,
        SECRET,
        "Acct-Status-Type = Accounting-Off\nNAS-IP-Address = 127.0.0.1\n"
    ));
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_client_is_dropped() {
    let agecheck = origin(2).await;
    let text = config(agecheck.addr().port())
        .replace("source = \"127.0.0.1/32\"", "source = \"127.0.0.9/32\"");
    let gateway = ServeProcess::start(binary(), &text);
    let radius = gateway.radius.expect("radius listener");
    assert!(!radclient(radius, SECRET, &accounting("Start", "s1")));
    assert!(
        pseudonyms_seen(gateway.explicit, &agecheck)
            .await
            .is_empty()
    );
}
