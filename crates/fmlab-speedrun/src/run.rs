//! The speedrun's stages in order: plan, data (world, tokenizer, shards), pre-training,
//! evaluation of the base model, post-training; each stage timed, the report assembled and
//! written as `report.json`.
//!
//! Sizing: each depth of the depth dial is timed for a few training steps; with the
//! seconds left for training, depth d could process D_d = tokens/s_d × seconds tokens, a
//! compute of C_d = 6·N_d·D_d. The Epoch AI refit of Chinchilla's law gives the
//! compute-optimal size N*(C_d); the depth whose N_d is nearest N*(C_d) (in log) is trained
//! for D_d tokens. The world is sized so that those tokens are `epochs` (16) passes over
//! it: facts must be seen repeatedly to be learned, and how often is what the eval buckets
//! measure. With a fixed number of steps, the steps size the world instead and no stage
//! has a deadline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fmlab_data::shards::{write_shards, ShardManifest, ShardSettings};
use fmlab_data::WorldSummary;
use fmlab_tokenizer::train::{BpeTrainer, DEFAULT_SPECIALS};
use fmlab_tokenizer::Tokenizer;
use fmlab_train::pretrain::Pretrainer;
use fmlab_train::PretrainSummary;

use crate::plan::{plan, StepShape, BYTES_PER_TOKEN_GUESS};
use crate::report::{
    Candidate, CpuFacts, EvalFacts, PlanFacts, Plots, PretrainFacts, Report, SampleSet,
    TokenizerFacts, WorldFacts, FORMAT,
};
use crate::{post, samples, Config, Error, Event};

/// Seconds per stage, by name.
type Stages = BTreeMap<String, f64>;

