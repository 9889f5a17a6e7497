//! The pipeline's execution: W ranks give the outputs and report of one process, reruns
//! skip finished parts, a dry run keeps everything and records every decision, a changed
//! configuration is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fmlab_curate::pipeline::{
    BlockSpec, Built, Curation, Dedup, DedupSink, Event, GlobalStep, PipelineSpec, RunOptions,
};
use fmlab_curate::{Block, Decision, DocKey, Document, Result};
use fmlab_testkit::Scratch;

struct Short;
impl Block for Short {
    fn name(&self) -> &str {
        "short"
    }
    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let n = doc.text.split_whitespace().count();
        out.stat("words", n as f64);
        if n < 3 {
            out.drop_for("too_short");
        }
    }
}

struct Upper;
impl Block for Upper {
    fn name(&self) -> &str {
        "upper"
    }
    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        doc.text = doc.text.to_uppercase();
        out.tag("domain", "shout".into());
    }
}

/// Exact duplicates by text, staged as a real dedup is: hashes per rank, one global step.
struct Exact;
struct ExactSink(PathBuf, Vec<(u64, u64)>);
impl DedupSink for ExactSink {
    fn push(&mut self, key: DocKey, _id: &str, sig: Vec<u64>) -> Result<()> {
        self.1.push((key.as_u64(), sig[0]));
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<()> {
        std::fs::create_dir_all(self.0.parent().unwrap()).unwrap();
        std::fs::write(&self.0, serde_json::to_vec(&self.1).unwrap()).unwrap();
        Ok(())
    }
}
struct Removed(BTreeSet<u64>);
impl Block for Removed {
    fn name(&self) -> &str {
        "exact"
    }
    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        if self.0.contains(&doc.key.as_u64()) {
            out.drop_for("duplicate");
        }
    }
}
impl Dedup for Exact {
    fn name(&self) -> &str {
        "exact"
    }
    fn kind(&self) -> &str {
        "exact"
    }
    fn signature(&self, doc: &Document) -> Vec<u64> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        doc.text.hash(&mut h);
        vec![h.finish()]
    }
    fn sink(&self, work: &Path, rank: usize) -> Result<Box<dyn DedupSink>> {
        Ok(Box::new(ExactSink(
            work.join(format!("sig{rank}.json")),
            Vec::new(),
        )))
    }
    fn global_steps(&self) -> Vec<GlobalStep> {
        // More parts than ranks, as MinHash's buckets: a rank number past the world size
        // is a valid part of this stage.
        vec![GlobalStep {
            name: "cluster".into(),
            parts: 5,
        }]
    }
    fn run_step(&self, work: &Path, _step: usize, part: usize, world: usize) -> Result<()> {
        if part > 0 {
            return Ok(());
        }
        let mut all: Vec<(u64, u64)> = Vec::new();
        for r in 0..world {
            let v: Vec<(u64, u64)> =
                serde_json::from_slice(&std::fs::read(work.join(format!("sig{r}.json"))).unwrap())
                    .unwrap();
            all.extend(v);
        }
        all.sort();
        let mut seen = BTreeSet::new();
        let removed: Vec<u64> = all
            .iter()
            .filter(|(_, h)| !seen.insert(*h))
            .map(|(k, _)| *k)
            .collect();
        std::fs::write(
            work.join("removed.json"),
            serde_json::to_vec(&removed).unwrap(),
        )
        .unwrap();
        Ok(())
    }
    fn applier(&self, work: &Path, _file: u32) -> Result<Box<dyn Block>> {
        let v: Vec<u64> =
            serde_json::from_slice(&std::fs::read(work.join("removed.json")).unwrap()).unwrap();
        Ok(Box::new(Removed(v.into_iter().collect())))
    }
    fn summary(&self, work: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
        let v: Vec<u64> =
            serde_json::from_slice(&std::fs::read(work.join("removed.json")).unwrap()).unwrap();
        let mut m = serde_json::Map::new();
        m.insert("removed".into(), v.len().into());
        Ok(m)
    }
}

fn build(b: &BlockSpec) -> Result<Built> {
    Ok(match b.kind.as_str() {
        "short" => Built::Stream(Box::new(Short)),
        "upper" => Built::Stream(Box::new(Upper)),
        "exact" => Built::Dedup(Box::new(Exact)),
        other => panic!("{other}"),
    })
}

fn spec() -> PipelineSpec {
    PipelineSpec::from_toml(
        "[[blocks]]\nkind = \"short\"\n[[blocks]]\nkind = \"exact\"\n[[blocks]]\nkind = \"upper\"\n",
        Path::new("t.toml"),
    )
    .unwrap()
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let texts = [
        "one two three four",
        "tiny",
        "the same text again here",
        "another document with words",
        "the same text again here",
        "ok",
        "one two three four",
        "a last unique document",
    ];
    (0..4)
        .map(|f| {
            let p = dir.join(format!("in{f}.jsonl"));
            let lines: Vec<String> = (0..texts.len())
                .filter(|i| i % 4 == f || (i + f) % 5 == 0)
                .map(|i| {
                    serde_json::json!({"id": format!("d{f}-{i}"), "text": texts[i], "lang": "en"})
                        .to_string()
                })
                .collect();
            std::fs::write(&p, lines.join("\n") + "\n").unwrap();
            p
        })
        .collect()
}

fn run(
    out: &Path,
    ins: &[PathBuf],
    world: usize,
    rank: Option<usize>,
    stage: Option<&str>,
    dry: bool,
) -> Vec<String> {
    let events = std::sync::Mutex::new(Vec::new());
    let progress = |e: Event| {
        if let Event::Skipped { stage, part } = e {
            events.lock().unwrap().push(format!("{stage}.{part}"));
        }
    };
    let opts = RunOptions {
        out: out.to_path_buf(),
        inputs: ins.to_vec(),
        world_size: world,
        rank,
        stage: stage.map(str::to_string),
        dry_run: dry,
        threads: 2,
        progress: &progress,
    };
    Curation::new(spec(), &build).unwrap().run(&opts).unwrap();
    events.into_inner().unwrap()
}

