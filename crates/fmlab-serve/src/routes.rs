//! The HTTP routes: OpenAI's `/v1/models`, `/v1/completions` and `/v1/chat/completions`
//! (streaming or not), vLLM's tokenizer routes, `/health`, `/metrics`, the playground; and
//! the gate every request passes (API key, request log, metrics, errors as OpenAI's error
//! object).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use fmlab_sample::{Generation, GrammarSpec, SamplerConfig, StopConditions, TokenLogprob};
use fmlab_tokenizer::{ChatTemplate, Message, Tokenizer};
use fmlab_train::models::Loaded;
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::api::{self, ApiError, ChatRequest, CompletionRequest, Prompt};
use crate::engine::{self, EngineConfig, EngineHandle, Event, Job, PromptToken, Refused};
use crate::metrics::Metrics;
use crate::{Error, ServeConfig};

/// What every handler shares.
pub struct AppState {
    pub alias: String,
    pub tokenizer: Arc<Tokenizer>,
    pub template: Option<Arc<ChatTemplate>>,
    pub context: usize,
    pub parallel: usize,
    pub engine: EngineHandle,
    pub metrics: Arc<Mutex<Metrics>>,
    pub api_key: Option<String>,
    pub created: u64,
    pub body_limit: usize,
    pub log: crate::RequestLog,
}

pub type Shared = Arc<AppState>;

impl AppState {
    /// Starts the engine over `loaded`'s model.
    pub fn new(
        loaded: Loaded,
        config: &ServeConfig,
        metrics: Arc<Mutex<Metrics>>,
        log: crate::RequestLog,
    ) -> Result<Shared, Error> {
        let context = config
            .context
            .min(loaded.model.spec.context_length as usize)
            .max(1);
        let tokenizer = Arc::new(loaded.tokenizer);
        let engine = engine::start(
            Arc::new(loaded.model),
            tokenizer.clone(),
            EngineConfig {
                parallel: config.parallel,
                context,
                prefill_chunk: config.prefill_chunk,
                max_queue: config.max_queue,
                threads: config.threads,
            },
            metrics.clone(),
        )?;
        Ok(Arc::new(AppState {
            alias: config.alias.clone(),
            tokenizer,
            template: loaded.template.map(Arc::new),
            context,
            parallel: config.parallel,
            engine,
            metrics,
            api_key: config.api_key.clone(),
            created: now(),
            body_limit: config.body_limit,
            log,
        }))
    }

    fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests name the model they want: the alias (or nothing).
    fn check_model(&self, model: Option<&str>) -> Result<(), ApiError> {
        match model {
            None | Some("") => Ok(()),
            Some(m) if m == self.alias => Ok(()),
            Some(m) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!(
                    "the model `{m}` does not exist; this server serves `{}`",
                    self.alias
                ),
            )
            .code("model_not_found")),
        }
    }
}

/// The application: routes, the gate, the body limit.
pub fn router(state: Shared) -> Router {
    let limit = state.body_limit;
    Router::new()
        .route("/", get(playground))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/tokenizer_info", get(tokenizer_info))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Generated tokens of a response, for the request log.
#[derive(Clone, Copy)]
struct Tokens(u64);

/// A streamed response logs its own line when the stream ends.
#[derive(Clone, Copy)]
struct Streamed;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh id with OpenAI's prefix.
fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{prefix}-{:016x}{n:04x}", t ^ (n << 48))
}

/// A seed for requests that give none.
fn random_seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // SplitMix64's finaliser spreads the clock's low bits.
    let mut z = t.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The gate: API key, errors as OpenAI's object (413 from the body limit, 405), the
