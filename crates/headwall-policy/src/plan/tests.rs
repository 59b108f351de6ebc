//! Examples of [`plan`]: one change at a time, and what the text and JSON forms show.

use super::*;
use crate::load_policy;

/// One partner table; `extra` lines replace keys of the same name.
fn partner(name: &str, extra: &[&str]) -> String {
    let mut keys: Vec<(String, String)> = [
        ("name", format!("{name:?}")),
        ("purpose", "\"age_verification\"".to_owned()),
        ("hosts", format!("[\"login.{name}.test\"]")),
        ("ports", "[80]".to_owned()),
        ("destinations", "[\"192.0.2.10/32\"]".to_owned()),
        (
            "headers",
            "{ \"X-Age-Verified\" = \"age_verified\" }".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for line in extra {
        let (key, value) = line.split_once(" = ").unwrap();
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_owned(),
            None => keys.push((key.to_owned(), value.to_owned())),
        }
    }
    let mut text = "[[partner]]\n".to_owned();
    for (key, value) in keys {
        text.push_str(&format!("{key} = {value}\n"));
    }
    text
}

fn policy(tables: &[String]) -> Policy {
    let text = format!(
        "[gateway]\nlisten = \"127.0.0.1:8080\"\n{}",
        tables.concat()
    );
    load_policy("t.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The plan between one partner `a` as given by `old` and by `new`.
fn one(old: &[&str], new: &[&str]) -> Plan {
    plan(&policy(&[partner("a", old)]), &policy(&[partner("a", new)]))
}

fn pairs(plan: &Plan) -> Vec<&PairChange> {
    plan.partners()
        .iter()
        .flat_map(|p| &p.hosts)
        .flat_map(|h| &h.pairs)
        .collect()
}

fn reasons(plan: &Plan) -> Vec<Widening> {
    pairs(plan)
        .into_iter()
        .flat_map(|p| p.widening.clone())
        .collect()
}

pub(super) fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

#[test]
fn identical_policies_have_no_change() {
    let p = policy(&[partner("a", &[]), partner("b", &[])]);
    let plan = plan(&p, &p);
    assert!(plan.is_empty());
    assert!(!plan.widens());
    assert_eq!(plan.from_hash(), plan.to_hash());
    assert!(plan.to_text().ends_with("\nNo change in exposure.\n"));
}

#[test]
fn reordering_and_comments_change_nothing() {
    let old = policy(&[
        partner(
            "a",
            &[
                "hosts = [\"x.a.test\", \"*.b.a.test\"]",
                "ports = [80, 8080]",
                "destinations = [\"10.0.0.0/8\", \"192.0.2.1\"]",
                "headers = { \"X-One\" = \"pseudonym\", \"X-Two\" = \"token\" }",
            ],
        ),
        partner("b", &[]),
    ]);
    let new = policy(&[
        "# the second partner first now\n".to_owned(),
        partner("b", &[]),
        partner(
            "a",
            &[
                "hosts = [\"*.b.a.test\", \"X.A.test.\"]  # trailing comment",
                "ports = [8080, 80, 80]",
                "destinations = [\"192.0.2.1/32\", \"10.0.0.0/8\"]",
                "headers = { \"X-Two\" = \"token\", \"X-One\" = \"pseudonym\" }",
            ],
        ),
    ]);
    let plan = plan(&old, &new);
    assert!(plan.is_empty(), "{}", plan.to_text());
    assert_eq!(plan.from_hash(), plan.to_hash());
}

#[test]
fn an_added_header_widens() {
    let plan = one(
        &[],
        &["headers = { \"X-Age-Verified\" = \"age_verified\", \"X-Id\" = \"pseudonym\" }"],
    );
    assert!(plan.widens());
    let pairs = pairs(&plan);
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].change, Change::Added);
    assert_eq!(pairs[0].widening, [Widening::NewHeader]);
    let to = pairs[0].to.as_ref().unwrap();
    assert_eq!(
        (to.header.as_str(), to.kind),
        ("X-Id", ValueKind::Pseudonym)
    );
    assert_eq!(to.ports, [80]);
    assert_eq!(to.destinations, [net("192.0.2.10/32")]);
    assert_eq!(plan.summary(), "1 change, 1 widens exposure.");
}

#[test]
fn a_removed_header_narrows() {
    let plan = one(
        &["headers = { \"X-Age-Verified\" = \"age_verified\", \"X-Id\" = \"pseudonym\" }"],
        &[],
    );
    assert!(!plan.widens());
    let pairs = pairs(&plan);
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].change, Change::Removed);
    assert_eq!(plan.summary(), "1 change, none widen exposure.");
}

