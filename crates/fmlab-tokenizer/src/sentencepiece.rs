//! SentencePiece's `tokenizer.model` (a `ModelProto` in protocol buffers), read and written.
//!
//! Hugging Face folders of SentencePiece models (Gemma, Llama 2, Mistral v0.1) carry their
//! vocabulary with scores and piece types only in this file; llama.cpp's converter reads it
//! through the `sentencepiece` library. The fields a converter needs are few (pieces with
//! score and type, the model type, byte fallback, the special ids and the normaliser's
//! whitespace rules), so we read the wire format ourselves rather than link a protobuf
//! runtime: varints, length-delimited fields and 32-bit floats, unknown fields skipped.
//! [`ModelProto::to_bytes`] writes the same fields back, for `export` of a model whose
//! vocabulary is SentencePiece's.

use fmlab_formats::{Gguf, Value};

use crate::{Error, Result, TokenType};

/// `TrainerSpec.model_type`: the two values fmlab meets.
pub const UNIGRAM: i32 = 1;
pub const BPE: i32 = 2;

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    /// `SentencePiece.Type`, which numbers its types as GGUF's `token_type` does
    /// (normal 1, unknown 2, control 3, user-defined 4, unused 5, byte 6).
    pub kind: TokenType,
}

/// What fmlab reads of a `ModelProto`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelProto {
    pub pieces: Vec<Piece>,
    /// `TrainerSpec.model_type` (unigram 1 by the format's default, BPE 2).
    pub model_type: i32,
    pub byte_fallback: bool,
    pub unk_id: i32,
    pub bos_id: i32,
    pub eos_id: i32,
    /// -1 when the model has none.
    pub pad_id: i32,
    /// `NormalizerSpec.add_dummy_prefix`: a space before the text (the format's default).
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
}

fn bad(why: impl std::fmt::Display) -> Error {
    Error::Metadata(format!("tokenizer.model: {why}"))
}

/// A protocol-buffer field: its number and value.
enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0 }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .buf
                .get(self.at)
                .ok_or_else(|| bad(format!("truncated at byte {}", self.at)))?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad(format!("a varint longer than 10 bytes at {}", self.at)))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                bad(format!(
                    "a field of {n} bytes at {} runs past the end ({} bytes)",
                    self.at,
                    self.buf.len()
                ))
            })?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// The next field, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Field<'a>)>> {
        if self.at == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (number, wire) = (key >> 3, key & 7);
        let value = match wire {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Varint(0)
            }
            2 => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| bad("a field longer than memory"))?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            other => {
                return Err(bad(format!(
                    "wire type {other} of field {number} at byte {} (not a SentencePiece model?)",
                    self.at
                )))
            }
        };
        Ok(Some((number, value)))
    }
}

fn text(b: &[u8], what: &str) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(|_| bad(format!("{what} is not UTF-8")))
}

fn kind_of(v: u64) -> Result<TokenType> {
    Ok(match v {
        1 => TokenType::Normal,
        2 => TokenType::Unknown,
        3 => TokenType::Control,
        4 => TokenType::UserDefined,
        5 => TokenType::Unused,
        6 => TokenType::Byte,
        other => {
            return Err(bad(format!(
                "piece type {other} is not one SentencePiece defines"
            )))
        }
    })
}

fn piece(bytes: &[u8], index: usize) -> Result<Piece> {
    let mut r = Reader::new(bytes);
    let mut p = Piece {
        piece: String::new(),
        score: 0.0,
        kind: TokenType::Normal,
    };
    while let Some((number, value)) = r.field()? {
        match (number, value) {
            (1, Field::Bytes(b)) => p.piece = text(b, &format!("piece {index}"))?,
            (2, Field::Fixed32(bits)) => p.score = f32::from_bits(bits),
            (3, Field::Varint(v)) => p.kind = kind_of(v)?,
            _ => {}
        }
    }
    if p.piece.is_empty() {
        return Err(bad(format!("piece {index} is empty")));
    }
    Ok(p)
}

