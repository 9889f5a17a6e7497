//! A model behind an OpenAI-compatible completions endpoint — fmlab's own server, vLLM,
//! llama-server or a hosted API — answering the harness's requests concurrently, with
//! retries. Log-likelihoods come from `echo` with `max_tokens: 0` and legacy `logprobs`
//! (the prompt's own token log-probabilities). Where the server also offers vLLM's
//! `/tokenize` and `/tokenizer_info` at its root (fmlab serve and vLLM do), requests go as
//! token ids split as lm-evaluation-harness splits them (its `tokenized_requests`), so the
//! two score the same tokens; elsewhere as text, the continuation found by the tokens'
//! `text_offset`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use super::{Generation, LanguageModel};
use crate::{Error, Result};

/// Where and how to reach the model.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The API's base, with its version: `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// The `model` field of each request.
    pub model: String,
    /// Sent as `Authorization: Bearer KEY` where given.
    pub api_key: Option<String>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Further tries of a request that failed for a reason that may pass (connection,
    /// 429, 5xx), with a doubling pause.
    pub retries: usize,
}

pub struct ApiModel {
    agent: ureq::Agent,
    config: ApiConfig,
    /// The server's own tokenizer, where it has one: the prefix token of rolling
    /// log-likelihoods and empty contexts (BOS, else EOS).
    remote: Option<u32>,
}

fn api_error(message: String) -> Error {
    Error::Config(message)
}

impl ApiModel {
    /// Connects to the API (a first request to the server's tokenizer routes tells whether
    /// requests can go as token ids).
    pub fn new(config: ApiConfig) -> Result<Self> {
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(api_error(format!(
                "--base-url {:?}: an http:// or https:// address such as http://127.0.0.1:8080/v1",
                config.base_url
            )));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        let mut model = ApiModel {
            agent,
            config,
            remote: None,
        };
        model.remote = model.probe_tokenizer();
        Ok(model)
    }

    /// Whether the requests go as token ids (the server has `/tokenize`).
    pub fn tokenized(&self) -> bool {
        self.remote.is_some()
    }

    fn root(&self) -> String {
        let base = self.config.base_url.trim_end_matches('/');
        base.strip_suffix("/v1").unwrap_or(base).to_string()
    }

    fn probe_tokenizer(&self) -> Option<u32> {
        let info = self
            .call("GET", &format!("{}/tokenizer_info", self.root()), None, 0)
            .ok()?;
        let prefix = info["bos_token"]
            .as_str()
            .filter(|s| !s.is_empty())
            .or_else(|| info["eos_token"].as_str())?
            .to_string();
        match self.tokenize(&prefix).ok()?.as_slice() {
            [id] => Some(*id),
            _ => None,
        }
    }

    fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let v = self.call(
            "POST",
            &format!("{}/tokenize", self.root()),
            Some(json!({"prompt": text, "add_special_tokens": false})),
            self.config.retries,
        )?;
        v["tokens"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_u64().map(|t| t as u32))
                    .collect()
            })
            .ok_or_else(|| api_error(format!("/tokenize answered without tokens: {v}")))
    }

    /// One request, retried where the failure may pass; the server's own error message
    /// where it gives one.
    fn call(&self, method: &str, url: &str, body: Option<Value>, retries: usize) -> Result<Value> {
        let mut pause = Duration::from_millis(250);
        let mut attempt = 0;
        loop {
            let sent = match (method, &body) {
                ("GET", _) => {
                    let mut r = self.agent.get(url);
                    if let Some(k) = &self.config.api_key {
                        r = r.header("Authorization", &format!("Bearer {k}"));
                    }
                    r.call()
                }
                (_, b) => {
                    let mut r = self.agent.post(url);
                    if let Some(k) = &self.config.api_key {
                        r = r.header("Authorization", &format!("Bearer {k}"));
                    }
                    r.send_json(b.clone().unwrap_or(Value::Null))
                }
            };
            let (retry, message) = match sent {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let v: Result<Value> = resp
                        .body_mut()
                        .read_json::<Value>()
                        .map_err(|e| api_error(format!("{url}: the answer is not JSON: {e}")));
                    if (200..300).contains(&status) {
                        return v;
                    }
                    let detail = v
                        .ok()
                        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                        .unwrap_or_default();
                    (
                        status == 429 || status >= 500,
                        format!("{url}: HTTP {status} {detail}"),
                    )
                }
                Err(e) => (true, format!("{url}: {e}")),
            };
            if !retry || attempt >= retries {
                return Err(api_error(message));
            }
            attempt += 1;
            std::thread::sleep(pause);
            pause *= 2;
        }
    }

    fn completions(&self, body: Value) -> Result<Value> {
        let url = format!("{}/completions", self.config.base_url.trim_end_matches('/'));
        let v = self.call("POST", &url, Some(body), self.config.retries)?;
        if v["choices"][0].is_null() {
            return Err(api_error(format!("{url}: an answer without choices: {v}")));
        }
        Ok(v)
    }

    /// Runs `work` over `items` with `concurrency` workers, reporting progress from this
    /// thread; the first error ends the run.
    fn each<T: Sync, R: Send>(
        &self,
        items: &[T],
        progress: &mut dyn FnMut(usize, usize),
        work: impl Fn(&T) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..self.config.concurrency.clamp(1, items.len().max(1)) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() || failure.lock().map_or(true, |f| f.is_some()) {
                        break;
                    }
                    match work(&items[i]) {
                        Ok(r) => {
                            if let Ok(mut all) = results.lock() {
                                all[i] = Some(r);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                });
            }
            let mut shown = 0;
            while shown < items.len() && failure.lock().is_ok_and(|f| f.is_none()) {
                let d = done.load(Ordering::Relaxed);
                if d != shown {
                    shown = d;
                    progress(d, items.len());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        results
            .into_inner()
            .map_err(|_| api_error("a request worker failed".into()))?
            .into_iter()
            .map(|r| r.ok_or_else(|| api_error("a request was not answered".into())))
            .collect()
    }

    /// The prompt's scored tokens: `Σ log p` over the last `count` tokens and whether each
    /// was the most likely one.
    fn sum_tail(v: &Value, count: usize) -> Result<(f64, bool)> {
        let lp = &v["choices"][0]["logprobs"];
        let (tokens, logprobs, tops) = (
            lp["tokens"].as_array(),
            lp["token_logprobs"].as_array(),
            lp["top_logprobs"].as_array(),
        );
        let (Some(tokens), Some(logprobs)) = (tokens, logprobs) else {
            return Err(api_error(
                "the completion has no legacy logprobs of the prompt (the server must support \
                 `echo` with `logprobs`; llama-server does not)"
                    .into(),
            ));
        };
        if count > logprobs.len() {
            return Err(api_error(format!(
                "{} prompt tokens echoed, {count} to score",
                logprobs.len()
            )));
        }
        let (mut total, mut greedy) = (0f64, true);
        for i in logprobs.len() - count..logprobs.len() {
            total += logprobs[i]
                .as_f64()
                .ok_or_else(|| api_error(format!("prompt token {i} has no log-probability")))?;
            if let Some(top) = tops.and_then(|t| t.get(i)).and_then(Value::as_object) {
                let best = top
                    .iter()
                    .filter_map(|(k, v)| v.as_f64().map(|v| (k, v)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                greedy &= best.is_some_and(|(k, _)| Some(k.as_str()) == tokens[i].as_str());
            }
        }
        Ok((total, greedy))
    }

    fn score_request(&self, context: &str, continuation: &str) -> Result<(f64, bool)> {
        let (trimmed, moved) = super::split_pair(context, continuation);
        let echo = |prompt: Value| {
            self.completions(json!({
                "model": self.config.model, "prompt": prompt, "max_tokens": 0, "echo": true,
                "logprobs": 1, "temperature": 0,
            }))
        };
        if let Some(prefix) = self.remote {
            let whole = self.tokenize(&format!("{trimmed}{moved}"))?;
            let mut ctx = self.tokenize(trimmed)?;
            let cont = whole.get(ctx.len()..).unwrap_or(&[]).to_vec();
            if cont.is_empty() {
                return Ok((0.0, true));
            }
            if ctx.is_empty() {
                ctx.push(prefix);
            }
            let prompt: Vec<u32> = ctx.iter().chain(&cont).copied().collect();
            Self::sum_tail(&echo(json!(prompt))?, cont.len())
        } else {
            let v = echo(json!(format!("{trimmed}{moved}")))?;
            let offsets = v["choices"][0]["logprobs"]["text_offset"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let at = trimmed.chars().count() as u64;
            let count = offsets
                .iter()
                .filter(|o| o.as_u64().is_some_and(|o| o >= at))
                .count();
            Self::sum_tail(&v, count)
        }
    }
}

impl LanguageModel for ApiModel {
    fn loglikelihood(
        &mut self,
        requests: &[(String, String)],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<(f64, bool)>> {
        self.each(requests, progress, |(c, x)| self.score_request(c, x))
    }

    fn loglikelihood_rolling(
        &mut self,
        texts: &[String],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<f64>> {
        let Some(prefix) = self.remote else {
            return Err(api_error(
                "rolling log-likelihoods over an API need the server's /tokenize and \
                 /tokenizer_info routes (fmlab serve and vLLM have them) to put the prefix \
                 token before the text"
                    .into(),
            ));
        };
        self.each(texts, progress, |text| {
            let tokens = self.tokenize(text)?;
            if tokens.is_empty() {
                return Ok(0.0);
            }
            let prompt: Vec<u32> = std::iter::once(prefix)
                .chain(tokens.iter().copied())
                .collect();
            let v = self.completions(json!({
                "model": self.config.model, "prompt": prompt, "max_tokens": 0, "echo": true,
                "logprobs": 1, "temperature": 0,
            }))?;
            Ok(Self::sum_tail(&v, tokens.len())?.0)
        })
    }

    fn generate_until(
        &mut self,
        requests: &[(String, Vec<String>, usize)],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Generation>> {
        self.each(requests, progress, |(context, until, max_tokens)| {
            let prompt = match self.remote {
                Some(_) => json!(self.tokenize(context)?),
                None => json!(context),
            };
            let stops: Vec<&String> = until.iter().filter(|u| !u.is_empty()).take(4).collect();
            let v = self.completions(json!({
                "model": self.config.model, "prompt": prompt, "max_tokens": max_tokens,
                "temperature": 0, "stop": stops,
            }))?;
            let mut text = v["choices"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for u in until.iter().filter(|u| !u.is_empty()) {
                if let Some(at) = text.find(u.as_str()) {
                    text.truncate(at);
                }
            }
            // "stop": an end-of-generation token or a stop string; "length": the limit.
            let ended = v["choices"][0]["finish_reason"].as_str() == Some("stop");
            Ok(Generation { text, ended })
        })
    }
}
