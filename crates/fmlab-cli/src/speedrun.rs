//! `fmlab speedrun`: the flags of [`fmlab_speedrun::run`] (the whole lifecycle on the
//! embedded world within a time budget, or for a fixed number of steps), its progress on
//! stderr, the PNGs (the loss curves of pre-training, SFT and DPO, few-shot accuracy, the
//! three models compared) and `report.html`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use fmlab_speedrun::report::Report;
use fmlab_speedrun::{Config, Event};

use crate::numbers::si;
use crate::progress::{install_ctrl_c, Bar};

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct SpeedrunArgs {
    /// The time budget for the whole run, in minutes.
    #[arg(long, default_value = "10")]
    minutes: f64,
    /// Output folder [default: runs/speedrun-YYYYMMDD-HHMMSS].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seeds the world, the initial weights, the data order and the samples.
    #[arg(value_parser = crate::numbers::integer::<u64>, long, default_value = "0")]
    seed: u64,
    /// Train this depth instead of the planner's choice.
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    depth: Option<u64>,
    /// Tokenizer vocabulary.
    #[arg(value_parser = crate::numbers::integer::<u64>, long, default_value = "2048")]
    vocab: u64,
    /// Tokens per training sequence.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value = "256")]
    seq_len: usize,
    /// Sequences per step.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value = "8")]
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
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value = "200")]
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
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value = "2000")]
    pair_prompts: usize,
    /// Answers sampled per prompt.
    #[arg(value_parser = crate::numbers::integer::<usize>, long, default_value = "4")]
    pair_answers: usize,
    /// Train exactly this many pre-training steps, and SFT and DPO for their full epochs,
    /// instead of fitting each stage to the time budget: the world is sized from the steps,
    /// no stage has a deadline, and the same seed, depth and steps give the same models on
    /// any machine (the tests use it; with --depth, nothing depends on the machine's speed).
    #[arg(value_parser = crate::numbers::integer::<u64>, long)]
    steps: Option<u64>,
    /// Print report.json to stdout at the end.
    #[arg(long)]
    json: bool,
}

fn say(msg: &str) {
    eprintln!("[speedrun] {msg}");
}

impl SpeedrunArgs {
    fn config(&self) -> Config {
        Config {
            minutes: self.minutes,
            seed: self.seed,
            depth: self.depth,
            vocab: self.vocab,
            seq_len: self.seq_len,
            batch: self.batch,
            lr: self.lr,
            epochs: self.epochs,
            eval_items: self.eval_items,
            post_share: self.post_share,
            sft_lr: self.sft_lr,
            sft_epochs: self.sft_epochs,
            sft_mix: self.sft_mix,
            dpo_lr: self.dpo_lr,
            dpo_epochs: self.dpo_epochs,
            dpo_beta: self.dpo_beta,
            pair_prompts: self.pair_prompts,
            pair_answers: self.pair_answers,
            steps: self.steps,
        }
    }
}

/// Prints an event of the run: its log line, a training stage's progress bar, the loss
/// curve of a finished stage.
struct Printer {
    bar: Option<Bar>,
    error: Option<anyhow::Error>,
}

impl Printer {
    fn on(&mut self, e: Event) {
        match e {
            Event::Candidate(c) => say(&format!(
                "depth {} (d {}, {} params): {:.0} tokens/s → {} tokens; compute-optimal size {}",
                c.depth,
                c.d_model,
                si(c.params as f64),
                c.tokens_per_second,
                si(c.tokens),
                si(c.optimal_params)
            )),
            Event::Chosen(c) => say(&format!(
                "training depth {} ({} params) for about {} tokens",
                c.depth,
                si(c.params as f64),
                si(c.tokens)
            )),
            Event::World(w) => say(&format!(
                "world: {} people, {} documents, {:.1} MB",
                w.people,
                w.documents,
                w.size_bytes as f64 / 1e6
            )),
            Event::Shards {
                tokenizer,
                train_tokens,
                val_tokens,
            } => say(&format!(
                "tokenizer: {} tokens, {:.2} bytes per token; shards: {} train, {} val tokens",
                tokenizer.vocab_size,
                tokenizer.bytes_per_token,
                si(train_tokens as f64),
                si(val_tokens as f64)
            )),
            Event::PretrainStart {
                steps,
                tokens_per_step,
                seconds,
            } => say(&format!(
                "pre-training: {steps} steps of {tokens_per_step} tokens ({} in all), {seconds:.0} s",
                si(steps as f64 * tokens_per_step),
            )),
            Event::Training { stage, progress } => {
                // Pre-training shows its bar; the finetuning stages run quietly.
                let bar = self.bar.get_or_insert_with(|| match stage {
                    "pre-training" => Bar::new(false, None),
                    _ => Bar::new(true, None),
                });
                bar.on(progress);
            }
            Event::Trained { stage, run } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish();
                }
                if let Err(e) = crate::progress::plot(run, stage) {
                    self.error.get_or_insert(e);
                }
            }
            Event::Pretrained(p) => say(&format!(
                "pre-training: val loss {:.3} → {:.3}, {:.0} tokens/s, MFU {:.1}%",
                p.initial_val_loss.unwrap_or(f64::NAN),
                p.final_val_loss.unwrap_or(f64::NAN),
                p.tokens_per_second,
                100.0 * p.mfu
            )),
            Event::Evaluated(e) => say(&format!(
                "eval: fact recall {}; arithmetic {:.1}%; val {:.3} bits/byte",
                e.fact_recall
                    .iter()
                    .map(|(k, v)| format!("{k} {:.1}%", 100.0 * v))
                    .collect::<Vec<_>>()
                    .join(", "),
                100.0 * e.arithmetic.accuracy,
                e.val_bits_per_byte
            )),
            Event::Judged { name, eval, win } => say(&match (name, win) {
                ("DPO", Some(w)) => format!(
                    "{}; win rate over SFT {:.0}% ({:.0}% of decided)",
                    eval.describe(name),
                    100.0 * w.win_rate,
                    100.0 * w.win_rate_decided
                ),
                (_, Some(w)) => format!(
                    "{}; win rate over base {:.0}%",
                    eval.describe(name),
                    100.0 * w.win_rate
                ),
                (_, None) => eval.describe(name),
            }),
            Event::Pairs { pairs, prompts, k } => say(&format!(
                "on-policy pairs: {pairs} of {prompts} prompts ({k} answers each) separated by the judge"
            )),
            Event::Skipped(skipped) => crate::model::warn_skipped(skipped),
        }
    }
}

