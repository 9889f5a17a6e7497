//! Whether a difference between two evaluation runs is real: per task and metric, the
//! difference B − A over the documents both runs scored, a paired bootstrap confidence
//! interval (the same resampled documents on both sides), and for accuracies McNemar's exact
//! test on the documents where the two disagree. A verdict per row — better, worse, or no
//! detectable change at the chosen level — and whether any row is a significant regression
//! (what a CI gate needs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::{aggregate_metric, Item, RunConfig};
use crate::{Error, Result};

/// One run's per-document items: task → metric,filter → doc id → item.
pub type RunItems = BTreeMap<String, BTreeMap<String, BTreeMap<u64, Item>>>;

/// Reads a run: a folder holding `results.json` and `samples_TASK*.jsonl` (what `eval run
/// --out DIR --log-samples` and lm-evaluation-harness's `--log_samples` write), or the
/// results file itself with its samples beside it.
pub fn read_run(path: &Path) -> Result<RunItems> {
    let dir: PathBuf = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let entries =
        std::fs::read_dir(&dir).map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("samples_") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Config(format!(
            "{}: no samples_TASK.jsonl files (run `fmlab eval run --out DIR --log-samples`); \
             a comparison needs each document's scores",
            dir.display()
        )));
    }
    let mut run = RunItems::new();
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        // samples_TASK.jsonl, or lm-evaluation-harness's samples_TASK_DATE.jsonl.
        let stem = name
            .trim_start_matches("samples_")
            .trim_end_matches(".jsonl");
        let task = match stem.rfind('_') {
            Some(at) if stem[at + 1..].starts_with("20") && stem[at + 1..].contains('T') => {
                &stem[..at]
            }
            _ => stem,
        };
        let text = std::fs::read_to_string(&f)
            .map_err(|e| Error::Config(format!("{}: {e}", f.display())))?;
        let metrics = run.entry(task.to_string()).or_default();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| Error::Config(format!("{} line {}: {e}", f.display(), i + 1)))?;
            let doc = v["doc_id"].as_u64().ok_or_else(|| {
                Error::Config(format!("{} line {}: no doc_id", f.display(), i + 1))
            })?;
            let filter = v["filter"].as_str().unwrap_or("none");
            for metric in [
                "acc",
                "acc_norm",
                "acc_bytes",
                "exact_match",
                "contains_answer",
                "perplexity",
                "word_perplexity",
                "byte_perplexity",
                "bits_per_byte",
            ] {
                let item = match &v[metric] {
                    Value::Number(n) => n.as_f64().map(Item::Score),
                    Value::Array(a) if a.len() == 2 => match (a[0].as_f64(), a[1].as_f64()) {
                        (Some(x), Some(w)) => Some(Item::Weighted(x, w)),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(item) = item {
                    metrics
                        .entry(format!("{metric},{filter}"))
                        .or_default()
                        .insert(doc, item);
                }
            }
        }
    }
    Ok(run)
}

/// One row of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub task: String,
    pub metric: String,
    pub documents: usize,
    pub a: f64,
    pub b: f64,
    /// B − A.
    pub difference: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Two-sided: McNemar's exact test for 0/1 scores, else the paired bootstrap's.
    pub p_value: f64,
    pub test: &'static str,
    pub higher_is_better: bool,
    /// "better", "worse" or "no detectable change".
    pub verdict: &'static str,
}

/// Compares run `a` with run `b` over the documents both scored, at significance `level`
/// with `iters` paired bootstrap resamples seeded by `seed`.
pub fn compare(
    a: &RunItems,
    b: &RunItems,
    level: f64,
    iters: usize,
    seed: u64,
) -> Result<Vec<Row>> {
    if !(level > 0.0 && level < 1.0) {
        return Err(Error::Config(format!(
            "level {level}: between 0 and 1 (0.05 is usual)"
        )));
    }
    let mut rows = Vec::new();
    for (task, ma) in a {
        let Some(mb) = b.get(task) else { continue };
        for (metric, da) in ma {
            let Some(db) = mb.get(metric) else { continue };
            let docs: Vec<u64> = da.keys().filter(|k| db.contains_key(k)).copied().collect();
            if docs.is_empty() {
                continue;
            }
            let name = metric.split(',').next().unwrap_or(metric);
            let ia: Vec<Item> = docs.iter().map(|d| da[d]).collect();
            let ib: Vec<Item> = docs.iter().map(|d| db[d]).collect();
            let cfg = RunConfig::default();
            let (va, _) = aggregate_metric(name, &ia, &cfg);
            let (vb, _) = aggregate_metric(name, &ib, &cfg);
            let difference = vb - va;
            // Paired bootstrap: the same resampled documents for both runs.
            let mut rng = fmlab_sample::Rng::new(seed);
            let mut diffs = Vec::with_capacity(iters);
            let (mut ra, mut rb) = (ia.clone(), ib.clone());
            for _ in 0..iters.max(1) {
                for j in 0..docs.len() {
                    let k = (rng.next_u64() % docs.len() as u64) as usize;
                    ra[j] = ia[k];
                    rb[j] = ib[k];
                }
                diffs.push(
                    aggregate_metric(name, &rb, &cfg).0 - aggregate_metric(name, &ra, &cfg).0,
                );
            }
            diffs.sort_by(f64::total_cmp);
            let q = |p: f64| {
                diffs[((p * (diffs.len() - 1) as f64).round() as usize).min(diffs.len() - 1)]
            };
            let (ci_low, ci_high) = (q(level / 2.0), q(1.0 - level / 2.0));
            let binary = ia
                .iter()
                .chain(&ib)
                .all(|i| matches!(i, Item::Score(v) if *v == 0.0 || *v == 1.0));
            let (p_value, test) = if binary {
                let (mut only_a, mut only_b) = (0u64, 0u64);
                for (x, y) in ia.iter().zip(&ib) {
                    match (score(x) > 0.5, score(y) > 0.5) {
                        (true, false) => only_a += 1,
                        (false, true) => only_b += 1,
                        _ => {}
                    }
                }
                (mcnemar_exact(only_a, only_b), "McNemar (exact)")
            } else {
                let below = diffs.iter().filter(|d| **d <= 0.0).count() as f64 / diffs.len() as f64;
                let above = diffs.iter().filter(|d| **d >= 0.0).count() as f64 / diffs.len() as f64;
                ((2.0 * below.min(above)).min(1.0), "paired bootstrap")
            };
            let higher_is_better = !name.contains("perplexity") && name != "bits_per_byte";
            let significant = p_value < level && (ci_low > 0.0 || ci_high < 0.0);
            let verdict = match (significant, (difference > 0.0) == higher_is_better) {
                (false, _) => "no detectable change",
                (true, true) => "better",
                (true, false) => "worse",
            };
            rows.push(Row {
                task: task.clone(),
                metric: metric.clone(),
                documents: docs.len(),
                a: va,
                b: vb,
                difference,
                ci_low,
                ci_high,
                p_value,
                test,
                higher_is_better,
                verdict,
            });
        }
    }
    if rows.is_empty() {
        return Err(Error::Config(
            "the two runs share no task, metric and document to compare".into(),
        ));
    }
    Ok(rows)
}

