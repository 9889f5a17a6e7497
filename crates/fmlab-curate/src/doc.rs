//! A document as curation sees it: an id, its text, and every other field of its source
//! record kept as metadata (written back unchanged, plus the tags blocks add).

use serde_json::{Map, Value};

/// Where a document came from: the input file's index in the sorted input list and the
/// document's index in that file. Stable whatever the rank and world size, so duplicates
/// found by ranks are named the same way as by one process, and outputs of W ranks are the
/// outputs of one (read in key order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocKey {
    pub file: u32,
    pub index: u32,
}

impl DocKey {
    pub fn new(file: u32, index: u32) -> Self {
        DocKey { file, index }
    }
    /// Packed as one integer (file in the high half) for compact files of keys.
    pub fn as_u64(self) -> u64 {
        (u64::from(self.file) << 32) | u64::from(self.index)
    }
    pub fn from_u64(v: u64) -> Self {
        DocKey {
            file: (v >> 32) as u32,
            index: v as u32,
        }
    }
}

/// One document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The source's id (its `id` field, or `file:index` when it has none).
    pub id: String,
    pub text: String,
    /// Every other field of the source record (for WARC: url, date, record id), and the
    /// tags blocks add (language, language_score, domain…).
    pub metadata: Map<String, Value>,
    pub key: DocKey,
}

impl Document {
    pub fn new(id: impl Into<String>, text: impl Into<String>, key: DocKey) -> Self {
        Document {
            id: id.into(),
            text: text.into(),
            metadata: Map::new(),
            key,
        }
    }
}
