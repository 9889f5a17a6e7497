//! WARC and WET files (ISO 28500; Common Crawl's `.warc.gz` / `.warc.wet.gz`).
//!
//! A record is a version line (`WARC/1.0`), header lines up to a blank line, then exactly
//! `Content-Length` bytes of content and a blank line. From a WARC file we keep `response`
//! records whose HTTP payload is HTML (by its `Content-Type`, or by sniffing `<html` when it
//! has none): the HTTP headers are parsed, a chunked or gzip/deflate body decoded, the bytes
//! decoded by the charset (UTF-8, or Latin-1/Windows-1252 when declared) and the main text
//! extracted by [`html::extract`](super::html::extract). From a WET file we keep
//! `conversion` records, whose content is already text. Every other record (request,
//! metadata, warcinfo, non-HTML responses) is skipped, and so is a record whose text is
//! empty. The id is the `WARC-Record-ID`; the metadata holds `url` (`WARC-Target-URI`),
//! `date` (`WARC-Date`), `warc_record_id` and `content_type`.
//!
//! Errors name the record's number and its byte offset in the (decompressed) stream.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::ReadOptions;
use crate::doc::{DocKey, Document};
use crate::{Error, Result};

/// Which records a [`WarcReader`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `response` records with HTML, text extracted.
    Warc,
    /// `conversion` records (text).
    Wet,
}

/// One record's headers (names lower-cased) and content.
struct Record {
    headers: Vec<(String, String)>,
    content: Vec<u8>,
}

impl Record {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Streams the documents of one WARC or WET file (see the module doc).
pub struct WarcReader {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    file: u32,
    kind: Kind,
    min_text: usize,
    offset: u64,
    record: u64,
    index: u32,
    line: Vec<u8>,
    done: bool,
}

impl WarcReader {
    pub fn new(
        path: &Path,
        reader: Box<dyn BufRead + Send>,
        file: u32,
        kind: Kind,
        opts: &ReadOptions,
    ) -> Self {
        WarcReader {
            path: path.to_path_buf(),
            reader,
            file,
            kind,
            min_text: opts.min_text.max(1),
            offset: 0,
            record: 0,
            index: 0,
            line: Vec::new(),
            done: false,
        }
    }

    fn err(&self, at: u64, message: impl std::fmt::Display) -> Error {
        Error::format(
            &self.path,
            format!("record {} at byte {at}: {message}", self.record),
        )
    }

    /// Reads one line (with its end) into `self.line`; false at the end of the stream.
    fn read_line(&mut self) -> Result<bool> {
        self.line.clear();
        let at = self.offset;
        let n = self
            .reader
            .read_until(b'\n', &mut self.line)
            .map_err(|e| self.err(at, e))?;
        self.offset += n as u64;
        Ok(n > 0)
    }

    /// The next record, or `None` at a clean end of the stream.
    fn next_record(&mut self) -> Result<Option<Record>> {
        // Records are separated by blank lines.
        loop {
            if !self.read_line()? {
                return Ok(None);
            }
            if !self.line.iter().all(u8::is_ascii_whitespace) {
                break;
            }
        }
        let start = self.offset - self.line.len() as u64;
        self.record += 1;
        if !self.line.starts_with(b"WARC/") {
            let shown = String::from_utf8_lossy(&self.line[..self.line.len().min(40)]);
            return Err(self.err(
                start,
                format!("expected a WARC/1.x version line, found {shown:?}"),
            ));
        }
        let mut headers = Vec::new();
        loop {
            if !self.read_line()? {
                return Err(self.err(start, "truncated in its headers"));
            }
            let line = String::from_utf8_lossy(&self.line);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .ok_or_else(|| self.err(start, "no Content-Length header"))?
            .1
            .parse::<u64>()
            .map_err(|e| self.err(start, format!("bad Content-Length: {e}")))?;
        let mut content = Vec::new();
        let got = (&mut self.reader)
            .take(length)
            .read_to_end(&mut content)
            .map_err(|e| self.err(start, e))?;
        self.offset += got as u64;
        if (got as u64) < length {
            return Err(self.err(
                start,
                format!("truncated: Content-Length is {length} bytes, the file holds {got}"),
            ));
        }
        Ok(Some(Record { headers, content }))
    }

    fn next_doc(&mut self) -> Result<Option<Document>> {
        while let Some(record) = self.next_record()? {
            let wanted = match self.kind {
                Kind::Warc => "response",
                Kind::Wet => "conversion",
            };
            if !record
                .header("warc-type")
                .is_some_and(|t| t.eq_ignore_ascii_case(wanted))
            {
                continue;
            }
            let (text, content_type) = match self.kind {
                Kind::Wet => (
                    String::from_utf8_lossy(&record.content).into_owned(),
                    record
                        .header("content-type")
                        .unwrap_or("text/plain")
                        .to_string(),
                ),
                Kind::Warc => match html_of_response(&record.content) {
                    Some((html, ct)) => (super::html::extract(&html), ct),
                    None => continue,
                },
            };
            if text.trim().len() < self.min_text {
                continue;
            }
            return Ok(Some(self.document(&record, text, content_type)));
        }
        Ok(None)
    }

    fn document(&mut self, record: &Record, text: String, content_type: String) -> Document {
        let record_id = record.header("warc-record-id").unwrap_or("").to_string();
        let mut metadata = Map::new();
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                metadata.insert(k.to_string(), Value::String(v.to_string()));
            }
        };
        put("url", record.header("warc-target-uri"));
        put("date", record.header("warc-date"));
        put("warc_record_id", Some(&record_id));
        put("content_type", Some(&content_type));
        let id = if record_id.is_empty() {
            format!("{}/{}", super::file_stem(&self.path), self.index)
        } else {
            record_id
        };
        let doc = Document {
            id,
            text,
            metadata,
            key: DocKey::new(self.file, self.index),
        };
        self.index += 1;
        doc
    }
}

