//! The fastText-style classifier on a small world: trained on the world's domains from its
//! corpus.jsonl as `fmlab curate train-classifier --label-field domain` does, held-out
//! accuracy per domain at levels measured on a 2 MB world with a margin; the saved model
//! is the same model; the block tags and filters.

use fmlab_curate::classifier::{
    train_from_jsonl, Classifier, ClassifierBlock, TrainFileOptions, TrainOptions,
};
use fmlab_curate::{Block, Decision, DocKey, Document};
use fmlab_data::{write_world, WorldConfig};
use fmlab_testkit::Scratch;

/// Least held-out accuracy per domain (measured on a 2 MB world: see the closing note).
const MIN_ACCURACY: [(&str, f64); 7] = [
    ("arithmetic", 0.95),
    ("biography", 0.95),
    ("code", 0.95),
    ("dialogue", 0.95),
    ("encyclopedia", 0.95),
    ("story", 0.95),
    ("table", 0.95),
];

#[test]
fn domains_of_a_small_world() {
    let dir = Scratch::new("classifier-world");
    let config = WorldConfig {
        seed: 5,
        size: 300_000,
        ..WorldConfig::default()
    };
    write_world(&config, dir.path(), |_| {}).expect("world");
    let corpus = dir.join("corpus.jsonl");
    let opts = TrainFileOptions {
        label_field: "domain".into(),
        validation_share: 0.2,
        train: TrainOptions {
            buckets: 1 << 16,
            ..TrainOptions::default()
        },
        ..TrainFileOptions::default()
    };
    let (model, report) = train_from_jsonl(std::slice::from_ref(&corpus), &opts).expect("train");
    assert_eq!(report.labels.len(), 7);
    assert_eq!(
        report.train_examples + report.validation_examples,
        report.examples
    );
    for (label, min) in MIN_ACCURACY {
        let row = report
            .labels
            .iter()
            .find(|l| l.label == label)
            .expect(label);
        assert!(row.validation >= 10, "{label}: {} held out", row.validation);
        assert!(
            row.accuracy >= min,
            "{label}: accuracy {:.4} < {min}",
            row.accuracy
        );
    }

    // Saved and loaded, the model predicts the same.
    let path = dir.join("domain.fmlcls");
    model.save(&path).expect("save");
    let loaded = Classifier::load(&path).expect("load");
    assert_eq!(loaded, model);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("cut");
    let err = Classifier::load(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("domain.fmlcls") && err.contains("damaged"),
        "{err}"
    );

    // The block: a tagger and a filter for code.
    let code =
        "# Kiro Tamba — apples\napples = [3, 7]\nprint(max(apples) + len(apples))\n# output: 9";
    let mut doc = Document::new("c", code, DocKey::new(0, 0));
    let mut d = Decision::default();
    ClassifierBlock::tagger("domain", model.clone(), false).apply(&mut doc, &mut d);
    assert_eq!(doc.metadata["domain"], "code", "{d:?}");
    assert!(doc.metadata["domain_score"].as_f64().expect("score") > 0.5);
    let mut d = Decision::default();
    ClassifierBlock::tagger("domain", model.clone(), true).apply(&mut doc, &mut d);
    assert_eq!(d.tags.len(), 7);
    let filter = ClassifierBlock::filter("domain", model.clone(), "code", 0.5).expect("filter");
    let mut d = Decision::default();
    filter.apply(&mut doc, &mut d);
    assert!(!d.dropped(), "{d:?}");
    let story = "Once upon a time, a baker walked to the river and met an old friend there.";
    let mut other = Document::new("s", story, DocKey::new(0, 1));
    let mut d = Decision::default();
    filter.apply(&mut other, &mut d);
    assert_eq!(d.drop.as_deref(), Some("code_score_below_threshold"));
    assert!(ClassifierBlock::filter("domain", model, "poetry", 0.5).is_err());
}
