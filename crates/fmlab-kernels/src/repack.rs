//! Quantized weights repacked at load for 512-bit VNNI (`vpdpbusd`), one weight row per
//! 32-bit lane, as llama.cpp repacks Q4_0 and Q4_K for its `8x8` kernels: a row-at-a-time
//! kernel reduces every block to one number per (weight row, activation row) pair, while
//! here 16 weight rows advance together and the integer products of four elements land in
//! each row's lane with one instruction.
//!
//! The products stay llama.cpp's to the bit. ggml's AVX2 dot product of a 32-element block
//! (`ggml_vec_dot_q4_0_q8_0` and its siblings, and llamafile's tinyBLAS, which sums alike)
//! keeps eight float accumulators, lane j taking elements 4j..4j+3 of every block: the
//! integer sum of the four products, converted, times `d_w · d_x` with FMA. Those eight
//! integer sums are exactly what one `vpdpbusd` gives per lane, so the kernel keeps eight
//! accumulators per row (one register per j for 16 rows), adds them in ggml's horizontal
//! order at the end, and every result is bit-identical to the one-row kernels (`q8.rs`,
//! `simd.rs`) — tested below on the portable kernel everywhere and on the SIMD kernel where
//! the CPU has it. `vpdpbusd` multiplies unsigned by signed bytes: weights are stored as
//! `q + offset ≥ 0` (8 for Q4_0, 16 for Q5_0, 128 for Q8_0) and each lane's sum starts at
//! `−offset · Σ` of the four activations, which leaves the integer sum unchanged.
//!
//! Formats: Q4_0, Q4_1, Q5_0, Q8_0 here; Q4_K (`q4k.rs`) and Q6_K (`q6k.rs`, batches of 8
//! rows or more) in their own files, with their own float orders. The 4-bit formats keep
//! two values per byte, and Q5_0 its low four bits so, beside a plane of fifth bits (one
//! mask bit per register byte, added by a masked byte add): every format is read at its
//! stored size; scales (and Q4_1's minimums) stay f16.
//!
//! Kernels, chosen at run time ([`best_kernel`]): 512-bit VNNI; on CPUs with AVX2 (and
//! FMA, F16C) but not AVX-512 VNNI, 256-bit kernels over the same layouts, each group's 16
//! rows as two registers of eight (`repack/avx2.rs`, and `mod avx2` in `q4k.rs` and
//! `q6k.rs`); a portable kernel, the reference of both. `FMLAB_REPACK=avx2` runs the
//! 256-bit kernels on an AVX-512 CPU, to measure them.

use rayon::prelude::*;

use crate::activation::{quantize_q8_32_into, ActivationFormat};
use crate::pool::Pieces;
use crate::quant::{f16_to_f32, QuantType};
use crate::simd::avx2_fma_f16c;

mod q4k;
mod q6k;

/// Weight rows per group: the 16 i32 lanes of a 512-bit register, one row each.
const LANES: usize = 16;
/// Elements per block (every supported format's).
const BLOCK: usize = 32;
/// Groups of four elements per block: ggml's eight accumulator lanes.
const QUADS: usize = 8;
/// Bytes of Q5_0's fifth bits per group and block: one bit per value.
const HIGH: usize = LANES * BLOCK / 8;
/// 1.5 · 2²³, whose bit pattern plus a small integer k (|k| < 2²²) is the bit pattern of
/// 1.5 · 2²³ + k exactly. Each lane's integer sum starts from these bits, so that the
/// float `sum bits − 1.5 · 2²³` (one exact subtraction, on either vector port) is the
/// integer sum converted: the conversion instruction runs on one port only, beside
/// `vpdpbusd`, and was the kernel's bottleneck.
const MAGIC: f32 = 12_582_912.0;
const MAGIC_BITS: i32 = 0x4b40_0000;

/// The store mask of a group whose first `lanes` rows exist.
#[cfg(target_arch = "x86_64")]
fn lane_mask(lanes: usize) -> u16 {
    if lanes >= LANES {
        0xffff
    } else {
        (1u16 << lanes) - 1
    }
}

/// The kernels the repacked layouts run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// Lane by lane in plain Rust: the reference, and any CPU.
    Portable,
    /// 256-bit: eight rows per register, `vpmaddubsw` and `vpmaddwd` for the four-element
    /// integer sums.
    Avx2,
    /// 512-bit with VNNI: sixteen rows per register, `vpdpbusd`; every format.
    Avx512,
}

/// Whether this CPU has AVX-512 F/BW with VNNI (the 512-bit kernels).
fn avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The kernel repacked products run on here: the widest the CPU has, or the 256-bit one
/// where `FMLAB_REPACK=avx2` asks for it (to measure what an AVX2-only CPU gets).
pub(crate) fn best_kernel() -> Kernel {
    static KERNEL: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *KERNEL.get_or_init(|| {
        let avx2_only = std::env::var("FMLAB_REPACK").is_ok_and(|v| v == "avx2");
        if avx512_vnni() && !avx2_only {
            Kernel::Avx512
        } else if avx2_fma_f16c() {
            Kernel::Avx2
        } else {
            Kernel::Portable
        }
    })
}

/// The kernels this CPU can run, the portable one first (for tests).
#[cfg(test)]
fn kernels() -> Vec<Kernel> {
    let mut k = vec![Kernel::Portable];
    if avx2_fma_f16c() {
        k.push(Kernel::Avx2);
    }
    if avx512_vnni() {
        k.push(Kernel::Avx512);
    }
    k
}

/// Whether this CPU runs repacked kernels (AVX2 with FMA and F16C, or AVX-512 VNNI).
pub fn repack_available() -> bool {
    best_kernel() != Kernel::Portable
}

/// A weight matrix repacked for the lane-per-row kernels.
#[derive(Clone)]
pub struct Repacked {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Block32(Block32),
    Q4K(q4k::Q4K),
    Q6K(q6k::Q6K),
}

impl Repacked {
    /// Repacks a `rows × cols` matrix stored in `format` (`bytes` holding whole rows), or
    /// `None` for a format the kernels do not take (Q5_1, the K-quants but Q4_K, dense
    /// formats) or bytes that do not match the shape.
    pub fn new(format: QuantType, bytes: &[u8], rows: usize, cols: usize) -> Option<Self> {
        let inner = match format {
            QuantType::Q4_K => Inner::Q4K(q4k::Q4K::new(bytes, rows, cols)?),
            QuantType::Q6_K => Inner::Q6K(q6k::Q6K::new(bytes, rows, cols)?),
            _ => Inner::Block32(Block32::new(format, bytes, rows, cols)?),
        };
        Some(Repacked { inner })
    }

    /// Bytes the repacked copy holds.
    pub fn bytes(&self) -> usize {
        match &self.inner {
            Inner::Block32(b) => b.bytes(),
            Inner::Q4K(k) => k.bytes(),
            Inner::Q6K(k) => k.bytes(),
        }
    }

    /// `y[t] = W · x[t]` for the `n = x.len() / cols` rows of `x` (`y` is `n × rows`), each
    /// value bit-identical to what `Matrix`'s row kernels give for it. On the SIMD kernel
    /// where the CPU has it, on the portable one otherwise. Returns `false`, writing
    /// nothing, where the batch takes a kernel the repacked layout does not follow (Q6_K
    /// below 8 rows) or the shapes do not match.
    pub fn matmul(&self, x: &[f32], y: &mut [f32]) -> bool {
        self.matmul_with(x, y, best_kernel())
    }

