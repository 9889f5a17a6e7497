//! Hashed features as fastText makes them: word unigrams, word n-grams up to
//! `word_ngrams`, and the character n-grams (`min_char_ngram..=max_char_ngram`) of each
//! word wrapped in `<` and `>`; every feature hashed (64-bit FNV-1a, one salt per kind)
//! into one table of `buckets` rows. Words are `words::split_words`'s (punctuation marks
//! are tokens: they tell code and tables apart), lowercased when asked.

use crate::words::split_words;

use super::TrainOptions;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// fastText's multiplier for combining word hashes into an n-gram's hash.
const NGRAM_MUL: u64 = 116_049_371;
const SALT_CHAR: u64 = 0x9e37_79b9_7f4a_7c15;

fn fnv_byte(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
}

fn fnv_char(mut h: u64, c: char) -> u64 {
    let mut buf = [0u8; 4];
    for &b in c.encode_utf8(&mut buf).as_bytes() {
        h = fnv_byte(h, b);
    }
    h
}

/// A mixing finaliser so that `% buckets` sees well-spread bits.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// Turns texts into bucket indices; keeps its buffers between calls.
pub(crate) struct Featurizer<'a> {
    options: &'a TrainOptions,
    word_hashes: Vec<u64>,
    chars: Vec<char>,
}

impl<'a> Featurizer<'a> {
    pub(crate) fn new(options: &'a TrainOptions) -> Self {
        Featurizer {
            options,
            word_hashes: Vec::new(),
            chars: Vec::new(),
        }
    }

    /// Fills `out` with the bucket index of every feature of `text` (repeats included,
    /// as fastText averages over them).
    pub(crate) fn features(&mut self, text: &str, out: &mut Vec<u32>) {
        out.clear();
        self.word_hashes.clear();
        let o = self.options;
        let text = super::prefix(text, o.max_bytes);
        let buckets = o.buckets as u64;
        let bucket = |h: u64| (mix(h) % buckets) as u32;
        for word in split_words(text) {
            self.chars.clear();
            self.chars.push('<');
            if o.lowercase {
                self.chars.extend(word.chars().flat_map(char::to_lowercase));
            } else {
                self.chars.extend(word.chars());
            }
            self.chars.push('>');
            let core = &self.chars[1..self.chars.len() - 1];
            let h = core.iter().fold(FNV_OFFSET, |h, &c| fnv_char(h, c));
            self.word_hashes.push(h);
            out.push(bucket(h));
            if o.min_char_ngram == 0 {
                continue;
            }
            for n in o.min_char_ngram..=o.max_char_ngram {
                for gram in self.chars.windows(n) {
                    let h = gram
                        .iter()
                        .fold(FNV_OFFSET ^ SALT_CHAR, |h, &c| fnv_char(h, c));
                    out.push(bucket(h));
                }
            }
        }
        for n in 2..=o.word_ngrams {
            for gram in self.word_hashes.windows(n) {
                let h = gram[1..]
                    .iter()
                    .fold(gram[0], |h, &w| h.wrapping_mul(NGRAM_MUL).wrapping_add(w));
                out.push(bucket(h.wrapping_add(n as u64)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_count_words_bigrams_and_char_ngrams() {
        let o = TrainOptions {
            min_char_ngram: 3,
            max_char_ngram: 3,
            word_ngrams: 2,
            ..TrainOptions::default()
        };
        let mut f = Featurizer::new(&o);
        let mut out = Vec::new();
        // "ab" -> "<ab>": 2 trigrams; "cd" too; 2 words; 1 bigram.
        f.features("ab cd", &mut out);
        assert_eq!(out.len(), 2 + 2 + 2 + 1);
        assert!(out.iter().all(|&b| (b as usize) < o.buckets));
        let mut again = Vec::new();
        f.features("AB CD", &mut again);
        assert_eq!(out, again, "lowercased");
        f.features("cd ab", &mut again);
        assert_ne!(out, again, "the bigram depends on word order");
    }
}
