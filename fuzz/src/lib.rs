//! The checks behind each fuzz target (`fuzz_targets/*.rs` are one line each), so the seed
//! generator (`examples/gen-seeds.rs`) can build inputs the way the targets read them.
//!
//! Every check panics on a broken property: libFuzzer records the input under
//! `fuzz/artifacts/<target>/`. What each target checks is listed in `docs/fuzzing.md`.

pub mod config;
pub mod host;
pub mod http;
pub mod leak;
pub mod plan;
pub mod proxy;
pub mod radius;
