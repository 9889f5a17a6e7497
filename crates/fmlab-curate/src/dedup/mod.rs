//! Deduplication: exact (normalised-text hash), near-duplicate (MinHash LSH with
//! datatrove's defaults) and paragraph-level (a Bloom filter, as dolma does it).
//!
//! Exact and MinHash deduplication need every document, so they run as stages over a
//! working folder (one folder per method), each stage a function the pipeline calls on its
//! ranks; documents are named by their [`DocKey`](crate::DocKey), which does not depend on
//! the world size, so W ranks remove exactly what one process removes:
//!
//! | stage | MinHash ([`MinHash`]) | exact ([`ExactDedup`]) | runs |
//! |---|---|---|---|
//! | 1 | [`MinHash::signature_writer`] → `sigs/bucket_BBB/rank_RRRRR.sig` | [`ExactDedup::hash_writer`] → `hashes/rank_RRRRR.bin` | per rank, on its documents |
//! | 2 | [`MinHash::find_matches`] → `matches/bucket_BBB.pairs` | — | per bucket, on any rank |
//! | 3 | [`MinHash::cluster`] | [`ExactDedup::resolve`] | once |
//! | 4 | [`RemovalSet::load`] + [`RemovalSet::is_removed`] | the same | per rank |
//!
//! Stage 1 also writes `ids/rank_RRRRR.jsonl` (the ids of hashed documents) and
//! `ids/rank_RRRRR.counts.json` (its completion marker). The clustering stage writes
//! `remove/file_FFFFFF.remove` (the removed documents of input file F: sorted little-endian
//! `u32` indices), `clusters.json` (the [`DedupSummary`] and every [`Cluster`] with its
//! members' ids and the one kept) and, last, `summary.json` (its completion marker). Use a
//! fresh folder per run: stage 2 reads every rank file it finds.
//!
//! In one process, [`MinHash::dedup`] and [`ExactDedup::dedup`] do all stages in memory and
//! return a [`DedupResult`] equal to the staged one. [`ParagraphDedup`] (and its block,
//! [`ParagraphDedupBlock`]) rewrites documents one by one, in key order.

pub mod bloom;
pub mod exact;
mod masks;
pub mod minhash;
pub mod normalize;
mod permute;
mod rng;
mod store;
pub mod unionfind;
mod xxh64;

pub use bloom::{
    BloomFilter, ParagraphDedup, ParagraphDedupBlock, ParagraphOutcome, ParagraphStats,
};
pub use exact::{ExactDedup, HashWriter};
pub use minhash::{DedupResult, MinHash, MinhashConfig, MinhashScratch, SignatureWriter};
pub use normalize::{simplify_text, TextNorm};
pub use store::{Cluster, DedupSummary, Member, RankCounts, RemovalSet};
