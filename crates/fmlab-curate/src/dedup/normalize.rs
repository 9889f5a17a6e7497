//! Text normalisation before deduplication: datatrove's `simplify_text` with its default
//! `TextNormConfig` (lower case, every number → `0`, punctuation → space, whitespace runs →
//! one space, diacritics dropped after NFD), applied in datatrove's order so that the same
//! text gives the same normalised string, and then the same shingles.

use unicode_general_category::{get_general_category, GeneralCategory};
use unicode_normalization::UnicodeNormalization;

use super::masks::{ascii_masks, next_clear, next_set};
use crate::words::{chunk_words, Span};

/// Which normalisations to apply (datatrove's `TextNormConfig`; its English-only weekday and
/// month-name options, off by default there, are not offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextNorm {
    pub lowercase: bool,
    pub norm_numbers: bool,
    pub remove_punctuation: bool,
    pub norm_whitespace: bool,
    pub norm_unicode_diacritics: bool,
}

impl Default for TextNorm {
    /// datatrove's defaults: everything on.
    fn default() -> Self {
        TextNorm {
            lowercase: true,
            norm_numbers: true,
            remove_punctuation: true,
            norm_whitespace: true,
            norm_unicode_diacritics: true,
        }
    }
}

/// The separators datatrove allows inside one number (`1.5`, `1,000` → `0`).
fn is_number_separator(c: char) -> bool {
    matches!(c, '.' | ',' | '،' | '٫' | '⎖' | '⎗' | '⎘')
}

fn is_decimal_digit(c: char) -> bool {
    c.is_ascii_digit()
        || (!c.is_ascii() && get_general_category(c) == GeneralCategory::DecimalNumber)
}

/// datatrove's `PUNCTUATION` string: ASCII punctuation, the C0 and C1 controls but tab and
/// newline, and a few quotes, dashes and CJK / full-width marks. (Its larger
/// `TERMINAL_PUNCTUATION` set is not part of the translation table.)
#[inline]
pub fn is_punctuation(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation() || (c.is_ascii_control() && c != '\t' && c != '\n');
    }
    matches!(
        c,
        '\u{80}'..='\u{9f}'
            | '\u{ab}'
            | '\u{b4}'
            | '\u{bb}'
            | '\u{2013}'
            | '\u{2014}'
            | '\u{2019}'
            | '\u{201c}'
            | '\u{201d}'
            | '\u{201e}'
            | '\u{2026}'
            | '\u{2236}'
            | '\u{2501}'
            | '\u{25ba}'
            | '\u{3001}'
            | '\u{3002}'
            | '\u{3008}'..='\u{300d}'
            | '\u{3010}'
            | '\u{3011}'
            | '\u{ff01}'
            | '\u{ff05}'
            | '\u{ff08}'
            | '\u{ff09}'
            | '\u{ff0c}'
            | '\u{ff0e}'
            | '\u{ff11}'
            | '\u{ff1a}'
            | '\u{ff1b}'
            | '\u{ff1f}'
            | '\u{ff5e}'
    )
}

/// Python's `str.isspace` (what `re`'s `\s` and `str.strip` use): Unicode White_Space plus
/// the information separators U+001C–U+001F.
fn is_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}')
}

/// Reusable buffers for [`simplify_text_into`], so that normalising many documents
/// allocates nothing once the buffers have grown.
#[derive(Debug, Default)]
pub struct NormScratch {
    lower: String,
    out: String,
}

/// `simplify_text(text)` with datatrove's default configuration, as a new string.
pub fn simplify_text(text: &str, norm: &TextNorm) -> String {
    let mut scratch = NormScratch::default();
    simplify_text_into(text, norm, &mut scratch).to_string()
}

