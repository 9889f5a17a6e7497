//! `fmlab train pretrain`: arguments and a TOML configuration merged into a model spec and a
//! [`PretrainConfig`], the loop driven with a progress bar, Ctrl-C turned into a clean
//! checkpoint-and-exit, and a loss-curve PNG at the end.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use fmlab_spec::ModelSpec;
use fmlab_train::pretrain::Pretrainer;
use fmlab_train::{AdamWConfig, Event, Outcome, PretrainConfig, Schedule};
use serde::Deserialize;

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
#[derive(Args, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The depth dial: width 64·depth, heads of 128, SwiGLU, RoPE (see `fmlab_spec::from_depth`)
    /// [default: 4].
    #[arg(long)]
    pub depth: Option<u64>,
    /// Tokens per training sequence (also the model's context) [default: 256].
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Sequences per micro-batch [default: 8].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Micro-batches per optimizer step [default: 1].
    #[arg(long)]
    pub grad_accum: Option<usize>,
    /// Optimizer steps [default: the compute-optimal budget, 20 tokens per parameter].
    #[arg(long)]
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
    #[arg(long)]
    pub warmup: Option<u64>,
    /// WSD's decay steps [default: 20% of the steps].
    #[arg(long)]
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
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Validation windows per evaluation [default: 16].
    #[arg(long)]
    pub eval_windows: Option<usize>,
    /// A checkpoint every N steps [default: steps / 5].
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Checkpoints kept [default: 3].
    #[arg(long)]
    pub keep: Option<usize>,
    /// Seeds the initial weights and the order of training windows [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// A full model spec (TOML only: a `[model]` table with `fmlab_spec::ModelSpec`'s fields).
    #[arg(skip)]
    pub model: Option<ModelSpec>,
}

#[derive(Args)]
pub struct PretrainArgs {
    /// Token shards (`fmlab data tokenize --out DIR`).
    #[arg(long, required_unless_present = "resume")]
    shards: Option<PathBuf>,
    /// The tokenizer the shards were made with (copied into the run, for generation and
    /// export).
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

fn merge(cli: Settings, file: Settings) -> Settings {
    macro_rules! pick {
        ($($f:ident),*) => { Settings { $($f: cli.$f.or(file.$f),)* } };
    }
    pick!(
        depth,
        seq_len,
        batch,
        grad_accum,
        steps,
        schedule,
        lr,
        min_lr,
        warmup,
        decay_steps,
        weight_decay,
        beta1,
        beta2,
        grad_clip,
        eval_every,
        eval_windows,
        checkpoint_every,
        keep,
        seed,
        model
    )
}

/// The model and training configuration that settings describe, for a vocabulary.
pub fn resolve(s: &Settings, vocab: u64) -> Result<(ModelSpec, PretrainConfig)> {
    let seq_len = s.seq_len.unwrap_or(256);
    if seq_len == 0 {
        bail!("--seq-len: the sequence length must be at least 1");
    }
    let spec = match &s.model {
        Some(m) => {
            if s.depth.is_some() {
                bail!("give either --depth or a [model] table, not both");
            }
            m.validate().map_err(|e| anyhow::anyhow!("[model]: {e}"))?;
            m.clone()
        }
        None => fmlab_spec::from_depth(s.depth.unwrap_or(4), vocab, seq_len as u64)
            .map_err(|e| anyhow::anyhow!("--depth: {e}"))?,
    };
    fmlab_nn::train::check_spec(&spec)?;
    let batch = s.batch.unwrap_or(8);
    let grad_accum = s.grad_accum.unwrap_or(1);
    let per_step = (seq_len * batch * grad_accum).max(1) as u64;
    let steps = match s.steps {
        Some(n) => n,
        None => {
            let params = spec.params().total as f64;
            ((fmlab_spec::TOKENS_PER_PARAM as f64 * params) / per_step as f64).ceil() as u64
        }
    }
    .max(1);
    let lr = s.lr.unwrap_or(3e-3);
    let min_lr = s.min_lr.unwrap_or(lr / 10.0);
    let warmup = s.warmup.unwrap_or((steps / 20).min(200));
    let schedule = match s.schedule.as_deref().unwrap_or("cosine") {
        "cosine" => Schedule::Cosine {
            lr,
            min_lr,
            warmup,
            total: steps,
        },
        "wsd" => Schedule::Wsd {
            lr,
            min_lr,
            warmup,
            decay: s.decay_steps.unwrap_or(steps / 5),
            total: steps,
        },
        "constant" => Schedule::Constant { lr, warmup },
        other => bail!("--schedule: {other:?} is not cosine, wsd or constant"),
    };
    let d = AdamWConfig::default();
    let config = PretrainConfig {
        seq_len,
        batch,
        grad_accum,
        steps,
        schedule,
        adamw: AdamWConfig {
            beta1: s.beta1.unwrap_or(d.beta1),
            beta2: s.beta2.unwrap_or(d.beta2),
            eps: d.eps,
            weight_decay: s.weight_decay.unwrap_or(d.weight_decay),
        },
        grad_clip: s.grad_clip.unwrap_or(1.0),
        eval_every: s.eval_every.unwrap_or((steps / 10).max(1)),
        eval_windows: s.eval_windows.unwrap_or(16),
        checkpoint_every: s.checkpoint_every.unwrap_or((steps / 5).max(1)),
        keep: s.keep.unwrap_or(3),
        seed: s.seed.unwrap_or(0),
    };
    config.validate(&spec)?;
    Ok((spec, config))
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
            let file = match &args.config {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    toml::from_str(&text).with_context(|| format!("{}", p.display()))?
                }
                None => Settings::default(),
            };
            let settings = merge(args.settings.clone(), file);
            let (spec, config) = resolve(&settings, manifest.vocab_size)?;
            Pretrainer::create(&args.out, spec, config, shards, args.tokenizer.as_deref())?
        }
    };
    let summary = drive(&mut trainer, &stop, false)?;
    if args.json {
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&summary)?))?;
    } else {
        crate::out(&summary.describe())?;
    }
    if summary.interrupted {
        eprintln!(
            "interrupted: continue with `fmlab train pretrain --resume {}`",
            trainer.run_dir().display()
        );
    }
    Ok(())
}

