//! Writers: documents to JSONL or Parquet shards, compressed, cut by size.
//!
//! A [`ShardWriter`] writes `<prefix>-<shard:05>.<ext>` files in one folder (`.jsonl`,
//! `.jsonl.gz`, `.jsonl.zst`, `.parquet`) and starts the next shard once the current one
//! has passed [`WriteOptions::max_bytes`] (counted in bytes that reached the file; a
//! compressor is flushed after every quarter of `max_bytes` of input, and a Parquet row
//! group holds at most a quarter of `max_bytes` of text, so a shard overshoots by at most
//! about a quarter plus one document). Each shard is written under a hidden temporary name and renamed
//! to its final name only when complete (flushed and synced), so a final name never holds a
//! half file; a writer dropped without [`ShardWriter::finish`] removes its temporary file.
//!
//! JSONL: one object per line, `{"id", "text", …metadata}` (metadata keys `id`/`text` are
//! not written twice). Parquet: required string columns `id` and `text`, one optional
//! column per metadata key typed by its first value in the shard's first row group
//! (string, 64-bit integer, double, boolean), and the JSON column
//! [`EXTRA_COLUMN`](crate::read::parquet::EXTRA_COLUMN) for values a typed column cannot
//! hold (objects, arrays, nulls, keys first seen later, a value of another type), so that
//! reading a shard back gives exactly the documents written. Parquet pages are compressed
//! by the codec (gzip, zstd, none) inside the file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde_json::{Map, Value};

use crate::doc::Document;
use crate::read::parquet::EXTRA_COLUMN;
use crate::{Error, Result};

/// The file format of the shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Jsonl,
    Parquet,
}

/// How shards are compressed (JSONL: the whole file; Parquet: its pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// How a [`ShardWriter`] writes.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub format: OutputFormat,
    pub compression: Compression,
    /// A shard is closed once it holds this many bytes or more.
    pub max_bytes: u64,
    /// File names are `<prefix>-<shard:05>.<ext>`.
    pub prefix: String,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            format: OutputFormat::Jsonl,
            compression: Compression::Zstd,
            max_bytes: 512 << 20,
            prefix: "part".into(),
        }
    }
}

impl WriteOptions {
    /// The shards' extension: `jsonl`, `jsonl.gz`, `jsonl.zst` or `parquet`.
    pub fn extension(&self) -> &'static str {
        match (self.format, self.compression) {
            (OutputFormat::Parquet, _) => "parquet",
            (OutputFormat::Jsonl, Compression::None) => "jsonl",
            (OutputFormat::Jsonl, Compression::Gzip) => "jsonl.gz",
            (OutputFormat::Jsonl, Compression::Zstd) => "jsonl.zst",
        }
    }
}

/// One finished shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub path: PathBuf,
    pub documents: u64,
    /// The file's size.
    pub bytes: u64,
}

/// Counts the bytes that pass through to the file.
struct Counting {
    inner: BufWriter<File>,
    bytes: u64,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

enum Sink {
    Plain(Counting),
    Gzip(flate2::write::GzEncoder<Counting>),
    Zstd(zstd::stream::write::Encoder<'static, Counting>),
    Parquet(ParquetShard),
}

/// A Parquet shard: documents wait in `rows` until a row group's worth is buffered.
struct ParquetShard {
    /// The file, until the first row group fixes the schema and the writer takes it.
    out: Option<Counting>,
    writer: Option<SerializedFileWriter<Counting>>,
    columns: Vec<(String, Col)>,
    rows: Vec<Document>,
    buffered: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Str,
    Int,
    Float,
    Bool,
}

/// The shard being written.
struct Shard {
    tmp: PathBuf,
    path: PathBuf,
    sink: Sink,
    documents: u64,
    /// Uncompressed bytes written since the compressor was last flushed.
    unflushed: u64,
}

/// Writes documents into size-capped shards (see the module doc).
pub struct ShardWriter {
    dir: PathBuf,
    opts: WriteOptions,
    next_shard: u32,
    current: Option<Shard>,
    done: Vec<ShardInfo>,
    line: Vec<u8>,
}

/// Row groups hold about this many bytes of text (less when `max_bytes` is smaller).
const ROW_GROUP_BYTES: u64 = 32 << 20;

impl ShardWriter {
    /// A writer into `dir` (created if missing).
    pub fn new(dir: &Path, opts: WriteOptions) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        if opts.max_bytes == 0 {
            return Err(Error::Config(
                "max_bytes of a shard must be positive".into(),
            ));
        }
        Ok(ShardWriter {
            dir: dir.to_path_buf(),
            opts,
            next_shard: 0,
            current: None,
            done: Vec::new(),
            line: Vec::new(),
        })
    }

