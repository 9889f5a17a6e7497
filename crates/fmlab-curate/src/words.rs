//! Word and sentence splitting shared by the quality rules and MinHash: English as datatrove
//! 0.10 splits it, that is spaCy 3.8's rule-based tokenizer for `en` (`spacy.blank("en")`)
//! and its sentencizer, rewritten as hand loops over the text (no regex, no allocation per
//! word: words are byte spans of the text).
//!
//! The tokenizer's rules, as spaCy applies them to each whitespace-separated chunk:
//! 1. a chunk that is a tokenizer exception ("don't" → "do" "n't", "e.g.", ":)") is split as
//!    the exception says (`spacy_en_exceptions.tsv`: spaCy's English exception table,
//!    exported as data, one exception a line, its tokens separated by tabs);
//! 2. otherwise prefixes (opening punctuation, quotes, currency, symbols) and suffixes
//!    (closing punctuation, "'s", units after a number, a final period after a lowercase
//!    letter, digit or punctuation…) are peeled off, stopping when what is left is an
//!    exception;
//! 3. what is left stays whole when it is a URL, else it is split at infixes (ellipses,
//!    hyphens between letters, `/:<>=` between a letter or digit and a letter, `,` between
//!    letters, `.` between a lowercase and an uppercase letter, operators between digits).
//!
//! 4. a second pass merges adjacent tokens of a chunk that spell an exception holding
//!    affixes ("i" "." "MX" → "i." "MX", ")" ":" → "):").
//!
//! Whitespace never makes a word (datatrove strips spaCy's whitespace tokens). Differences
//! from spaCy that remain: letter classes are Rust's Unicode properties rather than spaCy's
//! explicit ranges, URL matching follows spaCy's pattern by hand, and the second pass
//! compares spellings where spaCy compares token sequences.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// A word: a byte range `start..end` of the text.
pub type Span = (usize, usize);

/// The words of `text` (punctuation tokens included, as spaCy gives them).
pub fn split_words(text: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    word_spans(text, &mut spans);
    spans.iter().map(|&(a, b)| &text[a..b]).collect()
}

/// The words of `text` as byte spans, written into `out` (cleared first; reuse it across
/// documents to avoid allocating).
pub fn word_spans(text: &str, out: &mut Vec<Span>) {
    out.clear();
    let mut suffixes = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let (c, len) = char_at(text, i);
        if is_space(c) {
            i += len;
            continue;
        }
        let start = i;
        let (mut letters, mut digits) = (true, true);
        while i < bytes.len() {
            // Eight bytes at a time while they are ASCII above the space: the chunk goes on
            // (no whitespace there); the scan stops at the first other byte.
            if let Some(w) = bytes.get(i..i + 8) {
                let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
                let run = printable_run(w);
                letters &= letter_run(w).1 >= run;
                digits &= digit_run(w) >= run;
                i += run;
                if run == 8 {
                    continue;
                }
            }
            let (c, len) = char_at(text, i);
            if is_space(c) {
                break;
            }
            letters &= c.is_ascii_alphabetic();
            digits &= c.is_ascii_digit();
            i += len;
        }
        chunk_words(text, start, i, letters || digits, out, &mut suffixes);
    }
}

/// The words of the whitespace-free chunk `text[start..end]` pushed onto `out`, as
/// [`word_spans`] splits it; `plain`: the chunk is all ASCII letters or all ASCII digits.
/// `suffixes` is scratch space.
#[inline(always)]
pub(crate) fn chunk_words(
    text: &str,
    start: usize,
    end: usize,
    plain: bool,
    out: &mut Vec<Span>,
    suffixes: &mut Vec<Span>,
) {
    // A chunk of ASCII letters, or of ASCII digits, has no prefix, suffix, infix or URL: it
    // is one word unless it is an exception ("dont", "cannot"). (Units after a number need
    // both, and operators between digits are not digits.) The commonest case, inlined into
    // the callers' loops.
    if plain && exceptions().get(&text[start..end]).is_none() {
        out.push((start, end));
        return;
    }
    other_chunk_words(text, start, end, plain, out, suffixes);
}

/// [`chunk_words`] but for a plain chunk that is not an exception (a plain chunk here is an
/// exception, which the tokenizer splits).
#[inline(never)]
fn other_chunk_words(
    text: &str,
    start: usize,
    end: usize,
    plain: bool,
    out: &mut Vec<Span>,
    suffixes: &mut Vec<Span>,
) {
    if !plain {
        if text[start..end].chars().nth(1).is_none() {
            // One character: one word whatever it is (spaCy's tokens cover the chunk).
            out.push((start, end));
            return;
        }
        if let Some(word) = word_then_punct(&text.as_bytes()[start..end]) {
            // Prose's commonest other chunk, "word," "word." "word)": when neither it nor
            // its word is an exception, spaCy peels the mark off as a suffix and the word
            // (ASCII letters: no prefix, suffix, infix or URL) stays whole.
            let exc = exceptions();
            if exc.get(&text[start..end]).is_none() && exc.get(&text[start..start + word]).is_none()
            {
                out.extend([(start, start + word), (start + word, end)]);
                return;
            }
        }
    }
    tokenize_chunk(text, start, end, out, suffixes);
}

/// The length of the word when `chunk` is ASCII letters followed by one of `,;:!?)"'`, or
/// by `.` after a lower-case letter (a mark that spaCy's suffix rules always peel off such
/// a word, see [`suffix_len`]).
#[inline]
fn word_then_punct(chunk: &[u8]) -> Option<usize> {
    let (&last, word) = chunk.split_last()?;
    let &end = word.last()?;
    let peeled = match last {
        b',' | b';' | b':' | b'!' | b'?' | b')' | b'"' | b'\'' => true,
        b'.' => end.is_ascii_lowercase(),
        _ => false,
    };
    (peeled && word.iter().all(u8::is_ascii_alphabetic)).then_some(word.len())
}

/// How many sentences spaCy's sentencizer finds in `text` (datatrove's
/// `split_into_sentences(text)` length): a sentence ends after a token that is a sentence
/// punctuation mark (`.`, `!`, `?`…) once a token follows that is not punctuation.
pub fn sentence_count(text: &str, spans: &mut Vec<Span>) -> usize {
    word_spans(text, spans);
    count_sentences(text, spans)
}

