//! `config_load`: `headwall_policy::load` and `load_policy` on arbitrary UTF-8 text (the seeds
//! are the shipped example and variants of it, so most mutations are near-valid files).
//!
//! Checked: no panic; every error has a line and column ≥ 1 that exist in the text (line at
//! most the number of lines, column at most one past the line's last character), names the
//! file, displays as `file:line:col: message` with a non-empty message, and the errors are
//! sorted by position; `load` succeeding means `load_policy` succeeds with the same policy hash,
//! and `load_policy` failing means `load` fails.

use headwall_policy::{ConfigErrors, Folders, load, load_policy};

const ORIGIN: &str = "fuzz.toml";

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `load` only joins paths onto the folder; nothing named in the file has to exist.
    let dir = std::env::temp_dir();
    let full = load(ORIGIN, text, &Folders::both(&dir));
    let policy = load_policy(ORIGIN, text);
    if let Err(errors) = &full {
        check_errors(text, errors);
    }
    if let Err(errors) = &policy {
        check_errors(text, errors);
    }
    match (&full, &policy) {
        (Ok(config), Ok(policy)) => assert_eq!(
            config.policy.hash(),
            policy.hash(),
            "load and load_policy compiled different policies"
        ),
        (Ok(_), Err(errors)) => panic!("load accepted a file load_policy rejects:\n{errors}"),
        (Err(_), _) => {}
    }
    if let Ok(config) = &full {
        let _ = format!("{config:?}");
    }
}

fn check_errors(text: &str, errors: &ConfigErrors) {
    let list = errors.errors();
    assert!(!list.is_empty(), "an empty ConfigErrors");
    let lines: Vec<&str> = text.split('\n').collect();
    for error in list {
        assert!(
            error.line >= 1 && error.column >= 1,
            "error without a position: {error:?}"
        );
        assert!(
            error.line <= lines.len(),
            "line {} is past the end of a {}-line text: {error:?}",
            error.line,
            lines.len()
        );
        let line_chars = lines[error.line - 1].chars().count();
        assert!(
            error.column <= line_chars + 1,
            "column {} is past the end of line {} ({line_chars} characters): {error:?}",
            error.column,
            error.line
        );
        assert_eq!(error.file, ORIGIN);
        assert!(!error.message.trim().is_empty(), "empty message: {error:?}");
        let shown = error.to_string();
        let prefix = format!("{ORIGIN}:{}:{}: ", error.line, error.column);
        assert!(
            shown.starts_with(&prefix),
            "{shown:?} does not start with {prefix:?}"
        );
    }
    assert!(
        list.windows(2)
            .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)),
        "errors are not sorted by position: {list:?}"
    );
    assert!(errors.to_string().lines().count() >= list.len());
}
