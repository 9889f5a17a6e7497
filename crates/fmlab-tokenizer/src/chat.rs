//! Chat templates: the model's own Jinja template rendered with minijinja the way Hugging
//! Face `transformers` renders it (`trim_blocks` and `lstrip_blocks` on, Python string
//! methods, `raise_exception`), with `messages`, `add_generation_prompt`, `bos_token` and
//! `eos_token` in the context; and fmlab's one rule that turns a rendered chat into ids
//! ([`encode_chat`]), used by generation, chat evaluation and training data alike.

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Tokenizer};

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template with the special-token texts it refers to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Compiles `source`; `bos_token` and `eos_token` are the texts of those tokens.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| Error::Template(format!("{e:#}")))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::Template(format!("{e:#}")))?;
        Ok(Self {
            env,
            source: source.to_string(),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// The template stored in a GGUF file (`tokenizer.chat_template`), if any.
    pub fn from_gguf(g: &fmlab_formats::Gguf, tokenizer: &Tokenizer) -> Result<Option<Self>> {
        let Some(source) = g.get("tokenizer.chat_template").and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        let text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.piece(id).ok())
                .unwrap_or("")
                .to_string()
        };
        Self::new(
            source,
            &text(tokenizer.vocab.bos),
            &text(tokenizer.vocab.eos),
        )
        .map(Some)
    }

    /// Renders a conversation; with `add_generation_prompt` the text ends where the
    /// assistant's reply begins.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| Error::Template(format!("{e:#}")))?;
        template
            .render(context! {
                messages => minijinja::Value::from(minijinja::value::Serde(messages)),
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token.as_str(),
                eos_token => self.eos_token.as_str(),
            })
            .map_err(|e| Error::Template(format!("{e:#}")))
    }

    /// A conversation's ids up to where the assistant's reply begins: rendered with the
    /// generation prompt, then [`encode_chat`].
    pub fn prompt_ids(&self, tokenizer: &Tokenizer, messages: &[Message]) -> Result<Vec<u32>> {
        Ok(encode_chat(tokenizer, &self.render(messages, true)?, true))
    }
}

/// The ids of rendered chat text, the one prompt→ids rule (llama.cpp's chat path):
/// special-token text (`<|im_start|>`) becomes those tokens; at the `start` of a sequence
/// the tokenizer adds what its model asks for (GGUF's `tokenizer.ggml.add_bos_token` /
/// `add_eos_token`, a `tokenizer.json` post-processor), and a BOS the template writes
/// itself is kept once, never twice. So a model whose template writes `{{ bos_token }}`
/// and whose tokenizer adds one (Gemma) starts with one BOS; a model that adds none
/// (SmolLM2, fmlab's own) starts with what its template writes. Text after the start of a
/// sequence (`start` false: the next turn of a conversation) gets nothing added.
pub fn encode_chat(tokenizer: &Tokenizer, text: &str, start: bool) -> Vec<u32> {
    let mut ids = tokenizer.encode(text, start, true);
    if let (true, Some(bos), [a, b, ..]) = (start, tokenizer.vocab.bos, ids.as_slice()) {
        if *a == bos && *b == bos {
            ids.remove(0);
        }
    }
    ids
}
