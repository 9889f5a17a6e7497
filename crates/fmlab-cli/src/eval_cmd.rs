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
}

#[derive(Args)]
pub struct ChatEvalArgs {
    /// A training run, a checkpoint folder, a Hugging Face folder, a GGUF file or a known
    /// model's name.
    #[arg(long)]
    pub model: String,
    /// Eval items (a world's eval.jsonl).
    #[arg(long)]
    pub items: PathBuf,
    /// Items per split (frequent, rare, unseen, arithmetic) at most.
    #[arg(long, default_value_t = 100)]
    pub per_split: usize,
    /// Tokens an answer may take.
    #[arg(long, default_value_t = 48)]
    pub max_tokens: usize,
    /// Print every answer with its verdict too (JSON).
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Chat(args) => chat(args),
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

/// The figures of a chat evaluation, one per line.
#[derive(Args)]
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
    #[arg(short, long, default_value_t = 4)]
    pub k: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Which answers become pairs: best-worst (the best against the worst) or best-vs-each
    /// (the best against one answer of every lower score).
    #[arg(long, default_value = "best-worst")]
    pub pairing: String,
    /// Prompts used at most (in file order).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Tokens an answer may take.
    #[arg(long, default_value_t = 48)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The pairs, JSON Lines in preferences.jsonl's layout (plus the judge's scores).
    #[arg(long, default_value = "pairs.jsonl")]
    pub out: PathBuf,
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
