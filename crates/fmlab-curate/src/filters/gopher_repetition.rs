//! Gopher's repetition rules (Rae et al. 2021, table A1) as datatrove's
//! `GopherRepetitionFilter` applies them, in its order: duplicate paragraphs (fraction, then
//! characters), duplicate lines (fraction, then characters), the most frequent 2/3/4-gram's
//! character share, the characters in repeated 5–10-grams.
//!
//! n-grams are never built as strings and nothing is allocated per n-gram: the words' bytes
//! are copied once into one buffer, only the n-grams that can repeat meet a table (see
//! [`Ngrams`]), and flat open-addressing tables confirm every hash match by comparing bytes. The
//! top-n-gram rule compares n-grams as word sequences (datatrove joins them with spaces and
//! words hold no spaces), the duplicated-n-gram rule as the concatenation of their words
//! (datatrove joins them with nothing, so "ab c" and "a bc" are the same 2-gram there too).

use std::borrow::Cow;
use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use super::table::{PairTable, Table, PAIR_BITS};
use super::{
    char_len, find_duplicates, find_newline, py_strip, with_words, LanguageRules, PerLanguage,
};
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
    let b = s.as_bytes();
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let from = start?;
        let mut q = from;
        while let Some(at) = find_newline(b, q) {
            if b.get(at + 1) == Some(&b'\n') {
                let mut end = at + 2;
                while b.get(end) == Some(&b'\n') {
                    end += 1;
                }
                start = Some(end);
                return Some(&s[from..at]);
            }
            q = at + 1;
        }
        start = None;
        Some(&s[from..])
    })
}

/// Lines: `text` split at runs of newlines (`re.split("\n+")`).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let from = start?;
        match find_newline(b, from) {
            Some(at) => {
                let mut end = at + 1;
                while b.get(end) == Some(&b'\n') {
                    end += 1;
                }
                start = Some(end);
                Some(&text[from..at])
            }
            None => {
                start = None;
                Some(&text[from..])
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

/// Bytes of the concatenated words' prefix that [`Ngrams::sketch`] keys each position by.
const PREFIX: usize = 16;

/// A hash of `b` (FxHash's multiply-rotate over eight bytes at a time, the length mixed
/// in): equal byte strings hash equally; the tables confirm every match by comparing bytes.
#[inline]
fn hash_bytes(b: &[u8]) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let n = b.len();
    let mut h = n as u64;
    if n < 8 {
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b);
        return (h ^ u64::from_le_bytes(v)).wrapping_mul(K);
    }
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut v = [0u8; 8];
        v.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(v)).wrapping_mul(K);
    }
    if !chunks.remainder().is_empty() {
        // The last eight bytes, overlapping the last whole chunk.
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[n - 8..]);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(v)).wrapping_mul(K);
    }
    h
}

/// A hash of `concat[a..b]` from its length and at most its first and last 16 bytes
/// (all of it up to 32 bytes), in a fixed number of steps: equal byte strings get equal
/// keys; strings that differ only in their middle collide, which only costs time.
#[inline]
fn ngram_key(concat: &[u8], a: usize, b: usize) -> u64 {
    let len = b - a;
    let at = |i: usize| {
        let mut v = [0u8; 8];
        v.copy_from_slice(&concat[i..i + 8]);
        u64::from_le_bytes(v)
    };
    // (`concat` has 16 bytes of slack past the words: the bytes read past `b` are
    // masked off.)
    let (mut x0, mut x1) = (at(a), at(a + 8));
    let (y0, y1) = if len <= 16 {
        if len < 8 {
            x0 &= (1u64 << (8 * len)) - 1;
            x1 = 0;
        } else if len < 16 {
            x1 &= (1u64 << (8 * (len - 8))) - 1;
        }
        (0, 0)
    } else {
        (at(b - 16), at(b - 8))
    };
    let fold = |p: u128| (p as u64) ^ ((p >> 64) as u64);
    let h1 = fold(u128::from(x0 ^ 0xa076_1d64_78bd_642f) * u128::from(x1 ^ 0xe703_7ed1_a0b4_28db));
    let h2 = fold(
        u128::from(y0 ^ 0x8ebc_6af0_9c88_c6e3)
            * u128::from(y1 ^ len as u64 ^ 0x5899_65cc_7537_4cc3),
    );
    fold(u128::from(h1 ^ 0x1d8e_4e27_c47d_124f) * u128::from(h2 ^ 0xa076_1d64_78bd_642f))
}

