//! Deduplicates a JSONL corpus (`{"id", "text"}` per line, one input file) with MinHash or
//! exact hashing, in memory or staged over a working folder with W ranks, and prints a
//! JSON report in `fmlab curate --json`'s shape (a `blocks` list with documents in and
//! out), the timing and the dedup summary. Used by `scripts/check_curate_minhash.sh` and
//! `bench/curate.sh` until `fmlab curate --recipe minhash` exists.
//!
//! `cargo run --release -p fmlab-curate --example dedup -- CORPUS.jsonl [--method
//! minhash|exact] [--ranks W --work DIR] [--removed FILE] [--clusters FILE]`

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

use fmlab_curate::dedup::{DedupSummary, ExactDedup, MinHash, MinhashConfig, RemovalSet};
use fmlab_curate::{DocKey, Document};
use serde_json::{json, Value};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    corpus: PathBuf,
    method: String,
    ranks: Option<usize>,
    work: Option<PathBuf>,
    removed: Option<PathBuf>,
    clusters: Option<PathBuf>,
}

fn parse_args() -> Res<Args> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        corpus: PathBuf::new(),
        method: "minhash".into(),
        ranks: None,
        work: None,
        removed: None,
        clusters: None,
    };
    while let Some(arg) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--method" => a.method = val()?,
            "--ranks" => a.ranks = Some(val()?.parse()?),
            "--work" => a.work = Some(val()?.into()),
            "--removed" => a.removed = Some(val()?.into()),
            "--clusters" => a.clusters = Some(val()?.into()),
            _ if a.corpus.as_os_str().is_empty() => a.corpus = arg.into(),
            _ => return Err(format!("unexpected argument {arg}").into()),
        }
    }
    if a.corpus.as_os_str().is_empty() {
        return Err("usage: dedup CORPUS.jsonl [--method minhash|exact] [--ranks W --work DIR] [--removed FILE] [--clusters FILE]".into());
    }
    Ok(a)
}

fn read_corpus(path: &Path) -> Res<Vec<Document>> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut docs = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let v: Value = serde_json::from_str(&line?)?;
        let text = v["text"]
            .as_str()
            .ok_or_else(|| format!("line {}: no text", i + 1))?;
        let id = v["id"]
            .as_str()
            .map_or_else(|| format!("0:{i}"), str::to_string);
        docs.push(Document::new(id, text, DocKey::new(0, i as u32)));
    }
    Ok(docs)
}

/// The staged path: documents split over `world` ranks by index (one input file here, so
/// ranks share it by document rather than by file).
fn staged(
    method: &str,
    docs: &[Document],
    dir: &Path,
    world: usize,
) -> Res<(DedupSummary, RemovalSet)> {
    let world = world.max(1);
    let summary = if method == "exact" {
        let ex = ExactDedup::default();
        for rank in 0..world {
            let mut w = ex.hash_writer(dir, rank);
            docs.iter().skip(rank).step_by(world).for_each(|d| w.add(d));
            w.finish()?;
        }
        ex.resolve(dir)?
    } else {
        let mh = MinHash::new(MinhashConfig::default())?;
        for rank in 0..world {
            let mut w = mh.signature_writer(dir, rank);
            docs.iter().skip(rank).step_by(world).for_each(|d| w.add(d));
            w.finish()?;
        }
        for bucket in 0..mh.config().num_buckets {
            mh.find_matches(dir, bucket)?;
        }
        mh.cluster(dir)?
    };
    Ok((summary, RemovalSet::load(dir, [0])?))
}

fn main() -> Res<()> {
    let args = parse_args()?;
    let t0 = Instant::now();
    let docs = read_corpus(&args.corpus)?;
    let t_read = t0.elapsed().as_secs_f64();
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    let (summary, removed, clusters) = match (&args.work, args.ranks) {
        (Some(dir), ranks) => {
            let (s, r) = staged(&args.method, &docs, dir, ranks.unwrap_or(1))?;
            (s, r, None)
        }
        (None, _) => {
            let result = if args.method == "exact" {
                ExactDedup::default().dedup(&docs)
            } else {
                MinHash::new(MinhashConfig::default())?.dedup(&docs)
            };
            (result.summary, result.removed, Some(result.clusters))
        }
    };
    let seconds = t0.elapsed().as_secs_f64();
    let kept = docs.iter().filter(|d| !removed.is_removed(d.key)).count();
    if let Some(path) = &args.removed {
        let ids: Vec<&str> = docs
            .iter()
            .filter(|d| removed.is_removed(d.key))
            .map(|d| d.id.as_str())
            .collect();
        std::fs::write(path, ids.join("\n") + "\n")?;
    }
    if let (Some(path), Some(clusters)) = (&args.clusters, &clusters) {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&json!({"summary": summary, "clusters": clusters}))?,
        )?;
    }
    let report = json!({
        "blocks": [{"name": args.method, "documents_in": docs.len(), "documents_out": kept,
                    "dropped": {"duplicate": docs.len() - kept}}],
        "bytes_in": bytes, "seconds": seconds, "read_seconds": t_read,
        "documents_per_second": docs.len() as f64 / seconds,
        "mb_per_second": bytes as f64 / 1e6 / seconds,
        "summary": summary,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
