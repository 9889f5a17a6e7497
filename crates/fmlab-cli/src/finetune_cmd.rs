//! `fmlab train sft|dpo|reward`: flags mapped into the library's finetuning settings, a
//! base model (a run, a checkpoint, a GGUF file, a Hugging Face folder) and its data loaded,
//! the stage started or resumed (`fmlab_train::finetune::setup`) and driven with a progress
//! bar, Ctrl-C to stop with a checkpoint, and a loss curve at the end.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use fmlab_train::chat_data::{read_conversations, read_pairs};
use fmlab_train::finetune::setup::{start, SCHEDULES};
use fmlab_train::finetune::{
    Data, FinetuneSettings as Library, Method, Mix, NewStage, PreferenceLoss, ResumePlan, Stage,
};
use fmlab_train::session::FinetuneSession;
use fmlab_train::{FinetuneSummary, ScheduleKind};

use crate::model::Trainable;

fn defaults() -> Library {
    Library::default()
}

/// Settings shared by SFT and preference finetuning.
#[derive(Args, Clone)]
pub struct FinetuneSettings {
    /// Row length in tokens; records are packed into rows, and longer ones skipped
    /// [default: 512, at most the model's context].
    #[arg(value_parser = crate::numbers::integer::<usize>, long)]
    pub seq_len: Option<usize>,
    /// Rows per micro-batch.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = defaults().batch)]
    pub batch: usize,
    /// Micro-batches per optimizer step.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = defaults().grad_accum)]
    pub grad_accum: usize,
    /// Passes over the training records (unless --steps is given).
    #[arg(long, default_value_t = defaults().epochs)]
    pub epochs: f64,
    /// Optimizer steps (overrides --epochs).
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    pub steps: Option<u64>,
    /// Peak learning rate [default: SFT 1e-4, or 1e-3 with LoRA; DPO 1e-5, or 1e-4 with
    /// LoRA].
    #[arg(long)]
    pub lr: Option<f32>,
    /// cosine or constant.
    #[arg(long, default_value = defaults().schedule.name())]
    pub schedule: String,
    /// Warmup as a share of the steps.
    #[arg(long, default_value_t = defaults().warmup_ratio)]
    pub warmup_ratio: f64,
    /// AdamW weight decay (on matrices and adapters).
    #[arg(long, default_value_t = defaults().weight_decay)]
    pub weight_decay: f32,
    /// Global gradient-norm clip, 0 for none.
    #[arg(long, default_value_t = defaults().grad_clip)]
    pub grad_clip: f32,
    /// Share of the records held out for the validation loss.
    #[arg(long, default_value_t = defaults().val_fraction)]
    pub val_fraction: f64,
    /// Validation every N steps [default: steps / 5].
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    pub eval_every: Option<u64>,
    /// A checkpoint every N steps, and one at the end (0: only at the end).
    #[arg(value_parser = crate::numbers::integer::<u64>, long, default_value_t = defaults().checkpoint_every)]
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = defaults().keep)]
    pub keep: usize,
    /// Seeds the validation split, the order of rows and the LoRA initialisation.
    #[arg(value_parser = crate::numbers::integer::<u64>, long, default_value_t = defaults().seed)]
    pub seed: u64,
    /// Train LoRA adapters of this rank instead of the full weights.
    #[arg(value_parser = crate::numbers::integer::<usize>, long)]
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
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
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
#[command(allow_negative_numbers = true)]
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
#[command(allow_negative_numbers = true)]
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

impl FinetuneSettings {
    /// The library's settings.
    pub fn library(&self) -> Result<Library> {
        Ok(Library {
            seq_len: self.seq_len,
            batch: self.batch,
            grad_accum: self.grad_accum,
            epochs: self.epochs,
            steps: self.steps,
            max_steps: None,
            lr: self.lr,
            schedule: ScheduleKind::parse(&self.schedule, &SCHEDULES)?,
            warmup_ratio: self.warmup_ratio,
            weight_decay: self.weight_decay,
            grad_clip: self.grad_clip,
            val_fraction: self.val_fraction,
            eval_every: self.eval_every,
            checkpoint_every: self.checkpoint_every,
            keep: self.keep,
            seed: self.seed,
            lora_rank: self.lora_rank,
            lora_alpha: self.lora_alpha,
            lora_targets: self.lora_targets.clone(),
        })
    }
}

