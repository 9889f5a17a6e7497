//! `fmlab study sampling`: what temperature does to a model's outputs — diversity
//! (distinct-n), consistency (agreement of the answers) and confidence (mean
//! log-probability) over n samples per setting, measured by
//! `fmlab_eval::sampling_study`, as a table, JSON and a PNG plot.
//!
//! `fmlab study consistency`: a chat model's accuracy, self-agreement, agreement across
//! paraphrases and languages, "I don't know" and hallucination rates, and a
//! sample-disagreement hallucination detector (AUROC) per temperature on a world's
//! questions, measured by `fmlab_eval::consistency`; a table, JSON, report.json and two
//! PNG plots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand};
use fmlab_eval::consistency::{ConsistencyConfig, TemperatureRow, WorldFacts};
use fmlab_eval::sampling_study::{check_temperatures, SamplingStudy, StudyRow};
use fmlab_sample::SamplerConfig;
use serde::Serialize;

use crate::generate::{answer_of, prompt_for, PromptArgs, TokenText};
use crate::model::load;
use crate::sampling::SamplerArgs;

#[derive(Subcommand)]
pub enum StudyCommand {
    /// Diversity, consistency and confidence of samples across temperatures.
    Sampling(Box<SamplingStudyArgs>),
    /// Accuracy, self-agreement, agreement across paraphrases and languages, "I don't
    /// know" and hallucination rates, and a sample-disagreement hallucination detector
    /// (AUROC), per temperature, for a chat model on a world's eval questions.
    Consistency(Box<ConsistencyArgs>),
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct ConsistencyArgs {
    /// The chat model: a pulled name (`fmlab pull --list`), a .gguf file, a training run or
    /// checkpoint folder, or a Hugging Face folder.
    model: String,
    /// A world's eval.jsonl; its folder's manifest.json rebuilds the knowledge base that
    /// paraphrases, other languages and answer values come from.
    #[arg(long)]
    items: PathBuf,
    /// Temperatures to compare, comma-separated (each replaces the chain's --temperature).
    #[arg(
        long,
        default_value = "0,0.5,1,1.5",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    temperatures: Vec<f32>,
    /// Answers per question and temperature (at least 2).
    #[arg(short = 'n', long = "samples", default_value = "8", value_parser = crate::numbers::count)]
    n: u64,
    /// Questions per split (frequent, rare, unseen, arithmetic) at most, in file order.
    #[arg(long, default_value = "50", value_parser = crate::numbers::count)]
    per_split: u64,
    /// Tokens an answer may take.
    #[arg(long, default_value = "48", value_parser = crate::numbers::count)]
    max_tokens: u64,
    /// Folder for report.json, consistency.png and roc.png.
    #[arg(long, default_value = "fmlab-study-consistency")]
    out: PathBuf,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Threads (default: all cores).
    #[arg(long, value_parser = crate::numbers::count)]
    threads: Option<u64>,
    /// The rest of the chain (top-k, top-p, …, --seed: question q draws from seed + q); its
    /// temperature is replaced by each of --temperatures.
    #[command(flatten)]
    sampler: SamplerArgs,
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct SamplingStudyArgs {
    /// The model: a pulled name (`fmlab pull --list`), a .gguf file, a training run or
    /// checkpoint folder, or a Hugging Face folder.
    model: String,
    #[command(flatten)]
    prompt: PromptArgs,
    /// Temperatures to compare, comma-separated (the chain's own --temperature does not
    /// apply here: each of these replaces it).
    #[arg(
        long,
        default_value = "0,0.5,1,1.5",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    temperatures: Vec<f32>,
    /// Samples per temperature.
    #[arg(short = 'n', long = "samples", default_value = "8", value_parser = crate::numbers::count)]
    n: u64,
    /// Tokens per sample at most.
    #[arg(long, default_value = "48", value_parser = crate::numbers::count)]
    max_tokens: u64,
    /// How answers are compared: the first capture group (or whole match) of the last match
    /// of this regex; by default the whole trimmed output.
    #[arg(long)]
    answer_regex: Option<String>,
    /// Folder for report.json and sampling.png.
    #[arg(long, default_value = "fmlab-study-sampling")]
    out: PathBuf,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Threads (default: all cores).
    #[arg(long, value_parser = crate::numbers::count)]
    threads: Option<u64>,
    /// The rest of the chain (top-k, top-p, …); its temperature is replaced by each of
    /// --temperatures.
    #[command(flatten)]
    sampler: SamplerArgs,
}

#[derive(Serialize)]
struct Report {
    model: String,
    prompt_tokens: usize,
    sampler: String,
    rows: Vec<StudyRow>,
    plot: String,
}

pub fn run(cmd: StudyCommand) -> Result<()> {
    match cmd {
        StudyCommand::Sampling(args) => {
            crate::model::with_threads(args.threads, || sampling_study(*args))
        }
        StudyCommand::Consistency(args) => {
            crate::model::with_threads(args.threads, || consistency_study(*args))
        }
    }
}

fn sampling_study(args: SamplingStudyArgs) -> Result<()> {
    check_temperatures(&args.temperatures)?;
    if args.sampler.temperature != SamplerConfig::default().temperature {
        anyhow::bail!(
            "--temperature: `study sampling` compares the --temperatures list; give the temperatures there"
        );
    }
    let answer_regex = args
        .answer_regex
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--answer-regex: {e}"))?;
    let loaded = load(&args.model)?;
    let ids = prompt_for(&loaded, &args.prompt)?;
    let tok = &loaded.tokenizer;
    let base = args
        .sampler
        .config(Some(tok), Some(loaded.model.spec.vocab_size as usize))?;
    let study = SamplingStudy {
        temperatures: &args.temperatures,
        samples: args.n as usize,
        max_tokens: args.max_tokens as usize,
        sampler: &base,
        stop_tokens: tok.stop_tokens(),
        detokenizer: &TokenText(tok),
        answer: &|text| answer_of(text, answer_regex.as_ref()),
    };
    let rows = fmlab_eval::sampling_study::sampling_study(&loaded.model, &ids, &study, &mut |t| {
        eprintln!("temperature {t}: {} samples …", args.n)
    })?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("--out {}: {e}", args.out.display()))?;
    let plot_path = args.out.join("sampling.png");
    write_plot(&rows, &plot_path)?;
    let report = Report {
        model: loaded.path.display().to_string(),
        prompt_tokens: ids.len(),
        sampler: format!("{} (temperature varied)", base.describe()),
        rows,
        plot: plot_path.display().to_string(),
    };
    fmlab_formats::write_atomically(
        &args.out.join("report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    if args.json {
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    }
    crate::out(&table(&report, &args))
}

fn write_plot(rows: &[StudyRow], path: &Path) -> Result<()> {
    let series = |f: fn(&StudyRow) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r.temperature as f64, f(r))).collect()
    };
    crate::plot::PanelPlot {
        title: "Sampling: diversity, consistency and confidence against temperature",
        x_label: "temperature",
        panels: vec![
            (
                "share",
                vec![
                    ("distinct-1", series(|r| r.distinct_1)),
                    ("distinct-2", series(|r| r.distinct_2)),
                    ("agreement (modal answer)", series(|r| r.agreement)),
                ],
            ),
            (
                "mean log-probability per token",
                vec![("mean logprob (model)", series(|r| r.mean_logprob))],
            ),
        ],
    }
    .write_png(path)
}

