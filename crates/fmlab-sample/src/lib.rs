//! Sampling: logits and token ids in, token ids out. This crate never sees text; stop
//! strings and grammars will reach it through traits.
//!
//! - [`LanguageModel`]: what a model must offer to be sampled from.
//! - [`Sampler`]: greedy, or temperature with top-k and top-p, from a seeded RNG. The full
//!   processor chain (penalties, min-p, typical, mirostat, …) grows behind this interface.
//! - [`generate`]: the loop — prefill the prompt, then sample and feed one token at a time.

mod rng;

pub use rng::Rng;

use std::time::{Duration, Instant};

/// Errors of a generation: the model failed, or the request cannot fit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the prompt has {prompt} tokens but the context holds {context}")]
    PromptTooLong { prompt: usize, context: usize },
    #[error("empty prompt: a model needs at least one token to condition on")]
    EmptyPrompt,
    #[error("model: {0}")]
    Model(Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A model being sampled from, with its own context (KV cache) state.
pub trait LanguageModel {
    fn vocab_size(&self) -> usize;
    /// The most tokens the context can hold.
    fn context_length(&self) -> usize;
    /// Tokens currently in the context.
    fn position(&self) -> usize;
    /// Forgets the context.
    fn reset(&mut self);
    /// Appends `tokens` to the context and returns the logits that follow the last one.
    fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>>;
}

/// Sampler settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 1.0 disables.
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplerConfig {
    /// llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95.
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            seed: 0,
        }
    }
}

/// Picks the next token from logits.
#[derive(Debug, Clone)]
pub struct Sampler {
    pub config: SamplerConfig,
    rng: Rng,
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Self {
        let rng = Rng::new(config.seed);
        Self { config, rng }
    }

    pub fn greedy() -> Self {
        Self::new(SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        })
    }

    /// The next token. Truncation (top-k, then top-p) comes before temperature, as in
    /// llama.cpp's default chain.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.config.temperature <= 0.0 || logits.len() <= 1 {
            return argmax(logits);
        }
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, &l)| (i as u32, l))
            .collect();
        if candidates.is_empty() {
            return 0;
        }
        let k = if self.config.top_k == 0 {
            candidates.len()
        } else {
            self.config.top_k.min(candidates.len())
        };
        // Partial selection, then sort only the k survivors.
        if k < candidates.len() {
            candidates.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
            candidates.truncate(k);
        }
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.config.top_p < 1.0 {
            let max = candidates[0].1;
            let weights: Vec<f32> = candidates.iter().map(|c| (c.1 - max).exp()).collect();
            let total: f32 = weights.iter().sum();
            let mut mass = 0.0;
            let mut keep = candidates.len();
            for (i, w) in weights.iter().enumerate() {
                mass += w / total;
                if mass >= self.config.top_p {
                    keep = i + 1;
                    break;
                }
            }
            candidates.truncate(keep.max(1));
        }
        let max = candidates[0].1;
        let weights: Vec<f32> = candidates
            .iter()
            .map(|c| ((c.1 - max) / self.config.temperature).exp())
            .collect();
        let total: f32 = weights.iter().sum();
        let mut r = self.rng.next_f32() * total;
        for (c, w) in candidates.iter().zip(&weights) {
            if r < *w {
                return c.0;
            }
            r -= w;
        }
        candidates[candidates.len() - 1].0
    }
}

/// The index of the largest logit (the first on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Settings of one generation.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub max_new_tokens: usize,
    /// Tokens that end generation (not emitted).
    pub stop_tokens: Vec<u32>,
    /// Keep going past stop tokens (for benchmarks).
    pub ignore_stop: bool,
}

/// What a generation produced and how fast.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    /// Whether a stop token ended it (rather than the token limit).
    pub stopped: bool,
    pub prefill_time: Duration,
    pub decode_time: Duration,
}

impl Generation {
    pub fn prefill_tokens_per_second(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill_time.as_secs_f64().max(1e-9)
    }

    /// Decode speed: every generated token after the first costs one forward pass.
    pub fn decode_tokens_per_second(&self) -> f64 {
        let steps = self.tokens.len().saturating_sub(1);
        if steps == 0 {
            return 0.0;
        }
        steps as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }
}

/// Prefills `prompt` and samples up to `max_new_tokens`, calling `on_token` with each new
/// token as it is chosen (return `false` to stop early).
pub fn generate(
    model: &mut dyn LanguageModel,
    prompt: &[u32],
    sampler: &mut Sampler,
    config: &GenerateConfig,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(Error::EmptyPrompt);
    }
    let context = model.context_length();
    if model.position() + prompt.len() > context {
        return Err(Error::PromptTooLong {
            prompt: model.position() + prompt.len(),
            context,
        });
    }
    let started = Instant::now();
    let mut logits = model.forward(prompt)?;
    let prefill_time = started.elapsed();
    let decode_start = Instant::now();
    let mut tokens = Vec::new();
    let mut stopped = false;
    while tokens.len() < config.max_new_tokens {
        let next = sampler.sample(&logits);
        if !config.ignore_stop && config.stop_tokens.contains(&next) {
            stopped = true;
            break;
        }
        tokens.push(next);
        if !on_token(next) {
            break;
        }
        if tokens.len() == config.max_new_tokens || model.position() >= context {
            break;
        }
        logits = model.forward(&[next])?;
    }
    Ok(Generation {
        tokens,
        prompt_tokens: prompt.len(),
        stopped,
        prefill_time,
        decode_time: decode_start.elapsed(),
    })
}
