//! Exact counts against published figures (REFERENCE.md, Chinchilla tables).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fmlab_spec::{preset, ModelSpec, Precision, TrainingPrecision};

fn check_params(name: &str, expected: u64) {
    let spec = preset(name).unwrap();
    spec.validate().unwrap();
    assert_eq!(spec.params().total, expected, "{name}");
}

#[test]
fn exact_parameter_counts() {
    check_params("gpt2-small", 124_439_808);
    check_params("gpt2-medium", 354_823_168);
    check_params("gpt2-large", 774_030_080);
    check_params("gpt2-xl", 1_557_611_200);
    check_params("llama2-7b", 6_738_415_616);
    check_params("smollm2-135m", 134_515_008);
    check_params("llama3-8b", 8_030_261_248);
    check_params("mistral-7b", 7_241_732_096);
    check_params("qwen2-0.5b", 494_032_768);
}

#[test]
fn components_add_up() {
    for name in fmlab_spec::PRESET_NAMES {
        let c = preset(name).unwrap().params();
        let sum = c.token_embedding
            + c.position_embedding
            + c.attention
            + c.qk_norm
            + c.mlp
            + c.layer_norms
            + c.final_norm
            + c.lm_head;
        assert_eq!(sum, c.total, "{name}");
    }
}

#[test]
fn gpt2_small_components() {
    let c = preset("gpt2-small").unwrap().params();
    assert_eq!(c.token_embedding, 50_257 * 768);
    assert_eq!(c.position_embedding, 1024 * 768);
    assert_eq!(c.per_layer, 7_087_872);
    assert_eq!(c.lm_head, 0);
    // Kaplan's non-embedding count is ≈ 12·L·d² = 84.9M for GPT-2 small.
    assert_eq!(c.non_embedding, 85_056_000);
}

/// Chinchilla table A4: their FLOP count / 6ND for six models (seq 2048, vocab 32 000),
/// reproduced with embeddings and logits excluded and N as published in table A9.
#[test]
fn chinchilla_table_a4_ratios() {
    // (published N, layers, d_model, ffw, heads, kv size, ratio)
    let rows = [
        (74e6, 10, 640, 2560, 10, 64, 1.03),
        (306e6, 20, 1024, 4096, 16, 64, 1.10),
        (552e6, 24, 1280, 5120, 10, 128, 1.08),
        (1143e6, 26, 1792, 7168, 14, 128, 1.04),
        (1593e6, 28, 2048, 8192, 16, 128, 1.03),
        (6796e6, 40, 3584, 14336, 28, 128, 0.99),
    ];
    for (n, layers, d, ffw, heads, kv, ratio) in rows {
        let spec = ModelSpec {
            architecture: "chinchilla".into(),
            vocab_size: 32_000,
            context_length: 2048,
            d_model: d,
            n_layers: layers,
            n_heads: heads,
            n_kv_heads: heads,
            head_dim: kv,
            ffn_dim: ffw,
            ffn_kind: fmlab_spec::FfnKind::GeluMlp,
            ..preset("gpt2-small").unwrap()
        };
        spec.validate().unwrap();
        let f = spec.flops_per_token(2048);
        let ours = f.training_chinchilla_no_embeddings / (6.0 * n);
        assert!((ours - ratio).abs() <= 0.01, "{n}: {ours} vs {ratio}");
        // With embeddings and logits the ratios are visibly higher for small models.
        assert!(f.training_chinchilla / (6.0 * n) > ours);
    }
}

#[test]
fn kaplan_forward_flops() {
    let spec = preset("gpt2-small").unwrap();
    let f = spec.flops_per_token(1024);
    let n = spec.params().non_embedding as f64;
    assert_eq!(f.forward_kaplan, 2.0 * n + 2.0 * 12.0 * 1024.0 * 768.0);
    assert_eq!(f.training_6n, 6.0 * 124_439_808.0);
}

#[test]
fn kv_cache() {
    // Llama-2-7B at f16: 2 · 32 · 4096 · 2 = 512 KiB per token.
    let llama = preset("llama2-7b").unwrap();
    assert_eq!(llama.kv_cache_bytes_per_token(2), 524_288);
    assert_eq!(llama.kv_cache_bytes(4096, 2), 524_288 * 4096);
    // SmolLM2-135M: 2 · 30 · 3 · 64 · 2 = 23 040 bytes per token.
    assert_eq!(
        preset("smollm2-135m").unwrap().kv_cache_bytes_per_token(2),
        23_040
    );
    // Gemma 3: 15 of 18 layers keep only 512 tokens.
    let gemma = preset("gemma3-270m").unwrap();
    let per_layer_token = 2 * 256 * 2;
    assert_eq!(
        gemma.kv_cache_bytes(32_768, 2),
        per_layer_token * (3 * 32_768 + 15 * 512)
    );
}

