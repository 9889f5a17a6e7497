//! Element-wise and row-wise kernels of the transformer: norms, activations, RoPE, and
//! causal attention (its softmax included) over a KV cache, with ggml's exp and its
//! vectorised `exp_in_place`/`sigmoid_into` (which training also uses). All work on f32.

use rayon::prelude::*;

use crate::quant::{f16_to_f32, f32_to_f16};

mod norm;
#[cfg(target_arch = "x86_64")]
mod one_token;
mod scores;
mod wide;

/// RMSNorm of each `width`-wide row of `x` in place: `x / rms(x) · w`.
pub fn rms_norm(x: &mut [f32], w: &[f32], width: usize, eps: f32) {
    if width == 0 {
        return;
    }
    for rows in x.chunks_mut(norm::ROWS * width) {
        let sums = norm::sums_of_squares(rows, width);
        for (row, sum) in rows.chunks_exact_mut(width).zip(sums) {
            let mean_square = (sum / width as f64) as f32;
            let scale = 1.0 / (mean_square + eps).sqrt();
            for (v, g) in row.iter_mut().zip(w) {
                *v = *v * scale * g;
            }
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

/// SiLU(x) = x·σ(x), with ggml's exponential (see [`exp_ggml`]).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp_ggml(0.0 - x))
}

/// eˣ as ggml's vectorised CPU code computes it (its `ggml_v_expf`): reduce by ln 2 to
/// `x = n·ln 2 + b`, then `2ⁿ·(1 + p(b))` with a degree-5 polynomial. It is within a couple of
/// ulps of `expf`, but not equal to it, and SiLU and softmax run through it in llama.cpp;
/// computing the same function keeps our activations bit-identical to theirs (the model's
/// residual stream amplifies last-bit differences into different greedy tokens).
#[inline(always)]
pub fn exp_ggml(x: f32) -> f32 {
    let c = |bits: u32| f32::from_bits(bits);
    let shift = c(0x4b40_0000); // 1.5·2²³: rounds to an integer in the low mantissa bits
    let z = x.mul_add(c(0x3fb8_aa3b), shift); // x·log2(e)
    let n = z - shift;
    let b = (-n).mul_add(c(0x35bf_be8e), (-n).mul_add(c(0x3f31_7200), x)); // x − n·ln 2
    let e = z.to_bits() << 23;
    let k = f32::from_bits(e.wrapping_add(1f32.to_bits())); // 2ⁿ
    let u = b * b;
    let j = c(0x3c07_2010)
        .mul_add(b, c(0x3d2b_9f17))
        .mul_add(u, c(0x3e2a_af33).mul_add(b, c(0x3eff_fedb)))
        .mul_add(u, c(0x3f7f_fff6) * b);
    if n.abs() <= 126.0 {
        return j.mul_add(k, k);
    }
    // Out of the normal range: scale in two steps, or saturate.
    if n.abs() > 192.0 {
        let s1 = f32::from_bits(if n <= 0.0 { 0x0100_0000 } else { 0x7f00_0000 });
        return s1 * s1;
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
    let s2 = f32::from_bits(e.wrapping_sub(g));
    s2.mul_add(j, s2) * s1
}

/// [`exp_ggml`]'s arithmetic without its out-of-range branches, on inputs clamped to
/// [−87, 88] (where 2ⁿ stays a normal float): branch-free, so loops over slices vectorise.
/// Below −87 it returns e⁻⁸⁷ ≈ 1.6·10⁻³⁸ instead of a smaller number or 0, which no sum of
/// probabilities can see. For training, where exactness against llama.cpp is not at stake.
#[inline(always)]
fn exp_clamped(x: f32) -> f32 {
    let c = |bits: u32| f32::from_bits(bits);
    let x = x.clamp(-87.0, 88.0);
    let shift = c(0x4b40_0000);
    let z = x.mul_add(c(0x3fb8_aa3b), shift);
    let n = z - shift;
    let b = (-n).mul_add(c(0x35bf_be8e), (-n).mul_add(c(0x3f31_7200), x));
    let k = f32::from_bits((z.to_bits() << 23).wrapping_add(1f32.to_bits()));
    let u = b * b;
    let j = c(0x3c07_2010)
        .mul_add(b, c(0x3d2b_9f17))
        .mul_add(u, c(0x3e2a_af33).mul_add(b, c(0x3eff_fedb)))
        .mul_add(u, c(0x3f7f_fff6) * b);
    j.mul_add(k, k)
}

/// Compiles `body` three times — for AVX-512, for AVX2 with FMA, and for the baseline —
/// and calls the widest the CPU runs. `body` must be `#[inline(always)]` so that each copy
/// is compiled (and its loops vectorised) with that copy's features.
macro_rules! simd_variants {
    ($name:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn wide($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn narrow($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if avx512_available() {
                    // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (checked).
                    return unsafe { wide($($arg),*) };
                }
                if fma_available() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked).
                    return unsafe { narrow($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

/// Whether the CPU has AVX-512F (with AVX2 and FMA).
#[cfg(target_arch = "x86_64")]
fn avx512_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx512f") && fma_available())
}

#[inline(always)]
fn exp_body(xs: &mut [f32]) {
    xs.iter_mut().for_each(|x| *x = exp_clamped(*x));
}

#[inline(always)]
fn sigmoid_body(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = 1.0 / (1.0 + exp_clamped(-v));
    }
}

simd_variants!(exp_in_place_impl, exp_body, (xs: &mut [f32]));
simd_variants!(sigmoid_into_impl, sigmoid_body, (x: &[f32], out: &mut [f32]));

/// eˣ of every element in place (ggml's polynomial, clamped to [−87, 88]; within a few ulps
/// of `expf`), vectorised with AVX-512 or AVX2 where the CPU has them: the training path's
/// softmax, cross-entropy and SiLU.
pub fn exp_in_place(xs: &mut [f32]) {
    exp_in_place_impl(xs)
}

/// σ(x) = 1 / (1 + e⁻ˣ) of each element of `x` into `out` (as [`exp_in_place`]).
pub fn sigmoid_into(x: &[f32], out: &mut [f32]) {
    sigmoid_into_impl(x, out)
}

#[cfg(test)]
mod exp_tests {
    use super::*;

    #[test]
    fn vectorised_exp_and_sigmoid_are_within_a_few_ulps() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.043).collect();
        let mut e = xs.clone();
        exp_in_place(&mut e);
        let mut sig = vec![0f32; xs.len()];
        sigmoid_into(&xs, &mut sig);
        for ((&x, &got), &s) in xs.iter().zip(&e).zip(&sig) {
            let want = (x as f64).exp();
            if x >= -87.0 {
                assert!(
                    ((got as f64 - want) / want).abs() < 4e-7,
                    "exp({x}) = {got}, not {want}"
                );
            }
            let want_s = 1.0 / (1.0 + (-x as f64).exp());
            assert!(
                (s as f64 - want_s).abs() < 2e-7,
                "sigmoid({x}) = {s}, not {want_s}"
            );
        }
    }
}

/// GELU with the tanh approximation (GPT-2, Gemma's `gelu_pytorch_tanh`), in ggml's
/// arrangement of the arithmetic: `0.5·x·(1 + tanh(√(2/π)·x·(1 + 0.044715·x²)))`.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (A * x).mul_add(x, 1.0)).tanh())
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
    let angles = RopeAngles::new(positions, head_dim, base);
    rope_with_angles(x, &angles, 0, n_heads, style);
}

/// The sines and cosines of rotary embeddings at some positions: what every layer's
/// queries and keys at those positions are rotated by. A forward pass computes them once
/// per position (and base) instead of once per layer and map: the `sin_cos` calls were a
/// third of RoPE's time, and RoPE 2% of a batched decoding step.
#[derive(Debug, Clone)]
pub struct RopeAngles {
    head_dim: usize,
    /// Per position, `head_dim / 2` values.
    sin: Vec<f32>,
    cos: Vec<f32>,
}

impl RopeAngles {
    /// The angles of `positions` for heads `head_dim` wide, base `base`.
    pub fn new(positions: &[usize], head_dim: usize, base: f32) -> Self {
        let half = head_dim / 2;
        // θ_i = pos · base^(−2i/d), computed as ggml does: one power, then repeated products
        // in f32, so that angles (and logits) agree with llama.cpp's to the last bit.
        let theta_scale = base.powf(-2.0 / head_dim as f32);
        let mut sin = vec![0f32; positions.len() * half];
        let mut cos = vec![0f32; positions.len() * half];
        for ((s, c), &pos) in sin
            .chunks_exact_mut(half.max(1))
            .zip(cos.chunks_exact_mut(half.max(1)))
            .zip(positions)
        {
            let mut theta = pos as f32;
            for (s, c) in s.iter_mut().zip(c.iter_mut()) {
                (*s, *c) = theta.sin_cos();
                theta *= theta_scale;
            }
        }
        RopeAngles { head_dim, sin, cos }
    }

    /// Positions covered.
    pub fn len(&self) -> usize {
        self.sin.len() / (self.head_dim / 2).max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.sin.is_empty()
    }
}

/// [`rope`] by angles computed beforehand: row `t` of `x` (`n_heads` heads) is rotated by
/// the angles of position `first + t` of `angles` (rows past its positions are left).
pub fn rope_with_angles(
    x: &mut [f32],
    angles: &RopeAngles,
    first: usize,
    n_heads: usize,
    style: RopeStyle,
) {
    #[cfg(target_arch = "x86_64")]
    if fma_available() {
        // SAFETY: the CPU has FMA (checked).
        unsafe { rope_fma(x, angles, first, n_heads, style) };
        return;
    }
    rope_rows(x, angles, first, n_heads, style)
}

/// [`rope_rows`] with FMA enabled: each `mul_add` one instruction instead of a call to the
/// software `fmaf` (the same value, correctly rounded either way).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rope_fma(
    x: &mut [f32],
    angles: &RopeAngles,
    first: usize,
    n_heads: usize,
    style: RopeStyle,
) {
    rope_rows(x, angles, first, n_heads, style)
}

#[inline(always)]
fn rope_rows(x: &mut [f32], angles: &RopeAngles, first: usize, n_heads: usize, style: RopeStyle) {
    let head_dim = angles.head_dim;
    let half = head_dim / 2;
    if half == 0 || n_heads == 0 {
        return;
    }
    let from = (first * half).min(angles.sin.len());
    let rows = x
        .chunks_exact_mut(n_heads * head_dim)
        .zip(angles.sin[from..].chunks_exact(half))
        .zip(angles.cos[from..].chunks_exact(half));
    for ((row, sin), cos) in rows {
        for head in row.chunks_exact_mut(head_dim) {
            match style {
                RopeStyle::Halves => {
                    let (lo, hi) = head.split_at_mut(half);
                    for (((x0, x1), &s), &c) in lo.iter_mut().zip(hi).zip(sin).zip(cos) {
                        (*x0, *x1) = rotate(*x0, *x1, s, c);
                    }
                }
                RopeStyle::Interleaved => {
                    for ((pair, &s), &c) in head.chunks_exact_mut(2).zip(sin).zip(cos) {
                        (pair[0], pair[1]) = rotate(pair[0], pair[1], s, c);
                    }
                }
            }
        }
    }
}

/// One pair rotated as GCC compiles ggml's `x0·cos − x1·sin` and `x0·sin + x1·cos` with
/// FMA contraction: the first product fused, the second rounded.
#[inline(always)]
fn rotate(x0: f32, x1: f32, sin: f32, cos: f32) -> (f32, f32) {
    (x0.mul_add(cos, -(x1 * sin)), x0.mul_add(sin, x1 * cos))
}

/// Horizontal sum of eight lanes as `_mm256` code does it.
#[inline(always)]
fn hsum8(l: &[f32; 8]) -> f32 {
    let t = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    (t[0] + t[2]) + (t[1] + t[3])
}

/// The shape of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Multiplier of q·k (1/√head_dim usually).
    pub scale: f32,
    /// Scale the queries before the products rather than the products after, as llama.cpp's
    /// Gemma graphs do. The two differ where a scaled query falls into f16's subnormal
    /// range when queries are rounded to f16 for the products.
    pub scale_queries: bool,
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
    // llama.cpp evaluates one token at a time with ggml's own f16 dot product, and batches
    // with llamafile's tinyBLAS; the two sum in different orders, and we follow whichever
    // llama.cpp would use for this call.
    let single = q.len() == q_width;
    // Many query rows read the same keys and values: laid out once for the sums, features
    // in runs of 16 for the AVX-512 kernels (which also take the keys in pairs), of 8 for
    // the AVX2 ones.
    let many = !single && simd_attention() && q.len() >= 8 * q_width;
    let wide = many && wide::available() && s.head_dim.is_multiple_of(16);
    let vw = if wide { 16 } else { 8 };
    let vt = (many && s.head_dim.is_multiple_of(8))
        .then(|| values_by_chunk(v, kv_len, s.n_kv_heads, s.head_dim, vw));
    let kt = wide.then(|| wide::keys_by_pair(k, kv_len, s.n_kv_heads, s.head_dim));
    let one_row = |t: usize, out_row: &mut [f32], q_row: &[f32]| {
        let row = AttentionRow {
            q_row,
            k,
            v,
            pos: first_pos + t,
            kv_len,
            group,
            kv_width,
            s,
            single,
            simd: simd_attention(),
            vt: vt.as_deref(),
            vw,
            kt: kt.as_deref(),
            k16: None,
            v16: None,
        };
        #[cfg(target_arch = "x86_64")]
        {
            if fma_available() {
                // SAFETY: the CPU supports AVX2 and FMA (checked above).
                unsafe { attention_row_fma(&row, out_row) };
                return;
            }
        }
        attention_row(&row, out_row);
    };
    // One decoding row runs where it is: a batched decoding step calls this from the
    // forward pass's pool, once per sequence, and rayon would hand each call to its own
    // (sleeping) workers and wait.
    if single {
        one_row(0, out, q);
        return;
    }
    out.par_chunks_mut(q_width)
        .zip(q.par_chunks(q_width))
        .enumerate()
        .for_each(|(t, (out_row, q_row))| one_row(t, out_row, q_row));
}

/// [`causal_attention`] over a cache that holds the keys and values as f16 bits, as
/// llama.cpp's does (`kv_len × n_kv_heads·head_dim` each): the same results, with half the
/// bytes to read. A decoding step reads every position of every layer's cache once per
/// sequence, and at 8 sequences those reads (24 MB a step for SmolLM2 at 64 positions)
/// were most of attention's time. One token's row on the AVX-512 kernels reads the bits
/// directly; other calls (prompts, other CPUs) widen the cache to f32 first.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_f16(
    q: &[f32],
    k: &[u16],
    v: &[u16],
    out: &mut [f32],
    first_pos: usize,
    kv_len: usize,
    s: AttentionShape,
) {
    let q_width = s.n_heads * s.head_dim;
    let kv_width = s.n_kv_heads * s.head_dim;
    let cached = kv_len * kv_width;
    #[cfg(target_arch = "x86_64")]
    if q.len() == q_width
        && out.len() == q_width
        && k.len() >= cached
        && v.len() >= cached
        && s.n_kv_heads > 0
        && s.n_heads.is_multiple_of(s.n_kv_heads)
        && s.head_dim.is_multiple_of(32)
        && first_pos < kv_len
        && fma_available()
        && wide::available()
    {
        let row = AttentionRow {
            q_row: q,
            k: &[],
            v: &[],
            pos: first_pos,
            kv_len,
            group: s.n_heads / s.n_kv_heads,
            kv_width,
            s,
            single: true,
            simd: true,
            vt: None,
            vw: 16,
            kt: None,
            k16: Some(&k[..cached]),
            v16: Some(&v[..cached]),
        };
        // SAFETY: AVX2 and FMA (checked). With `single`, `simd`, AVX-512 and a head size
        // that is a multiple of 32, every read of keys and values goes through `k16` and
        // `v16` (the one-token scores and value sums of `wide`), never `k` or `v`.
        unsafe { attention_row_fma(&row, out) };
        return;
    }
    let (mut kf, mut vf) = (vec![0f32; cached], vec![0f32; cached]);
    f16_to_f32_all(&k[..cached.min(k.len())], &mut kf);
    f16_to_f32_all(&v[..cached.min(v.len())], &mut vf);
    causal_attention(q, &kf, &vf, out, first_pos, kv_len, s);
}

