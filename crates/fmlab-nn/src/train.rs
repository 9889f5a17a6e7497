//! The trainable path: forward with saved activations and an explicit backward pass, over
//! dense weights, for Llama-shaped decoders (RMSNorm, RoPE, causal multi-head attention
//! with grouped key-value heads, SwiGLU, tied or untied head, cross-entropy) — the shape
//! `fmlab_spec::from_depth` gives. Generic over the float type so that the same code runs in
//! f32 for training and in f64 for gradient checks against finite differences.
//!
//! Written out layer by layer (as llm.c does) rather than through an autograd framework:
//! every derivative is here to read. Matrix products (forward and both backward ones) go
//! through `gemm`; attention, norms and activations are plain loops for now.

use fmlab_kernels::{gemm_into, Strided, Threads};
use fmlab_spec::{FfnKind, ModelSpec, NormKind, NormPlacement, Positions};
use rayon::prelude::*;

use crate::{Error, Result};

/// The float types training runs in.
pub trait Float:
    Copy
    + Default
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + Send
    + Sync
    + 'static
{
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tanh(self) -> Self;
    fn zero() -> Self {
        Self::default()
    }
    /// The calling thread's pool of large buffers of this type (see [`Buf`]).
    fn pool() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Vec<Self>>>>;
    /// eˣ of every element in place.
    fn exp_slice(xs: &mut [Self]) {
        xs.iter_mut().for_each(|x| *x = x.exp());
    }
    /// σ(x) of every element of `x` into `out`.
    fn sigmoid_slice(x: &[Self], out: &mut [Self]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = Self::one() / (Self::one() + (-v).exp());
        }
    }
    fn one() -> Self {
        Self::from_f64(1.0)
    }
}

macro_rules! float_impl {
    ($t:ty $(, $extra:item)*) => {
        impl Float for $t {
            $($extra)*
            fn pool() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Vec<$t>>>> {
                thread_local! {
                    static POOL: std::cell::RefCell<Vec<Vec<$t>>> =
                        const { std::cell::RefCell::new(Vec::new()) };
                }
                &POOL
            }
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
        }
    };
}
// f32 (training) takes the vectorised kernels; f64 (gradient checks) stays with libm.
float_impl!(
    f32,
    fn exp_slice(xs: &mut [f32]) {
        fmlab_kernels::exp_in_place(xs)
    },
    fn sigmoid_slice(x: &[f32], out: &mut [f32]) {
        fmlab_kernels::sigmoid_into(x, out)
    }
);
float_impl!(f64);

/// One layer's weights (row-major `out × in` matrices).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights<T> {
    pub attn_norm: Vec<T>,
    /// LayerNorm's bias (GPT-2 shape).
    pub attn_norm_b: Option<Vec<T>>,
    pub wq: Vec<T>,
    pub wk: Vec<T>,
    pub wv: Vec<T>,
    pub bq: Option<Vec<T>>,
    pub bk: Option<Vec<T>>,
    pub bv: Option<Vec<T>>,
    pub wo: Vec<T>,
    pub bo: Option<Vec<T>>,
    pub ffn_norm: Vec<T>,
    pub ffn_norm_b: Option<Vec<T>>,
    /// The SwiGLU gate; `None` for a GELU MLP.
    pub w_gate: Option<Vec<T>>,
    pub w_up: Vec<T>,
    pub b_up: Option<Vec<T>>,
    pub w_down: Vec<T>,
    pub b_down: Option<Vec<T>>,
}

/// One tensor of [`Weights`], by name.
#[derive(Debug)]
pub struct Named<'a, T> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: &'a mut Vec<T>,
    pub decay: bool,
}

/// All weights of a trainable decoder; gradients have the same shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights<T> {
    pub embed: Vec<T>,
    /// Learned positions (`context × d`), GPT-2 shape.
    pub pos: Option<Vec<T>>,
    pub layers: Vec<LayerWeights<T>>,
    pub final_norm: Vec<T>,
    pub final_norm_b: Option<Vec<T>>,
    /// `None` when tied to the embeddings.
    pub head: Option<Vec<T>>,
}

