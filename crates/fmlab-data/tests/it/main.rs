//! The synthetic world: determinism, the mix it promises, and a judge that agrees with the
//! ground truth on every eval item.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

mod corpus;
mod raw;

use fmlab_data::world::lang::Lang;
use fmlab_data::{judge, write_world, EvalItem, Format, Verdict, WorldConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A folder for one test, not created (the world writer creates it), removed at the end.
fn scratch(name: &str) -> fmlab_testkit::Scratch {
    fmlab_testkit::Scratch::absent(&format!("data-test-{name}"))
}

fn hash_dir(dir: &Path) -> String {
    let mut h = Sha256::new();
    for f in [
        "corpus.jsonl",
        "kb.jsonl",
        "sft.jsonl",
        "preferences.jsonl",
        "eval.jsonl",
        "manifest.json",
    ] {
        h.update(f.as_bytes());
        h.update(std::fs::read(dir.join(f)).unwrap());
    }
    format!("{:x}", h.finalize())
}

fn lines(dir: &Path, file: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn world(name: &str, config: &WorldConfig) -> fmlab_testkit::Scratch {
    let dir = scratch(name);
    write_world(config, &dir, |_| {}).unwrap();
    dir
}

#[test]
fn same_seed_same_bytes() {
    let config = WorldConfig {
        seed: 7,
        size: 300_000,
        ..WorldConfig::default()
    };
    let a = world("det-a", &config);
    let b = world("det-b", &config);
    assert_eq!(hash_dir(&a), hash_dir(&b));
    let c = world(
        "det-c",
        &WorldConfig {
            seed: 8,
            ..config.clone()
        },
    );
    assert_ne!(hash_dir(&a), hash_dir(&c));
    // No temporary files left behind.
    for entry in std::fs::read_dir(&a).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains("tmp"), "{name}");
    }
}

#[test]
fn the_world_has_its_promised_mix() {
    let dir = world(
        "mix",
        &WorldConfig {
            seed: 3,
            size: 2_000_000,
            ..WorldConfig::default()
        },
    );
    let corpus = lines(&dir, "corpus.jsonl");
    let bytes: usize = corpus
        .iter()
        .map(|d| d["text"].as_str().unwrap().len())
        .sum();
    assert!((2_000_000..2_010_000).contains(&bytes), "{bytes}");
    let mut by_lang: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_domain: BTreeMap<String, usize> = BTreeMap::new();
    for d in &corpus {
        *by_lang
            .entry(d["lang"].as_str().unwrap().into())
            .or_default() += 1;
        *by_domain
            .entry(d["domain"].as_str().unwrap().into())
            .or_default() += 1;
    }
    let n = corpus.len() as f64;
    let share = |l: &str| by_lang.get(l).copied().unwrap_or(0) as f64 / n;
    assert!((share("en") - 0.85).abs() < 0.02, "{by_lang:?}");
    assert!((share("fr") - 0.135).abs() < 0.02, "{by_lang:?}");
    assert!(share("sw") > 0.007 && share("sw") < 0.025, "{by_lang:?}");
    assert_eq!(by_domain.len(), 7, "{by_domain:?}");
    // Facts seen often, rarely, and never.
    let kb = lines(&dir, "kb.jsonl");
    let splits: HashSet<&str> = kb.iter().map(|f| f["split"].as_str().unwrap()).collect();
    assert_eq!(
        splits,
        HashSet::from(["frequent", "rare", "unseen", "unknown"])
    );
    // The eval's never-seen people appear nowhere in the corpus, SFT or preferences.
    let unseen: HashSet<String> = kb
        .iter()
        .filter(|f| f["split"] == "unseen")
        .map(|f| f["subject"].as_str().unwrap().to_string())
        .collect();
    let mentioned = |text: &str| {
        unseen
            .iter()
            .find(|name| text.contains(name.as_str()))
            .cloned()
    };
    for d in &corpus {
        assert_eq!(mentioned(d["text"].as_str().unwrap()), None);
    }
    for c in lines(&dir, "sft.jsonl") {
        for m in c["messages"].as_array().unwrap() {
            assert_eq!(mentioned(m["content"].as_str().unwrap()), None, "{c}");
        }
    }
    for p in lines(&dir, "preferences.jsonl") {
        assert_eq!(mentioned(&p.to_string()), None, "{p}");
    }
    // Facts read the same in every language: the answer values per language exist.
    assert!(kb
        .iter()
        .all(|f| f["values"].as_object().unwrap().len() == 3));
    // SFT kinds, preference kinds.
    let kinds: HashSet<String> = lines(&dir, "sft.jsonl")
        .iter()
        .map(|c| c["kind"].as_str().unwrap().to_string())
        .collect();
    for k in [
        "fact",
        "unknown",
        "arithmetic",
        "format_one_word",
        "format_json",
    ] {
        assert!(kinds.contains(k), "{k} missing from {kinds:?}");
    }
    let rejected: HashSet<String> = lines(&dir, "preferences.jsonl")
        .iter()
        .map(|p| p["rejected_kind"].as_str().unwrap().to_string())
        .collect();
    for k in ["wrong", "hallucinated", "format", "verbose"] {
        assert!(rejected.contains(k), "{k} missing from {rejected:?}");
    }
    // A rejected answer is never the chosen one; a refusal is chosen for unknown people.
    for p in lines(&dir, "preferences.jsonl") {
        assert_ne!(p["chosen"], p["rejected"], "{p}");
        if p["rejected_kind"] == "hallucinated" {
            let lang = Lang::parse(p["lang"].as_str().unwrap()).unwrap();
            assert_eq!(p["chosen"], lang.refusal(), "{p}");
        }
    }
}

