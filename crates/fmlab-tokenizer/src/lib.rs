//! Tokenizers for the models fmlab runs, built from a GGUF file's `tokenizer.ggml.*`
//! metadata so that they produce the same ids as llama.cpp:
//!
//! - byte-level BPE (`tokenizer.ggml.model = gpt2`): text is split by the pre-tokenizer that
//!   `tokenizer.ggml.pre` names, each piece's bytes are mapped to printable characters
//!   (GPT-2's byte-to-unicode table) and merged by rank;
//! - SentencePiece-style (`llama`, with scores, as Gemma 3 uses): spaces become `▁`, and
//!   adjacent symbols merge greedily by the score of the merged token, with `<0xXX>` byte
//!   tokens for anything the vocabulary lacks.
//!
//! Special tokens: user-defined tokens are always matched as whole tokens; control tokens
//! (`<|im_start|>`, `<start_of_turn>`) only when the caller asks to parse special text, as
//! llama.cpp does. The crate also renders chat templates (`chat`) and decodes streams of ids
//! into text without ever splitting a UTF-8 character (`StreamDecoder`).

mod bpe;
pub mod chat;
pub mod hf;
mod pretokenize;
pub mod sentencepiece;
mod spm;
mod stream;
pub mod train;
mod vocab;

pub use chat::{ChatTemplate, Message};
pub use pretokenize::PreTokenizer;
pub use stream::StreamDecoder;
pub use train::{BpeTrainer, TrainedBpe};
pub use vocab::{TokenType, Vocab};

use fmlab_formats::Gguf;

/// Errors: metadata that does not describe a tokenizer, or a template that fails.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tokenizer metadata: {0}")]
    Metadata(String),
    #[error("tokenizer model {0:?} is not supported (supported: gpt2 byte-level BPE, llama SentencePiece-style)")]
    UnsupportedModel(String),
    #[error("pre-tokenizer {0:?} is not supported (supported: {known})", known = PreTokenizer::NAMES.join(", "))]
    UnsupportedPreTokenizer(String),
    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    BadToken { id: u32, vocab_size: usize },
    #[error("chat template: {0}")]
    Template(String),
    #[error(transparent)]
    Format(#[from] fmlab_formats::Error),
    #[error("tokenizer training: {0}")]
    Train(String),
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone)]
enum Model {
    Bpe(bpe::Bpe),
    Spm(spm::Spm),
    /// A Hugging Face `tokenizer.json`, run by the `tokenizers` crate (the reference
    /// implementation of that format, so we use it rather than re-implement every
    /// normalizer and pre-tokenizer it can describe).
    Hf(Box<tokenizers::Tokenizer>),
}

/// A tokenizer: text to ids and back.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    pub vocab: Vocab,
    model: Model,
}

