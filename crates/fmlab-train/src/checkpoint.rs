//! Checkpoints: a folder `RUN/checkpoints/step-NNNNNNNNN/` holding `model.safetensors`
//! (the weights under their GGUF names), `optimizer.safetensors` (AdamW's moments) and
//! `manifest.json` (spec, training configuration, step, data cursor, and the length and
//! SHA-256 of each file).
//!
//! A checkpoint is written into a hidden temporary folder, every file synced, then renamed
//! into place: a reader sees a whole checkpoint or none. A checkpoint damaged afterwards (a
//! truncated copy, a bad disk) fails its hashes on load, and [`latest`] falls back to the
//! one before it.

use std::io::Write;
use std::path::{Path, PathBuf};

use fmlab_data::shards::Cursor;
use fmlab_formats::safetensors::{Dtype, SafeTensors};
use fmlab_nn::train::Weights;
use fmlab_spec::ModelSpec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::stage::{BaseRef, LoraConfig, Stage};
use crate::{AdamW, Error, LoopConfig, Result};

pub const FORMAT: &str = "fmlab-checkpoint-1";
const MODEL_FILE: &str = "model.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Everything needed to continue a run exactly, besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// Optimizer steps taken.
    pub step: u64,
    pub spec: ModelSpec,
    pub config: LoopConfig,
    /// Where the next training window comes from. Training draws no other random numbers
    /// (no dropout): with the seed in `config`, this is the whole random state.
    pub cursor: Cursor,
    /// Training tokens consumed so far.
    pub tokens: u64,
    /// Seconds spent training so far (excluding evaluation and checkpoints).
    pub train_seconds: f64,
    pub train_loss: Option<f64>,
    pub val_loss: Option<f64>,
    /// The tokenizer the run was trained with: its file name in the run folder and SHA-256.
    pub tokenizer: Option<FileEntry>,
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// The stage of a finetuning run (absent for pre-training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// Set when the checkpoint holds LoRA adapters rather than the model's weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
    /// The model a finetuning run started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
}

/// A loaded, verified checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub weights: Weights<f32>,
    pub optimizer: AdamW,
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The folder of the checkpoint at `step`.
pub fn dir_for(run: &Path, step: u64) -> PathBuf {
    run.join("checkpoints").join(format!("step-{step:09}"))
}

/// The checkpoints of a run (complete folders only), oldest first.
pub fn list(run: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(run.join("checkpoints")) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    out.sort();
    out
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<FileEntry> {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&path, e))?;
    f.sync_all().map_err(|e| Error::io(&path, e))?;
    Ok(FileEntry {
        name: name.into(),
        bytes: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    })
}