impl Iterator for WarcReader {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Result<Document>> {
        if self.done {
            return None;
        }
        let out = self.next_doc().transpose();
        if !matches!(out, Some(Ok(_))) {
            self.done = true;
        }
        out
    }
}

/// The decoded HTML of an HTTP response and its content type; `None` when it is not HTML.
fn html_of_response(http: &[u8]) -> Option<(String, String)> {
    let (head, body) = split_http(http)?;
    let head = String::from_utf8_lossy(head);
    let mut content_type = String::new();
    let mut chunked = false;
    let mut encoding = String::new();
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = value.to_string(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "content-encoding" => encoding = value.to_ascii_lowercase(),
            _ => {}
        }
    }
    let mut body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    if encoding == "gzip" || encoding == "x-gzip" {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .ok()?;
        body = out;
    } else if encoding == "deflate" {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&body[..])
            .read_to_end(&mut out)
            .ok()?;
        body = out;
    }
    let ct = content_type.to_ascii_lowercase();
    let is_html = if ct.is_empty() {
        let start = String::from_utf8_lossy(&body[..body.len().min(1024)]).to_ascii_lowercase();
        start.contains("<html") || start.contains("<!doctype html")
    } else {
        ct.contains("html")
    };
    if !is_html {
        return None;
    }
    let html = decode_charset(&body, &ct);
    let ct = if content_type.is_empty() {
        "text/html".to_string()
    } else {
        content_type
    };
    Some((html, ct))
}

/// Splits an HTTP message at the blank line after its headers.
fn split_http(http: &[u8]) -> Option<(&[u8], &[u8])> {
    if let Some(i) = find(http, b"\r\n\r\n") {
        return Some((&http[..i], &http[i + 4..]));
    }
    find(http, b"\n\n").map(|i| (&http[..i], &http[i + 2..]))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Undoes `Transfer-Encoding: chunked` (what cannot be parsed is kept as it is).
fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(eol) = find(rest, b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        if size == 0 {
            return out;
        }
        let data = &rest[eol + 2..];
        if data.len() < size {
            out.extend_from_slice(data);
            return out;
        }
        out.extend_from_slice(&data[..size]);
        rest = data[size..].strip_prefix(b"\r\n").unwrap_or(&data[size..]);
    }
    if out.is_empty() {
        body.to_vec()
    } else {
        out
    }
}

/// Decodes HTML bytes: Latin-1/Windows-1252 when the header or a `<meta>` declares it,
/// UTF-8 otherwise (invalid bytes replaced).
fn decode_charset(body: &[u8], content_type: &str) -> String {
    let mut charset = content_type
        .split_once("charset=")
        .map(|(_, c)| c.trim_matches(['"', '\'', ' ', ';']).to_string());
    if charset.is_none() {
        let head = String::from_utf8_lossy(&body[..body.len().min(2048)]).to_ascii_lowercase();
        charset = head.split_once("charset=").map(|(_, c)| {
            c.trim_start_matches(['"', '\''])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect()
        });
    }
    match charset.as_deref() {
        Some("iso-8859-1" | "latin1" | "latin-1" | "windows-1252" | "cp1252" | "us-ascii")
            if std::str::from_utf8(body).is_err() =>
        {
            body.iter().map(|&b| windows_1252(b)).collect()
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n"),
            b"Wikipedia"
        );
        assert_eq!(dechunk(b"not chunked"), b"not chunked");
    }

    #[test]
    fn latin1_is_decoded_when_declared() {
        assert_eq!(
            decode_charset(
                b"caf\xe9 \x93q\x94",
                "text/html; charset=ISO-8859-1"
                    .to_ascii_lowercase()
                    .as_str()
            ),
            "café “q”"
        );
        assert_eq!(
            decode_charset("café".as_bytes(), "text/html; charset=iso-8859-1"),
            "café"
        );
    }
}
