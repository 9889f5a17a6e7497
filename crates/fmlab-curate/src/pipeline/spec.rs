//! What a curation run does, as the user wrote it: blocks in the user's order with their
//! options, the input's field names, the output's format — from a TOML file or a named
//! recipe (FineWeb's, its four filters, MinHash alone).
//!
//! ```toml
//! [input]
//! text_field = "text"
//!
//! [output]
//! format = "jsonl"        # or "parquet"
//! compression = "zstd"    # "gzip", "none"
//! max_shard_bytes = 1000000000
//!
//! [[blocks]]
//! kind = "language"
//! languages = ["en"]
//! threshold = 0.65
//!
//! [[blocks]]
//! kind = "gopher_repetition"
//!
//! [[blocks]]
//! kind = "minhash"
//! buckets = 14
//! hashes_per_bucket = 8
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One block as configured: its kind, an optional name (several blocks of one kind need
/// names of their own), and every other key of its table as the kind's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockSpec {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub options: toml::Table,
}

impl BlockSpec {
    pub fn new(kind: &str) -> Self {
        BlockSpec {
            kind: kind.to_string(),
            name: None,
            options: toml::Table::new(),
        }
    }
    /// The block's name in reports and attribute folders: its own, else its kind.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.kind)
    }
    /// The options as the kind's configuration type (unknown keys refused by the type).
    pub fn options<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        toml::Value::Table(self.options.clone())
            .try_into()
            .map_err(|e| Error::Config(format!("block {:?} ({}): {e}", self.name(), self.kind)))
    }
}

/// How input records are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputSpec {
    /// The field holding the text (JSONL, Parquet).
    pub text_field: String,
    /// The field holding the id (absent: `<file stem>/<index>`).
    pub id_field: String,
}

impl Default for InputSpec {
    fn default() -> Self {
        InputSpec {
            text_field: "text".into(),
            id_field: "id".into(),
        }
    }
}

/// How kept documents are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSpec {
    /// `jsonl` or `parquet`.
    pub format: String,
    /// `zstd`, `gzip` or `none`.
    pub compression: String,
    /// A new shard starts when one passes this many bytes.
    pub max_shard_bytes: u64,
}

impl Default for OutputSpec {
    fn default() -> Self {
        OutputSpec {
            format: "jsonl".into(),
            compression: "zstd".into(),
            max_shard_bytes: 1 << 30,
        }
    }
}

/// A whole curation run's configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    #[serde(default)]
    pub input: InputSpec,
    #[serde(default)]
    pub output: OutputSpec,
    pub blocks: Vec<BlockSpec>,
}

/// The named recipes: `fineweb` (language → Gopher repetition → Gopher quality → C4 →
/// FineWeb → MinHash), `fineweb-filters` (the four quality filters), `minhash`.
pub const RECIPES: [&str; 3] = ["fineweb", "fineweb-filters", "minhash"];

impl PipelineSpec {
    pub fn recipe(name: &str) -> Result<Self> {
        let filters = ["gopher_repetition", "gopher_quality", "c4", "fineweb"];
        let kinds: Vec<&str> = match name {
            "fineweb" => {
                let mut k = vec!["language"];
                k.extend(filters);
                k.push("minhash");
                k
            }
            "fineweb-filters" => filters.to_vec(),
            "minhash" => vec!["minhash"],
            other => {
                return Err(Error::Config(format!(
                    "unknown recipe {other:?}: the recipes are {}",
                    RECIPES.join(", ")
                )))
            }
        };
        let mut blocks: Vec<BlockSpec> = kinds.into_iter().map(BlockSpec::new).collect();
        if name == "fineweb" {
            // FineWeb keeps English scored at least 0.65 by its language model.
            blocks[0]
                .options
                .insert("languages".into(), toml::Value::Array(vec!["en".into()]));
            blocks[0]
                .options
                .insert("threshold".into(), toml::Value::Float(0.65));
        }
        Ok(PipelineSpec {
            blocks,
            ..Default::default()
        })
    }

    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let spec: PipelineSpec =
            toml::from_str(text).map_err(|e| Error::format(origin, e.to_string()))?;
        spec.check()?;
        Ok(spec)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, path)
    }

    /// Names unique (they name attribute folders), at least one block.
    pub fn check(&self) -> Result<()> {
        if self.blocks.is_empty() {
            return Err(Error::Config("the pipeline has no blocks".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for b in &self.blocks {
            let name = b.name();
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err(Error::Config(format!(
                    "block name {name:?}: use letters, digits, '_' and '-' (it names a folder)"
                )));
            }
            if !seen.insert(name) {
                return Err(Error::Config(format!(
                    "two blocks are named {name:?}: give one a `name`"
                )));
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_and_toml_round_trip() {
        let spec = PipelineSpec::recipe("fineweb").unwrap();
        let kinds: Vec<&str> = spec.blocks.iter().map(|b| b.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "language",
                "gopher_repetition",
                "gopher_quality",
                "c4",
                "fineweb",
                "minhash"
            ]
        );
        let back = PipelineSpec::from_toml(&spec.to_toml(), Path::new("x.toml")).unwrap();
        assert_eq!(back, spec);
        assert!(PipelineSpec::recipe("nope")
            .unwrap_err()
            .to_string()
            .contains("fineweb-filters"));
    }

    #[test]
    fn duplicate_names_and_bad_toml_are_named() {
        let text = "[[blocks]]\nkind = \"c4\"\n[[blocks]]\nkind = \"c4\"\n";
        let err = PipelineSpec::from_toml(text, Path::new("p.toml")).unwrap_err();
        assert!(
            err.to_string().contains("two blocks are named \"c4\""),
            "{err}"
        );
        let err =
            PipelineSpec::from_toml("[[blocks]]\nkinds = 1", Path::new("p.toml")).unwrap_err();
        assert!(err.to_string().starts_with("p.toml"), "{err}");
    }
}
