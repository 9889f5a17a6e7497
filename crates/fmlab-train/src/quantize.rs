//! Quantizing a GGUF file (`fmlab quantize`): every tensor re-encoded in the format that
//! llama.cpp's `llama-quantize` would choose for it, with the same bytes.
//!
//! The choice per tensor follows `llama_tensor_get_type` (llama.cpp `src/llama-quant.cpp`)
//! for the file types offered here: 1-D tensors, norms and a few named small tensors are
//! copied unchanged; the output matrix (and the token embeddings when they are tied to it)
//! get Q6_K, or Q8_0 when their rows do not split into the type's blocks; the `_M` mixes
//! give `attn_v` and `ffn_down` Q6_K on the first and last eighth of the layers and every
//! third layer between (`use_more_bits`), `Q4_K_S` gives the first four `attn_v` and the
//! first eighth of `ffn_down` Q5_K; and a matrix whose row length is not a multiple of its
//! type's block falls back (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, then f16). The block
//! arithmetic is `fmlab_kernels::quantize_row`, ggml's reference quantizers.
//!
//! Tensors are written in llama.cpp's order (by layer number, then by name; tensors
//! outside the layers first), each padded to 32 bytes; the metadata is the input's, with
//! `general.quantization_version` and `general.file_type` (llama.cpp's `llama_ftype`
//! number) moved to the end and split keys dropped. Quantized input is dequantized and
//! quantized again, as `llama-quantize --allow-requantize` does.

use std::path::Path;

use fmlab_formats::{GgmlType, Gguf, GgufFile, GgufStreamWriter, TensorHeader, TensorInfo, Value};
use fmlab_kernels::QuantType;
use rayon::prelude::*;

use crate::{Error, Result};

/// What a quantized file is made of: llama.cpp's `llama_ftype`s that fmlab writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum FileType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4_K_S,
    Q4_K_M,
    Q5_K_S,
    Q5_K_M,
    Q6_K,
}

impl FileType {
    pub const ALL: [FileType; 12] = [
        FileType::F32,
        FileType::F16,
        FileType::Q8_0,
        FileType::Q4_0,
        FileType::Q4_1,
        FileType::Q5_0,
        FileType::Q5_1,
        FileType::Q4_K_S,
        FileType::Q4_K_M,
        FileType::Q5_K_S,
        FileType::Q5_K_M,
        FileType::Q6_K,
    ];

    /// The name on the command line (`q4_k_m`), as llama-quantize's in lower case.
    pub fn name(self) -> &'static str {
        match self {
            FileType::F32 => "f32",
            FileType::F16 => "f16",
            FileType::Q4_0 => "q4_0",
            FileType::Q4_1 => "q4_1",
            FileType::Q5_0 => "q5_0",
            FileType::Q5_1 => "q5_1",
            FileType::Q8_0 => "q8_0",
            FileType::Q4_K_S => "q4_k_s",
            FileType::Q4_K_M => "q4_k_m",
            FileType::Q5_K_S => "q5_k_s",
            FileType::Q5_K_M => "q5_k_m",
            FileType::Q6_K => "q6_k",
        }
    }

    /// Parses a name in any case (`Q4_K_M`, `q4_k_m`).
    pub fn parse(s: &str) -> Option<Self> {
        let lower = s.to_ascii_lowercase();
        Self::ALL.into_iter().find(|t| t.name() == lower)
    }

    /// llama.cpp's `llama_ftype` number, written as `general.file_type`.
    pub fn llama_ftype(self) -> u32 {
        match self {
            FileType::F32 => 0,
            FileType::F16 => 1,
            FileType::Q4_0 => 2,
            FileType::Q4_1 => 3,
            FileType::Q8_0 => 7,
            FileType::Q5_0 => 8,
            FileType::Q5_1 => 9,
            FileType::Q4_K_S => 14,
            FileType::Q4_K_M => 15,
            FileType::Q5_K_S => 16,
            FileType::Q5_K_M => 17,
            FileType::Q6_K => 18,
        }
    }

    /// The type of most matrices (`llama_ftype_get_default_type`).
    pub fn default_type(self) -> QuantType {
        match self {
            FileType::F32 => QuantType::F32,
            FileType::F16 => QuantType::F16,
            FileType::Q4_0 => QuantType::Q4_0,
            FileType::Q4_1 => QuantType::Q4_1,
            FileType::Q5_0 => QuantType::Q5_0,
            FileType::Q5_1 => QuantType::Q5_1,
            FileType::Q8_0 => QuantType::Q8_0,
            FileType::Q4_K_S | FileType::Q4_K_M => QuantType::Q4_K,
            FileType::Q5_K_S | FileType::Q5_K_M => QuantType::Q5_K,
            FileType::Q6_K => QuantType::Q6_K,
        }
    }
}

