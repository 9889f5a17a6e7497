//! Training for fmlab: the optimizer, learning-rate schedules and gradient clipping that
//! every loop (pre-training, SFT, DPO) shares. The loops themselves arrive with the
//! pre-training issue.
//!
//! - [`AdamW`]: Adam with decoupled weight decay (Loshchilov & Hutter 2019), exactly as
//!   PyTorch's `torch.optim.AdamW` computes it, with a decay flag per tensor (no decay on
//!   norms, biases and embeddings);
//! - [`Schedule`]: constant, warmup + cosine, and warmup-stable-decay (WSD);
//! - [`clip_grad_norm`]: global L2 clipping as `torch.nn.utils.clip_grad_norm_`.

mod optim;
mod schedule;

pub use optim::{clip_grad_norm, AdamW, AdamWConfig};
pub use schedule::Schedule;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("optimizer: {0}")]
    Optimizer(String),
    #[error("schedule: {0}")]
    Schedule(String),
}

pub type Result<T> = std::result::Result<T, Error>;
