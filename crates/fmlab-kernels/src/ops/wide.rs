//! AVX-512 forms of attention's two inner loops for a prompt's query rows: the scores
//! `q · k` and the value sums `Σ p · v`. Each 512-bit register holds two of the AVX2 forms'
//! 256-bit vectors side by side, and every lane takes exactly the steps it takes there
//! (the same products, in the same order, into the same accumulator), so the results are
//! the same bits with half the instructions:
//!
//! - scores: two keys per register. The keys are laid out in pairs once per call
//!   ([`keys_by_pair`]) so that one load brings the same eight features of two keys, and one
//!   broadcast of the query's eight features serves both; sixteen keys per pass;
//! - value sums: thirty-two features per slot in two registers, so that each position's
//!   weight is broadcast once for 32 features instead of 8.
//!
//! Written for this project: llama.cpp reaches these sums through tinyBLAS, whose AVX-512
//! build sums in other orders; these keep the AVX2 orders that fmlab's reference outputs
//! were recorded with.
//!
//! One token's row (a decoding step) has its own kernels here, driven by `one_token`:
//! [`x86::one_token_scores`] in `vec_dot_f16`'s order and [`x86::one_token_values`] in
//! its 32 slots' order, each serving up to three query heads of a key-value head.

/// Whether the CPU has AVX-512F and DQ (and AVX2, FMA, F16C) for these kernels.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            super::avx512_available()
                && is_x86_feature_detected!("avx512dq")
                && crate::simd::avx2_fma_f16c()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Keys of positions `0..kv_len` rearranged in pairs: for each key-value head, each pair of
