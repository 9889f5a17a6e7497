//! The generation loop: prefill, then sample and feed one token at a time until a stop
//! condition holds; n samples of one prompt; stop strings through a detokenizer.

use std::time::{Duration, Instant};

use crate::sampler::{Sampled, Sampler, TokenMask};
use crate::{Error, LanguageModel, Result, SamplerConfig};

/// Turns a token into the bytes it stands for. Stop strings are matched on these bytes;
/// this crate never interprets them, so text stays on the caller's side.
pub trait Detokenizer {
    fn token_bytes(&self, id: u32) -> Vec<u8>;
}

/// A grammar that constrains generation (see [`crate::constrain`]).
pub trait Constraint {
    /// Tokens the grammar forces next (only one continuation is possible); empty when the
    /// model has a choice.
    fn forced(&mut self) -> Result<Vec<u32>>;
    /// The tokens allowed next.
    fn mask(&mut self) -> Result<Box<dyn TokenMask + '_>>;
    /// Records a chosen (or forced) token.
    fn accept(&mut self, token: u32) -> Result<()>;
    /// The grammar is complete and allows nothing more.
    fn is_finished(&mut self) -> bool;
}

/// When generation ends.
#[derive(Debug, Clone, Default)]
pub struct StopConditions {
    pub max_new_tokens: usize,
    /// Stop tokens are suppressed until this many tokens were generated.
    pub min_new_tokens: usize,
    /// Tokens that end generation (end-of-generation tokens and any given); not emitted.
    pub stop_tokens: Vec<u32>,
    /// Byte strings that end generation (matched across token boundaries through a
    /// [`Detokenizer`]); the output stops before them.
    pub stop_sequences: Vec<Vec<u8>>,
    /// Keep going past stop tokens (benchmarks).
    pub ignore_stop_tokens: bool,
}

/// Why a generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The token limit.
    Length,
    /// A stop token (not part of the output).
    StopToken(u32),
    /// Stop sequence `i` appeared (cut from the output).
    StopSequence(usize),
    /// The constraint's grammar is complete.
    Grammar,
    /// The context is full.
    ContextFull,
    /// The caller's callback asked to stop.
    Cancelled,
}

impl StopReason {
    /// OpenAI's `finish_reason`.
    pub fn finish_reason(&self) -> &'static str {
        match self {
            StopReason::Length | StopReason::ContextFull => "length",
            _ => "stop",
        }
    }
}

/// What a generation produced and how fast.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The generated tokens (forced ones included, stop token excluded).
    pub tokens: Vec<u32>,
    /// Per generated token: what the sampler reported (forced tokens carry their raw
    /// log-probability when logprobs were asked for, and 0 for the processed one).
    pub steps: Vec<Sampled>,
    /// The output's bytes, cut before a stop sequence (with a detokenizer).
    pub bytes: Vec<u8>,
    pub prompt_tokens: usize,
    pub stop: StopReason,
    /// Tokens a grammar forced (fed without a sampling step).
    pub forced_tokens: usize,
    pub prefill_time: Duration,
    pub decode_time: Duration,
}

impl Generation {
    pub fn prefill_tokens_per_second(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill_time.as_secs_f64().max(1e-9)
    }

    /// Decode speed: every generated token after the first costs one forward pass.
    pub fn decode_tokens_per_second(&self) -> f64 {
        let steps = self.tokens.len().saturating_sub(1);
        if steps == 0 {
            return 0.0;
        }
        steps as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }

    /// Mean raw log-probability per generated token (when logprobs were computed).
    pub fn mean_logprob(&self) -> Option<f64> {
        let lps: Option<Vec<f32>> = self.steps.iter().map(|s| s.logprob).collect();
        let lps = lps?;
        if lps.is_empty() {
            return None;
        }
        Some(lps.iter().map(|&l| l as f64).sum::<f64>() / lps.len() as f64)
    }

    /// Whether a stop token or sequence ended it (rather than a limit).
    pub fn stopped(&self) -> bool {
        matches!(
            self.stop,
            StopReason::StopToken(_) | StopReason::StopSequence(_) | StopReason::Grammar
        )
    }
}

/// Finds stop sequences in the growing output and holds back bytes that could still
/// become one, so that a stream never shows a stop string.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<Vec<u8>>,
    bytes: Vec<u8>,
    emitted: usize,
}

