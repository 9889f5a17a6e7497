//! Q4_K repacked one row per lane (see the parent module), bit-identical to the row
//! kernels' two orders: ggml's repacked gemm over tiles of four activation rows (one FMA
//! per 64 elements, `DotOrder::Repacked`) and its repacked gemv (one FMA per 256,
//! `DotOrder::Row`). Within a sub-block of 32 the sums are integers, so the lane's
//! `vpdpbusd` sum over the sub-block is ggml's; the 6-bit scales and minimums multiply it
//! as integers (`vpmulld`), and only the conversions and FMAs are ordered, as ggml orders
//! them.

use rayon::prelude::*;

use super::{fetch_lines, Kernel, LANES};
use crate::activation::{quantize_q8_k_into, DotOrder};
use crate::pool::Pieces;
use crate::quant::{scale_min_k4, QuantType};

/// Elements per super-block, sub-blocks per super-block.
const SUPER: usize = 256;
const SUBS: usize = 8;
/// Bytes of one group's super-block of values: 16 rows × 256 nibbles.
const Q_BYTES: usize = LANES * SUPER / 2;

/// A Q4_K matrix repacked for the lane-per-row kernel.
#[derive(Clone)]
pub(super) struct Q4K {
    pub(super) rows: usize,
    pub(super) cols: usize,
    supers: usize,
    pub(super) groups: usize,
    /// Per group, per super-block, per 64 elements c and four elements j: 64 bytes, byte
    /// `4 · r + i` holding row r's element `64c + 4j + i` (low nibble) and `64c + 32 + 4j + i`
    /// (high nibble), as the file pairs sub-blocks 2c and 2c + 1.
    q: Vec<u8>,
    /// Per group, per super-block: the 16 rows' f16 scale and minimum scale.
    d: Vec<u16>,
    dmin: Vec<u16>,
    /// Per group, per super-block, per sub-block: the 16 rows' 6-bit scales and minimums.
    sc: Vec<u8>,
    mn: Vec<u8>,
}

impl Q4K {
    /// `None` unless the shape fits and rows come in eights (ggml repacks only those; the
    /// others follow its tiled kernel, which stays with the row kernels).
    pub(super) fn new(bytes: &[u8], rows: usize, cols: usize) -> Option<Self> {
        let row_bytes = QuantType::Q4_K.row_bytes(cols).ok()?;
        if rows == 0
            || cols == 0
            || !rows.is_multiple_of(8)
            || row_bytes.checked_mul(rows)? != bytes.len()
        {
            return None;
        }
        let supers = cols / SUPER;
        let groups = rows.div_ceil(LANES);
        let mut q = vec![0u8; groups * supers * Q_BYTES];
        let mut d = vec![0u16; groups * supers * LANES];
        let mut dmin = vec![0u16; groups * supers * LANES];
        let mut sc = vec![0u8; groups * supers * SUBS * LANES];
        let mut mn = vec![0u8; groups * supers * SUBS * LANES];
        q.par_chunks_mut(supers * Q_BYTES)
            .zip(d.par_chunks_mut(supers * LANES))
            .zip(dmin.par_chunks_mut(supers * LANES))
            .zip(sc.par_chunks_mut(supers * SUBS * LANES))
            .zip(mn.par_chunks_mut(supers * SUBS * LANES))
            .enumerate()
            .for_each(|(g, ((((q, d), dmin), sc), mn))| {
                for r in 0..LANES.min(rows - g * LANES) {
                    let row = &bytes[(g * LANES + r) * row_bytes..][..row_bytes];
                    for (b, blk) in row.chunks_exact(144).enumerate() {
                        d[b * LANES + r] = u16::from_le_bytes([blk[0], blk[1]]);
                        dmin[b * LANES + r] = u16::from_le_bytes([blk[2], blk[3]]);
                        for s in 0..SUBS {
                            let (scale, min) = scale_min_k4(s, &blk[4..16]);
                            sc[(b * SUBS + s) * LANES + r] = scale;
                            mn[(b * SUBS + s) * LANES + r] = min;
                        }
                        let qs = &blk[16..144];
                        let out = &mut q[b * Q_BYTES..][..Q_BYTES];
                        // The file's byte 32c + l holds elements 64c + l (low nibble) and
                        // 64c + 32 + l (high): the same pairing, four bytes per lane.
                        for (cj, four) in qs.chunks_exact(4).enumerate() {
                            out[cj * 64 + 4 * r..][..4].copy_from_slice(four);
                        }
                    }
                }
            });
        Some(Q4K {
            rows,
            cols,
            supers,
            groups,
            q,
            d,
            dmin,
            sc,
            mn,
        })
    }

