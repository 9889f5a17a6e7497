//! Token shards: tokenized documents on disk for pre-training, read through a memory map.
//!
//! A shard file is a 40-byte header, the start offset of every document (u64, plus one for
//! the end), then the tokens as little-endian u16 (vocabularies up to 65 536) or u32:
//!
//! ```text
//! magic "FMLTOKS1" | width u32 (2|4) | reserved u32 | tokens u64 | docs u64 | vocab u64
//! offsets[docs + 1] u64 | tokens[tokens] (u16|u32)
//! ```
//!
//! A folder of shards has a `manifest.json` ([`ShardManifest`]): the tokenizer's hash, the
//! shards with their split (train/val, by document), and token counts per domain and
//! language. [`write_shards`] tokenizes corpus files ([`crate::corpus`]) into such a folder
//! through a [`ShardWriter`]; [`Windows`] draws training windows from the train shards in a
//! seeded order and resumes from a [`Cursor`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fmlab_formats::write_atomically;
use fmlab_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::corpus::{Documents, PlainText};
use crate::rng::Rng;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"FMLTOKS1";
const HEADER: usize = 40;

/// One shard in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardInfo {
    pub file: String,
    /// "train" or "val".
    pub split: String,
    pub tokens: u64,
    pub docs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardManifest {
    pub format: String,
    /// SHA-256 of the tokenizer's file (or a name when it came from a model).
    pub tokenizer: String,
    pub vocab_size: u64,
    /// Bytes per token in the shards.
    pub width: u32,
    pub seed: u64,
    pub val_fraction: f64,
    pub shards: Vec<ShardInfo>,
    /// Tokens per domain and per language (documents that carried them).
    pub tokens_by_domain: BTreeMap<String, u64>,
    pub tokens_by_lang: BTreeMap<String, u64>,
    pub train_tokens: u64,
    pub val_tokens: u64,
}

impl ShardManifest {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Parse {
            path,
            line: 0,
            message: e.to_string(),
        })
    }
}

/// Writes documents into train and val shards.
pub struct ShardWriter {
    dir: PathBuf,
    width: u32,
    vocab_size: u64,
    shard_tokens: u64,
    val_fraction: f64,
    seed: u64,
    tokenizer: String,
    open: [Option<OpenShard>; 2],
    done: Vec<ShardInfo>,
    by_domain: BTreeMap<String, u64>,
    by_lang: BTreeMap<String, u64>,
}

struct OpenShard {
    name: String,
    offsets: Vec<u64>,
    tokens: Vec<u8>,
}

