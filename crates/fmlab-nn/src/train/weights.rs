//! The parameter arena: every tensor of a trainable decoder in one contiguous buffer, laid
//! out per `plan::tensors`, named as GGUF names them; its initialisation.

use std::collections::HashMap;

use fmlab_spec::ModelSpec;

use super::float::Float;
use super::rng::Normal;
use crate::plan::{self, LinearId, NormId, Plan, TensorDesc};
use crate::{Error, Result};

/// One tensor of [`Weights`], by name.
#[derive(Debug)]
pub struct Named<'a, T> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: &'a mut [T],
    pub decay: bool,
}

/// All weights of a trainable decoder in one contiguous arena (as llm.c keeps them), the
/// tensors of [`plan::tensors`] laid out one after another. Gradients are a second
/// `Weights` of the same layout, so that zeroing, clipping and the optimizer each run as
/// one pass over one buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights<T> {
    data: Vec<T>,
    tensors: Vec<TensorDesc>,
    offsets: Vec<usize>,
    index: HashMap<String, usize>,
}

impl<T: Float> Weights<T> {
    /// Zeros shaped for `spec` (an error if the decoder's plan cannot be built for it).
    pub fn zeros(spec: &ModelSpec) -> Result<Self> {
        check_spec(spec)?;
        Self::from_descs(plan::tensors(spec))
    }

    /// Zeros for the given tensors, laid out in their order.
    pub fn from_descs(tensors: Vec<TensorDesc>) -> Result<Self> {
        let mut offsets = Vec::with_capacity(tensors.len() + 1);
        let mut total = 0usize;
        for t in &tensors {
            offsets.push(total);
            total = total.checked_add(t.len()).ok_or_else(|| {
                Error::Unsupported("the model's parameter count overflows".into())
            })?;
        }
        offsets.push(total);
        let index = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            data: vec![T::zero(); total],
            tensors,
            offsets,
            index,
        })
    }

    /// The tensors' names, shapes and decay flags, in arena order.
    pub fn descs(&self) -> &[TensorDesc] {
        &self.tensors
    }

    /// The whole arena.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Tensor `i` (in [`Weights::descs`] order).
    pub fn tensor(&self, i: usize) -> &[T] {
        &self.data[self.offsets[i]..self.offsets[i + 1]]
    }

    pub fn tensor_mut(&mut self, i: usize) -> &mut [T] {
        &mut self.data[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The index of the tensor called `name` (a GGUF name: `blk.0.attn_q.weight`).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&[T]> {
        self.find(name).map(|i| self.tensor(i))
    }

    /// Two different tensors, mutably (a weight and its bias).
    pub(super) fn pair_mut(&mut self, a: usize, b: Option<usize>) -> (&mut [T], Option<&mut [T]>) {
        let (ra, rb) = (
            self.offsets[a]..self.offsets[a + 1],
            b.map(|b| self.offsets[b]..self.offsets[b + 1]),
        );
        match rb {
            None => (&mut self.data[ra], None),
            Some(rb) if rb.start >= ra.end => {
                let (lo, hi) = self.data.split_at_mut(rb.start);
                (&mut lo[ra], Some(&mut hi[..rb.len()]))
            }
            Some(rb) => {
                let (lo, hi) = self.data.split_at_mut(ra.start);
                (&mut hi[..ra.len()], Some(&mut lo[rb]))
            }
        }
    }

    /// Every tensor, in a fixed order, with whether weight decay applies to it (matrices
    /// yes; norms, biases and embeddings no).
    pub fn tensors_mut(&mut self) -> Vec<(&mut [T], bool)> {
        // Per optimizer step: no names built.
        let mut rest = self.data.as_mut_slice();
        let mut out = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(t.len());
            rest = tail;
            out.push((head, t.decay));
        }
        out
    }

    /// Every tensor with its GGUF name (`token_embd.weight`, `blk.0.attn_q.weight`, …),
    /// its shape (`[out, in]` for matrices, row-major) and its decay flag, in arena order:
    /// what checkpoints and exports write.
    pub fn named_mut(&mut self) -> Vec<Named<'_, T>> {
        let descs = self.tensors.clone();
        self.tensors_mut()
            .into_iter()
            .zip(descs)
            .map(|((data, decay), t)| Named {
                name: t.name,
                shape: t.shape,
                data,
                decay,
            })
            .collect()
    }

    /// The weight (and bias) indices of a norm of the plan.
    pub(super) fn norm_ids(&self, id: NormId) -> Result<(usize, Option<usize>)> {
        let name = id.name();
        Ok((
            self.need(&format!("{name}.weight"))?,
            self.find(&format!("{name}.bias")),
        ))
    }

    /// The weight (and bias) indices of a linear map of the plan.
    pub(super) fn linear_ids(&self, id: LinearId) -> Result<(usize, Option<usize>)> {
        let name = match id {
            LinearId::Head if self.find("output.weight").is_none() => id.name(true),
            _ => id.name(false),
        };
        Ok((
            self.need(&format!("{name}.weight"))?,
            self.find(&format!("{name}.bias")),
        ))
    }

    pub(super) fn need(&self, name: &str) -> Result<usize> {
        self.find(name)
            .ok_or_else(|| Error::MissingTensor(name.to_string()))
    }

    /// These weights with a scalar head added (`score.weight`, normal with std
    /// 1/√(d_model + 1), as TRL initialises a reward model's): a reward model that starts
    /// from this model. An existing score head is kept.
    pub fn with_score_head(&self, spec: &ModelSpec, seed: u64) -> Result<Self> {
        if self.find("score.weight").is_some() {
            return Ok(self.clone());
        }
        let mut out = Self::from_descs(plan::tensors_with(spec, plan::Head::Score))?;
        for (i, t) in self.tensors.iter().enumerate() {
            let j = out.need(&t.name)?;
            out.tensor_mut(j).copy_from_slice(self.tensor(i));
        }
        let d = spec.d_model as f64;
        let mut rng = Normal::new(seed);
        let j = out.need("score.weight")?;
        out.tensor_mut(j)
            .iter_mut()
            .for_each(|x| *x = T::from_f64(rng.next() / (d + 1.0).sqrt()));
        Ok(out)
    }

    /// GPT-2/nanoGPT initialisation: normal(0, 0.02) for matrices and embeddings (learned
    /// positions 0.01), the residual projections (attention output, FFN down) scaled by
    /// 1/√(2L), norm weights at 1, biases at 0.
    pub fn init(spec: &ModelSpec, seed: u64) -> Result<Self> {
        let mut w = Self::zeros(spec)?;
        let mut rng = Normal::new(seed);
        let resid = 0.02 / (2.0 * spec.n_layers as f64).sqrt();
        for t in w.named_mut() {
            let n = &t.name;
            let std = if n == "position_embd.weight" {
                0.01
            } else if n.ends_with("attn_output.weight") || n.ends_with("ffn_down.weight") {
                resid
            } else if t.shape.len() == 2 {
                0.02
            } else {
                if n.ends_with("norm.weight") {
                    t.data.iter_mut().for_each(|x| *x = T::one());
                }
                continue;
            };
            t.data
                .iter_mut()
                .for_each(|x| *x = T::from_f64(rng.next() * std));
        }
        Ok(w)
    }
}

/// Whether the decoder's plan can be built for `spec` (every spec the inference decoder
/// runs also trains).
pub fn check_spec(spec: &ModelSpec) -> Result<()> {
    Plan::new(spec).map(|_| ())
}
