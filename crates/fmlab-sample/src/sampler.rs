//! The sampler: runs the configured chain over one step's logits and picks a token.

use crate::candidates::Candidates;
use crate::config::{SamplerConfig, Stage};
use crate::processors::{self, Mirostat};
use crate::rng::Rng;
use crate::Result;

/// Which tokens a constraint (a grammar) allows at this step.
pub trait TokenMask {
    fn allows(&self, id: u32) -> bool;
}

impl<F: Fn(u32) -> bool> TokenMask for F {
    fn allows(&self, id: u32) -> bool {
        self(id)
    }
}

/// A token and its log-probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenLogprob {
    pub id: u32,
    pub logprob: f32,
}

/// What one step picked, with log-probabilities when asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    pub token: u32,
    /// Log-probability of the token under the model's own distribution (softmax of the raw
    /// logits), when logprobs were asked for.
    pub logprob: Option<f32>,
    /// Log-probability under the processed distribution the token was drawn from (after
    /// penalties, truncation and temperature; 0 for greedy picks).
    pub logprob_sampled: f32,
    /// The best alternatives under the raw distribution, most likely first.
    pub top: Vec<TokenLogprob>,
    /// The best alternatives under the processed distribution.
    pub top_sampled: Vec<TokenLogprob>,
}

/// A configured chain with its own random stream (one per sequence).
#[derive(Debug, Clone)]
pub struct Sampler {
    config: SamplerConfig,
    stages: Vec<Stage>,
    rng: Rng,
    mirostat: Option<Mirostat>,
    /// Alternatives to report per step (0: none); logprobs are computed when `Some`.
    logprobs: Option<usize>,
}

impl Sampler {
    /// A sampler for sequence 0 of `config.seed`; the settings are validated.
    pub fn new(config: SamplerConfig) -> Result<Self> {
        Self::for_sequence(config, 0)
    }

    /// A sampler drawing from the stream of sequence `index` (see [`Rng::for_sequence`]).
    pub fn for_sequence(config: SamplerConfig, index: u64) -> Result<Self> {
        config.validate()?;
        let stages = config.active_stages();
        let mirostat = (config.mirostat > 0 && config.temperature > 0.0)
            .then(|| Mirostat::new(config.mirostat, config.mirostat_tau, config.mirostat_eta));
        Ok(Self {
            rng: Rng::for_sequence(config.seed, index),
            config,
            stages,
            mirostat,
            logprobs: None,
        })
    }

    pub fn greedy() -> Self {
        let config = SamplerConfig::greedy();
        Self {
            stages: config.active_stages(),
            rng: Rng::new(0),
            config,
            mirostat: None,
            logprobs: None,
        }
    }

    /// Report log-probabilities, with the `top` best alternatives of each step.
    pub fn with_logprobs(mut self, top: usize) -> Self {
        self.logprobs = Some(top);
        self
    }

