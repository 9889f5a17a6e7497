//! The speedrun's post-training stages: SFT of the pre-trained model on the world's
//! conversations, then DPO on on-policy pairs (the SFT model's own answers to the world's
//! training prompts, judged), with the base, SFT and DPO models each asked the world's
//! held-out eval questions through the chat template and judged before and after.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use fmlab_data::EvalItem;
use fmlab_eval::chat::{
    evaluate_chat, preference_pairs, win_rate, ChatEval, ChatEvalConfig, PairConfig, SampledPair,
    WorldJudge,
};
use fmlab_train::chat_data::{read_conversations, Pair, Skipped};
use fmlab_train::finetune::setup::start;
use fmlab_train::finetune::{Data, FinetuneSettings, Method, Mix, NewStage, PreferenceLoss};
use fmlab_train::models::{Loaded, Trainable};

use crate::report::{BaseStage, DpoStage, PairsFacts, SftStage, StageEval, Training};
use crate::{Error, Event};

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

/// Where the stages read and write: the speedrun's folder, its world, the pre-trained run.
pub struct Dirs<'a> {
    pub out: &'a Path,
    pub world: &'a Path,
    pub run: &'a Path,
}

/// The report's three post-training sections.
pub struct Post {
    pub base: BaseStage,
    pub sft: SftStage,
    pub dpo: DpoStage,
}

fn load(model: &Path, on: &mut dyn FnMut(Event)) -> Result<Loaded, Error> {
    let loaded = fmlab_train::models::load(&model.to_string_lossy())?;
    if !loaded.skipped.is_empty() {
        on(Event::Skipped(&loaded.skipped));
    }
    Ok(loaded)
}

fn load_trainable(model: &Path, on: &mut dyn FnMut(Event)) -> Result<Trainable, Error> {
    let t = fmlab_train::models::load_trainable(&model.to_string_lossy())?;
    if !t.skipped.is_empty() {
        on(Event::Skipped(&t.skipped));
    }
    Ok(t)
}

