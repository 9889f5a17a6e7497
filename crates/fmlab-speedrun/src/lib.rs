//! `fmlab speedrun` as a library call: the whole lifecycle on the embedded synthetic world
//! — plan (depths timed, a scaling law), world, tokenizer, shards, pre-training, samples and
//! evaluation, then SFT, on-policy pairs and DPO, each model judged — within a time budget
//! or for a fixed number of steps, ending in a typed [`Report`].
//!
//! It lives in a crate of its own because it is the one caller of both fmlab-train and
//! fmlab-eval (neither depends on the other). It draws nothing and prints nothing: progress
//! reaches the caller as [`Event`]s, and the CLI draws the PNGs and writes `report.html`
//! from the same [`Report`] that becomes `report.json`.

pub mod plan;
pub mod report;
pub mod samples;

pub use report::Report;

/// Everything that can stop a speedrun, each naming its cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("no depth to train")]
    NoDepth,
    #[error("{0}")]
    Spec(#[from] fmlab_spec::Error),
    #[error("{0}")]
    Nn(#[from] fmlab_nn::Error),
    #[error("{0}")]
    Train(#[from] fmlab_train::Error),
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
