//! `fmlab data tokenize`: documents (JSONL with "text", and optionally "domain" and "lang")
//! into token shards with a manifest (the work is `fmlab_data::shards::write_shards`).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use fmlab_data::shards::{write_shards, ShardProgress, ShardSettings, Tokenized};

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
#[command(allow_negative_numbers = true)]
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
    #[arg(value_parser = crate::numbers::integer::<u64>, long, default_value = "0")]
    seed: u64,
    /// Tokens per shard at most.
    #[arg(long, default_value = "64M", value_parser = crate::numbers::count)]
    shard_tokens: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Tokenize(args) => tokenize(args),
        DataCommand::Preferences(args) => crate::eval_cmd::preferences(args),
    }
}

fn tokenize(args: TokenizeArgs) -> Result<()> {
    let tok = crate::model::load_tokenizer(&args.tokenizer)?;
    let settings = ShardSettings {
        tokenizer: fmlab_data::shards::tokenizer_id(&args.tokenizer)?,
        val_fraction: args.val_fraction,
        seed: args.seed,
        shard_tokens: args.shard_tokens,
        // A tokenizer.json file travels with the shards (a model's stays in the model).
        tokenizer_file: Some(PathBuf::from(&args.tokenizer))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json")),
    };
    let tty = std::io::stderr().is_terminal();
    let Tokenized {
        manifest: m,
        documents,
    } = write_shards(&args.files, &tok, &args.out, &settings, |p| {
        if tty {
            match p {
                ShardProgress::Documents(n) => eprint!("\r{n} documents"),
                ShardProgress::Read => eprintln!(),
            }
        }
    })?;
    if args.json {
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(&m)?));
    }
    crate::out(&format!(
        "{}: {} documents, {} train and {} val tokens in {} shards ({}-bit ids)\n",
        args.out.display(),
        documents,
        m.train_tokens,
        m.val_tokens,
        m.shards.len(),
        m.width * 8
    ))
}
