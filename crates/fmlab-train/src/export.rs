//! Export of trained weights: a GGUF file in llama.cpp's `llama` layout (f32, f16 or Q8_0),
//! and a Hugging Face `LlamaForCausalLM` folder (safetensors + `config.json`).
//!
//! Training already lays out rotary pairs as GGUF llama models do (adjacent, see
//! `fmlab_nn::train`), so the GGUF tensors are the trained ones unchanged and run on the
//! same kernels; Hugging Face's llama rotates halves, so its query and key rows are permuted
//! (the inverse of what llama.cpp's converter does on import).

use fmlab_formats::{Dtype, GgmlType, GgufWriter, Value};
use fmlab_nn::train::Weights;
use fmlab_spec::{FfnKind, ModelSpec, NormKind, Positions};
use serde_json::json;

use crate::{Error, Result};

/// Tensor precision in an exported GGUF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    F32,
    F16,
    Q8_0,
}

impl Quant {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Some(Quant::F32),
            "f16" => Some(Quant::F16),
            "q8_0" => Some(Quant::Q8_0),
            _ => None,
        }
    }

    /// GGUF's `general.file_type`.
    pub(crate) fn file_type(self) -> u32 {
        match self {
            Quant::F32 => 0,
            Quant::F16 => 1,
            Quant::Q8_0 => 7,
        }
    }
}

