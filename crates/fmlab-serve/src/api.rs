//! The OpenAI wire format: request bodies (with fmlab's own sampling settings as extra
//! fields, as vLLM accepts them), their checks, and OpenAI's error object.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fmlab_sample::{ChainOrder, Dry, GrammarSpec, Penalties, SamplerConfig};
use fmlab_tokenizer::Tokenizer;
use fmlab_train::models::generation::{dry_breakers, DEFAULT_BREAKERS};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// An error as OpenAI's API returns it: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400, naming the field at fault.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.to_string()),
            code: None,
        }
    }

    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Parses a JSON body; a malformed one, or a field of the wrong type, is a 400 that names
/// the field (its path in the body).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("the body is not valid JSON: {e}")))?;
    from_value(&value)
}

fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid("body", "the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::invalid("body", format!("the body: {inner}"))
        } else {
            ApiError::invalid(&path, format!("{path}: {inner}"))
        }
    })
}

/// A request body with sampling settings: its own fields and [`Sampling`]'s, each read
/// from the same object (serde's `flatten` would lose the name of a field at fault).
pub fn parse_sampled<T: DeserializeOwned + WithSampling>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("the body is not valid JSON: {e}")))?;
    let mut request: T = from_value(&value)?;
    *request.sampling_mut() = from_value(&value)?;
    Ok(request)
}

/// Requests that carry [`Sampling`].
pub trait WithSampling {
    fn sampling_mut(&mut self) -> &mut Sampling;
}

/// A string or a list of strings (`stop`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// The sampling fields both routes take: OpenAI's, then fmlab's own (as vLLM and
/// llama-server accept extra body fields). Defaults are OpenAI's — temperature 1, top-p 1,
/// no top-k or min-p — not llama.cpp's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub logit_bias: Option<BTreeMap<String, f32>>,
    pub stop: Option<OneOrMany>,
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    pub typical_p: Option<f32>,
    pub top_n_sigma: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub repeat_last_n: Option<usize>,
    pub dynatemp_range: Option<f32>,
    pub dynatemp_exponent: Option<f32>,
    pub xtc_probability: Option<f32>,
    pub xtc_threshold: Option<f32>,
    pub epsilon_cutoff: Option<f32>,
    pub eta_cutoff: Option<f32>,
    pub dry_multiplier: Option<f32>,
    pub dry_base: Option<f32>,
    pub dry_allowed_length: Option<usize>,
    pub dry_penalty_last_n: Option<usize>,
    pub dry_sequence_breakers: Option<Vec<String>>,
    pub mirostat: Option<u8>,
    pub mirostat_tau: Option<f32>,
    pub mirostat_eta: Option<f32>,
    pub min_keep: Option<usize>,
    pub sampler_order: Option<String>,
    /// A regular expression the output must match.
    pub regex: Option<String>,
    /// A Lark grammar (llguidance's dialect) the output must follow.
    pub grammar: Option<String>,
    /// A JSON schema the output must validate against.
    pub json_schema: Option<Value>,
    pub min_tokens: Option<usize>,
    pub ignore_eos: Option<bool>,
    /// vLLM's: tokens in log-probabilities as `token_id:N`.
    pub return_tokens_as_token_ids: Option<bool>,
}

