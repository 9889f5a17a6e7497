//! Quantization: f32 rows to ggml's block formats, by the arithmetic of ggml's reference
//! quantizers (`quantize_row_*_ref` in `ggml-quants.c`, no importance matrix), so that the
//! bytes equal what `llama-quantize` writes for the same input.
//!
//! Equality needs the same float operations in the same order: every product and sum below
//! is written in the order C evaluates ggml's expressions (`w*l*l` is `(w·l)·l`), with no
//! fused multiply-add (ggml-base is built without `-march` flags, so none is contracted), and
//! the conversions C makes: `(int8_t)f` truncates through a 32-bit `cvttss2si`
//! ([`trunc_i32`]), `nearest_int` adds 1.5·2²³ and reads the mantissa ([`nearest_int`]),
//! scales round to f16 to nearest even ([`f32_to_f16`]).
//!
//! The 32-element formats take one pass over a block; the K-quants search for each
//! sub-block's scale (and min): Q4_K/Q5_K fit scale and min by weighted least squares over
//! 21 / 16 candidate grids (`make_qkx2_quants`), Q6_K tries 19 scales per 16 weights
//! (`make_qx_quants`), then the sub-block scales are themselves quantized to 6 or 8 bits and
//! the weights quantized again against the rounded scales.

use crate::quant::{f16_to_f32, f32_to_f16, scale_min_k4, QuantType};
use crate::{Error, Result};

/// Quantizes `x` (a whole number of `t`'s blocks) into `out` (exactly `t.row_bytes(x.len())`
/// bytes). Any number of rows may be passed at once: blocks never span rows.
pub fn quantize_row_into(t: QuantType, x: &[f32], out: &mut [u8]) -> Result<()> {
    let expected = t.row_bytes(x.len())?;
    if out.len() != expected {
        return Err(Error::Quant(format!(
            "{} output for {} weights needs {expected} bytes, got {}",
            t.name(),
            x.len(),
            out.len()
        )));
    }
    let (elements, bytes) = t.block();
    let blocks = x.chunks_exact(elements).zip(out.chunks_exact_mut(bytes));
    match t {
        QuantType::F32 => blocks.for_each(|(x, y)| y.copy_from_slice(&x[0].to_le_bytes())),
        QuantType::F16 => {
            blocks.for_each(|(x, y)| y.copy_from_slice(&f32_to_f16(x[0]).to_le_bytes()))
        }
        QuantType::BF16 => {
            blocks.for_each(|(x, y)| y.copy_from_slice(&f32_to_bf16(x[0]).to_le_bytes()))
        }
        QuantType::Q4_0 => blocks.for_each(|(x, y)| q4_0(x, y)),
        QuantType::Q4_1 => blocks.for_each(|(x, y)| q4_1(x, y)),
        QuantType::Q5_0 => blocks.for_each(|(x, y)| q5_0(x, y)),
        QuantType::Q5_1 => blocks.for_each(|(x, y)| q5_1(x, y)),
        QuantType::Q8_0 => blocks.for_each(|(x, y)| q8_0(x, y)),
        QuantType::Q4_K => blocks.for_each(|(x, y)| q4_k(x, y)),
        QuantType::Q5_K => blocks.for_each(|(x, y)| q5_k(x, y)),
        QuantType::Q6_K => blocks.for_each(|(x, y)| q6_k(x, y)),
    }
    Ok(())
}

/// [`quantize_row_into`] into a new buffer.
pub fn quantize_row(t: QuantType, x: &[f32]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; t.row_bytes(x.len())?];
    quantize_row_into(t, x, &mut out)?;
    Ok(out)
}

/// Quantizes a row (its length a multiple of 32) to Q8_0 blocks as ggml's reference
/// `quantize_row_q8_0_ref` does: per block d = max|x| / 127 stored as f16, and
/// q = round(x / d) (half away from zero), so exported files match llama.cpp's converter.
pub fn quantize_q8_0(row: &[f32]) -> Result<Vec<u8>> {
    if !row.len().is_multiple_of(32) {
        return Err(Error::Quant(format!(
            "Q8_0 needs rows of a multiple of 32 values, got {}",
            row.len()
        )));
    }
    quantize_row(QuantType::Q8_0, row)
}

