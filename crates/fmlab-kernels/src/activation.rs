//! The activation side of ggml's quantized products: an f32 activation row quantized to
//! 8 bits (`q8_0` or `q8_1` blocks of 32 for the 32-element formats, `q8_K` blocks of 256
//! for the K-quants), with the scale rounding and block sums of the kernel the product will
//! follow ([`DotOrder`]). The products themselves are in `q8.rs` and `simd.rs`.

use crate::quant::{f16_to_f32, f32_to_f16, QuantType};

/// How activations are quantized for a weight format (ggml's `vec_dot_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationFormat {
    /// Blocks of 32: an f16 scale and 32 i8.
    Q8_0,
    /// Blocks of 32: as Q8_0, plus `s = d · Σq` for formats with a minimum.
    Q8_1,
    /// Blocks of 256: an f32 scale, 256 i8 and the sums of each 16.
    Q8K,
    /// No quantization: f32 products.
    F32,
}

impl QuantType {
    pub fn activation_format(self) -> ActivationFormat {
        match self {
            QuantType::Q4_0 | QuantType::Q5_0 | QuantType::Q8_0 => ActivationFormat::Q8_0,
            QuantType::Q4_1 | QuantType::Q5_1 => ActivationFormat::Q8_1,
            QuantType::Q4_K | QuantType::Q5_K | QuantType::Q6_K => ActivationFormat::Q8K,
            QuantType::F32 | QuantType::F16 | QuantType::BF16 => ActivationFormat::F32,
        }
    }
}

/// One activation vector, quantized.
#[derive(Debug, Clone, Default)]
pub struct QuantizedRow {
    /// Scale per block (f16-rounded for Q8_0/Q8_1, f32 for Q8K).
    pub d: Vec<f32>,
    /// `d · Σq` per block, f16-rounded (Q8_1 only).
    pub s: Vec<f32>,
    /// Σq per 32 (Q8_0/Q8_1) or per 16 (Q8K) elements.
    pub sums: Vec<i32>,
    pub qs: Vec<i8>,
    /// Which of ggml's kernels the products with this row follow.
    pub order: DotOrder,
}

/// Which of ggml's kernels a product follows. For a batch of activation rows ggml does not
/// always call its one-row dot products: K-quant weights go through repacked or tiled
/// matrix kernels that quantize and accumulate in other float orders. Following the kernel
/// ggml picks is what keeps batched prefill bit-identical to llama.cpp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DotOrder {
    /// The one-row kernels (`ggml_vec_dot_*`, and the repacked Q4_K gemv).
    #[default]
    Row,
    /// The repacked Q4_K gemm over tiles of four activation rows
    /// (`ggml_gemm_q4_K_8x8_q8_K`): the scale's sign follows the largest positive element,
    /// and sums accumulate per 64 elements.
    Repacked,
    /// The tiled K-quant matmul ggml takes for 8 or more rows of Q5_K/Q6_K (and Q4_K that
    /// is not repacked): per block, the weight scale times the integer sum is rounded, then
    /// added with FMA times the activation scale.
    Tiled,
}

/// Quantizes `x` (a whole number of blocks long) for `format`.
pub fn quantize_activations(x: &[f32], format: ActivationFormat) -> QuantizedRow {
    match format {
        ActivationFormat::Q8_0 | ActivationFormat::Q8_1 => {
            quantize_q8_32(x, format == ActivationFormat::Q8_1)
        }
        ActivationFormat::Q8K => quantize_q8_k(x, false),
        ActivationFormat::F32 => QuantizedRow::default(),
    }
}

/// As [`quantize_activations`], for products that follow `order`.
pub fn quantize_activations_for(
    x: &[f32],
    format: ActivationFormat,
    order: DotOrder,
) -> QuantizedRow {
    let mut q = match format {
        ActivationFormat::Q8K => quantize_q8_k(x, order == DotOrder::Repacked),
        other => quantize_activations(x, other),
    };
    q.order = order;
    q
}

