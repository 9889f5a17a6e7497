//! Sampling: logits and token ids in, token ids out. This crate never sees text: stop
//! strings reach it as bytes through a [`Detokenizer`], grammars as token masks through a
//! [`Constraint`].
//!
//! - [`LanguageModel`]: what a model must offer to be sampled from.
//! - [`SamplerConfig`] and [`Sampler`]: every processor of llama.cpp's and HF's chains
//!   (logit bias, repetition/frequency/presence penalties, DRY, top-n-σ, top-k, typical,
//!   top-p, min-p, XTC, epsilon and eta cutoffs, temperature and dynamic temperature,
//!   Mirostat v1/v2, greedy) in a named or user-given order, with a seeded stream per
//!   sequence and log-probabilities of both the raw and the processed distribution.
//! - [`generate`] and [`generate_n`]: the loop, with stop tokens, stop strings, minimum
//!   and maximum lengths, and grammar-forced tokens fed without a sampling step.
//! - [`constrain`]: JSON schema, regex and Lark grammars through llguidance.
//! - [`ttc`]: test-time compute — best-of-n and self-consistency — and distinct-n.

mod candidates;
mod config;
pub mod constrain;
mod generate;
pub mod processors;
mod rng;
mod sampler;
pub mod ttc;

pub use candidates::{Candidate, Candidates};
pub use config::{ChainOrder, SamplerConfig, Stage};
pub use constrain::{Grammar, GrammarSpec, TokenizeFn, Vocabulary};
pub use generate::{
    generate, generate_n, prefill, Constraint, Decoding, Detokenizer, GenerateOptions, Generation,
    Next, StopConditions, StopMatcher, StopReason,
};
pub use processors::{Dry, Penalties};
pub use rng::Rng;
pub use sampler::{
    exp_nonpositive as sampler_exp, log_sum_exp, Sampled, Sampler, TokenLogprob, TokenMask,
};
pub use ttc::{
    answer_of, best_of_n, distinct_n, self_consistency, vote, AnswerExtractor, BestOfN,
    MeanLogprob, RegexAnswer, Scorer, Vote, VoteShare, LAST_NUMBER,
};

/// Errors of sampling and generation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the prompt has {prompt} tokens but the context holds {context}")]
    PromptTooLong { prompt: usize, context: usize },
    #[error("empty prompt: a model needs at least one token to condition on")]
    EmptyPrompt,
    #[error("no token can be drawn: every logit is -inf or NaN, or masked out")]
    NoCandidates,
    /// A setting is invalid; `name` is its command-line flag without the dashes.
    #[error("--{name}: {message}")]
    Setting { name: &'static str, message: String },
    #[error("constraint: {0}")]
    Constraint(String),
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
    /// Forgets every token after the first `len`.
    fn truncate(&mut self, len: usize);
    /// Appends `tokens` to the context and returns the logits that follow the last one.
    fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>>;
}

/// The index of the largest logit (the first on ties; NaNs never win, but a NaN first
/// stays the answer, as in a scan that keeps the first of the greatest under `>`).
///
/// Two passes that vectorise, where the one-pass scan with its index did not (it was 1.4%
/// of an 8-sequence decoding step over a 49,152-token vocabulary): the largest value, 16
/// lanes at a time, then the first position that equals it, 16 at a time. Equal under
/// `==` is what the scan's `>` leaves tied, −0 and +0 included, so the index is the scan's.
pub fn argmax(logits: &[f32]) -> u32 {
    const LANES: usize = 16;
    let Some(&first) = logits.first() else {
        return 0;
    };
    if first.is_nan() {
        return 0;
    }
    let mut lanes = [first; LANES];
    let mut chunks = logits.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &l) in lanes.iter_mut().zip(chunk) {
            *m = if l > *m { l } else { *m };
        }
    }
    let mut max = first;
    for &l in lanes.iter().chain(chunks.remainder()) {
        if l > max {
            max = l;
        }
    }
    let mut at = 0;
    for chunk in logits.chunks(LANES) {
        if chunk.iter().fold(false, |hit, &l| hit | (l == max)) {
            return (at + chunk.iter().position(|&l| l == max).unwrap_or(0)) as u32;
        }
        at += chunk.len();
    }
    0
}

#[cfg(test)]
mod tests {
    /// The scan the two passes replace.
    fn scan(logits: &[f32]) -> u32 {
        let mut best = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        best as u32
    }

    #[test]
    fn argmax_is_the_first_greatest_as_a_scan_finds_it() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let specials = [f32::NAN, -0.0, 0.0, f32::INFINITY, f32::NEG_INFINITY, 1.0];
        for case in 0..3000 {
            let len = (next() % 100) as usize;
            // Few distinct values, so that ties are common; some special values.
            let v: Vec<f32> = (0..len)
                .map(|_| match next() % 10 {
                    0 => specials[(next() % specials.len() as u64) as usize],
                    _ => (next() % 7) as f32 - 3.0,
                })
                .collect();
            assert_eq!(super::argmax(&v), scan(&v), "case {case}: {v:?}");
        }
        assert_eq!(super::argmax(&[]), 0);
        assert_eq!(super::argmax(&[f32::NAN, 5.0]), 0);
        assert_eq!(super::argmax(&[-0.0, 0.0]), 0);
        assert_eq!(super::argmax(&[1.0, f32::NAN, 2.0, 2.0]), 2);
    }
}
