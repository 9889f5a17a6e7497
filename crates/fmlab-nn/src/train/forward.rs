//! The forward pass of the training executor: the plan's steps in order, one function per
//! step kind, each value dropped once its last reader is done unless a backward step reads
//! it.

use fmlab_spec::FfnKind;
use rayon::prelude::*;

use super::attention::attention_forward;
use super::float::Float;
use super::layers::{act_forward, add_bias, matmul, norm, rope};
use super::pass::{Pass, Saved, Tape};
use super::pool::Buf;
use crate::plan::{LinearId, NormId, Op, Slot};
use crate::Result;

/// Runs every step of the pass's plan, filling `tape` with the values and saved
/// statistics.
pub(super) fn forward<T: Float>(pass: &Pass<T>, tape: &mut Tape<T>) -> Result<()> {
    for (i, step) in pass.plan.steps.iter().enumerate() {
        let (out, saved) = match step.op {
            Op::Embed => (embed(pass)?, Saved::Nothing),
            Op::Norm { x, id, width } => norm_step(pass, tape.value(x), id, width)?,
            Op::Linear { x, id, in_width } => {
                linear(pass, tape.value(x), id, in_width, step.width)?
            }
            Op::Rope { x, heads, base } => {
                let mut y = tape.take_or_copy(pass, x, i);
                rope(
                    &mut y,
                    &pass.positions,
                    heads,
                    pass.hd,
                    pass.table(base),
                    pass.plan.rope_style,
                    false,
                );
                (y, Saved::Nothing)
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
                    tape.value(q),
                    tape.value(k),
                    tape.value(v),
                    &pass.dims,
                    T::from_f64(scale),
                    window,
                );
                let saved = match pass.training {
                    true => Saved::Probs(p),
                    false => Saved::Nothing,
                };
                (att, saved)
            }
            Op::Add { a, b } => (
                add(pass.n * step.width, tape.value(a), tape.value(b)),
                Saved::Nothing,
            ),
            Op::Act { gate, up, kind } => (act(tape, gate, up, kind, step.width), Saved::Nothing),
            Op::Outputs { x } => (tape.take_or_copy(pass, x, i), Saved::Nothing),
        };
        tape.vals[i] = Some(out);
        tape.saved[i] = saved;
        for x in step.op.inputs() {
            if pass.last(x, i) {
                tape.vals[x] = None;
            }
        }
    }
    Ok(())
}

/// The token embeddings of the inputs (scaled when the spec says so), plus learned
/// positions when the model has them.
fn embed<T: Float>(pass: &Pass<T>) -> Result<Buf<T>> {
    let (w, d, embed_scale) = (pass.w, pass.d, pass.embed_scale);
    let mut x = Buf::stale(pass.n * d);
    let pos = w.get("position_embd.weight");
    let embed = w.tensor(w.need("token_embd.weight")?);
    x.par_chunks_mut(d)
        .zip(pass.inputs.par_iter().zip(pass.positions.par_iter()))
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
    Ok(x)
}

/// A norm of `width`-wide rows, saving each row's statistics.
fn norm_step<T: Float>(
    pass: &Pass<T>,
    x: &[T],
    id: NormId,
    width: usize,
) -> Result<(Buf<T>, Saved<T>)> {
    let w = pass.w;
    let (wi, bi) = w.norm_ids(id)?;
    let (y, stats) = norm(
        x,
        w.tensor(wi),
        bi.map(|b| w.tensor(b)),
        width,
        pass.eps,
        pass.layer_norm,
    );
    Ok((y, Saved::Stats(stats)))
}

/// A linear map (with its bias, and its LoRA adapter when the pass has one on it).
fn linear<T: Float>(
    pass: &Pass<T>,
    xv: &[T],
    id: LinearId,
    in_width: usize,
    width: usize,
) -> Result<(Buf<T>, Saved<T>)> {
    let (w, n) = (pass.w, pass.n);
    let (wi, bi) = w.linear_ids(id)?;
    let mut y = matmul(xv, w.tensor(wi), n, in_width, width);
    if let Some(b) = bi {
        add_bias(&mut y, w.tensor(b), width);
    }
    let mut saved = Saved::Nothing;
    if let Some((a, ai, bi)) = pass
        .adapters
        .and_then(|a| a.ids(id).map(|(x, y)| (a, x, y)))
    {
        // y += s·(x·Aᵀ)·Bᵀ, with s·x·Aᵀ kept for the backward pass.
        let r = a.rank;
        let mut u = matmul(xv, a.weights.tensor(ai), n, in_width, r);
        let s = T::from_f64(a.scale());
        u.iter_mut().for_each(|v| *v *= s);
        let delta = matmul(&u, a.weights.tensor(bi), n, r, width);
        y.par_iter_mut()
            .zip(delta.par_iter())
            .with_min_len(4096)
            .for_each(|(y, &d)| *y += d);
        if pass.training {
            saved = Saved::Lora(u);
        }
    }
    Ok((y, saved))
}

/// The residual addition a + b (`len` values).
fn add<T: Float>(len: usize, a: &[T], b: &[T]) -> Buf<T> {
    let mut y = Buf::stale(len);
    y.par_iter_mut()
        .zip(a.par_iter().zip(b.par_iter()))
        .with_min_len(4096)
        .for_each(|(y, (&a, &b))| *y = a + b);
    y
}

/// The FFN activation of the (gate and) up values.
fn act<T: Float>(tape: &Tape<T>, gate: Option<Slot>, up: Slot, kind: FfnKind, f: usize) -> Buf<T> {
    act_forward(gate.map(|g| tape.value(g)), tape.value(up), kind, f)
}