/// positions `(2a, 2a + 1)` and each eight features, the two keys' eight features side by
/// side (`[head][pair][chunk][2][8]`, an odd last position padded with zeros). Head `h`'s
/// pairs start at `h · pairs · 2 · hd`, pair `a`'s features `8c..8c + 8` at
/// `a · 2 · hd + 16c` from there.
pub(super) fn keys_by_pair(k: &[f32], kv_len: usize, n_kv_heads: usize, hd: usize) -> Vec<f32> {
    let kv_width = n_kv_heads * hd;
    let pairs = kv_len.div_ceil(2);
    let mut out = vec![0f32; n_kv_heads * pairs * 2 * hd];
    for (kp, row) in k.chunks_exact(kv_width).take(kv_len).enumerate() {
        for (h, head) in row.chunks_exact(hd).enumerate() {
            let base = (h * pairs + kp / 2) * 2 * hd + (kp % 2) * 8;
            for (c, eight) in head.chunks_exact(8).enumerate() {
                out[base + 16 * c..base + 16 * c + 8].copy_from_slice(eight);
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    /// What the one-token kernels read keys and values as: f32, or the f16 bits the KV
    /// cache stores (half the bytes to bring from memory; widened exactly as loaded).
    pub(in super::super) trait Feature: Copy {
        const HALF: bool;
    }
    impl Feature for f32 {
        const HALF: bool = false;
    }
    impl Feature for u16 {
        const HALF: bool = true;
    }

    /// Sixteen features from `at`, as f32.
    ///
    /// # Safety
    /// AVX-512F and F16C; sixteen values of `T` at `at`.
    #[inline]
    #[target_feature(enable = "avx512f,f16c")]
    unsafe fn load16<T: Feature>(at: *const T) -> __m512 {
        // SAFETY: sixteen values at `at` (caller); `T` is u16 exactly when HALF.
        unsafe {
            if T::HALF {
                _mm512_cvtph_ps(_mm256_loadu_si256(at.cast()))
            } else {
                _mm512_loadu_ps(at.cast())
            }
        }
    }

    /// `q · k` of the sixteen keys of pairs `a..a + 8` of one head's [`super::keys_by_pair`]
    /// layout `kt`, for one or two query heads (`qs`, each `hd` long), each summed as `dot8`
    /// sums it (lane `i mod 8` accumulating by FMA in feature order, then `hsum8`), in key
    /// order. Two heads share every load of the keys.
    ///
    /// # Safety
    /// AVX-512F and DQ; `hd` a multiple of 8; `qs` one or two heads of `hd`; `kt` holds
    /// pairs `a..a + 8` of `hd` features each (`(a + 8) · 2 · hd ≤ kt.len()`).
    #[inline]
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
    pub(in super::super) unsafe fn dots16(
        qs: [&[f32]; 2],
        two: bool,
        hd: usize,
        kt: &[f32],
        a: usize,
    ) -> [[f32; 16]; 2] {
        let mut acc = [[_mm512_setzero_ps(); 8]; 2];
        // SAFETY: pairs a..a + 8 hold 2·hd features each inside `kt`, and each head of `qs`
        // holds hd (caller).
        unsafe {
            let kptr = kt.as_ptr().add(a * 2 * hd);
            if two {
                let (q0, q1) = (qs[0].as_ptr(), qs[1].as_ptr());
                for c in (0..hd).step_by(8) {
                    let x0 = _mm512_broadcast_f32x8(_mm256_loadu_ps(q0.add(c)));
                    let x1 = _mm512_broadcast_f32x8(_mm256_loadu_ps(q1.add(c)));
                    for j in 0..8 {
                        let k = _mm512_loadu_ps(kptr.add(j * 2 * hd + 2 * c));
                        acc[0][j] = _mm512_fmadd_ps(x0, k, acc[0][j]);
                        acc[1][j] = _mm512_fmadd_ps(x1, k, acc[1][j]);
                    }
                }
            } else {
                let q0 = qs[0].as_ptr();
                for c in (0..hd).step_by(8) {
                    let x0 = _mm512_broadcast_f32x8(_mm256_loadu_ps(q0.add(c)));
                    for j in 0..8 {
                        let k = _mm512_loadu_ps(kptr.add(j * 2 * hd + 2 * c));
                        acc[0][j] = _mm512_fmadd_ps(x0, k, acc[0][j]);
                    }
                }
            }
        }
        [reduce16(&acc[0]), reduce16(&acc[1])]
    }

    /// One-token attention's scores of `H` query heads that share a key-value head, over
    /// positions `first..end` (at least sixteen): `scores[h · len + j]` is head `h`'s
    /// `q · k` of position `first + j` times `score_scale`, −∞ before `start`. Each sum is
    /// the one `dot32` forms (ggml's `vec_dot_f16`: four accumulators of eight
    /// lanes by feature mod 32, FMA from zero in feature order, `(v0 + v2) + (v1 + v3)`,
    /// halves, two horizontal adds), laid out so that one conversion of a key's sixteen
    /// features serves all `H` heads: a register holds features `f..f + 16` of one key,
    /// that is two of ggml's accumulators side by side, and each head multiplies it by its
    /// own query features from memory. Sixteen keys per pass; the last pass ends at the
    /// last position and overlaps the one before (each key's sum is its own).
    ///
    /// # Safety
    /// AVX-512F, DQ and F16C; `hd` a multiple of 32, `q.len() ≥ H · hd`; `end − first ≥ 16`,
    /// `first ≤ start < end`; positions `first..end` hold `hd` features each in `k` from
    /// `kp · rs + off`; `scores.len() ≥ H · (end − first)`.
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma,f16c")]
    pub(in super::super) unsafe fn one_token_scores<T: Feature, const H: usize>(
        q: &[f32],
        k: &[T],
        [rs, off]: [usize; 2],
        hd: usize,
        [first, start, end]: [usize; 3],
        score_scale: f32,
        scores: &mut [f32],
    ) {
        let len = end - first;
        let scale = _mm512_set1_ps(score_scale);
        let masked = _mm512_set1_ps(f32::NEG_INFINITY);
        let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        // Lanes 0, 4, 8, 12 of two registers, one after the other.
        let pick = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
        let (qp, kp) = (q.as_ptr(), k.as_ptr());
        let mut done = 0;
        while done < len {
            let from = done.min(len - 16);
            let p0 = first + from;
            let mut quads = [[_mm512_setzero_ps(); 4]; H];
            for g in 0..4 {
                let mut acc = [[[_mm512_setzero_ps(); 2]; 4]; H];
                // SAFETY: positions p0..p0 + 16 lie in `k` and each head's hd features in
                // `q` (caller).
                unsafe {
                    let keys: [*const T; 4] =
                        std::array::from_fn(|j| kp.add((p0 + 4 * g + j) * rs + off));
                    for c in (0..hd).step_by(32) {
                        for (j, key) in keys.iter().enumerate() {
                            let x0 = load16(key.add(c));
                            let x1 = load16(key.add(c + 16));
                            for (h, a) in acc.iter_mut().enumerate() {
                                let qh = qp.add(h * hd + c);
                                a[j][0] = _mm512_fmadd_ps(_mm512_loadu_ps(qh), x0, a[j][0]);
                                a[j][1] = _mm512_fmadd_ps(_mm512_loadu_ps(qh.add(16)), x1, a[j][1]);
                            }
                        }
                    }
                }
                for (h, a) in acc.iter().enumerate() {
                    quads[h][g] = reduce4_single(a);
                }
            }
            let mask = _mm512_cmpge_epi32_mask(
                _mm512_add_epi32(iota, _mm512_set1_epi32(p0 as i32)),
                _mm512_set1_epi32(start as i32),
            );
            for (h, r) in quads.iter().enumerate() {
                let lo = _mm512_permutex2var_ps(r[0], pick, r[1]);
                let hi = _mm512_permutex2var_ps(r[2], pick, r[3]);
                let sums = _mm512_shuffle_f32x4::<0b01_00_01_00>(lo, hi);
                let s = _mm512_mask_mul_ps(masked, mask, sums, scale);
                // SAFETY: head h's positions from..from + 16 lie in `scores` (caller).
                unsafe { _mm512_storeu_ps(scores.as_mut_ptr().add(h * len + from), s) };
            }
            done = from + 16;
        }
    }

    /// Four keys' sums of [`one_token_scores`] from their accumulators (`a[j]`: key `j`'s
    /// ggml accumulators 0 and 1, then 2 and 3, side by side): key `j`'s sum in lane
    /// `4j`. Per key, t = x[0..4] + x[4..8], then (t0 + t1) + (t2 + t3)
    /// (`reduce_vec_dot_f16`), one key per 128-bit lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce4_single(a: &[[__m512; 2]; 4]) -> __m512 {
        // Per key, (v0 + v2) in lanes 0..8 and (v1 + v3) in lanes 8..16.
        let x: [__m512; 4] = std::array::from_fn(|j| _mm512_add_ps(a[j][0], a[j][1]));
        // Per key, (v0 + v2) + (v1 + v3): keys 0 and 1, then 2 and 3, eight lanes each.
        let pair = |x0: __m512, x1: __m512| {
            let lo = _mm512_shuffle_f32x4::<0b01_00_01_00>(x0, x1);
            let hi = _mm512_shuffle_f32x4::<0b11_10_11_10>(x0, x1);
            _mm512_add_ps(lo, hi)
        };
        let (y01, y23) = (pair(x[0], x[1]), pair(x[2], x[3]));
        // Halves added: key j's four lanes in 128-bit lane j; then the horizontal adds.
        let lo = _mm512_shuffle_f32x4::<0b10_00_10_00>(y01, y23);
        let hi = _mm512_shuffle_f32x4::<0b11_01_11_01>(y01, y23);
        let t = _mm512_add_ps(lo, hi);
        let u = _mm512_add_ps(t, _mm512_permute_ps::<0b10_11_00_01>(t));
        _mm512_add_ps(u, _mm512_permute_ps::<0b01_00_11_10>(u))
    }

    /// One-token attention's outputs of `H` query heads that share a key-value head,
    /// written to `out` (`H · hd`): 32 slots of value sums per feature (slot `kp mod 32`
    /// summing `ps[h][kp − first] · v[kp]` by FMA in position order from zero over
    /// `start..end`, as [`weigh32`] sums with 32 slots) reduced as [`reduce_slots32`]
    /// reduces them, without the slots going through memory: over a context of a few
    /// times 32 positions each slot sums only a few positions, so storing every slot and
    /// loading it back was a large part of the work (an 8-sequence SmolLM2 step took 1.01×
    /// as long that way, 7 rounds in one process, and one sequence 1.02×). For each
    /// sixteen features, the slots are formed four at a time, in the order
    /// the reduction adds them (`x_i = (s_i + s_{16+i}) + (s_{8+i} + s_{24+i})`, then
    /// `t_i = x_i + x_{i+4}`, then `(t_0 + t_1) + (t_2 + t_3)`), each slot by FMA in
    /// position order from zero; every position is still loaded and widened once per
    /// sixteen features for all `H` heads.
    ///
    /// # Safety
    /// AVX-512F and F16C; `H ≤ 3`; `hd` a multiple of 16, `first` a multiple of 8 and
    /// `first ≤ start`; each `ps[h]` holds `end − first` weights; features `0..hd` of
    /// position `kp` are at `kp · rs + off` in `v` for every `kp < end`; `out.len() ≥ H · hd`.
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub(in super::super) unsafe fn one_token_values<T: Feature, const H: usize>(
        v: &[T],
        [rs, off]: [usize; 2],
        hd: usize,
        ps: [&[f32]; H],
        first: usize,
        [start, end]: [usize; 2],
        out: &mut [f32],
    ) {
        let vp = v.as_ptr();
        let pp: [*const f32; H] = std::array::from_fn(|h| ps[h].as_ptr());
        let base = first / 32 * 32;
        // Slot `s`'s sums of features c..c + 16 for every head.
        let slot = |s: usize, c: usize| {
            let mut acc = [_mm512_setzero_ps(); H];
            let mut kp = base + s;
            while kp < end {
                if kp >= start {
                    // SAFETY: start ≤ kp < end lies in `v` and each `ps[h]` (caller).
                    unsafe {
                        let x = load16(vp.add(kp * rs + off + c));
                        for (h, a) in acc.iter_mut().enumerate() {
                            let w = _mm512_set1_ps(*pp[h].add(kp - first));
                            *a = _mm512_fmadd_ps(w, x, *a);
                        }
                    }
                }
                kp += 32;
            }
            acc
        };
        // x_i of every head.
        let x = |i: usize, c: usize| {
            let (a, b, d, e) = (slot(i, c), slot(16 + i, c), slot(8 + i, c), slot(24 + i, c));
            let mut x = [_mm512_setzero_ps(); H];
            for h in 0..H {
                x[h] = _mm512_add_ps(_mm512_add_ps(a[h], b[h]), _mm512_add_ps(d[h], e[h]));
            }
            x
        };
        for c in (0..hd).step_by(16) {
            let mut t = [[_mm512_setzero_ps(); H]; 4];
            for (i, ti) in t.iter_mut().enumerate() {
                let (lo, hi) = (x(i, c), x(i + 4, c));
                for h in 0..H {
                    ti[h] = _mm512_add_ps(lo[h], hi[h]);
                }
            }
            for h in 0..H {
                let r = _mm512_add_ps(
                    _mm512_add_ps(t[0][h], t[1][h]),
                    _mm512_add_ps(t[2][h], t[3][h]),
                );
                // SAFETY: head h's features c..c + 16 lie in `out` (caller).
                unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(h * hd + c), r) };
            }
        }
    }

    /// One-token attention's output of one head from its 32 slots' value sums (`lanes`,
    /// slot `i`'s at `i · hd`): per feature, `x_i = (l_i + l_{16+i}) + (l_{8+i} + l_{24+i})`,
    /// then `reduce_vec_dot_f16`, as `attention_row`'s loop forms it, sixteen features per
    /// register.
    ///
    /// # Safety
    /// AVX-512F; `hd` a multiple of 16, `lanes.len() ≥ 32 · hd`, `out.len() ≥ hd`.
    #[target_feature(enable = "avx512f")]
    pub(in super::super) unsafe fn reduce_slots32(lanes: &[f32], hd: usize, out: &mut [f32]) {
        let lp = lanes.as_ptr();
        for d in (0..hd).step_by(16) {
            // SAFETY: slot i's features d..d + 16 lie in `lanes`, and d..d + 16 in `out`.
            unsafe {
                let l = |i: usize| _mm512_loadu_ps(lp.add(i * hd + d));
                let x: [__m512; 8] = std::array::from_fn(|i| {
                    _mm512_add_ps(
                        _mm512_add_ps(l(i), l(16 + i)),
                        _mm512_add_ps(l(8 + i), l(24 + i)),
                    )
                });
                let t: [__m512; 4] = std::array::from_fn(|i| _mm512_add_ps(x[i], x[i + 4]));
                let r = _mm512_add_ps(_mm512_add_ps(t[0], t[1]), _mm512_add_ps(t[2], t[3]));
                _mm512_storeu_ps(out.as_mut_ptr().add(d), r);
            }
        }
    }

    /// The sixteen keys' sums of [`dots16`]'s registers: four keys per two registers, their
    /// halves of eight lanes added as hsum8 adds them, t = l[0..4] + l[4..8], then
    /// (t0 + t2) + (t1 + t3), one key per 128-bit lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce16(acc: &[__m512; 8]) -> [f32; 16] {
        let mut out = [0f32; 16];
        for m in 0..4 {
            let (x, y) = (acc[2 * m], acc[2 * m + 1]);
            let lo = _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y);
            let hi = _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y);
            let t = _mm512_add_ps(lo, hi);
            let u = _mm512_add_ps(t, _mm512_permute_ps::<0b01_00_11_10>(t));
            let r = _mm512_add_ps(u, _mm512_permute_ps::<0b10_11_00_01>(u));
            let mut lanes = [0f32; 16];
            // SAFETY: `lanes` is sixteen f32.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), r) };
            for k in 0..4 {
                out[4 * m + k] = lanes[4 * k];
            }
        }
        out
    }

    /// The value sums of a prompt row's query heads that share one key-value head (eight
    /// slots, `weigh_values`' order: slot `kp mod 8`, each slot's sums by FMA in position
    /// order from zero), sixteen features at a time, two heads at a time sharing every
    /// load of the values. Features `c..c + 16` of position `kp` are at
    /// `c / 16 · 16 · kv_len + 16 · kp` in `v` (the head's part of `values_by_chunk` in
    /// runs of 16): one run of all positions fits the L1 cache, so the heads after the
    /// first read it from there. Head `h`'s weights are `ps[h]` (indexed from `first`),
    /// its sums go to `lanes[h]` (`8 · hd`: slot `i`'s at `i · hd`).
    ///
    /// # Safety
    /// AVX-512F; `hd` a multiple of 16, `first` a multiple of 8, `first ≤ start`; `v` holds
    /// `hd · kv_len` values with `end ≤ kv_len`; each `ps[h]` holds `end − first` weights;
    /// `lanes.len() == ps.len()`, each `8 · hd`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(in super::super) unsafe fn weigh_heads(
        v: &[f32],
        kv_len: usize,
        hd: usize,
        ps: &[&[f32]],
        first: usize,
        [start, end]: [usize; 2],
        lanes: &mut [&mut [f32]],
    ) {
        let vp = v.as_ptr();
        for c in (0..hd).step_by(16) {
            // SAFETY: run c / 16 holds kv_len positions of 16 values inside `v` (caller).
            let run = unsafe { vp.add(c / 16 * 16 * kv_len) };
            let mut h = 0;
            while h < ps.len() {
                let two = h + 1 < ps.len();
                let (p0, p1) = (ps[h].as_ptr(), ps[if two { h + 1 } else { h }].as_ptr());
                // SAFETY: as this function's (caller).
                let acc = unsafe {
                    if two {
                        sums16::<true>(run, [p0, p1], first, [start, end])
                    } else {
                        sums16::<false>(run, [p0, p1], first, [start, end])
                    }
                };
                for (k, out) in lanes[h..h + if two { 2 } else { 1 }].iter_mut().enumerate() {
                    for i in 0..8 {
                        let at = &mut out[i * hd + c..i * hd + c + 16];
                        // SAFETY: `at` is sixteen f32.
                        unsafe { _mm512_storeu_ps(at.as_mut_ptr(), acc[8 * k + i]) };
                    }
                }
                h += 2;
            }
        }
    }

    /// One run of sixteen features of [`weigh_heads`] for one head (`p[0]`) or two: slot
    /// `i`'s sums in register `i` (the second head's in `8 + i`).
    ///
    /// # Safety
    /// AVX-512F; `run` holds 16 values for every position below `end`, each `p` weights
    /// from `first` to `end`.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn sums16<const TWO: bool>(
        run: *const f32,
        p: [*const f32; 2],
        first: usize,
        [start, end]: [usize; 2],
    ) -> [__m512; 16] {
        let mut acc = [_mm512_setzero_ps(); 16];
        super::super::walk_runs(first, 8, [start, end], |i, kp| {
            // SAFETY: positions in start..end lie in `run` and `p` (caller).
            unsafe {
                let x = _mm512_loadu_ps(run.add(16 * kp));
                acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(*p[0].add(kp - first)), x, acc[i]);
                if TWO {
                    let w1 = _mm512_set1_ps(*p[1].add(kp - first));
                    acc[8 + i] = _mm512_fmadd_ps(w1, x, acc[8 + i]);
                }
            }
        });
        acc
    }

    /// The value sums of `weigh_values` (see `avx2_attention::weigh`) thirty-two features at
    /// a time: for each eight slots, each slot's sums of 32 features in two registers over
    /// all positions of `start..end`.
    ///
    /// # Safety
    /// AVX-512F and F16C; `hd` a multiple of 32, `slots` a multiple of 8, `first` a multiple of 8
    /// and `first ≤ start`; `p` holds `end − first` weights; features `c..c + 32` of
    /// position `kp` are at `kp · rs + off + c / 32 · cs` in `v` for every `kp < end` and
    /// `c < hd`, `c` a multiple of 32; `lanes` holds `slots · hd`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub(in super::super) unsafe fn weigh32<T: Feature>(
        v: &[T],
        [rs, off, cs]: [usize; 3],
        hd: usize,
        p: &[f32],
        first: usize,
        [start, end]: [usize; 2],
        slots: usize,
        lanes: &mut [f32],
    ) {
        let (vp, pp) = (v.as_ptr(), p.as_ptr());
        for c in (0..hd).step_by(32) {
            for m in 0..slots / 8 {
                let mut acc = [_mm512_setzero_ps(); 16];
                let g0 = first / slots * slots + 8 * m;
                // One position's weight times its 32 features, into slot `i`'s registers.
                super::super::walk_runs(g0, slots, [start, end], |i, kp| {
                    // SAFETY: positions in start..end lie in `v` and `p` (caller).
                    unsafe {
                        let w = _mm512_set1_ps(*pp.add(kp - first));
                        let at = vp.add(kp * rs + off + c / 32 * cs);
                        let (x0, x1) = (load16(at), load16(at.add(16)));
                        acc[2 * i] = _mm512_fmadd_ps(w, x0, acc[2 * i]);
                        acc[2 * i + 1] = _mm512_fmadd_ps(w, x1, acc[2 * i + 1]);
                    }
                });
                for i in 0..8 {
                    let slot = 8 * m + i;
                    let out = &mut lanes[slot * hd + c..slot * hd + c + 32];
                    // SAFETY: `out` is thirty-two f32.
                    unsafe {
                        _mm512_storeu_ps(out.as_mut_ptr(), acc[2 * i]);
                        _mm512_storeu_ps(out.as_mut_ptr().add(16), acc[2 * i + 1]);
                    }
                }
            }
        }
    }
}
