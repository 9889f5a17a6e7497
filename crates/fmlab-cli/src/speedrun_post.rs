//! The speedrun's post-training stages: SFT of the pre-trained model on the world's
//! conversations, then DPO on on-policy pairs (the SFT model's own answers to the world's
//! training prompts, judged), with the base, SFT and DPO models each asked the world's
//! held-out eval questions through the chat template and judged before and after.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fmlab_data::EvalItem;
use fmlab_eval::chat::{
    evaluate_chat, preference_pairs, win_rate, ChatEval, ChatEvalConfig, PairConfig, WinRate,
    WorldJudge,
};
use fmlab_train::chat_data::{read_conversations, Skipped};
use fmlab_train::finetune::{Data, FinetuneSettings, Method, NewStage, PreferenceLoss};
use serde_json::{json, Value};

use crate::finetune_cmd::{finetune, Finetuned};

/// Post-training settings of the speedrun.
pub struct PostSettings {
    pub seed: u64,
    pub seq_len: usize,
    /// Chat-eval questions per split.
    pub eval_items: usize,
    pub sft_lr: f32,
    pub sft_epochs: f64,
    /// Share of SFT's positions replaying the corpus (0: none).
    pub sft_mix: f64,
    /// Pre-training's measured tokens per second: sizes the finetuning stages to their time.
    pub tokens_per_second: f64,
    pub dpo_lr: f32,
    pub dpo_beta: f64,
    pub dpo_epochs: f64,
    /// Training prompts sampled for on-policy pairs, and answers per prompt.
    pub prompts: usize,
    pub k: usize,
}

fn say(msg: &str) {
    eprintln!("[speedrun] {msg}");
}

/// The stable fields of one stage's chat evaluation.
fn stage_json(e: &ChatEval) -> Value {
    let acc: serde_json::Map<String, Value> = e
        .fact_accuracy
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.accuracy)))
        .collect();
    let free: serde_json::Map<String, Value> = e
        .fact_accuracy_free_form
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.accuracy)))
        .collect();
    json!({
        "format_compliance": e.format_compliance,
        "fact_accuracy": acc,
        "fact_accuracy_free_form": free,
        "idk_rate_unseen": e.idk_rate_unseen,
        "hallucination_rate_unseen": e.hallucination_rate_unseen,
        "arithmetic_accuracy": e.arithmetic.accuracy,
        "verdicts": e.verdicts,
        "items": e.answers.len(),
        "examples": e.answers.iter().take(8).map(|a| json!({
            "split": a.split, "prompt": a.prompt, "answer": a.text, "verdict": a.verdict,
        })).collect::<Vec<_>>(),
    })
}

fn describe(name: &str, e: &ChatEval) -> String {
    let acc = |b: &str| e.fact_accuracy.get(b).map_or(0.0, |s| s.accuracy);
    let free = |b: &str| e.fact_accuracy_free_form.get(b).map_or(0.0, |s| s.accuracy);
    format!(
        "{name}: format {:.0}%, facts frequent {:.1}% rare {:.1}% (free-form questions {:.1}% / {:.1}%), unseen: I don't know {:.0}% / hallucinated {:.0}%",
        100.0 * e.format_compliance,
        100.0 * acc("frequent"),
        100.0 * acc("rare"),
        100.0 * free("frequent"),
        100.0 * free("rare"),
        100.0 * e.idk_rate_unseen,
        100.0 * e.hallucination_rate_unseen
    )
}

fn load(model_path: &Path) -> Result<crate::model::Loaded> {
    crate::model::load(&model_path.to_string_lossy())
}

fn evaluate(
    loaded: &crate::model::Loaded,
    items: &[EvalItem],
    per_split: usize,
) -> Result<ChatEval> {
    let template = loaded.template.as_ref().context("no chat template")?;
    Ok(evaluate_chat(
        &loaded.model,
        &loaded.tokenizer,
        template,
        items,
        &ChatEvalConfig {
            per_split,
            max_new_tokens: 48,
        },
    )?)
}

/// A stage's settings: `epochs` at `lr`, at most `max_steps`.
fn settings(s: &PostSettings, lr: f32, epochs: f64, max_steps: Option<u64>) -> FinetuneSettings {
    FinetuneSettings {
        seq_len: Some(s.seq_len),
        epochs,
        max_steps,
        lr: Some(lr),
        warmup_ratio: 0.05,
        keep: 1,
        seed: s.seed,
        ..FinetuneSettings::default()
    }
}

