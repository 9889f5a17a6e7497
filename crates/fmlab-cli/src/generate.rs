//! `fmlab generate` and `fmlab chat`: running a model with a sampler.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use fmlab_nn::Session;
use fmlab_sample::{generate, GenerateConfig, Generation, LanguageModel, Sampler, SamplerConfig};
use fmlab_tokenizer::{Message, StreamDecoder, Tokenizer};
use serde::Serialize;

use crate::model::{load, Loaded};

/// Sampling and context options shared by `generate` and `chat`.
#[derive(Args, Clone)]
pub struct SamplingArgs {
    /// 0 for greedy decoding.
    #[arg(long, default_value = "0.8", value_parser = non_negative)]
    temperature: f32,
    /// Keep the K most likely tokens (0: all).
    #[arg(long, default_value = "40")]
    top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches P (1: all).
    #[arg(long, default_value = "0.95", value_parser = crate::numbers::fraction)]
    top_p: f64,
    /// Seed of the sampler's random stream: the same seed gives the same tokens.
    #[arg(long, default_value = "0")]
    seed: u64,
    /// Tokens of context (default: the model's, at most 4096).
    #[arg(long, value_parser = crate::numbers::count)]
    ctx: Option<u64>,
    /// Threads (default: all cores).
    #[arg(long, value_parser = crate::numbers::count)]
    threads: Option<u64>,
}

fn non_negative(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{text}: must be a number ≥ 0")),
    }
}

impl SamplingArgs {
    fn sampler(&self) -> Sampler {
        Sampler::new(SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p as f32,
            seed: self.seed,
        })
    }

    fn context(&self, loaded: &Loaded) -> usize {
        let model_ctx = loaded.model.spec.context_length as usize;
        self.ctx
            .map_or(model_ctx.min(4096), |c| c as usize)
            .min(model_ctx)
    }
}

#[derive(Args)]
pub struct GenerateArgs {
    /// A .gguf file or a model name (`fmlab pull --list`).
    model: String,
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
    /// Tokens to generate at most.
    #[arg(long, default_value = "128", value_parser = crate::numbers::count)]
    max_tokens: u64,
    /// Do not stop at end-of-generation tokens (for benchmarks).
    #[arg(long)]
    ignore_eos: bool,
    /// One JSON object (text, tokens, speeds) instead of streamed text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

#[derive(Serialize)]
struct GenerateReport {
    text: String,
    tokens: Vec<u32>,
    prompt_tokens: usize,
    generated_tokens: usize,
    stopped_at_eos: bool,
    prefill_tokens_per_second: f64,
    decode_tokens_per_second: f64,
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
    let loaded = load(&args.model)?;
    let ids = prompt_ids(&loaded, messages.as_deref(), args.prompt.as_deref())?;
    let mut session = Session::new(&loaded.model, args.sampling.context(&loaded));
    let mut sampler = args.sampling.sampler();
    let (generation, text) = stream(
        &mut session,
        &loaded.tokenizer,
        &ids,
        &mut sampler,
        args.max_tokens as usize,
        args.ignore_eos,
        !args.json,
    )?;
    if args.json {
        let report = GenerateReport {
            text,
            tokens: generation.tokens.clone(),
            prompt_tokens: generation.prompt_tokens,
            generated_tokens: generation.tokens.len(),
            stopped_at_eos: generation.stopped,
            prefill_tokens_per_second: generation.prefill_tokens_per_second(),
            decode_tokens_per_second: generation.decode_tokens_per_second(),
            temperature: args.sampling.temperature,
            seed: args.sampling.seed,
        };
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        crate::out("\n")?;
    }
    eprintln!("{}", stats(&generation));
    Ok(())
}

/// Runs one generation, printing text as it completes when `print` is set.
fn stream(
    session: &mut Session,
    tokenizer: &Tokenizer,
    ids: &[u32],
    sampler: &mut Sampler,
    max_tokens: usize,
    ignore_eos: bool,
    print: bool,
) -> Result<(Generation, String)> {
    let config = GenerateConfig {
        max_new_tokens: max_tokens,
        stop_tokens: tokenizer.stop_tokens(),
        ignore_stop: ignore_eos,
    };
    let mut decoder = StreamDecoder::new();
    let mut text = String::new();
    let mut failure: Option<anyhow::Error> = None;
    let generation = generate(session, ids, sampler, &config, |id| {
        match decoder.push(tokenizer, id) {
            Ok(piece) => {
                if print {
                    if let Err(e) = crate::out(&piece) {
                        failure = Some(e);
                        return false;
                    }
                }
                text.push_str(&piece);
                true
            }
            Err(e) => {
                failure = Some(e.into());
                false
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let rest = decoder.finish();
    if print {
        crate::out(&rest)?;
    }
    text.push_str(&rest);
    Ok((generation, text))
}

fn stats(g: &Generation) -> String {
    format!(
        "prompt {} tokens, generated {} tokens; prefill {:.1} tokens/s, decode {:.1} tokens/s",
        g.prompt_tokens,
        g.tokens.len(),
        g.prefill_tokens_per_second(),
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
    let mut sampler = args.sampling.sampler();
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
        let (generation, text) = stream(
            &mut session,
            &loaded.tokenizer,
            &ids,
            &mut sampler,
            budget,
            false,
            true,
        )?;
        crate::out("\n")?;
        eprintln!("({})", stats(&generation));
        history.push(Message::new("assistant", text.trim()));
    }
    Ok(())
}
