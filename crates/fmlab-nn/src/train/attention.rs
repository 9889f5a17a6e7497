//! Causal softmax attention and its derivative, one task per (sequence, head), as matrix
//! products over 64-query blocks; sliding windows and packed sequences mask keys.

use fmlab_kernels::{gemm_into, Strided, Threads};
use rayon::prelude::*;

use super::float::Float;
use super::pool::Buf;

/// Shapes of one attention call: `batch` sequences of `seq` rows; queries `qw = nh·hd`
/// wide, keys and values `kvw` wide, `group` query heads per key-value head.
pub(super) struct AttnDims {
    pub(super) batch: usize,
    pub(super) seq: usize,
    pub(super) nh: usize,
    pub(super) hd: usize,
    pub(super) qw: usize,
    pub(super) kvw: usize,
    pub(super) group: usize,
    /// Per token, the row position where its segment (packed sequence) starts: keys before
    /// it are hidden. Empty when every row is one sequence.
    pub(super) starts: Vec<usize>,
}

/// One head's rows of a `width`-wide matrix, as a gemm operand (optionally transposed).
fn head_rows<T>(
    x: &[T],
    first_row: usize,
    rows: usize,
    width: usize,
    col: usize,
    hd: usize,
    transposed: bool,
) -> Strided<'_, T> {
    let data = &x[first_row * width + col..];
    if transposed {
        Strided {
            data,
            rows: hd,
            cols: rows,
            rs: 1,
            cs: width,
        }
    } else {
        Strided {
            data,
            rows,
            cols: hd,
            rs: width,
            cs: 1,
        }
    }
}

/// Rows `r0..r1`, columns `0..r1` of a `seq × seq` block (optionally transposed): the part
/// of a causal score matrix that a block of queries can see.
fn visible<T>(x: &[T], seq: usize, r0: usize, r1: usize, transposed: bool) -> Strided<'_, T> {
    let data = &x[r0 * seq..];
    if transposed {
        Strided {
            data,
            rows: r1,
            cols: r1 - r0,
            rs: 1,
            cs: seq,
        }
    } else {
        Strided {
            data,
            rows: r1 - r0,
            cols: r1,
            rs: seq,
            cs: 1,
        }
    }
}

/// Query rows per block of the causal attention products: each block multiplies only
/// with the keys it can see, which skips most of the masked half.
const QUERY_BLOCK: usize = 64;

/// Runs a product that shapes fixed by the spec make valid (an error would be a bug).
fn product<T: Float>(c: &mut [T], c_rs: usize, a: Strided<T>, b: Strided<T>, accumulate: bool) {
    let ok = gemm_into(c, c_rs, 1, a, b, accumulate, Threads(1)).is_ok();
    debug_assert!(ok, "attention product shapes");
}

/// Causal softmax attention, one task per (sequence, head), each a pair of single-threaded
/// matrix products: S = Q·Kᵀ (the full square; the masked half costs less than scalar
/// loops would), softmax of each row over its first i + 1 entries (the last `window` of
/// them on a sliding-window layer), O = P·V. Returns the probabilities (`seq × seq` per
/// task, zeros where a query cannot see) and the outputs.
pub(super) fn attention_forward<T: Float>(
    q: &[T],
    k: &[T],
    v: &[T],
    a: &AttnDims,
    scale: T,
    window: Option<usize>,
) -> (Buf<T>, Buf<T>) {
    let (seq, hd) = (a.seq, a.hd);
    let mut p = Buf::zeros(a.batch * a.nh * seq * seq);
    let outs: Vec<Vec<T>> = p
        .par_chunks_mut(seq * seq)
        .enumerate()
        .map(|(bh, pb)| {
            let (b, h) = (bh / a.nh, bh % a.nh);
            let kh = h / a.group;
            let row0 = b * seq;
            let mut out = vec![T::zero(); seq * hd];
            for r0 in (0..seq).step_by(QUERY_BLOCK) {
                let r1 = (r0 + QUERY_BLOCK).min(seq);
                product(
                    &mut pb[r0 * seq..],
                    seq,
                    head_rows(q, row0 + r0, r1 - r0, a.qw, h * hd, hd, false),
                    head_rows(k, row0, r1, a.kvw, kh * hd, hd, true),
                    false,
                );
                for i in r0..r1 {
                    let row = &mut pb[i * seq..(i + 1) * seq];
                    let (seen, masked) = row.split_at_mut(i + 1);
                    // A sliding window hides the keys more than `window − 1` back.
                    // Packed sequences hide the keys of the sequences before theirs.
                    let lo = window
                        .map_or(0, |w| (i + 1).saturating_sub(w))
                        .max(a.starts.get(row0 + i).copied().unwrap_or(0));
                    let (early, live) = seen.split_at_mut(lo);
                    early.iter_mut().for_each(|x| *x = T::zero());
                    let mut max = T::from_f64(f64::NEG_INFINITY);
                    for x in live.iter_mut() {
                        *x *= scale;
                        if *x > max {
                            max = *x;
                        }
                    }
                    live.iter_mut().for_each(|x| *x -= max);
                    T::exp_slice(live);
                    let total = live.iter().fold(T::zero(), |s, &x| s + x);
                    let inv = T::one() / total;
                    live.iter_mut().for_each(|x| *x *= inv);
                    masked.iter_mut().for_each(|x| *x = T::zero());
                }
                product(
                    &mut out[r0 * hd..],
                    hd,
                    visible(pb, seq, r0, r1, false),
                    head_rows(v, row0, r1, a.kvw, kh * hd, hd, false),
                    false,
                );
            }
            out
        })
        .collect();
    let mut att = Buf::stale(a.batch * seq * a.qw);
    for (bh, out) in outs.iter().enumerate() {
        let (b, h) = (bh / a.nh, bh % a.nh);
        for (i, o) in out.chunks_exact(hd).enumerate() {
            att[(b * seq + i) * a.qw + h * hd..][..hd].copy_from_slice(o);
        }
    }
    (p, att)
}

