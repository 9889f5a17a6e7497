//! `fmlab speedrun`: the whole lifecycle on the embedded world within a time budget —
//! plan (measured throughput + a scaling law) → world → tokenizer → shards → pre-training →
//! samples → evaluation → a report (`report.html` with inline plots, PNGs, `report.json`).
//!
//! Sizing: each depth of the `--depth` dial is timed for a couple of training steps; with
//! the seconds left for training, depth d could process D_d = tokens/s_d × seconds tokens,
//! a compute of C_d = 6·N_d·D_d. The Epoch AI refit of Chinchilla's law gives the
//! compute-optimal size N*(C_d); the depth whose N_d is nearest N*(C_d) (in log) is trained
//! for D_d tokens. The world is sized so that those tokens are `--epochs` (16) passes over
//! it: facts must be seen repeatedly to be learned, and how often is what the eval buckets
//! measure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::Args;
use fmlab_data::EvalItem;
use fmlab_nn::train::{loss_and_grad, Weights};
use fmlab_sample::{GenerateOptions, Sampler, SamplerConfig, StopConditions};
use fmlab_tokenizer::train::{BpeTrainer, DEFAULT_SPECIALS};
use fmlab_train::pretrain::Pretrainer;
use serde::Serialize;
use serde_json::{json, Value};

use crate::train_cmd;

#[derive(Args)]
pub struct SpeedrunArgs {
    /// The time budget for the whole run, in minutes.
    #[arg(long, default_value = "10")]
    minutes: f64,
    /// Output folder [default: runs/speedrun-YYYYMMDD-HHMMSS].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seeds the world, the initial weights, the data order and the samples.
    #[arg(long, default_value = "0")]
    seed: u64,
    /// Train this depth instead of the planner's choice.
    #[arg(long)]
    depth: Option<u64>,
    /// Tokenizer vocabulary.
    #[arg(long, default_value = "2048")]
    vocab: u64,
    /// Tokens per training sequence.
    #[arg(long, default_value = "256")]
    seq_len: usize,
    /// Sequences per step.
    #[arg(long, default_value = "8")]
    batch: usize,
    /// Peak learning rate (1e-2 beat 3e-3 and 2e-2 on 3-minute runs: val loss 0.81 vs
    /// 1.15 and 1.06).
    #[arg(long, default_value = "1e-2")]
    lr: f32,
    /// Epochs of the world that the planned tokens make (a smaller world, seen more often,
    /// when higher). Facts are learned by repetition: on 3-minute runs, 4 epochs recalled
    /// 11.5% of frequent facts (3,240 people), 16 epochs 31% (810), 32 epochs 48% (414, with
    /// validation loss rising again); 16 keeps both.
    #[arg(long, default_value = "16")]
    epochs: f64,
    /// Eval questions per bucket (frequent, rare, arithmetic).
    #[arg(long, default_value = "200")]
    eval_items: usize,
    /// Share of the budget for post-training (SFT, on-policy pairs, DPO and their chat
    /// evaluations); 0 skips it.
    #[arg(long, default_value = "0.2")]
    post_share: f64,
    /// SFT's peak learning rate.
    #[arg(long, default_value = "3e-3")]
    sft_lr: f32,
    /// Passes of SFT over the world's conversations (within its share of the time).
    #[arg(long, default_value = "4")]
    sft_epochs: f64,
    /// Share of SFT's training positions that replay pre-training text (the world's corpus):
    /// without it the small model forgets facts while it learns the chat format.
    #[arg(long, default_value = "0.5")]
    sft_mix: f64,
    /// DPO's peak learning rate.
    #[arg(long, default_value = "1e-4")]
    dpo_lr: f32,
    /// Passes of DPO over the on-policy pairs (within its share of the time).
    #[arg(long, default_value = "3")]
    dpo_epochs: f64,
    /// DPO's β.
    #[arg(long, default_value = "0.1")]
    dpo_beta: f64,
    /// Training prompts whose sampled answers make DPO's on-policy pairs.
    #[arg(long, default_value = "2000")]
    pair_prompts: usize,
    /// Answers sampled per prompt.
    #[arg(long, default_value = "4")]
    pair_answers: usize,
    /// Train exactly this many pre-training steps, and SFT and DPO for their full epochs,
    /// instead of fitting each stage to the time budget: the world is sized from the steps,
    /// no stage has a deadline, and the same seed, depth and steps give the same models on
    /// any machine (the tests use it; with --depth, nothing depends on the machine's speed).
    #[arg(long)]
    steps: Option<u64>,
    /// Print report.json to stdout at the end.
    #[arg(long)]
    json: bool,
}

