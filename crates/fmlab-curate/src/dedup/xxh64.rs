//! XXH64 (seed 0), written from the xxHash specification for where MinHash hashes its
//! n-grams: millions of short inputs (most under 64 bytes), for which a call into a
//! general-purpose hasher costs as much as the hashing. [`xxh64`] hashes one input;
//! [`xxh64_ranges`] many ranges of one buffer, eight per vector on CPUs with AVX-512 (the
//! scalar hash's steps in every lane, each step masked to the lanes it applies to: no
//! branch on a length, which the scalar loop mispredicts). Bit for bit the `xxhash-rust`
//! crate's `xxh64(bytes, 0)` (tested on every length up to 300 bytes, and the vector path
//! on random ranges against the scalar one).

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline(always)]
fn read64(b: &[u8], i: usize) -> u64 {
    let w: [u8; 8] = b
        .get(i..i + 8)
        .and_then(|s| s.try_into().ok())
        .unwrap_or_default();
    u64::from_le_bytes(w)
}

#[inline(always)]
fn read32(b: &[u8], i: usize) -> u64 {
    let w: [u8; 4] = b
        .get(i..i + 4)
        .and_then(|s| s.try_into().ok())
        .unwrap_or_default();
    u64::from(u32::from_le_bytes(w))
}

#[inline(always)]
fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline(always)]
fn merge(h: u64, acc: u64) -> u64 {
    (h ^ round(0, acc)).wrapping_mul(P1).wrapping_add(P4)
}

