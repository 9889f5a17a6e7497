//! C4's rules (Raffel et al. 2020) as datatrove's `C4QualityFilter` applies them: line
//! removals (a word over 1,000 characters, fewer than 3 words, "javascript", cookie and
//! terms-of-use phrases, optionally no terminal punctuation; Wikipedia citation marks are
//! cut out of the lines) and document rules ("lorem ipsum" or `{` in a kept line drops the
//! document, as do fewer than 5 sentences in the kept lines). A kept document's text
//! becomes its kept lines, stripped, joined by newlines.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

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
/// Whether an ASCII line, lowercased, may hold "lorem ipsum", "javascript" or one of
/// [`POLICY`] (one pass of an automaton over the line, ignoring ASCII case, which is all
/// that lowercasing an ASCII line changes; `true` when the automaton cannot be built).
fn may_hold_phrase(line: &str) -> bool {
    static PHRASES: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    PHRASES
        .get_or_init(|| {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(POLICY.iter().chain(&["lorem ipsum", "javascript"]))
                .ok()
        })
        .as_ref()
        .is_none_or(|ac| ac.is_match(line))
}

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
        if cfg.max_word_length == -1 || line.len() as i64 <= cfg.max_word_length {
            // No word can be too long (a word has no more characters than the line has
            // bytes), and the count only meets the minimum: counted that far.
            for _ in n_words {
                count += 1;
                if count >= cfg.min_words_per_line {
                    break;
                }
            }
        } else {
            for w in n_words {
                count += 1;
                too_long |= super::char_len(w) as i64 > cfg.max_word_length;
            }
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
        if line.is_ascii() && !may_hold_phrase(line) {
            // None of the phrases is in the lowercased line: only the bracket rule is left.
            if cfg.filter_curly_bracket && line.contains('{') {
                verdict = Some("curly_bracket");
                break;
            }
        } else {
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
    /// The line rules as datatrove writes them, a line at a time: (too long a word, too
    /// few words, javascript, policy) counts and the drop.
    fn naive(cfg: &C4Config, text: &str) -> ([usize; 4], Option<&'static str>) {
        let mut n = [0usize; 4];
        let mut buf = String::new();
        for raw in py_splitlines(text) {
            let line = py_strip(raw);
            let words: Vec<&str> = line
                .split(words::is_space)
                .filter(|w| !w.is_empty())
                .collect();
            if cfg.max_word_length != -1
                && words
                    .iter()
                    .any(|w| w.chars().count() as i64 > cfg.max_word_length)
            {
                n[0] += 1;
                continue;
            }
            let line = if cfg.remove_citations && line.contains('[') {
                remove_citations(line, &mut buf);
                buf.as_str()
            } else {
                line
            };
            if (words.len() as i64) < cfg.min_words_per_line {
                n[1] += 1;
                continue;
            }
            let lower: String = line.chars().flat_map(char::to_lowercase).collect();
            if lower.contains("lorem ipsum") {
                return (n, Some("lorem_ipsum"));
            }
            if lower.contains("javascript") {
                n[2] += 1;
                continue;
            }
            if line.contains('{') {
                return (n, Some("curly_bracket"));
            }
            if POLICY.iter().any(|p| lower.contains(p)) {
                n[3] += 1;
            }
        }
        (n, None)
    }

    #[test]
    fn line_rules_as_written() {
        // Phrases in any case, cut by a space or by a line, after a non-ASCII letter, and
        // one whose Kelvin sign lowercases to an ASCII "k"; words of 1 to 9 characters.
        let pieces = [
            "a",
            "bb",
            "word",
            "sevenxx",
            "éé",
            "ninechars",
            " ",
            " ",
            " ",
            "\n",
            "\n",
            ".",
            "JavaScript",
            "javas cript",
            "Lorem IPSUM",
            "lorem\nipsum",
            "Privacy Policy",
            "uses cookies",
            "USE OF COOKIES",
            "use  cookies",
            "terms of use",
            "coo\u{212a}ies",
            "use ",
            "Σ",
            "{",
            "[1]",
            "[",
            "\t",
            "\u{a0}",
        ];
        let configs = [
            C4Config::default(),
            C4Config {
                max_word_length: 6,
                ..C4Config::default()
            },
            C4Config {
                max_word_length: 2,
                min_words_per_line: 1,
                ..C4Config::default()
            },
            C4Config {
                min_words_per_line: -1,
                ..C4Config::default()
            },
            C4Config {
                min_words_per_line: 0,
                max_word_length: -1,
                ..C4Config::default()
            },
        ];
        let names = [
            "lines_removed_too_long_word",
            "lines_removed_too_few_words",
            "lines_removed_javascript",
            "lines_removed_policy",
        ];
        let mut state = 21u64;
        let mut seen = [0usize; 4];
        for k in 0..3000 {
            let text = crate::filters::random_text(&pieces, k % 40, &mut state);
            for cfg in &configs {
                let cfg = C4Config {
                    min_num_sentences: -1,
                    ..cfg.clone()
                };
                let (want, drop) = naive(&cfg, &text);
                let mut d = Document::new("t", text.as_str(), DocKey::new(0, 0));
                let mut out = Decision::default();
                C4QualityFilter::new(cfg).apply(&mut d, &mut out);
                assert_eq!(out.drop.as_deref(), drop, "{text:?}");
                for (j, name) in names.iter().enumerate() {
                    let got = out.stats.iter().find(|(n, _)| n == name).map(|s| s.1);
                    assert_eq!(got, Some(want[j] as f64), "{name} {text:?}");
                    seen[j] += want[j];
                }
            }
        }
        assert!(seen.iter().all(|&s| s > 100), "{seen:?}");
    }
}