/// [`sentence_count`] on words already split: `spans` are the words (byte spans of `text`)
/// of the one piece of text to count.
pub fn count_sentences(text: &str, spans: &[Span]) -> usize {
    let mut count = 1;
    let mut seen_period = false;
    for &(a, b) in spans.iter() {
        let tok = &text[a..b];
        let mut it = tok.chars();
        let single = match (it.next(), it.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        };
        if single.is_some_and(is_sentence_punct) {
            seen_period = true;
        } else if seen_period && !tok.chars().all(is_unicode_punct) {
            count += 1;
            seen_period = false;
        }
    }
    count
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// How many of the first of eight bytes (little-endian in `w`) are ASCII above the space
/// (0x21 to 0x7f): neither whitespace nor a control but DEL, nor part of a non-ASCII
/// character.
#[inline(always)]
fn printable_run(w: u64) -> usize {
    // Per byte b below 0x80 (no carry crosses a byte): b + 0x5f has its high bit set when
    // b > 0x20.
    let printable = (w & !HIGH).wrapping_add(0x5f * ONES) & !w & HIGH;
    ((!printable & HIGH).trailing_zeros() / 8) as usize
}

/// Eight bytes (little-endian in `w`): the bytes with bit 5 set (lower case for ASCII
/// letters), and how many of the first bytes are ASCII letters (0 to 8).
#[inline(always)]
pub(crate) fn letter_run(w: u64) -> (u64, usize) {
    let lower = w | (0x20 * ONES);
    // Per byte t = b | 0x20 of a byte below 0x80 (no carry crosses a byte): t + 0x1f has
    // its high bit set when t >= 'a', t + 0x05 when t > 'z'.
    let t = lower & !HIGH;
    let letter = t.wrapping_add(0x1f * ONES) & !t.wrapping_add(0x05 * ONES) & !w & HIGH;
    (lower, ((!letter & HIGH).trailing_zeros() / 8) as usize)
}

/// How many of the first of eight bytes (little-endian in `w`) are ASCII digits.
#[inline(always)]
fn digit_run(w: u64) -> usize {
    let b = w & !HIGH;
    let digit = b.wrapping_add(0x50 * ONES) & !b.wrapping_add(0x46 * ONES) & !w & HIGH;
    ((!digit & HIGH).trailing_zeros() / 8) as usize
}

/// Python's `str.isspace`: Rust's whitespace plus the ASCII separators U+001C–U+001F.
#[inline]
pub fn is_space(c: char) -> bool {
    if c.is_ascii() {
        return matches!(
            c,
            ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | '\u{1c}'..='\u{1f}'
        );
    }
    c.is_whitespace()
}

#[inline]
fn char_at(text: &str, i: usize) -> (char, usize) {
    let b = text.as_bytes()[i];
    if b < 0x80 {
        return (b as char, 1);
    }
    match text[i..].chars().next() {
        Some(c) => (c, c.len_utf8()),
        None => (' ', 1),
    }
}

/// A fast, non-cryptographic hasher (FxHash's multiply-rotate) for the exception table and
/// the filters' sets of lines.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

/// Builds [`FxHasher`]s.
pub type FxBuild = BuildHasherDefault<FxHasher>;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut v = [0u8; 8];
            v[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(v))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// An exception's tokens (their byte lengths), and whether spaCy's second pass may form it
/// from several tokens (it holds a prefix, suffix or infix).
struct Exception {
    lens: Vec<usize>,
    mergeable: bool,
}

/// The exception table, with two filters that turn nearly every other word away before the
/// table is looked up: a 65,536-bit one on (length mod 16, first byte mod 64, last byte mod
/// 64), a few operations and no branch, and behind it a 65,536-bit one on a hash of
/// (length, first and last eight bytes).
struct Exceptions {
    map: HashMap<String, Exception, FxBuild>,
    quick: Vec<u64>,
    filter: Vec<u64>,
    /// By first byte, the length of the longest mergeable exception that starts with it
    /// (0: none does): the second pass tries no longer run of tokens from there.
    merge_len: [u8; 256],
}

/// The bit of [`Exceptions::quick`] for `s`.
#[inline(always)]
fn quick_bit(s: &str) -> usize {
    let b = s.as_bytes();
    let (first, last) = match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => (f, l),
        _ => (0, 0),
    };
    ((b.len() & 15) << 12) | (usize::from(first & 63) << 6) | usize::from(last & 63)
}

/// Bits of the exceptions' filter (a power of two).
const FILTER_BITS: usize = 1 << 16;

fn filter_bit(s: &str) -> usize {
    let b = s.as_bytes();
    let n = b.len();
    // Little-endian reads of 8 and 4 bytes (0 past the end).
    let r64 = |i: usize| {
        b.get(i..i + 8).map_or(0, |w| {
            let mut v = [0u8; 8];
            v.copy_from_slice(w);
            u64::from_le_bytes(v)
        })
    };
    let r32 = |i: usize| {
        b.get(i..i + 4).map_or(0, |w| {
            let mut v = [0u8; 4];
            v.copy_from_slice(w);
            u64::from(u32::from_le_bytes(v))
        })
    };
    // The first and the last eight bytes (four, or three bytes, of a short string: all of
    // a string of up to 16 bytes) and the length.
    let (x, y) = if n >= 8 {
        (r64(0), r64(n - 8))
    } else if n >= 4 {
        (r32(0) | r32(n - 4) << 32, 0)
    } else if n > 0 {
        (
            u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16,
            0,
        )
    } else {
        (0, 0)
    };
    let h = (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ y.rotate_left(23) ^ n as u64)
        .wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    (h >> (64 - FILTER_BITS.trailing_zeros())) as usize
}

impl Exceptions {
    #[inline(always)]
    fn get(&self, s: &str) -> Option<&Exception> {
        let q = quick_bit(s);
        if self.quick[q / 64] & (1 << (q % 64)) == 0 {
            return None;
        }
        let bit = filter_bit(s);
        if self.filter[bit / 64] & (1 << (bit % 64)) == 0 {
            return None;
        }
        self.lookup(s)
    }
    /// The table lookup behind the filter (rarely reached: kept out of the callers' loops).
    #[inline(never)]
    fn lookup(&self, s: &str) -> Option<&Exception> {
        self.map.get(s)
    }
    #[inline]
    fn contains_key(&self, s: &str) -> bool {
        self.get(s).is_some()
    }
}

/// The longest exception, in bytes.
const MAX_EXCEPTION_LEN: usize = 32;

