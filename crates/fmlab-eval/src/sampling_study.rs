//! What temperature does to a model's outputs: for each temperature, n samples after one
//! prefill, measured for diversity (distinct-n), consistency (agreement of the answers) and
//! confidence (mean raw log-probability per token). `fmlab study sampling` prints and
//! plots the rows.

use fmlab_nn::{Session, Transformer};
use fmlab_sample::{
    distinct_n, generate_n, vote, Detokenizer, GenerateOptions, SamplerConfig, StopConditions,
};
use serde::Serialize;

use crate::{Error, Result};

/// The settings of a sampling study.
pub struct SamplingStudy<'a> {
    /// At least two, each finite and ≥ 0 ([`check_temperatures`]).
    pub temperatures: &'a [f32],
    /// Samples per temperature.
    pub samples: usize,
    /// Tokens per sample at most.
    pub max_tokens: usize,
    /// The sampler chain; its temperature is replaced by each of `temperatures`.
    pub sampler: &'a SamplerConfig,
    /// Tokens that end a sample.
    pub stop_tokens: Vec<u32>,
    /// The bytes of each token, for the samples' text.
    pub detokenizer: &'a dyn Detokenizer,
    /// The answer in a sample's text, which agreement compares (`None`: no answer).
    pub answer: &'a dyn Fn(&str) -> Option<String>,
}

/// One temperature's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct StudyRow {
    pub temperature: f32,
    pub samples: usize,
    /// Distinct unigrams over all unigrams of the samples.
    pub distinct_1: f64,
    pub distinct_2: f64,
    /// Share of the samples that gave the most common answer.
    pub agreement: f64,
    /// Distinct answers among the samples.
    pub distinct_answers: usize,
    /// Mean over samples of the mean raw log-probability per token.
    pub mean_logprob: f64,
    pub mean_tokens: f64,
    /// The most common answer.
    pub answer: Option<String>,
}

/// Checks that a study has at least two temperatures, each a temperature ≥ 0.
pub fn check_temperatures(temperatures: &[f32]) -> Result<()> {
    if temperatures.len() < 2 {
        return Err(Error::Config(
            "--temperatures: give at least two, e.g. 0,0.5,1,1.5".to_string(),
        ));
    }
    if let Some(t) = temperatures.iter().find(|t| !t.is_finite() || **t < 0.0) {
        return Err(Error::Config(format!(
            "--temperatures: {t} is not a temperature ≥ 0"
        )));
    }
    Ok(())
}

/// Samples `prompt` at each temperature (seed 0, a fresh session of up to 4,096 positions
/// each); `on_temperature` hears of each before its samples are drawn.
pub fn sampling_study(
    model: &Transformer,
    prompt: &[u32],
    study: &SamplingStudy,
    on_temperature: &mut dyn FnMut(f32),
) -> Result<Vec<StudyRow>> {
    check_temperatures(study.temperatures)?;
    let context = (model.spec.context_length as usize).min(4096);
    let n = study.samples;
    let mut rows = Vec::new();
    for &t in study.temperatures {
        let config = SamplerConfig {
            temperature: t,
            ..study.sampler.clone()
        };
        on_temperature(t);
        let mut session = Session::new(model, context);
        let gens = generate_n(
            &mut session,
            prompt,
            &config,
            Some(0),
            n,
            |_| GenerateOptions {
                stop: StopConditions {
                    max_new_tokens: study.max_tokens,
                    stop_tokens: study.stop_tokens.clone(),
                    ..StopConditions::default()
                },
                detokenizer: Some(study.detokenizer),
                constraint: None,
            },
            &mut |_, _, _| true,
        )?;
        let seqs: Vec<&[u32]> = gens.iter().map(|g| g.tokens.as_slice()).collect();
        let answers: Vec<Option<String>> = gens
            .iter()
            .map(|g| (study.answer)(&String::from_utf8_lossy(&g.bytes)))
            .collect();
        let v = vote(answers);
        let lps: Vec<f64> = gens.iter().filter_map(|g| g.mean_logprob()).collect();
        rows.push(StudyRow {
            temperature: t,
            samples: n,
            distinct_1: distinct_n(&seqs, 1),
            distinct_2: distinct_n(&seqs, 2),
            agreement: v.agreement(),
            distinct_answers: v.shares.len(),
            mean_logprob: lps.iter().sum::<f64>() / lps.len().max(1) as f64,
            mean_tokens: gens.iter().map(|g| g.tokens.len()).sum::<usize>() as f64 / n as f64,
            answer: v.winner.clone(),
        });
    }
    Ok(rows)
}