fn score(i: &Item) -> f64 {
    match *i {
        Item::Score(v) => v,
        Item::Weighted(a, _) => a,
    }
}

/// McNemar's exact test: with `b` and `c` discordant pairs, the two-sided binomial p-value
/// of min(b, c) or fewer successes in b + c fair trials.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // Σ_{i ≤ k} C(n, i) / 2^n, in logs.
    let ln_choose = |n: u64, i: u64| ln_factorial(n) - ln_factorial(i) - ln_factorial(n - i);
    let tail: f64 = (0..=k)
        .map(|i| (ln_choose(n, i) - n as f64 * std::f64::consts::LN_2).exp())
        .sum();
    (2.0 * tail).min(1.0)
}

fn ln_factorial(n: u64) -> f64 {
    (2..=n).map(|i| (i as f64).ln()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: 1 against 6 discordant pairs: P(X ≤ 1 | n = 7) = 8/128, two-sided 0.125;
    /// 0 against 5: 2/32 = 0.0625; none: 1.
    #[test]
    fn mcnemar_by_hand() {
        assert!((mcnemar_exact(1, 6) - 0.125).abs() < 1e-12);
        assert!((mcnemar_exact(5, 0) - 0.0625).abs() < 1e-12);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(3, 3), 1.0);
    }

    fn run(task: &str, metric: &str, items: &[Item]) -> RunItems {
        let mut r = RunItems::new();
        let m = r
            .entry(task.into())
            .or_default()
            .entry(metric.into())
            .or_default();
        for (i, it) in items.iter().enumerate() {
            m.insert(i as u64, *it);
        }
        r
    }

    #[test]
    fn a_planted_regression_is_worse_and_no_change_is_none() {
        // A: 45 of 60 right; B: the same, except 15 of A's right answers now wrong.
        let a: Vec<Item> = (0..60)
            .map(|i| Item::Score(if i < 45 { 1.0 } else { 0.0 }))
            .collect();
        let b: Vec<Item> = (0..60)
            .map(|i| Item::Score(if i < 30 { 1.0 } else { 0.0 }))
            .collect();
        let rows = compare(
            &run("t", "acc,none", &a),
            &run("t", "acc,none", &b),
            0.05,
            500,
            1,
        )
        .unwrap();
        assert_eq!(rows[0].verdict, "worse");
        assert!((rows[0].difference + 0.25).abs() < 1e-12);
        assert!(rows[0].ci_high < 0.0 && rows[0].p_value < 0.001);
        let same = compare(
            &run("t", "acc,none", &a),
            &run("t", "acc,none", &a),
            0.05,
            500,
            1,
        )
        .unwrap();
        assert_eq!(same[0].verdict, "no detectable change");
        // Perplexity: higher is worse.
        let pa: Vec<Item> = (0..40)
            .map(|i| Item::Weighted(-10.0 - (i % 3) as f64, 5.0))
            .collect();
        let pb: Vec<Item> = pa
            .iter()
            .map(|i| match *i {
                Item::Weighted(x, w) => Item::Weighted(x - 2.0, w),
                s => s,
            })
            .collect();
        let rows = compare(
            &run("t", "word_perplexity,none", &pa),
            &run("t", "word_perplexity,none", &pb),
            0.05,
            500,
            1,
        )
        .unwrap();
        assert_eq!(rows[0].verdict, "worse");
        assert!(compare(
            &run("t", "acc,none", &a),
            &run("u", "acc,none", &a),
            0.05,
            10,
            1
        )
        .is_err());
        assert!(compare(
            &run("t", "acc,none", &a),
            &run("t", "acc,none", &a),
            1.5,
            10,
            1
        )
        .is_err());
    }
}
