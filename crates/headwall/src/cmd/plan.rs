//! `headwall plan`: the exposure difference between two configuration files.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, LoadError};

/// Exit code when `--fail-on-widen` is given and the new policy widens exposure.
const EXIT_WIDENED: u8 = 3;

/// Compiles both files' policies and prints the plan (text, or one JSON document with `json`).
///
/// Exit codes: 0 compared (and, with `fail_on_widen`, nothing widens); 1 a file is invalid
/// (each error printed as `file:line:col: message`, as `check` prints them); 2 a file cannot be
/// read; 3 with `fail_on_widen`, exposure widens. Both files are read before any error is
/// printed, so one run reports the problems of both.
pub(crate) fn run(from: &Path, to: &Path, json: bool, fail_on_widen: bool) -> ExitCode {
    let (old, new) = match (config::load_policy(from), config::load_policy(to)) {
        (Ok(old), Ok(new)) => (old, new),
        (old, new) => {
            let errors: Vec<LoadError> = [old.err(), new.err()].into_iter().flatten().collect();
            for error in &errors {
                eprintln!("{error}");
            }
            // Unreadable (2) outranks invalid (1).
            let code = errors.iter().map(LoadError::exit_code).max().unwrap_or(1);
            return ExitCode::from(code);
        }
    };
    let plan = headwall_policy::plan(&old, &new);
    if json {
        println!("{}", plan.to_json());
    } else {
        print!("{}", plan.to_text());
    }
    if fail_on_widen && plan.widens() {
        ExitCode::from(EXIT_WIDENED)
    } else {
        ExitCode::SUCCESS
    }
}
