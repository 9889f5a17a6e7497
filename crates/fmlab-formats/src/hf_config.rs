//! Hugging Face `config.json` → `ModelSpec` for the llama, mistral, qwen2, gemma3 and gpt2
//! model types, with the defaults of their `transformers` configuration classes where a
//! key is absent.

use fmlab_spec::{FfnKind, ModelSpec, NormKind, NormPlacement, Positions, SlidingWindow};
use serde_json::{Map, Value};

use crate::{Error, Result};

const SUPPORTED: &str = "llama, mistral, qwen2, gemma3, gemma3_text, gpt2";

/// Parses the text of a `config.json`.
pub fn spec_from_hf_config(text: &str) -> Result<ModelSpec> {
    let json: Value = serde_json::from_str(text).map_err(|source| Error::Json {
        what: "config.json".into(),
        source,
    })?;
    let Some(root) = json.as_object() else {
        return Err(invalid("config.json", "must be a JSON object"));
    };
    let model_type = root
        .get("model_type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::MissingKey("model_type".into()))?;
    let spec = match model_type {
        "llama" | "mistral" | "qwen2" => llama_like(root, model_type)?,
        // Multimodal Gemma 3 checkpoints nest the language model's config.
        "gemma3" => match root.get("text_config").and_then(Value::as_object) {
            Some(text) => gemma3(text)?,
            None => gemma3(root)?,
        },
        "gemma3_text" => gemma3(root)?,
        "gpt2" => gpt2(root)?,
        other => return Err(Error::UnsupportedArchitecture(other.into(), SUPPORTED)),
    };
    spec.validate()?;
    Ok(spec)
}

fn invalid(what: &str, reason: &str) -> Error {
    Error::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

/// Typed access to a JSON object, naming the key in every error.
struct Keys<'a>(&'a Map<String, Value>);

impl Keys<'_> {
    fn u64(&self, key: &str) -> Result<Option<u64>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| Error::WrongType {
                key: key.into(),
                expected: "a non-negative integer",
                found: v.to_string(),
            }),
        }
    }

    fn required(&self, key: &str) -> Result<u64> {
        self.u64(key)?.ok_or_else(|| Error::MissingKey(key.into()))
    }

    fn f64(&self, key: &str) -> Result<Option<f64>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| Error::WrongType {
                key: key.into(),
                expected: "a number",
                found: v.to_string(),
            }),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| Error::WrongType {
                key: key.into(),
                expected: "true or false",
                found: v.to_string(),
            }),
        }
    }

    fn rope_base(&self, default: f64) -> Result<f64> {
        if let Some(theta) = self.f64("rope_theta")? {
            return Ok(theta);
        }
        // transformers ≥ 4.5x moves θ into `rope_parameters`.
        match self.0.get("rope_parameters").and_then(Value::as_object) {
            Some(p) => Ok(Keys(p).f64("rope_theta")?.unwrap_or(default)),
            None => Ok(default),
        }
    }
}

fn head_dim(k: &Keys, d_model: u64, n_heads: u64) -> Result<u64> {
    if n_heads == 0 {
        return Err(invalid("num_attention_heads", "must be at least 1"));
    }
    Ok(k.u64("head_dim")?.unwrap_or(d_model / n_heads))
}

fn llama_like(root: &Map<String, Value>, model_type: &str) -> Result<ModelSpec> {
    let k = Keys(root);
    let d_model = k.required("hidden_size")?;
    let n_heads = k.required("num_attention_heads")?;
    let qwen = model_type == "qwen2";
    let sliding_window = match model_type {
        "mistral" => k.u64("sliding_window")?,
        "qwen2" if k.bool("use_sliding_window", false)? => k.u64("sliding_window")?,
        _ => None,
    };
    Ok(ModelSpec {
        architecture: model_type.into(),
        vocab_size: k.required("vocab_size")?,
        context_length: k.u64("max_position_embeddings")?.unwrap_or(2048),
        d_model,
        n_layers: k.required("num_hidden_layers")?,
        n_heads,
        n_kv_heads: k.u64("num_key_value_heads")?.unwrap_or(n_heads),
        head_dim: head_dim(&k, d_model, n_heads)?,
        ffn_dim: k.required("intermediate_size")?,
        ffn_kind: FfnKind::SwiGlu,
        norm_kind: NormKind::RmsNorm,
        norm_placement: NormPlacement::Pre,
        qk_norm: false,
        final_norm: true,
        norm_eps: k.f64("rms_norm_eps")?.unwrap_or(1e-6),
        positions: Positions::Rope {
            base: k.rope_base(10_000.0)?,
        },
        // Qwen2 always has q/k/v biases and no output bias; Llama's `attention_bias`
        // covers all four projections.
        qkv_bias: qwen || k.bool("attention_bias", false)?,
        attn_out_bias: !qwen && k.bool("attention_bias", false)?,
        mlp_bias: k.bool("mlp_bias", false)?,
        tied_embeddings: k.bool("tie_word_embeddings", qwen)?,
        scale_embeddings: false,
        query_pre_attn_scalar: None,
        sliding_window: sliding_window.map(|window| SlidingWindow {
            window,
            global_every: 0,
            local_rope_base: None,
        }),
    })
}