impl Sampling {
    /// The sampler configuration; `seed` when none is given.
    pub fn config(&self, tok: &Tokenizer, seed: u64) -> Result<SamplerConfig, ApiError> {
        let d = SamplerConfig::default();
        let vocab = tok.vocab_size();
        let mut logit_bias = Vec::new();
        for (k, &v) in self.logit_bias.iter().flatten() {
            let id: u32 = k.parse().map_err(|_| {
                ApiError::invalid("logit_bias", format!("logit_bias: {k:?} is not a token id"))
            })?;
            if id as usize >= vocab {
                return Err(ApiError::invalid(
                    "logit_bias",
                    format!("logit_bias: token {id} is outside the vocabulary of {vocab}"),
                ));
            }
            logit_bias.push((id, v));
        }
        let order = match &self.sampler_order {
            Some(s) => ChainOrder::parse(s)
                .map_err(|e| ApiError::invalid("sampler_order", format!("sampler_order: {e}")))?,
            None => d.order.clone(),
        };
        let dry_multiplier = self.dry_multiplier.unwrap_or(0.0);
        let breakers = if dry_multiplier > 0.0 {
            let texts: Vec<&str> = match &self.dry_sequence_breakers {
                Some(b) => b.iter().map(String::as_str).collect(),
                None => DEFAULT_BREAKERS.to_vec(),
            };
            dry_breakers(tok, &texts)
        } else {
            Vec::new()
        };
        let config = SamplerConfig {
            temperature: self.temperature.unwrap_or(1.0),
            dynatemp_range: self.dynatemp_range.unwrap_or(d.dynatemp_range),
            dynatemp_exponent: self.dynatemp_exponent.unwrap_or(d.dynatemp_exponent),
            top_k: self.top_k.unwrap_or(0),
            top_p: self.top_p.unwrap_or(1.0),
            min_p: self.min_p.unwrap_or(0.0),
            typical_p: self.typical_p.unwrap_or(1.0),
            top_n_sigma: self.top_n_sigma.unwrap_or(0.0),
            xtc_probability: self.xtc_probability.unwrap_or(0.0),
            xtc_threshold: self.xtc_threshold.unwrap_or(d.xtc_threshold),
            epsilon_cutoff: self.epsilon_cutoff.unwrap_or(0.0),
            eta_cutoff: self.eta_cutoff.unwrap_or(0.0),
            penalties: Penalties {
                repeat: self.repeat_penalty.unwrap_or(1.0),
                frequency: self.frequency_penalty.unwrap_or(0.0),
                presence: self.presence_penalty.unwrap_or(0.0),
                window: self.repeat_last_n.unwrap_or(d.penalties.window),
            },
            dry: Dry {
                multiplier: dry_multiplier,
                base: self.dry_base.unwrap_or(d.dry.base),
                allowed_length: self.dry_allowed_length.unwrap_or(d.dry.allowed_length),
                window: self.dry_penalty_last_n.unwrap_or(d.dry.window),
                breakers,
            },
            logit_bias,
            mirostat: self.mirostat.unwrap_or(0),
            mirostat_tau: self.mirostat_tau.unwrap_or(d.mirostat_tau),
            mirostat_eta: self.mirostat_eta.unwrap_or(d.mirostat_eta),
            min_keep: self.min_keep.unwrap_or(1),
            order,
            seed: self.seed.map_or(seed, |s| s as u64),
        };
        config.validate().map_err(|e| {
            let text = e.to_string();
            // The sampler names the setting first ("top_p: …").
            let param = text
                .split(':')
                .next()
                .unwrap_or("body")
                .trim()
                .replace('-', "_");
            ApiError::invalid(&param, text)
        })?;
        Ok(config)
    }

    /// The grammar the output must follow (`regex`, `grammar` or `json_schema`; at most
    /// one), or `response_format`'s.
    pub fn grammar(
        &self,
        response_format: Option<GrammarSpec>,
    ) -> Result<Option<GrammarSpec>, ApiError> {
        let mut given: Vec<(&str, GrammarSpec)> = Vec::new();
        if let Some(r) = &self.regex {
            given.push(("regex", GrammarSpec::Regex(r.clone())));
        }
        if let Some(g) = &self.grammar {
            given.push(("grammar", GrammarSpec::Lark(g.clone())));
        }
        if let Some(s) = &self.json_schema {
            given.push(("json_schema", GrammarSpec::JsonSchema(s.clone())));
        }
        if let Some(spec) = response_format {
            given.push(("response_format", spec));
        }
        match given.len() {
            0 => Ok(None),
            1 => Ok(given.pop().map(|(_, g)| g)),
            _ => Err(ApiError::invalid(
                given[1].0,
                format!(
                    "{} and {} both constrain the output; give one",
                    given[0].0, given[1].0
                ),
            )),
        }
    }

    pub fn stop_strings(&self) -> Vec<String> {
        self.stop
            .clone()
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
    }
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CompletionRequest {
    pub model: Option<String>,
    pub prompt: Value,
    pub max_tokens: Option<u64>,
    pub n: Option<usize>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    /// Legacy log-probabilities: this many alternatives per token.
    pub logprobs: Option<u32>,
    pub echo: Option<bool>,
    pub best_of: Option<usize>,
    pub suffix: Option<String>,
    pub user: Option<String>,
    #[serde(skip)]
    pub sampling: Sampling,
}

impl WithSampling for CompletionRequest {
    fn sampling_mut(&mut self) -> &mut Sampling {
        &mut self.sampling
    }
}

/// A prompt as given: text, or token ids.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Text(String),
    Ids(Vec<u32>),
}

