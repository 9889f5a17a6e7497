//! Products of quantized weights with quantized activations, as ggml computes them.
//!
//! ggml does not multiply a quantized row with f32 activations: it first quantizes the
//! activations to 8 bits (`q8_0` or `q8_1` blocks of 32 for the 32-element formats, `q8_K`
//! blocks of 256 for the K-quants), then takes integer dot products block by block. We do
//! the same, for two reasons: the integer products are what makes CPU inference fast, and
//! they make our logits agree with llama.cpp's to the last few bits, so that greedy decoding
//! picks the same tokens as the reference implementation.

use crate::activation::{DotOrder, QuantizedRow};
use crate::quant::{f16_to_f32, scale_min_k4, QuantType};

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

/// Activation rows prepared for products with many weight rows ([`dot_batch`]): packed
/// four at a time where a multi-row kernel exists for the format on this CPU.
pub struct Batch<'a> {
    format: QuantType,
    inputs: &'a [QuantizedRow],
    packed: Option<crate::simd::Packed>,
}

impl<'a> Batch<'a> {
    /// `inputs` quantized for weights in `format` (each in the dot order it will follow).
    pub fn new(format: QuantType, inputs: &'a [QuantizedRow]) -> Self {
        let packed = if inputs.len() > 1 && inputs.iter().all(|a| a.order == DotOrder::Row) {
            crate::simd::pack(format, inputs)
        } else {
            None
        };
        Batch {
            format,
            inputs,
            packed,
        }
    }
}

/// Consecutive weight rows (`rows`, each `row_bytes` long in the batch's format) times
/// every row of `batch`: `out[r · n + i] = row r · input i`, each value bit-identical to
/// [`dot_quantized`] of that pair alone. Where a multi-row kernel exists (Q4_0, Q4_1, Q5_0, Q8_0
/// on AVX2; Q4_K, and Q6_K from 8 rows, in `kbatch.rs`) a weight block is unpacked once for four activation rows and an activation
/// block loaded once for two weight rows, which is what makes decoding several sequences
/// together cheaper than one after another.
pub fn dot_batch(rows: &[u8], row_bytes: usize, batch: &Batch<'_>, out: &mut [f32]) {
    if let Some(p) = &batch.packed {
        if crate::simd::dot_packed(batch.format, rows, row_bytes, p, out) {
            return;
        }
    }
    if batch.packed.is_none()
        && crate::kbatch::dot_rows(batch.format, rows, row_bytes, batch.inputs, out)
    {
        return;
    }
    let n = batch.inputs.len();
    if row_bytes == 0 || n == 0 {
        return;
    }
    for (w, o) in rows.chunks_exact(row_bytes).zip(out.chunks_exact_mut(n)) {
        for (v, a) in o.iter_mut().zip(batch.inputs) {
            *v = dot_quantized(batch.format, w, a);
        }
    }
}

/// The portable integer path (also the reference the SIMD paths are tested against): one
/// function per block format, each the scalar form of ggml's kernel for it.
pub fn dot_quantized_portable(t: QuantType, row: &[u8], a: &QuantizedRow) -> f32 {
    match t {
        QuantType::Q4_0 => dot_q4_0(row, a),
        QuantType::Q4_1 => dot_q4_1(row, a),
        QuantType::Q5_0 | QuantType::Q5_1 => dot_q5(t, row, a),
        QuantType::Q8_0 => dot_q8_0(row, a),
        QuantType::Q4_K | QuantType::Q5_K => dot_q4_k_q5_k(t, row, a),
        QuantType::Q6_K => dot_q6_k(row, a),
        QuantType::F32 | QuantType::F16 | QuantType::BF16 => 0.0,
    }
}

/// Q4_0: 4-bit quants with an offset of 8, one f16 scale per 32.
fn dot_q4_0(row: &[u8], a: &QuantizedRow) -> f32 {
    let (_, bytes) = QuantType::Q4_0.block();
    let mut sum = 0f32;
    for (b, block) in row.chunks_exact(bytes).enumerate() {
        let q8 = &a.qs[32 * b..32 * b + 32];
        let mut acc = 0i32;
        for j in 0..16 {
            acc += ((block[2 + j] & 0x0f) as i32 - 8) * q8[j] as i32;
            acc += ((block[2 + j] >> 4) as i32 - 8) * q8[j + 16] as i32;
        }
        sum += half(block, 0) * a.d[b] * acc as f32;
    }
    sum
}

