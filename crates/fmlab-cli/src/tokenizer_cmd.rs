//! `fmlab tokenizer train`: byte-level BPE trained on text or JSONL files, written as a
//! Hugging Face `tokenizer.json`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use fmlab_tokenizer::train::DEFAULT_SPECIALS;
use fmlab_tokenizer::BpeTrainer;
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
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct CompareRow {
    tokenizer: String,
    languages: Vec<fmlab_data::premium::LangCost>,
}

fn compare(args: CompareArgs) -> Result<()> {
    let lines = fmlab_data::premium::read_parallel(&args.parallel)?;
    let mut rows = Vec::new();
    for name in &args.tokenizers {
        let tok = crate::model::load_tokenizer(name)?;
        let languages = fmlab_data::premium::premiums(&lines, &args.reference, |t| {
            tok.encode(t, false, false).len()
        })?;
        rows.push(CompareRow {
            tokenizer: name.clone(),
            languages,
        });
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
                l.bytes as f64 / l.tokens.max(1) as f64,
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

#[derive(serde::Deserialize)]
struct TextLine {
    text: String,
}

pub fn run(cmd: TokenizerCommand) -> Result<()> {
    match cmd {
        TokenizerCommand::Train(args) => train(args),
        TokenizerCommand::Compare(args) => compare(args),
        TokenizerCommand::Encode(args) => encode(args),
    }
}

/// Feeds JSONL documents (their `text`) or plain text files, paragraph by paragraph, to
/// a trainer.
pub fn feed_files(trainer: &mut BpeTrainer, files: &[std::path::PathBuf], tty: bool) -> Result<()> {
    for path in files {
        let file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let jsonl = path.extension().is_some_and(|e| e == "jsonl");
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        if jsonl {
            for (i, line) in reader.lines().enumerate() {
                let line = line.with_context(|| format!("reading {}", path.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let doc: TextLine = serde_json::from_str(&line).with_context(|| {
                    format!(
                        "{} line {}: expected an object with a \"text\" field",
                        path.display(),
                        i + 1
                    )
                })?;
                trainer.feed(&doc.text);
                if tty && i.is_multiple_of(10_000) {
                    eprint!("\rreading {:.1} MB", trainer.bytes_seen() as f64 / 1e6);
                }
            }
        } else {
            let mut text = String::new();
            let mut reader = reader;
            loop {
                text.clear();
                // Paragraph by paragraph keeps memory flat on large files.
                let mut para = String::new();
                let mut read_any = false;
                loop {
                    let mut line = String::new();
                    let n = reader
                        .read_line(&mut line)
                        .with_context(|| format!("{}: not UTF-8 text", path.display()))?;
                    if n == 0 {
                        break;
                    }
                    read_any = true;
                    let blank = line.trim().is_empty();
                    para.push_str(&line);
                    if blank && para.len() > 4096 {
                        break;
                    }
                }
                if !read_any {
                    break;
                }
                trainer.feed(&para);
            }
        }
    }
    Ok(())
}

fn train(args: TrainArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let mut trainer = BpeTrainer::new(args.vocab_size as usize, &DEFAULT_SPECIALS)?;
    let tty = std::io::stderr().is_terminal();
    feed_files(&mut trainer, &args.files, tty)?;
    if tty {
        eprintln!(
            "\rread {:.1} MB; merging …",
            trainer.bytes_seen() as f64 / 1e6
        );
    }
    let bytes = trainer.bytes_seen();
    if bytes == 0 {
        bail!("the training files hold no text");
    }
    let trained = trainer.train(|done, total| {
        if tty {
            eprint!("\rmerges {done} / {total}");
        }
    })?;
    if tty {
        eprintln!();
    }
    let json = serde_json::to_vec(&trained.to_tokenizer_json())?;
    fmlab_formats::write_atomically(&args.out, &json)?;
    let summary = Summary {
        out: args.out.display().to_string(),
        vocab_size: trained.vocab_size(),
        merges: trained.merges.len(),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    };
    if args.json {
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(&summary)?));
    }
    crate::out(&format!(
        "{}: {} tokens ({} merges) from {:.1} MB in {:.1} s\n",
        summary.out,
        summary.vocab_size,
        summary.merges,
        bytes as f64 / 1e6,
        summary.seconds
    ))
}