/// Grows `v` to at least `n` entries (never shrinks it, never clears what it holds).
fn grow<T: Copy>(v: &mut Vec<T>, n: usize, fill: T) {
    if v.len() < n {
        v.resize(n, fill);
    }
}

/// `a == b`, eight bytes at a time (the slices compared here are short: a call to `memcmp`
/// would cost more than the comparison).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let at = |s: &[u8], i: usize| {
        let mut v = [0u8; 8];
        v.copy_from_slice(&s[i..i + 8]);
        u64::from_le_bytes(v)
    };
    let mut i = 0;
    while i + 8 < n {
        if at(a, i) != at(b, i) {
            return false;
        }
        i += 8;
    }
    at(a, n - 8) == at(b, n - 8)
}

/// Python's `len` of UTF-8 bytes: the bytes that start a character.
#[inline]
fn utf8_chars(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c & 0xc0 != 0x80).count()
}

/// Per-document n-gram state, reused across documents (one per thread).
///
/// The words' bytes are copied into one buffer (`concat`), so any run of words is a slice
/// of it. The top-n-gram rule works on word ids (equal words, compared by bytes, share an
/// id) and names an n-gram by the pair (id of its first n − 1 words' n-gram, id of its last
/// word): equal pairs are exactly equal word sequences. Only n-grams that can occur twice
/// get ids: an n-gram whose first or last n − 1 words occur once occurs once.
///
/// The duplicated-n-gram rule compares n-grams as byte strings (`concat` slices). Two equal
/// ones of [`PREFIX`] bytes or more start with the same [`PREFIX`] bytes, so a position
/// whose first [`PREFIX`] bytes start no other position (a bit filter over all positions,
/// [`Ngrams::sketch`], tells; a collision there only costs time) holds no repeated n-gram
/// that long: such positions never meet the exact table, which hashes the n-gram's bytes
/// and confirms every hash match by comparing them.
#[derive(Default)]
struct Ngrams {
    /// The words' bytes, concatenated (`len` bytes, then slack for 16-byte copies).
    concat: Vec<u8>,
    len: usize,
    /// The text is ASCII (characters are bytes).
    ascii: bool,
    /// Byte offset in `concat` of each word boundary (words + 1 entries).
    offset: Vec<usize>,
    /// Each word's id, in order of first occurrence; by id, the word's first 7 bytes and
    /// length (packed in a `u64`), its first position and how often it occurs.
    ids: Vec<u32>,
    id_key: Vec<u64>,
    id_first: Vec<u32>,
    id_counts: Vec<u32>,
    /// For n = `level`: the positions whose n-gram occurs more than once, each with the
    /// n-gram's id, in order (the first `rep_len`); how often each id occurs (the first
    /// `n_ids`); scratch of `extend`.
    rep: Vec<(u32, u32)>,
    rep_len: usize,
    counts: Vec<u32>,
    n_ids: usize,
    next: Vec<u32>,
    level: usize,
    table: Table,
    pairs: PairTable,
    /// Use `table` for the pairs whatever the text's length (set by tests).
    generic_pairs: bool,
    /// The duplicated-n-gram filter: whether each position's first [`PREFIX`] bytes may
    /// start another position too (valid when `sketched`), its bit sets, and the positions
    /// whose n-gram may repeat (the first `cand_len`, for n = `cand_n`; 0: none).
    maybe: Vec<bool>,
    sketched: bool,
    twice_seen: TwiceSeen,
    hashes: Vec<u64>,
    cand: Vec<u32>,
    /// Of the candidates, each one's n-gram key and those whose key may occur twice.
    keys: Vec<u64>,
    live: Vec<u32>,
    cand_n: usize,
    cand_len: usize,
    /// The entries of `rep` whose next n-gram can repeat (scratch of `extend`).
    pos: Vec<u32>,
    /// Send every position to the exact table (set by tests).
    no_sketch: bool,
}

