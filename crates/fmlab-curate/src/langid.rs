//! Language identification with a score, and [`LanguageFilter`], the block that keeps
//! documents by language and score (FineWeb: fastText's lid.176, keep `en` with score
//! ≥ 0.65).
//!
//! # Which identifier, and why
//!
//! Two backends over the same eight languages: the world's three (`en`, `fr`, `sw`) and the
//! five most common other Latin-script web languages (`de`, `es`, `it`, `pt`, `nl`), so
//! that their pages are named as what they are rather than as the closest of three.
//!
//! - [`Backend::Hashed`] (default): our own n-gram model, the fastText-style
//!   [`Classifier`] (character 2–4-grams and words, hashed, as fastText's lid), trained
//!   when first needed (about a second, once per process) on labelled text that ships with
//!   a package: the 1,000 sentences per language that each `lingua-*-language-model`
//!   crate carries as its accuracy test set (real web and Wikipedia sentences). Every
//!   fifth sentence is held out ([`held_out_sentences`]). It is the fast one (tens of
//!   thousands of short documents a second), and its score is a softmax probability as
//!   fastText's lid.176's is, which FineWeb's 0.65 threshold was set on.
//! - [`Backend::Lingua`]: the `lingua` crate (pure Rust, Apache-2.0) with its bundled
//!   n-gram models from large corpora: the reference, an order of magnitude slower
//!   (fst look-ups per trigram per language). Its confidence values are relative over the
//!   candidates (they sum to 1).
//!
//! Why these: `whatlang` (smaller, faster) has no Swahili, the world's low-resource
//! language; fastText's lid.176 itself is a 126 MB model file that no package ships. The
//! eight lingua crates add ~20 MB of compressed source (2–3 MB each, Swahili 0.4 MB);
//! all 75 languages would be ~200 MB. The cost of either backend grows with the text's
//! length, so [`LanguageIdOptions::max_bytes`] identifies on the first N bytes (default
//! 2,000, cut at a character boundary).
//!
//! # Measured (scripts/check_langid.sh; one core of a shared 2-core machine, wall clock)
//!
//! | backend | world prose en / fr / sw | world code+tables en / fr / sw | reference English | world docs/s | reference docs/s |
//! |---|---|---|---|---|---|
//! | cascade below 0.75 (default) | 0.992 / 0.995 / 1.000 | 0.81 / 0.79 / 0.67 | 0.9948 | 2,400 | 1,200 (7.8 MB/s) |
//! | cascade below 0.9 | 0.993 / 0.995 / 1.000 | 0.82 / 0.78 / 0.67 | 0.9964 | 1,700 | 830 (5.3 MB/s) |
//! | cascade below 0.5 | 0.982 / 0.971 / 0.993 | 0.77 / 0.84 / 0.70 | 0.9856 | 4,700 | 1,800 (11 MB/s) |
//! | hashed | 0.974 / 0.954 / 0.993 | 0.74 / 0.52 / 0.70 | 0.954 | 24,000 | 2,100 (13 MB/s) |
//! | lingua | 0.990 / 0.995 / 1.000 | 0.85 / 0.78 / 0.67 | 0.9964 | 950 | 230 (1.5 MB/s) |
//!
//! (2 MB world, seed 0: 8,199 / 1,287 / 152 prose documents; the reference corpus: 4,433
//! English documents of Debian's docs, identified on their first 2,000 bytes.) On the
//! held-out shipped sentences the hashed model alone scores 0.98–1.00 per language. The
//! world's code and tables carry a few words of their language among names the world
//! invented, so every backend misses many; the reference corpus's misses are mostly
//! pages of commands and listings.
//!
//! A page in a language outside the eight still gets the closest one, with a lower
//! score; text with no letters is named `und` with score 0.

use std::borrow::Cow;
use std::sync::OnceLock;

use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};
use serde_json::Value;

use crate::block::{Block, Decision};
use crate::classifier::{prefix, Classifier, TrainOptions};
use crate::doc::Document;
use crate::{Error, Result};