#[test]
fn a_wildcard_replacing_a_name_widens_and_the_reverse_narrows() {
    let wide = ["hosts = [\"*.a.test\"]"];
    let plan_wider = one(&[], &wide);
    assert!(plan_wider.widens());
    let host = &plan_wider.partners()[0].hosts[0];
    assert_eq!(host.host.to_string(), "*.a.test");
    assert_eq!(host.was.as_ref().unwrap().to_string(), "login.a.test");
    assert_eq!(
        reasons(&plan_wider),
        [Widening::WiderHost {
            was: HostPattern::parse("login.a.test").unwrap()
        }]
    );
    let text = plan_wider.to_text();
    assert!(
        text.contains("  host *.a.test (was login.a.test)\n"),
        "{text}"
    );
    assert!(
        text.contains("WIDENS: host matches more names than login.a.test"),
        "{text}"
    );

    let plan_narrower = one(&wide, &[]);
    assert!(!plan_narrower.widens());
    assert_eq!(pairs(&plan_narrower).len(), 1);

    // A deeper wildcard under an old one is narrower; a shallower one is wider.
    assert!(!one(&wide, &["hosts = [\"*.x.a.test\"]"]).widens());
    assert!(one(&["hosts = [\"*.x.a.test\"]"], &wide).widens());
}

#[test]
fn a_name_already_covered_is_listed_but_does_not_widen() {
    let plan = one(
        &["hosts = [\"*.a.test\"]"],
        &["hosts = [\"*.a.test\", \"www.a.test\"]"],
    );
    assert!(!plan.widens());
    let host = &plan.partners()[0].hosts[0];
    assert_eq!((host.change, host.was.as_ref()), (Change::Added, None));
    assert!(plan.to_text().contains("  host www.a.test (new)\n"));

    let unrelated = one(&[], &["hosts = [\"login.a.test\", \"other.test\"]"]);
    assert_eq!(reasons(&unrelated), [Widening::NewHost]);
}

#[test]
fn destinations_widen_by_address_not_by_text() {
    let wider = one(&[], &["destinations = [\"192.0.2.0/24\"]"]);
    assert_eq!(
        reasons(&wider),
        [Widening::WiderDestination {
            destination: net("192.0.2.0/24")
        }]
    );
    let new = one(
        &[],
        &["destinations = [\"192.0.2.10\", \"198.51.100.0/24\"]"],
    );
    assert_eq!(
        reasons(&new),
        [Widening::NewDestination {
            destination: net("198.51.100.0/24")
        }]
    );
    assert!(!one(&["destinations = [\"192.0.2.0/24\"]"], &[]).widens());
    // Two halves hold exactly the whole, either way round.
    let halves = ["destinations = [\"192.0.2.0/25\", \"192.0.2.128/25\"]"];
    let whole = ["destinations = [\"192.0.2.0/24\"]"];
    for (from, to) in [(&halves, &whole), (&whole, &halves)] {
        let plan = one(from, to);
        assert!(!plan.widens(), "{}", plan.to_text());
        assert_eq!(pairs(&plan).len(), 1);
    }
    // One half and a quarter do not.
    let partial = ["destinations = [\"192.0.2.0/25\", \"192.0.2.128/26\"]"];
    assert!(one(&partial, &whole).widens());
}

#[test]
fn an_added_port_widens_and_a_removed_one_narrows() {
    let plan = one(&[], &["ports = [80, 8080]"]);
    assert_eq!(reasons(&plan), [Widening::NewPort { port: 8080 }]);
    assert!(plan.to_text().contains("ports 80, 8080 (was 80)"));
    assert!(!one(&["ports = [80, 8080]"], &[]).widens());
}

