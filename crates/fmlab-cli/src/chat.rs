//! `fmlab chat`: an interactive conversation with a chat model, as people know it from
//! llama-cli and ollama — line editing and history (rustyline) on a terminal, `"""` blocks
//! and pasted blocks as one turn, Ctrl-C to stop a reply (the conversation goes on), Ctrl-C
//! twice or Ctrl-D to leave, and slash commands to save, load, reset and tune sampling.
//! The conversation itself (what fits the context, the turns) is
//! `fmlab_train::models::generation::Conversation`; this file is the terminal.

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use fmlab_nn::Session;
use fmlab_sample::{Sampler, SamplerConfig, StopReason};
use fmlab_train::models::generation::Conversation;
use rustyline::error::ReadlineError;

use crate::generate::{stats, stream, SamplingArgs};
use crate::model::{load, Loaded};

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct ChatArgs {
    /// The model: a pulled name (`fmlab pull --list`), a .gguf file, a training run or
    /// checkpoint folder, or a Hugging Face folder — one with a chat template.
    model: String,
    /// The system turn to start with.
    #[arg(long)]
    system: Option<String>,
    /// Start from this conversation (a JSON list of {"role", "content"} turns, as /save
    /// writes and `generate --messages` reads).
    #[arg(long)]
    messages: Option<std::path::PathBuf>,
    /// Tokens per reply at most (`/set max-tokens N` changes it).
    #[arg(long, default_value = "512", value_parser = crate::numbers::count)]
    max_tokens: u64,
    #[command(flatten)]
    sampling: SamplingArgs,
}

const HELP: &str = "\
commands:
  /help               this list
  /set                the sampling settings in force
  /set NAME VALUE     change one (temperature, top-k, top-p, min-p, seed, max-tokens, …)
  /context            how much of the context the conversation uses
  /save FILE          write the conversation as JSON (what --messages and /load read)
  /load FILE          continue a saved conversation
  /system TEXT        a new system turn (clears the conversation)
  /reset              clear the conversation (keeps the system turn and the settings)
  /quit               leave (also Ctrl-D, or Ctrl-C twice at the prompt)
a line of \"\"\" starts and ends a message of several lines; a pasted block is one message.
Ctrl-C while the model answers stops the reply and keeps the conversation.";

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
    let mut chat = Chat {
        config: args.sampling.config(&loaded)?,
        context: args.sampling.context(&loaded)?,
        conversation: Conversation {
            system: args.system.clone(),
            history: Vec::new(),
        },
        max_tokens: args.max_tokens as usize,
        used: 0,
        interrupt: install_interrupt()?,
        loaded,
    };
    if let Some(path) = &args.messages {
        let n = chat.conversation.load(path)?;
        eprintln!("(loaded {n} turns from {})", path.display());
    }
    let mut sampler = Sampler::new(chat.config.clone())?;
    eprintln!(
        "chatting with {} — /help for commands, Ctrl-D to leave",
        chat.loaded.path.display()
    );
    let mut input = Input::new()?;
    loop {
        let text = match input.read()? {
            Read::Text(text) => text,
            Read::Interrupted => {
                eprintln!("(Ctrl-C again or Ctrl-D to leave)");
                continue;
            }
            Read::Quit => break,
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        if let Some(command) = text.strip_prefix('/') {
            match chat.command(command, &mut sampler) {
                Ok(Flow::Quit) => break,
                Ok(Flow::Continue) => {}
                Err(e) => eprintln!("({e:#})"),
            }
            continue;
        }
        chat.reply(text, &mut sampler)?;
    }
    Ok(())
}

/// What a command leaves the loop to do.
enum Flow {
    Continue,
    Quit,
}

/// The conversation, the settings in force and the model.
struct Chat {
    loaded: Loaded,
    conversation: Conversation,
    config: SamplerConfig,
    max_tokens: usize,
    context: usize,
    /// Tokens the last turn used: the prompt and the reply.
    used: usize,
    /// Raised by Ctrl-C while a reply is drawn.
    interrupt: Arc<AtomicBool>,
}

