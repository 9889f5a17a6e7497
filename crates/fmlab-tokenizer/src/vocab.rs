//! The vocabulary: token texts, types, scores and the special ids, and the partition of text
//! around special tokens.

use std::collections::HashMap;

use fmlab_formats::{Gguf, Value};

use crate::{Error, Result};

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_id(id: i64) -> Self {
        match id {
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Normal,
        }
    }

    /// The `tokenizer.ggml.token_type` value.
    pub fn id(self) -> i32 {
        match self {
            TokenType::Normal => 1,
            TokenType::Unknown => 2,
            TokenType::Control => 3,
            TokenType::UserDefined => 4,
            TokenType::Unused => 5,
            TokenType::Byte => 6,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Vocab {
    pieces: Vec<String>,
    types: Vec<TokenType>,
    pub(crate) scores: Vec<f32>,
    index: HashMap<String, u32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    pub add_space_prefix: bool,
    /// Control, user-defined and unknown tokens, longest text first: the order in which
    /// text is partitioned around them.
    specials: Vec<u32>,
    /// Tokens that end generation.
    end_of_generation: Vec<u32>,
    /// End-of-generation tokens that loading made control tokens, with the type the file
    /// gave them (what an export writes back).
    promoted: Vec<(u32, TokenType)>,
}

/// A piece of input after partitioning: text to tokenize, or a special token.
pub(crate) enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// Texts that llama.cpp treats as end-of-generation tokens whatever the file says: they end
/// generation, and they become control tokens (so plain text never matches them). Matching
/// llama.cpp here is what makes our token ids equal to its ids.
const END_OF_GENERATION: [&str; 17] = [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

impl Vocab {
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let tokens = g
            .get("tokenizer.ggml.tokens")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Error::Metadata("tokenizer.ggml.tokens is missing or not an array".into())
            })?;
        let mut pieces = Vec::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            let s = t.as_str().ok_or_else(|| {
                Error::Metadata(format!("tokenizer.ggml.tokens[{i}] is not a string"))
            })?;
            pieces.push(s.to_string());
        }
        let n = pieces.len();
        let types = match g.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
            Some(types) if types.len() == n => types
                .iter()
                .map(|v| TokenType::from_id(v.as_f64().map_or(1, |x| x as i64)))
                .collect(),
            Some(types) => {
                return Err(Error::Metadata(format!(
                    "tokenizer.ggml.token_type has {} entries for {n} tokens",
                    types.len()
                )))
            }
            None => vec![TokenType::Normal; n],
        };
        let scores = match g.get("tokenizer.ggml.scores").and_then(Value::as_array) {
            Some(scores) if scores.len() == n => scores
                .iter()
                .map(|v| v.as_f64().unwrap_or(0.0) as f32)
                .collect(),
            Some(scores) => {
                return Err(Error::Metadata(format!(
                    "tokenizer.ggml.scores has {} entries for {n} tokens",
                    scores.len()
                )))
            }
            None => vec![0.0; n],
        };
        let id = |key: &str| -> Result<Option<u32>> {
            match g.get(key).and_then(Value::as_u64) {
                None => Ok(None),
                Some(v) if (v as usize) < n => Ok(Some(v as u32)),
                Some(v) => Err(Error::Metadata(format!(
                    "{key} = {v} is outside the vocabulary of {n}"
                ))),
            }
        };
        let flag =
            |key: &str, default: bool| g.get(key).and_then(Value::as_bool).unwrap_or(default);
        let model = g
            .get("tokenizer.ggml.model")
            .and_then(Value::as_str)
            .unwrap_or("");
        let spm = model == "llama";
        let mut index = HashMap::with_capacity(n);
        for (i, p) in pieces.iter().enumerate() {
            // The first of duplicate texts wins, as in llama.cpp's token_to_id map.
            index.entry(p.clone()).or_insert(i as u32);
        }
        let mut types = types;
        let mut end_of_generation = Vec::new();
        let mut promoted = Vec::new();
        for text in END_OF_GENERATION {
            if let Some(&id) = index.get(text) {
                if types[id as usize] != TokenType::Control {
                    promoted.push((id, types[id as usize]));
                }
                types[id as usize] = TokenType::Control;
                end_of_generation.push(id);
            }
        }
        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                matches!(
                    types[i as usize],
                    TokenType::Control | TokenType::UserDefined | TokenType::Unknown
                ) && !pieces[i as usize].is_empty()
            })
            .collect();
        specials.sort_by(|&a, &b| {
            pieces[b as usize]
                .len()
                .cmp(&pieces[a as usize].len())
                .then(a.cmp(&b))
        });
        Ok(Self {
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            eot: id("tokenizer.ggml.eot_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            add_bos: flag("tokenizer.ggml.add_bos_token", spm),
            add_eos: flag("tokenizer.ggml.add_eos_token", false),
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix", spm),
            pieces,
            types,
            scores,
            index,
            specials,
            end_of_generation,
            promoted,
        })
    }

    /// The vocabulary of a `tokenizers` tokenizer: added tokens marked special are control
    /// tokens, other added tokens user-defined.
    pub(crate) fn from_hf(hf: &tokenizers::Tokenizer) -> Self {
        let n = hf.get_vocab_size(true);
        let mut pieces = vec![String::new(); n];
        for (piece, id) in hf.get_vocab(true) {
            if let Some(slot) = pieces.get_mut(id as usize) {
                *slot = piece;
            }
        }
        let mut types = vec![TokenType::Normal; n];
        for (id, added) in hf.get_added_tokens_decoder() {
            if let Some(t) = types.get_mut(id as usize) {
                *t = if added.special {
                    TokenType::Control
                } else {
                    TokenType::UserDefined
                };
            }
        }
        let index: HashMap<String, u32> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i as u32))
            .collect();
        let find = |names: &[&str]| names.iter().find_map(|n| index.get(*n).copied());
        let end_of_generation: Vec<u32> = END_OF_GENERATION
            .iter()
            .filter_map(|t| index.get(*t).copied())
            .collect();
        Self {
            bos: find(&["<s>", "<bos>", "<|begin_of_text|>", "<|endoftext|>"]),
            eos: find(&[
                "</s>",
                "<eos>",
                "<|end_of_text|>",
                "<|endoftext|>",
                "<|im_end|>",
            ]),
            eot: None,
            unk: find(&["<unk>"]),
            pad: find(&["<pad>"]),
            add_bos: false,
            add_eos: false,
            add_space_prefix: false,
            scores: vec![0.0; n],
            specials: Vec::new(),
            end_of_generation,
            promoted: Vec::new(),
            pieces,
            types,
            index,
        }
    }

    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    pub fn piece(&self, id: u32) -> Result<&str> {
        self.pieces
            .get(id as usize)
            .map(String::as_str)
            .ok_or(Error::BadToken {
                id,
                vocab_size: self.pieces.len(),
            })
    }

    pub fn token_type(&self, id: u32) -> TokenType {
        self.types
            .get(id as usize)
            .copied()
            .unwrap_or(TokenType::Unknown)
    }

    /// The type the vocabulary's file gives a token: [`Self::token_type`] but for
    /// end-of-generation tokens, which loading makes control tokens as llama.cpp does.
    pub fn stored_token_type(&self, id: u32) -> TokenType {
        match self.promoted.iter().find(|(p, _)| *p == id) {
            Some(&(_, kind)) => kind,
            None => self.token_type(id),
        }
    }

    /// The id of a token by its exact text.
    pub fn id(&self, piece: &str) -> Option<u32> {
        self.index.get(piece).copied()
    }

    pub fn stop_tokens(&self) -> Vec<u32> {
        let mut stops: Vec<u32> = [self.eos, self.eot].into_iter().flatten().collect();
        for &id in &self.end_of_generation {
            if !stops.contains(&id) {
                stops.push(id);
            }
        }
        stops
    }

    /// Splits `text` around special tokens, longest first. User-defined tokens always
    /// match; control and unknown tokens only with `parse_special`.
    pub(crate) fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut fragments = vec![Fragment::Text(text)];
        for &id in &self.specials {
            if !parse_special && self.types[id as usize] != TokenType::UserDefined {
                continue;
            }
            let needle = self.pieces[id as usize].as_str();
            if !fragments
                .iter()
                .any(|f| matches!(f, Fragment::Text(t) if t.contains(needle)))
            {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                match fragment {
                    Fragment::Text(mut rest) => {
                        while let Some(at) = rest.find(needle) {
                            if at > 0 {
                                next.push(Fragment::Text(&rest[..at]));
                            }
                            next.push(Fragment::Token(id));
                            rest = &rest[at + needle.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Fragment::Text(rest));
                        }
                    }
                    token => next.push(token),
                }
            }
            fragments = next;
        }
        fragments
    }
}
