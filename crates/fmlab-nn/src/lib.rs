//! The transformer: one decoder-only model configured by a `ModelSpec`, written out layer
//! by layer over fmlab-kernels, in the manner of llm.c and llama.cpp. It covers the Llama
//! family (SmolLM2, Llama, Mistral, Qwen2 with its attention biases) and Gemma 3 (QK-norm,
//! norms before and after each branch, GeGLU, scaled embeddings, sliding-window layers with
//! their own RoPE base).
//!
//! The model's layers and their order exist once, as a [`Plan`] derived from the spec
//! (`plan.rs`). Two executors run it: inference here (weights as `fmlab_kernels::Matrix`,
//! dense f32 or a ggml block format read from GGUF, with a KV cache and ggml's arithmetic),
//! and training in [`train`] (dense f32/f64 weights in one arena, whole sequences, and the
//! backward pass over the same steps in reverse). Generation, perplexity and training all
//! run this one decoder.
//!
//! This crate knows token ids and logits, not text.

mod load;
pub use load::kernel_format;
pub mod plan;
pub mod train;

pub use load::{from_gguf, gguf_matrix};
pub use plan::Plan;

use fmlab_kernels::pool::Pieces;
use fmlab_kernels::{
    causal_attention_f16, f32_to_f16_all, gelu_tanh, gelu_tanh_f16, layer_norm, rms_norm,
    rope_with_angles, swiglu, AttentionShape, Matrix, RopeAngles, RopeStyle, Threads,
};
use fmlab_spec::{FfnKind, ModelSpec, NormKind};
use rayon::prelude::*;

use plan::{LinearId, NormId, Op, Slot};

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

impl Layer {
    /// The layer's linear maps: q, k, v, o, up, down, and the gate where there is one.
    pub fn linears_mut(&mut self) -> impl Iterator<Item = &mut Linear> {
        [
            &mut self.q,
            &mut self.k,
            &mut self.v,
            &mut self.o,
            &mut self.up,
            &mut self.down,
        ]
        .into_iter()
        .chain(self.gate.as_mut())
    }
}

/// The model.
#[derive(Debug, Clone)]
pub struct Transformer {
    pub spec: ModelSpec,
    pub embed: Matrix,
    pub pos_embed: Option<Matrix>,
    pub layers: Vec<Layer>,
    /// `None` when the spec has no final norm.
    pub final_norm: Option<Norm>,
    /// The output projection (a reward model's `1 × d` score head); `None` when tied to
    /// `embed`.
    pub head: Option<Matrix>,
    pub rope_style: RopeStyle,
    pub threads: Threads,
    /// The steps of the forward pass, from `spec`.
    pub plan: Plan,
}

/// Keys and values of the tokens seen so far, per layer.
#[derive(Debug, Clone)]
pub struct KvCache {
    /// f16 bits, as llama.cpp stores keys and values by default: the attention kernels
    /// widen them as they load them, and a decoding step, which reads every cached
    /// position of every layer, reads half the bytes f32 would take.
    keys: Vec<Vec<u16>>,
    values: Vec<Vec<u16>>,
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

/// One sequence's part of a batched forward pass ([`Transformer::forward_batch`]): its new
/// tokens and its context.
pub struct Segment<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
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
    /// Repacks the layers' matrices and the output projection for the lane-per-row kernel
    /// where the CPU and the format allow (`Matrix::repack`): the same logits to the bit,
    /// faster. [`from_gguf`] does it; returns how many matrices are repacked.
    pub fn repack(&mut self) -> usize {
        let mut repacked = 0;
        for layer in &mut self.layers {
            for linear in layer.linears_mut() {
                repacked += linear.weight.repack() as usize;
            }
        }
        // The output projection (the embedding when tied; its row lookups read the stored
        // bytes, which stay).
        repacked += self.output_mut().repack() as usize;
        repacked
    }

    /// The output projection: the head, or the embedding where the two are tied.
    pub fn output_mut(&mut self) -> &mut Matrix {
        self.head.as_mut().unwrap_or(&mut self.embed)
    }

