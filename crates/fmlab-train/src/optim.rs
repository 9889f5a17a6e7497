//! AdamW and gradient clipping.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    /// nanoGPT's: β = (0.9, 0.95), ε = 1e-8, weight decay 0.1.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// AdamW over a list of tensors (flat f32 slices), each with its moments and a decay flag.
/// The state is plain vectors so that checkpoints can save and restore it exactly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AdamW {
    pub config: AdamWConfig,
    /// Steps taken (the bias corrections use it).
    pub step: u64,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    /// Per tensor: whether weight decay applies (not to norms, biases, embeddings).
    pub decay: Vec<bool>,
}

impl AdamW {
    /// State for tensors of the given sizes.
    pub fn new(config: AdamWConfig, sizes: &[usize], decay: &[bool]) -> Result<Self> {
        if sizes.len() != decay.len() {
            return Err(Error::Optimizer(format!(
                "{} tensors but {} decay flags",
                sizes.len(),
                decay.len()
            )));
        }
        let ok = |x: f32, lo: f32, hi: f32| x.is_finite() && x >= lo && x < hi;
        if !ok(config.beta1, 0.0, 1.0) || !ok(config.beta2, 0.0, 1.0) {
            return Err(Error::Optimizer(format!(
                "betas must be in [0, 1), got ({}, {})",
                config.beta1, config.beta2
            )));
        }
        if !(config.eps.is_finite() && config.eps > 0.0 && ok(config.weight_decay, 0.0, 10.0)) {
            return Err(Error::Optimizer(format!(
                "eps must be > 0 and weight decay in [0, 10): {} / {}",
                config.eps, config.weight_decay
            )));
        }
        Ok(Self {
            config,
            step: 0,
            m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            decay: decay.to_vec(),
        })
    }

    /// One step at learning rate `lr`: `params[i] -= …` from `grads[i]`. PyTorch's order of
    /// operations: decay (p ← p·(1 − lr·λ)), then the moments, then
    /// p ← p − (lr / bc₁) · m / (√v / √bc₂ + ε), with bcₖ = 1 − βₖᵗ.
    pub fn step(&mut self, lr: f32, params: &mut [&mut [f32]], grads: &[&[f32]]) -> Result<()> {
        if params.len() != self.m.len() || grads.len() != self.m.len() {
            return Err(Error::Optimizer(format!(
                "{} tensors in the state, {} params, {} grads",
                self.m.len(),
                params.len(),
                grads.len()
            )));
        }
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            if p.len() != self.m[i].len() || g.len() != p.len() {
                return Err(Error::Optimizer(format!(
                    "tensor {i}: {} values, {} grads, state of {}",
                    p.len(),
                    g.len(),
                    self.m[i].len()
                )));
            }
        }
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let step_size = lr / bc1;
        let bc2_sqrt = bc2.sqrt();
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            let decay = if self.decay[i] {
                1.0 - lr * c.weight_decay
            } else {
                1.0
            };
            // Element-wise, so chunks in parallel give the same bits as one loop.
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(self.m[i].par_chunks_mut(CHUNK))
                .zip(self.v[i].par_chunks_mut(CHUNK))
                .for_each(|(((p, g), m), v)| {
                    for k in 0..p.len() {
                        let gk = g[k];
                        m[k] = c.beta1 * m[k] + (1.0 - c.beta1) * gk;
                        v[k] = c.beta2 * v[k] + (1.0 - c.beta2) * gk * gk;
                        let denom = v[k].sqrt() / bc2_sqrt + c.eps;
                        p[k] = p[k] * decay - step_size * m[k] / denom;
                    }
                });
        }
        Ok(())
    }
}