    /// [`Self::matmul`] on `kernel` (one this CPU has).
    pub(crate) fn matmul_with(&self, x: &[f32], y: &mut [f32], kernel: Kernel) -> bool {
        matmul_many_with(&[self], x, &mut [y], kernel)
    }

    /// The rows of the matrix.
    fn rows(&self) -> usize {
        match &self.inner {
            Inner::Block32(b) => b.rows,
            Inner::Q4K(k) => k.rows,
            Inner::Q6K(k) => k.rows,
        }
    }

    /// The columns of the matrix (the input's width).
    pub fn cols(&self) -> usize {
        match &self.inner {
            Inner::Block32(b) => b.cols,
            Inner::Q4K(k) => k.cols,
            Inner::Q6K(k) => k.cols,
        }
    }

    /// Groups of 16 rows.
    fn groups(&self) -> usize {
        match &self.inner {
            Inner::Block32(b) => b.groups,
            Inner::Q4K(k) => k.groups,
            Inner::Q6K(k) => k.groups,
        }
    }

    /// Whether the repacked kernel takes a batch of `n` rows (Q6_K: from 8).
    pub fn accepts(&self, n: usize) -> bool {
        match &self.inner {
            Inner::Q6K(_) => q6k::Q6K::accepts(n),
            _ => n > 0,
        }
    }

    /// What the kernel's quantized inputs depend on besides `x`: matrices with the same
    /// key can share one quantization of it.
    fn input_key(&self) -> InputKey {
        match &self.inner {
            Inner::Block32(b) => InputKey::Block32 {
                with_sum: b.format.activation_format() == ActivationFormat::Q8_1,
                offset: b.offset,
            },
            Inner::Q4K(_) => InputKey::Q4K,
            Inner::Q6K(_) => InputKey::Q6K,
        }
    }

    fn prepare(&self, x: &[f32], n: usize) -> Prepared {
        match &self.inner {
            Inner::Block32(b) => Prepared::Block32(Inputs::new(b, x, n)),
            Inner::Q4K(k) => Prepared::Q4K(k.prepare(x, n)),
            Inner::Q6K(k) => Prepared::Q6K(k.prepare(x, n)),
        }
    }

    /// Group `g`'s columns of the `n` rows of `y`.
    ///
    /// # Safety
    /// `inputs` prepared by a matrix of the same [`InputKey`] and width from `n` rows; `y`
    /// points at `n × rows` floats that no other task writes in group g's columns;
    /// `kernel` one this CPU has.
    unsafe fn run_group(&self, inputs: &Prepared, g: usize, n: usize, y: *mut f32, kernel: Kernel) {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            match (&self.inner, inputs) {
                (Inner::Block32(b), Prepared::Block32(x)) => b.run_group(x, g, n, y, kernel),
                (Inner::Q4K(k), Prepared::Q4K(x)) => k.run_group(x, g, n, y, kernel),
                (Inner::Q6K(k), Prepared::Q6K(x)) => k.run_group(x, g, n, y, kernel),
                // Keys match kinds (`input_key`), so no other pairing is ever made.
                _ => {}
            }
        }
    }
}

/// `ys[m] = mats[m] · x` for matrices that read the same input rows `x` (a layer's query,
/// key and value maps, or its gate and up maps): `x` is quantized once per [`InputKey`]
/// among them, and all their groups of rows go to the pool as one job, so the threads
/// meet once for the lot instead of once per product. Each value is the one
/// [`Repacked::matmul`] gives. Returns `false`, writing nothing, where a matrix does not
/// take the batch (see [`Repacked::accepts`]) or a shape does not match.
pub fn matmul_many(mats: &[&Repacked], x: &[f32], ys: &mut [&mut [f32]]) -> bool {
    matmul_many_with(mats, x, ys, best_kernel())
}

fn matmul_many_with(mats: &[&Repacked], x: &[f32], ys: &mut [&mut [f32]], kernel: Kernel) -> bool {
    let Some(cols) = mats.first().map(|m| m.cols()) else {
        return true;
    };
    let n = x.len() / cols.max(1);
    let fits = |(m, y): (&&Repacked, &&mut [f32])| {
        m.cols() == cols && m.accepts(n) && y.len() == n * m.rows()
    };
    if n == 0
        || x.len() != n * cols
        || mats.len() != ys.len()
        || !mats.iter().zip(ys.iter()).all(fits)
    {
        return false;
    }
    // One quantization of `x` per kind of input.
    let mut prepared: Vec<(InputKey, Prepared)> = Vec::new();
    let mut which = Vec::with_capacity(mats.len());
    for m in mats {
        let key = m.input_key();
        let at = match prepared.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                prepared.push((key, m.prepare(x, n)));
                prepared.len() - 1
            }
        };
        which.push(at);
    }
    let outs: Vec<SharedOut> = ys.iter_mut().map(|y| SharedOut(y.as_mut_ptr())).collect();
    let firsts: Vec<usize> = mats
        .iter()
        .scan(0, |first, m| {
            let at = *first;
            *first += m.groups();
            Some(at)
        })
        .collect();
    let total = mats.iter().map(|m| m.groups()).sum();
    // Tasks take whole groups of 16 rows of one matrix, so they write disjoint columns of
    // one output.
    for_groups(total, n, |group, next| {
        let m = firsts.iter().rposition(|&f| f <= group).unwrap_or(0);
        // The kernels fetch the group this thread computes next where it is in the same
        // matrix.
        let same = next < total && firsts.iter().rposition(|&f| f <= next) == Some(m);
        NEXT.with(|n| n.set(Some(if same { next - firsts[m] } else { usize::MAX })));
        // SAFETY: `prepared[which[m]]` came from a matrix of mats[m]'s key and width, from
        // the n rows of `x`; outs[m] holds n × rows (checked above), and group
        // `group − firsts[m]` of mats[m] is this task's alone; `kernel` is the caller's
        // (`best_kernel` or, in tests, one of `kernels`).
        unsafe {
            mats[m].run_group(
                &prepared[which[m]].1,
                group - firsts[m],
                n,
                outs[m].0,
                kernel,
            )
        };
        NEXT.with(|n| n.set(None));
    });
    true
}

thread_local! {
    /// The group of the current matrix this thread computes after the one in hand
    /// (`usize::MAX` for none), set around each group by [`matmul_many_with`].
    static NEXT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The group whose weights a kernel computing group `g` asks for as it goes: the one this
/// thread computes next (see [`for_groups`]), or `g + 1` outside a product's tasks.
#[inline]
pub(crate) fn next_after(g: usize) -> usize {
    NEXT.with(|n| n.get()).unwrap_or(g + 1)
}

/// What a repacked kernel's quantized input rows depend on besides the rows themselves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum InputKey {
    /// Q8_0 or Q8_1 (`with_sum`) rows, with lane starts for the weights' offset.
    Block32 {
        with_sum: bool,
        offset: i32,
    },
    Q4K,
    Q6K,
}

/// Input rows quantized for one kind of kernel.
enum Prepared {
    Block32(Inputs),
    Q4K(q4k::Inputs),
    Q6K(q6k::Inputs),
}

