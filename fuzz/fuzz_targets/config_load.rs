//! `config_load`: see `headwall_fuzz::config` (fuzz/src/config.rs) and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| headwall_fuzz::config::check(data));