#[test]
fn the_judge_agrees_with_the_ground_truth() {
    let dir = world(
        "judge",
        &WorldConfig {
            seed: 11,
            size: 1_500_000,
            ..WorldConfig::default()
        },
    );
    let items: Vec<EvalItem> = std::fs::read_to_string(dir.join("eval.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(items.len() >= 2000, "{}", items.len());
    let mut splits: HashMap<(String, Lang), usize> = HashMap::new();
    // Wrong answers: another item's answer for the same relation and language.
    let mut pool: HashMap<(Option<String>, Lang), Vec<String>> = HashMap::new();
    for it in &items {
        *splits.entry((it.split.clone(), it.lang)).or_default() += 1;
        if !it.refusal && !it.answer.is_empty() {
            pool.entry((it.relation.map(|r| r.name().to_string()), it.lang))
                .or_default()
                .push(it.answer.clone());
        }
    }
    for split in ["frequent", "rare", "unseen", "arithmetic"] {
        for lang in Lang::ALL {
            assert!(
                splits.contains_key(&(split.to_string(), lang)),
                "{split} {lang:?}"
            );
        }
    }
    for it in &items {
        let right = render(it, None);
        assert_eq!(judge(it, &right), Verdict::Correct, "{it:?}\n{right}");
        if it.format == Format::List3 {
            continue;
        }
        let key = (it.relation.map(|r| r.name().to_string()), it.lang);
        let wrong_value = pool[&key]
            .iter()
            .find(|v| !it.answers.contains(v) && !it.answers.iter().any(|a| v.contains(a.as_str())))
            .cloned()
            .unwrap_or_else(|| "Zzyzx".into());
        let wrong = render(it, Some(&wrong_value));
        let verdict = judge(it, &wrong);
        if it.refusal {
            assert_eq!(verdict, Verdict::Hallucinated, "{it:?}\n{wrong}");
        } else {
            assert_eq!(verdict, Verdict::Wrong, "{it:?}\n{wrong}");
            assert_eq!(judge(it, it.lang.refusal()), Verdict::Refused, "{it:?}");
        }
    }
}

/// An answer in the item's format: the right one, or `value` instead.
fn render(it: &EvalItem, value: Option<&str>) -> String {
    if value.is_none() && it.refusal {
        return it.answer.clone();
    }
    let v = value.unwrap_or(&it.answer);
    match it.format {
        Format::Free => format!("The answer is {v}."),
        Format::OneWord => v.to_string(),
        Format::Json => serde_json::json!({"name": it.subject, "answer": v}).to_string(),
        Format::List3 => it.known[..3]
            .iter()
            .map(|k| format!("- {k}"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[test]
fn bad_configurations_are_errors() {
    let dir = scratch("bad");
    for config in [
        WorldConfig {
            size: 10,
            ..WorldConfig::default()
        },
        WorldConfig {
            languages: vec![(Lang::Fr, 1.0)],
            ..WorldConfig::default()
        },
        WorldConfig {
            domains: vec![],
            ..WorldConfig::default()
        },
        WorldConfig {
            held_out: 2.0,
            ..WorldConfig::default()
        },
    ] {
        let e = write_world(&config, &dir, |_| {}).unwrap_err().to_string();
        assert!(e.starts_with("world:"), "{e}");
    }
}

#[test]
fn stats_of_a_world() {
    let dir = world(
        "stats",
        &WorldConfig {
            seed: 5,
            size: 500_000,
            ..WorldConfig::default()
        },
    );
    let s = fmlab_data::stats::world_stats(&dir).unwrap();
    assert!(s.bytes >= 500_000);
    assert_eq!(s.by_lang.values().map(|x| x.0).sum::<u64>(), s.documents);
    let people: u64 = s.mention_histogram.iter().map(|x| x.1).sum();
    assert!(people > 0);
    assert!(
        s.mention_histogram[0].1 > 0,
        "some people are never mentioned"
    );
    assert!(fmlab_data::stats::world_stats(&scratch("missing")).is_err());
}

/// A tokenizer trained mostly on English needs more tokens for Swahili than for English;
/// giving Swahili a larger share of the training text shrinks that premium.
#[test]
fn the_rare_language_pays_a_premium_that_shrinks_with_its_share() {
    use fmlab_tokenizer::train::DEFAULT_SPECIALS;
    use fmlab_tokenizer::{BpeTrainer, Tokenizer};
    let mix = |sw: f64| vec![(Lang::En, 0.85 - sw), (Lang::Fr, 0.15), (Lang::Sw, sw)];
    let premium_of = |dir: &Path, parallel: &Path| {
        let mut trainer = BpeTrainer::new(800, &DEFAULT_SPECIALS).unwrap();
        for d in lines(dir, "corpus.jsonl") {
            trainer.feed(d["text"].as_str().unwrap());
        }
        let tok = Tokenizer::from_trained(&trainer.train(|_, _| {}).unwrap()).unwrap();
        // Every corpus document round-trips.
        for d in lines(dir, "corpus.jsonl") {
            let text = d["text"].as_str().unwrap();
            let ids = tok.encode(text, false, false);
            assert_eq!(tok.decode(&ids, false).unwrap(), text);
        }
        let par = fmlab_data::premium::read_parallel(parallel).unwrap();
        let costs =
            fmlab_data::premium::premiums(&par, "en", |t| tok.encode(t, false, false).len())
                .unwrap();
        costs.iter().find(|c| c.lang == "sw").unwrap().premium
    };
    let rare = world(
        "premium-rare",
        &WorldConfig {
            seed: 9,
            size: 600_000,
            languages: mix(0.015),
            ..WorldConfig::default()
        },
    );
    let common = world(
        "premium-common",
        &WorldConfig {
            seed: 9,
            size: 600_000,
            languages: mix(0.35),
            ..WorldConfig::default()
        },
    );
    let parallel = rare.join("parallel.jsonl");
    let (p_rare, p_common) = (premium_of(&rare, &parallel), premium_of(&common, &parallel));
    assert!(p_rare > 1.1, "Swahili premium {p_rare}");
    assert!(p_common < p_rare * 0.95, "{p_common} vs {p_rare}");
}

mod shards {
    use fmlab_data::shards::{Cursor, Shard, ShardManifest, ShardWriter, Windows};

    use super::scratch;

    fn write(dir: &std::path::Path, vocab: u64) -> Vec<Vec<u32>> {
        let mut w = ShardWriter::new(dir, vocab, "test", 0.2, 3, 2000).unwrap();
        let mut docs = Vec::new();
        for i in 0..500u64 {
            let doc: Vec<u32> = (0..(5 + i % 37))
                .map(|k| ((i * 31 + k * 7) % vocab) as u32)
                .collect();
            w.add(i, &doc, Some(["a", "b"][i as usize % 2]), Some("en"))
                .unwrap();
            docs.push(doc);
        }
        w.finish().unwrap();
        docs
    }

    #[test]
    fn documents_come_back_and_splits_are_by_document() {
        for vocab in [300u64, 100_000] {
            let dir = scratch(&format!("shards-{vocab}"));
            let docs = write(&dir, vocab);
            let m = ShardManifest::read(&dir).unwrap();
            assert_eq!(m.width, if vocab <= 65536 { 2 } else { 4 });
            let total: u64 = docs.iter().map(|d| d.len() as u64).sum();
            assert_eq!(m.train_tokens + m.val_tokens, total);
            assert_eq!(m.tokens_by_domain.values().sum::<u64>(), total);
            assert!(m.shards.len() > 2, "{:?}", m.shards);
            let val_docs: u64 = m
                .shards
                .iter()
                .filter(|s| s.split == "val")
                .map(|s| s.docs)
                .sum();
            assert!((50..150).contains(&val_docs), "{val_docs}");
            // Every document comes back whole, in order within its split.
            let mut seen = Vec::new();
            for s in &m.shards {
                let shard = Shard::open(&dir.join(&s.file)).unwrap();
                assert_eq!(shard.len() as u64, s.tokens);
                for d in 0..shard.docs() {
                    seen.push(shard.document(d));
                }
            }
            seen.sort();
            let mut expected = docs.clone();
            expected.sort();
            assert_eq!(seen, expected);
        }
    }

    #[test]
    fn windows_are_seeded_and_resume_from_a_cursor() {
        let dir = scratch("windows");
        write(&dir, 300);
        let mut a = Windows::open(&dir, "train", 16, 7, Cursor::default()).unwrap();
        let first: Vec<Vec<u32>> = (0..a.len() + 5).map(|_| a.next_window()).collect();
        assert!(first.iter().all(|w| w.len() == 17));
        assert_eq!(a.cursor().epoch, 1);
        // The same seed gives the same order; another seed another.
        let mut b = Windows::open(&dir, "train", 16, 7, Cursor::default()).unwrap();
        assert_eq!(b.next_window(), first[0]);
        let mut c = Windows::open(&dir, "train", 16, 8, Cursor::default()).unwrap();
        let other: Vec<Vec<u32>> = (0..10).map(|_| c.next_window()).collect();
        assert_ne!(other, first[..10].to_vec());
        // Resume mid-epoch and across the epoch boundary.
        let mut d = Windows::open(
            &dir,
            "train",
            16,
            7,
            Cursor {
                epoch: 0,
                position: 9,
            },
        )
        .unwrap();
        assert_eq!(d.next_window(), first[9]);
        let n = first.len();
        let mut e = Windows::open(
            &dir,
            "train",
            16,
            7,
            Cursor {
                epoch: 1,
                position: 2,
            },
        )
        .unwrap();
        assert_eq!(e.next_window(), first[n - 3]);
        // A window longer than any shard is an error.
        assert!(Windows::open(&dir, "train", 1 << 20, 7, Cursor::default()).is_err());
    }

    #[test]
    fn damaged_shards_are_errors() {
        let dir = scratch("damaged");
        write(&dir, 300);
        let m = ShardManifest::read(&dir).unwrap();
        let path = dir.join(&m.shards[0].file);
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 10, 39, 41, bytes.len() / 2, bytes.len() - 1] {
            let p = dir.join("cut.tok");
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let e = Shard::open(&p)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("cut.tok"), "cut at {cut}: {e}");
        }
        let mut bad = bytes.clone();
        bad[8] = 3;
        let p = dir.join("width.tok");
        std::fs::write(&p, &bad).unwrap();
        assert!(Shard::open(&p).err().unwrap().to_string().contains("width"));
        let mut w = ShardWriter::new(&dir.join("x"), 10, "t", 0.0, 0, 1024).unwrap();
        assert!(w.add(0, &[3, 11], None, None).is_err());
        assert!(ShardWriter::new(&dir.join("y"), 10, "t", 1.5, 0, 1024).is_err());
    }
}

#[test]
fn every_wording_of_an_eval_question_and_the_value_it_names() {
    use fmlab_data::world::kb::Kb;
    use fmlab_data::world::{paraphrases, read_config, Named, ValueIndex};
    let config = WorldConfig {
        seed: 5,
        size: 200_000,
        ..WorldConfig::default()
    };
    let dir = world("paraphrases", &config);
    // The manifest gives back the configuration, and with it the knowledge base.
    assert_eq!(read_config(&dir).unwrap(), config);
    let kb = Kb::generate(config.seed, config.people(), config.held_out);
    let values = ValueIndex::new(&kb);
    let items: Vec<EvalItem> = fmlab_data::read_items(&dir.join("eval.jsonl")).unwrap();
    let mut checked = 0;
    for it in items.iter().filter(|i| i.relation.is_some()) {
        let (rel, name) = (it.relation.unwrap(), it.subject.as_deref().unwrap());
        let p = kb.person_named(name).unwrap();
        let mut keys = Vec::new();
        for lang in Lang::ALL {
            let all = paraphrases(&kb, p, rel, lang, it.format, &it.split, it.id);
            // English has two templates for every relation; French and Swahili one or two.
            assert!(all.len() >= if lang == Lang::En { 2 } else { 1 }, "{it:?}");
            let prompts: HashSet<&str> = all.iter().map(|w| w.prompt.as_str()).collect();
            assert_eq!(prompts.len(), all.len(), "{all:?}");
            for w in &all {
                assert_eq!(
                    (w.relation, w.format, w.refusal),
                    (it.relation, it.format, it.refusal)
                );
                assert_eq!(w.lang, lang);
                assert_eq!(judge(w, &render(w, None)), Verdict::Correct, "{w:?}");
            }
            if lang == it.lang {
                // The item's own question is one of them, with the same answers.
                let own: Vec<&EvalItem> = all.iter().filter(|w| w.prompt == it.prompt).collect();
                assert_eq!(own.len(), 1, "{it:?}");
                assert_eq!(own[0], it);
            }
            // The right answer in this language names one value, the same in every language.
            keys.push(values.named(rel, Some(name), &render(&all[0], None)));
        }
        if it.refusal {
            assert!(keys.iter().all(|k| *k == Named::Refusal), "{keys:?}");
        } else {
            assert!(matches!(keys[0], Named::Value(_)), "{it:?} {keys:?}");
            assert!(keys.iter().all(|k| *k == keys[0]), "{it:?} {keys:?}");
        }
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
    // A folder without a manifest, and one with a foreign file in its place.
    let empty = scratch("no-manifest");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(read_config(&empty)
        .unwrap_err()
        .to_string()
        .contains("manifest.json"));
    std::fs::write(empty.join("manifest.json"), "{\"format\": \"other\"}").unwrap();
    assert!(read_config(&empty)
        .unwrap_err()
        .to_string()
        .contains("not a world manifest"));
}
