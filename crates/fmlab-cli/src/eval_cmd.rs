//! `fmlab eval chat` and `fmlab data preferences`: a chat model asked the world's questions
//! through its template and judged; on-policy preference pairs from its own samples.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use fmlab_eval::chat::{
    evaluate_chat, preference_pairs, write_pairs, ChatEvalConfig, Judge, JudgeSpec, PairConfig,
    RewardJudge, WorldJudge,
};
use serde::Serialize;

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Ask a chat model the world's eval questions (eval.jsonl) through its chat template
    /// and judge the answers: format compliance, fact accuracy by frequency bucket,
    /// "I don't know" and hallucination rates on never-seen people, arithmetic.
    Chat(ChatEvalArgs),
    /// Run lm-evaluation-harness task files (YAML over local JSON lines data) on a model:
    /// multiple_choice, loglikelihood, loglikelihood_rolling and generate_until tasks, their
    /// metrics with standard errors, and results in lm-evaluation-harness's JSON shape.
    Run(RunArgs),
    /// Compare two runs of `eval run --out DIR --log-samples` (or lm-evaluation-harness's
    /// --log_samples output): per task and metric, B − A with a paired bootstrap confidence
    /// interval, McNemar's exact test for accuracies, and a verdict. Exits with status 1
    /// when B is significantly worse on any row (a CI gate).
    Compare(CompareArgs),
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct CompareArgs {
    /// The baseline run: a results folder (results.json and samples_TASK.jsonl files).
    pub a: PathBuf,
    /// The candidate run, compared with A.
    pub b: PathBuf,
    /// Significance level: the confidence interval is 1 − level.
    #[arg(long, default_value_t = 0.05)]
    pub level: f64,
    /// Paired bootstrap resamples.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = 2000)]
    pub bootstrap_iters: usize,
    /// Seeds the bootstrap.
    #[arg(value_parser = crate::numbers::integer::<u64>, long, default_value_t = 1234)]
    pub seed: u64,
    /// Print the rows as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How tasks run: the settings `eval run` and `compare` share.
#[derive(Args)]
pub struct TaskRunArgs {
    /// Folders whose task and group files (searched recursively) define the names --tasks
    /// and groups refer to.
    #[arg(long, num_args = 1..)]
    pub include_path: Vec<PathBuf>,
    /// Documents per task at most (in file order).
    #[arg(value_parser = crate::numbers::integer::<usize>, long)]
    pub limit: Option<usize>,
    /// Few-shot examples per prompt (overrides the task files' num_fewshot).
    #[arg(value_parser = crate::numbers::integer::<usize>, long)]
    pub num_fewshot: Option<usize>,
    /// Seeds the choice of few-shot examples and the bootstrap of standard errors.
    #[arg(value_parser = crate::numbers::integer::<u64>, long, default_value_t = 1234)]
    pub seed: u64,
    /// Tokens per window at most (longer requests are cut from the left; rolling
    /// log-likelihoods, and compare's texts, are read in windows of this size).
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = 2048)]
    pub max_length: usize,
    /// Contexts scored together in one batched forward pass (local models). On Q4_0, Q4_1,
    /// Q5_0, Q8_0 and f32 weights the scores do not depend on it; K-quant kernels order
    /// their sums by batch size as llama.cpp's do.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = 8)]
    pub batch_size: usize,
    /// Resamples for the standard errors of perplexities and bits per byte.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = 1000)]
    pub bootstrap_iters: usize,
}