    /// Appends one document, starting a new shard when the current one is full.
    pub fn write(&mut self, doc: &Document) -> Result<()> {
        if self.current.is_none() {
            self.current = Some(self.open_shard()?);
        }
        let row_group = ROW_GROUP_BYTES.min(self.opts.max_bytes / 4).max(1) as usize;
        let compression = self.opts.compression;
        let flush_every = (self.opts.max_bytes / 4).clamp(256, 4 << 20);
        let Some(shard) = self.current.as_mut() else {
            return Ok(());
        };
        shard.documents += 1;
        let path = &shard.tmp;
        let full = match &mut shard.sink {
            Sink::Parquet(p) => {
                p.buffered += doc.text.len() + doc.id.len();
                p.rows.push(doc.clone());
                if p.buffered >= row_group {
                    p.flush_row_group(compression)
                        .map_err(|e| Error::format(path, e))?;
                }
                p.bytes()
            }
            sink => {
                self.line.clear();
                jsonl_line(doc, &mut self.line);
                sink.write_all(&self.line).map_err(|e| Error::io(path, e))?;
                // A compressor holds back what it has not yet emitted: flush it every
                // quarter shard so that the size seen is the size on disk.
                shard.unflushed += self.line.len() as u64;
                if shard.unflushed >= flush_every {
                    sink.flush().map_err(|e| Error::io(path, e))?;
                    shard.unflushed = 0;
                }
                sink.bytes()
            }
        };
        if full >= self.opts.max_bytes {
            self.close_shard()?;
        }
        Ok(())
    }

    /// Closes the last shard and returns every shard written, in order.
    pub fn finish(mut self) -> Result<Vec<ShardInfo>> {
        self.close_shard()?;
        Ok(std::mem::take(&mut self.done))
    }

    fn open_shard(&mut self) -> Result<Shard> {
        let name = format!(
            "{}-{:05}.{}",
            self.opts.prefix,
            self.next_shard,
            self.opts.extension()
        );
        self.next_shard += 1;
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let out = Counting {
            inner: BufWriter::with_capacity(1 << 20, file),
            bytes: 0,
        };
        let sink = match (self.opts.format, self.opts.compression) {
            (OutputFormat::Parquet, _) => Sink::Parquet(ParquetShard {
                out: Some(out),
                writer: None,
                columns: Vec::new(),
                rows: Vec::new(),
                buffered: 0,
            }),
            (OutputFormat::Jsonl, Compression::None) => Sink::Plain(out),
            (OutputFormat::Jsonl, Compression::Gzip) => Sink::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::default(),
            )),
            (OutputFormat::Jsonl, Compression::Zstd) => Sink::Zstd(
                zstd::stream::write::Encoder::new(out, 3).map_err(|e| Error::io(&tmp, e))?,
            ),
        };
        Ok(Shard {
            tmp,
            path,
            sink,
            documents: 0,
            unflushed: 0,
        })
    }

    fn close_shard(&mut self) -> Result<()> {
        let Some(shard) = self.current.take() else {
            return Ok(());
        };
        let tmp = shard.tmp.clone();
        let result = (|| -> Result<ShardInfo> {
            let mut counting = shard.sink.finish(self.opts.compression, &tmp)?;
            counting.inner.flush().map_err(|e| Error::io(&tmp, e))?;
            let file = counting
                .inner
                .into_inner()
                .map_err(|e| Error::io(&tmp, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io(&tmp, e))?;
            drop(file);
            std::fs::rename(&tmp, &shard.path).map_err(|e| Error::io(&shard.path, e))?;
            Ok(ShardInfo {
                path: shard.path.clone(),
                documents: shard.documents,
                bytes: counting.bytes,
            })
        })();
        match result {
            Ok(info) => {
                self.done.push(info);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        if let Some(shard) = self.current.take() {
            let tmp = shard.tmp.clone();
            drop(shard);
            let _ = std::fs::remove_file(tmp);
        }
    }
}

impl Sink {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(bytes),
            Sink::Gzip(w) => w.write_all(bytes),
            Sink::Zstd(w) => w.write_all(bytes),
            Sink::Parquet(_) => Ok(()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(_) | Sink::Parquet(_) => Ok(()),
            Sink::Gzip(w) => w.flush(),
            Sink::Zstd(w) => w.flush(),
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Sink::Plain(w) => w.bytes,
            Sink::Gzip(w) => w.get_ref().bytes,
            Sink::Zstd(w) => w.get_ref().bytes,
            Sink::Parquet(p) => p.bytes(),
        }
    }

    /// Ends the stream (compressor trailer, Parquet footer) and hands back the file.
    fn finish(self, compression: Compression, path: &Path) -> Result<Counting> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Gzip(w) => w.finish().map_err(|e| Error::io(path, e)),
            Sink::Zstd(w) => w.finish().map_err(|e| Error::io(path, e)),
            Sink::Parquet(p) => p.finish(compression).map_err(|e| Error::format(path, e)),
        }
    }
}

