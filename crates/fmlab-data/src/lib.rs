//! Data for fmlab: the seeded synthetic world — a knowledge base rendered into a
//! multilingual, multi-domain corpus with SFT, preference and evaluation sets whose answers
//! are known exactly — and the judge that scores answers against it.
//!
//! - [`world::write_world`]: writes a world for a [`world::WorldConfig`] (a pure function of
//!   it: same configuration, same bytes);
//! - [`judge::judge`]: the verdict on an answer to an [`judge::EvalItem`];
//! - [`stats::world_stats`]: the mix of a written world;
//! - [`corpus`]: the one reader of corpus files (JSONL with a `text` field, or plain text),
//!   which [`shards::write_shards`] tokenizes into shards and [`corpus::feed_trainer`] feeds
//!   to a BPE trainer.

pub mod corpus;
mod io;
pub mod judge;
pub mod premium;
mod rng;
pub mod shards;
pub mod stats;
pub mod world;

pub use judge::{judge, read_items, EvalItem, Format, Verdict};
pub use world::{write_world, WorldConfig, WorldSummary};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The I/O error is part of the message, not a `source`: printed once.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("JSON: {0}")]
    Json(serde_json::Error),
    #[error("{path} line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("world: {0}")]
    Config(String),
    /// An eval or prompts file without a single item.
    #[error("{0}: no items (expected one JSON object a line, as the world's eval.jsonl)")]
    NoItems(PathBuf),
    /// A mix (`NAME=SHARE,…`) that cannot be read; `what` is its flag's name.
    #[error("--{what}: {message}")]
    Mix { what: &'static str, message: String },
    /// A corpus file that cannot be opened, or a JSONL line that cannot be read.
    #[error("reading {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A plain text corpus file that is not UTF-8 (or fails while being read).
    #[error("{path}: not UTF-8 text: {error}")]
    NotText {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A JSONL corpus line that is not a document.
    #[error("{path} line {line}: expected an object with a \"text\" field: {error}")]
    NotADocument {
        path: PathBuf,
        line: usize,
        error: serde_json::Error,
    },
    #[error("no documents in the input files")]
    NoDocuments,
    #[error("the training files hold no text")]
    NoText,
    #[error(transparent)]
    Tokenizer(#[from] fmlab_tokenizer::Error),
    #[error(transparent)]
    Format(#[from] fmlab_formats::Error),
}

impl Error {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