/// request's line on stderr and its count in `/metrics`.
async fn gate(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.uri().path().to_string();
    if let Some(key) = &st.api_key {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|k| k == key);
        if !ok && route != "/health" {
            let response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "a valid API key is required: Authorization: Bearer KEY",
            )
            .code("invalid_api_key")
            .into_response();
            log_request(&st, &method, &route, response.status(), 0, started);
            return response;
        }
    }
    let mut response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !status.is_success() && !is_json {
        let (kind, message) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => (
                "invalid_request_error",
                format!(
                    "the request body is larger than the limit of {} bytes",
                    st.body_limit
                ),
            ),
            StatusCode::METHOD_NOT_ALLOWED => (
                "invalid_request_error",
                format!("{method} is not allowed on {route}"),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "invalid_request_error",
                "the body must be JSON (Content-Type: application/json)".to_string(),
            ),
            _ => ("server_error", format!("{status}")),
        };
        response = ApiError::new(status, kind, message).into_response();
    }
    if response.extensions().get::<Streamed>().is_none() {
        let tokens = response.extensions().get::<Tokens>().map_or(0, |t| t.0);
        log_request(&st, &method, &route, response.status(), tokens, started);
    }
    response
}

fn log_request(
    st: &AppState,
    method: &Method,
    route: &str,
    status: StatusCode,
    tokens: u64,
    started: Instant,
) {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "{method} {route} {} {tokens} tokens {ms:.0} ms",
        status.as_u16()
    );
    st.metrics().request(route, status.as_u16());
}

fn json_response(v: Value, tokens: u64) -> Response {
    let mut r = axum::Json(v).into_response();
    r.extensions_mut().insert(Tokens(tokens));
    r
}

async fn not_found(req: Request) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("no route {} {}", req.method(), req.uri().path()),
    )
    .into_response()
}

async fn health() -> Response {
    json_response(json!({"status": "ok"}), 0)
}

