//! The audit log through the real binary: what a partner received is on disk before it left,
//! survives `kill -9`, and the three `audit` commands answer from it; logs never carry the
//! number.

use std::path::Path;
use std::process::{Command, Output};

use headwall_testkit::{ServeProcess, origin, radclient};

use crate::binary;
use crate::radius::{SECRET, accounting, config, pseudonyms_seen};

/// The subscriber of `radius::accounting` (national 07700900123 with country code 44).
const NUMBER: &str = "447700900123";

fn audit(config_path: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("audit")
        .args(args)
        .arg("--config")
        .arg(config_path)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn disclosures_are_durable_answerable_and_never_logged() {
    let agecheck = origin(2).await;
    let text = config(agecheck.addr().port());
    let mut logs = Vec::new();

    // Bind, disclose once, then stop gracefully (final checkpoint).
    let gateway = ServeProcess::start(binary(), &text);
    let radius = gateway.radius.expect("radius listener");
    assert!(radclient(radius, SECRET, &accounting("Start", "s1")));
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);
    logs.extend(gateway.log());
    let (code, dir) = gateway.terminate();
    assert_eq!(code, Some(0), "SIGTERM exits 0");

    // Disclose again, then kill -9: the acknowledged request's record must be on disk.
    let gateway = ServeProcess::start_in(binary(), &text, dir);
    let pseudonym = pseudonyms_seen(gateway.explicit, &agecheck).await;
    assert_eq!(pseudonym.len(), 1);
    logs.extend(gateway.log());
    let dir = gateway.kill();
    let config_path = dir.path().join("headwall.toml");

    // Data-subject access, in national form, as a person would ask.
    let output = audit(&config_path, &["subscriber", "07700900123"]);
    assert!(output.status.success(), "{output:?}");
    let text_answer = stdout(&output);
    assert!(text_answer.contains(": 2\n"), "{text_answer}");
    assert_eq!(text_answer.matches("verify.agecheck.test").count(), 2);
    let output = audit(&config_path, &["subscriber", NUMBER, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["subscriber"], NUMBER);
    let records = json["disclosures"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["partner"], "agecheck");
    assert_eq!(
        records[0]["headers"],
        serde_json::json!(["x-subscriber-id"])
    );
    assert_eq!(records[0]["upstream_ip"], "127.0.0.2");
    assert_eq!(records[0]["client_ip"], "127.0.0.5");
    let output = audit(
        &config_path,
        &[
            "subscriber",
            NUMBER,
            "--from",
            "2000-01-01",
            "--to",
            "2000-01-02",
        ],
    );
    assert!(stdout(&output).contains(": 0\n"), "{}", stdout(&output));

    // Who was disclosed to whom.
    let output = audit(&config_path, &["exposure", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["exposure"][0]["partner"], "agecheck");
    assert_eq!(json["exposure"][0]["subscribers"], 1);
    assert_eq!(json["exposure"][0]["disclosures"], 2);
    let output = audit(&config_path, &["exposure", "--partner", "nobody"]);
    assert!(
        stdout(&output).contains("0 partner/host pairs"),
        "{}",
        stdout(&output)
    );
    // Windows: one holding every record answers as all time; one before them, nothing.
    let output = audit(
        &config_path,
        &["exposure", "--from", "2000-01-01", "--json"],
    );
    let window: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(window["exposure"], json["exposure"]);
    let output = audit(
        &config_path,
        &["exposure", "--from", "2000-01-01", "--to", "2000-01-02"],
    );
    assert!(
        stdout(&output).contains("0 partner/host pairs"),
        "{}",
        stdout(&output)
    );

    // Breach scoping: the same policy allowed everything; a policy without the partner did not.
    let output = audit(
        &config_path,
        &["exposure", "--against", config_path.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let narrow = dir.path().join("narrow.toml");
    std::fs::write(&narrow, "[gateway]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let output = audit(
        &config_path,
        &["exposure", "--against", narrow.to_str().unwrap(), "--json"],
    );
    assert_eq!(output.status.code(), Some(1), "a finding exits 1");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let unallowed = json["unallowed"].as_array().unwrap();
    assert_eq!(unallowed.len(), 2);
    assert_eq!(unallowed[0]["msisdn"], NUMBER);
    assert!(
        unallowed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no partner")
    );
    assert_eq!(json["policy"], narrow.to_str().unwrap());
    // The text answer streams the records, then counts them.
    let output = audit(
        &config_path,
        &["exposure", "--against", narrow.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1));
    let text_answer = stdout(&output);
    assert!(text_answer.starts_with("TIME "), "{text_answer}");
    assert_eq!(text_answer.matches(NUMBER).count(), 2, "{text_answer}");
    assert!(
        text_answer.ends_with("would not have allowed: 2 (1 subscriber)\n"),
        "{text_answer}"
    );
    // A window without records: an empty JSON list, exit 0.
    let output = audit(
        &config_path,
        &[
            "exposure",
            "--against",
            narrow.to_str().unwrap(),
            "--to",
            "2000-01-01",
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["unallowed"], serde_json::json!([]));

    // The chain verifies and reaches the checkpoint the graceful stop signed...
    let output = audit(&config_path, &["verify"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        stdout(&output).contains("2 disclosures"),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).contains("signed checkpoint"));
    // ...and names the first altered record.
    let database = dir.path().join("state/audit.db");
    crate::audit_index(&database)
        .execute(
            "UPDATE disclosures SET partner = 'someone' WHERE id = 1",
            [],
        )
        .unwrap();
    let output = audit(&config_path, &["verify"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("disclosures record 1"),
        "{}",
        stdout(&output)
    );

    // Nothing the gateway logged (at debug level) carries the number in any form.
    let log = logs.join("\n");
    assert!(log.contains("headwall ready"));
    assert!(!log.contains("7700900123"), "subscriber number in the log");
}

#[tokio::test]
async fn exposure_subscribers_lists_who_was_disclosed_to_each_partner_and_host() {
    let agecheck = origin(2).await;
    let gateway = ServeProcess::start(binary(), &config(agecheck.addr().port()));
    let radius = gateway.radius.expect("radius listener");
    // Two subscribers: 127.0.0.5 (07700900123) twice, 127.0.0.6 (07700900456) once.
    assert!(radclient(radius, SECRET, &accounting("Start", "s1")));
    assert!(radclient(
        radius,
        SECRET,
        "Acct-Status-Type = Start\nFramed-IP-Address = 127.0.0.6\nCalling-Station-Id = \"07700900456\"\nAcct-Session-Id = \"s2\"\nNAS-IP-Address = 127.0.0.1\n"
    ));
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);
    assert_eq!(pseudonyms_seen(gateway.explicit, &agecheck).await.len(), 1);
    let url = format!("http://verify.agecheck.test:{}/", agecheck.addr().port());
    let got = crate::received_through(gateway.explicit, 6, &url, &agecheck).await;
    assert_eq!(got.header_values("x-subscriber-id").len(), 1);
    let (code, dir) = gateway.terminate();
    assert_eq!(code, Some(0));
    let config_path = dir.path().join("headwall.toml");

    let output = audit(&config_path, &["exposure", "--subscribers", "--json"]);
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let listed = json["subscribers"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{json}");
    assert_eq!(listed[0]["msisdn"], NUMBER);
    assert_eq!(listed[0]["disclosures"], 2);
    assert_eq!(listed[1]["msisdn"], "447700900456");
    assert_eq!(listed[1]["disclosures"], 1);
    for row in listed {
        assert_eq!(row["partner"], "agecheck");
        assert_eq!(row["host"], "verify.agecheck.test");
        assert!(row["first"].as_str().unwrap() <= row["last"].as_str().unwrap());
    }
    assert_eq!(json["distinct_subscribers"], 2);
    assert_eq!(json["pairs"], 1);
    assert_eq!(json["complete"], true);

    let output = audit(&config_path, &["exposure", "--subscribers"]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(text.contains("\nagecheck verify.agecheck.test\n"), "{text}");
    assert!(
        text.contains(NUMBER) && text.contains("447700900456"),
        "{text}"
    );
    assert!(
        text.ends_with("2 distinct subscribers over 1 partner/host pair (2 lines)\n"),
        "{text}"
    );

    // Filters apply as to the counts; an empty answer is still a document.
    let output = audit(
        &config_path,
        &["exposure", "--subscribers", "--partner", "nobody", "--json"],
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["subscribers"], serde_json::json!([]));
    assert_eq!(json["partner"], "nobody");
    // It answers a different question than --against: not both at once.
    let output = audit(
        &config_path,
        &["exposure", "--subscribers", "--against", "x.toml"],
    );
    assert_eq!(output.status.code(), Some(2));
}
