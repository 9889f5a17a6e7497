//! `fmlab convert`: a Hugging Face model folder (`config.json`, `*.safetensors` — sharded
//! through `model.safetensors.index.json` too —, `tokenizer.json`, `tokenizer_config.json`)
//! to one GGUF file, following llama.cpp's `convert_hf_to_gguf.py`:
//!
//! - tensors under GGUF names, read by [`weights_from_hf`] (Llama and Mistral query/key
//!   rows permuted from Hugging Face's rotary halves to GGUF's adjacent pairs, Gemma's
//!   norms stored as 1 + w), matrices in f32, f16 or Q8_0 and vectors in f32;
//! - the architecture's metadata keys (`{arch}.context_length`, `.embedding_length`,
//!   `.block_count`, `.feed_forward_length`, `.attention.head_count(_kv)`,
//!   `.rope.freq_base`, `.attention.layer_norm_rms_epsilon`, …); Mistral is written as
//!   `llama`, as llama.cpp does;
//! - the tokenizer as `tokenizer.ggml.*` and the chat template
//!   ([`fmlab_tokenizer::hf::gguf_metadata`]): byte-level BPE from `tokenizer.json`,
//!   SentencePiece vocabularies (Gemma 3, Llama 2) from `tokenizer.model` with their scores.
//!
//! Architectures: llama, mistral, qwen2, gemma3 and gpt2 (its query, key and value maps
//! fused into one `attn_qkv` tensor, as llama.cpp's GPT-2 layout has them).

use std::path::Path;

use fmlab_formats::{GgufWriter, Value};
use fmlab_spec::{ModelSpec, Positions};

use fmlab_nn::train::Weights;

use crate::export::{add_tensors, weights_from_hf, Quant};
use crate::{Error, Result};

/// What a conversion wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Converted {
    /// The spec read from `config.json`.
    pub spec: ModelSpec,
    /// `general.architecture` of the GGUF file.
    pub architecture: String,
    pub tensors: usize,
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE) or `llama` (SentencePiece).
    pub tokenizer_model: String,
    /// `tokenizer.ggml.pre`, and how it was chosen (`hash`, `pre_tokenizer`, or
    /// `tokenizer.model` for a SentencePiece vocabulary).
    pub pre_tokenizer: String,
    pub pre_tokenizer_from: &'static str,
    /// For a SentencePiece vocabulary: the token of llama.cpp's check text from which the
    /// folder's tokenizer.json tokenizes otherwise than the converted vocabulary.
    pub tokenizer_json_differs_at: Option<usize>,
    pub vocab_size: u64,
    pub chat_template: bool,
}

fn refuse(msg: String) -> Error {
    Error::Message(msg)
}

/// The files a conversion needs, each checked before any is read.
fn check_folder(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(refuse(format!(
            "{}: not a folder (convert takes a Hugging Face model folder with config.json, *.safetensors and tokenizer.json)",
            dir.display()
        )));
    }
    let has = |f: &str| dir.join(f).is_file();
    for (present, missing) in [
        (has("config.json"), "config.json"),
        (
            has("tokenizer.json") || has("tokenizer.model"),
            "tokenizer.json or tokenizer.model",
        ),
    ] {
        if !present {
            return Err(refuse(format!(
                "{}: no {missing} (a Hugging Face model folder has config.json, *.safetensors and tokenizer.json, or SentencePiece's tokenizer.model)",
                dir.display()
            )));
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| refuse(format!("{}: {e}", path.display())))
}

/// Settings fmlab's models do not run, refused rather than dropped.
fn check_supported(dir: &Path, spec: &ModelSpec, config: &serde_json::Value) -> Result<()> {
    let arch = spec.architecture.as_str();
    let text = config.get("text_config").unwrap_or(config);
    if let Some(scaling) = text.get("rope_scaling").filter(|v| !v.is_null()) {
        let kind = scaling["rope_type"]
            .as_str()
            .or(scaling["type"].as_str())
            .unwrap_or("?");
        return Err(refuse(format!(
            "{}: config.json's rope_scaling ({kind}) is not supported by fmlab's models",
            dir.display()
        )));
    }
    if arch == "gemma3" && spec.query_pre_attn_scalar != Some(spec.head_dim as f64) {
        return Err(refuse(format!(
            "{}: query_pre_attn_scalar {:?} differs from head_dim {}, which GGUF's gemma3 assumes",
            dir.display(),
            spec.query_pre_attn_scalar,
            spec.head_dim
        )));
    }
    Ok(())
}

