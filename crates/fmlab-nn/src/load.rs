//! Building a `Transformer` from a GGUF file, by llama.cpp's tensor names.

use fmlab_formats::{spec_from_gguf, GgmlType, GgufFile, TensorInfo};
use fmlab_kernels::{f16_to_f32, Matrix, QuantType, RopeStyle, Threads};
use fmlab_spec::{FfnKind, NormKind, NormPlacement};

use crate::{Error, Layer, Linear, Norm, Result, Transformer};

/// Loads the model of a GGUF file (weights are copied out of the memory map once).
pub fn from_gguf(file: &GgufFile) -> Result<Transformer> {
    let spec = spec_from_gguf(&file.gguf)?;
    let rope_style = match spec.architecture.as_str() {
        // convert_hf_to_gguf permutes Llama's Q/K rows for interleaved pairs.
        "llama" | "mistral" => RopeStyle::Interleaved,
        "qwen2" | "gemma3" => RopeStyle::Halves,
        other => return Err(Error::UnsupportedArchitecture(other.into())),
    };
    let d = spec.d_model;
    let (q_width, kv_width) = (
        spec.n_heads * spec.head_dim,
        spec.n_kv_heads * spec.head_dim,
    );
    let loader = Loader { file };
    let vocab = spec.vocab_size;
    let embed = loader.matrix("token_embd.weight", vocab, d)?;
    let head = if spec.tied_embeddings {
        None
    } else {
        Some(loader.matrix("output.weight", vocab, d)?)
    };
    let mut layers = Vec::with_capacity(spec.n_layers as usize);
    let layernorm = spec.norm_kind == NormKind::LayerNorm;
    for i in 0..spec.n_layers {
        let name = |suffix: &str| format!("blk.{i}.{suffix}");
        let linear = |suffix: &str, rows: u64, cols: u64, bias: bool| -> Result<Linear> {
            Ok(Linear {
                weight: loader.matrix(&name(&format!("{suffix}.weight")), rows, cols)?,
                bias: if bias {
                    Some(loader.vector(&name(&format!("{suffix}.bias")), rows)?)
                } else {
                    None
                },
            })
        };
        let norm = |suffix: &str, width: u64| -> Result<Norm> {
            Ok(Norm {
                weight: loader.vector(&name(&format!("{suffix}.weight")), width)?,
                bias: if layernorm {
                    Some(loader.vector(&name(&format!("{suffix}.bias")), width)?)
                } else {
                    None
                },
            })
        };
        let sandwich = spec.norm_placement == NormPlacement::PreAndPost;
        let f = spec.ffn_dim;
        layers.push(Layer {
            attn_norm: norm("attn_norm", d)?,
            q: linear("attn_q", q_width, d, spec.qkv_bias)?,
            k: linear("attn_k", kv_width, d, spec.qkv_bias)?,
            v: linear("attn_v", kv_width, d, spec.qkv_bias)?,
            o: linear("attn_output", d, q_width, spec.attn_out_bias)?,
            q_norm: if spec.qk_norm {
                Some(norm("attn_q_norm", spec.head_dim)?)
            } else {
                None
            },
            k_norm: if spec.qk_norm {
                Some(norm("attn_k_norm", spec.head_dim)?)
            } else {
                None
            },
            post_attn_norm: if sandwich {
                Some(norm("post_attention_norm", d)?)
            } else {
                None
            },
            ffn_norm: norm("ffn_norm", d)?,
            gate: if spec.ffn_kind == FfnKind::GeluMlp {
                None
            } else {
                Some(linear("ffn_gate", f, d, spec.mlp_bias)?)
            },
            up: linear("ffn_up", f, d, spec.mlp_bias)?,
            down: linear("ffn_down", d, f, spec.mlp_bias)?,
            post_ffn_norm: if sandwich {
                Some(norm("post_ffw_norm", d)?)
            } else {
                None
            },
        });
    }
    let final_norm = Norm {
        weight: loader.vector("output_norm.weight", d)?,
        bias: if layernorm {
            Some(loader.vector("output_norm.bias", d)?)
        } else {
            None
        },
    };
    Ok(Transformer {
        spec,
        embed,
        pos_embed: None,
        layers,
        final_norm,
        head,
        rope_style,
        threads: Threads(0),
    })
}

/// A 2-D tensor of a GGUF file as a matrix in its stored format (ggml dims `[cols, rows]`).
pub fn gguf_matrix(file: &GgufFile, name: &str) -> Result<Matrix> {
    let loader = Loader { file };
    let info = loader.info(name)?;
    match info.dims[..] {
        [cols, rows] => loader.matrix(name, rows, cols),
        _ => Err(Error::Shape {
            tensor: name.into(),
            expected: vec![0, 0],
            found: info.dims.clone(),
        }),
    }
}

struct Loader<'a> {
    file: &'a GgufFile,
}

impl Loader<'_> {
    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.file
            .gguf
            .tensor(name)
            .ok_or_else(|| Error::MissingTensor(name.into()))
    }

    /// A `rows × cols` matrix (ggml dims `[cols, rows]`) in its stored format.
    fn matrix(&self, name: &str, rows: u64, cols: u64) -> Result<Matrix> {
        let info = self.info(name)?;
        if info.dims != [cols, rows] {
            return Err(Error::Shape {
                tensor: name.into(),
                expected: vec![cols, rows],
                found: info.dims.clone(),
            });
        }
        let format = quant_type(info)?;
        let bytes = self.file.tensor_data(info)?.to_vec();
        Ok(Matrix::quantized(
            rows as usize,
            cols as usize,
            format,
            bytes,
        )?)
    }

    /// A vector of `len` values as f32.
    fn vector(&self, name: &str, len: u64) -> Result<Vec<f32>> {
        let info = self.info(name)?;
        if info.n_elements != len || info.dims.iter().filter(|&&x| x != 1).count() > 1 {
            return Err(Error::Shape {
                tensor: name.into(),
                expected: vec![len],
                found: info.dims.clone(),
            });
        }
        let bytes = self.file.tensor_data(info)?;
        match info.ggml_type {
            GgmlType::F32 => Ok(bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()),
            GgmlType::F16 => Ok(bytes
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect()),
            _ => {
                let m = Matrix::quantized(1, len as usize, quant_type(info)?, bytes.to_vec())?;
                let mut out = vec![0f32; len as usize];
                m.row(0, &mut out)?;
                Ok(out)
            }
        }
    }
}

fn quant_type(info: &TensorInfo) -> Result<QuantType> {
    Ok(match info.ggml_type {
        GgmlType::F32 => QuantType::F32,
        GgmlType::F16 => QuantType::F16,
        GgmlType::BF16 => QuantType::BF16,
        GgmlType::Q4_0 => QuantType::Q4_0,
        GgmlType::Q4_1 => QuantType::Q4_1,
        GgmlType::Q5_0 => QuantType::Q5_0,
        GgmlType::Q5_1 => QuantType::Q5_1,
        GgmlType::Q8_0 => QuantType::Q8_0,
        GgmlType::Q4_K => QuantType::Q4_K,
        GgmlType::Q5_K => QuantType::Q5_K,
        GgmlType::Q6_K => QuantType::Q6_K,
        other => {
            return Err(Error::UnsupportedFormat {
                tensor: info.name.clone(),
                format: other.name(),
            })
        }
    })
}
