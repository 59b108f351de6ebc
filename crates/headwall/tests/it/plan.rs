//! `headwall plan` on files, as a change-review pipeline runs it: exit codes, the widening
//! named in the text, and the JSON document.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::binary;

/// A whole configuration with one partner; `partner` lines replace the default ones by key.
fn config(partner: &[&str]) -> String {
    let mut keys: Vec<(&str, &str)> = vec![
        ("name", "\"agecheck\""),
        ("purpose", "\"age_verification\""),
        ("hosts", "[\"login.agecheck.test\"]"),
        ("ports", "[80]"),
        ("destinations", "[\"192.0.2.10/32\"]"),
        ("headers", "{ \"X-Age-Verified\" = \"age_verified\" }"),
    ];
    for line in partner {
        let (key, value) = line.split_once(" = ").unwrap();
        match keys.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => keys.push((key, value)),
        }
    }
    // The other tables are there as in a real file; plan reads only the policy.
    let mut text = "[gateway]\nlisten = \"127.0.0.1:8080\"\n\n[admin]\nlisten = \
                    \"127.0.0.1:9090\"\n\n[[partner]]\n"
        .to_owned();
    for (key, value) in keys {
        text.push_str(&format!("{key} = {value}\n"));
    }
    text
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: headwall_testkit::temp_dir(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn plan(from: &Path, to: &Path, flags: &[&str]) -> Output {
    Command::new(binary())
        .arg("plan")
        .arg("--from")
        .arg(from)
        .arg("--to")
        .arg(to)
        .args(flags)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn identical_policies_exit_0_with_no_change() {
    let files = Files::new();
    let old = files.write("old.toml", &config(&[]));
    // Reordered, commented, other tables changed: the same exposure.
    let new = files.write(
        "new.toml",
        &format!(
            "# reviewed\n{}",
            config(&["ports = [80, 80]", "destinations = [\"192.0.2.10\"]"])
                .replace("9090", "9091")
        ),
    );
    let output = plan(&old, &new, &["--fail-on-widen"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("No change in exposure."),
        "{}",
        stdout(&output)
    );
}

#[test]
fn each_widening_exits_3_and_is_named() {
    let files = Files::new();
    let old = files.write("old.toml", &config(&[]));
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "header",
            &["headers = { \"X-Age-Verified\" = \"age_verified\", \"X-Id\" = \"pseudonym\" }"],
            "+ X-Id = pseudonym  ports 80  destinations 192.0.2.10/32  WIDENS: new header",
        ),
        (
            "wildcard",
            &["hosts = [\"*.agecheck.test\"]"],
            "WIDENS: host matches more names than login.agecheck.test",
        ),
        (
            "cidr",
            &["destinations = [\"192.0.2.0/24\"]"],
            "WIDENS: wider destination 192.0.2.0/24",
        ),
        ("port", &["ports = [80, 8080]"], "WIDENS: new port 8080"),
    ];
    for (name, partner, named) in cases {
        let new = files.write(&format!("{name}.toml"), &config(partner));
        let output = plan(&old, &new, &["--fail-on-widen"]);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(3), "{name}: {text}");
        assert!(
            text.contains(named),
            "{name}: expected {named:?} in:\n{text}"
        );
        assert!(
            text.trim_end().ends_with("1 widens exposure."),
            "{name}: {text}"
        );
        // Without the flag the same plan is only a report.
        assert_eq!(plan(&old, &new, &[]).status.code(), Some(0), "{name}");
    }
}

#[test]
fn narrowing_only_exits_0_even_with_fail_on_widen() {
    let files = Files::new();
    let old = files.write(
        "old.toml",
        &config(&[
            "hosts = [\"*.agecheck.test\"]",
            "ports = [80, 8080]",
            "destinations = [\"192.0.2.0/24\"]",
            "headers = { \"X-Age-Verified\" = \"age_verified\", \"X-Id\" = \"token\" }",
        ]),
    );
    let new = files.write(
        "new.toml",
        &config(&[
            "hosts = [\"login.agecheck.test\"]",
            "destinations = [\"192.0.2.10/32\"]",
            "headers = { \"X-Id\" = \"pseudonym\" }",
        ]),
    );
    let output = plan(&old, &new, &["--fail-on-widen"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("- X-Age-Verified = age_verified"), "{text}");
    assert!(text.contains("~ X-Id = pseudonym (was token)"), "{text}");
    assert!(!text.contains("WIDENS"), "{text}");
    assert!(text.trim_end().ends_with("none widen exposure."), "{text}");
}

#[test]
fn json_is_one_document_with_the_plan() {
    let files = Files::new();
    let old = files.write("old.toml", &config(&[]));
    let new = files.write("new.toml", &config(&["ports = [80, 8080]"]));
    let output = plan(&old, &new, &["--json", "--fail-on-widen"]);
    assert_eq!(output.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["widens"], true);
    assert_eq!(json["changes"], 1);
    assert_eq!(json["from_hash"].as_str().unwrap().len(), 64);
    assert_ne!(json["from_hash"], json["to_hash"]);
    let partner = &json["partners"][0];
    assert_eq!(partner["partner"], "agecheck");
    let pair = &partner["hosts"][0]["pairs"][0];
    assert_eq!(pair["change"], "changed");
    assert_eq!(pair["to"]["header"], "X-Age-Verified");
    assert_eq!(pair["to"]["ports"], serde_json::json!([80, 8080]));
    assert_eq!(pair["widening"][0]["reason"], "new_port");
    assert_eq!(pair["widening"][0]["port"], 8080);
}

#[test]
fn an_invalid_file_exits_1_with_its_position() {
    let files = Files::new();
    let old = files.write("old.toml", &config(&[]));
    let bad = files.write("bad.toml", &config(&["hosts = [\"*\"]"]));
    let output = plan(&old, &bad, &["--fail-on-widen"]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    // [[partner]] opens on line 7; its third key, hosts, is on line 10.
    let expected = format!("{}:10:10: ", bad.display());
    assert!(
        errors.starts_with(&expected),
        "expected {expected} in: {errors}"
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn a_missing_file_exits_2() {
    let files = Files::new();
    let old = files.write("old.toml", &config(&[]));
    let missing = files.dir.path().join("missing.toml");
    let output = plan(&old, &missing, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("missing.toml"),
        "{}",
        stderr(&output)
    );
}

/// Issue 15: `[[api.client]]` is policy. A new scope for an API client is widening (exit 3 with
/// `--fail-on-widen`), named in the text; taking it away again is not.
#[test]
fn an_api_client_gaining_a_scope_widens() {
    let client = |scopes: &str| {
        format!(
            "{}\n[[api.client]]\nid = \"shop-app\"\njwks_file = \"shop.jwks.json\"\n\
             redirect_uris = [\"https://shop.test/cb\"]\nscopes = [{scopes}]\n\
             purpose = \"dpv:FraudPreventionAndDetection\"\n",
            config(&[])
        )
    };
    let files = Files::new();
    let old = files.write("old.toml", &client("\"number-verification:verify\""));
    let new = files.write(
        "new.toml",
        &client("\"number-verification:verify\", \"kyc-age-verification:verify\""),
    );
    let output = plan(&old, &new, &["--fail-on-widen"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(3), "{text}{}", stderr(&output));
    assert!(
        text.contains(
            "api client shop-app (dpv:FraudPreventionAndDetection)\n  + scope \
             kyc-age-verification:verify  WIDENS"
        ),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("1 change, 1 widens exposure."),
        "{text}"
    );
    let output = plan(&new, &old, &["--fail-on-widen"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}
