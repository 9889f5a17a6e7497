//! The block kinds a pipeline names, and how each is built from its options (a TOML
//! table; unknown options are refused by name).

use std::path::PathBuf;

use serde::Deserialize;

use crate::classifier::{Classifier, ClassifierBlock};
use crate::filters::{
    C4Config, C4QualityFilter, FineWebConfig, FineWebQualityFilter, GopherQualityConfig,
    GopherQualityFilter, GopherRepetitionConfig, GopherRepetitionFilter, LanguageRules, PiiConfig,
    PiiFormatter, UrlBlocklistFilter, WordBlocklistFilter,
};
use crate::langid::{Backend, LanguageFilter, LanguageIdOptions};
use crate::pipeline::dedups::{BloomStage, ExactStage, MinhashStage};
use crate::pipeline::run::Built;
use crate::pipeline::spec::BlockSpec;
use crate::{Error, Result};

/// Every block kind with what it does (`fmlab curate --list-blocks`).
pub const BLOCK_KINDS: [(&str, &str); 12] = [
    ("gopher_repetition", "Gopher's repetition rules: duplicate lines and paragraphs, top n-grams, duplicated n-grams (FineWeb's thresholds; options: any threshold, or `languages` = a per-language TOML such as configs/curate/languages.toml)"),
    ("gopher_quality", "Gopher's quality rules: word count, mean word length, symbols, bullets, ellipses, alphabetic words, stop words (options as gopher_repetition)"),
    ("c4", "C4's rules: lines without enough words, with javascript or policy phrases removed; documents with lorem ipsum, curly brackets or too few sentences dropped (terminal punctuation off, as FineWeb; options as gopher_repetition)"),
    ("fineweb", "FineWeb's own rules: line-ending punctuation, short lines, duplicated line characters, list-like documents (options as gopher_repetition)"),
    ("url_blocklist", "drops documents whose `url` is on a blocklist (option `file`: domains, subdomains or URLs, one per line)"),
    ("word_blocklist", "drops documents with a blocklisted word (option `file`: one word per line, whole words, any case)"),
    ("pii", "replaces e-mail addresses and public IP addresses as datatrove's PIIFormatter does"),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOption {
    file: PathBuf,
}

/// A quality filter's rules: a per-language file (`languages = "…toml"`), or its settings
/// inline (FineWeb's where not given).
fn rules_or<C: serde::de::DeserializeOwned>(
    spec: &BlockSpec,
) -> Result<std::result::Result<LanguageRules, C>> {
    match spec.options.get("languages") {
        Some(toml::Value::String(path)) => {
            if spec.options.len() > 1 {
                return Err(Error::Config(format!(
                    "block {:?}: with a `languages` file, set thresholds in that file",
                    spec.name()
                )));
            }
            Ok(Ok(LanguageRules::load(std::path::Path::new(path))?))
        }
        Some(_) => Err(Error::Config(format!(
            "block {:?}: `languages` is a file path",
            spec.name()
        ))),
        None => Ok(Err(spec.options()?)),
    }
}

fn quality_filter(spec: &BlockSpec) -> Result<Box<dyn crate::Block>> {
    Ok(match spec.kind.as_str() {
        "gopher_repetition" => match rules_or::<GopherRepetitionConfig>(spec)? {
            Ok(r) => Box::new(GopherRepetitionFilter::from_rules(&r)),
            Err(c) => {
                c.validate()?;
                Box::new(GopherRepetitionFilter::new(c))
            }
        },
        "gopher_quality" => match rules_or::<GopherQualityConfig>(spec)? {
            Ok(r) => Box::new(GopherQualityFilter::from_rules(&r)),
            Err(c) => {
                c.validate()?;
                Box::new(GopherQualityFilter::new(c))
            }
        },
        "c4" => match rules_or::<C4Config>(spec)? {
            Ok(r) => Box::new(C4QualityFilter::from_rules(&r)),
            Err(c) => {
                c.validate()?;
                Box::new(C4QualityFilter::new(c))
            }
        },
        _ => match rules_or::<FineWebConfig>(spec)? {
            Ok(r) => Box::new(FineWebQualityFilter::from_rules(&r)),
            Err(c) => {
                c.validate()?;
                Box::new(FineWebQualityFilter::new(c))
            }
        },
    })
}

/// Builds the block `spec` names.
pub fn build_block(spec: &BlockSpec) -> Result<Built> {
    let stream = |b: Box<dyn crate::Block>| Ok(Built::Stream(b));
    match spec.kind.as_str() {
        "gopher_repetition" | "gopher_quality" | "c4" | "fineweb" => stream(quality_filter(spec)?),
        "url_blocklist" => {
            let o: FileOption = spec.options()?;
            stream(Box::new(UrlBlocklistFilter::from_file(&o.file)?))
        }
        "word_blocklist" => {
            let o: FileOption = spec.options()?;
            stream(Box::new(WordBlocklistFilter::from_file(&o.file)?))
        }
        "pii" => {
            let o: PiiConfig = spec.options()?;
            stream(Box::new(PiiFormatter::new(o)?))
        }
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
