//! Memory of weights, of training state and of activations.

use serde::Serialize;

use crate::{ModelSpec, ParamCounts};

/// A storage precision for weights.
///
/// The quantized formats (ggml's block formats) compress the 2-D weight matrices; the
/// vectors (norms, biases) stay f32, as llama.cpp stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    F32,
    F16,
    Bf16,
    /// 32 weights in 34 bytes (an f16 scale and 32 i8).
    Q8_0,
    /// 32 weights in 18 bytes (an f16 scale and 32 nibbles); Q4_K has the same 4.5 bits.
    Q4_0,
}

impl Precision {
    pub const ALL: [Precision; 5] = [
        Precision::F32,
        Precision::F16,
        Precision::Bf16,
        Precision::Q8_0,
        Precision::Q4_0,
    ];

    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
            Precision::Q8_0 => "q8_0",
            Precision::Q4_0 => "q4_0",
        }
    }

    /// Bytes per block and weights per block of the matrix storage.
    fn block(self) -> (u64, u64) {
        match self {
            Precision::F32 => (4, 1),
            Precision::F16 | Precision::Bf16 => (2, 1),
            Precision::Q8_0 => (34, 32),
            Precision::Q4_0 => (18, 32),
        }
    }

    fn is_quantized(self) -> bool {
        matches!(self, Precision::Q8_0 | Precision::Q4_0)
    }
}

pub(crate) fn weight_bytes(s: &ModelSpec, precision: Precision) -> u64 {
    let total = s.params().total;
    let matrices = ParamCounts::matrix_params(s);
    let vectors = total - matrices;
    let (block_bytes, block_weights) = precision.block();
    let matrix_bytes = matrices.div_ceil(block_weights) * block_bytes;
    let vector_bytes = if precision.is_quantized() {
        vectors * 4
    } else {
        vectors * block_bytes
    };
    matrix_bytes + vector_bytes
}

/// How a training run stores its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainingPrecision {
    /// f32 weights, gradients and both AdamW moments: 16 bytes per parameter.
    F32,
    /// bf16 weights and gradients, f32 master weights and moments: 2 + 2 + 4 + 4 + 4 = 16
    /// bytes per parameter; activations in 16 bits.
    Mixed,
}

/// Activation memory of one micro-batch, per Korthikanti et al. 2022 (table 2): per layer
/// `s·b·h·(34 + 5·a·s/h)` bytes in 16-bit without recomputation, `34·s·b·h` with selective
/// recomputation of attention, `2·s·b·h` (the layer input) with full recomputation; plus the
/// f32 logits `4·s·b·V`. f32 training doubles the 16-bit terms. The formula assumes
/// multi-head attention with `n_heads · head_dim = d_model`; it is an estimate for others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ActivationMemory {
    pub no_recompute: u64,
    pub selective_recompute: u64,
    pub full_recompute: u64,
}

/// Bytes of a training run's state with AdamW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TrainingMemory {
    pub precision: TrainingPrecision,
    pub seq_len: u64,
    pub micro_batch: u64,
    pub weights: u64,
    /// f32 master copy (mixed precision only).
    pub master_weights: u64,
    pub gradients: u64,
    /// AdamW's first and second moments, f32.
    pub optimizer: u64,
    pub activations: ActivationMemory,
    /// Weights + master + gradients + optimizer + activations without recomputation.
    pub total_no_recompute: u64,
    /// The same with full recomputation.
    pub total_full_recompute: u64,
}

pub(crate) fn training_memory(
    s: &ModelSpec,
    precision: TrainingPrecision,
    seq_len: u64,
    micro_batch: u64,
) -> TrainingMemory {
    let n = s.params().total;
    let (weights, master_weights, gradients) = match precision {
        TrainingPrecision::F32 => (4 * n, 0, 4 * n),
        TrainingPrecision::Mixed => (2 * n, 4 * n, 2 * n),
    };
    let optimizer = 8 * n;
    let scale = match precision {
        TrainingPrecision::F32 => 2.0,
        TrainingPrecision::Mixed => 1.0,
    };
    // f64 because a user may ask about very long sequences: s² would overflow u64.
    let (sl, b, h, a, l) = (
        seq_len as f64,
        micro_batch as f64,
        s.d_model as f64,
        s.n_heads as f64,
        s.n_layers as f64,
    );
    let logits = 4.0 * sl * b * s.vocab_size as f64;
    let sbh = sl * b * h;
    let bytes = |per_layer: f64| (scale * l * per_layer + logits).round() as u64;
    let activations = ActivationMemory {
        no_recompute: bytes(sbh * 34.0 + 5.0 * a * sl * sl * b),
        selective_recompute: bytes(34.0 * sbh),
        full_recompute: bytes(2.0 * sbh),
    };
    let state = weights + master_weights + gradients + optimizer;
    TrainingMemory {
        precision,
        seq_len,
        micro_batch,
        weights,
        master_weights,
        gradients,
        optimizer,
        activations,
        total_no_recompute: state.saturating_add(activations.no_recompute),
        total_full_recompute: state.saturating_add(activations.full_recompute),
    }
}
