//! Test support: where the reference models and fixtures are, and how to read llama.cpp's
//! recorded outputs. Only tests depend on this crate, so failing loudly (a panic naming
//! the missing file and how to get it) is what it should do.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;

/// The repository root: the nearest folder above the running test's package that holds
/// `fixtures/`. Found at run time (cargo sets `CARGO_MANIFEST_DIR` for the tests it runs),
/// because a build directory shared between clones may hold this crate compiled in another
/// clone, whose compile-time path may be gone.
pub fn root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|dir| dir.join("fixtures").is_dir() && dir.join("Cargo.toml").is_file())
        .map(PathBuf::from)
        .unwrap_or_else(|| start.join("../.."))
}

/// `../shared`, beside the clone (read for third-party texts that are not copied here).
pub fn shared() -> PathBuf {
    root().join("../shared")
}

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

/// A reference model fetched by `scripts/fetch-models.sh`; panics, naming the script, when
/// it is missing.
pub fn model(file: &str) -> PathBuf {
    let path = fmlab_formats::cache::models_dir().join(file);
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/fetch-models.sh` (README's test command does)",
        path.display()
    );
    path
}

/// The text of `fixtures/<path>`.
pub fn fixture(path: &str) -> String {
    let full = root().join("fixtures").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// `fixtures/reference/<name>`: what llama.cpp produced for a reference model.
pub fn reference(name: &str) -> Value {
    serde_json::from_str(&fixture(&format!("reference/{name}"))).unwrap()
}

/// A JSON array of token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array of ids, got {v}"))
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// A tiny GPT-2-shaped model (LayerNorm, GELU MLP, learned positions, biases everywhere,
/// tied head: 2 layers, width 16, 4 heads) over `vocab` tokens, for training tests.
pub fn gpt2_tiny(vocab: u64) -> fmlab_spec::ModelSpec {
    let mut s = fmlab_spec::preset("gpt2-small").unwrap();
    s.vocab_size = vocab;
    s.context_length = 16;
    s.n_layers = 2;
    s.d_model = 16;
    s.n_heads = 4;
    s.n_kv_heads = 4;
    s.head_dim = 4;
    s.ffn_dim = 32;
    s
}