/// The values of positions `0..kv_len` rearranged so that the value sums of a query row
/// read memory in order: for each key-value head and each `w` features, the `w` features of
/// every position one after another (`[head][chunk][position][w]`). Laid out once per call,
/// read by every query row and head of the call; the sums are unchanged.
fn values_by_chunk(v: &[f32], kv_len: usize, n_kv_heads: usize, hd: usize, w: usize) -> Vec<f32> {
    let kv_width = n_kv_heads * hd;
    let chunks = hd / w;
    let mut out = vec![0f32; kv_len * kv_width];
    for (kp, row) in v.chunks_exact(kv_width).take(kv_len).enumerate() {
        for (hc, run) in row.chunks_exact(w).enumerate() {
            let (h, c) = (hc / chunks, hc % chunks);
            let at = ((h * chunks + c) * kv_len + kp) * w;
            out[at..at + w].copy_from_slice(run);
        }
    }
    out
}

/// What one query row of attention needs.
struct AttentionRow<'a> {
    q_row: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    pos: usize,
    kv_len: usize,
    group: usize,
    kv_width: usize,
    s: AttentionShape,
    /// A single query (one-token decoding): ggml's `vec_dot_f16` summation order.
    single: bool,
    /// Whether the AVX2 forms of the dot products and value sums may run (same results).
    simd: bool,
    /// The values again, laid out for the value sums of many query rows (see
    /// [`values_by_chunk`]), where the call made them.
    vt: Option<&'a [f32]>,
    /// The run length of `vt`'s features: 8, or 16 for the AVX-512 sums.
    vw: usize,
    /// The keys in pairs for the AVX-512 scores ([`wide::keys_by_pair`]), where the call
    /// made them.
    kt: Option<&'a [f32]>,
    /// The keys and values as f16 bits, for one token on the AVX-512 kernels
    /// ([`causal_attention_f16`]); `k` and `v` are then empty and unread.
    k16: Option<&'a [u16]>,
    v16: Option<&'a [u16]>,
}

