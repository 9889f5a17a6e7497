//! GGUF, the llama.cpp model format (versions 2 and 3, little-endian).
//!
//! Layout: magic `GGUF`, version (u32), tensor count (u64), metadata count (u64); the
//! metadata as (key string, value type u32, value); the tensor infos as (name, n_dims u32,
//! dims u64 × n_dims, ggml type u32, offset u64); padding to `general.alignment` (default
//! 32); then the tensor data, each tensor at its offset from the start of the data.
//! Strings are a u64 length and UTF-8 bytes. Dimensions are in ggml order: `dims[0]` is the
//! fastest-varying (a row's length).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::{Error, Result};

/// The ggml tensor types, with their numbers in the GGUF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

impl GgmlType {
    /// The type with GGUF number `id`; `None` for unknown or retired numbers.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            16 => IQ2_XXS,
            17 => IQ2_XS,
            18 => IQ3_XXS,
            19 => IQ1_S,
            20 => IQ4_NL,
            21 => IQ3_S,
            22 => IQ2_S,
            23 => IQ4_XS,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => IQ1_M,
            30 => BF16,
            34 => TQ1_0,
            35 => TQ2_0,
            39 => MXFP4,
            _ => return None,
        })
    }

    /// The GGUF number of this type.
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2_K => 10,
            Q3_K => 11,
            Q4_K => 12,
            Q5_K => 13,
            Q6_K => 14,
            Q8_K => 15,
            IQ2_XXS => 16,
            IQ2_XS => 17,
            IQ3_XXS => 18,
            IQ1_S => 19,
            IQ4_NL => 20,
            IQ3_S => 21,
            IQ2_S => 22,
            IQ4_XS => 23,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            IQ1_M => 29,
            BF16 => 30,
            TQ1_0 => 34,
            TQ2_0 => 35,
            MXFP4 => 39,
        }
    }

    /// Elements per block and bytes per block (ggml's `blck_size` and `type_size`).
    pub fn block(self) -> (u64, u64) {
        use GgmlType::*;
        match self {
            F32 | I32 => (1, 4),
            F16 | BF16 | I16 => (1, 2),
            I8 => (1, 1),
            I64 | F64 => (1, 8),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            IQ4_NL => (32, 18),
            MXFP4 => (32, 17),
            Q2_K => (256, 84),
            Q3_K => (256, 110),
            Q4_K => (256, 144),
            Q5_K => (256, 176),
            Q6_K => (256, 210),
            Q8_K => (256, 292),
            IQ2_XXS => (256, 66),
            IQ2_XS => (256, 74),
            IQ3_XXS => (256, 98),
            IQ1_S => (256, 50),
            IQ3_S => (256, 110),
            IQ2_S => (256, 82),
            IQ4_XS => (256, 136),
            IQ1_M => (256, 56),
            TQ1_0 => (256, 54),
            TQ2_0 => (256, 66),
        }
    }

    /// Bits per weight of the storage.
    pub fn bits_per_weight(self) -> f64 {
        let (elements, bytes) = self.block();
        8.0 * bytes as f64 / elements as f64
    }

    /// The name llama.cpp prints (`q4_K`, `f16`, …).
    pub fn name(self) -> String {
        let debug = format!("{self:?}");
        // ggml spells the K-quant suffix in upper case and the rest in lower case.
        match debug.strip_suffix("_K") {
            Some(stem) => format!("{}_K", stem.to_ascii_lowercase()),
            None => debug.to_ascii_lowercase(),
        }
    }
}

/// The type of a metadata value, with its number in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<Self> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    pub fn id(self) -> u32 {
        use ValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// The fewest bytes one value of this type occupies (for bounding counts).
    fn min_size(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// Elements all of `ValueType`.
    Array(ValueType, Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(..) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            // Through the shortest decimal that round-trips, so that an f32 1e-5 reads as the
            // 1e-5 its writer meant rather than 9.99999974e-6.
            Value::F32(v) => Some(v.to_string().parse().unwrap_or(v.into())),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(_, values) => Some(values),
            _ => None,
        }
    }

    /// A short description for messages and tables (arrays summarised by length).
    pub fn describe(&self) -> String {
        match self {
            Value::String(s) if s.chars().count() > 60 => {
                let head: String = s.chars().take(57).collect();
                format!("{head:?}…")
            }
            Value::String(s) => format!("{s:?}"),
            Value::Array(t, values) => format!("[{t:?}; {}]", values.len()),
            Value::Bool(b) => b.to_string(),
            Value::F32(v) => v.to_string(),
            Value::F64(v) => v.to_string(),
            other => other
                .as_u64()
                .map(|v| v.to_string())
                .or_else(|| other.as_f64().map(|v| v.to_string()))
                .unwrap_or_default(),
        }
    }
}

/// One tensor's description.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

