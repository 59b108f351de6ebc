//! `leak_detect`: see `headwall_fuzz::leak` (fuzz/src/leak.rs) and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| headwall_fuzz::leak::check(data));
