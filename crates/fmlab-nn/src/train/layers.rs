//! Each layer kind of the training pass (attention aside, `attention.rs`) with its
//! hand-written derivative: products through `gemm`, RMSNorm/LayerNorm and biases, GELU,
//! rotary embeddings (a cos/sin table), and the FFN activations, row-parallel.

use fmlab_kernels::{gemm_into, RopeStyle, Strided, Threads};
use fmlab_spec::FfnKind;
use rayon::prelude::*;

use super::float::Float;
use super::pool::Buf;

/// `y[n×o] = x[n×i] · wᵀ` with `w` as `o × i` (through `gemm`).
pub(super) fn matmul<T: Float>(x: &[T], w: &[T], n: usize, i: usize, o: usize) -> Buf<T> {
    let mut y = Buf::stale(n * o);
    let a = Strided {
        data: x,
        rows: n,
        cols: i,
        rs: i,
        cs: 1,
    };
    let b = Strided {
        data: w,
        rows: i,
        cols: o,
        rs: 1,
        cs: i,
    };
    // Shapes are fixed by the spec and checked by gemm_into; an error here is a bug.
    if gemm_into(&mut y, o, 1, a, b, false, Threads(0)).is_err() {
        debug_assert!(false, "matmul shapes");
    }
    y
}

/// Backward of [`matmul`] for its input: `dx (+)= dy · w` (added to `dx` when `dx_add`,
/// written over it otherwise).
pub(super) fn matmul_back_x<T: Float>(
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    dx_add: bool,
    n: usize,
    i: usize,
    o: usize,
) {
    let dy_rows = Strided {
        data: dy,
        rows: n,
        cols: o,
        rs: o,
        cs: 1,
    };
    let w_m = Strided {
        data: w,
        rows: o,
        cols: i,
        rs: i,
        cs: 1,
    };
    let ok = gemm_into(dx, i, 1, dy_rows, w_m, dx_add, Threads(0)).is_ok();
    debug_assert!(ok, "matmul_back_x shapes");
}

/// Backward of [`matmul`] for its weights: `dw += dyᵀ · x`.
pub(super) fn matmul_back_w<T: Float>(
    dy: &[T],
    x: &[T],
    dw: &mut [T],
    n: usize,
    i: usize,
    o: usize,
) {
    let dy_t = Strided {
        data: dy,
        rows: o,
        cols: n,
        rs: 1,
        cs: o,
    };
    let x_m = Strided {
        data: x,
        rows: n,
        cols: i,
        rs: i,
        cs: 1,
    };
    let ok = gemm_into(dw, i, 1, dy_t, x_m, true, Threads(0)).is_ok();
    debug_assert!(ok, "matmul_back_w shapes");
}

/// RMSNorm or LayerNorm of each `d`-wide row (LayerNorm when `b` is given or `layer`);
/// returns the outputs and each row's (1/σ, mean) — mean 0 for RMSNorm. Rows in parallel.
pub(super) fn norm<T: Float>(
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    d: usize,
    eps: f64,
    layer: bool,
) -> (Buf<T>, Vec<(T, T)>) {
    let mut y = Buf::stale(x.len());
    let dn = T::from_f64(d as f64);
    let stats = x
        .par_chunks(d)
        .zip(y.par_chunks_mut(d))
        .with_min_len(32)
        .map(|(row, out)| {
            let mean = if layer {
                row.iter().fold(T::zero(), |s, &v| s + v) / dn
            } else {
                T::zero()
            };
            let var = row
                .iter()
                .fold(T::zero(), |s, &v| s + (v - mean) * (v - mean))
                / dn;
            let r = T::one() / (var + T::from_f64(eps)).sqrt();
            for k in 0..d {
                out[k] = (row[k] - mean) * r * w[k];
                if let Some(b) = b {
                    out[k] += b[k];
                }
            }
            (r, mean)
        })
        .collect();
    (y, stats)
}

/// Rows per task where a row-parallel pass also sums over rows (weight gradients): each
/// task sums its block, the blocks are added after.
const ROW_BLOCK: usize = 64;