/// The languages compiled in, with their ISO 639-1 codes.
const LANGUAGES: [(Language, &str); 8] = [
    (Language::English, "en"),
    (Language::French, "fr"),
    (Language::Swahili, "sw"),
    (Language::German, "de"),
    (Language::Spanish, "es"),
    (Language::Italian, "it"),
    (Language::Portuguese, "pt"),
    (Language::Dutch, "nl"),
];

/// The label given to text in which no language could be identified (no letters).
pub const UNDETERMINED: &str = "und";

/// The ISO 639-1 codes of the languages the identifier knows.
pub fn supported_languages() -> Vec<&'static str> {
    LANGUAGES.iter().map(|(_, code)| *code).collect()
}

fn code_of(language: Language) -> &'static str {
    LANGUAGES
        .iter()
        .find(|(l, _)| *l == language)
        .map_or(UNDETERMINED, |(_, c)| *c)
}

fn language_of(code: &str) -> Result<Language> {
    LANGUAGES
        .iter()
        .find(|(_, c)| c.eq_ignore_ascii_case(code))
        .map(|(l, _)| *l)
        .ok_or_else(|| {
            Error::Config(format!(
                "unknown language `{code}`: the language identifier knows {}",
                supported_languages().join(", ")
            ))
        })
}

/// The 1,000 labelled sentences lingua's model crate of `language` ships (its accuracy
/// test set, not its training data).
fn sentences(language: Language) -> Option<&'static str> {
    use Language::*;
    let dir = match language {
        English => lingua_english_language_model::ENGLISH_TESTDATA_DIRECTORY,
        French => lingua_french_language_model::FRENCH_TESTDATA_DIRECTORY,
        Swahili => lingua_swahili_language_model::SWAHILI_TESTDATA_DIRECTORY,
        German => lingua_german_language_model::GERMAN_TESTDATA_DIRECTORY,
        Spanish => lingua_spanish_language_model::SPANISH_TESTDATA_DIRECTORY,
        Italian => lingua_italian_language_model::ITALIAN_TESTDATA_DIRECTORY,
        Portuguese => lingua_portuguese_language_model::PORTUGUESE_TESTDATA_DIRECTORY,
        Dutch => lingua_dutch_language_model::DUTCH_TESTDATA_DIRECTORY,
    };
    dir.get_file("sentences.txt")?.contents_utf8()
}

/// Every fifth shipped sentence of `code` is held out of the hashed model's training;
/// these are they, for measuring it.
pub fn held_out_sentences(code: &str) -> Result<Vec<&'static str>> {
    let language = language_of(code)?;
    Ok(sentences(language)
        .unwrap_or("")
        .lines()
        .enumerate()
        .filter(|(i, _)| i % 5 == 0)
        .map(|(_, s)| s)
        .collect())
}

/// The hashed model's settings: character 2- to 4-grams and words, as fastText's lid.
fn hashed_options() -> TrainOptions {
    TrainOptions {
        dim: 16,
        buckets: 1 << 19,
        word_ngrams: 1,
        min_char_ngram: 2,
        max_char_ngram: 4,
        lowercase: true,
        max_bytes: 0,
        epochs: 5,
        learning_rate: 0.5,
        seed: 0,
    }
}

/// Trains the hashed model on the shipped sentences of `languages` (held-out fifth left out).
fn train_hashed(languages: &[Language]) -> Result<Classifier> {
    let mut examples = Vec::new();
    for &language in languages {
        let text = sentences(language).ok_or_else(|| {
            Error::Config(format!("no labelled sentences for {}", code_of(language)))
        })?;
        for (i, line) in text.lines().enumerate() {
            if i % 5 != 0 && !line.trim().is_empty() {
                examples.push((line.to_string(), code_of(language).to_string()));
            }
        }
    }
    Classifier::train(&examples, &hashed_options())
}

/// The hashed model over all eight languages, trained once per process.
fn hashed_all() -> Result<&'static Classifier> {
    static MODEL: OnceLock<Classifier> = OnceLock::new();
    if let Some(m) = MODEL.get() {
        return Ok(m);
    }
    let all: Vec<Language> = LANGUAGES.iter().map(|(l, _)| *l).collect();
    let model = train_hashed(&all)?;
    Ok(MODEL.get_or_init(|| model))
}

