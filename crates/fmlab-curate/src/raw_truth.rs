//! Curation scored against the raw web's ground truth (`fmlab world --raw` writes
//! `raw.jsonl`, every page labelled): what a run kept and dropped, per kind of junk.
//!
//! - Documents: for each truth class (`clean`, `boilerplate`, each junk kind, and
//!   `unkept_language` for world pages in a language the user did not keep), how many there
//!   are, how many were dropped and by which block and rule. A junk kind's **recall** is its
//!   pages dropped over its pages. Its **precision** is over the blocks that target it
//!   ([`ScoreOptions::targets`], by default from the block's name): the dropped pages that
//!   were junk of any kind over all the pages those blocks dropped (`on_target`: the share
//!   that were this kind). Clean pages dropped are false positives, counted by rule;
//!   boilerplate pages are good pages too, so dropping one is also a false positive.
//! - Near-duplicate groups (a page and its copies): resolved when exactly one survives.
//! - Boilerplate lines, when the kept texts are given: of the lines planted into kept pages,
//!   the share removed; of their other lines (and every line of kept clean pages), the
//!   share wrongly removed. Lines are compared trimmed, blank lines ignored, as a multiset
//!   (C4 keeps the lines it keeps trimmed, joined by newlines).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use fmlab_data::world::{JunkKind, RawRecord};
use serde::Serialize;

use crate::{Error, Result};

/// The ground truth of a raw web, by document id.
#[derive(Debug, Clone)]
pub struct RawTruth {
    records: Vec<RawRecord>,
    by_id: HashMap<String, usize>,
}

impl RawTruth {
    /// Reads `raw.jsonl`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|l| !l.1.trim().is_empty()) {
            let r: RawRecord = serde_json::from_str(line).map_err(|e| {
                Error::format(path, format!("line {}: not a raw-web record: {e}", i + 1))
            })?;
            records.push(r);
        }
        Self::from_records(records).map_err(|e| Error::format(path, e.to_string()))
    }

    /// From records; two with one id are an error.
    pub fn from_records(records: Vec<RawRecord>) -> Result<Self> {
        let mut by_id = HashMap::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            if by_id.insert(r.id.to_string(), i).is_some() {
                return Err(Error::Config(format!("raw web: id {} appears twice", r.id)));
            }
        }
        Ok(RawTruth { records, by_id })
    }

    pub fn records(&self) -> &[RawRecord] {
        &self.records
    }

    pub fn get(&self, id: &str) -> Option<&RawRecord> {
        self.by_id.get(id).map(|&i| &self.records[i])
    }
}

/// Which block dropped a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dropped {
    pub block: String,
    /// The block's rule (`gopher_short_doc`, `curly_bracket`…), when known.
    pub rule: Option<String>,
}

/// What a curation run did to the raw web's documents (ids as strings: `"17"`).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The documents kept.
    pub kept: HashSet<String>,
    /// The dropped documents' block and rule, where known; a document neither kept nor
    /// here was dropped by block `unknown`.
    pub dropped_by: HashMap<String, Dropped>,
    /// The kept documents' texts after curation (for line-level scores), where known.
    pub kept_texts: HashMap<String, String>,
}

impl Outcome {
    /// The outcome of a `fmlab curate` run, from its output folder `dir`: the blocks in
    /// `report.json`'s order; for each document (input file, line) the first block whose
    /// attribute line (`attributes/<block>/fNNNNN.jsonl`) has a `drop` dropped it, with
    /// that rule (in a dry run, where every block sees every document, too); the others
    /// were kept, their texts read from `output/` (with [`crate::read`]). One id at
    /// two places in the input is an error: ids name documents here.
    pub fn from_curation(dir: &Path) -> Result<Outcome> {
        let report_path = dir.join("report.json");
        let bytes = std::fs::read(&report_path).map_err(|e| Error::io(&report_path, e))?;
        let report: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::format(&report_path, e.to_string()))?;
        let names: Vec<&str> = report["blocks"]
            .as_array()
            .ok_or_else(|| Error::format(&report_path, "no `blocks` list"))?
            .iter()
            .map(|b| b["name"].as_str())
            .collect::<Option<_>>()
            .ok_or_else(|| Error::format(&report_path, "a block without a `name`"))?;
        // (file, index) → (id, first drop).
        let mut docs: BTreeMap<(u64, u64), (String, Option<Dropped>)> = BTreeMap::new();
        for name in &names {
            for path in files_in(&dir.join("attributes").join(name))? {
                read_attributes(&path, name, &mut docs)?;
            }
        }
        let mut outcome = Outcome::default();
        let mut place: HashMap<String, (u64, u64)> = HashMap::with_capacity(docs.len());
        for (key, (id, dropped)) in docs {
            if let Some(other) = place.insert(id.clone(), key) {
                return Err(Error::Config(format!(
                    "{}: document id {id:?} is at two places (file {}, line {}; file {}, \
                     line {}): ids must name documents",
                    dir.display(),
                    other.0,
                    other.1 + 1,
                    key.0,
                    key.1 + 1
                )));
            }
            match dropped {
                Some(d) => {
                    outcome.dropped_by.insert(id, d);
                }
                None => {
                    outcome.kept.insert(id);
                }
            }
        }
        let output = dir.join("output");
        if output.is_dir() {
            for path in files_in(&output)? {
                read_kept_texts(&path, &mut outcome)?;
            }
        }
        Ok(outcome)
    }
}