/// Scales all gradients so that their global L2 norm is at most `max_norm` (as
/// `torch.nn.utils.clip_grad_norm_`: by `max_norm / (norm + 1e-6)` when that is below 1).
/// Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [&mut [f32]], max_norm: f32) -> f32 {
    // Partial sums over fixed chunks, added in order: the same bits whatever the thread
    // count or scheduling (exact resumption depends on it).
    let mut total = 0f64;
    for g in grads.iter() {
        let partial: Vec<f64> = g
            .par_chunks(CHUNK)
            .map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum())
            .collect();
        total += partial.iter().sum::<f64>();
    }
    let norm = total.sqrt() as f32;
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for g in grads.iter_mut() {
            g.par_chunks_mut(CHUNK)
                .for_each(|c| c.iter_mut().for_each(|x| *x *= coef));
        }
    }
    norm
}

/// Elements per parallel task in the optimizer and clipping.
const CHUNK: usize = 1 << 14;

#[cfg(test)]
mod tests {
    use super::*;

    /// Three steps by hand in f64 with PyTorch's formula.
    #[test]
    fn adamw_matches_the_pytorch_update() {
        let config = AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut opt = AdamW::new(config, &[2, 1], &[true, false]).unwrap();
        let mut w = vec![0.5f32, -1.0];
        let mut b = vec![0.25f32];
        let grads = [[0.1f32, -0.2], [0.3f32, 0.0]];
        let (mut rw, mut rb) = (vec![0.5f64, -1.0], vec![0.25f64]);
        let (mut m, mut v) = (vec![0f64; 3], vec![0f64; 3]);
        let lr = 0.01f64;
        for t in 1..=3 {
            let gw = [grads[0][0] as f64 * t as f64, grads[0][1] as f64];
            let gb = [grads[1][0] as f64 / t as f64];
            let gw32 = [gw[0] as f32, gw[1] as f32];
            let gb32 = [gb[0] as f32];
            opt.step(lr as f32, &mut [&mut w, &mut b], &[&gw32, &gb32])
                .unwrap();
            let bc1 = 1.0 - 0.9f64.powi(t);
            let bc2 = 1.0 - 0.95f64.powi(t);
            let all_g = [gw[0], gw[1], gb[0]];
            for k in 0..3 {
                m[k] = 0.9 * m[k] + 0.1 * all_g[k];
                v[k] = 0.95 * v[k] + 0.05 * all_g[k] * all_g[k];
                let upd = lr / bc1 * m[k] / (v[k].sqrt() / bc2.sqrt() + 1e-8);
                if k < 2 {
                    rw[k] = rw[k] * (1.0 - lr * 0.1) - upd;
                } else {
                    rb[0] -= upd;
                }
            }
        }
        for (a, b) in w.iter().zip(&rw) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert!((b[0] as f64 - rb[0]).abs() < 1e-6, "{} vs {}", b[0], rb[0]);
        assert_eq!(opt.step, 3);
    }

    #[test]
    fn bad_shapes_and_settings() {
        assert!(AdamW::new(AdamWConfig::default(), &[2], &[true, false]).is_err());
        let bad = AdamWConfig {
            beta1: 1.0,
            ..AdamWConfig::default()
        };
        assert!(AdamW::new(bad, &[2], &[true]).is_err());
        let mut opt = AdamW::new(AdamWConfig::default(), &[2], &[true]).unwrap();
        let mut p = vec![0f32; 3];
        assert!(opt.step(0.1, &mut [&mut p], &[&[0.0, 0.0, 0.0]]).is_err());
    }

    #[test]
    fn clipping_scales_to_the_norm() {
        let mut a = vec![3.0f32, 0.0];
        let mut b = vec![4.0f32];
        let norm = clip_grad_norm(&mut [&mut a, &mut b], 1.0);
        assert!((norm - 5.0).abs() < 1e-6);
        let after = (a[0] * a[0] + b[0] * b[0]).sqrt();
        assert!((after - 1.0).abs() < 1e-5);
        let mut c = vec![0.3f32];
        clip_grad_norm(&mut [&mut c], 1.0);
        assert_eq!(c[0], 0.3);
    }
}