/// The optimizer steps of 8 rows of `seq_len` tokens that fit `seconds` at pre-training's
/// measured throughput, less a fifth for evaluations and checkpoints.
fn steps_within(s: &PostSettings, seconds: f64) -> u64 {
    let per_step = (8 * s.seq_len) as f64;
    ((0.8 * seconds * s.tokens_per_second / per_step) as u64).max(1)
}

/// The SFT model's answers to the world's training prompts, `s.k` each, judged into
/// pairs; sampled in chunks until `deadline` (a quarter of the time left). Returns the
/// prompts asked and the pairs.
fn on_policy_pairs(
    s: &PostSettings,
    world: &Path,
    loaded: &crate::model::Loaded,
    deadline: Option<Instant>,
) -> Result<(Vec<EvalItem>, Vec<fmlab_eval::chat::SampledPair>)> {
    let template = loaded.template.as_ref().context("no chat template")?;
    let mut prompts = crate::speedrun::read_eval(&world.join("prompts.jsonl"))?;
    prompts.truncate(s.prompts);
    // Sampled in chunks until the deadline (a short run asks fewer prompts); each prompt
    // keeps its own sampler streams whichever chunk it falls in.
    let mut pairs = Vec::new();
    let mut asked = 0usize;
    for chunk in prompts.chunks(250) {
        if asked > 0 && deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        pairs.extend(preference_pairs(
            &loaded.model,
            &loaded.tokenizer,
            template,
            chunk,
            &WorldJudge,
            &PairConfig {
                k: s.k,
                sampler: fmlab_sample::SamplerConfig {
                    temperature: 1.0,
                    top_k: 0,
                    top_p: 1.0,
                    min_p: 0.0,
                    seed: s.seed,
                    ..Default::default()
                },
                max_new_tokens: 48,
                // A right answer is preferred to "I don't know" too, not only to the worst.
                pairing: fmlab_eval::chat::Pairing::BestVsEachLevel,
                first_stream: (asked * s.k) as u64,
            },
        )?);
        asked += chunk.len();
    }
    prompts.truncate(asked);
    Ok((prompts, pairs))
}

