//! The evaluation pipeline over lm-evaluation-harness task files ([`task`]): requests built
//! as lm-evaluation-harness builds them, answered by a [`LanguageModel`] (a local model
//! here, [`LocalModel`]), scored with its metrics and standard errors, and written in its
//! results JSON shape with per-document samples, so that its readers read ours and the two
//! can be compared number for number.

pub mod api;
pub mod compare;
pub mod pyrandom;
pub mod suite;
pub mod task;

use std::time::Instant;

use fmlab_nn::{KvCache, Logits, Transformer};
use fmlab_sample::{argmax, Rng};
use fmlab_tokenizer::{ChatTemplate, Message, Tokenizer};
use serde_json::{json, Map, Value};

pub use suite::{resolve, Group, Suite};
pub use task::{OutputType, Task};

use crate::{log_softmax_at, Error, Result};

/// What a task asks of a model, in lm-evaluation-harness's three request kinds.
pub trait LanguageModel {
    /// For each (context, continuation): `Σ log p(continuation | context)` and whether
    /// greedy decoding would have produced the continuation.
    fn loglikelihood(
        &mut self,
        requests: &[(String, String)],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<(f64, bool)>>;
    /// For each text: its log-likelihood as a whole, read in windows of the model's context
    /// after a prefix token.
    fn loglikelihood_rolling(
        &mut self,
        texts: &[String],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<f64>>;
    /// For each (context, stop strings, token limit): the greedy continuation, cut before
    /// the first stop string, and whether the model ended it before the limit.
    fn generate_until(
        &mut self,
        requests: &[(String, Vec<String>, usize)],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Generation>>;
}

/// A greedy continuation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generation {
    pub text: String,
    /// Ended by the model (an end-of-generation token, or a stop string), not by the token
    /// limit.
    pub ended: bool,
}

/// A model of fmlab's own engine, answering in-process: each context is computed once for
/// all its continuations, several contexts per batched forward pass.
pub struct LocalModel<'m> {
    model: &'m Transformer,
    tokenizer: &'m Tokenizer,
    /// Tokens per window (the model's context, at most `max_length`).
    max_length: usize,
    cache: KvCache,
    /// Contexts computed together in one batched forward pass.
    batch: usize,
}

impl<'m> LocalModel<'m> {
    pub fn new(model: &'m Transformer, tokenizer: &'m Tokenizer, max_length: usize) -> Self {
        let max_length = max_length.min(model.spec.context_length as usize).max(2);
        LocalModel {
            model,
            tokenizer,
            max_length,
            cache: KvCache::new(&model.spec, max_length + 1),
            batch: 1,
        }
    }