/// Runs the whole lifecycle into `out` (which must not hold a speedrun yet); `stop` (the
/// caller's Ctrl-C) ends pre-training at a checkpoint and the run with an error naming it.
/// Writes `report.json` and returns the report, its paths relative to `out`; `plots` name
/// the PNGs the caller draws (`loss.png`: pre-training's curve; `recall.png`; with
/// post-training `stages.png`, and `sft/loss.png`, `dpo/loss.png` when the stages end).
pub fn run(
    config: &Config,
    out: &Path,
    stop: &AtomicBool,
    on: &mut dyn FnMut(Event),
) -> Result<Report, Error> {
    config.validate()?;
    if out.join("report.json").exists() || out.join("run").exists() {
        return Err(Error::Message(format!(
            "{} already holds a speedrun: choose another --out",
            out.display()
        )));
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Error::Message(format!("creating {}: {e}", out.display())))?;
    let started = Instant::now();
    let budget = config.minutes * 60.0;
    let mut stages = Stages::new();

    // --- plan: the time left for training, after fixed costs measured below ---
    let t = Instant::now();
    // Evaluation, sampling and the report take seconds (measured: about 5 s of a 10-minute
    // run); 4% of the budget (at least 15 s) is kept for them. World, tokenizer and shards
    // are measured as they run and come off the training time.
    let post_seconds = if config.post_share > 0.0 {
        (config.post_share * budget).max(30.0)
    } else {
        0.0
    };
    let reserve = (0.04 * budget).max(15.0) + post_seconds;
    let planned_train = (budget - reserve - 25.0).max(20.0);
    // Post-training asks questions about people by name, and the answer must carry the
    // question's subject: that copying takes the induction heads a single attention layer
    // cannot form (Olsson et al. 2022). With post-training, depths start at 2.
    let first = if config.post_share > 0.0 { 2 } else { 1 };
    let shape = StepShape {
        vocab: config.vocab,
        seq_len: config.seq_len,
        batch: config.batch,
    };
    let (candidates, best) = plan(config.depth, first, shape, planned_train, &mut |c| {
        on(Event::Candidate(c))
    })?;
    let chosen = candidates[best].clone();
    on(Event::Chosen(&chosen));
    stages.insert("plan".into(), t.elapsed().as_secs_f64());

    let data = prepare_data(config, out, &chosen, &mut stages, on)?;

    // --- pre-training, for the seconds that are left ---
    let t = Instant::now();
    let train_seconds = (budget - reserve - started.elapsed().as_secs_f64()).max(10.0);
    let tokens_per_step = (config.seq_len * config.batch) as f64;
    let steps = match config.steps {
        Some(n) => n,
        None => ((chosen.tokens_per_second * train_seconds) / tokens_per_step)
            .floor()
            .max(10.0) as u64,
    };
    let run_dir = out.join("run");
    // MFU's peak, and the CPU the report names: one figure per CPU and thread count.
    let peak = fmlab_kernels::peak_flops();
    let (pre, trained) = pretrain(
        config,
        &data,
        &chosen,
        &run_dir,
        (steps, train_seconds),
        peak.flops,
        stop,
        on,
    )?;
    stages.insert("pretrain".into(), t.elapsed().as_secs_f64());
    let pretrain_facts = pretrain_facts(&chosen, &trained);
    on(Event::Pretrained(&pretrain_facts));

    // --- validation bits per byte, samples, evaluation ---
    let t = Instant::now();
    let (eval, samples) = evaluate(config, pre, &data)?;
    stages.insert("eval".into(), t.elapsed().as_secs_f64());
    on(Event::Evaluated(&eval));

    // --- post-training: SFT, on-policy pairs, DPO, each stage judged ---
    let post = if config.post_share > 0.0 {
        let dirs = post::Dirs {
            out,
            world: &data.world_dir,
            run: &run_dir,
        };
        let ends = post_deadline(config, started);
        let settings = post_settings(config, trained.tokens_per_second);
        Some(post::post_train(
            &settings,
            &dirs,
            ends,
            stop,
            &mut stages,
            on,
        )?)
    } else {
        None
    };

    let elapsed = started.elapsed().as_secs_f64();
    let (base, sft, dpo) = match post {
        Some(p) => (Some(p.base), Some(p.sft), Some(p.dpo)),
        None => (None, None, None),
    };
    let mut report = Report {
        format: FORMAT.into(),
        minutes: config.minutes,
        seed: config.seed,
        elapsed_seconds: elapsed,
        within_budget: elapsed <= budget,
        fmlab_version: env!("CARGO_PKG_VERSION").into(),
        cpu: CpuFacts {
            model: peak.cpu,
            threads: peak.threads,
        },
        config: config.clone(),
        stages_seconds: stages,
        world: data.world,
        plan: PlanFacts {
            law: "epoch".into(),
            fixed_steps: config.steps.is_some(),
            train_seconds,
            candidates,
            depth: chosen.depth,
            steps,
            tokens: steps as f64 * tokens_per_step,
            epochs: steps as f64 * tokens_per_step / data.manifest.train_tokens as f64,
        },
        tokenizer: data.tokenizer_facts,
        pretrain: pretrain_facts,
        eval,
        samples,
        base,
        sft,
        dpo,
        checkpoint: trained.checkpoint,
        plots: plots(config.post_share > 0.0),
    };
    report.make_relative(out);
    fmlab_formats::write_atomically(
        &out.join("report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}

/// The PNGs the caller draws, in the report's folder (the finetuning stages' curves in
/// their run folders).
fn plots(post_trained: bool) -> Plots {
    let post = |p: &str| post_trained.then(|| p.to_string());
    Plots {
        loss: "loss.png".into(),
        recall: "recall.png".into(),
        sft_loss: post("sft/loss.png"),
        dpo_loss: post("dpo/loss.png"),
        stages: post("stages.png"),
    }
}

/// The world, its tokenizer and its token shards.
struct Data {
    world_dir: PathBuf,
    world: WorldFacts,
    tokenizer: Tokenizer,
    tokenizer_path: PathBuf,
    tokenizer_facts: TokenizerFacts,
    shards: PathBuf,
    manifest: ShardManifest,
}

/// Writes the world (sized so the planned tokens are `epochs` passes over it), trains the
/// tokenizer on its corpus and tokenizes the corpus into shards.
fn prepare_data(
    config: &Config,
    out: &Path,
    chosen: &Candidate,
    stages: &mut Stages,
    on: &mut dyn FnMut(Event),
) -> Result<Data, Error> {
    let t = Instant::now();
    let world_dir = out.join("world");
    let tokens_per_step = (config.seq_len * config.batch) as f64;
    let planned_tokens = match config.steps {
        Some(n) => n as f64 * tokens_per_step,
        None => chosen.tokens,
    };
    let size = (planned_tokens * BYTES_PER_TOKEN_GUESS / config.epochs).clamp(300e3, 64e6) as u64;
    let world_config = fmlab_data::WorldConfig {
        seed: config.seed,
        size,
        ..Default::default()
    };
    let summary: WorldSummary = fmlab_data::write_world(&world_config, &world_dir, |_| {})?;
    let world = WorldFacts {
        dir: world_dir.clone(),
        size_bytes: summary.corpus_bytes,
        people: summary.people,
        documents: summary.documents,
    };
    on(Event::World(&world));
    stages.insert("world".into(), t.elapsed().as_secs_f64());

    // --- tokenizer ---
    let t = Instant::now();
    let corpus = world_dir.join("corpus.jsonl");
    let mut trainer = BpeTrainer::new(config.vocab as usize, &DEFAULT_SPECIALS)?;
    fmlab_data::corpus::feed_trainer(&mut trainer, std::slice::from_ref(&corpus), |_| {})?;
    let trained = trainer.train(|_, _| {})?;
    let tokenizer_path = out.join("tokenizer.json");
    fmlab_formats::write_atomically(
        &tokenizer_path,
        &serde_json::to_vec(&trained.to_tokenizer_json())?,
    )?;
    let tokenizer = Tokenizer::from_trained(&trained)?;
    stages.insert("tokenizer".into(), t.elapsed().as_secs_f64());

    // --- shards ---
    let t = Instant::now();
    let shards = out.join("shards");
    let manifest = write_shards(
        std::slice::from_ref(&corpus),
        &tokenizer,
        &shards,
        &ShardSettings {
            tokenizer: "tokenizer.json".into(),
            val_fraction: 0.02,
            seed: config.seed,
            shard_tokens: 64 << 20,
            tokenizer_file: None,
        },
        |_| {},
    )?
    .manifest;
    let tokenizer_facts = TokenizerFacts {
        path: tokenizer_path.clone(),
        vocab_size: config.vocab,
        bytes_per_token: summary.corpus_bytes as f64
            / (manifest.train_tokens + manifest.val_tokens) as f64,
    };
    on(Event::Shards {
        tokenizer: &tokenizer_facts,
        train_tokens: manifest.train_tokens,
        val_tokens: manifest.val_tokens,
    });
    stages.insert("shards".into(), t.elapsed().as_secs_f64());
    Ok(Data {
        world_dir,
        world,
        tokenizer,
        tokenizer_path,
        tokenizer_facts,
        shards,
        manifest,
    })
}

/// Pre-trains the chosen depth for `steps` steps into `run_dir`, stopped at a checkpoint by
/// `stop` (then an error) or, without fixed steps, by a deadline a tenth past the plan.
#[allow(clippy::too_many_arguments)]
fn pretrain(
    config: &Config,
    data: &Data,
    chosen: &Candidate,
    run_dir: &Path,
    (steps, train_seconds): (u64, f64),
    peak: f64,
    stop: &AtomicBool,
    on: &mut dyn FnMut(Event),
) -> Result<(Pretrainer, PretrainSummary), Error> {
    let settings = fmlab_train::PretrainSettings {
        depth: Some(chosen.depth),
        seq_len: Some(config.seq_len),
        batch: Some(config.batch),
        steps: Some(steps),
        lr: Some(config.lr),
        warmup: Some((steps / 20).clamp(1, 100)),
        eval_every: Some((steps / 20).max(1)),
        eval_windows: Some(32),
        checkpoint_every: Some((steps / 4).max(1)),
        keep: Some(2),
        seed: Some(config.seed),
        ..Default::default()
    };
    let (spec, loop_config) = settings.resolve(data.manifest.vocab_size)?;
    let mut pre = Pretrainer::create(
        run_dir,
        spec,
        loop_config,
        &data.shards,
        Some(&data.tokenizer_path),
    )?;
    on(Event::PretrainStart {
        steps,
        tokens_per_step: (config.seq_len * config.batch) as f64,
        seconds: train_seconds,
    });
    // Stop at the deadline (with a checkpoint) if throughput falls short of the plan; a
    // fixed number of steps has no deadline.
    let deadline = match config.steps {
        Some(_) => None,
        None => Some(Instant::now() + Duration::from_secs_f64(train_seconds * 1.1 + 5.0)),
    };
    let local = AtomicBool::new(false);
    let summary = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| loop {
            if local.load(Ordering::Relaxed) {
                return;
            }
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() > d) {
                local.store(true, Ordering::Relaxed);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        });
        let summary = fmlab_train::session::pretrain(&mut pre, &local, peak, &mut |p| {
            on(Event::Training {
                stage: "pre-training",
                progress: p,
            })
        });
        local.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        summary
    })?;
    on(Event::Trained {
        stage: "pre-training",
        run: &summary.run,
    });
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Message(format!(
            "interrupted: the checkpoint is in {}",
            summary.checkpoint.display()
        )));
    }
    Ok((pre, summary))
}