/// Q4_0, Q4_1, Q5_0 or Q8_0 repacked.
#[derive(Clone)]
struct Block32 {
    format: QuantType,
    rows: usize,
    cols: usize,
    blocks: usize,
    /// Two values per byte (Q4_0, Q4_1, and Q5_0's low four bits).
    nibbles: bool,
    /// What is added to every stored value to make it unsigned.
    offset: i32,
    /// Q4_1's minimum term.
    with_min: bool,
    groups: usize,
    /// Per group of 16 rows, per block: byte `64 · j + 4 · r + i` is row r's element
    /// `4 · j + i` plus the offset (with nibbles, j = 4..7 in the high halves of j − 4).
    q: Vec<u8>,
    /// Per group, per block: the 16 rows' scales, f16 as stored (decoding reads every
    /// byte of the weights once per token, so they stay as small as the file's).
    d: Vec<u16>,
    /// Per group, per block: the 16 rows' minimums (Q4_1; empty otherwise).
    m: Vec<u16>,
    /// Q5_0's fifth bits (empty for the other formats), per group and block 64 bytes: the
    /// little-endian u64 at `8 · j` has bit `4 · r + i` set when row r's element
    /// `4 · j + i` (offset included) is 16 or more: one mask bit per byte of the register
    /// that quad j's values fill. Kept apart from the nibbles so that the matrix is read
    /// at its stored size, 22 bytes per 32 values, instead of one byte per value (34):
    /// a single sequence's decoding reads every weight byte once per token.
    high: Vec<u8>,
}

