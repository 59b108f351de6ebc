//! Reading `headwall.toml` from disk; parsing and validation live in `headwall-policy`.

use std::path::{Path, PathBuf};

use headwall_policy::{Config, ConfigError, ConfigErrors};

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
    /// The contract's exit code (docs/design.md, Command line): 1 invalid, 2 cannot run
    /// (unreadable).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            LoadError::Invalid(_) => 1,
            LoadError::Unreadable(..) => crate::cmd::EXIT_CANNOT_RUN,
        }
    }
}

/// A configuration file and the state folder it is read with, as `serve` re-reads it on reload.
#[derive(Debug, Clone)]
pub(crate) struct ConfigSource {
    pub(crate) path: PathBuf,
    /// `None`: the file's folder.
    pub(crate) state_dir: Option<PathBuf>,
}

impl ConfigSource {
    pub(crate) fn load(&self) -> Result<Config, LoadError> {
        load(&self.path, self.state_dir.as_deref())
    }
}

/// Reads and compiles the configuration at `path`. Relative paths of the files headwall
/// writes resolve against `state_dir` (`None`: the file's folder), the others against the
/// file's folder.
pub(crate) fn load(path: &Path, state_dir: Option<&Path>) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| LoadError::Unreadable(path.to_path_buf(), error))?;
    let base = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let folders = headwall_policy::Folders {
        config: base,
        state: state_dir.unwrap_or(base),
    };
    let origin = path.display().to_string();
    let config = headwall_policy::load(&origin, &text, &folders).map_err(LoadError::Invalid)?;
    let errors: Vec<ConfigError> = config
        .policy
        .api_clients()
        .iter()
        .filter_map(|client| {
            let message = client_keys_problem(&client.jwks_file)?;
            Some(ConfigError {
                file: origin.clone(),
                line: client.jwks_file_at.line,
                column: client.jwks_file_at.column,
                message: format!("`jwks_file` of [[api.client]] `{}`: {message}", client.id),
            })
        })
        .collect();
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(LoadError::Invalid(ConfigErrors(errors)))
    }
}

/// Why a client's JWKS file cannot authenticate it, if it cannot: unreadable, not a JWK Set
/// (RFC 7517 §5), no key `/token` can check (`EC` P-256, `RSA`, `OKP` Ed25519), or a private
/// key where only the client's public keys belong.
fn client_keys_problem(path: &Path) -> Option<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            return Some(format!(
                "cannot read {}: {error}; give the file with the client's public keys",
                path.display()
            ));
        }
    };
    let Ok(set) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Some(format!(
            "{} is not JSON; expected a JWK Set, {{\"keys\": [...]}}",
            path.display()
        ));
    };
    let Some(keys) = set.get("keys").and_then(serde_json::Value::as_array) else {
        return Some(format!(
            "{} is not a JWK Set: it has no \"keys\" array",
            path.display()
        ));
    };
    let mut usable = 0;
    for key in keys {
        if key.get("d").is_some() {
            return Some(format!(
                "{} holds a private key (`d`); keep only the client's public keys there",
                path.display()
            ));
        }
        let kty = key.get("kty").and_then(serde_json::Value::as_str);
        let crv = key.get("crv").and_then(serde_json::Value::as_str);
        if matches!(
            (kty, crv),
            (Some("EC"), Some("P-256")) | (Some("RSA"), _) | (Some("OKP"), Some("Ed25519"))
        ) {
            usable += 1;
        }
    }
    (usable == 0).then(|| {
        format!(
            "{} has no key /token can check client assertions with; give an EC P-256 (ES256), \
             RSA (RS256) or OKP Ed25519 (EdDSA) public key",
            path.display()
        )
    })
}

/// Reads a whole configuration file and compiles only its policy (`[[partner]]` and `[strip]`):
/// the other tables must be well-formed TOML with known keys, but need not be complete. Used
/// by `plan` and `audit exposure --against`.
pub(crate) fn load_policy(path: &Path) -> Result<headwall_policy::Policy, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| LoadError::Unreadable(path.to_path_buf(), error))?;
    headwall_policy::load_policy(&path.display().to_string(), &text).map_err(LoadError::Invalid)
}