/// The files in `dir` (none if it does not exist), sorted, without `.tmp` leftovers.
fn files_in(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        if p.is_file() && !name.is_some_and(|n| n.ends_with(".tmp") || n.starts_with('.')) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// The lines of a JSONL attribute file (`.gz`/`.zst` read too) as objects.
fn jsonl_objects(
    path: &Path,
) -> Result<impl Iterator<Item = Result<serde_json::Map<String, serde_json::Value>>> + '_> {
    use std::io::BufRead;
    let lines = crate::read::open_decoded(path)?.lines();
    Ok(lines
        .enumerate()
        .filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(move |(i, line)| {
            let line = line.map_err(|e| Error::io(path, e))?;
            serde_json::from_str(&line)
                .map_err(|e| Error::format(path, format!("line {}: {e}", i + 1)))
        }))
}

/// Adds one attribute file's documents, and the first drop of each.
fn read_attributes(
    path: &Path,
    block: &str,
    docs: &mut BTreeMap<(u64, u64), (String, Option<Dropped>)>,
) -> Result<()> {
    for (i, line) in jsonl_objects(path)?.enumerate() {
        let v = line?;
        let bad = |m: &str| Error::format(path, format!("attribute line {}: {m}", i + 1));
        let field = |k: &str| v.get(k).unwrap_or(&serde_json::Value::Null);
        let id = field("id").as_str().ok_or_else(|| bad("no string `id`"))?;
        let file = field("file").as_u64().ok_or_else(|| bad("no `file`"))?;
        let index = field("index").as_u64().ok_or_else(|| bad("no `index`"))?;
        let entry = docs
            .entry((file, index))
            .or_insert_with(|| (id.to_string(), None));
        if entry.0 != id {
            return Err(bad(&format!(
                "id {id:?} where an earlier block saw {:?}",
                entry.0
            )));
        }
        if let (None, Some(rule)) = (&entry.1, field("drop").as_str()) {
            entry.1 = Some(Dropped {
                block: block.to_string(),
                rule: Some(rule.to_string()),
            });
        }
    }
    Ok(())
}

/// Adds the texts of an output file's documents that were kept (any format the readers
/// know: JSONL, compressed or not, or Parquet; files of no such format are skipped).
fn read_kept_texts(path: &Path, outcome: &mut Outcome) -> Result<()> {
    if crate::read::Format::from_path(path).is_none() {
        return Ok(());
    }
    for doc in crate::read::open(path, 0, &crate::read::ReadOptions::default())? {
        let doc = doc?;
        if outcome.kept.contains(&doc.id) {
            outcome.kept_texts.insert(doc.id, doc.text);
        }
    }
    Ok(())
}

/// How to read an outcome.
#[derive(Debug, Clone, Default)]
pub struct ScoreOptions {
    /// The junk kinds each block targets (block name → kinds); blocks not named here get
    /// [`default_targets`].
    pub targets: BTreeMap<String, Vec<JunkKind>>,
    /// The languages the user keeps: pages of the world's other languages count as junk of
    /// class `unkept_language`. `None`: every world language is wanted.
    pub keep_languages: Option<Vec<String>>,
}