/// f32 to bfloat16 as ggml's `ggml_compute_fp32_to_bf16`: round to nearest even, NaNs kept
/// quiet.
pub fn f32_to_bf16(value: f32) -> u16 {
    let u = value.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// C's float → integer conversion as x86-64 performs it (`cvttss2si`): truncation toward
/// zero, and `i32::MIN` for NaN and values out of range. `(int8_t)f` and `(uint8_t)f` keep
/// the low byte of this.
#[inline]
fn trunc_i32(f: f32) -> i32 {
    if f.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&f) {
        i32::MIN
    } else {
        f as i32
    }
}

/// ggml's `nearest_int`: adds 1.5·2²³ so that the float's mantissa holds the rounded
/// integer (ties to even), valid for |f| < 2²².
#[inline]
fn nearest_int(f: f32) -> i32 {
    let val = f + 12_582_912.0;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

fn put_f16(out: &mut [u8], at: usize, v: f32) {
    out[at..at + 2].copy_from_slice(&f32_to_f16(v).to_le_bytes());
}

/// The element of largest magnitude, the first of equals (ggml's `amax < fabsf(v)` scan).
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// Q4_0: d = max / −8 (max the signed element of largest magnitude, so it maps to −8), q =
/// x/d + 8 truncated after adding ½, at most 15.
fn q4_0(x: &[f32], y: &mut [u8]) {
    let d = signed_absmax(x) / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(y, 0, d);
    for j in 0..16 {
        let q0 = (trunc_i32(x[j] * id + 8.5) as i8).min(15) as u8;
        let q1 = (trunc_i32(x[j + 16] * id + 8.5) as i8).min(15) as u8;
        y[2 + j] = q0 | (q1 << 4);
    }
}

/// Q4_1: d = (max − min) / 15, m = min, q = (x − min)/d rounded half up, at most 15.
fn q4_1(x: &[f32], y: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(y, 0, d);
    put_f16(y, 2, min);
    for j in 0..16 {
        let q0 = (trunc_i32((x[j] - min) * id + 0.5) as i8).min(15) as u8;
        let q1 = (trunc_i32((x[j + 16] - min) * id + 0.5) as i8).min(15) as u8;
        y[4 + j] = q0 | (q1 << 4);
    }
}

/// Q5_0: as Q4_0 with d = max / −16 and 5-bit quants, the fifth bits gathered in `qh`.
fn q5_0(x: &[f32], y: &mut [u8]) {
    let d = signed_absmax(x) / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(y, 0, d);
    let mut qh = 0u32;
    for j in 0..16 {
        let q0 = (trunc_i32(x[j] * id + 16.5) as i8).min(31) as u8;
        let q1 = (trunc_i32(x[j + 16] * id + 16.5) as i8).min(31) as u8;
        y[6 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
        qh |= (((q0 & 0x10) >> 4) as u32) << j;
        qh |= (((q1 & 0x10) >> 4) as u32) << (j + 16);
    }
    y[2..6].copy_from_slice(&qh.to_le_bytes());
}

/// Q5_1: as Q4_1 with d = (max − min) / 31 and 5-bit quants (ggml does not clamp these).
fn q5_1(x: &[f32], y: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(y, 0, d);
    put_f16(y, 2, min);
    let mut qh = 0u32;
    for j in 0..16 {
        let q0 = trunc_i32((x[j] - min) * id + 0.5) as u8;
        let q1 = trunc_i32((x[j + 16] - min) * id + 0.5) as u8;
        y[8 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
        qh |= (((q0 & 0x10) >> 4) as u32) << j;
        qh |= (((q1 & 0x10) >> 4) as u32) << (j + 16);
    }
    y[4..8].copy_from_slice(&qh.to_le_bytes());
}

/// Q8_0: d = max|x| / 127, q = round(x/d) half away from zero.
fn q8_0(x: &[f32], y: &mut [u8]) {
    let amax = x
        .iter()
        .fold(0f32, |m, v| if m > v.abs() { m } else { v.abs() });
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(y, 0, d);
    for (q, &v) in y[2..34].iter_mut().zip(x) {
        *q = trunc_i32((v * id).round()) as u8;
    }
}

/// ggml's `make_qkx2_quants`: the scale and min (returned as `(scale, −min)`, min ≤ 0) of
/// `x` with levels 0..=nmax minimising the weighted squared error, over the grid of
/// `nstep + 1` inverse scales `(rmin + rdelta·is + nmax) / (max − min)`, each followed by a
/// least-squares fit of scale and min to the levels it gives. `levels` receives the best
/// levels, `aux` is scratch of the same length.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    levels: &mut [u8],
    aux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels[..n].fill(0);
        return (0.0, -min);
    }
    let nmax_f = nmax as f32;
    let iscale = nmax_f / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        levels[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    for is in 0..=nstep {
        let iscale = (rmin + rdelta * is as f32 + nmax_f) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            aux[i] = l as u8;
            let (w, lf) = (weights[i], l as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let diff = this_scale * aux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * (diff * diff);
            }
            if cur_error < best_error {
                levels[..n].copy_from_slice(&aux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml's `make_qx_quants` with `rmse_type` 1 (weights x²): the scale of `x` with signed
/// levels −nmax..nmax−1 (stored offset by nmax in `levels`), the best of 19 trial scales by
/// weighted least squares.
fn make_qx_quants(nmax: i32, x: &[f32], levels: &mut [i8]) -> f32 {
    let max = signed_absmax(x);
    if max.abs() < 1e-15 {
        levels[..x.len()].fill(0);
        return 0.0;
    }
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    // Σ w·x·l and Σ w·l² with w = x², in ggml's order.
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let l = level(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let iscale = -nmax as f32 / max;
    for (q, &v) in levels.iter_mut().zip(x) {
        *q = (level(iscale, v) + nmax) as i8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (q, &v) in levels.iter_mut().zip(x) {
                *q = (level(iscale, v) + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// The 12 bytes of eight 6-bit scales and mins of a Q4_K/Q5_K block (the inverse of
/// [`scale_min_k4`]).
fn pack_scales_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = ls[j] | ((ls[j + 4] >> 4) << 6);
        s[j + 4] = lm[j] | ((lm[j + 4] >> 4) << 6);
        s[j + 8] = (ls[j + 4] & 0x0f) | ((lm[j + 4] & 0x0f) << 4);
    }
    s
}

/// The shared part of Q4_K and Q5_K: per 32 weights a scale and min by
/// [`make_qkx2_quants`] (weights `rms(x) + |x|`), both quantized to 6 bits against the
/// block's largest (d, dmin in f16), then the levels recomputed against the rounded
/// scales. Returns the 12 scale bytes, d, dmin, and the 256 levels.
fn quantize_k4(
    x: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
    levels: &mut [u8; 256],
) -> ([u8; 12], u16, u16) {
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    let mut weights = [0f32; 32];
    let mut aux = [0u8; 32];
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (scale, min) = make_qkx2_quants(
            nmax,
            xs,
            &weights,
            &mut levels[32 * j..32 * j + 32],
            &mut aux,
            rmin,
            0.1,
            nstep,
        );
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..8 {
        // ggml stores nearest_int's result in a uint8_t (keeping the low byte), then caps it.
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    let packed = pack_scales_k4(&ls, &lm);
    let d_bits = f32_to_f16(max_scale / 63.0);
    let dmin_bits = f32_to_f16(max_min / 63.0);
    let (d_all, dmin_all) = (f16_to_f32(d_bits), f16_to_f32(dmin_bits));
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &packed);
        let d = d_all * sc as f32;
        if d == 0.0 {
            // ggml keeps the levels of the search for a sub-block whose scale rounds to 0.
            continue;
        }
        let dm = dmin_all * m as f32;
        for i in 32 * j..32 * j + 32 {
            levels[i] = nearest_int((x[i] + dm) / d).clamp(0, nmax) as u8;
        }
    }
    (packed, d_bits, dmin_bits)
}

/// Q4_K: 8 sub-blocks of 32, 4-bit levels, 6-bit scales and mins; 144 bytes.
fn q4_k(x: &[f32], y: &mut [u8]) {
    let mut levels = [0u8; 256];
    let (scales, d, dmin) = quantize_k4(x, 15, -1.0, 20, &mut levels);
    y[0..2].copy_from_slice(&d.to_le_bytes());
    y[2..4].copy_from_slice(&dmin.to_le_bytes());
    y[4..16].copy_from_slice(&scales);
    for (chunk, q) in y[16..144].chunks_exact_mut(32).enumerate() {
        let l = &levels[64 * chunk..64 * chunk + 64];
        for i in 0..32 {
            q[i] = l[i] | (l[i + 32] << 4);
        }
    }
}

/// Q5_K: as Q4_K with 5-bit levels, the fifth bits in `qh`; 176 bytes.
fn q5_k(x: &[f32], y: &mut [u8]) {
    let mut levels = [0u8; 256];
    let (scales, d, dmin) = quantize_k4(x, 31, -0.5, 15, &mut levels);
    y[0..2].copy_from_slice(&d.to_le_bytes());
    y[2..4].copy_from_slice(&dmin.to_le_bytes());
    y[4..16].copy_from_slice(&scales);
    let (qh, ql) = y[16..176].split_at_mut(32);
    qh.fill(0);
    for (chunk, q) in ql.chunks_exact_mut(32).enumerate() {
        let (m1, m2) = (1u8 << (2 * chunk), 2u8 << (2 * chunk));
        let l = &levels[64 * chunk..64 * chunk + 64];
        for i in 0..32 {
            let (mut l1, mut l2) = (l[i], l[i + 32]);
            if l1 > 15 {
                l1 -= 16;
                qh[i] |= m1;
            }
            if l2 > 15 {
                l2 -= 16;
                qh[i] |= m2;
            }
            q[i] = l1 | (l2 << 4);
        }
    }
}

/// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales against one f16 d, 6-bit levels;
/// 210 bytes (`ql` 128, `qh` 64, scales 16, d).
fn q6_k(x: &[f32], y: &mut [u8]) {
    let mut levels = [0i8; 256];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
    for ib in 0..16 {
        let scale = make_qx_quants(32, &x[16 * ib..16 * ib + 16], &mut levels[16 * ib..]);
        scales[ib] = scale;
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = scale;
        }
    }
    if max_abs_scale < 1e-15 {
        y[..210].fill(0);
        return;
    }
    let iscale = -128.0 / max_scale;
    let d_bits = f32_to_f16(1.0 / iscale);
    let d_all = f16_to_f32(d_bits);
    let mut sc = [0i8; 16];
    for ib in 0..16 {
        sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
    }
    for (j, &s) in sc.iter().enumerate() {
        let d = d_all * s as f32;
        if d == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            levels[i] = (nearest_int(x[i] / d).clamp(-32, 31) + 32) as i8;
        }
    }
    let (ql_all, rest) = y.split_at_mut(128);
    let (qh_all, rest) = rest.split_at_mut(64);
    for half in 0..2 {
        let l = &levels[128 * half..128 * half + 128];
        let ql = &mut ql_all[64 * half..64 * half + 64];
        let qh = &mut qh_all[32 * half..32 * half + 32];
        for i in 0..32 {
            let (a, b, c, e) = (
                l[i] as u8,
                l[i + 32] as u8,
                l[i + 64] as u8,
                l[i + 96] as u8,
            );
            ql[i] = (a & 0x0f) | ((c & 0x0f) << 4);
            ql[i + 32] = (b & 0x0f) | ((e & 0x0f) << 4);
            qh[i] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
        }
    }
    for (o, &s) in rest[..16].iter_mut().zip(&sc) {
        *o = s as u8;
    }
    rest[16..18].copy_from_slice(&d_bits.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dequantize_row;

    fn get_f16(b: &[u8], at: usize) -> f32 {
        f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
    }

    /// A seeded row of weights shaped like a model's: mostly small, a few outliers, some
    /// exact zeros and a whole zero block.
    fn weights(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = ((s >> 40) as f32) / (1u64 << 24) as f32 - 0.5;
                if (256..288).contains(&i) || i % 97 == 5 {
                    0.0
                } else if i % 61 == 0 {
                    u * 0.8
                } else {
                    u * 0.05
                }
            })
            .collect()
    }

    fn round_trip(t: QuantType, x: &[f32]) -> Vec<f32> {
        let bytes = quantize_row(t, x).unwrap();
        assert_eq!(bytes.len(), t.row_bytes(x.len()).unwrap());
        let mut back = vec![0f32; x.len()];
        dequantize_row(t, &bytes, &mut back).unwrap();
        back
    }

    /// Each format's error, per block, stays within its step: half a step for the formats
    /// that round to the nearest level of a fixed grid; for the K-quants, whose levels are
    /// fitted by least squares and whose scales are themselves rounded, a bound relative to
    /// the block's range. Zero blocks come back exactly zero.
    #[test]
    fn every_format_round_trips_within_its_step() {
        let x = weights(1024, 7);
        // (format, steps across a block's range, slack in steps). Q4_0 and Q5_0 map the
        // largest magnitude to −8 (−16) steps, so the other end of the range reaches only
        // +7 (+15) and is clipped there by up to one step.
        let cases = [
            (QuantType::Q4_0, 16.0, 1.0),
            (QuantType::Q4_1, 15.0, 0.5),
            (QuantType::Q5_0, 32.0, 1.0),
            (QuantType::Q5_1, 31.0, 0.5),
            (QuantType::Q8_0, 254.0, 0.5),
            (QuantType::Q4_K, 15.0, 1.0),
            (QuantType::Q5_K, 31.0, 1.0),
            (QuantType::Q6_K, 63.0, 1.0),
        ];
        for (t, levels, slack) in cases {
            let back = round_trip(t, &x);
            let block = t.block().0;
            // The error in steps of each block, squared and summed over the row.
            let mut total_sq = 0f64;
            for (xs, bs) in x.chunks(block).zip(back.chunks(block)) {
                let (lo, hi) = xs
                    .iter()
                    .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                // The grid spans the block's range (twice its largest magnitude for the
                // symmetric formats); the f16 scale's rounding (2⁻¹² relative) moves a
                // level up to `levels` steps from zero by up to levels·2⁻¹² steps.
                let span = (hi - lo).max(2.0 * hi.abs().max(lo.abs()));
                let step = span / levels;
                let bound = step * (slack + levels / 4096.0) + 1e-7;
                for (&a, &b) in xs.iter().zip(bs) {
                    let err = (a - b).abs();
                    assert!(
                        err <= bound,
                        "{}: {a} came back as {b} (step {step})",
                        t.name()
                    );
                    if step > 0.0 {
                        total_sq += ((err / step) as f64).powi(2);
                    }
                }
            }
            // Rounding to the nearest level leaves an error uniform over ±½ step: an RMS
            // of 0.29 steps.
            let rms = (total_sq / x.len() as f64).sqrt();
            eprintln!("{}: rms {rms:.3} steps", t.name());
            assert!(rms < 0.35, "{}: rms error {rms} steps", t.name());
            // The block of zeros (elements 256..288) stays zero.
            assert!(back[256..288].iter().all(|&v| v == 0.0), "{}", t.name());
        }
    }

    /// More bits, less error: on the same weights the RMS error falls from 4 to 5 to 6
    /// to 8 bits, and the K-quants do better than the 32-element formats of their width.
    #[test]
    fn error_falls_with_bits() {
        let x = weights(4096, 11);
        let rms = |t| {
            let back = round_trip(t, &x);
            let s: f64 = x
                .iter()
                .zip(&back)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum();
            (s / x.len() as f64).sqrt()
        };
        let e: Vec<f64> = [
            QuantType::Q4_0,
            QuantType::Q4_K,
            QuantType::Q5_0,
            QuantType::Q5_K,
            QuantType::Q6_K,
            QuantType::Q8_0,
        ]
        .into_iter()
        .map(rms)
        .collect();
        assert!(e[1] < e[0] && e[3] < e[2], "{e:?}");
        assert!(e[0] > e[2] && e[2] > e[4] && e[4] > e[5], "{e:?}");
    }

    /// The symmetric formats map the signed element of largest magnitude to the end of
    /// their grid exactly: −8 for Q4_0, −16 for Q5_0, ±127 for Q8_0.
    #[test]
    fn symmetric_formats_use_the_whole_grid() {
        let mut x: Vec<f32> = (0..32).map(|i| i as f32 / 10.0 - 1.0).collect();
        x[3] = 2.5;
        let q = quantize_row(QuantType::Q4_0, &x).unwrap();
        assert_eq!(get_f16(&q, 0), f16_to_f32(f32_to_f16(2.5 / -8.0)));
        assert_eq!(q[2 + 3] & 0x0f, 0, "2.5 is level 0, i.e. −8 steps");
        let q = quantize_row(QuantType::Q5_0, &x).unwrap();
        assert_eq!(q[6 + 3] & 0x0f, 0);
        assert_eq!(q[2] & (1 << 3), 0, "fifth bit of level 0");
        let q = quantize_row(QuantType::Q8_0, &x).unwrap();
        assert_eq!(q[2 + 3] as i8, 127);
    }

    #[test]
    fn ggml_rounding_helpers() {
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-0.4), 0);
        assert_eq!(nearest_int(17.6), 18);
        assert_eq!(trunc_i32(15.9), 15);
        assert_eq!(trunc_i32(-0.7), 0);
        assert_eq!(trunc_i32(f32::NAN), i32::MIN);
        assert_eq!(trunc_i32(3e9), i32::MIN);
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        // Ties to even: 1 + 2⁻⁸ lies halfway between two bfloat16 values.
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
    }

    #[test]
    fn lengths_are_checked() {
        assert!(quantize_row(QuantType::Q4_K, &[0.0; 288]).is_err());
        assert!(quantize_row_into(QuantType::Q4_0, &[0.0; 32], &mut [0u8; 17]).is_err());
        assert!(quantize_q8_0(&[1.0; 33]).is_err());
        let zeros = quantize_row(QuantType::Q6_K, &[0.0; 256]).unwrap();
        assert!(zeros.iter().all(|&b| b == 0));
    }

    /// Q8_0 quantization: dequantizing gives every value back within half a step of its
    /// block, the largest magnitude exactly ±127 steps, and a zero block stays zero.
    #[test]
    fn q8_0_quantization_round_trips() {
        let row: Vec<f32> = (0..96)
            .map(|i| {
                if i < 32 {
                    0.0
                } else {
                    ((i * 37 % 101) as f32 - 50.0) / 7.0
                }
            })
            .collect();
        let bytes = quantize_q8_0(&row).unwrap();
        assert_eq!(bytes.len(), 3 * 34);
        let mut back = vec![0f32; 96];
        dequantize_row(QuantType::Q8_0, &bytes, &mut back).unwrap();
        for (b, chunk) in row.chunks(32).enumerate() {
            let d = get_f16(&bytes, b * 34);
            for (k, &x) in chunk.iter().enumerate() {
                assert!(
                    (back[b * 32 + k] - x).abs() <= d / 2.0 + 1e-3 * d.max(1e-6),
                    "{x}"
                );
            }
            let qmax = bytes[b * 34 + 2..b * 34 + 34]
                .iter()
                .map(|&q| (q as i8).unsigned_abs())
                .max();
            assert_eq!(qmax, Some(if b == 0 { 0 } else { 127 }));
        }
    }
}