/// One JSONL line: `{"id":…,"text":…,…metadata}\n`.
fn jsonl_line(doc: &Document, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":");
    json_str(out, doc.id.as_str());
    out.extend_from_slice(b",\"text\":");
    json_str(out, doc.text.as_str());
    for (k, v) in &doc.metadata {
        if k == "id" || k == "text" {
            continue;
        }
        out.push(b',');
        json_str(out, k.as_str());
        out.push(b':');
        json(out, v);
    }
    out.extend_from_slice(b"}\n");
}

/// `s` as a JSON string onto `out`, byte for byte what `serde_json` writes: `"` and `\\`
/// escaped, the controls below 0x20 as `\\b \\t \\n \\f \\r` or `\\u00xx` (lower-case
/// hex), everything else (DEL, non-ASCII) as is. The bytes between escapes are found eight
/// at a time and copied as runs (serde_json looks up every byte in a table).
fn json_str(out: &mut Vec<u8>, s: &str) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of the first byte that is a control, `"` or `\\` is set (bytes after
    // it may be flagged spuriously by a borrow; only the first is relied on).
    fn flags(w: u64) -> u64 {
        let zero = |v: u64| v.wrapping_sub(ONES) & !v;
        (w.wrapping_sub(0x20 * ONES) & !w
            | zero(w ^ (b'"' as u64 * ONES))
            | zero(w ^ (b'\\' as u64 * ONES)))
            & HIGH
    }
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let (mut run, mut i) = (0, 0);
    while i < b.len() {
        if let Some(w) = b.get(i..i + 8) {
            let f = flags(u64::from_le_bytes([
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
            ]));
            if f == 0 {
                i += 8;
                continue;
            }
            i += (f.trailing_zeros() / 8) as usize;
        }
        let c = b[i];
        let short = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0..=0x1f => b'u',
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&b[run..i]);
        out.extend_from_slice(&[b'\\', short]);
        if short == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 15)],
            ]);
        }
        i += 1;
        run = i;
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

/// Serialises `v` as JSON onto `out` (into a Vec this cannot fail).
fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(out, v);
}

