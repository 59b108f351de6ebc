//! The labelled corpus (`corpus/*.txt`, format in `corpus/README.md`) through [`inspect`]:
//! set-level precision and recall, and the reasons of every leak set.
//!
//! `cargo test -p headwall-leakcheck --test corpus -- --nocapture` prints the confusion matrix,
//! precision, recall and every misclassified set.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use headwall_leakcheck::{Reason, Verdict, inspect};

/// Recall must be perfect: a leak the page calls clean is the failure this crate exists for.
const MIN_RECALL: f64 = 1.0;
/// Precision may dip a little: a false alarm is a support call, not a breach.
const MIN_PRECISION: f64 = 0.97;
const MIN_SETS_PER_LABEL: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Leak,
    Clean,
}

#[derive(Debug)]
struct HeaderSet {
    file: String,
    line: usize,
    name: String,
    label: Option<Label>,
    expect: BTreeSet<Reason>,
    headers: Vec<(String, String)>,
}

#[test]
fn corpus_precision_and_recall() {
    let sets = load_corpus(&Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let leaks = sets
        .iter()
        .filter(|set| set.label == Some(Label::Leak))
        .count();
    let cleans = sets.len() - leaks;
    assert!(leaks >= MIN_SETS_PER_LABEL, "only {leaks} leak sets");
    assert!(cleans >= MIN_SETS_PER_LABEL, "only {cleans} clean sets");

    let (mut true_leak, mut false_clean, mut false_leak, mut true_clean) = (0, 0, 0, 0);
    let mut wrong = Vec::new();
    let mut wrong_reasons = 0;
    for set in &sets {
        let report = inspect(&set.headers);
        let found: BTreeSet<Reason> = report.findings.iter().map(|f| f.reason).collect();
        let flagged = report.verdict == Verdict::Leak;
        match (set.label, flagged) {
            (Some(Label::Leak), true) => true_leak += 1,
            (Some(Label::Leak), false) => false_clean += 1,
            (_, true) => false_leak += 1,
            (_, false) => true_clean += 1,
        }
        let reasons_ok = match set.label {
            Some(Label::Leak) => found == set.expect,
            _ => found.is_empty(),
        };
        if flagged && set.label == Some(Label::Leak) && !reasons_ok {
            wrong_reasons += 1;
        }
        if !reasons_ok {
            let headers: Vec<&str> = report.findings.iter().map(|f| f.header.as_str()).collect();
            wrong.push(format!(
                "  {:<28} {:<44} {:<28} {:<28} {}",
                set.file,
                set.name,
                labels(&set.expect),
                labels(&found),
                headers.join(","),
            ));
        }
        assert_redacted(set, &serde_json::to_string(&report).unwrap());
    }

    let precision = ratio(true_leak, true_leak + false_leak);
    let recall = ratio(true_leak, true_leak + false_clean);
    println!(
        "corpus: {} header sets, {leaks} leak, {cleans} clean",
        sets.len()
    );
    println!("                 flagged leak  flagged clean");
    println!("  labelled leak  {true_leak:>12}  {false_clean:>13}");
    println!("  labelled clean {false_leak:>12}  {true_clean:>13}");
    println!("precision {precision:.4}  recall {recall:.4}");
    if wrong.is_empty() {
        println!("misclassified: none");
    } else {
        println!("misclassified ({}):", wrong.len());
        println!(
            "  {:<28} {:<44} {:<28} {:<28} headers",
            "file", "set", "expected", "found"
        );
        for line in &wrong {
            println!("{line}");
        }
    }

    assert!(recall >= MIN_RECALL, "recall {recall:.4} < {MIN_RECALL}");
    assert!(
        precision >= MIN_PRECISION,
        "precision {precision:.4} < {MIN_PRECISION}"
    );
    // A leak found for the wrong reason would put the wrong words on the page.
    assert_eq!(wrong_reasons, 0, "leak sets flagged for unexpected reasons");
}

/// The served JSON never carries a run of 7 digits that was in a received value.
fn assert_redacted(set: &HeaderSet, json: &str) {
    for (name, value) in &set.headers {
        let digits: Vec<char> = value.chars().collect();
        for window in digits.windows(7) {
            if window.iter().all(char::is_ascii_digit) {
                let run: String = window.iter().collect();
                assert!(
                    !json.contains(&run),
                    "{}: {name}'s digits {run} appear in the report",
                    set.name
                );
            }
        }
    }
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        1.0
    } else {
        numerator as f64 / denominator as f64
    }
}

fn labels(reasons: &BTreeSet<Reason>) -> String {
    if reasons.is_empty() {
        return "-".into();
    }
    reasons
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every `*.txt` under `dir`, in name order, parsed and checked.
fn load_corpus(dir: &Path) -> Vec<HeaderSet> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    files.sort();
    let mut sets = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        sets.extend(parse(&file, &text));
    }
    let mut names = HashSet::new();
    for set in &sets {
        let at = format!("{}:{}: set {}", set.file, set.line, set.name);
        assert!(names.insert(set.name.clone()), "{at}: duplicate name");
        assert!(set.label.is_some(), "{at}: no @label");
        assert!(!set.headers.is_empty(), "{at}: no headers");
        match set.label {
            Some(Label::Leak) => assert!(!set.expect.is_empty(), "{at}: leak set without @expect"),
            _ => assert!(set.expect.is_empty(), "{at}: clean set with @expect"),
        }
    }
    sets
}

/// One corpus file: see `corpus/README.md`.
fn parse(file: &str, text: &str) -> Vec<HeaderSet> {
    let mut sets: Vec<HeaderSet> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let at = format!("{file}:{}", index + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix("### ") {
            let name = name.trim();
            assert!(
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{at}: set names are lowercase, digits and dashes: {name:?}"
            );
            sets.push(HeaderSet {
                file: file.to_owned(),
                line: index + 1,
                name: name.to_owned(),
                label: None,
                expect: BTreeSet::new(),
                headers: Vec::new(),
            });
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let set = sets
            .last_mut()
            .unwrap_or_else(|| panic!("{at}: content before the first ### set"));
        if let Some(directive) = line.strip_prefix('@') {
            let (key, rest) = directive.split_once(' ').unwrap_or((directive, ""));
            match key {
                "label" => {
                    set.label = Some(match rest.trim() {
                        "leak" => Label::Leak,
                        "clean" => Label::Clean,
                        other => panic!("{at}: label must be leak or clean, not {other:?}"),
                    })
                }
                "expect" => {
                    for word in rest.split_whitespace() {
                        let reason = Reason::from_label(word)
                            .unwrap_or_else(|| panic!("{at}: unknown reason {word:?}"));
                        set.expect.insert(reason);
                    }
                }
                "source" | "note" => {}
                other => panic!("{at}: unknown directive @{other}"),
            }
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{at}: expected `Name: value`, got {line:?}"));
        assert!(
            !name.is_empty() && !name.contains(char::is_whitespace),
            "{at}: bad header name {name:?}"
        );
        set.headers.push((name.to_owned(), value.trim().to_owned()));
    }
    sets
}
