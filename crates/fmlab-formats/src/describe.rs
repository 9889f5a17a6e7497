//! Any model description — a GGUF file, a `.safetensors` file (with its `config.json`
//! beside it), a Hugging Face folder of `config.json` and shards, a `config.json` alone, or
//! a built-in preset — read into a `ModelSpec` and the facts the file itself states
//! ([`describe`]), and those turned into the numbers `fmlab inspect` prints ([`inspect`]):
//! parameters by component, FLOPs per token, weight, KV-cache and training memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fmlab_spec::{
    FlopsPerToken, ModelSpec, ParamCounts, Precision, TrainingMemory, TrainingPrecision,
};
use serde::{Deserialize, Serialize};

use crate::{spec_from_gguf, spec_from_hf_config, Error, GgufFile, Result, SafetensorsFile};

/// What kind of description a spec came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SourceKind {
    #[serde(rename = "preset")]
    Preset,
    #[serde(rename = "gguf")]
    Gguf,
    #[serde(rename = "safetensors")]
    Safetensors,
    #[serde(rename = "config.json")]
    ConfigJson,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Preset => "preset",
            SourceKind::Gguf => "gguf",
            SourceKind::Safetensors => "safetensors",
            SourceKind::ConfigJson => "config.json",
        }
    }
}

/// Where the spec came from, and what the file itself says.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub kind: SourceKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The preset's name, or GGUF's `general.name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gguf_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensors: Option<usize>,
    /// Tensor count by ggml type or safetensors dtype.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tensor_types: BTreeMap<String, usize>,
    /// Sum of the element counts of the file's tensors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensor_elements: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
}

impl Source {
    fn new(kind: SourceKind) -> Self {
        Source {
            kind,
            path: None,
            name: None,
            file_bytes: None,
            gguf_version: None,
            tensors: None,
            tensor_types: BTreeMap::new(),
            tensor_elements: None,
            tokenizer: None,
            chat_template: None,
        }
    }
}

/// A model description read from disk: its architecture (absent for a lone safetensors
/// file) and the file's own facts.
#[derive(Debug, Clone)]
pub struct Description {
    pub spec: Option<ModelSpec>,
    pub source: Source,
}

/// What to inspect: a path of any supported kind, or a built-in preset.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Path(&'a Path),
    Preset(&'a str),
}

/// A model's anatomy: every field `fmlab inspect --json` prints, in its order.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub source: Source,
    pub architecture: Option<ModelSpec>,
    pub parameters: Option<u64>,
    pub parameters_non_embedding: Option<u64>,
    pub parameters_by_component: Option<ParamCounts>,
    pub seq_len: Option<u64>,
    /// Kaplan: 2N + 2·L·n_ctx·d_attn.
    pub flops_per_token_forward: Option<f64>,
    /// 6N, N all parameters.
    pub flops_per_token_training: Option<f64>,
    pub flops: Option<FlopsPerToken>,
    /// At f16, the llama.cpp default.
    pub kv_cache_bytes_per_token: Option<u64>,
    pub kv_cache_bytes_per_token_f32: Option<u64>,
    /// At f16 over the full context, sliding-window layers keeping only their window.
    pub kv_cache_bytes_full_context: Option<u64>,
    pub memory_bytes: BTreeMap<&'static str, u64>,
    pub training_memory: BTreeMap<&'static str, TrainingMemory>,
}

/// Reads the spec and file facts of `target`, and works out its anatomy at `seq_len`
/// (default: the model's context) and `micro_batch` sequences for the training memory.
pub fn inspect(target: Target, seq_len: Option<u64>, micro_batch: u64) -> Result<Inspection> {
    let described = match target {
        Target::Preset(name) => Description {
            spec: Some(fmlab_spec::preset(name)?),
            source: Source {
                name: Some(name.to_string()),
                ..Source::new(SourceKind::Preset)
            },
        },
        Target::Path(path) => describe(path)?,
    };
    anatomy(described, seq_len, micro_batch)
}

/// The anatomy of a model already described (a caller that knows the spec from elsewhere,
/// such as a training checkpoint's manifest).
pub fn inspect_description(
    described: Description,
    seq_len: Option<u64>,
    micro_batch: u64,
) -> Result<Inspection> {
    anatomy(described, seq_len, micro_batch)
}

/// Reads the spec and file facts from any supported path.
pub fn describe(path: &Path) -> Result<Description> {
    if !path.exists() {
        return Err(Error::NotFound(path.to_path_buf()));
    }
    if path.is_dir() {
        return describe_folder(path);
    }
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "gguf" => describe_gguf(path),
        "safetensors" => {
            let mut source = safetensors_source(&[path.to_path_buf()])?;
            source.path = Some(path.to_path_buf());
            let config = path.with_file_name("config.json");
            let spec = if config.is_file() {
                Some(read_config(&config)?)
            } else {
                None
            };
            Ok(Description { spec, source })
        }
        "json" => Ok(Description {
            spec: Some(read_config(path)?),
            source: Source {
                path: Some(path.to_path_buf()),
                ..Source::new(SourceKind::ConfigJson)
            },
        }),
        _ => {
            // Not named by its extension: sniff the GGUF magic.
            let mut magic = [0u8; 4];
            let is_gguf = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                .is_ok()
                && &magic == b"GGUF";
            if is_gguf {
                describe_gguf(path)
            } else {
                Err(Error::NotAModel(path.to_path_buf()))
            }
        }
    }
}

fn read_config(path: &Path) -> Result<ModelSpec> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Reading {
        path: path.to_path_buf(),
        source,
    })?;
    spec_from_hf_config(&text).map_err(|e| at(path, e))
}

