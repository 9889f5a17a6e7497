//! The trainable path: forward with saved activations and an explicit backward pass, over
//! dense weights, for every decoder the plan describes (the Llama family with grouped
//! key-value heads and optional biases, Gemma 3's QK-norm, sandwich norms, GeGLU and
//! sliding windows, learned positions, LayerNorm; a language-model or a scalar score head).
//! Generic over the float type so that the same code runs in f32 for training and in f64
//! for gradient checks against finite differences.
//!
//! Written out layer by layer (as llm.c does) rather than through an autograd framework:
//! every derivative is here to read. The modules, by level; each imports only from levels
//! below its own (no cycles):
//! - `executor`: one pass (checks, forward, loss, backward);
//! - `forward`, `backward`: the plan's steps in order and in reverse, one function per
//!   step kind;
//! - `pass`: `Pass` (the pass's fixed context) and `Tape` (its values and what each step
//!   saved);
//! - `objectives` (the loss and its derivative with respect to the logits), `rows` (token
//!   rows, packed segments), `lora` (adapters), `dense` (the arena to and from the
//!   inference model);
//! - `attention`, `layers` (products, norms, biases, RoPE, activations, each with its
//!   derivative), `weights` (the parameter arena);
//! - `rng`, `pool` (per-thread buffers);
//! - `float`.

mod attention;
mod backward;
mod dense;
mod executor;
mod float;
mod forward;
mod layers;
mod lora;
mod objectives;
mod pass;
mod pool;
mod rng;
mod rows;
mod weights;

pub use executor::Grads;
pub use float::Float;
pub use lora::{Adapters, LORA_TARGETS};
pub use objectives::{LogProbLoss, Objective};
pub use pool::release_buffers;
pub use rows::Rows;
pub use weights::{check_spec, Named, Weights};

use fmlab_spec::ModelSpec;

use crate::Result;
use executor::run;

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