/// Which identifier runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The hashed model first; lingua decides where its score is under
    /// [`LanguageIdOptions::cascade_below`] (most of the speed, most of the accuracy).
    #[default]
    Cascade,
    /// Our fastText-style classifier trained on the sentences lingua's crates ship
    /// (fast: tens of thousands of short documents a second).
    Hashed,
    /// lingua's n-gram models (slower, the reference).
    Lingua,
}

impl Backend {
    /// `hashed` or `lingua`.
    pub fn from_name(name: &str) -> Result<Backend> {
        match name {
            "cascade" => Ok(Backend::Cascade),
            "hashed" => Ok(Backend::Hashed),
            "lingua" => Ok(Backend::Lingua),
            _ => Err(Error::Config(format!(
                "unknown language identifier `{name}` (cascade, hashed or lingua)"
            ))),
        }
    }
}

/// How the identifier runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageIdOptions {
    pub backend: Backend,
    /// ISO 639-1 codes of the candidate languages; empty: all that are compiled in.
    pub candidates: Vec<String>,
    /// Identify on the first `max_bytes` bytes of the text (0: all of it).
    pub max_bytes: usize,
    /// lingua's low-accuracy mode (trigrams only; matters only for texts under 120 chars).
    pub low_accuracy: bool,
    /// The cascade asks lingua when the hashed model's score is under this.
    pub cascade_below: f64,
}

impl Default for LanguageIdOptions {
    fn default() -> Self {
        LanguageIdOptions {
            backend: Backend::default(),
            candidates: Vec::new(),
            max_bytes: 2000,
            low_accuracy: false,
            cascade_below: 0.75,
        }
    }
}

/// A language identifier: text in, (ISO 639-1 code, score in [0, 1]) out.
pub struct LanguageId {
    lingua: Option<LanguageDetector>,
    hashed: Option<Cow<'static, Classifier>>,
    max_bytes: usize,
    cascade_below: f64,
}

impl LanguageId {
    /// Builds the identifier: lingua loads its models (a few hundred ms); the hashed
    /// model trains on the shipped sentences (about a second, once per process for the
    /// full language set).
    pub fn new(options: &LanguageIdOptions) -> Result<Self> {
        let languages = if options.candidates.is_empty() {
            LANGUAGES.iter().map(|(l, _)| *l).collect::<Vec<_>>()
        } else {
            options
                .candidates
                .iter()
                .map(|c| language_of(c))
                .collect::<Result<Vec<_>>>()?
        };
        if languages.len() < 2 {
            return Err(Error::Config(
                "language identification needs at least two candidate languages".into(),
            ));
        }
        let lingua = (options.backend != Backend::Hashed).then(|| {
            let mut builder = LanguageDetectorBuilder::from_languages(&languages);
            builder.with_preloaded_language_models();
            if options.low_accuracy {
                builder.with_low_accuracy_mode();
            }
            builder.build()
        });
        let hashed = match options.backend {
            Backend::Lingua => None,
            _ if languages.len() == LANGUAGES.len() => Some(Cow::Borrowed(hashed_all()?)),
            _ => Some(Cow::Owned(train_hashed(&languages)?)),
        };
        Ok(LanguageId {
            lingua,
            hashed,
            max_bytes: options.max_bytes,
            cascade_below: options.cascade_below,
        })
    }

    /// The most likely language of `text` and its score; (`und`, 0) when none is (no
    /// letters).
    pub fn identify(&self, text: &str) -> (&'static str, f64) {
        let text = prefix(text, self.max_bytes);
        if !text.chars().any(char::is_alphabetic) {
            return (UNDETERMINED, 0.0);
        }
        if let Some(model) = &self.hashed {
            let guess = hashed_identify(model, text);
            if self.lingua.is_none() || guess.1 >= self.cascade_below {
                return guess;
            }
        }
        match &self.lingua {
            Some(detector) => match detector.compute_language_confidence_values(text).first() {
                Some(&(language, score)) if score > 0.0 => (code_of(language), score),
                _ => (UNDETERMINED, 0.0),
            },
            None => (UNDETERMINED, 0.0),
        }
    }
}