/// One tensor of the output: where it comes from and what it becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    /// ggml order, trailing 1s dropped as ggml writes them.
    pub dims: Vec<u64>,
    pub from: GgmlType,
    pub to: GgmlType,
    /// The type the rules chose, when the row length made it fall back to `to`.
    pub wanted: Option<GgmlType>,
    pub n_elements: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl TensorPlan {
    /// Whether the tensor is re-encoded (rather than copied).
    pub fn converted(&self) -> bool {
        self.from != self.to
    }

    /// Whether a block-quantized tensor is dequantized and quantized again.
    pub fn requantized(&self) -> bool {
        self.converted() && is_block_format(self.from)
    }
}

/// The whole output, decided before anything is written.
#[derive(Debug, Clone)]
pub struct QuantizePlan {
    pub file_type: FileType,
    /// In output order.
    pub tensors: Vec<TensorPlan>,
    pub metadata: Vec<(String, Value)>,
    pub alignment: u64,
}

/// Sizes before and after.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantizeSummary {
    pub tensors: usize,
    pub converted: usize,
    pub n_elements: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl QuantizeSummary {
    pub fn bits_per_weight_before(&self) -> f64 {
        8.0 * self.bytes_before as f64 / self.n_elements.max(1) as f64
    }

    pub fn bits_per_weight_after(&self) -> f64 {
        8.0 * self.bytes_after as f64 / self.n_elements.max(1) as f64
    }
}

fn is_block_format(t: GgmlType) -> bool {
    t.block().0 > 1
}

fn ggml_type(t: QuantType) -> GgmlType {
    match t {
        QuantType::F32 => GgmlType::F32,
        QuantType::F16 => GgmlType::F16,
        QuantType::BF16 => GgmlType::BF16,
        QuantType::Q4_0 => GgmlType::Q4_0,
        QuantType::Q4_1 => GgmlType::Q4_1,
        QuantType::Q5_0 => GgmlType::Q5_0,
        QuantType::Q5_1 => GgmlType::Q5_1,
        QuantType::Q8_0 => GgmlType::Q8_0,
        QuantType::Q4_K => GgmlType::Q4_K,
        QuantType::Q5_K => GgmlType::Q5_K,
        QuantType::Q6_K => GgmlType::Q6_K,
    }
}

/// The layer of a tensor named `blk.N.…` as C's `sscanf(name, "blk.%d.", &n)` reads it;
/// −1 outside the layers.
fn layer_of(name: &str) -> i64 {
    let Some(rest) = name.strip_prefix("blk.") else {
        return -1;
    };
    let rest = rest.trim_start();
    let (sign, digits) = match rest.as_bytes().first() {
        Some(b'-') => (-1, &rest[1..]),
        Some(b'+') => (1, &rest[1..]),
        _ => (1, rest),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    match digits[..end].parse::<i64>() {
        Ok(n) => sign * n,
        Err(_) => -1,
    }
}

/// llama.cpp's broad tensor categories (`tensor_get_category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttnQ,
    AttnV,
    AttnK,
    AttnQkv,
    AttnKvB,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

fn category(name: &str) -> Category {
    if name == "output.weight" {
        Category::Output
    } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        Category::TokenEmbd
    } else if name.contains("attn_qkv.weight") {
        Category::AttnQkv
    } else if name.contains("attn_kv_b.weight") {
        Category::AttnKvB
    } else if name.contains("attn_v.weight") {
        Category::AttnV
    } else if name.contains("attn_k.weight") {
        Category::AttnK
    } else if name.contains("attn_q.weight") {
        Category::AttnQ
    } else if name.contains("attn_output.weight") {
        Category::AttnOutput
    } else if name.contains("ffn_up") {
        Category::FfnUp
    } else if name.contains("ffn_gate") {
        Category::FfnGate
    } else if name.contains("ffn_down") {
        Category::FfnDown
    } else {
        Category::Other
    }
}