    /// Scores up to `batch` contexts (with all their continuations) per batched forward
    /// pass. On block formats whose products do not depend on the number of rows (Q4_0,
    /// Q4_1, Q5_0, Q8_0, f32) the log-likelihoods are those of one at a time, to the bit;
    /// K-quant kernels order their sums by batch size as ggml's do (floating-point noise).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Consecutive requests that share a context, each group computed together (the context
    /// once, each continuation after a copy of its cache); groups in chunks of `batch`
    /// through batched forward passes. Requests that do not fit one window go one at a time
    /// (left-truncated); empty continuations score 0 and count as greedy.
    fn loglikelihood_batched(
        &mut self,
        encoded: &[(Vec<u32>, Vec<u32>)],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<(f64, bool)>> {
        let n = encoded.len();
        let vocab = self.model.spec.vocab_size as usize;
        let mut out = vec![(0.0, true); n];
        let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
        let mut i = 0;
        while i < n {
            let mut j = i + 1;
            while j < n && encoded[j].0 == encoded[i].0 {
                j += 1;
            }
            groups.push(i..j);
            i = j;
        }
        let fits = |r: &std::ops::Range<usize>| {
            encoded[r.clone()].iter().all(|(c, x)| {
                !c.is_empty() && !x.is_empty() && c.len() + x.len() <= self.max_length + 1
            })
        };
        let (batchable, single): (Vec<_>, Vec<_>) = groups.into_iter().partition(|g| fits(g));
        let mut done = 0;
        for g in single {
            for k in g {
                let (ctx, cont) = &encoded[k];
                if !cont.is_empty() {
                    out[k] = self.score_truncated(ctx, cont)?;
                }
                done += 1;
                progress(done, n);
            }
        }
        for chunk in batchable.chunks(self.batch) {
            // The contexts, each in its own cache.
            let mut caches: Vec<KvCache> = chunk
                .iter()
                .map(|_| KvCache::new(&self.model.spec, self.max_length + 1))
                .collect();
            let lasts = {
                let mut segments: Vec<fmlab_nn::Segment<'_>> = chunk
                    .iter()
                    .zip(caches.iter_mut())
                    .map(|(g, cache)| fmlab_nn::Segment {
                        tokens: &encoded[g.start].0,
                        cache,
                    })
                    .collect();
                self.model.forward_batch(&mut segments)?
            };
            // Every continuation after a copy of its context's cache.
            let mut conts: Vec<(usize, KvCache)> = Vec::new();
            for (g, (cache, last)) in chunk.iter().zip(caches.iter().zip(&lasts)) {
                for k in g.clone() {
                    let cont = &encoded[k].1;
                    out[k] = (
                        log_softmax_at(last, cont[0] as usize),
                        argmax(last) == cont[0],
                    );
                    if cont.len() > 1 {
                        conts.push((k, cache.clone()));
                    }
                }
            }
            let rows = {
                let mut segments: Vec<fmlab_nn::Segment<'_>> = conts
                    .iter_mut()
                    .map(|(k, cache)| fmlab_nn::Segment {
                        tokens: &encoded[*k].1[..encoded[*k].1.len() - 1],
                        cache,
                    })
                    .collect();
                self.model.forward_batch_all(&mut segments)?
            };
            for ((k, _), rows) in conts.iter().zip(&rows) {
                let (total, greedy) = &mut out[*k];
                for (row, &t) in rows.chunks_exact(vocab).zip(&encoded[*k].1[1..]) {
                    *total += log_softmax_at(row, t as usize);
                    *greedy &= argmax(row) == t;
                }
            }
            done += chunk.iter().map(|g| g.len()).sum::<usize>();
            progress(done, n);
        }
        Ok(out)
    }

    /// Text to tokens as lm-evaluation-harness's remote tokenizer gives them (no BOS/EOS
    /// added; control-token text becomes the token, as the server's /tokenize does).
    fn encode(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, false, true)
    }

    /// The prefix of rolling windows and of empty contexts: BOS, else EOS.
    fn prefix_token(&self) -> Result<u32> {
        let v = &self.tokenizer.vocab;
        v.bos
            .or(v.eos)
            .ok_or_else(|| Error::Config("the tokenizer has neither BOS nor EOS".into()))
    }

    /// lm-evaluation-harness's `_encode_pair`: trailing spaces of the context move to the
    /// continuation; the continuation is what encoding the whole adds after the context's
    /// own encoding.
    fn encode_pair(&self, context: &str, continuation: &str) -> (Vec<u32>, Vec<u32>) {
        let (context, continuation) = split_pair(context, continuation);
        let whole = self.encode(&format!("{context}{continuation}"));
        let ctx = self.encode(context);
        let cont = whole.get(ctx.len()..).unwrap_or(&[]).to_vec();
        (ctx, cont)
    }

