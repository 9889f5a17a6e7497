//! Files streamed to disk whole or not at all (the world's JSONL files, too large to hold
//! in memory); a file already in memory is written with `fmlab_formats::write_atomically`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{Error, Result};

/// A file written under a temporary name in its folder, synced and renamed into place by
/// [`AtomicFile::finish`]; dropped unfinished (an error on the way), it leaves nothing.
pub(crate) struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl AtomicFile {
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            out: std::io::BufWriter::with_capacity(1 << 20, file),
        })
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(&self.tmp, e))
    }

    pub(crate) fn write_json_line<T: Serialize>(&mut self, value: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, value).map_err(Error::Json)?;
        self.write(b"\n")
    }

    pub(crate) fn finish(mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.tmp, e))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // After `finish` the temporary name is gone and this does nothing.
        let _ = std::fs::remove_file(&self.tmp);
    }
}