/// The parsed header of a GGUF file: metadata and tensor infos, validated against the
/// length of the data that follows.
#[derive(Debug, Clone)]
pub struct Gguf {
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Where the data section starts in the file.
    pub data_offset: u64,
    key_index: HashMap<String, usize>,
    tensor_index: HashMap<String, usize>,
}

/// Nested arrays deeper than this are rejected (no real file nests at all).
const MAX_DEPTH: usize = 4;
/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;

impl Gguf {
    /// Parses a whole GGUF file held in memory; tensor extents are checked against it.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, pos: 0 };
        let magic = r.take(4, "magic")?;
        if magic != b"GGUF" {
            let mut found = [0u8; 4];
            found.copy_from_slice(magic);
            return Err(Error::BadMagic { found });
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(Error::UnsupportedVersion(version));
        }
        let tensor_count = r.u64("tensor count")?;
        let kv_count = r.u64("metadata count")?;
        // Bound the counts by the bytes left: a key-value pair takes at least 13 bytes
        // (key length, type, one byte of value), a tensor info at least 24.
        r.check_count("metadata count", kv_count, 13)?;
        r.check_count("tensor count", tensor_count, 24)?;

        let mut metadata = Vec::new();
        let mut key_index = HashMap::new();
        for _ in 0..kv_count {
            let key = r.string("metadata key")?;
            let type_id = r.u32(&format!("type of {key:?}"))?;
            let value_type =
                ValueType::from_id(type_id).ok_or_else(|| Error::UnknownValueType {
                    key: key.clone(),
                    type_id,
                })?;
            let value = r.value(&key, value_type, 0)?;
            if key_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(Error::DuplicateKey(key));
            }
            metadata.push((key, value));
        }

        let alignment = match key_index.get("general.alignment") {
            None => 32,
            Some(&i) => {
                let (_, value) = &metadata[i];
                let a = value.as_u64().ok_or_else(|| Error::WrongType {
                    key: "general.alignment".into(),
                    expected: "an unsigned integer",
                    found: format!("{:?}", value.value_type()),
                })?;
                if a == 0 || !a.is_power_of_two() || a > 1 << 30 {
                    return Err(Error::BadAlignment(a));
                }
                a
            }
        };

        let mut tensors = Vec::new();
        let mut tensor_index = HashMap::new();
        for _ in 0..tensor_count {
            let name = r.string("tensor name")?;
            let n_dims = r.u32(&format!("tensor {name:?} n_dims"))?;
            if n_dims > MAX_DIMS {
                return Err(Error::TensorShape {
                    tensor: name,
                    reason: format!("{n_dims} dimensions (at most {MAX_DIMS})"),
                });
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64(&format!("tensor {name:?} dims"))?);
            }
            let type_id = r.u32(&format!("tensor {name:?} type"))?;
            let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| Error::UnknownTensorType {
                tensor: name.clone(),
                type_id,
            })?;
            let offset = r.u64(&format!("tensor {name:?} offset"))?;
            let info = tensor_info(name, dims, ggml_type, offset, alignment)?;
            if tensor_index
                .insert(info.name.clone(), tensors.len())
                .is_some()
            {
                return Err(Error::DuplicateTensor(info.name));
            }
            tensors.push(info);
        }

        let header_end = r.pos as u64;
        let data_offset = header_end.div_ceil(alignment) * alignment;
        let data_len = (bytes.len() as u64).saturating_sub(data_offset);
        for t in &tensors {
            let end = t.offset.checked_add(t.n_bytes);
            if end.is_none_or(|end| end > data_len) {
                return Err(Error::TensorOutOfBounds {
                    tensor: t.name.clone(),
                    offset: t.offset,
                    size: t.n_bytes,
                    data_len,
                });
            }
        }
        Ok(Gguf {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
            key_index,
            tensor_index,
        })
    }

    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// A required string value.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.get(key).ok_or_else(|| Error::MissingKey(key.into()))?;
        v.as_str().ok_or_else(|| wrong_type(key, "a string", v))
    }

    /// An optional unsigned integer value (any integer width).
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| wrong_type(key, "an unsigned integer", v)),
        }
    }

    /// An optional number.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| wrong_type(key, "a number", v)),
        }
    }

    /// The sum of the element counts of all tensors.
    pub fn total_elements(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_elements).sum()
    }
}

fn wrong_type(key: &str, expected: &'static str, v: &Value) -> Error {
    Error::WrongType {
        key: key.into(),
        expected,
        found: format!("{:?}", v.value_type()),
    }
}

