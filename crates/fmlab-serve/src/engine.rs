//! The engine: one thread owns the model and advances every active sequence together —
//! continuous batching. Between two steps, finished and cancelled sequences leave and queued
//! requests join; each step is one batched forward pass
//! ([`fmlab_nn::Transformer::forward_batch`]) over the next token of every decoding
//! sequence and the next chunk of every prompt still being read, so a long prompt does not
//! stall the streams already running. Each sequence keeps its own KV cache (at most the
//! server's context) and its own sampler, grammar and stop conditions, advanced by
//! [`fmlab_sample::Decoding`], the same state machine `fmlab generate` runs; so a request
//! gets the tokens it would get alone.
//!
//! Why our own scheduler rather than a serving framework: the engine is fmlab's own
//! (kernels, KV cache, sampler), and what batching may and may not change in the arithmetic
//! is ours to guarantee (see `forward_batch`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fmlab_nn::{KvCache, Logits, Segment, Transformer};
use fmlab_sample::{
    Constraint, Decoding, Generation, Grammar, GrammarSpec, Next, Sampled, Sampler, SamplerConfig,
    StopConditions, TokenLogprob, Vocabulary,
};
use fmlab_tokenizer::Tokenizer;
use fmlab_train::models::generation::{vocabulary, TokenText};
use tokio::sync::mpsc::UnboundedSender;

use crate::metrics::Metrics;

/// How the engine schedules.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Sequences decoded together (a request with `n` choices takes `n`).
    pub parallel: usize,
    /// Tokens of context per sequence.
    pub context: usize,
    /// Prompt tokens a sequence feeds per step while it reads its prompt.
    pub prefill_chunk: usize,
    /// Requests waiting for a slot before new ones are refused.
    pub max_queue: usize,
    /// Threads for the model's kernels (default: one per core).
    pub threads: Option<usize>,
}

/// One request: a prompt and how to continue it, `n` times.
pub struct Job {
    /// The index of this job's first choice in its request's events (a request of several
    /// prompts shares one event channel: prompt p's choices are p·n … p·n + n − 1).
    pub first_choice: usize,
    pub prompt: Vec<u32>,
    pub config: SamplerConfig,
    /// Choices: each its own sequence after one shared prefill, choice `i` drawing from
    /// the seed's stream `i`.
    pub n: usize,
    pub stop: StopConditions,
    /// Log-probabilities of each generated token with this many alternatives.
    pub logprobs: Option<usize>,
    pub grammar: Option<GrammarSpec>,
    /// Log-probabilities of the prompt's own tokens with this many alternatives (`echo`).
    pub prompt_logprobs: Option<usize>,
    pub events: UnboundedSender<Event>,
}

/// What a request's handler hears from the engine.
#[derive(Debug)]
pub enum Event {
    /// The prompt's tokens' log-probabilities (first token: none), when asked for, for the
    /// job whose first choice is `first_choice`.
    Prompt {
        first_choice: usize,
        tokens: Vec<PromptToken>,
    },
    /// A new token of choice `choice`, with the bytes now safe to show.
    Token {
        choice: usize,
        step: Sampled,
        bytes: Vec<u8>,
    },
    /// Text of choice `choice` held back for a stop string that never came.
    Text { choice: usize, bytes: Vec<u8> },
    /// Choice `choice` ended.
    Done {
        choice: usize,
        generation: Box<Generation>,
    },
    /// The request failed (the message is for the client).
    Failed(String),
    /// The request cannot be run as asked: its grammar or sampler settings were refused
    /// when its sequence was set up (a 400, not the server's failure).
    Invalid(String),
}

/// A prompt token's log-probability and the most likely alternatives at its position.
#[derive(Debug, Clone)]
pub struct PromptToken {
    pub logprob: Option<f32>,
    pub top: Vec<TokenLogprob>,
}

/// The handlers' side of the engine.
#[derive(Clone)]
pub struct EngineHandle {
    jobs: SyncSender<Job>,
    /// Jobs submitted and not yet started (in the channel or waiting for slots).
    queued: Arc<AtomicUsize>,
    max_queue: usize,
}

/// Why a job was not taken.
pub enum Refused {
    /// The queue is full (429).
    QueueFull,
    /// The engine has stopped.
    Stopped,
}

impl EngineHandle {
    /// Queues a job, or refuses it at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Refused> {
        // Counted before it is sent, so that the engine never takes one off the count first.
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.max_queue {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(Refused::QueueFull);
        }
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                match e {
                    TrySendError::Full(_) => Err(Refused::QueueFull),
                    TrySendError::Disconnected(_) => Err(Refused::Stopped),
                }
            }
        }
    }

    /// Requests waiting for a slot.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }
}