#[test]
fn memory() {
    let spec = preset("llama2-7b").unwrap();
    let n = spec.params().total;
    assert_eq!(spec.weight_bytes(Precision::F32), 4 * n);
    assert_eq!(spec.weight_bytes(Precision::Bf16), 2 * n);
    // q8_0 is 8.5 bits per matrix weight; the norms stay f32.
    let q8 = spec.weight_bytes(Precision::Q8_0) as f64 / n as f64;
    assert!((q8 - 34.0 / 32.0).abs() < 1e-3, "{q8}");
    let q4 = spec.weight_bytes(Precision::Q4_0) as f64 / n as f64;
    assert!((q4 - 18.0 / 32.0).abs() < 1e-3, "{q4}");
    for p in [TrainingPrecision::F32, TrainingPrecision::Mixed] {
        let m = spec.training_memory(p, 4096, 1);
        assert_eq!(
            m.weights + m.master_weights + m.gradients + m.optimizer,
            16 * n
        );
        assert!(m.activations.full_recompute < m.activations.selective_recompute);
        assert!(m.activations.selective_recompute < m.activations.no_recompute);
    }
    // Korthikanti, 16-bit, per layer: s·b·h·(34 + 5·a·s/h) bytes.
    let m = spec.training_memory(TrainingPrecision::Mixed, 2048, 1);
    let per_layer = 2048.0 * 4096.0 * (34.0 + 5.0 * 32.0 * 2048.0 / 4096.0);
    let logits = 4.0 * 2048.0 * 32_000.0;
    assert_eq!(
        m.activations.no_recompute,
        (32.0 * per_layer + logits) as u64
    );
}

#[test]
fn validation_names_the_problem() {
    let good = preset("smollm2-135m").unwrap();
    let cases: Vec<(ModelSpec, &str)> = vec![
        (
            ModelSpec {
                d_model: 0,
                ..good.clone()
            },
            "d_model",
        ),
        (
            ModelSpec {
                n_kv_heads: 4,
                ..good.clone()
            },
            "n_kv_heads",
        ),
        (
            ModelSpec {
                vocab_size: u64::MAX,
                ..good.clone()
            },
            "vocab_size",
        ),
        (
            ModelSpec {
                n_layers: 1 << 14,
                d_model: 1 << 20,
                ffn_dim: 1 << 20,
                ..good.clone()
            },
            "dimensions",
        ),
        (
            ModelSpec {
                context_length: 1 << 32,
                n_layers: 1 << 14,
                ..good.clone()
            },
            "context_length",
        ),
        (
            ModelSpec {
                norm_eps: f64::NAN,
                ..good.clone()
            },
            "norm_eps",
        ),
    ];
    for (spec, field) in cases {
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains(field), "{err} should name {field}");
    }
    assert!(preset("gpt5")
        .unwrap_err()
        .to_string()
        .contains("gpt2-small"));
}

#[test]
fn spec_round_trips_through_json() {
    for name in fmlab_spec::PRESET_NAMES {
        let spec = preset(name).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        let back: ModelSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(spec, back);
    }
}

/// The depth dial: nanochat's d20 is 1280 wide with ten heads of 128.
#[test]
fn depth_dial() {
    let d20 = fmlab_spec::from_depth(20, 65_536, 2048).unwrap();
    assert_eq!((d20.d_model, d20.n_heads, d20.head_dim), (1280, 10, 128));
    assert_eq!(d20.ffn_dim, 3456); // 8/3 · 1280 = 3413.3, rounded up to 64
    assert!(!d20.tied_embeddings);
    let d4 = fmlab_spec::from_depth(4, 8192, 1024).unwrap();
    assert_eq!(
        (d4.d_model, d4.n_layers, d4.n_heads, d4.head_dim),
        (256, 4, 2, 128)
    );
    // Params: two embeddings, four layers of attention (4·256²), SwiGLU (3·256·704) and
    // two RMSNorm weights, plus the final norm.
    let layer = 4 * 256 * 256 + 3 * 256 * 704 + 2 * 256;
    assert_eq!(d4.params().total, 2 * 8192 * 256 + 4 * layer + 256);
    let d1 = fmlab_spec::from_depth(1, 256, 128).unwrap();
    assert_eq!((d1.d_model, d1.n_heads, d1.head_dim), (64, 1, 64));
    assert!(fmlab_spec::from_depth(0, 256, 128).is_err());
    assert!(fmlab_spec::from_depth(65, 256, 128).is_err());
    assert_eq!(fmlab_spec::TOKENS_PER_PARAM, 20);
}
