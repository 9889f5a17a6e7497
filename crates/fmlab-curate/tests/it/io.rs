//! Readers and writers: round trips for every format × compression, sharding, Parquet
//! written by pyarrow, WARC/WET records, and damaged files that must give one clear error.

use std::io::Write;
use std::path::{Path, PathBuf};

use fmlab_curate::read::{self, Format, ReadOptions};
use fmlab_curate::write::{Compression, OutputFormat, ShardWriter, WriteOptions};
use fmlab_curate::{DocKey, Document, Error};
use fmlab_testkit::Scratch;
use serde_json::{json, Map, Value};

fn meta(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Documents with every kind of metadata: typed scalars, nulls, nested values, a key whose
/// type changes, keys that appear late, big integers, unicode and empty text.
fn sample_docs() -> Vec<Document> {
    (0..60u32)
        .map(|i| {
            let mut d = Document::new(
                format!("doc-{i}"),
                format!(
                    "Document {i}.\nÜnïcødé — 東京 {}\n",
                    "word ".repeat(i as usize * 3)
                ),
                DocKey::new(0, i),
            );
            d.metadata = meta(json!({
                "url": format!("https://example.org/{i}"),
                "n": i64::from(i) - 30,
                "score": f64::from(i) / 7.0,
                "ok": i % 3 == 0,
                "mixed": if i % 2 == 0 { json!(i) } else { json!(format!("s{i}")) },
            }));
            if i % 5 == 0 {
                d.metadata.insert("nothing".into(), Value::Null);
                d.metadata
                    .insert("nested".into(), json!({"a": [1, 2, {"b": null}]}));
            }
            if i > 40 {
                d.metadata.insert("late".into(), json!(format!("late {i}")));
                d.metadata
                    .insert("big".into(), json!(u64::MAX - u64::from(i)));
            }
            if i == 7 {
                d.text = String::new();
            }
            d
        })
        .collect()
}

fn read_all(paths: &[PathBuf], opts: &ReadOptions) -> Result<Vec<Document>, Error> {
    let mut out = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        for d in read::open(p, i as u32, opts)? {
            out.push(d?);
        }
    }
    Ok(out)
}

fn without_keys(docs: &[Document]) -> Vec<(String, String, Map<String, Value>)> {
    docs.iter()
        .map(|d| (d.id.clone(), d.text.clone(), d.metadata.clone()))
        .collect()
}

#[test]
fn every_format_and_compression_round_trips_in_shards() {
    let docs = sample_docs();
    for format in [OutputFormat::Jsonl, OutputFormat::Parquet] {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let dir = Scratch::new(&format!("io-rt-{format:?}-{compression:?}"));
            let opts = WriteOptions {
                format,
                compression,
                max_bytes: if compression == Compression::None {
                    3000
                } else {
                    800
                },
                prefix: "out".into(),
            };
            let ext = opts.extension();
            let max_bytes = opts.max_bytes;
            let mut w = ShardWriter::new(&dir, opts).unwrap();
            for d in &docs {
                w.write(d).unwrap();
            }
            let shards = w.finish().unwrap();
            let what = format!("{format:?} {compression:?}");
            assert!(shards.len() > 2, "{what}: {} shards", shards.len());
            assert_eq!(
                shards.iter().map(|s| s.documents).sum::<u64>(),
                60,
                "{what}"
            );
            for (i, s) in shards.iter().enumerate() {
                let name = s.path.file_name().unwrap().to_str().unwrap();
                assert_eq!(name, format!("out-{i:05}.{ext}"));
                assert_eq!(std::fs::metadata(&s.path).unwrap().len(), s.bytes, "{what}");
                if i + 1 < shards.len() {
                    assert!(s.bytes >= max_bytes, "{what}: shard {i} closed early");
                }
            }
            let listed = read::list_inputs(&[dir.to_path_buf()]).unwrap();
            let paths: Vec<PathBuf> = shards.iter().map(|s| s.path.clone()).collect();
            assert_eq!(
                listed, paths,
                "{what}: no temporary files left, names sorted"
            );
            let back = read_all(&paths, &ReadOptions::default()).unwrap();
            assert_eq!(without_keys(&back), without_keys(&docs), "{what}");
            // keys: file index given by the caller, position in the file
            let mut at = 0;
            for (f, s) in shards.iter().enumerate() {
                for j in 0..s.documents as u32 {
                    assert_eq!(back[at].key, DocKey::new(f as u32, j), "{what}");
                    at += 1;
                }
            }
        }
    }
}

