//! Mixes: a training set cut from curated documents by target shares or token counts per
//! group (language, domain, or both), each group up- or down-sampled with its epochs stated
//! — a whole number of passes over every document plus a seeded random part of one more.
//!
//! Sources are curation folders (their `output/`; for a dry run, only the documents no
//! block dropped, read from the attributes beside them, so a mix is re-cut without running
//! the filters again) or JSONL files. The documents are held in memory while the mix is
//! cut; the output is shuffled with the seed and written as JSONL that `fmlab data
//! tokenize` reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::doc::Document;
use crate::pipeline::glue::LineFile;
use crate::pipeline::input::{list_inputs, open_input};
use crate::pipeline::spec::InputSpec;
use crate::{Error, Result};

/// What to cut.
#[derive(Debug, Clone)]
pub struct MixOptions {
    /// Metadata fields that form a document's group (`language` falls back to `lang`).
    pub by: Vec<String>,
    /// Target shares by group key (values joined by '/'; `*` matches any value). Groups
    /// that no key matches are left out.
    pub shares: Vec<(String, f64)>,
    /// Target token counts by group key (instead of shares).
    pub tokens: Vec<(String, f64)>,
    /// Total tokens for shares; `None`: the most that keeps every group within
    /// `max_epochs`.
    pub total: Option<f64>,
    pub max_epochs: f64,
    /// Blocks whose decisions a dry run's documents are not held to.
    pub ignore_blocks: Vec<String>,
    pub seed: u64,
}

/// One group of the mix.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupMix {
    pub documents: usize,
    pub tokens: f64,
    pub target_tokens: f64,
    pub taken_documents: usize,
    pub taken_tokens: f64,
    /// taken ÷ available: above 1 is upsampling.
    pub epochs: f64,
}

/// `<out>.mix.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MixReport {
    pub sources: Vec<String>,
    pub by: Vec<String>,
    pub groups: BTreeMap<String, GroupMix>,
    /// Groups no target matched (left out).
    pub left_out: BTreeMap<String, usize>,
    pub documents: usize,
    pub tokens: f64,
}

fn field(doc: &Document, name: &str) -> String {
    let keys: &[&str] = if name == "language" {
        &["language", "lang"]
    } else {
        &[name]
    };
    for k in keys {
        match doc.metadata.get(*k) {
            Some(Value::String(s)) => return s.clone(),
            Some(Value::Null) | None => {}
            Some(v) => return v.to_string(),
        }
    }
    "?".into()
}

fn matches(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let k: Vec<&str> = key.split('/').collect();
    p.len() == k.len() && p.iter().zip(&k).all(|(a, b)| *a == "*" || a == b)
}

/// Reads the documents of `sources` that curation kept.
pub fn read_sources(sources: &[PathBuf], ignore_blocks: &[String]) -> Result<Vec<Document>> {
    let mut docs = Vec::new();
    for src in sources {
        if src.is_dir() {
            read_curated(src, ignore_blocks, &mut docs)?;
        } else {
            for d in open_input(src, 0, &InputSpec::default())? {
                docs.push(d?);
            }
        }
    }
    Ok(docs)
}

fn read_curated(dir: &Path, ignore: &[String], docs: &mut Vec<Document>) -> Result<()> {
    let plan: Value = serde_json::from_slice(
        &std::fs::read(dir.join("plan.json")).map_err(|e| Error::io(dir.join("plan.json"), e))?,
    )
    .map_err(|e| Error::format(dir.join("plan.json"), e.to_string()))?;
    let dry = plan["dry_run"].as_bool().unwrap_or(false);
    // Output shards are `fNNNNN-SSSSS.ext`, in order; attributes are `fNNNNN.jsonl`.
    let mut by_file: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for path in list_inputs(&[dir.join("output")])? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.split('-').next().unwrap_or("").to_string();
        by_file.entry(stem).or_default().push(path);
    }
    for (stem, shards) in by_file {
        let name = format!("{stem}.jsonl");
        let mut dropped: Vec<bool> = Vec::new();
        if dry {
            for entry in std::fs::read_dir(dir.join("attributes")).map_err(|e| Error::io(dir, e))? {
                let entry = entry.map_err(|e| Error::io(dir, e))?;
                let block = entry.file_name().to_string_lossy().into_owned();
                if ignore.contains(&block) {
                    continue;
                }
                let attrs = entry.path().join(&name);
                let text = std::fs::read_to_string(&attrs).map_err(|e| Error::io(&attrs, e))?;
                for (i, line) in text.lines().enumerate() {
                    let v: Value = serde_json::from_str(line)
                        .map_err(|e| Error::format(&attrs, format!("line {}: {e}", i + 1)))?;
                    if dropped.len() <= i {
                        dropped.resize(i + 1, false);
                    }
                    dropped[i] |= !v["drop"].is_null();
                }
            }
        }
        let mut i = 0;
        for path in shards {
            for d in open_input(&path, 0, &InputSpec::default())? {
                let d = d?;
                if !dropped.get(i).copied().unwrap_or(false) {
                    docs.push(d);
                }
                i += 1;
            }
        }
    }
    Ok(())
}