/// Export covers the Llama shape (what `fmlab_spec::from_depth` builds).
pub fn check_exportable(spec: &ModelSpec) -> Result<()> {
    fmlab_nn::train::check_spec(spec)?;
    let ok = spec.norm_kind == NormKind::RmsNorm
        && spec.ffn_kind == FfnKind::SwiGlu
        && matches!(spec.positions, Positions::Rope { .. })
        && !spec.qkv_bias
        && !spec.attn_out_bias
        && !spec.mlp_bias
        && !spec.qk_norm
        && spec.norm_placement == fmlab_spec::NormPlacement::Pre
        && spec.sliding_window.is_none()
        && !spec.scale_embeddings
        && fmlab_nn::plan::rope_style(spec) == fmlab_kernels::RopeStyle::Interleaved;
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "export covers Llama-shaped models (pre-norm RMSNorm, RoPE on adjacent pairs, SwiGLU, no biases, no QK-norm or sliding windows); this run is {}-shaped (`fmlab generate RUN` runs it directly)",
            spec.architecture
        )))
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The GGUF file for `weights`; `tokenizer` holds the `tokenizer.*` metadata (vocabulary,
/// merges, special ids, chat template).
pub fn gguf(
    spec: &ModelSpec,
    weights: &mut Weights<f32>,
    quant: Quant,
    name: &str,
    tokenizer: Vec<(String, Value)>,
) -> Result<GgufWriter> {
    check_exportable(spec)?;
    let base = match spec.positions {
        Positions::Rope { base } => base,
        Positions::Learned => 10_000.0,
    };
    let mut w = GgufWriter::new();
    let u = |x: u64| Value::U32(x as u32);
    w.metadata("general.architecture", Value::String("llama".into()))
        .metadata("general.name", Value::String(name.into()))
        .metadata("general.file_type", Value::U32(quant.file_type()))
        .metadata("llama.context_length", u(spec.context_length))
        .metadata("llama.embedding_length", u(spec.d_model))
        .metadata("llama.block_count", u(spec.n_layers))
        .metadata("llama.feed_forward_length", u(spec.ffn_dim))
        .metadata("llama.attention.head_count", u(spec.n_heads))
        .metadata("llama.attention.head_count_kv", u(spec.n_kv_heads))
        .metadata("llama.attention.key_length", u(spec.head_dim))
        .metadata("llama.attention.value_length", u(spec.head_dim))
        .metadata("llama.rope.dimension_count", u(spec.head_dim))
        .metadata("llama.rope.freq_base", Value::F32(base as f32))
        .metadata(
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(spec.norm_eps as f32),
        )
        .metadata("llama.vocab_size", u(spec.vocab_size));
    for (k, v) in tokenizer {
        w.metadata(&k, v);
    }
    add_tensors(&mut w, weights, quant, false)?;
    Ok(w)
}

/// Adds every tensor of `weights` under its GGUF name: matrices in `quant` (Q8_0 where a
/// row is whole blocks of 32, else f16), vectors (norms, biases) in f32 as llama.cpp's
/// converter keeps them. With `fuse_qkv` (llama.cpp's GPT-2 layout) each layer's query,
/// key and value maps and biases are written as one `attn_qkv` tensor, their rows in that
/// order.
pub(crate) fn add_tensors(
    w: &mut GgufWriter,
    weights: &mut Weights<f32>,
    quant: Quant,
    fuse_qkv: bool,
) -> Result<()> {
    // Query and key parts wait for the value's; then the three are written as one.
    let mut parts: std::collections::HashMap<String, Vec<f32>> = Default::default();
    for t in weights.named_mut() {
        let fused = fuse_qkv
            .then(|| {
                let (layer, rest) = t.name.strip_prefix("blk.")?.split_once('.')?;
                let (which, suffix) = rest.split_once('.')?;
                matches!(which, "attn_q" | "attn_k" | "attn_v")
                    .then(|| (format!("blk.{layer}.attn_qkv.{suffix}"), which == "attn_v"))
            })
            .flatten();
        match fused {
            None => add_tensor(w, &t.name, &t.shape, t.data, quant)?,
            Some((name, last)) => {
                let data = parts.entry(name.clone()).or_default();
                data.extend_from_slice(t.data);
                if last {
                    let data = parts.remove(&name).unwrap_or_default();
                    let mut shape = t.shape.to_vec();
                    shape[0] = data.len() / shape.get(1).copied().unwrap_or(1);
                    add_tensor(w, &name, &shape, &data, quant)?;
                }
            }
        }
    }
    Ok(())
}

fn add_tensor(
    w: &mut GgufWriter,
    name: &str,
    shape: &[usize],
    data: &[f32],
    quant: Quant,
) -> Result<()> {
    // ggml lists dimensions fastest first: [in, out].
    let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
    let matrix = shape.len() == 2;
    let (ty, bytes) = match quant {
        Quant::Q8_0 if matrix && shape[1].is_multiple_of(32) => {
            let mut bytes = Vec::with_capacity(data.len() / 32 * 34);
            for row in data.chunks_exact(shape[1]) {
                bytes.extend(fmlab_kernels::quantize_q8_0(row)?);
            }
            (GgmlType::Q8_0, bytes)
        }
        Quant::F16 | Quant::Q8_0 if matrix => (
            GgmlType::F16,
            data.iter()
                .flat_map(|&x| fmlab_kernels::f32_to_f16(x).to_le_bytes())
                .collect(),
        ),
        // Norms stay f32, as llama.cpp's converter keeps them.
        _ => (GgmlType::F32, f32_bytes(data)),
    };
    w.tensor(name, &dims, ty, bytes)?;
    Ok(())
}

/// Hugging Face's name for a tensor, from its GGUF name.
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(n) = fixed {
        return Some(n.into());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let hf = match part {
        "attn_norm.weight" => "input_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        "attn_q.bias" => "self_attn.q_proj.bias",
        "attn_k.bias" => "self_attn.k_proj.bias",
        "attn_v.bias" => "self_attn.v_proj.bias",
        "attn_output.bias" => "self_attn.o_proj.bias",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}"))
}

/// How a tensor under its GGUF name is read from a Hugging Face checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    /// As stored (Llama and Mistral query/key rows are then permuted back to pairs).
    Plain,
    /// Gemma's RMSNorm scales by 1 + w and stores w; GGUF stores 1 + w, as
    /// `convert_hf_to_gguf` writes it.
    PlusOne,
    /// GPT-2's `Conv1D` stores its map as [in, out]; GGUF's are [out, in].
    Transposed,
    /// Part k (query, key, value) of GPT-2's fused `c_attn`: its weight's columns k·d..(k+1)·d,
    /// transposed, or that slice of its bias.
    QkvPart(usize),
}