impl TaskRunArgs {
    /// The pipeline's settings (no chat template: the caller sets it with the model).
    pub fn run_config(&self) -> fmlab_eval::harness::RunConfig {
        fmlab_eval::harness::RunConfig {
            limit: self.limit,
            num_fewshot: self.num_fewshot,
            seed: self.seed,
            bootstrap_iters: self.bootstrap_iters,
            ..Default::default()
        }
    }
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct RunArgs {
    /// The model, run in-process: a pulled name (`fmlab pull --list`), a .gguf file, a
    /// training run or checkpoint folder, or a Hugging Face folder. Or give --base-url.
    #[arg(
        long,
        required_unless_present = "base_url",
        conflicts_with = "base_url"
    )]
    pub model: Option<String>,
    /// A model behind an OpenAI-compatible API instead (fmlab serve, vLLM, llama-server, a
    /// hosted API): its base with the version, e.g. http://127.0.0.1:8080/v1.
    #[arg(long, requires = "model_name")]
    pub base_url: Option<String>,
    /// The `model` field sent to the API.
    #[arg(long)]
    pub model_name: Option<String>,
    /// The environment variable holding the API key (sent as a bearer token when set).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    /// Requests in flight at once (API models).
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = 4)]
    pub concurrency: usize,
    /// Further tries of a failed request (connection errors, 429, 5xx; API models).
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = 3)]
    pub retries: usize,
    /// What to run: lm-evaluation-harness task or group files (YAML), folders of them (their
    /// groups, and their tasks no group holds), names of tasks, groups or tags defined in
    /// those folders or in --include-path, or a world folder (`fmlab world` output: the
    /// world's fact-recall and arithmetic tasks and, for chat models, its chat questions
    /// judged by the world; group "world").
    #[arg(long, num_args = 1.., required = true)]
    pub tasks: Vec<String>,
    #[command(flatten)]
    pub run: TaskRunArgs,
    /// Threads for the model (default: one per core).
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    pub threads: Option<u64>,
    /// Ask every task's prompt as a user turn through the model's chat template (with the
    /// assistant's turn opened), as lm-evaluation-harness's --apply_chat_template does. The
    /// world's chat tasks always ask through it (and are skipped for models without one).
    #[arg(long)]
    pub apply_chat_template: bool,
    /// Write results.json (and with --log-samples, samples_TASK.jsonl) into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write every document's requests, responses and scores (needs --out).
    #[arg(long)]
    pub log_samples: bool,
    /// Print the results JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct ChatEvalArgs {
    /// The chat model: a pulled name (`fmlab pull --list`), a .gguf file, a training run or
    /// checkpoint folder, or a Hugging Face folder.
    #[arg(long)]
    pub model: String,
    /// Eval items (a world's eval.jsonl).
    #[arg(long)]
    pub items: PathBuf,
    /// Items per split (frequent, rare, unseen, arithmetic) at most.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = 100)]
    pub per_split: usize,
    /// Tokens an answer may take.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = 48)]
    pub max_tokens: usize,
    /// Print every answer with its verdict too (JSON).
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Chat(args) => chat(args),
        EvalCommand::Run(args) => crate::model::with_threads(args.threads, || run_tasks(&args)),
        EvalCommand::Compare(args) => compare_runs(&args),
    }
}

fn chat(args: ChatEvalArgs) -> Result<()> {
    let loaded = crate::model::load(&args.model)?;
    let template = loaded
        .template
        .as_ref()
        .context("the model has no chat template")?;
    let items = fmlab_data::read_items(&args.items)?;
    let config = ChatEvalConfig {
        per_split: args.per_split,
        max_new_tokens: args.max_tokens,
    };
    let e = evaluate_chat(&loaded.model, &loaded.tokenizer, template, &items, &config)?;
    if args.json {
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(&e)?));
    }
    crate::out(&e.describe())
}

fn run_tasks(args: &RunArgs) -> Result<()> {
    use fmlab_eval::harness::{results_json, run_task, sample_lines, LocalModel, RunConfig, Task};
    if args.run.max_length < 2 {
        bail!(
            "--max-length {}: a window needs at least 2 tokens",
            args.run.max_length
        );
    }
    if args.run.batch_size == 0 || args.concurrency == 0 {
        bail!("--batch-size and --concurrency: at least 1");
    }
    if args.log_samples && args.out.is_none() {
        bail!("--log-samples writes into the --out folder; give --out DIR");
    }
    let mut suite = fmlab_eval::task_suite(&args.tasks, &args.run.include_path)?;
    let mut config = RunConfig {
        apply_chat_template: args.apply_chat_template,
        ..args.run.run_config()
    };
    let loaded;
    let mut local;
    let mut remote;
    let (lm, model_args): (&mut dyn fmlab_eval::harness::LanguageModel, String) =
        match (&args.model, &args.base_url) {
            (Some(m), _) => {
                loaded = crate::model::load(m)?;
                config.chat_template = loaded.template.clone();
                local = LocalModel::new(&loaded.model, &loaded.tokenizer, args.run.max_length)
                    .with_batch(args.run.batch_size);
                (&mut local, m.clone())
            }
            (None, Some(url)) => {
                let name = args.model_name.clone().unwrap_or_default();
                remote =
                    fmlab_eval::harness::api::ApiModel::new(fmlab_eval::harness::api::ApiConfig {
                        base_url: url.clone(),
                        model: name.clone(),
                        api_key: std::env::var(&args.api_key_env)
                            .ok()
                            .filter(|k| !k.is_empty()),
                        concurrency: args.concurrency,
                        retries: args.retries,
                    })?;
                eprintln!(
                    "{url}: requests as {} ({} at once)",
                    if remote.tokenized() {
                        "token ids (the server's /tokenize)"
                    } else {
                        "text"
                    },
                    args.concurrency
                );
                (&mut remote, format!("base_url={url},model={name}"))
            }
            (None, None) => bail!("give --model or --base-url"),
        };
    if args.apply_chat_template && config.chat_template.is_none() {
        bail!("--apply-chat-template: the model has no chat template (API models: give tasks without it)");
    }
    if config.chat_template.is_none() {
        let dropped = suite.drop_chat_tasks();
        if !dropped.is_empty() {
            eprintln!(
                "{}: skipped, they ask through a chat template and {}",
                dropped.join(", "),
                if args.model.is_some() {
                    "the model has none"
                } else {
                    "an API model's template is not ours to apply"
                }
            );
        }
    }
    if suite.tasks.is_empty() {
        bail!("--tasks: nothing to run on this model");
    }
    let tasks = &suite.tasks;
    let mut results = Vec::new();
    for task in tasks {
        let mut last = std::time::Instant::now();
        let r = run_task(task, lm, &config, |done, total| {
            if done == total || last.elapsed().as_secs_f64() > 1.0 {
                eprint!("\r{}: {done}/{total} requests", task.name);
                last = std::time::Instant::now();
            }
        })?;
        eprintln!(" ({:.1} s)", r.seconds);
        results.push(r);
    }
    let refs: Vec<&Task> = tasks.iter().collect();
    let json = results_json(&refs, &suite.groups, &results, &model_args, &config);
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("--out: {}", dir.display()))?;
        let path = dir.join("results.json");
        std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        if args.log_samples {
            for r in &results {
                let path = dir.join(format!("samples_{}.jsonl", r.task));
                let mut text = String::new();
                for line in sample_lines(r) {
                    text.push_str(&serde_json::to_string(&line)?);
                    text.push('\n');
                }
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    if args.json {
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(&json)?));
    }
    crate::out(&results_table(&suite, &results))
}

