//! Deduplication end to end: signatures bit for bit datatrove's, the staged path over a
//! working folder with 1 and 3 ranks against the in-memory path, exact deduplication, and
//! the errors of stages run out of order.

use std::collections::BTreeSet;
use std::path::Path;

use fmlab_curate::dedup::{ExactDedup, MinHash, MinhashConfig, RemovalSet};
use fmlab_curate::{DocKey, Document};
use fmlab_testkit::{Scratch, SplitMix64};
use serde_json::Value;

#[test]
fn minhash_signature_is_datatrove_s() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minhash_datatrove.json");
    let fixture: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mh = MinHash::new(MinhashConfig::default()).unwrap();
    for doc in fixture["docs"].as_array().unwrap() {
        let text = doc["text"].as_str().unwrap();
        let want: Option<Vec<u64>> = serde_json::from_value(doc["signature"].clone()).unwrap();
        let shingles: Vec<u64> = serde_json::from_value(doc["shingles"].clone()).unwrap();
        let mut scratch = Default::default();
        assert_eq!(mh.shingles(text, &mut scratch), &shingles[..], "{text}");
        assert_eq!(mh.signature(text), want, "{text}");
    }
}

const WORDS: &[&str] = &[
    "kernel",
    "driver",
    "memory",
    "page",
    "the",
    "of",
    "a",
    "device",
    "lock",
    "thread",
    "queue",
    "buffer",
    "interrupt",
    "is",
    "and",
    "to",
    "when",
    "which",
    "cache",
    "table",
    "map",
    "user",
    "file",
    "system",
    "call",
    "returns",
    "value",
    "flag",
    "set",
    "clear",
    "bit",
    "read",
];

/// 4 input files: 40 random documents, 12 near-duplicates (one word in 60 changed), 4 exact
/// copies, 2 documents too short for 5-grams. Returns the documents and the planted pairs.
fn corpus() -> (Vec<Document>, Vec<(DocKey, DocKey)>) {
    let mut rng = SplitMix64(7);
    let mut texts: Vec<String> = (0..40)
        .map(|_| {
            let n = 80 + rng.below(120);
            let words: Vec<&str> = (0..n).map(|_| WORDS[rng.below(WORDS.len())]).collect();
            words.join(" ") + "."
        })
        .collect();
    let mut planted = Vec::new();
    for i in 0..12 {
        let mut words: Vec<String> = texts[i].split(' ').map(str::to_string).collect();
        for _ in 0..words.len() / 60 {
            let j = rng.below(words.len());
            words[j] = "edited".to_string();
        }
        planted.push((i, texts.len()));
        texts.push(words.join(" "));
    }
    for i in 20..24 {
        planted.push((i, texts.len()));
        texts.push(format!("  {}  ", texts[i].to_uppercase()));
    }
    texts.push("too short".into());
    texts.push("too short".into());
    // Spread over 4 files, 16 documents each.
    let key = |i: usize| DocKey::new((i % 4) as u32, (i / 4) as u32);
    let docs = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Document::new(format!("doc{i}"), t.clone(), key(i)))
        .collect();
    (
        docs,
        planted.into_iter().map(|(a, b)| (key(a), key(b))).collect(),
    )
}

/// The staged path with `world` ranks, each rank holding the input files `f % world == rank`.
fn staged(mh: &MinHash, docs: &[Document], dir: &Path, world: usize) -> RemovalSet {
    for rank in 0..world {
        let mut w = mh.signature_writer(dir, rank);
        for d in docs.iter().filter(|d| d.key.file as usize % world == rank) {
            w.add(d);
        }
        w.finish().unwrap();
    }
    for bucket in 0..mh.config().num_buckets {
        mh.find_matches(dir, bucket).unwrap();
    }
    let summary = mh.cluster(dir).unwrap();
    let mut all = Vec::new();
    for rank in 0..world {
        let files = (0..4u32).filter(|f| *f as usize % world == rank);
        let set = RemovalSet::load(dir, files).unwrap();
        all.extend(docs.iter().map(|d| d.key).filter(|&k| set.is_removed(k)));
    }
    assert_eq!(summary.removed as usize, all.len());
    RemovalSet::from_keys(all)
}

