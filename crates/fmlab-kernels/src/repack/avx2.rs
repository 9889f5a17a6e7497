//! The 256-bit kernel: each group's 16 rows as two halves of eight, one 32-bit lane per
//! row. `vpmaddubsw` (unsigned weights times signed activations, pairs summed to 16 bits)
//! and `vpmaddwd` by ones give the four-element sums `vpdpbusd` gives; the pairs cannot
//! saturate for the 4- and 5-bit formats (at most 2 · 31 · 127). Q8_0, whose stored
//! `q + 128` could, takes ggml's sign trick instead: `|q|` times the activations with q's
//! sign, at most 2 · 128 · 127. The float steps are the 512-bit kernel's, lane for lane.

use std::arch::x86_64::*;

use super::{Block32, Inputs, BLOCK, HIGH, LANES, MAGIC, MAGIC_BITS, QUADS};
use crate::quant::QuantType;

/// Group `g` times activation rows `t0..t0 + take`.
///
/// # Safety
/// AVX2, FMA and F16C; as [`super::portable_group`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn group(w: &Block32, x: &Inputs, g: usize, t0: usize, take: usize, y: *mut f32) {
    let signed = w.format == QuantType::Q8_0;
    for t in t0..t0 + take {
        for half in 0..2 {
            let first = g * LANES + 8 * half;
            if first >= w.rows {
                break;
            }
            // The first pass over the group fetches the next group's weights.
            let fetch = t == 0 && half == 0;
            // SAFETY: the caller's contract, passed on; rows first.. of this half.
            unsafe {
                let high = !w.high.is_empty();
                match (w.nibbles, high, w.with_min, signed) {
                    (true, false, true, _) => {
                        eight::<true, false, true, false>(w, x, g, t, half, y, fetch)
                    }
                    (true, false, false, _) => {
                        eight::<true, false, false, false>(w, x, g, t, half, y, fetch)
                    }
                    (true, true, _, _) => {
                        eight::<true, true, false, false>(w, x, g, t, half, y, fetch)
                    }
                    (false, _, _, true) => {
                        eight::<false, false, false, true>(w, x, g, t, half, y, fetch)
                    }
                    (false, _, _, false) => {
                        eight::<false, false, false, false>(w, x, g, t, half, y, fetch)
                    }
                }
            }
        }
    }
}

/// Activation row `t` times rows `8 · half .. 8 · half + 8` of group `g`: per block and
/// group of four elements j, the integer sums from the lane's start, converted (see
/// MAGIC) and added with FMA into accumulator j; at the end ggml's horizontal order.
/// With `HI` (Q5_0), each value's fifth bit comes from the group's mask bits.
///
/// # Safety
/// As [`group`]; the half's first row exists.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn eight<const NIB: bool, const HI: bool, const MIN: bool, const SIGNED: bool>(
    w: &Block32,
    x: &Inputs,
    g: usize,
    t: usize,
    half: usize,
    y: *mut f32,
    fetch: bool,
) {
    let per_block = LANES * BLOCK / if NIB { 2 } else { 1 };
    let mut acc = [_mm256_setzero_ps(); QUADS];
    let mut mins = _mm256_setzero_ps();
    let low = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    let flip = _mm256_set1_epi8(-128);
    let magic = _mm256_set1_ps(MAGIC);
    // Mask bits to bytes: byte k of the half takes mask byte k / 8 (the shuffle works
    // within 128-bit lanes, each holding all four mask bytes) and tests its bit k mod 8.
    let spread = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
        3, 3,
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let sixteen = _mm256_set1_epi8(16);
    let q =
        w.q.as_ptr()
            .wrapping_add(g * w.blocks * per_block + 32 * half);
    let d = w.d.as_ptr().wrapping_add(g * w.blocks * LANES + 8 * half);
    let m = w.m.as_ptr().wrapping_add(g * w.blocks * LANES + 8 * half);
    let xs = x.qs.as_ptr().wrapping_add(t * w.cols);
    let dx = x.dx.as_ptr().wrapping_add(t * w.blocks);
    let sx = x.sx.as_ptr().wrapping_add(t * w.blocks);
    let st = x.start.as_ptr().wrapping_add(t * w.blocks * QUADS);
    // The group this thread computes next (see `repack::for_groups`).
    let next = crate::repack::next_after(g);
    for b in 0..w.blocks {
        if fetch {
            w.fetch(next, b);
        }
        // SAFETY: block b of group g's half and of row t (caller's contract).
        unsafe {
            let qb = q.add(b * per_block);
            let dv = _mm256_cvtph_ps(_mm_loadu_si128(d.add(b * LANES).cast()));
            let scale = _mm256_mul_ps(dv, _mm256_set1_ps(*dx.add(b)));
            for (j, a) in acc.iter_mut().enumerate() {
                let wv = if NIB {
                    let bytes = _mm256_loadu_si256(qb.add(64 * (j % 4)).cast());
                    let wv = if j < QUADS / 2 {
                        _mm256_and_si256(bytes, low)
                    } else {
                        _mm256_and_si256(_mm256_srli_epi16::<4>(bytes), low)
                    };
                    if HI {
                        // This half's 32 mask bits of quad j (rows 8 · half ..).
                        let hb = w
                            .high
                            .as_ptr()
                            .add((g * w.blocks + b) * HIGH + 8 * j + 4 * half);
                        let mask = _mm256_set1_epi32(hb.cast::<i32>().read_unaligned());
                        let set = _mm256_and_si256(_mm256_shuffle_epi8(mask, spread), bit);
                        let set = _mm256_cmpeq_epi8(set, bit);
                        _mm256_or_si256(wv, _mm256_and_si256(set, sixteen))
                    } else {
                        wv
                    }
                } else {
                    _mm256_loadu_si256(qb.add(64 * j).cast())
                };
                let four = xs.add(b * BLOCK + 4 * j).cast::<i32>().read_unaligned();
                let xv = _mm256_set1_epi32(four);
                let pairs = if SIGNED {
                    // Back to q, then |q| times the activations with q's sign.
                    let qv = _mm256_xor_si256(wv, flip);
                    _mm256_maddubs_epi16(_mm256_abs_epi8(qv), _mm256_sign_epi8(xv, qv))
                } else {
                    _mm256_maddubs_epi16(wv, xv)
                };
                let from = if SIGNED || MIN {
                    MAGIC_BITS
                } else {
                    *st.add(b * QUADS + j)
                };
                let sum = _mm256_add_epi32(_mm256_madd_epi16(pairs, ones), _mm256_set1_epi32(from));
                let sum = _mm256_sub_ps(_mm256_castsi256_ps(sum), magic);
                *a = _mm256_fmadd_ps(sum, scale, *a);
            }
            if MIN {
                let mv = _mm256_cvtph_ps(_mm_loadu_si128(m.add(b * LANES).cast()));
                mins = _mm256_fmadd_ps(mv, _mm256_set1_ps(*sx.add(b)), mins);
            }
        }
    }
    let a = &acc;
    let mut total = _mm256_add_ps(
        _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6])),
        _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7])),
    );
    if MIN {
        total = _mm256_add_ps(total, mins);
    }
    let first = g * LANES + 8 * half;
    let lanes = 8.min(w.rows - first);
    let mut out = [0f32; 8];
    // SAFETY: `out` is eight f32; row t's columns first..first + lanes exist in `y`.
    unsafe {
        _mm256_storeu_ps(out.as_mut_ptr(), total);
        std::ptr::copy_nonoverlapping(out.as_ptr(), y.add(t * w.rows + first), lanes);
    }
}
