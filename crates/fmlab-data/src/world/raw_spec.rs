//! The raw web's records and kinds (what `raw.jsonl` holds and what its summary counts),
//! apart from the generator in `raw.rs` so that the configuration and the world's records
//! can name them without importing the generator.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::docs::Domain;

/// What a raw page is, when it is not a clean page left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JunkKind {
    /// A clean page with navigation, cookie, subscription and copyright lines added (the
    /// page is good; the lines are junk).
    Boilerplate,
    NearDuplicate,
    WrongLanguage,
    Spam,
    Markup,
    BlocklistedUrl,
}

impl JunkKind {
    pub const ALL: [JunkKind; 6] = [
        JunkKind::Boilerplate,
        JunkKind::NearDuplicate,
        JunkKind::WrongLanguage,
        JunkKind::Spam,
        JunkKind::Markup,
        JunkKind::BlocklistedUrl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JunkKind::Boilerplate => "boilerplate",
            JunkKind::NearDuplicate => "near_duplicate",
            JunkKind::WrongLanguage => "wrong_language",
            JunkKind::Spam => "spam",
            JunkKind::Markup => "markup",
            JunkKind::BlocklistedUrl => "blocklisted_url",
        }
    }

    pub fn parse(name: &str) -> Option<JunkKind> {
        JunkKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the whole page is junk (everything but boilerplate, whose page is good).
    pub fn is_junk_page(self) -> bool {
        self != JunkKind::Boilerplate
    }
}

/// One line of `raw.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RawRecord {
    pub id: u64,
    /// `None`: a clean page as the corpus has it.
    pub junk: Option<JunkKind>,
    /// Language code: the world's (`en`, `fr`, `sw`) or a foreign one (`de`, `es`, `pt`,
    /// `tr`, `it`, `nl`).
    pub lang: String,
    /// The corpus domain of pages made of corpus documents (clean, boilerplate,
    /// near-duplicate); `None` for made-up pages.
    pub domain: Option<Domain>,
    pub url: String,
    /// Ids of the corpus documents the page is made of, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<u64>,
    /// Boilerplate: indices of the added lines in `text.split('\n')`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_lines: Vec<usize>,
    /// Near-duplicate: the id of the page it copies (an earlier clean page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<u64>,
    /// Near-duplicate: the word edits made to the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edits: Option<u32>,
    /// Spam and markup: the variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    pub text: String,
}

/// What `raw.jsonl` holds.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct RawSummary {
    pub documents: u64,
    pub bytes: u64,
    /// Pages by truth: `clean` and every kind's name.
    pub by_kind: BTreeMap<String, u64>,
    /// Lines added to boilerplate pages.
    pub boilerplate_lines: u64,
}
