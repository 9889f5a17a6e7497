//! The pipeline's ends: input files listed and opened through [`crate::read`] with the
//! spec's field names, and kept documents written through [`crate::write`] with the spec's
//! format, compression and shard size.

use std::path::{Path, PathBuf};

use crate::doc::Document;
use crate::pipeline::spec::{InputSpec, OutputSpec};
use crate::read::{self, ReadOptions};
use crate::write::{Compression, OutputFormat, ShardWriter, WriteOptions};
use crate::{Error, Result};

/// The files named, and the files under the folders named, sorted (a file's index is the
/// `file` of its documents' keys, the same for every rank and rerun).
pub fn list_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let files = read::list_inputs(paths)?;
    if files.is_empty() {
        return Err(Error::Config("no input files".into()));
    }
    Ok(files)
}

/// Opens input file number `file` as documents.
pub fn open_input(
    path: &Path,
    file: u32,
    spec: &InputSpec,
) -> Result<Box<dyn Iterator<Item = Result<Document>> + Send>> {
    let opts = ReadOptions {
        text_field: spec.text_field.clone(),
        id_field: spec.id_field.clone(),
        ..ReadOptions::default()
    };
    read::open(path, file, &opts)
}

/// The writer options an output spec names, with `prefix` for the file names.
pub fn write_options(spec: &OutputSpec, prefix: String) -> Result<WriteOptions> {
    let format = match spec.format.as_str() {
        "jsonl" => OutputFormat::Jsonl,
        "parquet" => OutputFormat::Parquet,
        other => {
            return Err(Error::Config(format!(
                "output format {other:?}: jsonl or parquet"
            )))
        }
    };
    let compression = match spec.compression.as_str() {
        "zstd" => Compression::Zstd,
        "gzip" => Compression::Gzip,
        "none" => Compression::None,
        other => {
            return Err(Error::Config(format!(
                "compression {other:?}: zstd, gzip or none"
            )))
        }
    };
    if spec.max_shard_bytes == 0 {
        return Err(Error::Config("max_shard_bytes must be positive".into()));
    }
    Ok(WriteOptions {
        format,
        compression,
        max_bytes: spec.max_shard_bytes,
        prefix,
    })
}

/// A writer of kept documents for input file `file` into `dir`.
pub fn output_writer(dir: &Path, spec: &OutputSpec, file: u32) -> Result<ShardWriter> {
    ShardWriter::new(dir, write_options(spec, format!("f{file:05}"))?)
}