/// The results as a table: each task's metrics (tasks of a group indented), then each
/// group's aggregate scores.
fn results_table(
    suite: &fmlab_eval::harness::Suite,
    results: &[fmlab_eval::harness::TaskResult],
) -> String {
    let tasks = &suite.tasks;
    let mut table = format!(
        "{:<24} {:<8} {:<10} {:<16} {:>10} {:>10}\n",
        "task", "n-shot", "filter", "metric", "value", "stderr"
    );
    let row = |table: &mut String,
               name: &str,
               shots: String,
               filter: &str,
               metric: &str,
               value: f64,
               stderr: Option<f64>| {
        table.push_str(&format!(
            "{:<24} {:<8} {:<10} {:<16} {:>10.4} {:>10}\n",
            name,
            shots,
            filter,
            metric,
            value,
            stderr.map_or("N/A".to_string(), |s| format!("{s:.4}"))
        ));
    };
    let in_group = |t: &str| {
        suite
            .groups
            .iter()
            .any(|g| g.children.iter().any(|c| c == t))
    };
    for (task, r) in tasks.iter().zip(results) {
        let name = if in_group(&r.task) {
            format!(" - {}", task.alias)
        } else {
            task.alias.clone()
        };
        for (metric, filter, value, stderr) in &r.metrics {
            row(
                &mut table,
                &name,
                r.num_fewshot.to_string(),
                filter,
                metric,
                *value,
                *stderr,
            );
        }
    }
    if suite.groups.iter().any(|g| !g.aggregate.is_empty()) {
        table.push_str(&format!(
            "\n{:<24} {:<8} {:<10} {:<16} {:>10} {:>10}\n",
            "group", "docs", "filter", "metric", "value", "stderr"
        ));
        for g in &suite.groups {
            for (metric, filter, value, stderr, docs) in g.scores(&suite.groups, results) {
                row(
                    &mut table,
                    &g.alias,
                    docs.to_string(),
                    &filter,
                    &metric,
                    value,
                    stderr,
                );
            }
        }
    }
    table
}

fn compare_runs(args: &CompareArgs) -> Result<()> {
    use fmlab_eval::harness::compare::{compare, read_run};
    let a = read_run(&args.a).with_context(|| format!("A: {}", args.a.display()))?;
    let b = read_run(&args.b).with_context(|| format!("B: {}", args.b.display()))?;
    let rows = compare(&a, &b, args.level, args.bootstrap_iters, args.seed)?;
    if args.json {
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
    } else {
        let ci = format!("{:.0}% CI", 100.0 * (1.0 - args.level));
        let mut t = format!(
            "{:<20} {:<22} {:>5} {:>10} {:>10} {:>10} {:>22} {:>8}  verdict\n",
            "task", "metric", "docs", "A", "B", "B − A", ci, "p"
        );
        for r in &rows {
            t.push_str(&format!(
                "{:<20} {:<22} {:>5} {:>10.4} {:>10.4} {:>+10.4} {:>22} {:>8.4}  {}\n",
                r.task,
                r.metric,
                r.documents,
                r.a,
                r.b,
                r.difference,
                format!("[{:+.4}, {:+.4}]", r.ci_low, r.ci_high),
                r.p_value,
                r.verdict
            ));
        }
        crate::out(&t)?;
    }
    let worse: Vec<String> = rows
        .iter()
        .filter(|r| r.verdict == "worse")
        .map(|r| format!("{} {}", r.task, r.metric))
        .collect();
    if !worse.is_empty() {
        bail!(
            "B is significantly worse than A (level {}) on: {}",
            args.level,
            worse.join(", ")
        );
    }
    Ok(())
}

