//! `fmlab data tokenize`: documents (JSONL with "text", and optionally "domain" and "lang")
//! into token shards with a manifest.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use fmlab_data::shards::ShardWriter;
use sha2::{Digest, Sha256};

#[derive(Subcommand)]
pub enum DataCommand {
    /// Tokenize documents into shards (u16/u32 ids, document boundaries kept), split into
    /// train and val by document, with a manifest.
    Tokenize(TokenizeArgs),
    /// On-policy preference pairs: sample k answers per prompt from a chat model, judge
    /// them, and pair the best with the worst.
    Preferences(crate::eval_cmd::PreferencesArgs),
}

#[derive(Args)]
pub struct TokenizeArgs {
    /// JSONL files of documents (a world's corpus.jsonl) or plain text files (one document).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A tokenizer.json, a GGUF model or a model name.
    #[arg(long)]
    tokenizer: String,
    /// Output folder for the shards and manifest.json.
    #[arg(long, default_value = "shards")]
    out: PathBuf,
    /// Share of documents held out for validation.
    #[arg(long, default_value = "0.01")]
    val_fraction: f64,
    /// Seed of the train/val split.
    #[arg(long, default_value = "0")]
    seed: u64,
    /// Tokens per shard at most.
    #[arg(long, default_value = "64M", value_parser = crate::numbers::count)]
    shard_tokens: u64,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Deserialize)]
struct Doc {
    text: String,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    lang: Option<String>,
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Tokenize(args) => tokenize(args),
        DataCommand::Preferences(args) => crate::eval_cmd::preferences(args),
    }
}

/// Encodes JSONL documents (`text`, optional `domain` and `lang`) or text files, each
/// ending with EOS, into token shards in `out`; returns the manifest and the documents.
pub fn write_shards(
    files: &[PathBuf],
    tok: &fmlab_tokenizer::Tokenizer,
    id: &str,
    out: &std::path::Path,
    val_fraction: f64,
    seed: u64,
    shard_tokens: u64,
) -> Result<(fmlab_data::shards::ShardManifest, u64)> {
    let eos = tok.vocab.eos;
    let mut writer = ShardWriter::new(
        out,
        tok.vocab_size() as u64,
        id,
        val_fraction,
        seed,
        shard_tokens,
    )?;
    let tty = std::io::stderr().is_terminal();
    let mut index = 0u64;
    let mut ids = Vec::new();
    for file in files {
        let f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
        let jsonl = file.extension().is_some_and(|e| e == "jsonl");
        let reader = std::io::BufReader::with_capacity(1 << 20, f);
        if !jsonl {
            let text = std::io::read_to_string(reader)
                .with_context(|| format!("{}: not UTF-8 text", file.display()))?;
            ids.clear();
            ids.extend(tok.encode(&text, false, false));
            ids.extend(eos);
            writer.add(index, &ids, None, None)?;
            index += 1;
            continue;
        }
        for (i, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", file.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let doc: Doc = serde_json::from_str(&line).with_context(|| {
                format!(
                    "{} line {}: expected an object with a \"text\" field",
                    file.display(),
                    i + 1
                )
            })?;
            ids.clear();
            ids.extend(tok.encode(&doc.text, false, false));
            // Documents end with the end-of-text token, so a model learns where they stop.
            ids.extend(eos);
            writer.add(index, &ids, doc.domain.as_deref(), doc.lang.as_deref())?;
            index += 1;
            if tty && index.is_multiple_of(20_000) {
                eprint!("\r{index} documents");
            }
        }
    }
    if tty {
        eprintln!();
    }
    if index == 0 {
        bail!("no documents in the input files");
    }
    Ok((writer.finish()?, index))
}

fn tokenize(args: TokenizeArgs) -> Result<()> {
    let tok = crate::model::load_tokenizer(&args.tokenizer)?;
    let path = std::path::Path::new(&args.tokenizer);
    let id = if path.is_file() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        format!("sha256:{:x}", Sha256::digest(&bytes))
    } else {
        args.tokenizer.clone()
    };
    let (m, index) = write_shards(
        &args.files,
        &tok,
        &id,
        &args.out,
        args.val_fraction,
        args.seed,
        args.shard_tokens,
    )?;
    if args.json {
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(&m)?));
    }
    crate::out(&format!(
        "{}: {} documents, {} train and {} val tokens in {} shards ({}-bit ids)\n",
        args.out.display(),
        index,
        m.train_tokens,
        m.val_tokens,
        m.shards.len(),
        m.width * 8
    ))
}
