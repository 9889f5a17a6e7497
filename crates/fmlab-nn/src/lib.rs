//! The transformer: one decoder-only model configured by a `ModelSpec`, written out layer
//! by layer over fmlab-kernels, in the manner of llm.c and llama.cpp. It covers the Llama
//! family (SmolLM2, Llama, Mistral, Qwen2 with its attention biases) and Gemma 3 (QK-norm,
//! norms before and after each branch, GeGLU, scaled embeddings, sliding-window layers with
//! their own RoPE base).
//!
//! Weights are `fmlab_kernels::Matrix`: dense f32 (trainable; the pre-training issue adds
//! the backward pass over the same layers) or a ggml block format read from GGUF. There is
//! no second inference engine: generation, perplexity and training all run this code.
//!
//! This crate knows token ids and logits, not text.

mod load;
pub mod train;

pub use load::{from_gguf, gguf_matrix};

use fmlab_kernels::{
    causal_attention, f16_round, gelu_tanh, gelu_tanh_f16, layer_norm, rms_norm, rope, swiglu,
    AttentionShape, Matrix, RopeStyle, Threads,
};
use fmlab_spec::{FfnKind, ModelSpec, NormKind, Positions};

/// Errors: a model file that does not fit the spec, or a request the model cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tensor {0:?} is missing from the model file")]
    MissingTensor(String),
    #[error("tensor {tensor:?} has shape {found:?}, expected {expected:?}")]
    Shape {
        tensor: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error("tensor {tensor:?} is stored as {format}, which fmlab cannot compute with yet (supported: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K)")]
    UnsupportedFormat { tensor: String, format: String },
    #[error("architecture {0:?} cannot run yet (supported: llama, mistral, qwen2, gemma3)")]
    UnsupportedArchitecture(String),
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    BadToken { id: u32, vocab: usize },
    #[error("the context holds {context} tokens; {requested} were requested")]
    ContextFull { context: usize, requested: usize },
    #[error("training: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Kernel(#[from] fmlab_kernels::Error),
    #[error(transparent)]
    Format(#[from] fmlab_formats::Error),
    #[error(transparent)]
    Spec(#[from] fmlab_spec::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A norm's parameters.
#[derive(Debug, Clone)]
pub struct Norm {
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

/// A linear map with an optional bias.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Matrix,
    pub bias: Option<Vec<f32>>,
}

/// One transformer block.
#[derive(Debug, Clone)]
pub struct Layer {
    pub attn_norm: Norm,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub q_norm: Option<Norm>,
    pub k_norm: Option<Norm>,
    pub post_attn_norm: Option<Norm>,
    pub ffn_norm: Norm,
    /// The gate of a gated FFN (SwiGLU/GeGLU); `None` for a GELU MLP.
    pub gate: Option<Linear>,
    pub up: Linear,
    pub down: Linear,
    pub post_ffn_norm: Option<Norm>,
}

/// The model.
#[derive(Debug, Clone)]
pub struct Transformer {
    pub spec: ModelSpec,
    pub embed: Matrix,
    pub pos_embed: Option<Matrix>,
    pub layers: Vec<Layer>,
    pub final_norm: Norm,
    /// The output projection; `None` when tied to `embed`.
    pub head: Option<Matrix>,
    pub rope_style: RopeStyle,
    pub threads: Threads,
}

/// Keys and values of the tokens seen so far, per layer.
#[derive(Debug, Clone)]
pub struct KvCache {
    /// Values rounded to f16, as llama.cpp stores them by default (kept as f32 so that the
    /// attention products vectorise).
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// A cache for up to `capacity` tokens (memory grows as tokens arrive).
    pub fn new(spec: &ModelSpec, capacity: usize) -> Self {
        let layers = spec.n_layers as usize;
        Self {
            keys: vec![Vec::new(); layers],
            values: vec![Vec::new(); layers],
            len: 0,
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn clear(&mut self) {
        self.keys.iter_mut().for_each(Vec::clear);
        self.values.iter_mut().for_each(Vec::clear);
        self.len = 0;
    }

    /// Forgets every token after the first `len` (a shared prompt is kept while each
    /// sample of several is generated after it).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        for v in self.keys.iter_mut().chain(self.values.iter_mut()) {
            let width = v.len() / self.len;
            v.truncate(len * width);
        }
        self.len = len;
    }
}

/// Which logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Those after the last token: `vocab` values.
    Last,
    /// Those after every token: `tokens × vocab` values.
    All,
}

impl Transformer {
    /// Runs `tokens` through the model after the `cache.len()` tokens already seen, appends
    /// them to the cache, and returns logits.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, which: Logits) -> Result<Vec<f32>> {
        self.forward_traced(tokens, cache, which, &mut |_, _| {})
    }

    /// `forward`, calling `trace(name, values)` with every intermediate tensor, named as
    /// llama.cpp's `eval-callback` names them (`attn_norm-0`, `Qcur-0`, `ffn_out-3`,
    /// `result_output`), so that the two implementations can be compared step by step.
    pub fn forward_traced(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        which: Logits,
        trace: &mut dyn FnMut(&str, &[f32]),
    ) -> Result<Vec<f32>> {
        let s = &self.spec;
        let n = tokens.len();
        let d = s.d_model as usize;
        let vocab = s.vocab_size as usize;
        if cache.len + n > cache.capacity {
            return Err(Error::ContextFull {
                context: cache.capacity,
                requested: cache.len + n,
            });
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.embed.rows) {
            return Err(Error::BadToken {
                id: bad,
                vocab: self.embed.rows,
            });
        }
        let p0 = cache.len;
        let positions: Vec<usize> = (p0..p0 + n).collect();
        let mut x = vec![0f32; n * d];
        for (row, &t) in x.chunks_exact_mut(d).zip(tokens) {
            self.embed.row(t as usize, row)?;
        }
        if s.scale_embeddings {
            let scale = (d as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= scale);
        }
        if let Some(pe) = &self.pos_embed {
            let mut row = vec![0f32; d];
            for (xr, &p) in x.chunks_exact_mut(d).zip(&positions) {
                pe.row(p, &mut row)?;
                xr.iter_mut().zip(&row).for_each(|(a, b)| *a += b);
            }
        }
        trace("embd", &x);
        for (l, layer) in self.layers.iter().enumerate() {
            self.block(l, layer, &mut x, &positions, cache, trace)?;
        }
        cache.len += n;
        let rows: &[f32] = match which {
            Logits::Last => &x[(n - 1) * d..],
            Logits::All => &x,
        };
        let mut h = rows.to_vec();
        self.norm(&mut h, &self.final_norm, d);
        trace("result_norm", &h);
        let head = self.head.as_ref().unwrap_or(&self.embed);
        let mut logits = vec![0f32; h.len() / d * vocab];
        head.matmul(&h, &mut logits, self.threads)?;
        trace("result_output", &logits);
        Ok(logits)
    }

    fn norm(&self, x: &mut [f32], norm: &Norm, width: usize) {
        let eps = self.spec.norm_eps as f32;
        match (self.spec.norm_kind, &norm.bias) {
            (NormKind::RmsNorm, _) => rms_norm(x, &norm.weight, width, eps),
            (NormKind::LayerNorm, Some(b)) => layer_norm(x, &norm.weight, b, width, eps),
            (NormKind::LayerNorm, None) => {
                let zeros = vec![0f32; width];
                layer_norm(x, &norm.weight, &zeros, width, eps)
            }
        }
    }

    fn linear(&self, lin: &Linear, x: &[f32], out_width: usize) -> Result<Vec<f32>> {
        let n = x.len() / lin.weight.cols;
        let mut y = vec![0f32; n * out_width];
        lin.weight.matmul(x, &mut y, self.threads)?;
        if let Some(b) = &lin.bias {
            for row in y.chunks_exact_mut(out_width) {
                row.iter_mut().zip(b).for_each(|(v, bb)| *v += bb);
            }
        }
        Ok(y)
    }

    fn block(
        &self,
        l: usize,
        layer: &Layer,
        x: &mut [f32],
        positions: &[usize],
        cache: &mut KvCache,
        trace: &mut dyn FnMut(&str, &[f32]),
    ) -> Result<()> {
        let mut tap = |name: &str, values: &[f32]| trace(&format!("{name}-{l}"), values);
        let s = &self.spec;
        let d = s.d_model as usize;
        let hd = s.head_dim as usize;
        let (nh, nkv) = (s.n_heads as usize, s.n_kv_heads as usize);
        let (q_width, kv_width) = (nh * hd, nkv * hd);
        let n = positions.len();

        let mut h = x.to_vec();
        self.norm(&mut h, &layer.attn_norm, d);
        tap("attn_norm", &h);
        let mut q = self.linear(&layer.q, &h, q_width)?;
        let mut k = self.linear(&layer.k, &h, kv_width)?;
        let v = self.linear(&layer.v, &h, kv_width)?;
        if let Some(qn) = &layer.q_norm {
            self.norm(&mut q, qn, hd);
        }
        if let Some(kn) = &layer.k_norm {
            self.norm(&mut k, kn, hd);
        }
        let local = s.sliding_window.filter(|w| w.is_local(l as u64));
        if let Positions::Rope { base } = s.positions {
            let base = local.and_then(|w| w.local_rope_base).unwrap_or(base) as f32;
            rope(&mut q, positions, nh, hd, base, self.rope_style);
            rope(&mut k, positions, nkv, hd, base, self.rope_style);
        }
        tap("Qcur", &q);
        tap("Kcur", &k);
        tap("Vcur", &v);
        cache.keys[l].extend(k.iter().map(|&x| f16_round(x)));
        cache.values[l].extend(v.iter().map(|&x| f16_round(x)));
        let kv_len = positions[0] + n;
        let scale = 1.0 / (s.query_pre_attn_scalar.unwrap_or(hd as f64) as f32).sqrt();
        let mut attn = vec![0f32; n * q_width];
        causal_attention(
            &q,
            &cache.keys[l],
            &cache.values[l],
            &mut attn,
            positions[0],
            kv_len,
            AttentionShape {
                n_heads: nh,
                n_kv_heads: nkv,
                head_dim: hd,
                scale,
                scale_queries: s.query_pre_attn_scalar.is_some(),
                window: local.map(|w| w.window as usize),
            },
        );
        tap("kqv_out", &attn);
        let mut o = self.linear(&layer.o, &attn, d)?;
        tap("attn_out", &o);
        if let Some(pn) = &layer.post_attn_norm {
            self.norm(&mut o, pn, d);
        }
        x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        tap("ffn_inp", x);

        let mut h = x.to_vec();
        self.norm(&mut h, &layer.ffn_norm, d);
        tap("ffn_norm", &h);
        let f = s.ffn_dim as usize;
        let mut up = self.linear(&layer.up, &h, f)?;
        match (&layer.gate, s.ffn_kind) {
            (Some(gate), kind) => {
                let g = self.linear(gate, &h, f)?;
                tap("ffn_gate", &g);
                tap("ffn_up", &up);
                if kind == FfnKind::GeGlu {
                    up.iter_mut()
                        .zip(&g)
                        // ggml writes +0 below −10 whatever the sign of the other factor.
                        .for_each(|(u, gv)| {
                            *u = if *gv <= -10.0 {
                                0.0
                            } else {
                                gelu_tanh_f16(*gv) * *u
                            }
                        });
                } else {
                    swiglu(&mut up, &g);
                }
            }
            (None, _) => up.iter_mut().for_each(|u| *u = gelu_tanh(*u)),
        }
        tap("ffn_act", &up);
        let mut down = self.linear(&layer.down, &up, d)?;
        tap("ffn_out", &down);
        if let Some(pn) = &layer.post_ffn_norm {
            self.norm(&mut down, pn, d);
        }
        x.iter_mut().zip(&down).for_each(|(a, b)| *a += b);
        tap("l_out", x);
        Ok(())
    }
}

/// A model with its context: what samplers and evaluators drive.
pub struct Session<'m> {
    pub model: &'m Transformer,
    pub cache: KvCache,
}

impl<'m> Session<'m> {
    /// A session whose context holds `context` tokens (at most the model's).
    pub fn new(model: &'m Transformer, context: usize) -> Self {
        let context = context.min(model.spec.context_length as usize).max(1);
        Self {
            model,
            cache: KvCache::new(&model.spec, context),
        }
    }
}

impl fmlab_sample::LanguageModel for Session<'_> {
    fn vocab_size(&self) -> usize {
        self.model.spec.vocab_size as usize
    }

    fn context_length(&self) -> usize {
        self.cache.capacity()
    }

    fn position(&self) -> usize {
        self.cache.len()
    }

    fn reset(&mut self) {
        self.cache.clear();
    }

    fn truncate(&mut self, len: usize) {
        self.cache.truncate(len);
    }

    fn forward(&mut self, tokens: &[u32]) -> fmlab_sample::Result<Vec<f32>> {
        self.model
            .forward(tokens, &mut self.cache, Logits::Last)
            .map_err(|e| fmlab_sample::Error::Model(Box::new(e)))
    }
}