impl<T: Float> Weights<T> {
    /// Zeros shaped for `spec` (which must be Llama-shaped: see [`check_spec`]).
    pub fn zeros(spec: &ModelSpec) -> Result<Self> {
        check_spec(spec)?;
        let d = spec.d_model as usize;
        let (qw, kvw) = (
            (spec.n_heads * spec.head_dim) as usize,
            (spec.n_kv_heads * spec.head_dim) as usize,
        );
        let f = spec.ffn_dim as usize;
        let v = spec.vocab_size as usize;
        let z = |n: usize| vec![T::zero(); n];
        let opt = |on: bool, n: usize| on.then(|| vec![T::zero(); n]);
        let layer_norm = spec.norm_kind == NormKind::LayerNorm;
        let gated = spec.ffn_kind == FfnKind::SwiGlu;
        Ok(Self {
            embed: z(v * d),
            pos: opt(
                spec.positions == Positions::Learned,
                spec.context_length as usize * d,
            ),
            layers: (0..spec.n_layers)
                .map(|_| LayerWeights {
                    attn_norm: z(d),
                    attn_norm_b: opt(layer_norm, d),
                    wq: z(qw * d),
                    wk: z(kvw * d),
                    wv: z(kvw * d),
                    bq: opt(spec.qkv_bias, qw),
                    bk: opt(spec.qkv_bias, kvw),
                    bv: opt(spec.qkv_bias, kvw),
                    wo: z(d * qw),
                    bo: opt(spec.attn_out_bias, d),
                    ffn_norm: z(d),
                    ffn_norm_b: opt(layer_norm, d),
                    w_gate: opt(gated, f * d),
                    w_up: z(f * d),
                    b_up: opt(spec.mlp_bias, f),
                    w_down: z(d * f),
                    b_down: opt(spec.mlp_bias, d),
                })
                .collect(),
            final_norm: z(d),
            final_norm_b: opt(layer_norm, d),
            head: (!spec.tied_embeddings).then(|| z(v * d)),
        })
    }

    /// Every tensor, in a fixed order, with whether weight decay applies to it (matrices
    /// yes; norms and embeddings no).
    pub fn tensors_mut(&mut self) -> Vec<(&mut Vec<T>, bool)> {
        self.named_mut()
            .into_iter()
            .map(|t| (t.data, t.decay))
            .collect()
    }

