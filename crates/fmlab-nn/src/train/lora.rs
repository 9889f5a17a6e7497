//! LoRA adapters: their tensors (an arena of their own), initialisation, and merging into
//! the base weights.

use fmlab_spec::{FfnKind, ModelSpec};

use super::float::Float;
use super::layers::matmul;
use super::weights::{check_spec, Weights};
use crate::plan::{self, LinearId, TensorDesc};
use crate::{Error, Result};

/// The linear maps LoRA can adapt, by the GGUF suffix of their tensors (Hugging Face's
/// names are accepted too).
pub const LORA_TARGETS: [(&str, &str); 7] = [
    ("attn_q", "q_proj"),
    ("attn_k", "k_proj"),
    ("attn_v", "v_proj"),
    ("attn_output", "o_proj"),
    ("ffn_gate", "gate_proj"),
    ("ffn_up", "up_proj"),
    ("ffn_down", "down_proj"),
];

/// LoRA adapters (Hu et al. 2021): for each adapted linear map W (`out × in`), matrices
/// A (`rank × in`) and B (`out × rank`) such that the layer computes x·(W + s·B·A)ᵀ with
/// s = α / rank. B starts at zero, so an adapted model starts equal to its base. Tensors are
/// named after the map's: `blk.3.attn_q.lora_a`, `blk.3.attn_q.lora_b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Adapters<T> {
    pub weights: Weights<T>,
    pub rank: usize,
    pub alpha: f64,
    /// The adapted maps (GGUF suffixes, `attn_q` …), in [`LORA_TARGETS`] order.
    pub targets: Vec<String>,
}

impl<T: Float> Adapters<T> {
    /// Zero adapters of `rank` on `targets` (GGUF or Hugging Face module names) of every
    /// layer of `spec`.
    pub fn zeros(spec: &ModelSpec, rank: usize, alpha: f64, targets: &[String]) -> Result<Self> {
        check_spec(spec)?;
        if rank == 0 || !(alpha.is_finite() && alpha > 0.0) {
            return Err(Error::Unsupported(format!(
                "LoRA needs a rank ≥ 1 and α > 0 (got rank {rank}, α {alpha})"
            )));
        }
        let mut chosen = Vec::new();
        for t in targets {
            let Some((gguf, _)) = LORA_TARGETS.iter().find(|(g, h)| t == g || t == h) else {
                return Err(Error::Unsupported(format!(
                    "unknown LoRA target {t:?} (known: {})",
                    LORA_TARGETS
                        .iter()
                        .map(|(g, h)| format!("{g}/{h}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            if *gguf == "ffn_gate" && spec.ffn_kind == FfnKind::GeluMlp {
                return Err(Error::Unsupported(
                    "ffn_gate: this model's FFN has no gate".into(),
                ));
            }
            chosen.push(gguf.to_string());
        }
        if chosen.is_empty() {
            return Err(Error::Unsupported("LoRA needs at least one target".into()));
        }
        let targets: Vec<String> = LORA_TARGETS
            .iter()
            .map(|(g, _)| g.to_string())
            .filter(|g| chosen.contains(g))
            .collect();
        let mut descs = Vec::new();
        for t in plan::tensors(spec) {
            let Some(stem) = t.name.strip_suffix(".weight") else {
                continue;
            };
            let adapted = t.shape.len() == 2
                && stem.starts_with("blk.")
                && targets.iter().any(|g| stem.ends_with(&format!(".{g}")));
            if adapted {
                let (out, inp) = (t.shape[0], t.shape[1]);
                descs.push(TensorDesc {
                    name: format!("{stem}.lora_a"),
                    shape: vec![rank, inp],
                    decay: false,
                });
                descs.push(TensorDesc {
                    name: format!("{stem}.lora_b"),
                    shape: vec![out, rank],
                    decay: false,
                });
            }
        }
        Ok(Self {
            weights: Weights::from_descs(descs)?,
            rank,
            alpha,
            targets,
        })
    }

    /// Adapters initialised as PEFT does: A uniform in ±1/√in (Kaiming's bound for
    /// a = √5), B zero.
    pub fn init(
        spec: &ModelSpec,
        rank: usize,
        alpha: f64,
        targets: &[String],
        seed: u64,
    ) -> Result<Self> {
        let mut a = Self::zeros(spec, rank, alpha, targets)?;
        let mut rng = fmlab_sample::Rng::new(seed);
        for t in a.weights.named_mut() {
            if t.name.ends_with(".lora_a") {
                let bound = 1.0 / (t.shape[1] as f64).sqrt();
                t.data
                    .iter_mut()
                    .for_each(|x| *x = T::from_f64((2.0 * rng.next_f64() - 1.0) * bound));
            }
        }
        Ok(a)
    }

    /// s = α / rank.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// The A and B indices of the adapter on `id`, if it has one.
    pub(super) fn ids(&self, id: LinearId) -> Option<(usize, usize)> {
        if id == LinearId::Head {
            return None;
        }
        let stem = id.name(false);
        Some((
            self.weights.find(&format!("{stem}.lora_a"))?,
            self.weights.find(&format!("{stem}.lora_b"))?,
        ))
    }

    /// Whether these adapters fit `spec`'s maps.
    pub(super) fn check(&self, spec: &ModelSpec) -> Result<()> {
        let fresh = Self::zeros(spec, self.rank, self.alpha, &self.targets)?;
        if fresh.weights.descs() == self.weights.descs() {
            Ok(())
        } else {
            Err(Error::Unsupported(
                "the LoRA adapters were made for a different model".into(),
            ))
        }
    }

    /// W ← W + s·B·A for every adapted map: the merged model computes what the adapted one
    /// does.
    pub fn merge_into(&self, spec: &ModelSpec, w: &mut Weights<T>) -> Result<()> {
        self.check(spec)?;
        let s = T::from_f64(self.scale());
        let r = self.rank;
        for t in self
            .weights
            .descs()
            .iter()
            .filter(|t| t.name.ends_with(".lora_a"))
        {
            let stem = t.name.trim_end_matches(".lora_a");
            let a = self.weights.get(&t.name).unwrap_or(&[]);
            let b = self.weights.get(&format!("{stem}.lora_b")).unwrap_or(&[]);
            let wi = w.need(&format!("{stem}.weight"))?;
            let inp = t.shape[1];
            let out = b.len() / r;
            // B·A through the same product as training: (`out × r`)·(`r × in`) is
            // matmul(B, Aᵀ) with Aᵀ as the `in × r` weight.
            let mut at = vec![T::zero(); inp * r];
            for k in 0..r {
                for j in 0..inp {
                    at[j * r + k] = a[k * inp + j];
                }
            }
            let ba = matmul(b, &at, out, r, inp);
            w.tensor_mut(wi)
                .iter_mut()
                .zip(ba.iter())
                .for_each(|(x, &d)| *x += s * d);
        }
        Ok(())
    }
}
