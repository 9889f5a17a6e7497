//! The speedrun's `report.html`: one self-contained page (tables, and the PNGs inline as
//! data URIs) written from the same typed [`Report`] as `report.json`. The caller draws the
//! PNGs (the CLI, which alone knows plotters) and hands their paths in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use fmlab_spec::units::si;

use crate::report::{DpoStage, Report, SftStage, StageEval};
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
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{background:#f3f3f3}img{max-width:100%}pre{white-space:pre-wrap;background:#f7f7f7;padding:.5rem}\
dl.defs{font-size:.9rem;color:#444}dl.defs dt{font-weight:bold;float:left;margin-right:.4rem}dl.defs dd{margin:0 0 .3rem 0}\
.ok{color:#176f2c}.bad{color:#a11}</style></head><body><h1>fmlab speedrun</h1>";

/// Each measure in one sentence, shown next to it (`defs`).
const DEFINITIONS: [(&str, &str); 11] = [
    ("validation loss", "the mean cross-entropy (nats per token) of the model's next-token predictions on the held-out 2% of the corpus."),
    ("bits per byte", "the validation loss in bits, spread over the bytes of text the tokens predict, so that models with different tokenizers compare (lower is better)."),
    ("MFU", "model FLOPs utilisation: the share of this CPU's measured peak f32 FLOP/s that the model's training FLOPs at the measured tokens/s amount to."),
    ("few-shot recall by bucket", "three true statements about other people, then the subject's statement cut before the value, completed greedily: the share of completions stating the true value, for people the corpus mentions often (frequent, 10 times or more) or rarely (rare, 1 to 9 times)."),
    ("arithmetic", "the share of the world's word problems whose answer's last number is the right one (few-shot for the pre-trained model, asked as a chat after)."),
    ("format compliance", "of the questions that ask for a format (one word, JSON, a list of three), the share answered in that format with the turn ended within the token limit."),
    ("facts", "the share of questions about people the corpus mentions (frequent or rare) answered with the true value, over every question format; in brackets, the free-form questions alone, which few-shot recall asks too."),
    ("I don't know", "of the questions about people the corpus never mentions, the share answered with \"I don't know\" (the right answer: nothing can be known of them)."),
    ("hallucinated", "of the questions about people the corpus never mentions, the share answered with an invented fact instead of \"I don't know\"."),
    ("win rate", "on the same held-out questions, the share where the world's judge scores this stage's answer above the previous stage's, ties counting half (as AlpacaEval counts)."),
    ("verdict", "the world's judge on one answer: correct, wrong, hallucinated (a fact invented about a never-seen person), refused (\"I don't know\" to a known fact) or format_violation."),
];

/// The definitions of `terms`, as a list beside the figures they define.
fn defs(h: &mut String, terms: &[&str]) {
    h.push_str("<dl class=\"defs\">");
    for (term, sentence) in DEFINITIONS.iter().filter(|(t, _)| terms.contains(t)) {
        let _ = write!(h, "<dt>{}:</dt><dd>{}</dd>", esc(term), esc(sentence));
    }
    h.push_str("</dl>");
}

/// The PNGs by name, read and encoded once.
struct Images(BTreeMap<String, String>);

impl Images {
    fn read(images: &[(&str, &Path)]) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        for (name, path) in images {
            let bytes = std::fs::read(path)
                .map_err(|e| Error::Message(format!("reading {}: {e}", path.display())))?;
            map.insert(
                name.to_string(),
                base64::engine::general_purpose::STANDARD.encode(bytes),
            );
        }
        Ok(Images(map))
    }

    /// The image `name` inline, if the caller drew it.
    fn put(&self, h: &mut String, name: &str) {
        if let Some(data) = self.0.get(name) {
            let _ = write!(
                h,
                "<img alt=\"{name}\" src=\"data:image/png;base64,{data}\">"
            );
        }
    }
}

/// The page: the run's machine and settings, plan, pre-training, evaluation, post-training,
/// samples, the run's files. `images` are the PNGs by name: `loss` and `recall`, and with
/// post-training `stages`, `sft_loss` and `dpo_loss`; each is placed by its figures.
pub fn html_report(r: &Report, images: &[(&str, &Path)]) -> Result<String, Error> {
    let images = Images::read(images)?;
    let mut h = String::from(HEAD);
    let _ = write!(
        h,
        "<p>Budget {} min, finished in {:.0} s{}. Seed {}. fmlab {} on {} ({} threads).</p>",
        json_num(r.minutes),
        r.elapsed_seconds,
        if r.within_budget {
            " (within budget)"
        } else {
            " (over budget)"
        },
        r.seed,
        esc(&r.fmlab_version),
        esc(&r.cpu.model),
        r.cpu.threads,
    );
    plan_section(&mut h, r);
    pretrain_section(&mut h, r);
    images.put(&mut h, "loss");
    eval_table(&mut h, r);
    images.put(&mut h, "recall");
    examples_section(&mut h, r);
    post_section(&mut h, r, &images);
    samples_section(&mut h, r);
    config_section(&mut h, r);
    files_section(&mut h, r);
    h.push_str("</body></html>");
    Ok(h)
}

/// Every setting of the run, as report.json's `config` holds it.
fn config_section(h: &mut String, r: &Report) {
    h.push_str("<h2>Configuration</h2><table><tr><th>setting</th><th>value</th></tr>");
    // Through JSON text, so that f32 settings read as written (0.01, not 0.009999…).
    let settings = serde_json::to_string(&r.config)
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text));
    if let Ok(serde_json::Value::Object(settings)) = settings {
        for (key, value) in settings {
            let value = match value {
                serde_json::Value::Null => "–".to_string(),
                v => v.to_string(),
            };
            let _ = write!(
                h,
                "<tr><td>--{}</td><td>{}</td></tr>",
                esc(&key.replace('_', "-")),
                esc(&value)
            );
        }
    }
    h.push_str("</table>");
}