/// Backward of [`norm`]. With x̂ = (x − μ)·r and g = w ⊙ dy:
/// RMSNorm dx = r·g − x̂·r·mean(g ⊙ x̂); LayerNorm also subtracts r·mean(g).
/// dw += dy ⊙ x̂; db += dy. `dx` is added to when `dx_add`, written over otherwise.
#[allow(clippy::too_many_arguments)]
pub(super) fn norm_back<T: Float>(
    dy: &[T],
    x: &[T],
    w: &[T],
    stats: &[(T, T)],
    dx: &mut [T],
    dx_add: bool,
    dw: &mut [T],
    db: Option<&mut [T]>,
    d: usize,
    layer: bool,
) {
    let dn = T::from_f64(d as f64);
    let block = ROW_BLOCK * d;
    let partial: Vec<(Vec<T>, Vec<T>)> = dy
        .par_chunks(block)
        .zip(x.par_chunks(block))
        .zip(dx.par_chunks_mut(block))
        .zip(stats.par_chunks(ROW_BLOCK))
        .map(|(((dyb, xb), dxb), sb)| {
            let (mut pw, mut pb) = (vec![T::zero(); d], vec![T::zero(); d]);
            for (((dyr, xr), dxr), &(r, mean)) in dyb
                .chunks_exact(d)
                .zip(xb.chunks_exact(d))
                .zip(dxb.chunks_exact_mut(d))
                .zip(sb)
            {
                let (mut g_mean, mut gx_mean) = (T::zero(), T::zero());
                for k in 0..d {
                    let g = w[k] * dyr[k];
                    g_mean += g;
                    gx_mean += g * (xr[k] - mean) * r;
                }
                g_mean = g_mean / dn;
                gx_mean = gx_mean / dn;
                for k in 0..d {
                    let xhat = (xr[k] - mean) * r;
                    let g = w[k] * dyr[k];
                    let centred = if layer { g - g_mean } else { g };
                    let v = r * (centred - xhat * gx_mean);
                    dxr[k] = if dx_add { dxr[k] + v } else { v };
                    pw[k] += dyr[k] * xhat;
                    pb[k] += dyr[k];
                }
            }
            (pw, pb)
        })
        .collect();
    let mut db = db;
    for (pw, pb) in partial {
        dw.iter_mut().zip(&pw).for_each(|(a, &b)| *a += b);
        if let Some(db) = db.as_deref_mut() {
            db.iter_mut().zip(&pb).for_each(|(a, &b)| *a += b);
        }
    }
}

pub(super) fn add_bias<T: Float>(y: &mut [T], b: &[T], width: usize) {
    y.par_chunks_mut(width)
        .with_min_len(64)
        .for_each(|row| row.iter_mut().zip(b).for_each(|(v, &bb)| *v += bb));
}

pub(super) fn bias_back<T: Float>(dy: &[T], db: &mut [T], width: usize) {
    for row in dy.chunks_exact(width) {
        db.iter_mut().zip(row).for_each(|(a, &g)| *a += g);
    }
}

const GELU_C: f64 = 0.797_884_560_802_865_4; // √(2/π)

/// GPT-2's GELU (tanh approximation).
fn gelu<T: Float>(x: T) -> T {
    let u = T::from_f64(GELU_C) * (x + T::from_f64(0.044_715) * x * x * x);
    T::from_f64(0.5) * x * (T::one() + u.tanh())
}

fn gelu_grad<T: Float>(x: T) -> T {
    let c = T::from_f64(GELU_C);
    let a = T::from_f64(0.044_715);
    let t = (c * (x + a * x * x * x)).tanh();
    T::from_f64(0.5) * (T::one() + t)
        + T::from_f64(0.5) * x * (T::one() - t * t) * c * (T::one() + T::from_f64(3.0) * a * x * x)
}

/// cos and sin of θ_i·pos for positions `0..len` and pairs `0..hd/2`, with
/// θ_i = base^(−2i/hd): computed once per pass rather than per row and head.
pub(super) struct RopeTable<T> {
    cos: Vec<T>,
    sin: Vec<T>,
    half: usize,
}

impl<T: Float> RopeTable<T> {
    pub(super) fn new(len: usize, hd: usize, base: f64) -> Self {
        let half = hd / 2;
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for pos in 0..len {
            for i in 0..half {
                let theta = pos as f64 * base.powf(-2.0 * i as f64 / hd as f64);
                cos.push(T::from_f64(theta.cos()));
                sin.push(T::from_f64(theta.sin()));
            }
        }
        Self { cos, sin, half }
    }
}

