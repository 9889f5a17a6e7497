//! Attention's scores and softmax for a prompt's query rows on AVX2, eight keys at a time:
//! the query's eight features are loaded once for eight keys, the eight dot products are
//! reduced together, the exponentials run as vectors, and the probabilities are rounded
//! to f16 by the F16C instructions. Every lane takes the steps of the scalar loop in
//! `attention_row` (ggml's `dot8` order for `q · k`, ggml's exp, the sum per group of eight
//! in its horizontal order, f16 rounding to nearest even), so the probabilities are the
//! same bits; the scalar loop stays for other CPUs, head sizes and one-token decoding.

/// Whether the CPU has what [`scores_softmax`] needs: AVX2, FMA and F16C.
pub(super) fn available() -> bool {
    crate::simd::avx2_fma_f16c()
}

/// Softmax probabilities of the query heads `qh` (one or more heads of `hd` features, one
/// after another, already f16-rounded and scaled) over the keys at positions
/// `first..end` (row `kp` of `k` is `kv_width` apart, the heads' key-value head's features
/// from `off`), positions before `start` weighing 0: head `h`'s at
/// `scores[h · (end − first) + kp − first]`, each f16-rounded. With `kt`, that key-value
/// head's keys in pairs (`wide::keys_by_pair`), the AVX-512 products take sixteen keys
/// and two heads at a time. Requires `hd` a multiple of 8 and [`available`]; returns
/// `false` (having written nothing) otherwise.
#[allow(clippy::too_many_arguments)]
pub(super) fn scores_softmax(
    qh: &[f32],
    (k, kt): (&[f32], Option<&[f32]>),
    kv_width: usize,
    off: usize,
    [first, start, end]: [usize; 3],
    score_scale: f32,
    scores: &mut [f32],
) -> bool {
    let len = end.saturating_sub(first);
    let heads = scores.len().checked_div(len).unwrap_or(0);
    let hd = qh.len().checked_div(heads).unwrap_or(0);
    if !available()
        || hd == 0
        || !hd.is_multiple_of(8)
        || first > start
        || start >= end
        || scores.len() != heads * len
        || qh.len() != heads * hd
        || (end - 1) * kv_width + off + hd > k.len()
    {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2, FMA and F16C are present (`available`); every key row read lies in `k`
    // (checked above) and `scores` has one slot per head and position.
    unsafe {
        avx2::scores_softmax(
            qh,
            (k, kt),
            kv_width,
            off,
            [first, start, end],
            score_scale,
            scores,
        )
    };
    true
}

/// The softmax of [`scores_softmax`] alone, in place on one head's scores already
/// computed (positions `first..`, those before `start` masked): `false`, having written
/// nothing, where the CPU lacks what it needs.
pub(super) fn softmax_in_place(scores: &mut [f32], first: usize, start: usize) -> bool {
    if !available() || scores.is_empty() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2, FMA and F16C are present (`available`).
    unsafe {
        avx2::softmax(scores, first, start)
    };
    true
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::{dot8, exp_group, hsum8};

    /// Eight keys' `q · k` (keys `kp..kp + 8`), each summed as `dot8` sums it.
    ///
    /// # Safety
    /// AVX2 and FMA; rows `kp..kp + 8` of `k` hold `q.len()` features from `off`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dots8(q: &[f32], k: &[f32], kv_width: usize, off: usize, kp: usize) -> [f32; 8] {
        let mut acc = [_mm256_setzero_ps(); 8];
        // SAFETY: rows kp..kp + 8 hold q.len() features from `off` (caller).
        unsafe {
            let (qp, kptr) = (q.as_ptr(), k.as_ptr().add(kp * kv_width + off));
            for i in (0..q.len()).step_by(8) {
                let x = _mm256_loadu_ps(qp.add(i));
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(x, _mm256_loadu_ps(kptr.add(j * kv_width + i)), *a);
                }
            }
        }
        // Per key: t = low half + high half; u = (t0 + t2, t1 + t3); u0 + u1.
        let mut out = [0f32; 8];
        let mut lanes = [0f32; 8];
        for m in 0..4 {
            let (a, b) = (acc[2 * m], acc[2 * m + 1]);
            let t = _mm256_add_ps(
                _mm256_permute2f128_ps::<0x20>(a, b),
                _mm256_permute2f128_ps::<0x31>(a, b),
            );
            let u = _mm256_add_ps(t, _mm256_permute_ps::<0b01_00_11_10>(t));
            let r = _mm256_add_ps(u, _mm256_permute_ps::<0b10_11_00_01>(u));
            // SAFETY: `lanes` is eight f32.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), r) };
            out[2 * m] = lanes[0];
            out[2 * m + 1] = lanes[4];
        }
        out
    }

    /// ggml's exp of eight values where every one is in its normal range (`|n| ≤ 126`),
    /// `None` otherwise (the caller falls back to [`exp_ggml`] lane by lane).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> Option<__m256> {
        let c = |bits: u32| _mm256_set1_ps(f32::from_bits(bits));
        let shift = c(0x4b40_0000);
        let z = _mm256_fmadd_ps(x, c(0x3fb8_aa3b), shift);
        let n = _mm256_sub_ps(z, shift);
        let sign = _mm256_set1_ps(-0.0);
        if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(
            _mm256_andnot_ps(sign, n),
            _mm256_set1_ps(126.0),
        )) != 0xff
        {
            return None;
        }
        let neg_n = _mm256_xor_ps(n, sign);
        let b = _mm256_fmadd_ps(
            neg_n,
            c(0x35bf_be8e),
            _mm256_fmadd_ps(neg_n, c(0x3f31_7200), x),
        );
        let e = _mm256_slli_epi32::<23>(_mm256_castps_si256(z));
        let k = _mm256_castsi256_ps(_mm256_add_epi32(
            e,
            _mm256_set1_epi32(1f32.to_bits() as i32),
        ));
        let u = _mm256_mul_ps(b, b);
        let a = _mm256_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17));
        let a = _mm256_fmadd_ps(a, u, _mm256_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb)));
        let j = _mm256_fmadd_ps(a, u, _mm256_mul_ps(c(0x3f7f_fff6), b));
        Some(_mm256_fmadd_ps(j, k, k))
    }

    /// See [`super::scores_softmax`].
    ///
    /// # Safety
    /// AVX2, FMA and F16C; the shapes checked by the caller.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scores_softmax(
        qh: &[f32],
        (k, kt): (&[f32], Option<&[f32]>),
        kv_width: usize,
        off: usize,
        [first, start, end]: [usize; 3],
        score_scale: f32,
        scores: &mut [f32],
    ) {
        let len = end - first;
        let heads = scores.len() / len;
        let hd = qh.len() / heads;
        let q = |h: usize| &qh[h * hd..(h + 1) * hd];
        let mut j = 0;
        while j < len {
            let kp = first + j;
            // Sixteen keys at once from the paired layout (see `wide`), where it was made.
            if let Some(kt) = kt.filter(|kt| {
                kp.is_multiple_of(2)
                    && kp >= start
                    && kp + 16 <= end
                    && (kp + 16) * hd <= kt.len()
                    && super::super::wide::available()
            }) {
                let mut h = 0;
                while h < heads {
                    let two = h + 1 < heads;
                    let pair = [q(h), q(if two { h + 1 } else { h })];
                    // SAFETY: AVX-512F and DQ (checked); pairs kp/2..kp/2 + 8 lie in `kt`
                    // (checked) and `hd` is a multiple of 8 (caller).
                    let d = unsafe { super::super::wide::x86::dots16(pair, two, hd, kt, kp / 2) };
                    for (i, dh) in d.iter().enumerate().take(if two { 2 } else { 1 }) {
                        let at = (h + i) * len + j;
                        for (s, v) in scores[at..at + 16].iter_mut().zip(dh) {
                            *s = v * score_scale;
                        }
                    }
                    h += 2;
                }
                j += 16;
            } else if kp >= start && kp + 8 <= end {
                for h in 0..heads {
                    // SAFETY: keys kp..kp + 8 lie in `k` (caller).
                    let d = unsafe { dots8(q(h), k, kv_width, off, kp) };
                    for (s, v) in scores[h * len + j..h * len + j + 8].iter_mut().zip(d) {
                        *s = v * score_scale;
                    }
                }
                j += 8;
            } else {
                for h in 0..heads {
                    scores[h * len + j] = if kp < start {
                        f32::NEG_INFINITY
                    } else {
                        let at = kp * kv_width + off;
                        dot8(q(h), &k[at..at + hd]) * score_scale
                    };
                }
                j += 1;
            }
        }
        for head in scores.chunks_exact_mut(len) {
            // SAFETY: AVX2, FMA and F16C (caller).
            unsafe { softmax(head, first, start) };
        }
    }

    /// The softmax of one head's scores in place (positions `first..`, those before `start`
    /// masked): ggml's exponentials, summed per group of eight in hsum8's order, groups in
    /// f64, then the probabilities f16-rounded.
    ///
    /// # Safety
    /// AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn softmax(scores: &mut [f32], first: usize, start: usize) {
        // The largest score, eight lanes at a time: one `max` after another is a chain
        // through every score (a tenth of a decoding step's softmax time at 64 positions),
        // and the largest value does not depend on the order it is found in.
        let mut lanes = _mm256_set1_ps(f32::NEG_INFINITY);
        let whole = scores.len() / 8 * 8;
        for eight in scores[..whole].chunks_exact(8) {
            // SAFETY: `eight` holds eight f32.
            lanes = _mm256_max_ps(lanes, unsafe { _mm256_loadu_ps(eight.as_ptr()) });
        }
        let mut m8 = [0f32; 8];
        // SAFETY: `m8` holds eight f32.
        unsafe { _mm256_storeu_ps(m8.as_mut_ptr(), lanes) };
        let max = scores[whole..]
            .iter()
            .chain(&m8)
            .fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        // Exponentials, summed per group of eight in hsum8's order, groups in f64.
        let mut sum = 0f64;
        let inf = _mm256_set1_ps(f32::NEG_INFINITY);
        let vmax = _mm256_set1_ps(max);
        for group in scores.chunks_mut(8) {
            let fast = if group.len() == 8 {
                // SAFETY: `group` holds eight f32.
                let s = unsafe { _mm256_loadu_ps(group.as_ptr()) };
                exp8(_mm256_sub_ps(s, vmax)).map(|e| {
                    let masked = _mm256_cmp_ps::<_CMP_EQ_OQ>(s, inf);
                    _mm256_andnot_ps(masked, e)
                })
            } else {
                None
            };
            let g = match fast {
                Some(e) => {
                    let mut g = [0f32; 8];
                    // SAFETY: `g` and `group` each hold eight f32.
                    unsafe { _mm256_storeu_ps(g.as_mut_ptr(), e) };
                    group.copy_from_slice(&g);
                    g
                }
                None => exp_group(group, max),
            };
            sum += hsum8(&g) as f64;
        }
        let inv = (1.0 / sum) as f32;
        let vinv = _mm256_set1_ps(inv);
        let mut j = 0;
        while j < scores.len() {
            if first + j >= start && j + 8 <= scores.len() {
                let p = &mut scores[j..j + 8];
                // SAFETY: `p` holds eight f32.
                unsafe {
                    let x = _mm256_mul_ps(_mm256_loadu_ps(p.as_ptr()), vinv);
                    let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
                    _mm256_storeu_ps(p.as_mut_ptr(), _mm256_cvtph_ps(h));
                }
                j += 8;
            } else {
                if first + j >= start {
                    // By F16C too: the software rounding's table misses were a third of
                    // this function's time in decoding, where every head's row has a tail.
                    scores[j] = crate::quant::f16c_round(scores[j] * inv);
                }
                j += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F16C's rounding is the software rounding for every finite input class (normal,
    /// subnormal, overflow, ties).
    #[test]
    fn f16c_rounding_matches_the_software_rounding() {
        if !available() {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::*;
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for i in 0..400_000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Half the cases near f16's range (exponents 100..=145), half anywhere.
                let bits = if i % 2 == 0 {
                    (x as u32 & 0x807f_ffff) | ((100 + (x >> 40) as u32 % 46) << 23)
                } else {
                    x as u32
                };
                let v = f32::from_bits(bits);
                if v.is_nan() {
                    continue;
                }
                // SAFETY: F16C is present (`available`).
                let hw = unsafe {
                    let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set1_ps(v));
                    _mm_cvtss_f32(_mm_cvtph_ps(h))
                };
                assert_eq!(hw.to_bits(), super::super::f16_round(v).to_bits(), "{v:e}");
            }
        }
    }
}