    /// Every tensor with its GGUF name (`token_embd.weight`, `blk.0.attn_q.weight`, …),
    /// its shape (`[out, in]` for matrices, row-major) and its decay flag, in the order of
    /// [`Weights::tensors_mut`]: what checkpoints and exports write.
    pub fn named_mut(&mut self) -> Vec<Named<'_, T>> {
        let d = self.final_norm.len();
        let mut out = Vec::new();
        // Matrices are `[len / cols, cols]`; vectors `[len]`.
        fn put<'a, T>(
            out: &mut Vec<Named<'a, T>>,
            name: String,
            data: &'a mut Vec<T>,
            cols: Option<usize>,
            decay: bool,
        ) {
            let shape = match cols {
                Some(c) => vec![data.len() / c.max(1), c],
                None => vec![data.len()],
            };
            out.push(Named {
                name,
                shape,
                data,
                decay,
            });
        }
        put(
            &mut out,
            "token_embd.weight".into(),
            &mut self.embed,
            Some(d),
            false,
        );
        if let Some(p) = &mut self.pos {
            put(&mut out, "position_embd.weight".into(), p, Some(d), false);
        }
        for (i, l) in self.layers.iter_mut().enumerate() {
            let n = |s: &str| format!("blk.{i}.{s}");
            // The output projection reads `n_heads · head_dim` columns, the down projection
            // the FFN's width.
            let qw = l.wq.len() / d.max(1);
            let f = l.w_up.len() / d.max(1);
            put(
                &mut out,
                n("attn_norm.weight"),
                &mut l.attn_norm,
                None,
                false,
            );
            if let Some(b) = &mut l.attn_norm_b {
                put(&mut out, n("attn_norm.bias"), b, None, false);
            }
            put(&mut out, n("attn_q.weight"), &mut l.wq, Some(d), true);
            put(&mut out, n("attn_k.weight"), &mut l.wk, Some(d), true);
            put(&mut out, n("attn_v.weight"), &mut l.wv, Some(d), true);
            for (b, s) in [
                (&mut l.bq, "attn_q.bias"),
                (&mut l.bk, "attn_k.bias"),
                (&mut l.bv, "attn_v.bias"),
            ] {
                if let Some(b) = b {
                    put(&mut out, n(s), b, None, false);
                }
            }
            put(&mut out, n("attn_output.weight"), &mut l.wo, Some(qw), true);
            if let Some(b) = &mut l.bo {
                put(&mut out, n("attn_output.bias"), b, None, false);
            }
            put(&mut out, n("ffn_norm.weight"), &mut l.ffn_norm, None, false);
            if let Some(b) = &mut l.ffn_norm_b {
                put(&mut out, n("ffn_norm.bias"), b, None, false);
            }
            if let Some(g) = &mut l.w_gate {
                put(&mut out, n("ffn_gate.weight"), g, Some(d), true);
            }
            put(&mut out, n("ffn_up.weight"), &mut l.w_up, Some(d), true);
            if let Some(b) = &mut l.b_up {
                put(&mut out, n("ffn_up.bias"), b, None, false);
            }
            put(&mut out, n("ffn_down.weight"), &mut l.w_down, Some(f), true);
            if let Some(b) = &mut l.b_down {
                put(&mut out, n("ffn_down.bias"), b, None, false);
            }
        }
        put(
            &mut out,
            "output_norm.weight".into(),
            &mut self.final_norm,
            None,
            false,
        );
        if let Some(b) = &mut self.final_norm_b {
            put(&mut out, "output_norm.bias".into(), b, None, false);
        }
        if let Some(h) = &mut self.head {
            put(&mut out, "output.weight".into(), h, Some(d), true);
        }
        out
    }

    /// GPT-2/nanoGPT initialisation: normal(0, 0.02) for matrices and embeddings, the
    /// residual projections (attention output, FFN down) scaled by 1/√(2L), norms at 1.
    pub fn init(spec: &ModelSpec, seed: u64) -> Result<Self> {
        let mut w = Self::zeros(spec)?;
        let mut rng = Normal::new(seed);
        let resid = 0.02 / (2.0 * spec.n_layers as f64).sqrt();
        let fill = |v: &mut Vec<T>, std: f64, rng: &mut Normal| {
            v.iter_mut()
                .for_each(|x| *x = T::from_f64(rng.next() * std));
        };
        fill(&mut w.embed, 0.02, &mut rng);
        if let Some(p) = &mut w.pos {
            fill(p, 0.01, &mut rng);
        }
        for l in &mut w.layers {
            l.attn_norm.iter_mut().for_each(|x| *x = T::one());
            l.ffn_norm.iter_mut().for_each(|x| *x = T::one());
            fill(&mut l.wq, 0.02, &mut rng);
            fill(&mut l.wk, 0.02, &mut rng);
            fill(&mut l.wv, 0.02, &mut rng);
            fill(&mut l.wo, resid, &mut rng);
            if let Some(g) = &mut l.w_gate {
                fill(g, 0.02, &mut rng);
            }
            fill(&mut l.w_up, 0.02, &mut rng);
            fill(&mut l.w_down, resid, &mut rng);
        }
        w.final_norm.iter_mut().for_each(|x| *x = T::one());
        if let Some(h) = &mut w.head {
            fill(h, 0.02, &mut rng);
        }
        Ok(w)
    }
}

/// Standard normal draws (Box–Muller over the sampler's seeded generator): the same
/// weights for a seed on every machine.
struct Normal {
    rng: fmlab_sample::Rng,
    spare: Option<f64>,
}

impl Normal {
    fn new(seed: u64) -> Self {
        Self {
            rng: fmlab_sample::Rng::new(seed),
            spare: None,
        }
    }

    fn next(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        // u in (0, 1], so that ln u is finite.
        let (u, v) = (1.0 - self.rng.next_f64(), self.rng.next_f64());
        let r = (-2.0 * u.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * v).sin_cos();
        self.spare = Some(r * s);
        r * c
    }
}

/// The trainable path covers Llama-shaped decoders.
pub fn check_spec(spec: &ModelSpec) -> Result<()> {
    let ok = matches!(spec.ffn_kind, FfnKind::SwiGlu | FfnKind::GeluMlp)
        && matches!(spec.positions, Positions::Rope { .. } | Positions::Learned)
        && spec.norm_placement == NormPlacement::Pre
        && spec.final_norm
        && !spec.qk_norm
        && spec.sliding_window.is_none()
        && !spec.scale_embeddings
        && spec.n_kv_heads > 0
        && spec.n_heads.is_multiple_of(spec.n_kv_heads)
        && spec.head_dim.is_multiple_of(2);
    if ok {
        Ok(())
    } else {
        Err(Error::Unsupported(format!(
            "training covers pre-norm decoders with RoPE or learned positions and a SwiGLU or GELU MLP (Llama, GPT-2); {} is not",
            spec.architecture
        )))
    }
}

