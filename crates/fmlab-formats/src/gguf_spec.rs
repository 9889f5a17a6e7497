//! GGUF metadata → `ModelSpec`, for the architectures whose keys llama.cpp writes as
//! `{arch}.embedding_length`, `{arch}.block_count`, `{arch}.attention.head_count`, ….
//! Choices that GGUF does not spell out (biases, tied output, QK-norm) are read off the
//! tensors that are present, as llama.cpp's loader does.

use fmlab_spec::{FfnKind, ModelSpec, NormKind, NormPlacement, Positions, SlidingWindow};

use crate::{Error, Gguf, Result, Value};

const SUPPORTED: &str = "llama, mistral, qwen2, gemma3, gpt2";

/// The architecture described by a GGUF file's metadata and tensors.
pub fn spec_from_gguf(g: &Gguf) -> Result<ModelSpec> {
    let arch = g.get_str("general.architecture")?.to_string();
    let family = match arch.as_str() {
        "llama" | "mistral" => Family::Llama,
        "qwen2" => Family::Qwen2,
        "gemma3" => Family::Gemma3,
        "gpt2" => Family::Gpt2,
        _ => return Err(Error::UnsupportedArchitecture(arch, SUPPORTED)),
    };
    let key = |suffix: &str| format!("{arch}.{suffix}");
    let required = |suffix: &str| -> Result<u64> {
        let k = key(suffix);
        per_layer_uniform(g, &k)?.ok_or(Error::MissingKey(k))
    };
    let d_model = required("embedding_length")?;
    let n_layers = required("block_count")?;
    let n_heads = required("attention.head_count")?;
    let n_kv_heads = per_layer_uniform(g, &key("attention.head_count_kv"))?.unwrap_or(n_heads);
    let ffn_dim = required("feed_forward_length")?;
    let context_length = required("context_length")?;
    if n_heads == 0 {
        return Err(Error::Invalid {
            what: key("attention.head_count"),
            reason: "must be at least 1".into(),
        });
    }
    let head_dim = g
        .get_u64(&key("attention.key_length"))?
        .unwrap_or(d_model / n_heads);
    let vocab_size = match g.get_u64(&key("vocab_size"))? {
        Some(v) => v,
        None => match g.get("tokenizer.ggml.tokens").and_then(Value::as_array) {
            Some(tokens) => tokens.len() as u64,
            None => g
                .tensor("token_embd.weight")
                .and_then(|t| t.dims.get(1).copied())
                .ok_or(Error::MissingKey("tokenizer.ggml.tokens".into()))?,
        },
    };
    let norm_eps = match g.get_f64(&key("attention.layer_norm_rms_epsilon"))? {
        Some(eps) => eps,
        None => g
            .get_f64(&key("attention.layer_norm_epsilon"))?
            .unwrap_or(1e-5),
    };
    let rope_base = g.get_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0);
    let has = |name: &str| g.tensor(name).is_some();

    let mut spec = ModelSpec {
        architecture: arch.clone(),
        vocab_size,
        context_length,
        d_model,
        n_layers,
        n_heads,
        n_kv_heads,
        head_dim,
        ffn_dim,
        ffn_kind: FfnKind::SwiGlu,
        norm_kind: NormKind::RmsNorm,
        norm_placement: NormPlacement::Pre,
        qk_norm: has("blk.0.attn_q_norm.weight"),
        final_norm: has("output_norm.weight"),
        norm_eps,
        positions: Positions::Rope { base: rope_base },
        qkv_bias: has("blk.0.attn_q.bias") || has("blk.0.attn_qkv.bias"),
        attn_out_bias: has("blk.0.attn_output.bias"),
        mlp_bias: has("blk.0.ffn_down.bias"),
        tied_embeddings: !has("output.weight"),
        scale_embeddings: false,
        query_pre_attn_scalar: None,
        sliding_window: None,
    };
    match family {
        Family::Llama | Family::Qwen2 => {
            if let Some(window) = g.get_u64(&key("attention.sliding_window"))? {
                spec.sliding_window = Some(SlidingWindow {
                    window,
                    global_every: 0,
                    local_rope_base: None,
                });
            }
        }
        Family::Gemma3 => {
            spec.ffn_kind = FfnKind::GeGlu;
            spec.norm_placement = NormPlacement::PreAndPost;
            spec.scale_embeddings = true;
            spec.query_pre_attn_scalar = Some(head_dim as f64);
            let window = g.get_u64(&key("attention.sliding_window"))?.unwrap_or(512);
            // llama.cpp makes every sixth Gemma 3 layer global unless the file says otherwise.
            let global_every = g
                .get_u64(&key("attention.sliding_window_pattern"))?
                .unwrap_or(6);
            let local_rope_base = g.get_f64(&key("rope.freq_base_swa"))?.unwrap_or(10_000.0);
            spec.sliding_window = Some(SlidingWindow {
                window,
                global_every,
                local_rope_base: Some(local_rope_base),
            });
        }
        Family::Gpt2 => {
            spec.ffn_kind = FfnKind::GeluMlp;
            spec.norm_kind = NormKind::LayerNorm;
            spec.positions = Positions::Learned;
        }
    }
    spec.validate()?;
    Ok(spec)
}

enum Family {
    Llama,
    Qwen2,
    Gemma3,
    Gpt2,
}

/// A per-model integer that some files store per layer (an array): the array must hold
/// one value for all layers, since `ModelSpec` describes uniform layers.
fn per_layer_uniform(g: &Gguf, key: &str) -> Result<Option<u64>> {
    match g.get(key) {
        None => Ok(None),
        Some(Value::Array(_, values)) => {
            let mut numbers = values.iter().map(Value::as_u64);
            let first = numbers.next().flatten();
            match first {
                Some(v) if numbers.all(|n| n == Some(v)) => Ok(Some(v)),
                _ => Err(Error::Invalid {
                    what: format!("metadata key {key:?}"),
                    reason: "per-layer values that differ between layers are not supported".into(),
                }),
            }
        }
        Some(_) => g.get_u64(key),
    }
}