/// spaCy's English tokenizer exceptions: the chunk → the byte lengths of its tokens.
fn exceptions() -> &'static Exceptions {
    static TABLE: OnceLock<Exceptions> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = HashMap::default();
        let mut filter = vec![0u64; FILTER_BITS / 64];
        let mut quick = vec![0u64; FILTER_BITS / 64];
        let mut merge_len = [0u8; 256];
        for line in include_str!("spacy_en_exceptions.tsv").lines() {
            if line.is_empty() {
                continue;
            }
            let key = line.replace('\t', "");
            let has_infix = key.char_indices().scan(None, |prev, (i, c)| {
                let hit = infix_at(&key, i, *prev).is_some();
                *prev = Some(c);
                Some(hit)
            });
            let mergeable = key.len() <= MAX_EXCEPTION_LEN
                && (prefix_len(&key) > 0
                    || suffix_len(&key) > 0
                    || has_infix.into_iter().any(|h| h));
            if mergeable {
                let m = &mut merge_len[usize::from(key.as_bytes()[0])];
                *m = (*m).max(key.len() as u8);
            }
            let lens = line.split('\t').map(str::len).collect();
            let bit = filter_bit(&key);
            filter[bit / 64] |= 1 << (bit % 64);
            let q = quick_bit(&key);
            quick[q / 64] |= 1 << (q % 64);
            map.insert(key, Exception { lens, mergeable });
        }
        Exceptions {
            map,
            quick,
            filter,
            merge_len,
        }
    })
}

/// spaCy's second pass: runs of at least two adjacent tokens of one chunk that spell an
/// exception holding affixes ("i" "." → "i.", ")" ":" → "):") become that exception's
/// tokens, the longest runs first.
fn merge_exceptions(text: &str, out: &mut Vec<Span>, first: usize) {
    let exc = exceptions();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for i in first..out.len() {
        // The longest mergeable exception that can start here (by the byte the run starts
        // with; none past the text's end, where the run is empty).
        let max = text
            .as_bytes()
            .get(out[i].0)
            .map_or(0, |&b| usize::from(exc.merge_len[usize::from(b)]));
        for j in i + 2..=out.len() {
            let (a, b) = (out[i].0, out[j - 1].1);
            if b - a > max {
                break;
            }
            if exc.get(&text[a..b]).is_some_and(|e| e.mergeable) {
                runs.push((i, j));
            }
        }
    }
    merge_runs(text, out, first, runs);
}

/// Replaces the spans from `first` on by the exceptions of `runs` (ranges of spans whose
/// text is a mergeable exception): longest first, later starts first among equals, each
/// skipped where it touches a run taken before.
fn merge_runs(text: &str, out: &mut Vec<Span>, first: usize, mut runs: Vec<(usize, usize)>) {
    if runs.is_empty() {
        return;
    }
    let exc = exceptions();
    runs.sort_by_key(|&(i, j)| (std::cmp::Reverse(j - i), std::cmp::Reverse(i)));
    let mut taken = vec![false; out.len() - first];
    let mut chosen = Vec::new();
    for (i, j) in runs {
        if !taken[i - first] && !taken[j - 1 - first] {
            chosen.push((i, j));
        }
        for t in &mut taken[i - first..j - first] {
            *t = true;
        }
    }
    chosen.sort_unstable();
    let tail: Vec<Span> = out.drain(first..).collect();
    let mut k = 0;
    for (i, j) in chosen {
        out.extend_from_slice(&tail[k..i - first]);
        let (a, b) = (tail[i - first].0, tail[j - 1 - first].1);
        if let Some(e) = exc.get(&text[a..b]) {
            push_exception(a, &e.lens, out);
        }
        k = j - first;
    }
    out.extend_from_slice(&tail[k..]);
}

fn push_exception(start: usize, lens: &[usize], out: &mut Vec<Span>) {
    let mut a = start;
    for &l in lens {
        out.push((a, a + l));
        a += l;
    }
}

fn tokenize_chunk(text: &str, a: usize, b: usize, out: &mut Vec<Span>, sufs: &mut Vec<Span>) {
    let exc = exceptions();
    if let Some(e) = exc.get(&text[a..b]) {
        push_exception(a, &e.lens, out);
        return;
    }
    let first = out.len();
    sufs.clear();
    let (mut a, mut b) = (a, b);
    let mut last_size = 0;
    while a < b && b - a != last_size {
        if exc.contains_key(&text[a..b]) {
            break;
        }
        last_size = b - a;
        let pre = prefix_len(&text[a..b]);
        if pre != 0 && a + pre < b && exc.contains_key(&text[a + pre..b]) {
            out.push((a, a + pre));
            a += pre;
            break;
        }
        let suf = suffix_len(&text[a + pre..b]);
        if suf != 0 && b - suf > a && exc.contains_key(&text[a..b - suf]) {
            sufs.push((b - suf, b));
            b -= suf;
            break;
        }
        if pre != 0 && suf != 0 && pre + suf <= b - a {
            out.push((a, a + pre));
            sufs.push((b - suf, b));
            a += pre;
            b -= suf;
        } else if pre != 0 {
            out.push((a, a + pre));
            a += pre;
        } else if suf != 0 {
            sufs.push((b - suf, b));
            b -= suf;
        }
        if a < b && exc.contains_key(&text[a..b]) {
            break;
        }
    }
    if a < b {
        if let Some(e) = exc.get(&text[a..b]) {
            push_exception(a, &e.lens, out);
        } else if is_url(&text[a..b]) {
            out.push((a, b));
        } else {
            split_infixes(text, a, b, out);
        }
    }
    out.extend(sufs.iter().rev());
    if out.len() - first >= 2 {
        merge_exceptions(text, out, first);
    }
}

/// spaCy's `LIST_PUNCT` characters.
fn is_list_punct(c: char) -> bool {
    matches!(
        c,
        '…' | ','
            | ':'
            | ';'
            | '!'
            | '?'
            | '¿'
            | '؟'
            | '¡'
            | '('
            | ')'
            | '['
            | ']'
            | '{'
            | '}'
            | '<'
            | '>'
            | '_'
            | '#'
            | '*'
            | '&'
            | '。'
            | '？'
            | '！'
            | '，'
            | '、'
            | '；'
            | '：'
            | '～'
            | '·'
            | '।'
            | '،'
            | '۔'
            | '؛'
            | '٪'
    )
}

/// spaCy's `LIST_QUOTES` characters.
fn is_quote(c: char) -> bool {
    matches!(
        c,
        '\'' | '"'
            | '”'
            | '“'
            | '`'
            | '‘'
            | '´'
            | '’'
            | '‚'
            | ','
            | '„'
            | '»'
            | '«'
            | '「'
            | '」'
            | '『'
            | '』'
            | '（'
            | '）'
            | '〔'
            | '〕'
            | '【'
            | '】'
            | '《'
            | '》'
            | '〈'
            | '〉'
            | '\u{2329}'
            | '\u{232a}'
            | '⟦'
            | '⟧'
    )
}

