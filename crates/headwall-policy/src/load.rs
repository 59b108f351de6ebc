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
mod tables;
mod value;

use diagnostic::{LineIndex, parse};
use raw::Str;

/// Loads and validates a whole configuration.
///
/// `origin` is the file as the user named it (shown in errors); `base_dir` is the folder that
/// relative paths resolve against (joined, not canonicalized; no I/O happens here). A TOML
/// syntax or type error is reported alone; otherwise every semantic error found is reported,
/// sorted by position.
pub fn load(origin: &str, text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let raw = parse(origin, text)?;
    let mut cx = Cx {
        lines: LineIndex::new(text),
        base_dir,
        errors: Vec::new(),
    };
    let gateway = cx.gateway(raw.gateway);
    let admin = cx.admin(raw.admin);
    let radius = raw.radius.map(|r| cx.radius(r));
    let sessions = cx.sessions(raw.sessions);
    let subscribers = raw.subscribers.map(|s| cx.subscribers(s));
    let audit = cx.audit(raw.audit);
    let identity = cx.identity(raw.identity);
    let canary = raw.canary.map(|c| cx.canary(c));
    let policy = cx.policy(raw.partner, raw.strip);
    let api = raw.api.as_ref().map(|a| cx.api(a));
    let clients = match raw.api {
        Some(raw) => cx.api_clients(raw.into_inner().into_clients(), &policy),
        None => Vec::new(),
    };
    let policy = policy.with_clients(clients);
    cx.finish(origin)?;
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
        policy,
    })
}

/// Loads only the policy (`[[partner]]`, `[[api.client]]` and `[strip]`) from a whole configuration file,
/// as `headwall plan` needs. The file must still be valid TOML with no unknown keys; errors in
/// other tables are not reported and `[gateway]` is not required.
pub fn load_policy(origin: &str, text: &str) -> Result<Policy, ConfigErrors> {
    let raw = parse(origin, text)?;
    let mut cx = Cx {
        lines: LineIndex::new(text),
        base_dir: Path::new(""),
        errors: Vec::new(),
    };
    let policy = cx.policy(raw.partner, raw.strip);
    let clients = match raw.api {
        Some(raw) => cx.api_clients(raw.into_inner().into_clients(), &policy),
        None => Vec::new(),
    };
    let policy = policy.with_clients(clients);
    cx.finish(origin)?;
    Ok(policy)
}

struct Cx<'a> {
    lines: LineIndex<'a>,
    base_dir: &'a Path,
    errors: Vec<(usize, String)>,
}

#[cfg(test)]
mod tests;
