//! The pipeline's own files between stages: documents with their keys (JSONL lines
//! `{"key", "id", "text", "metadata"}`), and attribute files, written under a temporary
//! name and renamed when whole.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
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
    pub fn line<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
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

/// [`attribute_line`] serialised as it is, without building it: its keys in insertion
/// order (a key given twice keeps its first place and its last value), the same bytes when
/// [`map_keeps_order`].
pub struct AttributeLine<'a> {
    pub doc: &'a Document,
    pub decision: &'a Decision,
}

impl Serialize for AttributeLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let (doc, d) = (self.doc, self.decision);
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("id", &doc.id)?;
        m.serialize_entry("file", &doc.key.file)?;
        m.serialize_entry("index", &doc.key.index)?;
        m.serialize_entry("drop", &d.drop.as_deref())?;
        m.serialize_entry("stats", &Entries(&d.stats))?;
        m.serialize_entry("tags", &Entries(&d.tags))?;
        m.end()
    }
}

/// Named values as a JSON map: each name at its first place, with its last value.
struct Entries<'a, V>(&'a [(Cow<'static, str>, V)]);

impl<V: Serialize> Serialize for Entries<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = s.serialize_map(None)?;
        for (i, (k, v)) in e.iter().enumerate() {
            if e[..i].iter().any(|(k2, _)| k2 == k) {
                continue;
            }
            let last = e[i + 1..]
                .iter()
                .rev()
                .find(|(k2, _)| k2 == k)
                .map_or(v, |(_, v2)| v2);
            m.serialize_entry(k.as_ref(), last)?;
        }
        m.end()
    }
}

/// Whether [`serde_json::Map`] keeps its keys in insertion order (serde_json's
/// `preserve_order`, which another crate of the build may turn on) rather than sorted:
/// [`AttributeLine`] writes [`attribute_line`]'s bytes only then.
pub fn map_keeps_order() -> bool {
    static KEEPS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KEEPS.get_or_init(|| {
        let mut m = Map::new();
        m.insert("b".into(), Value::Null);
        m.insert("a".into(), Value::Null);
        m.keys().next().is_some_and(|k| k == "b")
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `entries` as a JSON map in insertion order, each name with its last value.
    fn ordered<V: Serialize>(entries: &[(Cow<'static, str>, V)]) -> String {
        let mut names: Vec<&str> = Vec::new();
        for (k, _) in entries {
            if !names.contains(&k.as_ref()) {
                names.push(k);
            }
        }
        let body: Vec<String> = names
            .iter()
            .map(|k| {
                let v = entries.iter().rev().find(|(k2, _)| k2 == k).map(|e| &e.1);
                format!("{}:{}", json!(k), json!(v))
            })
            .collect();
        format!("{{{}}}", body.join(","))
    }

    #[test]
    fn attribute_lines_written_as_their_json_value() {
        let mut doc = Document::new("id", "text", DocKey::new(3, 7));
        let stat = |k: &'static str, v: f64| (Cow::Borrowed(k), v);
        let decisions = [
            Decision::default(),
            Decision {
                drop: Some("top_2_gram".into()),
                stats: vec![
                    stat("b", 0.1),
                    stat("a", f64::NAN),
                    stat("c", f64::INFINITY),
                    stat("d", -0.0),
                    stat("e", 1e300),
                    stat("f", 3.0),
                ],
                tags: vec![],
            },
            Decision {
                drop: None,
                // Names given twice: the first place, the last value.
                stats: vec![
                    stat("x", 1.0),
                    stat("y", 2.0),
                    stat("x", 3.0),
                    stat("x", 4.5),
                ],
                tags: vec![
                    ("language".into(), json!("en")),
                    ("score".into(), json!({"k": [1, 2.5, null]})),
                    ("language".into(), json!("sw")),
                    (String::from("owned").into(), json!(true)),
                ],
            },
        ];
        for d in &decisions {
            for id in ["", "plain", "tab\there \"q\"\n é"] {
                doc.id = id.into();
                let direct = serde_json::to_string(&AttributeLine {
                    doc: &doc,
                    decision: d,
                })
                .unwrap_or_default();
                // In insertion order, as `attribute_line` is with `preserve_order`.
                let want = format!(
                    "{{\"id\":{},\"file\":3,\"index\":7,\"drop\":{},\"stats\":{},\"tags\":{}}}",
                    json!(id),
                    json!(d.drop),
                    ordered(&d.stats),
                    ordered(&d.tags)
                );
                assert_eq!(direct, want);
                let built = attribute_line(&doc, d);
                if map_keeps_order() {
                    assert_eq!(Some(direct), serde_json::to_string(&built).ok());
                } else {
                    let parsed: Value = serde_json::from_str(&direct).unwrap_or_default();
                    assert_eq!(parsed, built);
                }
            }
        }
    }
}