async fn metrics_text(State(st): State<Shared>) -> Response {
    let text = st.metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn models(State(st): State<Shared>) -> Response {
    json_response(
        json!({"object": "list", "data": [{
            "id": st.alias, "object": "model", "created": st.created, "owned_by": "fmlab",
            "max_model_len": st.context,
        }]}),
        0,
    )
}

async fn playground() -> Response {
    Html(include_str!("playground.html")).into_response()
}

// ---------------------------------------------------------------------------------------
// Tokenizer routes (vLLM's).

async fn tokenize(State(st): State<Shared>, body: Bytes) -> Response {
    let run = || -> Result<Response, ApiError> {
        let req: api::TokenizeRequest = api::parse(&body)?;
        st.check_model(req.model.as_deref())?;
        let ids = match (&req.prompt, &req.messages) {
            // Special-token text becomes its token, as Hugging Face tokenizers (and so
            // vLLM, and lm-evaluation-harness's remote tokenizer) read it.
            (Some(text), None) => {
                st.tokenizer
                    .encode(text, req.add_special_tokens.unwrap_or(true), true)
            }
            (None, Some(messages)) => {
                let messages = chat_messages(messages)?;
                let template = template(&st)?;
                let text = template
                    .render(&messages, req.add_generation_prompt.unwrap_or(true))
                    .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
                st.tokenizer.encode(&text, false, true)
            }
            _ => {
                return Err(ApiError::invalid(
                    "prompt",
                    "give either prompt (text) or messages",
                ))
            }
        };
        let strs: Option<Vec<String>> = req.return_token_strs.unwrap_or(false).then(|| {
            ids.iter()
                .map(|&id| token_string(&st.tokenizer, id).0)
                .collect()
        });
        Ok(json_response(
            json!({"count": ids.len(), "max_model_len": st.context, "tokens": ids, "token_strs": strs}),
            0,
        ))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

async fn detokenize(State(st): State<Shared>, body: Bytes) -> Response {
    let run = || -> Result<Response, ApiError> {
        let req: api::DetokenizeRequest = api::parse(&body)?;
        st.check_model(req.model.as_deref())?;
        let vocab = st.tokenizer.vocab_size();
        if let Some(bad) = req.tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(ApiError::invalid(
                "tokens",
                format!("token {bad} is outside the vocabulary of {vocab}"),
            ));
        }
        let text = st
            .tokenizer
            .decode(&req.tokens, false)
            .map_err(|e| ApiError::invalid("tokens", e.to_string()))?;
        Ok(json_response(json!({"prompt": text}), 0))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

async fn tokenizer_info(State(st): State<Shared>) -> Response {
    let tok = &st.tokenizer;
    let piece = |id: Option<u32>| id.and_then(|i| tok.piece(i).ok().map(str::to_string));
    json_response(
        json!({
            "tokenizer_class": "fmlab",
            "vocab_size": tok.vocab_size(),
            "bos_token": piece(tok.vocab.bos),
            "eos_token": piece(tok.vocab.eos),
            "pad_token": piece(tok.vocab.pad),
            "unk_token": piece(tok.vocab.unk),
            "add_bos_token": tok.vocab.add_bos,
            "chat_template": st.template.as_ref().map(|t| t.source().to_string()),
            "model_max_length": st.context,
            "max_model_len": st.context,
        }),
        0,
    )
}

// ---------------------------------------------------------------------------------------
// Generation.

/// A validated generation request, ready for the engine.
struct Prepared {
    prompts: Vec<Vec<u32>>,
    n: usize,
    config: SamplerConfig,
    stop: StopConditions,
    logprobs: Option<usize>,
    grammar: Option<GrammarSpec>,
    echo: bool,
    stream: bool,
    include_usage: bool,
    /// Name tokens `token_id:N` in log-probabilities.
    token_ids: bool,
}

/// The most alternatives a request may ask for per token.
const MAX_LOGPROBS: u32 = 20;

fn template(st: &AppState) -> Result<&ChatTemplate, ApiError> {
    st.template.as_deref().ok_or_else(|| {
        ApiError::invalid(
            "messages",
            "the model has no chat template; use /v1/completions with a raw prompt",
        )
    })
}

fn chat_messages(messages: &[api::ChatMessage]) -> Result<Vec<Message>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid("messages", "messages is empty"));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| match m.role.as_str() {
            "system" | "user" | "assistant" | "developer" => {
                let role = if m.role == "developer" {
                    "system"
                } else {
                    &m.role
                };
                Ok(Message::new(role, &m.text(i)?))
            }
            other => Err(ApiError::invalid(
                &format!("messages[{i}].role"),
                format!("role {other:?} is not system, user or assistant"),
            )),
        })
        .collect()
}

impl AppState {
    /// Checks what every generation request shares: `n`, the context, the stop conditions.
    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &self,
        prompts: Vec<Vec<u32>>,
        n: Option<usize>,
        max_tokens: Option<u64>,
        default_max: Option<usize>,
        sampling: &api::Sampling,
        logprobs: Option<usize>,
        grammar: Option<GrammarSpec>,
        echo: bool,
        stream: bool,
        include_usage: bool,
    ) -> Result<Prepared, ApiError> {
        let n = n.unwrap_or(1);
        if n == 0 || n > self.parallel {
            return Err(ApiError::invalid(
                "n",
                format!(
                    "n must be between 1 and the server's --parallel ({})",
                    self.parallel
                ),
            ));
        }
        let vocab = self.tokenizer.vocab_size();
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        for p in &prompts {
            if p.is_empty() {
                return Err(ApiError::invalid(
                    "prompt",
                    "the prompt is empty (no tokens)",
                ));
            }
            if let Some(bad) = p.iter().find(|&&t| t as usize >= vocab) {
                return Err(ApiError::invalid(
                    "prompt",
                    format!("token {bad} is outside the vocabulary of {vocab}"),
                ));
            }
        }
        let max_new = match max_tokens {
            Some(m) => usize::try_from(m).unwrap_or(usize::MAX),
            None => default_max.unwrap_or(self.context.saturating_sub(longest)),
        };
        if longest >= self.context || longest.saturating_add(max_new) > self.context {
            return Err(ApiError::invalid(
                "max_tokens",
                format!(
                    "the prompt's {longest} tokens plus max_tokens {max_new} exceed the context of {} tokens",
                    self.context
                ),
            )
            .code("context_length_exceeded"));
        }
        if logprobs.is_some_and(|k| k > MAX_LOGPROBS as usize) {
            return Err(ApiError::invalid(
                "logprobs",
                format!("at most {MAX_LOGPROBS} alternatives per token"),
            ));
        }
        let config = sampling.config(&self.tokenizer, random_seed())?;
        let stops = sampling.stop_strings();
        if stops.iter().any(String::is_empty) {
            return Err(ApiError::invalid("stop", "a stop string is empty"));
        }
        let stop = StopConditions {
            max_new_tokens: max_new,
            min_new_tokens: sampling.min_tokens.unwrap_or(0),
            stop_tokens: self.tokenizer.stop_tokens(),
            stop_sequences: stops.into_iter().map(String::into_bytes).collect(),
            ignore_stop_tokens: sampling.ignore_eos.unwrap_or(false),
        };
        Ok(Prepared {
            prompts,
            n,
            config,
            stop,
            logprobs,
            grammar,
            echo,
            stream,
            include_usage,
            token_ids: false,
        })
    }

    /// Queues the request's jobs (one per prompt) on one event channel.
    fn submit(&self, p: &Prepared) -> Result<UnboundedReceiver<Event>, ApiError> {
        let (tx, rx) = unbounded_channel();
        for (i, prompt) in p.prompts.iter().enumerate() {
            let job = Job {
                first_choice: i * p.n,
                prompt: prompt.clone(),
                config: p.config.clone(),
                n: p.n,
                stop: p.stop.clone(),
                logprobs: p.logprobs,
                grammar: p.grammar.clone(),
                prompt_logprobs: p.echo.then_some(p.logprobs.unwrap_or(0)),
                events: tx.clone(),
            };
            match self.engine.submit(job) {
                Ok(()) => {}
                Err(Refused::QueueFull) => {
                    return Err(ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_error",
                        format!(
                            "the server is busy: {} requests are waiting; try again shortly",
                            self.engine.queued()
                        ),
                    )
                    .code("queue_full"))
                }
                Err(Refused::Stopped) => {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "server_error",
                        "the engine has stopped",
                    ))
                }
            }
        }
        Ok(rx)
    }
}

