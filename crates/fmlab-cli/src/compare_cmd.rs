//! `fmlab compare MODEL…`: a model-selection card, one column per model — what each costs
//! (parameters, file, memory at a context length, prefill and decode speed here) and how it
//! does (tokens per language, perplexity and bits per byte per language and domain, task
//! scores with 95% intervals). The measuring is `fmlab_eval::card`; this module loads the
//! models, prints progress, the table or JSON, and with `--out DIR` writes card.json,
//! card.html and its PNG bar charts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use fmlab_eval::card::{self, Card, CardConfig, Subject};
use serde::Serialize;

use crate::numbers::{bytes, grouped};

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct CompareArgs {
    /// Models, one column each (the first is the reference for token counts): pulled names
    /// (`fmlab pull --list`), .gguf files, training runs or checkpoint folders, Hugging Face
    /// folders. One model gives a card of its own.
    #[arg(required = true)]
    pub models: Vec<String>,
    /// Tasks, as `fmlab eval run --tasks` takes them (lm-evaluation-harness task or group
    /// files, folders of them, names found there or in --include-path, world folders), run
    /// as it runs them.
    #[arg(long, num_args = 1..)]
    pub tasks: Vec<String>,
    /// Texts for tokens per language and perplexity: JSONL files (`text`, optional `lang`
    /// and `domain`, such as a world's corpus.jsonl) or plain text files (one document
    /// each, its domain the file's name).
    #[arg(long, num_args = 1..)]
    pub texts: Vec<PathBuf>,
    /// A parallel corpus (a world's parallel.jsonl: one line per sentence, one text per
    /// language) for tokenizer premiums over --reference on the same content.
    #[arg(long)]
    pub parallel: Option<PathBuf>,
    /// The language the --parallel premiums are relative to.
    #[arg(long, default_value = "en")]
    pub reference: String,
    /// The context length the memory (weights + KV cache) is given for.
    #[arg(value_parser = crate::numbers::integer::<u64>, long, default_value_t = 4096)]
    pub ctx: u64,
    /// Prompt tokens prefilled in each speed run.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens decoded after the prompt in each speed run.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = 32)]
    pub new_tokens: usize,
    /// Speed runs per model (the median is reported); 0 skips the speed test.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = 3)]
    pub speed_runs: usize,
    /// Threads for the models (default: one per core); the card states the count.
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    pub threads: Option<u64>,
    #[command(flatten)]
    pub run: crate::eval_cmd::TaskRunArgs,
    /// Write card.json, card.html and the PNG charts into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print card.json instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// card.json: the settings and one card per model.
#[derive(Serialize)]
struct Comparison<'a> {
    ctx: u64,
    threads: usize,
    texts: &'a [PathBuf],
    tasks: &'a [String],
    parallel: Option<&'a Path>,
    note: &'static str,
    cards: Vec<Card>,
}

const NOTE: &str = "perplexity per token depends on the tokenizer; compare models by bits \
    per byte. Memory: weights as fmlab holds them + an f16 KV cache of ctx tokens. Speeds \
    are medians of the runs on this machine.";

pub fn run(args: CompareArgs) -> Result<()> {
    let config = CardConfig {
        ctx: args.ctx,
        prompt_tokens: args.prompt_tokens,
        new_tokens: args.new_tokens,
        speed_runs: args.speed_runs,
        max_length: args.run.max_length,
        batch_size: args.run.batch_size,
        run: args.run.run_config(),
    };
    // Everything that does not need a model is checked before the first one loads.
    card::check_config(&config)?;
    let texts = card::read_texts(&args.texts)?;
    let mut suite = fmlab_eval::task_suite(&args.tasks, &args.run.include_path)?;
    let dropped = suite.drop_chat_tasks();
    if !dropped.is_empty() {
        eprintln!(
            "{}: skipped (they ask through a chat template; `fmlab eval run` runs them per model)",
            dropped.join(", ")
        );
    }
    let tasks = suite.tasks;
    let parallel = match &args.parallel {
        Some(p) => Some(
            fmlab_data::premium::read_parallel(p)
                .with_context(|| format!("--parallel {}", p.display()))?,
        ),
        None => None,
    };
    let mut cards = Vec::with_capacity(args.models.len());
    let mut threads = 0;
    for m in &args.models {
        let (c, t) = crate::model::with_threads(args.threads, || {
            let inspection = crate::inspect::inspect_model(m, None, 1)?;
            let loaded = crate::model::load(m)?;
            let subject = Subject {
                model_arg: m,
                inspection: &inspection,
                model: &loaded.model,
                tokenizer: &loaded.tokenizer,
            };
            let mut last = std::time::Instant::now();
            let mut progress = |stage: &str, done: usize, total: usize| {
                if done == total || last.elapsed().as_secs_f64() > 1.0 {
                    eprint!("\r{m}: {stage} {done}/{total}\x1b[K");
                    last = std::time::Instant::now();
                }
            };
            let parallel = parallel.as_deref().map(|p| (p, args.reference.as_str()));
            let c = card::measure(&subject, &texts, &tasks, parallel, &config, &mut progress)?;
            Ok((c, rayon::current_num_threads()))
        })?;
        eprintln!("\r{m}: measured\x1b[K");
        threads = t;
        cards.push(c);
    }
    card::relate_cards(&mut cards);
    let comparison = Comparison {
        ctx: args.ctx,
        threads,
        texts: &args.texts,
        tasks: &args.tasks,
        parallel: args.parallel.as_deref(),
        note: NOTE,
        cards,
    };
    let json = serde_json::to_string_pretty(&comparison)? + "\n";
    let rows = table_rows(&comparison.cards, args.ctx);
    if let Some(dir) = &args.out {
        write_out(dir, &comparison, &rows, &json)?;
        eprintln!("wrote {}", dir.join("card.html").display());
    }
    if args.json {
        return crate::out(&json);
    }
    crate::out(&format_table(&comparison.cards, &rows))
}

