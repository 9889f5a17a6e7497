//! The working folder of a staged deduplication: sorted binary record files (little-endian
//! `u64` words, fixed stride), their k-way merge, the per-rank document ids and counts, the
//! per-input-file removal lists, and the inspectable clusters. Every file is written whole
//! and atomically, so a rank that dies leaves no half file behind.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::doc::DocKey;
use crate::{Error, Result};

use super::unionfind::KeyCluster;

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    fmlab_formats::write_atomically(path, bytes).map_err(|e| Error::format(path, e.to_string()))
}

/// Sorts `flat` as records of `stride` words, whole records compared word by word.
pub(crate) fn sort_records(flat: &mut Vec<u64>, stride: usize) {
    let mut order: Vec<u32> = (0..(flat.len() / stride) as u32).collect();
    let rec = |i: u32| &flat[i as usize * stride..(i as usize + 1) * stride];
    order.sort_unstable_by(|&x, &y| rec(x).cmp(rec(y)));
    let mut sorted = Vec::with_capacity(flat.len());
    for i in order {
        sorted.extend_from_slice(rec(i));
    }
    *flat = sorted;
}

pub(crate) fn write_records(path: &Path, flat: &[u64]) -> Result<()> {
    let bytes: Vec<u8> = flat.iter().flat_map(|w| w.to_le_bytes()).collect();
    write_file(path, &bytes)
}

struct RecordReader {
    reader: BufReader<File>,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl RecordReader {
    fn open(path: &Path, stride: usize) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len % (stride as u64 * 8) != 0 {
            return Err(Error::format(
                path,
                format!("{len} bytes is not a whole number of {stride}-word records (a truncated file?)"),
            ));
        }
        Ok(RecordReader {
            reader: BufReader::with_capacity(1 << 16, file),
            path: path.to_path_buf(),
            bytes: vec![0; stride * 8],
        })
    }

    /// Reads the next record into `out`; false at the end of the file.
    fn next_into(&mut self, out: &mut Vec<u64>) -> Result<bool> {
        match self.reader.read_exact(&mut self.bytes) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(Error::io(&self.path, e)),
        }
        out.clear();
        out.extend(
            self.bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
        );
        Ok(true)
    }
}

/// Calls `f` on every record of the sorted files `paths`, in sorted order over all of them
/// (a k-way merge: memory is one record per file). A file out of order is an error.
pub(crate) fn merge_sorted(
    paths: &[PathBuf],
    stride: usize,
    mut f: impl FnMut(&[u64]) -> Result<()>,
) -> Result<()> {
    let mut readers = Vec::with_capacity(paths.len());
    let mut heap = BinaryHeap::new();
    for (i, p) in paths.iter().enumerate() {
        let mut r = RecordReader::open(p, stride)?;
        let mut rec = Vec::with_capacity(stride);
        if r.next_into(&mut rec)? {
            heap.push(Reverse((rec, i)));
        }
        readers.push(r);
    }
    while let Some(Reverse((mut rec, i))) = heap.pop() {
        f(&rec)?;
        let prev = rec.clone();
        if readers[i].next_into(&mut rec)? {
            if rec < prev {
                return Err(Error::format(&paths[i], "records are not sorted"));
            }
            heap.push(Reverse((rec, i)));
        }
    }
    Ok(())
}

/// The files `dir/{prefix}*{suffix}`, sorted by name (missing folder: none).
pub(crate) fn list_files(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(suffix) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// What one rank's first stage saw: written beside its records, summed by the last stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankCounts {
    /// Documents given to the rank.
    pub documents: u64,
    /// Documents that got a signature (MinHash: at least `n_grams` words).
    pub hashed: u64,
}

pub(crate) fn write_rank_files(
    dir: &Path,
    rank: usize,
    counts: RankCounts,
    ids: &[(u64, String)],
) -> Result<()> {
    let mut text = String::new();
    for (key, id) in ids {
        text.push_str(
            &serde_json::to_string(&(key, id)).map_err(|e| Error::Config(e.to_string()))?,
        );
        text.push('\n');
    }
    write_file(
        &dir.join(format!("ids/rank_{rank:05}.jsonl")),
        text.as_bytes(),
    )?;
    let counts = serde_json::to_vec(&counts).map_err(|e| Error::Config(e.to_string()))?;
    write_file(
        &dir.join(format!("ids/rank_{rank:05}.counts.json")),
        &counts,
    )
}

/// Summed counts of every rank, and the ids of the documents in `wanted`.
pub(crate) fn read_rank_files(
    dir: &Path,
    wanted: &HashSet<u64>,
) -> Result<(RankCounts, HashMap<u64, String>)> {
    let mut total = RankCounts::default();
    for path in list_files(&dir.join("ids"), "rank_", ".counts.json")? {
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let c: RankCounts =
            serde_json::from_slice(&bytes).map_err(|e| Error::format(&path, e.to_string()))?;
        total.documents += c.documents;
        total.hashed += c.hashed;
    }
    let mut ids = HashMap::new();
    for path in list_files(&dir.join("ids"), "rank_", ".jsonl")? {
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| Error::io(&path, e))?;
            let (key, id): (u64, String) =
                serde_json::from_str(&line).map_err(|e| Error::format(&path, e.to_string()))?;
            if wanted.contains(&key) {
                ids.insert(key, id);
            }
        }
    }
    Ok((total, ids))
}