/// A link to a file of the run, relative to the page (so it works wherever the folder is
/// moved).
fn link(path: &Path) -> String {
    let p = esc(&path.to_string_lossy());
    format!("<a href=\"{p}\"><code>{p}</code></a>")
}

/// A link to a folder of the run (its listing, in a browser), relative to the page.
fn folder(path: &Path) -> String {
    let p = esc(&path.to_string_lossy());
    format!("<a href=\"{p}/\"><code>{p}/</code></a>")
}

fn files_section(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<h2>Files</h2><p>Relative to this page's folder (as in report.json).</p><ul>\
         <li>the figures as JSON: {}</li><li>world: {}</li><li>tokenizer: {}</li><li>pre-training run: {}; \
         final checkpoint {} (continue with <code>fmlab generate</code> on it, or export it with \
         <code>fmlab export</code>)</li>",
        link(Path::new("report.json")),
        folder(&r.world.dir),
        link(&r.tokenizer.path),
        folder(&r.pretrain.run),
        folder(&r.checkpoint),
    );
    if let (Some(sft), Some(dpo)) = (&r.sft, &r.dpo) {
        let _ = write!(
            h,
            "<li>SFT run: {}</li><li>on-policy pairs: {}</li><li>DPO run: {}</li>",
            folder(&sft.training.summary.run),
            link(Path::new(&dpo.pairs.file)),
            folder(&dpo.training.summary.run),
        );
    }
    h.push_str("</ul>");
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
    defs(h, &["validation loss", "bits per byte", "MFU"]);
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
    defs(h, &["few-shot recall by bucket", "arithmetic"]);
}

fn examples_section(h: &mut String, r: &Report) {
    h.push_str("<h3>Examples</h3><table><tr><th>bucket</th><th>question</th><th>expected</th><th>completion</th><th>verdict</th></tr>");
    for x in &r.eval.examples {
        let (class, verdict) = if x.correct {
            ("ok", "correct")
        } else {
            ("bad", "wrong")
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{verdict}</td></tr>",
            esc(&x.bucket),
            esc(&x.question),
            esc(&x.answer),
            esc(&x.completion),
        );
    }
    h.push_str("</table>");
}

