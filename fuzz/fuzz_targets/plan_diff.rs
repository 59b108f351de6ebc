//! `plan_diff`: see `headwall_fuzz::plan` (fuzz/src/plan.rs) and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| headwall_fuzz::plan::check(data));
