//! The laws: parametric (Chinchilla, Epoch), Kaplan, data-constrained, inference-aware.

use serde::Serialize;

use crate::optimize::minimize_scalar;
use crate::{positive, Error, Result};

/// `L(N, D) = E + A/N^α + B/D^β` (nats per token; N parameters, D training tokens).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ParametricLaw {
    #[serde(rename = "E")]
    pub e: f64,
    #[serde(rename = "A")]
    pub a: f64,
    #[serde(rename = "B")]
    pub b: f64,
    pub alpha: f64,
    pub beta: f64,
}

/// Hoffmann et al. 2022, approach 3, as printed (eq. 10).
pub const CHINCHILLA: ParametricLaw = ParametricLaw {
    e: 1.69,
    a: 406.4,
    b: 410.7,
    alpha: 0.34,
    beta: 0.28,
};

/// Besiroglu et al. 2024 (Epoch AI), "Chinchilla scaling: a replication attempt", eq. 4.
pub const EPOCH: ParametricLaw = ParametricLaw {
    e: 1.8172,
    a: 482.01,
    b: 2085.43,
    alpha: 0.3478,
    beta: 0.3658,
};

/// Muennighoff et al. 2023's own fit of `E + A/N^α + B/D^β` to their C4 runs, made together
/// with the decay constants of [`MUENNIGHOFF`] (the parametric-fit section of the
/// datablations repository's README gives them as logarithms: A = e^6.255414,
/// B = e^7.3049974, E = e^0.6254804, α = β = 0.3526596).
pub const MUENNIGHOFF_BASE: ParametricLaw = ParametricLaw {
    e: 1.869_143_678_405_485_8,
    a: 520.824_951_659_918_7,
    b: 1_487.716_093_782_861,
    alpha: 0.352_659_6,
    beta: 0.352_659_6,
};

/// One point of a plan: a model size and a token count, their compute and predicted loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Allocation {
    pub params: f64,
    pub tokens: f64,
    /// `6 · params · tokens`.
    pub flops: f64,
    pub loss: f64,
    pub tokens_per_param: f64,
}

impl Allocation {
    pub(crate) fn new(params: f64, tokens: f64, loss: f64) -> Self {
        Self {
            params,
            tokens,
            flops: 6.0 * params * tokens,
            loss,
            tokens_per_param: tokens / params,
        }
    }
}

/// Which law a plan uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LawKind {
    Chinchilla,
    Epoch,
    Kaplan,
    /// Muennighoff et al. 2023's fit: with limited unique data, its own `E, A, B, α, β`
    /// and decay constants ([`MUENNIGHOFF`]).
    Muennighoff,
}

impl LawKind {
    /// The law of the form `E + A/N^α + B/D^β`, if this is one (Kaplan's is not).
    pub fn parametric(self) -> Option<ParametricLaw> {
        match self {
            LawKind::Chinchilla => Some(CHINCHILLA),
            LawKind::Epoch => Some(EPOCH),
            LawKind::Kaplan => None,
            LawKind::Muennighoff => Some(MUENNIGHOFF_BASE),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LawKind::Chinchilla => "chinchilla",
            LawKind::Epoch => "epoch",
            LawKind::Kaplan => "kaplan",
            LawKind::Muennighoff => "muennighoff",
        }
    }

    /// Loss at `params` and `tokens`.
    pub fn loss(self, params: f64, tokens: f64) -> Result<f64> {
        match self {
            LawKind::Chinchilla => CHINCHILLA.loss(params, tokens),
            LawKind::Epoch => EPOCH.loss(params, tokens),
            LawKind::Kaplan => KAPLAN.loss(params, tokens),
            LawKind::Muennighoff => MUENNIGHOFF_BASE.loss(params, tokens),
        }
    }

    /// The compute-optimal allocation of `flops` under `C = 6ND`.
    pub fn optimal(self, flops: f64) -> Result<Allocation> {
        match self {
            LawKind::Chinchilla => CHINCHILLA.optimal(flops),
            LawKind::Epoch => EPOCH.optimal(flops),
            LawKind::Kaplan => KAPLAN.optimal(flops),
            LawKind::Muennighoff => MUENNIGHOFF_BASE.optimal(flops),
        }
    }

    /// The compute-optimal allocation whose model has `params` parameters.
    pub fn optimal_for_params(self, params: f64) -> Result<Allocation> {
        match self {
            LawKind::Chinchilla => CHINCHILLA.optimal_for_params(params),
            LawKind::Epoch => EPOCH.optimal_for_params(params),
            LawKind::Kaplan => KAPLAN.optimal_for_params(params),
            LawKind::Muennighoff => MUENNIGHOFF_BASE.optimal_for_params(params),
        }
    }

