//! Model files: GGUF and safetensors (read from memory maps, written atomically), and
//! Hugging Face `config.json` → `ModelSpec`; [`describe`] reads any model description (GGUF,
//! safetensors, HF folder, `config.json`) into a spec and the file's facts, [`inspect`]
//! adds the anatomy `fmlab inspect` prints.
//!
//! Every reader treats its input as hostile: each count and offset is checked against the
//! bytes that are actually there before anything is allocated or indexed, and every failure
//! is an [`Error`] that names the file part at fault. Nothing here panics on bad input.
//!
//! This crate knows file layouts, not numerics: it hands out raw tensor bytes with their
//! ggml type or dtype; dequantisation lives in `fmlab-kernels`.

pub mod cache;
mod describe;
mod error;
pub mod gguf;
mod gguf_spec;
pub mod hf_config;
pub mod safetensors;
mod write;

pub use describe::{
    describe, inspect, inspect_description, Description, Inspection, Source, SourceKind, Target,
};
pub use error::{Error, Result};
pub use gguf::{GgmlType, Gguf, GgufFile, TensorInfo, Value, ValueType};
pub use gguf_spec::spec_from_gguf;
pub use hf_config::spec_from_hf_config;
pub use safetensors::{Dtype, SafeTensors, SafetensorsFile, TensorView};
pub use write::{
    safetensors_bytes, write_atomically, AtomicFile, GgufStreamWriter, GgufWriter, TensorHeader,
};