#[test]
fn kinds_widen_up_the_order_only() {
    let kind = |k: &str| format!("headers = {{ \"X-Age-Verified\" = \"{k}\" }}");
    let with_justification = "justification = \"test\"";
    for (i, low) in KIND_ORDER.iter().enumerate() {
        for high in &KIND_ORDER[i + 1..] {
            let (low_kind, high_kind) = (kind(low.as_str()), kind(high.as_str()));
            let up = one(
                &[&low_kind, with_justification],
                &[&high_kind, with_justification],
            );
            assert_eq!(
                reasons(&up),
                [Widening::KindIdentifiesMore {
                    from: *low,
                    to: *high
                }],
                "{low} -> {high}"
            );
            let down = one(
                &[&high_kind, with_justification],
                &[&low_kind, with_justification],
            );
            assert!(!down.widens(), "{high} -> {low}");
            assert_eq!(pairs(&down)[0].change, Change::Changed);
        }
    }
}

#[test]
fn kind_order_is_the_rank_and_holds_every_kind() {
    for (i, kind) in KIND_ORDER.iter().enumerate() {
        assert_eq!(usize::from(rank(*kind)), i);
    }
    for kind in ValueKind::ALL {
        assert!(KIND_ORDER.contains(&kind));
    }
}

#[test]
fn a_new_partner_widens_every_pair_and_a_removed_one_none() {
    let old = policy(&[partner("a", &[])]);
    let new = policy(&[
        partner("a", &[]),
        partner(
            "b",
            &[
                "hosts = [\"x.b.test\", \"y.b.test\"]",
                "headers = { \"X-Age-Verified\" = \"age_verified\", \"X-Id\" = \"pseudonym\" }",
            ],
        ),
    ]);
    let added = plan(&old, &new);
    assert_eq!(added.changes(), 4);
    assert_eq!(added.widening_changes(), 4);
    assert!(reasons(&added).iter().all(|r| *r == Widening::NewPartner));
    assert_eq!(added.partners()[0].change, Change::Added);
    assert!(
        added
            .to_text()
            .contains("partner b (age_verification, new partner)\n")
    );
    let removed = plan(&new, &old);
    assert_eq!((removed.changes(), removed.widens()), (4, false));
}

#[test]
fn a_changed_purpose_widens() {
    let plan = one(&[], &["purpose = \"identification\""]);
    assert_eq!(
        reasons(&plan),
        [Widening::PurposeChanged {
            from: Purpose::AgeVerification,
            to: Purpose::Identification
        }]
    );
    let text = plan.to_text();
    assert!(
        text.contains("partner a (age_verification -> identification)"),
        "{text}"
    );
    assert!(
        text.contains("purpose identification (was age_verification)"),
        "{text}"
    );
}

#[test]
fn a_renamed_header_of_the_same_kind_is_neutral() {
    let plan = one(&[], &["headers = { \"X-Adult\" = \"age_verified\" }"]);
    assert!(!plan.widens());
    let pairs = pairs(&plan);
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].change, Change::Changed);
    assert!(
        plan.to_text()
            .contains("~ X-Adult (was X-Age-Verified) = age_verified"),
        "{}",
        plan.to_text()
    );
    // A different kind under the new name is a new header.
    let other = one(&[], &["headers = { \"X-Id\" = \"pseudonym\" }"]);
    assert_eq!(reasons(&other), [Widening::NewHeader]);
    assert_eq!(other.changes(), 2);
    // Spelling the same header differently is a neutral change too.
    let spelling = one(
        &[],
        &["headers = { \"x_age_verified\" = \"age_verified\" }"],
    );
    assert_eq!((spelling.changes(), spelling.widens()), (1, false));
}

#[test]
fn a_renamed_partner_with_the_same_terms_is_neutral() {
    let old = policy(&[partner("a", &[])]);
    let same = policy(&[partner("b", &["hosts = [\"login.a.test\"]"])]);
    let renamed = plan(&old, &same);
    assert!(!renamed.widens());
    assert_eq!(renamed.changes(), 1);
    assert_eq!(renamed.partners()[0].renamed_from.as_deref(), Some("a"));
    assert!(renamed.to_text().contains("~ renamed from a"));
    // A rename with any other change is a removal and a new partner.
    let changed = policy(&[partner(
        "b",
        &["hosts = [\"login.a.test\"]", "ports = [8080]"],
    )]);
    let plan = plan(&old, &changed);
    assert!(plan.widens());
    assert_eq!(plan.partners().len(), 2);
}