/// Buffers of at least this many elements go back to the pool when dropped.
const POOLED: usize = 1 << 14;

/// An activation or gradient buffer drawn from the calling thread's pool and returned to
/// it when dropped: a training step needs the same large buffers every time, and taking
/// them from the pool instead of the allocator saves mapping, faulting in and unmapping
/// hundreds of megabytes per step (llm.c keeps one activation arena for the same reason).
struct Buf<T: Float>(Vec<T>);

impl<T: Float> Buf<T> {
    fn take(n: usize) -> Vec<T> {
        if n < POOLED {
            return Vec::with_capacity(n);
        }
        T::pool()
            .with(|pool| {
                let mut pool = pool.borrow_mut();
                let i = pool
                    .iter()
                    .position(|v| v.capacity() >= n && v.capacity() <= 2 * n)?;
                Some(pool.swap_remove(i))
            })
            .unwrap_or_else(|| Vec::with_capacity(n))
    }

    /// `n` zeros.
    fn zeros(n: usize) -> Self {
        let mut v = Self::take(n);
        v.clear();
        v.resize(n, T::zero());
        Buf(v)
    }

    /// `n` values left from the buffer's last use: for outputs that are written in full
    /// before anything reads them.
    fn stale(n: usize) -> Self {
        let mut v = Self::take(n);
        v.truncate(n);
        v.resize(n, T::zero());
        Buf(v)
    }

    fn copy_of(x: &[T]) -> Self {
        let mut b = Self::stale(x.len());
        b.copy_from_slice(x);
        b
    }
}

impl<T: Float> std::ops::Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: Float> std::ops::DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl<T: Float> Drop for Buf<T> {
    fn drop(&mut self) {
        if self.0.capacity() >= POOLED {
            let v = std::mem::take(&mut self.0);
            // At most a few hundred buffers: one step's working set.
            let _ = T::pool().try_with(|pool| {
                if let Ok(mut pool) = pool.try_borrow_mut() {
                    if pool.len() < 512 {
                        pool.push(v);
                    }
                }
            });
        }
    }
}

/// Returns the calling thread's pooled buffers to the allocator (after training).
pub fn release_buffers() {
    let _ = f32::pool().try_with(|p| p.borrow_mut().clear());
    let _ = f64::pool().try_with(|p| p.borrow_mut().clear());
}

