//! Plain text files: the whole file (decompressed when `.gz`/`.zst`) is one document whose
//! id is the file's path.

use std::io::Read;
use std::path::Path;

use crate::doc::{DocKey, Document};
use crate::{Error, Result};

/// The one document of a text file, as a stream.
pub fn read_text(path: &Path, file: u32) -> impl Iterator<Item = Result<Document>> + Send {
    std::iter::once(read_text_doc(path, file))
}

fn read_text_doc(path: &Path, file: u32) -> Result<Document> {
    let mut bytes = Vec::new();
    super::open_decoded(path)?
        .read_to_end(&mut bytes)
        .map_err(|e| Error::format(path, format!("byte {}: {e}", bytes.len())))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::format(
            path,
            format!("byte {}: not UTF-8 text", e.utf8_error().valid_up_to()),
        )
    })?;
    Ok(Document::new(
        path.display().to_string(),
        text,
        DocKey::new(file, 0),
    ))
}
