//! Post-training loops: supervised finetuning (loss on the assistant's tokens only) and
//! preference finetuning (DPO and its relatives against a frozen reference), on full weights
//! or LoRA adapters, over packed rows (`chat_data`).
//!
//! A run is a folder like a pre-training run's: `run.json` (stage, spec, configuration,
//! base model), `tokenizer.json` when the base had one, `metrics.jsonl`, `checkpoints/`.
//! A LoRA run's checkpoints hold the adapters only; their manifest names the base model,
//! which loading merges them into.
//!
//! DPO's reference is the base model: its sequence log-probabilities are computed once, at
//! the start, and kept (`reference_logps.json`). With LoRA the reference is the base with
//! the adapters off, so no second copy of the weights is needed.
//!
//! Modules: [`setup`] (settings to a sized run; resuming), `prepare` (records to rows),
//! `objective` (the losses), `lifecycle` (create, resume, checkpoint), `steps` (the loop).

mod lifecycle;
mod objective;
mod prepare;
pub mod setup;
mod steps;

pub use objective::{PreferenceLoss, RewardStats};
pub use prepare::{prepare, Prepared, RecordCounts};
pub use setup::{FinetuneSettings, NewStage, ResumePlan};

use std::path::PathBuf;

use fmlab_data::shards::Cursor;
use fmlab_nn::train::{Adapters, Weights};
use fmlab_spec::ModelSpec;
use serde::{Deserialize, Serialize};

use crate::chat_data::{Rows, Sequence};
use crate::checkpoint::FileEntry;
use crate::run_state::RunState;
pub use crate::stage::{BaseRef, LoraConfig, Stage};
use crate::{AdamW, LoopConfig};

/// A finetuning run ready to train, with what its summary reports about its records
/// ([`crate::session`] runs it).
pub struct FinetuneSession {
    pub finetuner: Finetuner,
    pub skipped: crate::chat_data::Skipped,
    pub counts: RecordCounts,
}

/// What a finetuning run optimises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Method {
    /// Next-token loss on the assistant's tokens.
    Sft,
    /// A preference loss on (chosen, rejected) pairs.
    Preference { beta: f64, loss: PreferenceLoss },
    /// A Bradley–Terry reward model on (chosen, rejected) pairs: the backbone with a scalar
    /// head, −log σ(r_chosen − r_rejected), each reward read where its answer ends.
    Reward,
}

impl Method {
    pub fn stage(&self) -> Stage {
        match self {
            Method::Sft => Stage::Sft,
            Method::Preference { .. } => Stage::Preference,
            Method::Reward => Stage::Reward,
        }
    }
}

/// A finetuning run's configuration (`run.json`, every checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    pub method: Method,
    /// Row length, rows per micro-batch, steps, schedule, AdamW, clipping, evaluation and
    /// checkpoint cadence, seed (`eval_windows` is unused: every validation row is scored).
    pub optim: LoopConfig,
    pub lora: Option<LoraConfig>,
    /// Share of the records held out for validation (at least one when there are two).
    pub val_fraction: f64,
}

/// The base model a run starts from.
pub struct Base {
    pub spec: ModelSpec,
    pub weights: Weights<f32>,
    pub source: BaseRef,
    /// Its `tokenizer.json`, copied into the run when present.
    pub tokenizer_json: Option<Vec<u8>>,
}

/// The training records, tokenized.
pub enum Data {
    /// Conversations.
    Sft(Vec<Sequence>),
    /// (chosen, rejected) pairs, each rendered after its prompt.
    Pairs(Vec<(Sequence, Sequence)>),
}

/// `run.json` of a finetuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneRun {
    pub format: String,
    pub stage: Stage,
    pub spec: ModelSpec,
    pub config: FinetuneConfig,
    pub base: BaseRef,
    pub tokenizer: Option<FileEntry>,
    /// Training and validation records used, and what packing made of them.
    pub records: RecordCounts,
    /// Where the records came from, so that `--resume` can read them again.
    #[serde(default)]
    pub data: Option<DataRef>,
}

/// The files a run's records were read from (absolute paths).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRef {
    /// Conversations (SFT) or preference pairs.
    pub path: PathBuf,
    /// Plain text mixed into SFT.
    #[serde(default)]
    pub mix: Option<Mix>,
}

/// Plain text mixed into supervised finetuning ([`crate::chat_data::read_texts`]): where
/// from, and its share of the training rows' positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mix {
    pub path: PathBuf,
    pub ratio: f64,
}

pub(crate) const RUN_FORMAT: &str = "fmlab-finetune-1";

/// One optimizer step's figures; preference runs add the reward statistics (means over the
/// step's pairs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FinetuneMetrics {
    pub step: u64,
    pub loss: f64,
    pub lr: f32,
    pub grad_norm: f32,
    pub tokens: u64,
    pub tokens_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewards: Option<RewardStats>,
}

/// A finetuning run in progress.
pub struct Finetuner {
    state: RunState,
    pub file: FinetuneRun,
    /// The model's weights: trained (full finetuning) or frozen (LoRA).
    weights: Weights<f32>,
    adapters: Option<Adapters<f32>>,
    grads: Weights<f32>,
    optimizer: AdamW,
    train: Rows,
    val: Rows,
    /// Per packed sequence (training, then validation): the reference's sum of
    /// log-probabilities over its answer, and the answer's length (preference runs).
    reference: Vec<(f64, usize)>,
    val_offset: usize,
    order: Vec<usize>,
    cursor: Cursor,
}
