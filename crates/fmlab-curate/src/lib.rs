//! Training-data curation, as FineWeb's recipe and dolma lay it out: a pipeline of blocks
//! (readers, language ID, quality filters, deduplication, classifiers, writers) in the
//! user's order, each block's decision on each document kept as attributes beside the
//! documents, and the work split by `rank / world_size` over input files so that any
//! scheduler (Slurm array jobs first) can run it past one machine.
//!
//! - [`doc::Document`]: a document (id, text, metadata) and its [`doc::DocKey`];
//! - [`block::Block`]: a streaming block (filter, tagger or text modifier) and its
//!   [`block::Decision`];
//! - [`words`]: the word splitting the rules and MinHash share;
//! - [`mix`]: training sets cut by shares or token counts per language and domain;
//! - [`pipeline`]: the blocks in order, cut into stages by rank and part, with markers and
//!   the report;
//! - [`langid`]: language identification with a score and [`langid::LanguageFilter`];
//! - [`classifier`]: fastText-style linear classifiers, their training and their block;
//! - [`dedup`]: exact, MinHash LSH and Bloom-filter paragraph deduplication, staged by rank;
//! - [`raw_truth`]: a run scored against `fmlab world --raw`'s ground truth;
//! - [`read`] / [`write`]: readers (JSONL, Parquet, text, WARC/WET with the BlockDensity
//!   HTML extractor) and size-sharded, compressed JSONL/Parquet writers;
//! - [`filters`]: FineWeb's quality filters, per-language rules, blocklists, PII formatting.

pub mod block;
pub mod classifier;
pub mod dedup;
pub mod doc;
pub mod filters;
pub mod langid;
pub mod mix;
pub mod pipeline;
pub mod raw_truth;
pub mod read;
pub mod words;
pub mod write;

pub use block::{Block, Decision};
pub use doc::{DocKey, Document};

use std::path::PathBuf;

/// What goes wrong in curation: every error names the file or the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The I/O error is part of the message, not a `source`: printed once.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A file that is not what its name says (a broken JSONL line, a damaged Parquet file).
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// A setting out of range or unknown (a threshold, a language code, a recipe name).
    #[error("{0}")]
    Config(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
