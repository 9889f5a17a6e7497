//! FLOPs per token: Kaplan's approximation and Chinchilla's detailed count.
//!
//! FLOP counts are `f64`: the quantities are exact integers far below 2^53 per token, and
//! callers multiply them by token counts that leave integer range anyway.

use serde::Serialize;

use crate::ModelSpec;

/// FLOPs per token for one sequence length, counting a multiply–add as 2 FLOPs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FlopsPerToken {
    /// The sequence length the attention terms were computed for.
    pub seq_len: u64,
    /// Kaplan eq. 2.2: `2·N + 2·L·n_ctx·d_attn`, N non-embedding.
    pub forward_kaplan: f64,
    /// `6·N` with N all parameters: the usual `C = 6ND` training estimate.
    pub training_6n: f64,
    /// `6·N` with N non-embedding (Kaplan's `C = 6N` per token).
    pub training_6n_non_embedding: f64,
    /// Chinchilla appendix F forward count, embeddings and logits included.
    pub forward_chinchilla: f64,
    /// Chinchilla appendix F forward count without embeddings and logits.
    pub forward_chinchilla_no_embeddings: f64,
    /// Forward + backward (= 3 × forward) of the appendix F count, all terms.
    pub training_chinchilla: f64,
    /// Forward + backward without embeddings and logits: the variant that reproduces the
    /// ratios of Chinchilla's table A4.
    pub training_chinchilla_no_embeddings: f64,
}

impl FlopsPerToken {
    pub(crate) fn of(s: &ModelSpec, seq_len: u64) -> Self {
        let params = s.params();
        let n_total = params.total as f64;
        let n_non_emb = params.non_embedding as f64;
        let f = |x: u64| x as f64;
        let (d, q, kv, heads) = (
            f(s.d_model),
            f(s.attention_dim()),
            f(s.kv_dim()),
            f(s.n_heads),
        );

        // Kaplan's attention term uses the full context for every layer; sliding-window
        // layers attend to at most their window.
        let attended: f64 = (0..s.n_layers)
            .map(|layer| f(s.attended_tokens(layer, seq_len)))
            .sum();
        let forward_kaplan = 2.0 * n_non_emb + 2.0 * attended * q;

        // Appendix F, per sequence of s tokens and divided by s. The s² terms become s·t
        // where t is the number of tokens the layer attends to; as in the paper, the causal
        // mask is not used to halve them. Grouped-query attention shrinks only the key and
        // value projections; a gated MLP has three matrices instead of two.
        let projections = 2.0 * d * (q + 2.0 * kv) + 2.0 * q * d;
        let mlp = 2.0 * f(s.ffn_kind.matrices()) * d * f(s.ffn_dim);
        let per_token_attention: f64 = attended * (2.0 * q + 3.0 * heads + 2.0 * q);
        let layers = f(s.n_layers) * (projections + mlp) + per_token_attention;
        let embeddings = 2.0 * f(s.vocab_size) * d;
        let logits = 2.0 * d * f(s.vocab_size);
        let forward_chinchilla_no_embeddings = layers;
        let forward_chinchilla = layers + embeddings + logits;
        Self {
            seq_len,
            forward_kaplan,
            training_6n: 6.0 * n_total,
            training_6n_non_embedding: 6.0 * n_non_emb,
            forward_chinchilla,
            forward_chinchilla_no_embeddings,
            training_chinchilla: 3.0 * forward_chinchilla,
            training_chinchilla_no_embeddings: 3.0 * forward_chinchilla_no_embeddings,
        }
    }
}