/// Two bit sets over hashes, sized per use: which hashes were met, and which at least
/// twice. A collision marks a hash twice for nothing (it only sends the item on to the
/// exact table); a hash met once is never marked twice.
#[derive(Default)]
struct TwiceSeen {
    seen: Vec<u64>,
    twice: Vec<u64>,
    shift: u32,
}

impl TwiceSeen {
    /// Empties the sets, 16 bits per item to come (at least 64).
    fn reset(&mut self, items: usize) {
        let m = (16 * items).next_power_of_two().max(64);
        self.shift = 64 - m.trailing_zeros();
        for v in [&mut self.seen, &mut self.twice] {
            v.clear();
            v.resize(m / 64, 0);
        }
    }

    /// The word and mask of `h`'s bit (its top bits).
    #[inline]
    fn bit(&self, h: u64) -> (usize, u64) {
        let bit = (h >> self.shift) as usize;
        (bit / 64, 1u64 << (bit % 64))
    }

    #[inline]
    fn insert(&mut self, h: u64) {
        let (word, mask) = self.bit(h);
        self.twice[word] |= self.seen[word] & mask;
        self.seen[word] |= mask;
    }

    /// Whether `h`'s bit was met twice or more since the last reset.
    #[inline]
    fn twice(&self, h: u64) -> bool {
        let (word, mask) = self.bit(h);
        self.twice[word] & mask != 0
    }
}

thread_local! {
    static NGRAMS: RefCell<Ngrams> = RefCell::new(Ngrams::default());
}

impl Ngrams {
    /// Reads the words (byte spans of `text`): copies them and gives each its id.
    fn load(&mut self, text: &str, spans: &[(usize, usize)]) {
        let bytes = text.as_bytes();
        self.ascii = text.is_ascii();
        self.offset.clear();
        self.offset.push(0);
        // (Grown, never cleared: only the first `len` bytes are read as words.)
        if self.concat.len() < bytes.len() + 16 {
            self.concat.resize(bytes.len() + 16, 0);
        }
        self.ids.clear();
        self.id_key.clear();
        self.id_first.clear();
        self.id_counts.clear();
        // Sized for half the words (at most half full when all differ; texts repeat words,
        // and a smaller table stays in a nearer cache).
        self.table.reset(spans.len() / 2);
        let mut pos = 0;
        for &(a, b) in spans {
            let n = b - a;
            // The concatenation never runs ahead of the text (it leaves the spaces out), so
            // 16 bytes from `pos` fit in `concat`'s slack.
            if n <= 16 && a + 16 <= bytes.len() {
                self.concat[pos..pos + 16].copy_from_slice(&bytes[a..a + 16]);
            } else {
                self.concat[pos..pos + n].copy_from_slice(&bytes[a..b]);
            }
            pos += n;
            self.offset.push(pos);
            self.intern(pos - n, pos);
        }
        self.len = pos;
        self.level = 0;
        self.sketched = false;
    }