fn hashed_identify(model: &Classifier, text: &str) -> (&'static str, f64) {
    let probs = model.probabilities(text);
    let (best, p) = probs
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
    let code = model.labels()[best].as_str();
    let code = LANGUAGES
        .iter()
        .find(|(_, c)| *c == code)
        .map_or(UNDETERMINED, |(_, c)| *c);
    (code, f64::from(p))
}

/// The language block: tags `language` and `language_score` (in the decision and the
/// document's metadata), records `language_score` as a statistic, and drops documents whose
/// language is not kept (`language_not_kept`) or whose score is under the threshold
/// (`language_score_below_threshold`). An empty keep list only tags.
pub struct LanguageFilter {
    id: LanguageId,
    keep: Vec<&'static str>,
    threshold: f64,
}

impl LanguageFilter {
    /// `keep`: ISO 639-1 codes to keep (empty: keep all, tag only); `threshold`: the least
    /// score kept (FineWeb: 0.65), in [0, 1].
    pub fn new<S: AsRef<str>>(
        keep: &[S],
        threshold: f64,
        options: &LanguageIdOptions,
    ) -> Result<Self> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(Error::Config(format!(
                "language score threshold {threshold} is not in [0, 1]"
            )));
        }
        let keep = keep
            .iter()
            .map(|c| language_of(c.as_ref()).map(code_of))
            .collect::<Result<Vec<_>>>()?;
        Ok(LanguageFilter {
            id: LanguageId::new(options)?,
            keep,
            threshold,
        })
    }

    /// The identifier the block uses.
    pub fn identifier(&self) -> &LanguageId {
        &self.id
    }
}

impl Block for LanguageFilter {
    fn name(&self) -> &str {
        "language"
    }

    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let (language, score) = self.id.identify(&doc.text);
        out.stat("language_score", score);
        out.tag("language", Value::from(language));
        out.tag("language_score", Value::from(score));
        doc.metadata
            .insert("language".into(), Value::from(language));
        doc.metadata
            .insert("language_score".into(), Value::from(score));
        if self.keep.is_empty() {
            return;
        }
        if !self.keep.contains(&language) {
            out.drop_for(Cow::Borrowed("language_not_kept"));
        } else if score < self.threshold {
            out.drop_for(Cow::Borrowed("language_score_below_threshold"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::DocKey;

    #[test]
    fn prefix_cuts_at_a_character_boundary() {
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("héllo", 3), "hé");
        assert_eq!(prefix("héllo", 0), "héllo");
    }

    #[test]
    fn unknown_codes_and_bad_thresholds_are_named() {
        let opts = LanguageIdOptions::default();
        let err = LanguageFilter::new(&["xx"], 0.5, &opts)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("`xx`") && e.contains("sw")));
        assert!(LanguageFilter::new(&["en"], 1.5, &opts).is_err());
    }

    #[test]
    fn filter_keeps_english_and_drops_french() {
        let f = LanguageFilter::new(&["en"], 0.65, &LanguageIdOptions::default()).expect("filter");
        let mut doc = Document::new(
            "a",
            "The quick brown fox jumps over the lazy dog while the farmer watches.",
            DocKey::new(0, 0),
        );
        let mut d = Decision::default();
        f.apply(&mut doc, &mut d);
        assert!(!d.dropped(), "{d:?}");
        assert_eq!(doc.metadata["language"], "en");
        let mut doc = Document::new(
            "b",
            "Le renard brun saute par-dessus le chien paresseux pendant que le fermier regarde.",
            DocKey::new(0, 1),
        );
        let mut d = Decision::default();
        f.apply(&mut doc, &mut d);
        assert_eq!(d.drop.as_deref(), Some("language_not_kept"));
        assert_eq!(d.tags[0].1, "fr");
        let mut doc = Document::new("c", "12345 !!! ---", DocKey::new(0, 2));
        let mut d = Decision::default();
        f.apply(&mut doc, &mut d);
        assert_eq!(d.tags[0].1, UNDETERMINED);
        assert!(d.dropped());
    }
}
