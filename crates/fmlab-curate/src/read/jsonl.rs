//! JSONL: one JSON object per line. The text field (`text` by default) is the text, the id
//! field (`id`) the id (numbers are written out; absent: `<file stem>/<index>`), and every
//! other field is metadata. A `metadata` object (datatrove's layout) is merged into the
//! metadata, the record's own fields winning. Blank lines are skipped.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::ReadOptions;
use crate::doc::{DocKey, Document};
use crate::{Error, Result};

/// Streams the documents of one JSONL file (see the module doc).
pub struct JsonlReader {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    file: u32,
    line: u64,
    index: u32,
    text_field: String,
    id_field: String,
    stem: String,
    buf: String,
    done: bool,
}

impl JsonlReader {
    pub fn new(
        path: &Path,
        reader: Box<dyn BufRead + Send>,
        file: u32,
        opts: &ReadOptions,
    ) -> Self {
        JsonlReader {
            path: path.to_path_buf(),
            reader,
            file,
            line: 0,
            index: 0,
            text_field: opts.text_field.clone(),
            id_field: opts.id_field.clone(),
            stem: super::file_stem(path),
            buf: String::new(),
            done: false,
        }
    }

    fn err(&self, message: impl std::fmt::Display) -> Error {
        Error::format(&self.path, format!("line {}: {message}", self.line))
    }

    fn next_doc(&mut self) -> Result<Option<Document>> {
        loop {
            self.buf.clear();
            self.line += 1;
            let n = self
                .reader
                .read_line(&mut self.buf)
                .map_err(|e| self.err(e))?;
            if n == 0 {
                return Ok(None);
            }
            if self.buf.trim().is_empty() {
                continue;
            }
            let record: Map<String, Value> = serde_json::from_str(&self.buf).map_err(|e| {
                let why = if e.is_eof() {
                    "truncated JSON object".to_string()
                } else {
                    format!("not a JSON object: {e}")
                };
                self.err(why)
            })?;
            return self.document(record).map(Some);
        }
    }

    fn document(&mut self, mut record: Map<String, Value>) -> Result<Document> {
        let text = match record.remove(&self.text_field) {
            Some(Value::String(s)) => s,
            Some(_) => return Err(self.err(format!("field `{}` is not a string", self.text_field))),
            None => return Err(self.err(format!("no field `{}`", self.text_field))),
        };
        let id = match record.remove(&self.id_field) {
            Some(Value::String(s)) => s,
            Some(Value::Null) | None => format!("{}/{}", self.stem, self.index),
            Some(v) => v.to_string(),
        };
        let metadata = merge_metadata(record);
        let doc = Document {
            id,
            text,
            metadata,
            key: DocKey::new(self.file, self.index),
        };
        self.index += 1;
        Ok(doc)
    }
}

/// datatrove's layout nests metadata under `metadata`; flatten it, top-level fields winning.
pub(crate) fn merge_metadata(mut record: Map<String, Value>) -> Map<String, Value> {
    match record.remove("metadata") {
        Some(Value::Object(mut nested)) => {
            nested.extend(record);
            nested
        }
        Some(other) => {
            record.insert("metadata".into(), other);
            record
        }
        None => record,
    }
}

impl Iterator for JsonlReader {
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
