//! Corpus files: the one reader of "JSONL with a `text` field, or plain text" documents,
//! for tokenizer training ([`feed_trainer`], [`train_tokenizer`]), token shards
//! ([`crate::shards::write_shards`]) and text mixed into finetuning (fmlab-train's
//! `chat_data::read_texts`).
//!
//! A file whose name ends in `.jsonl` holds one document per non-blank line: an object with
//! a `"text"` field and optionally `"domain"` and `"lang"` (a world's `corpus.jsonl`). Any
//! other file is UTF-8 text, read as one document ([`PlainText::Whole`]) or, to keep memory
//! flat on large files, in paragraphs ([`PlainText::Paragraphs`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Lines};
use std::iter::Enumerate;
use std::path::{Path, PathBuf};

use fmlab_tokenizer::{BpeTrainer, TrainedBpe};

use crate::{Error, Result};

/// A paragraph of a plain text file read in paragraphs ends at the first blank line after
/// this many bytes.
const PARAGRAPH_BYTES: usize = 4096;

/// One document of a corpus file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Document {
    pub text: String,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
    /// The line (from 1) of a JSONL document; `None` for plain text.
    #[serde(skip)]
    pub line: Option<usize>,
}

/// How a plain (non-JSONL) file is cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainText {
    /// The whole file is one document (an empty file too).
    Whole,
    /// Pieces of lines ending at the first blank line after 4 kB (an empty file gives none).
    Paragraphs,
}

/// The documents of corpus files, in file order, streamed: a JSONL file is read a line at
/// a time, only as far as the caller iterates. The first error ends the stream.
pub struct Documents {
    /// Files not opened yet.
    files: VecDeque<PathBuf>,
    plain: PlainText,
    open: Option<OpenFile>,
    failed: bool,
}

enum OpenFile {
    Jsonl {
        path: PathBuf,
        lines: Enumerate<Lines<BufReader<File>>>,
    },
    Text {
        path: PathBuf,
        reader: BufReader<File>,
        /// A whole file is read once.
        done: bool,
    },
}

impl Documents {
    pub fn new(files: &[PathBuf], plain: PlainText) -> Self {
        Self {
            files: files.iter().cloned().collect(),
            plain,
            open: None,
            failed: false,
        }
    }

    fn open_file(path: PathBuf) -> Result<OpenFile> {
        let file = File::open(&path).map_err(|error| Error::Read {
            path: path.clone(),
            error,
        })?;
        let reader = BufReader::with_capacity(1 << 20, file);
        Ok(if path.extension().is_some_and(|e| e == "jsonl") {
            OpenFile::Jsonl {
                path,
                lines: reader.lines().enumerate(),
            }
        } else {
            OpenFile::Text {
                path,
                reader,
                done: false,
            }
        })
    }
}

impl OpenFile {
    /// The file's next document, or `None` at its end.
    fn next_document(&mut self, plain: PlainText) -> Option<Result<Document>> {
        match self {
            OpenFile::Jsonl { path, lines } => {
                for (i, line) in lines.by_ref() {
                    let line = match line {
                        Ok(l) => l,
                        Err(error) => {
                            let path = path.clone();
                            return Some(Err(Error::Read { path, error }));
                        }
                    };
                    if line.trim().is_empty() {
                        continue;
                    }
                    return Some(parse_line(path, i + 1, &line));
                }
                None
            }
            OpenFile::Text { path, reader, done } => {
                if *done {
                    return None;
                }
                let text = match plain {
                    PlainText::Whole => {
                        *done = true;
                        std::io::read_to_string(reader).map(Some)
                    }
                    PlainText::Paragraphs => read_paragraph(reader),
                };
                match text {
                    Ok(Some(text)) => Some(Ok(Document {
                        text,
                        domain: None,
                        lang: None,
                        line: None,
                    })),
                    Ok(None) => None,
                    Err(error) => Some(Err(Error::NotText {
                        path: path.clone(),
                        error,
                    })),
                }
            }
        }
    }
}

fn parse_line(path: &Path, line: usize, text: &str) -> Result<Document> {
    let mut doc: Document = serde_json::from_str(text).map_err(|error| Error::NotADocument {
        path: path.to_path_buf(),
        line,
        error,
    })?;
    doc.line = Some(line);
    Ok(doc)
}

/// Lines up to and including the first blank one after [`PARAGRAPH_BYTES`] (or the end);
/// `None` at the end of the file.
fn read_paragraph(reader: &mut BufReader<File>) -> std::io::Result<Option<String>> {
    let mut para = String::new();
    let mut read_any = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        read_any = true;
        let blank = line.trim().is_empty();
        para.push_str(&line);
        if blank && para.len() > PARAGRAPH_BYTES {
            break;
        }
    }
    Ok(read_any.then_some(para))
}

impl Iterator for Documents {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Result<Document>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(open) = self.open.as_mut() {
                match open.next_document(self.plain) {
                    Some(Ok(doc)) => return Some(Ok(doc)),
                    Some(Err(e)) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    None => self.open = None,
                }
            }
            let path = self.files.pop_front()?;
            match Documents::open_file(path) {
                Ok(open) => self.open = Some(open),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Feeds the documents of `files` (plain text in paragraphs) to `trainer`. `progress` is
/// told the bytes seen so far after every 10 000th line of a JSONL file.
pub fn feed_trainer(
    trainer: &mut BpeTrainer,
    files: &[PathBuf],
    mut progress: impl FnMut(u64),
) -> Result<()> {
    for doc in Documents::new(files, PlainText::Paragraphs) {
        let doc = doc?;
        trainer.feed(&doc.text);
        if doc.line.is_some_and(|l| (l - 1).is_multiple_of(10_000)) {
            progress(trainer.bytes_seen());
        }
    }
    Ok(())
}

/// What [`train_tokenizer`] is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainProgress {
    /// Reading the files: bytes seen so far (every 10 000 JSONL lines).
    Reading { bytes: u64 },
    /// The files are read; merging starts.
    Read { bytes: u64 },
    /// Merges learned so far.
    Merges { done: usize, total: usize },
    /// Merging is over.
    Merged,
}

/// A trained tokenizer and the bytes of text it was trained on.
pub struct TrainedTokenizer {
    pub bpe: TrainedBpe,
    pub bytes: u64,
}

/// Trains a byte-level BPE of `vocab_size` tokens (with `specials`) on the documents of
/// `files` and writes it to `out` as a Hugging Face `tokenizer.json`.
pub fn train_tokenizer(
    files: &[PathBuf],
    vocab_size: usize,
    specials: &[&str],
    out: &Path,
    mut progress: impl FnMut(TrainProgress),
) -> Result<TrainedTokenizer> {
    let mut trainer = BpeTrainer::new(vocab_size, specials)?;
    feed_trainer(&mut trainer, files, |bytes| {
        progress(TrainProgress::Reading { bytes })
    })?;
    let bytes = trainer.bytes_seen();
    progress(TrainProgress::Read { bytes });
    if bytes == 0 {
        return Err(Error::NoText);
    }
    let bpe = trainer.train(|done, total| progress(TrainProgress::Merges { done, total }))?;
    progress(TrainProgress::Merged);
    let json = serde_json::to_vec(&bpe.to_tokenizer_json()).map_err(Error::Json)?;
    fmlab_formats::write_atomically(out, &json)?;
    Ok(TrainedTokenizer { bpe, bytes })
}
