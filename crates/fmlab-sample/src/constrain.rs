//! Structured output with llguidance: a JSON schema, a regular expression or a Lark
//! grammar becomes a per-step token mask over the model's own vocabulary, and tokens the
//! grammar forces are emitted without a sampling step.
//!
//! The vocabulary arrives as bytes per token (from GGUF tokens or tokenizer.json, through
//! the caller) together with the caller's tokenizer as a function, which llguidance needs
//! to turn forced bytes into canonical tokens. No text is interpreted here.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};

use crate::generate::Constraint;
use crate::sampler::TokenMask;
use crate::{Error, Result};

/// What the output must match.
#[derive(Debug, Clone)]
pub enum GrammarSpec {
    /// A JSON schema (the output is JSON that validates against it).
    JsonSchema(serde_json::Value),
    /// A regular expression the whole output matches.
    Regex(String),
    /// A Lark grammar (llguidance's dialect).
    Lark(String),
}

impl GrammarSpec {
    /// The command-line flag that gives this kind of grammar (for error messages).
    pub fn flag(&self) -> &'static str {
        match self {
            GrammarSpec::JsonSchema(_) => "json-schema",
            GrammarSpec::Regex(_) => "regex",
            GrammarSpec::Lark(_) => "grammar",
        }
    }
}

/// A tokenizer as a function from bytes to token ids.
pub type TokenizeFn = Arc<dyn Fn(&[u8]) -> Vec<u32> + Send + Sync>;

/// The model's vocabulary as llguidance sees it; built once per model (the token trie
/// takes a moment for a large vocabulary), then shared by every grammar.
#[derive(Clone)]
pub struct Vocabulary {
    factory: Arc<ParserFactory>,
}

struct Env {
    trie: TokTrie,
    tokenize: TokenizeFn,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        // Valid UTF-8 through the model's tokenizer (canonical); stray bytes greedily.
        self.trie
            .tokenize_with_greedy_fallback(s, |text| (self.tokenize)(text.as_bytes()))
    }
}

impl Vocabulary {
    /// `tokens[i]` is the text of token i as bytes; `special[i]` marks control tokens
    /// (never produced by text); `eos` lists the tokens that end generation (the first is
    /// the one grammars use).
    pub fn new(
        tokens: Vec<Vec<u8>>,
        special: &[bool],
        eos: &[u32],
        tokenize: TokenizeFn,
    ) -> Result<Self> {
        let n = tokens.len();
        if n == 0 || special.len() != n {
            return Err(Error::Constraint(format!(
                "vocabulary of {n} tokens with {} special flags",
                special.len()
            )));
        }
        let Some(&first) = eos.iter().find(|&&e| (e as usize) < n) else {
            return Err(Error::Constraint(
                "the vocabulary has no end-of-generation token".into(),
            ));
        };
        // toktrie marks special tokens with a leading 0xFF byte, which no text contains.
        let words: Vec<Vec<u8>> = tokens
            .into_iter()
            .zip(special)
            .map(|(bytes, &s)| {
                if s {
                    let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    w.extend(bytes);
                    w
                } else {
                    bytes
                }
            })
            .collect();
        let info = TokRxInfo::new(n as u32, first);
        let eos: Vec<u32> = eos.iter().copied().filter(|&e| (e as usize) < n).collect();
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&eos);
        let env: TokEnv = Arc::new(Env { trie, tokenize });
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| Error::Constraint(format!("building the token table: {e}")))?;
        factory.quiet();
        Ok(Self {
            factory: Arc::new(factory),
        })
    }

    /// A fresh matcher for `spec`; an invalid schema, regex or grammar is an error naming
    /// its flag.
    pub fn grammar(&self, spec: &GrammarSpec) -> Result<Grammar> {
        let top = match spec {
            GrammarSpec::JsonSchema(v) => TopLevelGrammar::from_json_schema(v.clone()),
            GrammarSpec::Regex(r) => TopLevelGrammar::from_regex(r),
            GrammarSpec::Lark(g) => TopLevelGrammar::from_lark(g.clone()),
        };
        let parser = self
            .factory
            .create_parser(top)
            .map_err(|e| Error::Setting {
                name: spec.flag(),
                message: first_line(&e.to_string()),
            })?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(Error::Setting {
                name: spec.flag(),
                message: first_line(&e),
            });
        }
        Ok(Grammar {
            matcher,
            mask: None,
        })
    }
}

/// llguidance's multi-line messages on one line.
fn first_line(s: &str) -> String {
    let joined: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut line = joined.join(" ");
    if line.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|&i| line.is_char_boundary(i))
            .unwrap_or(0);
        line.truncate(cut);
        line.push('…');
    }
    line
}

/// One generation's grammar state.
pub struct Grammar {
    matcher: Matcher,
    mask: Option<SimpleVob>,
}

struct VobMask<'a>(&'a SimpleVob);

impl TokenMask for VobMask<'_> {
    fn allows(&self, id: u32) -> bool {
        (id as usize) < self.0.len() && self.0.is_allowed(id)
    }
}

impl Grammar {
    fn check(&self) -> Result<()> {
        match self.matcher.get_error() {
            Some(e) => Err(Error::Constraint(first_line(&e))),
            None => Ok(()),
        }
    }

    /// Whether the output so far is a complete match.
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }
}

impl Constraint for Grammar {
    fn forced(&mut self) -> Result<Vec<u32>> {
        let ff = self.matcher.compute_ff_tokens();
        self.check()?;
        Ok(ff)
    }

    fn mask(&mut self) -> Result<Box<dyn TokenMask + '_>> {
        let vob = self
            .matcher
            .compute_mask_or_eos()
            .map_err(|e| Error::Constraint(first_line(&e.to_string())))?;
        self.mask = Some(vob);
        match &self.mask {
            Some(v) => Ok(Box::new(VobMask(v))),
            None => Err(Error::Constraint("no mask".into())),
        }
    }

    fn accept(&mut self, token: u32) -> Result<()> {
        self.matcher
            .consume_token(token)
            .map_err(|e| Error::Constraint(first_line(&e.to_string())))
    }

    fn is_finished(&mut self) -> bool {
        self.matcher.is_stopped()
    }
}