/// The Hugging Face names (first found wins) and reading of the tensor `gguf` of an
/// `arch` model.
fn hf_source(arch: &str, gguf: &str) -> Option<(Vec<String>, Take)> {
    match arch {
        "gemma3" => gemma3_source(gguf),
        "gpt2" => gpt2_source(gguf),
        _ => hf_name(gguf).map(|n| (vec![n], Take::Plain)),
    }
}

/// Gemma 3: text-only checkpoints (`model.…`) and the multimodal ones' language model
/// (`model.language_model.…`, older `language_model.model.…`).
fn gemma3_source(gguf: &str) -> Option<(Vec<String>, Take)> {
    let (suffix, take) = match gguf {
        "token_embd.weight" => ("embed_tokens.weight".to_string(), Take::Plain),
        "output_norm.weight" => ("norm.weight".to_string(), Take::PlusOne),
        _ => {
            let (layer, part) = gguf.strip_prefix("blk.")?.split_once('.')?;
            let (hf, take) = match part {
                "attn_norm.weight" => ("input_layernorm.weight", Take::PlusOne),
                "attn_q.weight" => ("self_attn.q_proj.weight", Take::Plain),
                "attn_k.weight" => ("self_attn.k_proj.weight", Take::Plain),
                "attn_v.weight" => ("self_attn.v_proj.weight", Take::Plain),
                "attn_output.weight" => ("self_attn.o_proj.weight", Take::Plain),
                "attn_q_norm.weight" => ("self_attn.q_norm.weight", Take::PlusOne),
                "attn_k_norm.weight" => ("self_attn.k_norm.weight", Take::PlusOne),
                "post_attention_norm.weight" => ("post_attention_layernorm.weight", Take::PlusOne),
                "ffn_norm.weight" => ("pre_feedforward_layernorm.weight", Take::PlusOne),
                "post_ffw_norm.weight" => ("post_feedforward_layernorm.weight", Take::PlusOne),
                "ffn_gate.weight" => ("mlp.gate_proj.weight", Take::Plain),
                "ffn_up.weight" => ("mlp.up_proj.weight", Take::Plain),
                "ffn_down.weight" => ("mlp.down_proj.weight", Take::Plain),
                _ => return None,
            };
            (format!("layers.{layer}.{hf}"), take)
        }
    };
    let names = ["model.", "model.language_model.", "language_model.model."]
        .iter()
        .map(|p| format!("{p}{suffix}"))
        .collect();
    Some((names, take))
}

/// GPT-2: `wte`, `wpe`, `h.N.…` and `ln_f`, with or without `transformer.` before them.
fn gpt2_source(gguf: &str) -> Option<(Vec<String>, Take)> {
    let (suffix, take) = match gguf {
        "token_embd.weight" => ("wte.weight".to_string(), Take::Plain),
        "position_embd.weight" => ("wpe.weight".to_string(), Take::Plain),
        "output_norm.weight" => ("ln_f.weight".to_string(), Take::Plain),
        "output_norm.bias" => ("ln_f.bias".to_string(), Take::Plain),
        _ => {
            let (layer, part) = gguf.strip_prefix("blk.")?.split_once('.')?;
            let (hf, take) = match part {
                "attn_norm.weight" => ("ln_1.weight", Take::Plain),
                "attn_norm.bias" => ("ln_1.bias", Take::Plain),
                "attn_q.weight" => ("attn.c_attn.weight", Take::QkvPart(0)),
                "attn_k.weight" => ("attn.c_attn.weight", Take::QkvPart(1)),
                "attn_v.weight" => ("attn.c_attn.weight", Take::QkvPart(2)),
                "attn_q.bias" => ("attn.c_attn.bias", Take::QkvPart(0)),
                "attn_k.bias" => ("attn.c_attn.bias", Take::QkvPart(1)),
                "attn_v.bias" => ("attn.c_attn.bias", Take::QkvPart(2)),
                "attn_output.weight" => ("attn.c_proj.weight", Take::Transposed),
                "attn_output.bias" => ("attn.c_proj.bias", Take::Plain),
                "ffn_norm.weight" => ("ln_2.weight", Take::Plain),
                "ffn_norm.bias" => ("ln_2.bias", Take::Plain),
                "ffn_up.weight" => ("mlp.c_fc.weight", Take::Transposed),
                "ffn_up.bias" => ("mlp.c_fc.bias", Take::Plain),
                "ffn_down.weight" => ("mlp.c_proj.weight", Take::Transposed),
                "ffn_down.bias" => ("mlp.c_proj.bias", Take::Plain),
                _ => return None,
            };
            (format!("h.{layer}.{hf}"), take)
        }
    };
    Some((vec![suffix.clone(), format!("transformer.{suffix}")], take))
}

