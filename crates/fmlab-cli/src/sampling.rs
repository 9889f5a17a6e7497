//! Sampler flags shared by `generate`, `chat` and `sample-logits`, and `fmlab sample-logits`
//! itself: a chain applied to a logits vector, for teaching and for tests.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use fmlab_sample::{ChainOrder, Dry, Penalties, Sampler, SamplerConfig};
use fmlab_tokenizer::Tokenizer;
use fmlab_train::models::generation::{dry_breakers, DEFAULT_BREAKERS};
use serde::Serialize;

/// Every sampler setting. Defaults are llama.cpp's; out-of-range values are refused with
/// an error naming the flag.
#[derive(Args, Clone, Debug)]
pub struct SamplerArgs {
    /// Temperature; 0 is greedy (the most likely token, after bias and penalties).
    #[arg(long, default_value = "0.8", allow_hyphen_values = true)]
    pub temperature: f32,
    /// Dynamic temperature: the temperature moves within ±RANGE with the entropy.
    #[arg(long, default_value = "0")]
    pub dynatemp_range: f32,
    /// Exponent of the entropy in dynamic temperature.
    #[arg(long, default_value = "1")]
    pub dynatemp_exponent: f32,
    /// Keep the K most likely tokens (0: all).
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value = "40")]
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches P (1: all).
    #[arg(long, default_value = "0.95", allow_hyphen_values = true)]
    pub top_p: f32,
    /// Keep tokens at least P times as likely as the most likely (0: off).
    #[arg(long, default_value = "0.05", allow_hyphen_values = true)]
    pub min_p: f32,
    /// Locally typical sampling: keep the most typical tokens up to mass P (1: off).
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    pub typical_p: f32,
    /// Keep logits within N standard deviations of the best (0: off).
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub top_n_sigma: f32,
    /// Repetition penalty (CTRL): divide positive / multiply negative logits of seen tokens (1: off).
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    pub repeat_penalty: f32,
    /// How many of the latest tokens the penalties look at.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value = "64")]
    pub repeat_last_n: usize,
    /// Subtract F × count from seen tokens' logits (OpenAI; −2…2).
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub frequency_penalty: f32,
    /// Subtract P from the logits of tokens seen at all (OpenAI; −2…2).
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub presence_penalty: f32,
    /// DRY: penalise continuing a repeated sequence by M × BASE^(length − allowed) (0: off).
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub dry_multiplier: f32,
    /// DRY's base: the penalty grows by this factor per token repeated beyond the allowed length.
    #[arg(long, default_value = "1.75", allow_hyphen_values = true)]
    pub dry_base: f32,
    /// Repeats up to this length go unpenalised.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value = "2")]
    pub dry_allowed_length: usize,
    /// How many of the latest tokens DRY searches (0: all).
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value = "0")]
    pub dry_penalty_last_n: usize,
    /// Text that breaks a repetition for DRY (repeatable; default: newline, ':', '"', '*').
    #[arg(long = "dry-sequence-breaker")]
    pub dry_sequence_breakers: Vec<String>,
    /// XTC: with this probability, drop all tokens above the threshold but the least likely.
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub xtc_probability: f32,
    /// XTC's threshold: only tokens at least this likely may be dropped.
    #[arg(long, default_value = "0.1", allow_hyphen_values = true)]
    pub xtc_threshold: f32,
    /// Drop tokens with probability below E (0: off).
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub epsilon_cutoff: f32,
    /// Eta sampling: drop tokens below min(η, √η·e^−H) (0: off).
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub eta_cutoff: f32,
    /// Mirostat version (0: off, 1, 2); replaces the truncation samplers.
    #[arg(value_parser = crate::numbers::integer::<u8>, long, default_value = "0")]
    pub mirostat: u8,
    /// Mirostat's target surprise τ (bits).
    #[arg(long, default_value = "5", allow_hyphen_values = true)]
    pub mirostat_tau: f32,
    /// Mirostat's learning rate η.
    #[arg(long, default_value = "0.1", allow_hyphen_values = true)]
    pub mirostat_eta: f32,
    /// Add BIAS to token ID's logit: ID=BIAS (repeatable; -inf bans the token).
    #[arg(long = "logit-bias", value_parser = parse_bias, allow_hyphen_values = true)]
    pub logit_bias: Vec<(u32, f32)>,
    /// Chain order: llama.cpp (truncate, then temperature), hf (temperature first), or a
    /// comma-separated list of stages (logit_bias, penalties, dry, top_n_sigma, top_k,
    /// typical, top_p, min_p, xtc, epsilon, eta, temperature).
    #[arg(long, default_value = "llama.cpp")]
    pub sampler_order: String,
    /// Tokens every truncation stage keeps at least.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value = "1")]
    pub min_keep: usize,
    /// Seed of the random stream: the same seed and settings give the same tokens.
    #[arg(value_parser = crate::numbers::integer::<u64>, long, default_value = "0")]
    pub seed: u64,
}

fn parse_bias(text: &str) -> Result<(u32, f32), String> {
    let (id, bias) = text
        .split_once('=')
        .ok_or_else(|| format!("{text}: expected ID=BIAS"))?;
    let id: u32 = id
        .trim()
        .parse()
        .map_err(|_| format!("{text}: {id:?} is not a token id"))?;
    let bias = bias.trim();
    let bias: f32 = match bias {
        "-inf" | "-infinity" => f32::NEG_INFINITY,
        other => other
            .parse()
            .map_err(|_| format!("{text}: {other:?} is not a number"))?,
    };
    Ok((id, bias))
}

