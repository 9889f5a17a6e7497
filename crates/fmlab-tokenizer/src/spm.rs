//! SentencePiece-style tokenization from scores (llama.cpp's `llm_tokenizer_spm`): start
//! from single characters and repeatedly merge the adjacent pair whose concatenation is the
//! vocabulary entry with the highest score (leftmost on ties); what no token covers falls
//! back to `<0xXX>` byte tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::{TokenType, Vocab};

#[derive(Debug, Clone)]
pub(crate) struct Spm {
    byte_tokens: [Option<u32>; 256],
}

/// `▁`, SentencePiece's visible space.
const SPACE: char = '\u{2581}';

/// The bytes of an SPM token: `▁` becomes a space, `<0xXX>` byte tokens their byte.
pub(crate) fn decode_piece(piece: &str, kind: TokenType) -> Vec<u8> {
    if kind == TokenType::Byte {
        if let Some(hex) = piece.strip_prefix("<0x").and_then(|p| p.strip_suffix('>')) {
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                return vec![b];
            }
        }
    }
    piece.replace(SPACE, " ").into_bytes()
}

struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Highest score first; on equal scores, the leftmost pair first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl Spm {
    pub(crate) fn new(vocab: &Vocab) -> Self {
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = vocab.id(&format!("<0x{b:02X}>"));
        }
        Self { byte_tokens }
    }

    pub(crate) fn encode(&self, raw: &str, space_prefix: bool, vocab: &Vocab, out: &mut Vec<u32>) {
        let mut text = String::with_capacity(raw.len() + 3);
        if space_prefix {
            text.push(SPACE);
        }
        text.extend(raw.chars().map(|c| if c == ' ' { SPACE } else { c }));
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (i, (start, c)) in text.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
            if i > 0 {
                symbols[i - 1].next = Some(i);
            }
        }
        let mut queue = BinaryHeap::new();
        let text_ref = text.as_str();
        let try_add = |queue: &mut BinaryHeap<Bigram>,
                       symbols: &[Symbol],
                       left: Option<usize>,
                       right: Option<usize>| {
            let (Some(l), Some(r)) = (left, right) else {
                return;
            };
            let start = symbols[l].start;
            let len = symbols[l].len + symbols[r].len;
            let piece = &text_ref[start..start + len];
            if let Some(id) = vocab.id(piece) {
                queue.push(Bigram {
                    left: l,
                    right: r,
                    score: vocab.scores.get(id as usize).copied().unwrap_or(0.0),
                    len,
                });
            }
        };
        for i in 1..symbols.len() {
            try_add(&mut queue, &symbols, Some(i - 1), Some(i));
        }
        while let Some(b) = queue.pop() {
            let (l, r) = (b.left, b.right);
            // Skip pairs one of whose symbols has changed since the pair was queued.
            if symbols[l].len == 0
                || symbols[r].len == 0
                || symbols[l].len + symbols[r].len != b.len
            {
                continue;
            }
            symbols[l].len += symbols[r].len;
            symbols[r].len = 0;
            symbols[l].next = symbols[r].next;
            if let Some(n) = symbols[r].next {
                symbols[n].prev = Some(l);
            }
            let prev = symbols[l].prev;
            let next = symbols[l].next;
            try_add(&mut queue, &symbols, prev, Some(l));
            try_add(&mut queue, &symbols, Some(l), next);
        }
        // Every merged symbol is a vocabulary entry (pairs are queued only then); a single
        // character the vocabulary lacks falls back to its bytes.
        let mut i = if symbols.is_empty() { None } else { Some(0) };
        while let Some(s) = i {
            let piece = &text_ref[symbols[s].start..symbols[s].start + symbols[s].len];
            match vocab.id(piece) {
                Some(id) => out.push(id),
                None => out.extend(
                    piece
                        .bytes()
                        .filter_map(|b| self.byte_tokens[b as usize].or(vocab.unk)),
                ),
            }
            i = symbols[s].next;
        }
    }
}
