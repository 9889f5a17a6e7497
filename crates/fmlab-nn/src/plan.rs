//! The decoder as a list of steps, derived once from a `ModelSpec`: which norms, products,
//! rotations, attentions, activations and residual additions run, in which order, on which
//! values, with which parameters. This is the one description of the model's forward pass.
//! Two executors run it:
//!
//! - inference ([`crate::Transformer::forward`]): f32, any stored weight format, a KV
//!   cache, arithmetic that follows ggml's to the bit (llama.cpp agreement tests guard it);
//! - training ([`crate::train`]): batches of whole sequences in f32 (or f64 for gradient
//!   checks), every value a backward step needs kept, and the backward pass walking the
//!   same steps in reverse, each with its hand-written derivative.
//!
//! A spec feature (QK-norm, norms after each branch, sliding windows, learned positions,
//! biases, GeGLU) is therefore added once, here, and exists for both.
//!
//! Every step produces one value, named by the step's index (a [`Slot`]); a step reads the
//! values of earlier steps.

use fmlab_kernels::RopeStyle;
use fmlab_spec::{FfnKind, ModelSpec, NormKind, NormPlacement, Positions};

use crate::{Error, Result};

/// A value of the forward pass: the index of the step that produced it.
pub type Slot = usize;

/// A norm of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormId {
    Attn(usize),
    /// QK-norm: over each head of the queries.
    QHead(usize),
    KHead(usize),
    /// After the attention branch (Gemma's sandwich).
    PostAttn(usize),
    Ffn(usize),
    PostFfn(usize),
    Final,
}

impl NormId {
    /// The tensor name without `.weight` / `.bias`, as GGUF (and fmlab's checkpoints) name it.
    pub fn name(self) -> String {
        match self {
            NormId::Attn(l) => format!("blk.{l}.attn_norm"),
            NormId::QHead(l) => format!("blk.{l}.attn_q_norm"),
            NormId::KHead(l) => format!("blk.{l}.attn_k_norm"),
            NormId::PostAttn(l) => format!("blk.{l}.post_attention_norm"),
            NormId::Ffn(l) => format!("blk.{l}.ffn_norm"),
            NormId::PostFfn(l) => format!("blk.{l}.post_ffw_norm"),
            NormId::Final => "output_norm".into(),
        }
    }
}

/// A linear map of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearId {
    Q(usize),
    K(usize),
    V(usize),
    O(usize),
    Gate(usize),
    Up(usize),
    Down(usize),
    /// The output projection (the embedding matrix when tied).
    Head,
    /// A reward model's scalar head (`score.weight`, `1 × d_model`).
    Score,
}

/// What the last step computes: next-token logits, or one score per position (a reward
/// model: the backbone with a scalar head).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Head {
    #[default]
    Lm,
    Score,
}

impl LinearId {
    /// The tensor name without `.weight` / `.bias`, as GGUF names it (`token_embd` for a
    /// tied head).
    pub fn name(self, tied: bool) -> String {
        match self {
            LinearId::Q(l) => format!("blk.{l}.attn_q"),
            LinearId::K(l) => format!("blk.{l}.attn_k"),
            LinearId::V(l) => format!("blk.{l}.attn_v"),
            LinearId::O(l) => format!("blk.{l}.attn_output"),
            LinearId::Gate(l) => format!("blk.{l}.ffn_gate"),
            LinearId::Up(l) => format!("blk.{l}.ffn_up"),
            LinearId::Down(l) => format!("blk.{l}.ffn_down"),
            LinearId::Head if tied => "token_embd".into(),
            LinearId::Head => "output".into(),
            LinearId::Score => "score".into(),
        }
    }
}

/// What a step computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// The tokens' embedding rows (× √d_model when the spec scales them), plus learned
    /// positions where the spec has them.
    Embed,
    /// RMSNorm or LayerNorm (per the spec) of each `width`-wide row of `x`.
    Norm { x: Slot, id: NormId, width: usize },
    /// `x · Wᵀ (+ b)`, `in_width` columns in, the step's width out.
    Linear {
        x: Slot,
        id: LinearId,
        in_width: usize,
    },
    /// Rotary embeddings on `heads` heads of each row.
    Rope { x: Slot, heads: usize, base: f64 },
    /// Causal softmax attention of layer `layer`'s queries over its keys and values.
    Attention {
        q: Slot,
        k: Slot,
        v: Slot,
        layer: usize,
        /// Tokens a query sees, itself included (`None`: all before it).
        window: Option<usize>,
        /// Multiplier of q·k.
        scale: f64,
        /// Whether ggml scales the queries rather than the products (Gemma): a rounding
        /// detail of the inference executor.
        scale_queries: bool,
    },
    /// `a + b` (a residual connection).
    Add { a: Slot, b: Slot },
    /// The FFN's activation: SiLU(gate) ⊙ up, GELU(gate) ⊙ up, or GELU(up).
    Act {
        gate: Option<Slot>,
        up: Slot,
        kind: FfnKind,
    },
    /// The rows whose logits are wanted: inference may keep only the last; training keeps
    /// all of them.
    Outputs { x: Slot },
}