/// The engine failed while running a request.
fn failure(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
}

/// The engine could not set up a request as asked (its grammar, say).
fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

/// Everything the engine said about a request, once every choice is done.
struct Collected {
    prompts: BTreeMap<usize, Vec<PromptToken>>,
    generations: Vec<Generation>,
}

async fn collect(mut rx: UnboundedReceiver<Event>, choices: usize) -> Result<Collected, ApiError> {
    let mut prompts = BTreeMap::new();
    let mut done: Vec<Option<Generation>> = vec![None; choices];
    let mut remaining = choices;
    while remaining > 0 {
        match rx.recv().await {
            Some(Event::Prompt {
                first_choice,
                tokens,
            }) => {
                prompts.insert(first_choice, tokens);
            }
            Some(Event::Token { .. } | Event::Text { .. }) => {}
            Some(Event::Done { choice, generation }) => {
                if let Some(slot) = done.get_mut(choice) {
                    if slot.is_none() {
                        remaining -= 1;
                    }
                    *slot = Some(*generation);
                }
            }
            Some(Event::Failed(message)) => return Err(failure(message)),
            Some(Event::Invalid(message)) => return Err(invalid(message)),
            None => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the engine stopped before the request was done",
                ))
            }
        }
    }
    Ok(Collected {
        prompts,
        generations: done.into_iter().flatten().collect(),
    })
}

/// A token's text for log-probabilities (control tokens spelled out) and its bytes.
fn token_string(tok: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let bytes = tok.token_bytes(id, true).unwrap_or_default();
    (String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

/// How tokens are named in log-probabilities: their text, or `token_id:N` (vLLM's
/// `return_tokens_as_token_ids`, which keeps tokens that are not whole characters apart).
#[derive(Clone, Copy)]
struct Names<'a> {
    tok: &'a Tokenizer,
    ids: bool,
}

impl Names<'_> {
    fn name(&self, id: u32) -> (String, Vec<u8>) {
        let (text, bytes) = token_string(self.tok, id);
        match self.ids {
            true => (format!("token_id:{id}"), bytes),
            false => (text, bytes),
        }
    }
}

/// A token's bytes in the text (control tokens render as nothing, as in the output).
fn text_bytes(tok: &Tokenizer, id: u32) -> Vec<u8> {
    tok.token_bytes(id, false).unwrap_or_default()
}

fn top_map(names: Names, top: &[TokenLogprob]) -> Value {
    let mut m = serde_json::Map::new();
    for t in top {
        m.entry(names.name(t.id).0).or_insert(json!(t.logprob));
    }
    Value::Object(m)
}