impl ParquetShard {
    fn bytes(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.bytes_written() as u64)
    }

    /// Writes the buffered documents as one row group (the first one fixes the schema).
    fn flush_row_group(&mut self, compression: Compression) -> std::result::Result<(), String> {
        if self.writer.is_none() {
            self.columns = infer_columns(&self.rows);
            let schema = schema(&self.columns).map_err(|e| e.to_string())?;
            let codec = match compression {
                Compression::None => parquet::basic::Compression::UNCOMPRESSED,
                Compression::Gzip => parquet::basic::Compression::GZIP(Default::default()),
                Compression::Zstd => parquet::basic::Compression::ZSTD(Default::default()),
            };
            let props = WriterProperties::builder()
                .set_compression(codec)
                .set_created_by(format!("fmlab-curate {}", env!("CARGO_PKG_VERSION")))
                .build();
            let out = self.out.take().ok_or("the shard's file is gone")?;
            let writer = SerializedFileWriter::new(out, Arc::new(schema), Arc::new(props))
                .map_err(|e| e.to_string())?;
            self.writer = Some(writer);
        }
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        self.buffered = 0;
        let Some(writer) = self.writer.as_mut() else {
            return Err("no Parquet writer".into());
        };
        write_row_group(writer, &self.columns, &rows).map_err(|e| e.to_string())
    }

    fn finish(mut self, compression: Compression) -> std::result::Result<Counting, String> {
        self.flush_row_group(compression)?;
        match self.writer.take() {
            Some(w) => w.into_inner().map_err(|e| e.to_string()),
            None => Err("no Parquet writer".into()),
        }
    }
}

/// The typed metadata columns: every key of the first row group whose first non-null
/// value is a string, a 64-bit integer, a double or a boolean, in key order.
fn infer_columns(rows: &[Document]) -> Vec<(String, Col)> {
    let mut cols: std::collections::BTreeMap<&str, Option<Col>> = Default::default();
    for doc in rows {
        for (k, v) in &doc.metadata {
            if k == "id" || k == "text" || k == EXTRA_COLUMN {
                continue;
            }
            let slot = cols.entry(k.as_str()).or_insert(None);
            if slot.is_none() {
                *slot = col_of(v);
            }
        }
    }
    cols.into_iter()
        .filter_map(|(k, c)| c.map(|c| (k.to_string(), c)))
        .collect()
}

fn col_of(v: &Value) -> Option<Col> {
    match v {
        Value::String(_) => Some(Col::Str),
        Value::Bool(_) => Some(Col::Bool),
        Value::Number(n) if n.is_i64() => Some(Col::Int),
        Value::Number(n) if n.is_f64() => Some(Col::Float),
        _ => None,
    }
}

fn schema(columns: &[(String, Col)]) -> parquet::errors::Result<Type> {
    let string = |name: &str, rep: Repetition| {
        Type::primitive_type_builder(name, Physical::BYTE_ARRAY)
            .with_repetition(rep)
            .with_logical_type(Some(LogicalType::String))
            .build()
            .map(Arc::new)
    };
    let mut fields = vec![
        string("id", Repetition::REQUIRED)?,
        string("text", Repetition::REQUIRED)?,
    ];
    for (name, col) in columns {
        fields.push(match col {
            Col::Str => string(name, Repetition::OPTIONAL)?,
            Col::Int => Arc::new(
                Type::primitive_type_builder(name, Physical::INT64)
                    .with_repetition(Repetition::OPTIONAL)
                    .build()?,
            ),
            Col::Float => Arc::new(
                Type::primitive_type_builder(name, Physical::DOUBLE)
                    .with_repetition(Repetition::OPTIONAL)
                    .build()?,
            ),
            Col::Bool => Arc::new(
                Type::primitive_type_builder(name, Physical::BOOLEAN)
                    .with_repetition(Repetition::OPTIONAL)
                    .build()?,
            ),
        });
    }
    fields.push(Arc::new(
        Type::primitive_type_builder(EXTRA_COLUMN, Physical::BYTE_ARRAY)
            .with_repetition(Repetition::OPTIONAL)
            .with_logical_type(Some(LogicalType::Json))
            .build()?,
    ));
    Type::group_type_builder("document")
        .with_fields(fields)
        .build()
}

