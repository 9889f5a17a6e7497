//! What both training loops keep about a run folder, written once: the step, tokens,
//! seconds and last losses that go into every checkpoint's manifest, `metrics.jsonl`
//! (created empty, or cut back to the resumed step), `run.json` and the copied
//! `tokenizer.json`, and the optimizer step that follows the gradients.

use std::io::Write;
use std::path::{Path, PathBuf};

use fmlab_data::shards::Cursor;
use fmlab_nn::train::Weights;
use serde::Serialize;

use crate::checkpoint::{self, FileEntry, Manifest};
use crate::stage::{BaseRef, LoraConfig, Stage};
use crate::{clip_grad_norm, AdamW, Error, LoopConfig, Result};

/// Where a resumed run picked up.
#[derive(Debug)]
pub struct Resumed {
    pub step: u64,
    pub dir: PathBuf,
    /// Newer checkpoints that failed verification, and why.
    pub skipped: Vec<(PathBuf, Error)>,
}

/// A run folder's progress and its open `metrics.jsonl`.
pub(crate) struct RunState {
    pub dir: PathBuf,
    pub step: u64,
    pub tokens: u64,
    pub train_seconds: f64,
    pub last_loss: Option<f64>,
    pub last_val: Option<f64>,
    metrics: std::fs::File,
}

/// What a manifest records besides the run state: the loop's own fields.
pub(crate) struct ManifestParts<'a> {
    pub spec: &'a fmlab_spec::ModelSpec,
    pub config: &'a LoopConfig,
    pub cursor: Cursor,
    pub tokenizer: &'a Option<FileEntry>,
    pub stage: Option<Stage>,
    pub lora: Option<LoraConfig>,
    pub base: Option<BaseRef>,
}

/// Writes `bytes` as the run's `tokenizer.json` and describes it.
pub(crate) fn copy_tokenizer(dir: &Path, bytes: &[u8]) -> Result<FileEntry> {
    let name = "tokenizer.json".to_string();
    fmlab_formats::write_atomically(&dir.join(&name), bytes)?;
    Ok(FileEntry {
        name,
        bytes: bytes.len() as u64,
        sha256: format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(bytes)),
    })
}

impl RunState {
    /// A fresh run: `run.json` written from `file`, `metrics.jsonl` created empty.
    pub fn create(dir: &Path, file: &impl Serialize) -> Result<Self> {
        let json = serde_json::to_vec_pretty(file).map_err(Error::Json)?;
        fmlab_formats::write_atomically(&dir.join("run.json"), &json)?;
        let metrics_path = dir.join("metrics.jsonl");
        fmlab_formats::write_atomically(&metrics_path, b"")?;
        let metrics = std::fs::OpenOptions::new()
            .append(true)
            .open(&metrics_path)
            .map_err(|e| Error::io(&metrics_path, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            step: 0,
            tokens: 0,
            train_seconds: 0.0,
            last_loss: None,
            last_val: None,
            metrics,
        })
    }

    /// A run resumed at `manifest`'s step (later metrics lines cut).
    pub fn resume(dir: &Path, manifest: &Manifest) -> Result<Self> {
        Ok(Self {
            dir: dir.to_path_buf(),
            step: manifest.step,
            tokens: manifest.tokens,
            train_seconds: manifest.train_seconds,
            last_loss: manifest.train_loss,
            last_val: manifest.val_loss,
            metrics: checkpoint::metrics_until(dir, manifest.step)?,
        })
    }

    /// Appends a line to `metrics.jsonl`.
    pub fn log(&mut self, line: &serde_json::Value) -> Result<()> {
        let path = self.dir.join("metrics.jsonl");
        writeln!(self.metrics, "{line}").map_err(|e| Error::io(&path, e))
    }

    /// The manifest of a checkpoint of the current step.
    pub fn manifest(&self, p: ManifestParts<'_>) -> Manifest {
        Manifest {
            format: checkpoint::FORMAT.into(),
            step: self.step,
            spec: p.spec.clone(),
            config: p.config.clone(),
            cursor: p.cursor,
            tokens: self.tokens,
            train_seconds: self.train_seconds,
            train_loss: self.last_loss,
            val_loss: self.last_val,
            tokenizer: p.tokenizer.clone(),
            files: Vec::new(),
            stage: p.stage,
            lora: p.lora,
            base: p.base,
        }
    }
}

/// The step after the gradients of `grad_accum` micro-batches: a non-finite `loss` refused,
/// the gradients averaged and clipped, AdamW applied to `params` at the schedule's rate.
/// Returns (gradient norm, learning rate).
pub(crate) fn optimizer_step(
    c: &LoopConfig,
    step: u64,
    loss: f64,
    grads: &mut Weights<f32>,
    params: &mut Weights<f32>,
    optimizer: &mut AdamW,
) -> Result<(f32, f32)> {
    if !loss.is_finite() {
        return Err(Error::Diverged {
            step: step + 1,
            loss,
        });
    }
    if c.grad_accum > 1 {
        let s = 1.0 / c.grad_accum as f32;
        grads.as_mut_slice().iter_mut().for_each(|x| *x *= s);
    }
    let mut grads: Vec<&mut [f32]> = grads.tensors_mut().into_iter().map(|(t, _)| t).collect();
    // Clipping off still measures the norm (for the metrics).
    let max_norm = if c.grad_clip > 0.0 {
        c.grad_clip
    } else {
        f32::INFINITY
    };
    let grad_norm = clip_grad_norm(&mut grads, max_norm);
    let lr = c.schedule.lr(step);
    let grad_refs: Vec<&[f32]> = grads.iter().map(|g| &**g).collect();
    let mut params: Vec<&mut [f32]> = params.tensors_mut().into_iter().map(|(t, _)| t).collect();
    optimizer.step(lr, &mut params, &grad_refs)?;
    Ok((grad_norm, lr))
}