impl Op {
    /// The values this step reads.
    pub fn inputs(&self) -> Vec<Slot> {
        match *self {
            Op::Embed => vec![],
            Op::Norm { x, .. } | Op::Linear { x, .. } | Op::Rope { x, .. } | Op::Outputs { x } => {
                vec![x]
            }
            Op::Attention { q, k, v, .. } => vec![q, k, v],
            Op::Add { a, b } => vec![a, b],
            Op::Act { gate, up, .. } => gate.into_iter().chain([up]).collect(),
        }
    }

    /// Whether the backward pass of this step reads its inputs' values (a product, a norm,
    /// attention and the activation do; a rotation, an addition and a row selection do
    /// not).
    pub fn backward_reads_inputs(&self) -> bool {
        matches!(
            self,
            Op::Norm { .. } | Op::Linear { .. } | Op::Attention { .. } | Op::Act { .. }
        )
    }
}

/// A name under which inference reports a value, as llama.cpp's `eval-callback` does
/// (`attn_norm-0`, `Qcur-0`, `result_output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tap {
    pub name: &'static str,
    pub layer: Option<usize>,
}

impl Tap {
    pub fn label(&self) -> String {
        match self.layer {
            Some(l) => format!("{}-{l}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// One step: its operation, the width of the rows it produces, and an optional tap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub op: Op,
    pub width: usize,
    pub tap: Option<Tap>,
}

/// The steps of a model's forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// The step that produces the logits (the last one).
    pub logits: Slot,
    /// For each value, the last step that reads it (its own index when none does).
    pub last_use: Vec<usize>,
    pub rope_style: RopeStyle,
    pub head: Head,
}

/// How a spec's rotary embeddings pair dimensions: GGUF llama-family files (and fmlab's
/// own models) rotate adjacent pairs, Qwen2 and Gemma halves.
pub fn rope_style(spec: &ModelSpec) -> RopeStyle {
    match spec.architecture.as_str() {
        "qwen2" | "gemma3" | "gemma2" | "gemma" | "gptneox" => RopeStyle::Halves,
        _ => RopeStyle::Interleaved,
    }
}

impl Plan {
    /// The plan of `spec` with its language-model head, or why no executor can run it.
    pub fn new(spec: &ModelSpec) -> Result<Self> {
        Self::with_head(spec, Head::Lm)
    }

    /// The plan of `spec` ending in `head`.
    pub fn with_head(spec: &ModelSpec, head: Head) -> Result<Self> {
        check(spec)?;
        let d = spec.d_model as usize;
        let mut p = Builder { steps: Vec::new() };
        let mut x = p.push(Op::Embed, d, Some(("embd", None)));
        for l in 0..spec.n_layers as usize {
            x = p.attention_block(spec, l, x);
            x = p.ffn_block(spec, l, x);
        }
        let logits = p.head(spec, head, x);
        let mut last_use: Vec<usize> = (0..p.steps.len()).collect();
        for (i, s) in p.steps.iter().enumerate() {
            for x in s.op.inputs() {
                last_use[x] = i;
            }
        }
        Ok(Self {
            steps: p.steps,
            logits,
            last_use,
            rope_style: rope_style(spec),
            head,
        })
    }
}

/// Why no executor can run `spec`, if none can.
fn check(spec: &ModelSpec) -> Result<()> {
    let bad = |why: String| Err(Error::Unsupported(why));
    if spec.norm_placement == NormPlacement::Post {
        return bad(format!(
            "{}: norms after the residual additions (the original transformer) are not implemented; pre-norm and pre-and-post-norm decoders are",
            spec.architecture
        ));
    }
    if spec.n_kv_heads == 0 || !spec.n_heads.is_multiple_of(spec.n_kv_heads) {
        return bad(format!(
            "{} query heads cannot share {} key-value heads evenly",
            spec.n_heads, spec.n_kv_heads
        ));
    }
    if matches!(spec.positions, Positions::Rope { .. }) && !spec.head_dim.is_multiple_of(2) {
        return bad(format!(
            "rotary embeddings need an even head_dim, not {}",
            spec.head_dim
        ));
    }
    Ok(())
}

struct Builder {
    steps: Vec<Step>,
}

impl Builder {
    fn push(&mut self, op: Op, width: usize, tap: Option<(&'static str, Option<usize>)>) -> Slot {
        self.steps.push(Step {
            op,
            width,
            tap: tap.map(|(name, layer)| Tap { name, layer }),
        });
        self.steps.len() - 1
    }

    fn tap(&mut self, slot: Slot, name: &'static str, layer: usize) {
        self.steps[slot].tap = Some(Tap {
            name,
            layer: Some(layer),
        });
    }

    /// A linear map of value `x` to `width`-wide rows.
    fn linear(
        &mut self,
        x: Slot,
        id: LinearId,
        width: usize,
        tap: Option<(&'static str, Option<usize>)>,
    ) -> Slot {
        let in_width = self.steps[x].width;
        self.push(Op::Linear { x, id, in_width }, width, tap)
    }

    /// A norm of value `x`'s `width`-wide pieces (rows, or heads for QK-norm).
    fn norm(
        &mut self,
        x: Slot,
        id: NormId,
        width: usize,
        tap: Option<(&'static str, Option<usize>)>,
    ) -> Slot {
        let rows = self.steps[x].width;
        self.push(Op::Norm { x, id, width }, rows, tap)
    }

    /// Layer `l`'s attention branch on the residual stream `x` (norm, Q/K/V, QK-norm, RoPE,
    /// attention, output map, post-norm) and its residual addition: the new stream.
    fn attention_block(&mut self, spec: &ModelSpec, l: usize, x: Slot) -> Slot {
        let d = spec.d_model as usize;
        let hd = spec.head_dim as usize;
        let (nh, nkv) = (spec.n_heads as usize, spec.n_kv_heads as usize);
        let (qw, kvw) = (nh * hd, nkv * hd);
        let at = |name| Some((name, Some(l)));
        let h = self.norm(x, NormId::Attn(l), d, at("attn_norm"));
        let mut q = self.linear(h, LinearId::Q(l), qw, None);
        let mut k = self.linear(h, LinearId::K(l), kvw, None);
        let v = self.linear(h, LinearId::V(l), kvw, at("Vcur"));
        if spec.qk_norm {
            q = self.norm(q, NormId::QHead(l), hd, None);
            k = self.norm(k, NormId::KHead(l), hd, None);
        }
        let local = spec.sliding_window.filter(|w| w.is_local(l as u64));
        if let Positions::Rope { base } = spec.positions {
            let base = local.and_then(|w| w.local_rope_base).unwrap_or(base);
            q = self.push(
                Op::Rope {
                    x: q,
                    heads: nh,
                    base,
                },
                qw,
                None,
            );
            k = self.push(
                Op::Rope {
                    x: k,
                    heads: nkv,
                    base,
                },
                kvw,
                None,
            );
        }
        self.tap(q, "Qcur", l);
        self.tap(k, "Kcur", l);
        let a = self.push(
            Op::Attention {
                q,
                k,
                v,
                layer: l,
                window: local.map(|w| w.window as usize),
                scale: 1.0 / spec.query_pre_attn_scalar.unwrap_or(hd as f64).sqrt(),
                scale_queries: spec.query_pre_attn_scalar.is_some(),
            },
            qw,
            at("kqv_out"),
        );
        let mut o = self.linear(a, LinearId::O(l), d, at("attn_out"));
        if spec.norm_placement == NormPlacement::PreAndPost {
            o = self.norm(o, NormId::PostAttn(l), d, None);
        }
        self.push(Op::Add { a: x, b: o }, d, at("ffn_inp"))
    }

    /// Layer `l`'s FFN branch on the residual stream `x` (norm, up and gate maps,
    /// activation, down map, post-norm) and its residual addition: the new stream.
    fn ffn_block(&mut self, spec: &ModelSpec, l: usize, x: Slot) -> Slot {
        let d = spec.d_model as usize;
        let f = spec.ffn_dim as usize;
        let at = |name| Some((name, Some(l)));
        let h = self.norm(x, NormId::Ffn(l), d, at("ffn_norm"));
        let up = self.linear(h, LinearId::Up(l), f, at("ffn_up"));
        let gate = match spec.ffn_kind {
            FfnKind::GeluMlp => None,
            FfnKind::SwiGlu | FfnKind::GeGlu => {
                Some(self.linear(h, LinearId::Gate(l), f, at("ffn_gate")))
            }
        };
        let act = self.push(
            Op::Act {
                gate,
                up,
                kind: spec.ffn_kind,
            },
            f,
            at("ffn_act"),
        );
        let mut down = self.linear(act, LinearId::Down(l), d, at("ffn_out"));
        if spec.norm_placement == NormPlacement::PreAndPost {
            down = self.norm(down, NormId::PostFfn(l), d, None);
        }
        self.push(Op::Add { a: x, b: down }, d, at("l_out"))
    }

    /// The rows to output, the final norm and the head (`vocab`-wide logits, or one score)
    /// after the residual stream `x`: the logits' slot.
    fn head(&mut self, spec: &ModelSpec, head: Head, x: Slot) -> Slot {
        let d = spec.d_model as usize;
        let mut h = self.push(Op::Outputs { x }, d, None);
        if spec.final_norm {
            h = self.norm(h, NormId::Final, d, Some(("result_norm", None)));
        }
        let (id, width) = match head {
            Head::Lm => (LinearId::Head, spec.vocab_size as usize),
            Head::Score => (LinearId::Score, 1),
        };
        self.push(
            Op::Linear {
                x: h,
                id,
                in_width: d,
            },
            width,
            Some(("result_output", None)),
        )
    }
}

/// A tensor of a model, by GGUF name: what checkpoints store, exports write, loaders read
/// and training's parameter arena holds, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorDesc {
    pub name: String,
    /// `[rows, cols]` for a matrix (row-major, `out × in`), `[len]` for a vector.
    pub shape: Vec<usize>,
    /// Whether weight decay applies (matrices yes; norms, biases and embeddings no).
    pub decay: bool,
}

impl TensorDesc {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every tensor of `spec` with `head`: a reward model adds `score.weight` (`1 × d_model`)
/// to the language model's (whose output projection it keeps, unused, so that it loads
/// from and next to its SFT model).
pub fn tensors_with(spec: &ModelSpec, head: Head) -> Vec<TensorDesc> {
    let mut t = tensors(spec);
    if head == Head::Score {
        t.push(TensorDesc {
            name: "score.weight".into(),
            shape: vec![1, spec.d_model as usize],
            decay: true,
        });
    }
    t
}

/// Every tensor `spec` has, in a fixed order.
pub fn tensors(spec: &ModelSpec) -> Vec<TensorDesc> {
    let d = spec.d_model as usize;
    let hd = spec.head_dim as usize;
    let (qw, kvw) = (spec.n_heads as usize * hd, spec.n_kv_heads as usize * hd);
    let f = spec.ffn_dim as usize;
    let v = spec.vocab_size as usize;
    let layer_norm = spec.norm_kind == NormKind::LayerNorm;
    let sandwich = spec.norm_placement == NormPlacement::PreAndPost;
    let mut out = Vec::new();
    let mut put =
        |name: String, shape: Vec<usize>, decay: bool| out.push(TensorDesc { name, shape, decay });
    put("token_embd.weight".into(), vec![v, d], false);
    if spec.positions == Positions::Learned {
        put(
            "position_embd.weight".into(),
            vec![spec.context_length as usize, d],
            false,
        );
    }
    let norm = |put: &mut dyn FnMut(String, Vec<usize>, bool), id: NormId, width| {
        put(format!("{}.weight", id.name()), vec![width], false);
        if layer_norm {
            put(format!("{}.bias", id.name()), vec![width], false);
        }
    };
    let linear = |put: &mut dyn FnMut(String, Vec<usize>, bool), id: LinearId, rows, cols, bias| {
        put(format!("{}.weight", id.name(false)), vec![rows, cols], true);
        if bias {
            put(format!("{}.bias", id.name(false)), vec![rows], false);
        }
    };
    for l in 0..spec.n_layers as usize {
        norm(&mut put, NormId::Attn(l), d);
        linear(&mut put, LinearId::Q(l), qw, d, spec.qkv_bias);
        linear(&mut put, LinearId::K(l), kvw, d, spec.qkv_bias);
        linear(&mut put, LinearId::V(l), kvw, d, spec.qkv_bias);
        if spec.qk_norm {
            norm(&mut put, NormId::QHead(l), hd);
            norm(&mut put, NormId::KHead(l), hd);
        }
        linear(&mut put, LinearId::O(l), d, qw, spec.attn_out_bias);
        if sandwich {
            norm(&mut put, NormId::PostAttn(l), d);
        }
        norm(&mut put, NormId::Ffn(l), d);
        if spec.ffn_kind != FfnKind::GeluMlp {
            linear(&mut put, LinearId::Gate(l), f, d, spec.mlp_bias);
        }
        linear(&mut put, LinearId::Up(l), f, d, spec.mlp_bias);
        linear(&mut put, LinearId::Down(l), d, f, spec.mlp_bias);
        if sandwich {
            norm(&mut put, NormId::PostFfn(l), d);
        }
    }
    if spec.final_norm {
        norm(&mut put, NormId::Final, d);
    }
    if !spec.tied_embeddings {
        linear(&mut put, LinearId::Head, v, d, false);
    }
    out
}
