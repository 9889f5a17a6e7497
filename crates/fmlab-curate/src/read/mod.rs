//! Readers: every input format turned into a stream of [`Document`]s.
//!
//! [`open`] picks the reader from the file's name (or [`ReadOptions::format`]) and returns
//! an iterator of documents; [`list_inputs`] expands paths and folders into the sorted list
//! of input files whose positions are the documents' [`DocKey::file`](crate::DocKey).
//!
//! | format | names | one document is |
//! |---|---|---|
//! | JSONL | `.jsonl`, `.json`, `.ndjson` | one line: a JSON object with a text field |
//! | Parquet | `.parquet` | one row: a text column, other columns as metadata |
//! | text | `.txt`, `.text`, `.md` | the whole file (id = the path) |
//! | WARC | `.warc` | one `response` record holding HTML, its main text extracted |
//! | WET | `.wet` | one `conversion` record (text already extracted) |
//!
//! JSONL, text, WARC and WET files may be compressed: `.gz` (multi-member gzip, as
//! Common Crawl writes it) and `.zst` are read transparently. A truncated or damaged file
//! ends its iterator with one [`Error::Format`](crate::Error) that names the file and the
//! position (line, row, record and byte offset); readers never panic on bad input.

pub mod html;
pub mod jsonl;
pub mod parquet;
pub mod text;
pub mod warc;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::doc::Document;
use crate::{Error, Result};

/// A stream of documents from one file.
pub type DocIter = Box<dyn Iterator<Item = Result<Document>> + Send>;

/// An input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Parquet,
    Text,
    Warc,
    Wet,
}

impl Format {
    /// The format a file name says, compression suffixes (`.gz`, `.zst`) ignored:
    /// `docs.jsonl.zst` is JSONL, `CC-MAIN-….warc.wet.gz` is WET. `None`: not an input.
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".zst"))
            .unwrap_or(&name);
        let ext = name.rsplit_once('.')?.1;
        Format::from_name(ext)
    }

    /// A format by its name (`jsonl`, `parquet`, `text`, `warc`, `wet`) or extension.
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "jsonl" | "json" | "ndjson" => Format::Jsonl,
            "parquet" => Format::Parquet,
            "txt" | "text" | "md" => Format::Text,
            "warc" => Format::Warc,
            "wet" => Format::Wet,
            _ => return None,
        })
    }
}

/// How readers read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Read every file as this format whatever its name (`None`: by extension).
    pub format: Option<Format>,
    /// The JSONL field / Parquet column holding the text (`text`).
    pub text_field: String,
    /// The JSONL field / Parquet column holding the id (`id`); documents without one are
    /// named `<file stem>/<index>`.
    pub id_field: String,
    /// WARC/WET records whose text (for WARC: the extracted main text), trimmed, is shorter
    /// than this many bytes are skipped; at least 1 (an empty page is never a document).
    pub min_text: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: None,
            text_field: "text".into(),
            id_field: "id".into(),
            min_text: 1,
        }
    }
}

/// Opens `path` and streams its documents, keyed `DocKey { file: file_index, index }` with
/// `index` the document's position among the documents the file yields.
pub fn open(path: &Path, file_index: u32, opts: &ReadOptions) -> Result<DocIter> {
    let format = match opts.format.or_else(|| Format::from_path(path)) {
        Some(f) => f,
        None => {
            return Err(Error::format(
                path,
                "unknown input format (expected .jsonl, .parquet, .txt, .warc or .wet, \
                 optionally .gz or .zst)",
            ))
        }
    };
    Ok(match format {
        Format::Jsonl => Box::new(jsonl::JsonlReader::new(
            path,
            open_decoded(path)?,
            file_index,
            opts,
        )),
        Format::Parquet => Box::new(parquet::ParquetReader::open(path, file_index, opts)?),
        Format::Text => Box::new(text::read_text(path, file_index)),
        Format::Warc => Box::new(warc::WarcReader::new(
            path,
            open_decoded(path)?,
            file_index,
            warc::Kind::Warc,
            opts,
        )),
        Format::Wet => Box::new(warc::WarcReader::new(
            path,
            open_decoded(path)?,
            file_index,
            warc::Kind::Wet,
            opts,
        )),
    })
}

/// Opens `path` for reading, decompressing `.gz` (every member of a multi-member file)
/// and `.zst` (every frame) on the fly.
pub fn open_decoded(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    const BUF: usize = 1 << 16;
    Ok(if name.ends_with(".gz") {
        let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(BUF, file));
        Box::new(BufReader::with_capacity(BUF, gz))
    } else if name.ends_with(".zst") {
        let zst = zstd::stream::read::Decoder::new(file).map_err(|e| Error::io(path, e))?;
        Box::new(BufReader::with_capacity(BUF, zst))
    } else {
        Box::new(BufReader::with_capacity(BUF, file))
    })
}

/// The input files under `paths`: files as given, folders walked recursively for files of a
/// known format (hidden files and folders skipped). Sorted and without repeats, so a file's
/// position, its [`DocKey::file`](crate::DocKey), is the same on every rank and every run.
pub fn list_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            walk(path, &mut out)?;
        } else {
            out.push(path.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if Format::from_path(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

/// The file's name without any extension (`docs.jsonl.gz` → `docs`): the prefix of the ids
/// given to documents that have none.
pub(crate) fn file_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.split_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name() {
        let f = |s: &str| Format::from_path(Path::new(s));
        assert_eq!(f("a/docs.jsonl.zst"), Some(Format::Jsonl));
        assert_eq!(f("CC-MAIN-1.warc.wet.gz"), Some(Format::Wet));
        assert_eq!(f("x.warc.gz"), Some(Format::Warc));
        assert_eq!(f("x.PARQUET"), Some(Format::Parquet));
        assert_eq!(f("notes.txt"), Some(Format::Text));
        assert_eq!(f("x.gz"), None);
        assert_eq!(f("README"), None);
        assert_eq!(file_stem(Path::new("d/docs.jsonl.gz")), "docs");
    }
}