    /// The compute-optimal allocation that trains on `tokens` tokens.
    pub fn optimal_for_tokens(self, tokens: f64) -> Result<Allocation> {
        match self {
            LawKind::Chinchilla => CHINCHILLA.optimal_for_tokens(tokens),
            LawKind::Epoch => EPOCH.optimal_for_tokens(tokens),
            LawKind::Kaplan => KAPLAN.optimal_for_tokens(tokens),
            LawKind::Muennighoff => MUENNIGHOFF_BASE.optimal_for_tokens(tokens),
        }
    }
}

impl ParametricLaw {
    pub fn loss(&self, params: f64, tokens: f64) -> Result<f64> {
        let n = positive("params", params)?;
        let d = positive("tokens", tokens)?;
        Ok(self.e + self.a / n.powf(self.alpha) + self.b / d.powf(self.beta))
    }

    /// `G = (αA / βB)^(1/(α+β))`: the constant of the closed-form optimum.
    fn g(&self) -> f64 {
        (self.alpha * self.a / (self.beta * self.b)).powf(1.0 / (self.alpha + self.beta))
    }

    /// Exponent `a` of `N_opt ∝ C^a`: `β/(α+β)`.
    pub fn params_exponent(&self) -> f64 {
        self.beta / (self.alpha + self.beta)
    }

    /// Exponent `b` of `D_opt ∝ C^b`: `α/(α+β)`.
    pub fn tokens_exponent(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// Minimises `L` subject to `6ND = C`: `N = G·(C/6)^a`, `D = (C/6)^b / G`.
    pub fn optimal(&self, flops: f64) -> Result<Allocation> {
        let c6 = positive("compute", flops)? / 6.0;
        let n = self.g() * c6.powf(self.params_exponent());
        let d = c6.powf(self.tokens_exponent()) / self.g();
        Ok(Allocation::new(n, d, self.loss(n, d)?))
    }

    /// The point of the compute-optimal frontier with `params` parameters.
    pub fn optimal_for_params(&self, params: f64) -> Result<Allocation> {
        let n = positive("params", params)?;
        let c6 = (n / self.g()).powf(1.0 / self.params_exponent());
        let d = c6 / n;
        Ok(Allocation::new(n, d, self.loss(n, d)?))
    }

    /// The point of the compute-optimal frontier with `tokens` training tokens.
    pub fn optimal_for_tokens(&self, tokens: f64) -> Result<Allocation> {
        let d = positive("tokens", tokens)?;
        let c6 = (d * self.g()).powf(1.0 / self.tokens_exponent());
        let n = c6 / d;
        Ok(Allocation::new(n, d, self.loss(n, d)?))
    }

    /// The compute-optimal allocation that reaches `target` loss.
    pub fn optimal_for_loss(&self, target: f64) -> Result<Allocation> {
        positive("target loss", target)?;
        if target <= self.e {
            return Err(Error::Unreachable {
                target,
                floor: self.e,
            });
        }
        // The optimal loss falls monotonically with compute: bisect on log C.
        let (mut lo, mut hi) = (0.0_f64, 200.0_f64);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if self.optimal(mid.exp())?.loss > target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.optimal(hi.exp())
    }
}

/// Kaplan et al. 2020 (arXiv 2001.08361): N non-embedding parameters, losses in nats on
/// WebText2 with the GPT-2 tokenizer (not comparable with Chinchilla's MassiveText losses).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KaplanLaw {
    /// `L(N) = (N_c/N)^α_N` (eq. 1.1).
    pub n_c: f64,
    pub alpha_n: f64,
    /// `L(D) = (D_c/D)^α_D` (eq. 1.2).
    pub d_c: f64,
    pub alpha_d: f64,
    /// Constants of the joint `L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D` (eq. 1.5, table 2).
    pub joint_n_c: f64,
    pub joint_alpha_n: f64,
    pub joint_d_c: f64,
    pub joint_alpha_d: f64,
    /// Compute-efficient size `N = N_e · C^0.73` with C in PF-days (figure 14).
    pub optimal_n_e: f64,
    pub optimal_exponent: f64,
}

pub const KAPLAN: KaplanLaw = KaplanLaw {
    n_c: 8.8e13,
    alpha_n: 0.076,
    d_c: 5.4e13,
    alpha_d: 0.095,
    joint_n_c: 6.4e13,
    joint_alpha_n: 0.076,
    joint_d_c: 1.8e13,
    joint_alpha_d: 0.103,
    optimal_n_e: 1.3e9,
    optimal_exponent: 0.73,
};

