//! Running a pipeline: the plan of stages, the parts of each stage, completion markers,
//! and the streaming work of a segment (read, apply blocks in parallel chunks, record
//! decisions, write what is kept).

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::block::{Block, Decision};
use crate::doc::Document;
use crate::pipeline::dedup::{Dedup, DedupSink};
use crate::pipeline::glue::{
    attribute_line, doc_line, map_keeps_order, read_doc_lines, AttributeLine, LineFile,
};
use crate::pipeline::input::{open_input, output_writer};
use crate::pipeline::spec::{BlockSpec, PipelineSpec};
use crate::pipeline::stats::BlockStats;
use crate::{Error, Result};

/// Documents handed to the thread pool at a time.
const CHUNK: usize = 256;

/// A streaming block with its name and kind.
pub struct NamedBlock {
    pub name: String,
    pub kind: String,
    pub block: Box<dyn Block>,
}

/// What a block specification builds.
pub enum Built {
    Stream(Box<dyn Block>),
    Dedup(Box<dyn Dedup>),
}

/// A pipeline ready to run: streaming segments separated by deduplications
/// (`segments.len() == dedups.len() + 1`; segment k > 0 starts by applying dedup k − 1).
pub struct Curation {
    pub spec: PipelineSpec,
    segments: Vec<Vec<NamedBlock>>,
    dedups: Vec<Box<dyn Dedup>>,
}

/// One stage of the plan and how many parts it has (a Slurm array of that size).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    pub name: String,
    pub parts: usize,
    #[serde(skip)]
    kind: StageKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum StageKind {
    Segment(usize),
    DedupStep { dedup: usize, step: usize },
    Report,
}

/// How to run.
pub struct RunOptions<'a> {
    pub out: PathBuf,
    pub inputs: Vec<PathBuf>,
    pub world_size: usize,
    /// `None`: every rank, here, one after the other.
    pub rank: Option<usize>,
    /// `None`: every stage in order (a rank stops at a stage whose inputs are not all done).
    pub stage: Option<String>,
    /// Tag only: nothing is dropped, every decision is recorded.
    pub dry_run: bool,
    /// Threads for the streaming work (0: all cores).
    pub threads: usize,
    pub progress: &'a (dyn Fn(Event) + Sync),
}

/// Progress, for a bar.
#[derive(Debug, Clone)]
pub enum Event {
    /// A part starts: its stage, part, number of parts and input bytes (0 when unknown).
    Start {
        stage: String,
        part: usize,
        parts: usize,
        bytes: u64,
    },
    /// Bytes of input read.
    Advance(u64),
    /// A part was done by an earlier run.
    Skipped {
        stage: String,
        part: usize,
    },
    Done,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// The report, when this run finished the last stage (or found it finished).
    pub report: Option<Report>,
    /// The stage this rank stopped before, and the parts of the stage before it that are
    /// not done yet.
    pub waiting: Option<(String, Vec<usize>)>,
}

/// `DIR/report.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub inputs: Vec<String>,
    pub world_size: usize,
    pub dry_run: bool,
    /// Every block in pipeline order.
    pub blocks: Vec<BlockStats>,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct Plan {
    spec: PipelineSpec,
    inputs: Vec<String>,
    world_size: usize,
    dry_run: bool,
}

#[derive(Serialize, Deserialize, Default)]
struct Marker {
    blocks: Vec<BlockStats>,
}

fn fname(file: u32) -> String {
    format!("f{file:05}.jsonl")
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::format(path, e.to_string()))?;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    fmlab_formats::write_atomically(path, &bytes).map_err(|e| Error::format(path, e.to_string()))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::format(path, e.to_string()))
}

impl Curation {
    /// Builds every block of `spec` with `build` (which knows the kinds).
    pub fn new(spec: PipelineSpec, build: &dyn Fn(&BlockSpec) -> Result<Built>) -> Result<Self> {
        spec.check()?;
        let mut segments = vec![Vec::new()];
        let mut dedups = Vec::new();
        for b in &spec.blocks {
            match build(b)? {
                Built::Stream(block) => {
                    let seg = segments.len() - 1;
                    segments[seg].push(NamedBlock {
                        name: b.name().to_string(),
                        kind: b.kind.clone(),
                        block,
                    })
                }
                Built::Dedup(d) => {
                    dedups.push(d);
                    segments.push(Vec::new());
                }
            }
        }
        Ok(Curation {
            spec,
            segments,
            dedups,
        })
    }

