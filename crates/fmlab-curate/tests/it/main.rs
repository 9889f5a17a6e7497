//! fmlab-curate's integration tests, one module per part.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod filters;
