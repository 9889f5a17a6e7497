//! safetensors: an 8-byte little-endian header length N, N bytes of JSON mapping tensor
//! names to `{dtype, shape, data_offsets: [begin, end]}` (plus an optional
//! `__metadata__` map of strings), then the data. Offsets are relative to the end of the
//! header; tensors must tile the data exactly, without gaps or overlaps.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::Deserialize;

use crate::{Error, Result};

/// The largest JSON header accepted (the reference implementation's limit).
const MAX_HEADER: u64 = 100_000_000;

/// Element types of safetensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    F8E5M2,
    F8E4M3,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
}

impl Dtype {
    pub fn parse(name: &str) -> Option<Self> {
        use Dtype::*;
        Some(match name {
            "BOOL" => Bool,
            "U8" => U8,
            "I8" => I8,
            "F8_E5M2" => F8E5M2,
            "F8_E4M3" => F8E4M3,
            "I16" => I16,
            "U16" => U16,
            "F16" => F16,
            "BF16" => BF16,
            "I32" => I32,
            "U32" => U32,
            "F32" => F32,
            "F64" => F64,
            "I64" => I64,
            "U64" => U64,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use Dtype::*;
        match self {
            Bool => "BOOL",
            U8 => "U8",
            I8 => "I8",
            F8E5M2 => "F8_E5M2",
            F8E4M3 => "F8_E4M3",
            I16 => "I16",
            U16 => "U16",
            F16 => "F16",
            BF16 => "BF16",
            I32 => "I32",
            U32 => "U32",
            F32 => "F32",
            F64 => "F64",
            I64 => "I64",
            U64 => "U64",
        }
    }

    pub fn size(self) -> u64 {
        use Dtype::*;
        match self {
            Bool | U8 | I8 | F8E5M2 | F8E4M3 => 1,
            I16 | U16 | F16 | BF16 => 2,
            I32 | U32 | F32 => 4,
            F64 | I64 | U64 => 8,
        }
    }
}

/// One tensor of a safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorView {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// Byte range within the data section.
    pub begin: u64,
    pub end: u64,
}

impl TensorView {
    pub fn n_elements(&self) -> u64 {
        // Validated at parse time not to overflow.
        self.shape.iter().product()
    }
}

/// The parsed header of a safetensors file.
#[derive(Debug, Clone)]
pub struct SafeTensors {
    /// Tensors in data order.
    pub tensors: Vec<TensorView>,
    pub metadata: BTreeMap<String, String>,
    /// Where the data section starts in the file.
    pub data_offset: u64,
}

#[derive(Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

impl SafeTensors {
    /// Parses and validates a whole file held in memory.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let total = bytes.len() as u64;
        if total < 8 {
            return Err(Error::Truncated {
                what: "header length".into(),
                offset: 0,
                needed: 8,
                available: total,
            });
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&bytes[..8]);
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER {
            return Err(Error::Invalid {
                what: "safetensors header".into(),
                reason: format!("length {header_len} exceeds the limit of {MAX_HEADER} bytes"),
            });
        }
        if header_len > total - 8 {
            return Err(Error::Truncated {
                what: "JSON header".into(),
                offset: 8,
                needed: header_len,
                available: total - 8,
            });
        }
        let header = &bytes[8..8 + header_len as usize];
        let json: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(header).map_err(|source| Error::Json {
                what: "safetensors header".into(),
                source,
            })?;
        let data_offset = 8 + header_len;
        let data_len = total - data_offset;
        let mut metadata = BTreeMap::new();
        let mut tensors = Vec::with_capacity(json.len());
        for (name, value) in json {
            if name == "__metadata__" {
                metadata = serde_json::from_value(value).map_err(|source| Error::Json {
                    what: "safetensors __metadata__ (a map of strings)".into(),
                    source,
                })?;
                continue;
            }
            let raw: RawEntry = serde_json::from_value(value).map_err(|source| Error::Json {
                what: format!("safetensors entry {name:?}"),
                source,
            })?;
            let dtype = Dtype::parse(&raw.dtype).ok_or_else(|| Error::Invalid {
                what: format!("tensor {name:?}"),
                reason: format!("unknown dtype {:?}", raw.dtype),
            })?;
            let (begin, end) = raw.data_offsets;
            let bytes_needed = raw
                .shape
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .and_then(|n| n.checked_mul(dtype.size()))
                .ok_or_else(|| Error::TensorShape {
                    tensor: name.clone(),
                    reason: format!("shape {:?} overflows 64-bit byte counts", raw.shape),
                })?;
            if end < begin || end - begin != bytes_needed {
                return Err(Error::TensorShape {
                    tensor: name.clone(),
                    reason: format!(
                        "data_offsets [{begin}, {end}] hold {} bytes, but shape {:?} of {} needs {bytes_needed}",
                        end.saturating_sub(begin),
                        raw.shape,
                        dtype.name()
                    ),
                });
            }
            if end > data_len {
                return Err(Error::TensorOutOfBounds {
                    tensor: name,
                    offset: begin,
                    size: bytes_needed,
                    data_len,
                });
            }
            tensors.push(TensorView {
                name,
                dtype,
                shape: raw.shape,
                begin,
                end,
            });
        }
        tensors.sort_by_key(|t| (t.begin, t.end));
        let mut cursor = 0;
        for t in &tensors {
            if t.begin != cursor {
                return Err(Error::Invalid {
                    what: format!("tensor {:?}", t.name),
                    reason: format!(
                        "starts at data offset {} but the previous tensor ends at {cursor} (tensors must tile the data without gaps or overlaps)",
                        t.begin
                    ),
                });
            }
            cursor = t.end;
        }
        if cursor != data_len {
            return Err(Error::Invalid {
                what: "safetensors data".into(),
                reason: format!("tensors cover {cursor} bytes but the data section has {data_len}"),
            });
        }
        Ok(SafeTensors {
            tensors,
            metadata,
            data_offset,
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorView> {
        self.tensors.iter().find(|t| t.name == name)
    }

    pub fn total_elements(&self) -> u64 {
        self.tensors.iter().map(TensorView::n_elements).sum()
    }
}

/// A safetensors file opened from disk, its data memory-mapped.
pub struct SafetensorsFile {
    pub path: PathBuf,
    pub header: SafeTensors,
    mmap: Mmap,
}

impl SafetensorsFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < 8 {
            return Err(Error::Truncated {
                what: "header length".into(),
                offset: 0,
                needed: 8,
                available: len,
            }
            .in_file(path));
        }
        // SAFETY: read-only map; offsets were validated against its length (see GgufFile).
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let header = SafeTensors::parse(&mmap).map_err(|e| e.in_file(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            header,
            mmap,
        })
    }

    /// The raw little-endian bytes of a tensor.
    pub fn tensor_data(&self, tensor: &TensorView) -> &[u8] {
        let start = (self.header.data_offset + tensor.begin) as usize;
        let end = (self.header.data_offset + tensor.end) as usize;
        self.mmap.get(start..end).unwrap_or_default()
    }
}
