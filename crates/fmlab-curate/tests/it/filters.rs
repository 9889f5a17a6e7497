//! The four FineWeb quality filters decide as datatrove 0.10 does on the fixture: 127
//! documents of our own synthetic text (`tests/fixtures/filters_docs.jsonl`, written by
//! `scripts/check_curate_filters.py fixture 18`) and datatrove's decisions on them
//! (`filters_datatrove.jsonl`, recorded by `scripts/check_curate_filters.sh` with
//! `FMLAB_RECORD_FIXTURE=1`): each filter alone, and the four in FineWeb's order.

use std::path::Path;

use fmlab_curate::filters::{fineweb_filters, LanguageRules};
use fmlab_curate::{Decision, DocKey, Document};
use serde_json::Value;

fn fixture(name: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn reason(d: &Decision) -> Value {
    d.drop
        .as_deref()
        .map_or(Value::Null, |r| Value::String(r.into()))
}

#[test]
fn decisions_equal_datatrove_on_the_fixture() {
    let docs = fixture("filters_docs.jsonl");
    let want = fixture("filters_datatrove.jsonl");
    assert_eq!(docs.len(), want.len());
    let filters = fineweb_filters(&LanguageRules::fineweb());
    let mut mismatches = Vec::new();
    for (i, (doc, want)) in docs.iter().zip(&want).enumerate() {
        let id = doc["id"].as_str().unwrap();
        assert_eq!(want["id"], doc["id"]);
        let make = || Document::new(id, doc["text"].as_str().unwrap(), DocKey::new(0, i as u32));
        for f in &filters {
            let mut d = make();
            let mut out = Decision::default();
            f.apply(&mut d, &mut out);
            if reason(&out) != want["indep"][f.name()] {
                mismatches.push(format!(
                    "{id} {} alone: {:?} vs datatrove {}",
                    f.name(),
                    out.drop,
                    want["indep"][f.name()]
                ));
            }
        }
        let mut d = make();
        let mut seq = serde_json::Map::new();
        for f in &filters {
            let mut out = Decision::default();
            f.apply(&mut d, &mut out);
            seq.insert(f.name().into(), reason(&out));
            if out.dropped() {
                break;
            }
        }
        if Value::Object(seq.clone()) != want["seq"] {
            mismatches.push(format!(
                "{id} in sequence: {seq:?} vs datatrove {}",
                want["seq"]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn shipped_languages_file_loads_and_applies_by_language() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/curate/languages.toml");
    let rules = LanguageRules::load(&path).unwrap();
    assert_eq!(rules.default, LanguageRules::fineweb().default);
    assert!(rules
        .get("sw")
        .gopher_quality
        .stop_words
        .contains(&"katika".to_string()));
    let filters = fineweb_filters(&rules);
    let text = "Watoto wanacheza na mpira katika uwanja wa shule kila siku. ".repeat(8);
    let mut sw = Document::new("sw", text.as_str(), DocKey::new(0, 0));
    sw.metadata.insert("language".into(), "sw".into());
    let mut en = Document::new("en", text.as_str(), DocKey::new(0, 1));
    en.metadata.insert("language".into(), "en".into());
    let gopher_quality = &filters[1];
    let (mut a, mut b) = (Decision::default(), Decision::default());
    gopher_quality.apply(&mut sw, &mut a);
    gopher_quality.apply(&mut en, &mut b);
    assert_eq!(a.drop, None, "{:?}", a.stats);
    assert_eq!(b.drop.as_deref(), Some("gopher_enough_stop_words"));
}
