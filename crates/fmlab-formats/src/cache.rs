//! Where fmlab keeps downloaded models.

use std::path::PathBuf;

/// `$FMLAB_MODELS_DIR`, else `$FMLAB_HOME/models`, else `~/.cache/fmlab/models`: the folder
/// `fmlab pull` and `scripts/fetch-models.sh` fill, and where model names resolve.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FMLAB_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("FMLAB_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/fmlab")
        });
    home.join("models")
}
