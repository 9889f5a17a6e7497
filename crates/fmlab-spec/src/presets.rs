//! Well-known architectures by name, from their published configurations.

use crate::{Error, FfnKind, ModelSpec, NormKind, NormPlacement, Positions, Result, SlidingWindow};

/// Names accepted by [`preset`].
pub const PRESET_NAMES: [&str; 12] = [
    "gpt2-small",
    "gpt2-medium",
    "gpt2-large",
    "gpt2-xl",
    "llama2-7b",
    "llama3-8b",
    "mistral-7b",
    "qwen2-0.5b",
    "smollm2-135m",
    "smollm2-360m",
    "gemma3-270m",
    "chinchilla-70b",
];

/// The spec of a well-known model.
pub fn preset(name: &str) -> Result<ModelSpec> {
    let spec = match name.to_ascii_lowercase().as_str() {
        "gpt2-small" | "gpt2" => gpt2(12, 768, 12),
        "gpt2-medium" => gpt2(24, 1024, 16),
        "gpt2-large" => gpt2(36, 1280, 20),
        "gpt2-xl" => gpt2(48, 1600, 25),
        "llama2-7b" => llama(32_000, 4096, 4096, 32, 32, 32, 11_008, 10_000.0, false),
        "llama3-8b" => llama(128_256, 8192, 4096, 32, 32, 8, 14_336, 500_000.0, false),
        "mistral-7b" => ModelSpec {
            architecture: "mistral".into(),
            sliding_window: Some(SlidingWindow {
                window: 4096,
                global_every: 0,
                local_rope_base: None,
            }),
            ..llama(32_000, 32_768, 4096, 32, 32, 8, 14_336, 10_000.0, false)
        },
        "qwen2-0.5b" => ModelSpec {
            architecture: "qwen2".into(),
            qkv_bias: true,
            norm_eps: 1e-6,
            ..llama(151_936, 32_768, 896, 24, 14, 2, 4864, 1_000_000.0, true)
        },
        "smollm2-135m" => llama(49_152, 8192, 576, 30, 9, 3, 1536, 100_000.0, true),
        "smollm2-360m" => llama(49_152, 8192, 960, 32, 15, 5, 2560, 100_000.0, true),
        "gemma3-270m" => ModelSpec {
            architecture: "gemma3".into(),
            vocab_size: 262_144,
            context_length: 32_768,
            d_model: 640,
            n_layers: 18,
            n_heads: 4,
            n_kv_heads: 1,
            head_dim: 256,
            ffn_dim: 2048,
            ffn_kind: FfnKind::GeGlu,
            norm_kind: NormKind::RmsNorm,
            norm_placement: NormPlacement::PreAndPost,
            qk_norm: true,
            final_norm: true,
            norm_eps: 1e-6,
            positions: Positions::Rope { base: 1_000_000.0 },
            qkv_bias: false,
            attn_out_bias: false,
            mlp_bias: false,
            tied_embeddings: true,
            scale_embeddings: true,
            query_pre_attn_scalar: Some(256.0),
            sliding_window: Some(SlidingWindow {
                window: 512,
                global_every: 6,
                local_rope_base: Some(10_000.0),
            }),
        },
        // Chinchilla used relative positions and a 32k vocabulary; as a spec it is the
        // closest Llama-shaped model (Hoffmann et al. table 4: 80 layers, d 8192, 64 heads).
        "chinchilla-70b" => ModelSpec {
            architecture: "chinchilla".into(),
            ffn_kind: FfnKind::GeluMlp,
            ..llama(32_000, 2048, 8192, 80, 64, 64, 32_768, 10_000.0, false)
        },
        _ => return Err(Error::UnknownPreset(name.to_string())),
    };
    Ok(spec)
}

/// Tokens per parameter of the compute-optimal budget that [`from_depth`] pairs with a
/// model: Chinchilla's ≈ 20 (Hoffmann et al. 2022), as nanochat uses.
pub const TOKENS_PER_PARAM: u64 = 20;

/// A Llama-shaped model from one dial, as nanochat sizes its runs: `depth` layers of width
/// `64 · depth`, heads of 128 (at least one; 64 below width 128), a SwiGLU FFN of 8/3 the
/// width rounded up to 64, RMSNorm, RoPE (base 10 000), untied embeddings, no biases. Its
/// compute-optimal token budget is [`TOKENS_PER_PARAM`] × its parameters.
pub fn from_depth(depth: u64, vocab_size: u64, context_length: u64) -> Result<ModelSpec> {
    if !(1..=64).contains(&depth) {
        return Err(Error::Invalid {
            field: "depth",
            value: depth.to_string(),
            reason: "must be in 1..=64".into(),
        });
    }
    let d_model = 64 * depth;
    let head_dim = if d_model < 128 { 64 } else { 128 };
    let n_heads = (d_model / head_dim).max(1);
    let ffn_dim = (8 * d_model / 3).div_ceil(64) * 64;
    let spec = ModelSpec {
        tied_embeddings: false,
        ..llama(
            vocab_size,
            context_length,
            d_model,
            depth,
            n_heads,
            n_heads,
            ffn_dim,
            10_000.0,
            false,
        )
    };
    spec.validate()?;
    Ok(spec)
}

fn gpt2(n_layers: u64, d_model: u64, n_heads: u64) -> ModelSpec {
    ModelSpec {
        architecture: "gpt2".into(),
        vocab_size: 50_257,
        context_length: 1024,
        d_model,
        n_layers,
        n_heads,
        n_kv_heads: n_heads,
        head_dim: d_model / n_heads,
        ffn_dim: 4 * d_model,
        ffn_kind: FfnKind::GeluMlp,
        norm_kind: NormKind::LayerNorm,
        norm_placement: NormPlacement::Pre,
        qk_norm: false,
        final_norm: true,
        norm_eps: 1e-5,
        positions: Positions::Learned,
        qkv_bias: true,
        attn_out_bias: true,
        mlp_bias: true,
        tied_embeddings: true,
        scale_embeddings: false,
        query_pre_attn_scalar: None,
        sliding_window: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn llama(
    vocab_size: u64,
    context_length: u64,
    d_model: u64,
    n_layers: u64,
    n_heads: u64,
    n_kv_heads: u64,
    ffn_dim: u64,
    rope_base: f64,
    tied_embeddings: bool,
) -> ModelSpec {
    ModelSpec {
        architecture: "llama".into(),
        vocab_size,
        context_length,
        d_model,
        n_layers,
        n_heads,
        n_kv_heads,
        head_dim: d_model / n_heads,
        ffn_dim,
        ffn_kind: FfnKind::SwiGlu,
        norm_kind: NormKind::RmsNorm,
        norm_placement: NormPlacement::Pre,
        qk_norm: false,
        final_norm: true,
        norm_eps: 1e-5,
        positions: Positions::Rope { base: rope_base },
        qkv_bias: false,
        attn_out_bias: false,
        mlp_bias: false,
        tied_embeddings,
        scale_embeddings: false,
        query_pre_attn_scalar: None,
        sliding_window: None,
    }
}
