use std::path::PathBuf;

/// What went wrong reading or writing a model file. Variants name the part of the file at
/// fault (a metadata key, a tensor) and the numbers that disagree.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The I/O error is part of the message, not a `source`, so that printing the chain
    /// says it once.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Another error, with the path of the file it happened in. The inner error is part
    /// of the message rather than a `source`, so that printing the chain says it once.
    #[error("{path}: {error}")]
    InFile { path: PathBuf, error: Box<Error> },
    #[error("truncated file: {what} needs {needed} bytes at offset {offset}, but the file has {available} there")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error("not a GGUF file: the magic is {found:?}, expected \"GGUF\"")]
    BadMagic { found: [u8; 4] },
    #[error("GGUF version {0} is not supported (fmlab reads versions 2 and 3{hint})", hint = version_hint(*.0))]
    UnsupportedVersion(u32),
    #[error("metadata key {key:?}: unknown value type {type_id}")]
    UnknownValueType { key: String, type_id: u32 },
    #[error("tensor {tensor:?}: unknown ggml type {type_id}")]
    UnknownTensorType { tensor: String, type_id: u32 },
    #[error("{what}: not valid UTF-8")]
    InvalidUtf8 { what: String },
    #[error("{what} is {count}, more than the {available} bytes left in the file can hold (truncated or corrupt file)")]
    CountTooLarge {
        what: String,
        count: u64,
        available: u64,
    },
    #[error("metadata key {key:?}: arrays nested deeper than {max}")]
    TooDeep { key: String, max: usize },
    #[error("metadata key {0:?} appears twice")]
    DuplicateKey(String),
    #[error("tensor {0:?} appears twice")]
    DuplicateTensor(String),
    #[error("general.alignment = {0}: must be a power of two between 1 and 2^30")]
    BadAlignment(u64),
    #[error("tensor {tensor:?}: {reason}")]
    TensorShape { tensor: String, reason: String },
    #[error("tensor {tensor:?}: {size} bytes at data offset {offset} run past the end of the data ({data_len} bytes)")]
    TensorOutOfBounds {
        tensor: String,
        offset: u64,
        size: u64,
        data_len: u64,
    },
    #[error("tensor {0:?} not found")]
    MissingTensor(String),
    #[error("metadata key {0:?} is missing")]
    MissingKey(String),
    #[error("metadata key {key:?}: expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("architecture {0:?} is not supported (supported: {1})")]
    UnsupportedArchitecture(String, &'static str),
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{what}: invalid JSON: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Spec(#[from] fmlab_spec::Error),
    #[error("{0}: no such file or folder")]
    NotFound(PathBuf),
    #[error("{0}: not a model file fmlab recognises (expected .gguf, .safetensors, config.json or a model folder)")]
    NotAModel(PathBuf),
    #[error("{0}: a model folder needs a config.json")]
    NoConfig(PathBuf),
    #[error("reading {path}")]
    Reading {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("listing {path}")]
    Listing {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file an error happened in, as a `source` chain: printing the chain gives
    /// `path: error: its causes`.
    #[error("{path}")]
    At { path: PathBuf, source: Box<Error> },
}

pub type Result<T> = std::result::Result<T, Error>;

fn version_hint(version: u32) -> &'static str {
    if version == 1 {
        "; version 1 files predate 64-bit counts: convert them with a newer llama.cpp"
    } else if version.swap_bytes() <= 3 {
        "; this looks like a big-endian GGUF, which fmlab does not read"
    } else {
        ""
    }
}

impl Error {
    /// Attaches the path of the file being read.
    pub fn in_file(self, path: impl Into<PathBuf>) -> Self {
        match self {
            Error::Io { .. } | Error::InFile { .. } => self,
            other => Error::InFile {
                path: path.into(),
                error: Box::new(other),
            },
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}
