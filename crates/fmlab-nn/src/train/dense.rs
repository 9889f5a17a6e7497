//! Trained f32 weights to and from the inference model (`Transformer`): loading a GGUF
//! model to finetune, and running trained weights through the inference decoder.

use fmlab_spec::ModelSpec;

use super::weights::Weights;
use crate::{Error, Result};

impl Weights<f32> {
    /// Dense trainable weights of a loaded model (a GGUF file's, dequantised): the start
    /// of finetuning.
    pub fn from_transformer(model: &crate::Transformer) -> Result<Self> {
        let mut w = Self::zeros(&model.spec)?;
        let mut found = 0;
        for (name, data) in model.dense_tensors()? {
            let Some(i) = w.find(&name) else {
                return Err(Error::Unsupported(format!(
                    "the model has a tensor {name} its spec does not describe"
                )));
            };
            let t = w.tensor_mut(i);
            if t.len() != data.len() {
                return Err(Error::Shape {
                    tensor: name,
                    expected: vec![t.len() as u64],
                    found: vec![data.len() as u64],
                });
            }
            t.copy_from_slice(&data);
            found += 1;
        }
        if found != w.descs().len() {
            return Err(Error::Unsupported(format!(
                "the model provides {found} of the {} tensors its spec describes",
                w.descs().len()
            )));
        }
        Ok(w)
    }

    /// The inference model over these weights (dense matrices), built by the same code that
    /// loads GGUF files: what `fmlab generate` and export run once training is done.
    pub fn to_transformer(&self, spec: &ModelSpec) -> Result<crate::Transformer> {
        crate::load::build(spec.clone(), &Dense { weights: self })
    }
}

/// Trained weights as a tensor source for the inference model.
struct Dense<'a> {
    weights: &'a Weights<f32>,
}

impl Dense<'_> {
    fn get(&self, name: &str, len: u64) -> Result<&[f32]> {
        let t = self
            .weights
            .get(name)
            .ok_or_else(|| Error::MissingTensor(name.into()))?;
        if t.len() as u64 != len {
            return Err(Error::Shape {
                tensor: name.into(),
                expected: vec![len],
                found: vec![t.len() as u64],
            });
        }
        Ok(t)
    }
}

impl crate::load::Source for Dense<'_> {
    fn matrix(&self, name: &str, rows: u64, cols: u64) -> Result<fmlab_kernels::Matrix> {
        let data = self.get(name, rows * cols)?.to_vec();
        Ok(fmlab_kernels::Matrix::dense(
            rows as usize,
            cols as usize,
            data,
        )?)
    }

    fn vector(&self, name: &str, len: u64) -> Result<Vec<f32>> {
        Ok(self.get(name, len)?.to_vec())
    }

    fn has(&self, name: &str) -> bool {
        self.weights.find(name).is_some()
    }
}
