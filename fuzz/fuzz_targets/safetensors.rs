//! Any byte string must parse as safetensors or fail with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(st) = fmlab_formats::SafeTensors::parse(data) {
        let _ = st.total_elements();
    }
});
