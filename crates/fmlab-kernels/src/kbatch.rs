//! Multi-row products for the K-quants (Q4_K, Q6_K) on AVX2: two weight rows times four
//! activation rows per pass, for prefill and batched decode.
//!
//! The one-row kernels (`simd.rs`) unpack a weight block, decode its 6-bit scales and
//! reduce each 64- or 256-element integer sum horizontally once per (weight, activation)
//! pair. Here a weight block is unpacked and its scales decoded once for four activation
//! rows, each activation block is loaded once for two weight rows, and the eight pairs'
//! horizontal sums are done together by one tree of `hadd`s. The floating-point steps of
//! every pair are those of its one-row kernel, in the same order (the FMA per 64
//! elements of the repacked order, per block of the row and tiled orders), each pair in
//! its own lane of one register, so every result is bit-identical to
//! [`crate::dot_quantized`] of that pair alone: integer sums are exact in any order, and
//! IEEE products and FMAs give the same bits lane by lane as scalar.

use crate::activation::{DotOrder, QuantizedRow};
use crate::QuantType;

/// `out[r · n + i] = row r · inputs[i]` for the weight rows in `rows` (`row_bytes` each, in
/// format `t`), where a multi-row kernel exists: Q4_K (any order) and Q6_K (tiled order)
/// on AVX2, for each group of four consecutive inputs that follow one order; the other
/// pairs go through the one-row kernel. Returns `false` (writing nothing) where no
/// multi-row kernel applies at all.
pub(crate) fn dot_rows(
    t: QuantType,
    rows: &[u8],
    row_bytes: usize,
    inputs: &[QuantizedRow],
    out: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let n = inputs.len();
        let (elements, block_bytes) = t.block();
        if !matches!(t, QuantType::Q4_K | QuantType::Q6_K)
            || !crate::simd::avx2_fma()
            || n < 4
            || row_bytes == 0
            || !row_bytes.is_multiple_of(block_bytes)
            || !rows.len().is_multiple_of(row_bytes)
            || out.len() != rows.len() / row_bytes * n
        {
            return false;
        }
        let blocks = row_bytes / block_bytes;
        let fits = |a: &QuantizedRow| {
            a.d.len() >= blocks && a.qs.len() >= blocks * elements && a.sums.len() >= blocks * 16
        };
        // Groups of four with one order that has a multi-row form; the rest pair by pair.
        let mut groups = Vec::new();
        let mut i = 0;
        while i < n {
            let g = &inputs[i..(i + 4).min(n)];
            let order = g[0].order;
            let multi = g.len() == 4
                && g.iter().all(|a| a.order == order && fits(a))
                && (t == QuantType::Q4_K || order == DotOrder::Tiled);
            if multi {
                groups.push(i);
                i += 4;
            } else {
                i += 1;
            }
        }
        if groups.is_empty() {
            return false;
        }
        let count = rows.len() / row_bytes;
        let mut done = vec![false; n];
        for &g in &groups {
            done[g..g + 4].fill(true);
        }
        let mut r = 0;
        while r < count {
            let w0 = &rows[r * row_bytes..(r + 1) * row_bytes];
            // An odd last row runs as its own pair (the second result is dropped).
            let pair = r + 1 < count;
            let w1 = if pair {
                &rows[(r + 1) * row_bytes..(r + 2) * row_bytes]
            } else {
                w0
            };
            for &g in &groups {
                let a = [&inputs[g], &inputs[g + 1], &inputs[g + 2], &inputs[g + 3]];
                // SAFETY: AVX2 and FMA were checked; `w0`/`w1` hold `blocks` blocks of `t`
                // and every input of the group holds at least `blocks` blocks (`fits`).
                let v = unsafe {
                    match t {
                        QuantType::Q4_K => avx2::q4_k(w0, w1, blocks, a, a[0].order),
                        _ => avx2::q6_k_tiled(w0, w1, blocks, a),
                    }
                };
                out[r * n + g..r * n + g + 4].copy_from_slice(&v[..4]);
                if pair {
                    out[(r + 1) * n + g..(r + 1) * n + g + 4].copy_from_slice(&v[4..]);
                }
            }
            for rr in r..r + if pair { 2 } else { 1 } {
                let w = &rows[rr * row_bytes..(rr + 1) * row_bytes];
                for (i, a) in inputs.iter().enumerate().filter(|(i, _)| !done[*i]) {
                    out[rr * n + i] = crate::dot_quantized(t, w, a);
                }
            }
            r += 2;
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (t, rows, row_bytes, inputs, out);
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::activation::{DotOrder, QuantizedRow};
    use crate::quant::{f16_to_f32, scale_min_k4};

    #[inline]
    fn half(b: &[u8], at: usize) -> f32 {
        f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn load(b: &[u8]) -> __m256i {
        let b = &b[..32];
        // SAFETY: `b` has exactly 32 bytes.
        unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
    }

    #[inline]
    fn bytes(q: &[i8]) -> &[u8] {
        // SAFETY: i8 and u8 have the same size and alignment; every bit pattern is valid.
        unsafe { std::slice::from_raw_parts(q.as_ptr().cast(), q.len()) }
    }

    /// Horizontal sums of eight vectors of eight i32: lane `4r + i` of the result is the
    /// sum of `v[r][i]`'s lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn reduce(v: &[[__m256i; 4]; 2]) -> __m256i {
        let row = |w: &[__m256i; 4]| {
            _mm256_hadd_epi32(_mm256_hadd_epi32(w[0], w[1]), _mm256_hadd_epi32(w[2], w[3]))
        };
        let (a, b) = (row(&v[0]), row(&v[1]));
        _mm256_add_epi32(
            _mm256_permute2x128_si256::<0x20>(a, b),
            _mm256_permute2x128_si256::<0x31>(a, b),
        )
    }

    /// `[x0, x1, x2, x3, x0, x1, x2, x3]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn twice(x: [f32; 4]) -> __m256 {
        _mm256_setr_ps(x[0], x[1], x[2], x[3], x[0], x[1], x[2], x[3])
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn twice_i(x: [i32; 4]) -> __m256i {
        _mm256_setr_epi32(x[0], x[1], x[2], x[3], x[0], x[1], x[2], x[3])
    }

    /// `[a, a, a, a, b, b, b, b]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn per_row(a: f32, b: f32) -> __m256 {
        _mm256_setr_ps(a, a, a, a, b, b, b, b)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn per_row_i(a: i32, b: i32) -> __m256i {
        _mm256_setr_epi32(a, a, a, a, b, b, b, b)
    }

    /// Q4_K rows `w0`, `w1` times four activation rows quantized for `order`: lane
    /// `4r + i` is `w_r · a[i]`, as `simd::avx2::iq4_k` computes it.
    ///
    /// # Safety
    /// AVX2 and FMA; both rows hold `blocks` blocks, every `a[i]` at least `blocks`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn q4_k(
        w0: &[u8],
        w1: &[u8],
        blocks: usize,
        a: [&QuantizedRow; 4],
        order: DotOrder,
    ) -> [f32; 8] {
        let mask = _mm256_set1_epi8(0x0f);
        let (mut sum, mut mins) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for b in 0..blocks {
            let blk = [&w0[144 * b..144 * b + 144], &w1[144 * b..144 * b + 144]];
            let q8 = a.map(|r| bytes(&r.qs[256 * b..256 * b + 256]));
            let bs = a.map(|r| &r.sums[16 * b..16 * b + 16]);
            let ad = twice(a.map(|r| r.d[b]));
            let (wd, wmin) = (
                per_row(half(blk[0], 0), half(blk[1], 0)),
                per_row(half(blk[0], 2), half(blk[1], 2)),
            );
            // As the one-row kernel: d = a.d · w.d, dmin = a.d · w.dmin.
            let (d, dmin) = (_mm256_mul_ps(ad, wd), _mm256_mul_ps(ad, wmin));
            let (mut sumi, mut summs) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            for chunk in 0..4 {
                let sm = blk.map(|w| {
                    let (s1, m1) = scale_min_k4(2 * chunk, &w[4..16]);
                    let (s2, m2) = scale_min_k4(2 * chunk + 1, &w[4..16]);
                    (s1, m1, s2, m2)
                });
                let mut lo = [_mm256_setzero_si256(); 2];
                let mut hi = [_mm256_setzero_si256(); 2];
                let mut sc1 = [_mm256_setzero_si256(); 2];
                let mut sc2 = [_mm256_setzero_si256(); 2];
                for r in 0..2 {
                    let q = load(&blk[r][16 + 32 * chunk..16 + 32 * chunk + 32]);
                    lo[r] = _mm256_and_si256(q, mask);
                    hi[r] = _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask);
                    sc1[r] = _mm256_set1_epi16(sm[r].0 as i16);
                    sc2[r] = _mm256_set1_epi16(sm[r].2 as i16);
                }
                let mut v = [[_mm256_setzero_si256(); 4]; 2];
                for i in 0..4 {
                    let x_lo = load(&q8[i][64 * chunk..64 * chunk + 32]);
                    let x_hi = load(&q8[i][64 * chunk + 32..64 * chunk + 64]);
                    for r in 0..2 {
                        v[r][i] = _mm256_add_epi32(
                            _mm256_madd_epi16(_mm256_maddubs_epi16(lo[r], x_lo), sc1[r]),
                            _mm256_madd_epi16(_mm256_maddubs_epi16(hi[r], x_hi), sc2[r]),
                        );
                    }
                }
                let part = reduce(&v);
                // m1·(Σq8 of the first 32) + m2·(Σq8 of the second 32) by one madd of i16
                // pairs (the sums are at most 32·128 in size, the minimums 6 bits).
                let pair = |a: i32, b: i32| (a & 0xffff) | (b << 16);
                let sums = twice_i(bs.map(|s| {
                    pair(
                        s[4 * chunk] + s[4 * chunk + 1],
                        s[4 * chunk + 2] + s[4 * chunk + 3],
                    )
                }));
                let m = per_row_i(
                    pair(sm[0].1 as i32, sm[0].3 as i32),
                    pair(sm[1].1 as i32, sm[1].3 as i32),
                );
                let part_min = _mm256_madd_epi16(m, sums);
                if order == DotOrder::Repacked {
                    // One FMA per 64 elements.
                    sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(part), d, sum);
                    mins = _mm256_fmadd_ps(_mm256_cvtepi32_ps(part_min), dmin, mins);
                } else {
                    sumi = _mm256_add_epi32(sumi, part);
                    summs = _mm256_add_epi32(summs, part_min);
                }
            }
            match order {
                DotOrder::Repacked => {}
                DotOrder::Tiled => {
                    // r = (−w.dmin)·summs + w.d·sumi, then sum += r · a.d.
                    let r = _mm256_fmadd_ps(
                        _mm256_xor_ps(wmin, _mm256_set1_ps(-0.0)),
                        _mm256_cvtepi32_ps(summs),
                        _mm256_mul_ps(wd, _mm256_cvtepi32_ps(sumi)),
                    );
                    sum = _mm256_fmadd_ps(r, ad, sum);
                }
                DotOrder::Row => {
                    sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), d, sum);
                    mins = _mm256_fmadd_ps(_mm256_cvtepi32_ps(summs), dmin, mins);
                }
            }
        }
        let mut out = [0f32; 8];
        // SAFETY: `out` is eight f32.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), _mm256_sub_ps(sum, mins)) };
        out
    }

    /// Q6_K rows `w0`, `w1` times four activation rows in the tiled order: lane `4r + i`
    /// is `w_r · a[i]`, as `simd::avx2::iq6_k` computes it for `DotOrder::Tiled`.
    ///
    /// # Safety
    /// AVX2 and FMA; both rows hold `blocks` blocks, every `a[i]` at least `blocks`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn q6_k_tiled(
        w0: &[u8],
        w1: &[u8],
        blocks: usize,
        a: [&QuantizedRow; 4],
    ) -> [f32; 8] {
        let m4 = _mm256_set1_epi8(0x0f);
        let m2 = _mm256_set1_epi8(3);
        let mut tiled = _mm256_setzero_ps();
        for b in 0..blocks {
            let blk = [&w0[210 * b..210 * b + 210], &w1[210 * b..210 * b + 210]];
            let q8 = a.map(|r| bytes(&r.qs[256 * b..256 * b + 256]));
            let mut v = [[_mm256_setzero_si256(); 4]; 2];
            for n in 0..2 {
                let mut q = [[_mm256_setzero_si256(); 4]; 2];
                let mut sc = [[_mm256_setzero_si256(); 4]; 2];
                for r in 0..2 {
                    let w = blk[r];
                    let ql0 = load(&w[64 * n..64 * n + 32]);
                    let ql1 = load(&w[64 * n + 32..64 * n + 64]);
                    let qh = load(&w[128 + 32 * n..128 + 32 * n + 32]);
                    let high = |h: __m256i| _mm256_slli_epi16::<4>(_mm256_and_si256(h, m2));
                    q[r] = [
                        _mm256_or_si256(_mm256_and_si256(ql0, m4), high(qh)),
                        _mm256_or_si256(
                            _mm256_and_si256(ql1, m4),
                            high(_mm256_srli_epi16::<2>(qh)),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
                            high(_mm256_srli_epi16::<4>(qh)),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
                            high(_mm256_srli_epi16::<6>(qh)),
                        ),
                    ];
                    for k in 0..4 {
                        let s0 = w[192 + 8 * n + 2 * k] as i8 as i16;
                        let s1 = w[192 + 8 * n + 2 * k + 1] as i8 as i16;
                        sc[r][k] = _mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0));
                    }
                }
                for k in 0..4 {
                    for i in 0..4 {
                        let x = load(&q8[i][128 * n + 32 * k..128 * n + 32 * k + 32]);
                        for r in 0..2 {
                            v[r][i] = _mm256_add_epi32(
                                v[r][i],
                                _mm256_madd_epi16(_mm256_maddubs_epi16(q[r][k], x), sc[r][k]),
                            );
                        }
                    }
                }
            }
            // The offset of 32 on every quant: 32 · Σ_g scale_g · Σq8_g over the 16 groups
            // (the one-row kernel subtracts it lane by lane before its horizontal sum; the
            // integer total is the same), by madd of i16 vectors (sums of 16 quants fit).
            let sc = blk.map(|w| {
                // SAFETY: the 16 scales are bytes 192..208 of the block.
                _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(w[192..208].as_ptr().cast()) })
            });
            let bs = a.map(|x| {
                let s = &x.sums[16 * b..16 * b + 16];
                // SAFETY: `s` is sixteen i32.
                let (lo, hi) = unsafe {
                    (
                        _mm256_loadu_si256(s.as_ptr().cast()),
                        _mm256_loadu_si256(s[8..].as_ptr().cast()),
                    )
                };
                // packs interleaves 128-bit halves; the permute puts the 16 back in order.
                _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(lo, hi))
            });
            let mut o = [[_mm256_setzero_si256(); 4]; 2];
            for r in 0..2 {
                for i in 0..4 {
                    o[r][i] = _mm256_madd_epi16(sc[r], bs[i]);
                }
            }
            let offset = _mm256_slli_epi32::<5>(reduce(&o));
            let total = _mm256_sub_epi32(reduce(&v), offset);
            let r = _mm256_mul_ps(
                per_row(half(blk[0], 208), half(blk[1], 208)),
                _mm256_cvtepi32_ps(total),
            );
            tiled = _mm256_fmadd_ps(r, twice(a.map(|x| x.d[b])), tiled);
        }
        let mut out = [0f32; 8];
        // SAFETY: `out` is eight f32.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), tiled) };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::quantize_activations_for;
    use crate::quant::f32_to_f16;

    /// Random K-quant rows with sane scales, and activations in the given orders.
    fn case(t: QuantType, rows: usize, orders: &[DotOrder]) -> (Vec<u8>, Vec<QuantizedRow>) {
        let (_, size) = t.block();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut w: Vec<u8> = (0..rows * 2 * size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for block in w.chunks_exact_mut(size) {
            let at = if t == QuantType::Q6_K { 208 } else { 0 };
            block[at..at + 2].copy_from_slice(&f32_to_f16(0.02).to_le_bytes());
            if t == QuantType::Q4_K {
                block[2..4].copy_from_slice(&f32_to_f16(-0.004).to_le_bytes());
            }
        }
        let inputs = orders
            .iter()
            .enumerate()
            .map(|(r, &o)| {
                let v: Vec<f32> = (0..512)
                    .map(|i| ((i * 29 + r * 13) % 97) as f32 / 13.0 - 3.5)
                    .collect();
                quantize_activations_for(&v, t.activation_format(), o)
            })
            .collect();
        (w, inputs)
    }

    /// Where AVX2 is present, the multi-row kernel runs (it reports so) and gives every
    /// pair's one-row bits, the pairs outside a whole group of one order included.
    #[test]
    fn multi_row_kernels_run_and_match_the_one_row_kernel() {
        use DotOrder::*;
        let cases: [(QuantType, Vec<DotOrder>); 4] = [
            (
                QuantType::Q4_K,
                vec![Repacked, Repacked, Repacked, Repacked, Row, Row],
            ),
            (QuantType::Q4_K, vec![Tiled; 9]),
            (QuantType::Q4_K, vec![Row; 5]),
            (QuantType::Q6_K, vec![Tiled; 8]),
        ];
        for (t, orders) in cases {
            for rows in [1, 2, 5] {
                let (w, inputs) = case(t, rows, &orders);
                let row_bytes = w.len() / rows;
                let mut out = vec![f32::NAN; rows * inputs.len()];
                let ran = dot_rows(t, &w, row_bytes, &inputs, &mut out);
                assert_eq!(ran, crate::simd::avx2_fma(), "{t:?} {orders:?}");
                if !ran {
                    continue;
                }
                for (r, row) in w.chunks_exact(row_bytes).enumerate() {
                    for (i, a) in inputs.iter().enumerate() {
                        let one = crate::dot_quantized(t, row, a);
                        assert_eq!(
                            out[r * inputs.len() + i].to_bits(),
                            one.to_bits(),
                            "{t:?} {:?}: pair ({r}, {i}) of {rows} rows",
                            a.order
                        );
                    }
                }
            }
        }
        // Q6_K in the row order keeps its one-row kernel (eight float lanes per pair).
        let (w, inputs) = case(QuantType::Q6_K, 2, &[Row; 4]);
        let mut out = vec![0f32; 8];
        assert!(!dot_rows(
            QuantType::Q6_K,
            &w,
            w.len() / 2,
            &inputs,
            &mut out
        ));
    }
}
