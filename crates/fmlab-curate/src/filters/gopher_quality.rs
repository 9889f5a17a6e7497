//! Gopher's quality rules (Rae et al. 2021) as datatrove's `GopherQualityFilter` applies
//! them, in its order: word count (non-symbol words), mean word length, `#` and ellipsis
//! per word, lines starting with a bullet, lines ending with an ellipsis, words with a
//! letter, stop words present.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{char_len, find_byte, py_splitlines, with_words, LanguageRules, PerLanguage};
use crate::block::{Block, Decision};
use crate::doc::Document;
use crate::Result;

/// The thresholds (0 turns a rule off, as datatrove's falsy values do). Default: FineWeb's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GopherQualityConfig {
    pub min_doc_words: usize,
    pub max_doc_words: usize,
    pub min_avg_word_length: f64,
    pub max_avg_word_length: f64,
    pub max_symbol_word_ratio: f64,
    pub max_bullet_lines_ratio: f64,
    pub max_ellipsis_lines_ratio: f64,
    /// Lowest share of words with a letter (datatrove's `max_non_alpha_words_ratio`).
    pub max_non_alpha_words_ratio: f64,
    pub min_stop_words: usize,
    /// Matched case-sensitively against whole words, as datatrove does.
    pub stop_words: Vec<String>,
}