/// Single-character currency signs of spaCy's `LIST_CURRENCY`.
fn is_currency(c: char) -> bool {
    matches!(c, '$' | '£' | '€' | '¥' | '฿' | '﷼') || ('\u{20a0}'..='\u{20bf}').contains(&c)
}

const CURRENCY_MULTI: [&str; 3] = ["US$", "C$", "A$"];

const UNITS: [&str; 91] = [
    "km", "km²", "km³", "m", "m²", "m³", "dm", "dm²", "dm³", "cm", "cm²", "cm³", "mm", "mm²",
    "mm³", "ha", "µm", "nm", "yd", "in", "ft", "kg", "g", "mg", "µg", "t", "lb", "oz", "m/s",
    "km/h", "kmh", "mph", "hPa", "Pa", "mbar", "mb", "MB", "kb", "KB", "gb", "GB", "tb", "TB", "T",
    "G", "M", "K", "%", "км", "км²", "км³", "м", "м²", "м³", "дм", "дм²", "дм³", "см", "см²",
    "см³", "мм", "мм²", "мм³", "нм", "кг", "г", "мг", "м/с", "км/ч", "кПа", "Па", "мбар", "Кб",
    "КБ", "кб", "Мб", "МБ", "мб", "Гб", "ГБ", "гб", "Тб", "ТБ", "тбكم", "كم²", "كم³", "م", "م²",
    "م³", "سم", "سم²",
];

/// The longest of [`UNITS`] and [`CURRENCY_MULTI`], in bytes.
const MAX_UNIT_LEN: usize = {
    let mut max = 0;
    let mut i = 0;
    while i < UNITS.len() {
        if UNITS[i].len() > max {
            max = UNITS[i].len();
        }
        i += 1;
    }
    let mut i = 0;
    while i < CURRENCY_MULTI.len() {
        if CURRENCY_MULTI[i].len() > max {
            max = CURRENCY_MULTI[i].len();
        }
        i += 1;
    }
    max
};

