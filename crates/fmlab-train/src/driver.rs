//! The loop every trainer runs: steps until the configured count or a stop request,
//! validation and checkpoints on the configured cadence, and always a checkpoint at the
//! end. Pre-training and finetuning differ in what a step, an evaluation and a checkpoint
//! are, not in when they happen; this is the one place that decides when.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::pretrain::{Event, Outcome, StepMetrics};
use crate::{checkpoint, Result};

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
