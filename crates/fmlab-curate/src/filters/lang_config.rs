//! Per-language settings of the quality filters (FineWeb-2's idea: thresholds and stop
//! words differ by language), read from a TOML file:
//!
//! ```toml
//! [default]                      # documents without a language, or with one not named
//! gopher_quality.min_doc_words = 50
//!
//! [sw]                           # Swahili; every table is optional
//! gopher_quality.stop_words = ["na", "ya", "wa"]
//! fineweb.line_punct_thr = 0.1
//! ```
//!
//! A language's section starts from FineWeb's defaults (not from `[default]`) and sets what
//! it names; unknown keys are errors. The document's language is `metadata["language"]`.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{C4Config, FineWebConfig, GopherQualityConfig, GopherRepetitionConfig, PerLanguage};
use crate::{Error, Result};

/// The four quality filters' settings for one language. Default: FineWeb's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LanguageConfig {
    pub gopher_repetition: GopherRepetitionConfig,
    pub gopher_quality: GopherQualityConfig,
    pub c4: C4Config,
    pub fineweb: FineWebConfig,
}

impl LanguageConfig {
    pub fn validate(&self) -> Result<()> {
        self.gopher_repetition.validate()?;
        self.gopher_quality.validate()?;
        self.c4.validate()?;
        self.fineweb.validate()
    }
}

/// Settings by language code, with a default for every other document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LanguageRules {
    pub default: LanguageConfig,
    pub languages: HashMap<String, LanguageConfig>,
}

impl LanguageRules {
    /// FineWeb's settings for every language.
    pub fn fineweb() -> Self {
        LanguageRules::default()
    }

    /// Parses the TOML text of a languages file (`source` names it in errors).
    pub fn parse(text: &str, source: &Path) -> Result<Self> {
        let mut table: HashMap<String, LanguageConfig> =
            toml::from_str(text).map_err(|e| Error::format(source, e.to_string()))?;
        let default = table.remove("default").unwrap_or_default();
        let rules = LanguageRules {
            default,
            languages: table,
        };
        rules
            .validate()
            .map_err(|e| Error::format(source, e.to_string()))?;
        Ok(rules)
    }

    /// Reads a languages file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// The settings for `language` (the default when the rules do not name it).
    pub fn get(&self, language: &str) -> &LanguageConfig {
        self.languages.get(language).unwrap_or(&self.default)
    }

    /// Checks every language's settings.
    pub fn validate(&self) -> Result<()> {
        self.default.validate()?;
        for (lang, c) in &self.languages {
            c.validate()
                .map_err(|e| Error::Config(format!("[{lang}] {e}")))?;
        }
        Ok(())
    }

    /// One filter's settings by language.
    pub fn per_language<C>(&self, pick: impl Fn(&LanguageConfig) -> C) -> PerLanguage<C> {
        PerLanguage {
            default: pick(&self.default),
            languages: self
                .languages
                .iter()
                .map(|(k, v)| (k.clone(), pick(v)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_override_fineweb_defaults() {
        let text = "[default]\ngopher_quality.min_doc_words = 40\n\n[sw]\n\
                    gopher_quality.stop_words = [\"na\", \"ya\"]\nfineweb.line_punct_thr = 0.1\n";
        let r = LanguageRules::parse(text, Path::new("l.toml")).unwrap();
        assert_eq!(r.default.gopher_quality.min_doc_words, 40);
        let sw = r.get("sw");
        assert_eq!(sw.gopher_quality.stop_words, ["na", "ya"]);
        assert_eq!(sw.gopher_quality.min_doc_words, 50);
        assert_eq!(sw.fineweb.line_punct_thr, 0.1);
        assert_eq!(r.get("de"), &r.default);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = LanguageRules::parse("[fr]\nfineweb.typo = 1\n", Path::new("l.toml")).unwrap_err();
        assert!(
            e.to_string().contains("l.toml") && e.to_string().contains("typo"),
            "{e}"
        );
        let e = LanguageRules::parse("[fr]\nfineweb.short_line_thr = 3\n", Path::new("l.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("between 0 and 1"), "{e}");
    }
}