/// The pre-trained model's validation bits per byte, samples and few-shot evaluation on
/// the world (`pre` is dropped afterwards: post-training reloads the run).
fn evaluate(
    config: &Config,
    pre: Pretrainer,
    data: &Data,
) -> Result<(EvalFacts, Vec<SampleSet>), Error> {
    let model = pre.weights().to_transformer(pre.spec())?;
    let val_bits_per_byte = samples::bits_per_byte(&pre, &data.tokenizer)?;
    let samples = samples::samples(&model, &data.tokenizer, config.seed)?;
    let items = fmlab_data::read_items(&data.world_dir.join("eval.jsonl"))?;
    let eval = fmlab_eval::world::evaluate_world(
        &model,
        &data.tokenizer,
        &items,
        &fmlab_eval::world::WorldEvalConfig {
            per_bucket: config.eval_items,
            ..Default::default()
        },
    )?;
    let facts = EvalFacts {
        fact_recall: eval
            .fact_recall
            .iter()
            .map(|(k, v)| (k.clone(), v.accuracy))
            .collect(),
        fact_recall_detail: eval.fact_recall,
        fact_recall_by_lang: eval.fact_recall_by_lang,
        arithmetic_accuracy: eval.arithmetic.accuracy,
        arithmetic: eval.arithmetic,
        val_bits_per_byte,
        examples: eval.examples,
    };
    Ok((facts, samples))
}

