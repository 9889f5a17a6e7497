//! Scores a `fmlab curate` run on a raw web (`fmlab world --raw`) against its ground truth
//! and prints, per junk kind, recall and precision; the boilerplate lines removed; the good
//! pages (clean or boilerplate) dropped, by rule; and the good pages kept by language and
//! domain. Used by `scripts/check_raw_world.sh`.
//!
//! `cargo run --release -p fmlab-curate --example raw_score -- WORLD/raw.jsonl CURATE_DIR
//! [--keep en,fr,sw] [--json FILE]` (`--keep`: the languages the run kept; pages of the
//! world's other languages then count as junk, `unkept_language`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use fmlab_curate::raw_truth::{score, Outcome, RawTruth, ScoreOptions};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    raw: PathBuf,
    run: PathBuf,
    keep: Option<Vec<String>>,
    json: Option<PathBuf>,
}

fn parse_args() -> Res<Args> {
    let mut it = std::env::args().skip(1);
    let mut paths = Vec::new();
    let (mut keep, mut json) = (None, None);
    while let Some(arg) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--keep" => keep = Some(val()?.split(',').map(|s| s.trim().to_string()).collect()),
            "--json" => json = Some(PathBuf::from(val()?)),
            a if a.starts_with("--") => return Err(format!("unknown option {a}").into()),
            a => paths.push(PathBuf::from(a)),
        }
    }
    let [raw, run] = <[PathBuf; 2]>::try_from(paths)
        .map_err(|_| "usage: raw_score RAW.jsonl CURATE_DIR [--keep en,fr] [--json FILE]")?;
    Ok(Args {
        raw,
        run,
        keep,
        json,
    })
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn main() -> Res<()> {
    let args = parse_args()?;
    let truth = RawTruth::read(&args.raw)?;
    let outcome = Outcome::from_curation(&args.run)?;
    let options = ScoreOptions {
        keep_languages: args.keep.clone(),
        ..ScoreOptions::default()
    };
    let r = score(&truth, &outcome, &options)?;
    println!(
        "{} pages: kept {}, dropped {}; junk pages dropped {} of all junk (recall), junk {} of \
         all dropped (precision)",
        r.documents,
        r.kept,
        r.dropped,
        pct(r.recall),
        pct(r.precision)
    );
    println!(
        "\n{:<17} {:>6} {:>8} {:>8} {:>10} {:>10}  blocks targeting it",
        "junk kind", "pages", "dropped", "recall", "precision", "on target"
    );
    for (name, k) in &r.kinds {
        let opt = |x: Option<f64>| x.map_or("-".to_string(), pct);
        println!(
            "{:<17} {:>6} {:>8} {:>8} {:>10} {:>10}  {}",
            name,
            k.documents,
            k.dropped,
            pct(k.recall),
            opt(k.precision),
            opt(k.on_target),
            k.blocks.join(", ")
        );
    }
    println!("\ndropped by block/rule, per truth class:");
    for (class, c) in &r.classes {
        let rules: Vec<String> = c.by_rule.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "  {class:<16} {:>5} pages, {:>5} dropped ({}): {}",
            c.documents,
            c.dropped,
            pct(c.dropped_share),
            rules.join(", ")
        );
    }
    println!("\ngood pages (clean, boilerplate) dropped, by rule:");
    let mut fp: Vec<(&String, &u64)> = r.false_positives.iter().collect();
    fp.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (rule, n) in fp {
        println!("  {rule:<50} {n:>5}");
    }
    good_pages_kept(&truth, &outcome);
    if let Some(l) = &r.lines {
        println!(
            "\nboilerplate lines on kept pages: {} planted, {} removed ({}); clean lines: {}, \
             {} removed ({})",
            l.planted,
            l.planted_removed,
            pct(l.planted_removed_share),
            l.clean,
            l.clean_removed,
            pct(l.clean_removed_share)
        );
    }
    let g = &r.near_duplicate_groups;
    println!(
        "near-duplicate groups: {} (one page kept {}, none {}, several {})",
        g.groups, g.one_kept, g.none_kept, g.several_kept
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&r)?)?;
    }
    Ok(())
}

/// Good pages (clean or boilerplate) kept, by language and by page domain.
fn good_pages_kept(truth: &RawTruth, outcome: &Outcome) {
    let mut by: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for rec in truth.records() {
        if rec.junk.is_some_and(|k| k.is_junk_page()) {
            continue;
        }
        let kept = outcome.kept.contains(&rec.id.to_string());
        let domain = rec.domain.map_or("-", |d| d.name()).to_string();
        for key in [
            (rec.lang.clone(), "all".to_string()),
            (rec.lang.clone(), domain),
        ] {
            let e = by.entry(key).or_default();
            e.0 += 1;
            e.1 += u64::from(kept);
        }
    }
    println!("\ngood pages kept, by language and domain:");
    for ((lang, domain), (n, kept)) in &by {
        println!(
            "  {lang} {domain:<13} {kept:>5} of {n:>5} ({})",
            pct(*kept as f64 / *n as f64)
        );
    }
}
