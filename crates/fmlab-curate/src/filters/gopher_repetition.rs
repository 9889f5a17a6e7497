//! Gopher's repetition rules (Rae et al. 2021, table A1) as datatrove's
//! `GopherRepetitionFilter` applies them, in its order: duplicate paragraphs (fraction, then
//! characters), duplicate lines (fraction, then characters), the most frequent 2/3/4-gram's
//! character share, the characters in repeated 5–10-grams.
//!
//! n-grams are never built as strings and nothing is allocated per n-gram: the words are
//! hashed once (a polynomial hash of their concatenated bytes, kept at each word boundary),
//! and flat open-addressing tables confirm every hash match by comparing bytes. The
//! top-n-gram rule compares n-grams as word sequences (datatrove joins them with spaces and
//! words hold no spaces), the duplicated-n-gram rule as the concatenation of their words
//! (datatrove joins them with nothing, so "ab c" and "a bc" are the same 2-gram there too).

use std::borrow::Cow;
use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use super::table::{PairTable, Table, PAIR_BITS};
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
        let (n, dups, chars) = find_duplicates(text, paragraphs(text));
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
        let (n, dups, chars) = find_duplicates(text, lines(text));
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

/// Multiplier of the polynomial hash (odd, so every byte position matters modulo 2^64).
const BASE: u64 = 0x9e37_79b9_7f4a_7c15;

/// Per-document n-gram state, reused across documents (one per thread).
///
/// Words are hashed once: a polynomial hash modulo 2^64 of the concatenated words' bytes,
/// kept at each word boundary, gives any run of words' concatenation hash in O(1); equal
/// concatenations have equal hashes whatever their word boundaries, which the duplicated
/// n-gram rule needs. Every hash match is confirmed by comparing bytes, so a collision
/// costs time, never a wrong count. The top-n-gram rule works on word ids (equal words,
/// compared by bytes, share an id) and names an n-gram by the pair (id of its first n − 1
/// words' n-gram, id of its last word): equal pairs are exactly equal word sequences.
#[derive(Default)]
struct Ngrams {
    /// The words' bytes, concatenated.
    concat: Vec<u8>,
    /// Byte offset in `concat` of each word boundary (words + 1 entries).
    offset: Vec<usize>,
    /// Polynomial hash of `concat` up to each word boundary.
    prefix: Vec<u64>,
    /// Characters (Python's `len`) up to each word boundary.
    chars: Vec<usize>,
    /// BASE^k for k up to the longest text loaded so far.
    pow: Vec<u64>,
    /// Each word's id, in order of first occurrence; by id, the word's first 7 bytes and
    /// length (packed in a `u64`), its first position and how often it occurs.
    ids: Vec<u32>,
    id_key: Vec<u64>,
    id_first: Vec<u32>,
    id_counts: Vec<u32>,
    /// The id of the n-gram starting at each word, for n = `level`, and how often each id
    /// occurs.
    class: Vec<u32>,
    next: Vec<u32>,
    counts: Vec<u32>,
    level: usize,
    table: Table,
    pairs: PairTable,
    /// Use `table` for the pairs whatever the text's length (set by tests).
    generic_pairs: bool,
}

thread_local! {
    static NGRAMS: RefCell<Ngrams> = RefCell::new(Ngrams::default());
}

impl Ngrams {
    /// Reads the words (byte spans of `text`): copies, hashes and counts their characters,
    /// and gives each its id.
    fn load(&mut self, text: &str, spans: &[(usize, usize)]) {
        let bytes = text.as_bytes();
        for v in [&mut self.offset, &mut self.chars] {
            v.clear();
            v.push(0);
        }
        self.prefix.clear();
        self.prefix.push(0);
        self.concat.clear();
        self.ids.clear();
        self.id_key.clear();
        self.id_first.clear();
        self.id_counts.clear();
        self.table.reset(spans.len());
        let (mut acc, mut chars) = (0u64, 0usize);
        for &(a, b) in spans {
            let w = &bytes[a..b];
            let mut h = 0u64;
            for &c in w {
                acc = acc.wrapping_mul(BASE).wrapping_add(u64::from(c));
                h = h.wrapping_mul(BASE).wrapping_add(u64::from(c));
                chars += usize::from(c & 0xc0 != 0x80);
            }
            self.concat.extend_from_slice(w);
            self.offset.push(self.concat.len());
            self.prefix.push(acc);
            self.chars.push(chars);
            self.intern(w, h);
        }
        self.grow_pow(self.concat.len());
        self.level = 0;
    }