impl AttentionRow<'_> {
    /// The positions this row sees, `[first, start, end]`: `start..end` (its window, or all
    /// before it and itself), and `first`, `start` rounded down to a multiple of 8, from
    /// which positions are indexed so that lanes and groups line up with llama.cpp's full
    /// rows.
    fn span(&self) -> [usize; 3] {
        let end = (self.pos + 1).min(self.kv_len);
        let start = match self.s.window {
            Some(w) => end.saturating_sub(w),
            None => 0,
        };
        [start / 8 * 8, start, end]
    }

    /// The factors of the queries and of the products `q · k`: one of them is the shape's
    /// scale (see [`AttentionShape::scale_queries`]), the other 1.
    fn scales(&self) -> (f32, f32) {
        if self.s.scale_queries {
            (self.s.scale, 1.0)
        } else {
            (1.0, self.s.scale)
        }
    }
}

fn simd_attention() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        fma_available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `q · k` in the summation order of ggml's one-token (`single`: [`dot32`]) or batched
/// ([`dot8`]) f16 product; with `simd`, by the AVX2 form of the same operations.
#[inline(always)]
fn score_dot(simd: bool, q: &[f32], k: &[f32], single: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        let whole = if single { 32 } else { 8 };
        if simd && q.len() == k.len() && q.len().is_multiple_of(whole) {
            // SAFETY: `simd` is set only where the CPU has AVX2 and FMA; lengths checked.
            return unsafe {
                if single {
                    avx2_attention::dot32(q, k)
                } else {
                    avx2_attention::dot8(q, k)
                }
            };
        }
    }
    let _ = simd;
    if single {
        dot32(q, k)
    } else {
        dot8(q, k)
    }
}

/// Whether the CPU has AVX2 and FMA, so that `mul_add` compiles to one instruction.
#[cfg(target_arch = "x86_64")]
pub(crate) fn fma_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attention_row_fma(row: &AttentionRow, out_row: &mut [f32]) {
    attention_row(row, out_row)
}