#[test]
fn a_writer_dropped_unfinished_leaves_no_file() {
    let dir = Scratch::new("io-drop");
    let mut w = ShardWriter::new(&dir, WriteOptions::default()).unwrap();
    w.write(&sample_docs()[0]).unwrap();
    drop(w);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn parquet_written_by_pyarrow_reads_as_python_sees_it() {
    let dir = fmlab_testkit::root().join("crates/fmlab-curate/tests/fixtures/io");
    let docs: Vec<Document> = read::open(&dir.join("pyarrow.parquet"), 3, &ReadOptions::default())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<Document> = read::open(
        &dir.join("pyarrow.expected.jsonl"),
        3,
        &ReadOptions::default(),
    )
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs, expected);
    assert_eq!(docs[2].metadata["n"], json!(9007199254740993i64));
    assert_eq!(docs[1].key, DocKey::new(3, 1));
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn jsonl_fields_ids_and_datatrove_metadata() {
    let dir = Scratch::new("io-jsonl");
    let p = dir.join("web.part.jsonl");
    write_file(
        &p,
        b"{\"content\":\"one\",\"id\":17,\"lang\":\"en\"}\n\n{\"content\":\"two\",\"metadata\":{\"url\":\"u\",\"lang\":\"x\"},\"lang\":\"sw\"}\n",
    );
    let opts = ReadOptions {
        text_field: "content".into(),
        ..ReadOptions::default()
    };
    let docs: Vec<Document> = read::open(&p, 5, &opts)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(docs.len(), 2);
    assert_eq!((docs[0].id.as_str(), docs[0].text.as_str()), ("17", "one"));
    assert_eq!(docs[0].metadata, meta(json!({"lang": "en"})));
    assert_eq!(docs[1].id, "web/1");
    assert_eq!(docs[1].metadata, meta(json!({"url": "u", "lang": "sw"})));
    assert_eq!(docs[1].key, DocKey::new(5, 1));
    // a JSONL file named .txt, read by an explicit format; multi-member gzip
    let t = dir.join("data.txt.gz");
    let mut two = gz(b"{\"text\":\"a\"}\n");
    two.extend(gz(b"{\"text\":\"b\"}\n"));
    write_file(&t, &two);
    let opts = ReadOptions {
        format: Some(Format::Jsonl),
        ..ReadOptions::default()
    };
    let docs: Vec<Document> = read::open(&t, 0, &opts)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        without_keys(&docs)[1],
        ("data/1".into(), "b".into(), Map::new())
    );
}

/// Collects a file's documents until its first error.
fn read_until_error(path: &Path) -> (usize, Option<String>) {
    let mut n = 0;
    let it = match read::open(path, 0, &ReadOptions::default()) {
        Ok(it) => it,
        Err(e) => return (0, Some(e.to_string())),
    };
    let mut error = None;
    for d in it {
        match d {
            Ok(_) => n += 1,
            Err(e) => {
                assert!(error.is_none(), "a reader goes on after its error");
                error = Some(e.to_string());
            }
        }
    }
    (n, error)
}

