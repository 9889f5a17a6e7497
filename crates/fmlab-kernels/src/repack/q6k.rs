//! Q6_K repacked one row per lane (see the parent module) for batches of 8 rows and more,
//! where ggml runs its tiled K-quant kernel (`DotOrder::Tiled`): per super-block, one
//! integer total per (weight row, activation row) — the scaled sums of the 16 sub-blocks,
//! less 32 times the scaled activation sums — then `(d_w · total)` times `d_x` added with
//! FMA. The integers are exact in any order, so the lanes give ggml's values to the bit.
//! Fewer rows take ggml's one-row kernel, whose float order is its own: `matmul_with`
//! declines them and `Matrix` runs the row kernels.

use rayon::prelude::*;

use super::{fetch_lines, Kernel, LANES};
use crate::activation::quantize_q8_k_into;
use crate::pool::Pieces;
use crate::quant::QuantType;

const SUPER: usize = 256;
/// Sub-blocks of 16 per super-block.
const SUBS: usize = 16;
/// Bytes of one group's super-block of values: 16 rows × 256 six-bit values, one per byte.
const Q_BYTES: usize = LANES * SUPER;
/// From this many activation rows on ggml takes the tiled kernel.
pub(super) const MIN_ROWS: usize = 8;

/// A Q6_K matrix repacked for the lane-per-row kernel.
#[derive(Clone)]
pub(super) struct Q6K {
    pub(super) rows: usize,
    pub(super) cols: usize,
    supers: usize,
    pub(super) groups: usize,
    /// Per group, super-block and four elements j: 64 bytes, byte `4 · r + i` row r's
    /// element `4j + i` (0..63, the stored value before ggml's −32).
    q: Vec<u8>,
    /// Per group, super-block: the 16 rows' f16 scales.
    d: Vec<u16>,
    /// Per group, super-block, sub-block: the 16 rows' signed 8-bit scales.
    sc: Vec<i8>,
}

impl Q6K {
    pub(super) fn new(bytes: &[u8], rows: usize, cols: usize) -> Option<Self> {
        let row_bytes = QuantType::Q6_K.row_bytes(cols).ok()?;
        if rows == 0 || cols == 0 || row_bytes.checked_mul(rows)? != bytes.len() {
            return None;
        }
        let supers = cols / SUPER;
        let groups = rows.div_ceil(LANES);
        let mut q = vec![0u8; groups * supers * Q_BYTES];
        let mut d = vec![0u16; groups * supers * LANES];
        let mut sc = vec![0i8; groups * supers * SUBS * LANES];
        q.par_chunks_mut(supers * Q_BYTES)
            .zip(d.par_chunks_mut(supers * LANES))
            .zip(sc.par_chunks_mut(supers * SUBS * LANES))
            .enumerate()
            .for_each(|(g, ((q, d), sc))| {
                let mut u = [0u8; SUPER];
                for r in 0..LANES.min(rows - g * LANES) {
                    let row = &bytes[(g * LANES + r) * row_bytes..][..row_bytes];
                    for (b, blk) in row.chunks_exact(210).enumerate() {
                        let (ql, qh) = (&blk[0..128], &blk[128..192]);
                        for n in 0..2 {
                            for l in 0..32 {
                                let (lo, hi, h) =
                                    (ql[64 * n + l], ql[64 * n + l + 32], qh[32 * n + l]);
                                let e = 128 * n + l;
                                u[e] = (lo & 0x0f) | ((h & 3) << 4);
                                u[e + 32] = (hi & 0x0f) | (((h >> 2) & 3) << 4);
                                u[e + 64] = (lo >> 4) | (((h >> 4) & 3) << 4);
                                u[e + 96] = (hi >> 4) | (((h >> 6) & 3) << 4);
                            }
                        }
                        let out = &mut q[b * Q_BYTES..][..Q_BYTES];
                        for (j, four) in u.chunks_exact(4).enumerate() {
                            out[j * 64 + 4 * r..][..4].copy_from_slice(four);
                        }
                        for s in 0..SUBS {
                            sc[(b * SUBS + s) * LANES + r] = blk[192 + s] as i8;
                        }
                        d[b * LANES + r] = u16::from_le_bytes([blk[208], blk[209]]);
                    }
                }
            });
        Some(Q6K {
            rows,
            cols,
            supers,
            groups,
            q,
            d,
            sc,
        })
    }

