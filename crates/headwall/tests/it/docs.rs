//! The docs name real things: every repository path, `file.rs::function` and test a document
//! cites exists. A regulator reads docs/why-it-cannot-leak.md as evidence; a row that names a
//! test nobody can find is worse than no row.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::repo_root;

/// The documents checked: the README, ARCHITECTURE and everything under docs/.
fn documents() -> Vec<PathBuf> {
    let root = repo_root();
    let mut documents = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    documents.extend(docs);
    documents
}

/// Every file of the repository that git would see (target/ and other build output left out).
fn repository_files(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// The backticked spans of a Markdown text, outside fenced code blocks.
fn code_spans(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(span), Some(_)) = (parts.next(), parts.next()) {
            spans.push(span.to_owned());
        }
    }
    spans
}

/// Markdown link targets `](target)` that point into the repository.
fn link_targets(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|target| target.split('#').next().unwrap_or_default().to_owned())
        .filter(|target| !target.is_empty() && !target.contains("://"))
        .collect()
}

const REPOSITORY_ROOTS: [&str; 8] = [
    "crates/",
    "docs/",
    "scripts/",
    "bench/",
    "deploy/",
    "examples/",
    "fuzz/",
    "tests/",
];
const SOURCE_EXTENSIONS: [&str; 5] = [".rs", ".md", ".toml", ".service", ".txt"];

/// A file the span names, if it is a repository path: it starts at a repository folder, or
/// is a relative `something/file.rs`-like path that some repository file ends with.
fn named_path(span: &str) -> Option<&str> {
    let path = span.split("::").next()?.trim();
    // Patterns (`fuzz/corpus/<target>/*`) and build output are not files to find.
    if path.contains(['<', '*', '{']) || path.split('/').any(|part| part == "target") {
        return None;
    }
    // The steering folder beside the repository (its own issue moves the contract in), and
    // absolute paths: where the package installs things, not files of the repository.
    if path.starts_with("../shared/") || path.starts_with('/') {
        return None;
    }
    let looks_like_file = SOURCE_EXTENSIONS.iter().any(|ext| path.ends_with(ext))
        && !path.contains(' ')
        && (path.contains('/') || span.contains("::"));
    let rooted = REPOSITORY_ROOTS.iter().any(|root| path.starts_with(root)) && !path.contains(' ');
    (looks_like_file || (rooted && !path.ends_with('/'))).then_some(path)
}

/// The function a `path.rs::name` span (or `module::tests::name` span) names.
fn named_function(span: &str) -> Option<&str> {
    let last = span.rsplit("::").next()?;
    let is_fn = span.contains("::")
        && !last.is_empty()
        && last
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && last.contains('_');
    is_fn.then_some(last)
}

#[test]
fn every_path_function_and_test_the_docs_name_exists() {
    let root = repo_root();
    let files = repository_files(root);
    let mut problems = BTreeSet::new();
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        let shown = document
            .strip_prefix(root)
            .unwrap_or(&document)
            .display()
            .to_string();
        for target in link_targets(&text) {
            let resolved = document.parent().unwrap().join(&target);
            if !resolved.exists() {
                problems.insert(format!("{shown}: link to {target}, which does not exist"));
            }
        }
        for span in code_spans(&text) {
            let matching: Vec<&String> = match named_path(&span) {
                Some(path) => {
                    let path = path.trim_end_matches('/');
                    let found: Vec<&String> = files
                        .iter()
                        .filter(|file| {
                            file.as_str() == path
                                || file.ends_with(&format!("/{path}"))
                                || file.starts_with(&format!("{path}/"))
                        })
                        .collect();
                    if found.is_empty() {
                        problems
                            .insert(format!("{shown}: `{span}` names no file in the repository"));
                        continue;
                    }
                    found
                }
                None => files.iter().filter(|file| file.ends_with(".rs")).collect(),
            };
            let Some(function) = named_function(&span) else {
                continue;
            };
            // Only spans that name a file, or a Rust item path, are checked for the function.
            if named_path(&span).is_none() && !span.contains("tests::") {
                continue;
            }
            let needle = format!("fn {function}(");
            let defined = matching.iter().any(|file| {
                std::fs::read_to_string(root.join(file)).is_ok_and(|source| {
                    source.contains(&needle) || source.contains(&format!("fn {function}<"))
                })
            });
            if !defined {
                problems.insert(format!(
                    "{shown}: `{span}` names `fn {function}`, which is not there"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs name things that do not exist:\n{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_checker_catches_a_missing_test_and_a_missing_file() {
    assert_eq!(named_path("tests/it/strip.rs"), Some("tests/it/strip.rs"));
    assert_eq!(
        named_path("connect.rs::tunnels_count_against_max_connections"),
        Some("connect.rs")
    );
    assert_eq!(
        named_path("state/audit.db"),
        None,
        "a runtime path is not a repository file"
    );
    assert_eq!(
        named_function("forward.rs::an_unparsable_port_is_a_400_never_port_80"),
        Some("an_unparsable_port_is_a_400_never_port_80")
    );
    assert_eq!(named_function("Policy::route"), None);
    assert_eq!(code_spans("a `b` c `d::e`\n```\n`f`\n```"), ["b", "d::e"]);
}