#[test]
fn damaged_files_give_one_error_naming_file_and_position() {
    let dir = Scratch::new("io-damaged");
    let lines: String = (0..200)
        .map(|i| format!("{{\"text\":\"line {i} {}\"}}\n", "x".repeat(i % 50)))
        .collect();
    // a broken line
    let p = dir.join("broken.jsonl");
    write_file(
        &p,
        b"{\"text\":\"a\"}\n{\"text\":\"b\"}\n{\"text\":\"c\"\n{\"text\":\"d\"}\n",
    );
    let (n, e) = read_until_error(&p);
    let e = e.unwrap();
    assert_eq!(n, 2);
    assert!(e.contains("broken.jsonl") && e.contains("line 3"), "{e}");
    // no text field
    let p = dir.join("notext.jsonl");
    write_file(&p, b"{\"body\":\"a\"}\n");
    let e = read_until_error(&p).1.unwrap();
    assert!(e.contains("line 1") && e.contains("no field `text`"), "{e}");
    // truncated gzip and zstd
    let whole = gz(lines.as_bytes());
    let p = dir.join("cut.jsonl.gz");
    write_file(&p, &whole[..whole.len() * 2 / 3]);
    let (n, e) = read_until_error(&p);
    let e = e.unwrap();
    assert!(
        n < 200 && e.contains("cut.jsonl.gz") && e.contains("line "),
        "{n} {e}"
    );
    let whole = zstd::encode_all(lines.as_bytes(), 3).unwrap();
    let p = dir.join("cut.jsonl.zst");
    write_file(&p, &whole[..whole.len() / 2]);
    let (n, e) = read_until_error(&p);
    assert!(n < 200 && e.unwrap().contains("cut.jsonl.zst"));
    // not UTF-8 text
    let p = dir.join("latin.txt");
    write_file(&p, b"caf\xe9");
    let e = read_until_error(&p).1.unwrap();
    assert!(e.contains("latin.txt") && e.contains("byte 3"), "{e}");
}

#[test]
fn damaged_parquet_files_give_an_error() {
    let dir = Scratch::new("io-damaged-pq");
    let opts = WriteOptions {
        format: OutputFormat::Parquet,
        compression: Compression::Zstd,
        max_bytes: 1 << 30,
        prefix: "p".into(),
    };
    let mut w = ShardWriter::new(&dir, opts).unwrap();
    for d in sample_docs() {
        w.write(&d).unwrap();
    }
    let shard = w.finish().unwrap().remove(0);
    let whole = std::fs::read(&shard.path).unwrap();
    let p = dir.join("cut.parquet");
    write_file(&p, &whole[..whole.len() - 10]);
    let e = read_until_error(&p).1.unwrap();
    assert!(e.contains("cut.parquet") && e.contains("Parquet"), "{e}");
    // the data pages zeroed: the footer reads, the row group does not
    let mut bad = whole.clone();
    for b in &mut bad[8..whole.len() / 2] {
        *b = 0;
    }
    let p = dir.join("zeroed.parquet");
    write_file(&p, &bad);
    let (n, e) = read_until_error(&p);
    let e = e.unwrap();
    assert!(
        n == 0 && e.contains("zeroed.parquet") && e.contains("row group 0"),
        "{e}"
    );
}

/// A WARC record: version line, headers, content, blank line.
fn record(kind: &str, uri: &str, content_type: &str, content: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2024-01-02T03:04:05Z\r\nWARC-Record-ID: <urn:uuid:{kind}-{}>\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        uri.len(),
        content.len()
    )
    .into_bytes();
    r.extend_from_slice(content);
    r.extend_from_slice(b"\r\n\r\n");
    r
}

const ARTICLE: &str = "<html><body><nav><a href=/>Home</a> <a href=/x>News</a></nav><article><h1>Tides</h1><p>The tide rises and falls twice a day because the moon pulls the oceans toward it, and the earth turns beneath that bulge of water every day of the year.</p></article><footer>Copyright Example</footer></body></html>";

fn http(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("HTTP/1.1 200 OK\r\n{headers}\r\n").into_bytes();
    v.extend_from_slice(body);
    v
}

