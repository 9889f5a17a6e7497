//! A training session from a caller's side: the loop driven to its end or a stop request,
//! progress reported through a callback ([`Progress`]), and what the session did returned
//! as a summary — validation losses first and last, throughput and MFU (pre-training),
//! the checkpoint written, the reward statistics (preference and reward runs).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::chat_data::Skipped;
pub use crate::finetune::FinetuneSession;
use crate::finetune::{RewardStats, Stage};
use crate::{checkpoint, metrics, Error, Event, Outcome, Pretrainer, Result};

/// What a session reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Before the first step: where the run stands.
    Start { step: u64, total: u64 },
    /// After each optimizer step. Pre-training reports tokens per second over the session
    /// so far and the MFU they make; finetuning the step's own tokens per second.
    Step {
        step: u64,
        total: u64,
        loss: f64,
        lr: f32,
        tokens_per_second: f64,
        mfu: Option<f64>,
    },
    /// A validation loss.
    Eval { step: u64, val_loss: f64 },
}

/// What a session keeps of the loop's evaluations and checkpoints.
#[derive(Default)]
struct Seen {
    /// The validation loss at step 0, when this session evaluated it.
    initial_val: Option<f64>,
    last_val: Option<f64>,
    last_ckpt: Option<PathBuf>,
}

impl Seen {
    /// Notes an evaluation (passed on as progress) or a checkpoint; steps are the caller's.
    fn record(&mut self, e: Event, on: &mut dyn FnMut(Progress)) {
        match e {
            Event::Eval { step, val_loss } => {
                if step == 0 {
                    self.initial_val = Some(val_loss);
                }
                self.last_val = Some(val_loss);
                on(Progress::Eval { step, val_loss });
            }
            Event::Checkpoint { dir, .. } => self.last_ckpt = Some(dir),
            Event::Step(_) => {}
        }
    }
}

/// What a pre-training session did (the figures `report.json` keeps).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PretrainSummary {
    pub run: PathBuf,
    pub checkpoint: PathBuf,
    pub params: u64,
    pub steps: u64,
    pub tokens: u64,
    pub initial_val_loss: Option<f64>,
    pub final_val_loss: Option<f64>,
    pub final_train_loss: Option<f64>,
    pub tokens_per_second: f64,
    pub mfu: f64,
    pub peak_flops: f64,
    pub train_seconds: f64,
    pub interrupted: bool,
}

/// A loss as the summaries print it: four decimals, `-` when there is none.
fn loss(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.4}"))
}

impl PretrainSummary {
    /// The summary as lines of text, ending with the loss curve's path when one was drawn.
    pub fn describe(&self, loss_plot: Option<&Path>) -> String {
        let mut text = format!(
            "{}: {} steps, {} tokens, {:.0} tokens/s, MFU {:.1}%\nval loss {} → {} (train {})\ncheckpoint {}\n",
            self.run.display(),
            self.steps,
            fmlab_spec::units::si(self.tokens as f64),
            self.tokens_per_second,
            100.0 * self.mfu,
            loss(self.initial_val_loss),
            loss(self.final_val_loss),
            loss(self.final_train_loss),
            self.checkpoint.display(),
        );
        if let Some(p) = loss_plot {
            text += &format!("loss curve {}\n", p.display());
        }
        text
    }
}

/// Trains `t` until its steps are done or `stop` is raised; `peak_flops` (this machine's,
/// measured) turns throughput into MFU.
pub fn pretrain(
    t: &mut Pretrainer,
    stop: &AtomicBool,
    peak_flops: f64,
    on: &mut dyn FnMut(Progress),
) -> Result<PretrainSummary> {
    let spec = t.spec().clone();
    let config = t.config().clone();
    let params = spec.params();
    let mfu_at = |tps: f64, peak_flops: f64| {
        fmlab_scaling::mfu(
            tps,
            params.non_embedding as f64,
            spec.n_layers,
            spec.n_heads,
            spec.head_dim,
            config.seq_len as u64,
            peak_flops,
        )
        .unwrap_or(0.0)
    };
    let mfu_of = |tps: f64| mfu_at(tps, peak_flops);
    let total = config.steps;
    on(Progress::Start {
        step: t.step_count(),
        total,
    });
    let mut seen = Seen::default();
    let mut session_tokens = 0u64;
    let mut session_seconds = 0.0;
    let outcome = t.run(stop, &mut |e| match e {
        Event::Step(m) => {
            session_tokens += config.tokens_per_step();
            session_seconds += config.tokens_per_step() as f64 / m.tokens_per_second;
            let tps = session_tokens as f64 / session_seconds.max(1e-9);
            on(Progress::Step {
                step: m.step,
                total,
                loss: m.loss,
                lr: m.lr,
                tokens_per_second: tps,
                mfu: Some(mfu_of(tps)),
            });
        }
        other => seen.record(other, on),
    })?;
    fmlab_nn::train::release_buffers();
    let run = t.run_dir().to_path_buf();
    let metrics = metrics::read(&run)?;
    let tps = session_tokens as f64 / session_seconds.max(1e-9);
    // Above 100% the peak was measured while the cores were shared: measured again now.
    let peak_flops = if mfu_of(tps) > 1.0 {
        fmlab_kernels::peak_flops_at_least(mfu_of(tps) * peak_flops).flops
    } else {
        peak_flops
    };
    let checkpoint = match seen.last_ckpt {
        Some(d) => d,
        None => checkpoint::list(&run)
            .last()
            .map(|c| c.1.clone())
            .ok_or_else(|| Error::Message("the run has no checkpoint".into()))?,
    };
    Ok(PretrainSummary {
        run,
        checkpoint,
        params: params.total,
        steps: t.step_count(),
        tokens: t.step_count() * config.tokens_per_step(),
        // A resumed run evaluated its start in an earlier session.
        initial_val_loss: seen.initial_val.or(metrics.val.first().map(|p| p.1)),
        final_val_loss: seen.last_val.or(metrics.val.last().map(|p| p.1)),
        final_train_loss: metrics.train.last().map(|p| p.1),
        tokens_per_second: tps,
        mfu: mfu_at(tps, peak_flops),
        peak_flops,
        train_seconds: session_seconds,
        interrupted: outcome == Outcome::Interrupted,
    })
}