/// A stored tensor's values as f32.
fn f32_values(
    file: &fmlab_formats::SafetensorsFile,
    view: &fmlab_formats::TensorView,
    name: &str,
) -> Result<Vec<f32>> {
    let raw = file.tensor_data(view);
    Ok(match view.dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|b| fmlab_kernels::f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
            .collect(),
        other => {
            return Err(Error::Config(format!(
                "{}: tensor {name} is {}, not f32, f16 or bf16",
                file.path.display(),
                other.name()
            )))
        }
    })
}

/// A Hugging Face model folder (`config.json` and its `*.safetensors` files, f32, f16 or
/// bf16) as trainable weights under GGUF names — the inverse of [`hf_safetensors`]: Llama
/// and Mistral query/key rows come back from HF's half-split RoPE layout to adjacent pairs
/// (as `convert_hf_to_gguf` permutes them); Qwen2 and Gemma 3 keep their halves; Gemma's
/// norms gain the 1 its RMSNorm adds; GPT-2's `Conv1D` maps are transposed and its fused
/// query/key/value map split.
pub fn weights_from_hf(dir: &std::path::Path) -> Result<(ModelSpec, Weights<f32>)> {
    let config = dir.join("config.json");
    let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
    let spec = fmlab_formats::spec_from_hf_config(&text)?;
    let arch = spec.architecture.clone();
    if !matches!(
        arch.as_str(),
        "llama" | "mistral" | "qwen2" | "gemma3" | "gpt2"
    ) {
        return Err(Error::Config(format!(
            "{}: Hugging Face folders of llama, mistral, qwen2, gemma3 and gpt2 models load as weights; this one is {arch} (convert it to GGUF)",
            dir.display(),
        )));
    }
    let paths = safetensors_files(dir)?;
    if paths.is_empty() {
        return Err(Error::Config(format!(
            "{}: no .safetensors file next to config.json",
            dir.display()
        )));
    }
    let files = paths
        .iter()
        .map(fmlab_formats::SafetensorsFile::open)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let permute = fmlab_nn::plan::rope_style(&spec) == fmlab_kernels::RopeStyle::Interleaved;
    let hd = spec.head_dim as usize;
    let mut w = Weights::<f32>::zeros(&spec)?;
    for t in w.named_mut() {
        let (names, take) = hf_source(&arch, &t.name)
            .ok_or_else(|| Error::Config(format!("no Hugging Face name for {}", t.name)))?;
        let Some((name, file, view)) = names.iter().find_map(|n| {
            files
                .iter()
                .find_map(|f| f.header.tensor(n).map(|v| (n.as_str(), f, v)))
        }) else {
            return Err(Error::Config(format!(
                "{}: tensor {} is missing",
                dir.display(),
                names[0]
            )));
        };
        let want: Vec<u64> = t.shape.iter().map(|&x| x as u64).collect();
        let stored: Vec<u64> = match (take, want.as_slice()) {
            (Take::Transposed, &[rows, cols]) => vec![cols, rows],
            (Take::QkvPart(_), &[rows, cols]) => vec![cols, 3 * rows],
            (Take::QkvPart(_), &[n]) => vec![3 * n],
            _ => want.clone(),
        };
        if view.shape != stored {
            return Err(Error::Config(format!(
                "{}: tensor {name} is {:?}, the config implies {stored:?}",
                file.path.display(),
                view.shape
            )));
        }
        let values = f32_values(file, view, name)?;
        let expected: u64 = stored.iter().product();
        if values.len() as u64 != expected {
            return Err(Error::Config(format!(
                "{}: tensor {name} holds {} values, expected {expected}",
                file.path.display(),
                values.len(),
            )));
        }
        match (take, t.shape.as_slice()) {
            (Take::Plain, _) => {
                let rotated = t.name.contains("attn_q.") || t.name.contains("attn_k.");
                if permute && rotated {
                    let cols = if t.shape.len() == 2 { t.shape[1] } else { 1 };
                    t.data
                        .copy_from_slice(&permute_rope_rows(&values, cols, hd, true));
                } else {
                    t.data.copy_from_slice(&values);
                }
            }
            (Take::PlusOne, _) => {
                for (o, v) in t.data.iter_mut().zip(&values) {
                    *o = 1.0 + v;
                }
            }
            (Take::Transposed, &[rows, cols]) => {
                // Stored [cols][rows]: element (r, c) is at c·rows + r.
                for r in 0..rows {
                    for c in 0..cols {
                        t.data[r * cols + c] = values[c * rows + r];
                    }
                }
            }
            (Take::QkvPart(k), &[rows, cols]) => {
                // Stored [cols][3·rows]: part k's (r, c) is at c·3·rows + k·rows + r.
                for r in 0..rows {
                    for c in 0..cols {
                        t.data[r * cols + c] = values[c * 3 * rows + k * rows + r];
                    }
                }
            }
            (Take::QkvPart(k), &[n]) => t.data.copy_from_slice(&values[k * n..(k + 1) * n]),
            _ => {
                return Err(Error::Config(format!(
                    "{}: tensor {name} cannot be read as {take:?}",
                    file.path.display()
                )))
            }
        }
    }
    Ok((spec, w))
}