    /// Scores `cont` after `ctx` (both tokens) when the two do not fit one window: the last
    /// `max_length + 1` tokens from an empty cache, as lm-evaluation-harness cuts them.
    fn score_truncated(&mut self, ctx: &[u32], cont: &[u32]) -> Result<(f64, bool)> {
        let vocab = self.model.spec.vocab_size as usize;
        let all: Vec<u32> = ctx.iter().chain(cont).copied().collect();
        let keep = &all[all.len().saturating_sub(self.max_length + 1)..];
        let inputs = &keep[..keep.len().saturating_sub(1)];
        self.cache.clear();
        let rows = self.model.forward(inputs, &mut self.cache, Logits::All)?;
        let first = inputs.len() - cont.len().min(inputs.len());
        let (mut total, mut greedy) = (0f64, true);
        for (i, row) in rows.chunks_exact(vocab).enumerate().skip(first) {
            total += log_softmax_at(row, keep[i + 1] as usize);
            greedy &= argmax(row) == keep[i + 1];
        }
        Ok((total, greedy))
    }
}

impl LanguageModel for LocalModel<'_> {
    fn loglikelihood(
        &mut self,
        requests: &[(String, String)],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<(f64, bool)>> {
        let mut encoded = Vec::with_capacity(requests.len());
        for (context, continuation) in requests {
            let (mut ctx, cont) = self.encode_pair(context, continuation);
            if ctx.is_empty() && !cont.is_empty() {
                ctx.push(self.prefix_token()?);
            }
            encoded.push((ctx, cont));
        }
        self.loglikelihood_batched(&encoded, progress)
    }

    fn loglikelihood_rolling(
        &mut self,
        texts: &[String],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<f64>> {
        let prefix = self.prefix_token()?;
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            let tokens = self.encode(text);
            let mut total = 0f64;
            // Windows as lm-evaluation-harness's get_rolling_token_windows with a context
            // of one token: the first predicts max_length tokens after the prefix; each next
            // one predicts the following max_length tokens after the max_length − … tokens
            // before them.
            let mut predicted = 0;
            while predicted < tokens.len() {
                let n = self.max_length.min(tokens.len() - predicted);
                let end = predicted + n;
                let (inputs, scored): (Vec<u32>, &[u32]) = if predicted == 0 {
                    let mut v = vec![prefix];
                    v.extend_from_slice(&tokens[..end - 1]);
                    (v, &tokens[..end])
                } else {
                    let start = end.saturating_sub(self.max_length + 1);
                    (tokens[start..end - 1].to_vec(), &tokens[predicted..end])
                };
                self.cache.clear();
                let rows = self.model.forward(&inputs, &mut self.cache, Logits::All)?;
                let vocab = self.model.spec.vocab_size as usize;
                let first = inputs.len() - scored.len();
                for (row, &t) in rows.chunks_exact(vocab).skip(first).zip(scored) {
                    total += log_softmax_at(row, t as usize);
                }
                predicted = end;
            }
            out.push(total);
            progress(out.len(), texts.len());
        }
        Ok(out)
    }

    /// Greedy continuations, `batch` requests at a time: their contexts prefilled in one
    /// batched forward pass, then one decoding step for every unfinished request per pass
    /// (each in its own cache), as the server's continuous batching decodes.
    fn generate_until(
        &mut self,
        requests: &[(String, Vec<String>, usize)],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Generation>> {
        let mut out = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(self.batch) {
            out.extend(self.generate_chunk(chunk)?);
            progress(out.len(), requests.len());
        }
        Ok(out)
    }
}

/// One request being decoded by [`LocalModel::generate_chunk`].
struct Decoding<'r> {
    until: &'r [String],
    cache: KvCache,
    /// Tokens still allowed.
    left: usize,
    ids: Vec<u32>,
    text: String,
    last: u32,
    done: bool,
    ended: bool,
}

impl LocalModel<'_> {
    fn generate_chunk(&self, chunk: &[(String, Vec<String>, usize)]) -> Result<Vec<Generation>> {
        let stops = self.tokenizer.vocab.stop_tokens();
        let mut contexts = Vec::with_capacity(chunk.len());
        let mut states = Vec::with_capacity(chunk.len());
        for (context, until, max_tokens) in chunk {
            let mut ctx = self.encode(context);
            if ctx.is_empty() {
                ctx.push(self.prefix_token()?);
            }
            let room = self
                .max_length
                .saturating_sub(ctx.len().min(self.max_length));
            if ctx.len() > self.max_length {
                ctx.drain(..ctx.len() - self.max_length);
            }
            states.push(Decoding {
                until,
                cache: KvCache::new(&self.model.spec, self.max_length + 1),
                left: (*max_tokens).min(room),
                ids: Vec::new(),
                text: String::new(),
                last: 0,
                done: false,
                ended: false,
            });
            contexts.push(ctx);
        }
        let mut logits = {
            let mut segments: Vec<fmlab_nn::Segment<'_>> = contexts
                .iter()
                .zip(states.iter_mut())
                .map(|(tokens, s)| fmlab_nn::Segment {
                    tokens,
                    cache: &mut s.cache,
                })
                .collect();
            self.model.forward_batch(&mut segments)?
        };
        loop {
            // Each unfinished request takes its greedy token from its row of `logits`.
            let mut rows = logits.iter();
            for s in states.iter_mut().filter(|s| !s.done) {
                let Some(row) = rows.next() else { break };
                if s.left == 0 {
                    s.done = true;
                    continue;
                }
                let t = argmax(row);
                if stops.contains(&t) {
                    s.done = true;
                    s.ended = true;
                    continue;
                }
                s.ids.push(t);
                s.left -= 1;
                s.text = self
                    .tokenizer
                    .decode(&s.ids, false)
                    .map_err(|e| Error::Config(e.to_string()))?;
                s.last = t;
                s.done = s.left == 0
                    || s.until
                        .iter()
                        .any(|u| !u.is_empty() && s.text.contains(u.as_str()));
            }
            let lasts: Vec<[u32; 1]> = states
                .iter()
                .filter(|s| !s.done)
                .map(|s| [s.last])
                .collect();
            if lasts.is_empty() {
                break;
            }
            let mut segments: Vec<fmlab_nn::Segment<'_>> = states
                .iter_mut()
                .filter(|s| !s.done)
                .zip(&lasts)
                .map(|(s, t)| fmlab_nn::Segment {
                    tokens: t,
                    cache: &mut s.cache,
                })
                .collect();
            logits = self.model.forward_batch(&mut segments)?;
        }
        Ok(states
            .into_iter()
            .map(|mut s| {
                for u in s.until.iter().filter(|u| !u.is_empty()) {
                    if let Some(at) = s.text.find(u.as_str()) {
                        s.text.truncate(at);
                    }
                }
                Generation {
                    text: s.text,
                    ended: s.ended,
                }
            })
            .collect())
    }
}