/// Q4_1: 4-bit quants, an f16 scale and minimum per 32 (the minimum meets the activation block's `s`).
fn dot_q4_1(row: &[u8], a: &QuantizedRow) -> f32 {
    let (_, bytes) = QuantType::Q4_1.block();
    let mut sum = 0f32;
    for (b, block) in row.chunks_exact(bytes).enumerate() {
        let q8 = &a.qs[32 * b..32 * b + 32];
        let mut acc = 0i32;
        for j in 0..16 {
            acc += (block[4 + j] & 0x0f) as i32 * q8[j] as i32;
            acc += (block[4 + j] >> 4) as i32 * q8[j + 16] as i32;
        }
        sum += half(block, 0) * a.d[b] * acc as f32 + half(block, 2) * a.s[b];
    }
    sum
}

/// Q5_0 and Q5_1 (`t` says which): a fifth bit per quant from a 32-bit mask.
fn dot_q5(t: QuantType, row: &[u8], a: &QuantizedRow) -> f32 {
    let (_, bytes) = t.block();
    let mut sum = 0f32;
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
    sum
}

/// Q8_0: signed 8-bit quants, one f16 scale per 32.
fn dot_q8_0(row: &[u8], a: &QuantizedRow) -> f32 {
    let (_, bytes) = QuantType::Q8_0.block();
    let mut sum = 0f32;
    for (b, block) in row.chunks_exact(bytes).enumerate() {
        let q8 = &a.qs[32 * b..32 * b + 32];
        let acc: i32 = block[2..34]
            .iter()
            .zip(q8)
            .map(|(&w, &x)| w as i8 as i32 * x as i32)
            .sum();
        sum += half(block, 0) * a.d[b] * acc as f32;
    }
    sum
}

/// Q4_K and Q5_K (`t` says which): 6-bit scales and minimums per 32 in blocks of 256, accumulated in the float order of the kernel `a.order` names.
fn dot_q4_k_q5_k(t: QuantType, row: &[u8], a: &QuantizedRow) -> f32 {
    let (_, bytes) = t.block();
    let mut sum = 0f32;
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
    sum
}

/// Q6_K: 6-bit quants with signed 8-bit scales per 16, summed in ggml's eight AVX2 lanes (or per block for the tiled kernel).
fn dot_q6_k(row: &[u8], a: &QuantizedRow) -> f32 {
    let (_, bytes) = QuantType::Q6_K.block();
    let mut sum = 0f32;
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
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::quantize_activations_for;
    use crate::quant::f32_to_f16;

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

    /// Several weight rows times several activation rows give each pair's one-row result
    /// to the bit, for every way the kernel splits the work (pairs of weight rows and an
    /// odd one; groups of four activation rows and a padded remainder).
    #[test]
    fn batched_products_match_one_row_at_a_time() {
        let n = 512;
        // (format, how the first rows are ordered, how many of them): as `matmul` orders
        // a batch, plus every K-quant order on its own.
        let cases = [
            (QuantType::Q4_0, DotOrder::Row, 0),
            (QuantType::Q4_1, DotOrder::Row, 0),
            (QuantType::Q8_0, DotOrder::Row, 0),
            (QuantType::Q5_0, DotOrder::Row, 0),
            (QuantType::Q6_K, DotOrder::Row, 0),
            (QuantType::Q6_K, DotOrder::Tiled, usize::MAX),
            (QuantType::Q6_K, DotOrder::Tiled, 4),
            (QuantType::Q4_K, DotOrder::Row, 0),
            (QuantType::Q4_K, DotOrder::Repacked, 4),
            (QuantType::Q4_K, DotOrder::Repacked, 8),
            (QuantType::Q4_K, DotOrder::Tiled, usize::MAX),
        ];
        for (t, order, ordered) in cases {
            let (elements, size) = t.block();
            let weights = blocks(t, 3 * n / elements);
            let row_bytes = size * n / elements;
            for count in [1, 2, 3, 4, 5, 7, 8, 9] {
                let inputs: Vec<QuantizedRow> = (0..count)
                    .map(|r| {
                        let x: Vec<f32> = (0..n)
                            .map(|i| ((i * 37 + r * 11) % 101) as f32 / 17.0 - 3.0 + r as f32)
                            .collect();
                        let o = if r < ordered { order } else { DotOrder::Row };
                        quantize_activations_for(&x, t.activation_format(), o)
                    })
                    .collect();
                let batch = Batch::new(t, &inputs);
                for weight_rows in 1..=3 {
                    let rows = &weights[..weight_rows * row_bytes];
                    let mut out = vec![f32::NAN; weight_rows * count];
                    dot_batch(rows, row_bytes, &batch, &mut out);
                    for (r, w) in rows.chunks_exact(row_bytes).enumerate() {
                        for (i, a) in inputs.iter().enumerate() {
                            let one = dot_quantized(t, w, a);
                            assert_eq!(
                                out[r * count + i].to_bits(),
                                one.to_bits(),
                                "{t:?} {order:?}: {weight_rows} × {count} rows, pair ({r}, {i})"
                            );
                        }
                    }
                }
            }
        }
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
}
