//! The pre-training loop: next-token prediction on token shards, AdamW with a schedule,
//! gradient clipping and accumulation, validation loss, metrics as JSON Lines, and
//! checkpoints that let `resume` continue exactly where a run stopped (the same loss
//! sequence, bit for bit, as a run that never stopped).
//!
//! A run is a folder:
//! - `run.json` — the spec, the configuration, the shards folder, the tokenizer's name;
//! - `tokenizer.json` — a copy of the tokenizer the shards were made with (when given);
//! - `metrics.jsonl` — one line per step (`step`, `loss`, `lr`, `grad_norm`, `tokens`,
//!   `tokens_per_second`, `train_seconds`) and per evaluation (`step`, `val_loss`);
//! - `checkpoints/step-NNNNNNNNN/` — see [`crate::checkpoint`].
//!
//! The loop never prints: it reports [`Event`]s to the caller, which draws progress.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use fmlab_data::shards::{Cursor, ShardManifest, Windows};
use fmlab_nn::train::{loss_and_grad, Weights};
use fmlab_spec::ModelSpec;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::checkpoint::{self, Checkpoint, FileEntry};
use crate::run_state::{copy_tokenizer, optimizer_step, ManifestParts, Resumed, RunState};
use crate::{AdamW, AdamWConfig, Error, Event, LoopConfig, Outcome, Result, StepMetrics};

/// `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    pub format: String,
    pub spec: ModelSpec,
    pub config: LoopConfig,
    /// The token shards (as given, made absolute).
    pub shards: PathBuf,
    pub tokenizer: Option<FileEntry>,
}

const RUN_FORMAT: &str = "fmlab-run-1";

/// A pre-training run in progress.
pub struct Pretrainer {
    state: RunState,
    pub file: RunFile,
    weights: Weights<f32>,
    grads: Weights<f32>,
    optimizer: AdamW,
    train: Windows,
    val: Vec<Vec<u32>>,
}

fn optimizer_for(weights: &mut Weights<f32>, config: AdamWConfig) -> Result<AdamW> {
    let named = weights.named_mut();
    let sizes: Vec<usize> = named.iter().map(|t| t.data.len()).collect();
    let decay: Vec<bool> = named.iter().map(|t| t.decay).collect();
    AdamW::new(config, &sizes, &decay)
}