/// Starts the engine thread over `model`.
pub fn start(
    model: Arc<Transformer>,
    tokenizer: Arc<Tokenizer>,
    config: EngineConfig,
    metrics: Arc<Mutex<Metrics>>,
) -> std::io::Result<EngineHandle> {
    let config_max_queue = config.max_queue.max(1);
    // Room for every job the handle lets through, so that sending never blocks.
    let (jobs, rx) = std::sync::mpsc::sync_channel(config_max_queue + 1);
    let queued = Arc::new(AtomicUsize::new(0));
    let engine = Engine {
        model,
        tokenizer,
        config,
        metrics,
        queued: queued.clone(),
        vocabulary: None,
        active: Vec::new(),
        waiting: VecDeque::new(),
        logits: Vec::new(),
    };
    let mut pool = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("fmlab-kernel-{i}"));
    if let Some(n) = engine.config.threads {
        pool = pool.num_threads(n);
    }
    let pool = pool.build().map_err(std::io::Error::other)?;
    // The engine runs on one of the pool's threads, so that a kernel's parallel loop
    // starts without waking a thread to hand it work.
    std::thread::Builder::new()
        .name("fmlab-engine".into())
        .spawn(move || pool.install(move || engine.run(rx)))?;
    Ok(EngineHandle {
        jobs,
        queued,
        max_queue: config_max_queue,
    })
}

/// One choice of one job, being read or decoded.
struct Sequence {
    choice: usize,
    events: UnboundedSender<Event>,
    cache: KvCache,
    /// Prompt tokens not yet fed.
    pending: Vec<u32>,
    /// Tokens to feed next (after the prompt).
    feed: Vec<u32>,
    /// Logits already at hand (after an echo's prefill, or a leader's for its followers).
    ready: Option<Vec<f32>>,
    decoding: Decoding,
    sampler: Sampler,
    grammar: Option<Grammar>,
    /// Choices still to start from this one's prompt once it is read (n − 1 for a leader).
    followers: usize,
    /// The job's settings, for the followers.
    template: Option<Arc<JobTemplate>>,
    started: Instant,
    prefill_time: Duration,
    last_token: Option<Instant>,
}

/// What a leader's followers are made from.
struct JobTemplate {
    prompt: Vec<u32>,
    config: SamplerConfig,
    stop: StopConditions,
    logprobs: Option<usize>,
    grammar: Option<GrammarSpec>,
}

struct Engine {
    model: Arc<Transformer>,
    tokenizer: Arc<Tokenizer>,
    config: EngineConfig,
    metrics: Arc<Mutex<Metrics>>,
    queued: Arc<AtomicUsize>,
    /// Built on the first request with a grammar (the token trie takes a moment).
    vocabulary: Option<Vocabulary>,
    active: Vec<Sequence>,
    /// Jobs taken off the queue that wait for enough free slots.
    waiting: VecDeque<Job>,
    /// The last step's logits, one row per sequence fed, kept from step to step so that
    /// the forward pass writes them in place (`Transformer::forward_batch_into`).
    logits: Vec<f32>,
}

impl Engine {
    fn run(mut self, rx: Receiver<Job>) {
        loop {
            self.drop_cancelled();
            if !self.admit(&rx) {
                return;
            }
            if self.active.is_empty() {
                continue;
            }
            self.step();
            self.publish();
        }
    }

    fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self) {
        let active = self.active.len();
        let queued = self.queued.load(Ordering::SeqCst);
        let mut m = self.metrics();
        m.active_sequences = active;
        m.queued_requests = queued;
    }

    /// Sequences whose client went away leave before the next step.
    fn drop_cancelled(&mut self) {
        let before = self.active.len();
        self.active.retain(|s| !s.events.is_closed());
        let gone = before - self.active.len();
        if gone > 0 {
            self.metrics().cancelled_sequences += gone as u64;
        }
        let before = self.waiting.len();
        self.waiting.retain(|j| !j.events.is_closed());
        self.queued
            .fetch_sub(before - self.waiting.len(), Ordering::SeqCst);
    }

    /// Takes queued jobs while slots are free; blocks while nothing is active. False when
    /// the server has gone.
    fn admit(&mut self, rx: &Receiver<Job>) -> bool {
        loop {
            if self.waiting.is_empty() {
                let job = if self.active.is_empty() {
                    match rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout) => {
                            self.publish();
                            return true;
                        }
                        Err(RecvTimeoutError::Disconnected) => return false,
                    }
                } else {
                    match rx.try_recv() {
                        Ok(job) => job,
                        Err(_) => return true,
                    }
                };
                self.waiting.push_back(job);
            }
            let Some(job) = self.waiting.front() else {
                return true;
            };
            let free = self.config.parallel.saturating_sub(self.active.len());
            if job.n > free && !self.active.is_empty() {
                return true;
            }
            if let Some(job) = self.waiting.pop_front() {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                if !job.events.is_closed() {
                    self.start(job);
                }
            }
        }
    }

    fn grammar(&mut self, spec: &GrammarSpec) -> Result<Grammar, String> {
        if self.vocabulary.is_none() {
            self.vocabulary = Some(vocabulary(&self.tokenizer).map_err(|e| e.to_string())?);
        }
        match &self.vocabulary {
            Some(v) => v.grammar(spec).map_err(|e| e.to_string()),
            None => Err("no vocabulary".into()),
        }
    }

    fn sampler(
        config: &SamplerConfig,
        choice: usize,
        logprobs: Option<usize>,
    ) -> Result<Sampler, String> {
        let mut s =
            Sampler::for_sequence(config.clone(), choice as u64).map_err(|e| e.to_string())?;
        if let Some(k) = logprobs {
            s = s.with_logprobs(k);
        }
        Ok(s)
    }

    /// Starts a job's first choice (the others follow once its prompt is read).
    fn start(&mut self, job: Job) {
        let started = Instant::now();
        let fail = |events: &UnboundedSender<Event>, message: String| {
            let _ = events.send(Event::Invalid(message));
        };
        let sampler = match Self::sampler(&job.config, 0, job.logprobs) {
            Ok(s) => s,
            Err(e) => return fail(&job.events, e),
        };
        let grammar = match &job.grammar {
            Some(spec) => match self.grammar(spec) {
                Ok(g) => Some(g),
                Err(e) => return fail(&job.events, e),
            },
            None => None,
        };
        let decoding = match Decoding::new(&job.prompt, job.stop.clone(), true) {
            Ok(d) => d,
            Err(e) => return fail(&job.events, e.to_string()),
        };
        let mut cache = KvCache::new(&self.model.spec, self.config.context);
        let mut ready = None;
        let mut pending = job.prompt.clone();
        if let Some(top) = job.prompt_logprobs {
            match self.score_prompt(&job.prompt, top, &mut cache) {
                Ok((tokens, last)) => {
                    let _ = job.events.send(Event::Prompt {
                        first_choice: job.first_choice,
                        tokens,
                    });
                    ready = Some(last);
                    pending.clear();
                }
                Err(e) => {
                    let _ = job.events.send(Event::Failed(e));
                    return;
                }
            }
        }
        {
            let mut m = self.metrics();
            m.prompt_tokens += job.prompt.len() as u64;
        }
        let template = (job.n > 1).then(|| {
            Arc::new(JobTemplate {
                prompt: job.prompt.clone(),
                config: job.config.clone(),
                stop: job.stop.clone(),
                logprobs: job.logprobs,
                grammar: job.grammar.clone(),
            })
        });
        self.active.push(Sequence {
            choice: job.first_choice,
            events: job.events,
            cache,
            pending,
            feed: Vec::new(),
            ready,
            decoding,
            sampler,
            grammar,
            followers: job.n.saturating_sub(1),
            template,
            started,
            prefill_time: Duration::ZERO,
            last_token: None,
        });
    }

    /// Reads `prompt` into `cache` in chunks, keeping every position's logits long enough
    /// to take each next prompt token's log-probability and the `top` best alternatives.
    /// Returns those and the logits after the last token.
    fn score_prompt(
        &self,
        prompt: &[u32],
        top: usize,
        cache: &mut KvCache,
    ) -> Result<(Vec<PromptToken>, Vec<f32>), String> {
        let vocab = self.model.spec.vocab_size as usize;
        let mut out = vec![PromptToken {
            logprob: None,
            top: Vec::new(),
        }];
        let mut last = Vec::new();
        let mut at = 0;
        for chunk in prompt.chunks(self.config.prefill_chunk.max(1)) {
            let logits = self
                .model
                .forward(chunk, cache, Logits::All)
                .map_err(|e| e.to_string())?;
            for (i, row) in logits.chunks_exact(vocab).enumerate() {
                let position = at + i;
                if let Some(&next) = prompt.get(position + 1) {
                    out.push(prompt_token(row, next, top));
                }
            }
            at += chunk.len();
            if let Some(row) = logits.chunks_exact(vocab).last() {
                last = row.to_vec();
            }
        }
        Ok((out, last))
    }

    /// One step: a batched forward pass over every sequence that needs one, then one
    /// decision per sequence with logits.
    fn step(&mut self) {
        // What each sequence feeds this step (prompt chunks, or its next tokens).
        let chunk = self.config.prefill_chunk.max(1);
        let inputs: Vec<Vec<u32>> = self
            .active
            .iter_mut()
            .map(|s| {
                if s.ready.is_some() {
                    Vec::new()
                } else if !s.pending.is_empty() {
                    let n = chunk.min(s.pending.len());
                    s.pending.drain(..n).collect()
                } else {
                    std::mem::take(&mut s.feed)
                }
            })
            .collect();
        let results = match self.forward(&inputs) {
            Ok(r) => r,
            Err(message) => {
                // Every sequence of the failed pass ends with the error.
                let mut i = 0;
                self.active.retain(|s| {
                    let fed = !inputs[i].is_empty();
                    i += 1;
                    if fed {
                        let _ = s.events.send(Event::Failed(message.clone()));
                    }
                    !fed
                });
                return;
            }
        };
        let mut spawned: Vec<Sequence> = Vec::new();
        let mut ended: Vec<(usize, Result<fmlab_sample::StopReason, String>)> = Vec::new();
        let rows = std::mem::take(&mut self.logits);
        let vocab = rows.len() / results.iter().flatten().count().max(1);
        for (i, row) in results.into_iter().enumerate() {
            let s = &mut self.active[i];
            let ready = s.ready.take();
            let logits: &[f32] = match (&ready, row) {
                (Some(l), _) => l,
                (None, Some(r)) => &rows[r * vocab..(r + 1) * vocab],
                (None, None) => continue,
            };
            if !s.pending.is_empty() {
                continue; // Still reading the prompt.
            }
            if s.decoding.generated() == 0 && s.prefill_time.is_zero() {
                s.prefill_time = s.started.elapsed();
            }
            if s.followers > 0 {
                spawned.extend(self.followers(i, logits));
            }
            let s = &mut self.active[i];
            let detok = TokenText(&self.tokenizer);
            let mut report = TokenReport::default();
            let next = {
                let mut on_token = token_sink(
                    s.choice,
                    &s.events,
                    &mut s.last_token,
                    s.started,
                    &mut report,
                );
                s.decoding.step(
                    logits,
                    s.cache.len(),
                    s.cache.capacity(),
                    &mut s.sampler,
                    Some(&detok),
                    s.grammar.as_mut().map(|g| g as &mut dyn Constraint),
                    &mut on_token,
                )
            };
            self.record(&report);
            match next {
                Ok(Next::Feed(tokens)) => self.active[i].feed = tokens,
                Ok(Next::Done(reason)) => ended.push((i, Ok(reason))),
                Err(e) => ended.push((i, Err(e.to_string()))),
            }
        }
        self.logits = rows;
        // Finished sequences leave (from the back, so that indices stay valid).
        for (i, outcome) in ended.into_iter().rev() {
            let s = self.active.swap_remove(i);
            match outcome {
                // The client went away while a token was sent.
                Ok(fmlab_sample::StopReason::Cancelled) => self.metrics().cancelled_sequences += 1,
                Ok(reason) => Self::finish(s, reason),
                Err(message) => {
                    let _ = s.events.send(Event::Failed(message));
                }
            }
        }
        self.active.append(&mut spawned);
    }

    /// The batched forward pass over `inputs` (one entry per active sequence; empty: no
    /// forward for it): for each non-empty input, the row of `self.logits` that holds the
    /// logits after it.
    fn forward(&mut self, inputs: &[Vec<u32>]) -> Result<Vec<Option<usize>>, String> {
        let fed: usize = inputs.iter().map(Vec::len).sum();
        if fed == 0 {
            return Ok(vec![None; inputs.len()]);
        }
        let mut segments: Vec<Segment<'_>> = Vec::new();
        for (s, tokens) in self.active.iter_mut().zip(inputs) {
            if !tokens.is_empty() {
                segments.push(Segment {
                    tokens,
                    cache: &mut s.cache,
                });
            }
        }
        let started = Instant::now();
        self.model
            .forward_batch_into(&mut segments, &mut self.logits)
            .map_err(|e| format!("the forward pass failed: {e}"))?;
        drop(segments);
        let mut row = 0;
        let out = inputs
            .iter()
            .map(|t| {
                (!t.is_empty()).then(|| {
                    row += 1;
                    row - 1
                })
            })
            .collect();
        let mut m = self.metrics();
        m.steps += 1;
        m.step_rows += fed as u64;
        m.step_seconds += started.elapsed().as_secs_f64();
        Ok(out)
    }

    /// The other choices of the leader at `i`, started from its context and logits.
    fn followers(&mut self, i: usize, logits: &[f32]) -> Vec<Sequence> {
        let count = std::mem::take(&mut self.active[i].followers);
        let Some(t) = self.active[i].template.clone() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(count);
        for choice in 1..=count {
            let leader = &self.active[i];
            let events = leader.events.clone();
            let grammar = match &t.grammar {
                Some(spec) => match self.grammar(spec) {
                    Ok(g) => Some(g),
                    Err(e) => {
                        let _ = events.send(Event::Invalid(e));
                        continue;
                    }
                },
                None => None,
            };
            let built = Self::sampler(&t.config, choice, t.logprobs).and_then(|sampler| {
                // (choice counts within the job: stream `choice` of the seed)
                Decoding::new(&t.prompt, t.stop.clone(), true)
                    .map(|d| (sampler, d))
                    .map_err(|e| e.to_string())
            });
            let (sampler, decoding) = match built {
                Ok(x) => x,
                Err(e) => {
                    let _ = events.send(Event::Invalid(e));
                    continue;
                }
            };
            let leader = &self.active[i];
            out.push(Sequence {
                choice: leader.choice + choice,
                events,
                cache: leader.cache.clone(),
                pending: Vec::new(),
                feed: Vec::new(),
                ready: Some(logits.to_vec()),
                decoding,
                sampler,
                grammar,
                followers: 0,
                template: None,
                started: leader.started,
                prefill_time: leader.prefill_time,
                last_token: None,
            });
        }
        out
    }

    /// Ends a sequence: the text it held back for a stop string that never came, then the
    /// generation.
    fn finish(s: Sequence, reason: fmlab_sample::StopReason) {
        let (events, choice) = (s.events, s.choice);
        let mut on_text = |_: &Sampled, bytes: &[u8]| {
            events
                .send(Event::Text {
                    choice,
                    bytes: bytes.to_vec(),
                })
                .is_ok()
        };
        let generation = s.decoding.finish(reason, s.prefill_time, &mut on_text);
        let _ = events.send(Event::Done {
            choice,
            generation: Box::new(generation),
        });
    }

    fn record(&self, r: &TokenReport) {
        let mut m = self.metrics();
        if let Some(t) = r.first_token {
            m.time_to_first_token.observe(t.as_secs_f64());
        }
        for l in &r.latencies {
            m.time_per_token.observe(l.as_secs_f64());
        }
        m.generated_tokens += r.tokens;
    }
}