    pub fn logprobs_requested(&self) -> bool {
        self.logprobs.is_some()
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// The chain, as [`SamplerConfig::describe`] reports it.
    pub fn describe(&self) -> String {
        self.config.describe()
    }

    /// Picks the next token from `logits`, given the tokens so far (`history`, for the
    /// penalties and DRY) and an optional constraint.
    pub fn sample(
        &mut self,
        logits: &[f32],
        history: &[u32],
        mask: Option<&dyn TokenMask>,
    ) -> Result<Sampled> {
        let mut c = Candidates::from_logits(logits)?;
        if let Some(mask) = mask {
            c.items.retain(|x| mask.allows(x.id));
            c.dense = false;
            if c.is_empty() {
                return Err(crate::Error::NoCandidates);
            }
        }
        self.process(&mut c, history)?;
        let cfg = &self.config;
        let index = if cfg.temperature == 0.0 {
            c.argmax()
        } else if let Some(m) = &mut self.mirostat {
            m.sample(&mut c, &mut self.rng)
        } else {
            processors::draw(&mut c, &mut self.rng)
        };
        let token = c.items[index].id;
        let greedy = cfg.temperature == 0.0;
        let logprob_sampled = if greedy {
            0.0
        } else {
            c.softmax();
            c.items[index].p.ln()
        };
        let mut out = Sampled {
            token,
            logprob: None,
            logprob_sampled,
            top: Vec::new(),
            top_sampled: Vec::new(),
        };
        if let Some(k) = self.logprobs {
            let lse = log_sum_exp(logits);
            out.logprob = Some(finite_or_min(logits[token as usize] - lse));
            if k > 0 {
                let mut raw = Candidates::from_logits(logits)?;
                raw.keep_best(k);
                out.top = raw
                    .items
                    .iter()
                    .map(|x| TokenLogprob {
                        id: x.id,
                        logprob: x.logit - lse,
                    })
                    .collect();
                if greedy {
                    out.top_sampled = vec![TokenLogprob {
                        id: token,
                        logprob: 0.0,
                    }];
                } else {
                    c.softmax();
                    c.sort();
                    out.top_sampled = c
                        .items
                        .iter()
                        .take(k)
                        .map(|x| TokenLogprob {
                            id: x.id,
                            logprob: x.p.ln(),
                        })
                        .collect();
                }
            }
        }
        Ok(out)
    }

    /// Runs the chain's stages over `c`.
    fn process(&mut self, c: &mut Candidates, history: &[u32]) -> Result<()> {
        let cfg = &self.config;
        let min_keep = cfg.min_keep.max(1);
        for &stage in &self.stages {
            match stage {
                Stage::LogitBias => processors::logit_bias(c, &cfg.logit_bias),
                Stage::Penalties => processors::penalties(c, history, &cfg.penalties),
                Stage::Dry => processors::dry(c, history, &cfg.dry),
                Stage::TopNSigma => processors::top_n_sigma(c, cfg.top_n_sigma),
                Stage::TopK => processors::top_k(c, cfg.top_k.max(min_keep)),
                Stage::Typical => processors::typical(c, cfg.typical_p, min_keep),
                Stage::TopP => processors::top_p(c, cfg.top_p, min_keep),
                Stage::MinP => processors::min_p(c, cfg.min_p, min_keep),
                Stage::Xtc => processors::xtc(
                    c,
                    cfg.xtc_probability,
                    cfg.xtc_threshold,
                    min_keep,
                    &mut self.rng,
                ),
                Stage::Epsilon => processors::epsilon_cutoff(c, cfg.epsilon_cutoff, min_keep),
                Stage::Eta => processors::eta_cutoff(c, cfg.eta_cutoff, min_keep),
                Stage::Temperature => processors::dynamic_temperature(
                    c,
                    cfg.temperature,
                    cfg.dynatemp_range,
                    cfg.dynatemp_exponent,
                ),
            }
            if c.is_empty() {
                return Err(crate::Error::NoCandidates);
            }
        }
        Ok(())
    }

    /// The final distribution of the chain over the whole vocabulary (zeros for removed
    /// tokens), without drawing: what [`Sampler::sample`] draws from. Greedy puts all
    /// mass on the best token.
    pub fn distribution(&mut self, logits: &[f32], history: &[u32]) -> Result<Vec<f32>> {
        // Run the chain on a copy of the state so that the stream is not consumed.
        let mut probe = self.clone();
        probe.logprobs = None;
        let mut c = Candidates::from_logits(logits)?;
        probe.process(&mut c, history)?;
        let cfg = probe.config.clone();
        let mut probs = vec![0f32; logits.len()];
        if cfg.temperature == 0.0 {
            probs[c.items[c.argmax()].id as usize] = 1.0;
            return Ok(probs);
        }
        if let Some(m) = &mut probe.mirostat {
            // Mirostat truncates as part of its pick: show the set it would draw from.
            let mut copy = c.clone();
            m.sample(&mut copy, &mut probe.rng);
            c = copy;
        }
        c.softmax();
        for x in &c.items {
            probs[x.id as usize] = x.p;
        }
        Ok(probs)
    }
}

/// `ln Σ e^x` over the finite logits.
pub fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = logits
        .iter()
        .copied()
        .filter(|l| !l.is_nan())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    let sum: f64 = logits
        .iter()
        .filter(|l| !l.is_nan())
        .map(|&l| ((l - max) as f64).exp())
        .sum();
    max + sum.ln() as f32
}

fn finite_or_min(x: f32) -> f32 {
    if x.is_nan() {
        f32::NEG_INFINITY
    } else {
        x
    }
}
