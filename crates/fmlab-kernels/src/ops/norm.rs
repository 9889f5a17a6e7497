//! RMSNorm's sums of squares, eight rows at a time (see [`sums_of_squares`]).

/// The rows whose norms [`sums_of_squares`] takes together.
pub(super) const ROWS: usize = 8;

/// The sums of squares of up to eight `width`-wide rows (`rows.len() / width` of them; the
/// rest of the array zero), each ggml's: the f32 squares added one by one in order, in f64
/// from zero. The rows' sums are formed side by side, one chain each: a single chain waits
/// on each addition's latency, which made the norms of an 8-sequence decoding step about 1%
/// of it. With AVX-512, eight whole rows go eight features at a time: the 8×8 block of
/// squares is transposed so that one register holds a feature's square in every row,
/// widened to f64, and added to the eight sums in one instruction (the same additions in
/// the same order as the scalar loop, lane by lane). An 8-sequence SmolLM2 step ran 1.01×
/// as fast with it (rounds 0.996–1.014, 7 in one process), the norms having been 1.1% of
/// its profile.
pub(super) fn sums_of_squares(rows: &[f32], width: usize) -> [f64; ROWS] {
    let n = (rows.len() / width).min(ROWS);
    let mut sums = [0f64; ROWS];
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if n == ROWS && super::avx512_available() {
        // SAFETY: AVX-512F and AVX2 (checked); eight rows of `width` lie in `rows`.
        done = unsafe { avx512::sums8(rows, width, &mut sums) };
    }
    for i in done..width {
        for (r, sum) in sums.iter_mut().enumerate().take(n) {
            let v = rows[r * width + i];
            *sum += (v * v) as f64;
        }
    }
    sums
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Features `0..width / 8 · 8` of [`super::sums_of_squares`] for eight rows, added to
    /// `sums`; returns how many features it took.
    ///
    /// # Safety
    /// AVX-512F and AVX2; `rows` holds eight rows of `width`.
    #[target_feature(enable = "avx512f,avx2")]
    pub(super) unsafe fn sums8(rows: &[f32], width: usize, sums: &mut [f64; 8]) -> usize {
        let p = rows.as_ptr();
        let mut acc = _mm512_setzero_pd();
        let whole = width / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: row r's features i..i + 8 lie in `rows` (caller).
            let sq: [__m256; 8] = std::array::from_fn(|r| unsafe {
                let v = _mm256_loadu_ps(p.add(r * width + i));
                _mm256_mul_ps(v, v)
            });
            // Transposed: column k holds feature i + k of rows 0..8.
            let t0 = _mm256_unpacklo_ps(sq[0], sq[1]);
            let t1 = _mm256_unpackhi_ps(sq[0], sq[1]);
            let t2 = _mm256_unpacklo_ps(sq[2], sq[3]);
            let t3 = _mm256_unpackhi_ps(sq[2], sq[3]);
            let t4 = _mm256_unpacklo_ps(sq[4], sq[5]);
            let t5 = _mm256_unpackhi_ps(sq[4], sq[5]);
            let t6 = _mm256_unpacklo_ps(sq[6], sq[7]);
            let t7 = _mm256_unpackhi_ps(sq[6], sq[7]);
            let u0 = _mm256_shuffle_ps::<0b01_00_01_00>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0b11_10_11_10>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0b01_00_01_00>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0b11_10_11_10>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0b01_00_01_00>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0b11_10_11_10>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0b01_00_01_00>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0b11_10_11_10>(t5, t7);
            let columns = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            for c in columns {
                acc = _mm512_add_pd(acc, _mm512_cvtps_pd(c));
            }
        }
        // SAFETY: `sums` holds eight f64.
        unsafe { _mm512_storeu_pd(sums.as_mut_ptr(), acc) };
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight rows' sums of squares equal the sequential f64 sums bit for bit, with rows
    /// whose order of additions shows in the sum: one huge square (about 1e37, whose f64
    /// ulp is about 1e21) after three and before many squares of about 4e20, each lost
    /// when added to the huge sum alone but not when added together first; at widths with
    /// and without a tail past the last eight features. (Adding a block's eight columns in
    /// reverse failed it.)
    #[test]
    fn sums_of_squares_add_in_order() {
        for width in [8, 37, 576] {
            let x: Vec<f32> = (0..8 * width)
                .map(|i| {
                    let (r, j) = (i / width, i % width);
                    match j {
                        3 => 3.0e18 * (1.0 + r as f32 / 8.0),
                        // Small after the huge one in its eight: any order within the
                        // eight other than this one puts fewer of the 4e20 squares first.
                        4..=7 => 1.0 + j as f32,
                        _ => 2.0e10 * (1.0 + (j % 5) as f32 / 10.0) + (i % 7) as f32,
                    }
                })
                .collect();
            let sums = sums_of_squares(&x, width);
            for (r, row) in x.chunks_exact(width).enumerate() {
                let mut want = 0f64;
                for &v in row {
                    want += (v * v) as f64;
                }
                assert_eq!(sums[r].to_bits(), want.to_bits(), "width {width}, row {r}");
            }
            // And the order matters for these rows: summed in reverse, some row differs.
            let reversed = x.chunks_exact(width).any(|row| {
                let forward = row.iter().fold(0f64, |s, &v| s + (v * v) as f64);
                let backward = row.iter().rev().fold(0f64, |s, &v| s + (v * v) as f64);
                forward != backward
            });
            assert!(reversed, "width {width}: the order never showed");
        }
    }
}