/// The junk a block targets, from its name: language ID → wrong language; MinHash, exact
/// or line dedup → near-duplicates; Gopher repetition → spam; Gopher quality and FineWeb →
/// markup and spam; C4 → markup; a URL filter → blocklisted URLs.
pub fn default_targets(block: &str) -> Vec<JunkKind> {
    let b = block.to_lowercase();
    let has = |s: &str| b.contains(s);
    if has("lang") {
        vec![JunkKind::WrongLanguage]
    } else if has("minhash") || has("dedup") || has("duplicate") || has("exact") {
        vec![JunkKind::NearDuplicate]
    } else if has("repetition") {
        vec![JunkKind::Spam]
    } else if has("url") {
        vec![JunkKind::BlocklistedUrl]
    } else if has("c4") {
        vec![JunkKind::Markup]
    } else if has("quality") || has("fineweb") || has("gopher") {
        vec![JunkKind::Markup, JunkKind::Spam]
    } else {
        Vec::new()
    }
}

/// One truth class's documents.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClassScore {
    pub documents: u64,
    pub dropped: u64,
    /// `dropped / documents`: recall for junk classes, the false-positive rate for `clean`
    /// and `boilerplate`.
    pub dropped_share: f64,
    /// Dropped documents by `block/rule` (`block` when the rule is unknown).
    pub by_rule: BTreeMap<String, u64>,
}

/// Recall and precision of removing one kind of junk page.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct KindScore {
    pub documents: u64,
    pub dropped: u64,
    pub recall: f64,
    /// The blocks that target this kind (among those that dropped anything).
    pub blocks: Vec<String>,
    /// Documents those blocks dropped, the junk among them and this kind among them.
    pub blocks_dropped: u64,
    pub blocks_dropped_junk: u64,
    pub blocks_dropped_kind: u64,
    /// `blocks_dropped_junk / blocks_dropped` (`None` when they dropped nothing).
    pub precision: Option<f64>,
    /// `blocks_dropped_kind / blocks_dropped`.
    pub on_target: Option<f64>,
}

/// What one block dropped.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BlockScore {
    pub dropped: u64,
    /// By truth class.
    pub by_class: BTreeMap<String, u64>,
    /// Junk pages (any kind) over dropped.
    pub precision: f64,
}

/// Pages and their near-duplicate copies.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GroupScore {
    pub groups: u64,
    /// Exactly one page of the group kept (the deduplication's goal).
    pub one_kept: u64,
    pub none_kept: u64,
    pub several_kept: u64,
}

/// Line-level scores over kept good pages (clean and boilerplate) whose kept text is known.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LineScore {
    pub documents: u64,
    pub planted: u64,
    pub planted_removed: u64,
    pub planted_removed_share: f64,
    pub clean: u64,
    pub clean_removed: u64,
    pub clean_removed_share: f64,
}

/// The whole score (`report.json`'s `raw_truth`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RawReport {
    pub documents: u64,
    pub kept: u64,
    pub dropped: u64,
    /// Every junk page dropped over every junk page, and junk pages over dropped pages.
    pub recall: f64,
    pub precision: f64,
    /// By truth class: `clean`, `boilerplate`, the junk kinds, `unkept_language`.
    pub classes: BTreeMap<String, ClassScore>,
    /// By junk kind (the page kinds and `unkept_language`).
    pub kinds: BTreeMap<String, KindScore>,
    pub blocks: BTreeMap<String, BlockScore>,
    /// Good pages (clean or boilerplate) dropped, by `block/rule`.
    pub false_positives: BTreeMap<String, u64>,
    pub near_duplicate_groups: GroupScore,
    pub lines: Option<LineScore>,
}

const UNKEPT: &str = "unkept_language";

fn share(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A record's truth class, given the languages kept.
fn class_of(r: &RawRecord, keep: Option<&[String]>) -> &'static str {
    match r.junk {
        Some(k) if k.is_junk_page() => k.name(),
        _ if keep.is_some_and(|k| !k.contains(&r.lang)) => UNKEPT,
        Some(k) => k.name(),
        None => "clean",
    }
}

fn is_junk(class: &str) -> bool {
    class != "clean" && class != JunkKind::Boilerplate.name()
}