/// Legacy (`/v1/completions`) log-probabilities of the prompt tokens (with `echo`) and
/// the generated ones; `text_offset` counts characters of the choice's text.
fn legacy_logprobs(
    names: Names,
    prompt: Option<(&[u32], &[PromptToken])>,
    g: &Generation,
    start_offset: usize,
) -> (Value, usize) {
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top_logprobs = Vec::new();
    let mut text_offset = Vec::new();
    let mut offset = start_offset;
    let tok = names.tok;
    let mut push = |id: u32, lp: Option<f32>, top: Option<Value>| {
        tokens.push(json!(names.name(id).0));
        token_logprobs.push(json!(lp));
        top_logprobs.push(top.unwrap_or(Value::Null));
        text_offset.push(json!(offset));
        offset += String::from_utf8_lossy(&text_bytes(tok, id))
            .chars()
            .count();
    };
    if let Some((ids, scored)) = prompt {
        for (i, &id) in ids.iter().enumerate() {
            let s = scored.get(i);
            let lp = s.and_then(|s| s.logprob);
            let top = (i > 0).then(|| top_map(names, s.map_or(&[][..], |s| &s.top)));
            push(id, lp, top);
        }
    }
    for step in &g.steps {
        push(step.token, step.logprob, Some(top_map(names, &step.top)));
    }
    (
        json!({"tokens": tokens, "token_logprobs": token_logprobs,
               "top_logprobs": top_logprobs, "text_offset": text_offset}),
        offset,
    )
}

/// Chat log-probabilities of one token.
fn chat_logprob(names: Names, id: u32, logprob: Option<f32>, top: &[TokenLogprob]) -> Value {
    let (text, bytes) = names.name(id);
    json!({
        "token": text, "logprob": logprob, "bytes": bytes,
        "top_logprobs": top.iter().map(|t| {
            let (text, bytes) = names.name(t.id);
            json!({"token": text, "logprob": t.logprob, "bytes": bytes})
        }).collect::<Vec<_>>(),
    })
}

fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
           "total_tokens": prompt_tokens + completion_tokens})
}

fn prompt_text(tok: &Tokenizer, ids: &[u32]) -> String {
    let bytes: Vec<u8> = ids.iter().flat_map(|&id| text_bytes(tok, id)).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn completions(State(st): State<Shared>, body: Bytes) -> Response {
    match completions_request(&st, &body) {
        Ok(p) => run_completions(st, p).await,
        Err(e) => e.into_response(),
    }
}

fn completions_request(st: &AppState, body: &[u8]) -> Result<Prepared, ApiError> {
    let req: CompletionRequest = api::parse_sampled(body)?;
    st.check_model(req.model.as_deref())?;
    if req.best_of.is_some_and(|b| b != req.n.unwrap_or(1)) {
        return Err(ApiError::invalid(
            "best_of",
            "best_of other than n is not supported (use n and choose)",
        ));
    }
    if req.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid(
            "suffix",
            "suffix (insertion) is not supported",
        ));
    }
    let prompts = api::prompts(&req.prompt)?
        .into_iter()
        .map(|p| match p {
            Prompt::Text(t) => st.tokenizer.encode(&t, true, false),
            Prompt::Ids(ids) => ids,
        })
        .collect();
    let echo = req.echo.unwrap_or(false);
    let stream = req.stream.unwrap_or(false);
    if echo && stream && req.n.unwrap_or(1) > 1 {
        return Err(ApiError::invalid("echo", "echo with stream needs n = 1"));
    }
    let grammar = req.sampling.grammar(None)?;
    let token_ids = req.sampling.return_tokens_as_token_ids.unwrap_or(false);
    st.prepare(
        prompts,
        req.n,
        req.max_tokens,
        Some(16),
        &req.sampling,
        req.logprobs.map(|k| k as usize),
        grammar,
        echo,
        stream,
        req.stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
    )
    .map(|p| Prepared { token_ids, ..p })
}

