//! C4's rules (Raffel et al. 2020) as datatrove's `C4QualityFilter` applies them: line
//! removals (a word over 1,000 characters, fewer than 3 words, "javascript", cookie and
//! terms-of-use phrases, optionally no terminal punctuation; Wikipedia citation marks are
//! cut out of the lines) and document rules ("lorem ipsum" or `{` in a kept line drops the
//! document, as do fewer than 5 sentences in the kept lines). A kept document's text
//! becomes its kept lines, stripped, joined by newlines.

use std::borrow::Cow;
use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use super::{py_splitlines, py_strip, store_words, with_words, LanguageRules, PerLanguage};
use crate::block::{Block, Decision};
use crate::doc::Document;
use crate::words::{self, Span};
use crate::Result;

/// The rules. Default: FineWeb's (datatrove's defaults, terminal-punctuation rule off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct C4Config {
    /// Cut `[1]`, `[edit]`, `[citation needed]` out of lines.
    pub remove_citations: bool,
    /// Remove lines that do not end in `.`, `?`, `!`, `"` or `'` (or end in `...`).
    pub filter_no_terminal_punct: bool,
    /// Drop documents whose kept lines hold fewer sentences (-1: off).
    pub min_num_sentences: i64,
    /// Remove lines with fewer whitespace-separated words (-1: off).
    pub min_words_per_line: i64,
    /// Remove lines with a longer word, in characters (-1: off).
    pub max_word_length: i64,
    pub filter_lorem_ipsum: bool,
    pub filter_javascript: bool,
    pub filter_curly_bracket: bool,
    pub filter_policy: bool,
}