/// Backward of [`attention_forward`], per (sequence, head): dP = dO·Vᵀ, dV = Pᵀ·dO,
/// dS = P ⊙ (dP − rowsum(P ⊙ dP))·scale, dQ = dS·K, dK = dSᵀ·Q; the key and value
/// gradients of the heads sharing a key-value head are summed.
pub(super) fn attention_backward<T: Float>(
    datt: &[T],
    q: &[T],
    k: &[T],
    v: &[T],
    p: &[T],
    a: &AttnDims,
    scale: T,
) -> (Buf<T>, Buf<T>, Buf<T>) {
    let (seq, hd) = (a.seq, a.hd);
    let parts: Vec<(Vec<T>, Vec<T>, Vec<T>)> = (0..a.batch * a.nh)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / a.nh, bh % a.nh);
            let kh = h / a.group;
            let row0 = b * seq;
            let pb = &p[bh * seq * seq..(bh + 1) * seq * seq];
            let mut ds = vec![T::zero(); seq * seq];
            let mut dvh = vec![T::zero(); seq * hd];
            let mut dqh = vec![T::zero(); seq * hd];
            let mut dkh = vec![T::zero(); seq * hd];
            for r0 in (0..seq).step_by(QUERY_BLOCK) {
                let r1 = (r0 + QUERY_BLOCK).min(seq);
                let dout = head_rows(datt, row0 + r0, r1 - r0, a.qw, h * hd, hd, false);
                product(
                    &mut ds[r0 * seq..],
                    seq,
                    dout,
                    head_rows(v, row0, r1, a.kvw, kh * hd, hd, true),
                    false,
                );
                product(&mut dvh, hd, visible(pb, seq, r0, r1, true), dout, true);
                for i in r0..r1 {
                    let (drow, prow) =
                        (&mut ds[i * seq..(i + 1) * seq], &pb[i * seq..(i + 1) * seq]);
                    let mut dot = T::zero();
                    for j in 0..=i {
                        dot += prow[j] * drow[j];
                    }
                    for j in 0..=i {
                        drow[j] = prow[j] * (drow[j] - dot) * scale;
                    }
                    drow[i + 1..].iter_mut().for_each(|x| *x = T::zero());
                }
                product(
                    &mut dqh[r0 * hd..],
                    hd,
                    visible(&ds, seq, r0, r1, false),
                    head_rows(k, row0, r1, a.kvw, kh * hd, hd, false),
                    false,
                );
                product(
                    &mut dkh,
                    hd,
                    visible(&ds, seq, r0, r1, true),
                    head_rows(q, row0 + r0, r1 - r0, a.qw, h * hd, hd, false),
                    true,
                );
            }
            (dqh, dkh, dvh)
        })
        .collect();
    let n = a.batch * seq;
    let mut dq = Buf::stale(n * a.qw);
    let mut dk = Buf::zeros(n * a.kvw);
    let mut dv = Buf::zeros(n * a.kvw);
    for (bh, (dqh, dkh, dvh)) in parts.iter().enumerate() {
        let (b, h) = (bh / a.nh, bh % a.nh);
        let kh = h / a.group;
        for i in 0..seq {
            dq[(b * seq + i) * a.qw + h * hd..][..hd].copy_from_slice(&dqh[i * hd..(i + 1) * hd]);
            let at = (b * seq + i) * a.kvw + kh * hd;
            for e in 0..hd {
                dk[at + e] += dkh[i * hd + e];
                dv[at + e] += dvh[i * hd + e];
            }
        }
    }
    (dq, dk, dv)
}
