//! The speedrun's planner: training steps timed at several depths, and the depth whose size
//! is nearest the compute-optimal one (Epoch AI's refit of Chinchilla) for the seconds left.

use std::time::Instant;

use fmlab_nn::train::{loss_and_grad, Weights};
use fmlab_spec::ModelSpec;

use crate::report::Candidate;
use crate::Error;

/// Bytes per token of a 2k-vocabulary tokenizer on the world (measured: 3.8); only sizes
/// the world before the tokenizer exists.
pub const BYTES_PER_TOKEN_GUESS: f64 = 3.8;

/// The shape of the training steps the planner times.
#[derive(Debug, Clone, Copy)]
pub struct StepShape {
    pub vocab: u64,
    pub seq_len: usize,
    pub batch: usize,
}

/// Tokens per second of training steps at `depth` (the median of the steps after one
/// warm-up step, for at least a second), on fixed pseudo-random tokens.
pub fn measure(depth: u64, shape: StepShape) -> Result<(ModelSpec, f64), Error> {
    let StepShape {
        vocab,
        seq_len,
        batch,
    } = shape;
    let spec = fmlab_spec::from_depth(depth, vocab, seq_len as u64)?;
    let w = Weights::<f32>::init(&spec, 1)?;
    let mut g = Weights::<f32>::zeros(&spec)?;
    let n = seq_len * batch;
    let inputs: Vec<u32> = (0..n).map(|i| (i * 7919 % vocab as usize) as u32).collect();
    let targets: Vec<u32> = (0..n)
        .map(|i| (i * 104_729 % vocab as usize) as u32)
        .collect();
    // One warm-up step (buffers, threads), then steps for at least a second: a small
    // model's first steps run well below its steady speed (three steps once measured depth
    // 1 at 50K tokens/s; it then trained at 80K).
    loss_and_grad(&spec, &w, &inputs, &targets, batch, Some(&mut g))?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed().as_secs_f64() < 1.0 && times.len() < 50) {
        let t = Instant::now();
        loss_and_grad(&spec, &w, &inputs, &targets, batch, Some(&mut g))?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    // The optimizer step and bookkeeping add a few percent; keep a margin for them.
    let step = times[times.len() / 2] * 1.08;
    Ok((spec, n as f64 / step))
}

/// Times depths from `first` (or only `depth`) and returns them with the index of the one
/// to train: nearest its compute-optimal size for `train_seconds` of training. Stops timing
/// deeper models once one is more than twice its optimum. `on_candidate` hears each one.
pub fn plan(
    depth: Option<u64>,
    first: u64,
    shape: StepShape,
    train_seconds: f64,
    on_candidate: &mut dyn FnMut(&Candidate),
) -> Result<(Vec<Candidate>, usize), Error> {
    let depths: Vec<u64> = match depth {
        Some(d) => vec![d],
        None => (first..=6).collect(),
    };
    let mut out = Vec::new();
    for d in depths {
        let (spec, tps) = measure(d, shape)?;
        let params = spec.params().total;
        let tokens = tps * train_seconds;
        let optimal = fmlab_scaling::EPOCH
            .optimal(6.0 * params as f64 * tokens)
            .map(|a| a.params)
            .unwrap_or(f64::NAN);
        let candidate = Candidate {
            depth: d,
            d_model: spec.d_model,
            params,
            tokens_per_second: tps,
            tokens,
            optimal_params: optimal,
        };
        on_candidate(&candidate);
        out.push(candidate);
        // Deeper models only get further from optimal once one is too large.
        if depth.is_none() && (params as f64) > 2.0 * optimal {
            break;
        }
    }
    let gap = |c: &Candidate| (c.params as f64 / c.optimal_params).ln().abs();
    let best = out
        .iter()
        .enumerate()
        .min_by(|a, b| gap(a.1).total_cmp(&gap(b.1)))
        .map(|(i, _)| i)
        .ok_or(Error::NoDepth)?;
    Ok((out, best))
}