    pub(super) fn bytes(&self) -> usize {
        self.q.len() + 2 * (self.d.len() + self.dmin.len()) + self.sc.len() + self.mn.len()
    }

    /// Asks the cache for super-block `b` of group `g`'s values; nothing past the last
    /// group. Only the values (see [`fetch_lines`]).
    #[inline]
    fn fetch(&self, g: usize, b: usize) {
        if g >= self.groups {
            return;
        }
        fetch_lines(&self.q, (g * self.supers + b) * Q_BYTES, Q_BYTES);
    }

    /// Activation rows quantized for this kernel, in the order `Matrix` gives a batch
    /// (the first `n − n % 4` the repacked gemm's when n > 3, the rest the gemv's).
    pub(super) fn prepare(&self, x: &[f32], n: usize) -> Inputs {
        Inputs::new(self, x, n, tiled(n))
    }

    /// Group `g`'s columns of all `n` rows of `y`, from [`Self::prepare`]'s inputs.
    ///
    /// # Safety
    /// `y` points at `n × rows` floats that no other task writes in group g's columns;
    /// `kernel` one this CPU has.
    pub(super) unsafe fn run_group(
        &self,
        inputs: &Inputs,
        g: usize,
        n: usize,
        y: *mut f32,
        kernel: Kernel,
    ) {
        let tiled = tiled(n);
        let mut t0 = 0;
        while t0 < n {
            let (take, order) = if t0 < tiled {
                (4, DotOrder::Repacked)
            } else {
                (1, DotOrder::Row)
            };
            match kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512 F/BW/VNNI (the caller's kernel); group g and rows
                // t0..t0 + take exist; only group g's columns of those rows are written.
                Kernel::Avx512 => unsafe { avx512::group(self, inputs, g, t0, take, order, y) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2/FMA (the caller's kernel); as above.
                Kernel::Avx2 => unsafe { avx2::group(self, inputs, g, t0, take, order, y) },
                // SAFETY: as above, for the portable kernel.
                _ => unsafe { portable(self, inputs, g, t0, take, order, y) },
            }
            t0 += take;
        }
    }
}

/// The rows of a batch of `n` that take the repacked gemm's order.
fn tiled(n: usize) -> usize {
    if n > 3 {
        n - n % 4
    } else {
        0
    }
}

/// Activations quantized to Q8_K in each row's order, with the sums of each sub-block's
/// 32 activations (ggml's pairs of 16-element sums).
pub(super) struct Inputs {
    qs: Vec<i8>,
    d: Vec<f32>,
    pairs: Vec<i32>,
}

impl Inputs {
    fn new(w: &Q4K, x: &[f32], n: usize, tiled: usize) -> Self {
        let (cols, supers) = (w.cols, w.supers);
        let mut qs = vec![0i8; n * cols];
        let mut d = vec![0f32; n * supers];
        let mut pairs = vec![0i32; n * supers * SUBS];
        let mut sums = vec![0i32; n * supers * 16];
        {
            let (pq, pd) = (Pieces::new(&mut qs, cols), Pieces::new(&mut d, supers));
            let (pp, pu) = (
                Pieces::new(&mut pairs, supers * SUBS),
                Pieces::new(&mut sums, supers * 16),
            );
            crate::pool::for_each(n, |t| {
                // SAFETY: each task takes row t's pieces only.
                let (qs, d, pairs, sums) =
                    unsafe { (pq.piece(t), pd.piece(t), pp.piece(t), pu.piece(t)) };
                // The first `tiled` rows as ggml's repacked gemm quantizes them.
                quantize_q8_k_into(&x[t * cols..(t + 1) * cols], t < tiled, qs, d, sums);
                for (p, two) in pairs.iter_mut().zip(sums.chunks_exact(2)) {
                    *p = two[0] + two[1];
                }
            });
        }
        Inputs { qs, d, pairs }
    }
}

/// The portable kernel, lane by lane in the SIMD kernel's order (and ggml's).
///
/// # Safety
/// `y` points at `n × rows` floats; group g and rows t0..t0 + take exist.
unsafe fn portable(
    w: &Q4K,
    x: &Inputs,
    g: usize,
    t0: usize,
    take: usize,
    order: DotOrder,
    y: *mut f32,
) {
    let lanes = LANES.min(w.rows - g * LANES);
    for t in t0..t0 + take {
        for r in 0..lanes {
            let (mut sum, mut mins) = (0f32, 0f32);
            for b in 0..w.supers {
                let gb = g * w.supers + b;
                let q = &w.q[gb * Q_BYTES..][..Q_BYTES];
                let xq = &x.qs[t * w.cols + b * SUPER..][..SUPER];
                let dx = x.d[t * w.supers + b];
                let d = dx * crate::quant::f16_to_f32(w.d[gb * LANES + r]);
                let dmin = dx * crate::quant::f16_to_f32(w.dmin[gb * LANES + r]);
                let (mut sumi, mut summs) = (0i32, 0i32);
                for c in 0..4 {
                    let (mut lo, mut hi) = (0i32, 0i32);
                    for j in 0..8 {
                        for i in 0..4 {
                            let byte = q[(c * 8 + j) * 64 + 4 * r + i];
                            lo += (byte & 0x0f) as i32 * xq[64 * c + 4 * j + i] as i32;
                            hi += (byte >> 4) as i32 * xq[64 * c + 32 + 4 * j + i] as i32;
                        }
                    }
                    let s = |k: usize, v: &[u8]| v[(gb * SUBS + k) * LANES + r] as i32;
                    let p = |k: usize| x.pairs[(t * w.supers + b) * SUBS + k];
                    let part = s(2 * c, &w.sc) * lo + s(2 * c + 1, &w.sc) * hi;
                    let part_min = s(2 * c, &w.mn) * p(2 * c) + s(2 * c + 1, &w.mn) * p(2 * c + 1);
                    if order == DotOrder::Repacked {
                        sum = (part as f32).mul_add(d, sum);
                        mins = (part_min as f32).mul_add(dmin, mins);
                    } else {
                        sumi += part;
                        summs += part_min;
                    }
                }
                if order != DotOrder::Repacked {
                    sum = (sumi as f32).mul_add(d, sum);
                    mins = (summs as f32).mul_add(dmin, mins);
                }
            }
            // SAFETY: row t, column g · 16 + r < rows (caller's contract).
            unsafe { *y.add(t * w.rows + g * LANES + r) = sum - mins };
        }
    }
}

/// The 256-bit kernel: the 512-bit one's steps on each half of a group (eight rows per
/// register), `vpmaddubsw` and `vpmaddwd` by ones for the four-element sums (nibbles times
/// bytes: at most 2 · 15 · 127 per pair, no saturation).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Inputs, LANES, Q4K, Q_BYTES, SUBS, SUPER};
    use crate::activation::DotOrder;

    /// # Safety
    /// AVX2, FMA and F16C; as [`super::portable`] (`take` 4 or 1).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn group(
        w: &Q4K,
        x: &Inputs,
        g: usize,
        t0: usize,
        take: usize,
        order: DotOrder,
        y: *mut f32,
    ) {
        for half in 0..2 {
            if g * LANES + 8 * half >= w.rows {
                break;
            }
            // SAFETY: the caller's contract; the half's first row exists.
            unsafe {
                match (take, order) {
                    (4, DotOrder::Repacked) => rows::<4, true>(w, x, g, half, t0, y),
                    (4, _) => rows::<4, false>(w, x, g, half, t0, y),
                    (_, DotOrder::Repacked) => rows::<1, true>(w, x, g, half, t0, y),
                    _ => rows::<1, false>(w, x, g, half, t0, y),
                }
            }
        }
    }

