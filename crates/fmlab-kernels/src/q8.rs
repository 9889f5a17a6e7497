//! Products of quantized weights with quantized activations, as ggml computes them.
//!
//! ggml does not multiply a quantized row with f32 activations: it first quantizes the
//! activations to 8 bits (`q8_0` or `q8_1` blocks of 32 for the 32-element formats, `q8_K`
//! blocks of 256 for the K-quants), then takes integer dot products block by block. We do
//! the same, for two reasons: the integer products are what makes CPU inference fast, and
//! they make our logits agree with llama.cpp's to the last few bits, so that greedy decoding
//! picks the same tokens as the reference implementation.

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

#[inline]
fn half(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// The dot product of one weight row (`row`, in `t`'s format) with quantized activations.
#[inline]
pub fn dot_quantized(t: QuantType, row: &[u8], a: &QuantizedRow) -> f32 {
    if let Some(v) = crate::simd::dot_quantized(t, row, a) {
        return v;
    }
    dot_quantized_portable(t, row, a)
}

/// The portable integer path (also the reference the SIMD paths are tested against).
pub fn dot_quantized_portable(t: QuantType, row: &[u8], a: &QuantizedRow) -> f32 {
    let (_, bytes) = t.block();
    let mut sum = 0f32;
    match t {
        QuantType::Q4_0 => {
            for (b, block) in row.chunks_exact(bytes).enumerate() {
                let q8 = &a.qs[32 * b..32 * b + 32];
                let mut acc = 0i32;
                for j in 0..16 {
                    acc += ((block[2 + j] & 0x0f) as i32 - 8) * q8[j] as i32;
                    acc += ((block[2 + j] >> 4) as i32 - 8) * q8[j + 16] as i32;
                }
                sum += half(block, 0) * a.d[b] * acc as f32;
            }
        }
        QuantType::Q4_1 => {
            for (b, block) in row.chunks_exact(bytes).enumerate() {
                let q8 = &a.qs[32 * b..32 * b + 32];
                let mut acc = 0i32;
                for j in 0..16 {
                    acc += (block[4 + j] & 0x0f) as i32 * q8[j] as i32;
                    acc += (block[4 + j] >> 4) as i32 * q8[j + 16] as i32;
                }
                sum += half(block, 0) * a.d[b] * acc as f32 + half(block, 2) * a.s[b];
            }
        }
        QuantType::Q5_0 | QuantType::Q5_1 => {
            let with_min = t == QuantType::Q5_1;
            let (qh_at, qs_at) = if with_min { (4, 8) } else { (2, 6) };
            for (b, block) in row.chunks_exact(bytes).enumerate() {
                let q8 = &a.qs[32 * b..32 * b + 32];
                let qh = u32::from_le_bytes([
                    block[qh_at],
                    block[qh_at + 1],
                    block[qh_at + 2],
                    block[qh_at + 3],
                ]);
                let offset = if with_min { 0 } else { 16 };
                let mut acc = 0i32;
                for j in 0..16 {
                    let h0 = (((qh >> j) << 4) & 0x10) as i32;
                    let h1 = ((qh >> (j + 12)) & 0x10) as i32;
                    let qs = block[qs_at + j];
                    acc += (((qs & 0x0f) as i32 | h0) - offset) * q8[j] as i32;
                    acc += (((qs >> 4) as i32 | h1) - offset) * q8[j + 16] as i32;
                }
                sum += half(block, 0) * a.d[b] * acc as f32;
                if with_min {
                    sum += half(block, 2) * a.s[b];
                }
            }
        }
        QuantType::Q8_0 => {
            for (b, block) in row.chunks_exact(bytes).enumerate() {
                let q8 = &a.qs[32 * b..32 * b + 32];
                let acc: i32 = block[2..34]
                    .iter()
                    .zip(q8)
                    .map(|(&w, &x)| w as i8 as i32 * x as i32)
                    .sum();
                sum += half(block, 0) * a.d[b] * acc as f32;
            }
        }
        QuantType::Q4_K | QuantType::Q5_K => {
            let five = t == QuantType::Q5_K;
            let mut mins = 0f32;
            for (b, block) in row.chunks_exact(bytes).enumerate() {
                let q8 = &a.qs[256 * b..256 * b + 256];
                let bsums = &a.sums[16 * b..16 * b + 16];
                let d = a.d[b] * half(block, 0);
                let dmin = a.d[b] * half(block, 2);
                let scales = &block[4..16];
                let (qh, qs) = if five {
                    (&block[16..48], &block[48..176])
                } else {
                    (&block[0..0], &block[16..144])
                };
                let mut sumi = 0i32;
                let mut summs = 0i32;
                let repacked = a.order == DotOrder::Repacked && !five;
                for chunk in 0..4 {
                    let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                    let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                    let q = &qs[32 * chunk..32 * chunk + 32];
                    let x = &q8[64 * chunk..64 * chunk + 64];
                    let (mut lo, mut hi) = (0i32, 0i32);
                    for l in 0..32 {
                        let (mut v1, mut v2) = ((q[l] & 0x0f) as i32, (q[l] >> 4) as i32);
                        if five {
                            if qh[l] & (1 << (2 * chunk)) != 0 {
                                v1 += 16;
                            }
                            if qh[l] & (2 << (2 * chunk)) != 0 {
                                v2 += 16;
                            }
                        }
                        lo += v1 * x[l] as i32;
                        hi += v2 * x[l + 32] as i32;
                    }
                    let part = sc1 as i32 * lo + sc2 as i32 * hi;
                    let part_min = m1 as i32 * (bsums[4 * chunk] + bsums[4 * chunk + 1])
                        + m2 as i32 * (bsums[4 * chunk + 2] + bsums[4 * chunk + 3]);
                    if repacked {
                        // ggml's repacked Q4_K gemm: one FMA per 64 elements.
                        sum = (part as f32).mul_add(d, sum);
                        mins = (part_min as f32).mul_add(dmin, mins);
                    } else {
                        sumi += part;
                        summs += part_min;
                    }
                }
                match a.order {
                    DotOrder::Repacked if !five => {}
                    DotOrder::Tiled => {
                        let (dw, dmin_w) = (half(block, 0), half(block, 2));
                        let r = (-dmin_w).mul_add(summs as f32, dw * sumi as f32);
                        sum = r.mul_add(a.d[b], sum);
                    }
                    _ => {
                        // Block sums and mins accumulate separately with FMA (ggml's AVX2
                        // repacked gemv).
                        sum = (sumi as f32).mul_add(d, sum);
                        mins = (summs as f32).mul_add(dmin, mins);
                    }
                }
            }
            sum -= mins;
        }
        QuantType::Q6_K => {
            let mut acc = [0f32; 8];
            for (b, block) in row.chunks_exact(bytes).enumerate() {
                let q8 = &a.qs[256 * b..256 * b + 256];
                let d = a.d[b] * half(block, 208);
                let sc = &block[192..208];
                let mut lanes = [0i32; 8];
                for n in 0..2 {
                    let ql = &block[64 * n..64 * n + 64];
                    let qh = &block[128 + 32 * n..128 + 32 * n + 32];
                    let x = &q8[128 * n..128 * n + 128];
                    for l in 0..32 {
                        // Byte l of each 32-byte vector lands in lane l / 4 of ggml's sums.
                        let (is, lane) = (l / 16, l / 4);
                        let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32;
                        let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32;
                        let s = |g: usize| sc[8 * n + g] as i8 as i32;
                        lanes[lane] += s(is) * q1 * x[l] as i32
                            + s(is + 2) * q2 * x[l + 32] as i32
                            + s(is + 4) * q3 * x[l + 64] as i32
                            + s(is + 6) * q4 * x[l + 96] as i32;
                    }
                }
                // The offset of 32, lane m taking the sums of groups 2m and 2m+1.
                let bsums = &a.sums[16 * b..16 * b + 16];
                for (m, lane) in lanes.iter_mut().enumerate() {
                    *lane -= 32
                        * (sc[2 * m] as i8 as i32 * bsums[2 * m]
                            + sc[2 * m + 1] as i8 as i32 * bsums[2 * m + 1]);
                    acc[m] = (*lane as f32).mul_add(d, acc[m]);
                }
                if a.order == DotOrder::Tiled {
                    let total: i32 = lanes.iter().sum();
                    sum = (half(block, 208) * total as f32).mul_add(a.d[b], sum);
                }
            }
            if a.order != DotOrder::Tiled {
                let t = [
                    acc[0] + acc[4],
                    acc[1] + acc[5],
                    acc[2] + acc[6],
                    acc[3] + acc[7],
                ];
                sum = (t[0] + t[2]) + (t[1] + t[3]);
            }
        }
        QuantType::F32 | QuantType::F16 | QuantType::BF16 => {}
    }
    sum
}

/// The 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K block.
#[inline]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random byte stream.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 33) as u8
            })
            .collect()
    }

    /// Valid blocks: random quants with small finite f16 scales.
    fn blocks(t: QuantType, n_blocks: usize) -> Vec<u8> {
        let (_, size) = t.block();
        let mut b = bytes(n_blocks * size, 7);
        for block in b.chunks_exact_mut(size) {
            let scale = f32_to_f16(0.01).to_le_bytes();
            match t {
                QuantType::Q6_K => block[208..210].copy_from_slice(&scale),
                _ => {
                    block[0..2].copy_from_slice(&scale);
                    if matches!(
                        t,
                        QuantType::Q4_1 | QuantType::Q5_1 | QuantType::Q4_K | QuantType::Q5_K
                    ) {
                        block[2..4].copy_from_slice(&f32_to_f16(0.003).to_le_bytes());
                    }
                }
            }
        }
        b
    }

    #[test]
    fn integer_products_match_dequantized_products() {
        let types = [
            QuantType::Q4_0,
            QuantType::Q4_1,
            QuantType::Q5_0,
            QuantType::Q5_1,
            QuantType::Q8_0,
            QuantType::Q4_K,
            QuantType::Q5_K,
            QuantType::Q6_K,
        ];
        let n = 512;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        for (t, order) in types
            .iter()
            .flat_map(|&t| [DotOrder::Row, DotOrder::Repacked, DotOrder::Tiled].map(|o| (t, o)))
        {
            let (elements, _) = t.block();
            let row = blocks(t, n / elements);
            let a = quantize_activations_for(&x, t.activation_format(), order);
            let portable = dot_quantized_portable(t, &row, &a);
            let fast = dot_quantized(t, &row, &a);
            // The SIMD path computes the same integer sums: agreement to float rounding,
            // and to the bit where the two follow one ggml kernel's float order.
            assert!(
                (portable - fast).abs() <= 1e-4 * portable.abs().max(1.0),
                "{t:?} {order:?}: {portable} vs {fast}"
            );
            if order != DotOrder::Row && matches!(t, QuantType::Q4_K | QuantType::Q6_K) {
                assert_eq!(portable.to_bits(), fast.to_bits(), "{t:?} {order:?}");
            }
            // Against f32 weights times f32 activations: the activation quantization error.
            let mut w = vec![0f32; n];
            crate::dequantize_row(t, &row, &mut w).unwrap();
            let exact: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
            let scale: f32 = w.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
            assert!(
                (portable - exact).abs() <= 0.02 * scale,
                "{t:?}: {portable} vs {exact} (scale {scale})"
            );
        }
    }

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
