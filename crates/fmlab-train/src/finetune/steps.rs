//! A finetuning run's steps: rows drawn in a seeded order, micro-batches gathered,
//! forward and backward, the optimizer step, validation, and the loop that drives them.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::prepare::order_for;
use super::{FinetuneMetrics, Finetuner, RewardStats};
use crate::chat_data::Rows;
use crate::run_state::optimizer_step;
use crate::{Error, Event, Outcome, Result};

impl Finetuner {
    /// The next `batch` training rows, a new seeded order each epoch.
    fn next_rows(&mut self) -> Vec<usize> {
        let batch = self.file.config.optim.batch;
        let mut out = Vec::with_capacity(batch);
        while out.len() < batch {
            if self.cursor.position as usize >= self.order.len() {
                self.cursor.epoch += 1;
                self.cursor.position = 0;
                self.order = order_for(
                    self.train.len(),
                    self.file.config.optim.seed,
                    self.cursor.epoch,
                );
            }
            out.push(self.order[self.cursor.position as usize]);
            self.cursor.position += 1;
        }
        out
    }

    /// One optimizer step over `grad_accum` micro-batches of `batch` rows.
    pub fn train_step(&mut self) -> Result<FinetuneMetrics> {
        let start = Instant::now();
        let c = self.file.config.optim.clone();
        self.grads.as_mut_slice().fill(0.0);
        let mut loss = 0.0;
        let mut stats: Option<RewardStats> = None;
        let mut tokens = 0u64;
        for _ in 0..c.grad_accum {
            // Rows of a micro-batch are gathered into one contiguous block.
            let picks = self.next_rows();
            let (l, s) = self.with_gathered(&picks, |me| me.pass(false, 0, picks.len(), true))?;
            tokens += (picks.len() * c.seq_len) as u64;
            loss += l / c.grad_accum as f64;
            if let Some(mut s) = s {
                s.scale(1.0 / c.grad_accum as f64);
                stats.get_or_insert_with(RewardStats::default).add(&s);
            }
        }
        let target = match &mut self.adapters {
            Some(a) => &mut a.weights,
            None => &mut self.weights,
        };
        let st = &mut self.state;
        let (grad_norm, lr) = optimizer_step(
            &c,
            st.step,
            loss,
            &mut self.grads,
            target,
            &mut self.optimizer,
        )?;
        st.step += 1;
        st.tokens += tokens;
        let seconds = start.elapsed().as_secs_f64();
        st.train_seconds += seconds;
        st.last_loss = Some(loss);
        let m = FinetuneMetrics {
            step: st.step,
            loss,
            lr,
            grad_norm,
            tokens: st.tokens,
            tokens_per_second: tokens as f64 / seconds.max(1e-9),
            rewards: stats,
        };
        st.log(&serde_json::to_value(m).map_err(Error::Json)?)?;
        Ok(m)
    }

    /// Runs `work` with the training rows `picks` moved to the front (rows `0..picks.len()`)
    /// and the packed-sequence ids unchanged, then restores the order.
    fn with_gathered<R>(
        &mut self,
        picks: &[usize],
        work: impl FnOnce(&mut Self) -> Result<R>,
    ) -> Result<R> {
        let t = &self.train;
        let l = t.seq_len;
        let mut g = Rows {
            seq_len: l,
            ..Rows::default()
        };
        for &r in picks {
            let (a, b) = (r * l, (r + 1) * l);
            g.inputs.extend_from_slice(&t.inputs[a..b]);
            g.targets.extend_from_slice(&t.targets[a..b]);
            g.segments.extend_from_slice(&t.segments[a..b]);
            g.mask.extend_from_slice(&t.mask[a..b]);
            g.sequence.extend_from_slice(&t.sequence[a..b]);
        }
        // The full rows step aside (moved, not copied) while the batch stands in for them.
        let all = std::mem::replace(&mut self.train, g);
        let out = work(self);
        self.train = all;
        out
    }

    /// Mean loss over every validation row (and reward statistics for preference runs);
    /// `None` without validation data.
    pub fn evaluate(&mut self) -> Result<Option<(f64, Option<RewardStats>)>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let batch = self.file.config.optim.batch;
        let n = self.val.len();
        let (mut total, mut stats, mut weight) = (0.0, None::<RewardStats>, 0.0);
        for r0 in (0..n).step_by(batch) {
            let r1 = (r0 + batch).min(n);
            let (l, s) = self.pass(true, r0, r1, false)?;
            let w = (r1 - r0) as f64;
            total += l * w;
            weight += w;
            if let Some(mut s) = s {
                s.scale(w);
                stats.get_or_insert_with(RewardStats::default).add(&s);
            }
        }
        if let Some(s) = stats.as_mut() {
            s.scale(1.0 / weight);
        }
        Ok(Some((total / weight, stats)))
    }

    fn eval_event(&mut self, on: &mut dyn FnMut(Event)) -> Result<Option<RewardStats>> {
        if let Some((val_loss, stats)) = self.evaluate()? {
            self.state.last_val = Some(val_loss);
            let step = self.state.step;
            let mut line = serde_json::json!({ "step": step, "val_loss": val_loss });
            if let Some(s) = stats {
                if let (Some(obj), Ok(serde_json::Value::Object(extra))) =
                    (line.as_object_mut(), serde_json::to_value(s))
                {
                    for (k, v) in extra {
                        obj.insert(format!("val_{k}"), v);
                    }
                }
            }
            self.state.log(&line)?;
            on(Event::Eval { step, val_loss });
            return Ok(stats);
        }
        Ok(None)
    }

    /// Trains until the configured steps are done or `stop` is raised; always ends with a
    /// checkpoint.
    pub fn run(&mut self, stop: &AtomicBool, on: &mut dyn FnMut(Event)) -> Result<Outcome> {
        crate::driver::drive(self, stop, on)
    }
}

impl crate::driver::Loop for Finetuner {
    fn run_dir(&self) -> &Path {
        &self.state.dir
    }

    fn steps_done(&self) -> u64 {
        self.state.step
    }

    fn cadence(&self) -> (u64, u64, u64) {
        let c = &self.file.config.optim;
        (c.steps, c.eval_every, c.checkpoint_every)
    }

    fn step(&mut self) -> Result<crate::StepMetrics> {
        let m = self.train_step()?;
        Ok(crate::StepMetrics {
            step: m.step,
            loss: m.loss,
            lr: m.lr,
            grad_norm: m.grad_norm,
            tokens: m.tokens,
            tokens_per_second: m.tokens_per_second,
            train_seconds: self.state.train_seconds,
        })
    }

    fn evaluate_now(&mut self, on: &mut dyn FnMut(Event)) -> Result<()> {
        self.eval_event(on).map(drop)
    }

    fn save(&mut self) -> Result<PathBuf> {
        self.checkpoint()
    }
}
