//! The training executor of the decoder's plan: the forward pass over whole sequences,
//! keeping what each backward step reads; the loss; then the steps in reverse, each with
//! its derivative.

use fmlab_spec::{ModelSpec, NormKind, Positions};
use rayon::prelude::*;

use super::attention::{attention_backward, attention_forward, AttnDims};
use super::float::Float;
use super::layers::{
    act_backward, act_forward, add_bias, bias_back, matmul, matmul_back_w, matmul_back_x, norm,
    norm_back, rope, RopeTable,
};
use super::lora::Adapters;
use super::objectives::Objective;
use super::pool::Buf;
use super::rows::Rows;
use super::weights::Weights;
use crate::plan::{self, Op, Plan, Slot};
use crate::{Error, Result};

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
pub(super) fn run<T: Float>(
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
