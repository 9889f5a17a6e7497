//! Data for fmlab: the seeded synthetic world — a knowledge base rendered into a
//! multilingual, multi-domain corpus with SFT, preference and evaluation sets whose answers
//! are known exactly — and the judge that scores answers against it.
//!
//! - [`world::write_world`]: writes a world for a [`world::WorldConfig`] (a pure function of
//!   it: same configuration, same bytes);
//! - [`judge::judge`]: the verdict on an answer to an [`judge::EvalItem`];
//! - [`stats::world_stats`]: the mix of a written world.

mod io;
pub mod judge;
pub mod premium;
mod rng;
pub mod shards;
pub mod stats;
pub mod world;

pub use judge::{judge, EvalItem, Format, Verdict};
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