/// `simplify_text(text)` written into `scratch`; returns the normalised text.
pub fn simplify_text_into<'s>(
    text: &str,
    norm: &TextNorm,
    scratch: &'s mut NormScratch,
) -> &'s str {
    let NormScratch { lower, out } = scratch;
    out.clear();
    if text.is_ascii() {
        // The common case: lower case folded into the one byte pass, no copy.
        ascii_numbers_punctuation_spaces(text, norm, norm.lowercase, out);
    } else {
        lower.clear();
        if norm.lowercase {
            // `str::to_lowercase` follows Python's `str.lower` (final sigma included).
            lower.push_str(&text.to_lowercase());
        } else {
            lower.push_str(text);
        }
        if lower.is_ascii() {
            ascii_numbers_punctuation_spaces(lower, norm, false, out);
        } else {
            numbers_punctuation_spaces(lower, norm, out);
        }
    }
    if norm.norm_unicode_diacritics && !out.is_ascii() {
        // NFD, then drop the non-spacing marks; done after the whitespace pass as datatrove
        // does, so a dropped mark between two spaces leaves both.
        lower.clear();
        strip_diacritics(out, lower);
        std::mem::swap(out, lower);
    }
    let start = out.len() - out.trim_start_matches(is_space).len();
    let end = out.trim_end_matches(is_space).len().max(start);
    &out[start..end]
}

/// `text` in NFD without its non-spacing marks, appended to `out`. An ASCII character has
/// no decomposition and is a starter (canonical combining class 0), which no reordering
/// crosses, so NFD works on each run of non-ASCII characters alone: the ASCII runs between
/// them are copied as they are.
fn strip_diacritics(text: &str, out: &mut String) {
    let mut rest = text;
    while !rest.is_empty() {
        let ascii = rest
            .bytes()
            .position(|b| !b.is_ascii())
            .unwrap_or(rest.len());
        out.push_str(&rest[..ascii]);
        rest = &rest[ascii..];
        let other = rest
            .bytes()
            .position(|b| b.is_ascii())
            .unwrap_or(rest.len());
        out.extend(
            rest[..other]
                .nfd()
                .filter(|&c| get_general_category(c) != GeneralCategory::NonspacingMark),
        );
        rest = &rest[other..];
    }
}

/// One pass for the three character-level steps, which commute with the pass order as
/// datatrove applies them: numbers (a run of decimal digits, optionally one separator and
/// more digits) become `0`; punctuation becomes a space; runs of spaces collapse to one and
/// the ends are stripped. ASCII bytes other than digits are classed by a table without
/// decoding a character (most of a mostly-ASCII text); the rest a character at a time.
fn numbers_punctuation_spaces(text: &str, norm: &TextNorm, out: &mut String) {
    let bytes = text.as_bytes();
    let n = bytes.len();
    let char_at = |i: usize| text[i..].chars().next().map(|c| (c, c.len_utf8()));
    // The length of the decimal digit at `i`, if there is one.
    let digit_at = |i: usize| match bytes.get(i) {
        Some(b) if b.is_ascii() => b.is_ascii_digit().then_some(1),
        Some(_) => char_at(i).and_then(|(c, l)| is_decimal_digit(c).then_some(l)),
        None => None,
    };
    let punct = if norm.remove_punctuation { PUNCT } else { 0 };
    let mut pending_space = false;
    let mut i = 0;
    while i < n {
        let b = bytes[i];
        if b.is_ascii() && !(norm.norm_numbers && b.is_ascii_digit()) {
            i += 1;
            let k = ASCII_CLASSES[usize::from(b)];
            if k & punct != 0 {
                // A space (pending when whitespace is normalised).
                if norm.norm_whitespace {
                    pending_space = true;
                } else {
                    out.push(' ');
                }
            } else if norm.norm_whitespace && k & SPACE != 0 {
                pending_space = true;
            } else {
                emit(out, &mut pending_space, char::from(b), norm);
            }
            continue;
        }
        let Some((c, len)) = char_at(i) else {
            break;
        };
        if norm.norm_numbers && is_decimal_digit(c) {
            i += len;
            while let Some(l) = digit_at(i) {
                i += l;
            }
            // An optional separator followed by at least one digit.
            if let Some((_, sl)) = char_at(i).filter(|&(s, _)| is_number_separator(s)) {
                if let Some(l) = digit_at(i + sl) {
                    i += sl + l;
                    while let Some(l) = digit_at(i) {
                        i += l;
                    }
                }
            }
            emit(out, &mut pending_space, '0', norm);
            continue;
        }
        i += len;
        let c = if norm.remove_punctuation && is_punctuation(c) {
            ' '
        } else {
            c
        };
        if norm.norm_whitespace && is_space(c) {
            pending_space = true;
        } else {
            emit(out, &mut pending_space, c, norm);
        }
    }
}