/// One member of a duplicate cluster, as `clusters.json` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub file: u32,
    pub index: u32,
    pub id: String,
}

/// A duplicate cluster: the document kept and every member (the kept one included), in key
/// order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub size: usize,
    pub kept: Member,
    pub members: Vec<Member>,
}

/// Counts for the report: documents seen and removed, matches and cluster sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupSummary {
    /// `minhash` or `exact`.
    pub method: String,
    pub documents: u64,
    /// Documents that got a signature or hash (MinHash skips those under `n_grams` words).
    pub hashed: u64,
    /// Pairs found (MinHash: bucket matches, a pair counted once per bucket it matches in).
    pub matches: u64,
    pub documents_in_clusters: u64,
    pub clusters: u64,
    pub removed: u64,
    /// Cluster size → number of clusters of that size (sizes ≥ 2).
    pub cluster_sizes: BTreeMap<usize, u64>,
}

/// Names the clusters' members and fills the summary's cluster counts.
pub(crate) fn name_clusters(
    key_clusters: &[KeyCluster],
    ids: &HashMap<u64, String>,
    summary: &mut DedupSummary,
) -> Vec<Cluster> {
    let member = |k: DocKey| Member {
        file: k.file,
        index: k.index,
        id: ids
            .get(&k.as_u64())
            .cloned()
            .unwrap_or_else(|| format!("{}:{}", k.file, k.index)),
    };
    let mut out = Vec::with_capacity(key_clusters.len());
    for c in key_clusters {
        summary.documents_in_clusters += c.members.len() as u64;
        summary.removed += c.members.len() as u64 - 1;
        *summary.cluster_sizes.entry(c.members.len()).or_default() += 1;
        out.push(Cluster {
            size: c.members.len(),
            kept: member(c.kept),
            members: c.members.iter().map(|&k| member(k)).collect(),
        });
    }
    summary.clusters = out.len() as u64;
    out
}

#[derive(Serialize)]
struct ClustersFile<'a> {
    summary: &'a DedupSummary,
    clusters: &'a [Cluster],
}

/// Writes the last stage's outputs: `remove/file_NNNNNN.remove` (sorted `u32` document
/// indices, one file per input file with removals), `clusters.json` and, last, as the
/// stage's completion marker, `summary.json`.
pub(crate) fn write_outcome(
    dir: &Path,
    removed: &[DocKey],
    clusters: &[Cluster],
    summary: &DedupSummary,
) -> Result<()> {
    let mut by_file: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for k in removed {
        by_file.entry(k.file).or_default().push(k.index);
    }
    for (file, mut indices) in by_file {
        indices.sort_unstable();
        let bytes: Vec<u8> = indices.iter().flat_map(|i| i.to_le_bytes()).collect();
        write_file(&dir.join(format!("remove/file_{file:06}.remove")), &bytes)?;
    }
    write_file(
        &dir.join("clusters.json"),
        &to_json(&ClustersFile { summary, clusters })?,
    )?;
    write_file(&dir.join("summary.json"), &to_json(summary)?)
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(v).map_err(|e| Error::Config(e.to_string()))
}

/// The documents a deduplication removes, as the filtering stage asks about them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovalSet {
    removed: HashSet<u64>,
}

impl RemovalSet {
    pub fn from_keys(keys: impl IntoIterator<Item = DocKey>) -> Self {
        RemovalSet {
            removed: keys.into_iter().map(DocKey::as_u64).collect(),
        }
    }

    /// Loads the removals of the input files `files` (a rank's share) from a working folder
    /// whose last stage has finished (`summary.json` present; otherwise an error naming it).
    pub fn load(dir: &Path, files: impl IntoIterator<Item = u32>) -> Result<Self> {
        let marker = dir.join("summary.json");
        if !marker.is_file() {
            return Err(Error::format(
                &marker,
                "missing: the clustering stage has not finished in this folder",
            ));
        }
        let mut removed = HashSet::new();
        for file in files {
            let path = dir.join(format!("remove/file_{file:06}.remove"));
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&path, e)),
            };
            if bytes.len() % 4 != 0 {
                return Err(Error::format(&path, "not a whole number of u32 indices"));
            }
            for c in bytes.chunks_exact(4) {
                let index = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                removed.insert(DocKey::new(file, index).as_u64());
            }
        }
        Ok(RemovalSet { removed })
    }

    pub fn is_removed(&self, key: DocKey) -> bool {
        self.removed.contains(&key.as_u64())
    }

    pub fn len(&self) -> usize {
        self.removed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.removed.is_empty()
    }

    /// The removed keys, sorted.
    pub fn keys(&self) -> Vec<DocKey> {
        let mut v: Vec<DocKey> = self.removed.iter().map(|&k| DocKey::from_u64(k)).collect();
        v.sort_unstable();
        v
    }
}
