//! `fmlab train pretrain`: arguments and a TOML configuration mapped into the library's
//! [`PretrainSettings`], the loop driven (`fmlab_train::session`) with a progress bar,
//! Ctrl-C turned into a clean checkpoint-and-exit, and a loss-curve PNG at the end (the
//! bar, Ctrl-C and plot shared by every training command are in `progress.rs`).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use fmlab_train::pretrain::Pretrainer;
use fmlab_train::{PretrainSettings, PretrainSummary, ScheduleKind};

use crate::progress::{install_ctrl_c, plot, Bar};

#[derive(Subcommand)]
pub enum TrainCommand {
    /// Pre-train a decoder from scratch on token shards (`fmlab data tokenize`), or
    /// continue a run with --resume. Ctrl-C writes a checkpoint and exits.
    Pretrain(Box<PretrainArgs>),
    /// Supervised finetuning on conversations: loss on the assistant's tokens only,
    /// conversations packed into rows they cannot see across; full weights or LoRA.
    Sft(Box<crate::finetune_cmd::SftArgs>),
    /// Preference finetuning (DPO; IPO, hinge, SimPO) on chosen/rejected pairs against the
    /// base as a frozen reference; full weights or LoRA.
    Dpo(Box<crate::finetune_cmd::DpoArgs>),
    /// A Bradley–Terry reward model: the backbone with a scalar head trained on
    /// chosen/rejected pairs; reports pairwise accuracy on held-out pairs. Use it with
    /// `fmlab generate --best-of N --reward-model RUN`.
    Reward(Box<crate::finetune_cmd::RewardArgs>),
}

/// Every setting; the command line wins over `--config`, which wins over the defaults.
#[derive(Args, Clone)]
pub struct Settings {
    /// The depth dial: width 64·depth, heads of 128, SwiGLU, RoPE (see `fmlab_spec::from_depth`)
    /// [default: 4].
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    pub depth: Option<u64>,
    /// Tokens per training sequence (also the model's context) [default: 256].
    #[arg(value_parser = crate::numbers::integer::<usize>, long)]
    pub seq_len: Option<usize>,
    /// Sequences per micro-batch [default: 8].
    #[arg(value_parser = crate::numbers::integer::<usize>, long)]
    pub batch: Option<usize>,
    /// Micro-batches per optimizer step [default: 1].
    #[arg(value_parser = crate::numbers::integer::<usize>, long)]
    pub grad_accum: Option<usize>,
    /// Optimizer steps [default: the compute-optimal budget, 20 tokens per parameter].
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    pub steps: Option<u64>,
    /// cosine, wsd or constant [default: cosine].
    #[arg(long)]
    pub schedule: Option<String>,
    /// Peak learning rate [default: 3e-3].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Final learning rate of cosine and WSD [default: lr / 10].
    #[arg(long)]
    pub min_lr: Option<f32>,
    /// Warmup steps [default: 5% of the steps, at most 200].
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    pub warmup: Option<u64>,
    /// WSD's decay steps [default: 20% of the steps].
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    pub decay_steps: Option<u64>,
    /// AdamW weight decay on matrices [default: 0.1].
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// AdamW's first-moment decay [default: 0.9].
    #[arg(long)]
    pub beta1: Option<f32>,
    /// AdamW's second-moment decay [default: 0.95].
    #[arg(long)]
    pub beta2: Option<f32>,
    /// Global gradient-norm clip, 0 for none [default: 1.0].
    #[arg(long)]
    pub grad_clip: Option<f32>,
    /// Validation loss every N steps [default: steps / 10].
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    pub eval_every: Option<u64>,
    /// Validation windows per evaluation [default: 16].
    #[arg(value_parser = crate::numbers::integer::<usize>, long)]
    pub eval_windows: Option<usize>,
    /// A checkpoint every N steps [default: steps / 5].
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    pub checkpoint_every: Option<u64>,
    /// Checkpoints kept [default: 3].
    #[arg(value_parser = crate::numbers::integer::<usize>, long)]
    pub keep: Option<usize>,
    /// Seeds the initial weights and the order of training windows [default: 0].
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    pub seed: Option<u64>,
}

