//! Fitting `L(N, D) = E + A/N^α + B/D^β` to a user's runs, as Hoffmann et al. did for
//! approach 3: minimise the Huber loss (δ = 10⁻³) between the predicted and observed
//! log-loss, with L-BFGS, from a grid of initialisations, and keep the best.
//!
//! The parameters are `(a, b, e, α, β)` with `A = eᵃ`, `B = eᵇ`, `E = eᵉ`, so that the
//! prediction is a log-sum-exp: `log L̂ = LSE(a − α log N, b − β log D, e)`.

use serde::Serialize;

use crate::optimize::lbfgs;
use crate::{Error, ParametricLaw, Result};

/// One training run: model size, tokens seen and final loss (nats per token).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Run {
    pub params: f64,
    pub tokens: f64,
    pub loss: f64,
}

/// Settings of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Huber threshold on log-loss residuals.
    pub delta: f64,
    pub alphas: Vec<f64>,
    pub betas: Vec<f64>,
    /// Starting values of `e = log E`.
    pub es: Vec<f64>,
    /// Starting values of `a = log A` and `b = log B`.
    pub log_as: Vec<f64>,
    pub log_bs: Vec<f64>,
    pub max_iterations: usize,
}

impl Default for FitOptions {
    /// Chinchilla's grid: α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1}, a, b ∈ {0, 5, …, 25}.
    fn default() -> Self {
        let range = |start: f64, step: f64, count: usize| -> Vec<f64> {
            (0..count).map(|i| start + step * i as f64).collect()
        };
        Self {
            delta: 1e-3,
            alphas: range(0.0, 0.5, 5),
            betas: range(0.0, 0.5, 5),
            es: range(-1.0, 0.5, 5),
            log_as: range(0.0, 5.0, 6),
            log_bs: range(0.0, 5.0, 6),
            max_iterations: 500,
        }
    }
}

/// The fitted law and what it implies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FitResult {
    #[serde(flatten)]
    pub law: ParametricLaw,
    /// `N_opt ∝ C^a` with `a = β/(α+β)`.
    pub a: f64,
    /// `D_opt ∝ C^b` with `b = α/(α+β)`.
    pub b: f64,
    /// The Huber objective at the optimum (summed over runs).
    pub objective: f64,
    pub runs: usize,
    pub starts: usize,
}

impl FitResult {
    /// The fitted law's compute-optimal `(C, loss)` at `steps + 1` budgets evenly spaced in
    /// log compute, from half the smallest to twice the largest `C = 6ND` of `runs`: the
    /// frontier to draw over the runs.
    pub fn frontier(&self, runs: &[Run], steps: usize) -> Vec<(f64, f64)> {
        let (lo, hi) = runs
            .iter()
            .map(|r| 6.0 * r.params * r.tokens)
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), c| {
                (lo.min(c), hi.max(c))
            });
        (0..=steps)
            .filter_map(|i| {
                let c = (lo / 2.0) * (hi * 2.0 / (lo / 2.0)).powf(i as f64 / steps as f64);
                self.law.optimal(c).ok().map(|a| (c, a.loss))
            })
            .collect()
    }
}

/// Fits the parametric law to `runs`.
pub fn fit(runs: &[Run], options: &FitOptions) -> Result<FitResult> {
    let mut usable = Vec::with_capacity(runs.len());
    for (index, r) in runs.iter().enumerate() {
        if ![r.params, r.tokens, r.loss]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
        {
            return Err(Error::InvalidRun {
                index,
                params: r.params,
                tokens: r.tokens,
                loss: r.loss,
            });
        }
        usable.push((r.params.ln(), r.tokens.ln(), r.loss.ln()));
    }
    // Five free constants need at least five observations.
    if usable.len() < 5 {
        return Err(Error::TooFewRuns {
            needed: 5,
            got: usable.len(),
        });
    }
    crate::positive("huber delta", options.delta)?;
    let delta = options.delta;
    let mut objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
        let (a, b, e, alpha, beta) = (theta[0], theta[1], theta[2], theta[3], theta[4]);
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut total = 0.0;
        for &(log_n, log_d, log_l) in &usable {
            let t = [a - alpha * log_n, b - beta * log_d, e];
            let m = t[0].max(t[1]).max(t[2]);
            let w = [(t[0] - m).exp(), (t[1] - m).exp(), (t[2] - m).exp()];
            let sum = w[0] + w[1] + w[2];
            let predicted = m + sum.ln();
            let r = predicted - log_l;
            let (h, dh) = if r.abs() <= delta {
                (0.5 * r * r, r)
            } else {
                (delta * (r.abs() - 0.5 * delta), delta * r.signum())
            };
            total += h;
            let p = [w[0] / sum, w[1] / sum, w[2] / sum];
            grad[0] += dh * p[0];
            grad[1] += dh * p[1];
            grad[2] += dh * p[2];
            grad[3] -= dh * p[0] * log_n;
            grad[4] -= dh * p[1] * log_d;
        }
        total
    };
    let mut best: Option<(Vec<f64>, f64)> = None;
    let mut starts = 0;
    for &alpha in &options.alphas {
        for &beta in &options.betas {
            for &e in &options.es {
                for &a in &options.log_as {
                    for &b in &options.log_bs {
                        starts += 1;
                        let m = lbfgs(
                            &mut objective,
                            &[a, b, e, alpha, beta],
                            options.max_iterations,
                        );
                        if m.value.is_finite() && best.as_ref().is_none_or(|(_, v)| m.value < *v) {
                            best = Some((m.x, m.value));
                        }
                    }
                }
            }
        }
    }
    let Some((theta, value)) = best else {
        return Err(Error::TooFewRuns { needed: 5, got: 0 });
    };
    let law = ParametricLaw {
        e: theta[2].exp(),
        a: theta[0].exp(),
        b: theta[1].exp(),
        alpha: theta[3],
        beta: theta[4],
    };
    Ok(FitResult {
        law,
        a: law.params_exponent(),
        b: law.tokens_exponent(),
        objective: value,
        runs: usable.len(),
        starts,
    })
}