    /// Gives word `w` (the last one loaded, of hash `h`) its id.
    #[inline]
    fn intern(&mut self, w: &[u8], h: u64) {
        // Up to 7 bytes and the length: a word of 7 bytes or fewer is known by it exactly.
        let mut k = [0u8; 8];
        let short = w.len().min(7);
        k[..short].copy_from_slice(&w[..short]);
        k[7] = w.len().min(255) as u8;
        let key = u64::from_le_bytes(k);
        let (id_key, id_first, concat, offset) =
            (&self.id_key, &self.id_first, &self.concat, &self.offset);
        let same = |id: u32| {
            id_key[id as usize] == key
                && (w.len() <= 7 || {
                    let f = id_first[id as usize] as usize;
                    &concat[offset[f]..offset[f + 1]] == w
                })
        };
        let fresh = id_key.len() as u32;
        match self.table.find_or_insert(h, fresh, same) {
            Some(id) => {
                self.id_counts[id as usize] += 1;
                self.ids.push(id);
            }
            None => {
                self.id_first.push(self.ids.len() as u32);
                self.id_key.push(key);
                self.id_counts.push(1);
                self.ids.push(fresh);
            }
        }
    }

    fn words(&self) -> usize {
        self.offset.len() - 1
    }

    /// Makes `pow` reach BASE^k.
    fn grow_pow(&mut self, k: usize) {
        if self.pow.is_empty() {
            self.pow.push(1);
        }
        while self.pow.len() <= k {
            let last = self.pow[self.pow.len() - 1];
            self.pow.push(last.wrapping_mul(BASE));
        }
    }

    /// The hash of words `i..j` concatenated.
    #[inline]
    fn run_hash(&self, i: usize, j: usize) -> u64 {
        let pw = self.pow[self.offset[j] - self.offset[i]];
        self.prefix[j].wrapping_sub(self.prefix[i].wrapping_mul(pw))
    }

    /// Makes the words (1-grams) the current level.
    fn restart(&mut self) {
        self.class.clone_from(&self.ids);
        self.counts.clone_from(&self.id_counts);
        self.level = 1;
    }

    /// Moves the current level from n-grams to (n + 1)-grams: the (n + 1)-gram at `i` is the
    /// pair (n-gram at `i`, word at `i + n`). Ids are given in order of first occurrence.
    fn extend(&mut self) {
        let n = self.level;
        let count = self.words() - n;
        self.next.clear();
        self.counts.clear();
        let (class, ids) = (&self.class, &self.ids);
        if self.words() < 1 << PAIR_BITS && !self.generic_pairs {
            self.pairs.reset(count);
            for i in 0..count {
                let fresh = self.counts.len() as u32;
                let id = match self.pairs.find_or_insert(class[i], ids[i + n], fresh) {
                    Some(id) => {
                        self.counts[id as usize] += 1;
                        id
                    }
                    None => {
                        self.counts.push(1);
                        fresh
                    }
                };
                self.next.push(id);
            }
        } else {
            self.table.reset(count);
            for i in 0..count {
                let (c, w) = (class[i], ids[i + n]);
                let key = (u64::from(c) << 32) | u64::from(w);
                let same = |j: u32| class[j as usize] == c && ids[j as usize + n] == w;
                let id = match self.table.find_or_insert(key, i as u32, same) {
                    Some(first) => {
                        let id = self.next[first as usize];
                        self.counts[id as usize] += 1;
                        id
                    }
                    None => {
                        self.counts.push(1);
                        self.counts.len() as u32 - 1
                    }
                };
                self.next.push(id);
            }
        }
        std::mem::swap(&mut self.class, &mut self.next);
        self.level = n + 1;
    }

