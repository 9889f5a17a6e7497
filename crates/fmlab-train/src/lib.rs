//! Training for fmlab: the loops and what they share.
//!
//! - [`AdamW`]: Adam with decoupled weight decay (Loshchilov & Hutter 2019), exactly as
//!   PyTorch's `torch.optim.AdamW` computes it, with a decay flag per tensor (no decay on
//!   norms, biases and embeddings);
//! - [`Schedule`]: constant, warmup + cosine, and warmup-stable-decay (WSD);
//! - [`clip_grad_norm`]: global L2 clipping as `torch.nn.utils.clip_grad_norm_`;
//! - [`pretrain::Pretrainer`]: the pre-training loop over token shards, with metrics and
//!   exact resumption;
//! - [`finetune::Finetuner`]: supervised and preference finetuning (DPO, IPO, hinge,
//!   SimPO) on full weights or LoRA adapters, over [`chat_data`]'s masked, packed rows;
//! - [`checkpoint`]: checkpoints written atomically and verified on load;
//! - [`settings`] and [`finetune::setup`]: what a caller gives (flags, a TOML file, the
//!   speedrun) resolved into a run's configuration with the defaults filled in;
//! - [`session`]: a run driven to its end with a [`Progress`] callback, returning a typed
//!   summary; [`metrics`]: the one reader of a run's `metrics.jsonl`;
//! - [`quantize`]: a GGUF file re-encoded tensor by tensor as llama.cpp's `llama-quantize`
//!   does (`fmlab quantize`).

pub mod chat_data;
pub mod checkpoint;
pub mod convert;
mod driver;
pub mod export;
pub mod finetune;
pub mod metrics;
pub mod models;
mod optim;
pub mod pretrain;
pub mod quantize;
mod run_state;
mod schedule;
pub mod session;
pub mod settings;
pub mod stage;

pub use driver::{Event, LoopConfig, Outcome, StepMetrics};
pub use optim::{clip_grad_norm, AdamW, AdamWConfig};
pub use pretrain::Pretrainer;
pub use run_state::Resumed;
pub use schedule::Schedule;
pub use session::{FinetuneSummary, PretrainSummary, Progress};
pub use settings::{PretrainSettings, ScheduleKind};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("optimizer: {0}")]
    Optimizer(String),
    #[error("schedule: {0}")]
    Schedule(String),
    #[error("training configuration: {0}")]
    Config(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("training diverged at step {step}: loss {loss}")]
    Diverged { step: u64, loss: f64 },
    /// The I/O error is part of the message, not a `source`: printed once.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("JSON: {0}")]
    Json(serde_json::Error),
    /// A refusal whose text is the whole message (a setting out of range, a run resumed
    /// with the wrong command).
    #[error("{0}")]
    Message(String),
    /// What was being done when `inner` happened ("resuming RUN", "creating the run in
    /// DIR").
    #[error("{what}: {inner}")]
    Context { what: String, inner: Box<Error> },
    #[error(transparent)]
    Model(#[from] fmlab_nn::Error),
    #[error(transparent)]
    Data(#[from] fmlab_data::Error),
    #[error(transparent)]
    Format(#[from] fmlab_formats::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// This error, said to have happened while doing `what`.
    pub(crate) fn during(self, what: String) -> Self {
        Error::Context {
            what,
            inner: Box::new(self),
        }
    }

    pub(crate) fn io(path: &std::path::Path, error: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

impl From<fmlab_kernels::Error> for Error {
    fn from(e: fmlab_kernels::Error) -> Self {
        Error::Config(format!("export: {e}"))
    }
}
