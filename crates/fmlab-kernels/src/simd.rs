//! Hand-written SIMD paths, chosen at run time. `dot_quantized` returns `None` where no
//! special path exists for the type or the CPU, and the portable code in `q8.rs` runs instead.

use crate::QuantType;

/// A SIMD integer dot product of a weight row with quantized activations, where one exists.
#[inline]
pub(crate) fn dot_quantized(
    t: QuantType,
    row: &[u8],
    a: &crate::activation::QuantizedRow,
) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::available() {
            // SAFETY: `available()` checked that the CPU has AVX2 and FMA.
            return unsafe { avx2::dot_quantized(t, row, a) };
        }
    }
    let _ = (t, row, a);
    None
}

/// Whether this CPU has AVX2 and FMA (the multi-row kernels' requirement).
pub(crate) fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx2::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU also has F16C (the repacked 256-bit kernels' and the vector attention
/// scores' requirement: their f16 scales and roundings).
pub(crate) fn avx2_fma_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| avx2_fma() && is_x86_feature_detected!("f16c"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Activation rows prepared for the multi-row kernels, where one exists for the weight
/// format and the CPU (Q4_0, Q4_1, Q5_0 and Q8_0 on AVX2): see [`pack`].
pub(crate) struct Packed {
    /// Real rows (the last group of four is padded with zeros).
    rows: usize,
    blocks: usize,
    /// Per group of four rows, per block: the four rows' 32 quants.
    qs: Vec<i8>,
    /// Per group, per block: the four rows' scales.
    d: Vec<f32>,
    /// Per group, per block: the four rows' `d · Σq` (Q8_1 activations; empty otherwise).
    s: Vec<f32>,
}

/// Packs `inputs` four rows at a time so that the kernel reads one contiguous stream per
/// group: for each block, the four rows' quants (128 bytes), scales and sums. `None` where
/// no multi-row kernel exists for `t` on this CPU, or the rows are not whole blocks.
pub(crate) fn pack(t: QuantType, inputs: &[crate::activation::QuantizedRow]) -> Option<Packed> {
    #[cfg(target_arch = "x86_64")]
    {
        let with_sums = match t {
            QuantType::Q4_0 | QuantType::Q5_0 | QuantType::Q8_0 => false,
            QuantType::Q4_1 => true,
            _ => return None,
        };
        if !avx2::available() || inputs.is_empty() {
            return None;
        }
        let blocks = inputs[0].d.len();
        if inputs.iter().any(|a| {
            a.d.len() != blocks || a.qs.len() != 32 * blocks || (with_sums && a.s.len() != blocks)
        }) {
            return None;
        }
        let groups = inputs.len().div_ceil(4);
        let mut qs = vec![0i8; groups * blocks * 128];
        let mut d = vec![0f32; groups * blocks * 4];
        let mut s = vec![0f32; if with_sums { groups * blocks * 4 } else { 0 }];
        for (r, a) in inputs.iter().enumerate() {
            let (g, k) = (r / 4, r % 4);
            for b in 0..blocks {
                let at = (g * blocks + b) * 4 + k;
                qs[32 * at..32 * at + 32].copy_from_slice(&a.qs[32 * b..32 * b + 32]);
                d[at] = a.d[b];
                if with_sums {
                    s[at] = a.s[b];
                }
            }
        }
        Some(Packed {
            rows: inputs.len(),
            blocks,
            qs,
            d,
            s,
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (t, inputs);
        None
    }
}

/// `out[r · n + i] = weight row r · activation row i` for the weight rows in `rows` (each
/// `row_bytes` long, in format `t`) and the `n` rows `packed` holds. Each value is formed by
/// the same operations in the same order as the one-row kernel ([`dot_quantized`]) forms
/// it, so the results are bit-identical; what is shared is the work around them: a weight
/// block is loaded, unpacked and its scale converted once for four activation rows, and
/// an activation block is loaded once for two weight rows. Returns `false` (and writes
/// nothing) where the shapes do not match what `packed` was made for.
pub(crate) fn dot_packed(
    t: QuantType,
    rows: &[u8],
    row_bytes: usize,
    packed: &Packed,
    out: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let (elements, bytes) = t.block();
        let count = rows.len().checked_div(row_bytes).unwrap_or(0);
        if elements != 32
            || row_bytes == 0
            || row_bytes != packed.blocks * bytes
            || rows.len() != count * row_bytes
            || out.len() != count * packed.rows
            || !avx2::available()
        {
            return false;
        }
        // SAFETY: AVX2/FMA checked; the shapes (blocks per row, rows, outputs) checked above,
        // and `packed` holds whole groups of `blocks` blocks.
        unsafe { avx2::dot_packed(t, rows, row_bytes, packed, out) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (t, rows, row_bytes, packed, out);
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    use crate::activation::{DotOrder, QuantizedRow};
    use crate::quant::{f16_to_f32, scale_min_k4};
    use crate::QuantType;

    pub(super) fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE
            .get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }

    #[inline]
    fn half(b: &[u8], at: usize) -> f32 {
        f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; `row` and `a` must describe the same number of
    /// blocks of `t`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_quantized(t: QuantType, row: &[u8], a: &QuantizedRow) -> Option<f32> {
        match t {
            QuantType::Q4_0 => Some(iq4_0(row, a)),
            QuantType::Q4_1 => {
                let blocks = row.len() / 20;
                if a.qs.len() < blocks * 32 || a.d.len() < blocks || a.s.len() < blocks {
                    return Some(iq4_1(row, a));
                }
                // SAFETY: AVX2/FMA (caller); lengths checked above.
                Some(unsafe { iq4_1_raw(row.as_ptr(), blocks, a) })
            }
            QuantType::Q8_0 => {
                let blocks = row.len() / 34;
                if a.qs.len() < blocks * 32 || a.d.len() < blocks {
                    return Some(iq8_0(row, a));
                }
                // SAFETY: AVX2/FMA (caller); lengths checked above.
                Some(unsafe { iq8_0_raw(row.as_ptr(), blocks, a) })
            }
            QuantType::Q5_0 => Some(iq5_0(row, a)),
            QuantType::Q4_K => Some(iq4_k(row, a)),
            QuantType::Q6_K => Some(iq6_k(row, a)),
            _ => None,
        }
    }

    /// See [`super::dot_packed`].
    ///
    /// # Safety
    /// AVX2 and FMA; `rows` holds whole rows of `packed.blocks` blocks of `t` (one of
    /// Q4_0, Q4_1, Q5_0, Q8_0, as `pack` accepted), `out` one value per weight row and packed row.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_packed(
        t: QuantType,
        rows: &[u8],
        row_bytes: usize,
        packed: &super::Packed,
        out: &mut [f32],
    ) -> bool {
        let kind = match t {
            QuantType::Q4_0 => Kind::Q4_0,
            QuantType::Q4_1 => Kind::Q4_1,
            QuantType::Q5_0 => Kind::Q5_0,
            QuantType::Q8_0 => Kind::Q8_0,
            _ => return false,
        };
        let n = packed.rows;
        let count = rows.len() / row_bytes;
        let mut r = 0;
        while r < count {
            let pair = count - r >= 2;
            for g in 0..n.div_ceil(4) {
                let take = (n - 4 * g).min(4);
                // SAFETY: AVX2/FMA (caller); rows r (and r + 1) exist; group g exists.
                unsafe {
                    let w = rows.as_ptr().add(r * row_bytes);
                    if pair {
                        let v = group_raw::<2>(kind, w, row_bytes, packed, g);
                        out[r * n + 4 * g..r * n + 4 * g + take].copy_from_slice(&v[0][..take]);
                        out[(r + 1) * n + 4 * g..(r + 1) * n + 4 * g + take]
                            .copy_from_slice(&v[1][..take]);
                    } else {
                        let v = group_raw::<1>(kind, w, row_bytes, packed, g);
                        out[r * n + 4 * g..r * n + 4 * g + take].copy_from_slice(&v[0][..take]);
                    }
                }
            }
            r += if pair { 2 } else { 1 };
        }
        true
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Q4_0,
        Q4_1,
        Q5_0,
        Q8_0,
    }

    /// `R` weight rows (consecutive, `row_bytes` apart) times the four activation rows of
    /// group `g`. Per block, each weight row's quants are unpacked and its scale converted
    /// once; each activation block is loaded once. Then every (weight, activation) pair
    /// takes exactly the steps of the one-row kernel (`iq4_0`, `iq4_1_raw`, `iq5_0`, `iq8_0_raw`):
    /// the integer dot product, its conversion, the FMA with weight scale × activation
    /// scale into its own accumulator, and for Q4_1 the minimum's term `m · s` added to its
    /// own running sum (four of them side by side in one register: the same IEEE products
    /// and sums, lane by lane).
    ///
    /// # Safety
    /// AVX2 and FMA; `w` points at `R` rows of `packed.blocks` blocks of `kind`; group `g`
    /// exists in `packed`.
    // `k` indexes the activation rows of the group in `acc`, `qs` and `ds` alike.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn group_raw<const R: usize>(
        kind: Kind,
        w: *const u8,
        row_bytes: usize,
        packed: &super::Packed,
        g: usize,
    ) -> [[f32; 4]; R] {
        let mut acc = [[_mm256_setzero_ps(); 4]; R];
        let mut mins = [_mm_setzero_ps(); R];
        let mask = _mm_set1_epi8(0x0f);
        let eight = _mm256_set1_epi8(8);
        let blocks = packed.blocks;
        let base = g * blocks;
        let qs = packed.qs.as_ptr().cast::<u8>();
        let ds = packed.d.as_ptr();
        let ss = packed.s.as_ptr();
        let stride = match kind {
            Kind::Q4_0 => 18,
            Kind::Q4_1 => 20,
            Kind::Q5_0 => 22,
            Kind::Q8_0 => 34,
        };
        for b in 0..blocks {
            // SAFETY: block b of each weight row, and block b of group g (caller's contract).
            unsafe {
                let at = (base + b) * 4;
                let mut q = [_mm256_setzero_si256(); R];
                let mut d = [0f32; R];
                for j in 0..R {
                    let block = w.add(j * row_bytes + stride * b);
                    d[j] = f16_to_f32(block.cast::<u16>().read_unaligned());
                    q[j] = match kind {
                        Kind::Q8_0 => _mm256_loadu_si256(block.add(2).cast()),
                        Kind::Q5_0 => {
                            // As `iq5_0`: q − 16 from the nibble and the fifth bit.
                            let qh = block.add(2).cast::<u32>().read_unaligned();
                            let high_clear = _mm256_andnot_si256(
                                bits_to_bytes(qh),
                                _mm256_set1_epi8(0xF0u8 as i8),
                            );
                            let bytes = _mm_loadu_si128(block.add(6).cast());
                            let lo = _mm_and_si128(bytes, mask);
                            let hi = _mm_and_si128(_mm_srli_epi16::<4>(bytes), mask);
                            _mm256_or_si256(_mm256_set_m128i(hi, lo), high_clear)
                        }
                        Kind::Q4_0 | Kind::Q4_1 => {
                            let from = if kind == Kind::Q4_1 { 4 } else { 2 };
                            let bytes = _mm_loadu_si128(block.add(from).cast());
                            let lo = _mm_and_si128(bytes, mask);
                            let hi = _mm_and_si128(_mm_srli_epi16::<4>(bytes), mask);
                            let u = _mm256_set_m128i(hi, lo);
                            if kind == Kind::Q4_0 {
                                _mm256_sub_epi8(u, eight)
                            } else {
                                u
                            }
                        }
                    };
                    if kind == Kind::Q4_1 {
                        let m = f16_to_f32(block.add(2).cast::<u16>().read_unaligned());
                        mins[j] = _mm_fmadd_ps(_mm_set1_ps(m), _mm_loadu_ps(ss.add(at)), mins[j]);
                    }
                }
                // Signed weights: the sign moves onto the activations (dot_ss), once per
                // weight row.
                let abs: [__m256i; R] = std::array::from_fn(|j| _mm256_sign_epi8(q[j], q[j]));
                for k in 0..4 {
                    let x = _mm256_loadu_si256(qs.add(32 * (at + k)).cast());
                    let dk = *ds.add(at + k);
                    for j in 0..R {
                        let p = if kind == Kind::Q4_1 {
                            dot_us(q[j], x)
                        } else {
                            dot_us(abs[j], _mm256_sign_epi8(x, q[j]))
                        };
                        acc[j][k] = _mm256_fmadd_ps(
                            _mm256_set1_ps(d[j] * dk),
                            _mm256_cvtepi32_ps(p),
                            acc[j][k],
                        );
                    }
                }
            }
        }
        std::array::from_fn(|j| {
            let mut m = [0f32; 4];
            // SAFETY: `m` is four f32.
            unsafe { _mm_storeu_ps(m.as_mut_ptr(), mins[j]) };
            std::array::from_fn(|k| {
                if kind == Kind::Q4_1 {
                    hsum(acc[j][k]) + m[k]
                } else {
                    hsum(acc[j][k])
                }
            })
        })
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn load256(b: &[u8]) -> __m256i {
        let b = &b[..32];
        // SAFETY: `b` has exactly 32 bytes.
        unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn load128(b: &[u8]) -> __m128i {
        let b = &b[..16];
        // SAFETY: `b` has exactly 16 bytes.
        unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
    }

    /// 32 nibbles of 16 bytes as 32 u8: low nibbles first, then high nibbles.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn unpack_nibbles(qs: &[u8]) -> __m256i {
        let bytes = load128(qs);
        let mask = _mm_set1_epi8(0x0f);
        let lo = _mm_and_si128(bytes, mask);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(bytes), mask);
        _mm256_set_m128i(hi, lo)
    }

    /// Σ u·s over 32 lanes, u unsigned bytes, s signed bytes, as eight i32 partial sums.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn dot_us(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }

    /// Σ a·b over 32 signed bytes (the sign moved onto b so that maddubs applies).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn dot_ss(a: __m256i, b: __m256i) -> __m256i {
        dot_us(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum_i32(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s));
        _mm_cvtsi128_si32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    fn iq4_0(row: &[u8], a: &QuantizedRow) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let eight = _mm256_set1_epi8(8);
        for (b, block) in row.chunks_exact(18).enumerate() {
            let q = _mm256_sub_epi8(unpack_nibbles(&block[2..18]), eight);
            let x = load256(as_bytes(&a.qs[32 * b..32 * b + 32]));
            let p = _mm256_cvtepi32_ps(dot_ss(q, x));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(half(block, 0) * a.d[b]), p, acc);
        }
        hsum(acc)
    }

    #[target_feature(enable = "avx2,fma")]
    fn iq4_1(row: &[u8], a: &QuantizedRow) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0f32;
        for (b, block) in row.chunks_exact(20).enumerate() {
            let q = unpack_nibbles(&block[4..20]);
            let x = load256(as_bytes(&a.qs[32 * b..32 * b + 32]));
            let p = _mm256_cvtepi32_ps(dot_us(q, x));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(half(block, 0) * a.d[b]), p, acc);
            mins = half(block, 2).mul_add(a.s[b], mins);
        }
        hsum(acc) + mins
    }

    /// The hot loop of SmolLM2-style models, without bounds checks: the same operations in
    /// the same order as `iq4_1` (and ggml's `vec_dot_q4_1_q8_1`).
    ///
    /// # Safety
    /// AVX2 and FMA; `row` holds `blocks` Q4_1 blocks; `a` holds at least `blocks`
    /// blocks of quants, scales and sums.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn iq4_1_raw(row: *const u8, blocks: usize, a: &QuantizedRow) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0f32;
        let mask = _mm_set1_epi8(0x0f);
        let (qs, d, s) = (a.qs.as_ptr() as *const u8, a.d.as_ptr(), a.s.as_ptr());
        for b in 0..blocks {
            // SAFETY: block b lies within `row` and within `a` (caller's contract).
            unsafe {
                let block = row.add(20 * b);
                let bytes = _mm_loadu_si128(block.add(4).cast());
                let lo = _mm_and_si128(bytes, mask);
                let hi = _mm_and_si128(_mm_srli_epi16::<4>(bytes), mask);
                let q = _mm256_set_m128i(hi, lo);
                let x = _mm256_loadu_si256(qs.add(32 * b).cast());
                let p = _mm256_cvtepi32_ps(dot_us(q, x));
                acc = _mm256_fmadd_ps(
                    _mm256_set1_ps(f16_to_f32(block.cast::<u16>().read_unaligned()) * *d.add(b)),
                    p,
                    acc,
                );
                // The minimum's term `summs += m · s` by FMA, as llama.cpp's build compiles
                // it (`vfmadd231ss` in `ggml_vec_dot_q4_1_q8_1`). Both factors are f16
                // values, so their product is exact in f32 and the FMA's sum has the bits
                // of a product then a sum: one vector operation fewer per block in the
                // batched kernels, the same results.
                mins = f16_to_f32(block.add(2).cast::<u16>().read_unaligned())
                    .mul_add(*s.add(b), mins);
            }
        }
        hsum(acc) + mins
    }

    /// # Safety
    /// AVX2 and FMA; `row` holds `blocks` Q8_0 blocks; `a` at least `blocks` blocks.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn iq8_0_raw(row: *const u8, blocks: usize, a: &QuantizedRow) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let (qs, d) = (a.qs.as_ptr() as *const u8, a.d.as_ptr());
        for b in 0..blocks {
            // SAFETY: block b lies within `row` and within `a` (caller's contract).
            unsafe {
                let block = row.add(34 * b);
                let q = _mm256_loadu_si256(block.add(2).cast());
                let x = _mm256_loadu_si256(qs.add(32 * b).cast());
                let p = _mm256_cvtepi32_ps(dot_ss(q, x));
                acc = _mm256_fmadd_ps(
                    _mm256_set1_ps(f16_to_f32(block.cast::<u16>().read_unaligned()) * *d.add(b)),
                    p,
                    acc,
                );
            }
        }
        hsum(acc)
    }

    /// 32 bits to 32 bytes: 0xFF where the bit is set, 0 elsewhere. Each byte picks its
    /// source byte with a shuffle, then tests its own bit by OR-ing all other bits in.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn bits_to_bytes(bits: u32) -> __m256i {
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(bits as i32),
            _mm256_set_epi64x(
                0x0303_0303_0303_0303,
                0x0202_0202_0202_0202,
                0x0101_0101_0101_0101,
                0,
            ),
        );
        // Byte k of each 8 keeps bit k clear and sets every other bit.
        let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
        _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1))
    }

    #[target_feature(enable = "avx2,fma")]
    fn iq5_0(row: &[u8], a: &QuantizedRow) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (b, block) in row.chunks_exact(22).enumerate() {
            let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
            // q − 16 as a signed byte: where the fifth bit is clear, OR-ing 0xF0 into the
            // nibble subtracts 16; where it is set, the nibble already is q − 16.
            let high_clear = _mm256_andnot_si256(bits_to_bytes(qh), _mm256_set1_epi8(0xF0u8 as i8));
            let q = _mm256_or_si256(unpack_nibbles(&block[6..22]), high_clear);
            let x = load256(as_bytes(&a.qs[32 * b..32 * b + 32]));
            let p = _mm256_cvtepi32_ps(dot_ss(q, x));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(half(block, 0) * a.d[b]), p, acc);
        }
        hsum(acc)
    }

    #[target_feature(enable = "avx2,fma")]
    fn iq8_0(row: &[u8], a: &QuantizedRow) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (b, block) in row.chunks_exact(34).enumerate() {
            let q = load256(&block[2..34]);
            let x = load256(as_bytes(&a.qs[32 * b..32 * b + 32]));
            let p = _mm256_cvtepi32_ps(dot_ss(q, x));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(half(block, 0) * a.d[b]), p, acc);
        }
        hsum(acc)
    }

    #[target_feature(enable = "avx2,fma")]
    fn iq4_k(row: &[u8], a: &QuantizedRow) -> f32 {
        let mask = _mm256_set1_epi8(0x0f);
        let (mut sum, mut mins) = (0f32, 0f32);
        for (b, block) in row.chunks_exact(144).enumerate() {
            let q8 = as_bytes(&a.qs[256 * b..256 * b + 256]);
            let bsums = &a.sums[16 * b..16 * b + 16];
            let scales = &block[4..16];
            let mut sumi = _mm256_setzero_si256();
            let mut summs = 0i32;
            let d = a.d[b] * half(block, 0);
            let dmin = a.d[b] * half(block, 2);
            for chunk in 0..4 {
                let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                let bytes = load256(&block[16 + 32 * chunk..16 + 32 * chunk + 32]);
                let lo = _mm256_and_si256(bytes, mask);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bytes), mask);
                let x_lo = load256(&q8[64 * chunk..64 * chunk + 32]);
                let x_hi = load256(&q8[64 * chunk + 32..64 * chunk + 64]);
                let p_lo = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(lo, x_lo),
                    _mm256_set1_epi16(sc1 as i16),
                );
                let p_hi = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(hi, x_hi),
                    _mm256_set1_epi16(sc2 as i16),
                );
                let part_min = m1 as i32 * (bsums[4 * chunk] + bsums[4 * chunk + 1])
                    + m2 as i32 * (bsums[4 * chunk + 2] + bsums[4 * chunk + 3]);
                if a.order == DotOrder::Repacked {
                    // The repacked gemm (tiles of four rows): one FMA per 64 elements.
                    let part = hsum_i32(_mm256_add_epi32(p_lo, p_hi));
                    sum = (part as f32).mul_add(d, sum);
                    mins = (part_min as f32).mul_add(dmin, mins);
                } else {
                    sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
                    summs += part_min;
                }
            }
            match a.order {
                DotOrder::Repacked => {}
                DotOrder::Tiled => {
                    let (dw, dmin_w) = (half(block, 0), half(block, 2));
                    let r = (-dmin_w).mul_add(summs as f32, dw * hsum_i32(sumi) as f32);
                    sum = r.mul_add(a.d[b], sum);
                }
                DotOrder::Row => {
                    // As ggml's repacked AVX2 Q4_K gemv: block sums and mins each
                    // accumulate with FMA; the two are subtracted once at the end.
                    sum = (hsum_i32(sumi) as f32).mul_add(d, sum);
                    mins = (summs as f32).mul_add(dmin, mins);
                }
            }
        }
        sum - mins
    }

    #[target_feature(enable = "avx2,fma")]
    fn iq6_k(row: &[u8], a: &QuantizedRow) -> f32 {
        let m4 = _mm256_set1_epi8(0x0f);
        let m2 = _mm256_set1_epi8(3);
        let mut acc = _mm256_setzero_ps();
        let mut tiled = 0f32;
        for (b, block) in row.chunks_exact(210).enumerate() {
            let q8 = as_bytes(&a.qs[256 * b..256 * b + 256]);
            let bsums = &a.sums[16 * b..16 * b + 16];
            let sc = &block[192..208];
            let mut sumi = _mm256_setzero_si256();
            for n in 0..2 {
                let ql0 = load256(&block[64 * n..64 * n + 32]);
                let ql1 = load256(&block[64 * n + 32..64 * n + 64]);
                let qh = load256(&block[128 + 32 * n..128 + 32 * n + 32]);
                let high = |shift: i32| -> __m256i {
                    let h = match shift {
                        0 => qh,
                        2 => _mm256_srli_epi16::<2>(qh),
                        4 => _mm256_srli_epi16::<4>(qh),
                        _ => _mm256_srli_epi16::<6>(qh),
                    };
                    _mm256_slli_epi16::<4>(_mm256_and_si256(h, m2))
                };
                let q = [
                    _mm256_or_si256(_mm256_and_si256(ql0, m4), high(0)),
                    _mm256_or_si256(_mm256_and_si256(ql1, m4), high(2)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4), high(4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4), high(6)),
                ];
                for (k, qk) in q.iter().enumerate() {
                    let x = load256(&q8[128 * n + 32 * k..128 * n + 32 * k + 32]);
                    let s0 = sc[8 * n + 2 * k] as i8 as i16;
                    let s1 = sc[8 * n + 2 * k + 1] as i8 as i16;
                    let scales = _mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0));
                    sumi = _mm256_add_epi32(
                        sumi,
                        _mm256_madd_epi16(_mm256_maddubs_epi16(*qk, x), scales),
                    );
                }
            }
            // The quants carry an offset of 32: subtract 32 · scale · Σq8 per group of 16,
            // lane m taking groups 2m and 2m+1 (ggml's madd of the 16 sums with the 16
            // scales); then each lane accumulates in float with FMA, as ggml's vec_dot does.
            let mut offset = [0i32; 8];
            for (m, o) in offset.iter_mut().enumerate() {
                *o = 32
                    * (sc[2 * m] as i8 as i32 * bsums[2 * m]
                        + sc[2 * m + 1] as i8 as i32 * bsums[2 * m + 1]);
            }
            // SAFETY: `offset` is eight i32, exactly 32 bytes.
            let offset = unsafe { _mm256_loadu_si256(offset.as_ptr().cast()) };
            let lanes = _mm256_sub_epi32(sumi, offset);
            if a.order == DotOrder::Tiled {
                let r = half(block, 208) * hsum_i32(lanes) as f32;
                tiled = r.mul_add(a.d[b], tiled);
            } else {
                let d = a.d[b] * half(block, 208);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
            }
        }
        if a.order == DotOrder::Tiled {
            tiled
        } else {
            hsum(acc)
        }
    }

    #[inline]
    fn as_bytes(q: &[i8]) -> &[u8] {
        // SAFETY: i8 and u8 have the same size and alignment; every bit pattern is valid.
        unsafe { std::slice::from_raw_parts(q.as_ptr().cast(), q.len()) }
    }
}
