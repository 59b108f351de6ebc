//! Loading: TOML text → raw serde tables (with spans) → validated [`Config`] and [`Policy`].
//!
//! `raw` is the serde model; `diagnostic` records errors and turns spans and TOML's own errors
//! into `file:line:col: message`; `value` parses single values (addresses, durations,
//! networks, ports, paths, URLs); `tables` compiles each table from `[gateway]` to `[canary]`;
//! `partner` compiles `[[partner]]` and `[strip]` into the [`Policy`] and finds overlapping
//! partners; `api` does `[api]` and `[[api.client]]`.

use std::path::Path;

use crate::config::Config;
use crate::error::ConfigErrors;
use crate::policy::Policy;

mod api;
mod diagnostic;
mod partner;
mod raw;
mod store;
mod tables;
mod value;

use diagnostic::{LineIndex, parse};
use raw::Str;

/// The folders relative paths resolve against (joined, not canonicalized; no I/O happens
/// here; docs/design.md, Operations, "State folder").
#[derive(Debug, Clone, Copy)]
pub struct Folders<'a> {
    /// For the files the operator provides and headwall only reads: `[subscribers].file`,
    /// RADIUS `secret_file`, `[api]` TLS files, `jwks_file`s. The configuration file's folder.
    pub config: &'a Path,
    /// For the files headwall writes: the sessions and audit databases, the generated keys and
    /// admin token, the access log. `--state-dir`, else `$STATE_DIRECTORY`, else `config`.
    pub state: &'a Path,
}

impl<'a> Folders<'a> {
    /// Both kinds of path in one folder.
    pub fn both(dir: &'a Path) -> Self {
        Folders {
            config: dir,
            state: dir,
        }
    }
}

/// Loads and validates a whole configuration.
///
/// `origin` is the file as the user named it (shown in errors); `folders` are where relative
/// paths resolve. A TOML syntax or type error is reported alone; otherwise every semantic
/// error found is reported, sorted by position.
pub fn load(origin: &str, text: &str, folders: &Folders<'_>) -> Result<Config, ConfigErrors> {
    let raw = parse(origin, text)?;
    let mut loader = Loader {
        lines: LineIndex::new(text),
        folders: *folders,
        errors: Vec::new(),
    };
    let gateway = loader.gateway(raw.gateway);
    let admin = loader.admin(raw.admin);
    let radius = raw.radius.map(|r| loader.radius(r));
    let sessions = loader.sessions(raw.sessions);
    let subscribers = raw.subscribers.map(|s| loader.subscribers(s));
    let audit = loader.audit(raw.audit);
    let identity = loader.identity(raw.identity);
    let canary = raw.canary.map(|c| loader.canary(c));
    let policy = loader.policy(raw.partner, raw.strip);
    let api = raw.api.as_ref().map(|a| loader.api(a));
    let access_log = raw.access_log.map(|a| loader.access_log(a));
    let change = raw.change.map(|c| loader.change(c)).unwrap_or_default();
    let clients = match raw.api {
        Some(raw) => loader.api_clients(raw.into_inner().into_clients(), &policy),
        None => Vec::new(),
    };
    let policy = policy.with_clients(clients);
    loader.finish(origin)?;
    Ok(Config {
        gateway,
        admin,
        radius,
        sessions,
        subscribers,
        audit,
        identity,
        canary,
        api,
        access_log,
        change,
        policy,
        state_dir: folders.state.to_path_buf(),
    })
}

/// Loads only the policy (`[[partner]]`, `[[api.client]]` and `[strip]`) from a whole configuration file,
/// as `headwall plan` needs. The file must still be valid TOML with no unknown keys; errors in
/// other tables are not reported and `[gateway]` is not required.
pub fn load_policy(origin: &str, text: &str) -> Result<Policy, ConfigErrors> {
    let raw = parse(origin, text)?;
    let mut loader = Loader {
        lines: LineIndex::new(text),
        folders: Folders::both(Path::new("")),
        errors: Vec::new(),
    };
    let policy = loader.policy(raw.partner, raw.strip);
    let clients = match raw.api {
        Some(raw) => loader.api_clients(raw.into_inner().into_clients(), &policy),
        None => Vec::new(),
    };
    let policy = policy.with_clients(clients);
    loader.finish(origin)?;
    Ok(policy)
}

/// One load in progress: the text's line index (errors are recorded as byte offsets and
/// turned into lines and columns at the end), the folders relative paths resolve against, and
/// every error found so far. The compilers in `tables`, `partner` and `api` are its methods.
struct Loader<'a> {
    lines: LineIndex<'a>,
    folders: Folders<'a>,
    errors: Vec<(usize, String)>,
}

#[cfg(test)]
mod tests;
