//! The training executor of the decoder's plan: checks a pass's inputs, runs the forward
//! pass over whole sequences (`forward.rs`), the loss (`objectives.rs`), then, with
//! gradients wanted, the steps in reverse (`backward.rs`).

use fmlab_spec::ModelSpec;

use super::backward::backward;
use super::float::Float;
use super::forward::forward;
use super::lora::Adapters;
use super::objectives::{loss_and_dlogits, Objective};
use super::pass::{Pass, Tape};
use super::pool::Buf;
use super::rows::Rows;
use super::weights::Weights;
use crate::plan::{self, Plan};
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

/// The training executor of the decoder's [`Plan`]: the forward pass over whole sequences,
/// keeping what each backward step reads; the loss; then, with `grads`, the steps in
/// reverse, each with its derivative. The logits are copied into `logits_out` when given.
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
    let seq = rows.seq_len(spec)?;
    check_weights(spec, w, head)?;
    let starts = rows.segment_starts(seq)?;
    let (full, adapter_grads) = gradient_arenas(grads, w, adapters)?;
    if let Some(a) = adapters {
        a.check(spec)?;
    }
    let training = full.is_some() || adapter_grads.is_some();
    let pass = Pass::new(
        spec,
        w,
        adapters,
        &plan,
        rows.inputs,
        (rows.rows, seq),
        starts,
        training,
    );
    let mut tape = Tape::new(plan.steps.len());
    forward(&pass, &mut tape)?;
    let n = pass.n;
    let v = match head {
        plan::Head::Score => 1,
        plan::Head::Lm => spec.vocab_size as usize,
    };
    let mut dlogits = tape.vals[plan.logits]
        .take()
        .unwrap_or_else(|| Buf::zeros(n * v));
    if let Some(out) = logits_out {
        out.clear();
        out.extend_from_slice(&dlogits);
    }
    let loss = loss_and_dlogits(objective, &mut dlogits, rows.targets, n, v, training)?;
    if training {
        backward(&pass, &mut tape, dlogits, full, adapter_grads)?;
    }
    Ok(loss)
}

/// Whether `w` has the tensors of `spec`'s plan ending in `head`.
fn check_weights<T: Float>(spec: &ModelSpec, w: &Weights<T>, head: plan::Head) -> Result<()> {
    if w.descs() == plan::tensors_with(spec, head).as_slice() {
        return Ok(());
    }
    Err(Error::Unsupported(match head {
        plan::Head::Score if w.find("score.weight").is_none() => {
            "a reward objective needs weights with a score head (Weights::with_score_head)".into()
        }
        _ => "the weights were made for a different spec".to_string(),
    }))
}

/// The gradient arenas `grads` names, checked against the weights and adapters they are
/// for: the model's weights', the adapters'.
#[allow(clippy::type_complexity)]
fn gradient_arenas<'g, T: Float>(
    grads: Grads<'g, T>,
    w: &Weights<T>,
    adapters: Option<&Adapters<T>>,
) -> Result<(Option<&'g mut Weights<T>>, Option<&'g mut Weights<T>>)> {
    match grads {
        Grads::None => Ok((None, None)),
        Grads::Full(g) => {
            if g.descs() != w.descs() {
                return Err(Error::Unsupported(
                    "the gradients were made for a different spec".into(),
                ));
            }
            Ok((Some(g), None))
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
            Ok((None, Some(g)))
        }
    }
}
