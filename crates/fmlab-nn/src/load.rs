//! Building a `Transformer` from any tensor `Source`: a GGUF file, by llama.cpp's tensor
//! names, or trained weights (`train::Weights::to_transformer`).

use fmlab_formats::{spec_from_gguf, GgmlType, GgufFile, TensorInfo};
use fmlab_kernels::{f16_to_f32, Matrix, QuantType, Threads};
use fmlab_spec::{FfnKind, ModelSpec, NormKind, NormPlacement, Positions};

use crate::plan::{Head, LinearId, NormId, Plan};
use crate::{Error, Layer, Linear, Norm, Result, Transformer};

/// Loads the model of a GGUF file (weights are copied out of the memory map once).
pub fn from_gguf(file: &GgufFile) -> Result<Transformer> {
    let spec = spec_from_gguf(&file.gguf)?;
    // The architectures whose GGUF tensors and metadata fmlab reads.
    if !matches!(
        spec.architecture.as_str(),
        "llama" | "mistral" | "qwen2" | "gemma3" | "gpt2"
    ) {
        return Err(Error::UnsupportedArchitecture(spec.architecture));
    }
    build(spec, &Loader { file })
}

/// Where a model's tensors come from, by GGUF name: a GGUF file, or trained weights.
pub(crate) trait Source {
    /// A `rows × cols` matrix.
    fn matrix(&self, name: &str, rows: u64, cols: u64) -> Result<Matrix>;
    /// A vector of `len` values.
    fn vector(&self, name: &str, len: u64) -> Result<Vec<f32>>;
    /// Whether a tensor of this name exists.
    fn has(&self, name: &str) -> bool;
}

/// The inference model of `spec` over the tensors of `src`: the plan, and each of its
/// parameters in the form the inference executor multiplies with.
pub(crate) fn build(spec: ModelSpec, src: &dyn Source) -> Result<Transformer> {
    // A reward model: the backbone with a scalar head in place of the output projection.
    let head = if src.has("score.weight") {
        Head::Score
    } else {
        Head::Lm
    };
    let plan = Plan::with_head(&spec, head)?;
    let d = spec.d_model;
    let (q_width, kv_width) = (
        spec.n_heads * spec.head_dim,
        spec.n_kv_heads * spec.head_dim,
    );
    let vocab = spec.vocab_size;
    let embed = src.matrix("token_embd.weight", vocab, d)?;
    let pos_embed = if spec.positions == Positions::Learned {
        Some(src.matrix("position_embd.weight", spec.context_length, d)?)
    } else {
        None
    };
    let head = match plan.head {
        Head::Score => Some(src.matrix("score.weight", 1, d)?),
        Head::Lm if spec.tied_embeddings => None,
        Head::Lm => Some(src.matrix("output.weight", vocab, d)?),
    };
    let layernorm = spec.norm_kind == NormKind::LayerNorm;
    let norm = |id: NormId, width: u64| -> Result<Norm> {
        let name = id.name();
        Ok(Norm {
            weight: src.vector(&format!("{name}.weight"), width)?,
            bias: if layernorm {
                Some(src.vector(&format!("{name}.bias"), width)?)
            } else {
                None
            },
        })
    };
    let linear = |id: LinearId, rows: u64, cols: u64, bias: bool| -> Result<Linear> {
        let name = id.name(false);
        Ok(Linear {
            weight: src.matrix(&format!("{name}.weight"), rows, cols)?,
            bias: if bias {
                Some(src.vector(&format!("{name}.bias"), rows)?)
            } else {
                None
            },
        })
    };
    let sandwich = spec.norm_placement == NormPlacement::PreAndPost;
    let f = spec.ffn_dim;
    let mut layers = Vec::with_capacity(spec.n_layers as usize);
    for l in 0..spec.n_layers as usize {
        let qk = |id| -> Result<Option<Norm>> {
            spec.qk_norm.then(|| norm(id, spec.head_dim)).transpose()
        };
        let post = |id| -> Result<Option<Norm>> { sandwich.then(|| norm(id, d)).transpose() };
        layers.push(Layer {
            attn_norm: norm(NormId::Attn(l), d)?,
            q: linear(LinearId::Q(l), q_width, d, spec.qkv_bias)?,
            k: linear(LinearId::K(l), kv_width, d, spec.qkv_bias)?,
            v: linear(LinearId::V(l), kv_width, d, spec.qkv_bias)?,
            o: linear(LinearId::O(l), d, q_width, spec.attn_out_bias)?,
            q_norm: qk(NormId::QHead(l))?,
            k_norm: qk(NormId::KHead(l))?,
            post_attn_norm: post(NormId::PostAttn(l))?,
            ffn_norm: norm(NormId::Ffn(l), d)?,
            gate: if spec.ffn_kind == FfnKind::GeluMlp {
                None
            } else {
                Some(linear(LinearId::Gate(l), f, d, spec.mlp_bias)?)
            },
            up: linear(LinearId::Up(l), f, d, spec.mlp_bias)?,
            down: linear(LinearId::Down(l), d, f, spec.mlp_bias)?,
            post_ffn_norm: post(NormId::PostFfn(l))?,
        });
    }
    let final_norm = if spec.final_norm {
        Some(norm(NormId::Final, d)?)
    } else {
        None
    };
    let mut model = Transformer {
        rope_style: plan.rope_style,
        plan,
        spec,
        embed,
        pos_embed,
        layers,
        final_norm,
        head,
        threads: Threads(0),
    };
    model.repack();
    Ok(model)
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

impl Source for Loader<'_> {
    /// A `rows × cols` matrix (ggml dims `[cols, rows]`) in its stored format.
    fn matrix(&self, name: &str, rows: u64, cols: u64) -> Result<Matrix> {
        self.matrix(name, rows, cols)
    }

    fn vector(&self, name: &str, len: u64) -> Result<Vec<f32>> {
        self.vector(name, len)
    }

    fn has(&self, name: &str) -> bool {
        self.file.gguf.tensor(name).is_some()
    }
}