impl Default for GopherQualityConfig {
    fn default() -> Self {
        GopherQualityConfig {
            min_doc_words: 50,
            max_doc_words: 100_000,
            min_avg_word_length: 3.0,
            max_avg_word_length: 10.0,
            max_symbol_word_ratio: 0.1,
            max_bullet_lines_ratio: 0.9,
            max_ellipsis_lines_ratio: 0.3,
            max_non_alpha_words_ratio: 0.8,
            min_stop_words: 2,
            stop_words: ["the", "be", "to", "of", "and", "that", "have", "with"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl GopherQualityConfig {
    /// Each statistic's name (as in [`Decision::stats`]) and its threshold; `doc_words` and
    /// `avg_word_length` have a lower and an upper one (in that order), `alpha_words_ratio`
    /// and `stop_words` drop below theirs, the others above.
    pub fn thresholds(&self) -> Vec<(Cow<'static, str>, f64)> {
        vec![
            ("doc_words".into(), self.min_doc_words as f64),
            ("doc_words".into(), self.max_doc_words as f64),
            ("avg_word_length".into(), self.min_avg_word_length),
            ("avg_word_length".into(), self.max_avg_word_length),
            ("hash_word_ratio".into(), self.max_symbol_word_ratio),
            ("ellipsis_word_ratio".into(), self.max_symbol_word_ratio),
            ("bullet_lines_ratio".into(), self.max_bullet_lines_ratio),
            ("ellipsis_lines_ratio".into(), self.max_ellipsis_lines_ratio),
            ("alpha_words_ratio".into(), self.max_non_alpha_words_ratio),
            ("stop_words".into(), self.min_stop_words as f64),
        ]
    }

    pub fn validate(&self) -> Result<()> {
        let ratios = [
            self.max_symbol_word_ratio,
            self.max_bullet_lines_ratio,
            self.max_ellipsis_lines_ratio,
            self.max_non_alpha_words_ratio,
        ];
        if ratios.iter().any(|r| !(0.0..=1.0).contains(r)) {
            return Err(crate::Error::Config(
                "gopher_quality: ratios are between 0 and 1".into(),
            ));
        }
        if self.min_avg_word_length < 0.0 || self.max_avg_word_length < 0.0 {
            return Err(crate::Error::Config(
                "gopher_quality: word lengths are not negative".into(),
            ));
        }
        Ok(())
    }
}

/// Gopher's quality filter. Block name `gopher_quality`.
#[derive(Debug, Clone)]
pub struct GopherQualityFilter {
    pub config: PerLanguage<GopherQualityConfig>,
}

impl GopherQualityFilter {
    pub fn new(config: GopherQualityConfig) -> Self {
        GopherQualityFilter {
            config: PerLanguage::single(config),
        }
    }
    pub fn from_rules(rules: &LanguageRules) -> Self {
        GopherQualityFilter {
            config: rules.per_language(|c| c.gopher_quality.clone()),
        }
    }
}

impl Default for GopherQualityFilter {
    fn default() -> Self {
        Self::new(GopherQualityConfig::default())
    }
}

/// datatrove's `PUNCTUATION_SET` (its `PUNCTUATION` string and `TERMINAL_PUNCTUATION`).
pub(crate) fn is_datatrove_punct(c: char) -> bool {
    if c.is_ascii() {
        // Controls except \t and \n, and every ASCII punctuation mark but none of the letters,
        // digits or spaces.
        return (c.is_ascii_control() && c != '\t' && c != '\n') || c.is_ascii_punctuation();
    }
    const PUNCT: &str =
        "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»";
    let u = c as u32;
    (u < 9 || (11..32).contains(&u) || (127..160).contains(&u))
        || PUNCT.contains(c)
        || super::fineweb::is_terminal_punct(c)
}

fn is_bullet_line(line: &str) -> bool {
    let s = line.trim_start_matches(crate::words::is_space);
    s.starts_with('•') || s.starts_with('-')
}

fn is_ellipsis_line(line: &str) -> bool {
    let s = line.trim_end_matches(crate::words::is_space);
    s.ends_with("...") || s.ends_with('…')
}

/// Counts and ratios of one document, as the rules look at them.
struct Counts {
    words: usize,
    non_symbol: usize,
    non_symbol_chars: usize,
    alpha: usize,
    stop_words: usize,
}

/// Classes of a byte for [`count_words`]: an ASCII character that is not
/// [`is_datatrove_punct`], an ASCII letter, or a byte of a non-ASCII character.
const NOT_PUNCT: u8 = 1;
const ALPHA: u8 = 2;
const NON_ASCII: u8 = 4;

static ASCII_WORD_CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c >= 0x80 {
            NON_ASCII
        } else {
            let punct =
                (c.is_ascii_control() && c != b'\t' && c != b'\n') || c.is_ascii_punctuation();
            (if punct { 0 } else { NOT_PUNCT }) | if c.is_ascii_alphabetic() { ALPHA } else { 0 }
        };
        b += 1;
    }
    t
};

/// `text.matches("...").count()`: non-overlapping, from the left.
fn count_three_dots(text: &str) -> usize {
    let b = text.as_bytes();
    let (mut n, mut i) = (0, 0);
    while let Some(at) = find_byte(b, i, b'.') {
        if b.get(at + 1..at + 3) == Some(b"..") {
            n += 1;
            i = at + 3;
        } else {
            i = at + 1;
        }
    }
    n
}

/// The union of [`ASCII_WORD_CLASSES`] over `w`'s bytes.
fn word_classes(w: &[u8]) -> u8 {
    w.iter()
        .fold(0, |c, &x| c | ASCII_WORD_CLASSES[usize::from(x)])
}

/// `b` and its length in a `u64` when it is 1 to 7 bytes long (so equal packs are equal
/// strings).
#[inline]
fn pack8(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 7 {
        return None;
    }
    let mut v = [0u8; 8];
    v[..b.len()].copy_from_slice(b);
    v[7] = b.len() as u8;
    Some(u64::from_le_bytes(v))
}

fn count_words(text: &str, spans: &[(usize, usize)], stop_words: &[String]) -> Counts {
    let mut c = Counts {
        words: spans.len(),
        non_symbol: 0,
        non_symbol_chars: 0,
        alpha: 0,
        stop_words: 0,
    };
    let mut found = vec![false; stop_words.len()];
    // Stop words yet to be found (once all are, no word is looked up); the stop words of
    // up to 8 bytes packed in a `u64` with their length, compared as one.
    let mut missing = found.len();
    let packed: Vec<Option<u64>> = stop_words.iter().map(|s| pack8(s.as_bytes())).collect();
    let longest_stop_word = stop_words.iter().map(String::len).max().unwrap_or(0);
    for &(a, b) in spans {
        let w = &text[a..b];
        // An ASCII word by a table of its bytes (the same answers as the char tests).
        let classes = word_classes(w.as_bytes());
        // (Counted without branches: which words are symbols or hold letters is
        // unpredictable.)
        let (non_symbol, alpha, chars) = if classes & NON_ASCII == 0 {
            (classes & NOT_PUNCT != 0, classes & ALPHA != 0, w.len())
        } else {
            (
                w.chars().any(|ch| !is_datatrove_punct(ch)),
                w.chars().any(char::is_alphabetic),
                char_len(w),
            )
        };
        c.non_symbol += usize::from(non_symbol);
        c.non_symbol_chars += chars * usize::from(non_symbol);
        c.alpha += usize::from(alpha);
        if missing != 0 && w.len() <= longest_stop_word {
            let i = match pack8(w.as_bytes()) {
                Some(p) => packed.iter().position(|&q| q == Some(p)),
                None => stop_words.iter().position(|s| s == w),
            };
            if let Some(i) = i {
                missing -= usize::from(!found[i]);
                found[i] = true;
            }
        }
    }
    c.stop_words = found.iter().filter(|&&f| f).count();
    c
}

/// Drops with `reason` when `fails`.
fn fail(out: &mut Decision, fails: bool, reason: &'static str) -> bool {
    if fails {
        out.drop_for(reason);
    }
    fails
}

impl Block for GopherQualityFilter {
    fn name(&self) -> &str {
        "gopher_quality"
    }

    /// The default language's thresholds (the report draws them on the histograms).
    fn thresholds(&self) -> Vec<(Cow<'static, str>, f64)> {
        self.config.default.thresholds()
    }

    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let cfg = self.config.for_doc(doc);
        let text = doc.text.as_str();
        let c = with_words(text, |spans| count_words(text, spans, &cfg.stop_words));
        let ns = c.non_symbol;
        out.stat("doc_words", ns as f64);
        if fail(
            out,
            cfg.min_doc_words != 0 && ns < cfg.min_doc_words,
            "gopher_short_doc",
        ) || fail(
            out,
            cfg.max_doc_words != 0 && ns > cfg.max_doc_words,
            "gopher_long_doc",
        ) {
            return;
        }
        let avg = c.non_symbol_chars as f64 / ns as f64;
        out.stat("avg_word_length", avg);
        let (lo, hi) = (cfg.min_avg_word_length, cfg.max_avg_word_length);
        if fail(out, lo != 0.0 && avg < lo, "gopher_below_avg_threshold")
            || fail(out, hi != 0.0 && avg > hi, "gopher_above_avg_threshold")
        {
            return;
        }
        let n = c.words as f64;
        let sym = cfg.max_symbol_word_ratio;
        let hashes = text.matches('#').count() as f64 / n;
        out.stat("hash_word_ratio", hashes);
        if fail(out, sym != 0.0 && hashes > sym, "gopher_too_many_hashes") {
            return;
        }
        let ellipses = (count_three_dots(text) + text.matches('…').count()) as f64 / n;
        out.stat("ellipsis_word_ratio", ellipses);
        if fail(
            out,
            sym != 0.0 && ellipses > sym,
            "gopher_too_many_ellipsis",
        ) {
            return;
        }
        let (mut lines, mut bullets, mut ellipsis_lines) = (0usize, 0usize, 0usize);
        for line in py_splitlines(text) {
            lines += 1;
            bullets += usize::from(is_bullet_line(line));
            ellipsis_lines += usize::from(is_ellipsis_line(line));
        }
        let lines = lines.max(1) as f64;
        let (b, e) = (bullets as f64 / lines, ellipsis_lines as f64 / lines);
        out.stat("bullet_lines_ratio", b);
        let max_b = cfg.max_bullet_lines_ratio;
        if fail(out, max_b != 0.0 && b > max_b, "gopher_too_many_bullets") {
            return;
        }
        out.stat("ellipsis_lines_ratio", e);
        let max_e = cfg.max_ellipsis_lines_ratio;
        if fail(
            out,
            max_e != 0.0 && e > max_e,
            "gopher_too_many_end_ellipsis",
        ) {
            return;
        }
        let alpha = c.alpha as f64 / n;
        out.stat("alpha_words_ratio", alpha);
        let min_alpha = cfg.max_non_alpha_words_ratio;
        if fail(
            out,
            min_alpha != 0.0 && alpha < min_alpha,
            "gopher_below_alpha_threshold",
        ) {
            return;
        }
        let sw = c.stop_words;
        out.stat("stop_words", sw as f64);
        fail(
            out,
            cfg.min_stop_words != 0 && sw < cfg.min_stop_words,
            "gopher_enough_stop_words",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::DocKey;

    #[test]
    fn three_dots_counted_as_str_matches() {
        let pieces = [".", "..", "...", "....", "a", "…", "abcdefghij.", " ", "é."];
        let mut state = 23u64;
        for len in 0..2000 {
            let text = crate::filters::random_text(&pieces, len % 30, &mut state);
            assert_eq!(
                count_three_dots(&text),
                text.matches("...").count(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn word_counts_by_byte_table_equal_counts_by_char() {
        let words = [
            "the", "The", "a", "x1", "...", "-", "—", "é", "a—b", "’", "\u{7}", "\t", "with",
            "withe", "that", "Σ", "0", "(", "a_b", "«»", "١", "…", "!?", "have", "to", "of",
        ];
        let stop: Vec<String> = ["the", "be", "to", "of", "and", "that", "have", "with"]
            .map(String::from)
            .to_vec();
        let mut state = 3u64;
        for _ in 0..2000 {
            let mut text = String::new();
            let mut spans = Vec::new();
            for _ in 0..(state % 9) {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let w = words[(state >> 33) as usize % words.len()];
                spans.push((text.len(), text.len() + w.len()));
                text.push_str(w);
            }
            let c = count_words(&text, &spans, &stop);
            let ws: Vec<&str> = spans.iter().map(|&(a, b)| &text[a..b]).collect();
            let non_symbol: Vec<&&str> = ws
                .iter()
                .filter(|w| w.chars().any(|ch| !is_datatrove_punct(ch)))
                .collect();
            assert_eq!(c.non_symbol, non_symbol.len(), "{ws:?}");
            assert_eq!(
                c.non_symbol_chars,
                non_symbol.iter().map(|w| w.chars().count()).sum::<usize>()
            );
            let alpha = ws.iter().filter(|w| w.chars().any(char::is_alphabetic));
            assert_eq!(c.alpha, alpha.count(), "{ws:?}");
            let found = stop.iter().filter(|s| ws.contains(&s.as_str())).count();
            assert_eq!(c.stop_words, found, "{ws:?}");
        }
    }

    fn run(text: &str) -> Decision {
        let mut d = Document::new("t", text, DocKey::new(0, 0));
        let mut out = Decision::default();
        GopherQualityFilter::default().apply(&mut d, &mut out);
        out
    }

    #[test]
    fn rules_in_datatrove_order() {
        assert_eq!(run("too short.").drop.as_deref(), Some("gopher_short_doc"));
        let good = "The cat sat on the mat and looked at the dog with some interest. ".repeat(6);
        let d = run(&good);
        assert_eq!(d.drop, None, "{:?}", d.stats);
        assert!(d.stats.iter().any(|(n, v)| n == "stop_words" && *v == 3.0));
        let no_stop = "Cats sit on mats and look at dogs quite often today. ".repeat(6);
        assert_eq!(
            run(&no_stop).drop.as_deref(),
            Some("gopher_enough_stop_words")
        );
        let hashes = format!("{} {}", good, "# ".repeat(60));
        assert_eq!(run(&hashes).drop.as_deref(), Some("gopher_too_many_hashes"));
        let bullets = "- the item to have with the list of things\n".repeat(10);
        assert_eq!(
            run(&bullets).drop.as_deref(),
            Some("gopher_too_many_bullets")
        );
    }
}