/// `y[n×o] = x[n×i] · wᵀ` with `w` as `o × i` (through `gemm`).
fn matmul<T: Float>(x: &[T], w: &[T], n: usize, i: usize, o: usize) -> Buf<T> {
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

/// Backward of [`matmul`]: `dx += dy · w`, `dw += dyᵀ · x`.
#[allow(clippy::too_many_arguments)]
fn matmul_back<T: Float>(
    dy: &[T],
    x: &[T],
    w: &[T],
    dx: &mut [T],
    dw: &mut [T],
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
    let ok = gemm_into(dx, i, 1, dy_rows, w_m, true, Threads(0)).is_ok()
        && gemm_into(dw, i, 1, dy_t, x_m, true, Threads(0)).is_ok();
    debug_assert!(ok, "matmul_back shapes");
}

/// RMSNorm or LayerNorm of each `d`-wide row (LayerNorm when `b` is given or `layer`);
/// returns the outputs and each row's (1/σ, mean) — mean 0 for RMSNorm. Rows in parallel.
fn norm<T: Float>(
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
/// dw += dy ⊙ x̂; db += dy.
#[allow(clippy::too_many_arguments)]
fn norm_back<T: Float>(
    dy: &[T],
    x: &[T],
    w: &[T],
    stats: &[(T, T)],
    dx: &mut [T],
    dw: &mut [T],
    db: Option<&mut Vec<T>>,
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
                    dxr[k] += r * (centred - xhat * gx_mean);
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

fn add_bias<T: Float>(y: &mut [T], b: Option<&Vec<T>>, width: usize) {
    if let Some(b) = b {
        for row in y.chunks_exact_mut(width) {
            row.iter_mut().zip(b).for_each(|(v, &bb)| *v += bb);
        }
    }
}

fn bias_back<T: Float>(dy: &[T], db: Option<&mut Vec<T>>, width: usize) {
    if let Some(db) = db {
        for row in dy.chunks_exact(width) {
            db.iter_mut().zip(row).for_each(|(a, &g)| *a += g);
        }
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
struct RopeTable<T> {
    cos: Vec<T>,
    sin: Vec<T>,
    half: usize,
}

impl<T: Float> RopeTable<T> {
    fn new(len: usize, hd: usize, base: f64) -> Self {
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

/// Rotary embeddings on `n_heads` heads of each row at `positions`, on adjacent pairs
/// (2i, 2i + 1) as GGUF llama models lay them out, so that trained weights export to GGUF
/// unpermuted and run on the same kernels there; `inverse` rotates back (the backward pass).
fn rope<T: Float>(
    x: &mut [T],
    positions: &[usize],
    n_heads: usize,
    hd: usize,
    table: &RopeTable<T>,
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
                    let (a, b) = (head[2 * i], head[2 * i + 1]);
                    head[2 * i] = a * c - b * s;
                    head[2 * i + 1] = a * s + b * c;
                }
            }
        });
}

/// Shapes of one attention call: `batch` sequences of `seq` rows; queries `qw = nh·hd`
/// wide, keys and values `kvw` wide, `group` query heads per key-value head.
struct AttnDims {
    batch: usize,
    seq: usize,
    nh: usize,
    hd: usize,
    qw: usize,
    kvw: usize,
    group: usize,
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
/// loops would), softmax of each row over its first i + 1 entries, O = P·V. Returns the
/// probabilities (`seq × seq` per task, zeros above the diagonal) and the outputs.
fn attention_forward<T: Float>(
    q: &[T],
    k: &[T],
    v: &[T],
    a: &AttnDims,
    scale: T,
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
                    let (live, masked) = row.split_at_mut(i + 1);
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
fn attention_backward<T: Float>(
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

/// What the forward pass keeps of one layer for the backward pass.
struct LayerCache<T: Float> {
    x: Buf<T>,
    h1: Buf<T>,
    inv1: Vec<(T, T)>,
    q: Buf<T>,
    k: Buf<T>,
    v: Buf<T>,
    /// Attention probabilities per (sequence, head, query): `t × t` each.
    p: Buf<T>,
    att: Buf<T>,
    x2: Buf<T>,
    h2: Buf<T>,
    inv2: Vec<(T, T)>,
    gate: Buf<T>,
    up: Buf<T>,
    act: Buf<T>,
}

/// Mean cross-entropy of next-token prediction over `batch` sequences of `seq` tokens
/// (`inputs` and `targets` both `batch × seq`), and, with `grads`, its gradient added to
/// them.
pub fn loss_and_grad<T: Float>(
    spec: &ModelSpec,
    w: &Weights<T>,
    inputs: &[u32],
    targets: &[u32],
    batch: usize,
    grads: Option<&mut Weights<T>>,
) -> Result<T> {
    run(spec, w, inputs, targets, batch, grads, None)
}

/// One sequence's logits (no loss, no gradients).
fn forward_logits<T: Float>(
    spec: &ModelSpec,
    w: &Weights<T>,
    inputs: &[u32],
    out: &mut Vec<T>,
) -> Result<()> {
    run(spec, w, inputs, inputs, 1, None, Some(out)).map(|_| ())
}

#[allow(clippy::too_many_arguments)]
fn run<T: Float>(
    spec: &ModelSpec,
    w: &Weights<T>,
    inputs: &[u32],
    targets: &[u32],
    batch: usize,
    grads: Option<&mut Weights<T>>,
    logits_out: Option<&mut Vec<T>>,
) -> Result<T> {
    check_spec(spec)?;
    let seq = inputs.len() / batch.max(1);
    if batch == 0 || seq == 0 || inputs.len() != batch * seq || targets.len() != inputs.len() {
        return Err(Error::Unsupported(format!(
            "{} inputs and {} targets are not {batch} sequences of equal length",
            inputs.len(),
            targets.len()
        )));
    }
    let v = spec.vocab_size as usize;
    if let Some(&bad) = inputs.iter().chain(targets).find(|&&t| t as usize >= v) {
        return Err(Error::Unsupported(format!(
            "token {bad} is outside the vocabulary of {v}"
        )));
    }
    let d = spec.d_model as usize;
    let hd = spec.head_dim as usize;
    let (nh, nkv) = (spec.n_heads as usize, spec.n_kv_heads as usize);
    let (qw, kvw) = (nh * hd, nkv * hd);
    let f = spec.ffn_dim as usize;
    let n = batch * seq;
    let eps = spec.norm_eps;
    let base = match spec.positions {
        Positions::Rope { base } => base,
        _ => 10_000.0,
    };
    let positions: Vec<usize> = (0..n).map(|i| i % seq).collect();
    let scale = T::from_f64(1.0 / (hd as f64).sqrt());
    let group = nh / nkv;
    let dims = AttnDims {
        batch,
        seq,
        nh,
        hd,
        qw,
        kvw,
        group,
    };

    // --- forward ---
    if w.pos.is_some() && seq > spec.context_length as usize {
        return Err(Error::Unsupported(format!(
            "sequences of {seq} tokens exceed the {} learned positions",
            spec.context_length
        )));
    }
    let layer_norm = spec.norm_kind == NormKind::LayerNorm;
    let rope_on = matches!(spec.positions, Positions::Rope { .. });
    let table = RopeTable::<T>::new(if rope_on { seq } else { 0 }, hd, base);
    let mut x = Buf::stale(n * d);
    for (i, &t) in inputs.iter().enumerate() {
        x[i * d..(i + 1) * d].copy_from_slice(&w.embed[t as usize * d..(t as usize + 1) * d]);
        if let Some(pos) = &w.pos {
            let p = positions[i];
            x[i * d..(i + 1) * d]
                .iter_mut()
                .zip(&pos[p * d..(p + 1) * d])
                .for_each(|(a, &b)| *a += b);
        }
    }
    let mut caches = Vec::with_capacity(w.layers.len());
    for l in &w.layers {
        let (h1, inv1) = norm(
            &x,
            &l.attn_norm,
            l.attn_norm_b.as_deref(),
            d,
            eps,
            layer_norm,
        );
        let mut q = matmul(&h1, &l.wq, n, d, qw);
        let mut k = matmul(&h1, &l.wk, n, d, kvw);
        let mut vv = matmul(&h1, &l.wv, n, d, kvw);
        add_bias(&mut q, l.bq.as_ref(), qw);
        add_bias(&mut k, l.bk.as_ref(), kvw);
        add_bias(&mut vv, l.bv.as_ref(), kvw);
        if rope_on {
            rope(&mut q, &positions, nh, hd, &table, false);
            rope(&mut k, &positions, nkv, hd, &table, false);
        }
        let (p, att) = attention_forward(&q, &k, &vv, &dims, scale);
        let mut o = matmul(&att, &l.wo, n, qw, d);
        add_bias(&mut o, l.bo.as_ref(), d);
        let mut x2 = Buf::stale(n * d);
        x2.par_iter_mut()
            .zip(x.par_iter().zip(o.par_iter()))
            .for_each(|(y, (&a, &b))| *y = a + b);
        let (h2, inv2) = norm(
            &x2,
            &l.ffn_norm,
            l.ffn_norm_b.as_deref(),
            d,
            eps,
            layer_norm,
        );
        let mut up = matmul(&h2, &l.w_up, n, d, f);
        add_bias(&mut up, l.b_up.as_ref(), f);
        let (gate, act) = match &l.w_gate {
            Some(wg) => {
                let gate = matmul(&h2, wg, n, d, f);
                let mut act = Buf::stale(n * f);
                act.par_chunks_mut(f)
                    .zip(gate.par_chunks(f))
                    .zip(up.par_chunks(f))
                    .for_each(|((a, g), u)| {
                        T::sigmoid_slice(g, a);
                        for k in 0..a.len() {
                            a[k] = g[k] * a[k] * u[k];
                        }
                    });
                (gate, act)
            }
            None => {
                let mut act = Buf::stale(n * f);
                act.par_iter_mut()
                    .zip(up.par_iter())
                    .for_each(|(a, &u)| *a = gelu(u));
                (Buf::stale(0), act)
            }
        };
        let mut down = matmul(&act, &l.w_down, n, f, d);
        add_bias(&mut down, l.b_down.as_ref(), d);
        let mut x3 = Buf::stale(n * d);
        x3.par_iter_mut()
            .zip(x2.par_iter().zip(down.par_iter()))
            .for_each(|(y, (&a, &b))| *y = a + b);
        caches.push(LayerCache {
            x: std::mem::replace(&mut x, x3),
            h1,
            inv1,
            q,
            k,
            v: vv,
            p,
            att,
            x2,
            h2,
            inv2,
            gate,
            up,
            act,
        });
    }
    let (hf, invf) = norm(
        &x,
        &w.final_norm,
        w.final_norm_b.as_deref(),
        d,
        eps,
        layer_norm,
    );
    let head = w.head.as_ref().unwrap_or(&w.embed);
    let mut dlogits = matmul(&hf, head, n, d, v);
    if let Some(out) = logits_out {
        out.clear();
        out.extend_from_slice(&dlogits);
    }
    // Cross-entropy and its gradient (softmax − one-hot) / n, row by row in parallel and in
    // place: the logits buffer becomes the gradient, with one exp per logit.
    let inv_n = T::from_f64(1.0 / n as f64);
    let row_losses: Vec<T> = dlogits
        .par_chunks_mut(v)
        .zip(targets.par_iter())
        .map(|(row, &t)| {
            let t = t as usize;
            let max = row.iter().fold(
                T::from_f64(f64::NEG_INFINITY),
                |m, &x| if x > m { x } else { m },
            );
            let target_logit = row[t];
            row.iter_mut().for_each(|x| *x -= max);
            T::exp_slice(row);
            let total = row.iter().fold(T::zero(), |s, &x| s + x);
            let scale = inv_n / total;
            row.iter_mut().for_each(|x| *x *= scale);
            row[t] -= inv_n;
            (max + total.ln() - target_logit) * inv_n
        })
        .collect();
    let loss = row_losses.iter().fold(T::zero(), |s, &x| s + x);
    let Some(g) = grads else {
        return Ok(loss);
    };

    // --- backward ---
    let mut dhf = Buf::zeros(n * d);
    let head_grad = match g.head.as_mut() {
        Some(h) => h,
        None => &mut g.embed,
    };
    matmul_back(&dlogits, &hf, head, &mut dhf, head_grad, n, d, v);
    drop(dlogits);
    let mut dx = Buf::zeros(n * d);
    norm_back(
        &dhf,
        &x,
        &w.final_norm,
        &invf,
        &mut dx,
        &mut g.final_norm,
        g.final_norm_b.as_mut(),
        d,
        layer_norm,
    );
    for (li, l) in w.layers.iter().enumerate().rev() {
        let c = &caches[li];
        let gl = &mut g.layers[li];
        // FFN: x3 = x2 + down(act), act = silu(gate) ⊙ up, or gelu(up).
        bias_back(&dx, gl.b_down.as_mut(), d);
        let mut dact = Buf::zeros(n * f);
        matmul_back(&dx, &c.act, &l.w_down, &mut dact, &mut gl.w_down, n, f, d);
        let mut dup = Buf::stale(n * f);
        let mut dh2 = Buf::zeros(n * d);
        match (&l.w_gate, gl.w_gate.as_mut()) {
            (Some(wg), Some(gwg)) => {
                let mut dgate = Buf::stale(n * f);
                dup.par_chunks_mut(f)
                    .zip(dgate.par_chunks_mut(f))
                    .zip(c.gate.par_chunks(f))
                    .zip(c.up.par_chunks(f))
                    .zip(dact.par_chunks(f))
                    .for_each(|((((du, dg), g), u), da)| {
                        // dg holds σ(g) until it is overwritten with the gradient.
                        T::sigmoid_slice(g, dg);
                        for k in 0..du.len() {
                            let sig = dg[k];
                            du[k] = da[k] * g[k] * sig;
                            dg[k] = da[k] * u[k] * sig * (T::one() + g[k] * (T::one() - sig));
                        }
                    });
                matmul_back(&dgate, &c.h2, wg, &mut dh2, gwg, n, d, f);
            }
            _ => {
                dup.par_iter_mut()
                    .enumerate()
                    .with_min_len(4096)
                    .for_each(|(k, du)| *du = dact[k] * gelu_grad(c.up[k]));
            }
        }
        bias_back(&dup, gl.b_up.as_mut(), f);
        matmul_back(&dup, &c.h2, &l.w_up, &mut dh2, &mut gl.w_up, n, d, f);
        let mut dx2 = Buf::copy_of(&dx);
        norm_back(
            &dh2,
            &c.x2,
            &l.ffn_norm,
            &c.inv2,
            &mut dx2,
            &mut gl.ffn_norm,
            gl.ffn_norm_b.as_mut(),
            d,
            layer_norm,
        );
        // Attention: x2 = x + wo · att.
        bias_back(&dx2, gl.bo.as_mut(), d);
        let mut datt = Buf::zeros(n * qw);
        matmul_back(&dx2, &c.att, &l.wo, &mut datt, &mut gl.wo, n, qw, d);
        let (mut dq, mut dk, dv) = attention_backward(&datt, &c.q, &c.k, &c.v, &c.p, &dims, scale);
        if rope_on {
            rope(&mut dq, &positions, nh, hd, &table, true);
            rope(&mut dk, &positions, nkv, hd, &table, true);
        }
        bias_back(&dq, gl.bq.as_mut(), qw);
        bias_back(&dk, gl.bk.as_mut(), kvw);
        bias_back(&dv, gl.bv.as_mut(), kvw);
        let mut dh1 = Buf::zeros(n * d);
        matmul_back(&dq, &c.h1, &l.wq, &mut dh1, &mut gl.wq, n, d, qw);
        matmul_back(&dk, &c.h1, &l.wk, &mut dh1, &mut gl.wk, n, d, kvw);
        matmul_back(&dv, &c.h1, &l.wv, &mut dh1, &mut gl.wv, n, d, kvw);
        let mut dxin = dx2;
        norm_back(
            &dh1,
            &c.x,
            &l.attn_norm,
            &c.inv1,
            &mut dxin,
            &mut gl.attn_norm,
            gl.attn_norm_b.as_mut(),
            d,
            layer_norm,
        );
        dx = dxin;
    }
    for (i, &t) in inputs.iter().enumerate() {
        let row = &mut g.embed[t as usize * d..(t as usize + 1) * d];
        row.iter_mut()
            .zip(&dx[i * d..(i + 1) * d])
            .for_each(|(a, &b)| *a += b);
        if let Some(pos) = g.pos.as_mut() {
            let p = positions[i];
            pos[p * d..(p + 1) * d]
                .iter_mut()
                .zip(&dx[i * d..(i + 1) * d])
                .for_each(|(a, &b)| *a += b);
        }
    }
    Ok(loss)
}

impl Weights<f32> {
    /// The inference model over these weights (dense matrices): what `fmlab generate` and
    /// export run once training is done.
    pub fn to_transformer(&self, spec: &ModelSpec) -> Result<crate::Transformer> {
        use crate::{Layer, Linear, Norm, Transformer};
        use fmlab_kernels::{Matrix, RopeStyle, Threads};
        check_spec(spec)?;
        if spec.norm_kind != NormKind::RmsNorm
            || spec.positions == Positions::Learned
            || spec.qkv_bias
            || spec.attn_out_bias
            || spec.mlp_bias
        {
            return Err(Error::Unsupported(
                "only Llama-shaped trained weights run on the inference decoder yet".into(),
            ));
        }
        let d = spec.d_model as usize;
        let hd = spec.head_dim as usize;
        let (qw, kvw) = (spec.n_heads as usize * hd, spec.n_kv_heads as usize * hd);
        let f = spec.ffn_dim as usize;
        let v = spec.vocab_size as usize;
        let lin = |w: &Vec<f32>, rows: usize, cols: usize| -> Result<Linear> {
            Ok(Linear {
                weight: Matrix::dense(rows, cols, w.clone())?,
                bias: None,
            })
        };
        let norm = |w: &Vec<f32>| Norm {
            weight: w.clone(),
            bias: None,
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    attn_norm: norm(&l.attn_norm),
                    q: lin(&l.wq, qw, d)?,
                    k: lin(&l.wk, kvw, d)?,
                    v: lin(&l.wv, kvw, d)?,
                    o: lin(&l.wo, d, qw)?,
                    q_norm: None,
                    k_norm: None,
                    post_attn_norm: None,
                    ffn_norm: norm(&l.ffn_norm),
                    gate: match &l.w_gate {
                        Some(g) => Some(lin(g, f, d)?),
                        None => None,
                    },
                    up: lin(&l.w_up, f, d)?,
                    down: lin(&l.w_down, d, f)?,
                    post_ffn_norm: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Transformer {
            spec: spec.clone(),
            embed: Matrix::dense(v, d, self.embed.clone())?,
            pos_embed: None,
            layers,
            final_norm: norm(&self.final_norm),
            head: match &self.head {
                Some(h) => Some(Matrix::dense(v, d, h.clone())?),
                None => None,
            },
            rope_style: RopeStyle::Interleaved,
            threads: Threads(0),
        })
    }
}

/// The logits of every position (`n × vocab`) from the training forward pass.
pub fn logits<T: Float>(spec: &ModelSpec, w: &Weights<T>, inputs: &[u32]) -> Result<Vec<T>> {
    let mut out = Vec::new();
    forward_logits(spec, w, inputs, &mut out)?;
    Ok(out)
}
