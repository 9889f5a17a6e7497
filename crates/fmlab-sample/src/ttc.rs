//! Test-time compute: spend more samples on one prompt and pick or vote.
//!
//! - best-of-n: n samples ranked by a [`Scorer`] (mean log-probability by default; a reward
//!   model implements the same trait);
//! - self-consistency (Wang et al. 2022): n samples, an answer extracted from each by an
//!   [`AnswerExtractor`], majority vote with the vote shares.
//!
//! Answers are opaque strings to the vote; [`RegexAnswer`] extracts them from text with a
//! regex (by default the last number, [`LAST_NUMBER`]).

use std::collections::HashMap;

use crate::generate::Generation;
use crate::Result;

/// Scores a completion; higher is better.
pub trait Scorer {
    fn score(&mut self, prompt: &[u32], completion: &Generation) -> Result<f64>;
}

/// The mean raw log-probability per generated token (the samples must have been drawn
/// with logprobs). An empty completion scores −∞.
#[derive(Debug, Clone, Copy, Default)]
pub struct MeanLogprob;

impl Scorer for MeanLogprob {
    fn score(&mut self, _prompt: &[u32], completion: &Generation) -> Result<f64> {
        Ok(completion.mean_logprob().unwrap_or(f64::NEG_INFINITY))
    }
}

/// The outcome of best-of-n.
#[derive(Debug, Clone, PartialEq)]
pub struct BestOfN {
    pub scores: Vec<f64>,
    /// Index of the best sample (the first on ties).
    pub best: usize,
}

/// Ranks `samples` with `scorer`.
pub fn best_of_n(
    prompt: &[u32],
    samples: &[Generation],
    scorer: &mut dyn Scorer,
) -> Result<BestOfN> {
    let scores = samples
        .iter()
        .map(|g| scorer.score(prompt, g))
        .collect::<Result<Vec<f64>>>()?;
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    Ok(BestOfN { scores, best })
}

/// Extracts the answer of a completion, or `None` when it gives none.
pub trait AnswerExtractor {
    fn extract(&mut self, completion: &Generation) -> Option<String>;
}

/// The default answer of self-consistency: the last number in the text.
pub const LAST_NUMBER: &str = r"-?\d+(?:[.,]\d+)*";

/// Extracts answers with a regex: the first capture group (or the whole match) of the
/// last match; without a regex, the whole trimmed text.
#[derive(Debug, Clone)]
pub struct RegexAnswer {
    regex: Option<regex::Regex>,
}

impl RegexAnswer {
    pub fn new(pattern: &str) -> std::result::Result<Self, regex::Error> {
        Ok(Self {
            regex: Some(regex::Regex::new(pattern)?),
        })
    }

    /// The whole trimmed text is the answer (a grammar already shaped it).
    pub fn whole() -> Self {
        Self { regex: None }
    }
}

impl AnswerExtractor for RegexAnswer {
    fn extract(&mut self, completion: &Generation) -> Option<String> {
        answer_of(
            &String::from_utf8_lossy(&completion.bytes),
            self.regex.as_ref(),
        )
    }
}

/// The answer in `text`: the first capture group (or the whole match) of the last match of
/// `regex`, or the whole trimmed text without one.
pub fn answer_of(text: &str, regex: Option<&regex::Regex>) -> Option<String> {
    let Some(re) = regex else {
        let t = text.trim();
        return (!t.is_empty()).then(|| t.to_string());
    };
    let caps = re.captures_iter(text).last()?;
    let m = caps.get(1).or_else(|| caps.get(0))?;
    Some(m.as_str().trim().to_string())
}

/// One answer's share of the vote.
#[derive(Debug, Clone, PartialEq)]
pub struct VoteShare {
    pub answer: String,
    pub count: usize,
    /// Count over all samples (those without an answer included).
    pub share: f64,
}

/// The outcome of self-consistency.
#[derive(Debug, Clone, PartialEq)]
pub struct Vote {
    /// Per sample, its extracted answer.
    pub answers: Vec<Option<String>>,
    /// Answers by count, most voted first (ties in order of first appearance).
    pub shares: Vec<VoteShare>,
    /// The majority answer (None when no sample gave one).
    pub winner: Option<String>,
}

impl Vote {
    /// The share of the winning answer: how consistent the samples are.
    pub fn agreement(&self) -> f64 {
        self.shares.first().map_or(0.0, |s| s.share)
    }
}

/// Majority vote over extracted answers.
pub fn self_consistency(samples: &[Generation], extractor: &mut dyn AnswerExtractor) -> Vote {
    let answers: Vec<Option<String>> = samples.iter().map(|g| extractor.extract(g)).collect();
    vote(answers)
}

/// Majority vote over given answers.
pub fn vote(answers: Vec<Option<String>>) -> Vote {
    let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
    for (i, a) in answers.iter().enumerate() {
        if let Some(a) = a {
            counts.entry(a.as_str()).or_insert((0, i)).0 += 1;
        }
    }
    let mut ranked: Vec<(&str, usize, usize)> = counts
        .into_iter()
        .map(|(a, (c, first))| (a, c, first))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    let total = answers.len().max(1) as f64;
    let shares: Vec<VoteShare> = ranked
        .iter()
        .map(|&(a, c, _)| VoteShare {
            answer: a.to_string(),
            count: c,
            share: c as f64 / total,
        })
        .collect();
    let winner = shares.first().map(|s| s.answer.clone());
    Vote {
        answers,
        shares,
        winner,
    }
}

/// Distinct-n (Li et al. 2016): distinct n-grams over all n-grams in a set of token
/// sequences — 1 when nothing repeats across samples, near 0 when they all say the same.
pub fn distinct_n(sequences: &[&[u32]], n: usize) -> f64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0usize;
    for s in sequences {
        if n == 0 || s.len() < n {
            continue;
        }
        for w in s.windows(n) {
            seen.insert(w.to_vec());
            total += 1;
        }
    }
    if total == 0 {
        0.0
    } else {
        seen.len() as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_vote_with_shares() {
        let v = vote(vec![
            Some("42".into()),
            Some("41".into()),
            None,
            Some("42".into()),
            Some("41".into()),
            Some("42".into()),
        ]);
        assert_eq!(v.winner.as_deref(), Some("42"));
        assert_eq!(v.shares[0].count, 3);
        assert!((v.agreement() - 0.5).abs() < 1e-12);
        assert_eq!(v.shares[1].answer, "41");
        // Ties go to the answer seen first.
        let v = vote(vec![Some("b".into()), Some("a".into())]);
        assert_eq!(v.winner.as_deref(), Some("b"));
        assert_eq!(vote(vec![None, None]).winner, None);
    }

    #[test]
    fn distinct_n_counts_unique_ngrams() {
        let a = [1u32, 2, 3, 1, 2];
        let b = [1u32, 2, 4];
        // Bigrams: 12 23 31 12 | 12 24 → unique {12, 23, 31, 24} of 6.
        assert!((distinct_n(&[&a, &b], 2) - 4.0 / 6.0).abs() < 1e-12);
        assert!((distinct_n(&[&a], 1) - 3.0 / 5.0).abs() < 1e-12);
        assert_eq!(distinct_n(&[&[1u32][..]], 2), 0.0);
    }
}