    /// Gives the word `concat[a..b]` (the last one loaded) its id.
    #[inline]
    fn intern(&mut self, a: usize, b: usize) {
        let w = &self.concat[a..b];
        // Up to 7 bytes and the length: a word of 7 bytes or fewer is known by it exactly.
        // (Masked in a register: byte stores then a wide load would stall the load.)
        let mut k = [0u8; 8];
        k.copy_from_slice(&self.concat[a..a + 8]);
        let short = w.len().min(7);
        let mask = (1u64 << (8 * short)) - 1;
        let key = (u64::from_le_bytes(k) & mask) | ((w.len().min(255) as u64) << 56);
        let h = if w.len() <= 7 { key } else { hash_bytes(w) };
        let (id_key, id_first, concat, offset) =
            (&self.id_key, &self.id_first, &self.concat, &self.offset);
        let same = |id: u32| {
            id_key[id as usize] == key
                && (w.len() <= 7 || {
                    let f = id_first[id as usize] as usize;
                    same_bytes(&concat[offset[f]..offset[f + 1]], w)
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

    /// The characters (Python's `len`) of words `i..j` concatenated.
    #[inline]
    fn run_chars(&self, i: usize, j: usize) -> usize {
        let (a, b) = (self.offset[i], self.offset[j]);
        if self.ascii {
            b - a
        } else {
            utf8_chars(&self.concat[a..b])
        }
    }

    /// Makes the words (1-grams) the current level: lists the positions whose word
    /// occurs more than once.
    fn restart(&mut self) {
        self.counts.clone_from(&self.id_counts);
        self.n_ids = self.counts.len();
        // (Written without branches: which words repeat is unpredictable. The buffers only
        // grow: their first entries are written before they are read.)
        grow(&mut self.rep, self.ids.len(), (0, 0));
        let mut k = 0;
        for (i, &id) in self.ids.iter().enumerate() {
            self.rep[k] = (i as u32, id);
            k += usize::from(self.id_counts[id as usize] >= 2);
        }
        self.rep_len = k;
        self.level = 1;
    }

    /// Moves the current level from n-grams to (n + 1)-grams: the (n + 1)-gram at `i` is the
    /// pair (n-gram at `i`, word at `i + n`); it can repeat only when the n-grams at `i` and
    /// `i + 1` both do (both are listed in `rep`), so only those pairs meet a table. Ids are
    /// given in order of first occurrence; `rep` then lists the (n + 1)-grams that repeat.
    fn extend(&mut self) {
        let n = self.level;
        let rep = &self.rep[..self.rep_len];
        // The listed positions whose next position is listed too (without branches).
        grow(&mut self.pos, rep.len(), 0);
        let mut k = 0;
        for j in 1..rep.len() {
            self.pos[k] = (j - 1) as u32;
            k += usize::from(rep[j].0 == rep[j - 1].0 + 1);
        }
        let pos = &self.pos[..k];
        grow(&mut self.next, k, 0);
        let ids = &self.ids;
        if self.words() < 1 << PAIR_BITS && !self.generic_pairs {
            // The ids counted without a branch on whether one is new (a new id's count
            // starts from nothing, whatever its slot held).
            self.pairs.reset(k);
            grow(&mut self.counts, k, 0);
            let counts = &mut self.counts[..];
            let mut fresh = 0u32;
            for (slot, &j) in self.next.iter_mut().zip(pos) {
                let (i, c) = rep[j as usize];
                let (id, new) = self.pairs.get_or_insert(c, ids[i as usize + n], fresh);
                let kept = u32::from(!new).wrapping_neg();
                counts[id as usize] = (counts[id as usize] & kept) + 1;
                fresh += u32::from(new);
                *slot = id;
            }
            self.n_ids = fresh as usize;
        } else {
            self.counts.clear();
            self.table.reset(k);
            for t in 0..k {
                let (i, c) = rep[pos[t] as usize];
                let w = ids[i as usize + n];
                let key = (u64::from(c) << 32) | u64::from(w);
                let next = &self.next;
                let same = |u: u32| {
                    let (i2, c2) = rep[pos[u as usize] as usize];
                    c2 == c && ids[i2 as usize + n] == w
                };
                let id = match self.table.find_or_insert(key, t as u32, same) {
                    Some(first) => {
                        let id = next[first as usize];
                        self.counts[id as usize] += 1;
                        id
                    }
                    None => {
                        self.counts.push(1);
                        self.counts.len() as u32 - 1
                    }
                };
                self.next[t] = id;
            }
            self.n_ids = self.counts.len();
        }
        // The (n + 1)-grams that repeat, in place (`pos` is increasing: no entry is
        // overwritten before it is read).
        let mut m = 0;
        for t in 0..k {
            let (i, _) = self.rep[self.pos[t] as usize];
            let id = self.next[t];
            self.rep[m] = (i, id);
            m += usize::from(self.counts[id as usize] >= 2);
        }
        self.rep_len = m;
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
        // datatrove's `Counter.most_common(1)` returns. When every n-gram occurs once, that
        // is the first one.
        let (mut best, mut best_count) = (0u32, 0u32);
        for (id, &c) in self.counts[..self.n_ids].iter().enumerate() {
            if c > best_count {
                (best, best_count) = (id as u32, c);
            }
        }
        let first = if best_count >= 2 {
            self.rep[..self.rep_len]
                .iter()
                .find(|&&(_, c)| c == best)
                .map_or(0, |&(i, _)| i as usize)
        } else {
            best_count = 1;
            0
        };
        let len = self.run_chars(first, first + n) + n - 1;
        Some(len * best_count as usize)
    }

    /// Fills `maybe`: for each position, whether its first [`PREFIX`] bytes may start
    /// another position too (two bit sets over a hash of them; a collision sets it for
    /// nothing). Positions with fewer bytes left get `false`.
    fn sketch(&mut self) {
        let words = self.words();
        self.twice_seen.reset(words);
        self.hashes.clear();
        let full = self.offset[..words]
            .iter()
            .take_while(|&&o| o + PREFIX <= self.len)
            .count();
        for &o in &self.offset[..full] {
            let mut lo = [0u8; 8];
            let mut hi = [0u8; 8];
            lo.copy_from_slice(&self.concat[o..o + 8]);
            hi.copy_from_slice(&self.concat[o + 8..o + 16]);
            let h = (u64::from_le_bytes(lo) ^ u64::from_le_bytes(hi).rotate_left(29))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let h = (h ^ (h >> 31)).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
            self.twice_seen.insert(h);
            self.hashes.push(h);
        }
        self.maybe.clear();
        let twice_seen = &self.twice_seen;
        self.maybe
            .extend(self.hashes.iter().map(|&h| twice_seen.twice(h)));
        self.maybe.resize(words, false);
        self.sketched = true;
        self.cand_n = 0;
    }

    /// datatrove's `find_all_duplicate`: characters in n-grams (words concatenated) seen
    /// before, skipping past each repeat.
    fn duplicated_ngram_chars(&mut self, n: usize) -> usize {
        let words = self.words();
        if words < n {
            return 0;
        }
        if !self.sketched {
            self.sketch();
        }
        // The positions whose n-gram may repeat: shorter than the prefix, or a prefix seen
        // twice. The others are never repeats, and no other n-gram equals theirs.
        // (Written without branches: whether a position is kept is unpredictable.)
        // The candidates for a larger n are a subset of those for a smaller one (fewer
        // positions, fewer n-grams short of the prefix): after a smaller n, its list is
        // filtered rather than every position visited again.
        let last = words - n;
        let (offset, maybe, all) = (&self.offset[..], &self.maybe[..], self.no_sketch);
        let keep = |i: usize| all | maybe[i] | (offset[i + n] - offset[i] < PREFIX);
        let mut kept = 0;
        if self.cand_n != 0 && self.cand_n <= n {
            let cand = &mut self.cand[..self.cand_len];
            for t in 0..cand.len() {
                let i = cand[t] as usize;
                cand[kept] = i as u32;
                kept += usize::from(i <= last && keep(i));
            }
        } else {
            if self.cand.len() <= last {
                self.cand.resize(last + 1, 0);
            }
            let cand = &mut self.cand[..=last];
            for i in 0..=last {
                cand[kept] = i as u32;
                kept += usize::from(keep(i));
            }
        }
        (self.cand_n, self.cand_len) = (n, kept);
        // Of those, the positions whose n-gram's key (which equal n-grams share) may occur
        // twice among them, by two bit sets over the keys: the others hold an n-gram that
        // occurs once in the text.
        self.twice_seen.reset(kept);
        self.keys.clear();
        for &c in &self.cand[..kept] {
            let c = c as usize;
            let key = ngram_key(&self.concat, self.offset[c], self.offset[c + n]);
            self.twice_seen.insert(key);
            self.keys.push(key);
        }
        if self.live.len() < kept {
            self.live.resize(kept, 0);
        }
        let mut live = 0;
        let live_at = &mut self.live[..kept];
        for (t, &key) in self.keys.iter().enumerate() {
            live_at[live] = t as u32;
            live += usize::from(all | self.twice_seen.twice(key));
        }
        self.table.reset(live);
        // The walk visits each position from `i` on until a repeat moves it past that
        // n-gram; the positions left out are no repeats, so it goes on at the next one.
        let (mut repeated, mut i) = (0, 0);
        for &t in &self.live[..live] {
            let c = self.cand[t as usize] as usize;
            if c < i {
                continue;
            }
            let (concat, offset) = (&self.concat, &self.offset);
            let run = &concat[offset[c]..offset[c + n]];
            let same =
                |j: u32| same_bytes(&concat[offset[j as usize]..offset[j as usize + n]], run);
            if self
                .table
                .find_or_insert(self.keys[t as usize], c as u32, same)
                .is_some()
            {
                repeated += self.run_chars(c, c + n);
                i = c + n;
            } else {
                i = c + 1;
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

    /// Paragraphs: `text.strip()` split at runs of two or more newlines.
    fn paragraphs_by_find(text: &str) -> impl Iterator<Item = &str> {
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
    fn lines_by_find(text: &str) -> impl Iterator<Item = &str> {
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

    #[test]
    fn paragraphs_and_lines_by_bytes_as_by_find() {
        let pieces = [
            "a",
            "\n",
            "\n\n",
            "\n\n\n",
            " ",
            "é",
            "\t",
            "abcdefghij",
            "\r",
        ];
        let mut state = 9u64;
        for len in 0..800 {
            let text = crate::filters::random_text(&pieces, len % 40, &mut state);
            let fast: Vec<&str> = paragraphs(&text).collect();
            let slow: Vec<&str> = paragraphs_by_find(&text).collect();
            assert_eq!(fast, slow, "{text:?}");
            let fast: Vec<&str> = lines(&text).collect();
            let slow: Vec<&str> = lines_by_find(&text).collect();
            assert_eq!(fast, slow, "{text:?}");
        }
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
        let short: Vec<String> = [
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
        ]
        .iter()
        .map(|w| w.to_string())
        .collect();
        // Longer words, so that most n-grams pass the prefix filter's 16 bytes, some
        // sharing their first 16 bytes across word boundaries ("abcdefghijklmnop" "q" /
        // "abcdefghijklmnopq"), and a vocabulary large enough that most words occur once.
        let mut long: Vec<String> = [
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "q",
            "rst",
            "uvwxyzé",
            "abcdefgh",
            "ijklmnop",
        ]
        .iter()
        .map(|w| w.to_string())
        .collect();
        long.extend((0..200).map(|j| format!("word{j}x")));
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut ng = Ngrams::default();
        for (vocab, spread) in [(&short, short.len()), (&long, 9), (&long, long.len())] {
            for len in 0..240usize {
                // The second half takes the path of texts of 2^20 words or more.
                ng.generic_pairs = len >= 120;
                ng.no_sketch = len.is_multiple_of(3);
                let words: Vec<&str> = (0..len)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1);
                        // Runs of the first words now and then, so long n-grams repeat.
                        let k = if (state >> 20).is_multiple_of(4) {
                            3
                        } else {
                            spread
                        };
                        vocab[(state >> 40) as usize % k].as_str()
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
                // Rising n reuses the last n's candidates; a smaller n lists them anew.
                for n in (1..=10).chain([7, 3, 10, 2, 2]) {
                    assert_eq!(
                        ng.duplicated_ngram_chars(n),
                        naive_dup(&words, n),
                        "{text:?} dup {n}"
                    );
                }
            }
        }
    }
}
