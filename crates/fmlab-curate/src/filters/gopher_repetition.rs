//! Gopher's repetition rules (Rae et al. 2021, table A1) as datatrove's
//! `GopherRepetitionFilter` applies them, in its order: duplicate paragraphs (fraction, then
//! characters), duplicate lines (fraction, then characters), the most frequent 2/3/4-gram's
//! character share, the characters in repeated 5–10-grams.
//!
//! n-grams are never built as strings: each word gets a polynomial hash of its bytes modulo
//! the Mersenne prime 2^61 − 1, and an n-gram's hash is computed from prefix hashes. The
//! top-n-gram rule compares n-grams as word sequences (datatrove joins them with spaces and
//! words hold no spaces), the duplicated-n-gram rule as the concatenation of their words
//! (datatrove joins them with nothing, so "ab c" and "a bc" are the same 2-gram there too).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::{char_len, find_duplicates, py_strip, with_words, LanguageRules, PerLanguage};
use crate::block::{Block, Decision};
use crate::doc::Document;
use crate::Result;

/// The thresholds (0 turns a rule off, as datatrove's falsy values do). Default: FineWeb's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GopherRepetitionConfig {
    pub dup_line_frac: f64,
    pub dup_para_frac: f64,
    pub dup_line_char_frac: f64,
    pub dup_para_char_frac: f64,
    /// (n, highest share of the text's characters in the most frequent n-gram).
    pub top_n_grams: Vec<(usize, f64)>,
    /// (n, highest share of the text's characters in repeated n-grams).
    pub dup_n_grams: Vec<(usize, f64)>,
}

impl Default for GopherRepetitionConfig {
    fn default() -> Self {
        GopherRepetitionConfig {
            dup_line_frac: 0.3,
            dup_para_frac: 0.3,
            dup_line_char_frac: 0.2,
            dup_para_char_frac: 0.2,
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![
                (5, 0.15),
                (6, 0.14),
                (7, 0.13),
                (8, 0.12),
                (9, 0.11),
                (10, 0.10),
            ],
        }
    }
}

impl GopherRepetitionConfig {
    /// Each rule's statistic name and its threshold (the document is dropped above it).
    pub fn thresholds(&self) -> Vec<(Cow<'static, str>, f64)> {
        let mut v: Vec<(Cow<'static, str>, f64)> = vec![
            ("dup_para_frac".into(), self.dup_para_frac),
            ("dup_para_char_frac".into(), self.dup_para_char_frac),
            ("dup_line_frac".into(), self.dup_line_frac),
            ("dup_line_char_frac".into(), self.dup_line_char_frac),
        ];
        v.extend(self.top_n_grams.iter().map(|&(n, t)| (top_name(n), t)));
        v.extend(self.dup_n_grams.iter().map(|&(n, t)| (dup_name(n), t)));
        v
    }

    /// Checks every value is a fraction in [0, 1] and every n at least 1.
    pub fn validate(&self) -> Result<()> {
        let fracs = [
            self.dup_line_frac,
            self.dup_para_frac,
            self.dup_line_char_frac,
            self.dup_para_char_frac,
        ];
        let ngrams = self.top_n_grams.iter().chain(&self.dup_n_grams);
        if fracs
            .iter()
            .chain(ngrams.clone().map(|(_, t)| t))
            .any(|t| !(0.0..=1.0).contains(t))
        {
            return Err(crate::Error::Config(
                "gopher_repetition: thresholds are fractions between 0 and 1".into(),
            ));
        }
        if ngrams.clone().any(|&(n, _)| n == 0) {
            return Err(crate::Error::Config(
                "gopher_repetition: n-gram sizes start at 1".into(),
            ));
        }
        Ok(())
    }
}

fn top_name(n: usize) -> Cow<'static, str> {
    match n {
        2 => "top_2_gram".into(),
        3 => "top_3_gram".into(),
        4 => "top_4_gram".into(),
        _ => format!("top_{n}_gram").into(),
    }
}

fn dup_name(n: usize) -> Cow<'static, str> {
    const NAMES: [&str; 6] = [
        "duplicated_5_n_grams",
        "duplicated_6_n_grams",
        "duplicated_7_n_grams",
        "duplicated_8_n_grams",
        "duplicated_9_n_grams",
        "duplicated_10_n_grams",
    ];
    match n {
        5..=10 => NAMES[n - 5].into(),
        _ => format!("duplicated_{n}_n_grams").into(),
    }
}

/// Gopher's repetition filter. Block name `gopher_repetition`.
#[derive(Debug, Clone)]
pub struct GopherRepetitionFilter {
    pub config: PerLanguage<GopherRepetitionConfig>,
}

