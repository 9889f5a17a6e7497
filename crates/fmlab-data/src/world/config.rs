//! What a world depends on ([`WorldConfig`], checked by [`WorldConfig::validate`]; its
//! language and domain mixes read by [`WorldConfig::set_mix`]), and the mention count that
//! makes a person "frequent".

use serde::{Deserialize, Serialize};

use super::docs::Domain;
use super::lang::Lang;
use super::raw_spec::JunkKind;
use crate::{Error, Result};

/// `NAME=SHARE,NAME=SHARE`: each name through `parse`, each share a number; `what` (a
/// plural: `languages`) names the list in errors.
pub fn parse_shares<T>(
    text: &str,
    parse: impl Fn(&str) -> Option<T>,
    what: &'static str,
) -> Result<Vec<(T, f64)>> {
    let bad = |message: String| Error::Mix { what, message };
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, share) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} is not NAME=SHARE")))?;
        let item = parse(name.trim())
            .ok_or_else(|| bad(format!("unknown {} {name:?}", what.trim_end_matches('s'))))?;
        let share: f64 = share
            .trim()
            .parse()
            .map_err(|_| bad(format!("{share:?} is not a number")))?;
        out.push((item, share));
    }
    Ok(out)
}

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
    /// The raw web (`raw.jsonl`) beside the corpus, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawConfig>,
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
            raw: None,
        }
    }
}

impl WorldConfig {
    /// Sets the language mix (`en=0.85,fr=0.135,sw=0.015`) and, when given, the domain mix
    /// (`biography=0.5,story=0.5`).
    pub fn set_mix(&mut self, languages: &str, domains: Option<&str>) -> Result<()> {
        self.languages = parse_shares(languages, Lang::parse, "languages")?;
        if let Some(d) = domains {
            self.domains = parse_shares(d, Domain::parse, "domains")?;
        }
        Ok(())
    }

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
        if let Some(raw) = &self.raw {
            raw.validate()?;
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

/// What the raw web holds besides the clean pages.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RawConfig {
    /// Share of all raw pages that are added junk pages (every kind but boilerplate).
    pub junk_share: f64,
    /// The added kinds and their relative weights.
    pub kinds: Vec<(JunkKind, f64)>,
    /// Share of clean pages given boilerplate lines.
    pub boilerplate: f64,
    /// Pages are made of corpus documents up to a target drawn log-uniformly in
    /// `[min_words, max_words]`.
    pub min_words: u32,
    pub max_words: u32,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            junk_share: 0.3,
            kinds: vec![
                (JunkKind::NearDuplicate, 0.3),
                (JunkKind::WrongLanguage, 0.2),
                (JunkKind::Spam, 0.2),
                (JunkKind::Markup, 0.2),
                (JunkKind::BlocklistedUrl, 0.1),
            ],
            boilerplate: 0.3,
            min_words: 100,
            max_words: 600,
        }
    }
}

impl RawConfig {
    /// Sets the added kinds' weights from `near_duplicate=0.3,spam=0.2,…`.
    pub fn set_kinds(&mut self, text: &str) -> Result<()> {
        self.kinds = parse_shares(text, JunkKind::parse, "raw-kinds")?;
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("raw web: {m}")));
        if !(0.0..=0.9).contains(&self.junk_share) {
            return bad(format!(
                "junk share must be in [0, 0.9], got {}",
                self.junk_share
            ));
        }
        if !(0.0..=1.0).contains(&self.boilerplate) {
            return bad(format!(
                "boilerplate share must be in [0, 1], got {}",
                self.boilerplate
            ));
        }
        if self.kinds.iter().any(|(k, _)| *k == JunkKind::Boilerplate) {
            return bad("boilerplate is not an added kind: set its share of clean pages".into());
        }
        if self.kinds.iter().any(|(_, w)| !w.is_finite() || *w < 0.0) {
            return bad("kind weights must be numbers ≥ 0".into());
        }
        if self.junk_share > 0.0 && self.kinds.iter().map(|k| k.1).sum::<f64>() <= 0.0 {
            return bad("a junk share needs a kind with a weight above 0".into());
        }
        if self.min_words < 10 || self.max_words < self.min_words || self.max_words > 100_000 {
            return bad(format!(
                "page words must satisfy 10 ≤ min ≤ max ≤ 100000, got {}..{}",
                self.min_words, self.max_words
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_are_read_and_bad_ones_named() {
        let mut c = WorldConfig::default();
        c.set_mix("en=0.9, sw=0.1", Some("story=1")).unwrap();
        assert_eq!(c.languages, vec![(Lang::En, 0.9), (Lang::Sw, 0.1)]);
        assert_eq!(c.domains, vec![(Domain::Story, 1.0)]);
        let mut message = |langs: &str| c.set_mix(langs, None).unwrap_err().to_string();
        assert_eq!(
            message("en=0.5,xx=0.5"),
            "--languages: unknown language \"xx\""
        );
        assert_eq!(message("en"), "--languages: \"en\" is not NAME=SHARE");
        assert_eq!(message("en=half"), "--languages: \"half\" is not a number");
    }
}