fn table(report: &Report, args: &SamplingStudyArgs) -> String {
    let mut text = format!(
        "{} — {} samples per temperature, {}\n\n temp  distinct-1  distinct-2  agreement  answers  mean logprob  tokens  modal answer\n",
        report.model, args.n, report.sampler
    );
    for r in &report.rows {
        let answer: String = r
            .answer
            .as_deref()
            .unwrap_or("(none)")
            .chars()
            .take(40)
            .map(|c| if c == '\n' { '⏎' } else { c })
            .collect();
        text.push_str(&format!(
            "{:>5.2}  {:>10.3}  {:>10.3}  {:>9.2}  {:>7}  {:>12.3}  {:>6.1}  {}\n",
            r.temperature,
            r.distinct_1,
            r.distinct_2,
            r.agreement,
            r.distinct_answers,
            r.mean_logprob,
            r.mean_tokens,
            answer
        ));
    }
    text.push_str(&format!(
        "\nplot: {}\nreport: {}\n",
        report.plot,
        args.out.join("report.json").display()
    ));
    text
}

#[derive(Serialize)]
struct ConsistencyReport {
    model: String,
    items: String,
    languages: Vec<&'static str>,
    samples: usize,
    per_split: usize,
    max_tokens: usize,
    seed: u64,
    sampler: String,
    /// Questions per split.
    questions: BTreeMap<String, usize>,
    /// What each measure means.
    definitions: BTreeMap<&'static str, &'static str>,
    plots: [String; 2],
    rows: Vec<TemperatureRow>,
}

