//! The block kinds a pipeline names, and how each is built from its options (a TOML
//! table; unknown options are refused by name).

use std::path::PathBuf;

use serde::Deserialize;

use crate::classifier::{Classifier, ClassifierBlock};
use crate::langid::{Backend, LanguageFilter, LanguageIdOptions};
use crate::pipeline::dedups::{BloomStage, ExactStage, MinhashStage};
use crate::pipeline::run::Built;
use crate::pipeline::spec::BlockSpec;
use crate::{Error, Result};

/// Every block kind with what it does (`fmlab curate --list-blocks`).
pub const BLOCK_KINDS: [(&str, &str); 5] = [
    ("language", "language ID: tags language and language_score; keeps `languages` scored ≥ `threshold` (options: languages, threshold, backend cascade|hashed|lingua, max_bytes)"),
    ("classifier", "a fastText-style classifier (`model`, from `fmlab curate train-classifier`): tags label and score, or with `label` and `threshold` drops documents under it"),
    ("minhash", "MinHash LSH near-duplicates, datatrove's defaults (options: n_grams 5, buckets 14, hashes_per_bucket 8, seed 1); one document per cluster kept"),
    ("exact_dedup", "exact duplicates of the normalised text; the first kept"),
    ("bloom_paragraphs", "dolma's paragraph deduplication with a Bloom filter (options: expected_paragraphs, false_positive_rate); documents left empty dropped"),
];

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LanguageOptions {
    languages: Vec<String>,
    threshold: f64,
    backend: String,
    max_bytes: usize,
}

impl Default for LanguageOptions {
    fn default() -> Self {
        LanguageOptions {
            languages: Vec::new(),
            threshold: 0.65,
            backend: "cascade".into(),
            max_bytes: 2000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifierOptions {
    model: PathBuf,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    threshold: Option<f64>,
    #[serde(default)]
    per_label: bool,
}

/// Builds the block `spec` names.
pub fn build_block(spec: &BlockSpec) -> Result<Built> {
    let stream = |b: Box<dyn crate::Block>| Ok(Built::Stream(b));
    match spec.kind.as_str() {
        "language" => {
            let o: LanguageOptions = spec.options()?;
            let id = LanguageIdOptions {
                backend: Backend::from_name(&o.backend)?,
                max_bytes: o.max_bytes,
                ..Default::default()
            };
            stream(Box::new(LanguageFilter::new(
                &o.languages,
                o.threshold,
                &id,
            )?))
        }
        "classifier" => {
            let o: ClassifierOptions = spec.options()?;
            let model = Classifier::load(&o.model)?;
            match (o.label, o.threshold) {
                (Some(label), Some(t)) => stream(Box::new(ClassifierBlock::filter(
                    spec.name(),
                    model,
                    &label,
                    t,
                )?)),
                (None, None) => stream(Box::new(ClassifierBlock::tagger(
                    spec.name(),
                    model,
                    o.per_label,
                ))),
                _ => Err(Error::Config(format!(
                    "block {:?}: a classifier filter needs both `label` and `threshold`",
                    spec.name()
                ))),
            }
        }
        "minhash" => Ok(Built::Dedup(Box::new(MinhashStage::new(spec)?))),
        "exact_dedup" => Ok(Built::Dedup(Box::new(ExactStage::new(spec)?))),
        "bloom_paragraphs" => Ok(Built::Dedup(Box::new(BloomStage::new(spec)?))),
        other => {
            let kinds: Vec<&str> = BLOCK_KINDS.iter().map(|(k, _)| *k).collect();
            Err(Error::Config(format!(
                "unknown block kind {other:?}: the kinds are {}",
                kinds.join(", ")
            )))
        }
    }
}