/// ggml's `quantize_row_q8_0`/`q8_1` (the AVX2 form): `d = max|x| / 127`, `q = round(x · 127 /
/// max|x|)` with ties to even, `d` stored as f16.
fn quantize_q8_32(x: &[f32], with_sum: bool) -> QuantizedRow {
    let blocks = x.len() / 32;
    let mut out = QuantizedRow {
        d: Vec::with_capacity(blocks),
        s: Vec::with_capacity(if with_sum { blocks } else { 0 }),
        sums: Vec::with_capacity(blocks),
        qs: Vec::with_capacity(blocks * 32),
        order: DotOrder::Row,
    };
    for block in x.chunks_exact(32) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for &v in block {
            let q = round_small(v * id) as i32;
            sum += q;
            out.qs.push(q as i8);
        }
        out.d.push(f16_to_f32(f32_to_f16(d)));
        if with_sum {
            out.s.push(f16_to_f32(f32_to_f16(d * sum as f32)));
        }
        out.sums.push(sum);
    }
    out
}

/// ggml's `quantize_row_q8_K_ref`: the scale maps the element of largest magnitude to −127.
/// For the repacked kernels (`ggml_quantize_mat_q8_K_4x8`) the same, except that when both
/// +max and −max occur, the positive one is mapped to −127 wherever it stands.
fn quantize_q8_k(x: &[f32], repacked: bool) -> QuantizedRow {
    let blocks = x.len() / 256;
    let mut out = QuantizedRow {
        d: Vec::with_capacity(blocks),
        s: Vec::new(),
        sums: Vec::with_capacity(blocks * 16),
        qs: Vec::with_capacity(blocks * 256),
        order: DotOrder::Row,
    };
    for block in x.chunks_exact(256) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in block {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            out.d.push(0.0);
            out.qs.extend(std::iter::repeat_n(0i8, 256));
            out.sums.extend(std::iter::repeat_n(0, 16));
            continue;
        }
        if repacked && block.contains(&amax) {
            max = amax;
        }
        let iscale = -127.0 / max;
        let start = out.qs.len();
        for &v in block {
            let q = round_small(iscale * v) as i32;
            out.qs.push(q.clamp(-128, 127) as i8);
        }
        for group in out.qs[start..].chunks_exact(16) {
            out.sums.push(group.iter().map(|&q| q as i32).sum());
        }
        out.d.push(1.0 / iscale);
    }
    out
}

/// Round to nearest, ties to even, for |x| < 2²²: adding and subtracting 1.5·2²³ leaves
/// the rounded value (the default rounding mode does the work). Equal to
/// `round_ties_even`, which compiles to a libm call on baseline x86-64; this vectorises.
#[inline(always)]
fn round_small(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_small_is_round_ties_even() {
        let mut x = -200.0f32;
        while x <= 200.0 {
            for v in [x, x + 0.5, x - 0.5, x + 1e-4, x - 1e-4] {
                assert_eq!(round_small(v), v.round_ties_even(), "{v}");
            }
            x += 0.25;
        }
    }

    #[test]
    fn repacked_quantization_maps_the_positive_maximum_to_minus_127() {
        let mut x = vec![0.5f32; 256];
        x[0] = -2.0;
        x[5] = 2.0;
        // One-row kernels: the first element of largest magnitude decides the sign.
        let row = quantize_activations(&x, ActivationFormat::Q8K);
        assert_eq!((row.qs[0], row.qs[5]), (-127, 127));
        assert!(row.d[0] > 0.0);
        // ggml's four-row quantization prefers +max wherever it stands.
        let tile = quantize_activations_for(&x, ActivationFormat::Q8K, DotOrder::Repacked);
        assert_eq!((tile.qs[0], tile.qs[5]), (127, -127));
        assert!(tile.d[0] < 0.0);
        assert_eq!(tile.sums.iter().sum::<i32>(), -row.sums.iter().sum::<i32>());
    }
}
