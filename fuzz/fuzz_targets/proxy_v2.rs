//! `proxy_v2`: see `headwall_fuzz::proxy` (fuzz/src/proxy.rs) and docs/fuzzing.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| headwall_fuzz::proxy::check(data));