/// The architecture's metadata, keyed as llama.cpp writes them for `arch`.
fn architecture_metadata(spec: &ModelSpec, arch: &str) -> Vec<(String, Value)> {
    let u = |x: u64| Value::U32(x as u32);
    let key = |k: &str| format!("{arch}.{k}");
    if arch == "gpt2" {
        // GPT-2's converter writes no rotary or key/value-head keys, and LayerNorm's ε.
        return vec![
            (key("block_count"), u(spec.n_layers)),
            (key("context_length"), u(spec.context_length)),
            (key("embedding_length"), u(spec.d_model)),
            (key("feed_forward_length"), u(spec.ffn_dim)),
            (key("attention.head_count"), u(spec.n_heads)),
            (
                key("attention.layer_norm_epsilon"),
                Value::F32(spec.norm_eps as f32),
            ),
        ];
    }
    let base = match spec.positions {
        Positions::Rope { base } => base,
        Positions::Learned => 10_000.0,
    };
    let mut m = vec![
        (key("context_length"), u(spec.context_length)),
        (key("embedding_length"), u(spec.d_model)),
        (key("block_count"), u(spec.n_layers)),
        (key("feed_forward_length"), u(spec.ffn_dim)),
        (key("attention.head_count"), u(spec.n_heads)),
        (key("attention.head_count_kv"), u(spec.n_kv_heads)),
        (key("rope.freq_base"), Value::F32(base as f32)),
        (
            key("attention.layer_norm_rms_epsilon"),
            Value::F32(spec.norm_eps as f32),
        ),
    ];
    if arch == "gemma3" || spec.head_dim * spec.n_heads != spec.d_model {
        m.push((key("attention.key_length"), u(spec.head_dim)));
        m.push((key("attention.value_length"), u(spec.head_dim)));
    }
    if arch == "llama" {
        m.push((key("vocab_size"), u(spec.vocab_size)));
        m.push((key("rope.dimension_count"), u(spec.head_dim)));
    }
    if let Some(sw) = &spec.sliding_window {
        m.push((key("attention.sliding_window"), u(sw.window)));
        if arch == "gemma3" {
            // llama.cpp assumes every 6th layer global and θ = 10 000 locally; other values
            // are written for fmlab's reader.
            if sw.global_every != 6 {
                m.push((key("attention.sliding_window_pattern"), u(sw.global_every)));
            }
            if let Some(local) = sw.local_rope_base.filter(|&b| b != 10_000.0) {
                m.push((key("rope.freq_base_swa"), Value::F32(local as f32)));
            }
        }
    }
    m
}

/// The model part of a converted GGUF file — `general.*`, the architecture's keys as
/// llama.cpp writes them (mistral as `llama`) and the tensors in `quant` — to which
/// [`convert`] adds the tokenizer. Returns the writer and `general.architecture`.
pub fn model_gguf(
    spec: &ModelSpec,
    weights: &mut Weights<f32>,
    quant: Quant,
    name: &str,
) -> Result<(GgufWriter, &'static str)> {
    let arch = match spec.architecture.as_str() {
        "llama" | "mistral" => "llama",
        "qwen2" => "qwen2",
        "gemma3" => "gemma3",
        "gpt2" => "gpt2",
        other => {
            return Err(refuse(format!(
                "{other}: not an architecture fmlab converts (llama, mistral, qwen2, gemma3, gpt2)"
            )))
        }
    };
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String(arch.into()))
        .metadata("general.name", Value::String(name.into()))
        .metadata("general.file_type", Value::U32(quant.file_type()));
    for (k, v) in architecture_metadata(spec, arch) {
        w.metadata(&k, v);
    }
    add_tensors(&mut w, weights, quant, arch == "gpt2")?;
    Ok((w, arch))
}