/// `prompt`: a string, a list of strings, a list of token ids, or a list of lists.
pub fn prompts(v: &Value) -> Result<Vec<Prompt>, ApiError> {
    let bad = || {
        ApiError::invalid(
            "prompt",
            "prompt must be a string, a list of strings, a list of token ids or a list of lists of token ids",
        )
    };
    let ids = |list: &[Value]| -> Result<Vec<u32>, ApiError> {
        list.iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|i| u32::try_from(i).ok())
                    .ok_or_else(bad)
            })
            .collect()
    };
    match v {
        Value::String(s) => Ok(vec![Prompt::Text(s.clone())]),
        Value::Array(items) if items.is_empty() => Err(bad()),
        Value::Array(items) => match &items[0] {
            Value::String(_) => items
                .iter()
                .map(|x| x.as_str().map(|s| Prompt::Text(s.into())).ok_or_else(bad))
                .collect(),
            Value::Number(_) => Ok(vec![Prompt::Ids(ids(items)?)]),
            Value::Array(_) => items
                .iter()
                .map(|x| match x {
                    Value::Array(list) => ids(list).map(Prompt::Ids),
                    _ => Err(bad()),
                })
                .collect(),
            _ => Err(bad()),
        },
        Value::Null => Err(ApiError::invalid("prompt", "prompt is required")),
        _ => Err(bad()),
    }
}

/// A chat message's content: text, or a list of parts of which the text ones are read.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

impl ChatMessage {
    /// The text of the message (text parts joined); other parts are refused.
    pub fn text(&self, index: usize) -> Result<String, ApiError> {
        match &self.content {
            None => Ok(String::new()),
            Some(Content::Text(s)) => Ok(s.clone()),
            Some(Content::Parts(parts)) => {
                let mut out = String::new();
                for (j, p) in parts.iter().enumerate() {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(t)) => out.push_str(t),
                        (kind, _) => {
                            return Err(ApiError::invalid(
                                &format!("messages[{index}].content[{j}]"),
                                format!(
                                    "content parts of type {kind:?} are not supported (text only)"
                                ),
                            ))
                        }
                    }
                }
                Ok(out)
            }
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JsonSchemaFormat {
    pub name: Option<String>,
    pub schema: Option<Value>,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub json_schema: Option<JsonSchemaFormat>,
}

impl ResponseFormat {
    /// The grammar `response_format` asks for (`text`: none).
    pub fn grammar(&self) -> Result<Option<GrammarSpec>, ApiError> {
        match self.kind.as_str() {
            "text" => Ok(None),
            "json_object" => Ok(Some(GrammarSpec::JsonSchema(json!({"type": "object"})))),
            "json_schema" => {
                let schema = self
                    .json_schema
                    .as_ref()
                    .and_then(|j| j.schema.clone())
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "response_format.json_schema.schema",
                            "response_format json_schema needs json_schema.schema",
                        )
                    })?;
                Ok(Some(GrammarSpec::JsonSchema(schema)))
            }
            other => Err(ApiError::invalid(
                "response_format.type",
                format!("response_format type {other:?} is not text, json_object or json_schema"),
            )),
        }
    }
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub n: Option<usize>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    pub response_format: Option<ResponseFormat>,
    pub user: Option<String>,
    #[serde(skip)]
    pub sampling: Sampling,
}

impl WithSampling for ChatRequest {
    fn sampling_mut(&mut self) -> &mut Sampling {
        &mut self.sampling
    }
}

/// `POST /tokenize`: text (`prompt`) or a conversation (`messages`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TokenizeRequest {
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub messages: Option<Vec<ChatMessage>>,
    pub add_special_tokens: Option<bool>,
    pub add_generation_prompt: Option<bool>,
    pub return_token_strs: Option<bool>,
}

/// `POST /detokenize`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DetokenizeRequest {
    pub model: Option<String>,
    pub tokens: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_take_every_shape() {
        assert_eq!(
            prompts(&json!("hi")).unwrap(),
            vec![Prompt::Text("hi".into())]
        );
        assert_eq!(prompts(&json!(["a", "b"])).unwrap().len(), 2);
        assert_eq!(
            prompts(&json!([1, 2, 3])).unwrap(),
            vec![Prompt::Ids(vec![1, 2, 3])]
        );
        assert_eq!(
            prompts(&json!([[1], [2, 3]])).unwrap(),
            vec![Prompt::Ids(vec![1]), Prompt::Ids(vec![2, 3])]
        );
        for bad in [
            json!([]),
            json!(3),
            json!([1, "a"]),
            json!([-1]),
            json!(null),
        ] {
            let e = prompts(&bad).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("prompt"), "{bad}");
        }
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = parse_sampled::<CompletionRequest>(br#"{"prompt": "x", "temperature": "hot"}"#)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"), "{}", e.message);
        let e = parse_sampled::<CompletionRequest>(br#"{"prompt": "x", "n": -2}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("n"), "{}", e.message);
        let e = parse_sampled::<ChatRequest>(br#"{"messages": [{"role": 3}]}"#).unwrap_err();
        assert!(
            e.param.as_deref().unwrap_or("").starts_with("messages"),
            "{:?}",
            e.param
        );
        let e = parse_sampled::<ChatRequest>(b"{not json").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("body"));
        let e = parse_sampled::<ChatRequest>(b"[1, 2]").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("body"));
    }
}
