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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use fmlab_data::shards::Cursor;
use fmlab_nn::train::{objective, token_logprobs, Adapters, Grads, Objective, Weights};
use fmlab_spec::ModelSpec;
use serde::{Deserialize, Serialize};

use crate::chat_data::{pack, Rows, Sequence};
use crate::checkpoint::{self, FileEntry, Manifest};
use crate::pretrain::{Event, Outcome, PretrainConfig};
use crate::{clip_grad_norm, AdamW, Error, Result};

/// LoRA settings (Hu et al. 2021).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Adapted maps: GGUF suffixes (`attn_q`, …) or Hugging Face names (`q_proj`, …).
    pub targets: Vec<String>,
}

/// A preference loss over Δ = (log πθ(y_w) − log π_ref(y_w)) − (log πθ(y_l) − log π_ref(y_l)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreferenceLoss {
    /// DPO: −log σ(β·Δ).
    Sigmoid,
    /// IPO (Azar et al. 2023): (Δ_avg − 1/(2β))², on per-token average log-probabilities.
    Ipo,
    /// SLiC's hinge: max(0, 1 − β·Δ).
    Hinge,
    /// SimPO (Meng et al. 2024), reference-free: −log σ(β·(avg log πθ(y_w) − avg log
    /// πθ(y_l)) − γ).
    Simpo { gamma: f64 },
}

impl PreferenceLoss {
    pub fn parse(name: &str, gamma: f64) -> Result<Self> {
        Ok(match name {
            "sigmoid" | "dpo" => Self::Sigmoid,
            "ipo" => Self::Ipo,
            "hinge" => Self::Hinge,
            "simpo" => Self::Simpo { gamma },
            other => {
                return Err(Error::Config(format!(
                    "unknown preference loss {other:?} (sigmoid, ipo, hinge, simpo)"
                )))
            }
        })
    }

    /// Whether the loss compares per-token averages rather than sums.
    fn averaged(self) -> bool {
        matches!(self, Self::Ipo | Self::Simpo { .. })
    }

    /// The loss of one pair and its derivatives with respect to the chosen and rejected
    /// policy scores (sums or averages of log-probabilities), given the reference's.
    fn pair(self, beta: f64, pc: f64, pr: f64, rc: f64, rr: f64) -> (f64, f64, f64) {
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        // −log σ(x), stably.
        let nls = |x: f64| {
            if x > 0.0 {
                (-x).exp().ln_1p()
            } else {
                -x + x.exp().ln_1p()
            }
        };
        match self {
            Self::Sigmoid => {
                let z = beta * ((pc - rc) - (pr - rr));
                let g = -beta * sigmoid(-z);
                (nls(z), g, -g)
            }
            Self::Ipo => {
                let delta = (pc - rc) - (pr - rr);
                let e = delta - 1.0 / (2.0 * beta);
                (e * e, 2.0 * e, -2.0 * e)
            }
            Self::Hinge => {
                let z = beta * ((pc - rc) - (pr - rr));
                if z < 1.0 {
                    (1.0 - z, -beta, beta)
                } else {
                    (0.0, 0.0, 0.0)
                }
            }
            Self::Simpo { gamma } => {
                let z = beta * (pc - pr) - gamma;
                let g = -beta * sigmoid(-z);
                (nls(z), g, -g)
            }
        }
    }
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

/// A finetuning run's configuration (`run.json`, every checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    pub method: Method,
    /// Row length, rows per micro-batch, steps, schedule, AdamW, clipping, evaluation and
    /// checkpoint cadence, seed (`eval_windows` is unused: every validation row is scored).
    pub optim: PretrainConfig,
    pub lora: Option<LoraConfig>,
    /// Share of the records held out for validation (at least one when there are two).
    pub val_fraction: f64,
}

/// Where the base model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseRef {
    /// A training run, a checkpoint folder, or a GGUF file (absolute).
    pub path: PathBuf,
    /// "run" or "gguf".
    pub kind: String,
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
    pub stage: String,
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordCounts {
    pub train: usize,
    pub val: usize,
    pub train_rows: usize,
    pub val_rows: usize,
    /// Trained-on tokens per epoch.
    pub train_tokens: usize,
    /// Records left out because they do not fit a row.
    pub too_long: usize,
    /// Pieces of plain text mixed into the training rows (SFT with replay) and the
    /// positions they predict per epoch (included in `train_tokens`).
    #[serde(default)]
    pub mix_pieces: usize,
    #[serde(default)]
    pub mix_tokens: usize,
}

const RUN_FORMAT: &str = "fmlab-finetune-1";

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