    /// The stages, in order, for `world_size` ranks.
    pub fn stages(&self, world_size: usize) -> Vec<Stage> {
        let mut out = Vec::new();
        for k in 0..self.segments.len() {
            out.push(Stage {
                name: format!("segment{k}"),
                parts: world_size,
                kind: StageKind::Segment(k),
            });
            if let Some(d) = self.dedups.get(k) {
                for (i, step) in d.global_steps().into_iter().enumerate() {
                    out.push(Stage {
                        name: format!("{}-{}", d.name(), step.name),
                        parts: step.parts.max(1),
                        kind: StageKind::DedupStep { dedup: k, step: i },
                    });
                }
            }
        }
        out.push(Stage {
            name: "report".into(),
            parts: 1,
            kind: StageKind::Report,
        });
        out
    }

    /// Whether segment k writes its documents for the next one (else the next reads the
    /// inputs again, as datatrove's MinHash does).
    fn writes_intermediate(&self, k: usize) -> bool {
        k < self.dedups.len() && (k > 0 || !self.segments[0].is_empty())
    }

    /// Runs what `opts` asks for.
    pub fn run(&self, opts: &RunOptions) -> Result<RunOutcome> {
        if opts.world_size == 0 {
            return Err(Error::Config("--world-size must be at least 1".into()));
        }
        let stages = self.stages(opts.world_size);
        if let (Some(r), None) = (opts.rank, &opts.stage) {
            if r >= opts.world_size {
                return Err(Error::Config(format!(
                    "--rank {r} is not below --world-size {}",
                    opts.world_size
                )));
            }
        }
        self.check_plan(opts)?;
        let chosen: Vec<usize> = match &opts.stage {
            None => (0..stages.len()).collect(),
            Some(name) => {
                let i = stages.iter().position(|s| &s.name == name).ok_or_else(|| {
                    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
                    Error::Config(format!(
                        "no stage {name:?}: the stages are {}",
                        names.join(", ")
                    ))
                })?;
                if let Some(r) = opts.rank {
                    if r >= stages[i].parts {
                        return Err(Error::Config(format!(
                            "--rank {r}: stage {name} has {} part(s)",
                            stages[i].parts
                        )));
                    }
                }
                vec![i]
            }
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| Error::Config(format!("thread pool: {e}")))?;
        let mut outcome = RunOutcome::default();
        for i in chosen {
            let stage = &stages[i];
            if i > 0 {
                let missing = self.missing_parts(opts, &stages[i - 1]);
                if !missing.is_empty() {
                    outcome.waiting = Some((stage.name.clone(), missing));
                    return Ok(outcome);
                }
            }
            let parts: Vec<usize> = match opts.rank {
                None => (0..stage.parts).collect(),
                Some(r) if r < stage.parts => vec![r],
                Some(_) => vec![],
            };
            for part in parts {
                if self.marker(opts, stage, part).exists() {
                    (opts.progress)(Event::Skipped {
                        stage: stage.name.clone(),
                        part,
                    });
                    continue;
                }
                pool.install(|| self.run_part(opts, stage, part))?;
            }
            if stage.kind == StageKind::Report {
                let path = opts.out.join("report.json");
                if path.exists() {
                    outcome.report = Some(read_json(&path)?);
                }
            }
        }
        (opts.progress)(Event::Done);
        Ok(outcome)
    }

    fn check_plan(&self, opts: &RunOptions) -> Result<()> {
        let plan = Plan {
            spec: self.spec.clone(),
            inputs: opts
                .inputs
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            world_size: opts.world_size,
            dry_run: opts.dry_run,
        };
        let path = opts.out.join("plan.json");
        if path.exists() {
            let old: Plan = read_json(&path)?;
            if old != plan {
                return Err(Error::Config(format!(
                    "{} was started with other inputs, blocks, world size or dry-run setting \
                     (its plan.json): use another --out, or delete it",
                    opts.out.display()
                )));
            }
            return Ok(());
        }
        write_json(&path, &plan)
    }

    fn work(&self, opts: &RunOptions) -> PathBuf {
        opts.out.join("work")
    }

    fn dedup_dir(&self, opts: &RunOptions, k: usize) -> PathBuf {
        self.work(opts)
            .join(format!("dedup-{}", self.dedups[k].name()))
    }

    fn marker(&self, opts: &RunOptions, stage: &Stage, part: usize) -> PathBuf {
        match stage.kind {
            StageKind::Report => opts.out.join("report.json"),
            _ => self
                .work(opts)
                .join("done")
                .join(format!("{}.{part}.json", stage.name)),
        }
    }

