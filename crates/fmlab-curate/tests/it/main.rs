//! fmlab-curate's integration tests, one module per part of the crate.

mod classifier;
mod langid;
