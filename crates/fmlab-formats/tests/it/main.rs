//! fmlab-formats against real files, crafted files and hostile files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fuzz;
mod gguf;
mod hf_config;
mod real_models;
mod safetensors;

use std::path::PathBuf;

/// A reference model fetched by `scripts/fetch-models.sh`; the test fails, naming the
/// script, when it is missing.
pub fn model(file: &str) -> PathBuf {
    let dir = fmlab_formats::cache::models_dir();
    let path = dir.join(file);
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/fetch-models.sh` (README's test command does)",
        path.display()
    );
    path
}

pub fn fixture(name: &str) -> String {
    // The package folder at run time (cargo sets it for the tests it runs): a build folder
    // shared between clones may hold this binary compiled in another clone.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let path = dir.join("tests/it/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// SplitMix64: a tiny seeded generator, the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}