impl Chat {
    /// Answers the user's `text`, streaming the reply.
    fn reply(&mut self, text: &str, sampler: &mut Sampler) -> Result<()> {
        // The whole conversation is re-read each turn; the oldest turns go when it no
        // longer fits.
        let Some(ids) = self.conversation.ask(&self.loaded, text, self.context)? else {
            eprintln!(
                "(the conversation no longer fits the context of {} tokens; older turns dropped)",
                self.context
            );
            return Ok(());
        };
        let mut session = Session::new(&self.loaded.model, self.context);
        let budget = self.max_tokens.min(self.context - ids.len());
        self.interrupt.store(false, Ordering::SeqCst);
        let stop = self.interrupt.clone();
        let (generation, reply) = stream(
            &mut session,
            &self.loaded.tokenizer,
            &ids,
            sampler,
            budget,
            &mut || !stop.load(Ordering::SeqCst),
        )?;
        crate::out("\n")?;
        self.interrupt.store(false, Ordering::SeqCst);
        self.used = ids.len() + generation.tokens.len();
        match generation.stop {
            StopReason::Cancelled => {
                eprintln!("(reply stopped; the conversation keeps what was said so far)")
            }
            StopReason::Length if budget == self.max_tokens => eprintln!(
                "(the reply reached the limit of {} tokens; /set max-tokens N allows more)",
                self.max_tokens
            ),
            StopReason::Length | StopReason::ContextFull => eprintln!(
                "(the reply filled the context of {} tokens; /reset or /save and start anew)",
                self.context
            ),
            _ => {}
        }
        eprintln!("({})", stats(&generation));
        self.conversation.answered(&reply);
        Ok(())
    }

    /// Runs the slash command `line` (without its slash).
    fn command(&mut self, line: &str, sampler: &mut Sampler) -> Result<Flow> {
        let (name, rest) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(n, r)| (n, r.trim()));
        match name {
            "quit" | "exit" | "bye" => return Ok(Flow::Quit),
            "help" | "?" => eprintln!("{HELP}"),
            "reset" => {
                self.conversation.history.clear();
                self.used = 0;
                let system = match &self.conversation.system {
                    Some(s) => format!("the system turn {s:?}"),
                    None => "no system turn".to_string(),
                };
                eprintln!("(conversation cleared; kept: {system} and the sampling settings)");
            }
            "system" => {
                self.conversation.system = (!rest.is_empty()).then(|| rest.to_string());
                self.conversation.history.clear();
                self.used = 0;
                eprintln!("(system turn set; conversation cleared)");
            }
            "context" => eprintln!(
                "(context: {} of {} tokens used by the last turn; {} turns in the conversation)",
                self.used,
                self.context,
                self.conversation.history.len()
            ),
            "save" => {
                let path = Path::new(rest);
                if rest.is_empty() {
                    bail!("/save FILE: give a file name");
                }
                let turns = self.conversation.messages();
                let json = serde_json::to_string_pretty(&turns)?;
                fmlab_formats::write_atomically(path, format!("{json}\n").as_bytes())?;
                eprintln!("(saved {} turns to {})", turns.len(), path.display());
            }
            "load" => {
                if rest.is_empty() {
                    bail!("/load FILE: give a file name");
                }
                let n = self.conversation.load(Path::new(rest))?;
                eprintln!("(loaded {n} turns from {rest})");
            }
            "set" => {
                self.set(rest)?;
                *sampler = Sampler::new(self.config.clone())?;
            }
            _ => bail!("unknown command /{name}: /help lists them"),
        }
        Ok(Flow::Continue)
    }

    /// `/set` alone shows the settings; `/set NAME VALUE` changes one.
    fn set(&mut self, rest: &str) -> Result<()> {
        let Some((name, value)) = rest.split_once(char::is_whitespace) else {
            if !rest.is_empty() {
                bail!("/set {rest}: give a value (/set {rest} VALUE)");
            }
            eprintln!(
                "(sampler: {}; seed {}; max-tokens {}; context {})",
                self.config.describe(),
                self.config.seed,
                self.max_tokens,
                self.context
            );
            return Ok(());
        };
        if matches!(name, "max-tokens" | "max_tokens") {
            self.max_tokens = crate::numbers::count(value.trim())
                .map_err(|e| anyhow::anyhow!("/set max-tokens: {e}"))?
                as usize;
        } else {
            self.config.set(name, value)?;
        }
        eprintln!("({name} = {}; from the next reply)", value.trim());
        Ok(())
    }
}