impl ShardWriter {
    /// Shards of at most `shard_tokens` tokens in `dir`; a document goes to val with
    /// probability `val_fraction` (decided by a hash of its index and the seed).
    pub fn new(
        dir: &Path,
        vocab_size: u64,
        tokenizer: &str,
        val_fraction: f64,
        seed: u64,
        shard_tokens: u64,
    ) -> Result<Self> {
        if !(0.0..1.0).contains(&val_fraction) {
            return Err(Error::Config(format!(
                "val fraction must be in [0, 1), got {val_fraction}"
            )));
        }
        if vocab_size == 0 || vocab_size > u32::MAX as u64 {
            return Err(Error::Config(format!(
                "vocabulary size {vocab_size} is out of range"
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            width: if vocab_size <= 1 << 16 { 2 } else { 4 },
            vocab_size,
            shard_tokens: shard_tokens.max(1024),
            val_fraction,
            seed,
            tokenizer: tokenizer.to_string(),
            open: [None, None],
            done: Vec::new(),
            by_domain: BTreeMap::new(),
            by_lang: BTreeMap::new(),
        })
    }

    /// Adds document `index` (its token ids, which must be below the vocabulary size).
    pub fn add(
        &mut self,
        index: u64,
        ids: &[u32],
        domain: Option<&str>,
        lang: Option<&str>,
    ) -> Result<()> {
        if let Some(&bad) = ids.iter().find(|&&t| t as u64 >= self.vocab_size) {
            return Err(Error::Config(format!(
                "token {bad} is outside the vocabulary of {}",
                self.vocab_size
            )));
        }
        let mut h = Rng::new(self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let split = usize::from(h.f64() < self.val_fraction);
        if self.open[split].is_none() {
            let name = format!(
                "{}-{:05}.tok",
                if split == 1 { "val" } else { "train" },
                self.done
                    .iter()
                    .filter(|s| s.split == ["train", "val"][split])
                    .count()
            );
            self.open[split] = Some(OpenShard {
                name,
                offsets: vec![0],
                tokens: Vec::new(),
            });
        }
        if let Some(s) = self.open[split].as_mut() {
            for &t in ids {
                if self.width == 2 {
                    s.tokens.extend_from_slice(&(t as u16).to_le_bytes());
                } else {
                    s.tokens.extend_from_slice(&t.to_le_bytes());
                }
            }
            s.offsets
                .push((s.tokens.len() / self.width as usize) as u64);
        }
        let n = ids.len() as u64;
        if let Some(d) = domain {
            *self.by_domain.entry(d.to_string()).or_insert(0) += n;
        }
        if let Some(l) = lang {
            *self.by_lang.entry(l.to_string()).or_insert(0) += n;
        }
        let full = self.open[split]
            .as_ref()
            .is_some_and(|s| (s.tokens.len() / self.width as usize) as u64 >= self.shard_tokens);
        if full {
            self.close(split)?;
        }
        Ok(())
    }

    fn close(&mut self, split: usize) -> Result<()> {
        let Some(s) = self.open[split].take() else {
            return Ok(());
        };
        let n_tokens = (s.tokens.len() / self.width as usize) as u64;
        let n_docs = (s.offsets.len() - 1) as u64;
        let mut bytes = Vec::with_capacity(HEADER + s.offsets.len() * 8 + s.tokens.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.width.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&n_tokens.to_le_bytes());
        bytes.extend_from_slice(&n_docs.to_le_bytes());
        bytes.extend_from_slice(&self.vocab_size.to_le_bytes());
        for o in &s.offsets {
            bytes.extend_from_slice(&o.to_le_bytes());
        }
        bytes.extend_from_slice(&s.tokens);
        let path = self.dir.join(&s.name);
        write_atomically(&path, &bytes)?;
        self.done.push(ShardInfo {
            file: s.name,
            split: ["train", "val"][split].into(),
            tokens: n_tokens,
            docs: n_docs,
        });
        Ok(())
    }

    /// Closes the open shards and writes the manifest.
    pub fn finish(mut self) -> Result<ShardManifest> {
        self.close(0)?;
        self.close(1)?;
        let count = |split: &str| {
            self.done
                .iter()
                .filter(|s| s.split == split)
                .map(|s| s.tokens)
                .sum()
        };
        let manifest = ShardManifest {
            format: "fmlab-shards-1".into(),
            tokenizer: self.tokenizer.clone(),
            vocab_size: self.vocab_size,
            width: self.width,
            seed: self.seed,
            val_fraction: self.val_fraction,
            train_tokens: count("train"),
            val_tokens: count("val"),
            shards: self.done.clone(),
            tokens_by_domain: self.by_domain.clone(),
            tokens_by_lang: self.by_lang.clone(),
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(Error::Json)?;
        write_atomically(&self.dir.join("manifest.json"), &json)?;
        Ok(manifest)
    }
}

/// How [`write_shards`] splits and sizes the shards.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardSettings {
    /// The tokenizer's id in the manifest ([`tokenizer_id`]).
    pub tokenizer: String,
    /// Share of documents held out for validation.
    pub val_fraction: f64,
    /// Seed of the train/val split.
    pub seed: u64,
    /// Tokens per shard at most.
    pub shard_tokens: u64,
    /// A `tokenizer.json` to keep beside the shards, so that pre-training finds the
    /// tokenizer they were made with.
    pub tokenizer_file: Option<PathBuf>,
}

/// What [`write_shards`] is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardProgress {
    /// Documents read so far (every 20 000 JSONL documents).
    Documents(u64),
    /// Every file is read.
    Read,
}

/// What [`write_shards`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokenized {
    pub manifest: ShardManifest,
    pub documents: u64,
}

/// The id of a tokenizer given as `spec` (a tokenizer.json, a GGUF model or a model name):
/// `sha256:` and the hash of its file, or the name itself when it is no file.
pub fn tokenizer_id(spec: &str) -> Result<String> {
    let path = Path::new(spec);
    if !path.is_file() {
        return Ok(spec.to_string());
    }
    let bytes = std::fs::read(path).map_err(|error| Error::Read {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(format!("sha256:{:x}", Sha256::digest(&bytes)))
}

/// Encodes the documents of corpus files ([`crate::corpus`]: JSONL `text` with optional
/// `domain` and `lang`, or whole text files), each ending with the end-of-text token, into
/// token shards with a manifest in `out` (and `settings.tokenizer_file` copied in as
/// `tokenizer.json`).
pub fn write_shards(
    files: &[PathBuf],
    tok: &Tokenizer,
    out: &Path,
    settings: &ShardSettings,
    mut progress: impl FnMut(ShardProgress),
) -> Result<Tokenized> {
    let eos = tok.vocab.eos;
    let mut writer = ShardWriter::new(
        out,
        tok.vocab_size() as u64,
        &settings.tokenizer,
        settings.val_fraction,
        settings.seed,
        settings.shard_tokens,
    )?;
    let mut index = 0u64;
    let mut ids = Vec::new();
    for doc in Documents::new(files, PlainText::Whole) {
        let doc = doc?;
        ids.clear();
        ids.extend(tok.encode(&doc.text, false, false));
        // Documents end with the end-of-text token, so a model learns where they stop.
        ids.extend(eos);
        writer.add(index, &ids, doc.domain.as_deref(), doc.lang.as_deref())?;
        index += 1;
        if doc.line.is_some() && index.is_multiple_of(20_000) {
            progress(ShardProgress::Documents(index));
        }
    }
    progress(ShardProgress::Read);
    if index == 0 {
        return Err(Error::NoDocuments);
    }
    if let Some(path) = &settings.tokenizer_file {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        write_atomically(&out.join("tokenizer.json"), &bytes)?;
    }
    Ok(Tokenized {
        manifest: writer.finish()?,
        documents: index,
    })
}

/// A shard opened through a memory map; every count in the header is checked against the
/// file's length before anything is read.
pub struct Shard {
    map: memmap2::Mmap,
    width: usize,
    n_tokens: usize,
    n_docs: usize,
    path: PathBuf,
}

impl Shard {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and shards are written once, atomically; a file
        // changed under us could only give wrong tokens, which the header checks bound.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let bad = |message: String| Error::Parse {
            path: path.to_path_buf(),
            line: 0,
            message,
        };
        if map.len() < HEADER || &map[..8] != MAGIC {
            return Err(bad("not a token shard (bad magic or too short)".into()));
        }
        let u32_at =
            |at: usize| u32::from_le_bytes([map[at], map[at + 1], map[at + 2], map[at + 3]]);
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&map[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let width = u32_at(8) as usize;
        if width != 2 && width != 4 {
            return Err(bad(format!("token width {width} (expected 2 or 4)")));
        }
        let (n_tokens, n_docs) = (u64_at(16), u64_at(24));
        let need = (n_docs as u128 + 1) * 8 + n_tokens as u128 * width as u128 + HEADER as u128;
        if need != map.len() as u128 {
            return Err(bad(format!(
                "header says {n_tokens} tokens in {n_docs} documents ({need} bytes) but the file has {} bytes (truncated?)",
                map.len()
            )));
        }
        let shard = Self {
            map,
            width,
            n_tokens: n_tokens as usize,
            n_docs: n_docs as usize,
            path: path.to_path_buf(),
        };
        // Offsets must rise from 0 to the token count.
        let mut last = 0;
        for i in 0..=shard.n_docs {
            let o = shard.offset(i);
            if o < last || o > shard.n_tokens || (i == 0 && o != 0) {
                return Err(bad(format!("document offset {i} ({o}) is out of order")));
            }
            last = o;
        }
        if last != shard.n_tokens {
            return Err(bad(
                "the last document does not end at the last token".into()
            ));
        }
        Ok(shard)
    }

    fn offset(&self, i: usize) -> usize {
        let at = HEADER + i * 8;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.map[at..at + 8]);
        u64::from_le_bytes(b) as usize
    }

    pub fn len(&self) -> usize {
        self.n_tokens
    }

    pub fn is_empty(&self) -> bool {
        self.n_tokens == 0
    }

    pub fn docs(&self) -> usize {
        self.n_docs
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Token `i`.
    pub fn token(&self, i: usize) -> u32 {
        let at = HEADER + (self.n_docs + 1) * 8 + i * self.width;
        if self.width == 2 {
            u16::from_le_bytes([self.map[at], self.map[at + 1]]) as u32
        } else {
            u32::from_le_bytes([
                self.map[at],
                self.map[at + 1],
                self.map[at + 2],
                self.map[at + 3],
            ])
        }
    }

    /// Tokens `start..end` into `out`.
    pub fn tokens(&self, start: usize, end: usize, out: &mut Vec<u32>) {
        out.extend((start..end.min(self.n_tokens)).map(|i| self.token(i)));
    }

    /// The tokens of document `d`.
    pub fn document(&self, d: usize) -> Vec<u32> {
        let mut out = Vec::new();
        if d < self.n_docs {
            self.tokens(self.offset(d), self.offset(d + 1), &mut out);
        }
        out
    }
}

/// Where a [`Windows`] iterator stands: save it with a checkpoint, resume from it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Cursor {
    pub epoch: u64,
    pub position: u64,
}

/// Training windows of `seq_len + 1` tokens (inputs and next-token targets overlap by
/// all but one) from the train shards: the stream is cut into consecutive windows, which
/// are visited in a seeded random order, a new order each epoch.
pub struct Windows {
    shards: Vec<Shard>,
    /// Per window: (shard, start).
    windows: Vec<(u32, u64)>,
    order: Vec<u32>,
    seq_len: usize,
    seed: u64,
    cursor: Cursor,
}

impl Windows {
    pub fn open(
        dir: &Path,
        split: &str,
        seq_len: usize,
        seed: u64,
        cursor: Cursor,
    ) -> Result<Self> {
        let manifest = ShardManifest::read(dir)?;
        let shards = manifest
            .shards
            .iter()
            .filter(|s| s.split == split)
            .map(|s| Shard::open(&dir.join(&s.file)))
            .collect::<Result<Vec<_>>>()?;
        Self::new(shards, seq_len, seed, cursor)
    }

