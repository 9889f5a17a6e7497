//! The backward pass of the training executor: the plan's steps in reverse, one function
//! per step kind, each adding its inputs' gradients and its parameters' (the model's, or
//! only the LoRA adapters').

use fmlab_spec::FfnKind;
use rayon::prelude::*;

use super::attention::attention_backward;
use super::float::Float;
use super::layers::{act_backward, bias_back, matmul_back_w, matmul_back_x, norm_back, rope};
use super::pass::{Pass, Saved, Tape};
use super::pool::Buf;
use super::weights::Weights;
use crate::plan::{LinearId, NormId, Op, Slot};
use crate::{Error, Result};

/// Where the backward pass writes: the gradient of each value, and of the parameters.
struct Backward<'g, T: Float> {
    grads: Vec<Option<Buf<T>>>,
    /// The gradients of the model's own weights (`None`: they stay frozen).
    full: Option<&'g mut Weights<T>>,
    /// The gradients of the LoRA adapters, when those train.
    adapters: Option<&'g mut Weights<T>>,
    /// With the model frozen, a scratch arena for the norms' weight gradients.
    scratch_norms: Vec<T>,
}

/// Back-propagates `dlogits` (the loss's derivative with respect to the plan's last value)
/// through every step, into `full` and `adapters`.
pub(super) fn backward<T: Float>(
    pass: &Pass<T>,
    tape: &mut Tape<T>,
    dlogits: Buf<T>,
    full: Option<&mut Weights<T>>,
    adapters: Option<&mut Weights<T>>,
) -> Result<()> {
    let steps = &pass.plan.steps;
    let mut b = Backward {
        grads: (0..steps.len()).map(|_| None).collect(),
        full,
        adapters,
        scratch_norms: Vec::new(),
    };
    b.grads[pass.plan.logits] = Some(dlogits);
    for (i, step) in steps.iter().enumerate().rev() {
        let Some(dy) = b.grads[i].take() else {
            continue;
        };
        match step.op {
            Op::Embed => b.embed(pass, &dy)?,
            Op::Norm { x, id, width } => b.norm(pass, tape, i, &dy, (x, id, width))?,
            Op::Linear { x, id, in_width } => {
                b.linear(pass, tape, i, &dy, (x, id, in_width, step.width))?
            }
            Op::Rope { x, heads, base } => {
                let mut dy = dy;
                rope(
                    &mut dy,
                    &pass.positions,
                    heads,
                    pass.hd,
                    pass.table(base),
                    pass.plan.rope_style,
                    true,
                );
                b.give(x, dy);
            }
            Op::Attention { q, k, v, scale, .. } => {
                let Saved::Probs(p) = &tape.saved[i] else {
                    return Err(Error::Unsupported(
                        "attention probabilities were not kept".into(),
                    ));
                };
                let (dq, dk, dv) = attention_backward(
                    &dy,
                    tape.value(q),
                    tape.value(k),
                    tape.value(v),
                    p,
                    &pass.dims,
                    T::from_f64(scale),
                );
                tape.saved[i] = Saved::Nothing;
                b.give(q, dq);
                b.give(k, dk);
                b.give(v, dv);
            }
            Op::Add { a, b: r } => {
                b.give(r, Buf::copy_of(&dy));
                b.give(a, dy);
            }
            Op::Act { gate, up, kind } => b.act(tape, &dy, (gate, up, kind, step.width)),
            Op::Outputs { x } => b.give(x, dy),
        }
        // A value whose first reader this is has had every backward read: back to the pool.
        for x in step.op.inputs() {
            if pass.first_use[x] == i {
                tape.vals[x] = None;
            }
        }
    }
    Ok(())
}