    fn missing_parts(&self, opts: &RunOptions, stage: &Stage) -> Vec<usize> {
        (0..stage.parts)
            .filter(|p| !self.marker(opts, stage, *p).exists())
            .collect()
    }

    fn run_part(&self, opts: &RunOptions, stage: &Stage, part: usize) -> Result<()> {
        (opts.progress)(Event::Start {
            stage: stage.name.clone(),
            part,
            parts: stage.parts,
            bytes: match stage.kind {
                StageKind::Segment(_) => self
                    .rank_files(opts, part)
                    .iter()
                    .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
                    .sum(),
                _ => 0,
            },
        });
        match stage.kind {
            StageKind::Segment(k) => {
                let marker = self.run_segment(opts, k, part)?;
                write_json(&self.marker(opts, stage, part), &marker)
            }
            StageKind::DedupStep { dedup, step } => {
                let dir = self.dedup_dir(opts, dedup);
                self.dedups[dedup].run_step(&dir, step, part, opts.world_size)?;
                write_json(&self.marker(opts, stage, part), &json!({"done": true}))
            }
            StageKind::Report => self.write_report(opts),
        }
    }

    /// Input files of rank `rank`: every world_size-th file from `rank` on.
    fn rank_files(&self, opts: &RunOptions, rank: usize) -> Vec<(u32, PathBuf)> {
        opts.inputs
            .iter()
            .enumerate()
            .filter(|(i, _)| i % opts.world_size == rank)
            .map(|(i, p)| (i as u32, p.clone()))
            .collect()
    }