/// What a finetuning session did.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct FinetuneSummary {
    pub run: PathBuf,
    pub checkpoint: PathBuf,
    pub stage: Stage,
    pub steps: u64,
    pub train_records: usize,
    pub val_records: usize,
    pub skipped: Skipped,
    pub skipped_too_long: usize,
    pub initial_val_loss: Option<f64>,
    pub final_val_loss: Option<f64>,
    pub first_train_loss: Option<f64>,
    pub final_train_loss: Option<f64>,
    /// The last step's preference metrics (a reward model's: its rewards, not β-scaled
    /// log-ratios).
    pub rewards: Option<RewardStats>,
    /// The same on the held-out pairs at the last evaluation (a reward model's pairwise
    /// accuracy is `val_rewards.accuracy`).
    pub val_rewards: Option<RewardStats>,
    pub train_seconds: f64,
    pub interrupted: bool,
}

impl FinetuneSummary {
    /// The summary as lines of text: losses, rewards, records left out, the checkpoint,
    /// the loss curve's path when one was drawn, and how to continue an interrupted run.
    pub fn describe(&self, loss_plot: Option<&Path>) -> String {
        let mut text = format!(
            "{}: {} {} steps on {} records ({} held out)\ntrain loss {} → {}, val loss {} → {}\n",
            self.run.display(),
            self.stage.name(),
            self.steps,
            self.train_records,
            self.val_records,
            loss(self.first_train_loss),
            loss(self.final_train_loss),
            loss(self.initial_val_loss),
            loss(self.final_val_loss),
        );
        if let Some(r) = &self.rewards {
            text += &format!(
                "rewards: chosen {:.4}, rejected {:.4}, margin {:.4}, accuracy {:.2}\n",
                r.chosen, r.rejected, r.margin, r.accuracy
            );
        }
        if let Some(v) = &self.val_rewards {
            text += &format!("held-out pairs: accuracy {:.3}\n", v.accuracy);
        }
        let skipped = self.skipped.describe();
        if !skipped.is_empty() {
            text += &format!("{skipped}\n");
        }
        if self.skipped_too_long > 0 {
            text += &format!(
                "{} records longer than a row left out\n",
                self.skipped_too_long
            );
        }
        text += &format!("checkpoint {}\n", self.checkpoint.display());
        if let Some(p) = loss_plot {
            text += &format!("loss curve {}\n", p.display());
        }
        if self.interrupted {
            text += &format!(
                "interrupted at step {}: continue with `fmlab train {} --resume {}`\n",
                self.steps,
                self.stage.command(),
                self.run.display()
            );
        }
        text
    }
}

impl FinetuneSession {
    /// Trains until the steps are done, `stop` is raised or `deadline` has passed (checked
    /// after each step).
    pub fn run(
        mut self,
        stop: &AtomicBool,
        deadline: Option<Instant>,
        on: &mut dyn FnMut(Progress),
    ) -> Result<FinetuneSummary> {
        let ft = &mut self.finetuner;
        let total = ft.file.config.optim.steps;
        on(Progress::Start {
            step: ft.step_count(),
            total,
        });
        let mut seen = Seen::default();
        let started = Instant::now();
        // The loop polls one flag: raised after a step when `stop` was raised or the
        // deadline has passed.
        let local = AtomicBool::new(stop.load(Ordering::Relaxed));
        let outcome = ft.run(&local, &mut |e| match e {
            Event::Step(m) => {
                on(Progress::Step {
                    step: m.step,
                    total,
                    loss: m.loss,
                    lr: m.lr,
                    tokens_per_second: m.tokens_per_second,
                    mfu: None,
                });
                if deadline.is_some_and(|d| Instant::now() >= d) || stop.load(Ordering::Relaxed) {
                    local.store(true, Ordering::Relaxed);
                }
            }
            other => seen.record(other, on),
        })?;
        fmlab_nn::train::release_buffers();
        let run = ft.run_dir().to_path_buf();
        let metrics = metrics::read(&run)?;
        Ok(FinetuneSummary {
            checkpoint: seen
                .last_ckpt
                .ok_or_else(|| Error::Message("the run wrote no checkpoint".into()))?,
            run,
            stage: ft.file.stage,
            steps: ft.step_count(),
            train_records: self.counts.train,
            val_records: self.counts.val,
            skipped: self.skipped,
            skipped_too_long: self.counts.too_long,
            // A resumed run evaluated its start in an earlier session.
            initial_val_loss: seen.initial_val.or(metrics.val.first().map(|p| p.1)),
            final_val_loss: seen.last_val,
            first_train_loss: metrics.train.first().map(|p| p.1),
            final_train_loss: metrics.train.last().map(|p| p.1),
            rewards: metrics.rewards,
            val_rewards: metrics.val_rewards,
            train_seconds: started.elapsed().as_secs_f64(),
            interrupted: outcome == Outcome::Interrupted,
        })
    }
}
