//! Exact parameter counts by component.

use serde::Serialize;

use crate::{ModelSpec, NormPlacement, Positions};

/// Parameters of a model, by component; every field counts all layers together.
///
/// `non_embedding` follows Kaplan et al.: everything except the token and position
/// embeddings and an untied output head, i.e. the parameters that do per-token work
/// proportional to their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParamCounts {
    pub token_embedding: u64,
    pub position_embedding: u64,
    /// Query, key, value and output projections with their biases.
    pub attention: u64,
    /// QK-norm weights (and biases for LayerNorm).
    pub qk_norm: u64,
    /// The feed-forward matrices with their biases.
    pub mlp: u64,
    /// The norms inside the layers (two or four per layer).
    pub layer_norms: u64,
    pub final_norm: u64,
    /// The output projection when it is not tied to the token embedding; 0 when tied.
    pub lm_head: u64,
    /// One layer's parameters (every layer has the same shape).
    pub per_layer: u64,
    pub non_embedding: u64,
    pub total: u64,
}

impl ParamCounts {
    pub(crate) fn of(s: &ModelSpec) -> Self {
        let d = s.d_model;
        let q = s.attention_dim();
        let kv = s.kv_dim();
        let qkv_bias = if s.qkv_bias { q + 2 * kv } else { 0 };
        let out_bias = if s.attn_out_bias { d } else { 0 };
        let attention_layer = d * (q + 2 * kv) + qkv_bias + q * d + out_bias;
        let qk_norm_layer = if s.qk_norm {
            2 * s.norm_kind.params(s.head_dim)
        } else {
            0
        };
        let m = s.ffn_kind.matrices();
        // Biases: one per inner feature on each input matrix, one per output feature.
        let mlp_bias = if s.mlp_bias {
            (m - 1) * s.ffn_dim + d
        } else {
            0
        };
        let mlp_layer = m * d * s.ffn_dim + mlp_bias;
        let norms_layer = s.norm_placement.norms_per_layer() * s.norm_kind.params(d);
        let per_layer = attention_layer + qk_norm_layer + mlp_layer + norms_layer;

        let token_embedding = s.vocab_size * d;
        let position_embedding = match s.positions {
            Positions::Learned => s.context_length * d,
            Positions::Rope { .. } => 0,
        };
        let final_norm = if s.final_norm {
            s.norm_kind.params(d)
        } else {
            0
        };
        let lm_head = if s.tied_embeddings {
            0
        } else {
            s.vocab_size * d
        };
        let layers = s.n_layers;
        let non_embedding = layers * per_layer + final_norm;
        Self {
            token_embedding,
            position_embedding,
            attention: layers * attention_layer,
            qk_norm: layers * qk_norm_layer,
            mlp: layers * mlp_layer,
            layer_norms: layers * norms_layer,
            final_norm,
            lm_head,
            per_layer,
            non_embedding,
            total: non_embedding + token_embedding + position_embedding + lm_head,
        }
    }

    /// The parameters that sit in 2-D matrices (the ones quantized formats compress).
    pub(crate) fn matrix_params(s: &ModelSpec) -> u64 {
        let d = s.d_model;
        let per_layer = d * (s.attention_dim() + 2 * s.kv_dim())
            + s.attention_dim() * d
            + s.ffn_kind.matrices() * d * s.ffn_dim;
        let c = Self::of(s);
        s.n_layers * per_layer + c.token_embedding + c.position_embedding + c.lm_head
    }
}

impl NormPlacement {
    /// Human name used in tables.
    pub fn describe(self) -> &'static str {
        match self {
            NormPlacement::Pre => "pre-norm",
            NormPlacement::Post => "post-norm",
            NormPlacement::PreAndPost => "pre+post (sandwich)",
        }
    }
}