/// Rotary embeddings on `n_heads` heads of each row at `positions`, on the pairs the
/// plan's style names: adjacent (2i, 2i + 1) as GGUF llama models lay them out (fmlab's own
/// models: trained weights export to GGUF unpermuted), or halves (i, i + hd/2) for Qwen2
/// and Gemma; `inverse` rotates back (the backward pass).
#[allow(clippy::too_many_arguments)]
pub(super) fn rope<T: Float>(
    x: &mut [T],
    positions: &[usize],
    n_heads: usize,
    hd: usize,
    table: &RopeTable<T>,
    style: RopeStyle,
    inverse: bool,
) {
    let width = n_heads * hd;
    let half = table.half;
    x.par_chunks_mut(width)
        .zip(positions.par_iter())
        .with_min_len(16)
        .for_each(|(row, &pos)| {
            let (cos, sin) = (
                &table.cos[pos * half..(pos + 1) * half],
                &table.sin[pos * half..(pos + 1) * half],
            );
            for head in row.chunks_exact_mut(hd) {
                for i in 0..half {
                    let (c, s) = (cos[i], if inverse { -sin[i] } else { sin[i] });
                    let (ia, ib) = match style {
                        RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                        RopeStyle::Halves => (i, i + half),
                    };
                    let (a, b) = (head[ia], head[ib]);
                    head[ia] = a * c - b * s;
                    head[ib] = a * s + b * c;
                }
            }
        });
}

/// The FFN activation, row by row: SiLU(g) ⊙ u (SwiGLU), GELU(g) ⊙ u (GeGLU), or GELU(u).
pub(super) fn act_forward<T: Float>(
    gate: Option<&[T]>,
    up: &[T],
    kind: FfnKind,
    f: usize,
) -> Buf<T> {
    let mut act = Buf::stale(up.len());
    match gate {
        Some(gate) => act
            .par_chunks_mut(f)
            .zip(gate.par_chunks(f))
            .zip(up.par_chunks(f))
            .for_each(|((a, g), u)| {
                if kind == FfnKind::GeGlu {
                    for k in 0..a.len() {
                        a[k] = gelu(g[k]) * u[k];
                    }
                } else {
                    T::sigmoid_slice(g, a);
                    for k in 0..a.len() {
                        a[k] = g[k] * a[k] * u[k];
                    }
                }
            }),
        None => act
            .par_iter_mut()
            .zip(up.par_iter())
            .with_min_len(4096)
            .for_each(|(a, &u)| *a = gelu(u)),
    }
    act
}

/// Backward of [`act_forward`]: the gradients of the gate (when gated) and of up.
pub(super) fn act_backward<T: Float>(
    dact: &[T],
    gate: Option<&[T]>,
    up: &[T],
    kind: FfnKind,
    f: usize,
) -> (Option<Buf<T>>, Buf<T>) {
    let mut dup = Buf::stale(up.len());
    let Some(gate) = gate else {
        dup.par_iter_mut()
            .enumerate()
            .with_min_len(4096)
            .for_each(|(k, du)| *du = dact[k] * gelu_grad(up[k]));
        return (None, dup);
    };
    let mut dgate = Buf::stale(up.len());
    dup.par_chunks_mut(f)
        .zip(dgate.par_chunks_mut(f))
        .zip(gate.par_chunks(f))
        .zip(up.par_chunks(f))
        .zip(dact.par_chunks(f))
        .for_each(|((((du, dg), g), u), da)| {
            if kind == FfnKind::GeGlu {
                for k in 0..du.len() {
                    du[k] = da[k] * gelu(g[k]);
                    dg[k] = da[k] * u[k] * gelu_grad(g[k]);
                }
            } else {
                // dg holds σ(g) until it is overwritten with the gradient.
                T::sigmoid_slice(g, dg);
                for k in 0..du.len() {
                    let sig = dg[k];
                    du[k] = da[k] * g[k] * sig;
                    dg[k] = da[k] * u[k] * sig * (T::one() + g[k] * (T::one() - sig));
                }
            }
        });
    (Some(dgate), dup)
}
