//! `headwall check`: validate a configuration.

use std::path::Path;
use std::process::ExitCode;

use crate::config;

pub(crate) fn run(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            let clients = match config.policy.api_clients().len() {
                0 => String::new(),
                1 => ", 1 API client".to_owned(),
                n => format!(", {n} API clients"),
            };
            println!(
                "{}: ok ({} partners{clients}, policy {})",
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
