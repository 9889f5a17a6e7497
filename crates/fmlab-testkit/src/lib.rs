//! Test support: where the reference models and fixtures are, how to read llama.cpp's
//! recorded outputs, and a seeded generator for synthetic inputs ([`SplitMix64`]). Only tests depend on this crate, so failing loudly (a panic naming
//! the missing file and how to get it) is what it should do.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::ops::Deref;
use std::path::{Path, PathBuf};

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

/// A test's scratch folder under the system's temporary folder, removed when the value is
/// dropped — also when the test fails, since a panic unwinds through the drop. Tests write
/// gigabytes here (f32 copies of the reference models), and a folder left by each failed or
/// finished run filled the disk of the machine that runs CI.
pub struct Scratch(PathBuf);

impl Scratch {
    /// `<tmp>/fmlab-<label>-<pid>`, emptied of anything a previous run left, and created.
    pub fn new(label: &str) -> Self {
        let s = Self::absent(label);
        std::fs::create_dir_all(&s.0).unwrap_or_else(|e| panic!("{}: {e}", s.0.display()));
        s
    }

    /// The same path, not created (for code that must create it, or refuse a missing one).
    pub fn absent(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("fmlab-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SplitMix64 (Steele et al. 2014): a tiny seeded generator, the same on every machine, for
/// synthetic test inputs (fuzzed bytes, noisy runs).
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (modulo bias ignored; `n = 0` counts as 1).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.next_f64().max(1e-300), self.next_f64());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}
