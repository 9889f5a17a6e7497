//! What each block did, in a form that ranks write separately and the report adds up:
//! documents and bytes in and out, drops by rule, by language and by domain, and sparse
//! histograms of the statistics the rules looked at (values rounded to a fixed grid, so
//! histograms of W ranks add up to the histogram of one process).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::block::Decision;
use crate::doc::Document;

/// Counts in and out of one block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    pub documents_in: u64,
    pub documents_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Flow {
    fn add(&mut self, o: &Flow) {
        self.documents_in += o.documents_in;
        self.documents_out += o.documents_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

/// A histogram of one statistic: value (rounded, see [`grid`]) → count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram(pub HashMap<u64, u64>);

/// Rounds a value to the histogram grid: steps of 0.001 under 1, two decimals under 100,
/// three significant digits above — fine enough for any threshold the rules use.
pub fn grid(v: f64) -> f64 {
    if !v.is_finite() {
        return 0.0;
    }
    let a = v.abs();
    if a < 1.0 {
        (v * 1000.0).round() / 1000.0
    } else if a < 100.0 {
        (v * 100.0).round() / 100.0
    } else {
        let scale = 10f64.powi(a.log10().floor() as i32 - 2);
        (v / scale).round() * scale
    }
}

impl Histogram {
    pub fn add(&mut self, v: f64) {
        *self.0.entry(grid(v).to_bits()).or_default() += 1;
    }
    pub fn merge(&mut self, o: &Histogram) {
        for (k, n) in &o.0 {
            *self.0.entry(*k).or_default() += n;
        }
    }
    /// (value, count) by value.
    pub fn points(&self) -> Vec<(f64, u64)> {
        let mut p: Vec<(f64, u64)> = self
            .0
            .iter()
            .map(|(k, n)| (f64::from_bits(*k), *n))
            .collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        p
    }
}

impl Serialize for Histogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.points().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let points: Vec<(f64, u64)> = Vec::deserialize(d)?;
        let mut h = Histogram::default();
        for (v, n) in points {
            *h.0.entry(grid(v).to_bits()).or_default() += n;
        }
        Ok(h)
    }
}

/// Everything one block did (on one rank, or added up).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlockStats {
    pub name: String,
    pub kind: String,
    #[serde(flatten)]
    pub flow: Flow,
    /// Documents dropped, by rule.
    pub dropped: BTreeMap<String, u64>,
    /// Flow by the document's language (its `language` tag, else its `lang` field, else "?").
    pub by_language: BTreeMap<String, Flow>,
    /// Flow by the document's domain (its `domain` field or tag, else "?").
    pub by_domain: BTreeMap<String, Flow>,
    /// The rules' statistics.
    pub histograms: BTreeMap<String, Histogram>,
    /// The thresholds the rules compare them with.
    pub thresholds: BTreeMap<String, f64>,
    /// Block-specific figures (duplicate clusters, lines removed…).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn label(doc: &Document, keys: &[&str]) -> String {
    for k in keys {
        if let Some(v) = doc.metadata.get(*k) {
            return match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
        }
    }
    "?".into()
}

impl BlockStats {
    pub fn new(name: &str, kind: &str) -> Self {
        BlockStats {
            name: name.into(),
            kind: kind.into(),
            ..Default::default()
        }
    }

    /// Counts one document: its text's bytes before and after the block, the document (for
    /// its language and domain), and the decision (in a dry run a dropped document still
    /// flows on).
    pub fn record(&mut self, bytes_in: usize, bytes_out: usize, doc: &Document, d: &Decision) {
        let f = Flow {
            documents_in: 1,
            documents_out: u64::from(!d.dropped()),
            bytes_in: bytes_in as u64,
            bytes_out: if d.dropped() { 0 } else { bytes_out as u64 },
        };
        self.flow.add(&f);
        self.by_language
            .entry(label(doc, &["language", "lang"]))
            .or_default()
            .add(&f);
        self.by_domain
            .entry(label(doc, &["domain"]))
            .or_default()
            .add(&f);
        if let Some(rule) = &d.drop {
            *self.dropped.entry(rule.to_string()).or_default() += 1;
        }
        for (k, v) in &d.stats {
            match self.histograms.get_mut(k.as_ref()) {
                Some(h) => h.add(*v),
                None => {
                    let mut h = Histogram::default();
                    h.add(*v);
                    self.histograms.insert(k.to_string(), h);
                }
            }
        }
    }

    pub fn merge(&mut self, o: &BlockStats) {
        self.flow.add(&o.flow);
        for (k, n) in &o.dropped {
            *self.dropped.entry(k.clone()).or_default() += n;
        }
        for (k, f) in &o.by_language {
            self.by_language.entry(k.clone()).or_default().add(f);
        }
        for (k, f) in &o.by_domain {
            self.by_domain.entry(k.clone()).or_default().add(f);
        }
        for (k, h) in &o.histograms {
            self.histograms.entry(k.clone()).or_default().merge(h);
        }
        for (k, v) in &o.thresholds {
            self.thresholds.insert(k.clone(), *v);
        }
        for (k, v) in &o.extra {
            match (self.extra.get_mut(k), v) {
                (Some(serde_json::Value::Number(a)), serde_json::Value::Number(b)) => {
                    let sum = a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0);
                    if let Some(n) = serde_json::Number::from_f64(sum) {
                        *a = n;
                    }
                }
                _ => {
                    self.extra.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::DocKey;

    #[test]
    fn ranks_add_up_to_one_process() {
        let docs: Vec<(Document, Decision)> = (0..40)
            .map(|i| {
                let mut d =
                    Document::new(format!("d{i}"), "x".repeat(i + 1), DocKey::new(0, i as u32));
                d.metadata
                    .insert("lang".into(), if i % 3 == 0 { "fr" } else { "en" }.into());
                let mut dec = Decision::default();
                dec.stat("frac", i as f64 / 40.0);
                dec.stat("words", 1000.0 + 37.0 * i as f64);
                if i % 4 == 0 {
                    dec.drop_for("rule_a");
                }
                (d, dec)
            })
            .collect();
        let mut one = BlockStats::new("b", "k");
        for (d, dec) in &docs {
            one.record(d.text.len(), d.text.len(), d, dec);
        }
        let mut parts = vec![BlockStats::new("b", "k"), BlockStats::new("b", "k")];
        for (i, (d, dec)) in docs.iter().enumerate() {
            parts[i % 2].record(d.text.len(), d.text.len(), d, dec);
        }
        let mut sum = BlockStats::new("b", "k");
        for p in &parts {
            let back: BlockStats =
                serde_json::from_str(&serde_json::to_string(p).unwrap()).unwrap();
            sum.merge(&back);
        }
        assert_eq!(sum, one);
        assert_eq!(one.dropped["rule_a"], 10);
        assert_eq!(one.by_language["fr"].documents_in, 14);
        assert_eq!(grid(12345.0), 12300.0);
        assert_eq!(grid(0.12345), 0.123);
    }
}
