//! Pre-tokenizers of byte-level BPE models: regular expressions applied in sequence, each
//! splitting every piece the previous one produced into its matches and the text between
//! them (llama.cpp's `unicode_regex_split`). Lookahead (`\s+(?!\S)`) needs `fancy-regex`.

use fancy_regex::Regex;

use crate::{Error, Result};

/// GPT-2's split pattern without its final `|\s+`: unmatched whitespace is kept as a piece
/// of its own anyway.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
pub(crate) const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
pub(crate) const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

#[derive(Debug, Clone)]
pub struct PreTokenizer {
    pub name: String,
    regexes: Vec<Regex>,
}

impl PreTokenizer {
    /// Names accepted from `tokenizer.ggml.pre`.
    pub const NAMES: [&'static str; 8] = [
        "default",
        "gpt2",
        "gpt-2",
        "smollm",
        "starcoder",
        "llama-bpe",
        "llama3",
        "qwen2",
    ];

    pub fn named(name: &str) -> Result<Self> {
        let patterns: &[&str] = match name {
            // llama.cpp's converter writes GPT-2's as `gpt-2`.
            "default" | "gpt2" | "gpt-2" => &[GPT2],
            // SmolLM and StarCoder first isolate every digit.
            "smollm" | "starcoder" => &[r"\p{N}", GPT2],
            "llama-bpe" | "llama3" => &[LLAMA3],
            "qwen2" => &[QWEN2],
            other => return Err(Error::UnsupportedPreTokenizer(other.into())),
        };
        let regexes = patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| Error::Metadata(format!("pre-tokenizer regex: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            name: name.into(),
            regexes,
        })
    }

    /// The pieces of `text`, in order; concatenated they give `text` back.
    pub fn split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut pieces = vec![text];
        for regex in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let mut last = 0;
                for m in regex.find_iter(piece) {
                    // A regex error (backtracking limit) leaves the rest of the piece whole.
                    let Ok(m) = m else { break };
                    if m.start() > last {
                        next.push(&piece[last..m.start()]);
                    }
                    if m.end() > m.start() {
                        next.push(m.as_str());
                    }
                    last = m.end();
                }
                if last < piece.len() {
                    next.push(&piece[last..]);
                }
            }
            pieces = next;
        }
        pieces
    }
}
