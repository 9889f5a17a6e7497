//! `ModelSpec`: every architecture choice of a decoder-only transformer, and the exact
//! arithmetic that follows from it — parameters by component, FLOPs per token, memory of
//! weights and of training, and the KV cache.
//!
//! This crate does no I/O and holds no tensors: everything here is a pure function of a
//! `ModelSpec`, so its tests are exact and instant. Readers of model files (GGUF,
//! safetensors + `config.json`) live in `fmlab-formats` and produce a `ModelSpec`; the
//! transformer in `fmlab-nn` is configured by one.
//!
//! Sources for the formulas: Kaplan et al. 2020 (arXiv 2001.08361) eq. 2.1–2.2 for the
//! non-embedding count and `2N + 2·L·n_ctx·d_attn` forward FLOPs; Hoffmann et al. 2022
//! (Chinchilla, arXiv 2203.15556) appendix F for the detailed FLOP count; Korthikanti et al.
//! 2022 (arXiv 2205.05198) for activation memory; EleutherAI "Transformer Math 101" for
//! optimizer memory.

mod describe;
mod flops;
mod memory;
mod params;
mod presets;
pub mod units;

pub use flops::FlopsPerToken;
pub use memory::{ActivationMemory, Precision, TrainingMemory, TrainingPrecision};
pub use params::ParamCounts;
pub use presets::{from_depth, preset, PRESET_NAMES, TOKENS_PER_PARAM};

use serde::{Deserialize, Serialize};

/// Errors of this crate: a spec whose numbers cannot describe a real model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("invalid model spec: {field} = {value}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("unknown preset {0:?} (known: {known})", known = PRESET_NAMES.join(", "))]
    UnknownPreset(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The feed-forward block of each layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FfnKind {
    /// Two matrices with a GELU between them (GPT-2): `W2 · gelu(W1 · x)`.
    GeluMlp,
    /// Three matrices, SiLU-gated (Llama, Mistral, Qwen2, SmolLM2): `W2 · (silu(W1 x) ⊙ W3 x)`.
    SwiGlu,
    /// Three matrices, GELU-gated (Gemma): `W2 · (gelu(W1 x) ⊙ W3 x)`.
    GeGlu,
}

impl FfnKind {
    /// How many `d_model × ffn_dim` matrices the block holds.
    pub fn matrices(self) -> u64 {
        match self {
            FfnKind::GeluMlp => 2,
            FfnKind::SwiGlu | FfnKind::GeGlu => 3,
        }
    }

    /// Human name used in tables.
    pub fn describe(self) -> &'static str {
        match self {
            FfnKind::GeluMlp => "GELU MLP",
            FfnKind::SwiGlu => "SwiGLU",
            FfnKind::GeGlu => "GeGLU",
        }
    }
}

/// Which normalisation every norm in the model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// LayerNorm with a weight and a bias.
    LayerNorm,
    /// RMSNorm with a weight only.
    RmsNorm,
}

impl NormKind {
    /// Human name used in tables.
    pub fn describe(self) -> &'static str {
        match self {
            NormKind::LayerNorm => "LayerNorm",
            NormKind::RmsNorm => "RMSNorm",
        }
    }

    /// Parameters of one norm over `width` features.
    pub fn params(self, width: u64) -> u64 {
        match self {
            NormKind::LayerNorm => 2 * width,
            NormKind::RmsNorm => width,
        }
    }
}

/// Where the norms of a block sit relative to its residual branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormPlacement {
    /// A norm before attention and before the MLP (GPT-2, Llama): two per layer.
    Pre,
    /// A norm after each residual addition (the original transformer): two per layer.
    Post,
    /// A norm before and after each branch (Gemma 2/3): four per layer.
    PreAndPost,
}

impl NormPlacement {
    /// Norms per layer for this placement (QK-norm not included).
    pub fn norms_per_layer(self) -> u64 {
        match self {
            NormPlacement::Pre | NormPlacement::Post => 2,
            NormPlacement::PreAndPost => 4,
        }
    }
}

/// How the model knows where a token is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Positions {
    /// A learned `context_length × d_model` table added to the token embeddings (GPT-2).
    Learned,
    /// Rotary embeddings with this base (θ); no parameters.
    Rope { base: f64 },
}