fn evaluate(loaded: &Loaded, items: &[EvalItem], per_split: usize) -> Result<ChatEval, Error> {
    let template = loaded
        .template
        .as_ref()
        .ok_or_else(|| Error::Message("no chat template".into()))?;
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

/// Trains one finetuning stage from `base`, reporting its progress as `name`.
fn finetune(
    base: Trainable,
    stage: NewStage<'_>,
    s: &FinetuneSettings,
    name: &'static str,
    deadline: Option<Instant>,
    stop: &AtomicBool,
    on: &mut dyn FnMut(Event),
) -> Result<Training, Error> {
    let (base, chat) = base.into_base(true);
    let session = start(base, &chat.tokenizer, stage, s)?;
    let summary = session.run(stop, deadline, &mut |progress| {
        on(Event::Training {
            stage: name,
            progress,
        })
    })?;
    on(Event::Trained {
        stage: name,
        run: &summary.run,
    });
    Ok(Training {
        loss_plot: summary.run.join("loss.png"),
        summary,
    })
}

/// The SFT model's answers to the world's training prompts, `s.k` each, judged into
/// pairs; sampled in chunks until `deadline` (a quarter of the time left). Returns the
/// prompts asked and the pairs.
fn on_policy_pairs(
    s: &PostSettings,
    world: &Path,
    loaded: &Loaded,
    deadline: Option<Instant>,
) -> Result<(Vec<EvalItem>, Vec<SampledPair>), Error> {
    let template = loaded
        .template
        .as_ref()
        .ok_or_else(|| Error::Message("no chat template".into()))?;
    let mut prompts = fmlab_data::read_items(&world.join("prompts.jsonl"))?;
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
                sampler: fmlab_sample::SamplerConfig::pure(s.seed),
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

/// SFT from the pre-trained run on the world's conversations, replaying the corpus for
/// `sft_mix` of its positions, for its epochs or the steps `seconds` allow.
fn sft_stage(
    s: &PostSettings,
    dirs: &Dirs<'_>,
    sft_dir: &Path,
    seconds: Option<f64>,
    stop: &AtomicBool,
    on: &mut dyn FnMut(Event),
) -> Result<Training, Error> {
    let base = load_trainable(dirs.run, on)?;
    let sft_data = dirs.world.join("sft.jsonl");
    let (convs, skipped) = read_conversations(&sft_data)?;
    let seqs = base.chat.encoder().conversations(&convs)?;
    let mix = (s.sft_mix > 0.0).then(|| Mix {
        path: dirs.world.join("corpus.jsonl"),
        ratio: s.sft_mix,
    });
    let stage = NewStage {
        out: sft_dir,
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
        seconds.map(|t| steps_within(s, t)),
    );
    finetune(
        base,
        stage,
        &sft_settings,
        "sft",
        Clock::ahead(seconds),
        stop,
        on,
    )
}

/// Seconds left until a deadline, and deadlines some seconds ahead (none without one).
struct Clock(Option<Instant>);

impl Clock {
    fn left(&self) -> Option<f64> {
        self.0
            .map(|d| d.saturating_duration_since(Instant::now()).as_secs_f64())
    }
    fn ahead(secs: Option<f64>) -> Option<Instant> {
        secs.map(|x| Instant::now() + Duration::from_secs_f64(x))
    }
}

/// Runs SFT and DPO from the pre-trained run, with `deadline` for the whole stage (or
/// none: then SFT and DPO run their full epochs and every prompt is sampled for pairs);
/// adds each stage's seconds to `stages`.
pub fn post_train(
    s: &PostSettings,
    dirs: &Dirs<'_>,
    deadline: Option<Instant>,
    stop: &AtomicBool,
    stages: &mut std::collections::BTreeMap<String, f64>,
    on: &mut dyn FnMut(Event),
) -> Result<Post, Error> {
    let clock = Clock(deadline);
    let mut timed = |name: &str, t: Instant| {
        stages.insert(name.into(), t.elapsed().as_secs_f64());
    };
    let items = fmlab_data::read_items(&dirs.world.join("eval.jsonl"))?;
    let total = clock.left();
    // --- base, asked through the chat template it never saw ---
    let t = Instant::now();
    let base_chat = evaluate(&load(dirs.run, on)?, &items, s.eval_items)?;
    let base_eval = StageEval::of(&base_chat, &items);
    on(Event::Judged {
        name: "base",
        eval: &base_eval,
        win: None,
    });
    timed("eval_base", t);

    // --- SFT: about half of what is left ---
    let t = Instant::now();
    let sft_dir = dirs.out.join("sft");
    let sft = sft_stage(s, dirs, &sft_dir, total.map(|t| 0.55 * t), stop, on)?;
    timed("sft", t);
    let t = Instant::now();
    // The SFT model is loaded once: judged, then sampled for on-policy pairs.
    let loaded = load(&sft_dir, on)?;
    let sft_chat = evaluate(&loaded, &items, s.eval_items)?;
    let sft_eval = StageEval::of(&sft_chat, &items);
    let sft_win = win_rate(&sft_chat, &base_chat, &items, &WorldJudge);
    on(Event::Judged {
        name: "SFT",
        eval: &sft_eval,
        win: Some(&sft_win),
    });
    timed("eval_sft", t);

    // --- on-policy pairs from the SFT model's answers to training prompts ---
    let t = Instant::now();
    let pairs_deadline = Clock::ahead(clock.left().map(|t| 0.25 * t));
    let (prompts, pairs) = on_policy_pairs(s, dirs.world, &loaded, pairs_deadline)?;
    drop(loaded);
    let mut lines = String::new();
    for p in &pairs {
        lines += &serde_json::to_string(p)?;
        lines.push('\n');
    }
    let pairs_file = dirs.out.join("pairs.jsonl");
    fmlab_formats::write_atomically(&pairs_file, lines.as_bytes())?;
    on(Event::Pairs {
        pairs: pairs.len(),
        prompts: prompts.len(),
        k: s.k,
    });
    timed("pairs", t);

    // --- DPO from the SFT model on those pairs ---
    let t = Instant::now();
    let sft_model = load_trainable(&sft_dir, on)?;
    let pairs_in: Vec<Pair> = pairs
        .iter()
        .map(|p| Pair {
            prompt: p.prompt.clone(),
            chosen: p.chosen.clone(),
            rejected: p.rejected.clone(),
        })
        .collect();
    let data = sft_model.chat.encoder().pairs(&pairs_in)?;
    let dpo_dir = dirs.out.join("dpo");
    let dpo_seconds = clock.left().map(|t| 0.6 * t);
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
    let dpo = finetune(
        sft_model,
        stage,
        &dpo_settings,
        "preference",
        Clock::ahead(dpo_seconds),
        stop,
        on,
    )?;
    timed("dpo", t);
    let t = Instant::now();
    let dpo_chat = evaluate(&load(&dpo_dir, on)?, &items, s.eval_items)?;
    let dpo_eval = StageEval::of(&dpo_chat, &items);
    let dpo_win = win_rate(&dpo_chat, &sft_chat, &items, &WorldJudge);
    on(Event::Judged {
        name: "DPO",
        eval: &dpo_eval,
        win: Some(&dpo_win),
    });
    timed("eval_dpo", t);

    Ok(Post {
        base: BaseStage {
            eval: base_eval,
            model: dirs.run.to_path_buf(),
        },
        sft: SftStage {
            eval: sft_eval,
            win_rate_vs_base: sft_win.win_rate,
            win_vs_base: sft_win,
            training: sft,
        },
        dpo: DpoStage {
            eval: dpo_eval,
            win_rate_vs_sft: dpo_win.win_rate,
            win_vs_sft: dpo_win,
            training: dpo,
            pairs: PairsFacts {
                prompts: prompts.len(),
                pairs: pairs.len(),
                k: s.k,
                file: "pairs.jsonl".into(),
            },
        },
    })
}