/// The GGUF file of the Hugging Face folder `dir`, in memory, and what it holds.
pub fn convert(dir: &Path, quant: Quant) -> Result<(GgufWriter, Converted)> {
    check_folder(dir)?;
    let config = read_json(&dir.join("config.json"))?;
    let spec = fmlab_formats::spec_from_hf_config(&config.to_string())
        .map_err(|e| refuse(format!("{}: {e}", dir.join("config.json").display())))?;
    check_supported(dir, &spec, &config)?;

    // The tokenizer first: it is cheap, and a refusal there should not wait for the weights.
    // A SentencePiece model's vocabulary is read from tokenizer.model, as llama.cpp does;
    // tokenizer.json then gives the special tokens and a cross-check.
    let model_path = dir.join("tokenizer.model");
    let tokenizer_model = match model_path.is_file() {
        true => Some(std::fs::read(&model_path).map_err(|e| Error::io(&model_path, e))?),
        false => None,
    };
    let tok_path = match tokenizer_model {
        Some(_) => model_path.clone(),
        None => dir.join("tokenizer.json"),
    };
    let json_path = dir.join("tokenizer.json");
    let tokenizer_json = match json_path.is_file() {
        true => std::fs::read_to_string(&json_path).map_err(|e| Error::io(&json_path, e))?,
        false => String::new(),
    };
    let added_path = dir.join("added_tokens.json");
    let added_tokens = match added_path.is_file() {
        true => Some(read_json(&added_path)?),
        false => None,
    };
    let cfg_path = dir.join("tokenizer_config.json");
    let tokenizer_config = match cfg_path.is_file() {
        true => Some(read_json(&cfg_path)?),
        false => None,
    };
    let jinja_path = dir.join("chat_template.jinja");
    let jinja = match jinja_path.is_file() {
        true => Some(std::fs::read_to_string(&jinja_path).map_err(|e| Error::io(&jinja_path, e))?),
        false => None,
    };
    let files = fmlab_tokenizer::hf::HfFiles {
        tokenizer_json: &tokenizer_json,
        tokenizer_config: tokenizer_config.as_ref(),
        config: Some(&config),
        chat_template: jinja.as_deref(),
        tokenizer_model: tokenizer_model.as_deref(),
        added_tokens: added_tokens.as_ref(),
    };
    let tok = fmlab_tokenizer::hf::gguf_metadata(&files, spec.vocab_size as usize)
        .map_err(|e| refuse(format!("{}: {e}", tok_path.display())))?;
    let chat_template = tok
        .metadata
        .iter()
        .any(|(k, _)| k == "tokenizer.chat_template");

    // Its messages name the file and tensor; they are not about training settings.
    let (spec, mut weights) = weights_from_hf(dir).map_err(|e| match e {
        Error::Config(msg) => refuse(msg),
        e => e,
    })?;
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| spec.architecture.clone());
    let (mut w, arch) = model_gguf(&spec, &mut weights, quant, &name)?;
    for (k, v) in tok.metadata {
        w.metadata(&k, v);
    }
    let tensors = w.tensor_count();
    let converted = Converted {
        architecture: arch.to_string(),
        tensors,
        tokenizer_model: match tok.pre_from {
            "tokenizer.model" => "llama".into(),
            _ => "gpt2".into(),
        },
        pre_tokenizer: tok.pre,
        pre_tokenizer_from: tok.pre_from,
        tokenizer_json_differs_at: tok.differs_at,
        vocab_size: spec.vocab_size,
        chat_template,
        spec,
    };
    Ok((w, converted))
}

/// Converts the Hugging Face folder `dir` to the GGUF file `out`, written atomically.
pub fn write_converted(dir: &Path, out: &Path, quant: Quant) -> Result<Converted> {
    if out.is_dir() {
        return Err(refuse(format!(
            "{}: a folder; give the GGUF file to write",
            out.display()
        )));
    }
    let (w, converted) = convert(dir, quant)?;
    w.write(out)?;
    Ok(converted)
}
