//! The records of a world's files: corpus documents, chat turns, conversations,
//! preference pairs, eval items (which the judge in `crate::judge` scores), and the summary
//! of what a run wrote.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::docs::Domain;
use super::lang::{Lang, Relation};
use super::raw_spec::RawSummary;

/// One corpus document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Document {
    pub id: u64,
    pub domain: Domain,
    pub lang: Lang,
    pub text: String,
    /// Ids of the people whose facts it states.
    pub people: Vec<u32>,
}

/// A chat turn.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

impl Turn {
    pub(super) fn new(role: &str, content: String) -> Self {
        Self {
            role: role.into(),
            content,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversation {
    pub id: u64,
    pub kind: String,
    pub lang: Lang,
    pub messages: Vec<Turn>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Preference {
    pub id: u64,
    pub kind: String,
    pub lang: Lang,
    pub prompt: Vec<Turn>,
    pub chosen: String,
    pub rejected: String,
    /// Why the rejected answer is worse: wrong, hallucinated, format or verbose.
    pub rejected_kind: String,
}

/// What a world run wrote.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct WorldSummary {
    pub documents: u64,
    pub corpus_bytes: u64,
    pub facts: u64,
    pub conversations: u64,
    pub preferences: u64,
    /// Lines of `prompts.jsonl` (judge-able training questions).
    #[serde(default)]
    pub prompts: u64,
    pub eval_items: u64,
    /// Lines of `parallel.jsonl` (one fact in every language).
    pub parallel: u64,
    pub people: u64,
    /// Documents per language and per domain.
    pub by_lang: BTreeMap<String, u64>,
    pub by_domain: BTreeMap<String, u64>,
    /// What `raw.jsonl` holds, when the raw web was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawSummary>,
}

/// How the answer must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Any text that states the answer.
    Free,
    /// A single word.
    OneWord,
    /// A JSON object with the fields "name" and "answer".
    Json,
    /// Exactly three lines starting with "- ", each stating a true fact.
    List3,
}

/// One evaluation question with its exact answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalItem {
    pub id: u64,
    /// "fact" or "arithmetic".
    pub kind: String,
    pub lang: Lang,
    /// "frequent", "rare", "unseen" (people by how often the corpus mentions them), or
    /// "arithmetic".
    pub split: String,
    pub relation: Option<Relation>,
    pub subject: Option<String>,
    /// The user's message.
    pub prompt: String,
    pub format: Format,
    /// The canonical answer (the refusal for unseen people).
    pub answer: String,
    /// Every acceptable answer (empty when the right answer is a refusal).
    pub answers: Vec<String>,
    /// The right answer is "I don't know": the world never mentions the subject.
    pub refusal: bool,
    /// For lists: every true value about the subject.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known: Vec<String>,
}