/// Runs SFT and DPO from the pre-trained `run`, with `deadline` for the whole stage (or
/// none: then SFT and DPO run their full epochs and every prompt is sampled for pairs);
/// returns the report's `base`, `sft` and `dpo` sections and the stage seconds.
pub fn post_train(
    s: &PostSettings,
    out: &Path,
    world: &Path,
    run: &Path,
    deadline: Option<Instant>,
) -> Result<(Value, Vec<(&'static str, f64)>)> {
    let mut seconds = Vec::new();
    let items = crate::speedrun::read_eval(&world.join("eval.jsonl"))?;
    // The seconds left until the deadline, and a deadline that many seconds ahead.
    let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()).as_secs_f64());
    let ahead = |secs: Option<f64>| secs.map(|x| Instant::now() + Duration::from_secs_f64(x));
    let total = left();
    // --- base, asked through the chat template it never saw ---
    let t = Instant::now();
    let base_eval = evaluate(&load(run)?, &items, s.eval_items)?;
    say(&describe("base", &base_eval));
    seconds.push(("eval_base", t.elapsed().as_secs_f64()));

    // --- SFT: about a third of what is left ---
    let t = Instant::now();
    let base = crate::model::load_trainable(&run.to_string_lossy())?;
    let (convs, skipped) = read_conversations(&world.join("sft.jsonl"))?;
    let seqs = base.chat.encoder().conversations(&convs)?;
    let mix = (s.sft_mix > 0.0).then(|| fmlab_train::finetune::Mix {
        path: world.join("corpus.jsonl"),
        ratio: s.sft_mix,
    });
    let sft_dir = out.join("sft");
    // SFT (half of its rows replayed text, four epochs) is the longest post-training stage.
    let sft_seconds = total.map(|t| 0.55 * t);
    let sft_data = world.join("sft.jsonl");
    let stage = NewStage {
        out: &sft_dir,
        method: Method::Sft,
        data: Data::Sft(seqs),
        skipped,
        source: Some(&sft_data),
        mix: mix.as_ref(),
    };
    // The epochs asked for, or as many steps as the stage's time allows: a stage cut by its
    // deadline would stop before its learning rate has decayed.
    let sft_settings = settings(
        s,
        s.sft_lr,
        s.sft_epochs,
        sft_seconds.map(|t| steps_within(s, t)),
    );
    let sft: Finetuned = finetune(base, stage, &sft_settings, true, ahead(sft_seconds))?;
    seconds.push(("sft", t.elapsed().as_secs_f64()));
    let t = Instant::now();
    // The SFT model is loaded once: judged, then sampled for on-policy pairs.
    let loaded = load(&sft_dir)?;
    let sft_eval = evaluate(&loaded, &items, s.eval_items)?;
    let sft_win = win_rate(&sft_eval, &base_eval, &items, &WorldJudge);
    say(&format!(
        "{}; win rate over base {:.0}%",
        describe("SFT", &sft_eval),
        100.0 * sft_win.win_rate
    ));
    seconds.push(("eval_sft", t.elapsed().as_secs_f64()));

    // --- on-policy pairs from the SFT model's answers to training prompts ---
    let t = Instant::now();
    let pairs_deadline = ahead(left().map(|t| 0.25 * t));
    let (prompts, pairs) = on_policy_pairs(s, world, &loaded, pairs_deadline)?;
    let mut lines = String::new();
    for p in &pairs {
        lines += &serde_json::to_string(p)?;
        lines.push('\n');
    }
    fmlab_formats::write_atomically(&out.join("pairs.jsonl"), lines.as_bytes())?;
    say(&format!(
        "on-policy pairs: {} of {} prompts ({} answers each) separated by the judge",
        pairs.len(),
        prompts.len(),
        s.k
    ));
    seconds.push(("pairs", t.elapsed().as_secs_f64()));

    // --- DPO from the SFT model on those pairs ---
    let t = Instant::now();
    let sft_model = crate::model::load_trainable(&sft_dir.to_string_lossy())?;
    let pairs_in: Vec<fmlab_train::chat_data::Pair> = pairs
        .iter()
        .map(|p| fmlab_train::chat_data::Pair {
            prompt: p.prompt.clone(),
            chosen: p.chosen.clone(),
            rejected: p.rejected.clone(),
        })
        .collect();
    let data = sft_model.chat.encoder().pairs(&pairs_in)?;
    let dpo_dir = out.join("dpo");
    let dpo_seconds = left().map(|t| 0.6 * t);
    let pairs_file = out.join("pairs.jsonl");
    let stage = NewStage {
        out: &dpo_dir,
        method: Method::Preference {
            beta: s.dpo_beta,
            loss: PreferenceLoss::Sigmoid,
        },
        data: Data::Pairs(data),
        skipped: Skipped::default(),
        source: Some(&pairs_file),
        mix: None,
    };
    let dpo_settings = settings(
        s,
        s.dpo_lr,
        s.dpo_epochs,
        dpo_seconds.map(|t| steps_within(s, t)),
    );
    let dpo = finetune(sft_model, stage, &dpo_settings, true, ahead(dpo_seconds))?;
    seconds.push(("dpo", t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let dpo_eval = evaluate(&load(&dpo_dir)?, &items, s.eval_items)?;
    let dpo_win: WinRate = win_rate(&dpo_eval, &sft_eval, &items, &WorldJudge);
    say(&format!(
        "{}; win rate over SFT {:.0}% ({:.0}% of decided)",
        describe("DPO", &dpo_eval),
        100.0 * dpo_win.win_rate,
        100.0 * dpo_win.win_rate_decided
    ));
    seconds.push(("eval_dpo", t.elapsed().as_secs_f64()));

    let mut base_j = stage_json(&base_eval);
    base_j["model"] = json!(run);
    let mut sft_j = stage_json(&sft_eval);
    sft_j["win_rate_vs_base"] = json!(sft_win.win_rate);
    sft_j["win_vs_base"] = json!(sft_win);
    sft_j["training"] = json!(sft);
    let mut dpo_j = stage_json(&dpo_eval);
    dpo_j["win_rate_vs_sft"] = json!(dpo_win.win_rate);
    dpo_j["win_vs_sft"] = json!(dpo_win);
    dpo_j["training"] = json!(dpo);
    dpo_j["pairs"] =
        json!({"prompts": prompts.len(), "pairs": pairs.len(), "k": s.k, "file": "pairs.jsonl"});
    Ok((json!({"base": base_j, "sft": sft_j, "dpo": dpo_j}), seconds))
}
