//! `fmlab speedrun` as a library call: the whole lifecycle on the embedded synthetic world
//! — plan (depths timed, a scaling law), world, tokenizer, shards, pre-training, samples and
//! evaluation, then SFT, on-policy pairs and DPO, each model judged — within a time budget
//! or for a fixed number of steps, ending in a typed [`Report`].
//!
//! It lives in a crate of its own because it is the one caller of both fmlab-train and
//! fmlab-eval (neither depends on the other). It draws nothing and prints nothing: progress
//! reaches the caller as [`Event`]s; the CLI draws the PNGs, and [`html::html_report`] writes
//! `report.html` from the same [`Report`] that becomes `report.json`.

pub mod plan;
pub mod report;
pub mod samples;

pub use report::Report;

/// Everything that can stop a speedrun, each naming its cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Message(String),
    #[error("no depth to train")]
    NoDepth,
    #[error("{0}")]
    Spec(#[from] fmlab_spec::Error),
    #[error("{0}")]
    Nn(#[from] fmlab_nn::Error),
    #[error("{0}")]
    Train(#[from] fmlab_train::Error),
    #[error("{0}")]
    Models(#[from] fmlab_train::models::Error),
    #[error("{0}")]
    Eval(#[from] fmlab_eval::Error),
    #[error("{0}")]
    Data(#[from] fmlab_data::Error),
    #[error("{0}")]
    Tokenizer(#[from] fmlab_tokenizer::Error),
    #[error("{0}")]
    Formats(#[from] fmlab_formats::Error),
    #[error("{0}")]
    Sample(#[from] fmlab_sample::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

pub mod html;
mod post;
mod run;

pub use run::run;

use fmlab_eval::chat::WinRate;
use fmlab_train::Progress;
use report::{Candidate, EvalFacts, PretrainFacts, StageEval, TokenizerFacts, WorldFacts};

/// A speedrun's settings (the CLI's flags; `validate` names the flag of a bad value). The
/// report keeps them all, under `config`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Config {
    /// The time budget for the whole run, in minutes.
    pub minutes: f64,
    /// Seeds the world, the initial weights, the data order and the samples.
    pub seed: u64,
    /// Train this depth instead of the planner's choice.
    pub depth: Option<u64>,
    /// Tokenizer vocabulary.
    pub vocab: u64,
    /// Tokens per training sequence, and sequences per step.
    pub seq_len: usize,
    pub batch: usize,
    /// Peak learning rate of pre-training.
    pub lr: f32,
    /// Epochs of the world that the planned tokens make.
    pub epochs: f64,
    /// Few-shot eval questions per bucket.
    pub eval_items: usize,
    /// Share of the budget for post-training; 0 skips it.
    pub post_share: f64,
    pub sft_lr: f32,
    pub sft_epochs: f64,
    /// Share of SFT's positions replaying the corpus.
    pub sft_mix: f64,
    pub dpo_lr: f32,
    pub dpo_epochs: f64,
    pub dpo_beta: f64,
    /// Training prompts sampled for on-policy pairs, and answers per prompt.
    pub pair_prompts: usize,
    pub pair_answers: usize,
    /// A fixed number of pre-training steps (post-training for its full epochs, no
    /// deadlines) instead of fitting the budget.
    pub steps: Option<u64>,
}

impl Config {
    /// Refuses values the run cannot use, naming the flag.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Message(msg));
        if !(self.minutes.is_finite() && self.minutes >= 1.0 && self.minutes <= 24.0 * 60.0) {
            return bad(format!(
                "--minutes must be between 1 and 1440, got {}",
                self.minutes
            ));
        }
        if !(self.epochs.is_finite() && self.epochs >= 0.1 && self.epochs <= 1000.0) {
            return bad(format!(
                "--epochs must be between 0.1 and 1000, got {}",
                self.epochs
            ));
        }
        if !(0.0..=0.6).contains(&self.post_share) {
            return bad(format!(
                "--post-share must be between 0 and 0.6, got {}",
                self.post_share
            ));
        }
        if !(0.0..0.95).contains(&self.sft_mix) {
            return bad(format!(
                "--sft-mix must be in [0, 0.95), got {}",
                self.sft_mix
            ));
        }
        if self.vocab < 300 || self.vocab > 65_536 {
            return bad(format!(
                "--vocab must be between 300 and 65536, got {}",
                self.vocab
            ));
        }
        Ok(())
    }
}

/// What a speedrun reports as it goes, in order.
#[derive(Debug)]
pub enum Event<'a> {
    /// A depth timed by the planner.
    Candidate(&'a Candidate),
    /// The depth that trains, and the tokens planned for it.
    Chosen(&'a Candidate),
    World(&'a WorldFacts),
    /// The tokenizer trained and the corpus tokenized into shards.
    Shards {
        tokenizer: &'a TokenizerFacts,
        train_tokens: u64,
        val_tokens: u64,
    },
    /// Pre-training starts: steps of `tokens_per_step`, planned to take `seconds`.
    PretrainStart {
        steps: u64,
        tokens_per_step: f64,
        seconds: f64,
    },
    /// A training stage's progress (`stage`: "pre-training", "sft", "preference").
    Training {
        stage: &'static str,
        progress: Progress,
    },
    /// A training stage has ended: its run folder, whose `loss.png` the caller may draw.
    Trained {
        stage: &'static str,
        run: &'a Path,
    },
    Pretrained(&'a PretrainFacts),
    Evaluated(&'a EvalFacts),
    /// A model asked the held-out questions through the chat template ("base", "SFT",
    /// "DPO"), and its win rate over the previous stage.
    Judged {
        name: &'static str,
        eval: &'a StageEval,
        win: Option<&'a WinRate>,
    },
    /// On-policy pairs: how many of how many prompts, `k` answers each.
    Pairs {
        pairs: usize,
        prompts: usize,
        k: usize,
    },
    /// Checkpoints a load passed over (newer, broken ones), with why.
    Skipped(&'a fmlab_train::models::Skipped),
}

use std::path::Path;

/// Where a run goes when the caller names no folder: `runs/speedrun-YYYYMMDD-HHMMSS` (UTC).
pub fn default_out() -> std::path::PathBuf {
    std::path::Path::new("runs").join(format!("speedrun-{}", timestamp()))
}

/// UTC date and time as YYYYMMDD-HHMMSS, for default folder names.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