pub fn sft(args: SftArgs) -> Result<()> {
    let s = &args.settings;
    if let Some(run) = &args.resume {
        return report(&resume(run, Stage::Sft, s)?, s.json);
    }
    let (base, path) = (args.base.unwrap_or_default(), args.data.unwrap_or_default());
    let base = crate::model::load_trainable(&base)?;
    let (convs, skipped) = read_conversations(&path)?;
    let data = Data::Sft(base.chat.encoder().conversations(&convs)?);
    let mix = args.mix.map(|path| Mix {
        path,
        ratio: args.mix_ratio,
    });
    let stage = NewStage {
        out: &args.out,
        method: Method::Sft,
        data,
        skipped,
        source: Some(&path),
        mix: mix.as_ref(),
    };
    report(&finetune(base, stage, &s.library()?, s.json)?, s.json)
}

pub fn dpo(args: DpoArgs) -> Result<()> {
    let s = &args.settings;
    if let Some(run) = &args.resume {
        return report(&resume(run, Stage::Preference, s)?, s.json);
    }
    let loss = PreferenceLoss::parse(&args.loss, args.simpo_gamma)?;
    let method = Method::Preference {
        beta: args.beta,
        loss,
    };
    pairs_stage(args.base, args.pairs, &args.out, method, s)
}

pub fn reward(args: RewardArgs) -> Result<()> {
    let s = &args.settings;
    if let Some(run) = &args.resume {
        return report(&resume(run, Stage::Reward, s)?, s.json);
    }
    if s.lora_rank.is_some() {
        bail!("--lora-rank: reward models train the full weights (the score head is new)");
    }
    pairs_stage(args.base, args.pairs, &args.out, Method::Reward, s)
}

/// A preference or reward stage on the pairs in `pairs` from `base`.
fn pairs_stage(
    base: Option<String>,
    pairs: Option<PathBuf>,
    out: &Path,
    method: Method,
    s: &FinetuneSettings,
) -> Result<()> {
    let (base, path) = (base.unwrap_or_default(), pairs.unwrap_or_default());
    let base = crate::model::load_trainable(&base)?;
    let (pairs, skipped) = read_pairs(&path)?;
    let data = Data::Pairs(base.chat.encoder().pairs(&pairs)?);
    let stage = NewStage {
        out,
        method,
        data,
        skipped,
        source: Some(&path),
        mix: None,
    };
    report(&finetune(base, stage, &s.library()?, s.json)?, s.json)
}

/// A finetuning session's summary and its loss curve (the `--json` output).
#[derive(serde::Serialize)]
struct Finetuned {
    #[serde(flatten)]
    summary: FinetuneSummary,
    loss_plot: PathBuf,
}

/// Starts `stage` from `base` with `s` and drives it; `quiet` (`--json`) keeps progress
/// off stderr.
fn finetune(base: Trainable, stage: NewStage<'_>, s: &Library, quiet: bool) -> Result<Finetuned> {
    if stage.skipped.total() > 0 && !quiet {
        eprintln!("warning: {}", stage.skipped.describe());
    }
    let (base, chat) = base.into_base(true);
    drive(start(base, &chat.tokenizer, stage, s)?, quiet)
}

/// Continues the finetuning run `run` (of stage `command`) from its newest checkpoint.
fn resume(run: &Path, command: Stage, s: &FinetuneSettings) -> Result<Finetuned> {
    let plan = ResumePlan::read(run, command)?;
    let (base, chat) =
        crate::model::load_trainable(&plan.base().to_string_lossy())?.into_base(false);
    let (session, resumed) = plan.resume(base, &chat.encoder(), s.steps)?;
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
    drive(session, s.json)
}

/// Runs a session with a progress bar, Ctrl-C to stop it, and draws its loss curve.
fn drive(session: FinetuneSession, quiet: bool) -> Result<Finetuned> {
    let stop = crate::progress::install_ctrl_c()?;
    let stage = session.finetuner.file.stage.name();
    let mut bar = crate::progress::Bar::new(quiet, Some(stage));
    let summary = session.run(&stop, None, &mut |p| bar.on(p));
    bar.finish();
    let summary = summary?;
    let loss_plot = crate::progress::plot(&summary.run, stage)?;
    Ok(Finetuned { summary, loss_plot })
}

fn report(f: &Finetuned, json: bool) -> Result<()> {
    if json {
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(f)?));
    }
    crate::out(&f.summary.describe(Some(&f.loss_plot)))
}