/// The safetensors files of a Hugging Face folder: those `model.safetensors.index.json`
/// maps tensors to (each must be there), or else every `*.safetensors` file in it.
pub fn safetensors_files(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let doc: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Message(format!("{}: {e}", index.display())))?;
        let map = doc["weight_map"]
            .as_object()
            .ok_or_else(|| Error::Message(format!("{}: no weight_map object", index.display())))?;
        let mut names: Vec<&str> = Vec::with_capacity(map.len());
        for (tensor, file) in map {
            let file = file.as_str().ok_or_else(|| {
                Error::Message(format!(
                    "{}: the file of {tensor} is not a name",
                    index.display()
                ))
            })?;
            if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                return Err(Error::Message(format!(
                    "{}: {file:?} is not a file name in the folder",
                    index.display()
                )));
            }
            names.push(file);
        }
        names.sort_unstable();
        names.dedup();
        let paths: Vec<std::path::PathBuf> = names.iter().map(|n| dir.join(n)).collect();
        if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
            return Err(Error::Message(format!(
                "{}: listed in model.safetensors.index.json but missing",
                missing.display()
            )));
        }
        return Ok(paths);
    }
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Rows of a query or key projection from adjacent rotary pairs to halves (Hugging Face's
/// layout): within each head, row 2i + j moves to j·(hd/2) + i. `inverse` undoes it.
pub fn permute_rope_rows(w: &[f32], cols: usize, head_dim: usize, inverse: bool) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    let half = head_dim / 2;
    let rows = w.len() / cols.max(1);
    for r in 0..rows {
        let (h, within) = (r / head_dim, r % head_dim);
        let (i, j) = (within / 2, within % 2);
        let hf = h * head_dim + j * half + i;
        let (from, to) = if inverse { (hf, r) } else { (r, hf) };
        out[to * cols..(to + 1) * cols].copy_from_slice(&w[from * cols..(from + 1) * cols]);
    }
    out
}

/// Whether `spec` is Gemma 3's shape (what `weights_from_hf` reads from a Gemma 3
/// folder), which exports as `Gemma3ForCausalLM`.
fn is_gemma3(spec: &ModelSpec) -> bool {
    spec.architecture == "gemma3"
        && spec.ffn_kind == FfnKind::GeGlu
        && spec.norm_placement == fmlab_spec::NormPlacement::PreAndPost
        && spec.qk_norm
        && spec.scale_embeddings
        && !spec.qkv_bias
        && !spec.attn_out_bias
        && !spec.mlp_bias
        && spec.sliding_window.is_some()
}