fn is_attn_v(c: Category) -> bool {
    matches!(c, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
}

/// Whether llama-quantize re-encodes a tensor at all (`tensor_allows_quantization`):
/// matrices named `…weight`, except norms, routers, position and token-type embeddings
/// and the small named tensors it leaves alone.
fn allows_quantization(name: &str, n_dims: usize, arch: &str) -> bool {
    if n_dims < 2 || !name.ends_with("weight") || name.contains("_norm.weight") {
        return false;
    }
    const KEPT: &[&str] = &[
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    const KEPT_GLM5_NEXT: &[&str] = &[
        "hc_",
        "indexer.attn_q_b",
        "indexer.attn_k",
        "indexer.proj",
        "indexer_compressor_gate",
        "indexer_compressor_ape",
        "ssm_f_a.weight",
        "ssm_f_b.weight",
        "ssm_g_a.weight",
        "ssm_g_b.weight",
        "ssm_beta.weight",
        "attn_kv_a_mqa.weight",
        "attn_k_b.weight",
        "attn_v_b.weight",
    ];
    if name == "position_embd.weight" || name == "token_types.weight" {
        return false;
    }
    if KEPT.iter().any(|k| name.contains(k)) {
        return false;
    }
    !(arch == "glm5-next" && KEPT_GLM5_NEXT.iter().any(|k| name.contains(k)))
}

/// `use_more_bits`: the first and last eighth of the layers and every third between.
fn use_more_bits(i: i64, n: i64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The model facts llama-quantize's rules read.
struct Model {
    arch: String,
    n_layer: i64,
    n_expert: i64,
    /// llama.cpp's `LLM_TYPE_70B`: attn_v gets Q5_K rather than Q4_K.
    is_70b: bool,
    tied_embeddings: bool,
    n_attention_wv: i64,
}

impl Model {
    fn new(gguf: &Gguf) -> Result<Self> {
        let arch = gguf
            .get("general.architecture")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let key = |k: &str| format!("{arch}.{k}");
        let n_layer = match gguf.get_u64(&key("block_count"))? {
            Some(n) => n as i64,
            // Without the key, the layers the tensors name.
            None => gguf
                .tensors
                .iter()
                .map(|t| layer_of(&t.name) + 1)
                .max()
                .unwrap_or(0),
        };
        let n_expert = gguf.get_u64(&key("expert_count"))?.unwrap_or(0) as i64;
        let head = |k: &str| -> Result<Option<u64>> {
            Ok(match gguf.get(&key(k)) {
                Some(Value::Array(_, v)) => v.first().and_then(Value::as_u64),
                Some(_) => gguf.get_u64(&key(k))?,
                None => None,
            })
        };
        let grouped = head("attention.head_count")? != head("attention.head_count_kv")?;
        let is_70b = match arch.as_str() {
            "llama" => n_layer == 80 && grouped,
            "deci" | "olmo" | "qwen2" => n_layer == 80,
            "jais2" => n_layer == 68,
            _ => false,
        };
        let names = || gguf.tensors.iter().map(|t| category(&t.name));
        Ok(Model {
            tied_embeddings: !names().any(|c| c == Category::Output),
            n_attention_wv: names().filter(|&c| is_attn_v(c)).count() as i64,
            arch,
            n_layer,
            n_expert,
            is_70b,
        })
    }
}

/// The running counters of `quantize_state_impl`, advanced in output order.
#[derive(Default)]
struct Counters {
    attention_wv: i64,
    ffn_down: i64,
}

/// `llama_tensor_get_type_impl` for the file types fmlab writes (all quantized: the f32
/// and f16 files take their default type everywhere).
fn mixed_type(
    model: &Model,
    counters: &mut Counters,
    file_type: FileType,
    name: &str,
    row: u64,
    default: QuantType,
) -> Result<QuantType> {
    use FileType as F;
    let falcon = model.arch == "falcon";
    let c = category(name);
    let mut t = default;
    if c == Category::Output || (model.tied_embeddings && c == Category::TokenEmbd) {
        if falcon || !row.is_multiple_of(t.block().0 as u64) {
            t = QuantType::Q8_0;
        } else if t != QuantType::Q8_0 {
            t = QuantType::Q6_K;
        }
    } else if c == Category::TokenEmbd {
        // Untied embeddings keep the default type for these file types.
    } else if is_attn_v(c) {
        let i = counters.attention_wv;
        if matches!(file_type, F::Q4_K_M | F::Q5_K_M) && use_more_bits(i, model.n_attention_wv) {
            t = QuantType::Q6_K;
        } else if file_type == F::Q4_K_S && i < 4 {
            t = QuantType::Q5_K;
        }
        if model.is_70b && t == QuantType::Q4_K {
            t = QuantType::Q5_K;
        }
        if model.n_expert == 8 {
            t = QuantType::Q8_0;
        }
        counters.attention_wv += 1;
    } else if c == Category::AttnK {
        if model.n_expert == 8 {
            t = QuantType::Q8_0;
        }
    } else if c == Category::FfnDown {
        let (i, n) = if model.n_expert > 1 {
            // Experts are not in layer order: llama.cpp reads the layer from the name.
            let i = layer_of(name);
            if !(0..model.n_layer).contains(&i) {
                return Err(Error::Message(format!(
                    "tensor {name:?}: no layer in 0..{} in its name",
                    model.n_layer
                )));
            }
            (i, model.n_layer)
        } else {
            (counters.ffn_down, model.n_layer)
        };
        match file_type {
            F::Q4_K_M if falcon => {
                t = if i < n / 16 {
                    QuantType::Q6_K
                } else if use_more_bits(i, n) {
                    QuantType::Q5_K
                } else {
                    QuantType::Q4_K
                }
            }
            F::Q4_K_M | F::Q5_K_M if use_more_bits(i, n) => t = QuantType::Q6_K,
            F::Q4_K_S if !falcon && i < n / 8 => t = QuantType::Q5_K,
            _ => {}
        }
        counters.ffn_down += 1;
    } else if c == Category::AttnOutput
        && !falcon
        && model.n_expert == 8
        && matches!(file_type, F::Q4_K_S | F::Q4_K_M)
    {
        t = QuantType::Q5_K;
    }
    Ok(t)
}

/// `tensor_type_fallback`: a type whose block does not divide the row length.
fn fallback(t: QuantType, row: u64) -> QuantType {
    if row.is_multiple_of(t.block().0 as u64) {
        return t;
    }
    let next = match t {
        QuantType::Q4_K => QuantType::Q5_0,
        QuantType::Q5_K => QuantType::Q5_1,
        QuantType::Q6_K => QuantType::Q8_0,
        other => other,
    };
    if row.is_multiple_of(next.block().0 as u64) {
        next
    } else {
        QuantType::F16
    }
}

/// ggml's `ggml_n_dims`: trailing dimensions of 1 are not dimensions.
fn ggml_dims(dims: &[u64]) -> Vec<u64> {
    let n = dims.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1);
    let mut out: Vec<u64> = dims.iter().take(n).copied().collect();
    if out.is_empty() {
        out.push(1);
    }
    out
}

impl QuantizePlan {
    /// Decides every tensor's type for `file_type`. Fails on a tensor that must be
    /// converted from a type fmlab cannot read.
    pub fn new(gguf: &Gguf, file_type: FileType) -> Result<Self> {
        let model = Model::new(gguf)?;
        let mut order: Vec<&TensorInfo> = gguf.tensors.iter().collect();
        order.sort_by(|a, b| {
            (layer_of(&a.name), a.name.as_bytes()).cmp(&(layer_of(&b.name), b.name.as_bytes()))
        });
        let default = file_type.default_type();
        let quantized = default.block().0 > 1;
        let mut counters = Counters::default();
        let mut tensors = Vec::with_capacity(order.len());
        for info in order {
            let dims = ggml_dims(&info.dims);
            let row = dims[0];
            let mut wanted = None;
            let to = if !allows_quantization(&info.name, dims.len(), &model.arch) {
                info.ggml_type
            } else if !quantized {
                ggml_type(default)
            } else {
                let chosen =
                    mixed_type(&model, &mut counters, file_type, &info.name, row, default)?;
                let t = fallback(chosen, row);
                if t != chosen {
                    wanted = Some(ggml_type(chosen));
                }
                ggml_type(t)
            };
            if to != info.ggml_type && fmlab_nn::kernel_format(info.ggml_type).is_none() {
                return Err(Error::Message(format!(
                    "tensor {:?} is {}, which fmlab cannot dequantize (it reads f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K)",
                    info.name,
                    info.ggml_type.name()
                )));
            }
            let (block_elements, block_bytes) = to.block();
            tensors.push(TensorPlan {
                name: info.name.clone(),
                dims,
                from: info.ggml_type,
                to,
                wanted,
                n_elements: info.n_elements,
                bytes_before: info.n_bytes,
                bytes_after: info.n_elements / block_elements * block_bytes,
            });
        }
        let dropped = [
            "general.quantization_version",
            "general.file_type",
            "split.no",
            "split.count",
            "split.tensors.count",
        ];
        let mut metadata: Vec<(String, Value)> = gguf
            .metadata
            .iter()
            .filter(|(k, _)| !dropped.contains(&k.as_str()))
            .cloned()
            .collect();
        metadata.push(("general.quantization_version".into(), Value::U32(2)));
        metadata.push((
            "general.file_type".into(),
            Value::U32(file_type.llama_ftype()),
        ));
        Ok(QuantizePlan {
            file_type,
            tensors,
            metadata,
            // llama.cpp aligns to 32 whatever the input said; a file whose
            // `general.alignment` says otherwise keeps its alignment here, so that what
            // we write is what its metadata claims.
            alignment: gguf.alignment,
        })
    }

    /// Tensors dequantized from a block format and quantized again.
    pub fn requantized(&self) -> impl Iterator<Item = &TensorPlan> {
        self.tensors.iter().filter(|t| t.requantized())
    }

    /// Tensors whose row length made the chosen type fall back to another.
    pub fn fallbacks(&self) -> impl Iterator<Item = &TensorPlan> {
        self.tensors.iter().filter(|t| t.wanted.is_some())
    }

    pub fn summary(&self) -> QuantizeSummary {
        QuantizeSummary {
            tensors: self.tensors.len(),
            converted: self.tensors.iter().filter(|t| t.converted()).count(),
            n_elements: self.tensors.iter().map(|t| t.n_elements).sum(),
            bytes_before: self.tensors.iter().map(|t| t.bytes_before).sum(),
            bytes_after: self.tensors.iter().map(|t| t.bytes_after).sum(),
        }
    }

    /// Writes the quantized file to `out` (atomically: an existing file is replaced only
    /// when the whole file is written). `progress` hears of each tensor before it is
    /// written, with its index.
    pub fn write(
        &self,
        input: &GgufFile,
        out: &Path,
        progress: &mut dyn FnMut(usize, &TensorPlan),
    ) -> Result<QuantizeSummary> {
        let headers = self
            .tensors
            .iter()
            .map(|t| TensorHeader {
                name: t.name.clone(),
                dims: t.dims.clone(),
                ggml_type: t.to,
                n_bytes: t.bytes_after,
            })
            .collect();
        let mut writer = GgufStreamWriter::create(out, &self.metadata, headers, self.alignment)?;
        for (i, t) in self.tensors.iter().enumerate() {
            progress(i, t);
            let info = input
                .gguf
                .tensor(&t.name)
                .ok_or_else(|| Error::Message(format!("tensor {:?} vanished", t.name)))?;
            let data = input.tensor_data(info)?;
            if !t.converted() {
                writer.write_tensor(data)?;
                continue;
            }
            writer.write_tensor(&convert(t, data)?)?;
        }
        writer.finish()?;
        Ok(self.summary())
    }
}

/// Rows per parallel task: enough work to amortise the task, few enough to spread.
const ROWS_PER_TASK: usize = 16;

/// One tensor's bytes in its new type: rows dequantized to f32 and quantized again, in
/// parallel (each row is independent, so the bytes do not depend on the thread count).
fn convert(t: &TensorPlan, data: &[u8]) -> Result<Vec<u8>> {
    let (Some(from), Some(to)) = (
        fmlab_nn::kernel_format(t.from),
        fmlab_nn::kernel_format(t.to),
    ) else {
        return Err(Error::Message(format!(
            "tensor {:?}: no conversion from {} to {}",
            t.name,
            t.from.name(),
            t.to.name()
        )));
    };
    let row = t.dims[0] as usize;
    let (row_in, row_out) = (from.row_bytes(row)?, to.row_bytes(row)?);
    let rows = (t.n_elements as usize) / row.max(1);
    let mut out = vec![0u8; rows * row_out];
    let overflow = to == QuantType::F16;
    out.par_chunks_mut(row_out * ROWS_PER_TASK)
        .zip(data.par_chunks(row_in * ROWS_PER_TASK))
        .try_for_each(|(dst, src)| -> Result<()> {
            let mut x = vec![0f32; row];
            for (d, s) in dst.chunks_exact_mut(row_out).zip(src.chunks_exact(row_in)) {
                fmlab_kernels::dequantize_row(from, s, &mut x)?;
                // llama.cpp refuses what would store an infinity or NaN.
                if let Some(v) = x
                    .iter()
                    .find(|v| !v.is_finite() || (overflow && v.abs() >= 65520.0))
                {
                    return Err(Error::Message(format!(
                        "tensor {:?} holds {v}, which {} cannot store",
                        t.name,
                        t.to.name()
                    )));
                }
                fmlab_kernels::quantize_row_into(to, &x, d)?;
            }
            Ok(())
        })?;
    Ok(out)
}

/// Quantizes the GGUF file `input` to `out` as `file_type`: [`QuantizePlan::new`] then
/// [`QuantizePlan::write`].
pub fn quantize_file(
    input: &Path,
    out: &Path,
    file_type: FileType,
    progress: &mut dyn FnMut(usize, &TensorPlan),
) -> Result<QuantizeSummary> {
    let file = GgufFile::open(input)?;
    QuantizePlan::new(&file.gguf, file_type)?.write(&file, out, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for t in FileType::ALL {
            assert_eq!(FileType::parse(t.name()), Some(t));
            assert_eq!(FileType::parse(&t.name().to_uppercase()), Some(t));
        }
        assert_eq!(FileType::parse("q3_k_m"), None);
        assert_eq!(FileType::Q4_K_M.llama_ftype(), 15);
        assert_eq!(FileType::Q8_0.llama_ftype(), 7);
    }

    #[test]
    fn layers_as_sscanf_reads_them() {
        assert_eq!(layer_of("blk.12.attn_v.weight"), 12);
        assert_eq!(layer_of("blk.3"), 3);
        assert_eq!(layer_of("output.weight"), -1);
        assert_eq!(layer_of("blk.x.attn_v.weight"), -1);
        // llama.cpp's order: outside the layers first, then layer 2 before layer 10.
        let mut names = ["blk.10.a", "blk.2.b", "token_embd.weight", "blk.2.a"];
        names.sort_by_key(|n| (layer_of(n), n.to_string()));
        assert_eq!(
            names,
            ["token_embd.weight", "blk.2.a", "blk.2.b", "blk.10.a"]
        );
    }

    #[test]
    fn which_tensors_are_quantized() {
        assert!(allows_quantization("blk.0.attn_q.weight", 2, "llama"));
        assert!(!allows_quantization("blk.0.attn_norm.weight", 1, "llama"));
        assert!(!allows_quantization("blk.0.attn_q.bias", 2, "llama"));
        assert!(!allows_quantization(
            "blk.0.ffn_gate_inp.weight",
            2,
            "llama"
        ));
        assert!(!allows_quantization("position_embd.weight", 2, "gpt2"));
        assert_eq!(ggml_dims(&[576, 1]), vec![576]);
        assert_eq!(ggml_dims(&[1, 1]), vec![1]);
        assert_eq!(ggml_dims(&[576, 49152]), vec![576, 49152]);
    }

    #[test]
    fn more_bits_on_the_ends_and_every_third_layer() {
        // 30 layers (SmolLM2): n/8 = 3, 7n/8 = 26.
        let more: Vec<i64> = (0..30).filter(|&i| use_more_bits(i, 30)).collect();
        assert_eq!(more, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]);
    }

    #[test]
    fn row_lengths_fall_back() {
        assert_eq!(fallback(QuantType::Q4_K, 576), QuantType::Q5_0);
        assert_eq!(fallback(QuantType::Q5_K, 576), QuantType::Q5_1);
        assert_eq!(fallback(QuantType::Q6_K, 576), QuantType::Q8_0);
        assert_eq!(fallback(QuantType::Q6_K, 1536), QuantType::Q6_K);
        assert_eq!(fallback(QuantType::Q4_K, 40), QuantType::F16);
        assert_eq!(fallback(QuantType::Q8_0, 40), QuantType::F16);
    }
}