/// The figures of a chat evaluation, one per line.
#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct PreferencesArgs {
    /// The model whose answers are sampled (usually an SFT run).
    #[arg(long)]
    pub model: String,
    /// Judge-able prompts in the eval items' format (a world's prompts.jsonl).
    #[arg(long)]
    pub prompts: PathBuf,
    /// The judge: "world" (the world's exact judge) or "reward:RM" (a reward model trained
    /// with `fmlab train reward`, sharing the model's tokenizer).
    #[arg(long, default_value = "world")]
    pub judge: String,
    /// Answers sampled per prompt.
    #[arg(value_parser = crate::numbers::integer::<usize>, short, long, default_value_t = 4)]
    pub k: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Which answers become pairs: best-worst (the best against the worst) or best-vs-each
    /// (the best against one answer of every lower score).
    #[arg(long, default_value = "best-worst")]
    pub pairing: String,
    /// Prompts used at most (in file order).
    #[arg(value_parser = crate::numbers::integer::<usize>, long)]
    pub limit: Option<usize>,
    /// Tokens an answer may take.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value_t = 48)]
    pub max_tokens: usize,
    /// Seeds the sampled answers: the same seed gives the same pairs.
    #[arg(value_parser = crate::numbers::integer::<u64>, long, default_value_t = 0)]
    pub seed: u64,
    /// The pairs, JSON Lines in preferences.jsonl's layout (plus the judge's scores).
    #[arg(long, default_value = "pairs.jsonl")]
    pub out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `fmlab data preferences --json`.
#[derive(Serialize)]
struct PairsSummary<'a> {
    out: &'a Path,
    prompts: usize,
    pairs: usize,
    k: usize,
}

pub fn preferences(args: PreferencesArgs) -> Result<()> {
    let judge_spec = JudgeSpec::parse(&args.judge)
        .with_context(|| format!("--judge: {:?} is neither world nor reward:PATH", args.judge))?;
    if args.k < 2 {
        bail!("-k: at least 2 answers per prompt are needed to make a pair");
    }
    let loaded = crate::model::load(&args.model)?;
    let template = loaded
        .template
        .as_ref()
        .context("the model has no chat template")?;
    let mut items = fmlab_data::read_items(&args.prompts)?;
    if let Some(n) = args.limit {
        items.truncate(n);
    }
    let config = PairConfig {
        k: args.k,
        sampler: fmlab_sample::SamplerConfig {
            temperature: args.temperature,
            ..fmlab_sample::SamplerConfig::pure(args.seed)
        },
        max_new_tokens: args.max_tokens,
        pairing: fmlab_eval::chat::Pairing::parse(&args.pairing).with_context(|| {
            format!(
                "--pairing: {:?} is neither best-worst nor best-vs-each",
                args.pairing
            )
        })?,
        first_stream: 0,
    };
    let reward_model = match &judge_spec {
        JudgeSpec::Reward(p) => Some(crate::model::load_reward_model(
            p,
            loaded.tokenizer.vocab_size(),
            "--judge",
        )?),
        JudgeSpec::World => None,
    };
    let reward_judge = match &reward_model {
        Some(rm) => Some(RewardJudge {
            scorer: fmlab_nn::RewardScorer::new(&rm.model)
                .with_context(|| format!("--judge {}", args.judge))?,
            tokenizer: &loaded.tokenizer,
            template,
        }),
        None => None,
    };
    let judge: &dyn Judge = match &reward_judge {
        Some(j) => j,
        None => &WorldJudge,
    };
    let pairs = preference_pairs(
        &loaded.model,
        &loaded.tokenizer,
        template,
        &items,
        judge,
        &config,
    )?;
    write_pairs(&args.out, &pairs)?;
    if args.json {
        let summary = PairsSummary {
            out: &args.out,
            prompts: items.len(),
            pairs: pairs.len(),
            k: args.k,
        };
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&summary)?))
    } else {
        crate::out(&format!(
            "{}: {} pairs from {} prompts ({} answers each)\n",
            args.out.display(),
            pairs.len(),
            items.len(),
            args.k
        ))
    }
}
