//! Perplexity against llama.cpp's recorded values (fixtures/reference) on the GPL-3 text,
//! which tests read from ../shared/data/ppl.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fmlab_formats::GgufFile;
use fmlab_tokenizer::Tokenizer;

/// Perplexity within `tolerance` (relative) of llama.cpp's.
fn check(model_file: &str, reference_file: &str, tolerance: f64) {
    let text_path = fmlab_testkit::shared().join("data/ppl/GPL-3.txt");
    let text = std::fs::read_to_string(&text_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the tests need ../shared beside the clone)",
            text_path.display()
        )
    });
    let reference = fmlab_testkit::reference(reference_file);
    let expected = reference["perplexity"]["perplexity"].as_f64().unwrap();
    let expected_tokens = reference["perplexity"]["tokens_scored"].as_u64().unwrap() as usize;
    let gguf = GgufFile::open(fmlab_testkit::model(model_file)).unwrap();
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
        (got.perplexity / expected - 1.0).abs() < tolerance,
        "{} vs {expected}",
        got.perplexity
    );
}

#[test]
fn smollm2_perplexity_matches_llama_cpp() {
    // Our batched evaluation follows llama.cpp's arithmetic: on AVX2 the two agree to 14
    // digits (28.089317432450482 vs …496); the bound leaves room for other SIMD paths.
    check(
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "smollm2-135m-instruct-q4_1.json",
        1e-4,
    );
}

#[test]
fn gemma3_perplexity_matches_llama_cpp() {
    // Batched products follow the kernels ggml picks (llamafile's for Q5_0/Q8_0, the
    // repacked Q4_K gemm, the tiled Q6_K kernel) and queries are scaled before the f16
    // products as llama.cpp's Gemma graph does: on AVX2 the two agree to 13 digits
    // (82.44253652142578 vs …3017); the bound leaves room for other SIMD paths.
    check("gemma-3-270m-q4_k_m.gguf", "gemma-3-270m-q4_k_m.json", 1e-4);
}

#[test]
fn short_texts_and_bad_windows_are_errors() {
    let gguf = GgufFile::open(fmlab_testkit::model("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
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
