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
