//! `fmlab curate mix` and `fmlab curate train-classifier`: the curation pipeline's two
//! companions (the work is fmlab_curate::mix and fmlab_curate::classifier).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use fmlab_curate::mix::{cut, read_sources, write, MixOptions};

#[derive(Args)]
pub struct MixArgs {
    /// Curation folders (their kept documents; for a dry run, those no block dropped) or
    /// JSONL files.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    /// The mix as JSONL, for `fmlab data tokenize` (its report beside it, .mix.json).
    #[arg(long)]
    out: PathBuf,
    /// Metadata fields that group documents (`language` is the language tag, else `lang`).
    #[arg(long, value_delimiter = ',', default_value = "language")]
    by: Vec<String>,
    /// Target shares by group, e.g. en=0.7,fr=0.2,sw=0.1 (with --by language,domain:
    /// en/biography=0.3,en/*=0.4; `*` matches any value). Unlisted groups are left out.
    #[arg(long, conflicts_with = "tokens")]
    shares: Option<String>,
    /// Target token counts by group instead, e.g. en=5M,sw=1M.
    #[arg(long)]
    tokens: Option<String>,
    /// Total tokens of a mix by shares (default: the most that keeps every group within
    /// --max-epochs).
    #[arg(long, value_parser = crate::numbers::count)]
    total: Option<u64>,
    /// Passes over a group allowed when the total is chosen for you.
    #[arg(long, default_value = "1")]
    max_epochs: f64,
    /// Tokens counted with this tokenizer (tokenizer.json, GGUF or model name); default:
    /// whitespace-separated words.
    #[arg(long)]
    tokenizer: Option<String>,
    /// Blocks whose decisions a dry run's documents are not held to (e.g. minhash).
    #[arg(long, value_delimiter = ',')]
    ignore_block: Vec<String>,
    #[arg(long, default_value = "0", value_parser = crate::numbers::integer::<u64>)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn targets(text: &str, counts: bool) -> Result<Vec<(String, f64)>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let Some((k, v)) = item.split_once('=') else {
                bail!("{item:?}: write GROUP=VALUE");
            };
            let v = if counts {
                crate::numbers::count(v.trim()).map_err(anyhow::Error::msg)? as f64
            } else {
                v.trim()
                    .parse::<f64>()
                    .map_err(|e| anyhow::anyhow!("{item:?}: {e}"))?
            };
            Ok((k.trim().to_string(), v))
        })
        .collect()
}

pub fn mix(args: MixArgs) -> Result<()> {
    let opts = MixOptions {
        by: args.by.clone(),
        shares: args
            .shares
            .as_deref()
            .map(|s| targets(s, false))
            .transpose()?
            .unwrap_or_default(),
        tokens: args
            .tokens
            .as_deref()
            .map(|s| targets(s, true))
            .transpose()?
            .unwrap_or_default(),
        total: args.total.map(|t| t as f64),
        max_epochs: args.max_epochs,
        ignore_blocks: args.ignore_block.clone(),
        seed: args.seed,
    };
    let docs = read_sources(&args.sources, &args.ignore_block)?;
    if docs.is_empty() {
        bail!("the sources hold no documents");
    }
    let (out, mut report) = match &args.tokenizer {
        Some(name) => {
            let tok = crate::model::load_tokenizer(name)?;
            cut(docs, &opts, &|t: &str| tok.encode(t, false, false).len())?
        }
        None => cut(docs, &opts, &|t: &str| t.split_whitespace().count())?,
    };
    report.sources = args
        .sources
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    write(&args.out, &out, &report)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let unit = if args.tokenizer.is_some() {
        "tokens"
    } else {
        "words"
    };
    println!(
        "{:<24} {:>9} {:>12} {:>12} {:>12} {:>7}",
        "group", "docs", unit, "target", "taken", "epochs"
    );
    for (k, g) in &report.groups {
        println!(
            "{k:<24} {:>9} {:>12.0} {:>12.0} {:>12.0} {:>7.2}",
            g.documents, g.tokens, g.target_tokens, g.taken_tokens, g.epochs
        );
    }
    for (k, n) in &report.left_out {
        println!("{k:<24} {n:>9} left out (no target)");
    }
    println!(
        "{} documents, {:.0} {unit} in {}",
        report.documents,
        report.tokens,
        args.out.display()
    );
    Ok(())
}

#[derive(Args)]
pub struct TrainClassifierArgs {
    /// Labelled JSONL files (a world's corpus.jsonl with --label-field domain works as is).
    #[arg(required = true)]
    data: Vec<PathBuf>,
    /// The model file (for `kind = "classifier"` blocks, option `model`).
    #[arg(long)]
    out: PathBuf,
    /// The field holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// The field holding the label.
    #[arg(long, default_value = "label")]
    label_field: String,
    /// Share of every label held out to measure accuracy.
    #[arg(long, default_value = "0.1")]
    validation_share: f64,
    /// Embedding size.
    #[arg(long, default_value = "16")]
    dim: usize,
    /// Word n-grams up to this length (fastText's -wordNgrams).
    #[arg(long, default_value = "2")]
    word_ngrams: usize,
    /// Character n-grams from 3 to this length (0: none; fastText's -maxn).
    #[arg(long, default_value = "5")]
    max_char_ngram: usize,
    #[arg(long, default_value = "5")]
    epochs: usize,
    /// Initial learning rate, decayed linearly to 0.
    #[arg(long, default_value = "0.5")]
    learning_rate: f32,
    #[arg(long, default_value = "0", value_parser = crate::numbers::integer::<u64>)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn train_classifier(args: TrainClassifierArgs) -> Result<()> {
    use fmlab_curate::classifier::{train_from_jsonl, TrainFileOptions, TrainOptions};
    let opts = TrainFileOptions {
        text_field: args.text_field.clone(),
        label_field: args.label_field.clone(),
        validation_share: args.validation_share,
        train: TrainOptions {
            dim: args.dim,
            word_ngrams: args.word_ngrams,
            min_char_ngram: if args.max_char_ngram == 0 { 0 } else { 3 },
            max_char_ngram: args.max_char_ngram,
            epochs: args.epochs,
            learning_rate: args.learning_rate,
            seed: args.seed,
            ..TrainOptions::default()
        },
    };
    let (model, report) = train_from_jsonl(&args.data, &opts)?;
    model.save(&args.out)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{:<20} {:>8} {:>10} {:>9}",
        "label", "train", "held out", "accuracy"
    );
    for l in &report.labels {
        println!(
            "{:<20} {:>8} {:>10} {:>8.1}%",
            l.label,
            l.train,
            l.validation,
            100.0 * l.accuracy
        );
    }
    println!(
        "accuracy {:.1}% on {} held-out records; trained on {} in {:.1} s; model in {}",
        100.0 * report.accuracy,
        report.validation_examples,
        report.train_examples,
        report.train_seconds,
        args.out.display()
    );
    Ok(())
}