fn tensor_info(
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    offset: u64,
    alignment: u64,
) -> Result<TensorInfo> {
    let shape_err = |reason: String| Error::TensorShape {
        tensor: name.clone(),
        reason,
    };
    // ggml stores dimensions as int64: larger values are negative there.
    if let Some(d) = dims.iter().find(|&&d| d > i64::MAX as u64) {
        return Err(shape_err(format!("dimension {d} exceeds 2^63")));
    }
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| shape_err(format!("shape {dims:?} overflows 64-bit element counts")))?;
    let (block_elements, block_bytes) = ggml_type.block();
    let row = dims.first().copied().unwrap_or(1);
    if !row.is_multiple_of(block_elements) {
        return Err(shape_err(format!(
            "row length {row} is not a multiple of the {} block size {block_elements}",
            ggml_type.name()
        )));
    }
    let n_bytes = (n_elements / block_elements)
        .checked_mul(block_bytes)
        .ok_or_else(|| shape_err(format!("shape {dims:?} overflows 64-bit byte counts")))?;
    if !offset.is_multiple_of(alignment) {
        return Err(shape_err(format!(
            "data offset {offset} is not a multiple of the alignment {alignment}"
        )));
    }
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        n_elements,
        n_bytes,
    })
}

/// A cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Truncated {
                what: what.to_string(),
                offset: self.pos as u64,
                needed: n,
                available: self.remaining(),
            });
        }
        let n = n as usize;
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn check_count(&self, what: &str, count: u64, min_size: u64) -> Result<()> {
        if count > self.remaining() / min_size {
            return Err(Error::CountTooLarge {
                what: what.to_string(),
                count,
                available: self.remaining(),
            });
        }
        Ok(())
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Error::InvalidUtf8 {
            what: what.to_string(),
        })
    }

    fn value(&mut self, key: &str, t: ValueType, depth: usize) -> Result<Value> {
        Ok(match t {
            ValueType::U8 => Value::U8(self.array::<1>(key)?[0]),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(key)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            ValueType::U32 => Value::U32(self.u32(key)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            ValueType::U64 => Value::U64(self.u64(key)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            ValueType::Bool => match self.array::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(Error::Invalid {
                        what: format!("metadata key {key:?}"),
                        reason: format!("boolean byte {b} is neither 0 nor 1"),
                    })
                }
            },
            ValueType::String => Value::String(self.string(key)?),
            ValueType::Array => {
                if depth >= MAX_DEPTH {
                    return Err(Error::TooDeep {
                        key: key.to_string(),
                        max: MAX_DEPTH,
                    });
                }
                let type_id = self.u32(key)?;
                let element =
                    ValueType::from_id(type_id).ok_or_else(|| Error::UnknownValueType {
                        key: key.to_string(),
                        type_id,
                    })?;
                let count = self.u64(key)?;
                self.check_count(&format!("array {key:?}"), count, element.min_size())?;
                // The count is bounded by the bytes left; the capacity is capped further so that a
                // huge array costs memory only as its elements are actually read.
                let mut values = Vec::with_capacity(count.min(1 << 16) as usize);
                for _ in 0..count {
                    values.push(self.value(key, element, depth + 1)?);
                }
                Value::Array(element, values)
            }
        })
    }
}

/// A GGUF file opened from disk, its data memory-mapped.
pub struct GgufFile {
    pub path: PathBuf,
    pub gguf: Gguf,
    mmap: Mmap,
}

impl GgufFile {
    /// Opens and validates `path`. The tensor data is not read: it is mapped, and pages
    /// come in as tensors are used.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < 4 {
            return Err(Error::Truncated {
                what: "magic".into(),
                offset: 0,
                needed: 4,
                available: len,
            }
            .in_file(path));
        }
        // SAFETY: the map is read-only. Like every reader of memory-mapped model files
        // (llama.cpp, safetensors), we rely on the file not being truncated while mapped;
        // every offset into the map was bounds-checked against its length at parse time.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let gguf = Gguf::parse(&mmap).map_err(|e| e.in_file(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            gguf,
            mmap,
        })
    }

    /// The raw bytes of a tensor, in its ggml type's layout.
    pub fn tensor_data(&self, tensor: &TensorInfo) -> Result<&[u8]> {
        let start = self
            .gguf
            .data_offset
            .checked_add(tensor.offset)
            .ok_or_else(|| Error::MissingTensor(tensor.name.clone()))?;
        let end = start.checked_add(tensor.n_bytes);
        match end {
            Some(end) if end <= self.mmap.len() as u64 => {
                Ok(&self.mmap[start as usize..end as usize])
            }
            _ => Err(Error::TensorOutOfBounds {
                tensor: tensor.name.clone(),
                offset: tensor.offset,
                size: tensor.n_bytes,
                data_len: (self.mmap.len() as u64).saturating_sub(self.gguf.data_offset),
            }),
        }
    }

    /// The raw bytes of the tensor named `name`.
    pub fn tensor_data_by_name(&self, name: &str) -> Result<&[u8]> {
        let info = self
            .gguf
            .tensor(name)
            .ok_or_else(|| Error::MissingTensor(name.into()))?;
        self.tensor_data(info)
    }
}
