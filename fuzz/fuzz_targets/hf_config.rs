//! Any text must map to a validated ModelSpec or an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(spec) = fmlab_formats::spec_from_hf_config(text) {
            let _ = spec.params();
            let _ = spec.flops_per_token(spec.context_length);
        }
    }
});