    pub fn new(shards: Vec<Shard>, seq_len: usize, seed: u64, cursor: Cursor) -> Result<Self> {
        if seq_len == 0 {
            return Err(Error::Config("sequence length must be at least 1".into()));
        }
        let span = seq_len + 1;
        let mut windows = Vec::new();
        for (i, s) in shards.iter().enumerate() {
            let mut start = 0;
            while start + span <= s.len() {
                windows.push((i as u32, start as u64));
                start += span;
            }
        }
        if windows.is_empty() {
            return Err(Error::Config(format!(
                "no window of {span} tokens fits in the shards"
            )));
        }
        let mut w = Self {
            shards,
            windows,
            order: Vec::new(),
            seq_len,
            seed,
            cursor,
        };
        w.shuffle();
        Ok(w)
    }

    fn shuffle(&mut self) {
        self.order = (0..self.windows.len() as u32).collect();
        let mut rng = Rng::new(self.seed ^ self.cursor.epoch.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.shuffle(&mut self.order);
    }

    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Windows per epoch.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The next window's `seq_len + 1` tokens.
    pub fn next_window(&mut self) -> Vec<u32> {
        if self.cursor.position as usize >= self.order.len() {
            self.cursor.epoch += 1;
            self.cursor.position = 0;
            self.shuffle();
        }
        let (shard, start) = self.windows[self.order[self.cursor.position as usize] as usize];
        self.cursor.position += 1;
        let mut out = Vec::with_capacity(self.seq_len + 1);
        let start = start as usize;
        self.shards[shard as usize].tokens(start, start + self.seq_len + 1, &mut out);
        out
    }
}
