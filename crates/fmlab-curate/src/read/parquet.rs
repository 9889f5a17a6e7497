//! Parquet: one row per document. The text column (`text`) is the text, the id column
//! (`id`) the id, every other column metadata with its type kept (integers, floats,
//! booleans, strings; dates and timestamps as ISO strings, binary as base64, structs as
//! objects, lists as arrays). Nulls are left out of the metadata. A `metadata` struct
//! (datatrove's layout) is flattened into the metadata, and the JSON column
//! [`EXTRA_COLUMN`] that our writer uses for values a typed column cannot hold is merged
//! back. Row groups are read one at a time.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::{Field, Row};
use serde_json::{Map, Value};

use super::ReadOptions;
use crate::doc::{DocKey, Document};
use crate::{Error, Result};

/// The column holding, as one JSON object per row, the metadata values that do not fit a
/// typed column (nested values, nulls, a type other than the column's).
pub const EXTRA_COLUMN: &str = "_fmlab_metadata";

/// Streams the documents of one Parquet file (see the module doc).
pub struct ParquetReader {
    path: PathBuf,
    reader: SerializedFileReader<File>,
    file: u32,
    row_group: usize,
    row: u64,
    pending: VecDeque<Row>,
    index: u32,
    text_field: String,
    id_field: String,
    stem: String,
    done: bool,
}

impl ParquetReader {
    /// Opens `path` and reads its footer (schema and row groups).
    pub fn open(path: &Path, file: u32, opts: &ReadOptions) -> Result<Self> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = guarded(|| SerializedFileReader::new(f))
            .map_err(|e| Error::format(path, format!("not a readable Parquet file: {e}")))?;
        Ok(ParquetReader {
            path: path.to_path_buf(),
            reader,
            file,
            row_group: 0,
            row: 0,
            pending: VecDeque::new(),
            index: 0,
            text_field: opts.text_field.clone(),
            id_field: opts.id_field.clone(),
            stem: super::file_stem(path),
            done: false,
        })
    }

    fn load_row_group(&mut self) -> Result<()> {
        let i = self.row_group;
        let reader = &self.reader;
        let rows = guarded(|| -> parquet::errors::Result<Vec<Row>> {
            let rg = reader.get_row_group(i)?;
            RowIter::from_row_group(None, &*rg)?.collect()
        })
        .map_err(|e| {
            Error::format(
                &self.path,
                format!("row group {i} (rows from {}): {e}", self.row),
            )
        })?;
        self.pending.extend(rows);
        self.row_group += 1;
        Ok(())
    }

    fn next_doc(&mut self) -> Result<Option<Document>> {
        while self.pending.is_empty() {
            if self.row_group >= self.reader.num_row_groups() {
                return Ok(None);
            }
            self.load_row_group()?;
        }
        let Some(row) = self.pending.pop_front() else {
            return Ok(None);
        };
        let row_no = self.row;
        self.row += 1;
        self.document(row)
            .map(Some)
            .map_err(|m| Error::format(&self.path, format!("row {row_no}: {m}")))
    }

    fn document(&mut self, row: Row) -> std::result::Result<Document, String> {
        let mut text = None;
        let mut id = None;
        let mut record = Map::new();
        let mut extra = None;
        for (name, field) in row.get_column_iter() {
            if *name == self.text_field {
                text = Some(match field {
                    Field::Str(s) => s.clone(),
                    Field::Bytes(b) => String::from_utf8(b.data().to_vec())
                        .map_err(|_| format!("column `{name}` is not UTF-8"))?,
                    Field::Null => return Err(format!("column `{name}` is null")),
                    _ => return Err(format!("column `{name}` is not a string")),
                });
            } else if *name == self.id_field {
                id = match field.to_json_value() {
                    Value::Null => None,
                    Value::String(s) => Some(s),
                    v => Some(v.to_string()),
                };
            } else if name == EXTRA_COLUMN {
                if let Field::Str(s) = field {
                    extra = Some(
                        serde_json::from_str::<Map<String, Value>>(s)
                            .map_err(|e| format!("column `{EXTRA_COLUMN}`: {e}"))?,
                    );
                }
            } else {
                let v = field.to_json_value();
                if !v.is_null() {
                    record.insert(name.clone(), v);
                }
            }
        }
        let text = text.ok_or_else(|| format!("no column `{}`", self.text_field))?;
        let mut metadata = super::jsonl::merge_metadata(record);
        metadata.retain(|_, v| !v.is_null());
        if let Some(extra) = extra {
            metadata.extend(extra);
        }
        let doc = Document {
            id: id.unwrap_or_else(|| format!("{}/{}", self.stem, self.index)),
            text,
            metadata,
            key: DocKey::new(self.file, self.index),
        };
        self.index += 1;
        Ok(doc)
    }
}

/// Runs a call into the parquet crate, turning a panic inside it (its row reader asserts
/// on some malformed files) into an error, so that a damaged file never aborts a run.
fn guarded<T>(f: impl FnOnce() -> parquet::errors::Result<T>) -> std::result::Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .map(|s| format!("damaged file ({s})"))
            .unwrap_or_else(|| "damaged file".into())),
    }
}

impl Iterator for ParquetReader {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Result<Document>> {
        if self.done {
            return None;
        }
        let out = self.next_doc().transpose();
        if !matches!(out, Some(Ok(_))) {
            self.done = true;
        }
        out
    }
}