/// spaCy's `LIST_ICONS`: the symbol ranges (Unicode "So") its tokenizer splits off.
fn is_icon(c: char) -> bool {
    let c = c as u32;
    if c < 0xa6 {
        return false;
    }
    const RANGES: &[(u32, u32)] = &[
        (0xA6, 0xA6),
        (0xA9, 0xA9),
        (0xAE, 0xAE),
        (0xB0, 0xB0),
        (0x482, 0x482),
        (0x58D, 0x58D),
        (0x58E, 0x58E),
        (0x60E, 0x60E),
        (0x60F, 0x60F),
        (0x6DE, 0x6DE),
        (0x6E9, 0x6E9),
        (0x6FD, 0x6FD),
        (0x6FE, 0x6FE),
        (0x7F6, 0x7F6),
        (0x9FA, 0x9FA),
        (0xB70, 0xB70),
        (0xBF3, 0xBF8),
        (0xBFA, 0xBFA),
        (0xC7F, 0xC7F),
        (0xD4F, 0xD4F),
        (0xD79, 0xD79),
        (0xF01, 0xF03),
        (0xF13, 0xF13),
        (0xF15, 0xF17),
        (0xF1A, 0xF1F),
        (0xF34, 0xF34),
        (0xF36, 0xF36),
        (0xF38, 0xF38),
        (0xFBE, 0xFC5),
        (0xFC7, 0xFCC),
        (0xFCE, 0xFCE),
        (0xFCF, 0xFCF),
        (0xFD5, 0xFD8),
        (0x109E, 0x109E),
        (0x109F, 0x109F),
        (0x1390, 0x1399),
        (0x1940, 0x1940),
        (0x19DE, 0x19FF),
        (0x1B61, 0x1B6A),
        (0x1B74, 0x1B7C),
        (0x2100, 0x2100),
        (0x2101, 0x2101),
        (0x2103, 0x2106),
        (0x2108, 0x2108),
        (0x2109, 0x2109),
        (0x2114, 0x2114),
        (0x2116, 0x2116),
        (0x2117, 0x2117),
        (0x211E, 0x2123),
        (0x2125, 0x2125),
        (0x2127, 0x2127),
        (0x2129, 0x2129),
        (0x212E, 0x212E),
        (0x213A, 0x213A),
        (0x213B, 0x213B),
        (0x214A, 0x214A),
        (0x214C, 0x214C),
        (0x214D, 0x214D),
        (0x214F, 0x214F),
        (0x218A, 0x218A),
        (0x218B, 0x218B),
        (0x2195, 0x2199),
        (0x219C, 0x219F),
        (0x21A1, 0x21A1),
        (0x21A2, 0x21A2),
        (0x21A4, 0x21A4),
        (0x21A5, 0x21A5),
        (0x21A7, 0x21AD),
        (0x21AF, 0x21CD),
        (0x21D0, 0x21D0),
        (0x21D1, 0x21D1),
        (0x21D3, 0x21D3),
        (0x21D5, 0x21F3),
        (0x2300, 0x2307),
        (0x230C, 0x231F),
        (0x2322, 0x2328),
        (0x232B, 0x237B),
        (0x237D, 0x239A),
        (0x23B4, 0x23DB),
        (0x23E2, 0x2426),
        (0x2440, 0x244A),
        (0x249C, 0x24E9),
        (0x2500, 0x25B6),
        (0x25B8, 0x25C0),
        (0x25C2, 0x25F7),
        (0x2600, 0x266E),
        (0x2670, 0x2767),
        (0x2794, 0x27BF),
        (0x2800, 0x28FF),
        (0x2B00, 0x2B2F),
        (0x2B45, 0x2B45),
        (0x2B46, 0x2B46),
        (0x2B4D, 0x2B73),
        (0x2B76, 0x2B95),
        (0x2B98, 0x2BC8),
        (0x2BCA, 0x2BFE),
        (0x2CE5, 0x2CEA),
        (0x2E80, 0x2E99),
        (0x2E9B, 0x2EF3),
        (0x2F00, 0x2FD5),
        (0x2FF0, 0x2FFB),
        (0x3004, 0x3004),
        (0x3012, 0x3012),
        (0x3013, 0x3013),
        (0x3020, 0x3020),
        (0x3036, 0x3036),
        (0x3037, 0x3037),
        (0x303E, 0x303E),
        (0x303F, 0x303F),
        (0x3190, 0x3190),
        (0x3191, 0x3191),
        (0x3196, 0x319F),
        (0x31C0, 0x31E3),
        (0x3200, 0x321E),
        (0x322A, 0x3247),
        (0x3250, 0x3250),
        (0x3260, 0x327F),
        (0x328A, 0x32B0),
        (0x32C0, 0x32FE),
        (0x3300, 0x33FF),
        (0x4DC0, 0x4DFF),
        (0xA490, 0xA4C6),
        (0xA828, 0xA82B),
        (0xA836, 0xA836),
        (0xA837, 0xA837),
        (0xA839, 0xA839),
        (0xAA77, 0xAA79),
        (0xFDFD, 0xFDFD),
        (0xFFE4, 0xFFE4),
        (0xFFE8, 0xFFE8),
        (0xFFED, 0xFFED),
        (0xFFEE, 0xFFEE),
        (0xFFFC, 0xFFFC),
        (0xFFFD, 0xFFFD),
        (0x10137, 0x1013F),
        (0x10179, 0x10189),
        (0x1018C, 0x1018E),
        (0x10190, 0x1019B),
        (0x101A0, 0x101A0),
        (0x101D0, 0x101FC),
        (0x10877, 0x10877),
        (0x10878, 0x10878),
        (0x10AC8, 0x10AC8),
        (0x1173F, 0x1173F),
        (0x16B3C, 0x16B3F),
        (0x16B45, 0x16B45),
        (0x1BC9C, 0x1BC9C),
        (0x1D000, 0x1D0F5),
        (0x1D100, 0x1D126),
        (0x1D129, 0x1D164),
        (0x1D16A, 0x1D16C),
        (0x1D183, 0x1D183),
        (0x1D184, 0x1D184),
        (0x1D18C, 0x1D1A9),
        (0x1D1AE, 0x1D1E8),
        (0x1D200, 0x1D241),
        (0x1D245, 0x1D245),
        (0x1D300, 0x1D356),
        (0x1D800, 0x1D9FF),
        (0x1DA37, 0x1DA3A),
        (0x1DA6D, 0x1DA74),
        (0x1DA76, 0x1DA83),
        (0x1DA85, 0x1DA85),
        (0x1DA86, 0x1DA86),
        (0x1ECAC, 0x1ECAC),
        (0x1F000, 0x1F02B),
        (0x1F030, 0x1F093),
        (0x1F0A0, 0x1F0AE),
        (0x1F0B1, 0x1F0BF),
        (0x1F0C1, 0x1F0CF),
        (0x1F0D1, 0x1F0F5),
        (0x1F110, 0x1F16B),
        (0x1F170, 0x1F1AC),
        (0x1F1E6, 0x1F202),
        (0x1F210, 0x1F23B),
        (0x1F240, 0x1F248),
        (0x1F250, 0x1F250),
        (0x1F251, 0x1F251),
        (0x1F260, 0x1F265),
        (0x1F300, 0x1F3FA),
        (0x1F400, 0x1F6D4),
        (0x1F6E0, 0x1F6EC),
        (0x1F6F0, 0x1F6F9),
        (0x1F700, 0x1F773),
        (0x1F780, 0x1F7D8),
        (0x1F800, 0x1F80B),
        (0x1F810, 0x1F847),
        (0x1F850, 0x1F859),
        (0x1F860, 0x1F887),
        (0x1F890, 0x1F8AD),
        (0x1F900, 0x1F90B),
        (0x1F910, 0x1F93E),
        (0x1F940, 0x1F970),
        (0x1F973, 0x1F976),
        (0x1F97A, 0x1F97A),
        (0x1F97C, 0x1F9A2),
        (0x1F9B0, 0x1F9B9),
        (0x1F9C0, 0x1F9C2),
        (0x1F9D0, 0x1F9FF),
        (0x1FA60, 0x1FA6D),
    ];
    RANGES
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn is_lower(c: char) -> bool {
    c.is_lowercase() || (c.is_alphabetic() && !c.is_uppercase())
}

fn is_upper(c: char) -> bool {
    c.is_uppercase() || (c.is_alphabetic() && !c.is_lowercase())
}

/// The length in bytes of the prefix spaCy peels off `s` (0: none).
fn prefix_len(s: &str) -> usize {
    let Some(c) = s.chars().next() else {
        return 0;
    };
    if s.starts_with("..") {
        return s.len() - s.trim_start_matches('.').len();
    }
    match c {
        '§' | '%' | '=' | '—' | '–' => c.len_utf8(),
        '+' => match s[1..].chars().next() {
            Some(d) if d.is_ascii_digit() => 0,
            _ => 1,
        },
        _ if is_list_punct(c) || is_quote(c) || is_currency(c) || is_icon(c) => c.len_utf8(),
        'U' | 'C' | 'A' => CURRENCY_MULTI
            .iter()
            .find(|m| s.starts_with(*m))
            .map_or(0, |m| m.len()),
        _ => 0,
    }
}

/// The length in bytes of the suffix spaCy peels off `s` (0: none): of all its suffix
/// patterns, the one that starts leftmost (Python's `re.search`).
fn suffix_len(s: &str) -> usize {
    let n = s.len();
    let Some(last) = s.chars().next_back() else {
        return 0;
    };
    let before = &s[..n - last.len_utf8()];
    let prev = before.chars().next_back();
    let mut start = n;
    let dots = n - s.trim_end_matches('.').len();
    if dots >= 2 {
        start = start.min(n - dots);
    }
    if s.ends_with("……") {
        start = start.min(n - "……".len());
    }
    if is_list_punct(last) || is_quote(last) || is_icon(last) || last == '—' || last == '–' {
        start = start.min(n - last.len_utf8());
    }
    if matches!(last, 's' | 'S') && matches!(prev, Some('\'' | '’')) {
        start = start.min(n - 1 - prev.map_or(0, char::len_utf8));
    }
    if last == '+' && prev.is_some_and(|d| d.is_ascii_digit()) {
        start = start.min(n - 1);
    }
    if last == '.' && period_suffix(before) {
        start = start.min(n - 1);
    }
    if is_currency(last) && prev.is_some_and(|d| d.is_ascii_digit()) {
        start = start.min(n - last.len_utf8());
    }
    if let Some(d) = unit_start(s) {
        start = start.min(d);
    }
    n - start
}

/// Where a unit or currency sign after a number that ends `s` starts: it holds no ASCII
/// digit, so right after the last digit. (Only the last digit that a unit can follow is
/// looked for: one further back leaves a tail longer than any unit.)
#[inline]
fn unit_start(s: &str) -> Option<usize> {
    let window = s.len().saturating_sub(MAX_UNIT_LEN + 1);
    let d = window
        + s.as_bytes()[window..]
            .iter()
            .rposition(u8::is_ascii_digit)?;
    let tail = &s[d + 1..];
    (!tail.is_empty()
        && CURRENCY_MULTI
            .iter()
            .chain(UNITS.iter())
            .any(|m| *m == tail))
    .then_some(d + 1)
}

/// Whether a final `.` after `before` is a suffix: after a lowercase letter, a digit, `%²-+`,
/// a quote or punctuation; after `°F` (C, K); after two uppercase letters.
fn period_suffix(before: &str) -> bool {
    let mut it = before.chars().rev();
    let Some(p) = it.next() else {
        return false;
    };
    if p.is_ascii_digit()
        || is_lower(p)
        || matches!(p, '%' | '²' | '-' | '+' | '|' | '(' | '?' | ':' | ')')
        || is_quote(p)
        || is_list_punct(p)
    {
        return true;
    }
    let pp = it.next();
    (matches!(p, 'F' | 'f' | 'C' | 'c' | 'K' | 'k') && pp == Some('°'))
        || (is_upper(p) && pp.is_some_and(is_upper))
}

/// The infix at byte `i` of `s` (whose previous character is `prev`), as spaCy's infix
/// patterns find it: its end, or `None`.
fn infix_at(s: &str, i: usize, prev: Option<char>) -> Option<usize> {
    let rest = &s[i..];
    let mut it = rest.chars();
    let c = it.next()?;
    let next = it.next();
    let cl = c.len_utf8();
    if c == '.' && next == Some('.') {
        return Some(i + rest.len() - rest.trim_start_matches('.').len());
    }
    if c == '…' || is_icon(c) {
        return Some(i + cl);
    }
    let prev_digit = prev.is_some_and(|p| p.is_ascii_digit());
    if matches!(c, '+' | '-' | '*' | '^')
        && prev_digit
        && next.is_some_and(|d| d.is_ascii_digit() || d == '-')
    {
        return Some(i + 1);
    }
    let prev_alpha = prev.is_some_and(char::is_alphabetic);
    let next_alpha = next.is_some_and(char::is_alphabetic);
    if c == '.'
        && prev.is_some_and(|p| is_lower(p) || is_quote(p))
        && next.is_some_and(|n| is_upper(n) || is_quote(n))
    {
        return Some(i + 1);
    }
    if c == ',' && prev_alpha && next_alpha {
        return Some(i + 1);
    }
    if !(prev_alpha || prev_digit) {
        return None;
    }
    let after_alpha = |k: usize| rest[k..].chars().next().is_some_and(char::is_alphabetic);
    let hyphens: &[&str] = match c {
        '-' => &["-", "--", "---"],
        '—' => &["—", "——"],
        '–' => &["–"],
        '~' => &["~"],
        ':' | '<' | '>' | '=' | '/' => return next_alpha.then_some(i + 1),
        _ => return None,
    };
    hyphens
        .iter()
        .find(|h| rest.starts_with(**h) && after_alpha(h.len()))
        .map(|h| i + h.len())
}

fn split_infixes(text: &str, a: usize, b: usize, out: &mut Vec<Span>) {
    let s = &text[a..b];
    let mut start = 0;
    let mut i = 0;
    let mut prev: Option<char> = None;
    while i < s.len() {
        let (c, cl) = char_at(s, i);
        if c.is_ascii_alphanumeric() || c == '_' {
            prev = Some(c);
            i += 1;
            continue;
        }
        if let Some(end) = infix_at(s, i, prev) {
            if i != 0 {
                if i != start {
                    out.push((a + start, a + i));
                }
                out.push((a + i, a + end));
                start = end;
            }
            prev = s[..end].chars().next_back();
            i = end;
            continue;
        }
        prev = Some(c);
        i += cl;
    }
    if start < s.len() {
        out.push((a + start, b));
    }
}

/// spaCy's URL pattern, by hand: an optional `scheme://`, optional `user@`, a public IPv4
/// address or a host name with a lowercase top-level domain, an optional port, an optional
/// path starting with `/`, `?` or `#`.
fn is_url(s: &str) -> bool {
    if !s.contains('.') {
        return false;
    }
    let mut rest = s;
    if let Some(p) = s.find("://") {
        let scheme = &s[..p];
        if scheme.chars().count() >= 2
            && scheme
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'))
        {
            rest = &s[p + 3..];
        }
    }
    if host_port_path(rest) {
        return true;
    }
    // `user@` (or `user:pass@`): any '@', rightmost first, as the regex backtracks.
    let mut end = rest.len();
    while let Some(at) = rest[..end].rfind('@') {
        if at > 0 && host_port_path(&rest[at + 1..]) {
            return true;
        }
        end = at;
    }
    false
}

fn host_port_path(s: &str) -> bool {
    let host_end = s
        .char_indices()
        .find(|&(_, c)| !(is_host_char(c) || c == '.' || c == '_' || c == '-'))
        .map_or(s.len(), |(i, _)| i);
    let (host, mut rest) = s.split_at(host_end);
    if !(is_public_ipv4(host) || is_domain(host)) {
        return false;
    }
    if let Some(port) = rest.strip_prefix(':') {
        let digits = port.len() - port.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if !(2..=5).contains(&digits) {
            return false;
        }
        rest = &port[digits..];
    }
    rest.is_empty() || rest.starts_with(['/', '?', '#'])
}

fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ('\u{a1}'..='\u{ffff}').contains(&c)
}

