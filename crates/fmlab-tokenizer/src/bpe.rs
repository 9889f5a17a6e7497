//! Byte-level BPE (GPT-2 style): bytes become printable characters, merges apply by rank.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use fmlab_formats::{Gguf, Value};

use crate::{Error, PreTokenizer, Result, Vocab};

/// A multiply-rotate hash for integer keys (the one rustc uses): the merge table is looked
/// up for every adjacent pair of every word, and SipHash, the default, cost a fifth of the
/// encoding time. Keys come from the model file, not from an adversary at run time.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Texts at least this long keep a cache of the words they encoded (a word's ids depend
/// only on the word): natural text repeats its words, and the cache skips their merges.
const CACHE_FROM: usize = 4096;

#[derive(Debug, Clone)]
pub(crate) struct Bpe {
    pre: PreTokenizer,
    /// (left id, right id) as `left << 32 | right` → (rank, merged id).
    merges: FastMap<u64, (u32, u32)>,
    /// The token of each byte's printable character.
    byte_tokens: [Option<u32>; 256],
}

/// GPT-2's table: printable bytes stand for themselves; the others map to U+0100 onwards.
pub(crate) fn byte_to_char(b: u8) -> char {
    const fn printable(b: u8) -> bool {
        matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
    }
    if printable(b) {
        return b as char;
    }
    let rank = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + rank).unwrap_or('\u{FFFD}')
}

pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let code = c as u32;
    if code < 256 {
        let b = code as u8;
        if matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF) {
            return Some(b);
        }
        return None;
    }
    let rank = code - 256;
    (0..=255u8)
        .filter(|&x| !matches!(x, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF))
        .nth(rank as usize)
}

/// The bytes of a byte-level BPE token's text.
pub(crate) fn decode_piece(piece: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(piece.len());
    for c in piece.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

impl Bpe {
    pub(crate) fn from_gguf(g: &Gguf, vocab: &Vocab, pre: PreTokenizer) -> Result<Self> {
        let merges_list = g
            .get("tokenizer.ggml.merges")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Metadata("tokenizer.ggml.merges is missing".into()))?;
        let mut merges = FastMap::with_capacity_and_hasher(merges_list.len(), Default::default());
        for (rank, m) in merges_list.iter().enumerate() {
            let text = m.as_str().ok_or_else(|| {
                Error::Metadata(format!("tokenizer.ggml.merges[{rank}] is not a string"))
            })?;
            // "a b": split at the first space after the first character (which may itself
            // be a space in principle).
            let first = text.chars().next().map_or(0, char::len_utf8);
            let Some(split) = text[first..].find(' ').map(|i| i + first) else {
                return Err(Error::Metadata(format!(
                    "merge {rank} ({text:?}) has no space"
                )));
            };
            let (left, right) = (&text[..split], &text[split + 1..]);
            let merged = format!("{left}{right}");
            if let (Some(l), Some(r), Some(m)) =
                (vocab.id(left), vocab.id(right), vocab.id(&merged))
            {
                merges.entry(pair_key(l, r)).or_insert((rank as u32, m));
            }
        }
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = vocab.id(&byte_to_char(b as u8).to_string());
        }
        Ok(Self {
            pre,
            merges,
            byte_tokens,
        })
    }

    pub(crate) fn encode(&self, text: &str, vocab: &Vocab, out: &mut Vec<u32>) {
        if text.len() < CACHE_FROM {
            for word in self.pre.split(text) {
                self.encode_word(word, vocab, out);
            }
            return;
        }
        let mut cache: HashMap<&str, (usize, usize)> = HashMap::new();
        let mut store: Vec<u32> = Vec::new();
        for word in self.pre.split(text) {
            match cache.get(word) {
                Some(&(start, end)) => out.extend_from_slice(&store[start..end]),
                None => {
                    let before = out.len();
                    self.encode_word(word, vocab, out);
                    let start = store.len();
                    store.extend_from_slice(&out[before..]);
                    cache.insert(word, (start, store.len()));
                }
            }
        }
    }

    fn encode_word(&self, word: &str, vocab: &Vocab, out: &mut Vec<u32>) {
        // Initial symbols: one per byte-character, as token ids.
        let mut symbols: Vec<u32> = Vec::with_capacity(word.len());
        for &b in word.as_bytes() {
            match self.byte_tokens[b as usize] {
                Some(id) => symbols.push(id),
                None => {
                    if let Some(unk) = vocab.unk {
                        symbols.push(unk);
                    }
                }
            }
        }
        // Merge the lowest-ranked adjacent pair (leftmost on ties) until none is left.
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..symbols.len().saturating_sub(1) {
                if let Some(&(rank, merged)) =
                    self.merges.get(&pair_key(symbols[i], symbols[i + 1]))
                {
                    if best.is_none_or(|(r, _, _)| rank < r) {
                        best = Some((rank, i, merged));
                    }
                }
            }
            let Some((_, i, merged)) = best else { break };
            symbols[i] = merged;
            symbols.remove(i + 1);
        }
        out.extend_from_slice(&symbols);
    }
}

#[inline]
fn pair_key(left: u32, right: u32) -> u64 {
    (left as u64) << 32 | right as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_round_trips() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b), "{b}");
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(decode_piece("Ġhello"), b" hello");
    }
}