    /// The four-element sums of eight rows' bytes `v` (0..15) with four activations.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn quads(v: __m256i, four: i32) -> __m256i {
        _mm256_madd_epi16(
            _mm256_maddubs_epi16(v, _mm256_set1_epi32(four)),
            _mm256_set1_epi16(1),
        )
    }

    /// # Safety
    /// AVX2, FMA and F16C; rows `8 · half ..` of group g (the first exists) and rows
    /// t0..t0 + R.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize, const TILE_ORDER: bool>(
        w: &Q4K,
        x: &Inputs,
        g: usize,
        half: usize,
        t0: usize,
        y: *mut f32,
    ) {
        let low = _mm256_set1_epi8(0x0f);
        let mut sum = [_mm256_setzero_ps(); R];
        let mut mins = [_mm256_setzero_ps(); R];
        let h = 8 * half;
        // The group this thread computes next (see `repack::for_groups`).
        let next = crate::repack::next_after(g);
        for b in 0..w.supers {
            if t0 == 0 && half == 0 {
                w.fetch(next, b);
            }
            let gb = g * w.supers + b;
            // SAFETY: super-block b of group g's half and of rows t0..t0 + R (caller).
            unsafe {
                let q = w.q.as_ptr().add(gb * Q_BYTES + 32 * half);
                let f16 = |v: &[u16]| {
                    _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(gb * LANES + h).cast()))
                };
                let (dw, dmw) = (f16(&w.d), f16(&w.dmin));
                let mut d = [_mm256_setzero_ps(); R];
                let mut dmin = [_mm256_setzero_ps(); R];
                let mut sumi = [_mm256_setzero_si256(); R];
                let mut summs = [_mm256_setzero_si256(); R];
                for t in 0..R {
                    let dx = _mm256_set1_ps(*x.d.as_ptr().add((t0 + t) * w.supers + b));
                    d[t] = _mm256_mul_ps(dx, dw);
                    dmin[t] = _mm256_mul_ps(dx, dmw);
                }
                for c in 0..4 {
                    let mut lo = [_mm256_setzero_si256(); R];
                    let mut hi = [_mm256_setzero_si256(); R];
                    for j in 0..8 {
                        let bytes = _mm256_loadu_si256(q.add((c * 8 + j) * 64).cast());
                        let vl = _mm256_and_si256(bytes, low);
                        let vh = _mm256_and_si256(_mm256_srli_epi16::<4>(bytes), low);
                        for t in 0..R {
                            let xq =
                                x.qs.as_ptr()
                                    .add((t0 + t) * w.cols + b * SUPER + 64 * c + 4 * j);
                            let xl = xq.cast::<i32>().read_unaligned();
                            let xh = xq.add(32).cast::<i32>().read_unaligned();
                            lo[t] = _mm256_add_epi32(lo[t], quads(vl, xl));
                            hi[t] = _mm256_add_epi32(hi[t], quads(vh, xh));
                        }
                    }
                    let at = |k: usize| (gb * SUBS + k) * LANES + h;
                    let widen = |v: *const u8| _mm256_cvtepu8_epi32(_mm_loadl_epi64(v.cast()));
                    let (s1, s2) = (
                        widen(w.sc.as_ptr().add(at(2 * c))),
                        widen(w.sc.as_ptr().add(at(2 * c + 1))),
                    );
                    let (m1, m2) = (
                        widen(w.mn.as_ptr().add(at(2 * c))),
                        widen(w.mn.as_ptr().add(at(2 * c + 1))),
                    );
                    for t in 0..R {
                        let p = x
                            .pairs
                            .as_ptr()
                            .add(((t0 + t) * w.supers + b) * SUBS + 2 * c);
                        let part = _mm256_add_epi32(
                            _mm256_mullo_epi32(s1, lo[t]),
                            _mm256_mullo_epi32(s2, hi[t]),
                        );
                        let part_min = _mm256_add_epi32(
                            _mm256_mullo_epi32(m1, _mm256_set1_epi32(*p)),
                            _mm256_mullo_epi32(m2, _mm256_set1_epi32(*p.add(1))),
                        );
                        if TILE_ORDER {
                            sum[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(part), d[t], sum[t]);
                            mins[t] =
                                _mm256_fmadd_ps(_mm256_cvtepi32_ps(part_min), dmin[t], mins[t]);
                        } else {
                            sumi[t] = _mm256_add_epi32(sumi[t], part);
                            summs[t] = _mm256_add_epi32(summs[t], part_min);
                        }
                    }
                }
                if !TILE_ORDER {
                    for t in 0..R {
                        sum[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[t]), d[t], sum[t]);
                        mins[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(summs[t]), dmin[t], mins[t]);
                    }
                }
            }
        }
        let first = g * LANES + h;
        let lanes = 8.min(w.rows - first);
        for t in 0..R {
            let mut out = [0f32; 8];
            // SAFETY: `out` is eight f32; row t0 + t's columns first..first + lanes exist.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), _mm256_sub_ps(sum[t], mins[t]));
                std::ptr::copy_nonoverlapping(
                    out.as_ptr(),
                    y.add((t0 + t) * w.rows + first),
                    lanes,
                );
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Inputs, LANES, Q4K, Q_BYTES, SUBS, SUPER};
    use crate::activation::DotOrder;

    /// # Safety
    /// AVX-512 F/BW/VNNI; as [`super::portable`] (`take` 4 or 1).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn group(
        w: &Q4K,
        x: &Inputs,
        g: usize,
        t0: usize,
        take: usize,
        order: DotOrder,
        y: *mut f32,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            match (take, order) {
                (4, DotOrder::Repacked) => rows::<4, true>(w, x, g, t0, y),
                (4, _) => rows::<4, false>(w, x, g, t0, y),
                (_, DotOrder::Repacked) => rows::<1, true>(w, x, g, t0, y),
                _ => rows::<1, false>(w, x, g, t0, y),
            }
        }
    }

    /// # Safety
    /// AVX-512 F/BW/VNNI; group g and rows t0..t0 + R exist.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn rows<const R: usize, const TILE_ORDER: bool>(
        w: &Q4K,
        x: &Inputs,
        g: usize,
        t0: usize,
        y: *mut f32,
    ) {
        let low = _mm512_set1_epi8(0x0f);
        let mut sum = [_mm512_setzero_ps(); R];
        let mut mins = [_mm512_setzero_ps(); R];
        // The group this thread computes next (see `repack::for_groups`).
        let next = crate::repack::next_after(g);
        for b in 0..w.supers {
            // The first tile fetches the next group's weights while it computes.
            if t0 == 0 {
                w.fetch(next, b);
            }
            let gb = g * w.supers + b;
            // SAFETY: super-block b of group g and of rows t0..t0 + R (caller's contract).
            unsafe {
                let q = w.q.as_ptr().add(gb * Q_BYTES);
                let dw = _mm512_cvtph_ps(_mm256_loadu_si256(w.d.as_ptr().add(gb * LANES).cast()));
                let dmw =
                    _mm512_cvtph_ps(_mm256_loadu_si256(w.dmin.as_ptr().add(gb * LANES).cast()));
                let mut d = [_mm512_setzero_ps(); R];
                let mut dmin = [_mm512_setzero_ps(); R];
                let mut sumi = [_mm512_setzero_si512(); R];
                let mut summs = [_mm512_setzero_si512(); R];
                for t in 0..R {
                    let dx = _mm512_set1_ps(*x.d.as_ptr().add((t0 + t) * w.supers + b));
                    d[t] = _mm512_mul_ps(dx, dw);
                    dmin[t] = _mm512_mul_ps(dx, dmw);
                }
                for c in 0..4 {
                    let mut lo = [_mm512_setzero_si512(); R];
                    let mut hi = [_mm512_setzero_si512(); R];
                    for j in 0..8 {
                        let bytes = _mm512_loadu_si512(q.add((c * 8 + j) * 64).cast());
                        let vl = _mm512_and_si512(bytes, low);
                        let vh = _mm512_and_si512(_mm512_srli_epi16::<4>(bytes), low);
                        for t in 0..R {
                            let xq =
                                x.qs.as_ptr()
                                    .add((t0 + t) * w.cols + b * SUPER + 64 * c + 4 * j);
                            let xl = xq.cast::<i32>().read_unaligned();
                            let xh = xq.add(32).cast::<i32>().read_unaligned();
                            lo[t] = _mm512_dpbusd_epi32(lo[t], vl, _mm512_set1_epi32(xl));
                            hi[t] = _mm512_dpbusd_epi32(hi[t], vh, _mm512_set1_epi32(xh));
                        }
                    }
                    let at = |k: usize| (gb * SUBS + k) * LANES;
                    let widen = |v: *const u8| _mm512_cvtepu8_epi32(_mm_loadu_si128(v.cast()));
                    let (s1, s2) = (
                        widen(w.sc.as_ptr().add(at(2 * c))),
                        widen(w.sc.as_ptr().add(at(2 * c + 1))),
                    );
                    let (m1, m2) = (
                        widen(w.mn.as_ptr().add(at(2 * c))),
                        widen(w.mn.as_ptr().add(at(2 * c + 1))),
                    );
                    for t in 0..R {
                        let p = x
                            .pairs
                            .as_ptr()
                            .add(((t0 + t) * w.supers + b) * SUBS + 2 * c);
                        let part = _mm512_add_epi32(
                            _mm512_mullo_epi32(s1, lo[t]),
                            _mm512_mullo_epi32(s2, hi[t]),
                        );
                        let part_min = _mm512_add_epi32(
                            _mm512_mullo_epi32(m1, _mm512_set1_epi32(*p)),
                            _mm512_mullo_epi32(m2, _mm512_set1_epi32(*p.add(1))),
                        );
                        if TILE_ORDER {
                            sum[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(part), d[t], sum[t]);
                            mins[t] =
                                _mm512_fmadd_ps(_mm512_cvtepi32_ps(part_min), dmin[t], mins[t]);
                        } else {
                            sumi[t] = _mm512_add_epi32(sumi[t], part);
                            summs[t] = _mm512_add_epi32(summs[t], part_min);
                        }
                    }
                }
                if !TILE_ORDER {
                    for t in 0..R {
                        sum[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[t]), d[t], sum[t]);
                        mins[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(summs[t]), dmin[t], mins[t]);
                    }
                }
            }
        }
        let lanes = LANES.min(w.rows - g * LANES);
        let mask: __mmask16 = super::super::lane_mask(lanes);
        for t in 0..R {
            // SAFETY: row t0 + t, group g's columns (masked to the rows that exist).
            unsafe {
                _mm512_mask_storeu_ps(
                    y.add((t0 + t) * w.rows + g * LANES),
                    mask,
                    _mm512_sub_ps(sum[t], mins[t]),
                )
            };
        }
    }
}
