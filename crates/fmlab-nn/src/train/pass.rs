//! What one training pass holds: its fixed context (`Pass`: the model, the plan, the rows'
//! shapes, positions and RoPE tables, which values live until the backward pass) and the
//! forward pass's values with what each step saved for its derivative (`Tape`).

use fmlab_spec::{ModelSpec, NormKind};

use super::attention::AttnDims;
use super::float::Float;
use super::layers::RopeTable;
use super::lora::Adapters;
use super::pool::Buf;
use super::weights::Weights;
use crate::plan::{Op, Plan, Slot};

/// The fixed context of one pass over `n = batch × seq` tokens.
pub(super) struct Pass<'a, T: Float> {
    pub(super) w: &'a Weights<T>,
    pub(super) adapters: Option<&'a Adapters<T>>,
    pub(super) plan: &'a Plan,
    pub(super) inputs: &'a [u32],
    pub(super) n: usize,
    pub(super) d: usize,
    pub(super) hd: usize,
    pub(super) eps: f64,
    pub(super) layer_norm: bool,
    /// Each token's position in its sequence (restarting at each packed sequence).
    pub(super) positions: Vec<usize>,
    pub(super) dims: AttnDims,
    pub(super) embed_scale: T,
    /// Whether gradients are wanted (the forward pass then keeps what backward reads).
    pub(super) training: bool,
    /// Per value: whether a backward step reads it (it then stays until that step).
    keep: Vec<bool>,
    /// Per value: the first step that reads it.
    pub(super) first_use: Vec<usize>,
    /// A cos/sin table per RoPE base of the plan.
    tables: Vec<(f64, RopeTable<T>)>,
}

impl<'a, T: Float> Pass<'a, T> {
    /// The context of a pass of `plan` over `batch` rows of `seq` `inputs`, `starts` giving
    /// each token's segment start (empty: unpacked).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        spec: &ModelSpec,
        w: &'a Weights<T>,
        adapters: Option<&'a Adapters<T>>,
        plan: &'a Plan,
        inputs: &'a [u32],
        (batch, seq): (usize, usize),
        starts: Vec<usize>,
        training: bool,
    ) -> Self {
        let d = spec.d_model as usize;
        let hd = spec.head_dim as usize;
        let (nh, nkv) = (spec.n_heads as usize, spec.n_kv_heads as usize);
        let n = batch * seq;
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
        let steps = &plan.steps;
        // The values some backward step reads stay until the backward pass; the others go
        // as soon as the forward pass is done with them.
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
        Self {
            w,
            adapters,
            plan,
            inputs,
            n,
            d,
            hd,
            eps: spec.norm_eps,
            layer_norm: spec.norm_kind == NormKind::LayerNorm,
            positions,
            dims,
            embed_scale,
            training,
            keep,
            first_use,
            tables,
        }
    }

    /// The RoPE table of `base`.
    pub(super) fn table(&self, base: f64) -> &RopeTable<T> {
        let i = self
            .tables
            .iter()
            .position(|(b, _)| *b == base)
            .unwrap_or(0);
        &self.tables[i].1
    }

    /// Whether step `i` reads value `x` for the last time and no backward step reads it
    /// (the step may then take it rather than copy it).
    pub(super) fn last(&self, x: Slot, i: usize) -> bool {
        self.plan.last_use[x] == i && !self.keep[x]
    }
}

/// What the forward pass keeps of a step for the backward pass, besides values.
pub(super) enum Saved<T: Float> {
    Nothing,
    /// A norm's (1/σ, mean) per row.
    Stats(Vec<(T, T)>),
    /// Attention probabilities per (sequence, head, query): `seq × seq` each.
    Probs(Buf<T>),
    /// A LoRA adapter's s·x·Aᵀ (`n × rank`).
    Lora(Buf<T>),
}

/// The forward pass's values, one per step while some step still reads it, and what each
/// step saved for its derivative.
pub(super) struct Tape<T: Float> {
    pub(super) vals: Vec<Option<Buf<T>>>,
    pub(super) saved: Vec<Saved<T>>,
}

impl<T: Float> Tape<T> {
    pub(super) fn new(steps: usize) -> Self {
        Self {
            vals: (0..steps).map(|_| None).collect(),
            saved: (0..steps).map(|_| Saved::Nothing).collect(),
        }
    }

    /// A forward value, which the plan's order guarantees was computed and is still held.
    pub(super) fn value(&self, x: Slot) -> &[T] {
        self.vals[x].as_deref().unwrap_or(&[])
    }

    /// Value `x` for step `i` to change: taken when `i` reads it for the last time,
    /// copied otherwise.
    pub(super) fn take_or_copy(&mut self, pass: &Pass<T>, x: Slot, i: usize) -> Buf<T> {
        match pass.last(x, i) {
            true => self.vals[x].take().unwrap_or_else(|| Buf::zeros(0)),
            false => Buf::copy_of(self.value(x)),
        }
    }
}