/// One query row against the cache. Written once and compiled twice: with FMA enabled (the
/// `mul_add`s become single instructions and the loops vectorise) and without.
#[inline(always)]
fn attention_row(r: &AttentionRow, out_row: &mut [f32]) {
    if let (Some(kt), Some(vt), 16) = (r.kt, r.vt, r.vw) {
        if attention_row_grouped(r, kt, vt, out_row) {
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if one_token::attention(r, out_row) {
        return;
    }
    let s = r.s;
    let hd = s.head_dim;
    let [first, start, end] = r.span();
    let (q_scale, score_scale) = r.scales();
    let mut scores = vec![0f32; end - first];
    let mut qh = vec![0f32; hd];
    // Accumulators of the weighted values, one per slot (see below) and feature.
    let mut lanes = vec![0f32; 32 * hd];
    for h in 0..s.n_heads {
        let kvh = h / r.group;
        for (dst, &src) in qh.iter_mut().zip(&r.q_row[h * hd..(h + 1) * hd]) {
            *dst = src * q_scale;
        }
        f16_round_all(&mut qh);
        let span = [first, start, end];
        let pairs = r.kv_len.div_ceil(2) * 2 * hd;
        let kt = r.kt.map(|kt| &kt[kvh * pairs..(kvh + 1) * pairs]);
        let vector = !r.single
            && r.simd
            && scores::scores_softmax(
                &qh,
                (r.k, kt),
                r.kv_width,
                kvh * hd,
                span,
                score_scale,
                &mut scores,
            );
        if !vector {
            scalar_scores_softmax(r, &qh, kvh, span, score_scale, &mut scores, r.simd);
        }
        // Each output feature is a dot over positions: `slots` partial sums per feature, the
        // position deciding the slot (8 lanes batched, 4×8 lanes one token at a time).
        let slots = if r.single { 32 } else { 8 };
        weigh_values(r, &scores, kvh, first, start..end, slots, &mut lanes);
        #[cfg(target_arch = "x86_64")]
        if r.single && r.simd && wide::available() && hd.is_multiple_of(16) {
            // SAFETY: AVX-512F (checked); hd is a multiple of 16, `lanes` holds 32 · hd
            // sums and the head's part of `out_row` hd.
            unsafe { wide::x86::reduce_slots32(&lanes, hd, &mut out_row[h * hd..(h + 1) * hd]) };
            continue;
        }
        for (d, o) in out_row[h * hd..(h + 1) * hd].iter_mut().enumerate() {
            let l = |i: usize| lanes[i * hd + d];
            *o = if r.single {
                let mut x = [0f32; 8];
                for (i, xi) in x.iter_mut().enumerate() {
                    *xi = (l(i) + l(16 + i)) + (l(8 + i) + l(24 + i));
                }
                reduce_vec_dot_f16(&x)
            } else {
                (l(0) + l(4) + (l(2) + l(6))) + (l(1) + l(5) + (l(3) + l(7)))
            };
        }
    }
}

/// [`attention_row`] for a prompt's row on the AVX-512 kernels: the query heads that share
/// a key-value head go together, so that each load of a key or a value serves two heads
/// and the heads after the first find the keys and values in the L1 cache. Every sum is
/// the one the head-by-head loop forms. Returns `false`, having written nothing, where the
/// shapes do not suit the kernels.
#[inline(always)]
fn attention_row_grouped(r: &AttentionRow, kt: &[f32], vt: &[f32], out_row: &mut [f32]) -> bool {
    let s = r.s;
    let (hd, group) = (s.head_dim, r.group);
    if !wide::available() || !hd.is_multiple_of(16) || group == 0 {
        return false;
    }
    let [first, start, end] = r.span();
    let len = end - first;
    let (q_scale, score_scale) = r.scales();
    let mut qh = vec![0f32; group * hd];
    let mut scores = vec![0f32; group * len];
    let mut lanes = vec![0f32; group * 8 * hd];
    let pairs = r.kv_len.div_ceil(2) * 2 * hd;
    let values = hd * r.kv_len;
    if kt.len() < s.n_kv_heads * pairs || vt.len() < s.n_kv_heads * values {
        return false;
    }
    for kvh in 0..s.n_kv_heads {
        let heads = kvh * group..(kvh + 1) * group;
        for (dst, &src) in qh
            .iter_mut()
            .zip(&r.q_row[heads.start * hd..heads.end * hd])
        {
            *dst = src * q_scale;
        }
        f16_round_all(&mut qh);
        let keys = (r.k, Some(&kt[kvh * pairs..(kvh + 1) * pairs]));
        let span = [first, start, end];
        if !scores::scores_softmax(
            &qh,
            keys,
            r.kv_width,
            kvh * hd,
            span,
            score_scale,
            &mut scores,
        ) {
            return false;
        }
        let ps: Vec<&[f32]> = scores.chunks_exact(len).collect();
        let mut ls: Vec<&mut [f32]> = lanes.chunks_exact_mut(8 * hd).collect();
        let v = &vt[kvh * values..(kvh + 1) * values];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F (checked); `hd` is a multiple of 16 and `first` of 8 with
        // first ≤ start; `v` is this head's runs of 16 over kv_len ≥ end positions; each
        // head's weights span first..end and its lanes 8·hd.
        unsafe {
            wide::x86::weigh_heads(v, r.kv_len, hd, &ps, first, [start, end], &mut ls)
        };
        for (i, h) in heads.enumerate() {
            let lanes = &lanes[i * 8 * hd..(i + 1) * 8 * hd];
            for (d, o) in out_row[h * hd..(h + 1) * hd].iter_mut().enumerate() {
                let l = |slot: usize| lanes[slot * hd + d];
                *o = (l(0) + l(4) + (l(2) + l(6))) + (l(1) + l(5) + (l(3) + l(7)));
            }
        }
    }
    true
}

/// The scores and softmax of one query head (`qh`) over positions `first..end` of
/// key-value head `kvh`, positions before `start` weighing 0, written f16-rounded into
/// `scores`: ggml's order of operations, one position at a time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn scalar_scores_softmax(
    r: &AttentionRow,
    qh: &[f32],
    kvh: usize,
    [first, start, _]: [usize; 3],
    score_scale: f32,
    scores: &mut [f32],
    vector_softmax: bool,
) {
    let hd = qh.len();
    let mut max = f32::NEG_INFINITY;
    // A key of the f16 cache as f32, widened for its product.
    let mut widened: Vec<f32> = Vec::new();
    for (j, score) in scores.iter_mut().enumerate() {
        let kp = first + j;
        if kp < start {
            *score = f32::NEG_INFINITY;
            continue;
        }
        let at = kp * r.kv_width + kvh * hd;
        let k = match r.k16 {
            Some(k) => {
                widened.resize(hd, 0.0);
                f16_to_f32_all(&k[at..at + hd], &mut widened);
                &widened
            }
            None => &r.k[at..at + hd],
        };
        *score = score_dot(r.simd, qh, k, r.single) * score_scale;
        max = max.max(*score);
    }
    // Softmax as ggml's: exponentials summed per group of eight (in the order of its
    // horizontal add), groups accumulated in f64. Vectorised (`vector_softmax`) where the
    // CPU allows: the same operations, lane by lane.
    if vector_softmax && scores::softmax_in_place(scores, first, start) {
        return;
    }
    let mut sum = 0f64;
    for group in scores.chunks_mut(8) {
        sum += hsum8(&exp_group(group, max)) as f64;
    }
    let inv = (1.0 / sum) as f32;
    for (j, score) in scores.iter_mut().enumerate() {
        if first + j >= start {
            *score = f16_round(*score * inv);
        }
    }
}

/// Softmax numerators of one group of up to eight scores, in place (`e^(s − max)` by ggml's
/// exp, 0 for a masked −∞), and the group padded with zeros for [`hsum8`].
#[inline(always)]
fn exp_group(group: &mut [f32], max: f32) -> [f32; 8] {
    let mut g = [0f32; 8];
    for (slot, v) in g.iter_mut().zip(group.iter_mut()) {
        *v = if *v == f32::NEG_INFINITY {
            0.0
        } else {
            exp_ggml(*v - max)
        };
        *slot = *v;
    }
    g
}

/// `lanes[slot · hd + d] = Σ p[kp] · v[kp][d]` over the positions `span`, `slot = kp mod
/// slots`, each slot's sum taken with FMA in position order from zero (`p` is indexed from
/// `first`). Head sizes of whole vectors go eight features at a time with eight slots' sums
/// held in registers over all positions, which is one load and one FMA per position and
/// vector instead of also loading and storing the sum; the per-lane operations, and so the
/// results, are those of the plain loop kept for other head sizes.
#[inline(always)]
fn weigh_values(
    r: &AttentionRow,
    p: &[f32],
    kvh: usize,
    first: usize,
    span: std::ops::Range<usize>,
    slots: usize,
    lanes: &mut [f32],
) {
    let hd = r.s.head_dim;
    let (start, end) = (span.start, span.end);
    if !r.simd || !hd.is_multiple_of(8) || !slots.is_multiple_of(8) || !first.is_multiple_of(8) {
        weigh_values_plain(r, p, kvh, first, span, slots, lanes);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if wide::available() && hd.is_multiple_of(32) && r.vt.is_none() {
        let (rs, off, cs) = (r.kv_width, kvh * hd, 32);
        // SAFETY: the CPU has AVX-512F (checked); the shapes were checked above and every
        // position of `span` lies in `v` and `p`.
        unsafe {
            let at = [rs, off, cs];
            match r.v16 {
                Some(v) => wide::x86::weigh32(v, at, hd, p, first, [start, end], slots, lanes),
                None => wide::x86::weigh32(r.v, at, hd, p, first, [start, end], slots, lanes),
            }
        };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(vt), 16, 8) = (wide::available(), r.vt, r.vw, slots) {
        let values = hd * r.kv_len;
        let v = &vt[kvh * values..(kvh + 1) * values];
        // SAFETY: the CPU has AVX-512F (checked); `hd` is a multiple of 16 (a layout in
        // runs of 16 exists only then), `first` of 8 (checked above); `v` is this head's
        // runs over kv_len ≥ end positions; `lanes` holds 8·hd.
        unsafe { wide::x86::weigh_heads(v, r.kv_len, hd, &[p], first, [start, end], &mut [lanes]) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `simd` is set only where the CPU has AVX2 and FMA; the shapes were
        // checked above and every position of `span` lies in `v` and `p`.
        // Row stride, start of the head and stride between chunks of eight features, in
        // the cache's layout or the rearranged one.
        let (v, rs, off, cs) = match r.vt {
            Some(vt) => (vt, 8, kvh * hd * r.kv_len, 8 * r.kv_len),
            None => (r.v, r.kv_width, kvh * hd, 8),
        };
        unsafe { avx2_attention::weigh(v, [rs, off, cs], hd, p, first, start, end, slots, lanes) };
    }
}

/// `step(i, kp)` for every position `kp` of `start..end`, taken in runs of eight: the runs
/// start at `g0`, `g0 + stride`, … and `i` is `kp`'s place in its run (the value sums'
/// slot). Whole runs go without bounds checks. Every value-sum kernel walks positions so.
#[inline(always)]
fn walk_runs(
    mut g0: usize,
    stride: usize,
    [start, end]: [usize; 2],
    mut step: impl FnMut(usize, usize),
) {
    while g0 < end {
        if g0 >= start && g0 + 8 <= end {
            for i in 0..8 {
                step(i, g0 + i);
            }
        } else if g0 + 8 > start {
            for i in 0..8 {
                let kp = g0 + i;
                if kp >= start && kp < end {
                    step(i, kp);
                }
            }
        }
        g0 += stride;
    }
}

/// The AVX2 forms of attention's dot products and value sums: the same operations, lane by
/// lane, as the portable loops ([`dot8`], [`dot32`], [`weigh_values_plain`]), written with
/// intrinsics so that the sums stay in registers.
#[cfg(target_arch = "x86_64")]
mod avx2_attention {
    use std::arch::x86_64::*;

    /// [`super::dot8`] for lengths divisible by 8.
    ///
    /// # Safety
    /// AVX2 and FMA; `a.len() == b.len()`, a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot8(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for i in (0..a.len()).step_by(8) {
            // SAFETY: i + 8 ≤ len for both (caller).
            unsafe {
                let x = _mm256_loadu_ps(a.as_ptr().add(i));
                let y = _mm256_loadu_ps(b.as_ptr().add(i));
                acc = _mm256_fmadd_ps(x, y, acc);
            }
        }
        // hsum8: (l0 + l4) + (l2 + l6), plus (l1 + l5) + (l3 + l7).
        let t = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let u = _mm_add_ps(t, _mm_movehl_ps(t, t));
        _mm_cvtss_f32(_mm_add_ss(u, _mm_shuffle_ps::<0b01>(u, u)))
    }

    /// [`super::dot32`] for lengths divisible by 32.
    ///
    /// # Safety
    /// AVX2 and FMA; `a.len() == b.len()`, a multiple of 32.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot32(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [_mm256_setzero_ps(); 4];
        for i in (0..a.len()).step_by(32) {
            for (j, v) in acc.iter_mut().enumerate() {
                // SAFETY: i + 32 ≤ len for both (caller).
                unsafe {
                    let x = _mm256_loadu_ps(a.as_ptr().add(i + 8 * j));
                    let y = _mm256_loadu_ps(b.as_ptr().add(i + 8 * j));
                    *v = _mm256_fmadd_ps(x, y, *v);
                }
            }
        }
        // (v0 + v2) + (v1 + v3), then reduce_vec_dot_f16: halves added, (t0 + t1) + (t2 + t3).
        let x = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
        let t = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
        let h = _mm_hadd_ps(t, t);
        _mm_cvtss_f32(_mm_hadd_ps(h, h))
    }

    /// [`super::weigh_values`]: for each eight features and each eight slots, the slots'
    /// sums held in eight registers over all positions of `start..end`.
    ///
    /// # Safety
    /// AVX2 and FMA; `hd` and `slots` multiples of 8, `first` too and `first ≤ start`;
    /// `p` holds `end − first` weights; features `c..c + 8` of position `kp` are at
    /// `kp · rs + off + c / 8 · cs` in `v` for every `kp < end` and `c < hd`; `lanes` holds
    /// `slots · hd`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weigh(
        v: &[f32],
        [rs, off, cs]: [usize; 3],
        hd: usize,
        p: &[f32],
        first: usize,
        start: usize,
        end: usize,
        slots: usize,
        lanes: &mut [f32],
    ) {
        let (vp, pp) = (v.as_ptr(), p.as_ptr());
        for c in (0..hd).step_by(8) {
            for m in 0..slots / 8 {
                let mut acc = [_mm256_setzero_ps(); 8];
                let g0 = first / slots * slots + 8 * m;
                super::walk_runs(g0, slots, [start, end], |i, kp| {
                    // SAFETY: positions in start..end lie in `v` and `p` (caller).
                    unsafe {
                        let w = _mm256_set1_ps(*pp.add(kp - first));
                        let x = _mm256_loadu_ps(vp.add(kp * rs + off + c / 8 * cs));
                        acc[i] = _mm256_fmadd_ps(w, x, acc[i]);
                    }
                });
                for (i, a) in acc.iter().enumerate() {
                    let slot = 8 * m + i;
                    let out = &mut lanes[slot * hd + c..slot * hd + c + 8];
                    // SAFETY: `out` is eight f32.
                    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), *a) };
                }
            }
        }
    }
}