/// `model.safetensors` (f32, Hugging Face names and layout) and `config.json`:
/// `LlamaForCausalLM` for Llama-shaped models ([`check_exportable`]), `Gemma3ForCausalLM`
/// for Gemma 3 (norms stored as w where GGUF holds 1 + w, query/key rows as they are);
/// `bos`/`eos`/`pad` are the tokenizer's ids.
pub fn hf_safetensors(
    spec: &ModelSpec,
    weights: &mut Weights<f32>,
    bos: Option<u32>,
    eos: Option<u32>,
    pad: Option<u32>,
) -> Result<(Vec<u8>, serde_json::Value)> {
    let gemma = is_gemma3(spec);
    if !gemma {
        check_exportable(spec)?;
    }
    let hd = spec.head_dim as usize;
    let mut tensors: Vec<(String, Vec<u64>, Vec<u8>)> = Vec::new();
    for t in weights.named_mut() {
        let (name, take) = match gemma {
            true if t.name == "output.weight" => Some(("lm_head.weight".to_string(), Take::Plain)),
            true => gemma3_source(&t.name).map(|(names, take)| (names[0].clone(), take)),
            false => hf_name(&t.name).map(|n| (n, Take::Plain)),
        }
        .ok_or_else(|| Error::Config(format!("no Hugging Face name for {}", t.name)))?;
        let rotated = t.name.ends_with("attn_q.weight") || t.name.ends_with("attn_k.weight");
        let data = match take {
            Take::PlusOne => t.data.iter().map(|w| w - 1.0).collect(),
            _ if rotated && !gemma => permute_rope_rows(t.data, t.shape[1], hd, false),
            _ => t.data.to_vec(),
        };
        let shape = t.shape.iter().map(|&s| s as u64).collect();
        tensors.push((name, shape, f32_bytes(&data)));
    }
    let refs: Vec<(&str, Dtype, &[u64], &[u8])> = tensors
        .iter()
        .map(|(n, s, b)| (n.as_str(), Dtype::F32, s.as_slice(), b.as_slice()))
        .collect();
    let bytes = fmlab_formats::safetensors_bytes(&refs, &[("format", "pt")])?;
    let base = match spec.positions {
        Positions::Rope { base } => base,
        Positions::Learned => 10_000.0,
    };
    let mut config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": spec.d_model,
        "intermediate_size": spec.ffn_dim,
        "num_hidden_layers": spec.n_layers,
        "num_attention_heads": spec.n_heads,
        "num_key_value_heads": spec.n_kv_heads,
        "head_dim": spec.head_dim,
        "max_position_embeddings": spec.context_length,
        "rms_norm_eps": spec.norm_eps,
        "rope_theta": base,
        "vocab_size": spec.vocab_size,
        "tie_word_embeddings": spec.tied_embeddings,
        "hidden_act": "silu",
        "attention_bias": false,
        "mlp_bias": false,
        "torch_dtype": "float32",
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
    });
    if let (true, Some(sw), Some(c)) = (gemma, &spec.sliding_window, config.as_object_mut()) {
        // Layer i (from 0) attends globally when (i + 1) is a multiple of the period.
        let layer_types: Vec<&str> = (1..=spec.n_layers)
            .map(|i| match sw.global_every > 0 && i % sw.global_every == 0 {
                true => "full_attention",
                false => "sliding_attention",
            })
            .collect();
        c.remove("hidden_act");
        c.remove("mlp_bias");
        let extra = json!({
            "architectures": ["Gemma3ForCausalLM"],
            "model_type": "gemma3_text",
            "hidden_activation": "gelu_pytorch_tanh",
            "query_pre_attn_scalar": spec.query_pre_attn_scalar.unwrap_or(spec.head_dim as f64),
            "sliding_window": sw.window,
            "sliding_window_pattern": sw.global_every,
            "layer_types": layer_types,
            "rope_local_base_freq": sw.local_rope_base.unwrap_or(10_000.0),
            "rope_scaling": null,
            "final_logit_softcapping": null,
            "attn_logit_softcapping": null,
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            c.insert(k.clone(), v.clone());
        }
    }
    Ok((bytes, config))
}