fn is_domain(host: &str) -> bool {
    let Some((labels, tld)) = host.rsplit_once('.') else {
        return false;
    };
    let tld_len = tld.chars().count();
    if !(2..=63).contains(&tld_len) || !tld.chars().all(is_lower) {
        return false;
    }
    labels.split('.').all(|l| {
        let mut cs = l.chars();
        let first = cs.next();
        let last = l.chars().next_back();
        first.is_some_and(is_host_char) && last.is_some_and(is_host_char) && l.chars().count() <= 64
    })
}

fn is_public_ipv4(host: &str) -> bool {
    let mut oct = [0u32; 4];
    let mut n = 0;
    for part in host.split('.') {
        if n == 4 || part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit())
        {
            return false;
        }
        let v: u32 = part.bytes().fold(0, |v, b| v * 10 + u32::from(b - b'0'));
        let leading_zero = part.len() > 1 && part.starts_with('0');
        let ok = match n {
            0 => !leading_zero && (1..=223).contains(&v),
            3 => !leading_zero && (1..=254).contains(&v),
            _ => v <= 255 && part.len() <= 3,
        };
        if !ok {
            return false;
        }
        oct[n] = v;
        n += 1;
    }
    n == 4
        && oct[0] != 10
        && oct[0] != 127
        && !(oct[0] == 169 && oct[1] == 254)
        && !(oct[0] == 192 && oct[1] == 168)
        && !(oct[0] == 172 && (16..=31).contains(&oct[1]))
}