    fn run_segment(&self, opts: &RunOptions, k: usize, rank: usize) -> Result<Marker> {
        let dedup_next = self.dedups.get(k);
        let mut sink: Option<Box<dyn DedupSink>> = match dedup_next {
            Some(d) => Some(d.sink(&self.dedup_dir(opts, k), rank)?),
            None => None,
        };
        let mut stats: Vec<BlockStats> = Vec::new();
        if k > 0 {
            let d = &self.dedups[k - 1];
            stats.push(BlockStats::new(d.name(), d.kind()));
        }
        for b in &self.segments[k] {
            let mut s = BlockStats::new(&b.name, &b.kind);
            s.thresholds = b
                .block
                .thresholds()
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v))
                .collect();
            stats.push(s);
        }
        for (file, path) in self.rank_files(opts, rank) {
            let applier = match k {
                0 => None,
                _ => Some(NamedBlock {
                    name: self.dedups[k - 1].name().to_string(),
                    kind: self.dedups[k - 1].kind().to_string(),
                    block: self.dedups[k - 1].applier(&self.dedup_dir(opts, k - 1), file)?,
                }),
            };
            let blocks: Vec<&NamedBlock> = applier.iter().chain(self.segments[k].iter()).collect();
            let source: Box<dyn Iterator<Item = Result<Document>> + Send> =
                if k > 0 && self.writes_intermediate(k - 1) {
                    let p = self
                        .work(opts)
                        .join(format!("segment{}", k - 1))
                        .join(fname(file));
                    Box::new(read_doc_lines(&p)?)
                } else {
                    open_input(&path, file, &self.spec.input)?
                };
            let signer = dedup_next.map(|d| d.as_ref());
            self.run_file(
                opts, k, file, source, &blocks, &mut stats, &mut sink, signer,
            )?;
        }
        if let Some(s) = sink {
            s.finish()?;
        }
        Ok(Marker { blocks: stats })
    }

    #[allow(clippy::too_many_arguments)]
    fn run_file(
        &self,
        opts: &RunOptions,
        k: usize,
        file: u32,
        source: Box<dyn Iterator<Item = Result<Document>> + Send>,
        blocks: &[&NamedBlock],
        stats: &mut [BlockStats],
        sink: &mut Option<Box<dyn DedupSink>>,
        signer: Option<&dyn Dedup>,
    ) -> Result<()> {
        let mut attrs: Vec<LineFile> = blocks
            .iter()
            .map(|b| LineFile::create(&opts.out.join("attributes").join(&b.name).join(fname(file))))
            .collect::<Result<_>>()?;
        let mut out = if self.writes_intermediate(k) {
            let path = self
                .work(opts)
                .join(format!("segment{k}"))
                .join(fname(file));
            Out::Stage(LineFile::create(&path)?)
        } else if k < self.dedups.len() {
            // An empty segment before a deduplication: the next segment reads the inputs
            // again and writes the kept documents, so nothing is written here (writing them
            // would cost a pass of JSON and could leave stale shards behind).
            Out::Nowhere
        } else {
            let writer = output_writer(&opts.out.join("output"), &self.spec.output, file)?;
            Out::Kept(Box::new(writer))
        };
        let mut chunk: Vec<Document> = Vec::with_capacity(CHUNK);
        let mut source = source.peekable();
        while source.peek().is_some() {
            chunk.clear();
            for doc in source.by_ref().take(CHUNK) {
                chunk.push(doc?);
            }
            let bytes: u64 = chunk.iter().map(|d| d.text.len() as u64).sum();
            let done: Vec<Processed> = std::mem::take(&mut chunk)
                .into_par_iter()
                .map(|doc| process(doc, blocks, opts.dry_run, signer))
                .collect();
            for p in done {
                for (i, (bytes_in, bytes_out, d)) in p.decisions.iter().enumerate() {
                    stats[i].record(*bytes_in, *bytes_out, &p.doc, d);
                    if map_keeps_order() {
                        attrs[i].line(&AttributeLine {
                            doc: &p.doc,
                            decision: d,
                        })?;
                    } else {
                        attrs[i].line(&attribute_line(&p.doc, d))?;
                    }
                }
                if !p.kept {
                    continue;
                }
                if let (Some(s), Some(sig)) = (sink.as_mut(), p.signature) {
                    s.push(p.doc.key, &p.doc.id, sig)?;
                }
                match &mut out {
                    Out::Stage(f) => f.line(&doc_line(&p.doc))?,
                    Out::Kept(w) => w.write(&p.doc)?,
                    Out::Nowhere => {}
                }
            }
            (opts.progress)(Event::Advance(bytes));
        }
        for a in attrs {
            a.finish()?;
        }
        match out {
            Out::Stage(f) => f.finish(),
            Out::Kept(w) => w.finish().map(|_| ()),
            Out::Nowhere => Ok(()),
        }
    }

    fn write_report(&self, opts: &RunOptions) -> Result<()> {
        let mut blocks: Vec<BlockStats> = Vec::new();
        for k in 0..self.segments.len() {
            let mut merged: Vec<BlockStats> = Vec::new();
            for r in 0..opts.world_size {
                let m: Marker = read_json(
                    &self
                        .work(opts)
                        .join("done")
                        .join(format!("segment{k}.{r}.json")),
                )?;
                if merged.is_empty() {
                    merged = m.blocks;
                } else {
                    for (a, b) in merged.iter_mut().zip(&m.blocks) {
                        a.merge(b);
                    }
                }
            }
            if k > 0 {
                if let Some(first) = merged.first_mut() {
                    let summary = self.dedups[k - 1].summary(&self.dedup_dir(opts, k - 1))?;
                    first.extra.extend(summary);
                }
            }
            blocks.extend(merged);
        }
        let report = Report {
            inputs: opts
                .inputs
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            world_size: opts.world_size,
            dry_run: opts.dry_run,
            blocks,
        };
        write_json(&opts.out.join("report.json"), &report)
    }
}

/// A document after a segment's blocks.
struct Processed {
    doc: Document,
    /// Per block reached: bytes in, bytes out, decision.
    decisions: Vec<(usize, usize, Decision)>,
    kept: bool,
    signature: Option<Vec<u64>>,
}

fn process(
    mut doc: Document,
    blocks: &[&NamedBlock],
    dry_run: bool,
    signer: Option<&dyn Dedup>,
) -> Processed {
    let mut decisions = Vec::with_capacity(blocks.len());
    let mut kept = true;
    for b in blocks {
        let bytes_in = doc.text.len();
        let mut d = Decision::default();
        b.block.apply(&mut doc, &mut d);
        for (k, v) in &d.tags {
            doc.metadata.insert(k.to_string(), v.clone());
        }
        let dropped = d.dropped();
        decisions.push((bytes_in, doc.text.len(), d));
        if dropped && !dry_run {
            kept = false;
            break;
        }
    }
    let signature = match (kept, signer) {
        (true, Some(s)) => Some(s.signature(&doc)),
        _ => None,
    };
    Processed {
        doc,
        decisions,
        kept,
        signature,
    }
}

/// Where a segment's surviving documents go: the next stage's file, the output, or nowhere
/// (an empty segment before a deduplication, whose next segment reads the inputs again).
enum Out {
    Stage(LineFile),
    Kept(Box<crate::write::ShardWriter>),
    Nowhere,
}
