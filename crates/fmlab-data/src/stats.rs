//! `fmlab world stats`: the mix of a written world by domain and language, and how often
//! facts are mentioned.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Serialize, Default)]
pub struct WorldStats {
    pub documents: u64,
    pub bytes: u64,
    /// Documents and bytes per domain.
    pub by_domain: BTreeMap<String, (u64, u64)>,
    /// Documents and bytes per language.
    pub by_lang: BTreeMap<String, (u64, u64)>,
    /// People by number of mentions: buckets 0, 1, 2–3, 4–9, 10–99, 100+.
    pub mention_histogram: Vec<(String, u64)>,
    /// Facts per split (frequent / rare / unseen).
    pub facts_by_split: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct DocHead {
    domain: String,
    lang: String,
    text: String,
}

#[derive(Deserialize)]
struct FactHead {
    subject_id: u32,
    mentions: u32,
    split: String,
}

/// Reads `corpus.jsonl` and `kb.jsonl` of a world folder.
pub fn world_stats(dir: &Path) -> Result<WorldStats> {
    let mut stats = WorldStats::default();
    let corpus = dir.join("corpus.jsonl");
    for_lines(&corpus, |line| {
        let d: DocHead = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let n = d.text.len() as u64;
        stats.documents += 1;
        stats.bytes += n;
        let e = stats.by_domain.entry(d.domain).or_default();
        e.0 += 1;
        e.1 += n;
        let e = stats.by_lang.entry(d.lang).or_default();
        e.0 += 1;
        e.1 += n;
        Ok(())
    })?;
    if stats.documents == 0 {
        return Err(Error::Parse {
            path: corpus,
            line: 0,
            message: "no documents".into(),
        });
    }
    let mut people: BTreeMap<u32, u32> = BTreeMap::new();
    for_lines(&dir.join("kb.jsonl"), |line| {
        let f: FactHead = serde_json::from_str(line).map_err(|e| e.to_string())?;
        people.insert(f.subject_id, f.mentions);
        *stats.facts_by_split.entry(f.split).or_insert(0) += 1;
        Ok(())
    })?;
    let buckets: [(&str, u32, u32); 6] = [
        ("0", 0, 0),
        ("1", 1, 1),
        ("2-3", 2, 3),
        ("4-9", 4, 9),
        ("10-99", 10, 99),
        ("100+", 100, u32::MAX),
    ];
    stats.mention_histogram = buckets
        .iter()
        .map(|&(name, lo, hi)| {
            let n = people.values().filter(|&&m| m >= lo && m <= hi).count() as u64;
            (name.to_string(), n)
        })
        .collect();
    Ok(stats)
}

fn for_lines(
    path: &Path,
    mut f: impl FnMut(&str) -> std::result::Result<(), String>,
) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        f(&line).map_err(|message| Error::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        })?;
    }
    Ok(())
}
