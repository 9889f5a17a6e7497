//! What a checkpoint records about how a finetuned run was made — its stage, its LoRA
//! settings, its base model — read by the checkpoint and run-state code beneath the
//! finetuning loop (and re-exported from `finetune`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// LoRA settings (Hu et al. 2021).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Adapted maps: GGUF suffixes (`attn_q`, …) or Hugging Face names (`q_proj`, …).
    pub targets: Vec<String>,
}

/// A finetuning stage: what `run.json`, checkpoints and summaries call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Sft,
    Preference,
    Reward,
}

impl Stage {
    /// The `fmlab train` subcommand that runs (and resumes) the stage.
    pub fn command(self) -> &'static str {
        match self {
            Stage::Sft => "sft",
            Stage::Preference => "dpo",
            Stage::Reward => "reward",
        }
    }

    /// Its name in `run.json`, checkpoints and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Sft => "sft",
            Stage::Preference => "preference",
            Stage::Reward => "reward",
        }
    }
}

/// Where the base model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseRef {
    /// A training run, a checkpoint folder, or a GGUF file (absolute).
    pub path: PathBuf,
    /// "run" or "gguf".
    pub kind: String,
}