/// Bytes per token of a 2k-vocabulary tokenizer on the world (measured: 3.8); only sizes
/// the world before the tokenizer exists.
const BYTES_PER_TOKEN_GUESS: f64 = 3.8;

#[derive(Serialize, Clone)]
struct Candidate {
    depth: u64,
    d_model: u64,
    params: u64,
    tokens_per_second: f64,
    tokens: f64,
    optimal_params: f64,
}

/// UTC date and time as YYYYMMDD-HHMMSS, for default folder names.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn say(msg: &str) {
    eprintln!("[speedrun] {msg}");
}

/// Tokens per second of training steps at `depth` (the median of two steps after one
/// warm-up step), on random tokens.
fn measure(
    depth: u64,
    vocab: u64,
    seq: usize,
    batch: usize,
) -> Result<(fmlab_spec::ModelSpec, f64)> {
    let spec = fmlab_spec::from_depth(depth, vocab, seq as u64)?;
    let w = Weights::<f32>::init(&spec, 1)?;
    let mut g = Weights::<f32>::zeros(&spec)?;
    let n = seq * batch;
    let inputs: Vec<u32> = (0..n).map(|i| (i * 7919 % vocab as usize) as u32).collect();
    let targets: Vec<u32> = (0..n)
        .map(|i| (i * 104_729 % vocab as usize) as u32)
        .collect();
    // One warm-up step (buffers, threads), then steps for at least a second: a small
    // model's first steps run well below its steady speed (three steps once measured depth
    // 1 at 50K tokens/s; it then trained at 80K).
    loss_and_grad(&spec, &w, &inputs, &targets, batch, Some(&mut g))?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed().as_secs_f64() < 1.0 && times.len() < 50) {
        let t = Instant::now();
        loss_and_grad(&spec, &w, &inputs, &targets, batch, Some(&mut g))?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    // The optimizer step and bookkeeping add a few percent; keep a margin for them.
    let step = times[times.len() / 2] * 1.08;
    Ok((spec, n as f64 / step))
}

fn plan(args: &SpeedrunArgs, train_seconds: f64) -> Result<(Vec<Candidate>, usize)> {
    // Post-training asks questions about people by name, and the answer must carry the
    // question's subject: that copying takes the induction heads a single attention layer
    // cannot form (Olsson et al. 2022). With post-training, depths start at 2.
    let first = if args.post_share > 0.0 { 2 } else { 1 };
    let depths: Vec<u64> = match args.depth {
        Some(d) => vec![d],
        None => (first..=6).collect(),
    };
    let mut out = Vec::new();
    for depth in depths {
        let (spec, tps) = measure(depth, args.vocab, args.seq_len, args.batch)?;
        let params = spec.params().total;
        let tokens = tps * train_seconds;
        let optimal = fmlab_scaling::EPOCH
            .optimal(6.0 * params as f64 * tokens)
            .map(|a| a.params)
            .unwrap_or(f64::NAN);
        say(&format!(
            "depth {depth} (d {}, {} params): {:.0} tokens/s → {} tokens; compute-optimal size {}",
            spec.d_model,
            crate::numbers::si(params as f64),
            tps,
            crate::numbers::si(tokens),
            crate::numbers::si(optimal)
        ));
        out.push(Candidate {
            depth,
            d_model: spec.d_model,
            params,
            tokens_per_second: tps,
            tokens,
            optimal_params: optimal,
        });
        // Deeper models only get further from optimal once one is too large.
        if args.depth.is_none() && (params as f64) > 2.0 * optimal {
            break;
        }
    }
    let best = out
        .iter()
        .enumerate()
        .min_by(|a, b| {
            let gap = |c: &Candidate| (c.params as f64 / c.optimal_params).ln().abs();
            gap(a.1).total_cmp(&gap(b.1))
        })
        .map(|(i, _)| i)
        .context("no depth to train")?;
    Ok((out, best))
}