/// Writes a checkpoint for `manifest.step` atomically, then deletes all but the last
/// `keep` checkpoints. Returns its folder.
pub fn save(
    run: &Path,
    manifest: &Manifest,
    weights: &mut Weights<f32>,
    optimizer: &AdamW,
    keep: usize,
) -> Result<PathBuf> {
    let root = run.join("checkpoints");
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let final_dir = dir_for(run, manifest.step);
    // Temporary folders are garbage by now: a process that died mid-write left them (this
    // one's own, of an earlier failed attempt at this step, included).
    for entry in std::fs::read_dir(&root)
        .map_err(|e| Error::io(&root, e))?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with(".step-") {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    let tmp = root.join(format!(
        ".step-{:09}.tmp-{}",
        manifest.step,
        std::process::id()
    ));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = (|| -> Result<()> {
        let named = weights.named_mut();
        if named.len() != optimizer.m.len() {
            return Err(Error::Checkpoint(format!(
                "{} weight tensors but optimizer state for {}",
                named.len(),
                optimizer.m.len()
            )));
        }
        let mut model = Vec::new();
        let mut state = Vec::new();
        for (i, t) in named.iter().enumerate() {
            let shape: Vec<u64> = t.shape.iter().map(|&s| s as u64).collect();
            model.push((t.name.clone(), shape.clone(), f32_bytes(t.data)));
            state.push((
                format!("m.{}", t.name),
                shape.clone(),
                f32_bytes(&optimizer.m[i]),
            ));
            state.push((format!("v.{}", t.name), shape, f32_bytes(&optimizer.v[i])));
        }
        let tensors: Vec<(&str, Dtype, &[u64], &[u8])> = model
            .iter()
            .map(|(n, s, b)| (n.as_str(), Dtype::F32, s.as_slice(), b.as_slice()))
            .collect();
        let bytes = fmlab_formats::safetensors_bytes(&tensors, &[("format", "fmlab")])?;
        let mut files = vec![write_file(&tmp, MODEL_FILE, &bytes)?];
        drop(bytes);
        let step = optimizer.step.to_string();
        let tensors: Vec<(&str, Dtype, &[u64], &[u8])> = state
            .iter()
            .map(|(n, s, b)| (n.as_str(), Dtype::F32, s.as_slice(), b.as_slice()))
            .collect();
        let bytes = fmlab_formats::safetensors_bytes(&tensors, &[("adamw_step", &step)])?;
        files.push(write_file(&tmp, OPTIMIZER_FILE, &bytes)?);
        let mut m = manifest.clone();
        m.format = FORMAT.into();
        m.files = files;
        let json = serde_json::to_vec_pretty(&m).map_err(Error::Json)?;
        write_file(&tmp, MANIFEST_FILE, &json)?;
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
        }
        std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(&root) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result?;
    let all = list(run);
    if keep > 0 && all.len() > keep {
        for (_, dir) in &all[..all.len() - keep] {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
    }
    Ok(final_dir)
}

fn read_verified(dir: &Path, entry: &FileEntry) -> Result<Vec<u8>> {
    let path = dir.join(&entry.name);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    if bytes.len() as u64 != entry.bytes {
        return Err(Error::Checkpoint(format!(
            "{}: {} bytes, the manifest says {} (truncated?)",
            path.display(),
            bytes.len(),
            entry.bytes
        )));
    }
    if sha256_hex(&bytes) != entry.sha256 {
        return Err(Error::Checkpoint(format!(
            "{}: SHA-256 differs from the manifest's (corrupt)",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Copies a safetensors file's f32 tensors into `targets` by name, checking shapes.
fn fill(path: &Path, bytes: &[u8], targets: &mut [(String, Vec<usize>, &mut [f32])]) -> Result<()> {
    let st = SafeTensors::parse(bytes).map_err(|e| e.in_file(path))?;
    for (name, shape, data) in targets.iter_mut() {
        let view = st.tensor(name).ok_or_else(|| {
            Error::Checkpoint(format!("{}: tensor {name} is missing", path.display()))
        })?;
        let want: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
        if view.dtype != Dtype::F32 || view.shape != want {
            return Err(Error::Checkpoint(format!(
                "{}: tensor {name} is {} {:?}, expected F32 {want:?}",
                path.display(),
                view.dtype.name(),
                view.shape
            )));
        }
        let raw = bytes
            .get((st.data_offset + view.begin) as usize..(st.data_offset + view.end) as usize)
            .ok_or_else(|| {
                Error::Checkpoint(format!("{}: tensor {name} out of bounds", path.display()))
            })?;
        // The shape matched, so the lengths do.
        for (d, c) in data.iter_mut().zip(raw.chunks_exact(4)) {
            *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
    }
    Ok(())
}

/// Reads a JSON file of one of fmlab's formats: parsed as `T`, its `format` (given by
/// `format_of`) checked against `expected`; errors name the file and what it should be.
pub(crate) fn read_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    expected: &str,
    format_of: impl Fn(&T) -> &str,
    error: fn(String) -> Error,
) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let value: T = serde_json::from_slice(&bytes)
        .map_err(|e| error(format!("{}: not {what}: {e}", path.display())))?;
    let found = format_of(&value);
    if found != expected {
        return Err(error(format!(
            "{}: format {found:?}, expected {expected:?}",
            path.display()
        )));
    }
    Ok(value)
}

/// Reads the manifest of a checkpoint folder (no tensors, no verification).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    read_versioned(
        &dir.join(MANIFEST_FILE),
        "a checkpoint manifest",
        FORMAT,
        |m: &Manifest| &m.format,
        Error::Checkpoint,
    )
}

/// Loads and verifies the checkpoint in `dir`; with `optimizer` false, only the weights.
pub fn load(dir: &Path, optimizer: bool) -> Result<Checkpoint> {
    let manifest = read_manifest(dir)?;
    let entry = |name: &str| {
        manifest
            .files
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| {
                Error::Checkpoint(format!("{}: no {name} in the manifest", dir.display()))
            })
    };
    // A LoRA checkpoint holds the adapters, in their own layout.
    let mut weights = match &manifest.lora {
        Some(l) => {
            fmlab_nn::train::Adapters::<f32>::zeros(&manifest.spec, l.rank, l.alpha, &l.targets)?
                .weights
        }
        // A reward model: the backbone and its score head.
        None if manifest.stage == Some(Stage::Reward) => Weights::<f32>::from_descs(
            fmlab_nn::plan::tensors_with(&manifest.spec, fmlab_nn::plan::Head::Score),
        )?,
        None => Weights::<f32>::zeros(&manifest.spec)?,
    };
    let model_bytes = read_verified(dir, entry(MODEL_FILE)?)?;
    let mut targets: Vec<(String, Vec<usize>, &mut [f32])> = weights
        .named_mut()
        .into_iter()
        .map(|t| (t.name, t.shape, t.data))
        .collect();
    fill(&dir.join(MODEL_FILE), &model_bytes, &mut targets)?;
    drop(model_bytes);
    let shapes: Vec<(String, Vec<usize>, bool)> = weights
        .named_mut()
        .into_iter()
        .map(|t| (t.name, t.shape, t.decay))
        .collect();
    let sizes: Vec<usize> = shapes.iter().map(|s| s.1.iter().product()).collect();
    let decay: Vec<bool> = shapes.iter().map(|s| s.2).collect();
    let mut opt = AdamW::new(manifest.config.adamw, &sizes, &decay)?;
    if optimizer {
        let path = dir.join(OPTIMIZER_FILE);
        let bytes = read_verified(dir, entry(OPTIMIZER_FILE)?)?;
        let (ms, vs) = (&mut opt.m, &mut opt.v);
        let mut targets: Vec<(String, Vec<usize>, &mut [f32])> = Vec::new();
        for ((s, m), v) in shapes.iter().zip(ms.iter_mut()).zip(vs.iter_mut()) {
            targets.push((format!("m.{}", s.0), s.1.clone(), m.as_mut_slice()));
            targets.push((format!("v.{}", s.0), s.1.clone(), v.as_mut_slice()));
        }
        fill(&path, &bytes, &mut targets)?;
        let st = SafeTensors::parse(&bytes).map_err(|e| e.in_file(&path))?;
        opt.step = st
            .metadata
            .get("adamw_step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Checkpoint(format!("{}: no adamw_step", path.display())))?;
    }
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        manifest,
        weights,
        optimizer: opt,
    })
}

/// The newest checkpoint of a run that loads and verifies, and the newer ones that did
/// not (with why), so that a caller can say which it skipped.
pub fn latest(run: &Path, optimizer: bool) -> Result<(Checkpoint, Vec<(PathBuf, Error)>)> {
    let mut skipped = Vec::new();
    for (_, dir) in list(run).into_iter().rev() {
        match load(&dir, optimizer) {
            Ok(c) => return Ok((c, skipped)),
            Err(e) => skipped.push((dir, e)),
        }
    }
    let why = skipped
        .iter()
        .map(|(d, e)| format!("{}: {e}", d.display()))
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::Checkpoint(if skipped.is_empty() {
        format!("{} has no checkpoint", run.display())
    } else {
        format!("no usable checkpoint in {} ({why})", run.display())
    }))
}

/// Reopens a run's `metrics.jsonl` for appending after cutting the lines of steps past
/// `step` (those a resumed run will take again).
pub fn metrics_until(run: &Path, step: u64) -> Result<std::fs::File> {
    let path = run.join("metrics.jsonl");
    let kept: String = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    fmlab_formats::write_atomically(&path, kept.as_bytes())?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))
}
