//! The CLI's side of loading models (`fmlab_train::models` does the loading): each loader
//! with the checkpoints it passed over printed as warnings, and the thread pool a command
//! runs its model on.

use anyhow::{Context, Result};
use std::path::Path;

pub use fmlab_train::models::{
    load_tokenizer, models_dir, run_tokenizer, Loaded, RunCheckpoint, Trainable, KNOWN_MODELS,
};

/// Prints `warning: skipped checkpoint DIR: WHY` for each checkpoint a load passed over.
pub fn warn_skipped(skipped: &fmlab_train::models::Skipped) {
    for (dir, why) in skipped {
        eprintln!("warning: skipped checkpoint {}: {why}", dir.display());
    }
}

/// [`fmlab_train::models::load`], its warnings printed.
pub fn load(name: &str) -> Result<Loaded> {
    let loaded = fmlab_train::models::load(name)?;
    warn_skipped(&loaded.skipped);
    Ok(loaded)
}

/// [`fmlab_train::models::load_trainable`], its warnings printed.
pub fn load_trainable(name: &str) -> Result<Trainable> {
    let t = fmlab_train::models::load_trainable(name)?;
    warn_skipped(&t.skipped);
    Ok(t)
}

/// [`fmlab_train::models::load_reward_model`], its warnings printed.
pub fn load_reward_model(name: &str, vocab: usize, what: &str) -> Result<Loaded> {
    let rm = load(name)?;
    fmlab_train::models::check_vocabulary(&rm, vocab, what)?;
    Ok(rm)
}

/// [`fmlab_train::models::find_checkpoint`], its warnings printed.
pub fn find_checkpoint(path: &Path, optimizer: bool) -> Result<RunCheckpoint> {
    let found = fmlab_train::models::find_checkpoint(path, optimizer)?;
    warn_skipped(&found.skipped);
    Ok(found)
}

/// Runs `work` on a pool of `threads` threads (default: one per core), the calling thread
/// among them: parallel kernels then start without waking another thread to hand work to,
/// which at one token per step is a large share of the time.
pub fn with_threads<T: Send>(
    threads: Option<u64>,
    work: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n as usize);
    }
    let pool = builder.build().context("starting the thread pool")?;
    pool.install(work)
}
