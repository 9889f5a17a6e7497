//! Any byte string must parse as GGUF or fail with an error; the spec reader must accept
//! or reject what parses. Neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(gguf) = fmlab_formats::Gguf::parse(data) {
        let _ = fmlab_formats::spec_from_gguf(&gguf);
        let _ = gguf.total_elements();
    }
});