/// What one step's tokens mean for the latency metrics.
#[derive(Default)]
struct TokenReport {
    first_token: Option<Duration>,
    latencies: Vec<Duration>,
    tokens: u64,
}

/// The callback that sends a sequence's tokens to its client (false once the client is
/// gone, which ends the sequence) and times them.
fn token_sink<'a>(
    choice: usize,
    events: &'a UnboundedSender<Event>,
    last_token: &'a mut Option<Instant>,
    started: Instant,
    report: &'a mut TokenReport,
) -> impl FnMut(&Sampled, &[u8]) -> bool + 'a {
    move |step: &Sampled, bytes: &[u8]| {
        let now = Instant::now();
        match *last_token {
            None => report.first_token = Some(now.duration_since(started)),
            Some(t) => report.latencies.push(now.duration_since(t)),
        }
        *last_token = Some(now);
        report.tokens += 1;
        events
            .send(Event::Token {
                choice,
                step: step.clone(),
                bytes: bytes.to_vec(),
            })
            .is_ok()
    }
}

/// The log-probability of `next` under `logits` and the `top` most likely tokens.
pub fn prompt_token(logits: &[f32], next: u32, top: usize) -> PromptToken {
    let lse = fmlab_sample::log_sum_exp(logits);
    let logprob = logits.get(next as usize).map(|&l| l - lse);
    PromptToken {
        logprob,
        top: top_logprobs(logits, lse, top),
    }
}

/// The `k` most likely tokens of `logits` (log-sum-exp `lse`), most likely first (the
/// lower id first on ties).
pub fn top_logprobs(logits: &[f32], lse: f32, k: usize) -> Vec<TokenLogprob> {
    if k == 0 {
        return Vec::new();
    }
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (id, &l) in logits.iter().enumerate() {
        if best.len() == k && l <= best[k - 1].1 {
            continue;
        }
        let at = best.partition_point(|&(_, b)| b >= l);
        best.insert(at, (id as u32, l));
        best.truncate(k);
    }
    best.into_iter()
        .map(|(id, l)| TokenLogprob {
            id,
            logprob: l - lse,
        })
        .collect()
}