/// Where a query, key or value tensor lies inside a fused `attn_qkv` one (llama.cpp's
/// GPT-2 layout: the query's rows, then the key's, then the value's): the fused name and
/// the part (0, 1, 2).
fn fused_part(name: &str) -> Option<(String, usize)> {
    let (layer, rest) = name.strip_prefix("blk.")?.split_once('.')?;
    let (which, suffix) = rest.split_once('.')?;
    let part = match which {
        "attn_q" => 0,
        "attn_k" => 1,
        "attn_v" => 2,
        _ => return None,
    };
    Some((format!("blk.{layer}.attn_qkv.{suffix}"), part))
}

impl Loader<'_> {
    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.file
            .gguf
            .tensor(name)
            .ok_or_else(|| Error::MissingTensor(name.into()))
    }

    /// A `rows × cols` matrix (ggml dims `[cols, rows]`) in its stored format; a query,
    /// key or value map the file fuses into `attn_qkv` is its third of the rows (each row
    /// is whole blocks, so the slice keeps the stored format).
    fn matrix(&self, name: &str, rows: u64, cols: u64) -> Result<Matrix> {
        if let (None, Some((fused, part))) = (self.file.gguf.tensor(name), fused_part(name)) {
            if let Some(info) = self.file.gguf.tensor(&fused) {
                if info.dims != [cols, 3 * rows] {
                    return Err(Error::Shape {
                        tensor: fused,
                        expected: vec![cols, 3 * rows],
                        found: info.dims.clone(),
                    });
                }
                let format = quant_type(info)?;
                let row = format.row_bytes(cols as usize)?;
                let n = rows as usize * row;
                let bytes = self.file.tensor_data(info)?[part * n..(part + 1) * n].to_vec();
                return Ok(Matrix::quantized(
                    rows as usize,
                    cols as usize,
                    format,
                    bytes,
                )?);
            }
        }
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

    /// A vector of `len` values as f32 (a query, key or value bias the file fuses into
    /// `attn_qkv.bias`: its third).
    fn vector(&self, name: &str, len: u64) -> Result<Vec<f32>> {
        if let (None, Some((fused, part))) = (self.file.gguf.tensor(name), fused_part(name)) {
            if self.file.gguf.tensor(&fused).is_some() {
                let all = self.vector(&fused, 3 * len)?;
                let n = len as usize;
                return Ok(all[part * n..(part + 1) * n].to_vec());
            }
        }
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

/// The kernels' block format of a GGUF tensor type (`None`: a type fmlab has no kernel for).
pub fn kernel_format(t: GgmlType) -> Option<QuantType> {
    Some(match t {
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
        _ => return None,
    })
}

fn quant_type(info: &TensorInfo) -> Result<QuantType> {
    kernel_format(info.ggml_type).ok_or_else(|| Error::UnsupportedFormat {
        tensor: info.name.clone(),
        format: info.ggml_type.name(),
    })
}