/// lm-evaluation-harness's `_encode_pair` split: trailing whitespace of the context moves
/// to the front of the continuation.
pub fn split_pair<'a>(context: &'a str, continuation: &str) -> (&'a str, String) {
    let trimmed = context.trim_end();
    (
        trimmed,
        format!("{}{continuation}", &context[trimmed.len()..]),
    )
}

/// How a run goes: documents per task at most, few-shot examples, seed.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    pub limit: Option<usize>,
    /// Overrides each task's `num_fewshot`.
    pub num_fewshot: Option<usize>,
    pub seed: u64,
    /// Resamples for the standard errors of perplexities (lm-evaluation-harness
    /// bootstraps them too).
    pub bootstrap_iters: usize,
    /// The model's chat template: tasks that ask through it ([`Task::chat`]) need it.
    pub chat_template: Option<ChatTemplate>,
    /// Every task's prompt rendered as a user turn through the chat template (with the
    /// assistant's turn opened), as lm-evaluation-harness's `--apply_chat_template` does.
    pub apply_chat_template: bool,
}

/// One document's outcome: what was asked, answered, and each metric's value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub doc_id: usize,
    pub doc: Value,
    pub target: Value,
    pub arguments: Value,
    pub resps: Value,
    /// Per filter: the filtered response and each metric's per-document item.
    pub filtered: Vec<Filtered>,
}

/// One filter's view of a document: (filter name, filtered response, each metric's item).
pub type Filtered = (String, Value, Vec<(String, Item)>);

/// A metric's per-document item: a score, or a (log-likelihood, weight) pair.
#[derive(Debug, Clone, Copy)]
pub enum Item {
    Score(f64),
    Weighted(f64, f64),
}

/// A task's outcome.
#[derive(Debug, Clone)]
pub struct TaskResult {
    pub task: String,
    pub num_fewshot: usize,
    pub original: usize,
    pub samples: Vec<Sample>,
    /// (metric, filter, value, standard error).
    pub metrics: Vec<(String, String, f64, Option<f64>)>,
    pub seconds: f64,
}

