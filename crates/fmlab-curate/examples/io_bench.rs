//! Reads inputs and writes them back in every output format and compression, timing each
//! step: `cargo run --release -p fmlab-curate --example io_bench -- OUT_DIR INPUT…`.
//! Prints one line per step (documents, MB of text, seconds, MB/s, shards, bytes on disk)
//! and checks that every written set reads back as the documents read.

use std::path::PathBuf;
use std::time::Instant;

use fmlab_curate::read::{self, ReadOptions};
use fmlab_curate::write::{Compression, OutputFormat, ShardWriter, WriteOptions};
use fmlab_curate::Document;

fn read_all(paths: &[PathBuf]) -> fmlab_curate::Result<Vec<Document>> {
    let mut docs = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        for d in read::open(p, i as u32, &ReadOptions::default())? {
            docs.push(d?);
        }
    }
    Ok(docs)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: io_bench OUT_DIR INPUT…")?);
    let inputs: Vec<PathBuf> = args.map(PathBuf::from).collect();
    let t = Instant::now();
    let docs = read_all(&read::list_inputs(&inputs)?)?;
    let mb = docs.iter().map(|d| d.text.len()).sum::<usize>() as f64 / 1e6;
    let s = t.elapsed().as_secs_f64();
    println!(
        "read input: {} docs, {mb:.1} MB text, {s:.2} s, {:.0} MB/s",
        docs.len(),
        mb / s
    );
    for format in [OutputFormat::Jsonl, OutputFormat::Parquet] {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let dir = out.join(format!("{format:?}-{compression:?}").to_lowercase());
            let _ = std::fs::remove_dir_all(&dir);
            let opts = WriteOptions {
                format,
                compression,
                max_bytes: 8 << 20,
                prefix: "part".into(),
            };
            let t = Instant::now();
            let mut w = ShardWriter::new(&dir, opts)?;
            for d in &docs {
                w.write(d)?;
            }
            let shards = w.finish()?;
            let ws = t.elapsed().as_secs_f64();
            let bytes: u64 = shards.iter().map(|s| s.bytes).sum();
            let t = Instant::now();
            let back = read_all(&shards.iter().map(|s| s.path.clone()).collect::<Vec<_>>())?;
            let rs = t.elapsed().as_secs_f64();
            let same = back.len() == docs.len()
                && back
                    .iter()
                    .zip(&docs)
                    .all(|(a, b)| a.id == b.id && a.text == b.text && a.metadata == b.metadata);
            println!(
                "{format:?}/{compression:?}: {} shards, {:.1} MB on disk; write {ws:.2} s ({:.0} MB/s), read {rs:.2} s ({:.0} MB/s); same documents: {same}",
                shards.len(), bytes as f64 / 1e6, mb / ws, mb / rs
            );
        }
    }
    Ok(())
}