#[test]
fn justification_and_strip_changes_are_listed_not_widening() {
    let justified = one(&[], &["justification = \"contract 42\""]);
    assert_eq!((justified.changes(), justified.widens()), (1, false));
    assert!(
        justified
            .to_text()
            .contains("~ justification none -> \"contract 42\"")
    );

    let old = policy(&[partner("a", &[])]);
    let new = policy(&[
        partner("a", &[]),
        "[strip]\nheaders = [\"X-Extra\", \"X-Age-Verified\"]\n".to_owned(),
    ]);
    let strip = plan(&old, &new);
    assert_eq!(strip.strip().added, ["x-extra"]);
    assert_eq!((strip.changes(), strip.widens()), (1, false));
    assert!(strip.to_text().contains("\n  + x-extra\n"));
    assert_eq!(plan(&new, &old).strip().removed, ["x-extra"]);
}

#[test]
fn text_is_grouped_marked_and_summarized() {
    let old = policy(&[partner("a", &[]), partner("gone", &[])]);
    let new = policy(&[
        partner(
            "a",
            &[
                "hosts = [\"*.a.test\"]",
                "ports = [80, 8080]",
                "headers = { \"X-Age-Verified\" = \"age_verified\", \"X-Id\" = \"pseudonym\" }",
            ],
        ),
        partner("new", &[]),
    ]);
    let plan = plan(&old, &new);
    let text = plan.to_text();
    let expected = format!(
        "from policy {}\n\
         to   policy {}\n\
         \n\
         partner a (age_verification)\n\
         \x20 host *.a.test (was login.a.test)\n\
         \x20   ~ X-Age-Verified = age_verified  ports 80, 8080 (was 80)  destinations \
         192.0.2.10/32  WIDENS: host matches more names than login.a.test; new port 8080\n\
         \x20   + X-Id = pseudonym  ports 80, 8080  destinations 192.0.2.10/32  WIDENS: host \
         matches more names than login.a.test; new header; new port 8080\n\
         \n\
         partner gone (age_verification, removed)\n\
         \x20 host login.gone.test\n\
         \x20   - X-Age-Verified = age_verified  ports 80  destinations 192.0.2.10/32\n\
         \n\
         partner new (age_verification, new partner)\n\
         \x20 host login.new.test\n\
         \x20   + X-Age-Verified = age_verified  ports 80  destinations 192.0.2.10/32  \
         WIDENS: new partner\n\
         \n\
         4 changes, 3 widen exposure.\n",
        old.hash(),
        new.hash()
    );
    assert_eq!(text, expected);
}

#[test]
fn json_has_the_hashes_counts_and_reasons() {
    let old = policy(&[partner("a", &[])]);
    let new = policy(&[partner("a", &["ports = [80, 8080]"])]);
    let plan = plan(&old, &new);
    let json: serde_json::Value = serde_json::from_str(&plan.to_json()).unwrap();
    assert_eq!(json["from_hash"], old.hash());
    assert_eq!(json["to_hash"], new.hash());
    assert_eq!(json["widens"], true);
    assert_eq!(json["changes"], 1);
    assert_eq!(json["widening_changes"], 1);
    let partner = &json["partners"][0];
    assert_eq!(partner["partner"], "a");
    assert_eq!(partner["change"], "changed");
    assert_eq!(partner["from_purpose"], "age_verification");
    let host = &partner["hosts"][0];
    assert_eq!(host["host"], "login.a.test");
    assert_eq!(host["was"], serde_json::Value::Null);
    let pair = &host["pairs"][0];
    assert_eq!(pair["change"], "changed");
    assert_eq!(pair["from"]["ports"], serde_json::json!([80]));
    assert_eq!(pair["to"]["ports"], serde_json::json!([80, 8080]));
    assert_eq!(pair["to"]["kind"], "age_verified");
    assert_eq!(pair["to"]["destinations"][0], "192.0.2.10/32");
    assert_eq!(pair["widens"], true);
    assert_eq!(
        pair["widening"],
        serde_json::json!([{"reason": "new_port", "port": 8080}])
    );
    assert_eq!(
        json["strip"],
        serde_json::json!({"added": [], "removed": []})
    );
}