/// Sliding-window (local) attention on some layers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlidingWindow {
    /// Tokens a local layer attends to (itself included).
    pub window: u64,
    /// Every `global_every`-th layer (the 6th, 12th, … for Gemma 3's 6) attends to the whole
    /// context; 0 means every layer is local (Mistral 7B v0.1).
    pub global_every: u64,
    /// RoPE base of the local layers where it differs from the global one (Gemma 3: 10 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_rope_base: Option<f64>,
}

impl SlidingWindow {
    /// Whether layer `layer` (0-based) is a local, sliding-window layer.
    pub fn is_local(&self, layer: u64) -> bool {
        self.global_every == 0 || !(layer + 1).is_multiple_of(self.global_every)
    }
}

/// Every architecture choice of a decoder-only transformer.
///
/// The spec is plain data: the readers of model files fill it in, presets name well-known
/// models, and `validate` rejects numbers that cannot describe a model (zero widths, heads
/// that don't divide, sizes whose memory would overflow 64-bit arithmetic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The family as model files name it (`llama`, `qwen2`, `gemma3`, `gpt2`, …).
    pub architecture: String,
    pub vocab_size: u64,
    pub context_length: u64,
    pub d_model: u64,
    pub n_layers: u64,
    /// Query heads.
    pub n_heads: u64,
    /// Key/value heads: equal to `n_heads` for multi-head attention, fewer for GQA, 1 for MQA.
    pub n_kv_heads: u64,
    /// Width of one head; `n_heads · head_dim` need not equal `d_model` (Gemma 3).
    pub head_dim: u64,
    /// Inner width of the feed-forward block.
    pub ffn_dim: u64,
    pub ffn_kind: FfnKind,
    pub norm_kind: NormKind,
    pub norm_placement: NormPlacement,
    /// RMS/LayerNorm of queries and keys over each head (Gemma 3, Qwen3, OLMo 2).
    pub qk_norm: bool,
    /// A norm after the last layer, before the output head.
    pub final_norm: bool,
    pub norm_eps: f64,
    pub positions: Positions,
    /// Biases on the query, key and value projections (GPT-2, Qwen2).
    pub qkv_bias: bool,
    /// A bias on the attention output projection (GPT-2).
    pub attn_out_bias: bool,
    /// Biases on the feed-forward matrices (GPT-2).
    pub mlp_bias: bool,
    /// The output head shares the token-embedding matrix.
    pub tied_embeddings: bool,
    /// Token embeddings multiplied by √d_model (Gemma).
    pub scale_embeddings: bool,
    /// Attention scores scaled by `1/√query_pre_attn_scalar` instead of `1/√head_dim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_pre_attn_scalar: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<SlidingWindow>,
}

/// Upper bounds that keep every count in this crate exact in 64-bit arithmetic; far above
/// any real model (Llama 3.1 405B: d 16 384, 126 layers, vocab 128 256, ffn 53 248).
const MAX_DIM: u64 = 1 << 20;
const MAX_VOCAB: u64 = 1 << 26;
const MAX_LAYERS: u64 = 1 << 14;
const MAX_CONTEXT: u64 = 1 << 32;
/// The largest parameter count or KV cache (bytes at f32, full context) a spec may imply.
const MAX_TOTAL: u128 = 1 << 50;

