//! Tokenizer premiums (Petrov et al. 2023): how many more tokens a language needs than
//! English for the same content, over a parallel corpus.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde::Serialize;

use crate::{Error, Result};

/// Tokens and premium of one language.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LangCost {
    pub lang: String,
    pub tokens: u64,
    pub bytes: u64,
    /// Tokens relative to the reference language's for the same lines.
    pub premium: f64,
}

impl LangCost {
    /// Bytes of text per token (per one token when there are none).
    pub fn bytes_per_token(&self) -> f64 {
        self.bytes as f64 / self.tokens.max(1) as f64
    }
}

/// The costs of every language with one tokenizer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenizerPremiums {
    /// How the tokenizer was named (a file, a model).
    pub tokenizer: String,
    pub languages: Vec<LangCost>,
}

/// [`premiums`] with `tok`'s token counts (no special tokens added), named `name`.
pub fn tokenizer_premiums(
    name: &str,
    tok: &fmlab_tokenizer::Tokenizer,
    lines: &[BTreeMap<String, String>],
    reference: &str,
) -> Result<TokenizerPremiums> {
    let languages = premiums(lines, reference, |t| tok.encode(t, false, false).len())?;
    Ok(TokenizerPremiums {
        tokenizer: name.to_string(),
        languages,
    })
}

/// A parallel corpus: per line, one text per language (`{"en": …, "fr": …}`).
pub fn read_parallel(path: &Path) -> Result<Vec<BTreeMap<String, String>>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let m: BTreeMap<String, String> =
            serde_json::from_str(&line).map_err(|e| Error::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!("expected {{\"lang\": \"text\", …}}: {e}"),
            })?;
        out.push(m);
    }
    if out.is_empty() {
        return Err(Error::Parse {
            path: path.to_path_buf(),
            line: 0,
            message: "no lines".into(),
        });
    }
    Ok(out)
}

/// Tokens per language with `count` (a tokenizer's token count for a text), over the lines
/// that have every language; premiums relative to `reference`.
pub fn premiums(
    lines: &[BTreeMap<String, String>],
    reference: &str,
    mut count: impl FnMut(&str) -> usize,
) -> Result<Vec<LangCost>> {
    let langs: Vec<String> = lines
        .first()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if !langs.iter().any(|l| l == reference) {
        return Err(Error::Config(format!(
            "the parallel corpus has no {reference:?} texts (languages: {})",
            langs.join(", ")
        )));
    }
    let mut tokens: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for m in lines {
        if !langs.iter().all(|l| m.contains_key(l)) {
            continue;
        }
        for l in &langs {
            let text = &m[l];
            let e = tokens.entry(l.as_str()).or_default();
            e.0 += count(text) as u64;
            e.1 += text.len() as u64;
        }
    }
    let base = tokens.get(reference).map_or(1, |x| x.0.max(1)) as f64;
    Ok(langs
        .iter()
        .map(|l| {
            let (t, b) = tokens.get(l.as_str()).copied().unwrap_or((0, 0));
            LangCost {
                lang: l.clone(),
                tokens: t,
                bytes: b,
                premium: t as f64 / base,
            }
        })
        .collect())
}