impl Tokenizer {
    /// The tokenizer a GGUF file describes.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let vocab = Vocab::from_gguf(g)?;
        let model_name = g
            .get("tokenizer.ggml.model")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::Metadata("tokenizer.ggml.model is missing".into()))?;
        let model = match model_name {
            "gpt2" => {
                let pre = g
                    .get("tokenizer.ggml.pre")
                    .and_then(|v| v.as_str())
                    .unwrap_or("default");
                Model::Bpe(bpe::Bpe::from_gguf(g, &vocab, PreTokenizer::named(pre)?)?)
            }
            "llama" => Model::Spm(spm::Spm::new(&vocab)),
            other => return Err(Error::UnsupportedModel(other.into())),
        };
        Ok(Self { vocab, model })
    }

    /// A tokenizer we trained, on our own byte-level BPE encoder (through the GGUF
    /// metadata it would be exported with).
    pub fn from_trained(trained: &TrainedBpe) -> Result<Self> {
        Self::from_metadata(trained.gguf_metadata())
    }

    /// A tokenizer from `tokenizer.ggml.*` metadata alone (a GGUF with no tensors).
    fn from_metadata(metadata: Vec<(&str, fmlab_formats::Value)>) -> Result<Self> {
        let mut w = fmlab_formats::GgufWriter::new();
        for (key, value) in metadata {
            w.metadata(key, value);
        }
        Self::from_gguf(&Gguf::parse(&w.to_bytes())?)
    }

    /// GPT-2's original files: `encoder.json` (token → id) and `vocab.bpe` (merges), on our
    /// own encoder with GPT-2's split pattern; `<|endoftext|>` is the control token.
    pub fn from_gpt2_files(
        encoder_json: &std::path::Path,
        vocab_bpe: &std::path::Path,
    ) -> Result<Self> {
        use fmlab_formats::{Value, ValueType};
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|e| Error::Metadata(format!("{}: {e}", p.display())))
        };
        let encoder: std::collections::HashMap<String, u32> =
            serde_json::from_str(&read(encoder_json)?)
                .map_err(|e| Error::Metadata(format!("{}: {e}", encoder_json.display())))?;
        let n = encoder.len();
        let mut tokens = vec![String::new(); n];
        for (piece, &id) in &encoder {
            let slot = tokens.get_mut(id as usize).ok_or_else(|| {
                Error::Metadata(format!("{}: id {id} of {n} tokens", encoder_json.display()))
            })?;
            *slot = piece.clone();
        }
        let merges: Vec<String> = read(vocab_bpe)?
            .lines()
            .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        let types: Vec<Value> = tokens
            .iter()
            .map(|t| Value::I32(if t == "<|endoftext|>" { 3 } else { 1 }))
            .collect();
        let mut metadata = vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.pre", Value::String("gpt2".into())),
            ("tokenizer.ggml.tokens", Value::strings(&tokens)),
            (
                "tokenizer.ggml.token_type",
                Value::Array(ValueType::I32, types),
            ),
            ("tokenizer.ggml.merges", Value::strings(&merges)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        ];
        if let Some(&e) = encoder.get("<|endoftext|>") {
            metadata.push(("tokenizer.ggml.eos_token_id", Value::U32(e)));
            metadata.push(("tokenizer.ggml.bos_token_id", Value::U32(e)));
        }
        Self::from_metadata(metadata)
    }

    /// The tokenizer a Hugging Face `tokenizer.json` describes. Special tokens (the
    /// `added_tokens` marked special) are control tokens; BOS/EOS are found by their usual
    /// names (`<s>`, `<|endoftext|>`, `<bos>`, …) when present.
    pub fn from_tokenizer_json(path: &std::path::Path) -> Result<Self> {
        let hf = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Metadata(format!("{}: {e}", path.display())))?;
        let vocab = Vocab::from_hf(&hf);
        Ok(Self {
            vocab,
            model: Model::Hf(Box::new(hf)),
        })
    }

    /// Encodes `text`. `add_special` adds the BOS (and EOS) tokens the model's metadata asks
    /// for; `parse_special` lets control-token text such as `<|im_start|>` become that token
    /// (otherwise it is tokenized as plain text).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        if let Model::Hf(hf) = &self.model {
            // The post-processor in tokenizer.json decides what "special" adds; special-token
            // text is always matched by the `tokenizers` crate.
            let _ = parse_special;
            return hf
                .encode(text, add_special)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default();
        }
        let mut out = Vec::new();
        if add_special && self.vocab.add_bos {
            if let Some(bos) = self.vocab.bos {
                out.push(bos);
            }
        }
        let mut previous_special = true;
        for fragment in self.vocab.partition(text, parse_special) {
            match fragment {
                vocab::Fragment::Token(id) => {
                    out.push(id);
                    previous_special = true;
                }
                vocab::Fragment::Text(t) => {
                    match &self.model {
                        Model::Bpe(b) => b.encode(t, &self.vocab, &mut out),
                        // Handled above: the `tokenizers` crate encodes the whole text.
                        Model::Hf(_) => {}
                        Model::Spm(s) => s.encode(
                            t,
                            previous_special && self.vocab.add_space_prefix,
                            &self.vocab,
                            &mut out,
                        ),
                    }
                    previous_special = false;
                }
            }
        }
        if add_special && self.vocab.add_eos {
            if let Some(eos) = self.vocab.eos {
                out.push(eos);
            }
        }
        out
    }

    /// The bytes a token stands for in text. Control tokens render as nothing unless
    /// `special` is set, in which case their text is returned.
    pub fn token_bytes(&self, id: u32, special: bool) -> Result<Vec<u8>> {
        let piece = self.vocab.piece(id)?;
        let kind = self.vocab.token_type(id);
        match kind {
            TokenType::Control | TokenType::Unknown | TokenType::Unused => Ok(if special {
                piece.as_bytes().to_vec()
            } else {
                Vec::new()
            }),
            TokenType::UserDefined => Ok(piece.as_bytes().to_vec()),
            TokenType::Byte | TokenType::Normal => Ok(match &self.model {
                Model::Bpe(_) => bpe::decode_piece(piece),
                Model::Spm(_) => spm::decode_piece(piece, kind),
                Model::Hf(hf) => match hf.get_decoder() {
                    // Byte-level pieces map back to bytes one character at a time, which a
                    // stream needs (a piece may end inside a UTF-8 character).
                    Some(tokenizers::DecoderWrapper::ByteLevel(_)) => bpe::decode_piece(piece),
                    _ => hf
                        .decode(&[id], false)
                        .map(String::into_bytes)
                        .unwrap_or_default(),
                },
            }),
        }
    }

    /// Decodes ids to text (invalid UTF-8, such as half a character at the end, becomes U+FFFD).
    pub fn decode(&self, ids: &[u32], special: bool) -> Result<String> {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend(self.token_bytes(id, special)?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The raw vocabulary entry of a token (`Ġthe`, `▁the`, `<|im_end|>`).
    pub fn piece(&self, id: u32) -> Result<&str> {
        self.vocab.piece(id)
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Tokens that end generation: EOS, EOT and the ends of turns the vocabulary defines.
    pub fn stop_tokens(&self) -> Vec<u32> {
        self.vocab.stop_tokens()
    }
}
