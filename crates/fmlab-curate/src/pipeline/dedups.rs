//! The deduplications as pipeline stages: MinHash (signatures per rank, matches per
//! bucket, one clustering step), exact (hashes per rank, one resolving step) and dolma's
//! paragraph Bloom filter (paragraph hashes per rank, one pass in document-key order — so
//! W ranks remove what one process removes — then removal per input file).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_128;

use crate::block::{Block, Decision};
use crate::dedup::bloom::BloomFilter;
use crate::dedup::normalize::NormScratch;
use crate::dedup::{
    DedupSummary, ExactDedup, MinHash, MinhashConfig, MinhashScratch, RemovalSet, TextNorm,
};
use crate::doc::{DocKey, Document};
use crate::pipeline::dedup::{Dedup, DedupSink, GlobalStep};
use crate::pipeline::spec::BlockSpec;
use crate::{Error, Result};

/// Drops the documents a deduplication removed from one input file.
struct Remove {
    set: RemovalSet,
    rule: &'static str,
}

impl Block for Remove {
    fn name(&self) -> &str {
        self.rule
    }
    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        if self.set.is_removed(doc.key) {
            out.drop_for(self.rule);
        }
    }
}

/// The deduplication's summary; `clusters_file` relative to the output folder (so the
/// report does not depend on where the folder is).
fn summary_map(dir: &Path, name: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    let path = dir.join("summary.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let s: DedupSummary =
        serde_json::from_slice(&bytes).map_err(|e| Error::format(&path, e.to_string()))?;
    let mut m = match serde_json::to_value(&s) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    m.remove("method");
    m.insert(
        "clusters_file".into(),
        format!("work/dedup-{name}/clusters.json").into(),
    );
    Ok(m)
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MinhashOptions {
    n_grams: usize,
    buckets: usize,
    hashes_per_bucket: usize,
    seed: u32,
}

impl Default for MinhashOptions {
    fn default() -> Self {
        let c = MinhashConfig::default();
        MinhashOptions {
            n_grams: c.n_grams,
            buckets: c.num_buckets,
            hashes_per_bucket: c.hashes_per_bucket,
            seed: c.seed,
        }
    }
}

/// MinHash LSH (datatrove's defaults: 5-grams, 14 buckets × 8 hashes).
pub struct MinhashStage {
    name: String,
    mh: std::sync::Arc<MinHash>,
}

impl MinhashStage {
    pub fn new(spec: &BlockSpec) -> Result<Self> {
        let o: MinhashOptions = spec.options()?;
        let config = MinhashConfig {
            n_grams: o.n_grams,
            num_buckets: o.buckets,
            hashes_per_bucket: o.hashes_per_bucket,
            seed: o.seed,
            norm: TextNorm::default(),
        };
        Ok(MinhashStage {
            name: spec.name().to_string(),
            mh: std::sync::Arc::new(MinHash::new(config)?),
        })
    }
}

struct MinhashSink {
    mh: std::sync::Arc<MinHash>,
    dir: std::path::PathBuf,
    rank: usize,
    docs: Vec<(DocKey, String, Vec<u64>)>,
}

impl DedupSink for MinhashSink {
    fn push(&mut self, key: DocKey, id: &str, signature: Vec<u64>) -> Result<()> {
        self.docs.push((key, id.to_string(), signature));
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<()> {
        let mut w = self.mh.signature_writer(&self.dir, self.rank);
        for (key, id, sig) in &self.docs {
            w.add_signature(*key, id, sig);
        }
        w.finish().map(|_| ())
    }
}

impl Dedup for MinhashStage {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &str {
        "minhash"
    }
    fn signature(&self, doc: &Document) -> Vec<u64> {
        thread_local! {
            static SCRATCH: RefCell<MinhashScratch> = RefCell::new(MinhashScratch::default());
        }
        let mut sig = Vec::new();
        SCRATCH.with_borrow_mut(|scratch| self.mh.signature_into(&doc.text, scratch, &mut sig));
        sig
    }
    fn sink(&self, work: &Path, rank: usize) -> Result<Box<dyn DedupSink>> {
        Ok(Box::new(MinhashSink {
            mh: self.mh.clone(),
            dir: work.to_path_buf(),
            rank,
            docs: Vec::new(),
        }))
    }
    fn global_steps(&self) -> Vec<GlobalStep> {
        vec![
            GlobalStep {
                name: "buckets".into(),
                parts: self.mh.config().num_buckets,
            },
            GlobalStep {
                name: "clusters".into(),
                parts: 1,
            },
        ]
    }
    fn run_step(&self, work: &Path, step: usize, part: usize, _world_size: usize) -> Result<()> {
        match step {
            0 => self.mh.find_matches(work, part).map(|_| ()),
            _ => self.mh.cluster(work).map(|_| ()),
        }
    }
    fn applier(&self, work: &Path, file: u32) -> Result<Box<dyn Block>> {
        Ok(Box::new(Remove {
            set: RemovalSet::load(work, [file])?,
            rule: "minhash_duplicate",
        }))
    }
    fn summary(&self, work: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
        summary_map(work, &self.name)
    }
}

/// Exact duplicates of the normalised text; the first in document-key order is kept.
pub struct ExactStage {
    name: String,
    dedup: ExactDedup,
}

impl ExactStage {
    pub fn new(spec: &BlockSpec) -> Result<Self> {
        if !spec.options.is_empty() {
            return Err(Error::Config(format!(
                "block {:?}: exact deduplication takes no options",
                spec.name()
            )));
        }
        Ok(ExactStage {
            name: spec.name().to_string(),
            dedup: ExactDedup::new(TextNorm::default()),
        })
    }
}

struct ExactSink(crate::dedup::HashWriter);

impl DedupSink for ExactSink {
    fn push(&mut self, key: DocKey, id: &str, signature: Vec<u64>) -> Result<()> {
        let h = (u128::from(signature[0]) << 64) | u128::from(signature[1]);
        self.0.add_hash(key, id, h);
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<()> {
        self.0.finish().map(|_| ())
    }
}

impl Dedup for ExactStage {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &str {
        "exact_dedup"
    }
    fn signature(&self, doc: &Document) -> Vec<u64> {
        thread_local! {
            static SCRATCH: RefCell<NormScratch> = RefCell::new(NormScratch::default());
        }
        let h = SCRATCH.with_borrow_mut(|scratch| self.dedup.hash(&doc.text, scratch));
        vec![(h >> 64) as u64, h as u64]
    }
    fn sink(&self, work: &Path, rank: usize) -> Result<Box<dyn DedupSink>> {
        Ok(Box::new(ExactSink(self.dedup.hash_writer(work, rank))))
    }
    fn global_steps(&self) -> Vec<GlobalStep> {
        vec![GlobalStep {
            name: "resolve".into(),
            parts: 1,
        }]
    }
    fn run_step(&self, work: &Path, _step: usize, _part: usize, _world_size: usize) -> Result<()> {
        self.dedup.resolve(work).map(|_| ())
    }
    fn applier(&self, work: &Path, file: u32) -> Result<Box<dyn Block>> {
        Ok(Box::new(Remove {
            set: RemovalSet::load(work, [file])?,
            rule: "exact_duplicate",
        }))
    }
    fn summary(&self, work: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
        summary_map(work, &self.name)
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct BloomOptions {
    /// Distinct paragraphs the filter is sized for.
    expected_paragraphs: u64,
    false_positive_rate: f64,
}

impl Default for BloomOptions {
    fn default() -> Self {
        BloomOptions {
            expected_paragraphs: 100_000_000,
            false_positive_rate: 1e-4,
        }
    }
}

/// dolma's paragraph deduplication: a paragraph (a non-blank line) seen before, in
/// document-key order, is removed; a document left with none is dropped.
pub struct BloomStage {
    name: String,
    opts: BloomOptions,
}

impl BloomStage {
    pub fn new(spec: &BlockSpec) -> Result<Self> {
        let opts: BloomOptions = spec.options()?;
        BloomFilter::with_rate(opts.expected_paragraphs.min(1000), opts.false_positive_rate)?;
        Ok(BloomStage {
            name: spec.name().to_string(),
            opts,
        })
    }
}

fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').filter(|p| !p.trim().is_empty())
}

struct BloomSink {
    path: std::path::PathBuf,
    records: Vec<(u64, Vec<u64>)>,
}

impl DedupSink for BloomSink {
    fn push(&mut self, key: DocKey, _id: &str, signature: Vec<u64>) -> Result<()> {
        self.records.push((key.as_u64(), signature));
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<()> {
        let bytes = serde_json::to_vec(&self.records)
            .map_err(|e| Error::format(&self.path, e.to_string()))?;
        write_file(&self.path, &bytes)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    fmlab_formats::write_atomically(path, bytes).map_err(|e| Error::format(path, e.to_string()))
}

/// Paragraph ordinals (among non-blank ones) removed, by document index, for one file.
type Removals = BTreeMap<u32, Vec<u32>>;

struct RemoveParagraphs(Removals);

impl Block for RemoveParagraphs {
    fn name(&self) -> &str {
        "bloom_paragraphs"
    }
    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let Some(gone) = self.0.get(&doc.key.index) else {
            out.stat("duplicate_paragraphs", 0.0);
            return;
        };
        let mut kept = String::with_capacity(doc.text.len());
        let mut ordinal = 0u32;
        let mut left = false;
        for line in doc.text.split('\n') {
            if !line.trim().is_empty() {
                let dup = gone.binary_search(&ordinal).is_ok();
                ordinal += 1;
                if dup {
                    continue;
                }
                left = true;
            }
            if !kept.is_empty() || left {
                if !kept.is_empty() {
                    kept.push('\n');
                }
                kept.push_str(line);
            }
        }
        doc.text = kept;
        out.stat("duplicate_paragraphs", gone.len() as f64);
        if !left {
            out.drop_for("all_paragraphs_duplicated");
        }
    }
}

impl Dedup for BloomStage {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &str {
        "bloom_paragraphs"
    }
    fn signature(&self, doc: &Document) -> Vec<u64> {
        paragraphs(&doc.text)
            .flat_map(|p| {
                let h = xxh3_128(p.as_bytes());
                [(h >> 64) as u64, h as u64]
            })
            .collect()
    }
    fn sink(&self, work: &Path, rank: usize) -> Result<Box<dyn DedupSink>> {
        Ok(Box::new(BloomSink {
            path: work.join(format!("hashes/rank_{rank:05}.json")),
            records: Vec::new(),
        }))
    }
    fn global_steps(&self) -> Vec<GlobalStep> {
        vec![GlobalStep {
            name: "filter".into(),
            parts: 1,
        }]
    }
    fn run_step(&self, work: &Path, _step: usize, _part: usize, world_size: usize) -> Result<()> {
        let mut all: Vec<(u64, Vec<u64>)> = Vec::new();
        for r in 0..world_size {
            let path = work.join(format!("hashes/rank_{r:05}.json"));
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let part: Vec<(u64, Vec<u64>)> =
                serde_json::from_slice(&bytes).map_err(|e| Error::format(&path, e.to_string()))?;
            all.extend(part);
        }
        all.sort_by_key(|r| r.0);
        let mut filter =
            BloomFilter::with_rate(self.opts.expected_paragraphs, self.opts.false_positive_rate)?;
        let mut by_file: BTreeMap<u32, Removals> = BTreeMap::new();
        let (mut paragraphs_seen, mut removed) = (0u64, 0u64);
        for (key, hashes) in &all {
            let key = DocKey::from_u64(*key);
            let mut gone = Vec::new();
            for (i, h) in hashes.chunks_exact(2).enumerate() {
                paragraphs_seen += 1;
                if filter.insert((u128::from(h[0]) << 64) | u128::from(h[1])) {
                    gone.push(i as u32);
                }
            }
            if !gone.is_empty() {
                removed += gone.len() as u64;
                by_file.entry(key.file).or_default().insert(key.index, gone);
            }
        }
        for (file, removals) in &by_file {
            let bytes = serde_json::to_vec(removals).map_err(|e| Error::Config(e.to_string()))?;
            write_file(&work.join(format!("remove/file_{file:06}.json")), &bytes)?;
        }
        let summary = serde_json::json!({
            "documents": all.len(), "paragraphs": paragraphs_seen, "removed_paragraphs": removed,
            "filter_bits": filter.num_bits(), "filter_hashes": filter.num_hashes(),
        });
        let mut f = Vec::new();
        let _ = writeln!(f, "{summary}");
        write_file(&work.join("summary.json"), &f)
    }
    fn applier(&self, work: &Path, file: u32) -> Result<Box<dyn Block>> {
        let marker = work.join("summary.json");
        if !marker.is_file() {
            return Err(Error::format(
                &marker,
                "missing: the Bloom filter step has not finished",
            ));
        }
        let path = work.join(format!("remove/file_{file:06}.json"));
        let removals = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| Error::format(&path, e.to_string()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Removals::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        Ok(Box::new(RemoveParagraphs(removals)))
    }
    fn summary(&self, work: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
        let path = work.join("summary.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::format(&path, e.to_string()))
    }
}
