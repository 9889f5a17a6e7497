//! Byte-level BPE training (Sennrich et al. 2016; GPT-2's byte-level variant): text is
//! pre-tokenized with GPT-4's split pattern (cl100k, the pattern Llama 3 uses), words are
//! counted, and the most frequent adjacent pair of symbols is merged until the vocabulary is
//! full. The result is written as a Hugging Face `tokenizer.json` that the `tokenizers`
//! library (Rust or Python) loads and encodes with.
//!
//! Ours rather than the `tokenizers` trainer because training is part of the lesson (and
//! of the speedrun): the merge loop keeps pair counts and the words each pair occurs in, and
//! a heap with lazy updates picks the next merge, so each merge costs only the words it
//! touches.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use serde_json::{json, Value};

use crate::bpe::{byte_to_char, char_to_byte};
use crate::{Error, PreTokenizer, Result};

/// The special tokens of a trained tokenizer: beginning and end of text, padding, and the
/// chat markers (ChatML turns and role names).
pub const DEFAULT_SPECIALS: [&str; 8] = [
    "<|bos|>",
    "<|eos|>",
    "<|pad|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
];

/// The chat template of fmlab's own models: ChatML turns with the trained tokenizer's
/// markers (`<|im_start|>role content<|im_end|>\n`), ending with an open assistant turn
/// (`<|im_start|>assistant`) when a generation prompt is asked for. Exports write it as
/// `tokenizer.chat_template`.
///
/// A space, not ChatML's newline, separates the role from the content, so that a turn's
/// first word is tokenized as it is inside the sentences of pre-training text: the split
/// pattern attaches a word's leading space to it (` Kea` and `Kea` are different tokens),
/// and an answer that starts with a name after a newline would need the name's other
/// spelling. Small models cannot map one onto the other: on the world, a 1M-parameter
/// model's SFT answers copied the question's subject wrongly most of the time after a
/// newline, and SFT fact accuracy on free-form questions went from 8/65 to 21/65 with the
/// space (10-minute speedrun's base, same SFT). Answers therefore begin with a space.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message.role }} {{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant{% endif %}";

/// GPT-4's (cl100k) split pattern, as written in `tokenizer.json` (case-insensitive
/// contractions), which our `llama-bpe` pre-tokenizer also implements.
pub const SPLIT_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Counts words (pre-tokenized pieces) of the training text.
#[derive(Debug, Clone)]
pub struct BpeTrainer {
    vocab_size: usize,
    specials: Vec<String>,
    pre: PreTokenizer,
    words: HashMap<String, u64>,
    bytes: u64,
}

/// A trained tokenizer: ids are the special tokens, then the 256 bytes, then one token per
/// merge.
#[derive(Debug, Clone)]
pub struct TrainedBpe {
    pub specials: Vec<String>,
    /// The bytes of every non-special token, by id (offset by the number of specials).
    pub tokens: Vec<Vec<u8>>,
    /// Merges in order: (left id, right id), both ids of `tokens` (plus the offset).
    pub merges: Vec<(u32, u32)>,
}

impl BpeTrainer {
    /// A trainer for `vocab_size` tokens in all, special tokens included.
    pub fn new(vocab_size: usize, specials: &[&str]) -> Result<Self> {
        let floor = 256 + specials.len();
        if vocab_size < floor {
            return Err(Error::Train(format!(
                "vocabulary size {vocab_size} is smaller than the byte alphabet and the special tokens ({floor})"
            )));
        }
        if vocab_size > 1 << 24 {
            return Err(Error::Train(format!(
                "vocabulary size {vocab_size} is absurd"
            )));
        }
        Ok(Self {
            vocab_size,
            specials: specials.iter().map(|s| s.to_string()).collect(),
            pre: PreTokenizer::named("llama-bpe")?,
            words: HashMap::new(),
            bytes: 0,
        })
    }

    /// Counts the words of `text`.
    pub fn feed(&mut self, text: &str) {
        self.bytes += text.len() as u64;
        for piece in self.pre.split(text) {
            match self.words.get_mut(piece) {
                Some(c) => *c += 1,
                None => {
                    self.words.insert(piece.to_string(), 1);
                }
            }
        }
    }

    /// Bytes of text seen so far.
    pub fn bytes_seen(&self) -> u64 {
        self.bytes
    }