/// Ctrl-C raises the returned flag: a reply being drawn stops at the next token. A second
/// Ctrl-C before the flag is lowered again leaves at once.
fn install_interrupt() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler = flag.clone();
    ctrlc::set_handler(move || {
        if handler.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })
    .context("installing the Ctrl-C handler")?;
    Ok(flag)
}

/// One message read from the user.
enum Read {
    Text(String),
    /// Ctrl-C at the prompt (a second one in a row leaves).
    Interrupted,
    Quit,
}

/// The user's side: a line editor with history on a terminal, plain lines otherwise.
struct Input {
    editor: Option<rustyline::DefaultEditor>,
    lines: std::io::Lines<std::io::StdinLock<'static>>,
    /// The last read was a Ctrl-C.
    interrupted: bool,
}

impl Input {
    fn new() -> Result<Self> {
        let editor = if std::io::stdin().is_terminal() {
            let config = rustyline::Config::builder()
                .auto_add_history(false)
                .bracketed_paste(true)
                .build();
            Some(
                rustyline::DefaultEditor::with_config(config)
                    .context("starting the line editor")?,
            )
        } else {
            None
        };
        Ok(Input {
            editor,
            lines: std::io::stdin().lock().lines(),
            interrupted: false,
        })
    }

    /// One line: `None` at the end of input.
    fn line(&mut self, prompt: &str) -> Result<Option<String>, ReadlineError> {
        match &mut self.editor {
            Some(editor) => match editor.readline(prompt) {
                Ok(line) => Ok(Some(line)),
                Err(ReadlineError::Eof) => Ok(None),
                Err(e) => Err(e),
            },
            None => self.lines.next().transpose().map_err(ReadlineError::Io),
        }
    }

    /// The next message: one line, a pasted block, or the lines between two `"""`.
    fn read(&mut self) -> Result<Read> {
        let first = match self.line("> ") {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(Read::Quit),
            Err(ReadlineError::Interrupted) if self.interrupted => return Ok(Read::Quit),
            Err(ReadlineError::Interrupted) => {
                self.interrupted = true;
                return Ok(Read::Interrupted);
            }
            Err(e) => return Err(e).context("reading the terminal"),
        };
        self.interrupted = false;
        let Some(start) = first.trim_start().strip_prefix("\"\"\"") else {
            self.remember(&first);
            return Ok(Read::Text(first));
        };
        // A block: everything up to a line that ends with """.
        let mut text = String::new();
        let mut line = start.to_string();
        loop {
            if let Some(end) = line.trim_end().strip_suffix("\"\"\"") {
                text.push_str(end);
                break;
            }
            text.push_str(&line);
            text.push('\n');
            line = match self.line("... ") {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(ReadlineError::Interrupted) => {
                    eprintln!("(message dropped)");
                    return Ok(Read::Interrupted);
                }
                Err(e) => return Err(e).context("reading the terminal"),
            };
        }
        self.remember(&format!("\"\"\"{text}\"\"\""));
        Ok(Read::Text(text))
    }

    fn remember(&mut self, entry: &str) {
        if let Some(editor) = &mut self.editor {
            let _ = editor.add_history_entry(entry);
        }
    }
}
