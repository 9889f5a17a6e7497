//! `fmlab generate` and `fmlab chat`: running a model with a sampler.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use fmlab_nn::Session;
use fmlab_sample::{
    best_of_n, generate, generate_n, self_consistency, AnswerExtractor, Detokenizer,
    GenerateOptions, Generation, Grammar, GrammarSpec, LanguageModel, MeanLogprob, Sampled,
    Sampler, SamplerConfig, StopConditions, TokenizeFn, Vocabulary, Vote,
};
use std::sync::Arc;

use fmlab_tokenizer::{Message, StreamDecoder, TokenType, Tokenizer};
use serde::Serialize;

use crate::model::{load, Loaded};
use crate::sampling::SamplerArgs;

/// Sampling and context options shared by `generate` and `chat`.
#[derive(Args, Clone)]
pub struct SamplingArgs {
    #[command(flatten)]
    sampler: SamplerArgs,
    /// Tokens of context (default: the model's, at most 4096).
    #[arg(long, value_parser = crate::numbers::count)]
    ctx: Option<u64>,
    /// Threads (default: all cores).
    #[arg(long, value_parser = crate::numbers::count)]
    threads: Option<u64>,
}

impl SamplingArgs {
    fn config(&self, loaded: &Loaded) -> Result<SamplerConfig> {
        self.sampler.config(
            Some(&loaded.tokenizer),
            Some(loaded.model.spec.vocab_size as usize),
        )
    }

    fn context(&self, loaded: &Loaded) -> usize {
        let model_ctx = loaded.model.spec.context_length as usize;
        self.ctx
            .map_or(model_ctx.min(4096), |c| c as usize)
            .min(model_ctx)
    }
}

/// Token bytes for the sampler's stop strings (control tokens render as nothing).
pub struct TokenText<'a>(pub &'a Tokenizer);

impl Detokenizer for TokenText<'_> {
    fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.0.token_bytes(id, false).unwrap_or_default()
    }
}

/// How a prompt is given: raw text, a user turn (with a system turn) rendered with the
/// chat template, or a conversation file.
#[derive(Args, Clone)]
pub struct PromptArgs {
    /// The prompt (raw text, or the user turn with --chat).
    #[arg(long, conflicts_with = "messages")]
    prompt: Option<String>,
    /// Render the prompt with the model's chat template as a user turn.
    #[arg(long)]
    chat: bool,
    /// A system turn (implies --chat).
    #[arg(long)]
    system: Option<String>,
    /// A JSON list of {"role", "content"} turns, rendered with the chat template.
    #[arg(long)]
    messages: Option<PathBuf>,
}

/// The prompt's token ids from the prompt flags.
pub fn prompt_for(loaded: &Loaded, args: &PromptArgs) -> Result<Vec<u32>> {
    let messages: Option<Vec<Message>> = match (&args.messages, args.chat || args.system.is_some())
    {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let m: Vec<Message> = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: expected a JSON list of {{\"role\", \"content\"}}",
                    path.display()
                )
            })?;
            if m.is_empty() {
                bail!("{}: the conversation is empty", path.display());
            }
            Some(m)
        }
        (None, true) => {
            let prompt = args
                .prompt
                .as_deref()
                .context("--chat needs --prompt TEXT (the user turn)")?;
            let mut m = Vec::new();
            if let Some(system) = &args.system {
                m.push(Message::new("system", system));
            }
            m.push(Message::new("user", prompt));
            Some(m)
        }
        (None, false) => None,
    };
    if messages.is_none() && args.prompt.is_none() {
        bail!("give --prompt TEXT or --messages FILE");
    }
    prompt_ids(loaded, messages.as_deref(), args.prompt.as_deref())
}

