//! Element-wise and row-wise kernels of the transformer: norms, activations, RoPE, softmax
//! and causal attention over a KV cache. All work on f32 rows.

use rayon::prelude::*;

use crate::quant::{f16_to_f32, f32_to_f16};

/// RMSNorm of each `width`-wide row of `x` in place: `x / rms(x) · w`.
pub fn rms_norm(x: &mut [f32], w: &[f32], width: usize, eps: f32) {
    for row in x.chunks_exact_mut(width) {
        // The sum in f64, as ggml does.
        let sum: f64 = row.iter().map(|&v| (v * v) as f64).sum();
        let mean_square = (sum / width as f64) as f32;
        let scale = 1.0 / (mean_square + eps).sqrt();
        for (v, g) in row.iter_mut().zip(w) {
            *v = *v * scale * g;
        }
    }
}

/// LayerNorm of each row in place: `(x − mean) / std · w + b`.
pub fn layer_norm(x: &mut [f32], w: &[f32], b: &[f32], width: usize, eps: f32) {
    for row in x.chunks_exact_mut(width) {
        let mean = row.iter().sum::<f32>() / width as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let scale = 1.0 / (var + eps).sqrt();
        for ((v, g), bb) in row.iter_mut().zip(w).zip(b) {
            *v = (*v - mean) * scale * g + bb;
        }
    }
}

/// SiLU(x) = x·σ(x).
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU with the tanh approximation (GPT-2, Gemma's `gelu_pytorch_tanh`).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// How rotary embeddings pair the features of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (2i, 2i+1): GGUF llama models (their Q/K weights are permuted for it).
    Interleaved,
    /// Halves (i, i + d/2): GPT-NeoX, Qwen2, Gemma.
    Halves,
}

/// Rotates each `head_dim`-wide head of each row; row `t` is at position `positions[t]`.
pub fn rope(
    x: &mut [f32],
    positions: &[usize],
    n_heads: usize,
    head_dim: usize,
    base: f32,
    style: RopeStyle,
) {
    let half = head_dim / 2;
    // θ_i = pos · base^(−2i/d), computed as ggml does: one power, then repeated products in
    // f32, so that angles (and logits) agree with llama.cpp's to the last bit.
    let theta_scale = base.powf(-2.0 / head_dim as f32);
    let mut angles = vec![0f32; half];
    for (row, &pos) in x.chunks_exact_mut(n_heads * head_dim).zip(positions) {
        let mut theta = pos as f32;
        for a in angles.iter_mut() {
            *a = theta;
            theta *= theta_scale;
        }
        for (i, &angle) in angles.iter().enumerate() {
            let (sin, cos) = angle.sin_cos();
            for head in row.chunks_exact_mut(head_dim) {
                let (a, b) = match style {
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                    RopeStyle::Halves => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos - x1 * sin;
                head[b] = x0 * sin + x1 * cos;
            }
        }
    }
}

/// Softmax of a row in place (max-subtracted).
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// The shape of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Multiplier of q·k (1/√head_dim usually).
    pub scale: f32,
    /// Tokens a query may look back over, itself included; `None` for the whole context.
    pub window: Option<usize>,
}

/// Causal attention of `q` (`n × n_heads·head_dim`, the queries at positions
/// `first_pos .. first_pos + n`) over cached keys and values (`kv_len × n_kv_heads·head_dim`,
/// positions `0 .. kv_len`), written to `out` (same shape as `q`). Query heads share
/// key-value heads in groups (GQA).
///
/// The arithmetic follows llama.cpp's default CPU path, whose cache holds f16: the caller
/// stores keys and values rounded to f16 (kept in f32 so the products vectorise), queries are
/// rounded to f16 for the q·k products, and the softmax weights are rounded to f16 before
/// they weight the values; sums are f32.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    first_pos: usize,
    kv_len: usize,
    s: AttentionShape,
) {
    let q_width = s.n_heads * s.head_dim;
    let kv_width = s.n_kv_heads * s.head_dim;
    let group = s.n_heads / s.n_kv_heads.max(1);
    let hd = s.head_dim;
    out.par_chunks_mut(q_width)
        .zip(q.par_chunks(q_width))
        .enumerate()
        .for_each(|(t, (out_row, q_row))| {
            let pos = first_pos + t;
            let end = (pos + 1).min(kv_len);
            let start = match s.window {
                Some(w) => end.saturating_sub(w),
                None => 0,
            };
            let mut scores = vec![0f32; end - start];
            let mut qh = vec![0f32; hd];
            let mut acc = vec![0f32; hd];
            for h in 0..s.n_heads {
                let kvh = h / group;
                for (dst, &src) in qh.iter_mut().zip(&q_row[h * hd..(h + 1) * hd]) {
                    *dst = f16_round(src);
                }
                for (j, score) in scores.iter_mut().enumerate() {
                    let at = (start + j) * kv_width + kvh * hd;
                    *score = crate::matrix::dot_f32(&qh, &k[at..at + hd]) * s.scale;
                }
                softmax(&mut scores);
                acc.fill(0.0);
                for (j, &p) in scores.iter().enumerate() {
                    let p = f16_round(p);
                    let at = (start + j) * kv_width + kvh * hd;
                    for (o, &vv) in acc.iter_mut().zip(&v[at..at + hd]) {
                        *o += p * vv;
                    }
                }
                out_row[h * hd..(h + 1) * hd].copy_from_slice(&acc);
            }
        });
}

/// `x` rounded to the nearest f16.
#[inline]
pub fn f16_round(x: f32) -> f32 {
    f16_to_f32(f32_to_f16(x))
}

/// GELU as ggml computes it on the CPU: through a table indexed by the f16 input and holding
/// f16 outputs (saturating outside ±10).
#[inline]
pub fn gelu_tanh_f16(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        f16_round(gelu_tanh(f16_round(x)))
    }
}
