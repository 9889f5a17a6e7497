//! Perplexity against llama.cpp's recorded values (fixtures/reference) on the GPL-3 text,
//! which tests read from ../shared/data/ppl.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use fmlab_formats::GgufFile;
use fmlab_tokenizer::Tokenizer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_path(file: &str) -> PathBuf {
    let dir = fmlab_formats::cache::models_dir();
    let path = dir.join(file);
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/fetch-models.sh`",
        path.display()
    );
    path
}

fn check(model_file: &str, reference_file: &str) {
    let text_path = root().join("../shared/data/ppl/GPL-3.txt");
    let text = std::fs::read_to_string(&text_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the tests need ../shared beside the clone)",
            text_path.display()
        )
    });
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/reference").join(reference_file)).unwrap(),
    )
    .unwrap();
    let expected = reference["perplexity"]["perplexity"].as_f64().unwrap();
    let expected_tokens = reference["perplexity"]["tokens_scored"].as_u64().unwrap() as usize;
    let gguf = GgufFile::open(model_path(model_file)).unwrap();
    let tokenizer = Tokenizer::from_gguf(&gguf.gguf).unwrap();
    let model = fmlab_nn::from_gguf(&gguf).unwrap();
    let tokens = tokenizer.encode(&text, false, false);
    let got = fmlab_eval::perplexity(&model, &tokens, 256, |_, _| {}).unwrap();
    eprintln!(
        "{model_file}: perplexity {} (llama.cpp {expected})",
        got.perplexity
    );
    assert_eq!(got.tokens_scored, expected_tokens);
    assert!(
        (got.perplexity / expected - 1.0).abs() < 0.01,
        "{} vs {expected}",
        got.perplexity
    );
}

#[test]
fn smollm2_perplexity_matches_llama_cpp() {
    check(
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "smollm2-135m-instruct-q4_1.json",
    );
}

#[test]
fn gemma3_perplexity_matches_llama_cpp() {
    check("gemma-3-270m-q4_k_m.gguf", "gemma-3-270m-q4_k_m.json");
}

#[test]
fn short_texts_and_bad_windows_are_errors() {
    let gguf = GgufFile::open(model_path("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let model = fmlab_nn::from_gguf(&gguf).unwrap();
    assert!(matches!(
        fmlab_eval::perplexity(&model, &[1, 2, 3], 256, |_, _| {}),
        Err(fmlab_eval::Error::TooShort { .. })
    ));
    assert!(matches!(
        fmlab_eval::perplexity(&model, &[1, 2, 3], 1, |_, _| {}),
        Err(fmlab_eval::Error::BadWindow(1))
    ));
}