impl Default for C4Config {
    fn default() -> Self {
        C4Config {
            remove_citations: true,
            filter_no_terminal_punct: false,
            min_num_sentences: 5,
            min_words_per_line: 3,
            max_word_length: 1000,
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

impl C4Config {
    /// The statistic `sentences` and its lowest value.
    pub fn thresholds(&self) -> Vec<(Cow<'static, str>, f64)> {
        vec![("sentences".into(), self.min_num_sentences as f64)]
    }

    pub fn validate(&self) -> Result<()> {
        if self.min_num_sentences < -1 || self.min_words_per_line < -1 || self.max_word_length < -1
        {
            return Err(crate::Error::Config(
                "c4: counts are -1 (off) or more".into(),
            ));
        }
        Ok(())
    }
}

const POLICY: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

/// C4's quality filter, a text modifier. Block name `c4`.
#[derive(Debug, Clone)]
pub struct C4QualityFilter {
    pub config: PerLanguage<C4Config>,
}

impl C4QualityFilter {
    pub fn new(config: C4Config) -> Self {
        C4QualityFilter {
            config: PerLanguage::single(config),
        }
    }
    pub fn from_rules(rules: &LanguageRules) -> Self {
        C4QualityFilter {
            config: rules.per_language(|c| c.c4.clone()),
        }
    }
}

impl Default for C4QualityFilter {
    fn default() -> Self {
        Self::new(C4Config::default())
    }
}

/// Cuts `[digits]`, `[edit]` and `[citation needed]` out of `line` into `buf`.
fn remove_citations(line: &str, buf: &mut String) {
    buf.clear();
    let mut rest = line;
    while let Some(at) = rest.find('[') {
        buf.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let skip = if tail[digits..].starts_with(']') {
            Some(digits + 1)
        } else if tail.starts_with("edit]") {
            Some(5)
        } else if tail.starts_with("citation needed]") {
            Some(16)
        } else {
            None
        };
        match skip {
            Some(k) => rest = &tail[k..],
            None => {
                buf.push('[');
                rest = tail;
            }
        }
    }
    buf.push_str(rest);
}

/// Scratch buffers reused across documents.
#[derive(Default)]
struct Scratch {
    line: String,
    lower: String,
    kept: String,
    spans: Vec<Span>,
    /// The words of `kept`.
    kept_words: Vec<Span>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Lowercases `s` into `buf` (ASCII case folding for ASCII text, Unicode otherwise).
fn lower_into(s: &str, buf: &mut String) {
    buf.clear();
    if s.is_ascii() {
        buf.push_str(s);
        buf.make_ascii_lowercase();
    } else {
        buf.extend(s.chars().flat_map(char::to_lowercase));
    }
}

/// Counts of removed lines by rule, recorded as statistics.
#[derive(Default)]
struct LineCounts {
    total: usize,
    too_long_word: usize,
    no_terminal_punct: usize,
    too_few_words: usize,
    javascript: usize,
    policy: usize,
}

impl Block for C4QualityFilter {
    fn name(&self) -> &str {
        "c4"
    }

    /// The default language's thresholds (the report draws them on the histograms).
    fn thresholds(&self) -> Vec<(Cow<'static, str>, f64)> {
        self.config.default.thresholds()
    }

    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let cfg = self.config.for_doc(doc);
        SCRATCH.with(|cell| {
            let mut s = cell.borrow_mut();
            let text = doc.text.as_str();
            let keep = with_words(text, |words| scan(cfg, text, words, &mut s, out));
            if !keep {
                return;
            }
            let Scratch {
                kept, kept_words, ..
            } = &mut *s;
            let new_text = py_strip(kept);
            if new_text != doc.text {
                // Only whitespace was stripped: no word starts before `shift`.
                let shift = kept.len() - kept.trim_start_matches(words::is_space).len();
                for w in kept_words.iter_mut() {
                    *w = (w.0 - shift, w.1 - shift);
                }
                doc.text.clear();
                doc.text.push_str(new_text);
                store_words(&doc.text, kept_words);
            }
        });
    }
}

/// The line rules over `text` (whose words are `words`): fills `s.kept` with the kept lines
/// and `s.kept_words` with their words, records the statistics, and says whether the
/// document is kept.
fn scan(cfg: &C4Config, text: &str, words: &[Span], s: &mut Scratch, out: &mut Decision) -> bool {
    let Scratch {
        line: buf,
        lower,
        kept,
        spans,
        kept_words,
    } = s;
    kept.clear();
    kept_words.clear();
    let mut c = LineCounts::default();
    let mut sentences = 0usize;
    let mut verdict: Option<&'static str> = None;
    let mut next_word = 0;
    for raw in py_splitlines(text) {
        c.total += 1;
        let line = py_strip(raw);
        let n_words = line.split(words::is_space).filter(|w| !w.is_empty());
        let (mut count, mut too_long) = (0i64, false);
        for w in n_words {
            count += 1;
            too_long |=
                cfg.max_word_length != -1 && super::char_len(w) as i64 > cfg.max_word_length;
        }
        if too_long {
            c.too_long_word += 1;
            continue;
        }
        let cited = cfg.remove_citations && line.contains('[');
        let original = line;
        let line: &str = if cited {
            remove_citations(line, buf);
            buf
        } else {
            line
        };
        let ends = line.ends_with(['.', '?', '!', '"', '\'']) && !line.ends_with("...");
        if cfg.filter_no_terminal_punct && !ends {
            c.no_terminal_punct += 1;
            continue;
        }
        if count < cfg.min_words_per_line {
            c.too_few_words += 1;
            continue;
        }
        lower_into(line, lower);
        if cfg.filter_lorem_ipsum && lower.contains("lorem ipsum") {
            verdict = Some("lorem_ipsum");
            break;
        }
        if cfg.filter_javascript && lower.contains("javascript") {
            c.javascript += 1;
            continue;
        }
        if cfg.filter_curly_bracket && line.contains('{') {
            verdict = Some("curly_bracket");
            break;
        }
        if cfg.filter_policy && POLICY.iter().any(|p| lower.contains(p)) {
            c.policy += 1;
            continue;
        }
        if !kept.is_empty() {
            kept.push('\n');
        }
        let at = kept.len();
        kept.push_str(line);
        // The line's words: the text's words inside it, or a new split of the line when
        // citations were cut out of it.
        let (src, line_words, base): (&str, &[Span], usize) = if line.len() != original.len() {
            words::word_spans(line, spans);
            (line, spans, 0)
        } else {
            let start = original.as_ptr() as usize - text.as_ptr() as usize;
            let end = start + original.len();
            while next_word < words.len() && words[next_word].0 < start {
                next_word += 1;
            }
            let first = next_word;
            while next_word < words.len() && words[next_word].1 <= end {
                next_word += 1;
            }
            (text, &words[first..next_word], start)
        };
        kept_words.extend(
            line_words
                .iter()
                .map(|&(a, b)| (a - base + at, b - base + at)),
        );
        if cfg.min_num_sentences != -1 {
            // Without a sentence mark the line is one sentence: skip counting.
            sentences += if line.contains(words::is_sentence_punct) {
                words::count_sentences(src, line_words)
            } else {
                1
            };
        }
    }
    let removed = c.too_long_word + c.no_terminal_punct + c.too_few_words + c.javascript + c.policy;
    out.stat("lines", c.total as f64);
    out.stat("lines_removed", removed as f64);
    out.stat("lines_removed_too_long_word", c.too_long_word as f64);
    out.stat(
        "lines_removed_no_terminal_punct",
        c.no_terminal_punct as f64,
    );
    out.stat("lines_removed_too_few_words", c.too_few_words as f64);
    out.stat("lines_removed_javascript", c.javascript as f64);
    out.stat("lines_removed_policy", c.policy as f64);
    if let Some(v) = verdict {
        out.drop_for(v);
        return false;
    }
    out.stat("sentences", sentences as f64);
    if (sentences as i64) < cfg.min_num_sentences {
        out.drop_for("too_few_sentences");
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::DocKey;

    fn run(text: &str) -> (Decision, String) {
        let mut d = Document::new("t", text, DocKey::new(0, 0));
        let mut out = Decision::default();
        C4QualityFilter::default().apply(&mut d, &mut out);
        (out, d.text)
    }

    #[test]
    fn citations_are_cut() {
        let mut b = String::new();
        remove_citations("a[1] b[edit] c[citation needed] d[x] e[]", &mut b);
        assert_eq!(b, "a b c d[x] e");
    }

    #[test]
    fn lines_removed_and_documents_dropped() {
        let text =
            "Menu\nThis site uses cookies to track you.\nOne sentence here. Two sentences here.\n\
                    Enable JavaScript to view this page please.\nThree here! Four here? Five here.";
        let (d, t) = run(text);
        assert_eq!(d.drop, None);
        assert_eq!(
            t,
            "One sentence here. Two sentences here.\nThree here! Four here? Five here."
        );
        assert!(d
            .stats
            .iter()
            .any(|(n, v)| n == "lines_removed" && *v == 3.0));
        assert_eq!(
            run("One two three.\nA b c d.").0.drop.as_deref(),
            Some("too_few_sentences")
        );
        assert_eq!(
            run("int main() { return 0; }").0.drop.as_deref(),
            Some("curly_bracket")
        );
        assert_eq!(
            run("Lorem ipsum dolor sit amet.").0.drop.as_deref(),
            Some("lorem_ipsum")
        );
    }

    #[test]
    fn kept_lines_words_are_left_for_the_next_filter() {
        let text = "\n  \nMenu\nSee the note[1] here. And \"this\" one[edit], it's fine.\n\
                    Don't stop (e.g. here). Wait... what?\n\u{2028}Tabs\tand  spaces. Ok.\n \n";
        for cfg in [
            C4Config::default(),
            C4Config {
                min_words_per_line: -1,
                min_num_sentences: -1,
                ..C4Config::default()
            },
        ] {
            let mut d = Document::new("t", text, DocKey::new(0, 0));
            let mut out = Decision::default();
            C4QualityFilter::new(cfg).apply(&mut d, &mut out);
            assert_eq!(out.drop, None);
            assert_ne!(d.text, text);
            // The cache holds the new text: `with_words` does not split it again.
            let cached = crate::filters::WORDS.with(|c| {
                let c = c.borrow();
                assert_eq!(c.text, d.text);
                c.spans.clone()
            });
            let mut fresh = Vec::new();
            words::word_spans(&d.text, &mut fresh);
            assert_eq!(cached, fresh, "{:?}", d.text);
        }
    }
}