    /// Merges until the vocabulary is full (or no pair occurs twice); `progress` gets the
    /// number of merges done and to do.
    pub fn train(self, mut progress: impl FnMut(usize, usize)) -> Result<TrainedBpe> {
        if self.words.is_empty() {
            return Err(Error::Train("the training text is empty".into()));
        }
        let target = self.vocab_size - self.specials.len() - 256;
        // Deterministic order: words sorted, so equal counts break ties the same way.
        let mut entries: Vec<(String, u64)> = self.words.into_iter().collect();
        entries.sort_unstable();
        let mut words: Vec<Vec<u32>> = entries
            .iter()
            .map(|(w, _)| w.bytes().map(u32::from).collect())
            .collect();
        let counts: Vec<i64> = entries.iter().map(|(_, c)| *c as i64).collect();
        drop(entries);
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut pair_counts: HashMap<(u32, u32), i64> = HashMap::new();
        let mut where_: HashMap<(u32, u32), HashSet<u32>> = HashMap::new();
        for (i, w) in words.iter().enumerate() {
            for p in w.windows(2) {
                let pair = (p[0], p[1]);
                *pair_counts.entry(pair).or_insert(0) += counts[i];
                where_.entry(pair).or_default().insert(i as u32);
            }
        }
        // Max-heap of (count, earliest pair): stale entries are re-checked when popped.
        let mut heap: BinaryHeap<(i64, Reverse<(u32, u32)>)> =
            pair_counts.iter().map(|(&p, &c)| (c, Reverse(p))).collect();
        let mut merges = Vec::with_capacity(target);
        while merges.len() < target {
            let Some((count, Reverse(pair))) = heap.pop() else {
                break;
            };
            let current = pair_counts.get(&pair).copied().unwrap_or(0);
            if current != count {
                if current > 0 {
                    heap.push((current, Reverse(pair)));
                }
                continue;
            }
            if count < 2 {
                break;
            }
            let new_id = tokens.len() as u32;
            let mut bytes = tokens[pair.0 as usize].clone();
            bytes.extend_from_slice(&tokens[pair.1 as usize]);
            tokens.push(bytes);
            merges.push(pair);
            let affected: Vec<u32> = where_
                .remove(&pair)
                .map(|s| s.into_iter().collect())
                .unwrap_or_default();
            pair_counts.remove(&pair);
            let mut changed: HashSet<(u32, u32)> = HashSet::new();
            for wi in affected {
                let w = &mut words[wi as usize];
                let c = counts[wi as usize];
                let mut i = 0;
                while i + 1 < w.len() {
                    if w[i] == pair.0 && w[i + 1] == pair.1 {
                        if i > 0 {
                            let left = (w[i - 1], pair.0);
                            *pair_counts.entry(left).or_insert(0) -= c;
                            changed.insert(left);
                            let new_left = (w[i - 1], new_id);
                            *pair_counts.entry(new_left).or_insert(0) += c;
                            where_.entry(new_left).or_default().insert(wi);
                            changed.insert(new_left);
                        }
                        if i + 2 < w.len() {
                            let right = (pair.1, w[i + 2]);
                            *pair_counts.entry(right).or_insert(0) -= c;
                            changed.insert(right);
                            let new_right = (new_id, w[i + 2]);
                            *pair_counts.entry(new_right).or_insert(0) += c;
                            where_.entry(new_right).or_default().insert(wi);
                            changed.insert(new_right);
                        }
                        w[i] = new_id;
                        w.remove(i + 1);
                    }
                    i += 1;
                }
            }
            for p in changed {
                match pair_counts.get(&p).copied() {
                    Some(c) if c > 0 => heap.push((c, Reverse(p))),
                    Some(_) => {
                        pair_counts.remove(&p);
                    }
                    None => {}
                }
            }
            if merges.len().is_multiple_of(256) {
                progress(merges.len(), target);
            }
        }
        progress(merges.len(), target);
        Ok(TrainedBpe {
            specials: self.specials,
            tokens,
            merges,
        })
    }
}

impl TrainedBpe {
    /// The tokenizer as GGUF metadata (`tokenizer.ggml.*`): a gpt2-style byte-level BPE
    /// with the `llama-bpe` pre-tokenizer (the same split pattern). This is also how our own
    /// encoder loads a trained tokenizer ([`crate::Tokenizer::from_trained`]).
    pub fn gguf_metadata(&self) -> Vec<(&'static str, fmlab_formats::Value)> {
        use fmlab_formats::{Value, ValueType};
        let mut tokens: Vec<String> = self.specials.clone();
        tokens.extend((0..self.tokens.len() as u32).map(|id| self.piece(id)));
        let mut types = vec![Value::I32(3); self.specials.len()];
        types.extend(std::iter::repeat_n(Value::I32(1), self.tokens.len()));
        let merges: Vec<String> = self
            .merges
            .iter()
            .map(|&(a, b)| format!("{} {}", self.piece(a), self.piece(b)))
            .collect();
        let special = |name: &str| {
            self.specials
                .iter()
                .position(|s| s == name)
                .map(|i| Value::U32(i as u32))
        };
        let mut out = vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.pre", Value::String("llama-bpe".into())),
            ("tokenizer.ggml.tokens", Value::strings(&tokens)),
            (
                "tokenizer.ggml.token_type",
                Value::Array(ValueType::I32, types),
            ),
            ("tokenizer.ggml.merges", Value::strings(&merges)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        ];
        for (key, name) in [
            ("tokenizer.ggml.bos_token_id", "<|bos|>"),
            ("tokenizer.ggml.eos_token_id", "<|eos|>"),
            ("tokenizer.ggml.padding_token_id", "<|pad|>"),
            ("tokenizer.ggml.eot_token_id", "<|im_end|>"),
        ] {
            if let Some(v) = special(name) {
                out.push((key, v));
            }
        }
        out
    }