pub fn run(args: SpeedrunArgs) -> Result<()> {
    if !(args.minutes.is_finite() && args.minutes >= 1.0 && args.minutes <= 24.0 * 60.0) {
        bail!("--minutes must be between 1 and 1440, got {}", args.minutes);
    }
    if !(args.epochs.is_finite() && args.epochs >= 0.1 && args.epochs <= 1000.0) {
        bail!("--epochs must be between 0.1 and 1000, got {}", args.epochs);
    }
    if !(0.0..=0.6).contains(&args.post_share) {
        bail!(
            "--post-share must be between 0 and 0.6, got {}",
            args.post_share
        );
    }
    if !(0.0..0.95).contains(&args.sft_mix) {
        bail!("--sft-mix must be in [0, 0.95), got {}", args.sft_mix);
    }
    if args.vocab < 300 || args.vocab > 65_536 {
        bail!("--vocab must be between 300 and 65536, got {}", args.vocab);
    }
    let started = Instant::now();
    let budget = args.minutes * 60.0;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("speedrun-{}", timestamp())));
    if out.join("report.json").exists() || out.join("run").exists() {
        bail!(
            "{} already holds a speedrun: choose another --out",
            out.display()
        );
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let ctrl_c = train_cmd::install_ctrl_c()?;
    let mut stages: BTreeMap<&str, f64> = BTreeMap::new();

    // --- plan: the time left for training, after fixed costs measured below ---
    let t = Instant::now();
    // Evaluation, sampling and the report take seconds (measured: about 5 s of a 10-minute
    // run); 4% of the budget (at least 15 s) is kept for them. World, tokenizer and shards
    // are measured as they run and come off the training time.
    let post_seconds = if args.post_share > 0.0 {
        (args.post_share * budget).max(30.0)
    } else {
        0.0
    };
    let reserve = (0.04 * budget).max(15.0) + post_seconds;
    let planned_train = (budget - reserve - 25.0).max(20.0);
    let (candidates, best) = plan(&args, planned_train)?;
    let chosen = candidates[best].clone();
    say(&format!(
        "training depth {} ({} params) for about {} tokens",
        chosen.depth,
        crate::numbers::si(chosen.params as f64),
        crate::numbers::si(chosen.tokens)
    ));
    stages.insert("plan", t.elapsed().as_secs_f64());

    // --- world, sized so the planned tokens are `--epochs` passes over it ---
    let t = Instant::now();
    let world_dir = out.join("world");
    let tokens_per_step = (args.seq_len * args.batch) as f64;
    let planned_tokens = match args.steps {
        Some(n) => n as f64 * tokens_per_step,
        None => chosen.tokens,
    };
    let size = (planned_tokens * BYTES_PER_TOKEN_GUESS / args.epochs).clamp(300e3, 64e6) as u64;
    let config = fmlab_data::WorldConfig {
        seed: args.seed,
        size,
        ..Default::default()
    };
    let summary = fmlab_data::write_world(&config, &world_dir, |_| {})?;
    say(&format!(
        "world: {} people, {} documents, {:.1} MB",
        summary.people,
        summary.documents,
        summary.corpus_bytes as f64 / 1e6
    ));
    stages.insert("world", t.elapsed().as_secs_f64());

    // --- tokenizer ---
    let t = Instant::now();
    let corpus = world_dir.join("corpus.jsonl");
    let mut trainer = BpeTrainer::new(args.vocab as usize, &DEFAULT_SPECIALS)?;
    fmlab_data::corpus::feed_trainer(&mut trainer, std::slice::from_ref(&corpus), |_| {})?;
    let trained = trainer.train(|_, _| {})?;
    let tok_path = out.join("tokenizer.json");
    fmlab_formats::write_atomically(
        &tok_path,
        &serde_json::to_vec(&trained.to_tokenizer_json())?,
    )?;
    let tokenizer = fmlab_tokenizer::Tokenizer::from_trained(&trained)?;
    stages.insert("tokenizer", t.elapsed().as_secs_f64());

    // --- shards ---
    let t = Instant::now();
    let shards = out.join("shards");
    let manifest = fmlab_data::shards::write_shards(
        std::slice::from_ref(&corpus),
        &tokenizer,
        &shards,
        &fmlab_data::shards::ShardSettings {
            tokenizer: "tokenizer.json".into(),
            val_fraction: 0.02,
            seed: args.seed,
            shard_tokens: 64 << 20,
        },
        |_| {},
    )?
    .manifest;
    let bytes_per_token =
        summary.corpus_bytes as f64 / (manifest.train_tokens + manifest.val_tokens) as f64;
    say(&format!(
        "tokenizer: {} tokens, {:.2} bytes per token; shards: {} train, {} val tokens",
        args.vocab,
        bytes_per_token,
        crate::numbers::si(manifest.train_tokens as f64),
        crate::numbers::si(manifest.val_tokens as f64)
    ));
    stages.insert("shards", t.elapsed().as_secs_f64());

    // --- pre-training, for the seconds that are left ---
    let t = Instant::now();
    let train_seconds = (budget - reserve - started.elapsed().as_secs_f64()).max(10.0);
    let steps = match args.steps {
        Some(n) => n,
        None => ((chosen.tokens_per_second * train_seconds) / tokens_per_step)
            .floor()
            .max(10.0) as u64,
    };
    let settings = fmlab_train::PretrainSettings {
        depth: Some(chosen.depth),
        seq_len: Some(args.seq_len),
        batch: Some(args.batch),
        steps: Some(steps),
        lr: Some(args.lr),
        warmup: Some((steps / 20).clamp(1, 100)),
        eval_every: Some((steps / 20).max(1)),
        eval_windows: Some(32),
        checkpoint_every: Some((steps / 4).max(1)),
        keep: Some(2),
        seed: Some(args.seed),
        ..Default::default()
    };
    let (spec, pconfig) = settings.resolve(manifest.vocab_size)?;
    let run_dir = out.join("run");
    let mut pre = Pretrainer::create(&run_dir, spec, pconfig, &shards, Some(&tok_path))?;
    say(&format!(
        "pre-training: {steps} steps of {} tokens ({} in all), {:.0} s",
        tokens_per_step,
        crate::numbers::si(steps as f64 * tokens_per_step),
        train_seconds
    ));
    // Stop at the deadline (with a checkpoint) if throughput falls short of the plan; a
    // fixed number of steps has no deadline.
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = match args.steps {
        Some(_) => None,
        None => Some(Instant::now() + Duration::from_secs_f64(train_seconds * 1.1 + 5.0)),
    };
    let watcher = {
        let (stop, ctrl_c) = (stop.clone(), ctrl_c.clone());
        std::thread::spawn(move || loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if ctrl_c.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() > d) {
                stop.store(true, Ordering::Relaxed);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        })
    };
    let trained_run = train_cmd::drive(&mut pre, &stop, false);
    let interrupted_by_user = ctrl_c.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let trained_run = trained_run?;
    if interrupted_by_user {
        bail!(
            "interrupted: the checkpoint is in {}",
            trained_run.checkpoint.display()
        );
    }
    stages.insert("pretrain", t.elapsed().as_secs_f64());
    say(&format!(
        "pre-training: val loss {:.3} → {:.3}, {:.0} tokens/s, MFU {:.1}%",
        trained_run.initial_val_loss.unwrap_or(f64::NAN),
        trained_run.final_val_loss.unwrap_or(f64::NAN),
        trained_run.tokens_per_second,
        100.0 * trained_run.mfu
    ));

    // --- validation bits per byte, samples, evaluation ---
    let t = Instant::now();
    let model = pre.weights().to_transformer(pre.spec())?;
    let bpb = bits_per_byte(&pre, &tokenizer)?;
    let samples = samples(&model, &tokenizer, args.seed)?;
    let items = read_eval(&world_dir.join("eval.jsonl"))?;
    let eval = fmlab_eval::world::evaluate_world(
        &model,
        &tokenizer,
        &items,
        &fmlab_eval::world::WorldEvalConfig {
            per_bucket: args.eval_items,
            ..Default::default()
        },
    )?;
    stages.insert("eval", t.elapsed().as_secs_f64());
    let recall: BTreeMap<String, f64> = eval
        .fact_recall
        .iter()
        .map(|(k, v)| (k.clone(), v.accuracy))
        .collect();
    say(&format!(
        "eval: fact recall {}; arithmetic {:.1}%; val {:.3} bits/byte",
        recall
            .iter()
            .map(|(k, v)| format!("{k} {:.1}%", 100.0 * v))
            .collect::<Vec<_>>()
            .join(", "),
        100.0 * eval.arithmetic.accuracy,
        bpb
    ));

    // --- post-training: SFT, on-policy pairs, DPO, each stage judged ---
    let post = if args.post_share > 0.0 {
        // Whatever the earlier stages left, less a margin for the report; fixed steps have
        // no deadline.
        let end = match args.steps {
            Some(_) => None,
            None => Some(started + Duration::from_secs_f64((budget - 8.0).max(0.0))),
        };
        let (post, secs) = crate::speedrun_post::post_train(
            &crate::speedrun_post::PostSettings {
                seed: args.seed,
                seq_len: args.seq_len,
                // Three chat evaluations: 30 questions per split at 3 minutes, 100 at 10.
                eval_items: ((budget / 6.0) as usize).clamp(30, 100),
                sft_lr: args.sft_lr,
                sft_epochs: args.sft_epochs,
                sft_mix: args.sft_mix,
                tokens_per_second: trained_run.tokens_per_second,
                dpo_lr: args.dpo_lr,
                dpo_beta: args.dpo_beta,
                dpo_epochs: args.dpo_epochs,
                prompts: args.pair_prompts,
                k: args.pair_answers,
            },
            &out,
            &world_dir,
            &run_dir,
            end,
        )?;
        for (k, v) in secs {
            stages.insert(k, v);
        }
        Some(post)
    } else {
        None
    };

    // --- report ---
    let recall_png = out.join("recall.png");
    let buckets = ["frequent", "rare"];
    crate::plot::BarPlot {
        title: "few-shot accuracy on the world's eval split",
        y_label: "accuracy (%)",
        categories: buckets
            .iter()
            .map(|b| format!("facts: {b}"))
            .chain(["arithmetic".to_string()])
            .collect(),
        series: vec![(
            format!("depth {}", chosen.depth),
            buckets
                .iter()
                .map(|b| 100.0 * recall.get(*b).copied().unwrap_or(0.0))
                .chain([100.0 * eval.arithmetic.accuracy])
                .collect(),
        )],
    }
    .write_png(&recall_png)?;
    let loss_png = out.join("loss.png");
    std::fs::copy(&trained_run.loss_plot, &loss_png)
        .with_context(|| format!("copying {}", trained_run.loss_plot.display()))?;
    let elapsed = started.elapsed().as_secs_f64();
    let report = json!({
        "format": "fmlab-speedrun-1",
        "minutes": args.minutes,
        "seed": args.seed,
        "elapsed_seconds": elapsed,
        "within_budget": elapsed <= budget,
        "stages_seconds": stages,
        "world": {
            "dir": world_dir,
            "size_bytes": summary.corpus_bytes,
            "people": summary.people,
            "documents": summary.documents,
        },
        "tokenizer": {
            "path": tok_path,
            "vocab_size": args.vocab,
            "bytes_per_token": bytes_per_token,
        },
        "plan": {
            "law": "epoch",
            "fixed_steps": args.steps.is_some(),
            "train_seconds": train_seconds,
            "candidates": candidates,
            "depth": chosen.depth,
            "steps": steps,
            "tokens": steps as f64 * tokens_per_step,
            "epochs": steps as f64 * tokens_per_step / manifest.train_tokens as f64,
        },
        "pretrain": {
            "params": trained_run.params,
            "depth": chosen.depth,
            "d_model": chosen.d_model,
            "steps": trained_run.steps,
            "tokens": trained_run.tokens,
            "tokens_per_second": trained_run.tokens_per_second,
            "mfu": trained_run.mfu,
            "peak_flops": trained_run.peak_flops,
            "initial_val_loss": trained_run.initial_val_loss,
            "final_val_loss": trained_run.final_val_loss,
            "final_train_loss": trained_run.final_train_loss,
            "interrupted_at_deadline": trained_run.interrupted,
            "run": trained_run.run,
        },
        "eval": {
            "fact_recall": recall,
            "fact_recall_detail": eval.fact_recall,
            "fact_recall_by_lang": eval.fact_recall_by_lang,
            "arithmetic_accuracy": eval.arithmetic.accuracy,
            "arithmetic": eval.arithmetic,
            "val_bits_per_byte": bpb,
            "examples": eval.examples,
        },
        "samples": samples,
        "base": post.as_ref().map(|p| p["base"].clone()),
        "sft": post.as_ref().map(|p| p["sft"].clone()),
        "dpo": post.as_ref().map(|p| p["dpo"].clone()),
        "checkpoint": trained_run.checkpoint,
        "plots": {"loss": "loss.png", "recall": "recall.png"},
    });
    fmlab_formats::write_atomically(
        &out.join("report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    let html = html_report(&report, &[("loss", &loss_png), ("recall", &recall_png)])?;
    fmlab_formats::write_atomically(&out.join("report.html"), html.as_bytes())?;
    say(&format!(
        "done in {:.0} s (budget {:.0} s): {}",
        elapsed,
        budget,
        out.join("report.html").display()
    ));
    if args.json {
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        crate::out(&format!("{}\n", out.join("report.html").display()))?;
    }
    Ok(())
}

pub fn read_eval(path: &Path) -> Result<Vec<EvalItem>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// Validation bits per byte: the validation windows' total loss in bits over the bytes of
/// the text they predict (special tokens count no bytes).
fn bits_per_byte(pre: &Pretrainer, tok: &fmlab_tokenizer::Tokenizer) -> Result<f64> {
    let windows = pre.validation();
    if windows.is_empty() {
        return Ok(f64::NAN);
    }
    let mean = pre.evaluate()?.unwrap_or(f64::NAN);
    let tokens: usize = windows.iter().map(|w| w.len() - 1).sum();
    let mut bytes = 0usize;
    for w in windows {
        for &id in &w[1..] {
            bytes += tok.token_bytes(id, false).map(|b| b.len()).unwrap_or(0);
        }
    }
    Ok(mean * tokens as f64 / (bytes.max(1) as f64 * std::f64::consts::LN_2))
}

#[derive(Serialize)]
struct SampleSet {
    prompt: String,
    greedy: String,
    sampled: Vec<String>,
}

/// Greedy and seeded samples (temperature 0.8, llama.cpp's default chain) for a few
/// prompts in the world's styles.
fn samples(
    model: &fmlab_nn::Transformer,
    tok: &fmlab_tokenizer::Tokenizer,
    seed: u64,
) -> Result<Vec<SampleSet>> {
    let prompts = [
        "Once upon a time,",
        "The town of",
        "Il était une fois",
        "A farmer has 12 apples and buys 7 more. How many apples does the farmer have now?\nAnswer:",
    ];
    let mut out = Vec::new();
    for prompt in prompts {
        let ids = tok.encode(prompt, false, false);
        let run = |sampler: &mut Sampler| -> Result<String> {
            let mut session = fmlab_nn::Session::new(model, ids.len() + 40);
            let g = fmlab_sample::generate(
                &mut session,
                &ids,
                sampler,
                GenerateOptions::new(StopConditions {
                    max_new_tokens: 40,
                    stop_tokens: tok.stop_tokens(),
                    ..Default::default()
                }),
                &mut |_, _| true,
            )?;
            Ok(tok.decode(&g.tokens, false).unwrap_or_default())
        };
        let greedy = run(&mut Sampler::greedy())?;
        let mut sampled = Vec::new();
        for i in 0..2 {
            let config = SamplerConfig {
                seed,
                ..Default::default()
            };
            sampled.push(run(&mut Sampler::for_sequence(config, i)?)?);
        }
        out.push(SampleSet {
            prompt: prompt.into(),
            greedy,
            sampled,
        });
    }
    Ok(out)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{:.1}%", 100.0 * x))
        .unwrap_or_else(|| "–".into())
}

/// One self-contained HTML page: tables and the PNGs inline as data URIs.
fn html_report(r: &Value, images: &[(&str, &Path)]) -> Result<String> {
    let mut h = String::new();
    let p = &r["pretrain"];
    let e = &r["eval"];
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>fmlab speedrun</title><style>\
body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}\
table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}\
th{{background:#f3f3f3}}img{{max-width:100%}}pre{{white-space:pre-wrap;background:#f7f7f7;padding:.5rem}}\
.ok{{color:#176f2c}}.bad{{color:#a11}}</style></head><body><h1>fmlab speedrun</h1>\
<p>Budget {} min, finished in {:.0} s{}. Seed {}.</p>",
        r["minutes"],
        r["elapsed_seconds"].as_f64().unwrap_or(0.0),
        if r["within_budget"].as_bool() == Some(true) { " (within budget)" } else { " (over budget)" },
        r["seed"]
    );
    let _ = write!(
        h,
        "<h2>Plan</h2><p>Depths timed for a few steps; for the training seconds left, the Epoch AI \
         refit of Chinchilla's law gives a compute-optimal size; the nearest depth trains.</p>\
         <table><tr><th>depth</th><th>width</th><th>params</th><th>tokens/s</th><th>tokens in budget</th><th>optimal params</th></tr>"
    );
    for c in r["plan"]["candidates"].as_array().into_iter().flatten() {
        let chosen = c["depth"] == r["plan"]["depth"];
        let _ = write!(
            h,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td></tr>",
            if chosen {
                " style=\"font-weight:bold\""
            } else {
                ""
            },
            c["depth"],
            c["d_model"],
            crate::numbers::si(c["params"].as_f64().unwrap_or(0.0)),
            c["tokens_per_second"].as_f64().unwrap_or(0.0),
            crate::numbers::si(c["tokens"].as_f64().unwrap_or(0.0)),
            crate::numbers::si(c["optimal_params"].as_f64().unwrap_or(0.0)),
        );
    }
    let _ = write!(
        h,
        "</table><p>World: {} people, {} documents, {:.1} MB; tokenizer of {} tokens at {:.2} bytes/token; \
         {} epochs planned.</p>",
        r["world"]["people"],
        r["world"]["documents"],
        r["world"]["size_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        r["tokenizer"]["vocab_size"],
        r["tokenizer"]["bytes_per_token"].as_f64().unwrap_or(0.0),
        num(&r["plan"]["epochs"], 1)
    );
    let _ = write!(
        h,
        "<h2>Pre-training</h2><table>\
<tr><th>parameters</th><td>{}</td></tr><tr><th>steps</th><td>{}</td></tr>\
<tr><th>tokens</th><td>{}</td></tr><tr><th>tokens/s</th><td>{}</td></tr><tr><th>MFU</th><td>{}</td></tr>\
<tr><th>validation loss</th><td>{} → {}</td></tr><tr><th>validation bits/byte</th><td>{}</td></tr></table>",
        crate::numbers::si(p["params"].as_f64().unwrap_or(0.0)),
        p["steps"],
        crate::numbers::si(p["tokens"].as_f64().unwrap_or(0.0)),
        num(&p["tokens_per_second"], 0),
        pct(&p["mfu"]),
        num(&p["initial_val_loss"], 3),
        num(&p["final_val_loss"], 3),
        num(&e["val_bits_per_byte"], 3),
    );
    for (name, path) in images {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if *name == "recall" {
            let _ = write!(h, "<h2>Evaluation</h2>");
            let _ = write!(
                h,
                "<p>Few-shot: three true statements about other people, then the subject's \
                 statement cut before the value, completed greedily.</p><table><tr><th>bucket</th><th>accuracy</th><th>items</th></tr>"
            );
            for (bucket, s) in e["fact_recall_detail"].as_object().into_iter().flatten() {
                let _ = write!(
                    h,
                    "<tr><td>facts: {}</td><td>{}</td><td>{}</td></tr>",
                    esc(bucket),
                    pct(&s["accuracy"]),
                    s["items"]
                );
            }
            let _ = write!(
                h,
                "<tr><td>arithmetic</td><td>{}</td><td>{}</td></tr></table>",
                pct(&e["arithmetic"]["accuracy"]),
                e["arithmetic"]["items"]
            );
        }
        let _ = write!(
            h,
            "<img alt=\"{name}\" src=\"data:image/png;base64,{}\">",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
    }
    let _ = write!(h, "<h3>Examples</h3><table><tr><th>bucket</th><th>question</th><th>model</th><th>answer</th></tr>");
    for x in e["examples"].as_array().into_iter().flatten() {
        let ok = x["correct"].as_bool() == Some(true);
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(x["bucket"].as_str().unwrap_or("")),
            esc(x["question"].as_str().unwrap_or("")),
            if ok { "ok" } else { "bad" },
            esc(x["completion"].as_str().unwrap_or("")),
            esc(x["answer"].as_str().unwrap_or("")),
        );
    }
    let _ = write!(h, "</table>");
    if r["sft"].is_object() {
        let _ = write!(
            h,
            "<h2>Post-training</h2><p>SFT on the world's conversations, then DPO on on-policy \
             pairs (the SFT model's own answers to training prompts, the best against one of \
             every lower score by the world's judge; SFT replays half its rows from the \
             corpus). Each model is asked the held-out eval questions through the chat \
             template, answered greedily and judged. Facts count every question; in brackets, \
             the free-form questions alone, which the few-shot recall above asks too.</p>\
             <table><tr><th>model</th><th>format \
             compliance</th><th>facts: frequent</th><th>facts: rare</th><th>never seen: I don't \
             know</th><th>never seen: hallucinated</th><th>judge's win rate over the previous \
             stage</th></tr>"
        );
        for (name, key, win) in [
            ("base", "base", None),
            ("SFT", "sft", Some("win_rate_vs_base")),
            ("DPO", "dpo", Some("win_rate_vs_sft")),
        ] {
            let x = &r[key];
            let _ = write!(
                h,
                "<tr><td>{name}</td><td>{}</td><td>{} ({})</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                pct(&x["format_compliance"]),
                pct(&x["fact_accuracy"]["frequent"]),
                pct(&x["fact_accuracy_free_form"]["frequent"]),
                pct(&x["fact_accuracy"]["rare"]),
                pct(&x["fact_accuracy_free_form"]["rare"]),
                pct(&x["idk_rate_unseen"]),
                pct(&x["hallucination_rate_unseen"]),
                win.map_or("—".to_string(), |w| pct(&x[w])),
            );
        }
        let _ = write!(h, "</table><h3>Answers after DPO</h3><table><tr><th>split</th><th>question</th><th>answer</th><th>verdict</th></tr>");
        for x in r["dpo"]["examples"].as_array().into_iter().flatten() {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(x["split"].as_str().unwrap_or("")),
                esc(x["prompt"].as_str().unwrap_or("")),
                esc(x["answer"].as_str().unwrap_or("")),
                esc(x["verdict"].as_str().unwrap_or("")),
            );
        }
        let _ = write!(h, "</table>");
    }
    let _ = write!(h, "<h2>Samples</h2>");
    for s in r["samples"].as_array().into_iter().flatten() {
        let prompt = esc(s["prompt"].as_str().unwrap_or(""));
        let _ = write!(
            h,
            "<h4>{prompt}</h4><p>greedy:</p><pre><b>{prompt}</b>{}</pre>",
            esc(s["greedy"].as_str().unwrap_or(""))
        );
        for x in s["sampled"].as_array().into_iter().flatten() {
            let _ = write!(
                h,
                "<p>temperature 0.8:</p><pre><b>{prompt}</b>{}</pre>",
                esc(x.as_str().unwrap_or(""))
            );
        }
    }
    let _ = write!(
        h,
        "<p>Checkpoint: <code>{}</code>. Continue with <code>fmlab generate</code> on it, or export it with <code>fmlab export</code>.</p></body></html>",
        esc(r["checkpoint"].as_str().unwrap_or(""))
    );
    Ok(h)
}
