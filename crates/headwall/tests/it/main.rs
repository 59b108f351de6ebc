//! The real `headwall` binary: commands, exit codes, files, and a served request.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod admin;
mod audit;
mod browser;
mod canary;
mod cli;
mod fleet;
mod load;
mod plan;
mod radius;
mod serve;
mod transparent;

use std::path::Path;

pub(crate) fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_headwall"))
}

pub(crate) fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}