#[test]
fn minhash_staged_with_1_and_3_ranks_equals_in_memory() {
    let (docs, planted) = corpus();
    let mh = MinHash::new(MinhashConfig::default()).unwrap();
    let mem = mh.dedup(&docs);
    // Every planted pair is found (one of the two removed), nothing else is.
    assert_eq!(
        mem.summary.removed,
        planted.len() as u64,
        "{:?}",
        mem.summary
    );
    for (a, b) in &planted {
        assert!(
            mem.removed.is_removed(*a) ^ mem.removed.is_removed(*b),
            "{a:?} {b:?}"
        );
    }
    assert_eq!(mem.summary.documents, docs.len() as u64);
    assert_eq!(mem.summary.hashed, docs.len() as u64 - 2);
    assert_eq!(
        mem.summary.cluster_sizes.get(&2),
        Some(&(planted.len() as u64))
    );

    let one = Scratch::new("dedup-minhash-1");
    let three = Scratch::new("dedup-minhash-3");
    assert_eq!(staged(&mh, &docs, &one, 1), mem.removed);
    assert_eq!(staged(&mh, &docs, &three, 3), mem.removed);

    let clusters: Value =
        serde_json::from_slice(&std::fs::read(three.join("clusters.json")).unwrap()).unwrap();
    let c0 = &clusters["clusters"][0];
    assert_eq!(c0["size"], 2);
    assert!(c0["members"][0]["id"].as_str().unwrap().starts_with("doc"));
    assert_eq!(clusters["summary"]["removed"], planted.len() as u64);
}

#[test]
fn exact_dedup_keeps_first_in_key_order_staged_or_not() {
    let (docs, _) = corpus();
    let ex = ExactDedup::default();
    let mem = ex.dedup(docs.iter().rev());
    // The 4 upper-cased copies and the second "too short" normalise to their originals.
    let removed: BTreeSet<DocKey> = mem.removed.keys().into_iter().collect();
    assert_eq!(removed.len(), 5);
    for c in &mem.clusters {
        let first = c
            .members
            .iter()
            .map(|m| DocKey::new(m.file, m.index))
            .min()
            .unwrap();
        assert_eq!(DocKey::new(c.kept.file, c.kept.index), first);
    }
    let dir = Scratch::new("dedup-exact");
    for rank in 0..3 {
        let mut w = ex.hash_writer(&dir, rank);
        for d in docs.iter().filter(|d| d.key.file as usize % 3 == rank) {
            w.add(d);
        }
        w.finish().unwrap();
    }
    let summary = ex.resolve(&dir).unwrap();
    assert_eq!(summary, mem.summary);
    assert_eq!(RemovalSet::load(&dir, 0..4).unwrap(), mem.removed);
}

#[test]
fn stages_out_of_order_are_named_errors() {
    let mh = MinHash::new(MinhashConfig::default()).unwrap();
    let dir = Scratch::new("dedup-order");
    let e = mh.find_matches(&dir, 0).unwrap_err().to_string();
    assert!(e.contains("stage 1"), "{e}");
    assert!(mh.find_matches(&dir, 14).is_err());
    let e = mh.cluster(&dir).unwrap_err().to_string();
    assert!(
        e.contains("bucket_000.pairs") && e.contains("stage 2"),
        "{e}"
    );
    let e = RemovalSet::load(&dir, [0]).unwrap_err().to_string();
    assert!(e.contains("summary.json"), "{e}");
    let bad = MinhashConfig {
        num_buckets: 0,
        ..MinhashConfig::default()
    };
    assert!(MinHash::new(bad).is_err());
}