impl GopherRepetitionFilter {
    pub fn new(config: GopherRepetitionConfig) -> Self {
        GopherRepetitionFilter {
            config: PerLanguage::single(config),
        }
    }
    /// Per-language settings from a [`LanguageRules`].
    pub fn from_rules(rules: &LanguageRules) -> Self {
        GopherRepetitionFilter {
            config: rules.per_language(|c| c.gopher_repetition.clone()),
        }
    }
}

impl Default for GopherRepetitionFilter {
    fn default() -> Self {
        Self::new(GopherRepetitionConfig::default())
    }
}

/// Records `value` as `name` and drops when it is above a non-zero `threshold`.
fn check(out: &mut Decision, name: Cow<'static, str>, value: f64, threshold: f64) -> bool {
    out.stats.push((name.clone(), value));
    if threshold != 0.0 && value > threshold {
        out.drop_for(name);
        return true;
    }
    false
}

/// Paragraphs: `text.strip()` split at runs of two or more newlines.
fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    let s = py_strip(text);
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        if let Some(at) = r.find("\n\n") {
            let end = at + r[at..].len() - r[at..].trim_start_matches('\n').len();
            rest = Some(&r[end..]);
            return Some(&r[..at]);
        }
        rest = None;
        Some(r)
    })
}

/// Lines: `text` split at runs of newlines (`re.split("\n+")`).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.find('\n') {
            Some(at) => {
                let end = at + r[at..].len() - r[at..].trim_start_matches('\n').len();
                rest = Some(&r[end..]);
                Some(&r[..at])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

impl Block for GopherRepetitionFilter {
    fn name(&self) -> &str {
        "gopher_repetition"
    }

    /// The default language's thresholds (the report draws them on the histograms).
    fn thresholds(&self) -> Vec<(Cow<'static, str>, f64)> {
        self.config.default.thresholds()
    }

    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let cfg = self.config.for_doc(doc);
        let text = doc.text.as_str();
        if text.is_empty() {
            out.drop_for("empty");
            return;
        }
        let text_len = char_len(text) as f64;
        let (n, dups, chars) = find_duplicates(paragraphs(text));
        if check(
            out,
            "dup_para_frac".into(),
            dups as f64 / n as f64,
            cfg.dup_para_frac,
        ) || check(
            out,
            "dup_para_char_frac".into(),
            chars as f64 / text_len,
            cfg.dup_para_char_frac,
        ) {
            return;
        }
        let (n, dups, chars) = find_duplicates(lines(text));
        if check(
            out,
            "dup_line_frac".into(),
            dups as f64 / n as f64,
            cfg.dup_line_frac,
        ) || check(
            out,
            "dup_line_char_frac".into(),
            chars as f64 / text_len,
            cfg.dup_line_char_frac,
        ) {
            return;
        }
        with_words(text, |spans| {
            NGRAMS.with(|cell| {
                let mut ng = cell.borrow_mut();
                ng.load(text, spans);
                for &(n, thr) in &cfg.top_n_grams {
                    if let Some(chars) = ng.top_ngram_chars(n) {
                        if check(out, top_name(n), chars as f64 / text_len, thr) {
                            return;
                        }
                    }
                }
                for &(n, thr) in &cfg.dup_n_grams {
                    let chars = ng.duplicated_ngram_chars(n);
                    if check(out, dup_name(n), chars as f64 / text_len, thr) {
                        return;
                    }
                }
            })
        });
    }
}

const P: u64 = (1 << 61) - 1;
const BASE: u64 = 0x1f3d_5b79_a2c4_e681 % P;

#[inline]
fn mulmod(a: u64, b: u64) -> u64 {
    let x = u128::from(a) * u128::from(b);
    let r = ((x as u64) & P) + ((x >> 61) as u64);
    if r >= P {
        r - P
    } else {
        r
    }
}

#[inline]
fn addmod(a: u64, b: u64) -> u64 {
    let r = a + b;
    if r >= P {
        r - P
    } else {
        r
    }
}

/// Hashes that are already uniform need no further hashing in the maps.
#[derive(Default, Clone, Copy)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type IdBuild = BuildHasherDefault<IdentityHasher>;

/// Per-document n-gram state, reused across documents (one per thread).
#[derive(Default)]
struct Ngrams {
    /// Each word's hash, its length in bytes and in characters.
    hash: Vec<u64>,
    bytes: Vec<u32>,
    chars: Vec<u32>,
    /// Prefix hashes of the words' concatenation at each word boundary, and its byte offsets.
    prefix: Vec<u64>,
    offset: Vec<usize>,
    /// BASE^k for k up to the longest n-gram seen so far.
    pow: Vec<u64>,
    counts: HashMap<u64, (u32, u32), IdBuild>,
    seen: HashSet<u64, IdBuild>,
}

thread_local! {
    static NGRAMS: RefCell<Ngrams> = RefCell::new(Ngrams::default());
}