/// The sentencizer's punctuation marks (its default `punct_chars`, main scripts).
pub fn is_sentence_punct(c: char) -> bool {
    matches!(
        c,
        '!' | '.'
            | '?'
            | '։'
            | '؟'
            | '۔'
            | '܀'
            | '܁'
            | '܂'
            | '߹'
            | '।'
            | '॥'
            | '၊'
            | '။'
            | '።'
            | '፧'
            | '፨'
            | '᙮'
            | '᜵'
            | '᜶'
            | '᠃'
            | '᠉'
            | '‼'
            | '‽'
            | '⁇'
            | '⁈'
            | '⁉'
            | '⸮'
            | '⸼'
            | '꓿'
            | '﹒'
            | '﹖'
            | '﹗'
            | '！'
            | '．'
            | '？'
            | '｡'
            | '。'
    )
}

/// Unicode general category P* (spaCy's `is_punct`), for the scripts that matter here.
pub fn is_unicode_punct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation()
            && !matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~');
    }
    matches!(c as u32,
        0xa1 | 0xa7 | 0xab | 0xb6 | 0xb7 | 0xbb | 0xbf | 0x37e | 0x387 | 0x55a..=0x55f
        | 0x589..=0x58a | 0x5be | 0x5c0 | 0x5c3 | 0x5c6 | 0x5f3..=0x5f4 | 0x609..=0x60a
        | 0x60c..=0x60d | 0x61b | 0x61d..=0x61f | 0x66a..=0x66d | 0x6d4 | 0x964..=0x965 | 0x970
        | 0x2010..=0x2027 | 0x2030..=0x2043 | 0x2045..=0x2051 | 0x2053..=0x205e | 0x207d..=0x207e
        | 0x208d..=0x208e | 0x2308..=0x230b | 0x2329..=0x232a | 0x2768..=0x2775 | 0x27c5..=0x27c6
        | 0x27e6..=0x27ef | 0x2983..=0x2998 | 0x29d8..=0x29db | 0x29fc..=0x29fd | 0x2e00..=0x2e4f
        | 0x3001..=0x3003 | 0x3008..=0x3011 | 0x3014..=0x301f | 0x3030 | 0x303d | 0x30a0 | 0x30fb
        | 0xfe10..=0xfe19 | 0xfe30..=0xfe52 | 0xfe54..=0xfe61 | 0xfe63 | 0xfe68 | 0xfe6a..=0xfe6b
        | 0xff01..=0xff03 | 0xff05..=0xff0a | 0xff0c..=0xff0f | 0xff1a..=0xff1b | 0xff1f..=0xff20
        | 0xff3b..=0xff3d | 0xff3f | 0xff5b | 0xff5d | 0xff5f..=0xff65)
}

#[cfg(test)]
mod tests {
    /// [`super::word_spans`] without the eight-byte scan: a character at a time.
    fn word_spans_by_char(text: &str, out: &mut Vec<super::Span>) {
        out.clear();
        let mut sufs = Vec::new();
        let mut it = text.char_indices().peekable();
        while let Some(&(start, c)) = it.peek() {
            if super::is_space(c) {
                it.next();
                continue;
            }
            let (mut letters, mut digits, mut end) = (true, true, start);
            while let Some(&(i, c)) = it.peek() {
                if super::is_space(c) {
                    break;
                }
                letters &= c.is_ascii_alphabetic();
                digits &= c.is_ascii_digit();
                end = i + c.len_utf8();
                it.next();
            }
            super::chunk_words(text, start, end, letters || digits, out, &mut sufs);
        }
    }

    #[test]
    fn eight_byte_scan_equals_char_scan() {
        let pieces: Vec<&str> = concat!(
            "a|Z|q|0|9|.|,|;|-|'|\"|(|)|$| |  |\t|\n|\r|\x0b|\x1c|\x7f|\x01|@|[|`|{|/|:|",
            "é|ü|Σ|’|—|…|\u{a0}|\u{2003}|\u{3000}|word|Words|12345678|abcdefghij|dont|",
            "e.g.|U.S.|http://x.org|5km|don't|isn't|A1B2|MiXeDcAsE",
        )
        .split('|')
        .collect();
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        for _ in 0..5000 {
            let len = next() % 24;
            let text: String = (0..len).map(|_| pieces[next() % pieces.len()]).collect();
            super::word_spans(&text, &mut fast);
            word_spans_by_char(&text, &mut slow);
            assert_eq!(fast, slow, "{text:?}");
        }
    }

    #[test]
    fn word_then_punct_splits_as_the_tokenizer() {
        // Words (exceptions among them, and words that are exceptions with their mark:
        // "Mr." "e.g" "nothin'") followed by marks, those of the shortcut and others.
        let words = [
            "word",
            "Word",
            "WORD",
            "a",
            "I",
            "Mr",
            "mr",
            "Jan",
            "e",
            "eg",
            "dont",
            "cant",
            "nothin",
            "ol",
            "US",
            "C",
            "Ca",
            "St",
            "am",
            "pm",
            "ll",
            "s",
            "Xyz",
            "abcdefghijk",
            "A",
            "U",
            "nt",
            "ve",
            "im",
            "etc",
            "vs",
            "inc",
            "Inc",
            "no",
            "No",
        ];
        let marks = [
            ",", ".", ";", ":", "!", "?", ")", "\"", "'", "(", "-", "..", "'s", "%", "$", "/",
        ];
        let (mut fast, mut slow, mut sufs) = (Vec::new(), Vec::new(), Vec::new());
        let mut shortcut = 0;
        for w in words {
            for m in marks {
                for pre in ["", "(", "e."] {
                    let chunk = format!("{pre}{w}{m}");
                    fast.clear();
                    slow.clear();
                    super::chunk_words(&chunk, 0, chunk.len(), false, &mut fast, &mut sufs);
                    super::tokenize_chunk(&chunk, 0, chunk.len(), &mut slow, &mut sufs);
                    assert_eq!(fast, slow, "{chunk:?}");
                    shortcut += usize::from(super::word_then_punct(chunk.as_bytes()).is_some());
                }
            }
        }
        assert!(shortcut > 200, "{shortcut}");
        // Chunks of one character, the shortcut's, as the tokenizer splits them.
        for c in (1..0x250u32)
            .chain(0x2000..0x2070)
            .chain(0x3000..0x3020)
            .filter_map(char::from_u32)
        {
            if super::is_space(c) {
                continue;
            }
            let chunk = c.to_string();
            fast.clear();
            slow.clear();
            super::chunk_words(&chunk, 0, chunk.len(), false, &mut fast, &mut sufs);
            super::tokenize_chunk(&chunk, 0, chunk.len(), &mut slow, &mut sufs);
            assert_eq!(fast, slow, "{chunk:?}");
        }
    }