/// Writes `rows` as one row group: id, text, the typed columns, then the extra JSON column
/// with every value that did not fit its column.
fn write_row_group(
    writer: &mut SerializedFileWriter<Counting>,
    columns: &[(String, Col)],
    rows: &[Document],
) -> parquet::errors::Result<()> {
    let mut extra: Vec<Map<String, Value>> = vec![Map::new(); rows.len()];
    for (doc, extra) in rows.iter().zip(extra.iter_mut()) {
        for (k, v) in &doc.metadata {
            let fits = columns
                .binary_search_by(|(name, _)| name.as_str().cmp(k))
                .ok()
                .is_some_and(|i| col_of(v) == Some(columns[i].1));
            if !fits {
                extra.insert(k.clone(), v.clone());
            }
        }
    }
    let mut rg = writer.next_row_group()?;
    let mut index = 0usize;
    while let Some(mut col) = rg.next_column()? {
        let all = |f: &dyn Fn(&Document) -> Option<Value>| -> Vec<Option<Value>> {
            rows.iter().map(f).collect()
        };
        match index {
            0 | 1 => {
                let values: Vec<ByteArray> = rows
                    .iter()
                    .map(|d| {
                        ByteArray::from(if index == 0 {
                            d.id.as_str()
                        } else {
                            d.text.as_str()
                        })
                    })
                    .collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&values, None, None)?;
            }
            i if i - 2 < columns.len() => {
                let (name, kind) = &columns[i - 2];
                let values = all(&|d| {
                    d.metadata
                        .get(name)
                        .filter(|v| col_of(v) == Some(*kind))
                        .cloned()
                });
                write_optional(&mut col, *kind, &values)?;
            }
            _ => {
                let values: Vec<Option<Value>> = extra
                    .iter()
                    .map(|m| {
                        (!m.is_empty()).then(|| Value::String(Value::Object(m.clone()).to_string()))
                    })
                    .collect();
                write_optional(&mut col, Col::Str, &values)?;
            }
        }
        col.close()?;
        index += 1;
    }
    rg.close()?;
    Ok(())
}

/// Writes an optional column: definition level 1 where there is a value, 0 for none.
fn write_optional(
    col: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    kind: Col,
    values: &[Option<Value>],
) -> parquet::errors::Result<()> {
    let defs: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
    let present = values.iter().flatten();
    match kind {
        Col::Str => {
            let v: Vec<ByteArray> = present
                .map(|v| ByteArray::from(v.as_str().unwrap_or_default()))
                .collect();
            col.typed::<ByteArrayType>()
                .write_batch(&v, Some(&defs), None)?;
        }
        Col::Int => {
            let v: Vec<i64> = present.map(|v| v.as_i64().unwrap_or_default()).collect();
            col.typed::<Int64Type>()
                .write_batch(&v, Some(&defs), None)?;
        }
        Col::Float => {
            let v: Vec<f64> = present.map(|v| v.as_f64().unwrap_or_default()).collect();
            col.typed::<DoubleType>()
                .write_batch(&v, Some(&defs), None)?;
        }
        Col::Bool => {
            let v: Vec<bool> = present.map(|v| v.as_bool().unwrap_or_default()).collect();
            col.typed::<BoolType>().write_batch(&v, Some(&defs), None)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_str_equals_serde_json() {
        // Every byte class in every position of an 8-byte word, runs longer than a word,
        // and multi-byte characters across word boundaries.
        let pieces = [
            "a",
            "Z",
            " ",
            "\"",
            "\\",
            "\n",
            "\r",
            "\t",
            "\u{8}",
            "\u{c}",
            "\u{0}",
            "\u{1}",
            "\u{1f}",
            "\u{7f}",
            "/",
            "é",
            "€",
            "😀",
            "\u{2028}",
            "abcdefghij",
            "0123456789abcdef",
        ];
        let mut state = 5u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let mut out = Vec::new();
        for round in 0..20_000 {
            let len = next() % 40;
            let s: String = (0..len).map(|_| pieces[next() % pieces.len()]).collect();
            let s = if round == 0 { String::new() } else { s };
            out.clear();
            out.push(b'x');
            super::json_str(&mut out, &s);
            let want = format!("x{}", serde_json::to_string(&s).unwrap_or_default());
            assert_eq!(String::from_utf8_lossy(&out), want, "{s:?}");
        }
        for c in 0..=127u8 {
            let s = format!("abcdefg{}hijklmnop{}", c as char, c as char);
            out.clear();
            super::json_str(&mut out, &s);
            assert_eq!(
                String::from_utf8_lossy(&out),
                serde_json::to_string(&s).unwrap_or_default(),
                "{c}"
            );
        }
    }
}