impl StopMatcher {
    pub fn new(stops: Vec<Vec<u8>>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            bytes: Vec::new(),
            emitted: 0,
        }
    }

    /// Adds a token's bytes. Returns the bytes now safe to show and, if a stop sequence
    /// completed, its index (the output then ends before it).
    pub fn push(&mut self, piece: &[u8]) -> (Vec<u8>, Option<usize>) {
        let search_from = self
            .emitted
            .saturating_sub(self.stops.iter().map(Vec::len).max().unwrap_or(0));
        self.bytes.extend_from_slice(piece);
        // The earliest stop sequence that now occurs.
        let mut found: Option<(usize, usize)> = None;
        for (i, stop) in self.stops.iter().enumerate() {
            if let Some(at) = find(&self.bytes[search_from..], stop) {
                let at = search_from + at;
                if found.is_none_or(|(best, _)| at < best) {
                    found = Some((at, i));
                }
            }
        }
        if let Some((at, i)) = found {
            self.bytes.truncate(at);
            let out = self.bytes[self.emitted.min(at)..].to_vec();
            self.emitted = at;
            return (out, Some(i));
        }
        // Hold back the longest suffix that is a prefix of some stop sequence.
        let hold = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.bytes, s))
            .max()
            .unwrap_or(0);
        let safe = self.bytes.len() - hold;
        let out = if safe > self.emitted {
            self.bytes[self.emitted..safe].to_vec()
        } else {
            Vec::new()
        };
        self.emitted = self.emitted.max(safe);
        (out, None)
    }

    /// The rest (held-back bytes), when generation ends without a stop sequence.
    pub fn flush(&mut self) -> Vec<u8> {
        let out = self.bytes[self.emitted..].to_vec();
        self.emitted = self.bytes.len();
        out
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The length of the longest proper prefix of `stop` that `bytes` ends with.
fn longest_suffix_prefix(bytes: &[u8], stop: &[u8]) -> usize {
    let max = (stop.len() - 1).min(bytes.len());
    (1..=max)
        .rev()
        .find(|&n| bytes[bytes.len() - n..] == stop[..n])
        .unwrap_or(0)
}

/// Everything one generation needs besides the model and prompt.
pub struct GenerateOptions<'a> {
    pub stop: StopConditions,
    pub detokenizer: Option<&'a dyn Detokenizer>,
    pub constraint: Option<&'a mut dyn Constraint>,
}

impl<'a> GenerateOptions<'a> {
    pub fn new(stop: StopConditions) -> Self {
        Self {
            stop,
            detokenizer: None,
            constraint: None,
        }
    }
}

/// Prefills `prompt` and samples after it; `on_token` sees each new token with the bytes
/// now safe to show (empty without a detokenizer) and returns `false` to stop.
pub fn generate(
    model: &mut dyn LanguageModel,
    prompt: &[u32],
    sampler: &mut Sampler,
    options: GenerateOptions<'_>,
    on_token: &mut dyn FnMut(&Sampled, &[u8]) -> bool,
) -> Result<Generation> {
    let started = Instant::now();
    let logits = prefill(model, prompt)?;
    let prefill_time = started.elapsed();
    continue_after(
        model,
        prompt,
        logits,
        sampler,
        options,
        prefill_time,
        on_token,
    )
}

/// Feeds the prompt into the model's context and returns the logits after it.
pub fn prefill(model: &mut dyn LanguageModel, prompt: &[u32]) -> Result<Vec<f32>> {
    if prompt.is_empty() {
        return Err(Error::EmptyPrompt);
    }
    let context = model.context_length();
    if model.position() + prompt.len() > context {
        return Err(Error::PromptTooLong {
            prompt: model.position() + prompt.len(),
            context,
        });
    }
    model.forward(prompt)
}

/// Generation after a prefilled prompt whose next-token logits are `logits`: a
/// [`Decoding`] driven by one model.
#[allow(clippy::too_many_arguments)]
fn continue_after(
    model: &mut dyn LanguageModel,
    prompt: &[u32],
    mut logits: Vec<f32>,
    sampler: &mut Sampler,
    options: GenerateOptions<'_>,
    prefill_time: Duration,
    on_token: &mut dyn FnMut(&Sampled, &[u8]) -> bool,
) -> Result<Generation> {
    let GenerateOptions {
        stop,
        detokenizer,
        mut constraint,
    } = options;
    let context = model.context_length();
    let mut decoding = Decoding::new(prompt, stop, detokenizer.is_some())?;
    let reason = loop {
        let step = decoding.step(
            &logits,
            model.position(),
            context,
            sampler,
            detokenizer,
            // Reborrowed for this step only (a coercion Option cannot do by itself).
            constraint.as_mut().map(|c| &mut **c as &mut dyn Constraint),
            on_token,
        )?;
        match step {
            Next::Feed(tokens) => logits = model.forward(&tokens)?,
            Next::Done(reason) => break reason,
        }
    };
    Ok(decoding.finish(reason, prefill_time, on_token))
}

/// What a [`Decoding`] needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run these tokens through the model (a sampled one, or those a grammar forced) and
    /// call [`Decoding::step`] with the logits after the last.
    Feed(Vec<u32>),
    /// Generation is over; call [`Decoding::finish`].
    Done(StopReason),
}