/// A seeded 64-bit generator (splitmix64) for the fractional epoch and the shuffle.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Cuts the mix: which documents, how many copies each; returns them shuffled with the
/// report. `count` gives a document's tokens.
pub fn cut(
    docs: Vec<Document>,
    opts: &MixOptions,
    count: &(dyn Fn(&str) -> usize + Sync),
) -> Result<(Vec<Document>, MixReport)> {
    if opts.shares.is_empty() == opts.tokens.is_empty() {
        return Err(Error::Config(
            "give target shares or target token counts (one of them)".into(),
        ));
    }
    if opts
        .shares
        .iter()
        .chain(&opts.tokens)
        .any(|(_, v)| !v.is_finite() || *v < 0.0)
    {
        return Err(Error::Config(
            "targets must be finite and not negative".into(),
        ));
    }
    let mut groups: BTreeMap<String, Vec<(Document, f64)>> = BTreeMap::new();
    for d in docs {
        let key: Vec<String> = opts.by.iter().map(|f| field(&d, f)).collect();
        let n = count(&d.text) as f64;
        groups.entry(key.join("/")).or_default().push((d, n));
    }
    let mut report = MixReport {
        by: opts.by.clone(),
        ..Default::default()
    };
    let targets = if opts.shares.is_empty() {
        &opts.tokens
    } else {
        &opts.shares
    };
    // Each target pattern's share goes to the groups it matches, by their size.
    let mut wanted: BTreeMap<String, f64> = BTreeMap::new();
    for (pattern, value) in targets {
        let hits: Vec<&String> = groups.keys().filter(|k| matches(pattern, k)).collect();
        if hits.is_empty() {
            return Err(Error::Config(format!(
                "no documents in group {pattern:?}: the groups are {}",
                groups.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let size: f64 = hits
            .iter()
            .map(|k| groups[*k].iter().map(|x| x.1).sum::<f64>())
            .sum();
        for k in hits {
            let own: f64 = groups[k].iter().map(|x| x.1).sum();
            *wanted.entry(k.clone()).or_default() += value * own / size.max(1.0);
        }
    }
    if !opts.shares.is_empty() {
        let sum: f64 = wanted.values().sum();
        if sum <= 0.0 {
            return Err(Error::Config("the shares add up to 0".into()));
        }
        let total = match opts.total {
            Some(t) => t,
            None => wanted
                .iter()
                .map(|(k, s)| {
                    let avail: f64 = groups[k].iter().map(|x| x.1).sum();
                    if *s > 0.0 {
                        avail * opts.max_epochs * sum / s
                    } else {
                        f64::INFINITY
                    }
                })
                .fold(f64::INFINITY, f64::min),
        };
        for v in wanted.values_mut() {
            *v = *v / sum * total;
        }
    }
    let mut rng = Rng(opts.seed ^ 0x6D69_7800);
    let mut out = Vec::new();
    for (key, members) in groups {
        let avail: f64 = members.iter().map(|x| x.1).sum();
        let Some(&target) = wanted.get(&key) else {
            report.left_out.insert(key, members.len());
            continue;
        };
        let mut g = GroupMix {
            documents: members.len(),
            tokens: avail,
            target_tokens: target,
            ..Default::default()
        };
        let whole = if avail > 0.0 {
            (target / avail).floor() as usize
        } else {
            0
        };
        let mut rest = target - whole as f64 * avail;
        let mut order: Vec<usize> = (0..members.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let mut copies = vec![whole; members.len()];
        for i in order {
            if rest <= 0.0 {
                break;
            }
            copies[i] += 1;
            rest -= members[i].1;
        }
        for ((d, n), c) in members.into_iter().zip(copies) {
            g.taken_documents += c;
            g.taken_tokens += n * c as f64;
            for _ in 0..c {
                out.push(d.clone());
            }
        }
        g.epochs = if avail > 0.0 {
            g.taken_tokens / avail
        } else {
            0.0
        };
        report.documents += g.taken_documents;
        report.tokens += g.taken_tokens;
        report.groups.insert(key, g);
    }
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i + 1));
    }
    Ok((out, report))
}

/// Writes the mix as JSONL (`{id, text, …metadata}`) and its report beside it.
pub fn write(path: &Path, docs: &[Document], report: &MixReport) -> Result<()> {
    let mut f = LineFile::create(path)?;
    for d in docs {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), d.id.clone().into());
        m.insert("text".into(), d.text.clone().into());
        for (k, v) in &d.metadata {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if !m.contains_key("lang") {
            if let Some(l) = d.metadata.get("language") {
                m.insert("lang".into(), l.clone());
            }
        }
        f.line(&Value::Object(m))?;
    }
    f.finish()?;
    let mut rp = path.as_os_str().to_owned();
    rp.push(".mix.json");
    let bytes =
        serde_json::to_vec_pretty(report).map_err(|e| Error::format(path, e.to_string()))?;
    fmlab_formats::write_atomically(Path::new(&rp), &bytes)
        .map_err(|e| Error::format(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::DocKey;

    fn docs() -> Vec<Document> {
        (0..300)
            .map(|i| {
                let mut d = Document::new(format!("d{i}"), "w ".repeat(10), DocKey::new(0, i));
                let lang = if i < 200 {
                    "en"
                } else if i < 290 {
                    "fr"
                } else {
                    "sw"
                };
                d.metadata.insert("lang".into(), lang.into());
                d.metadata.insert(
                    "domain".into(),
                    if i % 2 == 0 { "story" } else { "code" }.into(),
                );
                d
            })
            .collect()
    }

    fn words(t: &str) -> usize {
        t.split_whitespace().count()
    }

    #[test]
    fn shares_upsample_the_rare_language_with_stated_epochs() {
        let opts = MixOptions {
            by: vec!["language".into()],
            shares: vec![("en".into(), 0.5), ("fr".into(), 0.3), ("sw".into(), 0.2)],
            tokens: vec![],
            total: Some(2000.0),
            max_epochs: 1.0,
            ignore_blocks: vec![],
            seed: 1,
        };
        let (out, r) = cut(docs(), &opts, &words).unwrap();
        assert_eq!(r.groups["en"].taken_tokens, 1000.0);
        assert_eq!(r.groups["sw"].taken_tokens, 400.0);
        assert_eq!(r.groups["sw"].epochs, 4.0);
        assert_eq!(r.groups["en"].epochs, 0.5);
        assert_eq!(out.len(), 200);
        let (again, _) = cut(docs(), &opts, &words).unwrap();
        assert_eq!(out, again);
        // Without a total, the largest mix that upsamples nothing.
        let (_, r) = cut(
            docs(),
            &MixOptions {
                total: None,
                ..opts.clone()
            },
            &words,
        )
        .unwrap();
        assert!((r.groups["sw"].epochs - 1.0).abs() < 1e-9, "{r:?}");
        assert!(r.groups.values().all(|g| g.epochs <= 1.0 + 1e-9));
    }

    #[test]
    fn token_targets_by_language_and_domain_with_wildcards() {
        let opts = MixOptions {
            by: vec!["language".into(), "domain".into()],
            shares: vec![],
            tokens: vec![("en/story".into(), 500.0), ("fr/*".into(), 300.0)],
            total: None,
            max_epochs: 1.0,
            ignore_blocks: vec![],
            seed: 2,
        };
        let (_, r) = cut(docs(), &opts, &words).unwrap();
        assert_eq!(r.groups["en/story"].taken_tokens, 500.0);
        assert_eq!(
            r.groups["fr/story"].taken_tokens + r.groups["fr/code"].taken_tokens,
            300.0
        );
        assert!(r.left_out.contains_key("sw/story"));
        let bad = MixOptions {
            tokens: vec![("de/*".into(), 1.0)],
            ..opts
        };
        assert!(cut(docs(), &bad, &words)
            .unwrap_err()
            .to_string()
            .contains("no documents in group \"de/*\""));
    }
}