fn stage_row(h: &mut String, name: &str, x: &StageEval, win: Option<f64>) {
    let _ = write!(
        h,
        "<tr><td>{name}</td><td>{}</td><td>{} ({})</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        pct(Some(x.format_compliance)),
        pct(x.fact_accuracy.get("frequent").copied()),
        pct(x.fact_accuracy_free_form.get("frequent").copied()),
        pct(x.fact_accuracy.get("rare").copied()),
        pct(x.fact_accuracy_free_form.get("rare").copied()),
        pct(Some(x.idk_rate_unseen)),
        pct(Some(x.hallucination_rate_unseen)),
        pct(Some(x.arithmetic_accuracy)),
        win.map_or("—".to_string(), |w| pct(Some(w))),
    );
}

fn post_section(h: &mut String, r: &Report, images: &Images) {
    let (Some(base), Some(sft), Some(dpo)) = (&r.base, &r.sft, &r.dpo) else {
        return;
    };
    let _ = write!(
        h,
        "<h2>Post-training</h2><p>SFT on the world's conversations, then DPO on on-policy \
         pairs (the SFT model's own answers to training prompts, the best against one of \
         every lower score by the world's judge; SFT replays {} of its rows from the \
         corpus). Each model is asked the held-out eval questions through the chat \
         template ({} in all), answered greedily and judged.</p>\
         <table><tr><th>model</th><th>format \
         compliance</th><th>facts: frequent</th><th>facts: rare</th><th>never seen: I don't \
         know</th><th>never seen: hallucinated</th><th>arithmetic</th><th>judge's win rate over the previous \
         stage</th></tr>",
        pct(Some(r.config.sft_mix)),
        base.eval.items,
    );
    stage_row(h, "base", &base.eval, None);
    stage_row(h, "SFT", &sft.eval, Some(sft.win_rate_vs_base));
    stage_row(h, "DPO", &dpo.eval, Some(dpo.win_rate_vs_sft));
    h.push_str("</table>");
    defs(
        h,
        &[
            "format compliance",
            "facts",
            "I don't know",
            "hallucinated",
            "arithmetic",
            "win rate",
        ],
    );
    images.put(h, "stages");
    let _ = write!(
        h,
        "<h3>Finetuning loss</h3><p>SFT: {} steps, validation loss {} → {}. DPO: {} steps on {} pairs \
         from {} prompts, validation loss {} → {}.</p>",
        sft.training.summary.steps,
        num(sft.training.summary.initial_val_loss, 3),
        num(sft.training.summary.final_val_loss, 3),
        dpo.training.summary.steps,
        dpo.pairs.pairs,
        dpo.pairs.prompts,
        num(dpo.training.summary.initial_val_loss, 3),
        num(dpo.training.summary.final_val_loss, 3),
    );
    images.put(h, "sft_loss");
    images.put(h, "dpo_loss");
    answers_table(h, sft, dpo);
}

/// An answer and the judge's verdict on it, coloured by whether it is right.
fn judged(answer: &str, verdict: fmlab_data::Verdict) -> String {
    let class = if verdict == fmlab_data::Verdict::Correct {
        "ok"
    } else {
        "bad"
    };
    format!(
        "<td>{}</td><td class=\"{class}\">{}</td>",
        esc(answer),
        esc(verdict.name())
    )
}

/// SFT's and DPO's answers to the same questions, side by side with the expected answer.
fn answers_table(h: &mut String, sft: &SftStage, dpo: &DpoStage) {
    h.push_str(
        "<h3>Answers: SFT beside DPO</h3><table><tr><th>split</th><th>question</th><th>expected</th>\
         <th>SFT answer</th><th>verdict</th><th>DPO answer</th><th>verdict</th></tr>",
    );
    for x in &sft.eval.examples {
        let Some(d) = dpo.eval.examples.iter().find(|d| d.id == x.id) else {
            continue;
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td>{}{}</tr>",
            esc(&x.split),
            esc(&x.prompt),
            esc(&x.expected),
            judged(&x.answer, x.verdict),
            judged(&d.answer, d.verdict),
        );
    }
    h.push_str("</table>");
    defs(h, &["verdict"]);
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