/// Writes the GGUF file of a run's weights to `out`, with the tokenizer fmlab trained and
/// fmlab's chat template in its metadata.
pub fn write_gguf(
    spec: &ModelSpec,
    weights: &mut Weights<f32>,
    quant: Quant,
    name: &str,
    trained: &fmlab_tokenizer::train::TrainedBpe,
    out: &std::path::Path,
) -> Result<()> {
    let mut meta: Vec<(String, Value)> = trained
        .gguf_metadata()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    meta.push((
        "tokenizer.chat_template".into(),
        Value::String(fmlab_tokenizer::train::CHAT_TEMPLATE.into()),
    ));
    gguf(spec, weights, quant, name, meta)?.write(out)?;
    Ok(())
}

/// The tokenizer files of a Hugging Face folder, as [`write_hf_folder`] writes them.
pub struct HfTokenizerFiles<'a> {
    /// The vocabulary and special tokens.
    pub tokenizer: &'a fmlab_tokenizer::Tokenizer,
    /// `tokenizer.json`'s text: a run's own, or one written from a GGUF vocabulary by
    /// `fmlab_tokenizer::hf::tokenizer_json`.
    pub tokenizer_json: &'a str,
    /// SentencePiece's `tokenizer.model`, for a vocabulary that is SentencePiece's.
    pub tokenizer_model: Option<&'a [u8]>,
    /// `chat_template` (fmlab's own for a run), when the model has one.
    pub chat_template: Option<&'a str>,
}

/// Writes a Hugging Face folder to `out` ([`hf_safetensors`]): `model.safetensors`,
/// `config.json`, `tokenizer.json`, `tokenizer.model` when given, and a
/// `tokenizer_config.json` naming the BOS, EOS, unknown and padding tokens, whether BOS
/// (and EOS) are added, the control and user-defined tokens (`added_tokens_decoder`) and
/// the chat template.
pub fn write_hf_folder(
    spec: &ModelSpec,
    weights: &mut Weights<f32>,
    files: &HfTokenizerFiles,
    out: &std::path::Path,
) -> Result<()> {
    let tokenizer = files.tokenizer;
    let (bos, eos) = (tokenizer.vocab.bos, tokenizer.vocab.eos);
    let (bytes, config) = hf_safetensors(spec, weights, bos, eos, tokenizer.vocab.pad)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let write = |name: &str, bytes: &[u8]| -> Result<()> {
        fmlab_formats::write_atomically(&out.join(name), bytes)?;
        Ok(())
    };
    write("model.safetensors", &bytes)?;
    write(
        "config.json",
        &serde_json::to_vec_pretty(&config).map_err(Error::Json)?,
    )?;
    write("tokenizer.json", files.tokenizer_json.as_bytes())?;
    if let Some(model) = files.tokenizer_model {
        write("tokenizer.model", model)?;
    }
    let piece = |id: Option<u32>| id.and_then(|i| tokenizer.piece(i).ok().map(String::from));
    let mut added = serde_json::Map::new();
    for id in 0..tokenizer.vocab_size() as u32 {
        let kind = tokenizer.vocab.stored_token_type(id);
        if matches!(
            kind,
            fmlab_tokenizer::TokenType::Control | fmlab_tokenizer::TokenType::UserDefined
        ) {
            added.insert(
                id.to_string(),
                json!({"content": piece(Some(id)), "lstrip": false, "normalized": false,
                       "rstrip": false, "single_word": false,
                       "special": kind == fmlab_tokenizer::TokenType::Control}),
            );
        }
    }
    let mut tok_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": piece(bos),
        "eos_token": piece(eos),
        "unk_token": piece(tokenizer.vocab.unk),
        "pad_token": piece(tokenizer.vocab.pad),
        "add_bos_token": tokenizer.vocab.add_bos,
        "added_tokens_decoder": added,
        "model_max_length": spec.context_length,
    });
    if let Some(template) = files.chat_template {
        tok_config["chat_template"] = json!(template);
    }
    // Written only when set, as llama.cpp's GGUF files have the key only then.
    if tokenizer.vocab.add_eos {
        tok_config["add_eos_token"] = json!(true);
    }
    write(
        "tokenizer_config.json",
        &serde_json::to_vec_pretty(&tok_config).map_err(Error::Json)?,
    )
}
