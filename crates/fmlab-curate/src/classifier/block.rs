//! [`ClassifierBlock`]: a trained classifier as a curation block, tagging documents with
//! its labels' scores or dropping those whose chosen label scores under a threshold.

use std::borrow::Cow;

use serde_json::Value;

use super::Classifier;
use crate::block::{Block, Decision};
use crate::doc::Document;
use crate::{Error, Result};

/// What the block does with the classifier's probabilities.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassifierMode {
    /// Tag `<name>` = the most likely label and `<name>_score` = its probability.
    TopLabel,
    /// Tag `<name>_<label>` = the probability of every label.
    PerLabel,
    /// Tag `<name>_<label>` = that label's probability, and drop the document
    /// (rule `<label>_score_below_threshold`) when it is under `threshold`.
    Filter { label: String, threshold: f64 },
}

/// A classifier as a [`Block`] named `name` (tags are prefixed with it).
pub struct ClassifierBlock {
    name: String,
    model: Classifier,
    mode: ClassifierMode,
    /// `<name>_<label>` for every label, in the model's label order.
    label_tags: Vec<String>,
    /// The filter's label index and its rule name.
    filter: Option<(usize, f64, String)>,
}

impl ClassifierBlock {
    /// A tagger: `per_label` false tags the top label and its score, true every label's
    /// score.
    pub fn tagger(name: impl Into<String>, model: Classifier, per_label: bool) -> Self {
        let mode = if per_label {
            ClassifierMode::PerLabel
        } else {
            ClassifierMode::TopLabel
        };
        Self::build(name.into(), model, mode, None)
    }

    /// A filter keeping documents whose probability of `label` is at least `threshold`.
    pub fn filter(
        name: impl Into<String>,
        model: Classifier,
        label: &str,
        threshold: f64,
    ) -> Result<Self> {
        let index = model
            .labels()
            .iter()
            .position(|l| l == label)
            .ok_or_else(|| {
                Error::Config(format!(
                    "classifier has no label `{label}` (its labels: {})",
                    model.labels().join(", ")
                ))
            })?;
        if !(0.0..=1.0).contains(&threshold) {
            return Err(Error::Config(format!(
                "classifier threshold {threshold} is not in [0, 1]"
            )));
        }
        let rule = format!("{label}_score_below_threshold");
        let mode = ClassifierMode::Filter {
            label: label.to_string(),
            threshold,
        };
        Ok(Self::build(
            name.into(),
            model,
            mode,
            Some((index, threshold, rule)),
        ))
    }

    fn build(
        name: String,
        model: Classifier,
        mode: ClassifierMode,
        filter: Option<(usize, f64, String)>,
    ) -> Self {
        let label_tags = model
            .labels()
            .iter()
            .map(|l| format!("{name}_{l}"))
            .collect();
        ClassifierBlock {
            name,
            model,
            mode,
            label_tags,
            filter,
        }
    }

    pub fn mode(&self) -> &ClassifierMode {
        &self.mode
    }

    pub fn classifier(&self) -> &Classifier {
        &self.model
    }

    fn tag(out: &mut Decision, doc: &mut Document, name: &str, value: Value) {
        doc.metadata.insert(name.to_string(), value.clone());
        out.tag(Cow::Owned(name.to_string()), value);
    }
}

/// A probability as a JSON number, rounded to 4 decimals (attributes stay short).
fn score(p: f32) -> Value {
    Value::from((f64::from(p) * 1e4).round() / 1e4)
}

impl Block for ClassifierBlock {
    fn name(&self) -> &str {
        &self.name
    }

    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let probs = self.model.probabilities(&doc.text);
        match &self.filter {
            Some((index, threshold, rule)) => {
                let p = probs[*index];
                out.stat(Cow::Owned(self.label_tags[*index].clone()), f64::from(p));
                Self::tag(out, doc, &self.label_tags[*index], score(p));
                if f64::from(p) < *threshold {
                    out.drop_for(Cow::Owned(rule.clone()));
                }
            }
            None if self.mode == ClassifierMode::PerLabel => {
                for (tag, &p) in self.label_tags.iter().zip(&probs) {
                    Self::tag(out, doc, tag, score(p));
                }
            }
            None => {
                let (best, p) =
                    probs
                        .iter()
                        .enumerate()
                        .fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
                let label = Value::from(self.model.labels()[best].clone());
                Self::tag(out, doc, &self.name, label);
                Self::tag(out, doc, &format!("{}_score", self.name), score(p));
            }
        }
    }
}
