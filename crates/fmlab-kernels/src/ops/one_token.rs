//! One token's attention (a decoding step's row) on the AVX-512 kernels, the query heads
//! that share a key-value head taken together: each key and value is loaded and widened
//! from the cache's f16 once for up to three heads instead of once per head, the row's
//! cache is first read in order (see [`attention`]), and the row's buffers are kept per
//! thread rather than allocated per call. Every score, probability and sum is the one the
//! head-by-head loop of `attention_row` forms (same operations in the same order, lane by
//! lane), so the results are the same bits; the head-by-head loop stays for other CPUs,
//! head sizes and contexts under sixteen positions.

use super::{f16_round_all, scores, wide, AttentionRow};

thread_local! {
    /// The queries and probabilities of the heads in hand, kept between calls
    /// (a decoding step makes one call per layer and sequence).
    static BUFFERS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The most query heads taken together: the value sums keep four partial sums and four
/// slots in registers per head (sixteen features each), 24 of the 32 vector registers.
const MOST: usize = 3;

/// [`super::attention_row`] for one token where the kernels suit the shapes (AVX-512, a
/// head size that is a multiple of 32, at least sixteen positions in view): `false`,
/// having written nothing, otherwise.
#[inline(always)]
pub(super) fn attention(r: &AttentionRow, out_row: &mut [f32]) -> bool {
    let s = r.s;
    let (hd, group) = (s.head_dim, r.group);
    let [first, start, end] = r.span();
    let len = end - first;
    let keys_in_cache = match (r.k16, r.v16) {
        (Some(k), Some(v)) => k.len().min(v.len()) >= end * r.kv_width,
        (None, None) => r.k.len().min(r.v.len()) >= end * r.kv_width,
        _ => false,
    };
    if !r.single
        || !r.simd
        || !wide::available()
        || !scores::available()
        || !hd.is_multiple_of(32)
        || group == 0
        || s.n_heads != group * s.n_kv_heads
        || len < 16
        || !keys_in_cache
        || r.q_row.len() < s.n_heads * hd
        || out_row.len() < s.n_heads * hd
    {
        return false;
    }
    // The row's keys and values are read first in order, one value per 64-byte line: a
    // decoding step's cache of a layer has left the core's own caches since the last step
    // (the weights stream through them in between), and the kernels' reads hop between
    // positions and heads, so the lines came one by one. Read in order, they arrive
    // together and then hit in L1/L2. On the 2-core AMD EPYC (Zen 4) here, one 64-position
    // SmolLM2 row took 3.3–4 µs with its cache in L1/L2, 13 µs cold, 6–7 µs cold with this,
    // and 10 µs cold with software prefetches of the same lines instead (a standalone
    // timing of 240 rows' caches, not kept); in the model, an 8-sequence step ran 1.04×
    // faster than with such prefetches (7 rounds, in one process), one sequence 1.04×.
    let bytes = end * r.kv_width;
    match (r.k16, r.v16) {
        (Some(k), Some(v)) => {
            touch(&k[..bytes]);
            touch(&v[..bytes]);
        }
        _ => {
            touch(&r.k[..bytes]);
            touch(&r.v[..bytes]);
        }
    }
    let (q_scale, score_scale) = r.scales();
    BUFFERS.with(|cell| {
        let mut buffers = cell.borrow_mut();
        let need = MOST * (hd + len);
        if buffers.len() < need {
            buffers.resize(need, 0.0);
        }
        let (qh, rest) = buffers.split_at_mut(MOST * hd);
        let probs = &mut rest[..MOST * len];
        for kvh in 0..s.n_kv_heads {
            let heads_end = (kvh + 1) * group;
            let mut h0 = kvh * group;
            while h0 < heads_end {
                // Three at a time, two and two for four (the same loads either way).
                let n = match heads_end - h0 {
                    4 => 2,
                    left => left.min(MOST),
                };
                let qh = &mut qh[..n * hd];
                for (dst, &src) in qh.iter_mut().zip(&r.q_row[h0 * hd..(h0 + n) * hd]) {
                    *dst = src * q_scale;
                }
                f16_round_all(qh);
                let heads = Heads {
                    qh,
                    kvh,
                    span: [first, start, end],
                    score_scale,
                };
                let out = &mut out_row[h0 * hd..(h0 + n) * hd];
                // SAFETY: AVX-512F/DQ, F16C, AVX2 and FMA (`wide::available`); the shapes
                // were checked above; `probs` holds MOST · len and `out` n · hd.
                unsafe {
                    match n {
                        1 => heads.run::<1>(r, probs, out),
                        2 => heads.run::<2>(r, probs, out),
                        _ => heads.run::<3>(r, probs, out),
                    }
                }
                h0 += n;
            }
        }
    });
    true
}

/// Query heads of one key-value head, taken together.
struct Heads<'a> {
    /// The heads' queries, scaled and f16-rounded, `hd` each.
    qh: &'a [f32],
    kvh: usize,
    span: [usize; 3],
    score_scale: f32,
}

impl Heads<'_> {
    /// Scores, softmax and value sums of `H` heads, their outputs written to `out`
    /// (`H · hd`).
    ///
    /// # Safety
    /// AVX-512F/DQ, F16C, AVX2 and FMA; `hd` a multiple of 32; at least sixteen positions
    /// in the span, all in the row's cache; `probs` holds `H · len`, `out` `H · hd`.
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma,f16c")]
    unsafe fn run<const H: usize>(&self, r: &AttentionRow, probs: &mut [f32], out: &mut [f32]) {
        let hd = r.s.head_dim;
        let [first, start, end] = self.span;
        let len = end - first;
        let at = [r.kv_width, self.kvh * hd];
        // SAFETY: as this function's (caller).
        unsafe {
            match r.k16 {
                Some(k) => wide::x86::one_token_scores::<u16, H>(
                    self.qh,
                    k,
                    at,
                    hd,
                    self.span,
                    self.score_scale,
                    probs,
                ),
                None => wide::x86::one_token_scores::<f32, H>(
                    self.qh,
                    r.k,
                    at,
                    hd,
                    self.span,
                    self.score_scale,
                    probs,
                ),
            }
        }
        for p in probs.chunks_exact_mut(len).take(H) {
            scores::softmax_in_place(p, first, start);
        }
        let mut probs = probs.chunks_exact(len);
        let ps: [&[f32]; H] = std::array::from_fn(|_| probs.next().unwrap_or_default());
        // SAFETY: as this function's (caller); `first` is a multiple of 8, `out` holds
        // H · hd.
        unsafe {
            match r.v16 {
                Some(v) => {
                    wide::x86::one_token_values::<u16, H>(v, at, hd, ps, first, [start, end], out)
                }
                None => {
                    wide::x86::one_token_values::<f32, H>(r.v, at, hd, ps, first, [start, end], out)
                }
            }
        }
    }
}

/// Reads one value of every 64-byte line of `xs`, in order (the values are discarded).
#[inline(always)]
fn touch<T: Copy + Default>(xs: &[T]) {
    let step = (64 / std::mem::size_of::<T>()).max(1);
    let mut last = T::default();
    for x in xs.iter().step_by(step) {
        last = std::hint::black_box(*x);
    }
    std::hint::black_box(last);
}