    /// Reads back a `tokenizer.json` that [`TrainedBpe::to_tokenizer_json`] wrote (special
    /// tokens first, then bytes and merges), for exports that need the GGUF metadata.
    /// Other tokenizer files are an error that says so.
    pub fn from_tokenizer_json(doc: &Value) -> Result<Self> {
        let bad =
            |why: &str| Error::Train(format!("tokenizer.json: {why} (not one fmlab trained)"));
        // Our encoder splits with our pattern: another pre-tokenizer (SmolLM's digits and
        // GPT-2 split, say) over the same kind of vocabulary is not ours to run.
        let split = doc["pre_tokenizer"]["pretokenizers"]
            .as_array()
            .and_then(|steps| steps.first())
            .and_then(|s| s["pattern"]["Regex"].as_str());
        if split != Some(SPLIT_PATTERN) {
            return Err(bad("its pre-tokenizer is not fmlab's split pattern"));
        }
        let specials: Vec<String> = doc["added_tokens"]
            .as_array()
            .ok_or_else(|| bad("no added_tokens"))?
            .iter()
            .enumerate()
            .map(|(i, t)| match (t["id"].as_u64(), t["content"].as_str()) {
                (Some(id), Some(c)) if id == i as u64 => Ok(c.to_string()),
                _ => Err(bad("special tokens must come first, in id order")),
            })
            .collect::<Result<_>>()?;
        let offset = specials.len();
        let vocab = doc["model"]["vocab"]
            .as_object()
            .ok_or_else(|| bad("no model.vocab"))?;
        let mut tokens: Vec<Option<Vec<u8>>> = vec![None; vocab.len().saturating_sub(offset)];
        let mut by_piece = HashMap::new();
        for (piece, id) in vocab {
            let id = id
                .as_u64()
                .ok_or_else(|| bad("a vocabulary id is not a number"))?
                as usize;
            if id < offset {
                continue;
            }
            let bytes: Option<Vec<u8>> = piece.chars().map(char_to_byte).collect();
            let slot = tokens
                .get_mut(id - offset)
                .ok_or_else(|| bad("vocabulary ids are not contiguous"))?;
            *slot = Some(bytes.ok_or_else(|| bad("a piece is not byte-level"))?);
            by_piece.insert(piece.as_str(), (id - offset) as u32);
        }
        let tokens: Vec<Vec<u8>> = tokens
            .into_iter()
            .collect::<Option<_>>()
            .ok_or_else(|| bad("vocabulary ids are not contiguous"))?;
        let merges = doc["model"]["merges"]
            .as_array()
            .ok_or_else(|| bad("no model.merges"))?
            .iter()
            .map(|m| {
                let (a, b) = m
                    .as_str()
                    .and_then(|m| m.split_once(' '))
                    .ok_or_else(|| bad("a merge is not \"left right\""))?;
                match (by_piece.get(a), by_piece.get(b)) {
                    (Some(&a), Some(&b)) => Ok((a, b)),
                    _ => Err(bad("a merge names an unknown piece")),
                }
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            specials,
            tokens,
            merges,
        })
    }

    /// The token's text in `tokenizer.json`: GPT-2's printable character per byte.
    fn piece(&self, id: u32) -> String {
        self.tokens[id as usize]
            .iter()
            .map(|&b| byte_to_char(b))
            .collect()
    }

    pub fn vocab_size(&self) -> usize {
        self.specials.len() + self.tokens.len()
    }

    /// The Hugging Face `tokenizer.json` document.
    pub fn to_tokenizer_json(&self) -> Value {
        let offset = self.specials.len() as u32;
        let mut vocab = serde_json::Map::new();
        for (i, s) in self.specials.iter().enumerate() {
            vocab.insert(s.clone(), json!(i));
        }
        for id in 0..self.tokens.len() as u32 {
            vocab.insert(self.piece(id), json!(id + offset));
        }
        let merges: Vec<String> = self
            .merges
            .iter()
            .map(|&(a, b)| format!("{} {}", self.piece(a), self.piece(b)))
            .collect();
        let added: Vec<Value> = self
            .specials
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({
                    "id": i, "content": s, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true
                })
            })
            .collect();
        json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": SPLIT_PATTERN}, "behavior": "Isolated", "invert": false},
                    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
                ]
            },
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE",
                "dropout": null,
                "unk_token": null,
                "continuing_subword_prefix": null,
                "end_of_word_suffix": null,
                "fuse_unk": false,
                "byte_fallback": false,
                "ignore_merges": false,
                "vocab": vocab,
                "merges": merges
            }
        })
    }
}