#[test]
fn warc_responses_with_html_become_main_text() {
    let dir = Scratch::new("io-warc");
    let chunked = {
        let g = gz(ARTICLE.as_bytes());
        let mut b = format!("{:x}\r\n", g.len()).into_bytes();
        b.extend_from_slice(&g);
        b.extend_from_slice(b"\r\n0\r\n\r\n");
        b
    };
    let records = [
        record("warcinfo", "", "application/warc-fields", b"software: test\r\n"),
        record("request", "https://a.org/", "application/http; msgtype=request", b"GET / HTTP/1.1\r\n\r\n"),
        record("response", "https://a.org/", "application/http; msgtype=response", &http("Content-Type: text/html; charset=utf-8\r\n", ARTICLE.as_bytes())),
        record("response", "https://a.org/img.png", "application/http; msgtype=response", &http("Content-Type: image/png\r\n", b"\x89PNG")),
        record("metadata", "https://a.org/", "application/warc-fields", b"fetchTimeMs: 5\r\n"),
        record("response", "https://b.org/", "application/http; msgtype=response", &http("Content-Type: text/html\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n", &chunked)),
    ];
    // Common Crawl's layout: one gzip member per record
    let file: Vec<u8> = records.iter().flat_map(|r| gz(r)).collect();
    let p = dir.join("crawl.warc.gz");
    write_file(&p, &file);
    let docs: Vec<Document> = read::open(&p, 2, &ReadOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(docs.len(), 2);
    for (d, url) in docs.iter().zip(["https://a.org/", "https://b.org/"]) {
        assert!(d.text.starts_with("Tides\nThe tide rises"), "{}", d.text);
        assert!(
            !d.text.contains("Home") && !d.text.contains("Copyright"),
            "{}",
            d.text
        );
        assert_eq!(d.metadata["url"], json!(url));
        assert_eq!(d.metadata["date"], json!("2024-01-02T03:04:05Z"));
        assert_eq!(d.metadata["warc_record_id"], json!(d.id));
        assert!(d.id.starts_with("<urn:uuid:response-"));
    }
    assert_eq!(
        docs[0].metadata["content_type"],
        json!("text/html; charset=utf-8")
    );
    assert_eq!(docs[1].key, DocKey::new(2, 1));

    // WET: conversion records only
    let wet: Vec<u8> = [
        record("warcinfo", "", "application/warc-fields", b"x: y\r\n"),
        record(
            "conversion",
            "https://c.org/",
            "text/plain",
            "Plain text of a page.\nSecond line é.".as_bytes(),
        ),
    ]
    .concat();
    let p = dir.join("crawl.warc.wet");
    write_file(&p, &wet);
    let docs: Vec<Document> = read::open(&p, 0, &ReadOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].text, "Plain text of a page.\nSecond line é.");
    assert_eq!(docs[0].metadata["url"], json!("https://c.org/"));

    // damaged: a record cut short, and garbage where a record should start
    let mut cut = records[..3].concat();
    cut.truncate(cut.len() - 40);
    let p = dir.join("cut.warc");
    write_file(&p, &cut);
    let e = read_until_error(&p).1.unwrap();
    assert!(
        e.contains("cut.warc") && e.contains("record 3 at byte") && e.contains("truncated"),
        "{e}"
    );
    let mut junk = records[2].clone();
    junk.extend_from_slice(b"garbage here\r\n");
    let p = dir.join("junk.warc");
    write_file(&p, &junk);
    let (n, e) = read_until_error(&p);
    let e = e.unwrap();
    assert_eq!(n, 1);
    assert!(
        e.contains(&format!("record 2 at byte {}", records[2].len())) && e.contains("WARC/1.x"),
        "{e}"
    );
}

#[test]
fn inputs_are_listed_sorted_and_text_files_are_documents() {
    let dir = Scratch::new("io-list");
    std::fs::create_dir_all(dir.join("b/c")).unwrap();
    std::fs::create_dir_all(dir.join(".hidden")).unwrap();
    for f in [
        "b/c/z.txt",
        "b/a.jsonl.zst",
        "a.parquet",
        "notes.pdf",
        ".x.jsonl",
        ".hidden/y.jsonl",
        "b/w.warc.wet.gz",
    ] {
        write_file(&dir.join(f), b"hello");
    }
    let listed = read::list_inputs(&[dir.join("b"), dir.to_path_buf()]).unwrap();
    let names: Vec<String> = listed
        .iter()
        .map(|p| p.strip_prefix(&*dir).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        ["a.parquet", "b/a.jsonl.zst", "b/c/z.txt", "b/w.warc.wet.gz"]
    );
    let doc = read::open(&listed[2], 2, &ReadOptions::default())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((doc.text.as_str(), doc.key), ("hello", DocKey::new(2, 0)));
    assert_eq!(doc.id, listed[2].display().to_string());
    let e = read::open(&dir.join("notes.pdf"), 0, &ReadOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("unknown input format"), "{e}");
}