/// A row of the card: its section, label and one cell per model.
struct Row {
    section: &'static str,
    label: String,
    cells: Vec<String>,
}

/// Per model, the value of `f` (or "–" where a card lacks it).
fn cells(cards: &[Card], f: impl Fn(&Card) -> Option<String>) -> Vec<String> {
    cards
        .iter()
        .map(|c| f(c).unwrap_or_else(|| "–".to_string()))
        .collect()
}

/// The labels of `items` over all cards, in order of first appearance.
fn union<T>(
    cards: &[Card],
    items: impl Fn(&Card) -> Vec<T>,
    key: impl Fn(&T) -> String,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in cards {
        for k in items(c).iter().map(&key) {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out
}

fn interval(value: f64, stderr: Option<f64>) -> String {
    match stderr {
        Some(s) => format!("{value:.3} ± {:.3}", 1.96 * s),
        None => format!("{value:.3}"),
    }
}

/// Every row of the card, for the table and the page.
fn table_rows(cards: &[Card], ctx: u64) -> Vec<Row> {
    let mut rows = cost_rows(cards, ctx);
    rows.extend(quality_rows(cards));
    rows
}

/// What a model costs: its anatomy, memory and speed.
fn cost_rows(cards: &[Card], ctx: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut put = |section, label: String, cells: Vec<String>| {
        rows.push(Row {
            section,
            label,
            cells,
        })
    };
    let model = "model";
    put(model, "name".into(), cells(cards, |c| c.name.clone()));
    put(
        model,
        "architecture".into(),
        cells(cards, |c| Some(c.architecture.clone())),
    );
    put(
        model,
        "parameters".into(),
        cells(cards, |c| Some(grouped(c.parameters))),
    );
    put(
        model,
        "non-embedding".into(),
        cells(cards, |c| c.parameters_non_embedding.map(grouped)),
    );
    put(
        model,
        "file size".into(),
        cells(cards, |c| c.file_bytes.map(bytes)),
    );
    put(
        model,
        "context length".into(),
        cells(cards, |c| Some(grouped(c.context_length))),
    );
    put(
        model,
        "vocabulary".into(),
        cells(cards, |c| Some(grouped(c.vocab_size))),
    );
    let mem = "memory";
    put(
        mem,
        "weights".into(),
        cells(cards, |c| Some(bytes(c.memory.weights_bytes))),
    );
    put(
        mem,
        "repacked copies (this CPU)".into(),
        cells(cards, |c| Some(bytes(c.memory.repacked_bytes))),
    );
    put(
        mem,
        format!("KV cache f16 @ {}", grouped(ctx)),
        cells(cards, |c| Some(bytes(c.memory.kv_cache_bytes))),
    );
    put(
        mem,
        format!("total @ {}", grouped(ctx)),
        cells(cards, |c| Some(bytes(c.memory.total_bytes))),
    );
    if let Some(s) = cards.iter().find_map(|c| c.speed.as_ref()) {
        let sp = "speed";
        let what = format!("{} threads, median of {}", s.threads, s.runs);
        put(
            sp,
            format!("prefill {} tok/s ({what})", s.prompt_tokens),
            cells(cards, |c| {
                c.speed
                    .as_ref()
                    .map(|s| format!("{:.1}", s.prefill_tokens_per_second))
            }),
        );
        put(
            sp,
            format!("decode {} tok/s", s.new_tokens),
            cells(cards, |c| {
                c.speed
                    .as_ref()
                    .map(|s| format!("{:.1}", s.decode_tokens_per_second))
            }),
        );
    }
    rows
}

/// How a model does: tokens per language, perplexity, tasks.
fn quality_rows(cards: &[Card]) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut put = |section, label: String, cells: Vec<String>| {
        rows.push(Row {
            section,
            label,
            cells,
        })
    };
    for lang in union(cards, |c| c.tokens.clone(), |l| l.lang.clone()) {
        let find = |c: &Card| c.tokens.iter().find(|l| l.lang == lang).cloned();
        let tk = "tokens";
        put(
            tk,
            format!("{lang}: bytes/token"),
            cells(cards, |c| {
                find(c).map(|l| format!("{:.2}", l.bytes_per_token))
            }),
        );
        put(
            tk,
            format!("{lang}: tokens/word"),
            cells(cards, |c| {
                find(c).map(|l| format!("{:.2}", l.tokens_per_word))
            }),
        );
        put(
            tk,
            format!("{lang}: tokens vs first"),
            cells(cards, |c| {
                find(c)
                    .and_then(|l| l.relative_to_first)
                    .map(|r| format!("{r:.2}×"))
            }),
        );
    }
    let langs = union(
        cards,
        |c| c.parallel_premiums.clone().unwrap_or_default(),
        |l| l.lang.clone(),
    );
    for lang in langs {
        put(
            "premium",
            format!("{lang} (parallel)"),
            cells(cards, |c| {
                c.parallel_premiums
                    .as_ref()?
                    .iter()
                    .find(|l| l.lang == lang)
                    .map(|l| format!("{:.2}×", l.premium))
            }),
        );
    }
    let groups = union(
        cards,
        |c| c.perplexity.clone(),
        |g| format!("{}={}", g.by, g.group),
    );
    let find = |c: &Card, key: &str| {
        c.perplexity
            .iter()
            .find(|g| format!("{}={}", g.by, g.group) == key)
            .cloned()
    };
    let label = |key: &str| key.strip_prefix("all=").unwrap_or(key).to_string();
    for key in &groups {
        put(
            "bits per byte (± 1.96 standard errors)",
            label(key),
            cells(cards, |c| {
                find(c, key).map(|g| interval(g.bits_per_byte, g.bits_per_byte_stderr))
            }),
        );
    }
    for key in &groups {
        put(
            "perplexity per token (depends on the tokenizer)",
            label(key),
            cells(cards, |c| {
                find(c, key).map(|g| format!("{:.2}", g.token_perplexity))
            }),
        );
    }
    let tasks = union(
        cards,
        |c| c.tasks.clone(),
        |t| format!("{} {} ({})", t.task, t.metric, t.filter),
    );
    for key in tasks {
        put(
            "tasks (± 1.96 standard errors)",
            key.clone(),
            cells(cards, |c| {
                c.tasks
                    .iter()
                    .find(|t| format!("{} {} ({})", t.task, t.metric, t.filter) == key)
                    .map(|t| interval(t.value, t.stderr))
            }),
        );
    }
    rows
}

fn column_names(cards: &[Card]) -> Vec<String> {
    cards
        .iter()
        .map(|c| card::short_name(Path::new(&c.model)))
        .collect()
}

fn format_table(cards: &[Card], rows: &[Row]) -> String {
    let names = column_names(cards);
    let label_w = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0)
        .max(12)
        + 4;
    let col_w: Vec<usize> = (0..cards.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.cells[i].chars().count())
                .chain([names[i].chars().count()])
                .max()
                .unwrap_or(0)
                + 2
        })
        .collect();
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    let mut t = pad("", label_w);
    for (n, w) in names.iter().zip(&col_w) {
        t.push_str(&pad(n, *w));
    }
    t.push('\n');
    let mut section = "";
    for r in rows {
        if r.section != section {
            section = r.section;
            t.push_str(&format!("{section}\n"));
        }
        t.push_str(&pad(&format!("  {}", r.label), label_w));
        for (c, w) in r.cells.iter().zip(&col_w) {
            t.push_str(&pad(c, *w));
        }
        t.push('\n');
    }
    t.push_str(&format!("\n{NOTE}\n"));
    t
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const HEAD: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>fmlab compare</title><style>\
body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}\
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}tr.section th{background:#e6ecf5}\
img{max-width:100%;display:block;margin:1rem 0}p.note{color:#555}</style></head><body><h1>Model card: ";

/// card.json, the PNG charts and card.html (the table and the charts, which it names by
/// their file names beside it) in `dir`.
fn write_out(dir: &Path, c: &Comparison<'_>, rows: &[Row], json: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("--out: {}", dir.display()))?;
    fmlab_formats::write_atomically(&dir.join("card.json"), json.as_bytes())?;
    let charts = draw_charts(dir, &c.cards)?;
    let names = column_names(&c.cards);
    let mut h = String::from(HEAD);
    h.push_str(&esc(&names.join(" vs ")));
    h.push_str("</h1>");
    h.push_str(&format!(
        "<p>{} model(s), {} threads; memory at a context of {} tokens.</p><table><tr><th></th>",
        c.cards.len(),
        c.threads,
        grouped(c.ctx)
    ));
    for (n, card) in names.iter().zip(&c.cards) {
        h.push_str(&format!(
            "<th title=\"{}\">{}</th>",
            esc(&card.model),
            esc(n)
        ));
    }
    h.push_str("</tr>");
    let mut section = "";
    for r in rows {
        if r.section != section {
            section = r.section;
            h.push_str(&format!(
                "<tr class=\"section\"><th colspan=\"{}\">{}</th></tr>",
                c.cards.len() + 1,
                esc(section)
            ));
        }
        h.push_str(&format!("<tr><td>{}</td>", esc(&r.label)));
        for cell in &r.cells {
            h.push_str(&format!("<td class=\"num\">{}</td>", esc(cell)));
        }
        h.push_str("</tr>");
    }
    h.push_str(&format!("</table><p class=\"note\">{}</p>", esc(NOTE)));
    for (file, alt) in charts {
        h.push_str(&format!("<img src=\"{file}\" alt=\"{}\">", esc(&alt)));
    }
    h.push_str("</body></html>\n");
    fmlab_formats::write_atomically(&dir.join("card.html"), h.as_bytes())?;
    Ok(())
}

/// The bar charts that have data, as (file name, title).
fn draw_charts(dir: &Path, cards: &[Card]) -> Result<Vec<(String, String)>> {
    let names = column_names(cards);
    let mut out = Vec::new();
    let mut chart = |file: &str,
                     title: &str,
                     y: &str,
                     categories: Vec<String>,
                     value: &dyn Fn(&Card, &str) -> Option<f64>|
     -> Result<()> {
        if categories.is_empty() {
            return Ok(());
        }
        let series = cards
            .iter()
            .zip(&names)
            .map(|(c, n)| {
                (
                    n.clone(),
                    categories
                        .iter()
                        .map(|k| value(c, k).unwrap_or(f64::NAN))
                        .collect(),
                )
            })
            .collect();
        crate::plot::BarPlot {
            title,
            y_label: y,
            categories: categories.clone(),
            series,
        }
        .write_png(&dir.join(file))?;
        out.push((file.to_string(), title.to_string()));
        Ok(())
    };
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let memory = ["weights", "repacked", "KV cache", "total"]
        .map(String::from)
        .to_vec();
    chart(
        "memory.png",
        "Memory at the context length",
        "MiB",
        memory,
        &|c, k| {
            let m = &c.memory;
            Some(mib(match k {
                "weights" => m.weights_bytes,
                "repacked" => m.repacked_bytes,
                "KV cache" => m.kv_cache_bytes,
                _ => m.total_bytes,
            }))
        },
    )?;
    if cards.iter().any(|c| c.speed.is_some()) {
        chart(
            "speed.png",
            "Speed on this machine (median)",
            "tokens per second",
            vec!["prefill".into(), "decode".into()],
            &|c, k| {
                c.speed.as_ref().map(|s| {
                    if k == "prefill" {
                        s.prefill_tokens_per_second
                    } else {
                        s.decode_tokens_per_second
                    }
                })
            },
        )?;
    }
    let langs = union(cards, |c| c.tokens.clone(), |l| l.lang.clone());
    chart(
        "tokens.png",
        "Bytes per token by language",
        "bytes per token",
        langs,
        &|c, k| {
            c.tokens
                .iter()
                .find(|l| l.lang == k)
                .map(|l| l.bytes_per_token)
        },
    )?;
    let groups = union(cards, |c| c.perplexity.clone(), |g| g.group.clone());
    chart(
        "bits_per_byte.png",
        "Bits per byte by language and domain (lower is better)",
        "bits per byte",
        groups,
        &|c, k| {
            c.perplexity
                .iter()
                .find(|g| g.group == k)
                .map(|g| g.bits_per_byte)
        },
    )?;
    // Scores in [0, 1] (accuracies, exact match); perplexities have their own scale.
    let scored = |c: &Card| -> Vec<card::TaskScore> {
        c.tasks
            .iter()
            .filter(|t| !t.metric.contains("perplexity") && t.metric != "bits_per_byte")
            .cloned()
            .collect()
    };
    let tasks = union(cards, scored, |t| format!("{} {}", t.task, t.metric));
    chart("tasks.png", "Task scores", "score", tasks, &|c, k| {
        c.tasks
            .iter()
            .find(|t| format!("{} {}", t.task, t.metric) == k)
            .map(|t| t.value)
    })?;
    Ok(out)
}
