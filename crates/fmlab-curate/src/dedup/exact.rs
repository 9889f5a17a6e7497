//! Exact deduplication: documents whose normalised text (datatrove's `simplify_text`) has
//! the same 128-bit hash (xxh3-128) are one cluster; the first in key order is kept. The
//! same staged shape as MinHash, with one stage fewer: hashes per rank, one resolving step,
//! a removal predicate per rank.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_128;

use crate::doc::{DocKey, Document};
use crate::Result;

use super::minhash::{in_memory_result, staged_result, DedupResult};
use super::normalize::{simplify_text_into, NormScratch, TextNorm};
use super::store::{self, DedupSummary, RankCounts};
use super::unionfind::KeyCluster;

/// Exact deduplication by normalised-text hash.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExactDedup {
    pub norm: TextNorm,
}

/// Turns records sorted by (hash, key) into clusters: each run of one hash, first key kept.
fn group(records: impl IntoIterator<Item = [u64; 3]>) -> (Vec<KeyCluster>, u64) {
    let mut clusters = Vec::new();
    let mut matches = 0;
    let mut current: Option<((u64, u64), Vec<DocKey>)> = None;
    let mut close = |c: Option<((u64, u64), Vec<DocKey>)>, clusters: &mut Vec<KeyCluster>| {
        if let Some((_, members)) = c {
            if members.len() > 1 {
                matches += members.len() as u64 - 1;
                clusters.push(KeyCluster {
                    kept: members[0],
                    members,
                });
            }
        }
    };
    for [hi, lo, key] in records {
        match &mut current {
            Some((h, members)) if *h == (hi, lo) => members.push(DocKey::from_u64(key)),
            _ => {
                close(current.take(), &mut clusters);
                current = Some(((hi, lo), vec![DocKey::from_u64(key)]));
            }
        }
    }
    close(current, &mut clusters);
    clusters.sort_unstable_by_key(|c| c.members[0]);
    (clusters, matches)
}

impl ExactDedup {
    pub fn new(norm: TextNorm) -> Self {
        ExactDedup { norm }
    }

    /// The 128-bit hash of the normalised text.
    pub fn hash(&self, text: &str, scratch: &mut NormScratch) -> u128 {
        xxh3_128(simplify_text_into(text, &self.norm, scratch).as_bytes())
    }

    /// Everything in memory: the same result as the staged path.
    pub fn dedup<'a>(&self, docs: impl IntoIterator<Item = &'a Document>) -> DedupResult {
        let mut scratch = NormScratch::default();
        let mut records = Vec::new();
        let mut ids = HashMap::new();
        for doc in docs {
            let h = self.hash(&doc.text, &mut scratch);
            records.push([(h >> 64) as u64, h as u64, doc.key.as_u64()]);
            ids.insert(doc.key.as_u64(), doc.id.as_str());
        }
        records.sort_unstable();
        let n = records.len() as u64;
        let (clusters, matches) = group(records);
        let counts = RankCounts {
            documents: n,
            hashed: n,
        };
        in_memory_result("exact", counts, matches, &clusters, ids)
    }

    /// Stage 1, for one rank: collects the rank's hashes; `finish` writes
    /// `dir/hashes/rank_RRRRR.bin` (sorted `(hash, key)` records) and the ids and counts.
    pub fn hash_writer(&self, dir: &Path, rank: usize) -> HashWriter {
        HashWriter {
            dedup: *self,
            dir: dir.to_path_buf(),
            rank,
            records: Vec::new(),
            ids: Vec::new(),
            scratch: NormScratch::default(),
        }
    }

    /// Stage 2, once: merges every rank's hashes, keeps the first document of each hash
    /// and writes the removals per input file, `clusters.json` and `summary.json`.
    pub fn resolve(&self, dir: &Path) -> Result<DedupSummary> {
        let paths = store::list_files(&dir.join("hashes"), "rank_", ".bin")?;
        if store::list_files(&dir.join("ids"), "rank_", ".counts.json")?.is_empty() {
            return Err(crate::Error::format(
                dir.join("ids"),
                "no rank has written its hashes yet (stage 1)",
            ));
        }
        let mut records = Vec::new();
        let mut prev_key: Option<[u64; 3]> = None;
        let mut duplicate = None;
        // Only runs of one hash longer than one matter: keep those records, drop the rest.
        let mut run: Vec<[u64; 3]> = Vec::new();
        store::merge_sorted(&paths, 3, |r| {
            let rec = [r[0], r[1], r[2]];
            if prev_key.is_some_and(|p| p == rec) {
                duplicate = Some(rec[2]);
            }
            if run.first().is_some_and(|f| f[..2] != rec[..2]) {
                if run.len() > 1 {
                    records.append(&mut run);
                }
                run.clear();
            }
            run.push(rec);
            prev_key = Some(rec);
            Ok(())
        })?;
        if run.len() > 1 {
            records.append(&mut run);
        }
        if let Some(k) = duplicate {
            return Err(crate::Error::format(
                dir.join("hashes"),
                format!(
                    "document {:?} is in two rank files: stale files from another run?",
                    DocKey::from_u64(k)
                ),
            ));
        }
        let (clusters, matches) = group(records);
        staged_result(dir, "exact", matches, &clusters)
    }
}

/// Stage 1's writer for one rank (see [`ExactDedup::hash_writer`]).
pub struct HashWriter {
    dedup: ExactDedup,
    dir: PathBuf,
    rank: usize,
    records: Vec<u64>,
    ids: Vec<(u64, String)>,
    scratch: NormScratch,
}

impl HashWriter {
    pub fn add(&mut self, doc: &Document) {
        self.add_text(doc.key, &doc.id, &doc.text);
    }

    pub fn add_text(&mut self, key: DocKey, id: &str, text: &str) {
        let h = self.dedup.hash(text, &mut self.scratch);
        self.add_hash(key, id, h);
    }

    /// Adds a document whose hash was computed elsewhere (by [`ExactDedup::hash`]).
    pub fn add_hash(&mut self, key: DocKey, id: &str, h: u128) {
        self.records
            .extend([(h >> 64) as u64, h as u64, key.as_u64()]);
        self.ids.push((key.as_u64(), id.to_string()));
    }

    /// Sorts and writes the rank's files; the counts file, written last, marks it done.
    pub fn finish(mut self) -> Result<RankCounts> {
        store::sort_records(&mut self.records, 3);
        let path = self.dir.join(format!("hashes/rank_{:05}.bin", self.rank));
        store::write_records(&path, &self.records)?;
        let n = self.ids.len() as u64;
        let counts = RankCounts {
            documents: n,
            hashed: n,
        };
        store::write_rank_files(&self.dir, self.rank, counts, &self.ids)?;
        Ok(counts)
    }
}