impl<T: Float> Backward<'_, T> {
    /// Adds `g` to the gradient of value `x` (taking `g` as it when there is none yet).
    fn give(&mut self, x: Slot, g: Buf<T>) {
        match &mut self.grads[x] {
            Some(acc) => acc
                .par_iter_mut()
                .zip(g.par_iter())
                .with_min_len(4096)
                .for_each(|(a, &b)| *a += b),
            none => *none = Some(g),
        }
    }

    /// The gradient buffer of value `x` for a step to add into, and whether it already
    /// holds something (`false`: a fresh buffer the step writes over).
    fn grad_for(&mut self, x: Slot, len: usize) -> (Buf<T>, bool) {
        match self.grads[x].take() {
            Some(g) => (g, true),
            None => (Buf::stale(len), false),
        }
    }

    /// The embeddings' gradients (token rows, and learned positions), when the model
    /// trains.
    fn embed(&mut self, pass: &Pass<T>, dy: &[T]) -> Result<()> {
        let Some(g) = self.full.as_deref_mut() else {
            return Ok(());
        };
        let (d, embed_scale) = (pass.d, pass.embed_scale);
        let pos = g.find("position_embd.weight");
        let (ge, gp) = g.pair_mut(g.need("token_embd.weight")?, pos);
        for (row, &t) in dy.chunks_exact(d).zip(pass.inputs) {
            ge[t as usize * d..(t as usize + 1) * d]
                .iter_mut()
                .zip(row)
                .for_each(|(a, &b)| *a += b * embed_scale);
        }
        if let Some(gp) = gp {
            for (row, &p) in dy.chunks_exact(d).zip(&pass.positions) {
                gp[p * d..(p + 1) * d]
                    .iter_mut()
                    .zip(row)
                    .for_each(|(a, &b)| *a += b);
            }
        }
        Ok(())
    }

    /// A norm's input gradient, and its weight (and bias) gradients: the model's, or a
    /// scratch arena's when the model is frozen.
    fn norm(
        &mut self,
        pass: &Pass<T>,
        tape: &Tape<T>,
        i: usize,
        dy: &[T],
        (x, id, width): (Slot, NormId, usize),
    ) -> Result<()> {
        let (wi, bi) = pass.w.norm_ids(id)?;
        let Saved::Stats(stats) = &tape.saved[i] else {
            return Err(Error::Unsupported("norm statistics were not kept".into()));
        };
        let (mut dx, add) = self.grad_for(x, dy.len());
        let (dw, db) = match self.full.as_deref_mut() {
            Some(g) => g.pair_mut(wi, bi),
            None => {
                self.scratch_norms.clear();
                self.scratch_norms.resize(2 * width, T::zero());
                let (a, b) = self.scratch_norms.split_at_mut(width);
                (a, bi.map(|_| b))
            }
        };
        norm_back(
            dy,
            tape.value(x),
            pass.w.tensor(wi),
            stats,
            &mut dx,
            add,
            dw,
            db,
            width,
            pass.layer_norm,
        );
        self.grads[x] = Some(dx);
        Ok(())
    }

    /// A linear map's input gradient, its weight and bias gradients when the model trains,
    /// and its LoRA adapter's.
    fn linear(
        &mut self,
        pass: &Pass<T>,
        tape: &Tape<T>,
        i: usize,
        dy: &[T],
        (x, id, in_width, out): (Slot, LinearId, usize, usize),
    ) -> Result<()> {
        let (w, n) = (pass.w, pass.n);
        let (wi, bi) = w.linear_ids(id)?;
        let xv = tape.value(x);
        if let Some(g) = self.full.as_deref_mut() {
            let (dw, db) = g.pair_mut(wi, bi);
            if let Some(db) = db {
                bias_back(dy, db, out);
            }
            matmul_back_w(dy, xv, dw, n, in_width, out);
        }
        let (mut dx, add) = self.grad_for(x, n * in_width);
        matmul_back_x(dy, w.tensor(wi), &mut dx, add, n, in_width, out);
        if let (Some(a), Saved::Lora(u)) = (pass.adapters, &tape.saved[i]) {
            // With u = s·x·Aᵀ: dB += dyᵀ·u, du = s·dy·B, dA += duᵀ·x, dx += du·A.
            if let Some((ai, bi)) = a.ids(id) {
                let r = a.rank;
                let mut du = Buf::zeros(n * r);
                matmul_back_x(dy, a.weights.tensor(bi), &mut du, false, n, r, out);
                let s = T::from_f64(a.scale());
                du.iter_mut().for_each(|v| *v *= s);
                if let Some(ag) = self.adapters.as_deref_mut() {
                    matmul_back_w(dy, u, ag.tensor_mut(bi), n, r, out);
                    matmul_back_w(&du, xv, ag.tensor_mut(ai), n, in_width, r);
                }
                matmul_back_x(&du, a.weights.tensor(ai), &mut dx, true, n, in_width, r);
            }
        }
        self.grads[x] = Some(dx);
        Ok(())
    }

    /// The FFN activation's gradients for its gate (when gated) and up values.
    fn act(
        &mut self,
        tape: &Tape<T>,
        dy: &[T],
        (gate, up, kind, width): (Option<Slot>, Slot, FfnKind, usize),
    ) {
        let (dgate, dup) =
            act_backward(dy, gate.map(|g| tape.value(g)), tape.value(up), kind, width);
        if let (Some(gs), Some(dg)) = (gate, dgate) {
            self.give(gs, dg);
        }
        self.give(up, dup);
    }
}
