//! The shape every deduplication takes in a pipeline that runs by rank: signatures of the
//! documents that reach it (per rank), global steps over all signatures (parallel by part,
//! e.g. MinHash's buckets, then one clustering step), then, in the next streaming segment, a
//! block per input file that removes what was found (whole documents, or paragraphs).

use std::path::Path;

use crate::block::Block;
use crate::doc::{DocKey, Document};
use crate::Result;

/// A global step and how many parts it splits into (a Slurm array of that size).
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalStep {
    pub name: String,
    pub parts: usize,
}

/// Collects the signatures of one rank's documents.
pub trait DedupSink: Send {
    fn push(&mut self, key: DocKey, id: &str, signature: Vec<u64>) -> Result<()>;
    fn finish(self: Box<Self>) -> Result<()>;
}

/// A deduplication block. Its files live under `work` (one folder per dedup block).
pub trait Dedup: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> &str;
    /// The document's signature (hashes), computed in parallel.
    fn signature(&self, doc: &Document) -> Vec<u64>;
    /// A sink for rank `rank`'s signatures.
    fn sink(&self, work: &Path, rank: usize) -> Result<Box<dyn DedupSink>>;
    /// The steps that run once all ranks' signatures are written.
    fn global_steps(&self) -> Vec<GlobalStep>;
    fn run_step(&self, work: &Path, step: usize, part: usize, world_size: usize) -> Result<()>;
    /// The block that applies the result to input file `file`'s documents.
    fn applier(&self, work: &Path, file: u32) -> Result<Box<dyn Block>>;
    /// Figures for the report (duplicates removed, cluster sizes…).
    fn summary(&self, work: &Path) -> Result<serde_json::Map<String, serde_json::Value>>;
}
