//! `headwall check`: validate a configuration.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, LoadError};

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
        Err(error @ LoadError::Invalid(_)) => {
            eprintln!("{error}");
            ExitCode::from(1)
        }
        Err(error @ LoadError::Unreadable(..)) => {
            eprintln!("{error}");
            ExitCode::from(super::EXIT_CANNOT_RUN)
        }
    }
}