    use super::*;

    #[test]
    fn punctuation_is_peeled() {
        assert_eq!(
            split_words("Hello, (world).  Bye"),
            ["Hello", ",", "(", "world", ")", ".", "Bye"]
        );
    }

    /// Each case as spaCy 3.8's `spacy.blank("en")` splits it (whitespace tokens dropped).
    #[test]
    fn every_exception_passes_both_filters() {
        let exc = super::exceptions();
        assert!(exc.map.len() > 1000);
        for key in exc.map.keys() {
            assert!(exc.get(key).is_some(), "{key:?}");
        }
        // And the quick filter turns most common words away on its own.
        let words = [
            "the", "of", "and", "to", "in", "is", "kernel", "with", "for", "that",
        ];
        let passed = words
            .iter()
            .filter(|w| {
                let q = super::quick_bit(w);
                exc.quick[q / 64] & (1 << (q % 64)) != 0
            })
            .count();
        assert!(passed <= 3, "{passed}");
    }

    #[test]
    fn spacy_cases() {
        let cases: &[(&str, &[&str])] = &[
            ("don't", &["do", "n't"]),
            ("hello\nworld  x", &["hello", "world", "x"]),
            ("a.m.", &["a.m."]),
            ("foo->bar", &["foo->bar"]),
            ("0x1F,", &["0x1F", ","]),
            (
                "(see https://kernel.org/doc.html).",
                &["(", "see", "https://kernel.org/doc.html", ")", "."],
            ),
            ("CONFIG_FOO=y", &["CONFIG_FOO", "=", "y"]),
            ("struct::foo", &["struct::foo"]),
            ("\"quoted\"", &["\"", "quoted", "\""]),
            ("it's", &["it", "'s"]),
            ("x--y", &["x", "--", "y"]),
            ("1-2", &["1", "-", "2"]),
            ("a/b", &["a", "/", "b"]),
            ("e.g.", &["e.g."]),
            ("U.S.", &["U.S."]),
            ("dont", &["do", "nt"]),
            ("can't.", &["ca", "n't", "."]),
            ("=====", &["=", "=", "=", "=", "="]),
            ("``foo``", &["`", "`", "foo", "`", "`"]),
            ("$5", &["$", "5"]),
            ("10km", &["10", "km"]),
            ("::", &[":", ":"]),
            ("...", &["..."]),
            ("x):", &["x", "):"]),
            ("(d.", &["(", "d."]),
            ("a.B", &["a.", "B"]),
            ("'s'", &["'s", "'"]),
            ("i.MX", &["i.", "MX"]),
            ("foo...", &["foo", "..."]),
        ];
        for (text, want) in cases {
            assert_eq!(&split_words(text), want, "{text:?}");
        }
    }

    #[test]
    fn unit_after_last_digit_as_a_full_scan() {
        // The last digit anywhere in the chunk, as spaCy's pattern finds it.
        let full = |s: &str| {
            let d = s.bytes().rposition(|b| b.is_ascii_digit())?;
            let tail = &s[d + 1..];
            let unit = CURRENCY_MULTI
                .iter()
                .chain(UNITS.iter())
                .any(|m| *m == tail);
            (!tail.is_empty() && unit).then_some(d + 1)
        };
        let pieces = [
            "1", "0", "km", "км/ч", "мбар", "тбكم", "US$", "%", "m", "x", "é", "abcdefgh", "-",
            "kmh", "km/h", "mm²",
        ];
        let mut state = 3u64;
        let mut hits = 0;
        for _ in 0..20000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let len = 1 + (state >> 60) as usize % 6;
            let s: String = (0..len)
                .map(|k| pieces[(state >> (8 * k + 3)) as usize % pieces.len()])
                .collect();
            assert_eq!(unit_start(&s), full(&s), "{s:?}");
            hits += usize::from(full(&s).is_some());
        }
        assert!(hits > 500, "{hits}");
    }

    /// [`merge_exceptions`] trying every run of up to [`MAX_EXCEPTION_LEN`] bytes.
    fn merge_exceptions_every_run(text: &str, out: &mut Vec<Span>, first: usize) {
        let exc = exceptions();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for i in first..out.len() {
            for j in i + 2..=out.len() {
                let (a, b) = (out[i].0, out[j - 1].1);
                if b - a > MAX_EXCEPTION_LEN {
                    break;
                }
                if exc.get(&text[a..b]).is_some_and(|e| e.mergeable) {
                    runs.push((i, j));
                }
            }
        }
        merge_runs(text, out, first, runs);
    }

    #[test]
    fn merging_tries_only_runs_an_exception_can_span() {
        // Chunks cut from mergeable exceptions (emoticons, "a.m.", "):"…) and other
        // characters, split a character at a time: the second pass must find the same runs
        // with and without the first byte's length limit.
        let exc = exceptions();
        let mut keys: Vec<&str> = exc
            .map
            .iter()
            .filter(|(_, e)| e.mergeable)
            .map(|(k, _)| k.as_str())
            .collect();
        keys.sort_unstable();
        keys.extend(["=", "(", "a", "x", "é", ".", ":", "-"]);
        let mut state = 11u64;
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        let mut merged = 0;
        for _ in 0..20000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let len = 1 + (state >> 61) as usize;
            let text: String = (0..len)
                .map(|k| keys[(state >> (7 * k + 3)) as usize % keys.len()])
                .collect();
            fast.clear();
            fast.push((0, 0));
            fast.extend(text.char_indices().map(|(i, c)| (i, i + c.len_utf8())));
            slow.clone_from(&fast);
            merge_exceptions(&text, &mut fast, 1);
            merge_exceptions_every_run(&text, &mut slow, 1);
            assert_eq!(fast, slow, "{text:?}");
            merged += usize::from(fast.len() != text.chars().count() + 1);
        }
        assert!(merged > 2000, "{merged}");
    }

    #[test]
    fn sentences_as_the_sentencizer_counts_them() {
        let mut spans = Vec::new();
        assert_eq!(sentence_count("One. Two! Three? four", &mut spans), 4);
        assert_eq!(sentence_count("See e.g. this (yes).", &mut spans), 1);
        assert_eq!(sentence_count("Wait... what?! No.", &mut spans), 2);
    }
}