/// Runs `task` against `lm`: every document's requests are built first and sent together
/// (so that a remote model can answer them concurrently), then scored.
/// `on_progress(done, total)` follows the requests.
pub fn run_task(
    task: &Task,
    lm: &mut dyn LanguageModel,
    config: &RunConfig,
    mut on_progress: impl FnMut(usize, usize),
) -> Result<TaskResult> {
    let started = Instant::now();
    let n = config
        .limit
        .map_or(task.docs.len(), |l| l.min(task.docs.len()));
    let shots = config.num_fewshot.unwrap_or(task.num_fewshot);
    let mut contexts = task.contexts(n, shots, config.seed)?;
    if task.chat || config.apply_chat_template {
        let template = config.chat_template.as_ref().ok_or_else(|| {
            Error::Config(format!(
                "{} asks through a chat template, and the model has none",
                task.name
            ))
        })?;
        for c in contexts.iter_mut() {
            *c = template
                .render(&[Message::new("user", c)], true)
                .map_err(|e| Error::Config(format!("chat template: {e}")))?;
        }
    }
    let samples = match task.output_type {
        OutputType::MultipleChoice | OutputType::Loglikelihood => {
            let mut requests: Vec<(String, String)> = Vec::new();
            let mut spans = Vec::with_capacity(n);
            for (i, context) in contexts.iter().enumerate() {
                let doc = &task.docs[i];
                let start = requests.len();
                if task.output_type == OutputType::MultipleChoice {
                    for c in task.choices(doc)? {
                        requests.push((context.clone(), format!("{}{c}", task.target_delimiter)));
                    }
                } else {
                    let cont = format!("{}{}", task.target_delimiter, task.target_text(doc)?);
                    requests.push((context.clone(), cont));
                }
                spans.push(start..requests.len());
            }
            let results = lm.loglikelihood(&requests, &mut on_progress)?;
            let mut samples = Vec::with_capacity(n);
            for (i, span) in spans.into_iter().enumerate() {
                let doc = &task.docs[i];
                let (reqs, res) = (&requests[span.clone()], &results[span]);
                samples.push(if task.output_type == OutputType::MultipleChoice {
                    multiple_choice_sample(task, i, doc, reqs, res)?
                } else {
                    let (ll, greedy) = res[0];
                    let items = task
                        .metrics
                        .iter()
                        .map(|m| {
                            let v = if m == "perplexity" {
                                ll
                            } else if greedy {
                                1.0
                            } else {
                                0.0
                            };
                            (m.clone(), Item::Score(v))
                        })
                        .collect();
                    Sample {
                        doc_id: i,
                        doc: doc.clone(),
                        target: task.target(doc)?,
                        arguments: json!(reqs),
                        resps: json!([[[ll.to_string(), greedy.to_string()]]]),
                        filtered: vec![(
                            "none".into(),
                            json!([ll.to_string(), greedy.to_string()]),
                            items,
                        )],
                    }
                });
            }
            samples
        }
        OutputType::LoglikelihoodRolling => {
            let texts: Vec<String> = (0..n)
                .map(|i| task.target_text(&task.docs[i]))
                .collect::<Result<_>>()?;
            let lls = lm.loglikelihood_rolling(&texts, &mut on_progress)?;
            texts
                .iter()
                .zip(lls)
                .enumerate()
                .map(|(i, (text, ll))| {
                    let words = regex_split_count(text) as f64;
                    let bytes = text.len() as f64;
                    let items = task
                        .metrics
                        .iter()
                        .map(|m| {
                            let w = if m == "word_perplexity" { words } else { bytes };
                            (m.clone(), Item::Weighted(ll, w))
                        })
                        .collect();
                    Sample {
                        doc_id: i,
                        doc: task.docs[i].clone(),
                        target: json!(text),
                        arguments: json!([[text]]),
                        resps: json!([[ll]]),
                        filtered: vec![("none".into(), json!([ll]), items)],
                    }
                })
                .collect()
        }
        OutputType::GenerateUntil => generate_samples(task, lm, &contexts, &mut on_progress)?,
    };
    let metrics = aggregate(&samples, config);
    Ok(TaskResult {
        task: task.name.clone(),
        num_fewshot: shots,
        original: task.docs.len(),
        samples,
        metrics,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A multiple-choice document scored from its choices' log-likelihoods, as
/// lm-evaluation-harness's `process_results` scores it.
fn multiple_choice_sample(
    task: &Task,
    i: usize,
    doc: &Value,
    requests: &[(String, String)],
    results: &[(f64, bool)],
) -> Result<Sample> {
    let choices = task.choices(doc)?;
    let gold = task.gold(doc)?;
    let lls: Vec<f64> = results.iter().map(|r| r.0).collect();
    let chars: Vec<f64> = choices.iter().map(|c| c.chars().count() as f64).collect();
    let bytes: Vec<f64> = choices.iter().map(|c| c.len() as f64).collect();
    let pick =
        |scale: &dyn Fn(usize) -> f64| first_max(lls.iter().enumerate().map(|(j, l)| l / scale(j)));
    let hit = |p: usize| if Some(p) == gold { 1.0 } else { 0.0 };
    let items = task
        .metrics
        .iter()
        .map(|m| {
            let v = match m.as_str() {
                "acc" => hit(pick(&|_| 1.0)),
                "acc_norm" => hit(pick(&|j| chars[j])),
                "acc_bytes" => hit(pick(&|j| bytes[j])),
                _ => gold.map_or(0.0, |g| if results[g].1 { 1.0 } else { 0.0 }),
            };
            (m.clone(), Item::Score(v))
        })
        .collect();
    let pairs = |r: &(f64, bool)| json!([r.0.to_string(), r.1.to_string()]);
    Ok(Sample {
        doc_id: i,
        doc: doc.clone(),
        target: task.target(doc)?,
        arguments: json!(requests),
        resps: json!(results
            .iter()
            .map(|r| json!([pairs(r)]))
            .collect::<Vec<_>>()),
        filtered: vec![(
            "none".into(),
            json!(results.iter().map(pairs).collect::<Vec<_>>()),
            items,
        )],
    })
}

/// The index of the first largest value (numpy's argmax).
fn first_max(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// Words as lm-evaluation-harness counts them: `len(re.split(r"\s+", text))`.
pub fn regex_split_count(text: &str) -> usize {
    let mut count = 1;
    let mut in_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if !in_space {
                count += 1;
            }
            in_space = true;
        } else {
            in_space = false;
        }
    }
    count
}

/// Each (metric, filter): its aggregate and standard error.
fn aggregate(samples: &[Sample], config: &RunConfig) -> Vec<(String, String, f64, Option<f64>)> {
    let mut out = Vec::new();
    let Some(first) = samples.first() else {
        return out;
    };
    for (f, (filter, _, items)) in first.filtered.iter().enumerate() {
        for (m, (metric, _)) in items.iter().enumerate() {
            let values: Vec<Item> = samples.iter().map(|s| s.filtered[f].2[m].1).collect();
            let (value, stderr) = aggregate_metric(metric, &values, config);
            out.push((metric.clone(), filter.clone(), value, stderr));
        }
    }
    out
}

/// A generate_until task's samples: greedy continuations of `contexts`, filtered, scored
/// against the target (any entry of a list target).
fn generate_samples(
    task: &Task,
    lm: &mut dyn LanguageModel,
    contexts: &[String],
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Sample>> {
    let n = contexts.len();
    let requests: Vec<(String, Vec<String>, usize)> = contexts
        .iter()
        .map(|c| (c.clone(), task.until.clone(), task.max_gen_toks))
        .collect();
    let generations = lm.generate_until(&requests, on_progress)?;
    let mut samples = Vec::with_capacity(n);
    for (i, (generation, context)) in generations.iter().zip(contexts).enumerate() {
        let text = &generation.text;
        let doc = &task.docs[i];
        // A list target: any of its entries counts, as lm-evaluation-harness scores
        // multiple targets.
        let golds: Vec<String> = match task.target(doc)? {
            Value::Array(a) => a.iter().map(task::as_text).collect(),
            v => vec![task::as_text(&v)],
        };
        let gold = match golds.as_slice() {
            [one] => json!(one),
            _ => json!(golds),
        };
        let filtered = task
            .filters
            .iter()
            .map(|f| {
                let out = f.apply(text);
                if let Some(judge) = task.judge {
                    return (f.name.clone(), json!(out), judge(doc, generation));
                }
                let items = task
                    .metrics
                    .iter()
                    .map(|m| {
                        let hit = if m == "contains_answer" {
                            task::contains_answer(&out, &golds)
                        } else {
                            golds.iter().any(|g| task.matching.matches(&out, g))
                        };
                        (m.clone(), Item::Score(if hit { 1.0 } else { 0.0 }))
                    })
                    .collect();
                (f.name.clone(), json!(out), items)
            })
            .collect();
        samples.push(Sample {
            doc_id: i,
            doc: doc.clone(),
            target: gold,
            arguments: json!([[context, {"until": task.until, "max_gen_toks": task.max_gen_toks}]]),
            resps: json!([[text]]),
            filtered,
        });
    }
    Ok(samples)
}

/// One metric's aggregate over documents, as lm-evaluation-harness aggregates it, with its
/// standard error: the closed form for means, a seeded bootstrap for perplexities.
pub fn aggregate_metric(metric: &str, items: &[Item], config: &RunConfig) -> (f64, Option<f64>) {
    let agg = |items: &[Item]| -> f64 {
        match metric {
            "perplexity" => {
                let s: Vec<f64> = items.iter().map(item_score).collect();
                (-mean(&s)).exp()
            }
            "word_perplexity" | "byte_perplexity" => (-weighted_mean(items)).exp(),
            "bits_per_byte" => -weighted_mean(items) / std::f64::consts::LN_2,
            _ => mean(&items.iter().map(item_score).collect::<Vec<_>>()),
        }
    };
    let value = agg(items);
    let bootstrapped = matches!(
        metric,
        "perplexity" | "word_perplexity" | "byte_perplexity" | "bits_per_byte"
    );
    let stderr = if items.len() < 2 {
        None
    } else if bootstrapped {
        let iters = config.bootstrap_iters.max(1);
        let mut rng = Rng::new(config.seed);
        let mut draws = Vec::with_capacity(iters);
        let mut resample = vec![Item::Score(0.0); items.len()];
        for _ in 0..iters {
            for r in resample.iter_mut() {
                *r = items[(rng.next_u64() % items.len() as u64) as usize];
            }
            draws.push(agg(&resample));
        }
        Some(sample_stddev(&draws) * ((draws.len() - 1) as f64 / draws.len() as f64).sqrt())
    } else {
        let s: Vec<f64> = items.iter().map(item_score).collect();
        Some(sample_stddev(&s) / (s.len() as f64).sqrt())
    };
    (value, stderr)
}

fn item_score(i: &Item) -> f64 {
    match *i {
        Item::Score(v) => v,
        Item::Weighted(a, _) => a,
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn weighted_mean(items: &[Item]) -> f64 {
    let (mut a, mut b) = (0.0, 0.0);
    for i in items {
        if let Item::Weighted(x, w) = *i {
            a += x;
            b += w;
        }
    }
    a / b
}

/// The sample standard deviation (n − 1 in the denominator).
fn sample_stddev(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() as f64 - 1.0)).sqrt()
}

/// The results JSON of lm-evaluation-harness (`results`, `groups`, `group_subtasks`,
/// `configs`, `versions`, `n-shot`, `n-samples`, `higher_is_better`, `config`) for `results`
/// of `tasks`, with `groups`' aggregated scores after the tasks'.
pub fn results_json(
    tasks: &[&Task],
    groups: &[Group],
    results: &[TaskResult],
    model: &str,
    config: &RunConfig,
) -> Value {
    let mut res = Map::new();
    let mut configs = Map::new();
    let mut versions = Map::new();
    let mut nshot = Map::new();
    let mut nsamples = Map::new();
    let mut better = Map::new();
    let higher = |metric: &str| !metric.contains("perplexity") && metric != "bits_per_byte";
    for (task, r) in tasks.iter().zip(results) {
        let mut m = Map::new();
        m.insert("alias".into(), json!(task.alias));
        let mut hib = Map::new();
        for (metric, filter, value, stderr) in &r.metrics {
            m.insert(format!("{metric},{filter}"), json!(value));
            m.insert(
                format!("{metric}_stderr,{filter}"),
                stderr.map_or(json!("N/A"), |s| json!(s)),
            );
            hib.insert(metric.clone(), json!(higher(metric)));
        }
        res.insert(r.task.clone(), Value::Object(m));
        configs.insert(r.task.clone(), task.config.clone());
        versions.insert(r.task.clone(), task.version.clone());
        nshot.insert(r.task.clone(), json!(r.num_fewshot));
        nsamples.insert(
            r.task.clone(),
            json!({"original": r.original, "effective": r.samples.len()}),
        );
        better.insert(r.task.clone(), Value::Object(hib));
    }
    let mut aggregated = Map::new();
    let mut subtasks = Map::new();
    for g in groups {
        let mut m = Map::new();
        m.insert("alias".into(), json!(g.alias));
        let scores = g.scores(groups, results);
        let mut hib = Map::new();
        for (metric, filter, value, stderr, _) in &scores {
            m.insert(format!("{metric},{filter}"), json!(value));
            m.insert(
                format!("{metric}_stderr,{filter}"),
                stderr.map_or(json!("N/A"), |s| json!(s)),
            );
            hib.insert(metric.clone(), json!(higher(metric)));
        }
        if !scores.is_empty() {
            m.insert("sample_len".into(), json!(scores.iter().map(|s| s.4).max()));
            aggregated.insert(g.name.clone(), Value::Object(m.clone()));
        }
        res.insert(g.name.clone(), Value::Object(m));
        subtasks.insert(g.name.clone(), json!(g.children));
        versions.insert(g.name.clone(), g.version.clone());
        let shots: Vec<usize> = g
            .leaves(groups)
            .iter()
            .filter_map(|l| results.iter().find(|r| r.task == *l))
            .map(|r| r.num_fewshot)
            .collect();
        if shots.windows(2).all(|w| w[0] == w[1]) {
            if let Some(k) = shots.first() {
                nshot.insert(g.name.clone(), json!(k));
            }
        }
        better.insert(g.name.clone(), Value::Object(hib));
    }
    for r in results {
        if !groups.iter().any(|g| g.children.contains(&r.task)) {
            subtasks.insert(r.task.clone(), json!([]));
        }
    }
    let mut out = json!({
        "results": res,
        "group_subtasks": subtasks,
        "configs": configs,
        "versions": versions,
        "n-shot": nshot,
        "higher_is_better": better,
        "n-samples": nsamples,
        "config": {
            "model": "fmlab",
            "model_args": model,
            "limit": config.limit,
            "num_fewshot": config.num_fewshot,
            "random_seed": config.seed,
            "bootstrap_iters": config.bootstrap_iters,
        },
        "total_evaluation_time_seconds": results.iter().map(|r| r.seconds).sum::<f64>().to_string(),
    });
    if !aggregated.is_empty() {
        out["groups"] = Value::Object(aggregated);
    }
    out
}

/// A task's samples as lm-evaluation-harness's samples JSONL lines.
pub fn sample_lines(r: &TaskResult) -> Vec<Value> {
    r.samples
        .iter()
        .flat_map(|s| {
            s.filtered.iter().map(move |(filter, filtered, items)| {
                let mut m = Map::new();
                m.insert("doc_id".into(), json!(s.doc_id));
                m.insert("doc".into(), s.doc.clone());
                m.insert("target".into(), s.target.clone());
                m.insert("arguments".into(), s.arguments.clone());
                m.insert("resps".into(), s.resps.clone());
                m.insert("filtered_resps".into(), filtered.clone());
                m.insert("filter".into(), json!(filter));
                for (metric, item) in items {
                    m.insert(
                        metric.clone(),
                        match *item {
                            Item::Score(v) => json!(v),
                            Item::Weighted(a, b) => json!([a, b]),
                        },
                    );
                }
                Value::Object(m)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RunConfig {
        RunConfig {
            bootstrap_iters: 200,
            seed: 1,
            ..RunConfig::default()
        }
    }

    /// Means and their standard errors by hand: [1, 0, 1, 1] → 0.75, s = 0.5, se = 0.25.
    #[test]
    fn accuracy_and_its_standard_error() {
        let items: Vec<Item> = [1.0, 0.0, 1.0, 1.0].map(Item::Score).to_vec();
        let (v, se) = aggregate_metric("acc", &items, &cfg());
        assert_eq!(v, 0.75);
        assert!((se.unwrap_or(0.0) - 0.25).abs() < 1e-12);
        assert_eq!(aggregate_metric("acc", &items[..1], &cfg()).1, None);
    }

    /// Weighted perplexities by hand: log-likelihoods −4 and −2 over 2 and 1 words (or
    /// bytes): exp(6/3) = e², bits per byte 2 / ln 2; per-document perplexity exp(3).
    #[test]
    fn perplexities_by_hand() {
        let items = vec![Item::Weighted(-4.0, 2.0), Item::Weighted(-2.0, 1.0)];
        let (wp, se) = aggregate_metric("word_perplexity", &items, &cfg());
        assert!((wp - 2f64.exp()).abs() < 1e-12);
        assert!(se.is_some_and(|s| s.is_finite()));
        let (bpb, _) = aggregate_metric("bits_per_byte", &items, &cfg());
        assert!((bpb - 2.0 / std::f64::consts::LN_2).abs() < 1e-12);
        let (p, _) = aggregate_metric(
            "perplexity",
            &[Item::Score(-4.0), Item::Score(-2.0)],
            &cfg(),
        );
        assert!((p - 3f64.exp()).abs() < 1e-12);
    }

    #[test]
    fn words_and_argmax_as_lm_evaluation_harness_counts() {
        assert_eq!(regex_split_count("a b  c"), 3);
        assert_eq!(regex_split_count(" a"), 2); // re.split gives ['', 'a']
        assert_eq!(first_max([1.0, 3.0, 3.0].into_iter()), 1);
    }
}
