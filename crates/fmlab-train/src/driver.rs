//! The loop every trainer runs: steps until the configured count or a stop request,
//! validation and checkpoints on the configured cadence, and always a checkpoint at the
//! end. Pre-training and finetuning differ in what a step, an evaluation and a checkpoint
//! are, not in when they happen; this is the one place that decides when. The settings
//! both loops share ([`LoopConfig`]) and what they report ([`Event`], [`StepMetrics`],
//! [`Outcome`]) live here too.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use fmlab_spec::ModelSpec;
use serde::{Deserialize, Serialize};

use crate::{checkpoint, AdamW, AdamWConfig, Error, Result, Schedule};

/// How a loop trains (pre-training's whole configuration, finetuning's `optim`). Stored in
/// `run.json` and in every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopConfig {
    /// Tokens per training sequence.
    pub seq_len: usize,
    /// Sequences per micro-batch.
    pub batch: usize,
    /// Micro-batches per optimizer step (gradients averaged over them).
    pub grad_accum: usize,
    /// Optimizer steps in the run.
    pub steps: u64,
    pub schedule: Schedule,
    pub adamw: AdamWConfig,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub grad_clip: f32,
    /// Validation loss every this many steps (and at the start and the end); 0: only then.
    pub eval_every: u64,
    /// Validation windows (of `seq_len + 1` tokens) per evaluation.
    pub eval_windows: usize,
    /// A checkpoint every this many steps (and at the end); 0: only at the end.
    pub checkpoint_every: u64,
    /// Checkpoints kept (the newest).
    pub keep: usize,
    /// Seeds the initial weights and the order of training windows.
    pub seed: u64,
}

impl LoopConfig {
    /// Tokens per optimizer step.
    pub fn tokens_per_step(&self) -> u64 {
        (self.seq_len * self.batch * self.grad_accum) as u64
    }

    pub fn validate(&self, spec: &ModelSpec) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.seq_len == 0 || self.batch == 0 || self.grad_accum == 0 {
            return bad(format!(
                "sequence length ({}), batch ({}) and accumulation ({}) must be at least 1",
                self.seq_len, self.batch, self.grad_accum
            ));
        }
        if self.seq_len as u64 > spec.context_length {
            return bad(format!(
                "sequence length {} exceeds the model's context of {}",
                self.seq_len, spec.context_length
            ));
        }
        if self.steps == 0 {
            return bad("steps must be at least 1".into());
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return bad(format!("gradient clip must be ≥ 0, got {}", self.grad_clip));
        }
        self.schedule.validate()?;
        AdamW::new(self.adamw, &[], &[])?;
        Ok(())
    }
}

/// One optimizer step's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepMetrics {
    pub step: u64,
    pub loss: f64,
    pub lr: f32,
    pub grad_norm: f32,
    /// Training tokens consumed so far.
    pub tokens: u64,
    pub tokens_per_second: f64,
    pub train_seconds: f64,
}

/// What the loop reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    Step(StepMetrics),
    Eval { step: u64, val_loss: f64 },
    Checkpoint { step: u64, dir: PathBuf },
}

/// How a call to [`Pretrainer::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All configured steps are done (the final checkpoint is written).
    Finished,
    /// The stop flag was raised; a checkpoint of the last step is written.
    Interrupted,
}

/// What a trainer exposes to [`drive`].
pub(crate) trait Loop {
    /// The run folder (where earlier checkpoints are listed).
    fn run_dir(&self) -> &Path;
    /// Optimizer steps taken so far.
    fn steps_done(&self) -> u64;
    /// (total steps, validation every N steps, a checkpoint every N steps); 0 = never.
    fn cadence(&self) -> (u64, u64, u64);
    fn step(&mut self) -> Result<StepMetrics>;
    /// Evaluates, logs and reports a validation loss through `on` (if there is a split).
    fn evaluate_now(&mut self, on: &mut dyn FnMut(Event)) -> Result<()>;
    fn save(&mut self) -> Result<PathBuf>;
}

/// Trains until the configured steps are done or `stop` is raised, evaluating before the
/// first step of a fresh run, after every `eval_every` steps and after the last; ends with
/// a checkpoint unless the last step already has one.
pub(crate) fn drive(
    t: &mut dyn Loop,
    stop: &AtomicBool,
    on: &mut dyn FnMut(Event),
) -> Result<Outcome> {
    let (steps, eval_every, checkpoint_every) = t.cadence();
    if t.steps_done() == 0 {
        t.evaluate_now(on)?;
    }
    let mut saved_at = checkpoint::list(t.run_dir()).last().map(|c| c.0);
    while t.steps_done() < steps {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let m = t.step()?;
        on(Event::Step(m));
        let step = t.steps_done();
        let last = step == steps;
        if last || (eval_every > 0 && step.is_multiple_of(eval_every)) {
            t.evaluate_now(on)?;
        }
        if !last && checkpoint_every > 0 && step.is_multiple_of(checkpoint_every) {
            let dir = t.save()?;
            saved_at = Some(step);
            on(Event::Checkpoint { step, dir });
        }
    }
    let step = t.steps_done();
    if saved_at != Some(step) {
        let dir = t.save()?;
        on(Event::Checkpoint { step, dir });
    }
    Ok(if step >= steps {
        Outcome::Finished
    } else {
        Outcome::Interrupted
    })
}
