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
    /// Take [`Sampler::fast_start`] where it applies (off only to test it against the
    /// general path).
    shortcut: bool,
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
            shortcut: true,
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
            shortcut: true,
            stages: config.active_stages(),
            rng: Rng::new(0),
            config,
            mirostat: None,
            logprobs: None,
        }
    }

    /// Always build the whole candidate set (for tests of the shortcut).
    #[doc(hidden)]
    pub fn without_shortcut(mut self) -> Self {
        self.shortcut = false;
        self
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
        let mut c = match self.fast_start(logits, history, mask.is_some()) {
            Some(c) => c?,
            None => {
                let mut c = Candidates::from_logits(logits)?;
                if let Some(mask) = mask {
                    c.items.retain(|x| mask.allows(x.id));
                    c.dense = false;
                    if c.is_empty() {
                        return Err(crate::Error::NoCandidates);
                    }
                }
                self.process(&mut c, history, 0)?;
                c
            }
        };
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
                let raw = match Candidates::best_of_slice(logits, k, |_| false) {
                    Some(c) => c,
                    None => {
                        let mut c = Candidates::from_logits(logits)?;
                        c.keep_best(k);
                        c
                    }
                };
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

    /// The common case without touching the whole vocabulary: when the chain starts with
    /// logit processors that change only a few tokens (bias, penalties, DRY: those in the
    /// bias list or the history) followed by top-k — or is greedy — the processors run on
    /// those few tokens and the best k of the rest come from one pass over the logits.
    /// The result is the set the general path would reach; `None` when the shortcut does
    /// not apply.
    fn fast_start(
        &mut self,
        logits: &[f32],
        history: &[u32],
        masked: bool,
    ) -> Option<Result<Candidates>> {
        if masked || !self.shortcut {
            return None;
        }
        let sparse = |s: &Stage| matches!(s, Stage::LogitBias | Stage::Penalties | Stage::Dry);
        let prefix = self.stages.iter().take_while(|s| sparse(s)).count();
        let cfg = &self.config;
        let k = match self.stages.get(prefix) {
            Some(Stage::TopK) => cfg.top_k.max(cfg.min_keep.max(1)),
            None if cfg.temperature == 0.0 => 1,
            _ => return None,
        };
        let mut touched: Vec<u32> = Vec::new();
        if prefix > 0 {
            touched.extend(cfg.logit_bias.iter().map(|&(id, _)| id));
            touched.extend_from_slice(history);
            touched.sort_unstable();
            touched.dedup();
        }
        let skip = |id: u32| touched.binary_search(&id).is_ok();
        let mut c = Candidates::best_of_slice(logits, k, skip)?;
        let mut few = Candidates::of_ids(logits, &touched);
        if let Err(e) = self.process_stages(&mut few, history, 0, prefix, false) {
            return Some(Err(e));
        }
        c.items.extend(few.items);
        c.sorted = false;
        if c.is_empty() {
            return Some(Err(crate::Error::NoCandidates));
        }
        c.keep_best(k);
        let rest = (prefix + 1).min(self.stages.len());
        let end = self.stages.len();
        Some(
            self.process_stages(&mut c, history, rest, end, true)
                .map(|()| c),
        )
    }

    /// Runs the chain's stages from `from` on over `c`.
    fn process(&mut self, c: &mut Candidates, history: &[u32], from: usize) -> Result<()> {
        let end = self.stages.len();
        self.process_stages(c, history, from, end, true)
    }

    /// Runs stages `from..to` of the chain over `c`; with `whole`, `c` is the whole set
    /// in play and must not become empty.
    fn process_stages(
        &mut self,
        c: &mut Candidates,
        history: &[u32],
        from: usize,
        to: usize,
        whole: bool,
    ) -> Result<()> {
        let cfg = &self.config;
        let min_keep = cfg.min_keep.max(1);
        for &stage in &self.stages[from..to] {
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
            if whole && c.is_empty() {
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
        probe.process(&mut c, history, 0)?;
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

/// `ln Σ e^x` over the non-NaN logits: one pass for the maximum and one for the sum, each
/// in eight independent lanes (added up in f64 at the end) so that they vectorise, with
/// [`exp_nonpositive`]. The whole vocabulary is summed at every step that reports logprobs.
pub fn log_sum_exp(logits: &[f32]) -> f32 {
    let mut chunks = logits.chunks_exact(8);
    let mut m = [f32::NEG_INFINITY; 8];
    for chunk in &mut chunks {
        for (lane, &l) in m.iter_mut().zip(chunk) {
            // NaN compares false and leaves the lane as it was.
            *lane = if l > *lane { l } else { *lane };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(m.iter())
        .fold(f32::NEG_INFINITY, |a, &l| if l > a { l } else { a });
    if !max.is_finite() {
        return max;
    }
    let mut lanes = [0f32; 8];
    let mut chunks = logits.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &l) in lanes.iter_mut().zip(chunk) {
            *lane += exp_nonpositive(l - max);
        }
    }
    let mut total: f64 = lanes.iter().map(|&v| v as f64).sum();
    total += chunks
        .remainder()
        .iter()
        .map(|&l| exp_nonpositive(l - max) as f64)
        .sum::<f64>();
    max + total.ln() as f32
}

/// `e^x` for x ≤ 0 (relative error below 2e-7); 0 below about −87.3 and for NaN.
/// x = k·ln 2 + r with |r| ≤ ln 2 / 2: a degree-7 Taylor polynomial for e^r, and 2^k
/// written into the exponent bits. No branches and no float-to-int casts (k is read from
/// the bits of the rounding sum), so loops over it vectorise.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³
                                     // max/min return the non-NaN operand: NaN becomes −88, whose 2^k is 0 (clamp would
                                     // keep the NaN).
    #[allow(clippy::manual_clamp)]
    let xc = x.max(-88.0).min(0.0);
    let shifted = xc * LOG2E + ROUND;
    let k = shifted - ROUND;
    let ki = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = xc - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    // k = −127 (x below about −87.3) gives the bit pattern of +0.
    p * f32::from_bits(((ki + 127) << 23) as u32)
}

fn finite_or_min(x: f32) -> f32 {
    if x.is_nan() {
        f32::NEG_INFINITY
    } else {
        x
    }
}