fn outputs(dir: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("output")).unwrap() {
        let p = e.unwrap().path();
        let mut text = String::new();
        let mut r = fmlab_curate::read::open_decoded(&p).unwrap();
        std::io::Read::read_to_string(&mut r, &mut text).unwrap();
        m.insert(p.file_name().unwrap().to_string_lossy().into_owned(), text);
    }
    m
}

fn blocks(dir: &Path) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    v["blocks"].clone()
}

#[test]
fn ranks_give_the_output_of_one_process() {
    let s = Scratch::new("curate-ranks");
    let ins = inputs(&s.path().join("in"));
    let one = s.path().join("one");
    run(&one, &ins, 1, None, None, false);
    let report = blocks(&one);
    let names: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["short", "exact", "upper"]);
    assert_eq!(report[0]["dropped"]["too_short"], 3);
    assert!(
        report[1]["dropped"]["duplicate"].as_u64().unwrap() >= 2,
        "{report}"
    );
    assert_eq!(
        report[1]["extra"]["removed"],
        report[1]["dropped"]["duplicate"]
    );
    let kept: usize = outputs(&one).values().map(|t| t.lines().count()).sum();
    assert_eq!(kept as u64, report[2]["documents_out"].as_u64().unwrap());

    // Three ranks, all here.
    let three = s.path().join("three");
    run(&three, &ins, 3, None, None, false);
    assert_eq!(outputs(&three), outputs(&one));
    assert_eq!(blocks(&three), report);

    // Three ranks as a scheduler runs them: stage by stage, rank by rank.
    let sched = s.path().join("sched");
    let curation = Curation::new(spec(), &build).unwrap();
    for stage in curation.stages(3) {
        for r in 0..stage.parts {
            run(&sched, &ins, 3, Some(r), Some(&stage.name), false);
        }
    }
    assert_eq!(outputs(&sched), outputs(&one));
    assert_eq!(blocks(&sched), report);

    // A rerun skips every part; a rank that runs ahead waits for the others.
    let skipped = run(&three, &ins, 3, None, None, false);
    assert_eq!(skipped.len(), 3 + 5 + 3 + 1, "{skipped:?}");
    let early = s.path().join("early");
    run(&early, &ins, 3, Some(0), None, false);
    assert!(!early.join("report.json").exists());

    // Another configuration in the same folder is refused.
    let opts = RunOptions {
        out: one.clone(),
        inputs: ins[..2].to_vec(),
        world_size: 1,
        rank: None,
        stage: None,
        dry_run: false,
        threads: 1,
        progress: &|_| {},
    };
    let err = Curation::new(spec(), &build)
        .unwrap()
        .run(&opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("plan.json"), "{err}");
}

#[test]
fn a_dry_run_keeps_everything_and_records_every_decision() {
    let s = Scratch::new("curate-dry");
    let ins = inputs(&s.path().join("in"));
    let dry = s.path().join("dry");
    run(&dry, &ins, 2, None, None, true);
    let total: usize = ins
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum();
    let kept: usize = outputs(&dry).values().map(|t| t.lines().count()).sum();
    assert_eq!(kept, total);
    let attrs = std::fs::read_to_string(dry.join("attributes/short/f00000.jsonl")).unwrap();
    let first_file = std::fs::read_to_string(&ins[0]).unwrap();
    assert_eq!(attrs.lines().count(), first_file.lines().count());
    assert!(attrs.contains("\"drop\":\"too_short\""), "{attrs}");
    let report = blocks(&dry);
    assert_eq!(report[0]["dropped"]["too_short"], 3);
    assert_eq!(report[2]["documents_in"].as_u64().unwrap() as usize, total);
    assert_eq!(
        report[2]["by_domain"]["shout"]["documents_in"]
            .as_u64()
            .unwrap() as usize,
        total
    );
}

/// A deduplication first (an empty first segment): the next segment reads the inputs again
/// and writes the kept documents, and nothing else is left in the output folder — not the
/// shards of every document that the first pass once wrote and the second overwrote only in
/// part (small shards: the first pass wrote more of them than the second).
#[test]
fn a_dedup_first_writes_only_the_kept_documents() {
    let s = Scratch::new("curate-dedup-first");
    let ins = inputs(&s.path().join("in"));
    let spec = PipelineSpec::from_toml(
        "[output]\ncompression = \"none\"\nmax_shard_bytes = 40\n[[blocks]]\nkind = \"exact\"\n",
        Path::new("t.toml"),
    )
    .unwrap();
    let out = s.path().join("out");
    let opts = RunOptions {
        out: out.clone(),
        inputs: ins.clone(),
        world_size: 1,
        rank: None,
        stage: None,
        dry_run: false,
        threads: 1,
        progress: &|_| {},
    };
    Curation::new(spec, &build).unwrap().run(&opts).unwrap();
    let report = blocks(&out);
    let kept = report[0]["documents_out"].as_u64().unwrap();
    let removed = report[0]["dropped"]["duplicate"].as_u64().unwrap();
    assert!(removed >= 2, "{report}");
    let written: Vec<serde_json::Value> = outputs(&out)
        .values()
        .flat_map(|t| {
            t.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(written.len() as u64, kept, "{written:?}");
    let texts: BTreeSet<&str> = written
        .iter()
        .map(|d| d["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts.len(),
        written.len(),
        "a duplicate was written: {written:?}"
    );
}
