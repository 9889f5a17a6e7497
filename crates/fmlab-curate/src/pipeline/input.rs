//! Input files: listing them (sorted, so a file's index — the `file` of every
//! [`DocKey`] — is the same for every rank and every rerun) and opening one as documents.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::doc::{DocKey, Document};
use crate::pipeline::spec::InputSpec;
use crate::{Error, Result};

/// The files named, and the files under the folders named (recursively), sorted and
/// without repeats. Hidden files and files ending in `.tmp` are skipped.
pub fn list_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(Error::Config("no input files".into()));
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".tmp") {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Opens input file number `file` as documents.
pub fn open_input(
    path: &Path,
    file: u32,
    spec: &InputSpec,
) -> Result<Box<dyn Iterator<Item = Result<Document>> + Send>> {
    let name = path.to_string_lossy();
    if name.ends_with(".jsonl") || name.ends_with(".json") {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let path = path.to_path_buf();
        let spec = spec.clone();
        let stem = stem(&path);
        Ok(Box::new(
            BufReader::with_capacity(1 << 20, f)
                .lines()
                .enumerate()
                .filter_map(move |(i, line)| {
                    let line = match line {
                        Ok(l) => l,
                        Err(e) => return Some(Err(Error::io(&path, e))),
                    };
                    if line.trim().is_empty() {
                        return None;
                    }
                    Some(jsonl_doc(&line, &path, &stem, file, i as u32, &spec))
                }),
        ))
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let doc = Document::new(path.to_string_lossy(), text, DocKey::new(file, 0));
        Ok(Box::new(std::iter::once(Ok(doc))))
    }
}

fn stem(path: &Path) -> String {
    path.file_name()
        .map(|n| {
            n.to_string_lossy()
                .split('.')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

fn jsonl_doc(
    line: &str,
    path: &Path,
    stem: &str,
    file: u32,
    index: u32,
    spec: &InputSpec,
) -> Result<Document> {
    let bad = |m: String| Error::format(path, format!("line {}: {m}", index + 1));
    let mut map: serde_json::Map<String, Value> =
        serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
    let text = match map.remove(&spec.text_field) {
        Some(Value::String(s)) => s,
        Some(_) => return Err(bad(format!("field {:?} is not a string", spec.text_field))),
        None => return Err(bad(format!("no field {:?}", spec.text_field))),
    };
    let id = match map.remove(&spec.id_field) {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => format!("{stem}/{index}"),
    };
    Ok(Document {
        id,
        text,
        metadata: map,
        key: DocKey::new(file, index),
    })
}