impl Ngrams {
    fn load(&mut self, text: &str, spans: &[(usize, usize)]) {
        self.hash.clear();
        self.bytes.clear();
        self.chars.clear();
        self.prefix.clear();
        self.offset.clear();
        self.prefix.push(0);
        self.offset.push(0);
        if self.pow.is_empty() {
            self.pow.push(1);
        }
        let (mut acc, mut off) = (0u64, 0usize);
        for &(a, b) in spans {
            let w = &text.as_bytes()[a..b];
            let mut h = 0u64;
            for &byte in w {
                h = addmod(mulmod(h, BASE), u64::from(byte) + 1);
            }
            acc = addmod(mulmod(acc, self.pow(w.len())), h);
            off += w.len();
            self.hash.push(h);
            self.bytes.push(w.len() as u32);
            self.chars.push(char_len(&text[a..b]) as u32);
            self.prefix.push(acc);
            self.offset.push(off);
        }
    }

    fn pow(&mut self, k: usize) -> u64 {
        while self.pow.len() <= k {
            let last = self.pow[self.pow.len() - 1];
            self.pow.push(mulmod(last, BASE));
        }
        self.pow[k]
    }

    fn ngram_chars(&self, i: usize, n: usize) -> usize {
        self.chars[i..i + n].iter().map(|&c| c as usize).sum()
    }

    /// datatrove's `find_top_duplicate`: characters of the most frequent n-gram (joined
    /// with spaces) times its count; the first to occur wins a tie. `None`: no n-gram.
    fn top_ngram_chars(&mut self, n: usize) -> Option<usize> {
        let words = self.hash.len();
        if words < n {
            return None;
        }
        self.counts.clear();
        let (mut best_count, mut best_first) = (0u32, 0u32);
        for i in 0..=words - n {
            let mut key = 0u64;
            for &h in &self.hash[i..i + n] {
                key = addmod(mulmod(key, 0x2545_f491_4f6c_dd1d % P), h);
            }
            let e = self.counts.entry(key).or_insert((0, i as u32));
            e.0 += 1;
            if e.0 > best_count || (e.0 == best_count && e.1 < best_first) {
                (best_count, best_first) = *e;
            }
        }
        let len = self.ngram_chars(best_first as usize, n) + n - 1;
        Some(len * best_count as usize)
    }

    /// datatrove's `find_all_duplicate`: characters in n-grams (words concatenated) seen
    /// before, skipping past each repeat.
    fn duplicated_ngram_chars(&mut self, n: usize) -> usize {
        let words = self.hash.len();
        self.seen.clear();
        let (mut repeated, mut i) = (0, 0);
        while i + n <= words {
            let len = self.offset[i + n] - self.offset[i];
            let pw = self.pow(len);
            let h = (self.prefix[i + n] + P - mulmod(self.prefix[i], pw)) % P;
            let key = h ^ ((len as u64) << 61);
            if self.seen.insert(key) {
                i += 1;
            } else {
                repeated += self.ngram_chars(i, n);
                i += n;
            }
        }
        repeated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::DocKey;

    fn run(text: &str) -> Decision {
        let mut d = Document::new("t", text, DocKey::new(0, 0));
        let mut out = Decision::default();
        GopherRepetitionFilter::default().apply(&mut d, &mut out);
        out
    }

    #[test]
    fn splits_as_datatrove() {
        let p: Vec<&str> = paragraphs("\n a\n\n\nb\nc\n\n").collect();
        assert_eq!(p, ["a", "b\nc"]);
        let l: Vec<&str> = lines("\na\n\nb\n").collect();
        assert_eq!(l, ["", "a", "b", ""]);
    }

    #[test]
    fn repeated_lines_are_dropped() {
        let text = "the same line again\n".repeat(5) + "and one different line here";
        assert_eq!(run(&text).drop.as_deref(), Some("dup_line_frac"));
    }

    #[test]
    fn ngram_rules_follow_datatrove() {
        // Top 2-gram "a b" 3 times in 11 characters: 3 * 3 / 11 > 0.2.
        assert_eq!(run("a b a b a b").drop.as_deref(), Some("top_2_gram"));
        // (datatrove drops a short text of distinct words too: one 3-gram is 13 of 62
        // characters, over 0.18.)
        let varied = "The river rose quickly after three days of heavy rain in the hills, and \
                      farmers moved their cattle to higher ground before water reached fields.";
        assert_eq!(run(varied).drop, None);
        let mut ng = Ngrams::default();
        let text = "ab c x a bc";
        let spans = crate::words::split_words(text)
            .iter()
            .map(|w| {
                let a = w.as_ptr() as usize - text.as_ptr() as usize;
                (a, a + w.len())
            })
            .collect::<Vec<_>>();
        ng.load(text, &spans);
        // "abc" then "cx", "xa", "abc" again (as datatrove joins without spaces).
        assert_eq!(ng.duplicated_ngram_chars(2), 3);
    }
}