/// The world folder of `items` and its configuration, or an error that says why the study
/// needs it.
fn world_of(items: &Path) -> Result<fmlab_data::WorldConfig> {
    let dir = items.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if !dir.join("manifest.json").is_file() {
        anyhow::bail!(
            "--items {}: no manifest.json beside it. The study rebuilds the world's knowledge base from the manifest (paraphrases, other languages, which value an answer names); give the eval.jsonl inside a world folder written by `fmlab world`",
            items.display()
        );
    }
    Ok(fmlab_data::world::read_config(dir)?)
}

fn consistency_study(args: ConsistencyArgs) -> Result<()> {
    if args.sampler.temperature != SamplerConfig::default().temperature {
        anyhow::bail!(
            "--temperature: `study consistency` compares the --temperatures list; give the temperatures there"
        );
    }
    let items = fmlab_data::read_items(&args.items).map_err(|e| anyhow::anyhow!("--items: {e}"))?;
    let world = WorldFacts::new(&world_of(&args.items)?);
    let questions = fmlab_eval::consistency::questions(&items, &world, args.per_split as usize)?;
    let loaded = load(&args.model)?;
    let template = loaded
        .template
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("{}: the model has no chat template", args.model))?;
    let tok = &loaded.tokenizer;
    let base = args
        .sampler
        .config(Some(tok), Some(loaded.model.spec.vocab_size as usize))?;
    let config = ConsistencyConfig {
        temperatures: args.temperatures.clone(),
        samples: args.n as usize,
        per_split: args.per_split as usize,
        max_new_tokens: args.max_tokens as usize,
        sampler: base.clone(),
        seed: args.sampler.seed,
    };
    fmlab_eval::consistency::check(&config)?;
    let mut per_split: BTreeMap<String, usize> = BTreeMap::new();
    for q in &questions {
        *per_split.entry(q.item.split.clone()).or_default() += 1;
    }
    eprintln!(
        "{} questions ({}), {} answers each at {} temperatures",
        questions.len(),
        per_split
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        args.n,
        args.temperatures.len()
    );
    let last = std::sync::Mutex::new(std::time::Instant::now());
    let rows = fmlab_eval::consistency::consistency_study(
        &loaded.model,
        tok,
        template,
        &world,
        &questions,
        &config,
        &|p| {
            let Ok(mut last) = last.lock() else { return };
            if p.done == p.total || last.elapsed().as_secs_f64() > 2.0 {
                eprint!(
                    "\rtemperature {}: {}/{} answers",
                    p.temperature, p.done, p.total
                );
                if p.done == p.total {
                    eprintln!();
                }
                *last = std::time::Instant::now();
            }
        },
    )?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("--out {}: {e}", args.out.display()))?;
    let plots = [args.out.join("consistency.png"), args.out.join("roc.png")];
    write_consistency_plot(&rows, &plots[0])?;
    write_roc_plot(&rows, &plots[1])?;
    let report = ConsistencyReport {
        model: loaded.path.display().to_string(),
        items: args.items.display().to_string(),
        languages: world.languages.iter().map(|l| l.code()).collect(),
        samples: config.samples,
        per_split: config.per_split,
        max_tokens: config.max_new_tokens,
        seed: config.seed,
        sampler: format!("{} (temperature varied)", base.describe()),
        questions: per_split,
        definitions: fmlab_eval::consistency::DEFINITIONS.into_iter().collect(),
        plots: plots.map(|p| p.display().to_string()),
        rows,
    };
    let json = serde_json::to_string_pretty(&report)?;
    fmlab_formats::write_atomically(&args.out.join("report.json"), json.as_bytes())?;
    if args.json {
        return crate::out(&format!("{json}\n"));
    }
    crate::out(&consistency_table(&report, &args.out))
}

