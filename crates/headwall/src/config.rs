//! Reading `headwall.toml` from disk; parsing and validation live in `headwall-policy`.

use std::path::{Path, PathBuf};

use headwall_policy::{Config, ConfigErrors};

/// Why a configuration could not be used.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// The file could not be read (exit 2).
    Unreadable(PathBuf, std::io::Error),
    /// The file is invalid (exit 1); each error is `file:line:col: message`.
    Invalid(ConfigErrors),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Unreadable(path, error) => {
                write!(f, "{}: cannot read configuration: {error}", path.display())
            }
            LoadError::Invalid(errors) => write!(f, "{errors}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    /// DESIGN's exit code: 1 invalid, 2 cannot run (unreadable).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            LoadError::Invalid(_) => 1,
            LoadError::Unreadable(..) => crate::cmd::EXIT_CANNOT_RUN,
        }
    }
}

/// Reads and compiles the configuration at `path`; relative paths in it resolve against its
/// folder.
pub(crate) fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| LoadError::Unreadable(path.to_path_buf(), error))?;
    let base = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    headwall_policy::load(&path.display().to_string(), &text, base).map_err(LoadError::Invalid)
}

/// Reads a whole configuration file and compiles only its policy (`[[partner]]` and `[strip]`):
/// the other tables must be well-formed TOML with known keys, but need not be complete. Used
/// by `plan` and `audit exposure --against`.
pub(crate) fn load_policy(path: &Path) -> Result<headwall_policy::Policy, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| LoadError::Unreadable(path.to_path_buf(), error))?;
    headwall_policy::load_policy(&path.display().to_string(), &text).map_err(LoadError::Invalid)
}
