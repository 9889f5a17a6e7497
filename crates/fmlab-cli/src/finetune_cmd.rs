//! `fmlab train sft` and `fmlab train dpo`: a base model (a run, a checkpoint, a GGUF file)
//! finetuned on conversations or preference pairs, full weights or LoRA, with a progress
//! bar, Ctrl-C to stop with a checkpoint, and a loss curve at the end.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};
use clap::Args;
use fmlab_train::chat_data::{read_conversations, read_pairs, Skipped};
use fmlab_train::finetune::{
    prepare, Base, Data, DataRef, FinetuneConfig, Finetuner, LoraConfig, Method, Mix,
    PreferenceLoss, RewardStats,
};
use fmlab_train::{AdamWConfig, Event, Outcome, PretrainConfig, Schedule};

/// Settings shared by SFT and preference finetuning.
#[derive(Args, Clone)]
pub struct FinetuneSettings {
    /// Row length in tokens; records are packed into rows, and longer ones skipped
    /// [default: 512, at most the model's context].
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Rows per micro-batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Passes over the training records (unless --steps is given).
    #[arg(long, default_value_t = 1.0)]
    pub epochs: f64,
    /// Optimizer steps (overrides --epochs).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Peak learning rate [default: SFT 1e-4, or 1e-3 with LoRA; DPO 1e-5, or 1e-4 with
    /// LoRA].
    #[arg(long)]
    pub lr: Option<f32>,
    /// cosine or constant.
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    /// Warmup as a share of the steps.
    #[arg(long, default_value_t = 0.03)]
    pub warmup_ratio: f64,
    /// AdamW weight decay (on matrices and adapters).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Global gradient-norm clip, 0 for none.
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f32,
    /// Share of the records held out for the validation loss.
    #[arg(long, default_value_t = 0.05)]
    pub val_fraction: f64,
    /// Validation every N steps [default: steps / 5].
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// A checkpoint every N steps (and at the end) [default: only at the end].
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    #[arg(long, default_value_t = 2)]
    pub keep: usize,
    /// Seeds the validation split, the order of rows and the LoRA initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train LoRA adapters of this rank instead of the full weights.
    #[arg(long)]
    pub lora_rank: Option<usize>,
    /// LoRA's α (the update is scaled by α / rank) [default: 2 × rank].
    #[arg(long)]
    pub lora_alpha: Option<f64>,
    /// The maps LoRA adapts (GGUF or Hugging Face names).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    )]
    pub lora_targets: Vec<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Steps at most, whatever --epochs asks (the speedrun fits a stage to its time with it,
    /// so that its schedule still completes).
    #[arg(skip)]
    pub max_steps: Option<u64>,
}

#[derive(Args)]
pub struct SftArgs {
    /// The model to finetune: a training run, a checkpoint folder, a GGUF file, a Hugging
    /// Face folder (config.json, *.safetensors, tokenizer.json, tokenizer_config.json; llama,
    /// mistral, qwen2, gemma3, gpt2) or a known model's name (GGUF weights are dequantised to
    /// f32).
    #[arg(long, required_unless_present = "resume")]
    pub base: Option<String>,
    /// Conversations, JSON Lines: {"messages": [{"role", "content"}, …]} (the world's
    /// sft.jsonl).
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// The run folder to create.
    #[arg(long, default_value = "sft", conflicts_with = "resume")]
    pub out: PathBuf,
    /// Continue this SFT run from its newest checkpoint (its base and data are read again
    /// from where run.json says; --steps may lengthen it).
    #[arg(long, conflicts_with_all = ["base", "data", "mix"])]
    pub resume: Option<PathBuf>,
    /// Plain text to mix into the training rows, trained on in full (replay: a small model
    /// otherwise forgets what pre-training taught it while it learns the chat format): JSON
    /// Lines with a "text" field (the world's corpus.jsonl) or a text file, read in order.
    #[arg(long)]
    pub mix: Option<PathBuf>,
    /// With --mix: the share of the training rows' positions that are plain text.
    #[arg(long, default_value_t = 0.5, requires = "mix")]
    pub mix_ratio: f64,
    #[command(flatten)]
    pub settings: FinetuneSettings,
}

#[derive(Args)]
pub struct DpoArgs {
    /// The model to start from and to use as the frozen reference (usually an SFT run).
    #[arg(long, required_unless_present = "resume")]
    pub base: Option<String>,
    /// Preference pairs, JSON Lines: {"prompt": [turns] or "text", "chosen", "rejected"}
    /// (the world's preferences.jsonl).
    #[arg(long, required_unless_present = "resume")]
    pub pairs: Option<PathBuf>,
    /// Continue this preference run from its newest checkpoint (base, pairs and cached
    /// reference log-probabilities are read again; --steps may lengthen it).
    #[arg(long, conflicts_with_all = ["base", "pairs", "out"])]
    pub resume: Option<PathBuf>,
    /// β: how far the policy may move from the reference.
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// sigmoid (DPO), ipo, hinge or simpo (reference-free).
    #[arg(long, default_value = "sigmoid")]
    pub loss: String,
    /// SimPO's margin γ.
    #[arg(long, default_value_t = 0.5)]
    pub simpo_gamma: f64,
    /// The run folder to create.
    #[arg(long, default_value = "dpo")]
    pub out: PathBuf,
    #[command(flatten)]
    pub settings: FinetuneSettings,
}

#[derive(Args)]
pub struct RewardArgs {
    /// The backbone (usually an SFT run); a scalar head is added to it.
    #[arg(long, required_unless_present = "resume")]
    pub base: Option<String>,
    /// Preference pairs, JSON Lines: {"prompt", "chosen", "rejected"} (the world's
    /// preferences.jsonl, or `fmlab data preferences`).
    #[arg(long, required_unless_present = "resume")]
    pub pairs: Option<PathBuf>,
    /// Continue this reward-model run from its newest checkpoint (--steps may lengthen it).
    #[arg(long, conflicts_with_all = ["base", "pairs", "out"])]
    pub resume: Option<PathBuf>,
    /// The run folder to create.
    #[arg(long, default_value = "rm")]
    pub out: PathBuf,
    #[command(flatten)]
    pub settings: FinetuneSettings,
}

pub fn reward(args: RewardArgs) -> Result<()> {
    if let Some(run) = &args.resume {
        return report(&resume(run, "reward", &args.settings)?, args.settings.json);
    }
    if args.settings.lora_rank.is_some() {
        bail!("--lora-rank: reward models train the full weights (the score head is new)");
    }
    let (base, path) = (
        args.base.unwrap_or_default(),
        args.pairs.unwrap_or_default(),
    );
    let base = crate::model::load_trainable(&base)?;
    let (pairs, skipped) = read_pairs(&path)?;
    let data = base.chat.encoder().pairs(&pairs)?;
    let summary = finetune(
        base,
        Data::Pairs(data),
        Some(&path),
        None,
        Method::Reward,
        skipped,
        &args.out,
        &args.settings,
        None,
    )?;
    report(&summary, args.settings.json)
}

/// What a finetuning session did.
#[derive(serde::Serialize, Debug, Clone)]
pub struct FinetuneSummary {
    pub run: PathBuf,
    pub checkpoint: PathBuf,
    pub stage: String,
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
    /// accuracy is `val_rewards["rewards/accuracies"]`).
    pub val_rewards: Option<serde_json::Value>,
    pub train_seconds: f64,
    pub interrupted: bool,
    pub loss_plot: PathBuf,
}

pub fn sft(args: SftArgs) -> Result<()> {
    if let Some(run) = &args.resume {
        return report(&resume(run, "sft", &args.settings)?, args.settings.json);
    }
    let (base, path) = (args.base.unwrap_or_default(), args.data.unwrap_or_default());
    let base = crate::model::load_trainable(&base)?;
    let (convs, skipped) = read_conversations(&path)?;
    let seqs = base.chat.encoder().conversations(&convs)?;
    let mix = args.mix.map(|path| Mix {
        path,
        ratio: args.mix_ratio,
    });
    let summary = finetune(
        base,
        Data::Sft(seqs),
        Some(&path),
        mix.as_ref(),
        Method::Sft,
        skipped,
        &args.out,
        &args.settings,
        None,
    )?;
    report(&summary, args.settings.json)
}

pub fn dpo(args: DpoArgs) -> Result<()> {
    if let Some(run) = &args.resume {
        return report(&resume(run, "dpo", &args.settings)?, args.settings.json);
    }
    let loss = PreferenceLoss::parse(&args.loss, args.simpo_gamma)?;
    let (base, path) = (
        args.base.unwrap_or_default(),
        args.pairs.unwrap_or_default(),
    );
    let base = crate::model::load_trainable(&base)?;
    let (pairs, skipped) = read_pairs(&path)?;
    let data = base.chat.encoder().pairs(&pairs)?;
    let method = Method::Preference {
        beta: args.beta,
        loss,
    };
    let summary = finetune(
        base,
        Data::Pairs(data),
        Some(&path),
        None,
        method,
        skipped,
        &args.out,
        &args.settings,
        None,
    )?;
    report(&summary, args.settings.json)
}

fn report(summary: &FinetuneSummary, json: bool) -> Result<()> {
    if json {
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(summary)?));
    }
    let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.4}"));
    let mut text = format!(
        "{}: {} {} steps on {} records ({} held out)\ntrain loss {} → {}, val loss {} → {}\n",
        summary.run.display(),
        summary.stage,
        summary.steps,
        summary.train_records,
        summary.val_records,
        f(summary.first_train_loss),
        f(summary.final_train_loss),
        f(summary.initial_val_loss),
        f(summary.final_val_loss),
    );
    if let Some(r) = &summary.rewards {
        text += &format!(
            "rewards: chosen {:.4}, rejected {:.4}, margin {:.4}, accuracy {:.2}\n",
            r.chosen, r.rejected, r.margin, r.accuracy
        );
    }
    if let Some(acc) = summary
        .val_rewards
        .as_ref()
        .and_then(|v| v["rewards/accuracies"].as_f64())
    {
        text += &format!("held-out pairs: accuracy {acc:.3}\n");
    }
    let skipped = summary.skipped.describe();
    if !skipped.is_empty() {
        text += &format!("{skipped}\n");
    }
    if summary.skipped_too_long > 0 {
        text += &format!(
            "{} records longer than a row left out\n",
            summary.skipped_too_long
        );
    }
    text += &format!(
        "checkpoint {}\nloss curve {}\n",
        summary.checkpoint.display(),
        summary.loss_plot.display()
    );
    if summary.interrupted {
        let command = command_of(&summary.stage);
        text += &format!(
            "interrupted at step {}: continue with `fmlab train {command} --resume {}`\n",
            summary.steps,
            summary.run.display()
        );
    }
    crate::out(&text)
}

