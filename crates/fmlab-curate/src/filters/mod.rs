//! Quality filters as FineWeb's recipe runs them with datatrove 0.10: Gopher repetition,
//! Gopher quality, C4 (line removals and document rules) and FineWeb's own three rules; URL
//! and word blocklists; PII formatting. Every filter is a [`Block`](crate::Block) built
//! from a config whose `Default` is FineWeb's setting, drops with datatrove's reason strings
//! and records the statistics its rules looked at in [`Decision::stats`](crate::Decision).
//!
//! Per-language settings ([`LanguageRules`], FineWeb-2's idea) come from a TOML file; a
//! document's language is `doc.metadata["language"]`, set by a language-ID block upstream.
//!
//! The four quality filters split a document into words once: the split is cached per
//! thread for the last text seen, so Gopher repetition, Gopher quality and C4 share it, and
//! C4, which rewrites the text as its kept lines, leaves the kept lines' words (the same
//! spans, moved) in the cache for FineWeb. Whitespace ends every word and every line break
//! is whitespace, so a line's words are the text's words inside it.

pub mod blocklist;
pub mod c4;
pub mod fineweb;
pub mod gopher_quality;
pub mod gopher_repetition;
pub mod lang_config;
pub mod pii;
mod table;

pub use blocklist::{UrlBlocklistFilter, WordBlocklistFilter};
pub use c4::{C4Config, C4QualityFilter};
pub use fineweb::{FineWebConfig, FineWebQualityFilter};
pub use gopher_quality::{GopherQualityConfig, GopherQualityFilter};
pub use gopher_repetition::{GopherRepetitionConfig, GopherRepetitionFilter};
pub use lang_config::{LanguageConfig, LanguageRules};
pub use pii::{PiiConfig, PiiFormatter};

use std::cell::RefCell;
use std::collections::HashMap;

use crate::doc::Document;
use crate::words::{self, Span};

/// The four FineWeb quality filters in FineWeb's order (Gopher repetition → Gopher quality
/// → C4 → FineWeb), each with the settings `rules` gives the document's language.
pub fn fineweb_filters(rules: &LanguageRules) -> Vec<Box<dyn crate::Block>> {
    vec![
        Box::new(GopherRepetitionFilter::from_rules(rules)),
        Box::new(GopherQualityFilter::from_rules(rules)),
        Box::new(C4QualityFilter::from_rules(rules)),
        Box::new(FineWebQualityFilter::from_rules(rules)),
    ]
}

/// A filter's settings: one for documents without a language or with a language the rules
/// do not name, and one per named language.
#[derive(Debug, Clone, PartialEq)]
pub struct PerLanguage<C> {
    pub default: C,
    pub languages: HashMap<String, C>,
}

impl<C> PerLanguage<C> {
    /// The same settings for every language.
    pub fn single(default: C) -> Self {
        PerLanguage {
            default,
            languages: HashMap::new(),
        }
    }
    /// The settings for `doc`'s language (`metadata["language"]`), else the default.
    pub fn for_doc(&self, doc: &Document) -> &C {
        doc.metadata
            .get("language")
            .and_then(|v| v.as_str())
            .and_then(|l| self.languages.get(l))
            .unwrap_or(&self.default)
    }
}

struct WordCache {
    text: String,
    spans: Vec<Span>,
}

thread_local! {
    static WORDS: RefCell<WordCache> = const { RefCell::new(WordCache { text: String::new(), spans: Vec::new() }) };
}

/// Runs `f` on the words of `text` (byte spans), splitting it only when this thread's last
/// call was on another text. `f` must not call `with_words` itself.
pub(crate) fn with_words<R>(text: &str, f: impl FnOnce(&[Span]) -> R) -> R {
    WORDS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut cache) => {
            if cache.text != text {
                let WordCache { text: t, spans } = &mut *cache;
                t.clear();
                t.push_str(text);
                words::word_spans(text, spans);
            }
            f(&cache.spans)
        }
        // Re-entered (a block calling another inside `f`): split without the cache.
        Err(_) => {
            let mut spans = Vec::new();
            words::word_spans(text, &mut spans);
            f(&spans)
        }
    })
}

