//! The pipeline's own files between stages: documents with their keys (JSONL lines
//! `{"key", "id", "text", "metadata"}`), and attribute files, written under a temporary
//! name and renamed when whole.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::block::Decision;
use crate::doc::{DocKey, Document};
use crate::{Error, Result};

/// A file written line by line under `<path>.tmp`, renamed to `path` by [`LineFile::finish`]
/// (a crash leaves no half file under the final name).
pub struct LineFile {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
}

impl LineFile {
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(LineFile {
            path: path.to_path_buf(),
            tmp,
            out: BufWriter::with_capacity(1 << 20, f),
        })
    }
    pub fn line(&mut self, v: &Value) -> Result<()> {
        serde_json::to_writer(&mut self.out, v)
            .map_err(|e| Error::format(&self.tmp, e.to_string()))?;
        self.out
            .write_all(b"\n")
            .map_err(|e| Error::io(&self.tmp, e))
    }
    pub fn finish(mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

/// A document as the stages pass it on (key kept).
pub fn doc_line(doc: &Document) -> Value {
    json!({"key": doc.key.as_u64(), "id": doc.id, "text": doc.text, "metadata": doc.metadata})
}

/// Reads a file of [`doc_line`]s.
pub fn read_doc_lines(path: &Path) -> Result<impl Iterator<Item = Result<Document>>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let path = path.to_path_buf();
    Ok(BufReader::with_capacity(1 << 20, f)
        .lines()
        .enumerate()
        .map(move |(i, line)| {
            let line = line.map_err(|e| Error::io(&path, e))?;
            let bad = |m: String| Error::format(&path, format!("line {}: {m}", i + 1));
            let mut v: Map<String, Value> =
                serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
            let key = v
                .get("key")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("no key".into()))?;
            let text = match v.remove("text") {
                Some(Value::String(s)) => s,
                _ => return Err(bad("no text".into())),
            };
            let id = match v.remove("id") {
                Some(Value::String(s)) => s,
                _ => return Err(bad("no id".into())),
            };
            let metadata = match v.remove("metadata") {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            Ok(Document {
                id,
                text,
                metadata,
                key: DocKey::from_u64(key),
            })
        }))
}

/// One block's decision on one document, as an attribute line (dolma's layout: one file of
/// attributes per block and input file, beside the documents).
pub fn attribute_line(doc: &Document, d: &Decision) -> Value {
    let stats: Map<String, Value> = d
        .stats
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let tags: Map<String, Value> = d
        .tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    json!({
        "id": doc.id,
        "file": doc.key.file,
        "index": doc.key.index,
        "drop": d.drop.as_deref(),
        "stats": stats,
        "tags": tags,
    })
}