/// `error` said of the file at `path`.
fn at(path: &Path, error: Error) -> Error {
    Error::At {
        path: path.to_path_buf(),
        source: Box::new(error),
    }
}

fn describe_gguf(path: &Path) -> Result<Description> {
    let file = GgufFile::open(path)?;
    let g = &file.gguf;
    let spec = spec_from_gguf(g).map_err(|e| at(path, e))?;
    let mut tensor_types = BTreeMap::new();
    for t in &g.tensors {
        *tensor_types.entry(t.ggml_type.name()).or_insert(0) += 1;
    }
    let text = |key: &str| g.get(key).and_then(|v| v.as_str());
    let tokenizer = text("tokenizer.ggml.model").map(|model| match text("tokenizer.ggml.pre") {
        Some(pre) => format!("{model} (pre-tokenizer {pre})"),
        None => model.to_string(),
    });
    let source = Source {
        path: Some(path.to_path_buf()),
        name: text("general.name").map(str::to_string),
        file_bytes: std::fs::metadata(path).ok().map(|m| m.len()),
        gguf_version: Some(g.version),
        tensors: Some(g.tensors.len()),
        tensor_types,
        tensor_elements: Some(g.total_elements()),
        tokenizer,
        chat_template: text("tokenizer.chat_template").map(str::to_string),
        ..Source::new(SourceKind::Gguf)
    };
    Ok(Description {
        spec: Some(spec),
        source,
    })
}

/// The part of an HF folder's `tokenizer_config.json` we read.
#[derive(Deserialize)]
struct TokenizerConfig {
    #[serde(default)]
    chat_template: Option<String>,
}

fn describe_folder(dir: &Path) -> Result<Description> {
    let config = dir.join("config.json");
    if !config.is_file() {
        return Err(Error::NoConfig(dir.to_path_buf()));
    }
    let spec = read_config(&config)?;
    let listing = std::fs::read_dir(dir).map_err(|source| Error::Listing {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut shards: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    shards.sort();
    let mut source = if shards.is_empty() {
        Source::new(SourceKind::ConfigJson)
    } else {
        safetensors_source(&shards)?
    };
    source.path = Some(dir.to_path_buf());
    // The chat template lives in tokenizer_config.json in HF folders.
    source.chat_template = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<TokenizerConfig>(&t).ok())
        .and_then(|c| c.chat_template);
    Ok(Description {
        spec: Some(spec),
        source,
    })
}

fn safetensors_source(files: &[PathBuf]) -> Result<Source> {
    let mut source = Source {
        file_bytes: Some(0),
        tensors: Some(0),
        tensor_elements: Some(0),
        ..Source::new(SourceKind::Safetensors)
    };
    for path in files {
        let file = SafetensorsFile::open(path)?;
        let h = &file.header;
        source.file_bytes = source
            .file_bytes
            .map(|b| b + std::fs::metadata(path).map(|m| m.len()).unwrap_or(0));
        source.tensors = source.tensors.map(|n| n + h.tensors.len());
        source.tensor_elements = source.tensor_elements.map(|n| n + h.total_elements());
        for t in &h.tensors {
            *source
                .tensor_types
                .entry(t.dtype.name().to_ascii_lowercase())
                .or_insert(0) += 1;
        }
    }
    Ok(source)
}

/// The numbers a spec implies; without a spec, only the file's tensor count.
fn anatomy(described: Description, seq_len: Option<u64>, micro_batch: u64) -> Result<Inspection> {
    let Description { spec, source } = described;
    let Some(spec) = spec else {
        return Ok(Inspection {
            parameters: source.tensor_elements,
            source,
            architecture: None,
            parameters_non_embedding: None,
            parameters_by_component: None,
            seq_len: None,
            flops_per_token_forward: None,
            flops_per_token_training: None,
            flops: None,
            kv_cache_bytes_per_token: None,
            kv_cache_bytes_per_token_f32: None,
            kv_cache_bytes_full_context: None,
            memory_bytes: BTreeMap::new(),
            training_memory: BTreeMap::new(),
        });
    };
    spec.validate()?;
    let seq_len = seq_len.unwrap_or(spec.context_length);
    if seq_len > 1 << 32 {
        return Err(Error::Invalid {
            what: format!("--seq-len {seq_len}"),
            reason: "must be at most 2^32".to_string(),
        });
    }
    let params = spec.params();
    let flops = spec.flops_per_token(seq_len);
    let memory_bytes = Precision::ALL
        .iter()
        .map(|&p| (p.name(), spec.weight_bytes(p)))
        .collect();
    let training_memory = [
        ("f32", TrainingPrecision::F32),
        ("mixed", TrainingPrecision::Mixed),
    ]
    .into_iter()
    .map(|(name, p)| (name, spec.training_memory(p, seq_len, micro_batch)))
    .collect();
    Ok(Inspection {
        parameters: Some(params.total),
        parameters_non_embedding: Some(params.non_embedding),
        parameters_by_component: Some(params),
        seq_len: Some(seq_len),
        flops_per_token_forward: Some(flops.forward_kaplan),
        flops_per_token_training: Some(flops.training_6n),
        flops: Some(flops),
        kv_cache_bytes_per_token: Some(spec.kv_cache_bytes_per_token(2)),
        kv_cache_bytes_per_token_f32: Some(spec.kv_cache_bytes_per_token(4)),
        kv_cache_bytes_full_context: Some(spec.kv_cache_bytes(spec.context_length, 2)),
        memory_bytes,
        training_memory,
        source,
        architecture: Some(spec),
    })
}