/// Ctrl-C raises the returned flag (the loop then checkpoints and returns); a second
/// Ctrl-C exits at once.
pub fn install_ctrl_c() -> Result<Arc<AtomicBool>> {
    // One handler per process: later training stages in the same process (the speedrun's,
    // with post-training) share the first one's flag.
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    if let Some(flag) = FLAG.get() {
        return Ok(flag.clone());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping: writing a checkpoint (Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(FLAG.get_or_init(|| stop).clone())
}

/// What a training session did (the figures `report.json` keeps).
#[derive(serde::Serialize, Debug, Clone)]
pub struct Summary {
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
    pub loss_plot: PathBuf,
}

impl Summary {
    fn describe(&self) -> String {
        let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.4}"));
        format!(
            "{}: {} steps, {} tokens, {:.0} tokens/s, MFU {:.1}%\nval loss {} → {} (train {})\ncheckpoint {}\nloss curve {}\n",
            self.run.display(),
            self.steps,
            crate::numbers::si(self.tokens as f64),
            self.tokens_per_second,
            100.0 * self.mfu,
            f(self.initial_val_loss),
            f(self.final_val_loss),
            f(self.final_train_loss),
            self.checkpoint.display(),
            self.loss_plot.display()
        )
    }
}

/// Runs the loop with a progress bar (step, loss, tokens/s, MFU, ETA) and writes the
/// loss curve; returns the session's summary.
pub fn drive(t: &mut Pretrainer, stop: &AtomicBool, quiet: bool) -> Result<Summary> {
    let spec = t.spec().clone();
    let config = t.config().clone();
    let peak = crate::plan::measure_cpu_flops();
    let params = spec.params();
    let mfu_of = |tps: f64| {
        fmlab_scaling::mfu(
            tps,
            params.non_embedding as f64,
            spec.n_layers,
            spec.n_heads,
            spec.head_dim,
            config.seq_len as u64,
            peak,
        )
        .unwrap_or(0.0)
    };
    let tty = !quiet && std::io::stderr().is_terminal();
    let bar = progress_bar(config.steps, tty);
    bar.set_position(t.step_count());
    let mut initial_val = None;
    let mut last_val = None;
    let mut session_tokens = 0u64;
    let mut session_seconds = 0.0;
    let mut last_print = std::time::Instant::now();
    let mut last_ckpt = None;
    let total = config.steps;
    let outcome = t.run(stop, &mut |e| match e {
        Event::Step(m) => {
            session_tokens += config.tokens_per_step();
            session_seconds += config.tokens_per_step() as f64 / m.tokens_per_second;
            let tps = session_tokens as f64 / session_seconds.max(1e-9);
            bar.set_position(m.step);
            bar.set_message(format!(
                "loss {:.4} lr {:.2e} {:.0} tok/s MFU {:.1}%",
                m.loss,
                m.lr,
                tps,
                100.0 * mfu_of(tps)
            ));
            // Without a terminal, a line every ~10 s so logs show progress.
            if !tty && !quiet && last_print.elapsed().as_secs_f64() > 10.0 {
                last_print = std::time::Instant::now();
                eprintln!(
                    "step {}/{total} loss {:.4} {:.0} tok/s",
                    m.step, m.loss, tps
                );
            }
        }
        Event::Eval { step, val_loss } => {
            if step == 0 {
                initial_val = Some(val_loss);
            }
            last_val = Some(val_loss);
            if !quiet {
                bar.println(format!("step {step}: val loss {val_loss:.4}"));
            }
        }
        Event::Checkpoint { dir, .. } => {
            last_ckpt = Some(dir);
        }
    })?;
    bar.finish_and_clear();
    fmlab_nn::train::release_buffers();
    let run = t.run_dir().to_path_buf();
    let metrics = read_metrics(&run)?;
    if initial_val.is_none() {
        initial_val = metrics.val.first().map(|p| p.1);
    }
    let loss_plot = run.join("loss.png");
    plot_losses(&metrics, &loss_plot, "pre-training")?;
    let tps = session_tokens as f64 / session_seconds.max(1e-9);
    let checkpoint = match last_ckpt {
        Some(d) => d,
        None => fmlab_train::checkpoint::list(&run)
            .last()
            .map(|c| c.1.clone())
            .context("the run has no checkpoint")?,
    };
    Ok(Summary {
        run,
        checkpoint,
        params: params.total,
        steps: t.step_count(),
        tokens: t.step_count() * config.tokens_per_step(),
        initial_val_loss: initial_val,
        final_val_loss: last_val.or(metrics.val.last().map(|p| p.1)),
        final_train_loss: metrics.train.last().map(|p| p.1),
        tokens_per_second: tps,
        mfu: mfu_of(tps),
        peak_flops: peak,
        train_seconds: session_seconds,
        interrupted: outcome == Outcome::Interrupted,
        loss_plot,
    })
}

/// A step bar on a terminal (`tty`), a hidden one otherwise.
pub fn progress_bar(steps: u64, tty: bool) -> indicatif::ProgressBar {
    let bar = if tty {
        indicatif::ProgressBar::new(steps)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Train and validation losses by tokens seen, and the learning rate by step.
pub struct Metrics {
    pub train: Vec<(f64, f64)>,
    pub val: Vec<(f64, f64)>,
    pub lr: Vec<(f64, f64)>,
    pub tokens_per_step: f64,
}

pub fn read_metrics(run: &Path) -> Result<Metrics> {
    let path = run.join("metrics.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut m = Metrics {
        train: Vec::new(),
        val: Vec::new(),
        lr: Vec::new(),
        tokens_per_step: 0.0,
    };
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: a line is not JSON", path.display()))?;
        let step = v["step"].as_f64().unwrap_or(0.0);
        if let (Some(loss), Some(tokens)) = (v["loss"].as_f64(), v["tokens"].as_f64()) {
            m.train.push((step, loss));
            if step > 0.0 {
                m.tokens_per_step = tokens / step;
            }
            if let Some(lr) = v["lr"].as_f64() {
                m.lr.push((step, lr));
            }
        }
        if let Some(val) = v["val_loss"].as_f64() {
            m.val.push((step, val));
        }
    }
    Ok(m)
}

pub fn plot_losses(m: &Metrics, path: &Path, title: &str) -> Result<()> {
    if m.train.is_empty() && m.val.is_empty() {
        return Ok(());
    }
    crate::plot::PanelPlot {
        title,
        x_label: "step",
        panels: vec![
            (
                "loss (nats/token)",
                vec![("train", m.train.clone()), ("validation", m.val.clone())],
            ),
            (
                "learning rate (×10⁻³)",
                vec![("lr", m.lr.iter().map(|&(s, lr)| (s, lr * 1e3)).collect())],
            ),
        ],
    }
    .write_png(path)
}