/// Post-training's settings; `tokens_per_second` (pre-training's) sizes its stages to
/// their time.
fn post_settings(config: &Config, tokens_per_second: f64) -> post::PostSettings {
    let budget = config.minutes * 60.0;
    post::PostSettings {
        seed: config.seed,
        seq_len: config.seq_len,
        // Three chat evaluations: 30 questions per split at 3 minutes, 100 at 10.
        eval_items: ((budget / 6.0) as usize).clamp(30, 100),
        sft_lr: config.sft_lr,
        sft_epochs: config.sft_epochs,
        sft_mix: config.sft_mix,
        tokens_per_second,
        dpo_lr: config.dpo_lr,
        dpo_beta: config.dpo_beta,
        dpo_epochs: config.dpo_epochs,
        prompts: config.pair_prompts,
        k: config.pair_answers,
    }
}

/// When post-training must end: whatever the earlier stages left, less a margin for the
/// report; fixed steps have no deadline.
fn post_deadline(config: &Config, started: Instant) -> Option<Instant> {
    let budget = config.minutes * 60.0;
    match config.steps {
        Some(_) => None,
        None => Some(started + Duration::from_secs_f64((budget - 8.0).max(0.0))),
    }
}

/// What the report keeps of pre-training.
fn pretrain_facts(chosen: &Candidate, trained: &PretrainSummary) -> PretrainFacts {
    PretrainFacts {
        params: trained.params,
        depth: chosen.depth,
        d_model: chosen.d_model,
        steps: trained.steps,
        tokens: trained.tokens,
        tokens_per_second: trained.tokens_per_second,
        mfu: trained.mfu,
        peak_flops: trained.peak_flops,
        initial_val_loss: trained.initial_val_loss,
        final_val_loss: trained.final_val_loss,
        final_train_loss: trained.final_train_loss,
        interrupted_at_deadline: trained.interrupted,
        run: trained.run.clone(),
    }
}