impl ModelSpec {
    /// How queries share key-value heads: multi-head, multi-query or grouped-query.
    pub fn attention_kind(&self) -> &'static str {
        if self.n_kv_heads == self.n_heads {
            "multi-head"
        } else if self.n_kv_heads == 1 {
            "multi-query"
        } else {
            "grouped-query"
        }
    }

    /// Checks that the numbers describe a model and that all arithmetic on it is exact.
    pub fn validate(&self) -> Result<()> {
        fn positive(field: &'static str, value: u64, max: u64) -> Result<()> {
            if value == 0 || value > max {
                return Err(Error::Invalid {
                    field,
                    value: value.to_string(),
                    reason: format!("must be in 1..={max}"),
                });
            }
            Ok(())
        }
        positive("vocab_size", self.vocab_size, MAX_VOCAB)?;
        positive("context_length", self.context_length, MAX_CONTEXT)?;
        positive("d_model", self.d_model, MAX_DIM)?;
        positive("n_layers", self.n_layers, MAX_LAYERS)?;
        positive("n_heads", self.n_heads, MAX_DIM)?;
        positive("n_kv_heads", self.n_kv_heads, MAX_DIM)?;
        positive("head_dim", self.head_dim, MAX_DIM)?;
        positive("ffn_dim", self.ffn_dim, MAX_DIM)?;
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(Error::Invalid {
                field: "n_kv_heads",
                value: self.n_kv_heads.to_string(),
                reason: format!("must divide n_heads = {}", self.n_heads),
            });
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return Err(Error::Invalid {
                field: "norm_eps",
                value: self.norm_eps.to_string(),
                reason: "must be a finite number ≥ 0".into(),
            });
        }
        if let Positions::Rope { base } = self.positions {
            if !(base.is_finite() && base > 1.0) {
                return Err(Error::Invalid {
                    field: "rope base",
                    value: base.to_string(),
                    reason: "must be a finite number > 1".into(),
                });
            }
        }
        if let Some(w) = self.sliding_window {
            if w.window == 0 {
                return Err(Error::Invalid {
                    field: "sliding_window.window",
                    value: "0".into(),
                    reason: "must be ≥ 1".into(),
                });
            }
        }
        // Every count below is a sum of products of the dimensions just bounded; computing
        // the two largest in 128 bits proves that the 64-bit versions cannot overflow.
        let wide = |x: u64| x as u128;
        let per_layer = wide(self.d_model)
            * (wide(self.n_heads) + 2 * wide(self.n_kv_heads))
            * wide(self.head_dim)
            * 2
            + 3 * wide(self.d_model) * wide(self.ffn_dim)
            + 64 * wide(self.d_model + self.ffn_dim + self.head_dim * self.n_heads);
        let params = wide(self.n_layers) * per_layer
            + 2 * wide(self.vocab_size) * wide(self.d_model)
            + wide(self.context_length) * wide(self.d_model);
        if params > MAX_TOTAL {
            return Err(Error::Invalid {
                field: "dimensions",
                value: format!("≈{params} parameters"),
                reason: format!("exceed the supported maximum of {MAX_TOTAL}"),
            });
        }
        let kv = 2
            * wide(self.n_layers)
            * wide(self.n_kv_heads)
            * wide(self.head_dim)
            * wide(self.context_length)
            * 4;
        if kv > MAX_TOTAL {
            return Err(Error::Invalid {
                field: "context_length",
                value: self.context_length.to_string(),
                reason: format!("a full-context KV cache of ≈{kv} bytes exceeds {MAX_TOTAL}"),
            });
        }
        Ok(())
    }

    /// `n_heads · head_dim`: the width of the attention's inner space.
    pub fn attention_dim(&self) -> u64 {
        self.n_heads * self.head_dim
    }

    /// Width of the key (or value) projection: `n_kv_heads · head_dim`.
    pub fn kv_dim(&self) -> u64 {
        self.n_kv_heads * self.head_dim
    }

    /// The context a layer's attention sees when the sequence has `seq_len` tokens.
    pub fn attended_tokens(&self, layer: u64, seq_len: u64) -> u64 {
        match self.sliding_window {
            Some(w) if w.is_local(layer) => seq_len.min(w.window),
            _ => seq_len,
        }
    }

    /// Exact parameter counts by component.
    pub fn params(&self) -> ParamCounts {
        ParamCounts::of(self)
    }

    /// FLOPs per token at sequence length `seq_len` (see [`FlopsPerToken`]).
    pub fn flops_per_token(&self, seq_len: u64) -> FlopsPerToken {
        FlopsPerToken::of(self, seq_len)
    }

    /// Bytes of the weights stored at `precision`.
    pub fn weight_bytes(&self, precision: Precision) -> u64 {
        memory::weight_bytes(self, precision)
    }

    /// KV-cache bytes per token of context at `bytes_per_element` (2 for f16, 4 for f32).
    pub fn kv_cache_bytes_per_token(&self, bytes_per_element: u64) -> u64 {
        2 * self.n_layers * self.kv_dim() * bytes_per_element
    }

    /// KV-cache bytes for `seq_len` tokens, where a sliding-window layer keeps only its window.
    pub fn kv_cache_bytes(&self, seq_len: u64, bytes_per_element: u64) -> u64 {
        (0..self.n_layers)
            .map(|layer| {
                2 * self.kv_dim() * bytes_per_element * self.attended_tokens(layer, seq_len)
            })
            .sum()
    }

    /// Memory of training with AdamW: weights, gradients, optimizer state, activations.
    pub fn training_memory(
        &self,
        precision: TrainingPrecision,
        seq_len: u64,
        micro_batch: u64,
    ) -> TrainingMemory {
        memory::training_memory(self, precision, seq_len, micro_batch)
    }
}
