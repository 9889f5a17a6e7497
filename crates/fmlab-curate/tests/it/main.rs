//! fmlab-curate end to end, one module per part of the crate: the pipeline's execution by
//! rank and stage, and the blocks against recorded references.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod classifier;
mod dedup;
mod filters;
mod io;
mod langid;
mod pipeline;
mod raw_truth;
