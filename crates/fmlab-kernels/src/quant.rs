//! ggml's block formats: dequantisation, dot products against f32 vectors, f16 conversion
//! (quantisation is `quantize.rs`, which builds on this module).
//!
//! Layouts follow ggml (`ggml-common.h`): every block starts with its f16 scale(s), then the
//! packed quants. A row of `n` weights is `n / block_elements` consecutive blocks.
//!
//! Dot products dequantise one block at a time into a small f32 buffer and multiply it into
//! the input with eight independent accumulators, a shape LLVM vectorises (AVX2/FMA when the
//! binary is built for the machine; see `simd.rs` for the hand-written paths chosen at run
//! time for the hottest types).

use crate::{Error, Result};

/// The weight formats the kernels compute with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum QuantType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4_K,
    Q5_K,
    Q6_K,
}

impl QuantType {
    /// Elements per block and bytes per block.
    pub fn block(self) -> (usize, usize) {
        match self {
            QuantType::F32 => (1, 4),
            QuantType::F16 | QuantType::BF16 => (1, 2),
            QuantType::Q4_0 => (32, 18),
            QuantType::Q4_1 => (32, 20),
            QuantType::Q5_0 => (32, 22),
            QuantType::Q5_1 => (32, 24),
            QuantType::Q8_0 => (32, 34),
            QuantType::Q4_K => (256, 144),
            QuantType::Q5_K => (256, 176),
            QuantType::Q6_K => (256, 210),
        }
    }

    /// The ggml name (`q4_K`, `f16`).
    pub fn name(self) -> &'static str {
        match self {
            QuantType::F32 => "f32",
            QuantType::F16 => "f16",
            QuantType::BF16 => "bf16",
            QuantType::Q4_0 => "q4_0",
            QuantType::Q4_1 => "q4_1",
            QuantType::Q5_0 => "q5_0",
            QuantType::Q5_1 => "q5_1",
            QuantType::Q8_0 => "q8_0",
            QuantType::Q4_K => "q4_K",
            QuantType::Q5_K => "q5_K",
            QuantType::Q6_K => "q6_K",
        }
    }

    /// Bytes of a row of `n` weights; an error if `n` is not a whole number of blocks.
    pub fn row_bytes(self, n: usize) -> Result<usize> {
        let (elements, bytes) = self.block();
        if !n.is_multiple_of(elements) {
            return Err(Error::Quant(format!(
                "a row of {n} weights is not a whole number of {} blocks of {elements}",
                self.name()
            )));
        }
        Ok(n / elements * bytes)
    }
}

/// IEEE half precision to f32, through a table of all 65 536 values (built once): the
/// block formats convert two or three scales per 32 weights, so this is on the hot path.
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    static TABLE: std::sync::OnceLock<Box<[f32]>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (0..=u16::MAX).map(f16_to_f32_exact).collect());
    table[bits as usize]
}

/// `x` rounded to the nearest f16 by F16C: `f16_to_f32(f32_to_f16(x))` (the same bits for
/// every number; see the rounding test in `ops::scores`), without the software rounding's
/// branches and its 256 KB table, whose lookups miss the cache in hot loops.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "f16c")]
pub(crate) fn f16c_round(x: f32) -> f32 {
    use std::arch::x86_64::*;
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(
        _mm_set_ss(x),
    )))
}

/// IEEE half precision to f32, computed.
pub fn f16_to_f32_exact(bits: u16) -> f32 {
    let sign = ((bits >> 15) as u32) << 31;
    let exponent = ((bits >> 10) & 0x1f) as u32;
    let mantissa = (bits & 0x3ff) as u32;
    let out = if exponent == 0 {
        if mantissa == 0 {
            sign
        } else {
            // Subnormal: renormalise.
            let shift = mantissa.leading_zeros() - 21;
            let m = (mantissa << shift) & 0x3ff;
            let e = 113 - shift;
            sign | (e << 23) | (m << 13)
        }
    } else if exponent == 0x1f {
        sign | 0x7f80_0000 | (mantissa << 13)
    } else {
        sign | ((exponent + 112) << 23) | (mantissa << 13)
    };
    f32::from_bits(out)
}