/// The validation windows: the first `n` of the val split in a fixed order (empty when the
/// shards have no val split or it is shorter than one window).
fn val_windows(shards: &Path, seq_len: usize, n: usize) -> Result<Vec<Vec<u32>>> {
    let manifest = ShardManifest::read(shards)?;
    if !manifest.shards.iter().any(|s| s.split == "val") || n == 0 {
        return Ok(Vec::new());
    }
    match Windows::open(shards, "val", seq_len, 0, Cursor::default()) {
        Ok(mut w) => {
            let k = n.min(w.len());
            Ok((0..k).map(|_| w.next_window()).collect())
        }
        Err(fmlab_data::Error::Config(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The tokenizer a new run copies in, read and checked: it must be the one the shards were
/// made with (the manifest records its hash). `None`: a run without one, which can be
/// trained but not run or exported (`fmlab train pretrain` refuses that; tests of the loop
/// on synthetic token streams need it).
fn read_tokenizer(
    shards: &Path,
    manifest: &ShardManifest,
    given: Option<&Path>,
) -> Result<Option<Vec<u8>>> {
    let Some(path) = given else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if let Some(want) = manifest.tokenizer.strip_prefix("sha256:") {
        let got = format!("{:x}", sha2::Sha256::digest(&bytes));
        if got != want {
            return Err(Error::Config(format!(
                "{}: not the tokenizer the shards in {} were made with (its SHA-256 is {got}, the manifest records {want})",
                path.display(),
                shards.display()
            )));
        }
    }
    Ok(Some(bytes))
}

/// Refuses, before anything is allocated or written, a run whose training memory (fmlab-spec's
/// estimate: f32 weights, gradients, AdamW moments and one micro-batch's activations) exceeds
/// the memory this machine has available.
pub(crate) fn check_memory(spec: &ModelSpec, config: &LoopConfig) -> Result<()> {
    let Some(available) = available_memory() else {
        return Ok(());
    };
    let m = spec.training_memory(
        fmlab_spec::TrainingPrecision::F32,
        config.seq_len as u64,
        config.batch as u64,
    );
    let need = m.total_no_recompute;
    if need > available {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        return Err(Error::Config(format!(
            "the run needs about {:.1} GiB (weights, gradients and AdamW state {:.1} GiB; activations of {} sequences of {} tokens {:.1} GiB) but this machine has {:.1} GiB available: lower --seq-len, --batch (with --grad-accum for the same tokens per step) or --depth",
            gib(need),
            gib(m.weights + m.gradients + m.optimizer),
            config.batch,
            config.seq_len,
            gib(m.activations.no_recompute),
            gib(available)
        )));
    }
    Ok(())
}

/// `MemAvailable` of `/proc/meminfo` in bytes (`None` where there is no such file).
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Pretrainer {
    /// Starts a new run in `run` (which must not hold one already): initial weights from
    /// the seed, the tokenizer copied in, `run.json` written.
    pub fn create(
        run: &Path,
        spec: ModelSpec,
        config: LoopConfig,
        shards: &Path,
        tokenizer: Option<&Path>,
    ) -> Result<Self> {
        config.validate(&spec)?;
        if run.join("run.json").exists() {
            return Err(Error::Config(format!(
                "{} already holds a run: resume it, or choose another folder",
                run.display()
            )));
        }
        let manifest = ShardManifest::read(shards)?;
        if manifest.vocab_size > spec.vocab_size {
            return Err(Error::Config(format!(
                "the shards use a vocabulary of {}, the model has {}",
                manifest.vocab_size, spec.vocab_size
            )));
        }
        let tokenizer_bytes = read_tokenizer(shards, &manifest, tokenizer)?;
        check_memory(&spec, &config)?;
        std::fs::create_dir_all(run).map_err(|e| Error::io(run, e))?;
        let tokenizer = match tokenizer_bytes {
            Some(bytes) => Some(copy_tokenizer(run, &bytes)?),
            None => None,
        };
        let shards = std::path::absolute(shards).map_err(|e| Error::io(shards, e))?;
        let file = RunFile {
            format: RUN_FORMAT.into(),
            spec: spec.clone(),
            config: config.clone(),
            shards,
            tokenizer,
        };
        let mut weights = Weights::<f32>::init(&spec, config.seed)?;
        let optimizer = optimizer_for(&mut weights, config.adamw)?;
        let train = Windows::open(
            &file.shards,
            "train",
            config.seq_len,
            config.seed,
            Cursor::default(),
        )?;
        let val = val_windows(&file.shards, config.seq_len, config.eval_windows)?;
        let state = RunState::create(run, &file)?;
        Ok(Self {
            state,
            grads: Weights::zeros(&spec)?,
            file,
            weights,
            optimizer,
            train,
            val,
        })
    }

    /// Reads `run.json` of an existing run.
    pub fn read_run(run: &Path) -> Result<RunFile> {
        checkpoint::read_versioned(
            &run.join("run.json"),
            "an fmlab run",
            RUN_FORMAT,
            |f: &RunFile| &f.format,
            Error::Config,
        )
    }

    /// Continues a run from its newest checkpoint that verifies. `steps`, when given,
    /// changes the run's length (the schedule keeps its own total).
    pub fn resume(run: &Path, steps: Option<u64>) -> Result<(Self, Resumed)> {
        let mut file = Self::read_run(run)?;
        let (ckpt, skipped) = checkpoint::latest(run, true)?;
        let Checkpoint {
            dir,
            manifest,
            weights,
            optimizer,
        } = ckpt;
        if manifest.spec != file.spec || manifest.config.seq_len != file.config.seq_len {
            return Err(Error::Checkpoint(format!(
                "{}: its spec or sequence length differs from run.json",
                dir.display()
            )));
        }
        file.config = manifest.config.clone();
        if let Some(s) = steps {
            file.config.steps = s;
        }
        let c = &file.config;
        let train = Windows::open(&file.shards, "train", c.seq_len, c.seed, manifest.cursor)?;
        let val = val_windows(&file.shards, c.seq_len, c.eval_windows)?;
        let state = RunState::resume(run, &manifest)?;
        let resumed = Resumed {
            step: manifest.step,
            dir,
            skipped,
        };
        Ok((
            Self {
                state,
                grads: Weights::zeros(&file.spec)?,
                file,
                weights,
                optimizer,
                train,
                val,
            },
            resumed,
        ))
    }

    pub fn step_count(&self) -> u64 {
        self.state.step
    }

    pub fn weights(&self) -> &Weights<f32> {
        &self.weights
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.file.spec
    }

    pub fn config(&self) -> &LoopConfig {
        &self.file.config
    }

    pub fn run_dir(&self) -> &Path {
        &self.state.dir
    }

    /// The fixed validation windows (`seq_len + 1` tokens each).
    pub fn validation(&self) -> &[Vec<u32>] {
        &self.val
    }

    /// Whether there is a validation split to evaluate on.
    pub fn has_validation(&self) -> bool {
        !self.val.is_empty()
    }

    /// Mean validation loss (nats per token) over the fixed validation windows; `None`
    /// without a validation split.
    pub fn evaluate(&self) -> Result<Option<f64>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let c = &self.file.config;
        let mut total = 0.0;
        for chunk in self.val.chunks(c.batch) {
            let (inputs, targets) = split_windows(chunk);
            let loss = loss_and_grad(
                &self.file.spec,
                &self.weights,
                &inputs,
                &targets,
                chunk.len(),
                None,
            )?;
            total += loss as f64 * chunk.len() as f64;
        }
        Ok(Some(total / self.val.len() as f64))
    }

    /// One optimizer step: `grad_accum` micro-batches forward and backward, clipping, AdamW.
    pub fn train_step(&mut self) -> Result<StepMetrics> {
        let start = Instant::now();
        let c = self.file.config.clone();
        self.grads.as_mut_slice().fill(0.0);
        let mut loss = 0.0f64;
        for _ in 0..c.grad_accum {
            let windows: Vec<Vec<u32>> = (0..c.batch).map(|_| self.train.next_window()).collect();
            let (inputs, targets) = split_windows(&windows);
            loss += loss_and_grad(
                &self.file.spec,
                &self.weights,
                &inputs,
                &targets,
                c.batch,
                Some(&mut self.grads),
            )? as f64;
        }
        loss /= c.grad_accum as f64;
        let st = &mut self.state;
        let (grad_norm, lr) = optimizer_step(
            &c,
            st.step,
            loss,
            &mut self.grads,
            &mut self.weights,
            &mut self.optimizer,
        )?;
        st.step += 1;
        st.tokens += c.tokens_per_step();
        let seconds = start.elapsed().as_secs_f64();
        st.train_seconds += seconds;
        st.last_loss = Some(loss);
        let m = StepMetrics {
            step: st.step,
            loss,
            lr,
            grad_norm,
            tokens: st.tokens,
            tokens_per_second: c.tokens_per_step() as f64 / seconds.max(1e-9),
            train_seconds: st.train_seconds,
        };
        st.log(&serde_json::to_value(m).map_err(Error::Json)?)?;
        Ok(m)
    }

    /// Evaluates, logs and reports the validation loss.
    fn eval_event(&mut self, on: &mut dyn FnMut(Event)) -> Result<()> {
        if let Some(val_loss) = self.evaluate()? {
            self.state.last_val = Some(val_loss);
            let step = self.state.step;
            self.state
                .log(&serde_json::json!({ "step": step, "val_loss": val_loss }))?;
            on(Event::Eval { step, val_loss });
        }
        Ok(())
    }

    /// Writes a checkpoint of the current step.
    pub fn checkpoint(&mut self) -> Result<PathBuf> {
        let manifest = self.state.manifest(ManifestParts {
            spec: &self.file.spec,
            config: &self.file.config,
            cursor: self.train.cursor(),
            tokenizer: &self.file.tokenizer,
            stage: None,
            lora: None,
            base: None,
        });
        let keep = self.file.config.keep.max(1);
        checkpoint::save(
            &self.state.dir,
            &manifest,
            &mut self.weights,
            &self.optimizer,
            keep,
        )
    }

    /// Trains until the configured steps are done or `stop` is raised, evaluating and
    /// checkpointing on the configured cadence; always ends with a checkpoint.
    pub fn run(&mut self, stop: &AtomicBool, on: &mut dyn FnMut(Event)) -> Result<Outcome> {
        crate::driver::drive(self, stop, on)
    }
}

impl crate::driver::Loop for Pretrainer {
    fn run_dir(&self) -> &Path {
        &self.state.dir
    }

    fn steps_done(&self) -> u64 {
        self.state.step
    }

    fn cadence(&self) -> (u64, u64, u64) {
        let c = &self.file.config;
        (c.steps, c.eval_every, c.checkpoint_every)
    }

    fn step(&mut self) -> Result<StepMetrics> {
        self.train_step()
    }

    fn evaluate_now(&mut self, on: &mut dyn FnMut(Event)) -> Result<()> {
        self.eval_event(on)
    }

    fn save(&mut self) -> Result<PathBuf> {
        self.checkpoint()
    }
}

/// Inputs (all but the last token) and targets (all but the first) of windows.
fn split_windows(windows: &[Vec<u32>]) -> (Vec<u32>, Vec<u32>) {
    let mut inputs = Vec::new();
    let mut targets = Vec::new();
    for w in windows {
        inputs.extend_from_slice(&w[..w.len() - 1]);
        targets.extend_from_slice(&w[1..]);
    }
    (inputs, targets)
}
