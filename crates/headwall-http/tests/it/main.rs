//! Integration tests of the codec: the smuggling corpus, and differentials against llhttp and
//! hyper.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod cases;
mod corpus;
mod hyper_server;
mod llhttp;
