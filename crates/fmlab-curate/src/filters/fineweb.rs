//! FineWeb's own three rules (Penedo et al. 2024) as datatrove's `FineWebQualityFilter`
//! applies them, in its order: the share of lines ending in terminal punctuation, the share
//! of short lines, the characters in duplicated lines, and newlines per word.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{
    char_len, find_duplicates, py_strip, split_newlines, with_words, LanguageRules, PerLanguage,
};
use crate::block::{Block, Decision};
use crate::doc::Document;
use crate::Result;

/// The thresholds. Default: FineWeb's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FineWebConfig {
    /// Lowest share of lines ending in terminal punctuation.
    pub line_punct_thr: f64,
    /// Keep documents where no line ends in punctuation (for scripts without it).
    pub line_punct_exclude_zero: bool,
    /// The line endings that count as terminal punctuation (default: datatrove's
    /// `TERMINAL_PUNCTUATION`, every script's full stops, question and exclamation marks).
    pub stop_chars: Option<Vec<String>>,
    /// Highest share of lines of at most `short_line_length` characters.
    pub short_line_thr: f64,
    pub short_line_length: usize,
    /// Highest share of characters (newlines excluded) in lines seen before.
    pub char_duplicates_ratio: f64,
    /// Highest number of newlines per word.
    pub new_line_ratio: f64,
}

impl Default for FineWebConfig {
    fn default() -> Self {
        FineWebConfig {
            line_punct_thr: 0.12,
            line_punct_exclude_zero: false,
            stop_chars: None,
            short_line_thr: 0.67,
            short_line_length: 30,
            char_duplicates_ratio: 0.01,
            new_line_ratio: 0.3,
        }
    }
}

impl FineWebConfig {
    /// Each statistic's name (as in [`Decision::stats`]) and its threshold;
    /// `line_punct_ratio` drops below it, the others above.
    pub fn thresholds(&self) -> Vec<(Cow<'static, str>, f64)> {
        vec![
            ("line_punct_ratio".into(), self.line_punct_thr),
            ("short_line_ratio".into(), self.short_line_thr),
            ("char_dup_ratio".into(), self.char_duplicates_ratio),
            ("list_ratio".into(), self.new_line_ratio),
        ]
    }

    pub fn validate(&self) -> Result<()> {
        let r = [
            self.line_punct_thr,
            self.short_line_thr,
            self.char_duplicates_ratio,
        ];
        if r.iter().any(|x| !(0.0..=1.0).contains(x)) || self.new_line_ratio < 0.0 {
            return Err(crate::Error::Config(
                "fineweb: ratios are between 0 and 1".into(),
            ));
        }
        if self
            .stop_chars
            .as_ref()
            .is_some_and(|s| s.iter().any(String::is_empty))
        {
            return Err(crate::Error::Config(
                "fineweb: stop_chars holds an empty string".into(),
            ));
        }
        Ok(())
    }
}

/// datatrove's `TERMINAL_PUNCTUATION`.
pub(crate) fn is_terminal_punct(c: char) -> bool {
    const SET: &[u32] = &[
        0x21, 0x2E, 0x3F, 0x589, 0x61D, 0x61E, 0x61F, 0x6D4, 0x700, 0x701, 0x702, 0x7F9, 0x837,
        0x839, 0x83D, 0x83E, 0x964, 0x965, 0x104A, 0x104B, 0x1362, 0x1367, 0x1368, 0x166E, 0x1735,
        0x1736, 0x17D4, 0x17D5, 0x17D6, 0x17D9, 0x17DA, 0x1803, 0x1809, 0x1944, 0x1945, 0x1AA8,
        0x1AA9, 0x1AAA, 0x1AAB, 0x1B5A, 0x1B5B, 0x1B5E, 0x1B5F, 0x1B7D, 0x1B7E, 0x1C3B, 0x1C3C,
        0x1C7E, 0x1C7F, 0x203C, 0x203D, 0x2047, 0x2048, 0x2049, 0x2E2E, 0x2E3C, 0x2E53, 0x2E54,
        0x3002, 0xA4FF, 0xA60E, 0xA60F, 0xA6F3, 0xA6F7, 0xA876, 0xA877, 0xA8CE, 0xA8CF, 0xA92F,
        0xA9C8, 0xA9C9, 0xAA5D, 0xAA5E, 0xAA5F, 0xAAF0, 0xAAF1, 0xABEB, 0xFE52, 0xFE56, 0xFE57,
        0xFF01, 0xFF0E, 0xFF1F, 0xFF61, 0x10A56, 0x10A57, 0x10F55, 0x10F56, 0x10F57, 0x10F58,
        0x10F59, 0x10F86, 0x10F87, 0x10F88, 0x10F89, 0x11047, 0x11048, 0x110BE, 0x110BF, 0x110C0,
        0x110C1, 0x11141, 0x11142, 0x11143, 0x111C5, 0x111C6, 0x111CD, 0x111DE, 0x111DF, 0x11238,
        0x11239, 0x1123B, 0x1123C, 0x112A9, 0x1144B, 0x1144C, 0x115C2, 0x115C3, 0x115C9, 0x115CA,
        0x115CB, 0x115CC, 0x115CD, 0x115CE, 0x115CF, 0x115D0, 0x115D1, 0x115D2, 0x115D3, 0x115D4,
        0x115D5, 0x115D6, 0x115D7, 0x11641, 0x11642, 0x1173C, 0x1173D, 0x1173E, 0x11944, 0x11946,
        0x11A42, 0x11A43, 0x11A9B, 0x11A9C, 0x11C41, 0x11C42, 0x11EF7, 0x11EF8, 0x11F43, 0x11F44,
        0x16A6E, 0x16A6F, 0x16AF5, 0x16B37, 0x16B38, 0x16B44, 0x16E98, 0x1BC9F, 0x1DA88,
    ];
    SET.binary_search(&(c as u32)).is_ok()
}