#[derive(Args)]
pub struct GenerateArgs {
    /// A .gguf file or a model name (`fmlab pull --list`).
    model: String,
    #[command(flatten)]
    prompt: PromptArgs,
    /// Tokens to generate at most.
    #[arg(long, default_value = "128", value_parser = crate::numbers::count)]
    max_tokens: u64,
    /// End-of-generation tokens cannot end the output before this many tokens.
    #[arg(long, default_value = "0")]
    min_tokens: u64,
    /// Stop when this text appears (repeatable); the output ends before it.
    #[arg(long)]
    stop: Vec<String>,
    /// Do not stop at end-of-generation tokens (for benchmarks).
    #[arg(long)]
    ignore_eos: bool,
    /// Samples of the prompt, each from its own stream of the seed.
    #[arg(short = 'n', long = "samples", default_value = "1", value_parser = crate::numbers::count)]
    n: u64,
    /// Constrain the output to JSON that validates against this JSON schema (a file).
    #[arg(long, conflicts_with_all = ["regex", "grammar"])]
    json_schema: Option<PathBuf>,
    /// Constrain the output to match this regular expression.
    #[arg(long, conflicts_with = "grammar")]
    regex: Option<String>,
    /// Constrain the output to this Lark grammar (a file, llguidance's dialect).
    #[arg(long)]
    grammar: Option<PathBuf>,
    /// Best-of-n: draw N samples and keep the one with the highest mean log-probability.
    #[arg(long, value_parser = crate::numbers::count, conflicts_with_all = ["n", "self_consistency"])]
    best_of: Option<u64>,
    /// With --best-of: rank the samples by this reward model's score (`fmlab train reward`)
    /// instead of their mean log-probability.
    #[arg(long, requires = "best_of")]
    reward_model: Option<String>,
    /// Self-consistency: draw N samples, extract an answer from each, majority-vote.
    #[arg(long, value_parser = crate::numbers::count, conflicts_with = "n")]
    self_consistency: Option<u64>,
    /// How answers are extracted for --self-consistency: the first capture group (or the
    /// whole match) of the last match of this regex. Default: the last number; with a
    /// grammar (--json-schema, --regex, --grammar), the whole output.
    #[arg(long)]
    answer_regex: Option<String>,
    /// Log-probabilities of each token with the K best alternatives (0–20; implies --json).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=20))]
    logprobs: Option<u64>,
    /// One JSON object (text, tokens, speeds, logprobs) instead of streamed text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// One alternative token in a `logprobs` entry.
#[derive(Serialize)]
struct Alternative {
    id: u32,
    text: String,
    logprob: f32,
}

/// Log-probabilities of one generated token.
#[derive(Serialize)]
struct TokenReport {
    id: u32,
    text: String,
    /// Under the model's own distribution.
    logprob: Option<f32>,
    /// Under the processed distribution the token was drawn from.
    logprob_sampled: f32,
    /// The best alternatives under the model's distribution.
    top: Vec<Alternative>,
    /// The best alternatives under the processed distribution.
    top_sampled: Vec<Alternative>,
}

#[derive(Serialize)]
struct Choice {
    index: usize,
    text: String,
    tokens: Vec<u32>,
    generated_tokens: usize,
    finish_reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mean_logprob: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<Vec<TokenReport>>,
}

#[derive(Serialize)]
struct BestOfReport {
    /// Each sample's score: its mean log-probability, or the reward model's reward.
    scores: Vec<f64>,
    best: usize,
}

#[derive(Serialize)]
struct VoteEntry {
    answer: String,
    count: usize,
    share: f64,
}

#[derive(Serialize)]
struct VoteReport {
    /// Per sample, the extracted answer (null when none).
    answers: Vec<Option<String>>,
    votes: Vec<VoteEntry>,
    answer: Option<String>,
    /// The winning answer's share of all samples.
    agreement: f64,
}

fn vote_report(v: &Vote) -> VoteReport {
    VoteReport {
        answers: v.answers.clone(),
        votes: v
            .shares
            .iter()
            .map(|s| VoteEntry {
                answer: s.answer.clone(),
                count: s.count,
                share: s.share,
            })
            .collect(),
        answer: v.winner.clone(),
        agreement: v.agreement(),
    }
}

#[derive(Serialize)]
struct GenerateReport {
    /// The sample shown: the first, or best-of-n's choice.
    #[serde(flatten)]
    first: Choice,
    #[serde(skip_serializing_if = "Option::is_none")]
    best_of: Option<BestOfReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    self_consistency: Option<VoteReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    choices: Option<Vec<Choice>>,
    prompt_tokens: usize,
    stopped_at_eos: bool,
    prefill_tokens_per_second: f64,
    decode_tokens_per_second: f64,
    /// The chain in force, with its order.
    sampler: String,
    temperature: f32,
    seed: u64,
}

/// The prompt's token ids: raw text with the model's BOS rule, or a rendered conversation.
fn prompt_ids(
    loaded: &Loaded,
    messages: Option<&[Message]>,
    raw: Option<&str>,
) -> Result<Vec<u32>> {
    let tok = &loaded.tokenizer;
    match (messages, raw) {
        (Some(messages), _) => {
            let template = loaded.template.as_ref().with_context(|| {
                format!(
                    "{} has no chat template (a base model): give a raw --prompt without --chat",
                    loaded.path.display()
                )
            })?;
            let text = template.render(messages, true)?;
            let mut ids = tok.encode(&text, true, true);
            // A template that writes the BOS itself would otherwise get a second one.
            if let (Some(bos), [a, b, ..]) = (tok.vocab.bos, ids.as_slice()) {
                if *a == bos && *b == bos {
                    ids.remove(0);
                }
            }
            Ok(ids)
        }
        (None, Some(text)) => Ok(tok.encode(text, true, false)),
        (None, None) => bail!("give --prompt TEXT or --messages FILE"),
    }
}

pub fn run_generate(args: GenerateArgs) -> Result<()> {
    crate::model::with_threads(args.sampling.threads, || generate_on_pool(args))
}

fn generate_on_pool(args: GenerateArgs) -> Result<()> {
    if args.prompt.prompt.is_none() && args.prompt.messages.is_none() {
        bail!("give --prompt TEXT or --messages FILE");
    }
    let loaded = load(&args.model)?;
    let config = args.sampling.config(&loaded)?;
    let ids = prompt_for(&loaded, &args.prompt)?;
    let mut session = Session::new(&loaded.model, args.sampling.context(&loaded));
    let json = args.json || args.logprobs.is_some();
    let n = args.best_of.or(args.self_consistency).unwrap_or(args.n) as usize;
    let extractor = match (&args.self_consistency, &args.answer_regex) {
        (Some(_), Some(r)) => Some(RegexAnswer::new(r)?),
        (Some(_), None) if grammar_given(&args) => Some(RegexAnswer::whole()),
        (Some(_), None) => Some(RegexAnswer::new(LAST_NUMBER)?),
        (None, Some(_)) => bail!("--answer-regex goes with --self-consistency N"),
        (None, None) => None,
    };
    // Test-time compute streams nothing: the choice comes after all samples.
    let quiet = json || args.best_of.is_some() || args.self_consistency.is_some();
    // Best-of-n ranks by log-probability, so it needs them.
    let logprobs = args
        .logprobs
        .map(|k| k as usize)
        .or(args.best_of.map(|_| 0));
    let tok = &loaded.tokenizer;
    let detok = TokenText(tok);
    let stop = StopConditions {
        max_new_tokens: args.max_tokens as usize,
        min_new_tokens: args.min_tokens as usize,
        stop_tokens: tok.stop_tokens(),
        stop_sequences: args.stop.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ignore_stop_tokens: args.ignore_eos,
    };
    let spec = grammar_spec(&args)?;
    let vocabulary = match &spec {
        Some(_) => Some(vocabulary(tok)?),
        None => None,
    };
    let mut grammars: Vec<Option<Grammar>> = (0..n)
        .map(|_| match (&vocabulary, &spec) {
            (Some(v), Some(spec)) => v.grammar(spec).map(Some),
            _ => Ok(None),
        })
        .collect::<std::result::Result<_, _>>()?;
    let mut grammar_slots = grammars.iter_mut();
    // A token may end inside a UTF-8 character: each sample's text waits for whole ones.
    let mut printers: Vec<StreamDecoder> = (0..n).map(|_| StreamDecoder::new()).collect();
    let mut started = vec![false; n];
    let mut failure: Option<anyhow::Error> = None;
    let generations = generate_n(
        &mut session,
        &ids,
        &config,
        logprobs,
        n,
        |_| GenerateOptions {
            stop: stop.clone(),
            detokenizer: Some(&detok),
            constraint: grammar_slots
                .next()
                .and_then(Option::as_mut)
                .map(|g| g as &mut dyn fmlab_sample::Constraint),
        },
        &mut |i, _step, bytes| {
            if quiet {
                return true;
            }
            if !started[i] {
                started[i] = true;
                if n > 1 {
                    if let Err(e) = crate::out(&format!(
                        "{}--- sample {} ---\n",
                        if i > 0 { "\n" } else { "" },
                        i + 1
                    )) {
                        failure = Some(e);
                        return false;
                    }
                }
            }
            match crate::out(&printers[i].push_bytes(bytes)) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        },
    )?;
    if let Some(e) = failure {
        return Err(e);
    }
    let best = match (args.best_of, &args.reward_model) {
        (Some(_), Some(rm)) => {
            let rm_loaded =
                crate::model::load_reward_model(rm, tok.vocab_size(), "--reward-model")?;
            let mut scorer = fmlab_nn::RewardScorer::new(&rm_loaded.model)
                .with_context(|| format!("--reward-model {rm}"))?;
            Some(best_of_n(&ids, &generations, &mut scorer)?)
        }
        (Some(_), None) => Some(best_of_n(&ids, &generations, &mut MeanLogprob)?),
        _ => None,
    };
    let vote = extractor.map(|mut e| self_consistency(&generations, &mut e));
    if json {
        let lead = best.as_ref().map_or(0, |b| b.best);
        let mut choices: Vec<Choice> = generations
            .iter()
            .enumerate()
            .map(|(i, g)| choice(tok, i, g, args.logprobs.is_some()))
            .collect();
        let first_gen = &generations[lead];
        let report = GenerateReport {
            first: choice(tok, lead, first_gen, args.logprobs.is_some()),
            best_of: best.as_ref().map(|b| BestOfReport {
                scores: b.scores.clone(),
                best: b.best,
            }),
            self_consistency: vote.as_ref().map(vote_report),
            choices: None,
            prompt_tokens: first_gen.prompt_tokens,
            stopped_at_eos: first_gen.stopped(),
            prefill_tokens_per_second: first_gen.prefill_tokens_per_second(),
            decode_tokens_per_second: mean_decode_speed(&generations),
            sampler: config.describe(),
            temperature: config.temperature,
            seed: config.seed,
        };
        let report = if n > 1 {
            GenerateReport {
                choices: Some(std::mem::take(&mut choices)),
                ..report
            }
        } else {
            report
        };
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else if let Some(b) = &best {
        let g = &generations[b.best];
        crate::out(&format!("{}\n", String::from_utf8_lossy(&g.bytes)))?;
        eprintln!(
            "best of {n}: sample {} (mean logprob {:.3}; others {})",
            b.best + 1,
            b.scores[b.best],
            b.scores
                .iter()
                .map(|s| format!("{s:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else if let Some(v) = &vote {
        let mut text = String::new();
        for s in &v.shares {
            text.push_str(&format!(
                "{:>5.1}%  {:>3}/{n}  {}\n",
                100.0 * s.share,
                s.count,
                s.answer
            ));
        }
        let missing = v.answers.iter().filter(|a| a.is_none()).count();
        if missing > 0 {
            text.push_str(&format!("{missing} of {n} samples gave no answer\n"));
        }
        text.push_str(&format!(
            "answer: {}\n",
            v.winner.as_deref().unwrap_or("(none)")
        ));
        crate::out(&text)?;
    } else {
        let rest: String = printers.iter_mut().map(StreamDecoder::finish).collect();
        crate::out(&format!("{rest}\n"))?;
    }
    for g in &generations {
        eprintln!("{}", stats(g));
    }
    eprintln!("sampler: {}", config.describe());
    Ok(())
}

/// The default answer of self-consistency: the last number in the text.
const LAST_NUMBER: &str = r"-?\d+(?:[.,]\d+)*";

/// Extracts answers with a regex: the first capture group (or the whole match) of the
/// last match; `None` matches the whole trimmed text.
struct RegexAnswer {
    regex: Option<regex::Regex>,
}

impl RegexAnswer {
    fn new(pattern: &str) -> Result<Self> {
        let regex =
            regex::Regex::new(pattern).map_err(|e| anyhow::anyhow!("--answer-regex: {e}"))?;
        Ok(Self { regex: Some(regex) })
    }

    fn whole() -> Self {
        Self { regex: None }
    }
}

impl AnswerExtractor for RegexAnswer {
    fn extract(&mut self, completion: &Generation) -> Option<String> {
        answer_of(
            &String::from_utf8_lossy(&completion.bytes),
            self.regex.as_ref(),
        )
    }
}

/// The answer in `text`: the first capture group (or the whole match) of the last match of
/// `regex`, or the whole trimmed text without one.
pub fn answer_of(text: &str, regex: Option<&regex::Regex>) -> Option<String> {
    let Some(re) = regex else {
        let t = text.trim();
        return (!t.is_empty()).then(|| t.to_string());
    };
    let caps = re.captures_iter(text).last()?;
    let m = caps.get(1).or_else(|| caps.get(0))?;
    Some(m.as_str().trim().to_string())
}

fn grammar_given(args: &GenerateArgs) -> bool {
    args.json_schema.is_some() || args.regex.is_some() || args.grammar.is_some()
}

/// The grammar the output must follow, if any flag gave one.
fn grammar_spec(args: &GenerateArgs) -> Result<Option<GrammarSpec>> {
    if let Some(path) = &args.json_schema {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--json-schema: reading {}", path.display()))?;
        let schema: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("--json-schema: {} is not JSON", path.display()))?;
        return Ok(Some(GrammarSpec::JsonSchema(schema)));
    }
    if let Some(regex) = &args.regex {
        return Ok(Some(GrammarSpec::Regex(regex.clone())));
    }
    if let Some(path) = &args.grammar {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--grammar: reading {}", path.display()))?;
        return Ok(Some(GrammarSpec::Lark(text)));
    }
    Ok(None)
}

/// The model's vocabulary for constrained decoding: each token's bytes, control tokens
/// marked, and the tokenizer for the tokens a grammar forces.
pub fn vocabulary(tok: &Tokenizer) -> Result<Vocabulary> {
    let n = tok.vocab_size();
    let mut tokens = Vec::with_capacity(n);
    let mut special = Vec::with_capacity(n);
    for id in 0..n as u32 {
        let control = matches!(
            tok.vocab.token_type(id),
            TokenType::Control | TokenType::Unknown | TokenType::Unused
        );
        tokens.push(tok.token_bytes(id, control)?);
        special.push(control);
    }
    let shared = Arc::new(tok.clone());
    let tokenize: TokenizeFn =
        Arc::new(move |bytes: &[u8]| shared.encode(&String::from_utf8_lossy(bytes), false, false));
    Ok(Vocabulary::new(
        tokens,
        &special,
        &tok.stop_tokens(),
        tokenize,
    )?)
}

/// Mean decode speed over several generations.
fn mean_decode_speed(gs: &[Generation]) -> f64 {
    let speeds: Vec<f64> = gs
        .iter()
        .map(Generation::decode_tokens_per_second)
        .collect();
    speeds.iter().sum::<f64>() / speeds.len().max(1) as f64
}

fn choice(tok: &Tokenizer, index: usize, g: &Generation, logprobs: bool) -> Choice {
    let text_of = |id: u32| {
        String::from_utf8_lossy(&tok.token_bytes(id, true).unwrap_or_default()).into_owned()
    };
    let alternatives = |alts: &[fmlab_sample::TokenLogprob]| {
        alts.iter()
            .map(|a| Alternative {
                id: a.id,
                text: text_of(a.id),
                logprob: a.logprob,
            })
            .collect()
    };
    Choice {
        index,
        text: String::from_utf8_lossy(&g.bytes).into_owned(),
        tokens: g.tokens.clone(),
        generated_tokens: g.tokens.len(),
        finish_reason: g.stop.finish_reason(),
        mean_logprob: g.mean_logprob(),
        logprobs: logprobs.then(|| {
            g.steps
                .iter()
                .map(|s: &Sampled| TokenReport {
                    id: s.token,
                    text: text_of(s.token),
                    logprob: s.logprob,
                    logprob_sampled: s.logprob_sampled,
                    top: alternatives(&s.top),
                    top_sampled: alternatives(&s.top_sampled),
                })
                .collect()
        }),
    }
}

/// Runs one generation of a chat turn, printing text as it completes.
fn stream(
    session: &mut Session,
    tokenizer: &Tokenizer,
    ids: &[u32],
    sampler: &mut Sampler,
    max_tokens: usize,
) -> Result<(Generation, String)> {
    let detok = TokenText(tokenizer);
    let options = GenerateOptions {
        stop: StopConditions {
            max_new_tokens: max_tokens,
            stop_tokens: tokenizer.stop_tokens(),
            ..StopConditions::default()
        },
        detokenizer: Some(&detok),
        constraint: None,
    };
    let mut printer = StreamDecoder::new();
    let mut failure: Option<anyhow::Error> = None;
    let generation = generate(
        session,
        ids,
        sampler,
        options,
        &mut |_, bytes| match crate::out(&printer.push_bytes(bytes)) {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        },
    )?;
    if let Some(e) = failure {
        return Err(e);
    }
    crate::out(&printer.finish())?;
    let text = String::from_utf8_lossy(&generation.bytes).into_owned();
    Ok((generation, text))
}

fn stats(g: &Generation) -> String {
    let prefill = if g.prefill_time.is_zero() {
        "prefill shared".to_string()
    } else {
        format!("prefill {:.1} tokens/s", g.prefill_tokens_per_second())
    };
    format!(
        "prompt {} tokens, generated {} tokens; {prefill}, decode {:.1} tokens/s",
        g.prompt_tokens,
        g.tokens.len(),
        g.decode_tokens_per_second()
    )
}

#[derive(Args)]
pub struct ChatArgs {
    /// A .gguf file or a model name.
    model: String,
    /// The system turn to start with.
    #[arg(long)]
    system: Option<String>,
    /// Tokens per reply at most.
    #[arg(long, default_value = "512", value_parser = crate::numbers::count)]
    max_tokens: u64,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// An interactive conversation: each turn is rendered with the whole history.
pub fn run_chat(args: ChatArgs) -> Result<()> {
    crate::model::with_threads(args.sampling.threads, || chat_on_pool(args))
}

fn chat_on_pool(args: ChatArgs) -> Result<()> {
    let loaded = load(&args.model)?;
    if loaded.template.is_none() {
        bail!(
            "{} has no chat template (a base model); use `fmlab generate --prompt` instead",
            loaded.path.display()
        );
    }
    let mut system = args.system.clone();
    let mut history: Vec<Message> = Vec::new();
    let mut sampler = Sampler::new(args.sampling.config(&loaded)?)?;
    let context = args.sampling.context(&loaded);
    eprintln!(
        "chatting with {} — /reset, /system TEXT, /quit",
        loaded.path.display()
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("> ");
        let _ = std::io::stderr().flush();
        let Some(line) = lines.next() else { break };
        let line = line?;
        let input = line.trim();
        if input.is_empty() {
            continue;
        }
        match input {
            "/quit" | "/exit" => break,
            "/reset" => {
                history.clear();
                eprintln!("(conversation cleared)");
                continue;
            }
            _ if input.starts_with("/system") => {
                let text = input.trim_start_matches("/system").trim();
                system = (!text.is_empty()).then(|| text.to_string());
                history.clear();
                eprintln!("(system turn set; conversation cleared)");
                continue;
            }
            _ if input.starts_with('/') => {
                eprintln!("unknown command {input}: /reset, /system TEXT, /quit");
                continue;
            }
            _ => {}
        }
        history.push(Message::new("user", input));
        let mut turns = Vec::new();
        if let Some(s) = &system {
            turns.push(Message::new("system", s));
        }
        turns.extend(history.iter().cloned());
        let ids = prompt_ids(&loaded, Some(&turns), None)?;
        // The whole conversation is re-read each turn; drop the oldest turns when it no
        // longer fits.
        if ids.len() + 1 >= context {
            history.drain(..history.len().saturating_sub(1));
            eprintln!("(the conversation no longer fits the context of {context} tokens; older turns dropped)");
            continue;
        }
        let mut session = Session::new(&loaded.model, context);
        let budget = (args.max_tokens as usize).min(context - session.position() - ids.len());
        let (generation, text) =
            stream(&mut session, &loaded.tokenizer, &ids, &mut sampler, budget)?;
        crate::out("\n")?;
        eprintln!("({})", stats(&generation));
        history.push(Message::new("assistant", text.trim()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fmlab_sample::Constraint;

    /// The constrained-decoding vocabulary from a Hugging Face tokenizer.json: a regex
    /// grammar allows exactly the tokens whose text can continue a match.
    #[test]
    fn vocabulary_from_tokenizer_json() -> Result<()> {
        // The package folder at run time: a shared build folder may hold this test
        // compiled in another clone.
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let path = std::path::Path::new(&dir).join("../../fixtures/tokenizer-json/tokenizer.json");
        let tok = Tokenizer::from_tokenizer_json(&path)?;
        let vocab = vocabulary(&tok)?;
        let mut grammar = vocab.grammar(&GrammarSpec::Regex("[0-9]+".into()))?;
        let mask = grammar.mask()?;
        let mut allowed = 0;
        for id in 0..tok.vocab_size() as u32 {
            let text = String::from_utf8_lossy(&tok.token_bytes(id, false)?).into_owned();
            let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
            if mask.allows(id) {
                allowed += 1;
                assert!(digits, "token {id} {text:?} allowed");
            }
        }
        assert!(allowed > 0);
        Ok(())
    }
}
