//! The raw web (`fmlab world --raw`): the same bytes from the same seed, every kind at its
//! configured share, and ground truth that holds together.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use fmlab_data::world::{JunkKind, RawConfig, RawRecord, WorldSummary};
use fmlab_data::{write_world, WorldConfig};

use super::{lines, scratch, world};

fn raw_world(name: &str, seed: u64, raw: RawConfig) -> fmlab_testkit::Scratch {
    let config = WorldConfig {
        seed,
        size: 300_000,
        raw: Some(raw),
        ..WorldConfig::default()
    };
    world(name, &config)
}

fn records(dir: &Path) -> Vec<RawRecord> {
    std::fs::read_to_string(dir.join("raw.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn host(url: &str) -> &str {
    url.split("://").nth(1).unwrap().split('/').next().unwrap()
}

#[test]
fn raw_web_same_seed_same_bytes() {
    let a = raw_world("raw-det-a", 4, RawConfig::default());
    let b = raw_world("raw-det-b", 4, RawConfig::default());
    let c = raw_world("raw-det-c", 5, RawConfig::default());
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    for f in [
        "raw.jsonl",
        "raw-blocklist.txt",
        "manifest.json",
        "corpus.jsonl",
    ] {
        assert_eq!(read(&a, f), read(&b, f), "{f}");
    }
    assert_ne!(read(&a, "raw.jsonl"), read(&c, "raw.jsonl"));
    // The raw web adds files; it changes none of the clean world's.
    let plain = world(
        "raw-det-plain",
        &WorldConfig {
            seed: 4,
            size: 300_000,
            ..WorldConfig::default()
        },
    );
    for f in ["corpus.jsonl", "eval.jsonl", "sft.jsonl", "kb.jsonl"] {
        assert_eq!(read(&a, f), read(&plain, f), "{f}");
    }
    assert!(!plain.join("raw.jsonl").exists());
    assert!(!String::from_utf8(read(&plain, "manifest.json"))
        .unwrap()
        .contains("raw"));
}

#[test]
fn every_kind_at_its_share_with_consistent_truth() {
    let raw = RawConfig::default();
    let dir = raw_world("raw-truth", 6, raw.clone());
    let recs = records(&dir);
    let by_id: HashMap<u64, &RawRecord> = recs.iter().map(|r| (r.id, r)).collect();
    let mut count: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.id, i as u64);
        *count
            .entry(r.junk.map_or("clean", JunkKind::name))
            .or_default() += 1;
    }
    // Shares: junk pages of all pages, kinds in their weights, boilerplate of clean pages
    // (each exact to a page).
    let good = count["clean"] + count["boilerplate"];
    let junk = recs.len() as u64 - good;
    let expected = good as f64 * raw.junk_share / (1.0 - raw.junk_share);
    assert!((junk as f64 - expected).abs() <= 1.0, "{count:?}");
    let total: f64 = raw.kinds.iter().map(|k| k.1).sum();
    for (kind, w) in &raw.kinds {
        let n = count.get(kind.name()).copied().unwrap_or(0) as f64;
        assert!(
            (n - w / total * junk as f64).abs() <= 1.0,
            "{kind:?}: {count:?}"
        );
        assert!(n >= 5.0, "{kind:?}: {count:?}");
    }
    let bp = count["boilerplate"] as f64;
    assert!(
        (bp - good as f64 * raw.boilerplate).abs() <= 1.0,
        "{count:?}"
    );
    // The summary in the manifest says the same.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let summary: WorldSummary = serde_json::from_value(manifest["summary"].clone()).unwrap();
    let s = summary.raw.unwrap();
    assert_eq!(s.documents, recs.len() as u64);
    assert_eq!(
        s.by_kind,
        count.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    );

    // Every corpus document is in exactly one good page, whose text is made of them.
    let corpus = lines(&dir, "corpus.jsonl");
    let mut placed = vec![0u32; corpus.len()];
    let mut short = 0;
    for r in recs
        .iter()
        .filter(|r| r.junk.is_none_or(|k| !k.is_junk_page()))
    {
        let want: Vec<&str> = r
            .sources
            .iter()
            .flat_map(|&s| {
                placed[s as usize] += 1;
                assert_eq!(corpus[s as usize]["lang"].as_str().unwrap(), r.lang);
                corpus[s as usize]["text"].as_str().unwrap().split('\n')
            })
            .filter(|l| !l.is_empty())
            .collect();
        let have: Vec<&str> = r
            .text
            .split('\n')
            .enumerate()
            .filter(|(i, l)| !l.is_empty() && !r.added_lines.contains(i))
            .map(|x| x.1)
            .collect();
        assert_eq!(have, want, "page {}", r.id);
        for &i in &r.added_lines {
            assert!(!r.text.split('\n').nth(i).unwrap().trim().is_empty());
        }
        assert_eq!(r.added_lines.is_empty(), r.junk.is_none(), "page {}", r.id);
        if r.text.split_whitespace().count() < raw.min_words as usize {
            short += 1;
        }
    }
    assert!(placed.iter().all(|&n| n == 1));
    // No page holds one document twice, though the corpus repeats some.
    let mut repeats = 0;
    let mut texts: HashSet<&str> = HashSet::new();
    for doc in &corpus {
        repeats += usize::from(!texts.insert(doc["text"].as_str().unwrap()));
    }
    assert!(repeats > 0);
    for r in recs.iter().filter(|r| !r.sources.is_empty()) {
        let mut seen = HashSet::new();
        for &s in &r.sources {
            let text = corpus[s as usize]["text"].as_str().unwrap();
            assert!(seen.insert(text), "page {} holds {text:?} twice", r.id);
        }
    }
    // Only the last page of each (language, domain) site may fall short.
    assert!(short <= 21, "{short}");

    let blocklist = std::fs::read_to_string(dir.join("raw-blocklist.txt")).unwrap();
    let blocked: HashSet<&str> = blocklist.lines().collect();
    let mut styles: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for r in &recs {
        assert!(
            !r.text.trim().is_empty() && r.url.starts_with("http"),
            "{r:?}"
        );
        assert_eq!(
            blocked.contains(host(&r.url)),
            r.junk == Some(JunkKind::BlocklistedUrl),
            "{}",
            r.url
        );
        if let Some(style) = &r.style {
            styles
                .entry(r.junk.unwrap().name().into())
                .or_default()
                .insert(style.clone());
        }
        match r.junk {
            Some(JunkKind::NearDuplicate) => {
                let of = by_id[&r.duplicate_of.unwrap()];
                assert!(of.id < r.id && of.junk.is_none(), "{r:?}");
                assert_ne!(of.text, r.text);
                assert_eq!(
                    (&of.lang, of.domain, &of.sources),
                    (&r.lang, r.domain, &r.sources)
                );
                let edits = r.edits.unwrap();
                assert!(edits >= 1);
                let diff = of.text.split_whitespace().count() as i64
                    - r.text.split_whitespace().count() as i64;
                assert!(diff.unsigned_abs() <= u64::from(edits), "{r:?}");
            }
            Some(JunkKind::WrongLanguage) => {
                assert!(["de", "es", "pt", "tr", "it", "nl"].contains(&r.lang.as_str()));
                assert!(r.domain.is_none() && r.sources.is_empty());
                // Sentences come from a deck of 20 templates: none repeats (the ones
                // without slots repeat word for word) before the deck is dealt.
                let sentences: Vec<&str> = r
                    .text
                    .split_inclusive(". ")
                    .flat_map(|s| s.split("\n\n"))
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                let mut count: HashMap<&str, usize> = HashMap::new();
                for s in &sentences {
                    *count.entry(s).or_default() += 1;
                }
                let most = count.values().max().copied().unwrap_or(0);
                assert!(most <= sentences.len().div_ceil(20), "{}", r.text);
            }
            Some(JunkKind::Spam | JunkKind::Markup) => assert!(r.style.is_some()),
            _ => assert!(r.duplicate_of.is_none() && r.style.is_none(), "{r:?}"),
        }
    }
    let want = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
    assert_eq!(
        styles["spam"],
        want(&["keyword_list", "stuffed", "doorway"])
    );
    assert_eq!(
        styles["markup"],
        want(&["tag_soup", "script", "lorem_ipsum", "entities"])
    );
}