/// FineWeb's quality filter. Block name `fineweb`.
#[derive(Debug, Clone)]
pub struct FineWebQualityFilter {
    pub config: PerLanguage<FineWebConfig>,
}

impl FineWebQualityFilter {
    pub fn new(config: FineWebConfig) -> Self {
        FineWebQualityFilter {
            config: PerLanguage::single(config),
        }
    }
    pub fn from_rules(rules: &LanguageRules) -> Self {
        FineWebQualityFilter {
            config: rules.per_language(|c| c.fineweb.clone()),
        }
    }
}

impl Default for FineWebQualityFilter {
    fn default() -> Self {
        Self::new(FineWebConfig::default())
    }
}

fn ends_in_punct(line: &str, stop: Option<&Vec<String>>) -> bool {
    match stop {
        None => line.chars().next_back().is_some_and(is_terminal_punct),
        Some(s) => s.iter().any(|e| line.ends_with(e.as_str())),
    }
}

impl Block for FineWebQualityFilter {
    fn name(&self) -> &str {
        "fineweb"
    }

    /// The default language's thresholds (the report draws them on the histograms).
    fn thresholds(&self) -> Vec<(Cow<'static, str>, f64)> {
        self.config.default.thresholds()
    }

    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let cfg = self.config.for_doc(doc);
        let text = doc.text.as_str();
        let lines = || split_newlines(text).filter(|l| !py_strip(l).is_empty());
        let (mut n, mut punct, mut short) = (0usize, 0usize, 0usize);
        for line in lines() {
            n += 1;
            punct += usize::from(ends_in_punct(line, cfg.stop_chars.as_ref()));
            short += usize::from(char_len(line) <= cfg.short_line_length);
        }
        if n == 0 {
            out.drop_for("empty");
            return;
        }
        let ratio = punct as f64 / n as f64;
        out.stat("line_punct_ratio", ratio);
        if ratio < cfg.line_punct_thr && !(ratio == 0.0 && cfg.line_punct_exclude_zero) {
            out.drop_for("line_punct_ratio");
            return;
        }
        let ratio = short as f64 / n as f64;
        out.stat("short_line_ratio", ratio);
        if ratio > cfg.short_line_thr {
            out.drop_for("short_line_ratio");
            return;
        }
        let (_, _, dup_chars) = find_duplicates(text, lines());
        let ratio = dup_chars as f64 / (char_len(text) - text.matches('\n').count()) as f64;
        out.stat("char_dup_ratio", ratio);
        if ratio > cfg.char_duplicates_ratio {
            out.drop_for("char_dup_ratio");
            return;
        }
        let words = with_words(text, <[_]>::len);
        let ratio = text.matches('\n').count() as f64 / words as f64;
        out.stat("list_ratio", ratio);
        if ratio > cfg.new_line_ratio {
            out.drop_for("list_ratio");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::DocKey;

    fn run(text: &str) -> Decision {
        let mut d = Document::new("t", text, DocKey::new(0, 0));
        let mut out = Decision::default();
        FineWebQualityFilter::default().apply(&mut d, &mut out);
        out
    }

    #[test]
    fn rules_in_datatrove_order() {
        assert_eq!(run(" \n\n").drop.as_deref(), Some("empty"));
        assert_eq!(
            run("no punctuation here at all\nnor here").drop.as_deref(),
            Some("line_punct_ratio")
        );
        assert_eq!(
            run("Short.\nTiny.\nSmall.\nA line that is long enough to count as long.")
                .drop
                .as_deref(),
            Some("short_line_ratio")
        );
        let dup = "This line is repeated and long enough to count.\n".repeat(2);
        assert_eq!(run(&dup).drop.as_deref(), Some("char_dup_ratio"));
        let ok = "A first line that ends with a full stop, as prose does.\nAnd a second one, different from it.";
        assert_eq!(run(ok).drop, None);
        assert!(is_terminal_punct('。') && is_terminal_punct('?') && !is_terminal_punct(','));
    }
}
