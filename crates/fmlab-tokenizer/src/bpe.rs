//! Byte-level BPE (GPT-2 style): bytes become printable characters, merges apply by rank.

use std::collections::HashMap;

use fmlab_formats::{Gguf, Value};

use crate::{Error, PreTokenizer, Result, Vocab};

#[derive(Debug, Clone)]
pub(crate) struct Bpe {
    pre: PreTokenizer,
    /// (left id, right id) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
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

fn char_to_byte(c: char) -> Option<u8> {
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
        let mut merges = HashMap::with_capacity(merges_list.len());
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
                merges.entry((l, r)).or_insert((rank as u32, m));
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
        for word in self.pre.split(text) {
            self.encode_word(word, vocab, out);
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
                if let Some(&(rank, merged)) = self.merges.get(&(symbols[i], symbols[i + 1])) {
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