async fn run_completions(st: Shared, p: Prepared) -> Response {
    let rx = match st.submit(&p) {
        Ok(rx) => rx,
        Err(e) => return e.into_response(),
    };
    let id = new_id("cmpl");
    if p.stream {
        return stream_response(st, p, rx, id, Kind::Completion);
    }
    let choices = p.prompts.len() * p.n;
    let c = match collect(rx, choices).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let tok = &st.tokenizer;
    let mut out = Vec::with_capacity(choices);
    let mut completion_tokens = 0;
    for (i, g) in c.generations.iter().enumerate() {
        let prompt_index = i / p.n;
        let ids = &p.prompts[prompt_index];
        let mut text = String::new();
        if p.echo {
            text.push_str(&prompt_text(tok, ids));
        }
        text.push_str(&String::from_utf8_lossy(&g.bytes));
        let logprobs = match p.logprobs {
            Some(_) => {
                let scored = c
                    .prompts
                    .get(&(prompt_index * p.n))
                    .map(|s| (ids.as_slice(), s.as_slice()));
                let names = Names {
                    tok,
                    ids: p.token_ids,
                };
                legacy_logprobs(names, if p.echo { scored } else { None }, g, 0).0
            }
            None => Value::Null,
        };
        completion_tokens += g.tokens.len();
        out.push(json!({"index": i, "text": text, "logprobs": logprobs,
                        "finish_reason": g.stop.finish_reason()}));
    }
    let prompt_tokens: usize = p.prompts.iter().map(Vec::len).sum();
    json_response(
        json!({"id": id, "object": "text_completion", "created": now(), "model": st.alias,
               "system_fingerprint": fingerprint(),
               "choices": out, "usage": usage(prompt_tokens, completion_tokens)}),
        completion_tokens as u64,
    )
}

fn fingerprint() -> String {
    format!("fmlab-{}", env!("CARGO_PKG_VERSION"))
}

async fn chat(State(st): State<Shared>, body: Bytes) -> Response {
    match chat_request(&st, &body) {
        Ok(p) => run_chat(st, p).await,
        Err(e) => e.into_response(),
    }
}

fn chat_request(st: &AppState, body: &[u8]) -> Result<Prepared, ApiError> {
    let req: ChatRequest = api::parse_sampled(body)?;
    st.check_model(req.model.as_deref())?;
    let messages = chat_messages(&req.messages)?;
    let ids = template(st)?
        .prompt_ids(&st.tokenizer, &messages)
        .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
    let logprobs = match (req.logprobs.unwrap_or(false), req.top_logprobs) {
        (true, k) => Some(k.unwrap_or(0) as usize),
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                "top_logprobs",
                "top_logprobs needs logprobs: true",
            ))
        }
        (false, None) => None,
    };
    let format = match &req.response_format {
        Some(f) => f.grammar()?,
        None => None,
    };
    let grammar = req.sampling.grammar(format)?;
    let token_ids = req.sampling.return_tokens_as_token_ids.unwrap_or(false);
    st.prepare(
        vec![ids],
        req.n,
        req.max_completion_tokens.or(req.max_tokens),
        None,
        &req.sampling,
        logprobs,
        grammar,
        false,
        req.stream.unwrap_or(false),
        req.stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
    )
    .map(|p| Prepared { token_ids, ..p })
}

async fn run_chat(st: Shared, p: Prepared) -> Response {
    let rx = match st.submit(&p) {
        Ok(rx) => rx,
        Err(e) => return e.into_response(),
    };
    let id = new_id("chatcmpl");
    if p.stream {
        return stream_response(st, p, rx, id, Kind::Chat);
    }
    let c = match collect(rx, p.n).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let tok = &st.tokenizer;
    let mut completion_tokens = 0;
    let choices: Vec<Value> = c
        .generations
        .iter()
        .enumerate()
        .map(|(i, g)| {
            completion_tokens += g.tokens.len();
            let names = Names {
                tok,
                ids: p.token_ids,
            };
            let logprobs = p.logprobs.map_or(Value::Null, |_| {
                json!({"content": g.steps.iter()
                    .map(|s| chat_logprob(names, s.token, s.logprob, &s.top))
                    .collect::<Vec<_>>()})
            });
            json!({"index": i,
                   "message": {"role": "assistant", "content": String::from_utf8_lossy(&g.bytes)},
                   "logprobs": logprobs, "finish_reason": g.stop.finish_reason()})
        })
        .collect();
    json_response(
        json!({"id": id, "object": "chat.completion", "created": now(), "model": st.alias,
               "system_fingerprint": fingerprint(),
               "choices": choices, "usage": usage(p.prompts[0].len(), completion_tokens)}),
        completion_tokens as u64,
    )
}