/// Scores `outcome` against `truth`. An id the truth does not have, or one both kept and
/// dropped, is an error.
pub fn score(truth: &RawTruth, outcome: &Outcome, options: &ScoreOptions) -> Result<RawReport> {
    for id in outcome.kept.iter().chain(outcome.dropped_by.keys()) {
        if truth.get(id).is_none() {
            return Err(Error::Config(format!(
                "document {id:?} is not in the raw web's ground truth"
            )));
        }
    }
    if let Some(id) = outcome
        .kept
        .iter()
        .find(|id| outcome.dropped_by.contains_key(*id))
    {
        return Err(Error::Config(format!(
            "document {id:?} is both kept and dropped"
        )));
    }
    let keep = options.keep_languages.as_deref();
    let unknown = Dropped {
        block: "unknown".into(),
        rule: None,
    };
    let mut report = RawReport {
        documents: truth.records.len() as u64,
        ..RawReport::default()
    };
    // Per block: dropped documents by class.
    let mut block_classes: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for r in &truth.records {
        let id = r.id.to_string();
        let class = class_of(r, keep);
        let c = report.classes.entry(class.into()).or_default();
        c.documents += 1;
        if outcome.kept.contains(&id) {
            report.kept += 1;
            continue;
        }
        let d = outcome.dropped_by.get(&id).unwrap_or(&unknown);
        let rule = match &d.rule {
            Some(rule) => format!("{}/{rule}", d.block),
            None => d.block.clone(),
        };
        c.dropped += 1;
        *c.by_rule.entry(rule.clone()).or_default() += 1;
        report.dropped += 1;
        if !is_junk(class) {
            *report.false_positives.entry(rule).or_default() += 1;
        }
        *block_classes
            .entry(d.block.clone())
            .or_default()
            .entry(class)
            .or_default() += 1;
    }
    let (mut junk, mut junk_dropped) = (0, 0);
    for (name, c) in report.classes.iter_mut() {
        c.dropped_share = share(c.dropped, c.documents);
        if is_junk(name) {
            junk += c.documents;
            junk_dropped += c.dropped;
        }
    }
    report.recall = share(junk_dropped, junk);
    report.precision = share(junk_dropped, report.dropped);
    for (block, classes) in &block_classes {
        let dropped = classes.values().sum();
        let junk: u64 = classes.iter().filter(|c| is_junk(c.0)).map(|c| c.1).sum();
        let score = BlockScore {
            dropped,
            by_class: classes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            precision: share(junk, dropped),
        };
        report.blocks.insert(block.clone(), score);
    }
    report.kinds = kind_scores(&report, &block_classes, options);
    report.near_duplicate_groups = groups(truth, &outcome.kept);
    if !outcome.kept_texts.is_empty() {
        report.lines = Some(lines(truth, outcome, keep));
    }
    Ok(report)
}

/// Recall and precision per junk kind, precision over the blocks targeting it.
fn kind_scores(
    report: &RawReport,
    block_classes: &BTreeMap<String, BTreeMap<&'static str, u64>>,
    options: &ScoreOptions,
) -> BTreeMap<String, KindScore> {
    let mut out = BTreeMap::new();
    let kinds = JunkKind::ALL
        .into_iter()
        .filter(|k| k.is_junk_page())
        .map(|k| (k.name(), Some(k)))
        .chain(options.keep_languages.is_some().then_some((UNKEPT, None)));
    for (name, kind) in kinds {
        let class = report.classes.get(name).cloned().unwrap_or_default();
        // Unkept languages are language ID's business, as wrong-language pages are.
        let target = kind.unwrap_or(JunkKind::WrongLanguage);
        let mut k = KindScore {
            documents: class.documents,
            dropped: class.dropped,
            recall: share(class.dropped, class.documents),
            ..KindScore::default()
        };
        for (block, classes) in block_classes {
            let targets = options
                .targets
                .get(block)
                .cloned()
                .unwrap_or_else(|| default_targets(block));
            if !targets.contains(&target) {
                continue;
            }
            k.blocks.push(block.clone());
            k.blocks_dropped += classes.values().sum::<u64>();
            k.blocks_dropped_junk += classes
                .iter()
                .filter(|c| is_junk(c.0))
                .map(|c| c.1)
                .sum::<u64>();
            k.blocks_dropped_kind += classes.get(name).copied().unwrap_or(0);
        }
        if k.blocks_dropped > 0 {
            k.precision = Some(share(k.blocks_dropped_junk, k.blocks_dropped));
            k.on_target = Some(share(k.blocks_dropped_kind, k.blocks_dropped));
        }
        out.insert(name.to_string(), k);
    }
    out
}