impl SamplerArgs {
    /// The configuration; `tokenizer` (when there is one) turns DRY's breaker strings into
    /// the ids of every token whose text contains one, and checks logit-bias ids.
    pub fn config(
        &self,
        tokenizer: Option<&Tokenizer>,
        vocab: Option<usize>,
    ) -> Result<SamplerConfig> {
        let order = ChainOrder::parse(&self.sampler_order)?;
        if let Some(v) = vocab {
            if let Some(&(id, _)) = self.logit_bias.iter().find(|(id, _)| *id as usize >= v) {
                bail!("--logit-bias: token {id} is outside the vocabulary of {v}");
            }
        }
        let mut breakers = Vec::new();
        if self.dry_multiplier > 0.0 {
            if let Some(tok) = tokenizer {
                let texts: Vec<&str> = if self.dry_sequence_breakers.is_empty() {
                    DEFAULT_BREAKERS.to_vec()
                } else {
                    self.dry_sequence_breakers
                        .iter()
                        .map(String::as_str)
                        .collect()
                };
                breakers = dry_breakers(tok, &texts);
            }
        }
        let config = SamplerConfig {
            temperature: self.temperature,
            dynatemp_range: self.dynatemp_range,
            dynatemp_exponent: self.dynatemp_exponent,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            typical_p: self.typical_p,
            top_n_sigma: self.top_n_sigma,
            xtc_probability: self.xtc_probability,
            xtc_threshold: self.xtc_threshold,
            epsilon_cutoff: self.epsilon_cutoff,
            eta_cutoff: self.eta_cutoff,
            penalties: Penalties {
                repeat: self.repeat_penalty,
                frequency: self.frequency_penalty,
                presence: self.presence_penalty,
                window: self.repeat_last_n,
            },
            dry: Dry {
                multiplier: self.dry_multiplier,
                base: self.dry_base,
                allowed_length: self.dry_allowed_length,
                window: self.dry_penalty_last_n,
                breakers,
            },
            logit_bias: self.logit_bias.clone(),
            mirostat: self.mirostat,
            mirostat_tau: self.mirostat_tau,
            mirostat_eta: self.mirostat_eta,
            min_keep: self.min_keep,
            order,
            seed: self.seed,
        };
        config.validate()?;
        Ok(config)
    }
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct SampleLogitsArgs {
    /// A JSON array of logits (numbers; "-inf" or null for banned tokens).
    #[arg(long)]
    logits: PathBuf,
    /// Earlier token ids, for the penalties and DRY: a JSON array.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sampler: SamplerArgs,
}

#[derive(Serialize)]
struct SampleLogitsReport {
    order: String,
    chain: String,
    probs: Vec<f32>,
    kept: usize,
    token: u32,
    seed: u64,
}

/// `fmlab sample-logits`: the chain's final distribution over a given logits vector, and
/// one draw with the seed.
pub fn run_sample_logits(args: SampleLogitsArgs) -> Result<()> {
    let logits = read_logits(&args.logits)?;
    let history: Vec<u32> = match &args.history {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!("{}: expected a JSON array of token ids", path.display())
            })?
        }
        None => Vec::new(),
    };
    let config = args.sampler.config(None, Some(logits.len()))?;
    let mut sampler = Sampler::new(config.clone())?;
    let probs = sampler.distribution(&logits, &history)?;
    let sampled = sampler.sample(&logits, &history, None)?;
    let report = SampleLogitsReport {
        order: config.order.name(),
        chain: config.describe(),
        kept: probs.iter().filter(|&&p| p > 0.0).count(),
        probs,
        token: sampled.token,
        seed: config.seed,
    };
    if args.json {
        crate::out(&format!("{}\n", serde_json::to_string(&report)?))?;
        return Ok(());
    }
    let mut text = format!("{}\n\n  token   logit       prob\n", report.chain);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| report.probs[b].total_cmp(&report.probs[a]).then(a.cmp(&b)));
    for &i in order.iter().take(50) {
        if report.probs[i] == 0.0 && i != report.token as usize {
            continue;
        }
        text.push_str(&format!(
            "{:>7} {:>7.3} {:>10.6}{}\n",
            i,
            logits[i],
            report.probs[i],
            if i == report.token as usize {
                "  ← drawn"
            } else {
                ""
            }
        ));
    }
    text.push_str(&format!(
        "\n{} of {} tokens kept; drew token {} (seed {})\n",
        report.kept,
        logits.len(),
        report.token,
        report.seed
    ));
    crate::out(&text)
}

fn read_logits(path: &PathBuf) -> Result<Vec<f32>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let values: Vec<serde_json::Value> = serde_json::from_str(&text)
        .with_context(|| format!("{}: expected a JSON array of logits", path.display()))?;
    if values.is_empty() {
        bail!("{}: the logits array is empty", path.display());
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            serde_json::Value::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN) as f32),
            serde_json::Value::Null => Ok(f32::NEG_INFINITY),
            serde_json::Value::String(s) if s == "-inf" || s == "-Infinity" => {
                Ok(f32::NEG_INFINITY)
            }
            other => bail!("{}: element {i} is {other}, not a logit", path.display()),
        })
        .collect()
}