/// Makes `spans` (which must be `words::word_spans(text)`) this thread's cached split of
/// `text`, for the next `with_words` on that text; `spans` gets the old cache's buffer.
pub(crate) fn store_words(text: &str, spans: &mut Vec<Span>) {
    WORDS.with(|cell| {
        if let Ok(mut cache) = cell.try_borrow_mut() {
            let WordCache { text: t, spans: s } = &mut *cache;
            t.clear();
            t.push_str(text);
            std::mem::swap(s, spans);
        }
    });
}

/// The length of `s` in characters, as Python's `len`.
pub(crate) fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// Python's `str.strip()`.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(words::is_space)
}

/// The position of the first `\n` in `b` from `i` on.
#[inline]
pub(crate) fn find_newline(b: &[u8], i: usize) -> Option<usize> {
    find_byte(b, i, b'\n')
}

/// The position of the first `byte` (ASCII) in `b` from `i` on (eight bytes at a time:
/// lines are short, and a `memchr` call per line costs more than the scan).
#[inline]
pub(crate) fn find_byte(b: &[u8], mut i: usize, byte: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    while let Some(w) = b.get(i..i + 8) {
        let mut v = [0u8; 8];
        v.copy_from_slice(w);
        let x = u64::from_le_bytes(v) ^ (u64::from(byte) * ONES);
        // The lowest flagged byte is the first zero byte of `x` (a borrow only flags bytes
        // above a zero one).
        let zero = x.wrapping_sub(ONES) & !x & (0x80 * ONES);
        if zero != 0 {
            return Some(i + (zero.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?.iter().position(|&c| c == byte).map(|p| i + p)
}

/// `text.split('\n')`, by [`find_newline`].
pub(crate) fn split_newlines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let s = start?;
        match find_newline(text.as_bytes(), s) {
            Some(at) => {
                start = Some(at + 1);
                Some(&text[s..at])
            }
            None => {
                start = None;
                Some(&text[s..])
            }
        }
    })
}

/// Python's `str.splitlines()`: lines end at `\n`, `\r`, `\r\n`, `\v`, `\f`, `\x1c`–`\x1e`,
/// `\x85`, U+2028 and U+2029; no empty last line.
pub(crate) fn py_splitlines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // By bytes: an ASCII break is its byte; U+0085 is C2 85, U+2028/U+2029 are
        // E2 80 A8/A9 (no other character's encoding holds these sequences at a character
        // start, and continuation bytes never equal C2 or E2).
        let b = rest.as_bytes();
        let mut i = 0;
        while i < b.len() {
            // Eight bytes at a time past printable ASCII (every break is a control byte or
            // starts with a byte of 0x80 or more): the lowest flagged byte is exact.
            while let Some(w) = b.get(i..i + 8) {
                let mut v = [0u8; 8];
                v.copy_from_slice(w);
                let x = u64::from_le_bytes(v);
                const ONES: u64 = 0x0101_0101_0101_0101;
                let flagged = (x.wrapping_sub(0x20 * ONES) & !x | x) & (0x80 * ONES);
                if flagged != 0 {
                    i += (flagged.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            let Some(&c) = b.get(i) else {
                break;
            };
            let len = match c {
                b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1e => 1,
                0xc2 if b.get(i + 1) == Some(&0x85) => 2,
                0xe2 if b.get(i + 1) == Some(&0x80)
                    && matches!(b.get(i + 2), Some(0xa8 | 0xa9)) =>
                {
                    3
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            let line = &rest[..i];
            let mut next = i + len;
            if c == b'\r' && b.get(next) == Some(&b'\n') {
                next += 1;
            }
            rest = &rest[next..];
            return Some(line);
        }
        let line = rest;
        rest = "";
        Some(line)
    })
}

/// Python's `str.splitlines()` by characters (the definition [`py_splitlines`] is tested
/// against).
#[cfg(test)]
fn py_splitlines_chars(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        for (i, c) in rest.char_indices() {
            let brk = matches!(
                c,
                '\n' | '\r'
                    | '\u{b}'
                    | '\u{c}'
                    | '\u{1c}'
                    | '\u{1d}'
                    | '\u{1e}'
                    | '\u{85}'
                    | '\u{2028}'
                    | '\u{2029}'
            );
            if brk {
                let line = &rest[..i];
                let mut next = i + c.len_utf8();
                if c == '\r' && rest[next..].starts_with('\n') {
                    next += 1;
                }
                rest = &rest[next..];
                return Some(line);
            }
        }
        let line = rest;
        rest = "";
        Some(line)
    })
}

/// Scratch for [`find_duplicates`]: the items seen (byte ranges of the text) and their table.
#[derive(Default)]
struct DupScratch {
    items: Vec<(usize, usize)>,
    table: table::Table,
}

thread_local! {
    static DUPS: RefCell<DupScratch> = RefCell::new(DupScratch::default());
}

/// datatrove's `find_duplicates`: how many elements repeat an earlier one, and their
/// characters. `items` are slices of `text` (its paragraphs or lines); they are compared by
/// content.
pub(crate) fn find_duplicates<'a>(
    text: &'a str,
    items: impl Iterator<Item = &'a str>,
) -> (usize, usize, usize) {
    let base = text.as_ptr() as usize;
    // Taken out of the thread's cell while in use (a nested call would start empty).
    let mut scratch = DUPS.with(|cell| cell.take());
    let DupScratch {
        items: ranges,
        table,
    } = &mut scratch;
    ranges.clear();
    ranges.extend(items.map(|it| {
        let a = it.as_ptr() as usize - base;
        (a, a + it.len())
    }));
    table.reset(ranges.len());
    let (mut dups, mut dup_chars) = (0, 0);
    let bytes = text.as_bytes();
    for (i, &(a, b)) in ranges.iter().enumerate() {
        let item = &bytes[a..b];
        let same = |j: u32| {
            let (c, d) = ranges[j as usize];
            &bytes[c..d] == item
        };
        if table
            .find_or_insert(xxhash_rust::xxh3::xxh3_64(item), i as u32, same)
            .is_some()
        {
            dups += 1;
            dup_chars += char_len(&text[a..b]);
        }
    }
    let n = ranges.len();
    DUPS.with(|cell| cell.replace(scratch));
    (n, dups, dup_chars)
}

