//! The trainable path: forward with saved activations and an explicit backward pass, over
//! dense weights, for Llama-shaped decoders (RMSNorm, RoPE, causal multi-head attention
//! with grouped key-value heads, SwiGLU, tied or untied head, cross-entropy) — the shape
//! `fmlab_spec::from_depth` gives. Generic over the float type so that the same code runs in
//! f32 for training and in f64 for gradient checks against finite differences.
//!
//! Written out layer by layer (as llm.c does) rather than through an autograd framework:
//! every derivative is here to read. Matrix products (forward and both backward ones) go
//! through `gemm`; attention, norms and activations are plain loops for now.

use std::collections::HashMap;

use fmlab_kernels::{gemm_into, RopeStyle, Strided, Threads};
use fmlab_spec::{FfnKind, ModelSpec, NormKind, Positions};
use rayon::prelude::*;

use crate::plan::{self, LinearId, NormId, Op, Plan, Slot, TensorDesc};
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

/// One tensor of [`Weights`], by name.
#[derive(Debug)]
pub struct Named<'a, T> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: &'a mut [T],
    pub decay: bool,
}

/// All weights of a trainable decoder in one contiguous arena (as llm.c keeps them), the
/// tensors of [`plan::tensors`] laid out one after another. Gradients are a second
/// `Weights` of the same layout, so that zeroing, clipping and the optimizer each run as
/// one pass over one buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights<T> {
    data: Vec<T>,
    tensors: Vec<TensorDesc>,
    offsets: Vec<usize>,
    index: HashMap<String, usize>,
}

impl<T: Float> Weights<T> {
    /// Zeros shaped for `spec` (an error if the decoder's plan cannot be built for it).
    pub fn zeros(spec: &ModelSpec) -> Result<Self> {
        check_spec(spec)?;
        Self::from_descs(plan::tensors(spec))
    }

    /// Zeros for the given tensors, laid out in their order.
    pub fn from_descs(tensors: Vec<TensorDesc>) -> Result<Self> {
        let mut offsets = Vec::with_capacity(tensors.len() + 1);
        let mut total = 0usize;
        for t in &tensors {
            offsets.push(total);
            total = total.checked_add(t.len()).ok_or_else(|| {
                Error::Unsupported("the model's parameter count overflows".into())
            })?;
        }
        offsets.push(total);
        let index = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            data: vec![T::zero(); total],
            tensors,
            offsets,
            index,
        })
    }

    /// The tensors' names, shapes and decay flags, in arena order.
    pub fn descs(&self) -> &[TensorDesc] {
        &self.tensors
    }

    /// The whole arena.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Tensor `i` (in [`Weights::descs`] order).
    pub fn tensor(&self, i: usize) -> &[T] {
        &self.data[self.offsets[i]..self.offsets[i + 1]]
    }

    pub fn tensor_mut(&mut self, i: usize) -> &mut [T] {
        &mut self.data[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The index of the tensor called `name` (a GGUF name: `blk.0.attn_q.weight`).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&[T]> {
        self.find(name).map(|i| self.tensor(i))
    }

    /// Two different tensors, mutably (a weight and its bias).
    fn pair_mut(&mut self, a: usize, b: Option<usize>) -> (&mut [T], Option<&mut [T]>) {
        let (ra, rb) = (
            self.offsets[a]..self.offsets[a + 1],
            b.map(|b| self.offsets[b]..self.offsets[b + 1]),
        );
        match rb {
            None => (&mut self.data[ra], None),
            Some(rb) if rb.start >= ra.end => {
                let (lo, hi) = self.data.split_at_mut(rb.start);
                (&mut lo[ra], Some(&mut hi[..rb.len()]))
            }
            Some(rb) => {
                let (lo, hi) = self.data.split_at_mut(ra.start);
                (&mut hi[..ra.len()], Some(&mut lo[rb]))
            }
        }
    }

    /// Every tensor, in a fixed order, with whether weight decay applies to it (matrices
    /// yes; norms, biases and embeddings no).
    pub fn tensors_mut(&mut self) -> Vec<(&mut [T], bool)> {
        // Per optimizer step: no names built.
        let mut rest = self.data.as_mut_slice();
        let mut out = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(t.len());
            rest = tail;
            out.push((head, t.decay));
        }
        out
    }

    /// Every tensor with its GGUF name (`token_embd.weight`, `blk.0.attn_q.weight`, …),
    /// its shape (`[out, in]` for matrices, row-major) and its decay flag, in arena order:
    /// what checkpoints and exports write.
    pub fn named_mut(&mut self) -> Vec<Named<'_, T>> {
        let descs = self.tensors.clone();
        self.tensors_mut()
            .into_iter()
            .zip(descs)
            .map(|((data, decay), t)| Named {
                name: t.name,
                shape: t.shape,
                data,
                decay,
            })
            .collect()
    }

    /// The weight (and bias) indices of a norm of the plan.
    fn norm_ids(&self, id: NormId) -> Result<(usize, Option<usize>)> {
        let name = id.name();
        Ok((
            self.need(&format!("{name}.weight"))?,
            self.find(&format!("{name}.bias")),
        ))
    }

    /// The weight (and bias) indices of a linear map of the plan.
    fn linear_ids(&self, id: LinearId) -> Result<(usize, Option<usize>)> {
        let name = match id {
            LinearId::Head if self.find("output.weight").is_none() => id.name(true),
            _ => id.name(false),
        };
        Ok((
            self.need(&format!("{name}.weight"))?,
            self.find(&format!("{name}.bias")),
        ))
    }

    fn need(&self, name: &str) -> Result<usize> {
        self.find(name)
            .ok_or_else(|| Error::MissingTensor(name.to_string()))
    }

    /// These weights with a scalar head added (`score.weight`, normal with std
    /// 1/√(d_model + 1), as TRL initialises a reward model's): a reward model that starts
    /// from this model. An existing score head is kept.
    pub fn with_score_head(&self, spec: &ModelSpec, seed: u64) -> Result<Self> {
        if self.find("score.weight").is_some() {
            return Ok(self.clone());
        }
        let mut out = Self::from_descs(plan::tensors_with(spec, plan::Head::Score))?;
        for (i, t) in self.tensors.iter().enumerate() {
            let j = out.need(&t.name)?;
            out.tensor_mut(j).copy_from_slice(self.tensor(i));
        }
        let d = spec.d_model as f64;
        let mut rng = Normal::new(seed);
        let j = out.need("score.weight")?;
        out.tensor_mut(j)
            .iter_mut()
            .for_each(|x| *x = T::from_f64(rng.next() / (d + 1.0).sqrt()));
        Ok(out)
    }

    /// GPT-2/nanoGPT initialisation: normal(0, 0.02) for matrices and embeddings (learned
    /// positions 0.01), the residual projections (attention output, FFN down) scaled by
    /// 1/√(2L), norm weights at 1, biases at 0.
    pub fn init(spec: &ModelSpec, seed: u64) -> Result<Self> {
        let mut w = Self::zeros(spec)?;
        let mut rng = Normal::new(seed);
        let resid = 0.02 / (2.0 * spec.n_layers as f64).sqrt();
        for t in w.named_mut() {
            let n = &t.name;
            let std = if n == "position_embd.weight" {
                0.01
            } else if n.ends_with("attn_output.weight") || n.ends_with("ffn_down.weight") {
                resid
            } else if t.shape.len() == 2 {
                0.02
            } else {
                if n.ends_with("norm.weight") {
                    t.data.iter_mut().for_each(|x| *x = T::one());
                }
                continue;
            };
            t.data
                .iter_mut()
                .for_each(|x| *x = T::from_f64(rng.next() * std));
        }
        Ok(w)
    }
}

