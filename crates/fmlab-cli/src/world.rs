//! `fmlab world`: writes the seeded synthetic world; `fmlab world stats`: its mix.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use fmlab_data::world::RawConfig;
use fmlab_data::WorldConfig;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, allow_negative_numbers = true)]
pub struct WorldArgs {
    #[command(subcommand)]
    command: Option<WorldCommand>,
    /// Seed: the same seed and options give the same bytes.
    #[arg(value_parser = crate::numbers::integer::<u64>, long, default_value = "0")]
    seed: u64,
    /// Corpus size: 1MB for a smoke test, hundreds of MB for real runs.
    #[arg(long, default_value = "10MB", value_parser = crate::numbers::byte_size)]
    size: u64,
    /// Output folder.
    #[arg(long, default_value = "world")]
    out: PathBuf,
    /// Languages and their shares, e.g. en=0.85,fr=0.135,sw=0.015.
    #[arg(long, default_value = "en=0.85,fr=0.135,sw=0.015")]
    languages: String,
    /// Domains and their shares (biography, story, dialogue, encyclopedia, arithmetic,
    /// code, table), e.g. biography=0.5,story=0.5; default: all of them.
    #[arg(long)]
    domains: Option<String>,
    /// Share of people held out of all training data.
    #[arg(long, default_value = "0.1")]
    held_out: f64,
    /// Probability that a lowercase word has two letters swapped.
    #[arg(long, default_value = "0.01")]
    typo_rate: f64,
    /// Probability that a whole document is lowercased.
    #[arg(long, default_value = "0.03")]
    lowercase_rate: f64,
    /// Conversations, preference pairs and eval items per MB of corpus (at least 200 of
    /// each).
    #[arg(long, default_value = "2000")]
    sets_per_mb: f64,
    /// Also write the raw web: `raw.jsonl`, the corpus as web pages plus labelled crawl
    /// junk (boilerplate lines, near-duplicates, wrong-language pages, spam, markup,
    /// blocklisted URLs), and `raw-blocklist.txt`.
    #[arg(long)]
    raw: bool,
    /// Share of raw pages that are added junk pages (needs --raw).
    #[arg(long, default_value = "0.3", requires = "raw")]
    raw_share: f64,
    /// Relative weights of the added junk kinds (near_duplicate, wrong_language, spam,
    /// markup, blocklisted_url), e.g. spam=1,markup=1 (needs --raw).
    #[arg(
        long,
        default_value = "near_duplicate=0.3,wrong_language=0.2,spam=0.2,markup=0.2,blocklisted_url=0.1",
        requires = "raw"
    )]
    raw_kinds: String,
    /// Share of clean raw pages given boilerplate lines (needs --raw).
    #[arg(long, default_value = "0.3", requires = "raw")]
    raw_boilerplate: f64,
    /// Raw pages gather corpus documents up to a length drawn between these word counts
    /// (needs --raw).
    #[arg(long, default_value = "100..600", value_parser = word_range, requires = "raw")]
    raw_words: (u32, u32),
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// `MIN..MAX` words.
fn word_range(text: &str) -> std::result::Result<(u32, u32), String> {
    let (lo, hi) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?} is not MIN..MAX"))?;
    let n = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| format!("{s:?} is not a word count"))
    };
    Ok((n(lo)?, n(hi)?))
}

#[derive(Subcommand)]
enum WorldCommand {
    /// The mix of a written world by domain and language, and how often people are mentioned.
    Stats {
        /// A folder written by `fmlab world`.
        dir: PathBuf,
        /// Print the mix as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: WorldArgs) -> Result<()> {
    if let Some(WorldCommand::Stats { dir, json }) = args.command {
        return stats(&dir, json);
    }
    let mut config = WorldConfig {
        seed: args.seed,
        size: args.size,
        held_out: args.held_out,
        typo_rate: args.typo_rate,
        lowercase_rate: args.lowercase_rate,
        sets_per_mb: args.sets_per_mb,
        ..WorldConfig::default()
    };
    config.set_mix(&args.languages, args.domains.as_deref())?;
    if args.raw {
        let mut raw = RawConfig {
            junk_share: args.raw_share,
            boilerplate: args.raw_boilerplate,
            min_words: args.raw_words.0,
            max_words: args.raw_words.1,
            ..RawConfig::default()
        };
        raw.set_kinds(&args.raw_kinds)?;
        config.raw = Some(raw);
    }
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let summary = fmlab_data::write_world(&config, &args.out, |bytes| {
        if tty {
            eprint!(
                "\rcorpus {:.1} of {:.1} MB",
                bytes as f64 / 1e6,
                config.size as f64 / 1e6
            );
        }
    })?;
    if tty {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(&summary)?));
    }
    crate::out(&format!(
        "world (seed {}) in {}: {} documents, {:.1} MB of text ({:.1} MB/s); {} people, {} facts; {} conversations, {} preference pairs, {} eval items\n",
        config.seed,
        args.out.display(),
        summary.documents,
        summary.corpus_bytes as f64 / 1e6,
        summary.corpus_bytes as f64 / 1e6 / secs.max(1e-9),
        summary.people,
        summary.facts,
        summary.conversations,
        summary.preferences,
        summary.eval_items
    ))?;
    if let Some(raw) = &summary.raw {
        let kinds: Vec<String> = raw
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        crate::out(&format!(
            "raw web in {}: {} pages, {:.1} MB ({}; {} boilerplate lines)\n",
            args.out.join("raw.jsonl").display(),
            raw.documents,
            raw.bytes as f64 / 1e6,
            kinds.join(", "),
            raw.boilerplate_lines
        ))?;
    }
    Ok(())
}

fn stats(dir: &std::path::Path, json: bool) -> Result<()> {
    let s = fmlab_data::stats::world_stats(dir)?;
    if json {
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(&s)?));
    }
    let mut t = format!(
        "{}: {} documents, {:.2} MB of text\n\n",
        dir.display(),
        s.documents,
        s.bytes as f64 / 1e6
    );
    let table =
        |t: &mut String, title: &str, rows: &std::collections::BTreeMap<String, (u64, u64)>| {
            t.push_str(&format!(
                "{title:<14} {:>10} {:>8} {:>12} {:>8}\n",
                "documents", "share", "bytes", "share"
            ));
            for (name, (docs, bytes)) in rows {
                t.push_str(&format!(
                    "{name:<14} {docs:>10} {:>7.1}% {bytes:>12} {:>7.1}%\n",
                    100.0 * *docs as f64 / s.documents as f64,
                    100.0 * *bytes as f64 / s.bytes as f64
                ));
            }
            t.push('\n');
        };
    table(&mut t, "domain", &s.by_domain);
    table(&mut t, "language", &s.by_lang);
    t.push_str("people by mentions in the corpus\n");
    let max = s
        .mention_histogram
        .iter()
        .map(|x| x.1)
        .max()
        .unwrap_or(1)
        .max(1);
    for (bucket, n) in &s.mention_histogram {
        let bar = "█".repeat((40 * n / max) as usize);
        t.push_str(&format!("{bucket:>6} {n:>8}  {bar}\n"));
    }
    t.push_str("\nfacts by split\n");
    for (split, n) in &s.facts_by_split {
        t.push_str(&format!("{split:>10} {n:>8}\n"));
    }
    crate::out(&t)
}