/// TRL's preference metrics: β·(log πθ − log π_ref) of the chosen and rejected answers,
/// how often the chosen one's is higher, their margin, and the policy's log-probabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RewardStats {
    #[serde(rename = "rewards/chosen")]
    pub chosen: f64,
    #[serde(rename = "rewards/rejected")]
    pub rejected: f64,
    #[serde(rename = "rewards/accuracies")]
    pub accuracy: f64,
    #[serde(rename = "rewards/margins")]
    pub margin: f64,
    #[serde(rename = "logps/chosen")]
    pub logps_chosen: f64,
    #[serde(rename = "logps/rejected")]
    pub logps_rejected: f64,
}

impl RewardStats {
    fn add(&mut self, o: &RewardStats) {
        self.chosen += o.chosen;
        self.rejected += o.rejected;
        self.accuracy += o.accuracy;
        self.margin += o.margin;
        self.logps_chosen += o.logps_chosen;
        self.logps_rejected += o.logps_rejected;
    }

    fn scale(&mut self, s: f64) {
        self.chosen *= s;
        self.rejected *= s;
        self.accuracy *= s;
        self.margin *= s;
        self.logps_chosen *= s;
        self.logps_rejected *= s;
    }
}

/// A finetuning run in progress.
pub struct Finetuner {
    run: PathBuf,
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
    step: u64,
    tokens: u64,
    train_seconds: f64,
    last_loss: Option<f64>,
    last_val: Option<f64>,
    metrics: std::fs::File,
}

/// Per packed sequence of `rows`: the sum of its targets' log-probabilities over its
/// masked (answer) positions, and how many there are.
fn sequence_sums(
    rows: &Rows,
    r0: usize,
    r1: usize,
    logps: &[f32],
    n_seq: usize,
) -> Vec<(f64, usize)> {
    let mut out = vec![(0.0, 0); n_seq];
    for ((&s, &m), &lp) in rows
        .sequence(r0, r1)
        .iter()
        .zip(rows.mask(r0, r1))
        .zip(logps)
    {
        if m && (s as usize) < n_seq {
            out[s as usize].0 += lp as f64;
            out[s as usize].1 += 1;
        }
    }
    out
}

/// A seeded permutation of `0..n` for epoch `epoch`.
fn order_for(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = fmlab_sample::Rng::for_sequence(seed, epoch);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_f64() * (i + 1) as f64) as usize;
        order.swap(i, j.min(i));
    }
    order
}

/// Splits the records into training and validation (seeded) and packs each into rows:
/// what [`Finetuner::create`] trains on, exposed so that a caller can size the run (steps
/// per epoch) first. Records longer than a row are left out (counted in the result).
/// `mix` (plain text, [`crate::chat_data::read_texts`]; SFT only) joins the training rows,
/// never the validation rows, so that the validation loss stays the conversations' own.
pub fn prepare(
    data: &Data,
    mix: &[Sequence],
    config: &FinetuneConfig,
    pad: u32,
) -> Result<Prepared> {
    if !mix.is_empty() && !matches!(data, Data::Sft(_)) {
        return Err(Error::Config(
            "plain text can be mixed into supervised finetuning only".into(),
        ));
    }
    let c = &config.optim;
    // Units: what must share a row (a conversation; a pair's two answers).
    let units: Vec<Vec<&Sequence>> = match &data {
        Data::Sft(s) => s.iter().map(|x| vec![x]).collect(),
        Data::Pairs(p) => p.iter().map(|(a, b)| vec![a, b]).collect(),
    };
    let seq_len = c.seq_len;
    let fits: Vec<usize> = (0..units.len())
        .filter(|&i| units[i].iter().map(|s| s.positions()).sum::<usize>() <= seq_len)
        .collect();
    if fits.is_empty() {
        return Err(Error::Config(format!(
            "no record fits rows of {seq_len} tokens"
        )));
    }
    let order = order_for(fits.len(), c.seed, u64::MAX);
    let n_val = if fits.len() >= 2 {
        ((fits.len() as f64 * config.val_fraction).round() as usize)
            .clamp(usize::from(config.val_fraction > 0.0), fits.len() - 1)
    } else {
        0
    };
    let (val_idx, train_idx) = order.split_at(n_val);
    let pick = |idx: &[usize]| -> Vec<Vec<&Sequence>> {
        idx.iter().map(|&i| units[fits[i]].clone()).collect()
    };
    let mut train_units = pick(train_idx);
    let mix_fits: Vec<&Sequence> = mix.iter().filter(|s| s.positions() <= seq_len).collect();
    let mix_tokens = mix_fits.iter().map(|s| s.positions()).sum();
    train_units.extend(mix_fits.iter().map(|&s| vec![s]));
    let train = pack(&train_units, seq_len, pad)?;
    let val = pack(&pick(val_idx), seq_len, pad)?;
    let records = RecordCounts {
        train: train_idx.len(),
        val: val_idx.len(),
        train_rows: train.len(),
        val_rows: val.len(),
        train_tokens: train.mask.iter().filter(|&&m| m).count(),
        too_long: units.len() - fits.len(),
        mix_pieces: mix_fits.len(),
        mix_tokens,
    };
    Ok(Prepared {
        train,
        val,
        records,
        source: None,
    })
}