fn gemma3(root: &Map<String, Value>) -> Result<ModelSpec> {
    let k = Keys(root);
    let d_model = k.required("hidden_size")?;
    let n_heads = k.required("num_attention_heads")?;
    let head_dim = k.u64("head_dim")?.unwrap_or(256);
    let n_layers = k.required("num_hidden_layers")?;
    // Newer configs list `layer_types`; older ones give the period of global layers.
    let global_every = match root.get("layer_types").and_then(Value::as_array) {
        Some(types) => {
            let globals: Vec<u64> = types
                .iter()
                .enumerate()
                .filter(|(_, t)| t.as_str() == Some("full_attention"))
                .map(|(i, _)| i as u64 + 1)
                .collect();
            match globals.first() {
                Some(&first)
                    if globals
                        .iter()
                        .enumerate()
                        .all(|(i, &g)| g == first * (i as u64 + 1)) =>
                {
                    first
                }
                None => 0,
                _ => {
                    return Err(invalid(
                        "layer_types",
                        "global layers must recur with a fixed period",
                    ))
                }
            }
        }
        None => k.u64("sliding_window_pattern")?.unwrap_or(6),
    };
    // transformers 5 writes θ per layer type: `rope_parameters.{full,sliding}_attention`.
    let per_type = |kind: &str| -> Result<Option<f64>> {
        match root
            .get("rope_parameters")
            .and_then(|p| p.get(kind))
            .and_then(Value::as_object)
        {
            Some(p) => Keys(p).f64("rope_theta"),
            None => Ok(None),
        }
    };
    Ok(ModelSpec {
        architecture: "gemma3".into(),
        vocab_size: k.u64("vocab_size")?.unwrap_or(262_208),
        context_length: k.u64("max_position_embeddings")?.unwrap_or(131_072),
        d_model,
        n_layers,
        n_heads,
        n_kv_heads: k.u64("num_key_value_heads")?.unwrap_or(n_heads),
        head_dim,
        ffn_dim: k.required("intermediate_size")?,
        ffn_kind: FfnKind::GeGlu,
        norm_kind: NormKind::RmsNorm,
        norm_placement: NormPlacement::PreAndPost,
        qk_norm: true,
        final_norm: true,
        norm_eps: k.f64("rms_norm_eps")?.unwrap_or(1e-6),
        positions: Positions::Rope {
            base: match per_type("full_attention")? {
                Some(theta) => theta,
                None => k.rope_base(1_000_000.0)?,
            },
        },
        qkv_bias: k.bool("attention_bias", false)?,
        attn_out_bias: k.bool("attention_bias", false)?,
        mlp_bias: false,
        tied_embeddings: k.bool("tie_word_embeddings", true)?,
        scale_embeddings: true,
        query_pre_attn_scalar: Some(k.f64("query_pre_attn_scalar")?.unwrap_or(head_dim as f64)),
        sliding_window: Some(SlidingWindow {
            window: k.u64("sliding_window")?.unwrap_or(4096),
            global_every,
            local_rope_base: Some(match per_type("sliding_attention")? {
                Some(theta) => theta,
                None => k.f64("rope_local_base_freq")?.unwrap_or(10_000.0),
            }),
        }),
    })
}

fn gpt2(root: &Map<String, Value>) -> Result<ModelSpec> {
    let k = Keys(root);
    let d_model = k.u64("n_embd")?.unwrap_or(768);
    let n_heads = k.u64("n_head")?.unwrap_or(12);
    Ok(ModelSpec {
        architecture: "gpt2".into(),
        vocab_size: k.u64("vocab_size")?.unwrap_or(50_257),
        context_length: k.u64("n_positions")?.unwrap_or(1024),
        d_model,
        n_layers: k.u64("n_layer")?.unwrap_or(12),
        n_heads,
        n_kv_heads: n_heads,
        head_dim: head_dim(&k, d_model, n_heads)?,
        ffn_dim: k.u64("n_inner")?.unwrap_or(4 * d_model),
        ffn_kind: FfnKind::GeluMlp,
        norm_kind: NormKind::LayerNorm,
        norm_placement: NormPlacement::Pre,
        qk_norm: false,
        final_norm: true,
        norm_eps: k.f64("layer_norm_epsilon")?.unwrap_or(1e-5),
        positions: Positions::Learned,
        qkv_bias: true,
        attn_out_bias: true,
        mlp_bias: true,
        tied_embeddings: k.bool("tie_word_embeddings", true)?,
        scale_embeddings: false,
        query_pre_attn_scalar: None,
        sliding_window: None,
    })
}