/// One generation as a state machine, one model step at a time: the loop of [`generate`]
/// turned inside out so that a scheduler can advance many sequences together (one batched
/// forward pass for all of them) and drop one between steps. Given the same logits, it
/// takes exactly the decisions `generate` takes.
pub struct Decoding {
    out: Output,
    stop: StopConditions,
    prompt_len: usize,
    forced_tokens: usize,
    started: Instant,
}

impl Decoding {
    /// A generation after `prompt`; `detokenizer` says whether one will be passed to
    /// [`Self::step`] (stop strings need one).
    pub fn new(prompt: &[u32], stop: StopConditions, detokenizer: bool) -> Result<Self> {
        if !stop.stop_sequences.is_empty() && !detokenizer {
            return Err(Error::Setting {
                name: "stop",
                message: "stop strings need a detokenizer".into(),
            });
        }
        Ok(Self {
            out: Output {
                history: prompt.to_vec(),
                steps: Vec::new(),
                matcher: StopMatcher::new(stop.stop_sequences.clone()),
            },
            stop,
            prompt_len: prompt.len(),
            forced_tokens: 0,
            started: Instant::now(),
        })
    }

    /// Tokens generated so far.
    pub fn generated(&self) -> usize {
        self.out.steps.len()
    }

    /// Takes one decision on the logits after the last token fed: the tokens a grammar
    /// forces, or one sampled token (each shown to `on_token` with the bytes now safe to
    /// show), then what to feed next or why generation ends. `position` is the number of
    /// tokens in the sequence's context, `context` the most it holds.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        logits: &[f32],
        position: usize,
        context: usize,
        sampler: &mut Sampler,
        detokenizer: Option<&dyn Detokenizer>,
        mut constraint: Option<&mut dyn Constraint>,
        on_token: &mut dyn FnMut(&Sampled, &[u8]) -> bool,
    ) -> Result<Next> {
        let max = self.stop.max_new_tokens;
        if self.out.steps.len() >= max {
            return Ok(Next::Done(StopReason::Length));
        }
        let finished =
            |c: &mut Option<&mut dyn Constraint>| c.as_deref_mut().is_some_and(|c| c.is_finished());
        // Tokens the grammar forces: no sampling step, one batched forward pass.
        let forced = match constraint.as_deref_mut() {
            Some(c) => c.forced()?,
            None => Vec::new(),
        };
        if !forced.is_empty() {
            let room = (max - self.out.steps.len()).min(context.saturating_sub(position));
            let forced = &forced[..forced.len().min(room)];
            for (k, &t) in forced.iter().enumerate() {
                if let Some(c) = constraint.as_deref_mut() {
                    c.accept(t)?;
                }
                let logprob = if sampler.logprobs_requested() && k == 0 {
                    Some(logits[t as usize] - crate::sampler::log_sum_exp(logits))
                } else {
                    None
                };
                let step = Sampled {
                    token: t,
                    logprob,
                    logprob_sampled: 0.0,
                    top: Vec::new(),
                    top_sampled: Vec::new(),
                };
                self.forced_tokens += 1;
                if let Some(r) = self.out.emit(step, detokenizer, on_token) {
                    return Ok(Next::Done(r));
                }
            }
            if self.out.steps.len() >= max {
                return Ok(Next::Done(StopReason::Length));
            }
            if finished(&mut constraint) {
                return Ok(Next::Done(StopReason::Grammar));
            }
            if position + forced.len() > context {
                return Ok(Next::Done(StopReason::ContextFull));
            }
            return Ok(Next::Feed(forced.to_vec()));
        }
        if finished(&mut constraint) {
            return Ok(Next::Done(StopReason::Grammar));
        }
        // Below the minimum length, stop tokens cannot be drawn.
        let stop = &self.stop;
        let suppress = self.out.steps.len() < stop.min_new_tokens && !stop.stop_tokens.is_empty();
        let step = {
            let banned = |id: u32| !(suppress && stop.stop_tokens.contains(&id));
            let history = &self.out.history;
            match constraint.as_deref_mut() {
                Some(c) => {
                    let mask = c.mask()?;
                    let both = |id: u32| banned(id) && mask.allows(id);
                    sampler.sample(logits, history, Some(&both))?
                }
                None if suppress => sampler.sample(logits, history, Some(&banned))?,
                None => sampler.sample(logits, history, None)?,
            }
        };
        let t = step.token;
        if !stop.ignore_stop_tokens && stop.stop_tokens.contains(&t) {
            return Ok(Next::Done(StopReason::StopToken(t)));
        }
        if let Some(c) = constraint.as_deref_mut() {
            c.accept(t)?;
        }
        if let Some(r) = self.out.emit(step, detokenizer, on_token) {
            return Ok(Next::Done(r));
        }
        if self.out.steps.len() >= max {
            return Ok(Next::Done(StopReason::Length));
        }
        if finished(&mut constraint) {
            return Ok(Next::Done(StopReason::Grammar));
        }
        if position >= context {
            return Ok(Next::Done(StopReason::ContextFull));
        }
        Ok(Next::Feed(vec![t]))
    }

    /// The generation, ended for `reason`: text held back for a possible stop string that
    /// never came is shown to `on_token` with the last token.
    pub fn finish(
        mut self,
        reason: StopReason,
        prefill_time: Duration,
        on_token: &mut dyn FnMut(&Sampled, &[u8]) -> bool,
    ) -> Generation {
        if !matches!(reason, StopReason::StopSequence(_)) {
            let rest = self.out.matcher.flush();
            if !rest.is_empty() {
                if let Some(last) = self.out.steps.last() {
                    on_token(last, &rest);
                }
            }
        }
        Generation {
            tokens: self.out.history.split_off(self.prompt_len),
            bytes: self.out.matcher.bytes().to_vec(),
            steps: self.out.steps,
            prompt_tokens: self.prompt_len,
            stop: reason,
            forced_tokens: self.forced_tokens,
            prefill_time,
            decode_time: self.started.elapsed(),
        }
    }
}