fn write_consistency_plot(rows: &[TemperatureRow], path: &Path) -> Result<()> {
    let series = |f: fn(&TemperatureRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| f(r).map(|y| (r.temperature as f64, y)))
            .collect()
    };
    crate::plot::PanelPlot {
        title: "Consistency and hallucination against temperature",
        x_label: "temperature",
        panels: vec![
            (
                "share of answers",
                vec![
                    (
                        "accuracy (seen people)",
                        series(|r| Some(r.accuracy_seen.accuracy)),
                    ),
                    (
                        "\"I don't know\" (unseen people)",
                        series(|r| r.idk_rate_unseen),
                    ),
                    (
                        "hallucination (unseen people)",
                        series(|r| r.hallucination_rate_unseen),
                    ),
                ],
            ),
            (
                "share of agreeing pairs",
                vec![
                    (
                        "self-agreement (n samples)",
                        series(|r| Some(r.self_agreement)),
                    ),
                    ("across paraphrases", series(|r| r.paraphrase_agreement)),
                    ("across languages", series(|r| r.cross_language_agreement)),
                ],
            ),
        ],
    }
    .write_png(path)
}

fn write_roc_plot(rows: &[TemperatureRow], path: &Path) -> Result<()> {
    let labels: Vec<String> = rows
        .iter()
        .map(|r| match r.detector.auroc {
            Some(a) => format!("temperature {} (AUROC {a:.3})", r.temperature),
            None => format!(
                "temperature {} (AUROC: no positives or negatives)",
                r.temperature
            ),
        })
        .collect();
    let mut lines: Vec<crate::plot::Series> = rows
        .iter()
        .zip(&labels)
        .filter(|(r, _)| r.temperature > 0.0)
        .map(|(r, label)| {
            let pts = r
                .detector
                .roc
                .iter()
                .map(|p| (p.false_positive_rate, p.true_positive_rate))
                .collect();
            (label.as_str(), pts)
        })
        .collect();
    lines.push(("chance", vec![(0.0, 0.0), (1.0, 1.0)]));
    crate::plot::PanelPlot {
        title: "Sample disagreement as a hallucination detector (ROC)",
        x_label: "false positive rate (right first answers flagged)",
        panels: vec![("true positive rate (wrong first answers flagged)", lines)],
    }
    .write_png(path)
}

fn consistency_table(report: &ConsistencyReport, out: &Path) -> String {
    let pct = |v: Option<f64>| match v {
        Some(v) => format!("{:.1}", 100.0 * v),
        None => "—".into(),
    };
    let mut text = format!(
        "{} — {} answers per question; questions: {}; languages {}\n{}\n\n temp  acc seen  frequent  rare  arith  self-agree  modal  paraphrase  languages  IDK unseen  halluc.  AUROC (wrong/right)\n",
        report.model,
        report.samples,
        report
            .questions
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        report.languages.join(", "),
        report.sampler
    );
    for r in &report.rows {
        let acc = |s: &str| pct(r.accuracy.get(s).map(|x| x.accuracy));
        let auroc = match r.detector.auroc {
            Some(a) => format!("{a:.3}"),
            None => "—".into(),
        };
        text.push_str(&format!(
            "{:>5.2}  {:>8}  {:>8}  {:>4}  {:>5}  {:>10}  {:>5}  {:>10}  {:>9}  {:>10}  {:>7}  {} ({}/{})\n",
            r.temperature,
            pct(Some(r.accuracy_seen.accuracy)),
            acc("frequent"),
            acc("rare"),
            acc("arithmetic"),
            pct(Some(r.self_agreement)),
            pct(Some(r.modal_share)),
            pct(r.paraphrase_agreement),
            pct(r.cross_language_agreement),
            pct(r.idk_rate_unseen),
            pct(r.hallucination_rate_unseen),
            auroc,
            r.detector.positives,
            r.detector.negatives,
        ));
    }
    text.push_str("\ndetector AUROC within each split:\n");
    for r in report.rows.iter().filter(|r| r.temperature > 0.0) {
        let parts: Vec<String> = r
            .detector
            .auroc_by_split
            .iter()
            .map(|(split, a)| match a {
                Some(a) => format!("{split} {a:.3}"),
                None => format!("{split} —"),
            })
            .collect();
        text.push_str(&format!("{:>5.2}  {}\n", r.temperature, parts.join(", ")));
    }
    text.push_str(&format!(
        "\n(percentages; agreement = share of answer pairs naming the same value)\nplots: {}, {}\nreport: {}\n",
        report.plots[0],
        report.plots[1],
        out.join("report.json").display()
    ));
    text
}
