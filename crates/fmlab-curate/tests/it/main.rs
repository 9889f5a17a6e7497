//! fmlab-curate end to end: the pipeline's execution by rank and stage, and the blocks
//! against recorded references.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pipeline;