/// XXH64 of `bytes` with seed 0.
#[inline(always)]
pub fn xxh64(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let mut i = 0;
    let mut h = if len >= 32 {
        let mut v = [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)];
        while i + 32 <= len {
            for (k, acc) in v.iter_mut().enumerate() {
                *acc = round(*acc, read64(bytes, i + 8 * k));
            }
            i += 32;
        }
        let h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        v.iter().fold(h, |h, &acc| merge(h, acc))
    } else {
        P5
    };
    h = h.wrapping_add(len as u64);
    while i + 8 <= len {
        h = (h ^ round(0, read64(bytes, i)))
            .rotate_left(27)
            .wrapping_mul(P1)
            .wrapping_add(P4);
        i += 8;
    }
    if i + 4 <= len {
        h = (h ^ read32(bytes, i).wrapping_mul(P1))
            .rotate_left(23)
            .wrapping_mul(P2)
            .wrapping_add(P3);
        i += 4;
    }
    for &b in &bytes[i..] {
        h = (h ^ u64::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// XXH64 of `arena[starts[i]..starts[i] + lens[i]]` into `out[i]`, for every `i` (the
/// three slices as long as each other). With AVX-512 (F and DQ, detected at run time) eight
/// ranges per vector where all eight are shorter than 64 bytes and end at least 8 bytes
/// before the end of `arena` (pad it); the others one at a time with [`xxh64`]. A range out
/// of `arena` gets hash 0 (no caller makes one).
pub(crate) fn xxh64_ranges(arena: &[u8], starts: &[u64], lens: &[u64], out: &mut [u64]) {
    let n = out.len().min(starts.len()).min(lens.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        done = n - n % avx512::LANES;
        // SAFETY: AVX-512F and AVX-512DQ are available (checked just above), the only
        // requirement of a `#[target_feature(enable = "avx512f,avx512dq")]` function.
        unsafe { avx512::xxh64_ranges(arena, &starts[..done], &lens[..done], &mut out[..done]) };
    }
    xxh64_ranges_scalar(arena, &starts[done..n], &lens[done..n], &mut out[done..n]);
}

/// [`xxh64_ranges`] one range at a time (the portable path).
pub(crate) fn xxh64_ranges_scalar(arena: &[u8], starts: &[u64], lens: &[u64], out: &mut [u64]) {
    for ((&s, &l), o) in starts.iter().zip(lens).zip(out) {
        *o = range(arena, s, l).map_or(0, xxh64);
    }
}

fn range(arena: &[u8], start: u64, len: u64) -> Option<&[u8]> {
    let s = usize::try_from(start).ok()?;
    let e = s.checked_add(usize::try_from(len).ok()?)?;
    arena.get(s..e)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{P1, P2, P3, P4, P5};

    /// Ranges per vector.
    pub(super) const LANES: usize = 8;

    /// AVX-512F and DQ (`vpmullq`), as the permutations need; eight `u64`s as a vector.
    pub(super) use crate::dedup::permute::avx512::{available, load};

    /// `a·b mod 2^64` per lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn mul(a: __m512i, b: u64) -> __m512i {
        _mm512_mullo_epi64(a, _mm512_set1_epi64(b as i64))
    }

    /// xxHash's `round(acc, lane)`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn round(acc: __m512i, lane: __m512i) -> __m512i {
        mul(
            _mm512_rol_epi64::<31>(_mm512_add_epi64(acc, mul(lane, P2))),
            P1,
        )
    }

    /// xxHash's `merge(h, acc)`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn merge(h: __m512i, acc: __m512i) -> __m512i {
        let zero = _mm512_setzero_si512();
        _mm512_add_epi64(
            mul(_mm512_xor_si512(h, round(zero, acc)), P1),
            _mm512_set1_epi64(P4 as i64),
        )
    }

    /// The little-endian `u64` at byte `offsets[i]` of `base` in the lanes of `mask` (0 in
    /// the others).
    ///
    /// # Safety
    /// For each lane of `mask`, the 8 bytes at `base + offsets[i]` are readable.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn gather(mask: __mmask8, offsets: __m512i, base: *const u8) -> __m512i {
        // SAFETY: the caller's promise; lanes out of `mask` are not read.
        unsafe {
            _mm512_mask_i64gather_epi64::<1>(_mm512_setzero_si512(), mask, offsets, base.cast())
        }
    }

    /// The ranges eight at a time (`starts.len()` a multiple of [`LANES`]), each batch
    /// with a range of 64 bytes or more, or too near the end of `arena`, one at a time.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) fn xxh64_ranges(arena: &[u8], starts: &[u64], lens: &[u64], out: &mut [u64]) {
        // `arena.len() - 8`, below which every range must end (0 when there is no room).
        let limit = _mm512_set1_epi64(arena.len().saturating_sub(8) as i64);
        let sixty_four = _mm512_set1_epi64(64);
        for ((s, l), o) in starts
            .chunks_exact(LANES)
            .zip(lens.chunks_exact(LANES))
            .zip(out.chunks_exact_mut(LANES))
        {
            let (sv, lv) = (load(s), load(l));
            // start ≤ limit and len < 64 (so no overflow below), then start + len ≤ limit.
            let ok = _mm512_cmple_epu64_mask(sv, limit)
                & _mm512_cmplt_epu64_mask(lv, sixty_four)
                & _mm512_cmple_epu64_mask(_mm512_add_epi64(sv, lv), limit);
            if ok != 0xff || arena.len() < 8 {
                super::xxh64_ranges_scalar(arena, s, l, o);
                continue;
            }
            // SAFETY: every range lies in `arena` with 8 bytes to spare after its end
            // (checked just above), what `batch` reads.
            let h = unsafe { batch(arena.as_ptr(), sv, lv) };
            let o: &mut [u64; LANES] = match o.try_into() {
                Ok(o) => o,
                Err(_) => return,
            };
            // SAFETY: `o` is eight writable `u64`s (64 bytes); the store is unaligned.
            unsafe { _mm512_storeu_si512(o.as_mut_ptr().cast(), h) };
        }
    }

    /// XXH64 of the eight ranges `base + start[i]`, `len[i]` bytes (below 64), the
    /// specification's steps in every lane, each masked to the lanes it applies to.
    ///
    /// # Safety
    /// Each range and the 8 bytes after it are readable.
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn batch(base: *const u8, start: __m512i, len: __m512i) -> __m512i {
        let set = |v: u64| _mm512_set1_epi64(v as i64);
        // Lanes of 32 bytes or more: one stripe of four accumulators.
        let long = _mm512_cmpge_epu64_mask(len, set(32));
        let mut h = set(P5);
        if long != 0 {
            let mut v = [
                set(P1.wrapping_add(P2)),
                set(P2),
                _mm512_setzero_si512(),
                set(0u64.wrapping_sub(P1)),
            ];
            for (k, acc) in v.iter_mut().enumerate() {
                let at = _mm512_add_epi64(start, set(8 * k as u64));
                // SAFETY: lanes in `long` hold at least 32 bytes from `start`.
                *acc = round(*acc, unsafe { gather(long, at, base) });
            }
            let mut s = _mm512_add_epi64(
                _mm512_add_epi64(_mm512_rol_epi64::<1>(v[0]), _mm512_rol_epi64::<7>(v[1])),
                _mm512_add_epi64(_mm512_rol_epi64::<12>(v[2]), _mm512_rol_epi64::<18>(v[3])),
            );
            for acc in v {
                s = merge(s, acc);
            }
            h = _mm512_mask_mov_epi64(h, long, s);
        }
        h = _mm512_add_epi64(h, len);
        // The rest after the stripe: `rem` (below 32) bytes from `at`.
        let stripe = _mm512_maskz_mov_epi64(long, set(32));
        let mut at = _mm512_add_epi64(start, stripe);
        let rem = _mm512_sub_epi64(len, stripe);
        for k in 1..=3u64 {
            let m = _mm512_cmpge_epu64_mask(rem, set(8 * k));
            // SAFETY: lanes in `m` have at least 8 more bytes at `at`.
            let w = unsafe { gather(m, at, base) };
            let step = _mm512_add_epi64(
                mul(
                    _mm512_rol_epi64::<27>(_mm512_xor_si512(h, round(_mm512_setzero_si512(), w))),
                    P1,
                ),
                set(P4),
            );
            h = _mm512_mask_mov_epi64(h, m, step);
            at = _mm512_mask_add_epi64(at, m, at, set(8));
        }
        // The last `rem % 8` bytes, read as one `u64` (the 8 bytes after a range are
        // readable).
        let tail = _mm512_and_si512(rem, set(7));
        // SAFETY: `at` is at most the end of its range.
        let mut w = unsafe { gather(0xff, at, base) };
        let four = _mm512_cmpge_epu64_mask(tail, set(4));
        if four != 0 {
            let word = _mm512_and_si512(w, set(0xffff_ffff));
            let step = _mm512_add_epi64(
                mul(
                    _mm512_rol_epi64::<23>(_mm512_xor_si512(h, mul(word, P1))),
                    P2,
                ),
                set(P3),
            );
            h = _mm512_mask_mov_epi64(h, four, step);
            w = _mm512_mask_srli_epi64::<32>(w, four, w);
        }
        let bytes = _mm512_mask_sub_epi64(tail, four, tail, set(4));
        for k in 1..=3u64 {
            let m = _mm512_cmpge_epu64_mask(bytes, set(k));
            let byte = _mm512_and_si512(w, set(0xff));
            let step = mul(
                _mm512_rol_epi64::<11>(_mm512_xor_si512(h, mul(byte, P5))),
                P1,
            );
            h = _mm512_mask_mov_epi64(h, m, step);
            w = _mm512_srli_epi64::<8>(w);
        }
        h = _mm512_xor_si512(h, _mm512_srli_epi64::<33>(h));
        h = mul(h, P2);
        h = _mm512_xor_si512(h, _mm512_srli_epi64::<29>(h));
        h = mul(h, P3);
        _mm512_xor_si512(h, _mm512_srli_epi64::<32>(h))
    }
}