/// The linear maps LoRA can adapt, by the GGUF suffix of their tensors (Hugging Face's
/// names are accepted too).
pub const LORA_TARGETS: [(&str, &str); 7] = [
    ("attn_q", "q_proj"),
    ("attn_k", "k_proj"),
    ("attn_v", "v_proj"),
    ("attn_output", "o_proj"),
    ("ffn_gate", "gate_proj"),
    ("ffn_up", "up_proj"),
    ("ffn_down", "down_proj"),
];

/// LoRA adapters (Hu et al. 2021): for each adapted linear map W (`out × in`), matrices
/// A (`rank × in`) and B (`out × rank`) such that the layer computes x·(W + s·B·A)ᵀ with
/// s = α / rank. B starts at zero, so an adapted model starts equal to its base. Tensors are
/// named after the map's: `blk.3.attn_q.lora_a`, `blk.3.attn_q.lora_b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Adapters<T> {
    pub weights: Weights<T>,
    pub rank: usize,
    pub alpha: f64,
    /// The adapted maps (GGUF suffixes, `attn_q` …), in [`LORA_TARGETS`] order.
    pub targets: Vec<String>,
}

impl<T: Float> Adapters<T> {
    /// Zero adapters of `rank` on `targets` (GGUF or Hugging Face module names) of every
    /// layer of `spec`.
    pub fn zeros(spec: &ModelSpec, rank: usize, alpha: f64, targets: &[String]) -> Result<Self> {
        check_spec(spec)?;
        if rank == 0 || !(alpha.is_finite() && alpha > 0.0) {
            return Err(Error::Unsupported(format!(
                "LoRA needs a rank ≥ 1 and α > 0 (got rank {rank}, α {alpha})"
            )));
        }
        let mut chosen = Vec::new();
        for t in targets {
            let Some((gguf, _)) = LORA_TARGETS.iter().find(|(g, h)| t == g || t == h) else {
                return Err(Error::Unsupported(format!(
                    "unknown LoRA target {t:?} (known: {})",
                    LORA_TARGETS
                        .iter()
                        .map(|(g, h)| format!("{g}/{h}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            if *gguf == "ffn_gate" && spec.ffn_kind == FfnKind::GeluMlp {
                return Err(Error::Unsupported(
                    "ffn_gate: this model's FFN has no gate".into(),
                ));
            }
            chosen.push(gguf.to_string());
        }
        if chosen.is_empty() {
            return Err(Error::Unsupported("LoRA needs at least one target".into()));
        }
        let targets: Vec<String> = LORA_TARGETS
            .iter()
            .map(|(g, _)| g.to_string())
            .filter(|g| chosen.contains(g))
            .collect();
        let mut descs = Vec::new();
        for t in plan::tensors(spec) {
            let Some(stem) = t.name.strip_suffix(".weight") else {
                continue;
            };
            let adapted = t.shape.len() == 2
                && stem.starts_with("blk.")
                && targets.iter().any(|g| stem.ends_with(&format!(".{g}")));
            if adapted {
                let (out, inp) = (t.shape[0], t.shape[1]);
                descs.push(TensorDesc {
                    name: format!("{stem}.lora_a"),
                    shape: vec![rank, inp],
                    decay: false,
                });
                descs.push(TensorDesc {
                    name: format!("{stem}.lora_b"),
                    shape: vec![out, rank],
                    decay: false,
                });
            }
        }
        Ok(Self {
            weights: Weights::from_descs(descs)?,
            rank,
            alpha,
            targets,
        })
    }

    /// Adapters initialised as PEFT does: A uniform in ±1/√in (Kaiming's bound for
    /// a = √5), B zero.
    pub fn init(
        spec: &ModelSpec,
        rank: usize,
        alpha: f64,
        targets: &[String],
        seed: u64,
    ) -> Result<Self> {
        let mut a = Self::zeros(spec, rank, alpha, targets)?;
        let mut rng = fmlab_sample::Rng::new(seed);
        for t in a.weights.named_mut() {
            if t.name.ends_with(".lora_a") {
                let bound = 1.0 / (t.shape[1] as f64).sqrt();
                t.data
                    .iter_mut()
                    .for_each(|x| *x = T::from_f64((2.0 * rng.next_f64() - 1.0) * bound));
            }
        }
        Ok(a)
    }

    /// s = α / rank.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// The A and B indices of the adapter on `id`, if it has one.
    fn ids(&self, id: LinearId) -> Option<(usize, usize)> {
        if id == LinearId::Head {
            return None;
        }
        let stem = id.name(false);
        Some((
            self.weights.find(&format!("{stem}.lora_a"))?,
            self.weights.find(&format!("{stem}.lora_b"))?,
        ))
    }

    /// Whether these adapters fit `spec`'s maps.
    fn check(&self, spec: &ModelSpec) -> Result<()> {
        let fresh = Self::zeros(spec, self.rank, self.alpha, &self.targets)?;
        if fresh.weights.descs() == self.weights.descs() {
            Ok(())
        } else {
            Err(Error::Unsupported(
                "the LoRA adapters were made for a different model".into(),
            ))
        }
    }

    /// W ← W + s·B·A for every adapted map: the merged model computes what the adapted one
    /// does.
    pub fn merge_into(&self, spec: &ModelSpec, w: &mut Weights<T>) -> Result<()> {
        self.check(spec)?;
        let s = T::from_f64(self.scale());
        let r = self.rank;
        for t in self
            .weights
            .descs()
            .iter()
            .filter(|t| t.name.ends_with(".lora_a"))
        {
            let stem = t.name.trim_end_matches(".lora_a");
            let a = self.weights.get(&t.name).unwrap_or(&[]);
            let b = self.weights.get(&format!("{stem}.lora_b")).unwrap_or(&[]);
            let wi = w.need(&format!("{stem}.weight"))?;
            let inp = t.shape[1];
            let out = b.len() / r;
            // B·A through the same product as training: (`out × r`)·(`r × in`) is
            // matmul(B, Aᵀ) with Aᵀ as the `in × r` weight.
            let mut at = vec![T::zero(); inp * r];
            for k in 0..r {
                for j in 0..inp {
                    at[j * r + k] = a[k * inp + j];
                }
            }
            let ba = matmul(b, &at, out, r, inp);
            w.tensor_mut(wi)
                .iter_mut()
                .zip(ba.iter())
                .for_each(|(x, &d)| *x += s * d);
        }
        Ok(())
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

/// Whether the decoder's plan can be built for `spec` (every spec the inference decoder
/// runs also trains).
pub fn check_spec(spec: &ModelSpec) -> Result<()> {
    Plan::new(spec).map(|_| ())
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

/// Backward of [`matmul`] for its input: `dx (+)= dy · w` (added to `dx` when `dx_add`,
/// written over it otherwise).
fn matmul_back_x<T: Float>(
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
fn matmul_back_w<T: Float>(dy: &[T], x: &[T], dw: &mut [T], n: usize, i: usize, o: usize) {
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
/// dw += dy ⊙ x̂; db += dy. `dx` is added to when `dx_add`, written over otherwise.
#[allow(clippy::too_many_arguments)]
fn norm_back<T: Float>(
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

fn add_bias<T: Float>(y: &mut [T], b: &[T], width: usize) {
    y.par_chunks_mut(width)
        .with_min_len(64)
        .for_each(|row| row.iter_mut().zip(b).for_each(|(v, &bb)| *v += bb));
}

fn bias_back<T: Float>(dy: &[T], db: &mut [T], width: usize) {
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

/// Rotary embeddings on `n_heads` heads of each row at `positions`, on the pairs the
/// plan's style names: adjacent (2i, 2i + 1) as GGUF llama models lay them out (fmlab's own
/// models: trained weights export to GGUF unpermuted), or halves (i, i + hd/2) for Qwen2
/// and Gemma; `inverse` rotates back (the backward pass).
#[allow(clippy::too_many_arguments)]
fn rope<T: Float>(
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
    /// Per token, the row position where its segment (packed sequence) starts: keys before
    /// it are hidden. Empty when every row is one sequence.
    starts: Vec<usize>,
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
fn attention_forward<T: Float>(
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

/// What the forward pass keeps of a step for the backward pass, besides values.
enum Saved<T: Float> {
    Nothing,
    /// A norm's (1/σ, mean) per row.
    Stats(Vec<(T, T)>),
    /// Attention probabilities per (sequence, head, query): `seq × seq` each.
    Probs(Buf<T>),
    /// A LoRA adapter's s·x·Aᵀ (`n × rank`).
    Lora(Buf<T>),
}

/// Rows of tokens for one pass: `rows` rows of equal length, `inputs` and `targets` both
/// `rows × seq`.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub inputs: &'a [u32],
    pub targets: &'a [u32],
    pub rows: usize,
    /// For packed rows, per token the id of the sequence it belongs to (equal ids are
    /// contiguous within a row): attention never crosses from one sequence to another and
    /// positions restart at each. `None`: every row is one sequence.
    pub segments: Option<&'a [u32]>,
}

impl<'a> Rows<'a> {
    /// `rows` unpacked rows.
    pub fn new(inputs: &'a [u32], targets: &'a [u32], rows: usize) -> Self {
        Self {
            inputs,
            targets,
            rows,
            segments: None,
        }
    }
}

/// The derivative of a loss with respect to each target's log-probability, given them all:
/// `(loss, dloss/dlogp)`, one entry per token.
pub type LogProbLoss<'a, T> = &'a mut dyn FnMut(&[T]) -> Result<(T, Vec<T>)>;

/// What a pass computes the loss of.
pub enum Objective<'a, T> {
    /// The mean cross-entropy of every target (pre-training).
    MeanNll,
    /// Any function of the targets' log-probabilities (SFT's masked mean, DPO's
    /// preference losses): the executor hands the function every token's log-probability
    /// and back-propagates the derivatives it returns. A token whose derivative is zero
    /// contributes nothing to any gradient.
    LogProbs(LogProbLoss<'a, T>),
    /// A reward model's objective: the pass ends in the scalar head (`score.weight`), and
    /// the function gets one score per position and returns the loss and its derivative
    /// with respect to each (Bradley–Terry on the scores at the answers' ends).
    Scores(LogProbLoss<'a, T>),
}

/// Which parameters receive gradients.
pub enum Grads<'a, T> {
    /// None: a forward pass only.
    None,
    /// Every weight of the model.
    Full(&'a mut Weights<T>),
    /// Only the LoRA adapters (the model's weights stay frozen): gradients of the adapters
    /// the pass ran with, in an arena of their layout.
    Adapters(&'a mut Weights<T>),
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
    let grads = match grads {
        Some(g) => Grads::Full(g),
        None => Grads::None,
    };
    run(
        spec,
        w,
        None,
        Rows::new(inputs, targets, batch),
        Objective::MeanNll,
        grads,
        None,
    )
}

/// The general pass: `rows` through the model (with `adapters` applied when given), the
/// loss of `objective`, and gradients into `grads`.
pub fn objective<T: Float>(
    spec: &ModelSpec,
    w: &Weights<T>,
    adapters: Option<&Adapters<T>>,
    rows: Rows,
    objective: Objective<T>,
    grads: Grads<T>,
) -> Result<T> {
    run(spec, w, adapters, rows, objective, grads, None)
}

/// Every target's log-probability (no gradients): what DPO's frozen reference and
/// sequence scoring need.
pub fn token_logprobs<T: Float>(
    spec: &ModelSpec,
    w: &Weights<T>,
    adapters: Option<&Adapters<T>>,
    rows: Rows,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    let mut keep = |lp: &[T]| -> Result<(T, Vec<T>)> {
        out = lp.to_vec();
        Ok((T::zero(), Vec::new()))
    };
    run(
        spec,
        w,
        adapters,
        rows,
        Objective::LogProbs(&mut keep),
        Grads::None,
        None,
    )?;
    Ok(out)
}

/// One sequence's logits (no loss, no gradients).
fn forward_logits<T: Float>(
    spec: &ModelSpec,
    w: &Weights<T>,
    adapters: Option<&Adapters<T>>,
    inputs: &[u32],
    out: &mut Vec<T>,
) -> Result<()> {
    run(
        spec,
        w,
        adapters,
        Rows::new(inputs, inputs, 1),
        Objective::MeanNll,
        Grads::None,
        Some(out),
    )
    .map(|_| ())
}

/// A forward value, which the plan's order guarantees was computed and is still held.
fn value<T: Float>(vals: &[Option<Buf<T>>], x: Slot) -> &[T] {
    vals[x].as_deref().unwrap_or(&[])
}

/// Adds `g` to the gradient of value `x` (taking `g` as it when there is none yet).
fn give<T: Float>(grads: &mut [Option<Buf<T>>], x: Slot, g: Buf<T>) {
    match &mut grads[x] {
        Some(acc) => acc
            .par_iter_mut()
            .zip(g.par_iter())
            .with_min_len(4096)
            .for_each(|(a, &b)| *a += b),
        none => *none = Some(g),
    }
}

/// The gradient buffer of value `x` for a step to add into, and whether it already holds
/// something (`false`: a fresh buffer the step writes over).
fn grad_for<T: Float>(grads: &mut [Option<Buf<T>>], x: Slot, len: usize) -> (Buf<T>, bool) {
    match grads[x].take() {
        Some(g) => (g, true),
        None => (Buf::stale(len), false),
    }
}

/// The training executor of the decoder's [`Plan`]: the forward pass over whole sequences,
/// keeping what each backward step reads; the loss; then, with `grads`, the steps in
/// reverse, each with its derivative.
#[allow(clippy::too_many_arguments)]
fn run<T: Float>(
    spec: &ModelSpec,
    w: &Weights<T>,
    adapters: Option<&Adapters<T>>,
    rows: Rows,
    objective: Objective<T>,
    grads: Grads<T>,
    logits_out: Option<&mut Vec<T>>,
) -> Result<T> {
    let head = match objective {
        Objective::Scores(_) => plan::Head::Score,
        _ => plan::Head::Lm,
    };
    let plan = Plan::with_head(spec, head)?;
    let Rows {
        inputs,
        targets,
        rows: batch,
        segments,
    } = rows;
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
    if spec.positions == Positions::Learned && seq > spec.context_length as usize {
        return Err(Error::Unsupported(format!(
            "sequences of {seq} tokens exceed the {} learned positions",
            spec.context_length
        )));
    }
    if w.descs() != plan::tensors_with(spec, head).as_slice() {
        return Err(Error::Unsupported(match head {
            plan::Head::Score if w.find("score.weight").is_none() => {
                "a reward objective needs weights with a score head (Weights::with_score_head)"
                    .into()
            }
            _ => "the weights were made for a different spec".to_string(),
        }));
    }
    // Per token: where its sequence starts in its row.
    let starts: Vec<usize> = match segments {
        None => Vec::new(),
        Some(ids) => {
            if ids.len() != inputs.len() {
                return Err(Error::Unsupported(format!(
                    "{} segment ids for {} tokens",
                    ids.len(),
                    inputs.len()
                )));
            }
            let mut starts = Vec::with_capacity(ids.len());
            for (r, row) in ids.chunks(seq).enumerate() {
                let mut start = 0;
                for (i, &id) in row.iter().enumerate() {
                    if i > 0 && id != row[i - 1] {
                        if row[..i].contains(&id) {
                            return Err(Error::Unsupported(format!(
                                "row {r}: sequence {id} is not contiguous"
                            )));
                        }
                        start = i;
                    }
                    starts.push(start);
                }
            }
            starts
        }
    };
    let (mut full, mut adapter_grads) = (None, None);
    match grads {
        Grads::None => {}
        Grads::Full(g) => {
            if g.descs() != w.descs() {
                return Err(Error::Unsupported(
                    "the gradients were made for a different spec".into(),
                ));
            }
            full = Some(g)
        }
        Grads::Adapters(g) => {
            let Some(a) = adapters else {
                return Err(Error::Unsupported(
                    "adapter gradients were asked for without adapters".into(),
                ));
            };
            if g.descs() != a.weights.descs() {
                return Err(Error::Unsupported(
                    "the adapter gradients were made for other adapters".into(),
                ));
            }
            adapter_grads = Some(g);
        }
    }
    if let Some(a) = adapters {
        a.check(spec)?;
    }
    let d = spec.d_model as usize;
    let hd = spec.head_dim as usize;
    let (nh, nkv) = (spec.n_heads as usize, spec.n_kv_heads as usize);
    let n = batch * seq;
    let eps = spec.norm_eps;
    let layer_norm = spec.norm_kind == NormKind::LayerNorm;
    let positions: Vec<usize> = match starts.is_empty() {
        true => (0..n).map(|i| i % seq).collect(),
        false => (0..n).map(|i| i % seq - starts[i]).collect(),
    };
    let dims = AttnDims {
        batch,
        seq,
        nh,
        hd,
        qw: nh * hd,
        kvw: nkv * hd,
        group: nh / nkv,
        starts,
    };
    let embed_scale = T::from_f64(if spec.scale_embeddings {
        (d as f64).sqrt()
    } else {
        1.0
    });
    let training = full.is_some() || adapter_grads.is_some();
    let steps = &plan.steps;
    // The values some backward step reads stay until the backward pass; the others go as
    // soon as the forward pass is done with them.
    let mut keep = vec![false; steps.len()];
    if training {
        for s in steps.iter().filter(|s| s.op.backward_reads_inputs()) {
            s.op.inputs().into_iter().for_each(|x| keep[x] = true);
        }
    }
    let mut first_use = vec![usize::MAX; steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for x in s.op.inputs() {
            first_use[x] = first_use[x].min(i);
        }
    }
    let mut tables: Vec<(f64, RopeTable<T>)> = Vec::new();
    for s in steps {
        if let Op::Rope { base, .. } = s.op {
            if !tables.iter().any(|(b, _)| *b == base) {
                tables.push((base, RopeTable::new(seq, hd, base)));
            }
        }
    }
    let table = |base: f64| -> &RopeTable<T> {
        let i = tables.iter().position(|(b, _)| *b == base).unwrap_or(0);
        &tables[i].1
    };
    let mut vals: Vec<Option<Buf<T>>> = (0..steps.len()).map(|_| None).collect();
    let mut saved: Vec<Saved<T>> = (0..steps.len()).map(|_| Saved::Nothing).collect();

    // --- forward ---
    for (i, step) in steps.iter().enumerate() {
        // A value read for the last time by this step, and by no backward step, is taken
        // rather than copied.
        let last = |x: Slot| plan.last_use[x] == i && !keep[x];
        let out = match step.op {
            Op::Embed => {
                let mut x = Buf::stale(n * d);
                let pos = w.get("position_embd.weight");
                let embed = w.tensor(w.need("token_embd.weight")?);
                x.par_chunks_mut(d)
                    .zip(inputs.par_iter().zip(positions.par_iter()))
                    .with_min_len(64)
                    .for_each(|(row, (&t, &p))| {
                        let e = &embed[t as usize * d..(t as usize + 1) * d];
                        row.iter_mut()
                            .zip(e)
                            .for_each(|(a, &b)| *a = b * embed_scale);
                        if let Some(pos) = pos {
                            row.iter_mut()
                                .zip(&pos[p * d..(p + 1) * d])
                                .for_each(|(a, &b)| *a += b);
                        }
                    });
                x
            }
            Op::Norm { x, id, width } => {
                let (wi, bi) = w.norm_ids(id)?;
                let (y, stats) = norm(
                    value(&vals, x),
                    w.tensor(wi),
                    bi.map(|b| w.tensor(b)),
                    width,
                    eps,
                    layer_norm,
                );
                saved[i] = Saved::Stats(stats);
                y
            }
            Op::Linear { x, id, in_width } => {
                let (wi, bi) = w.linear_ids(id)?;
                let xv = value(&vals, x);
                let mut y = matmul(xv, w.tensor(wi), n, in_width, step.width);
                if let Some(b) = bi {
                    add_bias(&mut y, w.tensor(b), step.width);
                }
                if let Some((a, ai, bi)) = adapters.and_then(|a| a.ids(id).map(|(x, y)| (a, x, y)))
                {
                    // y += s·(x·Aᵀ)·Bᵀ, with s·x·Aᵀ kept for the backward pass.
                    let r = a.rank;
                    let mut u = matmul(xv, a.weights.tensor(ai), n, in_width, r);
                    let s = T::from_f64(a.scale());
                    u.iter_mut().for_each(|v| *v *= s);
                    let delta = matmul(&u, a.weights.tensor(bi), n, r, step.width);
                    y.par_iter_mut()
                        .zip(delta.par_iter())
                        .with_min_len(4096)
                        .for_each(|(y, &d)| *y += d);
                    if training {
                        saved[i] = Saved::Lora(u);
                    }
                }
                y
            }
            Op::Rope { x, heads, base } => {
                let mut y = match last(x) {
                    true => vals[x].take().unwrap_or_else(|| Buf::zeros(0)),
                    false => Buf::copy_of(value(&vals, x)),
                };
                rope(
                    &mut y,
                    &positions,
                    heads,
                    hd,
                    table(base),
                    plan.rope_style,
                    false,
                );
                y
            }
            Op::Attention {
                q,
                k,
                v,
                window,
                scale,
                ..
            } => {
                let (p, att) = attention_forward(
                    value(&vals, q),
                    value(&vals, k),
                    value(&vals, v),
                    &dims,
                    T::from_f64(scale),
                    window,
                );
                if training {
                    saved[i] = Saved::Probs(p);
                }
                att
            }
            Op::Add { a, b } => {
                let mut y = Buf::stale(n * step.width);
                y.par_iter_mut()
                    .zip(value(&vals, a).par_iter().zip(value(&vals, b).par_iter()))
                    .with_min_len(4096)
                    .for_each(|(y, (&a, &b))| *y = a + b);
                y
            }
            Op::Act { gate, up, kind } => act_forward(
                gate.map(|g| value(&vals, g)),
                value(&vals, up),
                kind,
                step.width,
            ),
            Op::Outputs { x } => match last(x) {
                true => vals[x].take().unwrap_or_else(|| Buf::zeros(0)),
                false => Buf::copy_of(value(&vals, x)),
            },
        };
        vals[i] = Some(out);
        for x in step.op.inputs() {
            if last(x) {
                vals[x] = None;
            }
        }
    }
    let v = if head == plan::Head::Score { 1 } else { v };
    let mut dlogits = vals[plan.logits]
        .take()
        .unwrap_or_else(|| Buf::zeros(n * v));
    if let Some(out) = logits_out {
        out.clear();
        out.extend_from_slice(&dlogits);
    }
    let loss = if let Objective::Scores(f) = objective {
        // One score per position: the objective's derivatives are the head's gradient.
        let (loss, d) = f(&dlogits)?;
        if !training {
            return Ok(loss);
        }
        if d.len() != n {
            return Err(Error::Unsupported(format!(
                "the objective gave {} derivatives for {n} scores",
                d.len()
            )));
        }
        dlogits.copy_from_slice(&d);
        loss
    } else {
        // The targets' log-probabilities, row by row in parallel and in place: each row keeps
        // exp(z − max), so that its gradient needs one more scaling pass and no second exp.
        let rows_out: Vec<(T, T)> = dlogits
            .par_chunks_mut(v)
            .zip(targets.par_iter())
            .map(|(row, &t)| {
                let t = t as usize;
                let max =
                    row.iter().fold(
                        T::from_f64(f64::NEG_INFINITY),
                        |m, &x| if x > m { x } else { m },
                    );
                let target_logit = row[t];
                row.iter_mut().for_each(|x| *x -= max);
                T::exp_slice(row);
                let total = row.iter().fold(T::zero(), |s, &x| s + x);
                (target_logit - max - total.ln(), total)
            })
            .collect();
        let logps: Vec<T> = rows_out.iter().map(|r| r.0).collect();
        let (loss, coef) = match objective {
            Objective::MeanNll => {
                let inv_n = T::from_f64(1.0 / n as f64);
                let loss = logps.iter().fold(T::zero(), |s, &x| s - x * inv_n);
                (loss, vec![-inv_n; if training { n } else { 0 }])
            }
            Objective::LogProbs(f) => f(&logps)?,
            Objective::Scores(_) => {
                return Err(Error::Unsupported(
                    "scores reached the log-probability loss".into(),
                ))
            }
        };
        if !training {
            return Ok(loss);
        }
        if coef.len() != n {
            return Err(Error::Unsupported(format!(
                "the objective gave {} derivatives for {n} tokens",
                coef.len()
            )));
        }
        // dloss/dz = c·(one-hot − softmax), c = dloss/dlogp.
        dlogits
            .par_chunks_mut(v)
            .zip(targets.par_iter())
            .zip(rows_out.par_iter().zip(coef.par_iter()))
            .for_each(|((row, &t), (&(_, total), &c))| {
                let scale = -c / total;
                row.iter_mut().for_each(|x| *x *= scale);
                row[t as usize] += c;
            });
        loss
    };
    // Where the gradients of the model's own weights go: the caller's arena, or (adapters
    // only) a scratch arena for the norms, whose weights stay frozen.
    let mut scratch_norms: Vec<T> = Vec::new();
    let mut g = full;

    // --- backward: the same steps in reverse ---
    let mut grads: Vec<Option<Buf<T>>> = (0..steps.len()).map(|_| None).collect();
    grads[plan.logits] = Some(dlogits);
    for (i, step) in steps.iter().enumerate().rev() {
        let Some(dy) = grads[i].take() else {
            continue;
        };
        match step.op {
            Op::Embed => {
                let Some(g) = g.as_deref_mut() else {
                    continue;
                };
                let pos = g.find("position_embd.weight");
                let (ge, gp) = g.pair_mut(g.need("token_embd.weight")?, pos);
                for (row, &t) in dy.chunks_exact(d).zip(inputs) {
                    ge[t as usize * d..(t as usize + 1) * d]
                        .iter_mut()
                        .zip(row)
                        .for_each(|(a, &b)| *a += b * embed_scale);
                }
                if let Some(gp) = gp {
                    for (row, &p) in dy.chunks_exact(d).zip(&positions) {
                        gp[p * d..(p + 1) * d]
                            .iter_mut()
                            .zip(row)
                            .for_each(|(a, &b)| *a += b);
                    }
                }
            }
            Op::Norm { x, id, width } => {
                let (wi, bi) = w.norm_ids(id)?;
                let Saved::Stats(stats) = &saved[i] else {
                    return Err(Error::Unsupported("norm statistics were not kept".into()));
                };
                let (mut dx, add) = grad_for(&mut grads, x, dy.len());
                let (dw, db) = match g.as_deref_mut() {
                    Some(g) => g.pair_mut(wi, bi),
                    None => {
                        scratch_norms.clear();
                        scratch_norms.resize(2 * width, T::zero());
                        let (a, b) = scratch_norms.split_at_mut(width);
                        (a, bi.map(|_| b))
                    }
                };
                norm_back(
                    &dy,
                    value(&vals, x),
                    w.tensor(wi),
                    stats,
                    &mut dx,
                    add,
                    dw,
                    db,
                    width,
                    layer_norm,
                );
                grads[x] = Some(dx);
            }
            Op::Linear { x, id, in_width } => {
                let (wi, bi) = w.linear_ids(id)?;
                let xv = value(&vals, x);
                let out = step.width;
                if let Some(g) = g.as_deref_mut() {
                    let (dw, db) = g.pair_mut(wi, bi);
                    if let Some(db) = db {
                        bias_back(&dy, db, out);
                    }
                    matmul_back_w(&dy, xv, dw, n, in_width, out);
                }
                let (mut dx, add) = grad_for(&mut grads, x, n * in_width);
                matmul_back_x(&dy, w.tensor(wi), &mut dx, add, n, in_width, out);
                if let (Some(a), Saved::Lora(u)) = (adapters, &saved[i]) {
                    // With u = s·x·Aᵀ: dB += dyᵀ·u, du = s·dy·B, dA += duᵀ·x, dx += du·A.
                    if let Some((ai, bi)) = a.ids(id) {
                        let r = a.rank;
                        let mut du = Buf::zeros(n * r);
                        matmul_back_x(&dy, a.weights.tensor(bi), &mut du, false, n, r, out);
                        let s = T::from_f64(a.scale());
                        du.iter_mut().for_each(|v| *v *= s);
                        if let Some(ag) = adapter_grads.as_deref_mut() {
                            matmul_back_w(&dy, u, ag.tensor_mut(bi), n, r, out);
                            matmul_back_w(&du, xv, ag.tensor_mut(ai), n, in_width, r);
                        }
                        matmul_back_x(&du, a.weights.tensor(ai), &mut dx, true, n, in_width, r);
                    }
                }
                grads[x] = Some(dx);
            }
            Op::Rope { x, heads, base } => {
                let mut dy = dy;
                rope(
                    &mut dy,
                    &positions,
                    heads,
                    hd,
                    table(base),
                    plan.rope_style,
                    true,
                );
                give(&mut grads, x, dy);
            }
            Op::Attention { q, k, v, scale, .. } => {
                let Saved::Probs(p) = &saved[i] else {
                    return Err(Error::Unsupported(
                        "attention probabilities were not kept".into(),
                    ));
                };
                let (dq, dk, dv) = attention_backward(
                    &dy,
                    value(&vals, q),
                    value(&vals, k),
                    value(&vals, v),
                    p,
                    &dims,
                    T::from_f64(scale),
                );
                saved[i] = Saved::Nothing;
                give(&mut grads, q, dq);
                give(&mut grads, k, dk);
                give(&mut grads, v, dv);
            }
            Op::Add { a, b } => {
                give(&mut grads, b, Buf::copy_of(&dy));
                give(&mut grads, a, dy);
            }
            Op::Act { gate, up, kind } => {
                let (dgate, dup) = act_backward(
                    &dy,
                    gate.map(|g| value(&vals, g)),
                    value(&vals, up),
                    kind,
                    step.width,
                );
                if let (Some(gs), Some(dg)) = (gate, dgate) {
                    give(&mut grads, gs, dg);
                }
                give(&mut grads, up, dup);
            }
            Op::Outputs { x } => give(&mut grads, x, dy),
        }
        // A value whose first reader this is has had every backward read: back to the pool.
        for x in step.op.inputs() {
            if first_use[x] == i {
                vals[x] = None;
            }
        }
    }
    Ok(loss)
}

/// The FFN activation, row by row: SiLU(g) ⊙ u (SwiGLU), GELU(g) ⊙ u (GeGLU), or GELU(u).
fn act_forward<T: Float>(gate: Option<&[T]>, up: &[T], kind: FfnKind, f: usize) -> Buf<T> {
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
fn act_backward<T: Float>(
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

impl Weights<f32> {
    /// Dense trainable weights of a loaded model (a GGUF file's, dequantised): the start
    /// of finetuning.
    pub fn from_transformer(model: &crate::Transformer) -> Result<Self> {
        let mut w = Self::zeros(&model.spec)?;
        let mut found = 0;
        for (name, data) in model.dense_tensors()? {
            let Some(i) = w.find(&name) else {
                return Err(Error::Unsupported(format!(
                    "the model has a tensor {name} its spec does not describe"
                )));
            };
            let t = w.tensor_mut(i);
            if t.len() != data.len() {
                return Err(Error::Shape {
                    tensor: name,
                    expected: vec![t.len() as u64],
                    found: vec![data.len() as u64],
                });
            }
            t.copy_from_slice(&data);
            found += 1;
        }
        if found != w.descs().len() {
            return Err(Error::Unsupported(format!(
                "the model provides {found} of the {} tensors its spec describes",
                w.descs().len()
            )));
        }
        Ok(w)
    }

    /// The inference model over these weights (dense matrices), built by the same code that
    /// loads GGUF files: what `fmlab generate` and export run once training is done.
    pub fn to_transformer(&self, spec: &ModelSpec) -> Result<crate::Transformer> {
        crate::load::build(spec.clone(), &Dense { weights: self })
    }
}

/// Trained weights as a tensor source for the inference model.
struct Dense<'a> {
    weights: &'a Weights<f32>,
}

impl Dense<'_> {
    fn get(&self, name: &str, len: u64) -> Result<&[f32]> {
        let t = self
            .weights
            .get(name)
            .ok_or_else(|| Error::MissingTensor(name.into()))?;
        if t.len() as u64 != len {
            return Err(Error::Shape {
                tensor: name.into(),
                expected: vec![len],
                found: vec![t.len() as u64],
            });
        }
        Ok(t)
    }
}

impl crate::load::Source for Dense<'_> {
    fn matrix(&self, name: &str, rows: u64, cols: u64) -> Result<fmlab_kernels::Matrix> {
        let data = self.get(name, rows * cols)?.to_vec();
        Ok(fmlab_kernels::Matrix::dense(
            rows as usize,
            cols as usize,
            data,
        )?)
    }

    fn vector(&self, name: &str, len: u64) -> Result<Vec<f32>> {
        Ok(self.get(name, len)?.to_vec())
    }

    fn has(&self, name: &str) -> bool {
        self.weights.find(name).is_some()
    }
}

/// The logits of every position (`n × vocab`) from the training forward pass.
pub fn logits<T: Float>(spec: &ModelSpec, w: &Weights<T>, inputs: &[u32]) -> Result<Vec<T>> {
    let mut out = Vec::new();
    forward_logits(spec, w, None, inputs, &mut out)?;
    Ok(out)
}

/// [`logits`] of the model with LoRA adapters applied.
pub fn adapted_logits<T: Float>(
    spec: &ModelSpec,
    w: &Weights<T>,
    adapters: &Adapters<T>,
    inputs: &[u32],
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    forward_logits(spec, w, Some(adapters), inputs, &mut out)?;
    Ok(out)
}