impl ModelProto {
    /// Reads a `tokenizer.model`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut m = ModelProto {
            pieces: Vec::new(),
            model_type: UNIGRAM,
            byte_fallback: false,
            unk_id: 0,
            bos_id: 1,
            eos_id: 2,
            pad_id: -1,
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
        };
        let as_i32 = |v: u64| v as i64 as i32;
        let mut r = Reader::new(bytes);
        while let Some((number, value)) = r.field()? {
            match (number, value) {
                (1, Field::Bytes(b)) => m.pieces.push(piece(b, m.pieces.len())?),
                (2, Field::Bytes(b)) => {
                    let mut t = Reader::new(b);
                    while let Some((n, v)) = t.field()? {
                        match (n, v) {
                            (3, Field::Varint(v)) => m.model_type = as_i32(v),
                            (35, Field::Varint(v)) => m.byte_fallback = v != 0,
                            (40, Field::Varint(v)) => m.unk_id = as_i32(v),
                            (41, Field::Varint(v)) => m.bos_id = as_i32(v),
                            (42, Field::Varint(v)) => m.eos_id = as_i32(v),
                            (43, Field::Varint(v)) => m.pad_id = as_i32(v),
                            _ => {}
                        }
                    }
                }
                (3, Field::Bytes(b)) => {
                    let mut t = Reader::new(b);
                    while let Some((n, v)) = t.field()? {
                        match (n, v) {
                            (3, Field::Varint(v)) => m.add_dummy_prefix = v != 0,
                            (4, Field::Varint(v)) => m.remove_extra_whitespaces = v != 0,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if m.pieces.is_empty() {
            return Err(bad("no pieces (not a SentencePiece model?)"));
        }
        Ok(m)
    }

    /// The SentencePiece model of a GGUF file whose vocabulary is SentencePiece's
    /// (`tokenizer.ggml.model = llama`): its tokens (user-defined ones with `▁` for spaces
    /// again), scores and types, BPE with byte fallback, the special ids, and no dummy
    /// prefix unless the file asks for one.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let model = g.get("tokenizer.ggml.model").and_then(Value::as_str);
        if model != Some("llama") {
            return Err(Error::UnsupportedModel(format!(
                "{} (a tokenizer.model is written for SentencePiece vocabularies, llama)",
                model.unwrap_or("none")
            )));
        }
        let vocab = crate::Vocab::from_gguf(g)?;
        let pieces = (0..vocab.len() as u32)
            .map(|id| {
                let kind = vocab.stored_token_type(id);
                let piece = vocab.piece(id)?;
                Ok(Piece {
                    // llama.cpp stores user-defined pieces with spaces where SentencePiece
                    // has `▁` (it matches them against the escaped text).
                    piece: match kind {
                        TokenType::UserDefined => piece.replace(' ', "\u{2581}"),
                        _ => piece.to_string(),
                    },
                    score: vocab.scores[id as usize],
                    kind,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let id = |t: Option<u32>| t.map_or(-1, |i| i as i32);
        Ok(ModelProto {
            pieces,
            model_type: BPE,
            byte_fallback: (0..vocab.len() as u32).any(|i| vocab.token_type(i) == TokenType::Byte),
            unk_id: id(vocab.unk).max(0),
            bos_id: id(vocab.bos),
            eos_id: id(vocab.eos),
            pad_id: id(vocab.pad),
            add_dummy_prefix: vocab.add_space_prefix,
            remove_extra_whitespaces: false,
        })
    }

    /// The `ModelProto` bytes: pieces, a trainer spec (model type, vocabulary size, byte
    /// fallback, special ids) and an identity normaliser with the whitespace rules.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.pieces {
            let mut m = Vec::new();
            bytes_field(&mut m, 1, p.piece.as_bytes());
            key(&mut m, 2, 5);
            m.extend_from_slice(&p.score.to_bits().to_le_bytes());
            if p.kind != TokenType::Normal {
                varint_field(&mut m, 3, p.kind.id() as u64);
            }
            bytes_field(&mut out, 1, &m);
        }
        let mut t = Vec::new();
        varint_field(&mut t, 3, self.model_type as i64 as u64);
        varint_field(&mut t, 4, self.pieces.len() as u64);
        varint_field(&mut t, 35, self.byte_fallback as u64);
        for (n, v) in [
            (40, self.unk_id),
            (41, self.bos_id),
            (42, self.eos_id),
            (43, self.pad_id),
        ] {
            varint_field(&mut t, n, v as i64 as u64);
        }
        bytes_field(&mut out, 2, &t);
        let mut n = Vec::new();
        bytes_field(&mut n, 1, b"identity");
        varint_field(&mut n, 3, self.add_dummy_prefix as u64);
        varint_field(&mut n, 4, self.remove_extra_whitespaces as u64);
        varint_field(&mut n, 5, 1);
        bytes_field(&mut out, 3, &n);
        out
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, number: u64, wire: u64) {
    put_varint(out, (number << 3) | wire);
}

fn varint_field(out: &mut Vec<u8>, number: u64, v: u64) {
    key(out, number, 0);
    put_varint(out, v);
}

fn bytes_field(out: &mut Vec<u8>, number: u64, b: &[u8]) {
    key(out, number, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ModelProto {
        ModelProto {
            pieces: vec![
                Piece {
                    piece: "<pad>".into(),
                    score: 0.0,
                    kind: TokenType::Control,
                },
                Piece {
                    piece: "<unk>".into(),
                    score: 0.0,
                    kind: TokenType::Unknown,
                },
                Piece {
                    piece: "<0x41>".into(),
                    score: 0.0,
                    kind: TokenType::Byte,
                },
                Piece {
                    piece: "▁the".into(),
                    score: -3.5,
                    kind: TokenType::Normal,
                },
            ],
            model_type: BPE,
            byte_fallback: true,
            unk_id: 1,
            bos_id: -1,
            eos_id: -1,
            pad_id: 0,
            add_dummy_prefix: false,
            remove_extra_whitespaces: false,
        }
    }

    #[test]
    fn writes_and_reads_back() {
        let m = sample();
        assert_eq!(ModelProto::parse(&m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn defaults_apply_to_absent_fields() {
        // One piece, nothing else: unigram, dummy prefix, the format's default ids.
        let mut b = Vec::new();
        let mut p = Vec::new();
        bytes_field(&mut p, 1, b"a");
        bytes_field(&mut b, 1, &p);
        let m = ModelProto::parse(&b).unwrap();
        assert_eq!(m.model_type, UNIGRAM);
        assert!(m.add_dummy_prefix);
        assert_eq!((m.unk_id, m.bos_id, m.eos_id, m.pad_id), (0, 1, 2, -1));
        assert_eq!(m.pieces[0].kind, TokenType::Normal);
    }

    #[test]
    fn damaged_files_are_refused_by_name() {
        let bytes = sample().to_bytes();
        let cut = ModelProto::parse(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(cut.to_string().contains("tokenizer.model"), "{cut}");
        let text = ModelProto::parse(b"{\"model\": {}}").unwrap_err();
        assert!(text.to_string().contains("tokenizer.model"), "{text}");
        assert!(ModelProto::parse(b"").is_err());
    }
}