#[test]
fn raw_shares_and_kinds_from_the_configuration() {
    let mut raw = RawConfig {
        junk_share: 0.5,
        boilerplate: 0.0,
        min_words: 200,
        max_words: 300,
        ..RawConfig::default()
    };
    raw.set_kinds("spam=1").unwrap();
    let dir = raw_world("raw-spam", 8, raw);
    let recs = records(&dir);
    let spam = recs
        .iter()
        .filter(|r| r.junk == Some(JunkKind::Spam))
        .count();
    let clean = recs.iter().filter(|r| r.junk.is_none()).count();
    assert_eq!(spam + clean, recs.len());
    assert!(spam.abs_diff(clean) <= 1, "{spam} {clean}");
    let long = recs
        .iter()
        .filter(|r| r.junk.is_none() && r.text.split_whitespace().count() >= 200)
        .count();
    assert!(long + 21 >= clean, "{long} of {clean}");
    // A bad raw configuration is refused before anything is written.
    let bad = WorldConfig {
        raw: Some(RawConfig {
            junk_share: 1.5,
            ..RawConfig::default()
        }),
        ..WorldConfig::default()
    };
    let out = scratch("raw-bad");
    let e = write_world(&bad, &out, |_| {}).unwrap_err().to_string();
    assert!(e.contains("raw web: junk share"), "{e}");
    assert!(!out.join("corpus.jsonl").exists());
}