// ---------------------------------------------------------------------------------------
// Streaming.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Completion,
    Chat,
}

/// Bytes to text for a stream: the longest valid UTF-8 prefix goes out, a split character
/// waits for its other bytes.
#[derive(Default)]
struct Utf8Buffer(Vec<u8>);

impl Utf8Buffer {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.0.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.0) {
            Ok(_) => self.0.len(),
            // An incomplete character at the end waits; an invalid one goes out replaced.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.0.len(),
        };
        let out: Vec<u8> = self.0.drain(..valid).collect();
        String::from_utf8_lossy(&out).into_owned()
    }

    fn flush(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.0).into_owned();
        self.0.clear();
        out
    }
}

/// The state of one streamed response.
struct StreamState {
    st: Shared,
    rx: UnboundedReceiver<Event>,
    p: Prepared,
    id: String,
    kind: Kind,
    created: u64,
    text: Vec<Utf8Buffer>,
    offsets: Vec<usize>,
    started: Vec<bool>,
    remaining: usize,
    completion_tokens: usize,
    finished: bool,
    began: Instant,
}

impl StreamState {
    fn chunk(&self, choice: Value) -> SseEvent {
        let object = match self.kind {
            Kind::Completion => "text_completion",
            Kind::Chat => "chat.completion.chunk",
        };
        data(
            json!({"id": self.id, "object": object, "created": self.created,
                    "model": self.st.alias, "system_fingerprint": fingerprint(),
                    "choices": [choice]}),
        )
    }

    /// A chunk of new text for `choice` (with the token's log-probabilities when asked).
    fn text_chunk(
        &mut self,
        choice: usize,
        text: String,
        logprobs: Value,
        finish: Option<&str>,
    ) -> SseEvent {
        let value = match self.kind {
            Kind::Completion => json!({"index": choice, "text": text, "logprobs": logprobs,
                                       "finish_reason": finish}),
            Kind::Chat => {
                let mut delta = serde_json::Map::new();
                if !self.started[choice] {
                    delta.insert("role".into(), json!("assistant"));
                }
                if !text.is_empty() || finish.is_none() {
                    delta.insert("content".into(), json!(text));
                }
                json!({"index": choice, "delta": delta, "logprobs": logprobs, "finish_reason": finish})
            }
        };
        self.started[choice] = true;
        self.chunk(value)
    }

