//! `host`: see `headwall_fuzz::host` (fuzz/src/host.rs) and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| headwall_fuzz::host::check(data));
