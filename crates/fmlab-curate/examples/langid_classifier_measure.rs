//! Measures language ID and the fastText-style classifier on a world and on English text:
//! `cargo run --release -p fmlab-curate --example langid_classifier_measure -- WORLD_DIR
//! [ENGLISH_JSONL]` prints per-language accuracy (all documents, and prose only: without
//! code and tables), identification speed, and the domain classifier's held-out accuracy
//! and speed. scripts/check_langid.sh runs it on a 2 MB world and the reference corpus.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use fmlab_curate::classifier::{train_from_jsonl, TrainFileOptions};
use fmlab_curate::langid::{
    held_out_sentences, supported_languages, Backend, LanguageId, LanguageIdOptions,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let world = PathBuf::from(args.first().ok_or("usage: WORLD_DIR [ENGLISH_JSONL]")?);
    let corpus = world.join("corpus.jsonl");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&corpus)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let only: Option<&str> = args.get(2).map(String::as_str);
    for (backend, max_bytes) in [
        (Backend::Cascade, 2000),
        (Backend::Hashed, 2000),
        (Backend::Lingua, 2000),
    ] {
        if only.is_some_and(|o| Backend::from_name(o).ok() != Some(backend)) {
            continue;
        }
        let mut opts = LanguageIdOptions {
            backend,
            max_bytes,
            ..LanguageIdOptions::default()
        };
        if let Ok(v) = std::env::var("CASCADE_BELOW") {
            opts.cascade_below = v.parse()?;
        }
        let start = Instant::now();
        let id = LanguageId::new(&opts)?;
        println!(
            "{backend:?} built in {:.2} s",
            start.elapsed().as_secs_f64()
        );
        sentence_accuracy(&id)?;
        let mut by: BTreeMap<(String, bool), (usize, usize)> = BTreeMap::new();
        let mut confusions: BTreeMap<(String, String), usize> = BTreeMap::new();
        let start = Instant::now();
        let mut bytes = 0;
        for r in &records {
            let text = r["text"].as_str().unwrap_or("");
            bytes += text.len();
            let gold = r["lang"].as_str().unwrap_or("").to_string();
            let prose = !matches!(r["domain"].as_str(), Some("code" | "table"));
            let (got, _) = id.identify(text);
            let e = by.entry((gold.clone(), prose)).or_default();
            e.0 += 1;
            e.1 += usize::from(got == gold);
            if got != gold {
                *confusions.entry((gold, got.to_string())).or_default() += 1;
            }
        }
        let s = start.elapsed().as_secs_f64();
        println!(
            "langid {backend:?} max_bytes={max_bytes}: world {:.0} docs/s, {:.2} MB/s",
            records.len() as f64 / s,
            bytes as f64 / s / 1e6
        );
        for lang in ["en", "fr", "sw"] {
            let p = by.get(&(lang.into(), true)).copied().unwrap_or_default();
            let c = by.get(&(lang.into(), false)).copied().unwrap_or_default();
            println!(
                "  {lang}: prose {}/{} = {:.4}; code+table {}/{} = {:.4}",
                p.1,
                p.0,
                p.1 as f64 / p.0.max(1) as f64,
                c.1,
                c.0,
                c.1 as f64 / c.0.max(1) as f64
            );
        }
        println!("  confusions (gold -> got): {confusions:?}");
        if let Some(english) = args.get(1) {
            english_accuracy(&id, english)?;
        }
    }
    for label_field in ["domain", "lang"] {
        if only.is_some() {
            break;
        }
        let opts = TrainFileOptions {
            label_field: label_field.into(),
            ..TrainFileOptions::default()
        };
        let (_, report) = train_from_jsonl(std::slice::from_ref(&corpus), &opts)?;
        println!(
            "classifier by {label_field}: accuracy {:.4} on {} held out; train {:.0} docs/s ({:.1} s), predict {:.0} docs/s",
            report.accuracy,
            report.validation_examples,
            report.train_docs_per_s,
            report.train_seconds,
            report.predict_docs_per_s
        );
        for l in &report.labels {
            println!(
                "  {}: {}/{} = {:.4}",
                l.label, l.correct, l.validation, l.accuracy
            );
        }
    }
    Ok(())
}

fn english_accuracy(id: &LanguageId, path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let (mut n, mut ok, mut bytes) = (0usize, 0usize, 0usize);
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    let mut scores = Vec::new();
    let start = Instant::now();
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line)?;
        let t = r["text"].as_str().unwrap_or("");
        bytes += t.len();
        let (lang, score) = id.identify(t);
        n += 1;
        ok += usize::from(lang == "en");
        if lang == "en" {
            scores.push(score);
        }
        *got.entry(lang.to_string()).or_default() += 1;
    }
    if n == 0 {
        return Ok(());
    }
    let s = start.elapsed().as_secs_f64();
    let below = scores.iter().filter(|&&s| s < 0.65).count();
    println!(
        "  English corpus: {ok}/{n} = {:.4} en ({got:?}); en with score < 0.65: {below}; {:.0} docs/s, {:.2} MB/s",
        ok as f64 / n.max(1) as f64,
        n as f64 / s,
        bytes as f64 / s / 1e6
    );
    Ok(())
}

fn sentence_accuracy(id: &LanguageId) -> Result<(), Box<dyn std::error::Error>> {
    let mut line = String::from("  held-out shipped sentences:");
    for code in supported_languages() {
        let s = held_out_sentences(code)?;
        let ok = s.iter().filter(|t| id.identify(t).0 == code).count();
        line += &format!(" {code} {:.3}", ok as f64 / s.len().max(1) as f64);
    }
    println!("{line}");
    Ok(())
}