#[cfg(test)]
mod tests {
    /// SplitMix64, for reproducible random inputs.
    fn random(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn ranges_equal_one_at_a_time_on_random_ranges() {
        let mut s = 3;
        for round in 0..400 {
            let n = [0, 1, 7, 8, 9, 16, 40, 200][round % 8];
            let arena: Vec<u8> = (0..n + 80).map(|_| random(&mut s) as u8).collect();
            let count = [0, 1, 5, 8, 9, 16, 23, 64][(round / 8) % 8];
            let (mut starts, mut lens) = (Vec::new(), Vec::new());
            for _ in 0..count {
                // Mostly short ranges anywhere (the tail ones too near the end for the
                // vector path), some of 64 bytes or more, a few out of the arena.
                let len = match random(&mut s) % 16 {
                    0 => 64 + random(&mut s) % 20,
                    1 => 32,
                    2 => 31,
                    3 => 0,
                    _ => random(&mut s) % 64,
                };
                let start = match random(&mut s) % 64 {
                    0 => arena.len() as u64,
                    1 => u64::MAX - 3,
                    _ => random(&mut s) % arena.len() as u64,
                };
                starts.push(start);
                lens.push(len.min(arena.len() as u64));
            }
            let want: Vec<u64> = starts
                .iter()
                .zip(&lens)
                .map(|(&a, &l)| {
                    usize::try_from(a)
                        .ok()
                        .and_then(|a| arena.get(a..a.checked_add(l as usize)?))
                        .map_or(0, |b| xxhash_rust::xxh64::xxh64(b, 0))
                })
                .collect();
            let mut got = vec![1; count];
            super::xxh64_ranges(&arena, &starts, &lens, &mut got);
            assert_eq!(got, want, "round {round}");
            let mut scalar = vec![1; count];
            super::xxh64_ranges_scalar(&arena, &starts, &lens, &mut scalar);
            assert_eq!(scalar, want, "round {round}");
        }
    }

    #[test]
    fn vector_path_covers_every_length_below_64() {
        // Every length 0..64 in every lane position, all ranges well inside the arena (8
        // bytes to spare after each), so that the vector path takes every batch.
        let mut s = 11;
        let arena: Vec<u8> = (0..4096).map(|_| random(&mut s) as u8).collect();
        let lens: Vec<u64> = (0..64 * 8).map(|i| (i * 5 % 64) as u64).collect();
        let starts: Vec<u64> = (0..lens.len()).map(|i| (i * 7 % 3900) as u64).collect();
        let mut got = vec![0; lens.len()];
        super::xxh64_ranges(&arena, &starts, &lens, &mut got);
        for ((&a, &l), &h) in starts.iter().zip(&lens).zip(&got) {
            let (a, l) = (a as usize, l as usize);
            assert_eq!(h, xxhash_rust::xxh64::xxh64(&arena[a..a + l], 0), "{a} {l}");
        }
        #[cfg(target_arch = "x86_64")]
        if super::avx512::available() {
            let mut v = vec![0; lens.len()];
            // SAFETY: AVX-512F and DQ are available (checked).
            unsafe { super::avx512::xxh64_ranges(&arena, &starts, &lens, &mut v) };
            assert_eq!(v, got);
        }
    }

    #[test]
    fn equals_the_xxhash_crate_on_every_length() {
        let mut state = 0x1234_5678_u64;
        for len in 0..300 {
            for _ in 0..8 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        (state >> 56) as u8
                    })
                    .collect();
                assert_eq!(
                    super::xxh64(&bytes),
                    xxhash_rust::xxh64::xxh64(&bytes, 0),
                    "{len}"
                );
            }
        }
    }
}