    pub(super) fn bytes(&self) -> usize {
        self.q.len() + 2 * self.d.len() + self.sc.len()
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

    /// Whether the kernel takes a batch of `n` rows: ggml's tiled order starts at
    /// `MIN_ROWS`; fewer stay with the row kernels.
    pub(super) fn accepts(n: usize) -> bool {
        n >= MIN_ROWS
    }

    /// Activation rows quantized for this kernel.
    pub(super) fn prepare(&self, x: &[f32], n: usize) -> Inputs {
        Inputs::new(self, x, n)
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
        let mut t0 = 0;
        while t0 < n {
            let take = if n - t0 >= 4 { 4 } else { 1 };
            match kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512 F/BW/VNNI (the caller's kernel); group g and rows
                // t0..t0 + take exist; only group g's columns of those rows are written.
                Kernel::Avx512 => unsafe { avx512::group(self, inputs, g, t0, take, y) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2/FMA/F16C (the caller's kernel); as above.
                Kernel::Avx2 => unsafe { avx2::group(self, inputs, g, t0, take, y) },
                // SAFETY: as above, for the portable kernel.
                _ => unsafe { portable(self, inputs, g, t0, take, y) },
            }
            t0 += take;
        }
    }
}

/// Activations quantized to Q8_K for the tiled kernel, with each sub-block's sum times −32
/// (where the lane's integer sum starts).
pub(super) struct Inputs {
    qs: Vec<i8>,
    d: Vec<f32>,
    start: Vec<i32>,
}

impl Inputs {
    fn new(w: &Q6K, x: &[f32], n: usize) -> Self {
        let (cols, supers) = (w.cols, w.supers);
        let mut qs = vec![0i8; n * cols];
        let mut d = vec![0f32; n * supers];
        let mut start = vec![0i32; n * supers * SUBS];
        {
            let (pq, pd) = (Pieces::new(&mut qs, cols), Pieces::new(&mut d, supers));
            let ps = Pieces::new(&mut start, supers * SUBS);
            crate::pool::for_each(n, |t| {
                // SAFETY: each task takes row t's pieces only.
                let (qs, d, start) = unsafe { (pq.piece(t), pd.piece(t), ps.piece(t)) };
                // The tiled kernel's quantization is the one-row kernels'.
                quantize_q8_k_into(&x[t * cols..(t + 1) * cols], false, qs, d, start);
                start.iter_mut().for_each(|s| *s *= -32);
            });
        }
        Inputs { qs, d, start }
    }
}

/// The portable kernel, lane by lane as the SIMD kernel (and ggml's tiled kernel).
///
/// # Safety
/// `y` points at `n × rows` floats; group g and rows t0..t0 + take exist.
unsafe fn portable(w: &Q6K, x: &Inputs, g: usize, t0: usize, take: usize, y: *mut f32) {
    let lanes = LANES.min(w.rows - g * LANES);
    for t in t0..t0 + take {
        for r in 0..lanes {
            let mut sum = 0f32;
            for b in 0..w.supers {
                let gb = g * w.supers + b;
                let q = &w.q[gb * Q_BYTES..][..Q_BYTES];
                let xq = &x.qs[t * w.cols + b * SUPER..][..SUPER];
                let mut total = 0i32;
                for s in 0..SUBS {
                    let mut part = x.start[(t * w.supers + b) * SUBS + s];
                    for j in 4 * s..4 * s + 4 {
                        for i in 0..4 {
                            part += q[j * 64 + 4 * r + i] as i32 * xq[4 * j + i] as i32;
                        }
                    }
                    total += w.sc[(gb * SUBS + s) * LANES + r] as i32 * part;
                }
                let dw = crate::quant::f16_to_f32(w.d[gb * LANES + r]);
                sum = (dw * total as f32).mul_add(x.d[t * w.supers + b], sum);
            }
            // SAFETY: row t, column g · 16 + r < rows (caller's contract).
            unsafe { *y.add(t * w.rows + g * LANES + r) = sum };
        }
    }
}

/// The 256-bit kernel: the 512-bit one's steps on each half of a group (eight rows per
/// register), `vpmaddubsw` and `vpmaddwd` by ones for the four-element sums (six-bit values
/// times bytes: at most 2 · 63 · 127 per pair, no saturation).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Inputs, LANES, Q6K, Q_BYTES, SUBS, SUPER};

    /// # Safety
    /// AVX2, FMA and F16C; as [`super::portable`] (`take` 4 or 1).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn group(w: &Q6K, x: &Inputs, g: usize, t0: usize, take: usize, y: *mut f32) {
        for half in 0..2 {
            if g * LANES + 8 * half >= w.rows {
                break;
            }
            // SAFETY: the caller's contract; the half's first row exists.
            unsafe {
                if take == 4 {
                    rows::<4>(w, x, g, half, t0, y)
                } else {
                    rows::<1>(w, x, g, half, t0, y)
                }
            }
        }
    }

    /// # Safety
    /// AVX2, FMA and F16C; rows `8 · half ..` of group g (the first exists) and rows
    /// t0..t0 + R.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(
        w: &Q6K,
        x: &Inputs,
        g: usize,
        half: usize,
        t0: usize,
        y: *mut f32,
    ) {
        let ones = _mm256_set1_epi16(1);
        let h = 8 * half;
        let mut sum = [_mm256_setzero_ps(); R];
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
                let mut total = [_mm256_setzero_si256(); R];
                for s in 0..SUBS {
                    let v: [__m256i; 4] =
                        std::array::from_fn(|k| _mm256_loadu_si256(q.add((4 * s + k) * 64).cast()));
                    let sc = _mm256_cvtepi8_epi32(_mm_loadl_epi64(
                        w.sc.as_ptr().add((gb * SUBS + s) * LANES + h).cast(),
                    ));
                    for t in 0..R {
                        let row = (t0 + t) * w.supers + b;
                        let xq = x.qs.as_ptr().add((t0 + t) * w.cols + b * SUPER + 16 * s);
                        let mut part = _mm256_set1_epi32(*x.start.as_ptr().add(row * SUBS + s));
                        for (k, &vk) in v.iter().enumerate() {
                            let four = xq.add(4 * k).cast::<i32>().read_unaligned();
                            let pairs = _mm256_maddubs_epi16(vk, _mm256_set1_epi32(four));
                            part = _mm256_add_epi32(part, _mm256_madd_epi16(pairs, ones));
                        }
                        total[t] = _mm256_add_epi32(total[t], _mm256_mullo_epi32(sc, part));
                    }
                }
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr().add(gb * LANES + h).cast()));
                for t in 0..R {
                    let dx = _mm256_set1_ps(*x.d.as_ptr().add((t0 + t) * w.supers + b));
                    let scaled = _mm256_mul_ps(dw, _mm256_cvtepi32_ps(total[t]));
                    sum[t] = _mm256_fmadd_ps(scaled, dx, sum[t]);
                }
            }
        }
        let first = g * LANES + h;
        let lanes = 8.min(w.rows - first);
        for (t, &s) in sum.iter().enumerate() {
            let mut out = [0f32; 8];
            // SAFETY: `out` is eight f32; row t0 + t's columns first..first + lanes exist.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), s);
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

    use super::{Inputs, LANES, Q6K, Q_BYTES, SUBS, SUPER};

    /// # Safety
    /// AVX-512 F/BW/VNNI; as [`super::portable`] (`take` 4 or 1).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn group(w: &Q6K, x: &Inputs, g: usize, t0: usize, take: usize, y: *mut f32) {
        // SAFETY: the caller's contract.
        unsafe {
            if take == 4 {
                rows::<4>(w, x, g, t0, y)
            } else {
                rows::<1>(w, x, g, t0, y)
            }
        }
    }

    /// # Safety
    /// AVX-512 F/BW/VNNI; group g and rows t0..t0 + R exist.
    // `t` indexes the activation rows in `total`, `sum` and the inputs alike.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn rows<const R: usize>(w: &Q6K, x: &Inputs, g: usize, t0: usize, y: *mut f32) {
        let mut sum = [_mm512_setzero_ps(); R];
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
                let mut total = [_mm512_setzero_si512(); R];
                for s in 0..SUBS {
                    let v: [__m512i; 4] =
                        std::array::from_fn(|k| _mm512_loadu_si512(q.add((4 * s + k) * 64).cast()));
                    let sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(
                        w.sc.as_ptr().add((gb * SUBS + s) * LANES).cast(),
                    ));
                    for t in 0..R {
                        let row = (t0 + t) * w.supers + b;
                        let xq = x.qs.as_ptr().add((t0 + t) * w.cols + b * SUPER + 16 * s);
                        let mut part = _mm512_set1_epi32(*x.start.as_ptr().add(row * SUBS + s));
                        for (k, &vk) in v.iter().enumerate() {
                            let four = xq.add(4 * k).cast::<i32>().read_unaligned();
                            part = _mm512_dpbusd_epi32(part, vk, _mm512_set1_epi32(four));
                        }
                        total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(sc, part));
                    }
                }
                let dw = _mm512_cvtph_ps(_mm256_loadu_si256(w.d.as_ptr().add(gb * LANES).cast()));
                for t in 0..R {
                    let dx = _mm512_set1_ps(*x.d.as_ptr().add((t0 + t) * w.supers + b));
                    let scaled = _mm512_mul_ps(dw, _mm512_cvtepi32_ps(total[t]));
                    sum[t] = _mm512_fmadd_ps(scaled, dx, sum[t]);
                }
            }
        }
        let lanes = LANES.min(w.rows - g * LANES);
        let mask: __mmask16 = super::super::lane_mask(lanes);
        for (t, &s) in sum.iter().enumerate() {
            // SAFETY: row t0 + t, group g's columns (masked to the rows that exist).
            unsafe { _mm512_mask_storeu_ps(y.add((t0 + t) * w.rows + g * LANES), mask, s) };
        }
    }
}