/// What a generation has produced so far: the prompt and the new tokens (penalties and DRY
/// read the whole history), one step per new token, and the text's stop-string matcher.
struct Output {
    history: Vec<u32>,
    steps: Vec<Sampled>,
    matcher: StopMatcher,
}

impl Output {
    /// Appends a chosen or forced token and shows the text now safe to show; returns why
    /// generation ends here, if it does (a stop string completed, or the caller said stop).
    fn emit(
        &mut self,
        step: Sampled,
        detokenizer: Option<&dyn Detokenizer>,
        on_token: &mut dyn FnMut(&Sampled, &[u8]) -> bool,
    ) -> Option<StopReason> {
        self.history.push(step.token);
        let (bytes, hit) = match detokenizer {
            Some(d) => self.matcher.push(&d.token_bytes(step.token)),
            None => (Vec::new(), None),
        };
        let go_on = on_token(&step, &bytes);
        self.steps.push(step);
        match hit {
            Some(i) => Some(StopReason::StopSequence(i)),
            None if !go_on => Some(StopReason::Cancelled),
            None => None,
        }
    }
}

/// `n` samples of one prompt: the prompt is prefilled once, and sample `i` draws from
/// the stream of sequence `i` of the seed ([`Sampler::for_sequence`]).
pub fn generate_n<'a>(
    model: &mut dyn LanguageModel,
    prompt: &[u32],
    config: &SamplerConfig,
    logprobs: Option<usize>,
    n: usize,
    mut options_for: impl FnMut(usize) -> GenerateOptions<'a>,
    on_token: &mut dyn FnMut(usize, &Sampled, &[u8]) -> bool,
) -> Result<Vec<Generation>> {
    let start = model.position();
    let started = Instant::now();
    let logits = prefill(model, prompt)?;
    let prefill_time = started.elapsed();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        model.truncate(start + prompt.len());
        let mut sampler = Sampler::for_sequence(config.clone(), i as u64)?;
        if let Some(k) = logprobs {
            sampler = sampler.with_logprobs(k);
        }
        let generation = continue_after(
            model,
            prompt,
            logits.clone(),
            &mut sampler,
            options_for(i),
            if i == 0 { prefill_time } else { Duration::ZERO },
            &mut |s, b| on_token(i, s, b),
        )?;
        out.push(generation);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_sequences_across_pieces() {
        let mut m = StopMatcher::new(vec![b"\n\nUser:".to_vec(), b"END".to_vec()]);
        let mut shown = Vec::new();
        for piece in [&b"Hello"[..], b" world\n", b"\nUs", b"er", b": more"] {
            let (out, hit) = m.push(piece);
            shown.extend(out);
            if let Some(i) = hit {
                assert_eq!(i, 0);
                break;
            }
        }
        assert_eq!(shown, b"Hello world");
        assert_eq!(m.bytes(), b"Hello world");
        // A held-back prefix that does not complete is released.
        let mut m = StopMatcher::new(vec![b"END".to_vec()]);
        let (a, _) = m.push(b"the EN");
        assert_eq!(a, b"the ");
        let (b, hit) = m.push(b"TRY");
        assert_eq!((b.as_slice(), hit), (&b"ENTRY"[..], None));
        // The earliest of two matches wins.
        let mut m = StopMatcher::new(vec![b"cd".to_vec(), b"bc".to_vec()]);
        let (out, hit) = m.push(b"abcd");
        assert_eq!((out.as_slice(), hit), (&b"a"[..], Some(1)));
    }
}
