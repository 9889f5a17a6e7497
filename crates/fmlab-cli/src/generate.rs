//! `fmlab generate` and `fmlab chat`: running a model with a sampler.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use fmlab_nn::Session;
pub use fmlab_sample::answer_of;
use fmlab_sample::{
    generate, BestOfN, GenerateOptions, Generation, GrammarSpec, LanguageModel, MeanLogprob,
    RegexAnswer, Sampler, SamplerConfig, StopConditions, Vote, LAST_NUMBER,
};
use fmlab_tokenizer::{Message, StreamDecoder, Tokenizer};
pub use fmlab_train::models::generation::TokenText;
use fmlab_train::models::generation::{
    read_messages, sample, Conversation, Drawn, Request, Selection,
};

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
        loaded.context(self.ctx.map(|c| c as usize))
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
        (Some(path), _) => Some(read_messages(path)?),
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
    /// MODEL: a .gguf file, a pulled model's name (`fmlab pull --list`), a training run or
    /// checkpoint folder, or a Hugging Face folder.
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

/// The prompt's token ids: raw text with the model's BOS rule, or a rendered conversation.
fn prompt_ids(
    loaded: &Loaded,
    messages: Option<&[Message]>,
    raw: Option<&str>,
) -> Result<Vec<u32>> {
    match (messages, raw) {
        (Some(messages), _) => loaded.chat_ids(messages)?.with_context(|| {
            format!(
                "{} has no chat template (a base model): give a raw --prompt without --chat",
                loaded.path.display()
            )
        }),
        (None, Some(text)) => Ok(loaded.raw_ids(text)),
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
        (Some(_), Some(r)) => Some(answer_regex(r)?),
        (Some(_), None) if grammar_given(&args) => Some(RegexAnswer::whole()),
        (Some(_), None) => Some(answer_regex(LAST_NUMBER)?),
        (None, Some(_)) => bail!("--answer-regex goes with --self-consistency N"),
        (None, None) => None,
    };
    // Test-time compute streams nothing: the choice comes after all samples.
    let quiet = json || args.best_of.is_some() || args.self_consistency.is_some();
    let tok = &loaded.tokenizer;
    let grammar = grammar_spec(&args)?;
    let request = Request {
        ids: &ids,
        config: &config,
        samples: n,
        stop: StopConditions {
            max_new_tokens: args.max_tokens as usize,
            min_new_tokens: args.min_tokens as usize,
            stop_tokens: tok.stop_tokens(),
            stop_sequences: args.stop.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ignore_stop_tokens: args.ignore_eos,
        },
        grammar: grammar.as_ref(),
        // Best-of-n ranks by log-probability, so it needs them.
        logprobs: args
            .logprobs
            .map(|k| k as usize)
            .or(args.best_of.map(|_| 0)),
    };
    let mut printer = Printer::new(n, n > 1);
    let generations = sample(&mut session, tok, &request, &mut |i, bytes| {
        quiet || printer.push(i, bytes)
    })?;
    let rest = printer.finish()?;
    let reward_model = match &args.reward_model {
        Some(rm) => Some(crate::model::load_reward_model(
            rm,
            tok.vocab_size(),
            "--reward-model",
        )?),
        None => None,
    };
    let mut scorer = match (&reward_model, &args.reward_model) {
        (Some(rm), Some(name)) => Some(
            fmlab_nn::RewardScorer::new(&rm.model)
                .with_context(|| format!("--reward-model {name}"))?,
        ),
        _ => None,
    };
    let selection = match (args.best_of, &mut scorer, extractor) {
        (Some(_), Some(scorer), _) => Selection::BestOf(scorer),
        (Some(_), None, _) => Selection::BestOf(&mut MeanLogprob),
        (None, _, Some(e)) => Selection::Vote(e),
        (None, _, None) => Selection::All,
    };
    let drawn = Drawn::select(&ids, generations, selection)?;
    if json {
        let report = drawn.report(tok, &config, args.logprobs.is_some());
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else if let Some(b) = &drawn.best {
        print_best(&drawn.generations, b)?;
    } else if let Some(v) = &drawn.vote {
        print_vote(v, n)?;
    } else {
        crate::out(&format!("{rest}\n"))?;
    }
    for g in &drawn.generations {
        eprintln!("{}", stats(g));
    }
    eprintln!("sampler: {}", config.describe());
    Ok(())
}

fn print_best(generations: &[Generation], b: &BestOfN) -> Result<()> {
    let g = &generations[b.best];
    crate::out(&format!("{}\n", String::from_utf8_lossy(&g.bytes)))?;
    eprintln!(
        "best of {}: sample {} (mean logprob {:.3}; others {})",
        generations.len(),
        b.best + 1,
        b.scores[b.best],
        b.scores
            .iter()
            .map(|s| format!("{s:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn print_vote(v: &Vote, n: usize) -> Result<()> {
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
    crate::out(&text)
}

fn answer_regex(pattern: &str) -> Result<RegexAnswer> {
    RegexAnswer::new(pattern).map_err(|e| anyhow::anyhow!("--answer-regex: {e}"))
}

/// Prints samples' text as it is drawn: whole UTF-8 characters only (a token may end
/// inside one), each sample under a header when `headers`. A failed write stops generation
/// and is returned by [`Printer::finish`].
struct Printer {
    decoders: Vec<StreamDecoder>,
    started: Vec<bool>,
    headers: bool,
    failure: Option<anyhow::Error>,
}

impl Printer {
    fn new(samples: usize, headers: bool) -> Self {
        Self {
            decoders: (0..samples).map(|_| StreamDecoder::new()).collect(),
            started: vec![false; samples],
            headers,
            failure: None,
        }
    }

    /// Prints sample `i`'s next bytes; false when writing failed.
    fn push(&mut self, i: usize, bytes: &[u8]) -> bool {
        if !self.started[i] {
            self.started[i] = true;
            if self.headers {
                let gap = if i > 0 { "\n" } else { "" };
                if let Err(e) = crate::out(&format!("{gap}--- sample {} ---\n", i + 1)) {
                    self.failure = Some(e);
                    return false;
                }
            }
        }
        match crate::out(&self.decoders[i].push_bytes(bytes)) {
            Ok(()) => true,
            Err(e) => {
                self.failure = Some(e);
                false
            }
        }
    }

    /// The text still held back (incomplete characters), or the write that failed.
    fn finish(mut self) -> Result<String> {
        if let Some(e) = self.failure {
            return Err(e);
        }
        Ok(self
            .decoders
            .iter_mut()
            .map(StreamDecoder::finish)
            .collect())
    }
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
    let mut printer = Printer::new(1, false);
    let generation = generate(session, ids, sampler, options, &mut |_, bytes| {
        printer.push(0, bytes)
    })?;
    crate::out(&printer.finish()?)?;
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
    let mut conversation = Conversation {
        system: args.system.clone(),
        history: Vec::new(),
    };
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
                conversation.history.clear();
                eprintln!("(conversation cleared)");
                continue;
            }
            _ if input.starts_with("/system") => {
                let text = input.trim_start_matches("/system").trim();
                conversation.system = (!text.is_empty()).then(|| text.to_string());
                conversation.history.clear();
                eprintln!("(system turn set; conversation cleared)");
                continue;
            }
            _ if input.starts_with('/') => {
                eprintln!("unknown command {input}: /reset, /system TEXT, /quit");
                continue;
            }
            _ => {}
        }
        // The whole conversation is re-read each turn; the oldest turns go when it no
        // longer fits.
        let Some(ids) = conversation.ask(&loaded, input, context)? else {
            eprintln!("(the conversation no longer fits the context of {context} tokens; older turns dropped)");
            continue;
        };
        let mut session = Session::new(&loaded.model, context);
        let budget = (args.max_tokens as usize).min(context - session.position() - ids.len());
        let (generation, text) =
            stream(&mut session, &loaded.tokenizer, &ids, &mut sampler, budget)?;
        crate::out("\n")?;
        eprintln!("({})", stats(&generation));
        conversation.answered(&text);
    }
    Ok(())
}
