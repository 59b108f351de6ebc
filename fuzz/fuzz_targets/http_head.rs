//! `http_head`: see `headwall_fuzz::http` (fuzz/src/http.rs) and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| headwall_fuzz::http::check(data));
