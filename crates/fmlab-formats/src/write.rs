//! Writers: GGUF and safetensors files, always written atomically.

use std::io::Write;
use std::path::Path;

use crate::gguf::{GgmlType, Value, ValueType};
use crate::safetensors::Dtype;
use crate::{Error, Result};

/// The temporary file beside `path` that an atomic write fills before renaming it.
fn temp_path(path: &Path) -> std::path::PathBuf {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` so that a reader sees either the old file or the whole new one:
/// a temporary file in the same folder, flushed to disk, then renamed over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Builds a GGUF v3 file in memory.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>,
    alignment: u64,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self {
            alignment: 32,
            ..Default::default()
        }
    }

    /// Adds a metadata entry; `general.alignment` (a u32) also sets the data alignment.
    pub fn metadata(&mut self, key: &str, value: Value) -> &mut Self {
        if key == "general.alignment" {
            if let Some(a) = value.as_u64().filter(|a| a.is_power_of_two()) {
                self.alignment = a;
            }
        }
        self.metadata.push((key.to_string(), value));
        self
    }

    /// How many tensors the file will hold.
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// Adds a tensor with `dims` in ggml order and `data` already in `ggml_type`'s layout.
    pub fn tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ggml_type: GgmlType,
        data: Vec<u8>,
    ) -> Result<&mut Self> {
        let (block_elements, block_bytes) = ggml_type.block();
        let n: u64 = dims.iter().product();
        if dims.first().copied().unwrap_or(1) % block_elements != 0
            || n / block_elements * block_bytes != data.len() as u64
        {
            return Err(Error::TensorShape {
                tensor: name.to_string(),
                reason: format!(
                    "{} bytes do not hold shape {dims:?} of {}",
                    data.len(),
                    ggml_type.name()
                ),
            });
        }
        self.tensors
            .push((name.to_string(), dims.to_vec(), ggml_type, data));
        Ok(self)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let infos: Vec<TensorHeader> = self
            .tensors
            .iter()
            .map(|(name, dims, ggml_type, data)| TensorHeader {
                name: name.clone(),
                dims: dims.clone(),
                ggml_type: *ggml_type,
                n_bytes: data.len() as u64,
            })
            .collect();
        let (mut out, offsets) = gguf_header(&self.metadata, &infos, self.alignment);
        let data_start = out.len() as u64;
        for ((_, _, _, data), offset) in self.tensors.iter().zip(offsets) {
            out.resize((data_start + offset) as usize, 0);
            out.extend_from_slice(data);
        }
        pad(&mut out, self.alignment);
        out
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomically(path, &self.to_bytes())
    }
}

/// One tensor of a GGUF header: its data is `n_bytes` long (in `ggml_type`'s layout).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorHeader {
    pub name: String,
    /// ggml order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub n_bytes: u64,
}

/// A GGUF v3 header (metadata, tensor infos, padding to `alignment`) and each tensor's
/// offset in the data section that follows: tensors in order, each at the next multiple
/// of `alignment`.
fn gguf_header(
    metadata: &[(String, Value)],
    tensors: &[TensorHeader],
    alignment: u64,
) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_string(&mut out, key);
        out.extend_from_slice(&value.value_type().id().to_le_bytes());
        put_value(&mut out, value);
    }
    let mut offset = 0u64;
    let mut offsets = Vec::with_capacity(tensors.len());
    for t in tensors {
        put_string(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ggml_type.id().to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offsets.push(offset);
        offset = (offset + t.n_bytes).div_ceil(alignment) * alignment;
    }
    pad(&mut out, alignment);
    (out, offsets)
}

/// A file written under a temporary name in its destination's folder and renamed over the
/// destination by [`AtomicFile::commit`]; dropped uncommitted, the temporary file is
/// removed and the destination is untouched.
pub struct AtomicFile {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<Self> {
        let tmp = temp_path(path);
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            file: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
        })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(Error::io(
                &self.path,
                std::io::Error::other("written after commit"),
            ));
        };
        file.write_all(bytes).map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes the file to disk and renames it into place.
    pub fn commit(mut self) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let result = (|| -> std::io::Result<()> {
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&self.tmp, &self.path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(Error::io(&self.path, e));
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a GGUF file tensor by tensor, so that a large model never sits in memory whole:
/// the header first (every tensor's type and size known up front), then each tensor's
/// bytes in header order, then [`GgufStreamWriter::finish`] renames the file into place.
pub struct GgufStreamWriter {
    file: AtomicFile,
    tensors: Vec<TensorHeader>,
    alignment: u64,
    next: usize,
}

impl GgufStreamWriter {
    /// Starts `path` with `metadata` and `tensors`; data is aligned to `alignment` (a power
    /// of two; `general.alignment`, when in `metadata`, should say the same).
    pub fn create(
        path: &Path,
        metadata: &[(String, Value)],
        tensors: Vec<TensorHeader>,
        alignment: u64,
    ) -> Result<Self> {
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(Error::BadAlignment(alignment));
        }
        for t in &tensors {
            let (block_elements, block_bytes) = t.ggml_type.block();
            let n: u64 = t.dims.iter().product();
            if t.dims.first().copied().unwrap_or(1) % block_elements != 0
                || n / block_elements * block_bytes != t.n_bytes
            {
                return Err(Error::TensorShape {
                    tensor: t.name.clone(),
                    reason: format!(
                        "{} bytes do not hold shape {:?} of {}",
                        t.n_bytes,
                        t.dims,
                        t.ggml_type.name()
                    ),
                });
            }
        }
        let (header, _) = gguf_header(metadata, &tensors, alignment);
        let mut file = AtomicFile::create(path)?;
        file.write_all(&header)?;
        Ok(Self {
            file,
            tensors,
            alignment,
            next: 0,
        })
    }

    /// Appends the next tensor's bytes (exactly its header's size) and its padding.
    pub fn write_tensor(&mut self, data: &[u8]) -> Result<()> {
        let Some(t) = self.tensors.get(self.next) else {
            return Err(Error::Invalid {
                what: "GGUF writer".into(),
                reason: format!("more than the {} tensors of the header", self.tensors.len()),
            });
        };
        if data.len() as u64 != t.n_bytes {
            return Err(Error::TensorShape {
                tensor: t.name.clone(),
                reason: format!(
                    "{} bytes written, the header says {}",
                    data.len(),
                    t.n_bytes
                ),
            });
        }
        self.file.write_all(data)?;
        let padding = t.n_bytes.div_ceil(self.alignment) * self.alignment - t.n_bytes;
        self.file.write_all(&vec![0u8; padding as usize])?;
        self.next += 1;
        Ok(())
    }

    /// Checks that every tensor was written and renames the file into place.
    pub fn finish(self) -> Result<()> {
        if self.next != self.tensors.len() {
            return Err(Error::Invalid {
                what: "GGUF writer".into(),
                reason: format!("{} of {} tensors written", self.next, self.tensors.len()),
            });
        }
        self.file.commit()
    }
}

fn pad(out: &mut Vec<u8>, alignment: u64) {
    let len = (out.len() as u64).div_ceil(alignment) * alignment;
    out.resize(len as usize, 0);
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => put_string(out, s),
        Value::Array(t, values) => {
            out.extend_from_slice(&t.id().to_le_bytes());
            out.extend_from_slice(&(values.len() as u64).to_le_bytes());
            for v in values {
                put_value(out, v);
            }
        }
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
    }
}

impl Value {
    /// An array of strings.
    pub fn strings<S: AsRef<str>>(items: &[S]) -> Value {
        Value::Array(
            ValueType::String,
            items
                .iter()
                .map(|s| Value::String(s.as_ref().to_string()))
                .collect(),
        )
    }
}

/// Serialises tensors (name, dtype, shape, little-endian bytes) as a safetensors file.
pub fn safetensors_bytes(
    tensors: &[(&str, Dtype, &[u64], &[u8])],
    metadata: &[(&str, &str)],
) -> Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        header.insert("__metadata__".into(), serde_json::Value::Object(m));
    }
    let mut offset = 0u64;
    for (name, dtype, shape, data) in tensors {
        let n: u64 = shape.iter().product::<u64>() * dtype.size();
        if n != data.len() as u64 {
            return Err(Error::TensorShape {
                tensor: name.to_string(),
                reason: format!(
                    "{} bytes do not hold shape {shape:?} of {}",
                    data.len(),
                    dtype.name()
                ),
            });
        }
        header.insert(
            name.to_string(),
            serde_json::json!({
                "dtype": dtype.name(),
                "shape": shape,
                "data_offsets": [offset, offset + n],
            }),
        );
        offset += n;
    }
    let mut json = serde_json::to_vec(&header).map_err(|source| Error::Json {
        what: "safetensors header".into(),
        source,
    })?;
    // Pad the header with spaces so the data starts 8-byte aligned, as HF's writer does.
    while (json.len() + 8) % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset as usize);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for (_, _, _, data) in tensors {
        out.extend_from_slice(data);
    }
    Ok(out)
}
