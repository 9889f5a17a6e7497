//! FineWeb's four quality filters on a JSONL file of documents (`{"id", "text"}` a line),
//! for comparing with datatrove (`scripts/check_curate_filters.sh`) and timing them.
//!
//! ```text
//! cargo run --release -p fmlab-curate --example curate_filters -- decisions DOCS.jsonl OUT.jsonl
//! cargo run --release -p fmlab-curate --example curate_filters -- words DOCS.jsonl OUT.jsonl
//! cargo run --release -p fmlab-curate --example curate_filters -- bench DOCS.jsonl
//! ```
//! `decisions`: one line per document, `{id, indep: {filter: reason|null}, seq: {...}}`:
//! each filter alone on the original text, and the four in order (C4's rewrite seen by
//! FineWeb; a filter after the one that dropped the document is absent). `words`: each
//! document's words (`{id, words}`). `bench`: the four in order on one thread, documents/s
//! and MB/s (the text read beforehand, the best of three passes).

use std::error::Error;
use std::io::{BufRead, BufWriter, Write};
use std::time::Instant;

use fmlab_curate::filters::{fineweb_filters, LanguageRules};
use fmlab_curate::{Block, Decision, DocKey, Document};
use serde_json::{json, Map, Value};

fn read_docs(path: &str) -> Result<Vec<Document>, Box<dyn Error>> {
    let f = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut docs = Vec::new();
    for (i, line) in f.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("{path}:{}: {e}", i + 1))?;
        let id = v["id"].as_str().map_or_else(|| i.to_string(), String::from);
        let text = v["text"]
            .as_str()
            .ok_or_else(|| format!("{path}:{}: no text", i + 1))?;
        docs.push(Document::new(id, text, DocKey::new(0, i as u32)));
    }
    Ok(docs)
}

fn reason(d: &Decision) -> Value {
    d.drop
        .as_deref()
        .map_or(Value::Null, |r| Value::String(r.to_string()))
}

fn decisions(
    docs: Vec<Document>,
    filters: &[Box<dyn Block>],
    out: &str,
) -> Result<(), Box<dyn Error>> {
    let mut w = BufWriter::new(std::fs::File::create(out)?);
    for doc in docs {
        let mut indep = Map::new();
        for f in filters {
            let mut d = doc.clone();
            let mut dec = Decision::default();
            f.apply(&mut d, &mut dec);
            indep.insert(f.name().to_string(), reason(&dec));
        }
        let mut seq = Map::new();
        let mut d = doc.clone();
        for f in filters {
            let mut dec = Decision::default();
            f.apply(&mut d, &mut dec);
            seq.insert(f.name().to_string(), reason(&dec));
            if dec.dropped() {
                break;
            }
        }
        writeln!(w, "{}", json!({"id": doc.id, "indep": indep, "seq": seq}))?;
    }
    w.flush()?;
    Ok(())
}

fn bench(docs: Vec<Document>, filters: &[Box<dyn Block>]) {
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    let mut best = f64::INFINITY;
    let mut kept = 0;
    for _ in 0..3 {
        let mut copy = docs.clone();
        let t = Instant::now();
        kept = 0;
        for d in &mut copy {
            let mut dropped = false;
            for f in filters {
                let mut dec = Decision::default();
                f.apply(d, &mut dec);
                if dec.dropped() {
                    dropped = true;
                    break;
                }
            }
            kept += usize::from(!dropped);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let n = docs.len() as f64;
    println!(
        "{} documents ({:.1} MB) → {kept} kept in {best:.3} s: {:.0} documents/s, {:.2} MB/s (one thread)",
        docs.len(),
        bytes as f64 / 1e6,
        n / best,
        bytes as f64 / 1e6 / best
    );
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: curate_filters (decisions DOCS OUT | words DOCS OUT | bench DOCS)";
    let (mode, docs_path) = match args.as_slice() {
        [m, d, ..] => (m.as_str(), d.as_str()),
        _ => return Err(usage.into()),
    };
    let docs = read_docs(docs_path)?;
    let filters = fineweb_filters(&LanguageRules::fineweb());
    match (mode, args.get(2)) {
        ("decisions", Some(out)) => decisions(docs, &filters, out)?,
        ("words", Some(out)) => {
            let mut w = BufWriter::new(std::fs::File::create(out)?);
            for d in &docs {
                writeln!(
                    w,
                    "{}",
                    json!({"id": d.id, "words": fmlab_curate::words::split_words(&d.text)})
                )?;
            }
            w.flush()?;
        }
        ("bench", None) => bench(docs, &filters),
        _ => return Err(usage.into()),
    }
    Ok(())
}