/// FLOPs in one petaflop/s-day.
const PF_DAY: f64 = 1e15 * 86_400.0;

impl KaplanLaw {
    /// `L(N)`: the loss of a model of `params` trained to convergence.
    pub fn loss_params(&self, params: f64) -> Result<f64> {
        Ok((self.n_c / positive("params", params)?).powf(self.alpha_n))
    }

    /// `L(D)`: the loss of a large model trained with early stopping on `tokens`.
    pub fn loss_tokens(&self, tokens: f64) -> Result<f64> {
        Ok((self.d_c / positive("tokens", tokens)?).powf(self.alpha_d))
    }

    pub fn loss(&self, params: f64, tokens: f64) -> Result<f64> {
        let n = positive("params", params)?;
        let d = positive("tokens", tokens)?;
        let ratio = self.joint_alpha_n / self.joint_alpha_d;
        Ok(((self.joint_n_c / n).powf(ratio) + self.joint_d_c / d).powf(self.joint_alpha_d))
    }

    pub fn optimal(&self, flops: f64) -> Result<Allocation> {
        let c = positive("compute", flops)?;
        let n = self.optimal_n_e * (c / PF_DAY).powf(self.optimal_exponent);
        let d = c / (6.0 * n);
        Ok(Allocation::new(n, d, self.loss(n, d)?))
    }

    pub fn optimal_for_params(&self, params: f64) -> Result<Allocation> {
        let n = positive("params", params)?;
        let c = PF_DAY * (n / self.optimal_n_e).powf(1.0 / self.optimal_exponent);
        self.optimal(c)
    }

    pub fn optimal_for_tokens(&self, tokens: f64) -> Result<Allocation> {
        let d = positive("tokens", tokens)?;
        // D = C/(6N) = C^(1−0.73) / (6 N_e PF_DAY^−0.73): invert for C.
        let k = 6.0 * self.optimal_n_e * PF_DAY.powf(-self.optimal_exponent);
        let c = (d * k).powf(1.0 / (1.0 - self.optimal_exponent));
        self.optimal(c)
    }
}

/// Muennighoff et al. 2023 (arXiv 2305.16264): repeated data is worth less. With `U` unique
/// tokens seen `1 + R` times, the effective data is `D' = U + U·R*·(1 − e^(−R/R*))`; excess
/// parameters decay the same way with `R*_N`. The loss is the base law at `(N', D')`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DataConstrained {
    pub base: ParametricLaw,
    /// `R*_D`: after about this many repeats, more epochs stop helping.
    pub r_star_tokens: f64,
    /// `R*_N`: the same for parameters in excess of the compute-optimal size for `U`.
    pub r_star_params: f64,
}

/// The paper's decay constants over Chinchilla's law: `R*` fitted with another `E, A, B, α,
/// β` (those of [`MUENNIGHOFF`]) and borrowed here, as the paper's text quotes them rounded.
/// What `--law chinchilla --unique-tokens` uses; [`MUENNIGHOFF`] is the consistent set.
pub const DATA_CONSTRAINED: DataConstrained = DataConstrained {
    base: CHINCHILLA,
    r_star_tokens: 15.39,
    r_star_params: 5.31,
};

/// Muennighoff et al. 2023 as fitted: [`MUENNIGHOFF_BASE`] with its own `R*_D` and `R*_N`
/// (datablations README).
pub const MUENNIGHOFF: DataConstrained = DataConstrained {
    base: MUENNIGHOFF_BASE,
    r_star_tokens: 15.387_756,
    r_star_params: 5.309_743,
};

/// The effect of unique data on a plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DataConstrainedPoint {
    pub unique_tokens: f64,
    /// Passes over the unique data: `D / U`.
    pub epochs: f64,
    pub effective_tokens: f64,
    pub effective_params: f64,
    pub loss: f64,
}

impl DataConstrained {
    /// `D'` for `tokens` drawn from `unique` unique tokens.
    pub fn effective_tokens(&self, tokens: f64, unique: f64) -> Result<f64> {
        let d = positive("tokens", tokens)?;
        let u = positive("unique tokens", unique)?;
        if d <= u {
            return Ok(d);
        }
        let repeats = d / u - 1.0;
        Ok(u + u * self.r_star_tokens * (1.0 - (-repeats / self.r_star_tokens).exp()))
    }