impl Settings {
    /// The library's settings (a `[model]` table comes from a TOML file only).
    fn library(&self) -> Result<PretrainSettings> {
        let schedule = match &self.schedule {
            Some(name) => Some(ScheduleKind::parse(name, &ScheduleKind::ALL)?),
            None => None,
        };
        Ok(PretrainSettings {
            depth: self.depth,
            seq_len: self.seq_len,
            batch: self.batch,
            grad_accum: self.grad_accum,
            steps: self.steps,
            schedule,
            lr: self.lr,
            min_lr: self.min_lr,
            warmup: self.warmup,
            decay_steps: self.decay_steps,
            weight_decay: self.weight_decay,
            beta1: self.beta1,
            beta2: self.beta2,
            grad_clip: self.grad_clip,
            eval_every: self.eval_every,
            eval_windows: self.eval_windows,
            checkpoint_every: self.checkpoint_every,
            keep: self.keep,
            seed: self.seed,
            model: None,
        })
    }
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct PretrainArgs {
    /// Token shards (`fmlab data tokenize --out DIR`).
    #[arg(long, required_unless_present = "resume")]
    shards: Option<PathBuf>,
    /// The tokenizer the shards were made with (copied into the run, for generation and
    /// export) [default: the shards' own tokenizer.json, which `data tokenize` keeps].
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// A TOML file with any of the settings below (same names, underscores), and
    /// optionally a `[model]` table.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The run folder to create.
    #[arg(long, default_value = "run", conflicts_with = "resume")]
    out: PathBuf,
    /// Continue the run in this folder from its last good checkpoint (--steps may extend it).
    #[arg(long)]
    resume: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    /// Print the final summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: TrainCommand) -> Result<()> {
    match cmd {
        TrainCommand::Pretrain(args) => pretrain(*args),
        TrainCommand::Sft(args) => crate::finetune_cmd::sft(*args),
        TrainCommand::Dpo(args) => crate::finetune_cmd::dpo(*args),
        TrainCommand::Reward(args) => crate::finetune_cmd::reward(*args),
    }
}

fn pretrain(args: PretrainArgs) -> Result<()> {
    let stop = install_ctrl_c()?;
    let mut trainer = match &args.resume {
        Some(run) => {
            let (t, resumed) = Pretrainer::resume(run, args.settings.steps)
                .with_context(|| format!("resuming {}", run.display()))?;
            for (dir, why) in &resumed.skipped {
                eprintln!("warning: skipped checkpoint {}: {why}", dir.display());
            }
            eprintln!(
                "resuming {} at step {} of {} ({})",
                run.display(),
                resumed.step,
                t.config().steps,
                resumed.dir.display()
            );
            t
        }
        None => {
            let shards = args.shards.as_deref().context("--shards is required")?;
            let manifest = fmlab_data::shards::ShardManifest::read(shards)
                .with_context(|| format!("reading the shards in {}", shards.display()))?;
            let file: PretrainSettings = match &args.config {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    toml::from_str(&text).with_context(|| format!("{}", p.display()))?
                }
                None => PretrainSettings::default(),
            };
            let settings = args.settings.library()?.or(file);
            let (spec, config) = settings.resolve(manifest.vocab_size)?;
            // The tokenizer given, or the one `data tokenize` kept beside the shards: a run
            // without one could be trained but never used.
            let own = shards.join("tokenizer.json");
            let tokenizer = match &args.tokenizer {
                Some(t) => t.clone(),
                None if own.is_file() => own,
                None => bail!(
                    "{} holds no tokenizer.json: give --tokenizer, the one the shards were made with ({})",
                    shards.display(),
                    manifest.tokenizer
                ),
            };
            Pretrainer::create(&args.out, spec, config, shards, Some(&tokenizer))?
        }
    };
    let summary = drive(&mut trainer, &stop, false)?;
    if args.json {
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&summary)?))?;
    } else {
        crate::out(&summary.summary.describe(Some(&summary.loss_plot)))?;
    }
    if summary.summary.interrupted {
        eprintln!(
            "interrupted: continue with `fmlab train pretrain --resume {}`",
            trainer.run_dir().display()
        );
    }
    Ok(())
}

/// A pre-training session's summary and its loss curve (the `--json` output).
#[derive(serde::Serialize, Debug, Clone)]
struct Summary {
    #[serde(flatten)]
    pub summary: PretrainSummary,
    pub loss_plot: PathBuf,
}

/// Runs the loop with a progress bar (step, loss, tokens/s, MFU, ETA) and writes the
/// loss curve; returns the session's summary.
fn drive(t: &mut Pretrainer, stop: &AtomicBool, quiet: bool) -> Result<Summary> {
    let peak = fmlab_kernels::peak_flops().flops;
    let mut bar = Bar::new(quiet, None);
    let summary = fmlab_train::session::pretrain(t, stop, peak, &mut |p| bar.on(p));
    bar.finish();
    let summary = summary?;
    let loss_plot = plot(&summary.run, "pre-training")?;
    Ok(Summary { summary, loss_plot })
}
