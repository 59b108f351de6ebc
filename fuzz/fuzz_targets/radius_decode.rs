//! `radius_decode`: see `headwall_fuzz::radius` (fuzz/src/radius.rs) and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| headwall_fuzz::radius::check(data));