/// Each page with near-duplicate copies, and how many of the group were kept.
fn groups(truth: &RawTruth, kept: &HashSet<String>) -> GroupScore {
    let mut members: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for r in &truth.records {
        if let Some(of) = r.duplicate_of {
            members.entry(of).or_insert_with(|| vec![of]).push(r.id);
        }
    }
    let mut g = GroupScore::default();
    for ids in members.values() {
        g.groups += 1;
        match ids
            .iter()
            .filter(|id| kept.contains(&id.to_string()))
            .count()
        {
            0 => g.none_kept += 1,
            1 => g.one_kept += 1,
            _ => g.several_kept += 1,
        }
    }
    g
}

/// Planted and clean lines removed from kept good pages whose kept text is known.
fn lines(truth: &RawTruth, outcome: &Outcome, keep: Option<&[String]>) -> LineScore {
    let mut s = LineScore::default();
    for r in &truth.records {
        let id = r.id.to_string();
        let Some(kept) = outcome.kept_texts.get(&id) else {
            continue;
        };
        if is_junk(class_of(r, keep)) || !outcome.kept.contains(&id) {
            continue;
        }
        s.documents += 1;
        let mut left: HashMap<&str, u32> = HashMap::new();
        for l in kept.lines().map(str::trim).filter(|l| !l.is_empty()) {
            *left.entry(l).or_default() += 1;
        }
        for (i, line) in r.text.split('\n').enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let removed = match left.get_mut(line) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    false
                }
                _ => true,
            };
            if r.added_lines.contains(&i) {
                s.planted += 1;
                s.planted_removed += u64::from(removed);
            } else {
                s.clean += 1;
                s.clean_removed += u64::from(removed);
            }
        }
    }
    s.planted_removed_share = share(s.planted_removed, s.planted);
    s.clean_removed_share = share(s.clean_removed, s.clean);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, junk: Option<JunkKind>, lang: &str, text: &str) -> RawRecord {
        RawRecord {
            id,
            junk,
            lang: lang.into(),
            domain: None,
            url: format!("https://example.org/{id}"),
            sources: Vec::new(),
            added_lines: Vec::new(),
            duplicate_of: None,
            edits: None,
            style: None,
            text: text.into(),
        }
    }

    fn drop(block: &str, rule: &str) -> Dropped {
        Dropped {
            block: block.into(),
            rule: Some(rule.into()),
        }
    }

    /// Ten pages: four clean (one French), a boilerplate page, two near-duplicates of page
    /// 0, a spam page, a markup page and a German page.
    fn truth() -> RawTruth {
        let mut bp = record(
            4,
            Some(JunkKind::Boilerplate),
            "en",
            "Home\nA good line here.\nAnother good line.\nSubscribe to our newsletter now.",
        );
        bp.added_lines = vec![0, 3];
        let mut d1 = record(5, Some(JunkKind::NearDuplicate), "en", "copy one");
        d1.duplicate_of = Some(0);
        let mut d2 = record(6, Some(JunkKind::NearDuplicate), "en", "copy two");
        d2.duplicate_of = Some(0);
        RawTruth::from_records(vec![
            record(0, None, "en", "original"),
            record(1, None, "en", "clean one"),
            record(2, None, "en", "clean two"),
            record(3, None, "fr", "propre"),
            bp,
            d1,
            d2,
            record(7, Some(JunkKind::Spam), "en", "buy buy buy"),
            record(8, Some(JunkKind::Markup), "en", "<div>"),
            record(9, Some(JunkKind::WrongLanguage), "de", "Hallo"),
        ])
        .unwrap()
    }

    fn outcome() -> Outcome {
        let ids = |v: &[u64]| v.iter().map(|i| i.to_string()).collect::<HashSet<_>>();
        let mut o = Outcome {
            kept: ids(&[0, 1, 3, 4, 6]),
            ..Outcome::default()
        };
        for (id, d) in [
            (2, drop("gopher_quality", "gopher_short_doc")),
            (5, drop("minhash", "duplicate")),
            (7, drop("gopher_repetition", "top_2_gram")),
            (8, drop("c4", "curly_bracket")),
        ] {
            o.dropped_by.insert(id.to_string(), d);
        }
        // 9 is dropped by an unknown block. Page 4 lost "Home" and one good line.
        o.kept_texts.insert(
            "4".into(),
            "A good line here.\nSubscribe to our newsletter now.".into(),
        );
        o.kept_texts.insert("1".into(), "clean one".into());
        o
    }

    #[test]
    fn a_tiny_case_scored_by_hand() {
        let r = score(&truth(), &outcome(), &ScoreOptions::default()).unwrap();
        assert_eq!((r.documents, r.kept, r.dropped), (10, 5, 5));
        // Junk pages: 5, 6, 7, 8, 9; dropped: 5, 7, 8, 9.
        assert_eq!(r.recall, 0.8);
        assert_eq!(r.precision, 0.8);
        assert_eq!(r.classes["clean"].documents, 4);
        assert_eq!(r.classes["clean"].dropped, 1);
        assert_eq!(
            r.false_positives,
            BTreeMap::from([("gopher_quality/gopher_short_doc".to_string(), 1)])
        );
        let nd = &r.kinds["near_duplicate"];
        assert_eq!((nd.documents, nd.dropped, nd.recall), (2, 1, 0.5));
        assert_eq!(
            (nd.blocks.clone(), nd.precision),
            (vec!["minhash".to_string()], Some(1.0))
        );
        // Gopher quality targets markup and spam; it dropped only a clean page.
        let spam = &r.kinds["spam"];
        assert_eq!(spam.blocks, vec!["gopher_quality", "gopher_repetition"]);
        assert_eq!((spam.blocks_dropped, spam.blocks_dropped_junk), (2, 1));
        assert_eq!((spam.precision, spam.on_target), (Some(0.5), Some(0.5)));
        let markup = &r.kinds["markup"];
        assert_eq!((markup.blocks_dropped, markup.precision), (2, Some(0.5)));
        assert_eq!(r.kinds["wrong_language"].recall, 1.0);
        assert_eq!(r.kinds["wrong_language"].precision, None);
        assert_eq!(r.classes["wrong_language"].by_rule["unknown"], 1);
        assert_eq!(r.kinds["blocklisted_url"].documents, 0);
        assert_eq!(r.blocks["c4"].precision, 1.0);
        // Page 0 and its two copies: 0 and 6 kept.
        assert_eq!(
            r.near_duplicate_groups,
            GroupScore {
                groups: 1,
                one_kept: 0,
                none_kept: 0,
                several_kept: 1
            }
        );
        // Page 4: planted "Home" removed, the newsletter line kept; one of two good lines
        // lost. Page 1: its one line kept.
        let l = r.lines.clone().unwrap();
        assert_eq!((l.documents, l.planted, l.planted_removed), (2, 2, 1));
        assert_eq!((l.clean, l.clean_removed), (3, 1));
        assert!(serde_json::to_string(&r)
            .unwrap()
            .contains("\"near_duplicate_groups\""));
    }

    #[test]
    fn unkept_languages_and_explicit_targets() {
        let options = ScoreOptions {
            keep_languages: Some(vec!["en".into()]),
            targets: BTreeMap::from([("gopher_quality".to_string(), vec![JunkKind::Markup])]),
        };
        let r = score(&truth(), &outcome(), &options).unwrap();
        // The French page is now junk, and was kept.
        assert_eq!(r.classes[UNKEPT].documents, 1);
        assert_eq!(r.kinds[UNKEPT].recall, 0.0);
        assert_eq!(r.classes["clean"].documents, 3);
        assert_eq!(r.kinds["spam"].blocks, vec!["gopher_repetition"]);
        assert_eq!(r.kinds["spam"].precision, Some(1.0));
    }

    #[test]
    fn foreign_ids_and_contradictions_are_errors() {
        let mut o = outcome();
        o.kept.insert("99".into());
        let e = score(&truth(), &o, &ScoreOptions::default()).unwrap_err();
        assert!(e.to_string().contains("\"99\" is not in"), "{e}");
        let mut o = outcome();
        o.kept.insert("2".into());
        let e = score(&truth(), &o, &ScoreOptions::default()).unwrap_err();
        assert!(e.to_string().contains("both kept and dropped"), "{e}");
        let twice = vec![record(1, None, "en", "a"), record(1, None, "en", "b")];
        assert!(RawTruth::from_records(twice).is_err());
    }

    #[test]
    fn reads_raw_jsonl_and_names_bad_lines() {
        let dir = std::env::temp_dir().join(format!("fmlab-raw-truth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("raw.jsonl");
        let good: String = truth()
            .records()
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(&path, &good).unwrap();
        let t = RawTruth::read(&path).unwrap();
        assert_eq!(t.records(), truth().records());
        std::fs::write(&path, format!("{good}{{\"id\": 3}}\n")).unwrap();
        let e = RawTruth::read(&path).unwrap_err().to_string();
        assert!(e.contains("raw.jsonl") && e.contains("line 11"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