/// Records split and packed by [`prepare`].
#[derive(Debug, Clone)]
pub struct Prepared {
    pub train: Rows,
    pub val: Rows,
    pub records: RecordCounts,
    /// Where the records came from (recorded in `run.json`; set by the caller).
    pub source: Option<DataRef>,
}

impl Finetuner {
    /// Starts a run in `run` from `base` on `data` (tokenized with the base's template).
    /// `pad` fills the rows' tails.
    pub fn create(
        run: &Path,
        base: Base,
        data: Data,
        config: FinetuneConfig,
        pad: u32,
    ) -> Result<Self> {
        let prepared = prepare(&data, &[], &config, pad)?;
        Self::from_prepared(run, base, prepared, config)
    }

    /// [`Finetuner::create`] on records already split and packed with this `config`
    /// (a caller that sized the run from them does not pack twice).
    pub fn from_prepared(
        run: &Path,
        base: Base,
        prepared: Prepared,
        config: FinetuneConfig,
    ) -> Result<Self> {
        let c = &config.optim;
        c.validate(&base.spec)?;
        if !(0.0..1.0).contains(&config.val_fraction) {
            return Err(Error::Config(format!(
                "the validation share must be in [0, 1), got {}",
                config.val_fraction
            )));
        }
        if let Method::Preference { beta, .. } = config.method {
            if !(beta.is_finite() && beta > 0.0) {
                return Err(Error::Config(format!("β must be > 0, got {beta}")));
            }
        }
        if run.join("run.json").exists() {
            return Err(Error::Config(format!(
                "{} already holds a run: choose another folder",
                run.display()
            )));
        }
        let Prepared {
            train,
            val,
            records,
            source,
        } = prepared;
        if matches!(config.method, Method::Reward) && config.lora.is_some() {
            return Err(Error::Config(
                "reward models train the full weights (the score head is new); drop --lora-rank"
                    .into(),
            ));
        }
        let adapters = match &config.lora {
            Some(l) => Some(Adapters::init(
                &base.spec, l.rank, l.alpha, &l.targets, c.seed,
            )?),
            None => None,
        };
        std::fs::create_dir_all(run).map_err(|e| Error::io(run, e))?;
        let tokenizer = match &base.tokenizer_json {
            Some(bytes) => {
                let name = "tokenizer.json".to_string();
                fmlab_formats::write_atomically(&run.join(&name), bytes)?;
                Some(FileEntry {
                    name,
                    bytes: bytes.len() as u64,
                    sha256: format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(bytes)),
                })
            }
            None => None,
        };
        let stage = match config.method {
            Method::Sft => "sft",
            Method::Preference { .. } => "preference",
            Method::Reward => "reward",
        };
        let file = FinetuneRun {
            format: RUN_FORMAT.into(),
            stage: stage.into(),
            spec: base.spec.clone(),
            config: config.clone(),
            base: base.source.clone(),
            tokenizer,
            records,
            data: source,
        };
        let Base {
            spec, mut weights, ..
        } = base;
        if matches!(config.method, Method::Reward) {
            weights = weights.with_score_head(&spec, c.seed)?;
        }
        let (grads, optimizer) = match &adapters {
            Some(a) => {
                let mut g = a.weights.clone();
                g.as_mut_slice().fill(0.0);
                let sizes: Vec<usize> = a.weights.descs().iter().map(|t| t.len()).collect();
                // Adapters are matrices: weight decay, when set, applies to them.
                let decay = vec![true; sizes.len()];
                (g, AdamW::new(c.adamw, &sizes, &decay)?)
            }
            None => {
                let named = weights.named_mut();
                let sizes: Vec<usize> = named.iter().map(|t| t.data.len()).collect();
                let decay: Vec<bool> = named.iter().map(|t| t.decay).collect();
                let mut g = weights.clone();
                g.as_mut_slice().fill(0.0);
                (g, AdamW::new(c.adamw, &sizes, &decay)?)
            }
        };
        let json = serde_json::to_vec_pretty(&file).map_err(Error::Json)?;
        fmlab_formats::write_atomically(&run.join("run.json"), &json)?;
        let metrics_path = run.join("metrics.jsonl");
        fmlab_formats::write_atomically(&metrics_path, b"")?;
        let metrics = std::fs::OpenOptions::new()
            .append(true)
            .open(&metrics_path)
            .map_err(|e| Error::io(&metrics_path, e))?;
        let val_offset = train.sequences();
        let order = order_for(train.len(), c.seed, 0);
        let mut me = Self {
            run: run.to_path_buf(),
            file,
            weights,
            adapters,
            grads,
            optimizer,
            train,
            val,
            reference: Vec::new(),
            val_offset,
            order,
            cursor: Cursor::default(),
            step: 0,
            tokens: 0,
            train_seconds: 0.0,
            last_loss: None,
            last_val: None,
            metrics,
        };
        if matches!(config.method, Method::Preference { .. }) {
            me.compute_reference()?;
        }
        Ok(me)
    }

    /// `run.json` of a finetuning run.
    pub fn read_run(run: &Path) -> Result<FinetuneRun> {
        checkpoint::read_versioned(
            &run.join("run.json"),
            "an fmlab finetuning run",
            RUN_FORMAT,
            |f: &FinetuneRun| &f.format,
            Error::Config,
        )
    }

    /// Continues a run from its newest checkpoint that verifies. `base` is the run's base
    /// model loaded again (its frozen weights under LoRA; the full weights come from the
    /// checkpoint otherwise) and `prepared` its records read and packed again with the
    /// run's configuration: they must pack exactly as they did, or the data has changed.
    /// `steps`, when given, changes the run's length (the schedule keeps its own total).
    pub fn resume(
        run: &Path,
        base: Base,
        prepared: Prepared,
        steps: Option<u64>,
    ) -> Result<(Self, crate::pretrain::Resumed)> {
        let mut file = Self::read_run(run)?;
        if base.spec != file.spec {
            return Err(Error::Config(format!(
                "{}: the base model's shape differs from the run's",
                base.source.path.display()
            )));
        }
        let counted = &prepared.records;
        if *counted != file.records {
            return Err(Error::Config(format!(
                "the records no longer pack as they did when the run started ({} training \
                 and {} validation records then, {} and {} now): the data file changed",
                file.records.train, file.records.val, counted.train, counted.val
            )));
        }
        let (ckpt, skipped) = checkpoint::latest(run, true)?;
        let checkpoint::Checkpoint {
            dir,
            manifest,
            weights: saved,
            optimizer,
        } = ckpt;
        if manifest.spec != file.spec || manifest.lora != file.config.lora {
            return Err(Error::Checkpoint(format!(
                "{}: its model or LoRA settings differ from run.json",
                dir.display()
            )));
        }
        file.config.optim = manifest.config.clone();
        if let Some(s) = steps {
            file.config.optim.steps = s;
        }
        if file.config.optim.steps <= manifest.step {
            return Err(Error::Config(format!(
                "the run is already at step {} of {}: give --steps above {} to train longer",
                manifest.step, file.config.optim.steps, manifest.step
            )));
        }
        // Under LoRA the checkpoint holds the adapters and the base stays as loaded.
        let (weights, adapters) = match &file.config.lora {
            Some(l) => {
                let mut adapters = Adapters::zeros(&file.spec, l.rank, l.alpha, &l.targets)?;
                adapters.weights = saved;
                (base.weights, Some(adapters))
            }
            None => (saved, None),
        };
        let mut grads = match &adapters {
            Some(a) => a.weights.clone(),
            None => weights.clone(),
        };
        grads.as_mut_slice().fill(0.0);
        let Prepared { train, val, .. } = prepared;
        let val_offset = train.sequences();
        // A preference run's reference log-probabilities were computed once; read them back.
        let reference = if matches!(file.config.method, Method::Preference { .. }) {
            let path = run.join("reference_logps.json");
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let r: Vec<(f64, usize)> = serde_json::from_slice(&bytes).map_err(Error::Json)?;
            let n = val_offset + val.sequences();
            if r.len() != n {
                return Err(Error::Checkpoint(format!(
                    "{}: {} reference log-probabilities for {n} sequences",
                    path.display(),
                    r.len()
                )));
            }
            r
        } else {
            Vec::new()
        };
        let metrics = checkpoint::metrics_until(run, manifest.step)?;
        let order = order_for(train.len(), file.config.optim.seed, manifest.cursor.epoch);
        let resumed = crate::pretrain::Resumed {
            step: manifest.step,
            dir,
            skipped,
        };
        Ok((
            Self {
                run: run.to_path_buf(),
                file,
                weights,
                adapters,
                grads,
                optimizer,
                train,
                val,
                reference,
                val_offset,
                order,
                cursor: manifest.cursor,
                step: manifest.step,
                tokens: manifest.tokens,
                train_seconds: manifest.train_seconds,
                last_loss: manifest.train_loss,
                last_val: manifest.val_loss,
                metrics,
            },
            resumed,
        ))
    }

    /// The reference's answer log-probabilities of every pair, computed once with the
    /// adapters off (they start at zero anyway) and the starting weights, and written to
    /// `reference_logps.json`.
    fn compute_reference(&mut self) -> Result<()> {
        let spec = &self.file.spec;
        let batch = self.file.config.optim.batch;
        let mut all = Vec::new();
        for rows in [&self.train, &self.val] {
            let n_seq = rows.sequences();
            let mut sums = vec![(0.0, 0usize); n_seq];
            for r0 in (0..rows.len()).step_by(batch) {
                let r1 = (r0 + batch).min(rows.len());
                let lp = token_logprobs(spec, &self.weights, None, rows.slice(r0, r1))?;
                for (i, s) in sequence_sums(rows, r0, r1, &lp, n_seq)
                    .into_iter()
                    .enumerate()
                {
                    sums[i].0 += s.0;
                    sums[i].1 += s.1;
                }
            }
            all.extend(sums);
        }
        self.reference = all;
        let json = serde_json::to_vec(&self.reference).map_err(Error::Json)?;
        fmlab_formats::write_atomically(&self.run.join("reference_logps.json"), &json)?;
        Ok(())
    }

    pub fn run_dir(&self) -> &Path {
        &self.run
    }

    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.file.spec
    }

    /// The weights the model now computes with (adapters merged).
    pub fn merged_weights(&self) -> Result<Weights<f32>> {
        let mut w = self.weights.clone();
        if let Some(a) = &self.adapters {
            a.merge_into(&self.file.spec, &mut w)?;
        }
        Ok(w)
    }

    fn log(&mut self, line: &serde_json::Value) -> Result<()> {
        let path = self.run.join("metrics.jsonl");
        writeln!(self.metrics, "{line}").map_err(|e| Error::io(&path, e))
    }

    /// Loss (and reward statistics for preference runs) of rows `r0..r1` of `rows`, whose
    /// first packed sequence has global index `offset`; gradients into `self.grads` when
    /// `train`.
    fn pass(
        &mut self,
        which_val: bool,
        r0: usize,
        r1: usize,
        train: bool,
    ) -> Result<(f64, Option<RewardStats>)> {
        let rows = if which_val { &self.val } else { &self.train };
        let offset = if which_val { self.val_offset } else { 0 };
        let mask = rows.mask(r0, r1).to_vec();
        let seqs = rows.sequence(r0, r1).to_vec();
        let method = self.file.config.method.clone();
        let seq_len = rows.seq_len;
        let reference = &self.reference;
        let mut stats = None;
        let mut f = |lp: &[f32]| -> fmlab_nn::Result<(f32, Vec<f32>)> {
            match method {
                Method::Sft => {
                    let k = mask.iter().filter(|&&m| m).count().max(1) as f64;
                    let loss = lp
                        .iter()
                        .zip(&mask)
                        .filter(|(_, &m)| m)
                        .map(|(&l, _)| -(l as f64))
                        .sum::<f64>()
                        / k;
                    let d = mask
                        .iter()
                        .map(|&m| if m { (-1.0 / k) as f32 } else { 0.0 })
                        .collect();
                    Ok((loss as f32, d))
                }
                Method::Reward => Ok((0.0, vec![0.0; lp.len()])),
                Method::Preference { beta, loss } => {
                    // Per sequence present: its policy sum and length, keyed by (row,
                    // sequence): a batch may hold the same row twice.
                    let mut sums: std::collections::BTreeMap<(usize, u32), (f64, usize)> =
                        Default::default();
                    for (i, ((&s, &m), &l)) in seqs.iter().zip(&mask).zip(lp).enumerate() {
                        if m && s != u32::MAX {
                            let e = sums.entry((i / seq_len, s)).or_insert((0.0, 0));
                            e.0 += l as f64;
                            e.1 += 1;
                        }
                    }
                    // Pairs are packed as consecutive (chosen, rejected) sequences.
                    let mut total = 0.0;
                    let mut st = RewardStats::default();
                    let mut dscore: std::collections::BTreeMap<(usize, u32), f64> =
                        Default::default();
                    let pairs: Vec<(usize, u32)> =
                        sums.keys().copied().filter(|(_, s)| s % 2 == 0).collect();
                    let np = pairs.len().max(1) as f64;
                    for &(row, c) in &pairs {
                        let (Some(&(pc, nc)), Some(&(pr, nr))) =
                            (sums.get(&(row, c)), sums.get(&(row, c + 1)))
                        else {
                            continue;
                        };
                        let (rc, rr) = (
                            reference[offset + c as usize].0,
                            reference[offset + c as usize + 1].0,
                        );
                        let avg = loss.averaged();
                        let (sc, sr, qc, qr) = if avg {
                            (
                                pc / nc.max(1) as f64,
                                pr / nr.max(1) as f64,
                                rc / nc.max(1) as f64,
                                rr / nr.max(1) as f64,
                            )
                        } else {
                            (pc, pr, rc, rr)
                        };
                        let (l, gc, gr) = loss.pair(beta, sc, sr, qc, qr);
                        total += l / np;
                        let (gc, gr) = if avg {
                            (gc / nc.max(1) as f64, gr / nr.max(1) as f64)
                        } else {
                            (gc, gr)
                        };
                        dscore.insert((row, c), gc / np);
                        dscore.insert((row, c + 1), gr / np);
                        let (rwc, rwr) = (beta * (pc - rc), beta * (pr - rr));
                        st.add(&RewardStats {
                            chosen: rwc,
                            rejected: rwr,
                            accuracy: if rwc > rwr { 1.0 } else { 0.0 },
                            margin: rwc - rwr,
                            logps_chosen: pc,
                            logps_rejected: pr,
                        });
                    }
                    st.scale(1.0 / np);
                    stats = Some(st);
                    let d = seqs
                        .iter()
                        .zip(&mask)
                        .enumerate()
                        .map(|(i, (&s, &m))| {
                            if m {
                                dscore.get(&(i / seq_len, s)).copied().unwrap_or(0.0) as f32
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    Ok((total as f32, d))
                }
            }
        };
        if matches!(method, Method::Reward) {
            let mut g = |scores: &[f32]| -> fmlab_nn::Result<(f32, Vec<f32>)> {
                // Each sequence's reward: the score at its last answer position.
                let mut last: std::collections::BTreeMap<(usize, u32), usize> = Default::default();
                for (i, (&s, &m)) in seqs.iter().zip(&mask).enumerate() {
                    if m && s != u32::MAX {
                        last.insert((i / seq_len, s), i);
                    }
                }
                let pairs: Vec<(usize, u32)> =
                    last.keys().copied().filter(|(_, s)| s % 2 == 0).collect();
                let np = pairs.len().max(1) as f64;
                let mut d = vec![0f32; scores.len()];
                let (mut total, mut st) = (0.0, RewardStats::default());
                for &(row, c) in &pairs {
                    let (Some(&ic), Some(&ir)) = (last.get(&(row, c)), last.get(&(row, c + 1)))
                    else {
                        continue;
                    };
                    let (rc, rr) = (scores[ic] as f64, scores[ir] as f64);
                    let (l, gc, gr) = PreferenceLoss::Sigmoid.pair(1.0, rc, rr, 0.0, 0.0);
                    total += l / np;
                    d[ic] += (gc / np) as f32;
                    d[ir] += (gr / np) as f32;
                    st.add(&RewardStats {
                        chosen: rc,
                        rejected: rr,
                        accuracy: if rc > rr { 1.0 } else { 0.0 },
                        margin: rc - rr,
                        logps_chosen: 0.0,
                        logps_rejected: 0.0,
                    });
                }
                st.scale(1.0 / np);
                stats = Some(st);
                Ok((total as f32, d))
            };
            let grads = if train {
                Grads::Full(&mut self.grads)
            } else {
                Grads::None
            };
            let loss = objective(
                &self.file.spec,
                &self.weights,
                None,
                rows.slice(r0, r1),
                Objective::Scores(&mut g),
                grads,
            )?;
            return Ok((loss as f64, stats));
        }
        let grads = match (train, self.adapters.is_some()) {
            (false, _) => Grads::None,
            (true, true) => Grads::Adapters(&mut self.grads),
            (true, false) => Grads::Full(&mut self.grads),
        };
        let loss = objective(
            &self.file.spec,
            &self.weights,
            self.adapters.as_ref(),
            rows.slice(r0, r1),
            Objective::LogProbs(&mut f),
            grads,
        )?;
        Ok((loss as f64, stats))
    }

    /// The next `batch` training rows, a new seeded order each epoch.
    fn next_rows(&mut self) -> Vec<usize> {
        let batch = self.file.config.optim.batch;
        let mut out = Vec::with_capacity(batch);
        while out.len() < batch {
            if self.cursor.position as usize >= self.order.len() {
                self.cursor.epoch += 1;
                self.cursor.position = 0;
                self.order = order_for(
                    self.train.len(),
                    self.file.config.optim.seed,
                    self.cursor.epoch,
                );
            }
            out.push(self.order[self.cursor.position as usize]);
            self.cursor.position += 1;
        }
        out
    }

    /// One optimizer step over `grad_accum` micro-batches of `batch` rows.
    pub fn train_step(&mut self) -> Result<FinetuneMetrics> {
        let start = Instant::now();
        let c = self.file.config.optim.clone();
        self.grads.as_mut_slice().fill(0.0);
        let mut loss = 0.0;
        let mut stats: Option<RewardStats> = None;
        let mut tokens = 0u64;
        for _ in 0..c.grad_accum {
            // Rows of a micro-batch are gathered into one contiguous block.
            let picks = self.next_rows();
            let (l, s) = self.with_gathered(&picks, |me| me.pass(false, 0, picks.len(), true))?;
            tokens += (picks.len() * c.seq_len) as u64;
            loss += l / c.grad_accum as f64;
            if let Some(mut s) = s {
                s.scale(1.0 / c.grad_accum as f64);
                stats.get_or_insert_with(RewardStats::default).add(&s);
            }
        }
        if !loss.is_finite() {
            return Err(Error::Diverged {
                step: self.step + 1,
                loss,
            });
        }
        if c.grad_accum > 1 {
            let s = 1.0 / c.grad_accum as f32;
            self.grads.as_mut_slice().iter_mut().for_each(|x| *x *= s);
        }
        let max_norm = if c.grad_clip > 0.0 {
            c.grad_clip
        } else {
            f32::INFINITY
        };
        let mut grads: Vec<&mut [f32]> = self
            .grads
            .tensors_mut()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let grad_norm = clip_grad_norm(&mut grads, max_norm);
        let lr = c.schedule.lr(self.step);
        let grad_refs: Vec<&[f32]> = grads.iter().map(|g| &**g).collect();
        let target = match &mut self.adapters {
            Some(a) => &mut a.weights,
            None => &mut self.weights,
        };
        let mut params: Vec<&mut [f32]> =
            target.tensors_mut().into_iter().map(|(t, _)| t).collect();
        self.optimizer.step(lr, &mut params, &grad_refs)?;
        self.step += 1;
        self.tokens += tokens;
        let seconds = start.elapsed().as_secs_f64();
        self.train_seconds += seconds;
        self.last_loss = Some(loss);
        let m = FinetuneMetrics {
            step: self.step,
            loss,
            lr,
            grad_norm,
            tokens: self.tokens,
            tokens_per_second: tokens as f64 / seconds.max(1e-9),
            rewards: stats,
        };
        self.log(&serde_json::to_value(m).map_err(Error::Json)?)?;
        Ok(m)
    }

    /// Runs `work` with the training rows `picks` moved to the front (rows `0..picks.len()`)
    /// and the packed-sequence ids unchanged, then restores the order.
    fn with_gathered<R>(
        &mut self,
        picks: &[usize],
        work: impl FnOnce(&mut Self) -> Result<R>,
    ) -> Result<R> {
        let t = &self.train;
        let l = t.seq_len;
        let mut g = Rows {
            seq_len: l,
            ..Rows::default()
        };
        for &r in picks {
            let (a, b) = (r * l, (r + 1) * l);
            g.inputs.extend_from_slice(&t.inputs[a..b]);
            g.targets.extend_from_slice(&t.targets[a..b]);
            g.segments.extend_from_slice(&t.segments[a..b]);
            g.mask.extend_from_slice(&t.mask[a..b]);
            g.sequence.extend_from_slice(&t.sequence[a..b]);
        }
        // The full rows step aside (moved, not copied) while the batch stands in for them.
        let all = std::mem::replace(&mut self.train, g);
        let out = work(self);
        self.train = all;
        out
    }

    /// Mean loss over every validation row (and reward statistics for preference runs);
    /// `None` without validation data.
    pub fn evaluate(&mut self) -> Result<Option<(f64, Option<RewardStats>)>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let batch = self.file.config.optim.batch;
        let n = self.val.len();
        let (mut total, mut stats, mut weight) = (0.0, None::<RewardStats>, 0.0);
        for r0 in (0..n).step_by(batch) {
            let r1 = (r0 + batch).min(n);
            let (l, s) = self.pass(true, r0, r1, false)?;
            let w = (r1 - r0) as f64;
            total += l * w;
            weight += w;
            if let Some(mut s) = s {
                s.scale(w);
                stats.get_or_insert_with(RewardStats::default).add(&s);
            }
        }
        if let Some(s) = stats.as_mut() {
            s.scale(1.0 / weight);
        }
        Ok(Some((total / weight, stats)))
    }

    fn eval_event(&mut self, on: &mut dyn FnMut(Event)) -> Result<Option<RewardStats>> {
        if let Some((val_loss, stats)) = self.evaluate()? {
            self.last_val = Some(val_loss);
            let step = self.step;
            let mut line = serde_json::json!({ "step": step, "val_loss": val_loss });
            if let Some(s) = stats {
                if let (Some(obj), Ok(serde_json::Value::Object(extra))) =
                    (line.as_object_mut(), serde_json::to_value(s))
                {
                    for (k, v) in extra {
                        obj.insert(format!("val_{k}"), v);
                    }
                }
            }
            self.log(&line)?;
            on(Event::Eval { step, val_loss });
            return Ok(stats);
        }
        Ok(None)
    }

    /// Writes a checkpoint of the current step: the full weights, or the adapters.
    pub fn checkpoint(&mut self) -> Result<PathBuf> {
        let c = &self.file.config;
        let manifest = Manifest {
            format: checkpoint::FORMAT.into(),
            step: self.step,
            spec: self.file.spec.clone(),
            config: c.optim.clone(),
            cursor: self.cursor,
            tokens: self.tokens,
            train_seconds: self.train_seconds,
            train_loss: self.last_loss,
            val_loss: self.last_val,
            tokenizer: self.file.tokenizer.clone(),
            files: Vec::new(),
            stage: Some(self.file.stage.clone()),
            lora: c.lora.clone(),
            base: Some(self.file.base.clone()),
        };
        let keep = c.optim.keep.max(1);
        let target = match &mut self.adapters {
            Some(a) => &mut a.weights,
            None => &mut self.weights,
        };
        checkpoint::save(&self.run, &manifest, target, &self.optimizer, keep)
    }

    /// Trains until the configured steps are done or `stop` is raised; always ends with a
    /// checkpoint.
    pub fn run(&mut self, stop: &AtomicBool, on: &mut dyn FnMut(Event)) -> Result<Outcome> {
        crate::driver::drive(self, stop, on)
    }
}

impl crate::driver::Loop for Finetuner {
    fn run_dir(&self) -> &Path {
        &self.run
    }

    fn steps_done(&self) -> u64 {
        self.step
    }

    fn cadence(&self) -> (u64, u64, u64) {
        let c = &self.file.config.optim;
        (c.steps, c.eval_every, c.checkpoint_every)
    }

    fn step(&mut self) -> Result<crate::StepMetrics> {
        let m = self.train_step()?;
        Ok(crate::StepMetrics {
            step: m.step,
            loss: m.loss,
            lr: m.lr,
            grad_norm: m.grad_norm,
            tokens: m.tokens,
            tokens_per_second: m.tokens_per_second,
            train_seconds: self.train_seconds,
        })
    }

    fn evaluate_now(&mut self, on: &mut dyn FnMut(Event)) -> Result<()> {
        self.eval_event(on).map(drop)
    }

    fn save(&mut self) -> Result<PathBuf> {
        self.checkpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_losses_and_their_derivatives() {
        let (beta, pc, pr, rc, rr) = (0.1, -3.0, -5.0, -3.5, -4.0);
        for loss in [
            PreferenceLoss::Sigmoid,
            PreferenceLoss::Ipo,
            PreferenceLoss::Hinge,
            PreferenceLoss::Simpo { gamma: 0.5 },
        ] {
            let (l, gc, gr) = loss.pair(beta, pc, pr, rc, rr);
            let h = 1e-6;
            let nc = (loss.pair(beta, pc + h, pr, rc, rr).0
                - loss.pair(beta, pc - h, pr, rc, rr).0)
                / (2.0 * h);
            let nr = (loss.pair(beta, pc, pr + h, rc, rr).0
                - loss.pair(beta, pc, pr - h, rc, rr).0)
                / (2.0 * h);
            assert!(l.is_finite());
            assert!(
                (gc - nc).abs() < 1e-6 && (gr - nr).abs() < 1e-6,
                "{loss:?}: {gc} {nc} {gr} {nr}"
            );
        }
        // At policy = reference, DPO's loss is ln 2.
        let (l, _, _) = PreferenceLoss::Sigmoid.pair(0.1, -4.0, -6.0, -4.0, -6.0);
        assert!((l - std::f64::consts::LN_2).abs() < 1e-12);
        assert!(PreferenceLoss::parse("kto", 0.5).is_err());
    }
}