/// A test text: `count` pieces drawn from `pieces` by a linear congruential stream.
#[cfg(test)]
pub(crate) fn random_text(pieces: &[&str], count: usize, state: &mut u64) -> String {
    (0..count)
        .map(|_| {
            *state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            pieces[(*state >> 33) as usize % pieces.len()]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_found_as_split_finds_them() {
        let pieces = [
            "a",
            "\n",
            "\n\n",
            " ",
            "é",
            "\u{8a}",
            "\u{a}b",
            "abcdefghij",
            "\r",
        ];
        let mut state = 5u64;
        for len in 0..600 {
            let text = random_text(&pieces, len % 50, &mut state);
            let fast: Vec<&str> = split_newlines(&text).collect();
            let slow: Vec<&str> = text.split('\n').collect();
            assert_eq!(fast, slow, "{text:?}");
        }
    }

    #[test]
    fn splitlines_as_python() {
        let v: Vec<&str> = py_splitlines("a\r\nb\n\nc\rd\n").collect();
        assert_eq!(v, ["a", "b", "", "c", "d"]);
        assert_eq!(py_splitlines("").count(), 0);
    }

    #[test]
    fn splitlines_by_bytes_as_by_chars() {
        let pieces = [
            "a",
            "é",
            "\n",
            "\r",
            "\r\n",
            "\u{b}",
            "\u{c}",
            "\u{1c}",
            "\u{1d}",
            "\u{1e}",
            "\u{1f}",
            "\u{85}",
            "\u{84}",
            "\u{2028}",
            "\u{2029}",
            "\u{2027}",
            "\u{202a}",
            "\u{a8}",
            "\u{e2}",
            " ",
            "",
            "\t",
            "\u{7f}",
            "abcdefghijk",
            "abcdefghijklmnopqrs",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..400 {
            let text = random_text(&pieces, len % 40, &mut state);
            let fast: Vec<&str> = py_splitlines(&text).collect();
            let slow: Vec<&str> = py_splitlines_chars(&text).collect();
            assert_eq!(fast, slow, "{text:?}");
        }
    }

    #[test]
    fn duplicates_counted_after_first() {
        let text = "ab c ab ab";
        assert_eq!(
            find_duplicates(
                text,
                [&text[..2], &text[3..4], &text[5..7], &text[8..]].into_iter()
            ),
            (4, 2, 4)
        );
    }
}
