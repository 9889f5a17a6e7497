//! The MinHash permutation minimums, `min over x of ((a·x + b) mod 2^64) mod (2^61 − 1)`
//! for every permutation `(a, b)`: a portable scalar loop and, on x86-64 CPUs (detected at
//! run time), the same arithmetic eight permutations per vector with AVX-512 (F and DQ, for
//! the 64-bit product `vpmullq` and unsigned minimums) or four with AVX2. All give the
//! same `u64`s bit for bit (tested on random inputs); all `unsafe` of the crate's
//! deduplication lives in this module.

const MERSENNE_61: u64 = (1 << 61) - 1;

/// `v mod (2^61 − 1)` for any `u64` (the result is below 2^61 − 1).
#[inline(always)]
pub(crate) fn mod_mersenne61(v: u64) -> u64 {
    let r = (v & MERSENNE_61) + (v >> 61);
    if r >= MERSENNE_61 {
        r - MERSENNE_61
    } else {
        r
    }
}

/// Appends to `out`, for each permutation `(a[i], b[i])`, the minimum over `shingles` of
/// `mod_mersenne61(x·a + b)` (wrapping `u64` arithmetic), or `u64::MAX` when there are no
/// shingles. `a` and `b` have the same length.
pub(crate) fn min_hashes(shingles: &[u64], a: &[u64], b: &[u64], out: &mut Vec<u64>) {
    let n = a.len().min(b.len());
    if shingles.is_empty() {
        out.extend(std::iter::repeat_n(u64::MAX, n));
        return;
    }
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        done = n - n % avx512::LANES;
        let start = out.len();
        out.resize(start + done, 0);
        // SAFETY: AVX-512F and AVX-512DQ are available (checked just above), the only
        // requirement of a `#[target_feature(enable = "avx512f,avx512dq")]` function.
        unsafe { avx512::min_hashes(shingles, &a[..done], &b[..done], &mut out[start..]) };
    } else if std::is_x86_feature_detected!("avx2") {
        done = n - n % avx2::PERMS;
        let start = out.len();
        out.resize(start + done, 0);
        // SAFETY: AVX2 is available (checked just above), the only requirement of a
        // `#[target_feature(enable = "avx2")]` function.
        unsafe { avx2::min_hashes(shingles, &a[..done], &b[..done], &mut out[start..]) };
    }
    min_hashes_scalar(shingles, &a[done..n], &b[done..n], out);
}

