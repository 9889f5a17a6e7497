//! `fmlab tokenizer train`: byte-level BPE trained on text or JSONL files, written as a
//! Hugging Face `tokenizer.json` (the work is `fmlab_data::corpus::train_tokenizer`);
//! `fmlab tokenizer compare`: premiums over a parallel corpus (`fmlab_data::premium`);
//! `fmlab tokenizer encode`: one-thread encoding speed.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use fmlab_data::corpus::{train_tokenizer, TrainProgress};
use fmlab_tokenizer::train::DEFAULT_SPECIALS;
use serde::Serialize;

#[derive(Subcommand)]
pub enum TokenizerCommand {
    /// Train a byte-level BPE tokenizer (GPT-4's split pattern) and write tokenizer.json.
    Train(TrainArgs),
    /// Tokens per language, and the premium over a reference language, for one or more
    /// tokenizers over a parallel corpus (a world's parallel.jsonl, or any JSONL of
    /// {"lang": "text", …} lines).
    Compare(CompareArgs),
    /// Encode a file on one thread and report the speed (and optionally write the ids).
    Encode(EncodeArgs),
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct EncodeArgs {
    /// A tokenizer.json, a GGUF model, a model name, or a folder with GPT-2's encoder.json
    /// and vocab.bpe.
    tokenizer: String,
    /// The text to encode.
    #[arg(long)]
    file: PathBuf,
    /// Write the ids as a JSON array here.
    #[arg(long)]
    ids: Option<PathBuf>,
    /// One JSON object instead of the line.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct EncodeReport {
    bytes: usize,
    tokens: usize,
    seconds: f64,
    megabytes_per_second: f64,
}

fn encode(args: EncodeArgs) -> Result<()> {
    let tok = crate::model::load_tokenizer(&args.tokenizer)?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {} (UTF-8 text)", args.file.display()))?;
    let started = std::time::Instant::now();
    let ids = tok.encode(&text, false, false);
    let seconds = started.elapsed().as_secs_f64();
    if let Some(path) = &args.ids {
        fmlab_formats::write_atomically(path, &serde_json::to_vec(&ids)?)?;
    }
    let report = EncodeReport {
        bytes: text.len(),
        tokens: ids.len(),
        seconds,
        megabytes_per_second: text.len() as f64 / 1e6 / seconds.max(1e-9),
    };
    if args.json {
        return crate::out(&format!("{}\n", serde_json::to_string(&report)?));
    }
    crate::out(&format!(
        "{} tokens from {:.2} MB in {:.3} s: {:.2} MB/s (one thread)\n",
        report.tokens,
        report.bytes as f64 / 1e6,
        report.seconds,
        report.megabytes_per_second
    ))
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct CompareArgs {
    /// Tokenizers: tokenizer.json files, GGUF models or model names.
    #[arg(required = true)]
    tokenizers: Vec<String>,
    /// The parallel corpus.
    #[arg(long)]
    parallel: PathBuf,
    /// The language premiums are relative to.
    #[arg(long, default_value = "en")]
    reference: String,
    /// A PNG of the premiums.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// The rows as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

fn compare(args: CompareArgs) -> Result<()> {
    let lines = fmlab_data::premium::read_parallel(&args.parallel)?;
    let mut rows = Vec::new();
    for name in &args.tokenizers {
        let tok = crate::model::load_tokenizer(name)?;
        rows.push(fmlab_data::premium::tokenizer_premiums(
            name,
            &tok,
            &lines,
            &args.reference,
        )?);
    }
    if let Some(path) = &args.plot {
        let categories: Vec<String> = rows[0].languages.iter().map(|l| l.lang.clone()).collect();
        crate::plot::BarPlot {
            title: &format!("Tokens per language relative to {}", args.reference),
            y_label: "premium (tokens / reference tokens)",
            categories,
            series: rows
                .iter()
                .map(|r| {
                    let label = std::path::Path::new(&r.tokenizer)
                        .file_name()
                        .map_or(r.tokenizer.clone(), |f| f.to_string_lossy().into_owned());
                    (label, r.languages.iter().map(|l| l.premium).collect())
                })
                .collect(),
        }
        .write_png(path)?;
    }
    if args.json {
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    let mut t = format!(
        "{} parallel lines; premium = tokens / {} tokens for the same lines\n\n",
        lines.len(),
        args.reference
    );
    for r in &rows {
        t.push_str(&format!(
            "{}\n  lang      tokens      bytes  bytes/token  premium\n",
            r.tokenizer
        ));
        for l in &r.languages {
            t.push_str(&format!(
                "  {:<6} {:>9} {:>10} {:>12.2} {:>8.2}\n",
                l.lang,
                l.tokens,
                l.bytes,
                l.bytes_per_token(),
                l.premium
            ));
        }
        t.push('\n');
    }
    if let Some(p) = &args.plot {
        t.push_str(&format!("plot: {}\n", p.display()));
    }
    crate::out(&t)
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Text files, or JSONL files whose lines have a "text" field (a world's corpus.jsonl).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Tokens in all: the special tokens, the 256 bytes and the merges.
    #[arg(long, default_value = "8192", value_parser = crate::numbers::count)]
    vocab_size: u64,
    /// Where to write the tokenizer.
    #[arg(long, default_value = "tokenizer.json")]
    out: PathBuf,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Summary {
    out: String,
    vocab_size: usize,
    merges: usize,
    bytes: u64,
    seconds: f64,
}

pub fn run(cmd: TokenizerCommand) -> Result<()> {
    match cmd {
        TokenizerCommand::Train(args) => train(args),
        TokenizerCommand::Compare(args) => compare(args),
        TokenizerCommand::Encode(args) => encode(args),
    }
}

fn train(args: TrainArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let tty = std::io::stderr().is_terminal();
    let trained = train_tokenizer(
        &args.files,
        args.vocab_size as usize,
        &DEFAULT_SPECIALS,
        &args.out,
        |p| {
            if !tty {
                return;
            }
            match p {
                TrainProgress::Reading { bytes } => {
                    eprint!("\rreading {:.1} MB", bytes as f64 / 1e6)
                }
                TrainProgress::Read { bytes } => {
                    eprintln!("\rread {:.1} MB; merging …", bytes as f64 / 1e6)
                }
                TrainProgress::Merges { done, total } => eprint!("\rmerges {done} / {total}"),
                TrainProgress::Merged => eprintln!(),
            }
        },
    )?;
    let summary = Summary {
        out: args.out.display().to_string(),
        vocab_size: trained.bpe.vocab_size(),
        merges: trained.bpe.merges.len(),
        bytes: trained.bytes,
        seconds: started.elapsed().as_secs_f64(),
    };
    if summary.vocab_size < args.vocab_size as usize {
        eprintln!(
            "note: {} tokens, not the {} asked: after {} merges no pair of tokens occurs twice in the text (give more text for a larger vocabulary)",
            summary.vocab_size, args.vocab_size, summary.merges
        );
    }
    if args.json {
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(&summary)?));
    }
    crate::out(&format!(
        "{}: {} tokens ({} merges) from {:.1} MB in {:.1} s\n",
        summary.out,
        summary.vocab_size,
        summary.merges,
        summary.bytes as f64 / 1e6,
        summary.seconds
    ))
}
