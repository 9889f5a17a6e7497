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

pub use fmlab_testkit::SplitMix64 as Rng;
