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
    fn file_type(self) -> u32 {
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
    for t in weights.named_mut() {
        // ggml lists dimensions fastest first: [in, out].
        let dims: Vec<u64> = t.shape.iter().rev().map(|&d| d as u64).collect();
        let matrix = t.shape.len() == 2;
        let (ty, data) = match quant {
            Quant::Q8_0 if matrix && t.shape[1] % 32 == 0 => {
                let mut bytes = Vec::with_capacity(t.data.len() / 32 * 34);
                for row in t.data.chunks_exact(t.shape[1]) {
                    bytes.extend(fmlab_kernels::quantize_q8_0(row)?);
                }
                (GgmlType::Q8_0, bytes)
            }
            Quant::F16 | Quant::Q8_0 if matrix => (
                GgmlType::F16,
                t.data
                    .iter()
                    .flat_map(|&x| fmlab_kernels::f32_to_f16(x).to_le_bytes())
                    .collect(),
            ),
            // Norms stay f32, as llama.cpp's converter keeps them.
            _ => (GgmlType::F32, f32_bytes(t.data)),
        };
        w.tensor(&t.name, &dims, ty, data)?;
    }
    Ok(w)
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

/// A Hugging Face model folder (`config.json` and its `*.safetensors` files, f32, f16 or
/// bf16) as trainable weights under GGUF names — the inverse of [`hf_safetensors`]: Llama
/// and Mistral query/key rows come back from HF's half-split RoPE layout to adjacent pairs
/// (as `convert_hf_to_gguf` permutes them); Qwen2 keeps its halves.
pub fn weights_from_hf(dir: &std::path::Path) -> Result<(ModelSpec, Weights<f32>)> {
    let config = dir.join("config.json");
    let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
    let spec = fmlab_formats::spec_from_hf_config(&text)?;
    if !matches!(spec.architecture.as_str(), "llama" | "mistral" | "qwen2") {
        return Err(Error::Config(format!(
            "{}: Hugging Face folders of llama, mistral and qwen2 models load as weights; this one is {} (convert it to GGUF)",
            dir.display(),
            spec.architecture
        )));
    }
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    paths.sort();
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
        let name = hf_name(&t.name)
            .ok_or_else(|| Error::Config(format!("no Hugging Face name for {}", t.name)))?;
        let Some((file, view)) = files
            .iter()
            .find_map(|f| f.header.tensor(&name).map(|v| (f, v)))
        else {
            return Err(Error::Config(format!(
                "{}: tensor {name} is missing",
                dir.display()
            )));
        };
        let want: Vec<u64> = t.shape.iter().map(|&x| x as u64).collect();
        if view.shape != want {
            return Err(Error::Config(format!(
                "{}: tensor {name} is {:?}, the config implies {want:?}",
                file.path.display(),
                view.shape
            )));
        }
        let raw = file.tensor_data(view);
        let values: Vec<f32> = match view.dtype {
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
        };
        if values.len() != t.data.len() {
            return Err(Error::Config(format!(
                "{}: tensor {name} holds {} values, expected {}",
                file.path.display(),
                values.len(),
                t.data.len()
            )));
        }
        let rotated = t.name.contains("attn_q.") || t.name.contains("attn_k.");
        if permute && rotated {
            let cols = if t.shape.len() == 2 { t.shape[1] } else { 1 };
            t.data
                .copy_from_slice(&permute_rope_rows(&values, cols, hd, true));
        } else {
            t.data.copy_from_slice(&values);
        }
    }
    Ok((spec, w))
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

/// `model.safetensors` (f32, Hugging Face names and layout) and `config.json` for
/// `LlamaForCausalLM`; `bos`/`eos` are the tokenizer's ids.
pub fn hf_safetensors(
    spec: &ModelSpec,
    weights: &mut Weights<f32>,
    bos: Option<u32>,
    eos: Option<u32>,
) -> Result<(Vec<u8>, serde_json::Value)> {
    check_exportable(spec)?;
    let hd = spec.head_dim as usize;
    let mut tensors: Vec<(String, Vec<u64>, Vec<u8>)> = Vec::new();
    for t in weights.named_mut() {
        let name = hf_name(&t.name)
            .ok_or_else(|| Error::Config(format!("no Hugging Face name for {}", t.name)))?;
        let data = if t.name.ends_with("attn_q.weight") || t.name.ends_with("attn_k.weight") {
            permute_rope_rows(t.data, t.shape[1], hd, false)
        } else {
            t.data.to_vec()
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
    let config = json!({
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
    });
    Ok((bytes, config))
}
