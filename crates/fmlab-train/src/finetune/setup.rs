//! Setting up a finetuning stage from a caller's settings: the defaults (learning rate by
//! stage and LoRA, row length from the model's context), the steps from epochs over the
//! packed rows (or given, or capped), warmup and schedule, plain text mixed in to its
//! share; and resuming a run — the command checked against the run's stage, its base and
//! data read again and packed as they were.

use std::path::{Path, PathBuf};

use fmlab_tokenizer::Tokenizer;

use super::FinetuneSession;
use super::{
    prepare, Base, Data, DataRef, FinetuneConfig, FinetuneRun, Finetuner, LoraConfig, Method, Mix,
    Stage,
};
use crate::chat_data::{read_conversations, read_pairs, ChatEncoder, Sequence, Skipped};
use crate::{AdamWConfig, Error, LoopConfig, Pretrainer, Result, Resumed, Schedule, ScheduleKind};

/// How a finetuning stage trains, as a caller gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct FinetuneSettings {
    /// Row length [default: 512, at most the model's context].
    pub seq_len: Option<usize>,
    /// Rows per micro-batch.
    pub batch: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Passes over the training rows (unless `steps` is given).
    pub epochs: f64,
    /// Optimizer steps (overrides `epochs`).
    pub steps: Option<u64>,
    /// Steps at most, whatever `epochs` asks (a stage fitted to a time budget keeps a
    /// schedule that completes).
    pub max_steps: Option<u64>,
    /// Peak learning rate [default: SFT and reward 1e-4, or 1e-3 with LoRA; preference
    /// 1e-5, or 1e-4 with LoRA].
    pub lr: Option<f32>,
    /// Cosine (to lr / 10) or constant.
    pub schedule: ScheduleKind,
    /// Warmup as a share of the steps.
    pub warmup_ratio: f64,
    pub weight_decay: f32,
    /// Global gradient-norm clip, 0 for none.
    pub grad_clip: f32,
    /// Share of the records held out for the validation loss.
    pub val_fraction: f64,
    /// Validation every N steps [default: steps / 5].
    pub eval_every: Option<u64>,
    /// A checkpoint every N steps (and at the end); 0: only at the end.
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    pub keep: usize,
    /// Seeds the validation split, the order of rows and the LoRA initialisation.
    pub seed: u64,
    /// Train LoRA adapters of this rank instead of the full weights.
    pub lora_rank: Option<usize>,
    /// LoRA's α [default: 2 × rank].
    pub lora_alpha: Option<f64>,
    /// The maps LoRA adapts (GGUF or Hugging Face names).
    pub lora_targets: Vec<String>,
}

impl Default for FinetuneSettings {
    fn default() -> Self {
        Self {
            seq_len: None,
            batch: 8,
            grad_accum: 1,
            epochs: 1.0,
            steps: None,
            max_steps: None,
            lr: None,
            schedule: ScheduleKind::Cosine,
            warmup_ratio: 0.03,
            weight_decay: 0.0,
            grad_clip: 1.0,
            val_fraction: 0.05,
            eval_every: None,
            checkpoint_every: 0,
            keep: 2,
            seed: 0,
            lora_rank: None,
            lora_alpha: None,
            lora_targets: Vec::new(),
        }
    }
}

/// The schedules finetuning offers.
pub const SCHEDULES: [ScheduleKind; 2] = [ScheduleKind::Cosine, ScheduleKind::Constant];

/// A finetuning stage to start.
pub struct NewStage<'a> {
    /// The run folder to create.
    pub out: &'a Path,
    pub method: Method,
    /// The records, tokenized with the base's chat template.
    pub data: Data,
    /// What reading them skipped (reported in the summary).
    pub skipped: Skipped,
    /// The file they came from (recorded in `run.json`, for resuming).
    pub source: Option<&'a Path>,
    /// Plain text to mix into SFT's rows.
    pub mix: Option<&'a Mix>,
}