    /// `N'` for a model of `params` trained on `unique` unique tokens: parameters beyond
    /// `U_N`, the compute-optimal size for `U`, are worth less.
    pub fn effective_params(&self, params: f64, unique: f64) -> Result<f64> {
        let n = positive("params", params)?;
        let u_n = self.base.optimal_for_tokens(unique)?.params.min(n);
        let repeats = n / u_n - 1.0;
        Ok(u_n + u_n * self.r_star_params * (1.0 - (-repeats / self.r_star_params).exp()))
    }

    pub fn point(&self, params: f64, tokens: f64, unique: f64) -> Result<DataConstrainedPoint> {
        let effective_tokens = self.effective_tokens(tokens, unique)?;
        let effective_params = self.effective_params(params, unique)?;
        Ok(DataConstrainedPoint {
            unique_tokens: unique,
            epochs: tokens / unique,
            effective_tokens,
            effective_params,
            loss: self.base.loss(effective_params, effective_tokens)?,
        })
    }

    /// The allocation of `flops` that minimises the data-constrained loss with `unique`
    /// unique tokens (solved numerically over log N); `loss` is the data-constrained loss.
    pub fn optimal(&self, flops: f64, unique: f64) -> Result<Allocation> {
        let c = positive("compute", flops)?;
        positive("unique tokens", unique)?;
        let objective = |log_n: f64| {
            let n = log_n.exp();
            self.point(n, c / (6.0 * n), unique)
                .map(|p| p.loss)
                .unwrap_or(f64::INFINITY)
        };
        // Between 10 parameters and a model trained on 10 tokens.
        let log_n = minimize_scalar(objective, 10f64.ln(), (c / 60.0).ln().max(3.0), 400);
        let n = log_n.exp();
        let d = c / (6.0 * n);
        Ok(Allocation::new(n, d, self.point(n, d, unique)?.loss))
    }
}

/// The least-total-compute model that reaches a target loss when it will also serve
/// `inference_tokens` tokens (Sardana et al. 2023, arXiv 2401.00448).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InferenceOptimum {
    pub target_loss: f64,
    pub inference_tokens: f64,
    pub params: f64,
    pub train_tokens: f64,
    /// `6 · N · D_train`.
    pub train_flops: f64,
    /// `2 · N · D_inference`.
    pub inference_flops: f64,
    pub total_flops: f64,
    /// The compute-optimal (training-only) model at the same loss, for comparison.
    pub chinchilla: Allocation,
    /// Its training + inference compute.
    pub chinchilla_total_flops: f64,
}

/// Minimises `6·N·D_train + 2·N·D_inf` subject to `L(N, D_train) = target`.
pub fn inference_optimal(
    law: &ParametricLaw,
    target_loss: f64,
    inference_tokens: f64,
) -> Result<InferenceOptimum> {
    let target = positive("target loss", target_loss)?;
    if !(inference_tokens.is_finite() && inference_tokens >= 0.0) {
        return Err(Error::OutOfRange {
            name: "inference tokens",
            value: inference_tokens,
            expected: "a finite number ≥ 0",
        });
    }
    if target <= law.e {
        return Err(Error::Unreachable {
            target,
            floor: law.e,
        });
    }
    // For a given N the loss constraint fixes D_train; N must exceed the size whose
    // parameter term alone uses up the whole gap to E.
    let tokens_for = |n: f64| {
        let gap = target - law.e - law.a / n.powf(law.alpha);
        if gap > 0.0 {
            (law.b / gap).powf(1.0 / law.beta)
        } else {
            f64::INFINITY
        }
    };
    let n_min = (law.a / (target - law.e)).powf(1.0 / law.alpha);
    let total = |log_n: f64| {
        let n = log_n.exp();
        6.0 * n * tokens_for(n) + 2.0 * n * inference_tokens
    };
    let log_n = minimize_scalar(total, n_min.ln() + 1e-9, n_min.ln() + 40.0, 800);
    let params = log_n.exp();
    let train_tokens = tokens_for(params);
    let chinchilla = law.optimal_for_loss(target)?;
    Ok(InferenceOptimum {
        target_loss: target,
        inference_tokens,
        params,
        train_tokens,
        train_flops: 6.0 * params * train_tokens,
        inference_flops: 2.0 * params * inference_tokens,
        total_flops: 6.0 * params * train_tokens + 2.0 * params * inference_tokens,
        chinchilla,
        chinchilla_total_flops: chinchilla.flops + 2.0 * chinchilla.params * inference_tokens,
    })
}