/// [`min_hashes`] without SIMD: four permutations per pass over the shingles (four
/// independent minimum chains).
pub(crate) fn min_hashes_scalar(shingles: &[u64], a: &[u64], b: &[u64], out: &mut Vec<u64>) {
    let mut a4 = a.chunks_exact(4);
    let mut b4 = b.chunks_exact(4);
    for (a, b) in (&mut a4).zip(&mut b4) {
        let mut m = [u64::MAX; 4];
        for &x in shingles {
            for k in 0..4 {
                m[k] = m[k].min(mod_mersenne61(x.wrapping_mul(a[k]).wrapping_add(b[k])));
            }
        }
        out.extend_from_slice(&m);
    }
    for (&a, &b) in a4.remainder().iter().zip(b4.remainder()) {
        let mut m = u64::MAX;
        for &x in shingles {
            m = m.min(mod_mersenne61(x.wrapping_mul(a).wrapping_add(b)));
        }
        out.push(m);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::MERSENNE_61;

    /// Vectors of four permutations kept in registers during one pass over the shingles.
    const GROUP: usize = 4;
    /// Permutations per pass: `min_hashes` takes a multiple of this many.
    pub(super) const PERMS: usize = 4 * GROUP;

    fn load(s: &[u64]) -> __m256i {
        let s: &[u64; 4] = s[..4].try_into().unwrap_or(&[0; 4]);
        // SAFETY: `s` is four readable `u64`s (32 bytes); the load is unaligned.
        unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
    }

    /// The permutation minimums of `a.len()` (a multiple of [`PERMS`]) permutations into
    /// `out` (as long as `a`); `shingles` is not empty. Every value computed is below
    /// 2^61, so the signed 64-bit compare orders them as unsigned.
    #[target_feature(enable = "avx2")]
    pub(super) fn min_hashes(shingles: &[u64], a: &[u64], b: &[u64], out: &mut [u64]) {
        let m61 = _mm256_set1_epi64x(MERSENNE_61 as i64);
        let m61_less1 = _mm256_set1_epi64x(MERSENNE_61 as i64 - 1);
        for ((a, b), out) in a
            .chunks_exact(PERMS)
            .zip(b.chunks_exact(PERMS))
            .zip(out.chunks_exact_mut(PERMS))
        {
            let a_lo: [__m256i; GROUP] = std::array::from_fn(|g| load(&a[4 * g..]));
            let a_hi = a_lo.map(|v| _mm256_srli_epi64::<32>(v));
            let bv: [__m256i; GROUP] = std::array::from_fn(|g| load(&b[4 * g..]));
            let mut min = [_mm256_set1_epi64x(i64::MAX); GROUP];
            for &x in shingles {
                let x_lo = _mm256_set1_epi64x(x as i64);
                let x_hi = _mm256_set1_epi64x((x >> 32) as i64);
                for g in 0..GROUP {
                    // a·x mod 2^64 = lo(a)·lo(x) + ((hi(a)·lo(x) + lo(a)·hi(x)) << 32).
                    let low = _mm256_mul_epu32(x_lo, a_lo[g]);
                    let cross = _mm256_add_epi64(
                        _mm256_mul_epu32(x_hi, a_lo[g]),
                        _mm256_mul_epu32(x_lo, a_hi[g]),
                    );
                    let v = _mm256_add_epi64(
                        _mm256_add_epi64(low, _mm256_slli_epi64::<32>(cross)),
                        bv[g],
                    );
                    // (v & M) + (v >> 61), minus M when at least M.
                    let r = _mm256_add_epi64(_mm256_and_si256(v, m61), _mm256_srli_epi64::<61>(v));
                    let over = _mm256_cmpgt_epi64(r, m61_less1);
                    let r = _mm256_sub_epi64(r, _mm256_and_si256(over, m61));
                    let smaller = _mm256_cmpgt_epi64(min[g], r);
                    min[g] = _mm256_blendv_epi8(min[g], r, smaller);
                }
            }
            for (g, m) in min.iter().enumerate() {
                out[4 * g] = _mm256_extract_epi64::<0>(*m) as u64;
                out[4 * g + 1] = _mm256_extract_epi64::<1>(*m) as u64;
                out[4 * g + 2] = _mm256_extract_epi64::<2>(*m) as u64;
                out[4 * g + 3] = _mm256_extract_epi64::<3>(*m) as u64;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use std::arch::x86_64::*;

    use super::MERSENNE_61;

    /// Permutations per vector: `min_hashes` takes a multiple of this many.
    pub(super) const LANES: usize = 8;
    /// Vectors of permutations kept in registers during one pass over the shingles (their
    /// multipliers, offsets and minimums: 3 × 7 of the 32 registers).
    const GROUP: usize = 7;

    /// Whether the CPU has AVX-512F and AVX-512DQ (`vpmullq`), checked once (xxHash64's
    /// vector path needs the same).
    pub(in crate::dedup) fn available() -> bool {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq")
        })
    }

    /// The first eight `u64`s of `s` (zeros where `s` is shorter).
    #[inline(always)]
    pub(in crate::dedup) fn load(s: &[u64]) -> __m512i {
        let s: &[u64; LANES] = s[..LANES].try_into().unwrap_or(&[0; LANES]);
        // SAFETY: `s` is eight readable `u64`s (64 bytes); the load is unaligned.
        unsafe { _mm512_loadu_si512(s.as_ptr().cast()) }
    }

    /// The permutation minimums of `a.len()` (a multiple of [`LANES`]) permutations into
    /// `out` (as long as `a`); `shingles` is not empty. The product is `vpmullq`'s low 64
    /// bits; `r = (v & M) + (v >> 61)` is at most `M + 7`, and `min(r, r − M)` (unsigned,
    /// wrapping) is `r mod M`: `r − M` wraps above `r` when `r < M` (see [`group`] for
    /// when that last step is left out).
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) fn min_hashes(shingles: &[u64], a: &[u64], b: &[u64], out: &mut [u64]) {
        let m61 = _mm512_set1_epi64(MERSENNE_61 as i64);
        let mut start = 0;
        while start < a.len() {
            let vectors = ((a.len() - start) / LANES).min(GROUP);
            let end = start + vectors * LANES;
            match vectors {
                7 => group::<7>(
                    shingles,
                    &a[start..end],
                    &b[start..end],
                    &mut out[start..end],
                    m61,
                ),
                6 => group::<6>(
                    shingles,
                    &a[start..end],
                    &b[start..end],
                    &mut out[start..end],
                    m61,
                ),
                5 => group::<5>(
                    shingles,
                    &a[start..end],
                    &b[start..end],
                    &mut out[start..end],
                    m61,
                ),
                4 => group::<4>(
                    shingles,
                    &a[start..end],
                    &b[start..end],
                    &mut out[start..end],
                    m61,
                ),
                3 => group::<3>(
                    shingles,
                    &a[start..end],
                    &b[start..end],
                    &mut out[start..end],
                    m61,
                ),
                2 => group::<2>(
                    shingles,
                    &a[start..end],
                    &b[start..end],
                    &mut out[start..end],
                    m61,
                ),
                _ => group::<1>(
                    shingles,
                    &a[start..end],
                    &b[start..end],
                    &mut out[start..end],
                    m61,
                ),
            }
            start = end;
        }
    }

    /// `G` vectors of permutations (`a`, `b` and `out` hold `G × LANES`) in one pass.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn group<const G: usize>(
        shingles: &[u64],
        a: &[u64],
        b: &[u64],
        out: &mut [u64],
        m61: __m512i,
    ) {
        let av: [__m512i; G] = std::array::from_fn(|g| load(&a[LANES * g..]));
        let bv: [__m512i; G] = std::array::from_fn(|g| load(&b[LANES * g..]));
        // The fold `r = (v & M) + (v >> 61)` is `v mod M` unless `r ≥ M` (then `r − M`, at
        // most 7). Such an `r` comes once in about 2^58 values: the pass keeps the minimum
        // and the maximum of the folded `r` (two operations where the exact reduction and
        // its minimum are three), and when every maximum is below `M` every `r` was its
        // own `v mod M`, so the minimum of the `r` is the minimum of the `v mod M`, exactly.
        // Otherwise the pass is redone with the exact reduction.
        let mut min = [_mm512_set1_epi64(-1); G];
        let mut max = [_mm512_setzero_si512(); G];
        for &x in shingles {
            let xv = _mm512_set1_epi64(x as i64);
            for g in 0..G {
                let v = _mm512_add_epi64(_mm512_mullo_epi64(xv, av[g]), bv[g]);
                let r = _mm512_add_epi64(_mm512_and_si512(v, m61), _mm512_srli_epi64::<61>(v));
                min[g] = _mm512_min_epu64(min[g], r);
                max[g] = _mm512_max_epu64(max[g], r);
            }
        }
        if max.iter().any(|&m| _mm512_cmpge_epu64_mask(m, m61) != 0) {
            min = [_mm512_set1_epi64(-1); G];
            for &x in shingles {
                let xv = _mm512_set1_epi64(x as i64);
                for g in 0..G {
                    let v = _mm512_add_epi64(_mm512_mullo_epi64(xv, av[g]), bv[g]);
                    let r = _mm512_add_epi64(_mm512_and_si512(v, m61), _mm512_srli_epi64::<61>(v));
                    let r = _mm512_min_epu64(r, _mm512_sub_epi64(r, m61));
                    min[g] = _mm512_min_epu64(min[g], r);
                }
            }
        }
        for (g, m) in min.iter().enumerate() {
            let o: &mut [u64; LANES] = match (&mut out[LANES * g..LANES * (g + 1)]).try_into() {
                Ok(o) => o,
                Err(_) => return,
            };
            // SAFETY: `o` is eight writable `u64`s (64 bytes); the store is unaligned.
            unsafe { _mm512_storeu_si512(o.as_mut_ptr().cast(), *m) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64, for reproducible random inputs.
    fn random(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn naive(shingles: &[u64], a: &[u64], b: &[u64]) -> Vec<u64> {
        a.iter()
            .zip(b)
            .map(|(&a, &b)| {
                shingles
                    .iter()
                    .map(|&x| {
                        (u128::from(x.wrapping_mul(a).wrapping_add(b)) % u128::from(MERSENNE_61))
                            as u64
                    })
                    .min()
                    .unwrap_or(u64::MAX)
            })
            .collect()
    }

    #[test]
    fn dispatched_equals_scalar_and_naive_on_random_inputs() {
        let mut s = 7;
        for round in 0..200 {
            let n_perm = [1, 3, 4, 8, 9, 112, 115][round % 7];
            let n_shingles = [0, 1, 2, 5, 33, 300][round % 6];
            let a: Vec<u64> = (0..n_perm)
                .map(|_| 1 + random(&mut s) % (MERSENNE_61 - 1))
                .collect();
            let mut b: Vec<u64> = (0..n_perm).map(|_| random(&mut s) % MERSENNE_61).collect();
            if round % 5 == 0 {
                // Full-range values too, and edge values of the reduction.
                b.iter_mut().for_each(|v| *v = random(&mut s));
            }
            let mut x: Vec<u64> = (0..n_shingles).map(|_| random(&mut s)).collect();
            if round % 3 == 0 {
                x.extend([
                    0,
                    1,
                    u64::MAX,
                    MERSENNE_61,
                    MERSENNE_61 - 1,
                    MERSENNE_61 + 1,
                ]);
            }
            let (mut fast, mut scalar) = (vec![5], vec![5]);
            min_hashes(&x, &a, &b, &mut fast);
            min_hashes_scalar(&x, &a, &b, &mut scalar);
            let mut want = vec![5];
            want.extend(naive(&x, &a, &b));
            assert_eq!(fast, scalar, "round {round}");
            assert_eq!(scalar, want, "round {round}");
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") && !x.is_empty() {
                // The AVX2 path too where AVX-512 is what the dispatch picks.
                let k = n_perm - n_perm % avx2::PERMS;
                let mut v = vec![0; k];
                // SAFETY: AVX2 is available (checked).
                unsafe { avx2::min_hashes(&x, &a[..k], &b[..k], &mut v) };
                assert_eq!(v, want[1..=k], "round {round} (AVX2)");
            }
        }
    }

    #[test]
    fn a_fold_at_or_above_the_modulus_is_reduced() {
        // With a = 1 and b = 0 the permuted value is x itself: u64::MAX folds to M + 7
        // (residue 7), above the fold of 100 although its residue is smaller; M folds to M
        // (residue 0), u64::MAX − 1 to M + 6. Each lane position and group size of the
        // vector path gets such a lane, alone or among ordinary ones.
        for n_perm in [1, 8, 16, 56, 112] {
            for pos in 0..n_perm {
                let mut a = vec![3; n_perm];
                let b = vec![0; n_perm];
                a[pos] = 1;
                for x in [
                    vec![100, u64::MAX],
                    vec![u64::MAX, 100],
                    vec![u64::MAX],
                    vec![MERSENNE_61, 9],
                    vec![u64::MAX - 1, 1 << 40, 7],
                ] {
                    let mut got = Vec::new();
                    min_hashes(&x, &a, &b, &mut got);
                    assert_eq!(got, naive(&x, &a, &b), "{n_perm} {pos} {x:?}");
                }
            }
        }
    }

    #[test]
    fn reduction_edges() {
        for v in [
            0,
            1,
            MERSENNE_61 - 1,
            MERSENNE_61,
            MERSENNE_61 + 1,
            u64::MAX,
            u64::MAX - 6,
            7 << 61,
        ] {
            assert_eq!(mod_mersenne61(v), v % MERSENNE_61, "{v:#x}");
        }
    }
}