    /// Runs `tokens` through the model after the `cache.len()` tokens already seen, appends
    /// them to the cache, and returns logits.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, which: Logits) -> Result<Vec<f32>> {
        self.forward_traced(tokens, cache, which, &mut |_, _| {})
    }

    /// `forward`, calling `trace(name, values)` with every intermediate tensor, named as
    /// llama.cpp's `eval-callback` names them (`attn_norm-0`, `Qcur-0`, `ffn_out-3`,
    /// `result_output`), so that the two implementations can be compared step by step.
    ///
    /// This is the inference executor of the model's [`Plan`]: f32, weights in whatever
    /// format they are stored, keys and values appended to `cache`, and the arithmetic of
    /// ggml (f16-rounded keys and values, its exp, SiLU and GELU tables, its RoPE angles).
    pub fn forward_traced(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        which: Logits,
        trace: &mut dyn FnMut(&str, &[f32]),
    ) -> Result<Vec<f32>> {
        self.execute(&mut [Segment { tokens, cache }], which, Vec::new(), trace)
    }

    /// One forward pass over several sequences at once, each with its own context: every
    /// segment's tokens run after the tokens its cache holds and are appended to it, and
    /// the logits after each segment's last token come back, in order. The matrix products
    /// see all segments' rows together (weights are read once per step for the whole
    /// batch); attention reads each sequence's own keys and values. Each row is computed as
    /// a forward pass of that sequence alone computes it, except that dense (f32/f16)
    /// weights switch to the blocked product from 4 rows on, as a prompt does, and the
    /// K-quant kernels order their sums by batch size as ggml's do (floating-point noise).
    pub fn forward_batch(&self, segments: &mut [Segment<'_>]) -> Result<Vec<Vec<f32>>> {
        if segments.is_empty() {
            return Ok(Vec::new());
        }
        let all = self.execute(segments, Logits::Last, Vec::new(), &mut |_, _| {})?;
        let vocab = all.len() / segments.len();
        Ok(all
            .chunks_exact(vocab.max(1))
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// [`Self::forward_batch`] with the logits in one buffer: segment i's are
    /// `logits[i · vocab..(i + 1) · vocab]`. The head's product writes them straight into
    /// `logits`, whose memory is reused from one call to the next: a decoding loop that
    /// passes the same buffer every step neither zeroes nor copies the batch's logits (for
    /// 8 sequences of a 49,152-token vocabulary, 1.5 MB each way: with the allocations,
    /// about 4% of an 8-sequence step at 2 threads). On an error `logits` is left empty.
    pub fn forward_batch_into(
        &self,
        segments: &mut [Segment<'_>],
        logits: &mut Vec<f32>,
    ) -> Result<()> {
        let reuse = std::mem::take(logits);
        if segments.is_empty() {
            *logits = reuse;
            logits.clear();
            return Ok(());
        }
        *logits = self.execute(segments, Logits::Last, reuse, &mut |_, _| {})?;
        Ok(())
    }

    /// [`Self::forward_batch`] with the logits after every token of every segment: for each
    /// segment, `tokens × vocab` values (what scoring continuations needs).
    pub fn forward_batch_all(&self, segments: &mut [Segment<'_>]) -> Result<Vec<Vec<f32>>> {
        if segments.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<usize> = segments.iter().map(|s| s.tokens.len()).collect();
        let all = self.execute(segments, Logits::All, Vec::new(), &mut |_, _| {})?;
        let vocab = all.len() / rows.iter().sum::<usize>().max(1);
        let mut out = Vec::with_capacity(rows.len());
        let mut at = 0;
        for r in rows {
            out.push(all[at..at + r * vocab].to_vec());
            at += r * vocab;
        }
        Ok(out)
    }

    /// The plan's executor over `segments` (see [`Self::forward_traced`] and
    /// [`Self::forward_batch`]); `Logits::Last` keeps each segment's last row. The logits
    /// are written into `reuse`'s memory (grown where it is too small).
    fn execute(
        &self,
        segments: &mut [Segment<'_>],
        which: Logits,
        reuse: Vec<f32>,
        trace: &mut dyn FnMut(&str, &[f32]),
    ) -> Result<Vec<f32>> {
        // Decoding steps (one row per sequence) run on a spinning pool: their ~200 short
        // products per token would each pay rayon's wake-up. A prompt's long steps stay on
        // rayon, whose other parallel steps (attention, norms) would compete with spinners.
        let rows: usize = segments.iter().map(|seg| seg.tokens.len()).sum();
        let threads = match self.threads.0 {
            0 => rayon::current_num_threads(),
            t => t,
        };
        if rows <= Self::SPIN_POOL_ROWS && spin_pool_enabled() {
            fmlab_kernels::pool::scope(threads, || self.execute_pass(segments, which, reuse, trace))
        } else {
            self.execute_pass(segments, which, reuse, trace)
        }
    }

    /// The most rows a forward pass may have and still run on the spinning pool.
    const SPIN_POOL_ROWS: usize = 64;

    fn execute_pass(
        &self,
        segments: &mut [Segment<'_>],
        which: Logits,
        reuse: Vec<f32>,
        trace: &mut dyn FnMut(&str, &[f32]),
    ) -> Result<Vec<f32>> {
        let s = &self.spec;
        let d = s.d_model as usize;
        let mut tokens: Vec<u32> = Vec::new();
        let mut positions: Vec<usize> = Vec::new();
        // Each segment's first row in the batch, its row count and its context's length.
        let mut spans: Vec<(usize, usize, usize)> = Vec::with_capacity(segments.len());
        for seg in segments.iter() {
            let n = seg.tokens.len();
            if n == 0 {
                return Err(Error::Unsupported(
                    "a forward pass needs at least one token".into(),
                ));
            }
            if seg.cache.len + n > seg.cache.capacity {
                return Err(Error::ContextFull {
                    context: seg.cache.capacity,
                    requested: seg.cache.len + n,
                });
            }
            if let Some(&bad) = seg.tokens.iter().find(|&&t| t as usize >= self.embed.rows) {
                return Err(Error::BadToken {
                    id: bad,
                    vocab: self.embed.rows,
                });
            }
            let p0 = seg.cache.len;
            spans.push((tokens.len(), n, p0));
            tokens.extend_from_slice(seg.tokens);
            positions.extend(p0..p0 + n);
        }
        let n = tokens.len();
        let tokens = tokens.as_slice();
        let hd = s.head_dim as usize;
        let plan = &self.plan;
        let mut vals: Vec<Option<Vec<f32>>> = vec![None; plan.steps.len()];
        // Buffers of values past their last use, handed to later steps instead of fresh
        // allocations (whose pages the kernel would otherwise fault in again every step).
        let mut spare = Spare::default();
        // The caller's buffer for the logits, taken by the product that computes them.
        let mut reuse = Some(reuse);
        // Products computed ahead of their step, with an earlier map of the same input.
        let mut ahead: Vec<Option<Vec<f32>>> = vec![None; plan.steps.len()];
        // RoPE's sines and cosines of the rows' positions, per base (f32 bits).
        let mut angles: Vec<(u32, RopeAngles)> = Vec::new();
        for (i, step) in plan.steps.iter().enumerate() {
            // The input `x` as a buffer this step may overwrite: its own where this is its
            // last use (and the step reads it once), a copy otherwise.
            let owned = |vals: &mut [Option<Vec<f32>>], spare: &mut Spare, x: Slot| {
                let once = step.op.inputs().iter().filter(|&&y| y == x).count() == 1;
                if plan.last_use[x] == i && once {
                    if let Some(v) = vals[x].take() {
                        return v;
                    }
                }
                let src = vals[x].as_deref().unwrap_or(&[]);
                let mut v = spare.take(src.len());
                v.copy_from_slice(src);
                v
            };
            let out = match step.op {
                Op::Embed => {
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
                    x
                }
                Op::Norm { x, id, width } => {
                    let mut h = owned(&mut vals, &mut spare, x);
                    let norm = self.norm_of(id);
                    for_rows(&mut h, width, |rows, _| self.norm(rows, norm, width));
                    h
                }
                Op::Linear { x, id, .. } => {
                    let (weight, bias) = self.linear_of(id);
                    let mut y = match ahead[i].take() {
                        Some(y) => y,
                        None => {
                            // This map and the ones right after it that read the same
                            // input (Q, K, V; up and gate) run as one product: the input
                            // quantized once, one parallel job.
                            let group: Vec<(Slot, &Matrix)> = plan.steps[i..]
                                .iter()
                                .enumerate()
                                .map_while(|(j, st)| match st.op {
                                    Op::Linear { x: xj, id, .. } if xj == x => {
                                        Some((i + j, self.linear_of(id).0))
                                    }
                                    _ => None,
                                })
                                .collect();
                            let x = vals[x].as_deref().unwrap_or(&[]);
                            let rows = x.len() / weight.cols;
                            // Products write every value of their outputs.
                            let mut outs: Vec<Vec<f32>> = group
                                .iter()
                                .map(|&(j, _)| {
                                    let len = rows * plan.steps[j].width;
                                    match reuse.take_if(|_| j == plan.logits) {
                                        Some(mut v) => {
                                            v.truncate(len);
                                            v.resize(len, 0.0);
                                            v
                                        }
                                        None => spare.take(len),
                                    }
                                })
                                .collect();
                            let mats: Vec<&Matrix> = group.iter().map(|&(_, m)| m).collect();
                            let mut ys: Vec<&mut [f32]> =
                                outs.iter_mut().map(|y| y.as_mut_slice()).collect();
                            Matrix::matmul_many(&mats, x, &mut ys, self.threads)?;
                            let mut outs = outs.into_iter();
                            let y = outs.next().unwrap_or_default();
                            for (&(j, _), out) in group.iter().skip(1).zip(outs) {
                                ahead[j] = Some(out);
                            }
                            y
                        }
                    };
                    if let Some(b) = bias {
                        for row in y.chunks_exact_mut(step.width) {
                            row.iter_mut().zip(b).for_each(|(v, bb)| *v += bb);
                        }
                    }
                    y
                }
                Op::Rope { x, heads, base } => {
                    let mut y = owned(&mut vals, &mut spare, x);
                    let (style, width) = (self.rope_style, heads * hd);
                    // One table per base for the whole pass (Gemma 3 has two bases).
                    let base = base as f32;
                    let at = match angles.iter().position(|(b, _)| *b == base.to_bits()) {
                        Some(at) => at,
                        None => {
                            angles.push((base.to_bits(), RopeAngles::new(&positions, hd, base)));
                            angles.len() - 1
                        }
                    };
                    let table = &angles[at].1;
                    for_rows(&mut y, width, |rows, first| {
                        rope_with_angles(rows, table, first, heads, style)
                    });
                    y
                }
                Op::Attention {
                    q,
                    k,
                    v,
                    layer,
                    window,
                    scale,
                    scale_queries,
                } => {
                    let get = |x: Slot| vals[x].as_deref().unwrap_or(&[]);
                    let (keys, values, queries) = (get(k), get(v), get(q));
                    let (kv_width, q_width) = (keys.len() / n, queries.len() / n);
                    // Attention writes every head of every row.
                    let mut attn = spare.take(n * step.width);
                    // Each sequence's rows of the output, in order (segments are contiguous).
                    let mut outs: Vec<&mut [f32]> = Vec::with_capacity(spans.len());
                    let mut rest = attn.as_mut_slice();
                    for &(_, rows, _) in &spans {
                        let (head, tail) = rest.split_at_mut(rows * step.width);
                        outs.push(head);
                        rest = tail;
                    }
                    let shape = AttentionShape {
                        n_heads: s.n_heads as usize,
                        n_kv_heads: s.n_kv_heads as usize,
                        head_dim: hd,
                        scale: scale as f32,
                        scale_queries,
                        window,
                    };
                    let one =
                        |seg: &mut Segment<'_>,
                         out: &mut [f32],
                         &(first, rows, p0): &(usize, usize, usize)| {
                            let cache = &mut *seg.cache;
                            let kv = first * kv_width..(first + rows) * kv_width;
                            for (store, new) in [
                                (&mut cache.keys[layer], &keys[kv.clone()]),
                                (&mut cache.values[layer], &values[kv]),
                            ] {
                                let at = store.len();
                                store.resize(at + new.len(), 0);
                                f32_to_f16_all(new, &mut store[at..]);
                            }
                            causal_attention_f16(
                                &queries[first * q_width..(first + rows) * q_width],
                                &cache.keys[layer],
                                &cache.values[layer],
                                out,
                                p0,
                                p0 + rows,
                                shape,
                            );
                        };
                    // Sequences attend to their own caches: several at once in parallel
                    // (a decode step's single rows would otherwise run one after another).
                    if segments.len() > 1 {
                        // One task per sequence (each lock is taken once, by its task).
                        let work: Vec<_> = segments
                            .iter_mut()
                            .zip(outs)
                            .map(std::sync::Mutex::new)
                            .collect();
                        fmlab_kernels::pool::for_each(work.len(), |i| {
                            if let Ok(mut w) = work[i].lock() {
                                let (seg, out) = &mut *w;
                                one(seg, out, &spans[i]);
                            }
                        });
                    } else {
                        for ((seg, out), span) in segments.iter_mut().zip(outs).zip(&spans) {
                            one(seg, out, span);
                        }
                    }
                    attn
                }
                Op::Add { a, b } => {
                    let mut y = owned(&mut vals, &mut spare, a);
                    let b = vals[b].as_deref().unwrap_or(&[]);
                    for_rows_zip(&mut y, b, |y, b| {
                        y.iter_mut().zip(b).for_each(|(a, b)| *a += b)
                    });
                    y
                }
                Op::Act { gate, up, kind } => {
                    let mut u = owned(&mut vals, &mut spare, up);
                    let g = gate.map(|g| vals[g].as_deref().unwrap_or(&[]));
                    match (g, kind) {
                        // ggml writes +0 below −10 whatever the sign of the other factor.
                        (Some(g), FfnKind::GeGlu) => for_rows_zip(&mut u, g, |u, g| {
                            u.iter_mut().zip(g).for_each(|(u, &gv)| {
                                *u = if gv <= -10.0 {
                                    0.0
                                } else {
                                    gelu_tanh_f16(gv) * *u
                                }
                            })
                        }),
                        (Some(g), _) => for_rows_zip(&mut u, g, swiglu),
                        (None, _) => for_rows_zip(&mut u, &[], |u, _| {
                            u.iter_mut().for_each(|u| *u = gelu_tanh(*u))
                        }),
                    }
                    u
                }
                Op::Outputs { x } => {
                    let get = |x: Slot| vals[x].as_deref().unwrap_or(&[]);
                    match which {
                        Logits::Last => spans
                            .iter()
                            .flat_map(|&(first, rows, _)| {
                                get(x)[(first + rows - 1) * d..(first + rows) * d]
                                    .iter()
                                    .copied()
                            })
                            .collect(),
                        Logits::All => get(x).to_vec(),
                    }
                }
            };
            if let Some(tap) = step.tap {
                trace(&tap.label(), &out);
            }
            vals[i] = Some(out);
            for x in step.op.inputs() {
                if plan.last_use[x] == i {
                    if let Some(v) = vals[x].take() {
                        spare.keep(v);
                    }
                }
            }
        }
        for (seg, &(_, rows, _)) in segments.iter_mut().zip(&spans) {
            seg.cache.len += rows;
        }
        Ok(vals[plan.logits].take().unwrap_or_default())
    }

    /// Every parameter as dense f32 under its GGUF name (quantized matrices dequantised
    /// row by row): what finetuning starts from.
    pub fn dense_tensors(&self) -> Result<Vec<(String, Vec<f32>)>> {
        let dense = |m: &Matrix| -> Result<Vec<f32>> {
            let mut out = vec![0f32; m.rows * m.cols];
            for (i, row) in out.chunks_exact_mut(m.cols.max(1)).enumerate() {
                m.row(i, row)?;
            }
            Ok(out)
        };
        let mut out = vec![("token_embd.weight".to_string(), dense(&self.embed)?)];
        if let Some(p) = &self.pos_embed {
            out.push(("position_embd.weight".into(), dense(p)?));
        }
        let norm = |out: &mut Vec<(String, Vec<f32>)>, id: NormId, n: &Norm| {
            out.push((format!("{}.weight", id.name()), n.weight.clone()));
            if let Some(b) = &n.bias {
                out.push((format!("{}.bias", id.name()), b.clone()));
            }
        };
        let linear = |out: &mut Vec<(String, Vec<f32>)>, id: LinearId, l: &Linear| -> Result<()> {
            out.push((format!("{}.weight", id.name(false)), dense(&l.weight)?));
            if let Some(b) = &l.bias {
                out.push((format!("{}.bias", id.name(false)), b.clone()));
            }
            Ok(())
        };
        for (i, l) in self.layers.iter().enumerate() {
            norm(&mut out, NormId::Attn(i), &l.attn_norm);
            linear(&mut out, LinearId::Q(i), &l.q)?;
            linear(&mut out, LinearId::K(i), &l.k)?;
            linear(&mut out, LinearId::V(i), &l.v)?;
            linear(&mut out, LinearId::O(i), &l.o)?;
            for (id, n) in [
                (NormId::QHead(i), &l.q_norm),
                (NormId::KHead(i), &l.k_norm),
                (NormId::PostAttn(i), &l.post_attn_norm),
                (NormId::PostFfn(i), &l.post_ffn_norm),
            ] {
                if let Some(n) = n {
                    norm(&mut out, id, n);
                }
            }
            norm(&mut out, NormId::Ffn(i), &l.ffn_norm);
            if let Some(g) = &l.gate {
                linear(&mut out, LinearId::Gate(i), g)?;
            }
            linear(&mut out, LinearId::Up(i), &l.up)?;
            linear(&mut out, LinearId::Down(i), &l.down)?;
        }
        if let Some(n) = &self.final_norm {
            norm(&mut out, NormId::Final, n);
        }
        if let Some(h) = &self.head {
            out.push(("output.weight".into(), dense(h)?));
        }
        Ok(out)
    }

    fn norm_of(&self, id: NormId) -> &Norm {
        let layer = |l: usize| &self.layers[l];
        let missing = || unreachable_norm(id);
        match id {
            NormId::Attn(l) => &layer(l).attn_norm,
            NormId::Ffn(l) => &layer(l).ffn_norm,
            NormId::QHead(l) => layer(l).q_norm.as_ref().unwrap_or_else(missing),
            NormId::KHead(l) => layer(l).k_norm.as_ref().unwrap_or_else(missing),
            NormId::PostAttn(l) => layer(l).post_attn_norm.as_ref().unwrap_or_else(missing),
            NormId::PostFfn(l) => layer(l).post_ffn_norm.as_ref().unwrap_or_else(missing),
            NormId::Final => self.final_norm.as_ref().unwrap_or_else(missing),
        }
    }

    fn linear_of(&self, id: LinearId) -> (&Matrix, Option<&Vec<f32>>) {
        fn lin(l: &Linear) -> (&Matrix, Option<&Vec<f32>>) {
            (&l.weight, l.bias.as_ref())
        }
        match id {
            LinearId::Q(l) => lin(&self.layers[l].q),
            LinearId::K(l) => lin(&self.layers[l].k),
            LinearId::V(l) => lin(&self.layers[l].v),
            LinearId::O(l) => lin(&self.layers[l].o),
            LinearId::Gate(l) => match &self.layers[l].gate {
                Some(g) => lin(g),
                None => lin(&self.layers[l].up),
            },
            LinearId::Up(l) => lin(&self.layers[l].up),
            LinearId::Down(l) => lin(&self.layers[l].down),
            LinearId::Head | LinearId::Score => (self.head.as_ref().unwrap_or(&self.embed), None),
        }
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
}

/// The loaders build every norm the plan names (the plan and the loader read the same spec
/// flags), so a missing one is a bug in this crate, not bad input.
#[allow(clippy::panic)]
fn unreachable_norm(id: NormId) -> ! {
    panic!("the model has no tensors for norm {id:?} although its plan uses it")
}

/// A reward model (a decoder whose plan ends in a score head, `fmlab train reward`) as a
/// best-of-n scorer: the score after the prompt, the completion and the stop token that
/// ended it — where training read each answer's reward.
pub struct RewardScorer<'m> {
    pub model: &'m Transformer,
}

impl<'m> RewardScorer<'m> {
    pub fn new(model: &'m Transformer) -> Result<Self> {
        if model.plan.head != plan::Head::Score {
            return Err(Error::Unsupported(
                "not a reward model: it has no score head (train one with `fmlab train reward`)"
                    .into(),
            ));
        }
        Ok(Self { model })
    }

    /// The reward of a whole token sequence (its last `context` tokens).
    pub fn score_tokens(&self, ids: &[u32]) -> Result<f64> {
        let context = self.model.spec.context_length as usize;
        let ids = &ids[ids.len().saturating_sub(context)..];
        let mut cache = KvCache::new(&self.model.spec, ids.len().max(1));
        let out = self.model.forward(ids, &mut cache, Logits::Last)?;
        Ok(out.first().copied().unwrap_or(f32::NEG_INFINITY) as f64)
    }
}

impl fmlab_sample::Scorer for RewardScorer<'_> {
    fn score(
        &mut self,
        prompt: &[u32],
        completion: &fmlab_sample::Generation,
    ) -> fmlab_sample::Result<f64> {
        let mut ids = prompt.to_vec();
        ids.extend_from_slice(&completion.tokens);
        if let fmlab_sample::StopReason::StopToken(t) = completion.stop {
            ids.push(t);
        }
        self.score_tokens(&ids)
            .map_err(|e| fmlab_sample::Error::Model(Box::new(e)))
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

/// Whether decoding steps use the spinning pool: yes, unless `FMLAB_SPIN_POOL=0` (for
/// comparisons with rayon alone).
fn spin_pool_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("FMLAB_SPIN_POOL").map_or(true, |v| v != "0"))
}

/// Buffers whose values are past their last use, kept for later steps of the same forward
/// pass: a prompt's steps allocate the same few sizes over and over, and a fresh allocation
/// of that size comes from `mmap`, page-faulted in and zeroed by the kernel every time.
/// Training's `train::pool::Buf` does the same per thread and keeps its buffers until
/// `release_buffers`; inference runs on the server's long-lived threads, so these live
/// only as long as one pass and a prompt's buffers are not held afterwards.
#[derive(Default)]
struct Spare {
    free: Vec<Vec<f32>>,
}

impl Spare {
    /// The most buffers kept; a layer's steps free about this many at a time.
    const KEEP: usize = 8;

    /// A buffer of `len` values for a step that writes every one of them: the shortest
    /// kept one already holding `len` values, else the smallest one with room for them,
    /// else a new one. Kept buffers are not zeroed again: every caller overwrites them
    /// whole (a product, attention, or a copy of a step's input). Only values past a
    /// buffer's length are zeroed on the way, so a layer's narrow steps take its narrow
    /// buffers and leave the wide ones wide: picking by room alone, a buffer cut to the
    /// model's width was zeroed again up to the FFN's at the next wide step. (A small
    /// saving: an 8-sequence SmolLM2 step ran 1.005× as fast, rounds 0.996–1.013, within
    /// noise. Most of the memset left in its profile is the cache's append writing a new
    /// position's cold lines, which the attention reads next.)
    fn take(&mut self, len: usize) -> Vec<f32> {
        // The smallest buffer whose `size` (length, else capacity) reaches `len`.
        let pick = |size: fn(&Vec<f32>) -> usize| {
            self.free
                .iter()
                .enumerate()
                .filter(|(_, v)| size(v) >= len)
                .min_by_key(|(_, v)| size(v))
                .map(|(i, _)| i)
        };
        let best = pick(Vec::len).or_else(|| pick(Vec::capacity));
        match best {
            Some(i) => {
                let mut v = self.free.swap_remove(i);
                v.truncate(len);
                v.resize(len, 0.0);
                v
            }
            None => vec![0f32; len],
        }
    }

    fn keep(&mut self, v: Vec<f32>) {
        if v.capacity() == 0 {
            return;
        }
        if self.free.len() == Self::KEEP {
            // Drop the smallest: the large ones are the expensive ones to fault in again.
            if let Some((i, _)) = self
                .free
                .iter()
                .enumerate()
                .min_by_key(|(_, v)| v.capacity())
            {
                if self.free[i].capacity() >= v.capacity() {
                    return;
                }
                self.free.swap_remove(i);
            }
        }
        self.free.push(v);
    }
}

/// Values below which a row-wise step runs on the calling thread: splitting a decode step's
/// few rows costs more in wake-ups than it saves.
const PAR_MIN_VALUES: usize = 16 * 1024;

/// Values from which a row-wise step of a pass on the spinning pool (a batched decoding
/// step: 8 sequences' rows are 4,608 values of SmolLM2's norms, 12,288 of its SwiGLU) is
/// split among the pool's threads. The pool's workers spin beside the pass's thread
/// anyway, so a task is handed over in well under a microsecond; left on the pass's
/// thread, these steps were 5% of an 8-sequence step at 2 threads, the worker idle.
const POOL_MIN_VALUES: usize = 2048;

/// `f(rows, first)` over consecutive whole rows of `x` (`width` wide, `first` the index of
/// the first row), in parallel for a prompt's many rows. Each row is computed exactly as a
/// serial loop would, so results do not depend on the split.
fn for_rows(x: &mut [f32], width: usize, f: impl Fn(&mut [f32], usize) + Sync) {
    let threads = fmlab_kernels::pool::threads();
    if width > 0 && threads > 1 && x.len() >= POOL_MIN_VALUES && x.len() / width >= 2 {
        // On a decoding pass's pool: as many tasks as threads, whole rows each.
        let rows = x.len() / width;
        let per_task = rows.div_ceil(threads);
        let pieces = Pieces::new(x, per_task * width);
        fmlab_kernels::pool::for_each(rows.div_ceil(per_task), |i| {
            // SAFETY: each task takes its own piece, and `x` outlives the call.
            f(unsafe { pieces.piece(i) }, i * per_task)
        });
        return;
    }
    if width == 0 || x.len() < PAR_MIN_VALUES {
        f(x, 0);
        return;
    }
    let rows_per_task = PAR_MIN_VALUES.div_ceil(width) / 2 + 1;
    x.par_chunks_mut(rows_per_task * width)
        .enumerate()
        .for_each(|(c, rows)| f(rows, c * rows_per_task));
}

/// `f(x, y)` over matching pieces of `x` and `y` (an element-wise step; `y` may be empty
/// for a step with one input), in parallel for large inputs.
fn for_rows_zip(x: &mut [f32], y: &[f32], f: impl Fn(&mut [f32], &[f32]) + Sync) {
    const PIECE: usize = PAR_MIN_VALUES / 2;
    let threads = fmlab_kernels::pool::threads();
    if threads > 1 && x.len() >= POOL_MIN_VALUES {
        // On a decoding pass's pool: one piece per thread, whole vectors of 16 each.
        let width = x.len().div_ceil(threads).next_multiple_of(16);
        let pieces = Pieces::new(x, width);
        fmlab_kernels::pool::for_each(x.len().div_ceil(width), |i| {
            let (from, to) = ((i * width).min(y.len()), ((i + 1) * width).min(y.len()));
            // SAFETY: each task takes its own piece, and `x` outlives the call.
            f(unsafe { pieces.piece(i) }, &y[from..to])
        });
        return;
    }
    if x.len() < PAR_MIN_VALUES {
        f(x, y);
        return;
    }
    x.par_chunks_mut(PIECE).enumerate().for_each(|(c, piece)| {
        let from = (c * PIECE).min(y.len());
        let to = (c * PIECE + piece.len()).min(y.len());
        f(piece, &y[from..to])
    });
}
