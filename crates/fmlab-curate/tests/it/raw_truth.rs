//! Raw-web scoring from a real pipeline run: `Outcome::from_curation` reads a `fmlab curate`
//! output folder (report.json's block order, attribute files, kept texts), in a run and in
//! a dry run, and the score it gives is the one worked out by hand.

use std::path::{Path, PathBuf};

use fmlab_curate::pipeline::{BlockSpec, Built, Curation, PipelineSpec, RunOptions};
use fmlab_curate::raw_truth::{score, Outcome, RawTruth, ScoreOptions};
use fmlab_curate::{Block, Decision, Document, Result};
use fmlab_data::world::{JunkKind, RawRecord};
use fmlab_testkit::Scratch;

/// Drops pages with a `<`; removes lines of one word (C4's idea, in small).
struct Markup;
impl Block for Markup {
    fn name(&self) -> &str {
        "c4"
    }
    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        if doc.text.contains('<') {
            out.drop_for("angle_bracket");
            return;
        }
        let kept: Vec<&str> = doc
            .text
            .lines()
            .filter(|l| l.split_whitespace().count() != 1)
            .collect();
        doc.text = kept.join("\n");
    }
}

/// Drops pages repeating a word five times in a row.
struct Repeats;
impl Block for Repeats {
    fn name(&self) -> &str {
        "gopher_repetition"
    }
    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let w: Vec<&str> = doc.text.split_whitespace().collect();
        if w.windows(5).any(|x| x.iter().all(|y| *y == x[0])) {
            out.drop_for("top_1_gram");
        }
    }
}

fn build(b: &BlockSpec) -> Result<Built> {
    Ok(match b.kind.as_str() {
        "markup" => Built::Stream(Box::new(Markup)),
        "repeats" => Built::Stream(Box::new(Repeats)),
        other => panic!("{other}"),
    })
}

fn record(id: u64, junk: Option<JunkKind>, text: &str) -> RawRecord {
    RawRecord {
        id,
        junk,
        lang: "en".into(),
        domain: None,
        url: format!("https://example.org/{id}"),
        sources: Vec::new(),
        added_lines: Vec::new(),
        duplicate_of: None,
        edits: None,
        style: None,
        text: text.into(),
    }
}

/// Six pages in two input files: clean, boilerplate (two planted lines), spam, markup,
/// a clean page with a `<` (a false positive), a clean page.
fn inputs(dir: &Path) -> (RawTruth, Vec<PathBuf>) {
    let mut bp = record(
        1,
        Some(JunkKind::Boilerplate),
        "Menu\nA clean line of the page.\nAnother clean line here.\nSubscribe to our newsletter today.",
    );
    bp.added_lines = vec![0, 3];
    let records = vec![
        record(0, None, "A clean page with words.\nIts second line."),
        bp,
        record(2, Some(JunkKind::Spam), "buy buy buy buy buy now"),
        record(3, Some(JunkKind::Markup), "<div>\nText in a div.\n</div>"),
        record(4, None, "Three is < four, said the page."),
        record(5, None, "One more clean page."),
    ];
    std::fs::create_dir_all(dir).unwrap();
    let files: Vec<PathBuf> = (0..2)
        .map(|f| {
            let p = dir.join(format!("raw{f}.jsonl"));
            let lines: String = records[f * 3..f * 3 + 3]
                .iter()
                .map(|r| serde_json::to_string(r).unwrap() + "\n")
                .collect();
            std::fs::write(&p, lines).unwrap();
            p
        })
        .collect();
    (RawTruth::from_records(records).unwrap(), files)
}

fn curate(out: &Path, inputs: &[PathBuf], dry_run: bool) {
    let spec = PipelineSpec::from_toml(
        "[[blocks]]\nkind = \"markup\"\nname = \"c4\"\n[[blocks]]\nkind = \"repeats\"\nname = \"gopher_repetition\"\n",
        Path::new("t.toml"),
    )
    .unwrap();
    let progress = |_| {};
    let opts = RunOptions {
        out: out.to_path_buf(),
        inputs: inputs.to_vec(),
        world_size: 1,
        rank: None,
        stage: None,
        dry_run,
        threads: 1,
        progress: &progress,
    };
    Curation::new(spec, &build).unwrap().run(&opts).unwrap();
}

#[test]
fn outcome_from_a_curation_run_and_a_dry_run() {
    let s = Scratch::new("raw-truth-run");
    let (truth, files) = inputs(&s.path().join("in"));
    for dry in [false, true] {
        let out = s.path().join(if dry { "dry" } else { "run" });
        curate(&out, &files, dry);
        let o = Outcome::from_curation(&out).unwrap();
        let mut kept: Vec<&str> = o.kept.iter().map(String::as_str).collect();
        kept.sort();
        assert_eq!(kept, ["0", "1", "5"], "dry run {dry}");
        assert_eq!(o.dropped_by["2"].block, "gopher_repetition");
        assert_eq!(o.dropped_by["2"].rule.as_deref(), Some("top_1_gram"));
        assert_eq!(o.dropped_by["3"].block, "c4");
        assert_eq!(o.dropped_by["4"].rule.as_deref(), Some("angle_bracket"));
        assert_eq!(
            o.kept_texts["1"],
            "A clean line of the page.\nAnother clean line here.\nSubscribe to our newsletter today."
        );
        let r = score(&truth, &o, &ScoreOptions::default()).unwrap();
        assert_eq!((r.kept, r.dropped), (3, 3));
        assert_eq!((r.recall, r.kinds["markup"].recall), (1.0, 1.0));
        // The C4-like block dropped a markup page and a clean one.
        assert_eq!(r.kinds["markup"].precision, Some(0.5));
        assert_eq!(r.false_positives["c4/angle_bracket"], 1);
        // "Menu" removed, the newsletter line not; no clean line lost.
        let l = r.lines.unwrap();
        assert_eq!((l.planted, l.planted_removed, l.clean_removed), (2, 1, 0));
    }
}

#[test]
fn broken_outputs_are_named() {
    let s = Scratch::new("raw-truth-bad");
    let (_, files) = inputs(&s.path().join("in"));
    let out = s.path().join("run");
    curate(&out, &files, false);
    let e = Outcome::from_curation(&s.path().join("nothing")).unwrap_err();
    assert!(e.to_string().contains("report.json"), "{e}");
    let attr = out.join("attributes/c4/f00001.jsonl");
    std::fs::write(&attr, "{\"id\": \"9\"}\n").unwrap();
    let e = Outcome::from_curation(&out).unwrap_err().to_string();
    assert!(e.contains("f00001.jsonl") && e.contains("line 1"), "{e}");
    // One id at two places.
    std::fs::write(
        &attr,
        "{\"id\": \"0\", \"file\": 1, \"index\": 0, \"drop\": null}\n",
    )
    .unwrap();
    std::fs::remove_dir_all(out.join("attributes/gopher_repetition")).unwrap();
    let e = Outcome::from_curation(&out).unwrap_err().to_string();
    assert!(e.contains("\"0\" is at two places"), "{e}");
}