/// The `fmlab train` subcommand of a finetuning stage ("sft", "preference", "reward").
fn command_of(stage: &str) -> &str {
    match stage {
        "preference" => "dpo",
        other => other,
    }
}

/// The token that fills the tail of a packed row.
fn pad_token(tok: &fmlab_tokenizer::Tokenizer) -> u32 {
    tok.vocab.pad.or(tok.vocab.eos).unwrap_or(0)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The plain text `mix` adds to SFT records `data`: `ratio` of all training positions.
fn mix_texts(
    data: &Data,
    mix: &Mix,
    tok: &fmlab_tokenizer::Tokenizer,
    seq_len: usize,
) -> Result<Vec<fmlab_train::chat_data::Sequence>> {
    if !(mix.ratio.is_finite() && (0.0..0.95).contains(&mix.ratio)) {
        bail!("--mix-ratio must be in [0, 0.95), got {}", mix.ratio);
    }
    let Data::Sft(seqs) = data else {
        bail!("--mix: plain text can be mixed into supervised finetuning only");
    };
    let own: usize = seqs.iter().map(|s| s.positions()).sum();
    let budget = (own as f64 * mix.ratio / (1.0 - mix.ratio)).round() as usize;
    Ok(fmlab_train::chat_data::read_texts(&mix.path, tok, seq_len, budget)?.0)
}

/// Continues the finetuning run `run` from its newest checkpoint: its base model and data
/// are read again from where `run.json` says, and must pack as they did.
fn resume(run: &Path, command: &str, s: &FinetuneSettings) -> Result<FinetuneSummary> {
    let file = match Finetuner::read_run(run) {
        Ok(f) => f,
        Err(_) if fmlab_train::Pretrainer::read_run(run).is_ok() => bail!(
            "{} is a pre-training run: continue it with `fmlab train pretrain --resume {}`",
            run.display(),
            run.display()
        ),
        Err(e) => return Err(e.into()),
    };
    let own = command_of(&file.stage);
    if own != command {
        bail!(
            "{} was trained with `fmlab train {own}`: continue it with `fmlab train {own} --resume {}`",
            run.display(),
            run.display()
        );
    }
    let Some(source) = file.data.clone() else {
        bail!(
            "{}: run.json does not say which data the run trained on (it predates --resume)",
            run.display()
        );
    };
    let base = crate::model::load_trainable(&file.base.path.to_string_lossy())?;
    let encoder = base.chat.encoder();
    let (data, skipped) = if own == "sft" {
        let (convs, skipped) = read_conversations(&source.path)?;
        (Data::Sft(encoder.conversations(&convs)?), skipped)
    } else {
        let (pairs, skipped) = read_pairs(&source.path)?;
        (Data::Pairs(encoder.pairs(&pairs)?), skipped)
    };
    let seq_len = file.config.optim.seq_len;
    let texts = match &source.mix {
        Some(mix) => mix_texts(&data, mix, &base.chat.tokenizer, seq_len)?,
        None => Vec::new(),
    };
    let pad = pad_token(&base.chat.tokenizer);
    let mut prepared = prepare(&data, &texts, &file.config, pad)?;
    prepared.source = Some(source);
    let counts = prepared.records.clone();
    let trainable = Base {
        spec: base.spec,
        weights: base.weights,
        source: base.source,
        tokenizer_json: None,
    };
    let (mut ft, resumed) = Finetuner::resume(run, trainable, prepared, s.steps)
        .with_context(|| format!("resuming {}", run.display()))?;
    for (dir, why) in &resumed.skipped {
        eprintln!("warning: skipped {}: {why}", dir.display());
    }
    if !s.json {
        eprintln!(
            "resuming {} at step {} ({})",
            run.display(),
            resumed.step,
            resumed.dir.display()
        );
    }
    let stop = crate::train_cmd::install_ctrl_c()?;
    drive(&mut ft, &stop, &file.stage, skipped, counts, s.json, None)
}

/// Sizes and runs a finetuning stage (the speedrun calls this too, with a deadline).
/// `source` (the data file) is recorded so that the run can be resumed.
#[allow(clippy::too_many_arguments)]
pub fn finetune(
    base: crate::model::Trainable,
    data: Data,
    source: Option<&Path>,
    mix: Option<&Mix>,
    method: Method,
    skipped: Skipped,
    out: &Path,
    s: &FinetuneSettings,
    deadline: Option<std::time::Instant>,
) -> Result<FinetuneSummary> {
    if skipped.total() > 0 && !s.json {
        eprintln!("warning: {}", skipped.describe());
    }
    let spec = base.spec.clone();
    let seq_len = match s.seq_len {
        Some(n) if n as u64 > spec.context_length => bail!(
            "--seq-len {n} exceeds the model's context of {} tokens",
            spec.context_length
        ),
        Some(n) => n,
        None => 512.min(spec.context_length as usize),
    };
    let lora = s.lora_rank.map(|rank| LoraConfig {
        rank,
        alpha: s.lora_alpha.unwrap_or(2.0 * rank as f64),
        targets: s.lora_targets.clone(),
    });
    let preference = matches!(method, Method::Preference { .. });
    let lr = s.lr.unwrap_or(match (preference, lora.is_some()) {
        (false, false) => 1e-4,
        (false, true) => 1e-3,
        (true, false) => 1e-5,
        (true, true) => 1e-4,
    });
    let pad = pad_token(&base.chat.tokenizer);
    let mut config = FinetuneConfig {
        method,
        optim: PretrainConfig {
            seq_len,
            batch: s.batch,
            grad_accum: s.grad_accum,
            steps: 1,
            schedule: Schedule::Constant { lr, warmup: 0 },
            adamw: AdamWConfig {
                weight_decay: s.weight_decay,
                ..AdamWConfig::default()
            },
            grad_clip: s.grad_clip,
            eval_every: 0,
            eval_windows: 0,
            checkpoint_every: s.checkpoint_every,
            keep: s.keep,
            seed: s.seed,
        },
        lora,
        val_fraction: s.val_fraction,
    };
    let texts = match mix {
        Some(m) => mix_texts(&data, m, &base.chat.tokenizer, seq_len)?,
        None => Vec::new(),
    };
    let mut prepared = prepare(&data, &texts, &config, pad)?;
    prepared.source = source.map(|path| DataRef {
        path: absolute(path),
        mix: mix.map(|m| Mix {
            path: absolute(&m.path),
            ratio: m.ratio,
        }),
    });
    let counts = prepared.records.clone();
    let per_step = (s.batch * s.grad_accum).max(1) as f64;
    let steps = match s.steps {
        Some(n) => n,
        None => {
            if !(s.epochs.is_finite() && s.epochs > 0.0) {
                bail!("--epochs must be > 0");
            }
            (counts.train_rows as f64 * s.epochs / per_step).ceil() as u64
        }
    }
    .min(s.max_steps.unwrap_or(u64::MAX))
    .max(1);
    let warmup = ((steps as f64 * s.warmup_ratio).round() as u64).min(steps - 1);
    config.optim.steps = steps;
    config.optim.eval_every = s.eval_every.unwrap_or((steps / 5).max(1));
    config.optim.schedule = match s.schedule.as_str() {
        "cosine" => Schedule::Cosine {
            lr,
            min_lr: lr / 10.0,
            warmup,
            total: steps,
        },
        "constant" => Schedule::Constant { lr, warmup },
        other => bail!("--schedule: {other:?} is not cosine or constant"),
    };
    let stage = match config.method {
        Method::Sft => "sft",
        Method::Preference { .. } => "preference",
        Method::Reward => "reward",
    };
    let trainable = Base {
        spec,
        weights: base.weights,
        source: base.source,
        tokenizer_json: base.chat.tokenizer_json.map(String::into_bytes),
    };
    let mut ft = Finetuner::from_prepared(out, trainable, prepared, config)
        .with_context(|| format!("creating the run in {}", out.display()))?;
    let stop = crate::train_cmd::install_ctrl_c()?;
    drive(&mut ft, &stop, stage, skipped, counts, s.json, deadline)
}

fn drive(
    ft: &mut Finetuner,
    stop: &AtomicBool,
    stage: &str,
    skipped: Skipped,
    counts: fmlab_train::finetune::RecordCounts,
    quiet: bool,
    deadline: Option<std::time::Instant>,
) -> Result<FinetuneSummary> {
    let total = ft.file.config.optim.steps;
    let tty = !quiet && std::io::stderr().is_terminal();
    let bar = crate::train_cmd::progress_bar(total, tty);
    let (mut initial_val, mut last_val, mut last_ckpt) = (None, None, None);
    let mut last_print = std::time::Instant::now();
    let started = std::time::Instant::now();
    // The loop polls one flag: raised after a step when Ctrl-C was pressed or the deadline
    // has passed.
    let local = AtomicBool::new(stop.load(std::sync::atomic::Ordering::Relaxed));
    let outcome = {
        let mut on = |e: Event| match e {
            Event::Step(m) => {
                bar.set_position(m.step);
                bar.set_message(format!(
                    "loss {:.4} lr {:.2e} {:.0} tok/s",
                    m.loss, m.lr, m.tokens_per_second
                ));
                if !tty && !quiet && last_print.elapsed().as_secs_f64() > 10.0 {
                    last_print = std::time::Instant::now();
                    eprintln!("{stage} step {}/{total} loss {:.4}", m.step, m.loss);
                }
                if deadline.is_some_and(|d| std::time::Instant::now() >= d)
                    || stop.load(std::sync::atomic::Ordering::Relaxed)
                {
                    local.store(true, std::sync::atomic::Ordering::Relaxed);
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
            Event::Checkpoint { dir, .. } => last_ckpt = Some(dir),
        };
        ft.run(&local, &mut on)?
    };
    bar.finish_and_clear();
    fmlab_nn::train::release_buffers();
    let run = ft.run_dir().to_path_buf();
    let metrics = crate::train_cmd::read_metrics(&run)?;
    let loss_plot = run.join("loss.png");
    crate::train_cmd::plot_losses(&metrics, &loss_plot, stage)?;
    let (rewards, val_rewards) = last_rewards(&run);
    Ok(FinetuneSummary {
        checkpoint: last_ckpt.context("the run wrote no checkpoint")?,
        run,
        stage: stage.into(),
        steps: ft.step_count(),
        train_records: counts.train,
        val_records: counts.val,
        skipped,
        skipped_too_long: counts.too_long,
        // A resumed run evaluated its start in an earlier session.
        initial_val_loss: initial_val.or(metrics.val.first().map(|p| p.1)),
        final_val_loss: last_val,
        first_train_loss: metrics.train.first().map(|p| p.1),
        final_train_loss: metrics.train.last().map(|p| p.1),
        rewards,
        val_rewards,
        train_seconds: started.elapsed().as_secs_f64(),
        interrupted: outcome == Outcome::Interrupted,
        loss_plot,
    })
}

/// From `metrics.jsonl`, read once: the last training step's preference metrics, and the
/// `val_rewards/…` and `val_logps/…` fields of the last evaluation that has them.
fn last_rewards(run: &Path) -> (Option<RewardStats>, Option<serde_json::Value>) {
    let Ok(text) = std::fs::read_to_string(run.join("metrics.jsonl")) else {
        return (None, None);
    };
    let lines: Vec<serde_json::Value> = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let step = lines
        .iter()
        .find(|v| v.get("loss").is_some())
        .and_then(|v| serde_json::from_value(v.get("rewards")?.clone()).ok());
    let val = lines
        .iter()
        .find(|v| v.get("val_rewards/accuracies").is_some())
        .and_then(|v| v.as_object())
        .map(|o| {
            let fields: serde_json::Map<String, serde_json::Value> = o
                .iter()
                .filter_map(|(k, x)| k.strip_prefix("val_").map(|k| (k.to_string(), x.clone())))
                .filter(|(k, _)| k.contains('/'))
                .collect();
            serde_json::Value::Object(fields)
        });
    (step, val)
}
