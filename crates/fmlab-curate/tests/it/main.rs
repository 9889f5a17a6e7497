//! Integration tests of fmlab-curate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod io;
