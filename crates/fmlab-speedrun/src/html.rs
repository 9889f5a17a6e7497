//! The speedrun's `report.html`: one self-contained page (tables, and the PNGs inline as
//! data URIs) written from the same typed [`Report`] as `report.json`. The caller draws the
//! PNGs (the CLI, which alone knows plotters) and hands their paths in.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use fmlab_spec::units::si;

use crate::report::{Report, StageEval};
use crate::Error;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A figure as report.json holds it: not finite (JSON null) or missing reads as absent.
fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

fn num(x: Option<f64>, digits: usize) -> String {
    finite(x).map_or_else(|| "–".into(), |x| format!("{x:.digits$}"))
}

fn pct(x: Option<f64>) -> String {
    finite(x).map_or_else(|| "–".into(), |x| format!("{:.1}%", 100.0 * x))
}

/// A number written as JSON writes it (`3.0`, not `3`).
fn json_num(x: f64) -> String {
    serde_json::to_string(&x).unwrap_or_default()
}

const HEAD: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>fmlab speedrun</title><style>\
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}\
th{background:#f3f3f3}img{max-width:100%}pre{white-space:pre-wrap;background:#f7f7f7;padding:.5rem}\
.ok{color:#176f2c}.bad{color:#a11}</style></head><body><h1>fmlab speedrun</h1>";

/// The page: plan, pre-training, evaluation (with `images`, named `loss` and `recall`),
/// post-training, samples.
pub fn html_report(r: &Report, images: &[(&str, &Path)]) -> Result<String, Error> {
    let mut h = String::from(HEAD);
    let _ = write!(
        h,
        "<p>Budget {} min, finished in {:.0} s{}. Seed {}.</p>",
        json_num(r.minutes),
        r.elapsed_seconds,
        if r.within_budget {
            " (within budget)"
        } else {
            " (over budget)"
        },
        r.seed
    );
    plan_section(&mut h, r);
    pretrain_section(&mut h, r);
    for (name, path) in images {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Message(format!("reading {}: {e}", path.display())))?;
        if *name == "recall" {
            eval_table(&mut h, r);
        }
        let _ = write!(
            h,
            "<img alt=\"{name}\" src=\"data:image/png;base64,{}\">",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
    }
    examples_section(&mut h, r);
    post_section(&mut h, r);
    samples_section(&mut h, r);
    let _ = write!(
        h,
        "<p>Checkpoint: <code>{}</code>. Continue with <code>fmlab generate</code> on it, or export it with <code>fmlab export</code>.</p></body></html>",
        esc(&r.checkpoint.to_string_lossy())
    );
    Ok(h)
}

fn plan_section(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<h2>Plan</h2><p>Depths timed for a few steps; for the training seconds left, the Epoch AI \
         refit of Chinchilla's law gives a compute-optimal size; the nearest depth trains.</p>\
         <table><tr><th>depth</th><th>width</th><th>params</th><th>tokens/s</th><th>tokens in budget</th><th>optimal params</th></tr>"
    );
    let or_zero = |x: f64| finite(Some(x)).unwrap_or(0.0);
    for c in &r.plan.candidates {
        let _ = write!(
            h,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td></tr>",
            if c.depth == r.plan.depth {
                " style=\"font-weight:bold\""
            } else {
                ""
            },
            c.depth,
            c.d_model,
            si(c.params as f64),
            or_zero(c.tokens_per_second),
            si(or_zero(c.tokens)),
            si(or_zero(c.optimal_params)),
        );
    }
    let _ = write!(
        h,
        "</table><p>World: {} people, {} documents, {:.1} MB; tokenizer of {} tokens at {:.2} bytes/token; \
         {} epochs planned.</p>",
        r.world.people,
        r.world.documents,
        r.world.size_bytes as f64 / 1e6,
        r.tokenizer.vocab_size,
        or_zero(r.tokenizer.bytes_per_token),
        num(Some(r.plan.epochs), 1)
    );
}

fn pretrain_section(h: &mut String, r: &Report) {
    let p = &r.pretrain;
    let _ = write!(
        h,
        "<h2>Pre-training</h2><table>\
<tr><th>parameters</th><td>{}</td></tr><tr><th>steps</th><td>{}</td></tr>\
<tr><th>tokens</th><td>{}</td></tr><tr><th>tokens/s</th><td>{}</td></tr><tr><th>MFU</th><td>{}</td></tr>\
<tr><th>validation loss</th><td>{} → {}</td></tr><tr><th>validation bits/byte</th><td>{}</td></tr></table>",
        si(p.params as f64),
        p.steps,
        si(p.tokens as f64),
        num(Some(p.tokens_per_second), 0),
        pct(Some(p.mfu)),
        num(p.initial_val_loss, 3),
        num(p.final_val_loss, 3),
        num(Some(r.eval.val_bits_per_byte), 3),
    );
}

fn eval_table(h: &mut String, r: &Report) {
    let e = &r.eval;
    let _ = write!(h, "<h2>Evaluation</h2>");
    let _ = write!(
        h,
        "<p>Few-shot: three true statements about other people, then the subject's \
         statement cut before the value, completed greedily.</p><table><tr><th>bucket</th><th>accuracy</th><th>items</th></tr>"
    );
    for (bucket, s) in &e.fact_recall_detail {
        let _ = write!(
            h,
            "<tr><td>facts: {}</td><td>{}</td><td>{}</td></tr>",
            esc(bucket),
            pct(Some(s.accuracy)),
            s.items
        );
    }
    let _ = write!(
        h,
        "<tr><td>arithmetic</td><td>{}</td><td>{}</td></tr></table>",
        pct(Some(e.arithmetic.accuracy)),
        e.arithmetic.items
    );
}

fn examples_section(h: &mut String, r: &Report) {
    let _ = write!(h, "<h3>Examples</h3><table><tr><th>bucket</th><th>question</th><th>model</th><th>answer</th></tr>");
    for x in &r.eval.examples {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(&x.bucket),
            esc(&x.question),
            if x.correct { "ok" } else { "bad" },
            esc(&x.completion),
            esc(&x.answer),
        );
    }
    let _ = write!(h, "</table>");
}