pub fn run(args: SpeedrunArgs) -> Result<()> {
    let config = args.config();
    config.validate()?;
    let out = args.out.clone().unwrap_or_else(fmlab_speedrun::default_out);
    let ctrl_c = install_ctrl_c()?;
    let mut printer = Printer {
        bar: None,
        error: None,
    };
    let report = fmlab_speedrun::run(&config, &out, &ctrl_c, &mut |e| printer.on(e))?;
    if let Some(e) = printer.error {
        return Err(e);
    }
    let html = draw_and_write_page(&report, &out)?;
    say(&format!(
        "done in {:.0} s (budget {:.0} s): {}",
        report.elapsed_seconds,
        args.minutes * 60.0,
        html.display()
    ));
    if args.json {
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&report)?))
    } else {
        crate::out(&format!("{}\n", html.display()))
    }
}

/// Draws the report's PNGs into `out` (pre-training's loss curve copied from its run
/// folder; the finetuning stages' were drawn as they ended) and writes `report.html` with
/// them inline; returns the page's path.
fn draw_and_write_page(report: &Report, out: &std::path::Path) -> Result<PathBuf> {
    let (loss_png, recall_png) = (out.join(&report.plots.loss), out.join(&report.plots.recall));
    recall_plot(report).write_png(&recall_png)?;
    let drawn = out.join(&report.pretrain.run).join("loss.png");
    std::fs::copy(&drawn, &loss_png).with_context(|| format!("copying {}", drawn.display()))?;
    let mut images = vec![("loss", loss_png), ("recall", recall_png)];
    if let (Some(png), Some(plot)) = (&report.plots.stages, stages_plot(report)) {
        let png = out.join(png);
        plot.write_png(&png)?;
        images.push(("stages", png));
    }
    let curves = [
        ("sft_loss", &report.plots.sft_loss),
        ("dpo_loss", &report.plots.dpo_loss),
    ];
    for (name, png) in curves {
        // A stage without a logged point has no curve (`progress::plot` draws none).
        if let Some(png) = png.as_ref().map(|p| out.join(p)).filter(|p| p.is_file()) {
            images.push((name, png));
        }
    }
    let images: Vec<(&str, &std::path::Path)> =
        images.iter().map(|(n, p)| (*n, p.as_path())).collect();
    let html = fmlab_speedrun::html::html_report(report, &images)?;
    let page = out.join("report.html");
    fmlab_formats::write_atomically(&page, html.as_bytes())?;
    Ok(page)
}

/// Base, SFT and DPO on every measure of the chat evaluation, in percent (win rates over
/// the previous stage: none for the base model); none without post-training.
fn stages_plot(r: &Report) -> Option<crate::plot::BarPlot<'static>> {
    let (base, sft, dpo) = (r.base.as_ref()?, r.sft.as_ref()?, r.dpo.as_ref()?);
    let figures = |e: &fmlab_speedrun::report::StageEval, win: f64| {
        let get = |m: &std::collections::BTreeMap<String, f64>, k: &str| {
            m.get(k).copied().unwrap_or(f64::NAN)
        };
        [
            e.format_compliance,
            get(&e.fact_accuracy, "frequent"),
            get(&e.fact_accuracy, "rare"),
            get(&e.fact_accuracy_free_form, "frequent"),
            get(&e.fact_accuracy_free_form, "rare"),
            e.idk_rate_unseen,
            e.hallucination_rate_unseen,
            e.arithmetic_accuracy,
            win,
        ]
        .map(|x| 100.0 * x)
        .to_vec()
    };
    Some(crate::plot::BarPlot {
        title: "base, SFT and DPO asked the held-out questions as a chat",
        y_label: "% of questions",
        categories: [
            "format",
            "facts: freq.",
            "facts: rare",
            "free-form: freq.",
            "free-form: rare",
            "unseen: IDK",
            "unseen: halluc.",
            "arithmetic",
            "win rate",
        ]
        .map(String::from)
        .to_vec(),
        series: vec![
            ("base".into(), figures(&base.eval, f64::NAN)),
            ("SFT".into(), figures(&sft.eval, sft.win_rate_vs_base)),
            ("DPO".into(), figures(&dpo.eval, dpo.win_rate_vs_sft)),
        ],
    })
}

/// Few-shot accuracy by bucket, and arithmetic.
fn recall_plot(r: &Report) -> crate::plot::BarPlot<'static> {
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
            format!("depth {}", r.plan.depth),
            buckets
                .iter()
                .map(|b| 100.0 * r.eval.fact_recall.get(*b).copied().unwrap_or(0.0))
                .chain([100.0 * r.eval.arithmetic.accuracy])
                .collect(),
        )],
    }
}