impl std::fmt::Debug for Repacked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repacked")
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl Block32 {
    fn new(format: QuantType, bytes: &[u8], rows: usize, cols: usize) -> Option<Self> {
        let (nibbles, offset, with_min) = match format {
            QuantType::Q4_0 => (true, 8, false),
            // The one format with a minimum has no offset (the SIMD kernel relies on it).
            QuantType::Q4_1 => (true, 0, true),
            QuantType::Q5_0 => (true, 16, false),
            QuantType::Q8_0 => (false, 128, false),
            _ => return None,
        };
        let row_bytes = format.row_bytes(cols).ok()?;
        if rows == 0 || cols == 0 || row_bytes.checked_mul(rows)? != bytes.len() {
            return None;
        }
        let blocks = cols / BLOCK;
        let groups = rows.div_ceil(LANES);
        let per_block = LANES * BLOCK / if nibbles { 2 } else { 1 };
        let with_high = format == QuantType::Q5_0;
        let mut q = vec![0u8; groups * blocks * per_block];
        let mut d = vec![0u16; groups * blocks * LANES];
        let mut m = vec![0u16; if with_min { groups * blocks * LANES } else { 0 }];
        let mut high = vec![0u8; if with_high { groups * blocks * HIGH } else { 0 }];
        // Per group: its minimums and fifth bits, or nothing where the format has none.
        fn per_group<T>(v: &mut [T], chunk: usize, groups: usize) -> Vec<&mut [T]> {
            let mut parts: Vec<&mut [T]> = v.chunks_mut(chunk.max(1)).collect();
            parts.resize_with(groups, || &mut []);
            parts
        }
        let ms = per_group(&mut m, blocks * LANES, groups);
        let hs = per_group(&mut high, blocks * HIGH, groups);
        q.par_chunks_mut(blocks * per_block)
            .zip(d.par_chunks_mut(blocks * LANES))
            .zip(ms.into_par_iter().zip(hs.into_par_iter()))
            .enumerate()
            .for_each(|(g, ((q, d), (m, h)))| {
                let mut u = vec![0u8; cols];
                let mut du = vec![0u16; blocks];
                let mut mu = vec![0u16; blocks];
                for r in 0..LANES.min(rows - g * LANES) {
                    let row = g * LANES + r;
                    unpack_row(
                        format,
                        &bytes[row * row_bytes..(row + 1) * row_bytes],
                        &mut u,
                        &mut du,
                        &mut mu,
                    );
                    for b in 0..blocks {
                        d[b * LANES + r] = du[b];
                        if with_min {
                            m[b * LANES + r] = mu[b];
                        }
                        let qb = &mut q[b * per_block..(b + 1) * per_block];
                        let ub = &u[b * BLOCK..(b + 1) * BLOCK];
                        for (j, four) in ub.chunks_exact(4).enumerate() {
                            if with_high {
                                // Row r's four fifth bits: bits 4r..4r + 4, in one byte.
                                let bits = four
                                    .iter()
                                    .enumerate()
                                    .fold(0u8, |a, (i, &v)| a | ((v >> 4) << i));
                                h[b * HIGH + 8 * j + r / 2] |= bits << (4 * (r % 2));
                            }
                            if !nibbles {
                                qb[64 * j + 4 * r..][..4].copy_from_slice(four);
                            } else {
                                let (at, shift) = (64 * (j % 4) + 4 * r, 4 * (j / 4));
                                let dst = &mut qb[at..][..4];
                                dst.iter_mut()
                                    .zip(four)
                                    .for_each(|(d, &v)| *d |= (v & 0x0f) << shift);
                            }
                        }
                    }
                }
            });
        Some(Block32 {
            format,
            rows,
            cols,
            blocks,
            nibbles,
            offset,
            with_min,
            groups,
            q,
            d,
            m,
            high,
        })
    }

    fn bytes(&self) -> usize {
        self.q.len() + 2 * (self.d.len() + self.m.len()) + self.high.len()
    }

    /// Asks the cache for block `b` of group `g`'s values; nothing past the last group.
    /// Only the values: see [`fetch_lines`] on why not the scales and minimums.
    #[inline]
    fn fetch(&self, g: usize, b: usize) {
        if g >= self.groups {
            return;
        }
        let per_block = LANES * BLOCK / if self.nibbles { 2 } else { 1 };
        fetch_lines(&self.q, (g * self.blocks + b) * per_block, per_block);
    }

    /// Group `g`'s columns of the `n` rows of `y`, tiles of [`TILE`] rows at a time.
    ///
    /// # Safety
    /// As [`Repacked::run_group`].
    unsafe fn run_group(&self, inputs: &Inputs, g: usize, n: usize, y: *mut f32, kernel: Kernel) {
        #[cfg(target_arch = "x86_64")]
        // Q5_0's fifth bits cost a tile about as much again as the nibbles: from two tiles
        // on they are unpacked once. (Hot 2048×640 products at 4 rows, ns per block, 16
        // rows and row: 7.13 unpacking per tile, against 5.45 for the one-byte layout.)
        let batched = if self.high.is_empty() { 2 * TILE } else { TILE };
        if kernel == Kernel::Avx512 && n > batched {
            // SAFETY: as below, for all n rows.
            unsafe { avx512::group_batched(self, inputs, g, n, y) };
            return;
        }
        let mut t0 = 0;
        while t0 < n {
            let take = TILE.min(n - t0);
            match kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512 F/BW/VNNI (the caller's kernel); group g and rows
                // t0..t0 + take exist; the values written are group g's columns of those
                // rows of `y`, which no other task writes.
                Kernel::Avx512 => unsafe { avx512::group(self, inputs, g, [t0, n], take, y) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2/FMA/F16C (the caller's kernel); as above.
                Kernel::Avx2 => unsafe { avx2::group(self, inputs, g, t0, take, y) },
                // SAFETY: as above, for the portable kernel.
                _ => unsafe { portable_group(self, inputs, g, t0, take, y) },
            }
            t0 += take;
        }
    }
}

/// Asks the cache for bytes `items[first..first + count]` (a hint: nothing is read or
/// written, and any range may be named). The kernels name the next group's weights while they compute
/// the current one's: a batch's product is as much arithmetic as memory traffic, and the
/// hardware's own prefetcher, which follows only short streams, left the two in turn.
/// Into the second-level cache (T1): Gemma's decode, which streams 220 MB of weights per
/// token, ran 35–40 tokens/s with it against 30–35 into the first level and 28–31 without
/// (1 thread, four interleaved rounds).
///
/// Only the values are named, not the scales, minimums and sub-block scales beside them
/// (arrays of at most an eighth of the values' size each, also read in order). Requests
/// are not free: each is an instruction, and it waits for a slot among the core's
/// outstanding misses. On the 2-core AMD EPYC (Zen 4), with the scales' requests too,
/// SmolLM2's decode ran 0.94× as fast for one sequence and 0.98× for eight (medians of 7
/// rounds in one process, rounds 0.91–0.96 and 0.96–0.99); Gemma's ran 1.02× and 1.01× as
/// fast without them (one and eight sequences taking turns). Naming only the first lines
/// of each 4 KB page (the hardware prefetcher's own streams stop at page boundaries) was
/// slower still: 0.93× and 0.82× against every line (the sizes taking turns). Other
/// hints than T1 gave, for eight sequences, 0.95× (T0) and 0.99× (T2); for one, 1.00×
/// both. At 2 threads the scales' requests gave 0.99× for one sequence and 1.02× for
/// eight: about even there.
#[inline]
pub(crate) fn fetch_lines(items: &[u8], first: usize, count: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        let start = items.as_ptr() as usize + first;
        for line in (start & !63..start + count).step_by(64) {
            // SAFETY: a prefetch reads nothing and cannot fault, whatever the address (SSE,
            // which every x86-64 CPU has).
            unsafe { _mm_prefetch::<_MM_HINT_T1>(line as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (items, first, count);
}

/// `f(g)` for every group `g < groups`, in parallel on the forward pass's pool
/// ([`crate::pool`]): tasks of a few groups each, claimed one at a time, so that the
/// threads finish together (a task is a few microseconds of a decoding step's product).
///
/// `f(g, next)` also names the group this thread will likely compute after g, whose
/// weights the kernels fetch while they compute g: the next one of the task, and after a
/// task's last, the first of the task `threads` on. Tasks are claimed in turn, so on one
/// thread that is g + 1, and on two the next task mostly goes to the other thread: at two
/// threads a 576-row product's tasks are two groups each, and fetching g + 1 left half its
/// groups to be met cold.
///
/// For a batch of `rows` ≥ 4 activation rows (a group is then microseconds of work), the
/// last `threads` tasks' worth of groups go one group per task: a thread that finishes
/// its last whole task while another is still in one takes single groups instead of
/// waiting, so the threads finish within about a group of each other. With gate and up
/// together (192 groups, tasks of 12), the thread that ended first used to wait up to a
/// whole task, 12 µs at 8 rows, on each such product.
fn for_groups(groups: usize, rows: usize, f: impl Fn(usize, usize) + Sync) {
    let per_task = (groups / 16).clamp(1, 16);
    let threads = crate::pool::threads();
    let tail = if rows >= 4 && threads > 1 {
        (threads * per_task).min(groups)
    } else {
        0
    };
    // Tasks 0..whole take `per_task` groups each; the ones after, one group each.
    let whole = (groups - tail) / per_task;
    let start = |task: usize| {
        if task < whole {
            task * per_task
        } else {
            whole * per_task + (task - whole)
        }
    };
    let tasks = whole + (groups - whole * per_task);
    crate::pool::for_each(tasks, |task| {
        let end = start(task + 1).min(groups);
        for g in start(task)..end {
            let next = if g + 1 < end {
                g + 1
            } else {
                start(task + threads)
            };
            f(g, next);
        }
    });
}

/// Activation rows a kernel call carries at once (eight accumulators each).
const TILE: usize = 2;

/// The output pointer, shared by tasks that write disjoint parts of it.
struct SharedOut(*mut f32);
// SAFETY: every task writes only its own group's columns (see `Repacked::matmul_with`).
unsafe impl Sync for SharedOut {}

/// Activation rows quantized as ggml quantizes them for the weight format, with what the
/// kernel reads per block (scale, and `d · Σq` for Q8_1) and per four elements (the start
/// of the lane's integer sum, `−offset · Σq`).
struct Inputs {
    qs: Vec<i8>,
    dx: Vec<f32>,
    sx: Vec<f32>,
    /// Each block's integer sum (what quantization gives; the kernels read `sx`).
    sums: Vec<i32>,
    start: Vec<i32>,
}

thread_local! {
    /// Buffers of dropped [`Inputs`], for the next product's (a decoding step makes a
    /// hundred of them, each five buffers that `vec!` would zero and then quantization
    /// overwrite).
    static KEPT_INPUTS: std::cell::RefCell<Vec<Buffers>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The buffers of an [`Inputs`], kept between products.
type Buffers = (Vec<i8>, Vec<f32>, Vec<f32>, Vec<i32>, Vec<i32>);

impl Drop for Inputs {
    fn drop(&mut self) {
        if self.qs.capacity() == 0 {
            return;
        }
        let kept = (
            std::mem::take(&mut self.qs),
            std::mem::take(&mut self.dx),
            std::mem::take(&mut self.sx),
            std::mem::take(&mut self.sums),
            std::mem::take(&mut self.start),
        );
        // At most a few sets (one per kind of input a product reads at once).
        let _ = KEPT_INPUTS.try_with(|k| {
            if let Ok(mut k) = k.try_borrow_mut() {
                if k.len() < 4 {
                    k.push(kept);
                }
            }
        });
    }
}

/// `v` with at least `len` values, those it held left as they were (the caller overwrites
/// the first `len`; the kernels read no further). It never shrinks: products of different
/// widths take turns with the kept buffers, and growing a shrunk one zeroes it again.
fn sized<T: Copy + Default>(mut v: Vec<T>, len: usize) -> Vec<T> {
    if v.len() < len {
        v.resize(len, T::default());
    }
    v
}

impl Inputs {
    fn new(w: &Block32, x: &[f32], n: usize) -> Self {
        let (cols, blocks) = (w.cols, w.blocks);
        let with_sum = w.format.activation_format() == ActivationFormat::Q8_1;
        let (qs, dx, sx, sums, start) = KEPT_INPUTS
            .try_with(|k| k.try_borrow_mut().ok().and_then(|mut k| k.pop()))
            .ok()
            .flatten()
            .unwrap_or_default();
        // Every value is written below: quantization writes the rows' values, scales,
        // sums (and `sx` where the format has it), `quad_sums` the starts.
        let mut qs = sized(qs, n * cols);
        let mut dx = sized(dx, n * blocks);
        let mut sx = sized(sx, n * blocks);
        let mut sums = sized(sums, n * blocks);
        let mut start = sized(start, n * blocks * QUADS);
        {
            let (pq, pd, ps) = (
                Pieces::new(&mut qs, cols),
                Pieces::new(&mut dx, blocks),
                Pieces::new(&mut sx, blocks),
            );
            let (pu, pt) = (
                Pieces::new(&mut sums, blocks),
                Pieces::new(&mut start, blocks * QUADS),
            );
            crate::pool::for_each(n, |t| {
                // SAFETY: each task takes row t's pieces only.
                let (qs, dx, sx, sums, start) = unsafe {
                    (
                        pq.piece(t),
                        pd.piece(t),
                        ps.piece(t),
                        pu.piece(t),
                        pt.piece(t),
                    )
                };
                let sx: &mut [f32] = if with_sum { sx } else { &mut [] };
                quantize_q8_32_into(&x[t * cols..(t + 1) * cols], qs, dx, sx, sums);
                quad_sums(qs, -w.offset, MAGIC_BITS, start);
            });
        }
        Inputs {
            qs,
            dx,
            sx,
            sums,
            start,
        }
    }
}

/// `out[i] = factor · Σ qs[4i..4i + 4] + bias`: where each lane's integer sum starts.
fn quad_sums(qs: &[i8], factor: i32, bias: i32, out: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512_vnni() && qs.len().is_multiple_of(64) && out.len() == qs.len() / 4 {
        // SAFETY: AVX-512 F/BW/VNNI (checked); `out` holds one sum per four bytes (checked).
        unsafe { avx512::quad_sums(qs, factor, bias, out) };
        return;
    }
    for (s, four) in out.iter_mut().zip(qs.chunks_exact(4)) {
        *s = factor * four.iter().map(|&v| v as i32).sum::<i32>() + bias;
    }
}

/// ggml's horizontal sum of its eight accumulator lanes (`hsum_float_8`).
#[inline]
fn hsum8(a: &[f32; QUADS]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// The portable kernel: group `g`'s rows times activation rows `t0..t0 + take`, each value
/// formed by the SIMD kernel's lane operations in the same order (and so by ggml's).
///
/// # Safety
/// `y` points at `n × rows` floats; group g and rows t0..t0 + take exist.
unsafe fn portable_group(w: &Block32, x: &Inputs, g: usize, t0: usize, take: usize, y: *mut f32) {
    let per_block = LANES * BLOCK / if w.nibbles { 2 } else { 1 };
    let lanes = LANES.min(w.rows - g * LANES);
    for t in t0..t0 + take {
        for r in 0..lanes {
            let mut acc = [0f32; QUADS];
            let mut mins = 0f32;
            for b in 0..w.blocks {
                let qb = &w.q[(g * w.blocks + b) * per_block..][..per_block];
                let at = (g * w.blocks + b) * LANES + r;
                let xb = &x.qs[t * w.cols + b * BLOCK..][..BLOCK];
                let scale = f16_to_f32(w.d[at]) * x.dx[t * w.blocks + b];
                for (j, a) in acc.iter_mut().enumerate() {
                    let mut sum = x.start[(t * w.blocks + b) * QUADS + j] - MAGIC_BITS;
                    for i in 0..4 {
                        let mut v = if w.nibbles {
                            (qb[64 * (j % 4) + 4 * r + i] >> (4 * (j / 4))) & 0x0f
                        } else {
                            qb[64 * j + 4 * r + i]
                        };
                        if !w.high.is_empty() {
                            let bit = 4 * r + i;
                            let hb = w.high[(g * w.blocks + b) * HIGH + 8 * j + bit / 8];
                            v |= ((hb >> (bit % 8)) & 1) << 4;
                        }
                        sum += v as i32 * xb[4 * j + i] as i32;
                    }
                    *a = (sum as f32).mul_add(scale, *a);
                }
                if w.with_min {
                    mins = f16_to_f32(w.m[at]).mul_add(x.sx[t * w.blocks + b], mins);
                }
            }
            let v = if w.with_min {
                hsum8(&acc) + mins
            } else {
                hsum8(&acc)
            };
            // SAFETY: row t, column g · 16 + r < rows (caller's contract).
            unsafe { *y.add(t * w.rows + g * LANES + r) = v };
        }
    }
}

/// One row of `format` as unsigned values (the stored quant plus the format's offset) with
/// each block's f16 scale `d` and minimum `m` (Q4_1).
fn unpack_row(format: QuantType, row: &[u8], u: &mut [u8], d: &mut [u16], m: &mut [u16]) {
    let half = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    let (_, size) = format.block();
    for (k, blk) in row.chunks_exact(size).enumerate() {
        let u = &mut u[k * BLOCK..(k + 1) * BLOCK];
        d[k] = half(blk, 0);
        match format {
            QuantType::Q4_0 | QuantType::Q4_1 => {
                let qs = if format == QuantType::Q4_0 { 2 } else { 4 };
                for j in 0..16 {
                    u[j] = blk[qs + j] & 0x0f;
                    u[j + 16] = blk[qs + j] >> 4;
                }
                if format == QuantType::Q4_1 {
                    m[k] = half(blk, 2);
                }
            }
            QuantType::Q5_0 => {
                let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
                for j in 0..16 {
                    u[j] = (blk[6 + j] & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
                    u[j + 16] = (blk[6 + j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
                }
            }
            QuantType::Q8_0 => {
                for j in 0..32 {
                    u[j] = (blk[2 + j] as i8 as i16 + 128) as u8;
                }
            }
            _ => {}
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Block32, Inputs, BLOCK, HIGH, LANES, MAGIC, MAGIC_BITS, QUADS};

    /// [`super::quad_sums`], sixteen sums per instruction: `vpdpbusd` of ones and the bytes.
    ///
    /// # Safety
    /// AVX-512 F/BW/VNNI; `qs.len()` a multiple of 64, `out.len() == qs.len() / 4`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn quad_sums(qs: &[i8], factor: i32, bias: i32, out: &mut [i32]) {
        let (ones, f, bias) = (
            _mm512_set1_epi8(1),
            _mm512_set1_epi32(factor),
            _mm512_set1_epi32(bias),
        );
        for i in (0..qs.len()).step_by(64) {
            // SAFETY: bytes i..i + 64 lie in `qs`, sums i/4..i/4 + 16 in `out` (caller).
            unsafe {
                let q = _mm512_loadu_si512(qs.as_ptr().add(i).cast());
                let s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, q);
                let s = _mm512_add_epi32(_mm512_mullo_epi32(s, f), bias);
                _mm512_storeu_si512(out.as_mut_ptr().add(i / 4).cast(), s);
            }
        }
    }

    /// Group `g` times activation rows `t0..t0 + take` (`take` ≤ 2) of a call's `n`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VNNI; as [`super::portable_group`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn group(
        w: &Block32,
        x: &Inputs,
        g: usize,
        [t0, n]: [usize; 2],
        take: usize,
        y: *mut f32,
    ) {
        let fetch = Fetch {
            tile: t0 / super::TILE,
            tiles: n.div_ceil(super::TILE),
        };
        // SAFETY: the caller's contract, passed on.
        unsafe {
            match (take, w.nibbles, !w.high.is_empty(), w.with_min) {
                (2, true, false, true) => rows::<2, true, false, true>(w, x, g, t0, y, fetch),
                (2, true, false, false) => rows::<2, true, false, false>(w, x, g, t0, y, fetch),
                (2, true, true, _) => rows::<2, true, true, false>(w, x, g, t0, y, fetch),
                (2, false, _, _) => rows::<2, false, false, false>(w, x, g, t0, y, fetch),
                (_, true, false, true) => rows::<1, true, false, true>(w, x, g, t0, y, fetch),
                (_, true, false, false) => rows::<1, true, false, false>(w, x, g, t0, y, fetch),
                (_, true, true, _) => rows::<1, true, true, false>(w, x, g, t0, y, fetch),
                (_, false, _, _) => rows::<1, false, false, false>(w, x, g, t0, y, fetch),
            }
        }
    }

    /// Which blocks of the next group's weights a tile asks the cache for (see
    /// [`super::fetch_lines`]): tile `tile` of `tiles` names the blocks `b` with
    /// `b mod tiles = tile`, so that the requests spread over the group's whole time.
    #[derive(Clone, Copy)]
    struct Fetch {
        tile: usize,
        tiles: usize,
    }

    /// Group `g` times all `n` activation rows, for batches of more than two tiles (Q5_0:
    /// more than one): what every tile reads is prepared once per group, in this thread's
    /// scratch, by the first tile as it computes. A 4- or 5-bit format's values are
    /// unpacked to one per byte, so that the other tiles skip the nibble splitting (and
    /// Q5_0's fifth bits); every format's scales (and Q4_1's minimums) are widened to f32,
    /// so that they load them instead of each converting them again (a conversion is two
    /// vector operations on the ports the products use, two of about 28 per 16 rows, block
    /// and activation row). The same values go into the same operations.
    ///
    /// The first tile prepares as it goes, rather than a pass before the tiles, so that the
    /// group's weights arrive from memory while there is arithmetic to overlap them with:
    /// a separate pass stalled on them. With the pass, an 8-sequence SmolLM2 step took 1.06×
    /// as long at 1 thread and 1.08× at 2 (medians of 9 and 7 rounds of 64 steps, the two
    /// forms taking turns step by step in one process); Gemma's took 1.20× (3 rounds).
    ///
    /// # Safety
    /// AVX-512 F/BW/VNNI; as [`super::portable_group`] for rows 0..n.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn group_batched(w: &Block32, x: &Inputs, g: usize, n: usize, y: *mut f32) {
        thread_local! {
            static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<f32>)> =
                const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let (values, scales) = &mut *scratch;
            let per_block = LANES * BLOCK;
            // Grown only: the first tile writes every value the others read.
            if w.nibbles && values.len() < w.blocks * per_block {
                values.resize(w.blocks * per_block, 0);
            }
            if scales.len() < 2 * w.blocks * LANES {
                scales.resize(2 * w.blocks * LANES, 0.0);
            }
            let packed =
                w.q.as_ptr()
                    .wrapping_add(g * w.blocks * per_block / if w.nibbles { 2 } else { 1 });
            let save = (values.as_mut_ptr(), scales.as_mut_ptr());
            // 4-bit values from the scratch; 8-bit ones as stored (the same layout).
            let q = if w.nibbles { values.as_ptr() } else { packed };
            let wide = Scales::Wide(scales.as_ptr());
            let tiles = n.div_ceil(super::TILE);
            let mut t0 = 0;
            while t0 < n {
                let take = super::TILE.min(n - t0);
                let fetch = Fetch {
                    tile: t0 / super::TILE,
                    tiles,
                };
                // SAFETY: the caller's contract. The first tile (of 2 rows: n > TILE)
                // reads the group's stored values and scales and writes the scratch,
                // which holds 8 · 64 bytes and 2 · 16 floats per block; the others read
                // it: `q` holds the group's values one per byte, `wide` its scales.
                unsafe {
                    match (t0 == 0, take, w.nibbles, w.with_min) {
                        (true, _, true, false) if !w.high.is_empty() => {
                            rows_of::<2, true, true, false, true>(
                                w,
                                packed,
                                Scales::Stored,
                                save,
                                x,
                                g,
                                t0,
                                y,
                                fetch,
                            )
                        }
                        (true, _, true, true) => rows_of::<2, true, false, true, true>(
                            w,
                            packed,
                            Scales::Stored,
                            save,
                            x,
                            g,
                            t0,
                            y,
                            fetch,
                        ),
                        (true, _, true, false) => rows_of::<2, true, false, false, true>(
                            w,
                            packed,
                            Scales::Stored,
                            save,
                            x,
                            g,
                            t0,
                            y,
                            fetch,
                        ),
                        (true, _, false, _) => rows_of::<2, false, false, false, true>(
                            w,
                            packed,
                            Scales::Stored,
                            save,
                            x,
                            g,
                            t0,
                            y,
                            fetch,
                        ),
                        (false, 2, _, true) => rows_of::<2, false, false, true, false>(
                            w, q, wide, NO_SAVE, x, g, t0, y, fetch,
                        ),
                        (false, 2, _, false) => rows_of::<2, false, false, false, false>(
                            w, q, wide, NO_SAVE, x, g, t0, y, fetch,
                        ),
                        (false, _, _, true) => rows_of::<1, false, false, true, false>(
                            w, q, wide, NO_SAVE, x, g, t0, y, fetch,
                        ),
                        (false, _, _, false) => rows_of::<1, false, false, false, false>(
                            w, q, wide, NO_SAVE, x, g, t0, y, fetch,
                        ),
                    }
                }
                t0 += take;
            }
        });
    }

    const NO_SAVE: (*mut u8, *mut f32) = (std::ptr::null_mut(), std::ptr::null_mut());

    /// Where a tile reads a group's scales (and minimums): as stored (f16, converted per
    /// block), or widened beforehand ([`group_batched`]: per block, 16 scales then 16
    /// minimums).
    #[derive(Clone, Copy)]
    enum Scales {
        Stored,
        Wide(*const f32),
    }

    /// `R` activation rows times the 16 rows of group `g`. Per block the weights are loaded
    /// (and their nibbles split) once for the `R` rows; per activation row and group of
    /// four elements j, one VNNI product starting from the offset's correction, converted
    /// and added with FMA into accumulator j (ggml's lane j), so each lane computes what
    /// ggml's kernel computes for that row.
    ///
    /// # Safety
    /// AVX-512 F/BW/VNNI; as [`super::portable_group`] with `take = R`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn rows<const R: usize, const NIB: bool, const HI: bool, const MIN: bool>(
        w: &Block32,
        x: &Inputs,
        g: usize,
        t0: usize,
        y: *mut f32,
        fetch: Fetch,
    ) {
        let per_block = LANES * BLOCK / if NIB { 2 } else { 1 };
        let q = w.q.as_ptr().wrapping_add(g * w.blocks * per_block);
        // SAFETY: the caller's contract; `q` is group g's stored values.
        unsafe {
            rows_of::<R, NIB, HI, MIN, false>(w, q, Scales::Stored, NO_SAVE, x, g, t0, y, fetch)
        }
    }

    /// [`rows`] with group g's values read from `q`: as stored (with `HI`, Q5_0's fifth
    /// bits from the matrix's plane), or (`NIB` false for a 4- or 5-bit format) unpacked
    /// one value per byte by [`group_batched`]; its scales as `scales` says. With `SAVE`,
    /// each block's values as the products use them (4- and 5-bit formats: one per byte)
    /// and its scales (and minimums) as f32 are also written to `save`, in the layout the
    /// other two read.
    ///
    /// # Safety
    /// As [`rows`]; `q` holds the group's `blocks` blocks in the layout `NIB` says, and
    /// `scales` (where widened) its `blocks` blocks of scales and minimums; with `SAVE`,
    /// `save` holds 8 · 64 bytes (4- and 5-bit formats) and 2 · 16 floats per block.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn rows_of<
        const R: usize,
        const NIB: bool,
        const HI: bool,
        const MIN: bool,
        const SAVE: bool,
    >(
        w: &Block32,
        q: *const u8,
        scales: Scales,
        save: (*mut u8, *mut f32),
        x: &Inputs,
        g: usize,
        t0: usize,
        y: *mut f32,
        fetch: Fetch,
    ) {
        let per_block = LANES * BLOCK / if NIB { 2 } else { 1 };
        let mut acc = [[_mm512_setzero_ps(); QUADS]; R];
        let mut mins = [_mm512_setzero_ps(); R];
        let (low, sixteen) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(16));
        let (magic, magic_bits) = (_mm512_set1_ps(MAGIC), _mm512_set1_epi32(MAGIC_BITS));
        let d = w.d.as_ptr().wrapping_add(g * w.blocks * LANES);
        let m = w.m.as_ptr().wrapping_add(g * w.blocks * LANES);
        let xs = x.qs.as_ptr().wrapping_add(t0 * w.cols);
        let dx = x.dx.as_ptr().wrapping_add(t0 * w.blocks);
        let sx = x.sx.as_ptr().wrapping_add(t0 * w.blocks);
        let st = x.start.as_ptr().wrapping_add(t0 * w.blocks * QUADS);
        // The group this thread computes next (see `repack::for_groups`).
        let next = super::next_after(g);
        // The next block this tile fetches (counted: a remainder per block is a division).
        let mut due = fetch.tile;
        for b in 0..w.blocks {
            if b == due {
                w.fetch(next, b);
                due += fetch.tiles;
            }
            // SAFETY: block b of group g, and of rows t0..t0 + R (caller's contract).
            unsafe {
                let qb = q.add(b * per_block);
                let mut v = [_mm512_setzero_si512(); QUADS];
                if NIB {
                    for j in 0..QUADS / 2 {
                        let bytes = _mm512_loadu_si512(qb.add(64 * j).cast());
                        v[j] = _mm512_and_si512(bytes, low);
                        v[j + QUADS / 2] = _mm512_and_si512(_mm512_srli_epi16::<4>(bytes), low);
                    }
                    if HI {
                        // Q5_0's fifth bits: 16 added to each byte whose mask bit is set.
                        let hb = w.high.as_ptr().add((g * w.blocks + b) * HIGH);
                        for (j, vj) in v.iter_mut().enumerate() {
                            let k: __mmask64 = hb.add(8 * j).cast::<u64>().read_unaligned();
                            *vj = _mm512_mask_add_epi8(*vj, k, *vj, sixteen);
                        }
                    }
                } else {
                    for (j, vj) in v.iter_mut().enumerate() {
                        *vj = _mm512_loadu_si512(qb.add(64 * j).cast());
                    }
                }
                let (dv, mv) = match scales {
                    Scales::Wide(sp) => {
                        let dv = _mm512_loadu_ps(sp.add(2 * b * LANES));
                        // Only Q4_1's minimums were widened.
                        let mv = if MIN {
                            _mm512_loadu_ps(sp.add((2 * b + 1) * LANES))
                        } else {
                            dv
                        };
                        (dv, mv)
                    }
                    Scales::Stored => {
                        let dv = _mm512_cvtph_ps(_mm256_loadu_si256(d.add(b * LANES).cast()));
                        let mv = if MIN {
                            _mm512_cvtph_ps(_mm256_loadu_si256(m.add(b * LANES).cast()))
                        } else {
                            dv
                        };
                        (dv, mv)
                    }
                };
                if SAVE {
                    // What the later tiles read (see `group_batched`).
                    let (values, sp) = save;
                    if NIB {
                        for (j, vj) in v.iter().enumerate() {
                            _mm512_storeu_si512(values.add(b * LANES * BLOCK + 64 * j).cast(), *vj);
                        }
                    }
                    _mm512_storeu_ps(sp.add(2 * b * LANES), dv);
                    if MIN {
                        _mm512_storeu_ps(sp.add((2 * b + 1) * LANES), mv);
                    }
                }
                for t in 0..R {
                    let xb = xs.add(t * w.cols + b * BLOCK);
                    let sb = st.add((t * w.blocks + b) * QUADS);
                    let scale = _mm512_mul_ps(dv, _mm512_set1_ps(*dx.add(t * w.blocks + b)));
                    for (j, &vj) in v.iter().enumerate() {
                        let four = xb.add(4 * j).cast::<i32>().read_unaligned();
                        // Q4_1 (the one format with a minimum) has no offset: every lane
                        // starts from the bare MAGIC_BITS.
                        let from = if MIN {
                            magic_bits
                        } else {
                            _mm512_set1_epi32(*sb.add(j))
                        };
                        let sum = _mm512_dpbusd_epi32(from, vj, _mm512_set1_epi32(four));
                        // The integer sum as a float, exactly (see MAGIC).
                        let sum = _mm512_sub_ps(_mm512_castsi512_ps(sum), magic);
                        acc[t][j] = _mm512_fmadd_ps(sum, scale, acc[t][j]);
                    }
                    if MIN {
                        // One FMA: see `simd::iq4_1_raw`.
                        let s = _mm512_set1_ps(*sx.add(t * w.blocks + b));
                        mins[t] = _mm512_fmadd_ps(mv, s, mins[t]);
                    }
                }
            }
        }
        let lanes = LANES.min(w.rows - g * LANES);
        let mask: __mmask16 = super::lane_mask(lanes);
        for t in 0..R {
            let a = &acc[t];
            let mut total = _mm512_add_ps(
                _mm512_add_ps(_mm512_add_ps(a[0], a[4]), _mm512_add_ps(a[2], a[6])),
                _mm512_add_ps(_mm512_add_ps(a[1], a[5]), _mm512_add_ps(a[3], a[7])),
            );
            if MIN {
                total = _mm512_add_ps(total, mins[t]);
            }
            // SAFETY: row t0 + t, columns g · 16 .. g · 16 + lanes of `y` (masked).
            unsafe { _mm512_mask_storeu_ps(y.add((t0 + t) * w.rows + g * LANES), mask, total) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::{quantize_activations_for, DotOrder};
    use crate::q8::dot_quantized;
    use crate::quant::f32_to_f16;

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 33) as u8
            })
            .collect()
    }

    /// Random blocks with small finite scales and minimums.
    fn weights(t: QuantType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let (elements, size) = t.block();
        let mut b = bytes(rows * cols / elements * size, seed);
        for (i, block) in b.chunks_exact_mut(size).enumerate() {
            let scale = f32_to_f16(0.01 + 0.001 * (i % 7) as f32).to_le_bytes();
            if t == QuantType::Q6_K {
                block[208..210].copy_from_slice(&scale);
                continue;
            }
            block[0..2].copy_from_slice(&scale);
            if matches!(t, QuantType::Q4_1 | QuantType::Q4_K) {
                block[2..4].copy_from_slice(&f32_to_f16(-0.003 * (i % 5) as f32).to_le_bytes());
            }
        }
        b
    }

    const FORMATS: [QuantType; 6] = [
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q8_0,
        QuantType::Q4_K,
        QuantType::Q6_K,
    ];

    /// Every value is the one-row kernel's (ggml's order of sums), to the bit, on the
    /// portable kernel and on the SIMD kernel where the CPU has it; for shapes with partial
    /// groups, activation rows that are not whole tiles, and inputs with outliers. Q4_K's
    /// rows follow the order `Matrix` gives a batch: the repacked gemm's for the first
    /// `n − n % 4` from four rows on, the gemv's for the rest.
    #[test]
    fn repacked_products_equal_the_one_row_kernel_bit_for_bit() {
        let cols = 512;
        if !crate::simd::avx2_fma() {
            // The one-row kernel follows ggml's AVX2 order only where it runs on AVX2.
            eprintln!("no AVX2: the one-row kernel sums in another order; nothing to compare");
            return;
        }
        for t in FORMATS {
            for (rows, n) in [
                (16, 1),
                (24, 3),
                (40, 8),
                (8, 6),
                (21, 5),
                (7, 2),
                (24, 13),
                (16, 9),
            ] {
                let wb = weights(t, rows, cols, 11 + rows as u64);
                let Some(w) = Repacked::new(t, &wb, rows, cols) else {
                    assert!(
                        t == QuantType::Q4_K && rows % 8 != 0,
                        "{t:?} {rows} rows refused"
                    );
                    continue;
                };
                let x: Vec<f32> = (0..n * cols)
                    .map(|i| {
                        let v = ((i * 37 + 11) % 101) as f32 / 17.0 - 3.0;
                        if i % 61 == 0 {
                            40.0 * v
                        } else {
                            v
                        }
                    })
                    .collect();
                let rb = wb.len() / rows;
                let tiled = if n > 3 { n - n % 4 } else { 0 };
                for kernel in kernels() {
                    let mut y = vec![f32::NAN; n * rows];
                    let done = w.matmul_with(&x, &mut y, kernel);
                    assert_eq!(done, t != QuantType::Q6_K || n >= 8, "{t:?} {rows}×{n}");
                    if !done {
                        continue;
                    }
                    for i in 0..n {
                        let order = match t {
                            QuantType::Q4_K if i < tiled => DotOrder::Repacked,
                            QuantType::Q6_K => DotOrder::Tiled,
                            _ => DotOrder::Row,
                        };
                        let a = quantize_activations_for(
                            &x[i * cols..(i + 1) * cols],
                            t.activation_format(),
                            order,
                        );
                        for r in 0..rows {
                            let one = dot_quantized(t, &wb[r * rb..(r + 1) * rb], &a);
                            assert_eq!(
                                y[i * rows + r].to_bits(),
                                one.to_bits(),
                                "{t:?} {rows}×{n} ({kernel:?}): ({r}, {i}) {} vs {one}",
                                y[i * rows + r]
                            );
                        }
                    }
                }
            }
        }
    }

    /// Products of one input computed together (one quantization per kind of input, one
    /// job) give each matrix's own product to the bit: same-format maps (a layer's Q, K
    /// and V), mixed formats whose inputs differ, partial groups, and batches Q6_K does
    /// not take (it runs alone on the row kernels then, through `Matrix::matmul_many`).
    #[test]
    fn products_of_one_input_equal_each_product_alone() {
        use crate::{Matrix, Threads};
        let cols = 512;
        let sets: [&[(QuantType, usize)]; 3] = [
            &[
                (QuantType::Q4_1, 48),
                (QuantType::Q4_1, 16),
                (QuantType::Q4_1, 16),
            ],
            &[
                (QuantType::Q4_0, 40),
                (QuantType::Q8_0, 21),
                (QuantType::Q4_1, 7),
            ],
            &[
                (QuantType::Q4_K, 24),
                (QuantType::Q6_K, 32),
                (QuantType::Q5_0, 16),
            ],
        ];
        for set in sets {
            let mats: Vec<Matrix> = set
                .iter()
                .enumerate()
                .map(|(i, &(t, rows))| {
                    let mut m =
                        Matrix::quantized(rows, cols, t, weights(t, rows, cols, 3 + i as u64))
                            .unwrap();
                    m.repack();
                    m
                })
                .collect();
            for n in [1, 3, 8, 13] {
                let x: Vec<f32> = (0..n * cols)
                    .map(|i| ((i * 53 + 5) % 89) as f32 / 11.0 - 4.0)
                    .collect();
                let mut together: Vec<Vec<f32>> =
                    mats.iter().map(|m| vec![f32::NAN; n * m.rows]).collect();
                {
                    let refs: Vec<&Matrix> = mats.iter().collect();
                    let mut ys: Vec<&mut [f32]> =
                        together.iter_mut().map(|y| y.as_mut_slice()).collect();
                    Matrix::matmul_many(&refs, &x, &mut ys, Threads(2)).unwrap();
                }
                for (m, got) in mats.iter().zip(&together) {
                    let mut alone = vec![f32::NAN; n * m.rows];
                    m.matmul(&x, &mut alone, Threads(2)).unwrap();
                    let same = got
                        .iter()
                        .zip(&alone)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{:?} {}×{cols}, n {n}", m.format_name(), m.rows);
                }
                if repack_available() {
                    // Where every matrix takes the batch, the repacked job does all of them.
                    let all: Vec<&Repacked> =
                        mats.iter().filter_map(|m| m.repacked.as_deref()).collect();
                    let takes = all.len() == mats.len() && all.iter().all(|r| r.accepts(n));
                    let mut ys: Vec<Vec<f32>> =
                        mats.iter().map(|m| vec![0f32; n * m.rows]).collect();
                    let mut refs: Vec<&mut [f32]> =
                        ys.iter_mut().map(|y| y.as_mut_slice()).collect();
                    assert_eq!(matmul_many(&all, &x, &mut refs), takes, "n {n}");
                }
            }
        }
        // A shape that does not fit is refused, writing nothing.
        let wb = weights(QuantType::Q4_0, 16, cols, 1);
        let w = Repacked::new(QuantType::Q4_0, &wb, 16, cols).unwrap();
        let mut y = vec![1f32; 15];
        assert!(!matmul_many(
            &[&w],
            &vec![0.5; cols],
            &mut [y.as_mut_slice()]
        ));
        assert!(y.iter().all(|&v| v == 1.0));
    }

    /// Every group runs exactly once, however the groups are cut into tasks (whole tasks,
    /// single-group tails for batches), on one thread and on pools of two and three; the
    /// group named next is later in the same task or the first of another task.
    #[test]
    fn groups_are_each_computed_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        for threads in [1, 2, 3] {
            crate::pool::scope(threads, || {
                for groups in (1..70).chain([192, 3072]) {
                    for rows in [1, 4, 8] {
                        let seen: Vec<AtomicUsize> =
                            (0..groups).map(|_| AtomicUsize::new(0)).collect();
                        for_groups(groups, rows, |g, next| {
                            seen[g].fetch_add(1, Ordering::Relaxed);
                            assert!(next > g, "{groups} groups, {rows} rows: {g} then {next}");
                        });
                        for (g, c) in seen.iter().enumerate() {
                            let c = c.load(Ordering::Relaxed);
                            assert_eq!(
                                c, 1,
                                "{threads} threads, {groups} groups, {rows} rows: {g}"
                            );
                        }
                    }
                }
            });
        }
    }

    #[test]
    fn shapes_and_formats_it_cannot_take_are_refused() {
        let wb = weights(QuantType::Q4_0, 4, 64, 1);
        assert!(Repacked::new(QuantType::Q4_0, &wb, 5, 64).is_none());
        assert!(Repacked::new(QuantType::Q4_0, &wb, 4, 60).is_none());
        assert!(Repacked::new(QuantType::Q5_1, &wb, 4, 64).is_none());
        assert!(Repacked::new(QuantType::Q4_0, &wb, 4, 64).is_some());
    }
}