/// f32 to IEEE half precision, rounding to nearest even.
pub fn f32_to_f16(value: f32) -> u16 {
    let x = value.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exponent = ((x >> 23) & 0xff) as i32;
    let mantissa = x & 0x7f_ffff;
    if exponent == 0xff {
        return sign | 0x7c00 | if mantissa != 0 { 0x200 } else { 0 };
    }
    let e = exponent - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mantissa | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1 << (shift - 1);
        let rounded = (m + half - 1 + ((m >> shift) & 1)) >> shift;
        return sign | rounded as u16;
    }
    let rounded = mantissa + 0xfff + ((mantissa >> 13) & 1);
    if rounded & 0x80_0000 != 0 {
        let e = e + 1;
        if e >= 0x1f {
            return sign | 0x7c00;
        }
        return sign | ((e as u16) << 10);
    }
    sign | ((e as u16) << 10) | ((rounded >> 13) as u16)
}

#[inline]
fn half(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Dequantises one block of `t` (`block` holds exactly one block's bytes) into `out`
/// (exactly one block's elements).
#[inline]
pub fn dequantize_block(t: QuantType, block: &[u8], out: &mut [f32]) {
    match t {
        QuantType::F32 => out[0] = f32::from_le_bytes([block[0], block[1], block[2], block[3]]),
        QuantType::F16 => out[0] = half(block, 0),
        QuantType::BF16 => {
            out[0] = f32::from_bits((u16::from_le_bytes([block[0], block[1]]) as u32) << 16)
        }
        QuantType::Q4_0 => {
            let d = half(block, 0);
            let qs = &block[2..18];
            for j in 0..16 {
                out[j] = ((qs[j] & 0x0f) as i32 - 8) as f32 * d;
                out[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
            }
        }
        QuantType::Q4_1 => {
            let (d, m) = (half(block, 0), half(block, 2));
            let qs = &block[4..20];
            for j in 0..16 {
                out[j] = (qs[j] & 0x0f) as f32 * d + m;
                out[j + 16] = (qs[j] >> 4) as f32 * d + m;
            }
        }
        QuantType::Q5_0 => {
            let d = half(block, 0);
            let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
            let qs = &block[6..22];
            for j in 0..16 {
                let h0 = ((qh >> j) << 4) & 0x10;
                let h1 = (qh >> (j + 12)) & 0x10;
                out[j] = (((qs[j] & 0x0f) as u32 | h0) as i32 - 16) as f32 * d;
                out[j + 16] = (((qs[j] >> 4) as u32 | h1) as i32 - 16) as f32 * d;
            }
        }
        QuantType::Q5_1 => {
            let (d, m) = (half(block, 0), half(block, 2));
            let qh = u32::from_le_bytes([block[4], block[5], block[6], block[7]]);
            let qs = &block[8..24];
            for j in 0..16 {
                let h0 = ((qh >> j) << 4) & 0x10;
                let h1 = (qh >> (j + 12)) & 0x10;
                out[j] = ((qs[j] & 0x0f) as u32 | h0) as f32 * d + m;
                out[j + 16] = ((qs[j] >> 4) as u32 | h1) as f32 * d + m;
            }
        }
        QuantType::Q8_0 => {
            let d = half(block, 0);
            for (o, &q) in out.iter_mut().zip(&block[2..34]) {
                *o = q as i8 as f32 * d;
            }
        }
        QuantType::Q4_K => {
            let (d, dmin) = (half(block, 0), half(block, 2));
            let scales = &block[4..16];
            let qs = &block[16..144];
            for (chunk, (q, y)) in qs
                .chunks_exact(32)
                .zip(out.chunks_exact_mut(64))
                .enumerate()
            {
                let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
                let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
                for l in 0..32 {
                    y[l] = d1 * (q[l] & 0x0f) as f32 - min1;
                    y[l + 32] = d2 * (q[l] >> 4) as f32 - min2;
                }
            }
        }
        QuantType::Q5_K => {
            let (d, dmin) = (half(block, 0), half(block, 2));
            let scales = &block[4..16];
            let qh = &block[16..48];
            let qs = &block[48..176];
            for (chunk, (q, y)) in qs
                .chunks_exact(32)
                .zip(out.chunks_exact_mut(64))
                .enumerate()
            {
                let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
                let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
                let (u1, u2) = (1u8 << (2 * chunk), 2u8 << (2 * chunk));
                for l in 0..32 {
                    let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                    let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                    y[l] = d1 * ((q[l] & 0x0f) + h1) as f32 - min1;
                    y[l + 32] = d2 * ((q[l] >> 4) + h2) as f32 - min2;
                }
            }
        }
        QuantType::Q6_K => {
            let ql_all = &block[0..128];
            let qh_all = &block[128..192];
            let sc_all = &block[192..208];
            let d = half(block, 208);
            for n in 0..2 {
                let ql = &ql_all[64 * n..];
                let qh = &qh_all[32 * n..];
                let sc = &sc_all[8 * n..];
                let y = &mut out[128 * n..];
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
                    let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                    y[l] = d * (sc[is] as i8 as f32) * q1 as f32;
                    y[l + 32] = d * (sc[is + 2] as i8 as f32) * q2 as f32;
                    y[l + 64] = d * (sc[is + 4] as i8 as f32) * q3 as f32;
                    y[l + 96] = d * (sc[is + 6] as i8 as f32) * q4 as f32;
                }
            }
        }
    }
}

/// Dequantises a whole row (`row.len()` must be `row_bytes(out.len())`).
pub fn dequantize_row(t: QuantType, row: &[u8], out: &mut [f32]) -> Result<()> {
    let expected = t.row_bytes(out.len())?;
    if row.len() != expected {
        return Err(Error::Quant(format!(
            "{} row of {} weights needs {expected} bytes, got {}",
            t.name(),
            out.len(),
            row.len()
        )));
    }
    let (elements, bytes) = t.block();
    match t {
        QuantType::F32 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        _ => {
            for (block, y) in row.chunks_exact(bytes).zip(out.chunks_exact_mut(elements)) {
                dequantize_block(t, block, y);
            }
        }
    }
    Ok(())
}

/// `Σ w·x` for one stored row `row` and an f32 vector `x` of the row's length: the path of
/// f32/f16/bf16 storage (block formats multiply quantized activations, see `q8.rs`). The
/// caller guarantees the lengths agree (checked once per matrix, not per row).
#[inline]
pub fn dot_row(t: QuantType, row: &[u8], x: &[f32]) -> f32 {
    let (elements, bytes) = t.block();
    if t == QuantType::F32 {
        let mut acc = [0f32; 8];
        let mut chunks = row.chunks_exact(32);
        let mut xs = x.chunks_exact(8);
        for (c, xc) in (&mut chunks).zip(&mut xs) {
            for i in 0..8 {
                let w = f32::from_le_bytes([c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]]);
                acc[i] += w * xc[i];
            }
        }
        let mut sum: f32 = acc.iter().sum();
        for (c, &xv) in chunks.remainder().chunks_exact(4).zip(xs.remainder()) {
            sum += f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * xv;
        }
        return sum;
    }
    let mut buffer = [0f32; 256];
    let buf = &mut buffer[..elements.max(1)];
    if elements == 1 {
        // f16 / bf16: convert and accumulate directly.
        let mut acc = [0f32; 8];
        let mut it = row.chunks_exact(2).zip(x).enumerate();
        for (i, (b, &xv)) in &mut it {
            let w = if t == QuantType::F16 {
                half(b, 0)
            } else {
                f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)
            };
            acc[i % 8] += w * xv;
        }
        return acc.iter().sum();
    }
    let mut acc = [0f32; 8];
    for (block, xb) in row.chunks_exact(bytes).zip(x.chunks_exact(elements)) {
        dequantize_block(t, block, buf);
        for (w8, x8) in buf.chunks_exact(8).zip(xb.chunks_exact(8)) {
            for i in 0..8 {
                acc[i] += w8[i] * x8[i];
            }
        }
    }
    acc.iter().sum()
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

    #[test]
    fn half_precision_round_trips() {
        for &v in &[
            0.0f32,
            1.0,
            -2.5,
            65504.0,
            6.1035156e-5,
            5.9604645e-8,
            -0.333_251_95,
        ] {
            assert_eq!(f16_to_f32(f32_to_f16(v)), v, "{v}");
        }
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