/// Classes of the ASCII bytes for [`ascii_numbers_punctuation_spaces`].
const DIGIT: u8 = 1;
const PUNCT: u8 = 2;
const SPACE: u8 = 4;

const fn ascii_classes() -> [u8; 128] {
    let mut t = [0u8; 128];
    let mut c = 0u8;
    while c < 128 {
        let mut k = 0;
        if c.is_ascii_digit() {
            k |= DIGIT;
        }
        // `is_punctuation` and `is_space` on ASCII.
        if c.is_ascii_punctuation() || (c.is_ascii_control() && c != b'\t' && c != b'\n') {
            k |= PUNCT;
        }
        if c.is_ascii_whitespace() || c == 0x0b || (c >= 0x1c && c <= 0x1f) {
            k |= SPACE;
        }
        t[c as usize] = k;
        c += 1;
    }
    t
}

static ASCII_CLASSES: [u8; 128] = ascii_classes();

/// [`numbers_punctuation_spaces`] on ASCII text (the common case), lower-casing it first
/// when `lowercase`: byte classes from a table, bytes written straight into the output
/// (which stays ASCII, so no character is encoded).
fn ascii_numbers_punctuation_spaces(
    text: &str,
    norm: &TextNorm,
    lowercase: bool,
    out: &mut String,
) {
    let bytes = text.as_bytes();
    let class = |c: u8| ASCII_CLASSES[usize::from(c & 0x7f)];
    let digit = if norm.norm_numbers { DIGIT } else { 0 };
    let blank = if norm.remove_punctuation { PUNCT } else { 0 }
        | if norm.norm_whitespace { SPACE } else { 0 };
    let mut buf = std::mem::take(out).into_bytes();
    buf.reserve(bytes.len());
    let mut pending_space = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let k = class(c);
        if k & (digit | blank) == 0 {
            if pending_space {
                if !buf.is_empty() {
                    buf.push(b' ');
                }
                pending_space = false;
            }
            buf.push(if lowercase { c.to_ascii_lowercase() } else { c });
            i += 1;
        } else if k & digit != 0 {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < bytes.len()
                && matches!(bytes[i], b'.' | b',')
                && bytes[i + 1].is_ascii_digit()
            {
                i += 2;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if pending_space {
                if !buf.is_empty() {
                    buf.push(b' ');
                }
                pending_space = false;
            }
            buf.push(b'0');
        } else {
            // Blank; `pending_space` is only ever set when whitespace is normalised.
            if norm.norm_whitespace {
                pending_space = true;
            } else {
                buf.push(b' ');
            }
            i += 1;
        }
    }
    // Only ASCII bytes were written, so this never fails (and never loses the buffer).
    *out = String::from_utf8(buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
}

impl TextNorm {
    /// Whether lower case, numbers, punctuation and whitespace are all normalised (the
    /// default): then ASCII text normalises to words of `a`–`z` and `0` separated by single
    /// spaces, which [`simplify_words_ascii`] splits as it writes them.
    pub fn splits_ascii_in_one_pass(&self) -> bool {
        self.lowercase && self.norm_numbers && self.remove_punctuation && self.norm_whitespace
    }
}

/// Scratch space of [`simplify_words_ascii`]: the normalised text's whitespace-free chunks
/// (start, end, whether all letters or all digits), the word splitter's suffixes, and the
/// input's masks of letters and of letters or digits.
#[derive(Debug, Default)]
pub struct WordScratch {
    chunks: Vec<(usize, usize, bool)>,
    suffixes: Vec<Span>,
    letters: Vec<u64>,
    alnum: Vec<u64>,
}

/// `simplify_text_into` followed by `words::word_spans` of its result, for ASCII `text` and
/// a `norm` that [`TextNorm::splits_ascii_in_one_pass`]: one pass over the input writes the
/// normalised text (lower-case letters, `0` for each number, one space between chunks, no
/// space at the ends: nothing for the final strip to do) and notes where each chunk of it
/// starts and ends; the chunks are then split into words as `word_spans` splits them (a
/// chunk of letters only or digits only is one word unless it is a tokenizer exception).
/// Every ASCII byte is a letter, a digit or a blank (punctuation, whitespace or a control
/// character: all become one space): the pass jumps from run to run with bit masks of the
/// letters and of the letters and digits, so a run of letters is copied, and a run of
/// blanks skipped, whole. The words go into `spans` (cleared first); returns the
/// normalised text.
pub fn simplify_words_ascii<'s>(
    text: &str,
    scratch: &'s mut NormScratch,
    words: &mut WordScratch,
    spans: &mut Vec<Span>,
) -> &'s str {
    debug_assert!(text.is_ascii());
    let WordScratch {
        chunks,
        suffixes,
        letters: letter_mask,
        alnum,
    } = words;
    let bytes = text.as_bytes();
    let n = bytes.len();
    ascii_masks(bytes, letter_mask, alnum);
    let mut buf = std::mem::take(&mut scratch.out).into_bytes();
    // Written by index: the output is never longer than the input read so far (a space is
    // written only for blanks already read, one `0` for one or more digits), plus 8 bytes
    // for the word-at-a-time copy of letters.
    buf.clear();
    buf.resize(n + 8, 0);
    let mut o = 0;
    chunks.clear();
    let (mut start, mut letters, mut digits) = (0, false, false);
    let mut i = next_set(alnum, 0, n);
    while i < n {
        // A chunk starts at `i`, after blanks (or at the start).
        if o > 0 {
            chunks.push((start, o, !(letters && digits)));
            buf[o] = b' ';
            o += 1;
            start = o;
            (letters, digits) = (false, false);
        }
        loop {
            if bytes[i].is_ascii_digit() {
                // A number: digits, optionally one separator and more digits.
                i += 1;
                while i < n && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if i + 1 < n && matches!(bytes[i], b'.' | b',') && bytes[i + 1].is_ascii_digit() {
                    i += 2;
                    while i < n && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                buf[o] = b'0';
                o += 1;
                digits = true;
            } else {
                // A run of letters, copied eight bytes at a time lower-cased (`| 0x20` on
                // a letter; what is copied past the run is overwritten later or cut off).
                let end = next_clear(letter_mask, i, n);
                while i < end {
                    if let Some(w) = bytes.get(i..i + 8) {
                        let w =
                            u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
                        buf[o..o + 8].copy_from_slice(&(w | 0x2020_2020_2020_2020).to_le_bytes());
                        let step = (end - i).min(8);
                        i += step;
                        o += step;
                    } else {
                        buf[o] = bytes[i] | 0x20;
                        i += 1;
                        o += 1;
                    }
                }
                letters = true;
            }
            if i >= n || !bytes[i].is_ascii_alphanumeric() {
                break;
            }
        }
        i = next_set(alnum, i, n);
    }
    if o > start {
        chunks.push((start, o, !(letters && digits)));
    }
    buf.truncate(o);
    // Only ASCII bytes were written, so this never fails (and never loses the buffer).
    scratch.out = String::from_utf8(buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    let out = scratch.out.as_str();
    spans.clear();
    for &(a, b, plain) in chunks.iter() {
        chunk_words(out, a, b, plain, spans, suffixes);
    }
    out
}

#[inline]
fn emit(out: &mut String, pending_space: &mut bool, c: char, norm: &TextNorm) {
    if *pending_space && norm.norm_whitespace {
        if !out.is_empty() {
            out.push(' ');
        }
        *pending_space = false;
    }
    out.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`numbers_punctuation_spaces`] a character at a time (its first version): the reference.
    /// One pass for the three character-level steps, which commute with the pass order as
    /// datatrove applies them: numbers (a run of decimal digits, optionally one separator and
    /// more digits) become `0`; punctuation becomes a space; runs of spaces collapse to one and
    /// the ends are stripped.
    fn numbers_punctuation_spaces_by_char(text: &str, norm: &TextNorm, out: &mut String) {
        let mut pending_space = false;
        let mut chars = text.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if norm.norm_numbers && is_decimal_digit(c) {
                while chars.peek().is_some_and(|&(_, d)| is_decimal_digit(d)) {
                    chars.next();
                }
                // An optional separator followed by at least one digit.
                let mut ahead = chars.clone();
                if let (Some((_, s)), Some((_, d))) = (ahead.next(), ahead.next()) {
                    if is_number_separator(s) && is_decimal_digit(d) {
                        chars = ahead;
                        while chars.peek().is_some_and(|&(_, d)| is_decimal_digit(d)) {
                            chars.next();
                        }
                    }
                }
                emit(out, &mut pending_space, '0', norm);
                continue;
            }
            let c = if norm.remove_punctuation && is_punctuation(c) {
                ' '
            } else {
                c
            };
            if norm.norm_whitespace && is_space(c) {
                pending_space = true;
            } else {
                emit(out, &mut pending_space, c, norm);
            }
        }
    }

    fn s(t: &str) -> String {
        simplify_text(t, &TextNorm::default())
    }

    #[test]
    fn matches_datatrove_simplify_text() {
        // Expected strings from datatrove 0.10's simplify_text on the same inputs.
        assert_eq!(s("  Hello,   World!\n\tBye.  "), "hello world bye");
        assert_eq!(
            s("In 2023, 1,000.5 people paid $3.50"),
            "in 0 0 0 people paid 0"
        );
        assert_eq!(s("Café naïve résumé"), "cafe naive resume");
        assert_eq!(s("ΟΔΟΣ “quoted” — dash…"), "οδος quoted dash");
        assert_eq!(s("a\u{301} b"), "a b");
        assert_eq!(s("x \u{301} y"), "x  y");
        assert_eq!(s("١٢٣ and ４５"), "0 and 0");
        assert_eq!(s("‘single’"), "‘single");
    }

    #[test]
    fn diacritics_stripped_run_by_run_equal_whole_text_nfd() {
        // Marks that are dropped and marks that stay (U+1D165 and U+1D16D are spacing
        // combining marks, which NFD reorders), precomposed letters, a compatibility
        // ligature (left alone by NFD), Hangul.
        let alphabet: Vec<char> =
            "ae 0.\u{301}\u{300}\u{327}\u{323}éÅǅ\u{1e0b}\u{a0}ﬁ가ḉ\u{344}\u{f73}\u{1d16d}\u{1d165}"
                .chars()
                .collect();
        let mut state = 3u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let mut got = String::new();
        for _ in 0..5000 {
            let text: String = (0..next() % 20)
                .map(|_| alphabet[next() % alphabet.len()])
                .collect();
            let want: String = text
                .nfd()
                .filter(|&c| get_general_category(c) != GeneralCategory::NonspacingMark)
                .collect();
            got.clear();
            strip_diacritics(&text, &mut got);
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn ascii_pass_equals_general_pass() {
        let norm = TextNorm::default();
        for t in [
            "a1.5b 2,3,4 x.y\x0b\x1c z  7. 8",
            "  ..12..  ",
            "v1.2.3-rc4\r\n\tend",
            "",
        ] {
            let (mut a, mut b) = (String::new(), String::new());
            ascii_numbers_punctuation_spaces(t, &norm, false, &mut a);
            numbers_punctuation_spaces(t, &norm, &mut b);
            assert_eq!(a, b, "{t:?}");
        }
    }

    #[test]
    fn one_pass_words_equal_normalising_then_splitting() {
        // ASCII bytes that matter: letters, digits, number separators, punctuation that
        // spaCy peels off, whitespace and controls; words that are exceptions ("dont",
        // "cannot", "10am") or mixed chunks that spaCy splits ("0km", "0am").
        let pieces: Vec<&str> = concat!(
            "a|Z|q|0|9|.|,|;|-|'|\"|(|)|$|%| |  |\t|\n|\r|\x0b|\x1c|\x7f|\x01|dont|",
            "Cannot|10am|5km|x2|e.g.|i.e.|don't|U.S.|3pm|gonna|ll|im|12,5|@|[|`|{|",
            "Supercalifragilistic|abcdefgh|ABCDEFGHIJKLMNOPQRSTUVWXYZ|xY|",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN|",
            "                                                                      |",
            "1234567890123456789012345678901234567890123456789012345678901234567",
        )
        .split('|')
        .collect();
        let mut state = 99u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        let norm = TextNorm::default();
        let (mut a, mut b) = (NormScratch::default(), NormScratch::default());
        let (mut words, mut spans, mut want) = (WordScratch::default(), Vec::new(), Vec::new());
        for round in 0..20000 {
            let len = next() % 40;
            let text: String = (0..len).map(|_| pieces[next() % pieces.len()]).collect();
            let text = if round == 0 { String::new() } else { text };
            let reference = simplify_text_into(&text, &norm, &mut a).to_string();
            crate::words::word_spans(&reference, &mut want);
            let got = simplify_words_ascii(&text, &mut b, &mut words, &mut spans);
            assert_eq!(got, reference, "{text:?}");
            assert_eq!(spans, want, "{text:?} → {reference:?}");
        }
    }

    /// The general (char by char) path for every step, as the reference.
    fn reference(text: &str, norm: &TextNorm) -> String {
        let lower = if norm.lowercase {
            text.to_lowercase()
        } else {
            text.to_string()
        };
        let mut out = String::new();
        numbers_punctuation_spaces_by_char(&lower, norm, &mut out);
        if norm.norm_unicode_diacritics {
            out = out
                .nfd()
                .filter(|&c| get_general_category(c) != GeneralCategory::NonspacingMark)
                .collect();
        }
        out.trim_matches(is_space).to_string()
    }

    #[test]
    fn fast_paths_equal_general_path_on_random_texts_and_every_config() {
        let alphabet: Vec<char> = "aZq 09.,;-\t\n\r\x0b\x1c\x7f!Ke\u{301}’é٣،Σ\u{212a}"
            .chars()
            .collect();
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        let mut scratch = NormScratch::default();
        for round in 0..3000 {
            let bits = round % 32;
            let norm = TextNorm {
                lowercase: bits & 1 != 0,
                norm_numbers: bits & 2 != 0,
                remove_punctuation: bits & 4 != 0,
                norm_whitespace: bits & 8 != 0,
                norm_unicode_diacritics: bits & 16 != 0,
            };
            // Half the texts ASCII only (the first 17 characters of the alphabet).
            let span = if round % 2 == 0 { 17 } else { alphabet.len() };
            let len = next() % 40;
            let text: String = (0..len).map(|_| alphabet[next() % span]).collect();
            assert_eq!(
                simplify_text_into(&text, &norm, &mut scratch),
                reference(&text, &norm),
                "{text:?} {norm:?}"
            );
        }
    }
}
