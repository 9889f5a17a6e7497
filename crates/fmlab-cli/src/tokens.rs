//! `fmlab tokenize` and `fmlab perplexity`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use crate::model::{load, load_tokenizer};

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct TokenizeArgs {
    /// A .gguf file, a model name, or a Hugging Face tokenizer.json.
    model: String,
    /// The text to tokenize.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    text: Option<String>,
    /// Tokenize this file's contents instead.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Add the BOS token when the model's metadata asks for one.
    #[arg(long)]
    bos: bool,
    /// Parse special-token text (`<|im_start|>`) as those tokens.
    #[arg(long)]
    special: bool,
    /// `{"ids": [...], "pieces": [...]}` instead of one token per line.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct TokenizeReport {
    ids: Vec<u32>,
    pieces: Vec<String>,
}

pub fn run_tokenize(args: TokenizeArgs) -> Result<()> {
    let text = match (&args.text, &args.file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, None) => bail!("give TEXT or --file FILE"),
    };
    let tok = load_tokenizer(&args.model)?;
    let ids = tok.encode(&text, args.bos, args.special);
    let pieces = ids
        .iter()
        .map(|&id| tok.piece(id).map(str::to_string))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if args.json {
        let report = TokenizeReport { ids, pieces };
        return crate::out(&format!("{}\n", serde_json::to_string(&report)?));
    }
    let mut s = String::new();
    for (id, piece) in ids.iter().zip(&pieces) {
        s.push_str(&format!("{id:>7}  {piece:?}\n"));
    }
    s.push_str(&format!("{} tokens\n", ids.len()));
    crate::out(&s)
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct PerplexityArgs {
    /// The model: a pulled name (`fmlab pull --list`), a .gguf file, a training run or
    /// checkpoint folder, or a Hugging Face folder.
    model: String,
    /// The text to score.
    file: PathBuf,
    /// Tokens per window (each window starts from an empty context).
    #[arg(long, default_value = "512", value_parser = crate::numbers::count)]
    ctx: u64,
    /// Threads (default: all cores).
    #[arg(long, value_parser = crate::numbers::count)]
    threads: Option<u64>,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run_perplexity(args: PerplexityArgs) -> Result<()> {
    crate::model::with_threads(args.threads, || perplexity_on_pool(args))
}

fn perplexity_on_pool(args: PerplexityArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let loaded = load(&args.model)?;
    let max = loaded.model.spec.context_length;
    if args.ctx > max {
        bail!("--ctx {}: the model's context is {max} tokens", args.ctx);
    }
    // Plain tokenization, no BOS: the protocol of llama.cpp's reference numbers.
    let tokens = loaded.tokenizer.encode(&text, false, false);
    // `\r` progress only on a terminal: in a log it would be one long line.
    let quiet = args.json || !std::io::stderr().is_terminal();
    let result =
        fmlab_eval::perplexity(&loaded.model, &tokens, args.ctx as usize, |done, total| {
            if !quiet {
                eprint!("\rwindow {done}/{total}");
            }
        })?;
    if !quiet {
        eprintln!();
    }
    if args.json {
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&result)?))
    } else {
        crate::out(&format!(
            "perplexity {:.4} (mean NLL {:.4} nats) over {} tokens in {} windows of {}\n",
            result.perplexity, result.mean_nll, result.tokens_scored, result.windows, result.window
        ))
    }
}
