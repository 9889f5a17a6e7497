//! `fmlab study sampling`: what temperature does to a model's outputs — diversity
//! (distinct-n), consistency (agreement of the answers) and confidence (mean
//! log-probability) over n samples per setting, measured by
//! `fmlab_eval::sampling_study`, as a table, JSON and a PNG plot.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand};
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
