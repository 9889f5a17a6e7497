//! Language ID on a small world: accuracy per language on held-out labelled text (the
//! world's `lang` field), prose and all documents, at levels measured on a 2 MB world
//! with a margin (see the figures in `langid`'s module doc and the closing note).

use fmlab_curate::langid::{
    held_out_sentences, supported_languages, Backend, LanguageFilter, LanguageId, LanguageIdOptions,
};
use fmlab_curate::{Block, Decision, DocKey, Document};
use fmlab_data::world::lang::Lang;
use fmlab_data::{write_world, WorldConfig};
use fmlab_testkit::Scratch;

/// A small world (a helper of tests: it may panic) with more French and Swahili than the default, so each has enough
/// documents: (lang, domain, text) of every corpus document.
#[allow(clippy::expect_used)]
fn small_world(label: &str) -> Vec<(String, String, String)> {
    let dir = Scratch::new(label);
    let config = WorldConfig {
        seed: 3,
        size: 150_000,
        languages: vec![(Lang::En, 0.4), (Lang::Fr, 0.3), (Lang::Sw, 0.3)],
        ..WorldConfig::default()
    };
    write_world(&config, dir.path(), |_| {}).expect("world");
    let text = std::fs::read_to_string(dir.join("corpus.jsonl")).expect("corpus");
    text.lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).expect("json");
            let s = |k: &str| r[k].as_str().expect(k).to_string();
            (s("lang"), s("domain"), s("text"))
        })
        .collect()
}

#[test]
fn accuracy_per_language_on_a_small_world() {
    let docs = small_world("langid-world");
    let id = LanguageId::new(&LanguageIdOptions::default()).expect("langid");
    // (lang, minimum accuracy on prose, minimum on all documents incl. code and tables)
    for (lang, prose_min, all_min) in [
        ("en", PROSE_EN, ALL_EN),
        ("fr", PROSE_FR, ALL_FR),
        ("sw", PROSE_SW, ALL_SW),
    ] {
        let (mut n, mut ok, mut n_all, mut ok_all) = (0, 0, 0, 0);
        for (gold, domain, text) in docs.iter().filter(|d| d.0 == lang) {
            let right = id.identify(text).0 == gold;
            n_all += 1;
            ok_all += usize::from(right);
            if domain != "code" && domain != "table" {
                n += 1;
                ok += usize::from(right);
            }
        }
        assert!(n >= 60, "{lang}: only {n} prose documents");
        let (acc, acc_all) = (ok as f64 / n as f64, ok_all as f64 / n_all as f64);
        assert!(
            acc >= prose_min,
            "{lang}: prose accuracy {acc:.4} < {prose_min}"
        );
        assert!(
            acc_all >= all_min,
            "{lang}: accuracy {acc_all:.4} < {all_min}"
        );
    }
}

const PROSE_EN: f64 = 0.97;
const PROSE_FR: f64 = 0.97;
const PROSE_SW: f64 = 0.97;
const ALL_EN: f64 = 0.78;
const ALL_FR: f64 = 0.70;
const ALL_SW: f64 = 0.55;

#[test]
fn filter_keeps_swahili_and_tags_everything() {
    let keep_sw = LanguageFilter::new(&["sw"], 0.65, &LanguageIdOptions::default()).expect("f");
    let tag_only =
        LanguageFilter::new::<&str>(&[], 0.65, &LanguageIdOptions::default()).expect("f");
    let texts = [
        ("sw", "Mwalimu alisema kwamba watoto wote wanapaswa kufika shuleni mapema kesho asubuhi."),
        ("en", "The teacher said that all the children should arrive at school early tomorrow morning."),
        ("fr", "Le professeur a dit que tous les enfants devaient arriver tôt à l'école demain matin."),
    ];
    for (i, (lang, text)) in texts.iter().enumerate() {
        let mut doc = Document::new(i.to_string(), *text, DocKey::new(0, i as u32));
        let mut d = Decision::default();
        keep_sw.apply(&mut doc, &mut d);
        assert_eq!(doc.metadata["language"], *lang);
        assert!(doc.metadata["language_score"].as_f64().expect("score") > 0.65);
        assert_eq!(d.dropped(), *lang != "sw", "{lang}: {d:?}");
        if *lang != "sw" {
            assert_eq!(d.drop.as_deref(), Some("language_not_kept"));
        }
        let mut d = Decision::default();
        tag_only.apply(&mut doc, &mut d);
        assert!(!d.dropped());
        assert_eq!(d.tags.len(), 2);
    }
    // A threshold of 1 drops a kept language whose score is under it.
    let strict = LanguageFilter::new(&["en", "fr"], 1.0, &LanguageIdOptions::default()).expect("f");
    let mut doc = Document::new("x", "Le chat and the dog sont amis.", DocKey::new(0, 9));
    let mut d = Decision::default();
    strict.apply(&mut doc, &mut d);
    assert_eq!(
        d.drop.as_deref(),
        Some("language_score_below_threshold"),
        "{d:?}"
    );
}

/// The hashed model alone on the shipped sentences it did not train on (measured 0.98 to
/// 1.00 per language).
#[test]
fn hashed_model_on_held_out_sentences() {
    let opts = LanguageIdOptions {
        backend: Backend::Hashed,
        ..LanguageIdOptions::default()
    };
    let id = LanguageId::new(&opts).expect("langid");
    for code in supported_languages() {
        let sentences = held_out_sentences(code).expect("sentences");
        assert_eq!(sentences.len(), 200);
        let ok = sentences
            .iter()
            .filter(|s| id.identify(s).0 == code)
            .count();
        assert!(ok >= 190, "{code}: {ok}/200");
    }
}