/// The token that fills the tail of a packed row.
pub fn pad_token(tok: &Tokenizer) -> u32 {
    tok.vocab.pad.or(tok.vocab.eos).unwrap_or(0)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The plain text `mix` adds to SFT records `data`: `ratio` of all training positions.
pub fn mix_texts(data: &Data, mix: &Mix, tok: &Tokenizer, seq_len: usize) -> Result<Vec<Sequence>> {
    if !(mix.ratio.is_finite() && (0.0..0.95).contains(&mix.ratio)) {
        return Err(Error::Message(format!(
            "--mix-ratio must be in [0, 0.95), got {}",
            mix.ratio
        )));
    }
    let Data::Sft(seqs) = data else {
        return Err(Error::Message(
            "--mix: plain text can be mixed into supervised finetuning only".into(),
        ));
    };
    let own: usize = seqs.iter().map(|s| s.positions()).sum();
    let budget = (own as f64 * mix.ratio / (1.0 - mix.ratio)).round() as usize;
    Ok(crate::chat_data::read_texts(&mix.path, tok, seq_len, budget)?.0)
}

/// The configuration `s` gives a stage of `method` on a model of context `context`, with
/// one step until [`size`] knows the rows.
fn configure(context: u64, method: Method, s: &FinetuneSettings) -> Result<FinetuneConfig> {
    let seq_len = match s.seq_len {
        Some(n) if n as u64 > context => {
            return Err(Error::Message(format!(
                "--seq-len {n} exceeds the model's context of {context} tokens"
            )))
        }
        Some(n) => n,
        None => 512.min(context as usize),
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
    Ok(FinetuneConfig {
        method,
        optim: LoopConfig {
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
    })
}

/// Sets `config`'s steps (from the epochs over `train_rows`, or given, then capped),
/// evaluation cadence and schedule.
fn size(config: &mut FinetuneConfig, train_rows: usize, s: &FinetuneSettings) -> Result<()> {
    let per_step = (s.batch * s.grad_accum).max(1) as f64;
    let steps = match s.steps {
        Some(0) => {
            return Err(Error::Message(
                "--steps 0: a run trains at least one step".into(),
            ))
        }
        Some(n) => n,
        None => {
            if !(s.epochs.is_finite() && s.epochs > 0.0) {
                return Err(Error::Message("--epochs must be > 0".into()));
            }
            (train_rows as f64 * s.epochs / per_step).ceil() as u64
        }
    }
    .min(s.max_steps.unwrap_or(u64::MAX))
    .max(1);
    let warmup = ((steps as f64 * s.warmup_ratio).round() as u64).min(steps - 1);
    let lr = match config.optim.schedule {
        Schedule::Constant { lr, .. } | Schedule::Cosine { lr, .. } | Schedule::Wsd { lr, .. } => {
            lr
        }
    };
    config.optim.steps = steps;
    config.optim.eval_every = s.eval_every.unwrap_or((steps / 5).max(1));
    config.optim.schedule = match ScheduleKind::parse(s.schedule.name(), &SCHEDULES)? {
        ScheduleKind::Cosine => Schedule::Cosine {
            lr,
            min_lr: lr / 10.0,
            warmup,
            total: steps,
        },
        _ => Schedule::Constant { lr, warmup },
    };
    Ok(())
}

/// Creates the run `stage.out` from `base` (whose tokenizer is `tok`) and sizes it with
/// `s`: ready to [`FinetuneSession::run`].
pub fn start(
    base: Base,
    tok: &Tokenizer,
    stage: NewStage<'_>,
    s: &FinetuneSettings,
) -> Result<FinetuneSession> {
    let mut config = configure(base.spec.context_length, stage.method, s)?;
    let pad = pad_token(tok);
    let texts = match stage.mix {
        Some(m) => mix_texts(&stage.data, m, tok, config.optim.seq_len)?,
        None => Vec::new(),
    };
    let mut prepared = prepare(&stage.data, &texts, &config, pad)?;
    prepared.source = stage.source.map(|path| DataRef {
        path: absolute(path),
        mix: stage.mix.map(|m| Mix {
            path: absolute(&m.path),
            ratio: m.ratio,
        }),
    });
    let counts = prepared.records.clone();
    size(&mut config, counts.train_rows, s)?;
    crate::pretrain::check_memory(&base.spec, &config.optim)?;
    let out = stage.out;
    let finetuner = Finetuner::from_prepared(out, base, prepared, config)
        .map_err(|e| e.during(format!("creating the run in {}", out.display())))?;
    Ok(FinetuneSession {
        finetuner,
        skipped: stage.skipped,
        counts,
    })
}

/// A finetuning run to continue, its `run.json` read and checked against the command.
pub struct ResumePlan {
    run: PathBuf,
    file: FinetuneRun,
    source: DataRef,
}

impl ResumePlan {
    /// Reads `run`'s `run.json`; refuses a pre-training run, a run of another stage than
    /// `command`'s, and a run that does not say which data it trained on.
    pub fn read(run: &Path, command: Stage) -> Result<Self> {
        let file = match Finetuner::read_run(run) {
            Ok(f) => f,
            Err(_) if Pretrainer::read_run(run).is_ok() => {
                return Err(Error::Message(format!(
                    "{} is a pre-training run: continue it with `fmlab train pretrain --resume {}`",
                    run.display(),
                    run.display()
                )))
            }
            Err(e) => return Err(e),
        };
        if file.stage != command {
            let own = file.stage.command();
            return Err(Error::Message(format!(
                "{} was trained with `fmlab train {own}`: continue it with `fmlab train {own} --resume {}`",
                run.display(),
                run.display()
            )));
        }
        let Some(source) = file.data.clone() else {
            return Err(Error::Message(format!(
                "{}: run.json does not say which data the run trained on (it predates --resume)",
                run.display()
            )));
        };
        Ok(Self {
            run: run.to_path_buf(),
            file,
            source,
        })
    }

    /// The base model the run started from (to load again).
    pub fn base(&self) -> &Path {
        &self.file.base.path
    }

    /// Reads the run's data again with `encoder` (the base's chat template), packs it as
    /// the run did, and reopens the run at its newest checkpoint; `steps` may lengthen it.
    /// The skipped checkpoints are in the returned [`Resumed`].
    pub fn resume(
        self,
        base: Base,
        encoder: &ChatEncoder<'_>,
        steps: Option<u64>,
    ) -> Result<(FinetuneSession, Resumed)> {
        let Self { run, file, source } = self;
        let (data, skipped) = if file.stage == Stage::Sft {
            let (convs, skipped) = read_conversations(&source.path)?;
            (Data::Sft(encoder.conversations(&convs)?), skipped)
        } else {
            let (pairs, skipped) = read_pairs(&source.path)?;
            (Data::Pairs(encoder.pairs(&pairs)?), skipped)
        };
        let texts = match &source.mix {
            Some(mix) => mix_texts(&data, mix, encoder.tokenizer, file.config.optim.seq_len)?,
            None => Vec::new(),
        };
        let pad = pad_token(encoder.tokenizer);
        let mut prepared = prepare(&data, &texts, &file.config, pad)?;
        prepared.source = Some(source);
        let counts = prepared.records.clone();
        let (finetuner, resumed) = Finetuner::resume(&run, base, prepared, steps)
            .map_err(|e| e.during(format!("resuming {}", run.display())))?;
        let session = FinetuneSession {
            finetuner,
            skipped,
            counts,
        };
        Ok((session, resumed))
    }
}
