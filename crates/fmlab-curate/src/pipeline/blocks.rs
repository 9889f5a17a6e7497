//! The block kinds a pipeline names, and how each is built from its options.

use crate::pipeline::run::Built;
use crate::pipeline::spec::BlockSpec;
use crate::{Error, Result};

/// Every block kind with what it does (`fmlab curate --list-blocks`).
pub const BLOCK_KINDS: [(&str, &str); 0] = [];

/// Builds the block `spec` names.
pub fn build_block(spec: &BlockSpec) -> Result<Built> {
    let kinds: Vec<&str> = BLOCK_KINDS.iter().map(|(k, _)| *k).collect();
    Err(Error::Config(format!(
        "unknown block kind {:?}: the kinds are {}",
        spec.kind,
        kinds.join(", ")
    )))
}
