//! Training from labelled JSONL, as `fmlab curate train-classifier` does it: read the
//! records, hold out a validation share of every label (a seeded, stratified split), train,
//! and measure accuracy per label on what was held out.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Classifier, Rng, TrainOptions};
use crate::{Error, Result};

/// Where the text and the label are, and how much to hold out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainFileOptions {
    /// The field holding the text (default `text`).
    pub text_field: String,
    /// The field holding the label (default `label`; the world's corpus: `domain` or
    /// `lang`). Strings are used as they are; numbers and booleans as written in JSON.
    pub label_field: String,
    /// Share of every label's records held out for validation, in [0, 1) (default 0.1).
    pub validation_share: f64,
    pub train: TrainOptions,
}

impl Default for TrainFileOptions {
    fn default() -> Self {
        TrainFileOptions {
            text_field: "text".into(),
            label_field: "label".into(),
            validation_share: 0.1,
            train: TrainOptions::default(),
        }
    }
}

/// One label's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelAccuracy {
    pub label: String,
    pub train: usize,
    pub validation: usize,
    /// Validation records of this label predicted as this label.
    pub correct: usize,
    /// `correct / validation` (0 when nothing was held out).
    pub accuracy: f64,
}

/// What training did and how well the model does on the held-out records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub inputs: Vec<PathBuf>,
    pub text_field: String,
    pub label_field: String,
    pub examples: usize,
    pub train_examples: usize,
    pub validation_examples: usize,
    /// Share of validation records predicted right (0 when nothing was held out).
    pub accuracy: f64,
    pub labels: Vec<LabelAccuracy>,
    pub options: TrainOptions,
    pub train_seconds: f64,
    /// Training examples per second (all epochs counted once each).
    pub train_docs_per_s: f64,
    /// Validation records predicted per second.
    pub predict_docs_per_s: f64,
}

/// Reads `(text, label)` pairs from JSONL files; a bad line is an error naming it.
pub fn read_labelled(
    inputs: &[PathBuf],
    text_field: &str,
    label_field: &str,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for path in inputs {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| Error::io(path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            out.push(parse_line(path, n + 1, &line, text_field, label_field)?);
        }
    }
    Ok(out)
}

fn parse_line(
    path: &Path,
    line_no: usize,
    line: &str,
    text_field: &str,
    label_field: &str,
) -> Result<(String, String)> {
    let at = |m: String| Error::format(path, format!("line {line_no}: {m}"));
    let mut record: serde_json::Map<String, Value> =
        serde_json::from_str(line).map_err(|e| at(format!("not a JSON object: {e}")))?;
    let text = match record.remove(text_field) {
        Some(Value::String(s)) => s,
        Some(_) => return Err(at(format!("field `{text_field}` is not a string"))),
        None => return Err(at(format!("no `{text_field}` field"))),
    };
    let label = match record.remove(label_field) {
        Some(Value::String(s)) => s,
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        Some(_) => return Err(at(format!("field `{label_field}` is not a label"))),
        None => return Err(at(format!("no `{label_field}` field"))),
    };
    Ok((text, label))
}

/// `(text, label)` pairs.
type Examples = Vec<(String, String)>;

/// Makes the split's shuffle differ from training's for the same seed.
const SPLIT_SALT: u64 = 0x5eed_0000_5b17_0001;

/// Splits every label's examples (seeded shuffle) into train and validation.
fn split(examples: Vec<(String, String)>, share: f64, seed: u64) -> (Examples, Examples) {
    let mut by_label: std::collections::BTreeMap<String, Vec<(String, String)>> =
        Default::default();
    for e in examples {
        by_label.entry(e.1.clone()).or_default().push(e);
    }
    let mut rng = Rng(seed ^ SPLIT_SALT);
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for (_, mut items) in by_label {
        for i in (1..items.len()).rev() {
            items.swap(i, rng.below(i + 1));
        }
        let held = (items.len() as f64 * share).round() as usize;
        let held = held.min(items.len().saturating_sub(1));
        valid.extend(items.drain(..held));
        train.extend(items);
    }
    (train, valid)
}

/// Reads `inputs`, holds out `validation_share` of every label, trains, and measures
/// accuracy on the held-out records. The caller saves the model ([`Classifier::save`]).
pub fn train_from_jsonl(
    inputs: &[PathBuf],
    options: &TrainFileOptions,
) -> Result<(Classifier, TrainReport)> {
    if !(0.0..1.0).contains(&options.validation_share) {
        return Err(Error::Config(format!(
            "validation share {} is not in [0, 1)",
            options.validation_share
        )));
    }
    options.train.validate()?;
    let examples = read_labelled(inputs, &options.text_field, &options.label_field)?;
    let total = examples.len();
    let (train, valid) = split(examples, options.validation_share, options.train.seed);
    let start = Instant::now();
    let model = Classifier::train(&train, &options.train)?;
    let train_seconds = start.elapsed().as_secs_f64();
    let mut labels: Vec<LabelAccuracy> = model
        .labels()
        .iter()
        .map(|l| LabelAccuracy {
            label: l.clone(),
            train: train.iter().filter(|e| &e.1 == l).count(),
            validation: 0,
            correct: 0,
            accuracy: 0.0,
        })
        .collect();
    let start = Instant::now();
    for (text, label) in &valid {
        let predicted = model.predict(text)[0].0;
        if let Some(row) = labels.iter_mut().find(|r| &r.label == label) {
            row.validation += 1;
            row.correct += usize::from(predicted == label);
        }
    }
    let predict_seconds = start.elapsed().as_secs_f64();
    for row in &mut labels {
        row.accuracy = ratio(row.correct, row.validation);
    }
    let correct = labels.iter().map(|r| r.correct).sum();
    let report = TrainReport {
        inputs: inputs.to_vec(),
        text_field: options.text_field.clone(),
        label_field: options.label_field.clone(),
        examples: total,
        train_examples: train.len(),
        validation_examples: valid.len(),
        accuracy: ratio(correct, valid.len()),
        labels,
        options: options.train.clone(),
        train_seconds,
        train_docs_per_s: (train.len() * options.train.epochs) as f64 / train_seconds.max(1e-9),
        predict_docs_per_s: valid.len() as f64 / predict_seconds.max(1e-9),
    };
    Ok((model, report))
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_named() {
        let p = Path::new("x.jsonl");
        let e = parse_line(p, 3, r#"{"text": "a"}"#, "text", "label").err();
        let e = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.contains("x.jsonl") && e.contains("line 3") && e.contains("`label`"),
            "{e}"
        );
        let ok = parse_line(p, 1, r#"{"text": "a", "label": 1}"#, "text", "label");
        assert_eq!(ok.ok(), Some(("a".to_string(), "1".to_string())));
        assert!(parse_line(p, 1, "[1]", "text", "label").is_err());
    }

    #[test]
    fn split_holds_out_a_share_of_every_label() {
        let ex: Vec<(String, String)> = (0..100)
            .map(|i| {
                (
                    format!("t{i}"),
                    if i % 4 == 0 { "a" } else { "b" }.to_string(),
                )
            })
            .collect();
        let (train, valid) = split(ex, 0.2, 7);
        assert_eq!(valid.iter().filter(|e| e.1 == "a").count(), 5);
        assert_eq!(valid.iter().filter(|e| e.1 == "b").count(), 15);
        assert_eq!(train.len(), 80);
    }
}