/// [`weigh_values`] one position at a time, each slot's sums in memory.
#[inline(always)]
fn weigh_values_plain(
    r: &AttentionRow,
    p: &[f32],
    kvh: usize,
    first: usize,
    span: std::ops::Range<usize>,
    slots: usize,
    lanes: &mut [f32],
) {
    let hd = r.s.head_dim;
    lanes.fill(0.0);
    for kp in span {
        let pk = p[kp - first];
        let at = kp * r.kv_width + kvh * hd;
        let lane = &mut lanes[(kp % slots) * hd..(kp % slots + 1) * hd];
        for (l, &vv) in lane.iter_mut().zip(&r.v[at..at + hd]) {
            *l = pk.mul_add(vv, *l);
        }
    }
}

/// `Σ a·b` in the lane order of ggml's AVX2 f16 products: lane `i mod 8` accumulates with
/// FMA, then [`hsum8`]; elements past the last multiple of 8 are added after, in order.
#[inline(always)]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    let tail = a.len() / 8 * 8;
    dot_tail(hsum8(&acc), &a[tail..], &b[tail.min(b.len())..])
}

/// `sum` plus the products of the elements a vectorised loop left over, one at a time, as
/// ggml's leftover loops add them (head sizes that are not a multiple of the vector width).
#[inline(always)]
fn dot_tail(sum: f32, a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(sum, |s, (x, y)| x.mul_add(*y, s))
}

/// `Σ a·b` in the order of ggml's `vec_dot_f16` on AVX2 (the leftovers of lengths not
/// divisible by 32 added after): four
/// vectors of eight lanes, element `i` accumulating into vector `(i mod 32) / 8`, lane
/// `i mod 8`; then [`reduce_vec_dot_f16`].
#[inline(always)]
fn dot32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [[0f32; 8]; 4];
    for (x, y) in a.chunks_exact(32).zip(b.chunks_exact(32)) {
        for (j, vector) in acc.iter_mut().enumerate() {
            for i in 0..8 {
                vector[i] = x[8 * j + i].mul_add(y[8 * j + i], vector[i]);
            }
        }
    }
    let mut x = [0f32; 8];
    for (i, xi) in x.iter_mut().enumerate() {
        *xi = (acc[0][i] + acc[2][i]) + (acc[1][i] + acc[3][i]);
    }
    let tail = a.len() / 32 * 32;
    dot_tail(reduce_vec_dot_f16(&x), &a[tail..], &b[tail.min(b.len())..])
}

/// The last steps of ggml's `GGML_F32x8_REDUCE` once the four vectors are added
/// (`(v0 + v2) + (v1 + v3)`): halves added, then two horizontal adds.
#[inline(always)]
fn reduce_vec_dot_f16(x: &[f32; 8]) -> f32 {
    let t = [x[0] + x[4], x[1] + x[5], x[2] + x[6], x[3] + x[7]];
    (t[0] + t[1]) + (t[2] + t[3])
}

/// `up[i] ← silu(gate[i]) · up[i]` (SwiGLU), with ggml's SiLU.
pub fn swiglu(up: &mut [f32], gate: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx512_available() {
            // SAFETY: the CPU supports AVX-512F, AVX2 and FMA.
            unsafe { swiglu_avx512(up, gate) };
            return;
        }
        if fma_available() {
            // SAFETY: the CPU supports AVX2 and FMA.
            unsafe { swiglu_fma(up, gate) };
            return;
        }
    }
    swiglu_body(up, gate)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn swiglu_fma(up: &mut [f32], gate: &[f32]) {
    swiglu_body(up, gate)
}

/// [`swiglu_body`] sixteen lanes at a time, each lane taking the scalar code's operations
/// (ggml's `ggml_v_silu`: `x / (1 + exp(0 − x))`, its exponential as [`exp_ggml`]); a run
/// of sixteen with any lane outside the exponential's normal range goes through the scalar
/// code.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn swiglu_avx512(up: &mut [f32], gate: &[f32]) {
    use std::arch::x86_64::*;
    let n = up.len().min(gate.len());
    let whole = n / 16 * 16;
    for (u, g) in up[..whole].chunks_exact_mut(16).zip(gate.chunks_exact(16)) {
        // SAFETY: `u` and `g` are sixteen f32 each.
        unsafe {
            let gv = _mm512_loadu_ps(g.as_ptr());
            match exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv)) {
                Some(e) => {
                    let s = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0), e));
                    _mm512_storeu_ps(
                        u.as_mut_ptr(),
                        _mm512_mul_ps(_mm512_loadu_ps(u.as_ptr()), s),
                    );
                }
                None => swiglu_body(u, g),
            }
        }
    }
    swiglu_body(&mut up[whole..n], &gate[whole..n]);
}

/// [`exp_ggml`] of sixteen values where every one is in its normal range (`|n| ≤ 126`),
/// `None` otherwise.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
fn exp16(x: std::arch::x86_64::__m512) -> Option<std::arch::x86_64::__m512> {
    use std::arch::x86_64::*;
    let c = |bits: u32| _mm512_set1_ps(f32::from_bits(bits));
    let shift = c(0x4b40_0000);
    let z = _mm512_fmadd_ps(x, c(0x3fb8_aa3b), shift);
    let n = _mm512_sub_ps(z, shift);
    if _mm512_cmp_ps_mask::<_CMP_LE_OQ>(_mm512_abs_ps(n), _mm512_set1_ps(126.0)) != 0xffff {
        return None;
    }
    let sign = _mm512_set1_epi32(i32::MIN);
    let neg_n = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(n), sign));
    let b = _mm512_fmadd_ps(
        neg_n,
        c(0x35bf_be8e),
        _mm512_fmadd_ps(neg_n, c(0x3f31_7200), x),
    );
    let e = _mm512_slli_epi32::<23>(_mm512_castps_si512(z));
    let k = _mm512_castsi512_ps(_mm512_add_epi32(
        e,
        _mm512_set1_epi32(1f32.to_bits() as i32),
    ));
    let u = _mm512_mul_ps(b, b);
    let a = _mm512_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17));
    let a = _mm512_fmadd_ps(a, u, _mm512_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb)));
    let j = _mm512_fmadd_ps(a, u, _mm512_mul_ps(c(0x3f7f_fff6), b));
    Some(_mm512_fmadd_ps(j, k, k))
}

#[inline(always)]
fn swiglu_body(up: &mut [f32], gate: &[f32]) {
    for (u, &g) in up.iter_mut().zip(gate) {
        *u *= silu(g);
    }
}

/// `x` rounded to the nearest f16.
#[inline]
pub fn f16_round(x: f32) -> f32 {
    f16_to_f32(f32_to_f16(x))
}