fn stage_row(h: &mut String, name: &str, x: &StageEval, win: Option<f64>) {
    let _ = write!(
        h,
        "<tr><td>{name}</td><td>{}</td><td>{} ({})</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        pct(Some(x.format_compliance)),
        pct(x.fact_accuracy.get("frequent").copied()),
        pct(x.fact_accuracy_free_form.get("frequent").copied()),
        pct(x.fact_accuracy.get("rare").copied()),
        pct(x.fact_accuracy_free_form.get("rare").copied()),
        pct(Some(x.idk_rate_unseen)),
        pct(Some(x.hallucination_rate_unseen)),
        win.map_or("—".to_string(), |w| pct(Some(w))),
    );
}

fn post_section(h: &mut String, r: &Report) {
    let (Some(base), Some(sft), Some(dpo)) = (&r.base, &r.sft, &r.dpo) else {
        return;
    };
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
    stage_row(h, "base", &base.eval, None);
    stage_row(h, "SFT", &sft.eval, Some(sft.win_rate_vs_base));
    stage_row(h, "DPO", &dpo.eval, Some(dpo.win_rate_vs_sft));
    let _ = write!(h, "</table><h3>Answers after DPO</h3><table><tr><th>split</th><th>question</th><th>answer</th><th>verdict</th></tr>");
    for x in &dpo.eval.examples {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&x.split),
            esc(&x.prompt),
            esc(&x.answer),
            esc(x.verdict.name()),
        );
    }
    let _ = write!(h, "</table>");
}

fn samples_section(h: &mut String, r: &Report) {
    let _ = write!(h, "<h2>Samples</h2>");
    for s in &r.samples {
        let prompt = esc(&s.prompt);
        let _ = write!(
            h,
            "<h4>{prompt}</h4><p>greedy:</p><pre><b>{prompt}</b>{}</pre>",
            esc(&s.greedy)
        );
        for x in &s.sampled {
            let _ = write!(
                h,
                "<p>temperature 0.8:</p><pre><b>{prompt}</b>{}</pre>",
                esc(x)
            );
        }
    }
}