    /// The SSE events one engine event makes.
    fn on_event(&mut self, event: Event) -> Vec<SseEvent> {
        let tok = self.st.tokenizer.clone();
        match event {
            Event::Prompt {
                first_choice,
                tokens,
            } => {
                // echo: the prompt's text and log-probabilities first.
                let prompt_index = first_choice / self.p.n;
                let ids = self.p.prompts[prompt_index].clone();
                let text = prompt_text(&tok, &ids);
                let empty = Generation {
                    tokens: Vec::new(),
                    steps: Vec::new(),
                    bytes: Vec::new(),
                    prompt_tokens: ids.len(),
                    stop: fmlab_sample::StopReason::Length,
                    forced_tokens: 0,
                    prefill_time: Default::default(),
                    decode_time: Default::default(),
                };
                let names = Names {
                    tok: &tok,
                    ids: self.p.token_ids,
                };
                let (logprobs, offset) = match self.p.logprobs {
                    Some(_) => legacy_logprobs(names, Some((&ids, &tokens)), &empty, 0),
                    None => (Value::Null, text.chars().count()),
                };
                self.offsets[first_choice] = offset;
                vec![self.text_chunk(first_choice, text, logprobs, None)]
            }
            Event::Token {
                choice,
                step,
                bytes,
            } => {
                self.completion_tokens += 1;
                let text = self.text[choice].push(&bytes);
                let names = Names {
                    tok: &tok,
                    ids: self.p.token_ids,
                };
                let logprobs = match (self.p.logprobs, self.kind) {
                    (None, _) => Value::Null,
                    (Some(_), Kind::Chat) => {
                        json!({"content": [chat_logprob(names, step.token, step.logprob, &step.top)]})
                    }
                    (Some(_), Kind::Completion) => {
                        let offset = self.offsets[choice];
                        self.offsets[choice] +=
                            String::from_utf8_lossy(&text_bytes(&tok, step.token))
                                .chars()
                                .count();
                        json!({"tokens": [names.name(step.token).0],
                               "token_logprobs": [step.logprob],
                               "top_logprobs": [top_map(names, &step.top)],
                               "text_offset": [offset]})
                    }
                };
                if text.is_empty() && logprobs.is_null() && self.started[choice] {
                    return Vec::new();
                }
                vec![self.text_chunk(choice, text, logprobs, None)]
            }
            Event::Text { choice, bytes } => {
                let text = self.text[choice].push(&bytes);
                if text.is_empty() {
                    return Vec::new();
                }
                vec![self.text_chunk(choice, text, Value::Null, None)]
            }
            Event::Done { choice, generation } => {
                self.remaining = self.remaining.saturating_sub(1);
                let rest = self.text[choice].flush();
                let mut out = Vec::new();
                if !rest.is_empty() {
                    out.push(self.text_chunk(choice, rest, Value::Null, None));
                }
                out.push(self.text_chunk(
                    choice,
                    String::new(),
                    Value::Null,
                    Some(generation.stop.finish_reason()),
                ));
                if self.remaining == 0 {
                    out.extend(self.end());
                }
                out
            }
            Event::Failed(message) => {
                self.finished = true;
                vec![
                    data(failure(message).body()),
                    SseEvent::default().data("[DONE]"),
                ]
            }
            Event::Invalid(message) => {
                self.finished = true;
                vec![
                    data(invalid(message).body()),
                    SseEvent::default().data("[DONE]"),
                ]
            }
        }
    }

    /// The usage chunk (when asked for) and `[DONE]`.
    fn end(&mut self) -> Vec<SseEvent> {
        self.finished = true;
        let mut out = Vec::new();
        if self.p.include_usage {
            let prompt_tokens: usize = self.p.prompts.iter().map(Vec::len).sum();
            let object = match self.kind {
                Kind::Completion => "text_completion",
                Kind::Chat => "chat.completion.chunk",
            };
            out.push(data(
                json!({"id": self.id, "object": object, "created": self.created,
                "model": self.st.alias, "system_fingerprint": fingerprint(), "choices": [],
                "usage": usage(prompt_tokens, self.completion_tokens)}),
            ));
        }
        out.push(SseEvent::default().data("[DONE]"));
        let route = match self.kind {
            Kind::Completion => "/v1/completions",
            Kind::Chat => "/v1/chat/completions",
        };
        log_request(
            &self.st,
            &Method::POST,
            route,
            StatusCode::OK,
            self.completion_tokens as u64,
            self.began,
        );
        out
    }
}

fn data(v: Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}

fn stream_response(
    st: Shared,
    p: Prepared,
    rx: UnboundedReceiver<Event>,
    id: String,
    kind: Kind,
) -> Response {
    let choices = p.prompts.len() * p.n;
    let state = StreamState {
        st,
        rx,
        id,
        kind,
        created: now(),
        text: (0..choices).map(|_| Utf8Buffer::default()).collect(),
        offsets: vec![0; choices],
        started: vec![false; choices],
        remaining: choices,
        completion_tokens: 0,
        finished: false,
        began: Instant::now(),
        p,
    };
    let events = stream::unfold(state, |mut s| async move {
        if s.finished {
            return None;
        }
        let batch = match s.rx.recv().await {
            Some(event) => s.on_event(event),
            None => {
                s.finished = true;
                let e = ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the engine stopped before the request was done",
                );
                vec![data(e.body()), SseEvent::default().data("[DONE]")]
            }
        };
        Some((stream::iter(batch.into_iter().map(Ok::<_, Infallible>)), s))
    })
    .flatten();
    sse(events)
}

fn sse(events: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static) -> Response {
    let mut r = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    r.extensions_mut().insert(Streamed);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