/// Every value of `xs` rounded to the nearest f16, as [`f16_round`] rounds it: eight at a
/// time by F16C where the CPU has it (the same bits for every number; see the test in
/// `scores`). The queries' f16 copies for the products: the software rounding's branches
/// were most of one-token attention's own time in a batch-8 profile.
pub fn f16_round_all(xs: &mut [f32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx2_fma_f16c() {
        // SAFETY: AVX2 and F16C are present (checked).
        done = unsafe { f16c::round_all(xs) };
    }
    for x in &mut xs[done..] {
        *x = f16_round(*x);
    }
}

/// `dst[i]` = `src[i]` as f16 bits, rounded to nearest even (as [`f32_to_f16`]; NaNs stay
/// NaNs), eight at a time by F16C where the CPU has it: what the KV cache stores.
pub fn f32_to_f16_all(src: &[f32], dst: &mut [u16]) {
    let n = src.len().min(dst.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx2_fma_f16c() {
        // SAFETY: AVX2 and F16C are present (checked); both hold n values.
        done = unsafe { f16c::narrow(&src[..n], &mut dst[..n]) };
    }
    for (d, &x) in dst[done..n].iter_mut().zip(&src[done..n]) {
        *d = f32_to_f16(x);
    }
}

/// `dst[i]` = the f16 bits `src[i]` as f32 (exact), eight at a time by F16C where the CPU
/// has it.
pub fn f16_to_f32_all(src: &[u16], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx2_fma_f16c() {
        // SAFETY: AVX2 and F16C are present (checked); both hold n values.
        done = unsafe { f16c::widen(&src[..n], &mut dst[..n]) };
    }
    for (d, &b) in dst[done..n].iter_mut().zip(&src[done..n]) {
        *d = f16_to_f32(b);
    }
}

#[cfg(target_arch = "x86_64")]
mod f16c {
    use std::arch::x86_64::*;

    /// [`super::f32_to_f16_all`] over the whole runs of eight of equally long slices;
    /// returns how many it converted.
    ///
    /// # Safety
    /// AVX2 and F16C; `dst.len() == src.len()`.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn narrow(src: &[f32], dst: &mut [u16]) -> usize {
        let whole = src.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: values i..i + 8 lie in both slices.
            unsafe {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(
                    src.as_ptr().add(i),
                ));
                _mm_storeu_si128(dst.as_mut_ptr().add(i).cast(), h);
            }
        }
        whole
    }

    /// [`super::f16_to_f32_all`] over the whole runs of eight of equally long slices;
    /// returns how many it converted.
    ///
    /// # Safety
    /// AVX2 and F16C; `dst.len() == src.len()`.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn widen(src: &[u16], dst: &mut [f32]) -> usize {
        let whole = src.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: values i..i + 8 lie in both slices.
            unsafe {
                let h = _mm_loadu_si128(src.as_ptr().add(i).cast());
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            }
        }
        whole
    }

    /// [`super::f16_round_all`] over the whole runs of eight; returns how many it rounded.
    ///
    /// # Safety
    /// AVX2 and F16C.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn round_all(xs: &mut [f32]) -> usize {
        let whole = xs.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: values i..i + 8 lie in `xs`.
            unsafe {
                let at = xs.as_mut_ptr().add(i);
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(at));
                _mm256_storeu_ps(at, _mm256_cvtph_ps(h));
            }
        }
        whole
    }
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
        // ggml's table: one entry per f16 input, built once (65,536 tanh evaluations), so a
        // prefill's millions of activations cost a lookup each rather than a tanh.
        static TABLE: std::sync::OnceLock<Box<[f32]>> = std::sync::OnceLock::new();
        let table = TABLE.get_or_init(|| {
            (0..=u16::MAX)
                .map(|h| f16_round(gelu_tanh(f16_to_f32(h))))
                .collect()
        });
        table[f32_to_f16(x) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Value sums over either rearranged layout, and over the cache's own, give the plain
    /// loop's bits (the AVX-512 sums where the CPU has them, the AVX2 ones otherwise).
    #[test]
    fn rearranged_values_give_the_same_sums() {
        let noise = |i: usize| ((i * 7919 % 1013) as f32 - 506.0) / 41.0;
        let (hd, kv_heads, kv_len) = (64, 3, 37);
        let kv_width = hd * kv_heads;
        let v: Vec<f32> = (0..kv_len * kv_width).map(noise).collect();
        let vt8 = values_by_chunk(&v, kv_len, kv_heads, hd, 8);
        let vt16 = values_by_chunk(&v, kv_len, kv_heads, hd, 16);
        let p: Vec<f32> = (0..kv_len).map(|i| noise(i + 3) / 20.0).collect();
        let shape = AttentionShape {
            n_heads: kv_heads,
            n_kv_heads: kv_heads,
            head_dim: hd,
            scale: 0.125,
            scale_queries: false,
            window: None,
        };
        let row = |vt, vw| AttentionRow {
            q_row: &v[..kv_width],
            k: &v,
            v: &v,
            pos: kv_len - 1,
            kv_len,
            group: 1,
            kv_width,
            s: shape,
            single: false,
            simd: simd_attention(),
            vt,
            vw,
            kt: None,
            k16: None,
            v16: None,
        };
        let bits = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for kvh in 0..kv_heads {
            for start in [0, 5, 16] {
                let first = start / 8 * 8;
                let mut want = vec![0f32; 8 * hd];
                let p = &p[first..];
                weigh_values_plain(&row(None, 8), p, kvh, first, start..kv_len, 8, &mut want);
                for (layout, r) in [
                    ("cache", row(None, 8)),
                    ("runs of 8", row(Some(&vt8), 8)),
                    ("runs of 16", row(Some(&vt16), 16)),
                ] {
                    let mut got = vec![f32::NAN; 8 * hd];
                    weigh_values(&r, p, kvh, first, start..kv_len, 8, &mut got);
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{layout}: head {kvh}, from {start}"
                    );
                }
            }
        }
    }

    /// A prompt's attention on the grouped AVX-512 kernels gives the bits of the head-by-head
    /// AVX2 loop: groups of three heads (a pair and one alone), a window that starts
    /// inside a run of eight, and rows after an earlier chunk of the cache.
    #[test]
    fn grouped_heads_give_the_head_by_head_bits() {
        let noise = |i: usize| f16_round(((i * 7919 % 1013) as f32 - 506.0) / 97.0);
        let (hd, n_heads, n_kv_heads, kv_len) = (64, 6, 2, 45);
        let (q_width, kv_width) = (n_heads * hd, n_kv_heads * hd);
        let k: Vec<f32> = (0..kv_len * kv_width).map(noise).collect();
        let v: Vec<f32> = (0..kv_len * kv_width).map(|i| noise(i + 77)).collect();
        for (window, first_pos) in [(None, 0), (Some(13), 0), (None, 20), (Some(21), 20)] {
            let rows = kv_len - first_pos;
            let q: Vec<f32> = (0..rows * q_width).map(|i| noise(i + 5) * 0.3).collect();
            let s = AttentionShape {
                n_heads,
                n_kv_heads,
                head_dim: hd,
                scale: 0.125,
                scale_queries: false,
                window,
            };
            let mut got = vec![f32::NAN; rows * q_width];
            causal_attention(&q, &k, &v, &mut got, first_pos, kv_len, s);
            let vt8 = values_by_chunk(&v, kv_len, n_kv_heads, hd, 8);
            for t in 0..rows {
                let row = AttentionRow {
                    q_row: &q[t * q_width..(t + 1) * q_width],
                    k: &k,
                    v: &v,
                    pos: first_pos + t,
                    kv_len,
                    group: n_heads / n_kv_heads,
                    kv_width,
                    s,
                    single: false,
                    simd: simd_attention(),
                    vt: Some(&vt8),
                    vw: 8,
                    kt: None,
                    k16: None,
                    v16: None,
                };
                let mut want = vec![0f32; q_width];
                attention_row(&row, &mut want);
                let got = &got[t * q_width..(t + 1) * q_width];
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{window:?} from {first_pos}, row {t}: {i}"
                    );
                }
            }
        }
    }

    /// The vectorised SwiGLU gives the scalar loop's bits, in and out of the exponential's
    /// normal range and on lengths that leave a tail.
    #[test]
    fn vector_swiglu_matches_the_scalar_loop() {
        let noise = |i: usize| ((i * 7919 % 1013) as f32 - 506.0) / 41.0;
        for (len, spread) in [(1000, 1.0f32), (333, 9.0), (64, 0.01)] {
            let gate: Vec<f32> = (0..len).map(|i| noise(i) * spread).collect();
            let up: Vec<f32> = (0..len).map(|i| noise(i + 17)).collect();
            let (mut a, mut b) = (up.clone(), up.clone());
            swiglu(&mut a, &gate);
            swiglu_body(&mut b, &gate);
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "len {len} spread {spread}");
        }
    }

    /// The vectorised scores and softmax give the scalar loop's bits, for aligned and
    /// unaligned windows, partial last groups, two head sizes and a wide score range.
    #[test]
    fn vector_softmax_matches_the_scalar_loop() {
        if !scores::available() {
            return;
        }
        let noise = |i: usize| ((i * 7919 % 1013) as f32 - 506.0) / 41.0;
        for hd in [64, 256] {
            let kv_width = 2 * hd;
            let k: Vec<f32> = (0..70 * kv_width).map(|i| f16_round(noise(i))).collect();
            let qh: Vec<f32> = (0..hd).map(|i| f16_round(noise(i + 31) * 0.3)).collect();
            let shape = AttentionShape {
                n_heads: 2,
                n_kv_heads: 2,
                head_dim: hd,
                scale: 0.125,
                scale_queries: false,
                window: None,
            };
            let row = AttentionRow {
                q_row: &qh,
                k: &k,
                v: &k,
                pos: 0,
                kv_len: 70,
                group: 1,
                kv_width,
                s: shape,
                single: false,
                simd: simd_attention(),
                vt: None,
                vw: 8,
                kt: None,
                k16: None,
                v16: None,
            };
            for (start, end) in [(0, 64), (0, 70), (5, 70), (16, 33), (61, 62), (3, 9)] {
                let first = start / 8 * 8;
                for scale in [0.125f32, 3.0] {
                    let mut want = vec![0f32; end - first];
                    let span = [first, start, end];
                    scalar_scores_softmax(&row, &qh, 1, span, scale, &mut want, false);
                    let span = [first, start, end];
                    // Head 1's keys in pairs, for the AVX-512 scores where the CPU has them.
                    let pairs = 35 * 2 * hd;
                    let kt = wide::keys_by_pair(&k, 70, 2, hd);
                    for paired in [None, Some(&kt[pairs..2 * pairs])] {
                        let mut got = vec![f32::NAN; end - first];
                        assert!(scores::scores_softmax(
                            &qh,
                            (&k, paired),
                            kv_width,
                            hd,
                            span,
                            scale,
                            &mut got
                        ));
                        for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert_eq!(
                                g.to_bits(),
                                w.to_bits(),
                                "hd {hd} {start}..{end} ×{scale} paired {}: {j}",
                                paired.is_some()
                            );
                        }
                    }
                }
            }
        }
    }

    /// The table gives what rounding, GELU and rounding again give, for every f32 input's
    /// f16 rounding (sampled densely around zero and across the range).
    #[test]
    fn gelu_table_matches_the_computed_function() {
        for i in -200_000..200_000 {
            let x = i as f32 * 5.1e-5 * (1.0 + (i as f32).abs() * 1e-5);
            let want = if x <= -10.0 {
                0.0
            } else if x >= 10.0 {
                x
            } else {
                f16_round(gelu_tanh(f16_round(x)))
            };
            assert_eq!(gelu_tanh_f16(x).to_bits(), want.to_bits(), "x = {x}");
        }
    }

    /// The AVX2 dot products give the portable loops' bits.
    #[test]
    fn score_dots_match_the_portable_loops() {
        let noise = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 97.0;
        for len in [8, 32, 64, 256] {
            let a: Vec<f32> = (0..len).map(noise).collect();
            let b: Vec<f32> = (0..len).map(|i| noise(i + 500)).collect();
            if len % 32 == 0 {
                assert_eq!(
                    score_dot(simd_attention(), &a, &b, true).to_bits(),
                    dot32(&a, &b).to_bits()
                );
            }
            assert_eq!(
                score_dot(simd_attention(), &a, &b, false).to_bits(),
                dot8(&a, &b).to_bits()
            );
        }
    }

    /// One-token attention on the vector kernels (sixteen keys at a time on AVX-512 where
    /// the CPU has it, the query heads of a key-value head together) gives the portable
    /// loops' bits: head sizes 32, 64 and 256, one to five query heads per key-value
    /// head, contexts shorter than, equal to and past sixteen positions, with and without
    /// a window that starts inside a run of sixteen.
    #[test]
    fn one_token_attention_matches_the_portable_loops() {
        let noise = |i: usize| f16_round(((i * 7919 % 1009) as f32 - 504.0) / 197.0);
        // Query heads per key-value head: 3 (taken together), 1, 4 (two and two), 5
        // (three and two).
        for (hd, heads, kv_heads) in [(64, 6, 2), (256, 6, 2), (64, 2, 2), (64, 4, 1), (32, 5, 1)] {
            for (kv_len, window) in [
                (5, None),
                (16, None),
                (37, None),
                (70, Some(23)),
                (97, None),
            ] {
                let kv_width = kv_heads * hd;
                let k: Vec<f32> = (0..kv_len * kv_width).map(noise).collect();
                let v: Vec<f32> = (0..kv_len * kv_width).map(|i| noise(i + 77)).collect();
                let q: Vec<f32> = (0..heads * hd).map(|i| noise(i + 5) * 2.0).collect();
                let s = AttentionShape {
                    n_heads: heads,
                    n_kv_heads: kv_heads,
                    head_dim: hd,
                    scale: 1.0 / (hd as f32).sqrt(),
                    scale_queries: false,
                    window,
                };
                let run = |simd: bool| {
                    let row = AttentionRow {
                        q_row: &q,
                        k: &k,
                        v: &v,
                        pos: kv_len - 1,
                        kv_len,
                        group: heads / kv_heads,
                        kv_width,
                        s,
                        single: true,
                        simd,
                        vt: None,
                        vw: 8,
                        kt: None,
                        k16: None,
                        v16: None,
                    };
                    let mut out = vec![0f32; heads * hd];
                    #[cfg(target_arch = "x86_64")]
                    if simd {
                        // SAFETY: `simd` is only set where the CPU has AVX2 and FMA.
                        unsafe { attention_row_fma(&row, &mut out) };
                        return out;
                    }
                    attention_row(&row, &mut out);
                    out
                };
                let (fast, plain) = (run(simd_attention()), run(false));
                // The same row over the cache as f16 bits (the kernels that read them where
                // the CPU has AVX-512, the f32 ones after widening elsewhere).
                let bits = |x: &[f32]| {
                    let mut b = vec![0u16; x.len()];
                    f32_to_f16_all(x, &mut b);
                    b
                };
                let mut halves = vec![0f32; heads * hd];
                causal_attention_f16(&q, &bits(&k), &bits(&v), &mut halves, kv_len - 1, kv_len, s);
                for (i, (a, b)) in halves.iter().zip(&fast).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "f16 cache, hd {hd}, kv_len {kv_len}: [{i}]"
                    );
                }
                // Several rows (a prompt's tail): widened, then the f32 kernels.
                let rows = 3.min(kv_len);
                let qs: Vec<f32> = (0..rows * heads * hd).map(|i| noise(i + 9) * 2.0).collect();
                let (mut a, mut b) = (vec![0f32; qs.len()], vec![0f32; qs.len()]);
                causal_attention_f16(&qs, &bits(&k), &bits(&v), &mut a, kv_len - rows, kv_len, s);
                causal_attention(&qs, &k, &v, &mut b, kv_len - rows, kv_len, s);
                assert_eq!(
                    a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    b.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    "f16 cache, {rows} rows, hd {hd}, kv_len {kv_len}"
                );
                for (i, (a, b)) in fast.iter().zip(&plain).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "hd {hd}, kv_len {kv_len}, window {window:?}: [{i}] {a} vs {b}"
                    );
                }
            }
        }
    }

    /// The register-blocked value sums give the plain loop's bits, for both slot counts,
    /// windows that start inside a run of eight, and spans shorter than one run.
    #[test]
    fn value_sums_match_the_plain_loop() {
        // 16 features: the AVX2 sums; 64: the AVX-512 ones where the CPU has them.
        for hd in [16, 64] {
            value_sums_match_for(hd);
        }
    }

    fn value_sums_match_for(hd: usize) {
        let kv_heads = 2;
        let positions = 75;
        let noise = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 97.0;
        let v: Vec<f32> = (0..positions * kv_heads * hd).map(noise).collect();
        let p: Vec<f32> = (0..positions).map(|i| noise(i + 13).abs() / 5.0).collect();
        let s = AttentionShape {
            n_heads: 4,
            n_kv_heads: kv_heads,
            head_dim: hd,
            scale: 1.0,
            scale_queries: false,
            window: None,
        };
        let r = AttentionRow {
            q_row: &[],
            k: &[],
            v: &v,
            pos: 0,
            kv_len: positions,
            group: 2,
            kv_width: kv_heads * hd,
            s,
            single: false,
            simd: simd_attention(),
            vt: None,
            vw: 8,
            kt: None,
            k16: None,
            v16: None,
        };
        for slots in [8, 32] {
            for (first, start, end) in [
                (0, 0, 75),
                (8, 13, 75),
                (16, 19, 23),
                (0, 0, 1),
                (40, 47, 48),
            ] {
                for kvh in 0..kv_heads {
                    let p = &p[first..end];
                    let mut fast = vec![f32::NAN; 32 * hd];
                    let mut plain = vec![f32::NAN; 32 * hd];
                    weigh_values(&r, p, kvh, first, start..end, slots, &mut fast);
                    weigh_values_plain(&r, p, kvh, first, start..end, slots, &mut plain);
                    let bits = |x: &[f32]| {
                        x[..slots * hd]
                            .iter()
                            .map(|v| v.to_bits())
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(
                        bits(&fast),
                        bits(&plain),
                        "hd {hd}, {slots} slots, {first} {start}..{end}"
                    );
                }
            }
        }
    }

    /// Causal attention in f64 without any rounding: the reference.
    fn naive(q: &[f32], k: &[f32], v: &[f32], n: usize, s: AttentionShape) -> Vec<f64> {
        let (hd, qw, kvw) = (
            s.head_dim,
            s.n_heads * s.head_dim,
            s.n_kv_heads * s.head_dim,
        );
        let mut out = vec![0f64; n * qw];
        for t in 0..n {
            let lo = s.window.map_or(0, |w| (t + 1).saturating_sub(w));
            for h in 0..s.n_heads {
                let kh = h / (s.n_heads / s.n_kv_heads);
                let scores: Vec<f64> = (lo..=t)
                    .map(|j| {
                        (0..hd)
                            .map(|e| {
                                q[t * qw + h * hd + e] as f64 * k[j * kvw + kh * hd + e] as f64
                            })
                            .sum::<f64>()
                            * s.scale as f64
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = scores.iter().map(|x| (x - max).exp()).sum();
                for (j, sc) in (lo..=t).zip(&scores) {
                    let p = (sc - max).exp() / total;
                    for e in 0..hd {
                        out[t * qw + h * hd + e] += p * v[j * kvw + kh * hd + e] as f64;
                    }
                }
            }
        }
        out
    }
    /// The slice conversions (F16C on whole runs of eight, the software ones on the rest)
    /// give the element-wise conversions' bits at every length, for every class of value.
    #[test]
    fn slice_conversions_match_the_element_wise_ones() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..40 {
            let src: Vec<f32> = (0..len)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    match i % 5 {
                        0 => f32::from_bits(x as u32),
                        1 => f32::from_bits(
                            (x as u32 & 0x807f_ffff) | ((100 + (x >> 40) as u32 % 46) << 23),
                        ),
                        2 => [0.0, -0.0, f32::INFINITY, 65520.0, 6e-8][(x % 5) as usize],
                        _ => ((x >> 11) as f32 / (1u64 << 53) as f32 - 0.5) * 40.0,
                    }
                })
                .collect();
            let mut bits = vec![0u16; len];
            f32_to_f16_all(&src, &mut bits);
            let mut back = vec![0f32; len];
            f16_to_f32_all(&bits, &mut back);
            for i in 0..len {
                if src[i].is_nan() {
                    assert!(back[i].is_nan(), "len {len}, [{i}]");
                    continue;
                }
                assert_eq!(bits[i], f32_to_f16(src[i]), "len {len}, [{i}] {:e}", src[i]);
                assert_eq!(
                    back[i].to_bits(),
                    f16_to_f32(bits[i]).to_bits(),
                    "len {len}, [{i}]"
                );
            }
            let mut rounded = src.clone();
            f16_round_all(&mut rounded);
            for (r, b) in rounded.iter().zip(&back) {
                assert!(r.to_bits() == b.to_bits() || (r.is_nan() && b.is_nan()));
            }
        }
    }

    /// Every element of a head counts, whatever its size: head sizes that are not a multiple
    /// of the vector widths (8 for batches, 32 for one-token steps) once lost their last
    /// elements from q·k. Batched and one-token evaluation both agree with the f64
    /// reference to f16 precision.
    /// Rotating rows by a table of their positions' angles, from any row on, is the
    /// rotation that computes its angles itself, in both pairings; a table whose positions
    /// run out leaves the rows past them alone.
    #[test]
    fn rope_by_table_equals_rope() {
        let (heads, hd) = (3, 8);
        let positions = [0usize, 5, 17, 4096, 9];
        let x: Vec<f32> = (0..positions.len() * heads * hd)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        for style in [RopeStyle::Interleaved, RopeStyle::Halves] {
            let mut want = x.clone();
            rope(&mut want, &positions, heads, hd, 10_000.0, style);
            let table = RopeAngles::new(&positions, hd, 10_000.0);
            assert_eq!(table.len(), positions.len());
            let width = heads * hd;
            for first in 0..positions.len() {
                let mut got = x[first * width..].to_vec();
                rope_with_angles(&mut got, &table, first, heads, style);
                assert_eq!(got, want[first * width..], "{style:?} from row {first}");
            }
            let short = RopeAngles::new(&positions[..2], hd, 10_000.0);
            let mut got = x.clone();
            rope_with_angles(&mut got, &short, 0, heads, style);
            assert_eq!(got[..2 * width], want[..2 * width]);
            assert_eq!(got[2 * width..], x[2 * width..]);
        }
    }

    #[test]
    fn attention_covers_every_head_size() {
        for hd in [4usize, 12, 40, 64, 72] {
            let n = 9;
            let s = AttentionShape {
                n_heads: 4,
                n_kv_heads: 2,
                head_dim: hd,
                scale: 1.0 / (hd as f32).sqrt(),
                scale_queries: false,
                window: if hd == 12 { Some(3) } else { None },
            };
            let val = |i: usize, salt: usize| ((i * 37 + salt * 11) % 29) as f32 / 14.5 - 1.0;
            let q: Vec<f32> = (0..n * 4 * hd).map(|i| val(i, 1)).collect();
            let k: Vec<f32> = (0..n * 2 * hd).map(|i| f16_round(val(i, 2))).collect();
            let v: Vec<f32> = (0..n * 2 * hd).map(|i| f16_round(val(i, 3))).collect();
            let want = naive(&q, &k, &v, n, s);
            let mut batched = vec![0f32; q.len()];
            causal_attention(&q, &k, &v, &mut batched, 0, n, s);
            let qw = 4 * hd;
            let mut stepped = vec![0f32; q.len()];
            for t in 0..n {
                causal_attention(
                    &q[t * qw..(t + 1) * qw],
                    &k[..(t + 1) * 2 * hd],
                    &v[..(t + 1) * 2 * hd],
                    &mut stepped[t * qw..(t + 1) * qw],
                    t,
                    t + 1,
                    s,
                );
            }
            for (what, got) in [("batched", &batched), ("one token at a time", &stepped)] {
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (*a as f64 - b).abs())
                    .fold(0f64, f64::max);
                assert!(err < 5e-3, "head_dim {hd}, {what}: off by {err}");
            }
        }
    }

    /// The norms of many rows, eight at a time, equal each row's alone in ggml's order: rows
    /// and features are not mixed, for counts of rows below, at and past eight. (The order
    /// of one row's additions seldom shows in its result, whose f64 sum carries 29 bits
    /// beyond the f32 it is rounded to; `norm`'s test holds it with rows where it shows.)
    #[test]
    fn rms_norm_of_many_rows_equals_each_row_alone() {
        let width = 37;
        let w: Vec<f32> = (0..width).map(|i| 0.5 + i as f32 / 64.0).collect();
        for rows in [1, 7, 8, 9, 17] {
            let x: Vec<f32> = (0..rows * width)
                .map(|i| ((i * 7919 % 1013) as f32 - 500.0) * if i % 13 == 0 { 3e3 } else { 1e-3 })
                .collect();
            let mut many = x.clone();
            rms_norm(&mut many, &w, width, 1e-5);
            for (r, row) in x.chunks_exact(width).enumerate() {
                let mut sum = 0f64;
                for &v in row {
                    sum += (v * v) as f64;
                }
                let scale = 1.0 / ((sum / width as f64) as f32 + 1e-5).sqrt();
                for (i, (&v, &g)) in row.iter().zip(&w).enumerate() {
                    let want = v * scale * g;
                    assert_eq!(
                        many[r * width + i].to_bits(),
                        want.to_bits(),
                        "{rows} rows: ({r}, {i})"
                    );
                }
            }
        }
    }
}