    /// datatrove's `find_top_duplicate`: characters of the most frequent n-gram (joined
    /// with spaces) times its count; the first to occur wins a tie. `None`: no n-gram.
    fn top_ngram_chars(&mut self, n: usize) -> Option<usize> {
        if self.words() < n {
            return None;
        }
        if self.level == 0 || self.level > n {
            self.restart();
        }
        while self.level < n {
            self.extend();
        }
        // Ids are given in order of first occurrence: the first highest count is the one
        // datatrove's `Counter.most_common(1)` returns.
        let (mut best, mut best_count) = (0u32, 0u32);
        for (id, &c) in self.counts.iter().enumerate() {
            if c > best_count {
                (best, best_count) = (id as u32, c);
            }
        }
        let first = self.class.iter().position(|&c| c == best).unwrap_or(0);
        let len = self.chars[first + n] - self.chars[first] + n - 1;
        Some(len * best_count as usize)
    }

    /// datatrove's `find_all_duplicate`: characters in n-grams (words concatenated) seen
    /// before, skipping past each repeat.
    fn duplicated_ngram_chars(&mut self, n: usize) -> usize {
        let words = self.words();
        if words < n {
            return 0;
        }
        self.table.reset(words - n + 1);
        let (mut repeated, mut i) = (0, 0);
        while i + n <= words {
            let key = self.run_hash(i, i + n);
            let (concat, offset) = (&self.concat, &self.offset);
            let run = &concat[offset[i]..offset[i + n]];
            let same = |j: u32| &concat[offset[j as usize]..offset[j as usize + n]] == run;
            if self.table.find_or_insert(key, i as u32, same).is_some() {
                repeated += self.chars[i + n] - self.chars[i];
                i += n;
            } else {
                i += 1;
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

    /// datatrove's functions on strings, as written there.
    fn naive_top(words: &[&str], n: usize) -> Option<usize> {
        let grams: Vec<String> = words.windows(n).map(|w| w.join(" ")).collect();
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for g in &grams {
            match counts.iter_mut().find(|(k, _)| k == g) {
                Some(e) => e.1 += 1,
                None => counts.push((g, 1)),
            }
        }
        let max = counts.iter().map(|e| e.1).max()?;
        let (g, c) = counts.iter().find(|e| e.1 == max)?;
        Some(g.chars().count() * c)
    }

    fn naive_dup(words: &[&str], n: usize) -> usize {
        let mut seen = std::collections::HashSet::new();
        let (mut repeated, mut i) = (0, 0);
        while i + n <= words.len() {
            let g = words[i..i + n].concat();
            if seen.contains(&g) {
                repeated += g.chars().count();
                i += n;
            } else {
                seen.insert(g);
                i += 1;
            }
        }
        repeated
    }

    #[test]
    fn ngrams_match_datatrove_on_strings() {
        // Words whose concatenations often coincide ("ab" "c" / "a" "bc"), non-ASCII ones,
        // and few enough of them that n-grams repeat and counts tie.
        // Long words share their first 7 bytes, as the word ids' packed keys do.
        let vocab = [
            "a",
            "b",
            "ab",
            "bc",
            "c",
            "é",
            "aé",
            "ü",
            "abcdefgh",
            "abcdefgi",
            "abcdefghé",
        ];
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut ng = Ngrams::default();
        for len in 0..240 {
            // The second half takes the path of texts of 2^20 words or more.
            ng.generic_pairs = len >= 120;
            let words: Vec<&str> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    vocab[(state >> 40) as usize % vocab.len()]
                })
                .collect();
            let text = words.join(" ");
            let mut spans = Vec::new();
            let mut at = 0;
            for w in &words {
                spans.push((at, at + w.len()));
                at += w.len() + 1;
            }
            ng.load(&text, &spans);
            for n in [2, 3, 4, 1, 5, 3] {
                assert_eq!(
                    ng.top_ngram_chars(n),
                    naive_top(&words, n),
                    "{text:?} top {n}"
                );
            }
            for n in 1..=10 {
                assert_eq!(
                    ng.duplicated_ngram_chars(n),
                    naive_dup(&words, n),
                    "{text:?} dup {n}"
                );
            }
        }
    }
}
