//! The curation pipeline: blocks in the user's order, cut into stages at every
//! deduplication (which needs all documents), each stage split by rank over input files or
//! by part (MinHash's buckets), with a completion marker per part so that a rerun skips
//! what is done and any scheduler — a loop here, a Slurm array there — can run the parts.
//!
//! Layout of an output folder `DIR`:
//! - `DIR/output/` the documents kept (all of them in a dry run), one set of shards per
//!   input file, so the outputs of W ranks are those of one;
//! - `DIR/attributes/<block>/fNNNNN.jsonl` every block's decision on every document that
//!   reached it (dolma's layout): drop rule, statistics, tags;
//! - `DIR/work/` stage files and completion markers; `DIR/plan.json` what was asked;
//! - `DIR/report.json` the funnel, removals by rule, language and domain, histograms.

mod blocks;
pub mod dedup;
mod dedups;
pub mod glue;
pub mod input;
mod run;
pub mod slurm;
pub mod spec;
pub mod stats;

pub use blocks::{build_block, BLOCK_KINDS};
pub use dedup::{Dedup, DedupSink, GlobalStep};
pub use run::{Built, Curation, Event, NamedBlock, Report, RunOptions, RunOutcome, Stage};
pub use spec::{BlockSpec, InputSpec, OutputSpec, PipelineSpec, RECIPES};
pub use stats::{BlockStats, Flow, Histogram};
