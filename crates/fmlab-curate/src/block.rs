//! A streaming block: it sees one document at a time and decides to keep it or drop it
//! (a filter), labels it (a tagger: language, domain), or rewrites its text (C4's line
//! removal, PII formatting). Deduplication needs every document and is not a `Block`; the
//! pipeline runs it as stages between streaming blocks.

use std::borrow::Cow;

use serde_json::Value;

use crate::doc::Document;

/// What one block decided about one document; written as its attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// The rule that dropped the document (`None`: kept). Rule names are stable strings
    /// (datatrove's names where it has one: `gopher_short_doc`, `top_2_gram`…).
    pub drop: Option<Cow<'static, str>>,
    /// The statistics the rules looked at (for the report's histograms), e.g.
    /// `("dup_line_frac", 0.12)`.
    pub stats: Vec<(Cow<'static, str>, f64)>,
    /// Labels a tagger adds; they are also copied into the document's metadata.
    pub tags: Vec<(Cow<'static, str>, Value)>,
}

impl Decision {
    pub fn dropped(&self) -> bool {
        self.drop.is_some()
    }
    pub fn stat(&mut self, name: impl Into<Cow<'static, str>>, value: f64) {
        self.stats.push((name.into(), value));
    }
    pub fn tag(&mut self, name: impl Into<Cow<'static, str>>, value: Value) {
        self.tags.push((name.into(), value));
    }
    /// Drop with `rule`, unless an earlier rule already dropped it (the first rule that
    /// fails is the one reported, as datatrove reports it).
    pub fn drop_for(&mut self, rule: impl Into<Cow<'static, str>>) {
        if self.drop.is_none() {
            self.drop = Some(rule.into());
        }
    }
}

/// A streaming block. `apply` may rewrite `doc.text` (a modifier) and records its verdict in
/// `out` (which starts empty). Blocks are shared across threads.
pub trait Block: Send + Sync {
    /// The block's name in reports and attribute folders (`gopher_repetition`, `c4`…).
    fn name(&self) -> &str;
    fn apply(&self, doc: &mut Document, out: &mut Decision);
    /// The thresholds its rules compare statistics with, by statistic name, drawn on the
    /// report's histograms (e.g. `("dup_line_frac", 0.3)`).
    fn thresholds(&self) -> Vec<(Cow<'static, str>, f64)> {
        Vec::new()
    }
}
