//! What a world depends on ([`WorldConfig`], checked by [`WorldConfig::validate`]), and
//! the mention count that makes a person "frequent".

use serde::{Deserialize, Serialize};

use super::docs::Domain;
use super::lang::Lang;
use crate::{Error, Result};

/// Everything the world depends on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldConfig {
    pub seed: u64,
    /// Target size of the corpus text in bytes.
    pub size: u64,
    /// Languages with their shares of documents.
    pub languages: Vec<(Lang, f64)>,
    /// Domains with their shares of documents.
    pub domains: Vec<(Domain, f64)>,
    /// Share of people who never appear in training data.
    pub held_out: f64,
    /// Zipf exponent of how often people are mentioned.
    pub zipf: f64,
    /// Probability that a lowercase word gets two letters swapped.
    pub typo_rate: f64,
    /// Probability that a whole document is lowercased.
    pub lowercase_rate: f64,
    /// Conversations, preference pairs and eval items per 1 MB of corpus (at least 200 each).
    pub sets_per_mb: f64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            size: 1 << 20,
            languages: vec![(Lang::En, 0.85), (Lang::Fr, 0.135), (Lang::Sw, 0.015)],
            domains: vec![
                (Domain::Biography, 0.26),
                (Domain::Story, 0.14),
                (Domain::Dialogue, 0.14),
                (Domain::Encyclopedia, 0.12),
                (Domain::Arithmetic, 0.14),
                (Domain::Code, 0.08),
                (Domain::Table, 0.12),
            ],
            held_out: 0.1,
            zipf: 1.1,
            typo_rate: 0.01,
            lowercase_rate: 0.03,
            sets_per_mb: 2000.0,
        }
    }
}

impl WorldConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.size < 10_000 {
            return bad(format!(
                "size {} is below the smallest world (10 kB)",
                self.size
            ));
        }
        if self.size > 1 << 40 {
            return bad(format!("size {} is absurd (over 1 TB)", self.size));
        }
        for (what, shares) in [
            (
                "languages",
                self.languages.iter().map(|x| x.1).collect::<Vec<_>>(),
            ),
            ("domains", self.domains.iter().map(|x| x.1).collect()),
        ] {
            if shares.is_empty() || shares.iter().any(|s| !s.is_finite() || *s < 0.0) {
                return bad(format!("{what}: shares must be numbers ≥ 0"));
            }
            if shares.iter().sum::<f64>() <= 0.0 {
                return bad(format!("{what}: the shares add up to 0"));
            }
        }
        if !self
            .languages
            .iter()
            .any(|(l, s)| *l == Lang::En && *s > 0.0)
        {
            return bad("languages: English must have a share (the eval sets need it)".into());
        }
        for (name, v) in [
            ("held_out", self.held_out),
            ("typo_rate", self.typo_rate),
            ("lowercase_rate", self.lowercase_rate),
        ] {
            if !(0.0..=0.9).contains(&v) {
                return bad(format!("{name} must be in [0, 0.9], got {v}"));
            }
        }
        if !(self.sets_per_mb.is_finite() && (0.0..=1e6).contains(&self.sets_per_mb)) {
            return bad(format!(
                "sets per MB must be in [0, 1e6], got {}",
                self.sets_per_mb
            ));
        }
        if !(self.zipf.is_finite() && self.zipf > 0.0 && self.zipf < 5.0) {
            return bad(format!(
                "zipf exponent must be in (0, 5), got {}",
                self.zipf
            ));
        }
        Ok(())
    }

    /// People in the world: enough that, at this size, popular people are mentioned often
    /// and a long tail only once or never.
    pub fn people(&self) -> usize {
        ((self.size / 3000) as usize).clamp(40, 400_000)
    }

    pub(super) fn set_size(&self) -> usize {
        ((self.size as f64 / 1e6 * self.sets_per_mb) as usize).clamp(200, 2_000_000)
    }
}

/// People with at least this many mentions are "frequent"; with fewer, "rare".
pub const FREQUENT_MENTIONS: u32 = 10;
