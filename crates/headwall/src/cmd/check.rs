//! `headwall check`: validate a configuration.

use std::path::Path;
use std::process::ExitCode;

use crate::config;

pub(crate) fn run(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({} partners, policy {})",
                path.display(),
                config.policy.partners().len(),
                config.policy.hash()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}
