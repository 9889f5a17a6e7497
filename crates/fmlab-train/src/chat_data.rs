//! Post-training data: conversations (SFT) and preference pairs (DPO) rendered with the
//! model's chat template, tokenized with a loss mask on the assistant's tokens only, and
//! packed into rows whose sequences never attend to each other.
//!
//! Files are JSON Lines. A conversation is `{"messages": [{"role", "content"}, …]}` (the
//! world's `sft.jsonl`; other fields are ignored). A preference pair is `{"prompt": [turns],
//! "chosen": "…", "rejected": "…"}` (the world's `preferences.jsonl`); `prompt` may also be a
//! plain string (one user turn). Bad records — not JSON, missing roles or contents, no or
//! empty assistant turns, identical chosen and rejected answers, sequences longer than the
//! context — are skipped and counted; a file with nothing usable left is an error.

use std::path::Path;

use fmlab_data::corpus::{Documents, PlainText};
use fmlab_data::Error as DataError;
use fmlab_tokenizer::{ChatTemplate, Message, Tokenizer};
use serde::Serialize;

use crate::{Error, Result};

/// Records skipped while reading, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub not_json: usize,
    pub missing_roles: usize,
    pub empty_assistant: usize,
    pub identical_pair: usize,
    pub too_long: usize,
}

impl Skipped {
    pub fn total(&self) -> usize {
        self.not_json
            + self.missing_roles
            + self.empty_assistant
            + self.identical_pair
            + self.too_long
    }

    /// "12 skipped: 3 not JSON, 9 too long" (empty when nothing was skipped).
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.not_json, "not JSON"),
            (self.missing_roles, "missing roles or contents"),
            (self.empty_assistant, "without an assistant answer"),
            (self.identical_pair, "chosen = rejected"),
            (self.too_long, "longer than the context"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, why)| format!("{n} {why}"))
        .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("{} skipped: {}", self.total(), parts.join(", "))
        }
    }
}

const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// The turns of a JSON array of `{"role", "content"}`, or `None` when one lacks either or
/// names an unknown role.
fn turns(v: &serde_json::Value) -> Option<Vec<Message>> {
    v.as_array()?
        .iter()
        .map(|t| {
            let role = t.get("role")?.as_str()?;
            let content = t.get("content")?.as_str()?;
            ROLES.contains(&role).then(|| Message::new(role, content))
        })
        .collect()
}

fn read_lines(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// The conversations of a JSONL file, with what was skipped.
pub fn read_conversations(path: &Path) -> Result<(Vec<Vec<Message>>, Skipped)> {
    let text = read_lines(path)?;
    let mut out = Vec::new();
    let mut skipped = Skipped::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            skipped.not_json += 1;
            continue;
        };
        let Some(messages) = v.get("messages").and_then(turns) else {
            skipped.missing_roles += 1;
            continue;
        };
        let answers: Vec<&Message> = messages.iter().filter(|m| m.role == "assistant").collect();
        if answers.is_empty() || answers.iter().any(|m| m.content.trim().is_empty()) {
            skipped.empty_assistant += 1;
            continue;
        }
        out.push(messages);
    }
    if out.is_empty() {
        return Err(Error::Config(format!(
            "{}: no usable conversation ({})",
            path.display(),
            skipped.describe()
        )));
    }
    Ok((out, skipped))
}

/// Plain text to mix into supervised finetuning (replay of pre-training data, which keeps
/// a small model from forgetting what it knew while it learns the chat format): documents
/// of a JSONL file's `"text"` fields (the world's `corpus.jsonl`, `fmlab data` output) or a
/// whole text file, in file order, until they hold `budget` predicted positions. Each
/// document is framed by the end-of-text token as pre-training's token stream frames it,
/// cut into pieces of at most `seq_len` positions, and trained on in full. Returns the
/// pieces and the documents they came from.
pub fn read_texts(
    path: &Path,
    tokenizer: &Tokenizer,
    seq_len: usize,
    budget: usize,
) -> Result<(Vec<Sequence>, usize)> {
    if seq_len == 0 {
        return Err(Error::Config("sequence length must be at least 1".into()));
    }
    // JSON Lines are read a line at a time, only as far as the budget needs: the file may
    // be a whole pre-training corpus.
    let docs = Documents::new(&[path.to_path_buf()], PlainText::Whole);
    let eos = tokenizer.vocab.eos;
    let mut out = Vec::new();
    let mut positions = 0usize;
    let mut used = 0usize;
    for doc in docs {
        if positions >= budget {
            // With nothing to read, a file that cannot be opened (or plain text that cannot
            // be read) is still an error.
            if let (0, Err(e @ (DataError::Read { .. } | DataError::NotText { .. }))) =
                (budget, doc)
            {
                return Err(corpus_error(e));
            }
            break;
        }
        let doc = doc.map_err(corpus_error)?;
        let mut tokens: Vec<u32> = eos.into_iter().collect();
        tokens.extend(tokenizer.encode(&doc.text, false, false));
        tokens.extend(eos);
        if tokens.len() < 2 {
            continue;
        }
        used += 1;
        // Pieces overlap by one token: a piece's first token is the previous one's last
        // target, read as context.
        let mut start = 0;
        while start + 1 < tokens.len() && positions < budget {
            let end = (start + seq_len + 1).min(tokens.len());
            let piece = tokens[start..end].to_vec();
            positions += piece.len() - 1;
            out.push(Sequence {
                mask: vec![true; piece.len()],
                tokens: piece,
            });
            start = end - 1;
        }
    }
    if out.is_empty() && budget > 0 {
        return Err(Error::Config(format!(
            "{}: no text to mix in",
            path.display()
        )));
    }
    Ok((out, used))
}

/// A corpus reader's error as [`read_texts`] reports it: a line that is no document names
/// its line, a file that cannot be read its path.
fn corpus_error(e: DataError) -> Error {
    match e {
        DataError::NotADocument { path, line, .. } => Error::Config(format!(
            "{} line {}: expected an object with a \"text\" field",
            path.display(),
            line
        )),
        DataError::Read { path, error } | DataError::NotText { path, error } => {
            Error::Io { path, error }
        }
        other => Error::Data(other),
    }
}

/// One preference pair: a prompt (turns ending with the user's) and two answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub prompt: Vec<Message>,
    pub chosen: String,
    pub rejected: String,
}

/// The preference pairs of a JSONL file, with what was skipped.
pub fn read_pairs(path: &Path) -> Result<(Vec<Pair>, Skipped)> {
    let text = read_lines(path)?;
    let mut out = Vec::new();
    let mut skipped = Skipped::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            skipped.not_json += 1;
            continue;
        };
        let prompt = match v.get("prompt") {
            Some(serde_json::Value::String(s)) => Some(vec![Message::new("user", s)]),
            Some(p) => turns(p),
            None => None,
        };
        let (Some(prompt), Some(chosen), Some(rejected)) = (
            prompt.filter(|p| !p.is_empty()),
            v.get("chosen").and_then(|c| c.as_str()),
            v.get("rejected").and_then(|r| r.as_str()),
        ) else {
            skipped.missing_roles += 1;
            continue;
        };
        if chosen.trim().is_empty() || rejected.trim().is_empty() {
            skipped.empty_assistant += 1;
            continue;
        }
        if chosen.trim() == rejected.trim() {
            skipped.identical_pair += 1;
            continue;
        }
        out.push(Pair {
            prompt,
            chosen: chosen.into(),
            rejected: rejected.into(),
        });
    }
    if out.is_empty() {
        return Err(Error::Config(format!(
            "{}: no usable preference pair ({})",
            path.display(),
            skipped.describe()
        )));
    }
    Ok((out, skipped))
}

/// A tokenized sequence: `mask[i]` says whether token `i` is the assistant's (trained on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub tokens: Vec<u32>,
    pub mask: Vec<bool>,
}

impl Sequence {
    /// Positions predicted when the sequence is a row's inputs (`tokens.len() − 1`).
    pub fn positions(&self) -> usize {
        self.tokens.len().saturating_sub(1)
    }
}

/// Renders conversations with a chat template and tokenizes them.
pub struct ChatEncoder<'a> {
    pub template: &'a ChatTemplate,
    pub tokenizer: &'a Tokenizer,
}

impl ChatEncoder<'_> {
    /// `text`'s ids by the prompt→ids rule; `start`: it begins the sequence.
    fn encode_text(&self, text: &str, start: bool) -> Vec<u32> {
        fmlab_tokenizer::chat::encode_chat(self.tokenizer, text, start)
    }

    fn render(&self, messages: &[Message], open: bool) -> Result<String> {
        self.template
            .render(messages, open)
            .map_err(|e| Error::Config(format!("chat template: {e}")))
    }

    /// The conversation's tokens, masked to its assistant turns: each assistant turn is
    /// what its rendering adds to the rendering of the turns before it with the generation
    /// prompt (so the assistant's end-of-turn marker is trained on, the header before it
    /// is not).
    pub fn conversation(&self, messages: &[Message]) -> Result<Sequence> {
        let mut tokens = Vec::new();
        let mut mask = Vec::new();
        let mut done = 0usize;
        let mut full = String::new();
        for (i, m) in messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let prompt = self.render(&messages[..i], true)?;
            full = self.render(&messages[..=i], false)?;
            if !full.starts_with(&prompt) || prompt.len() < done {
                return Err(Error::Config(
                    "the chat template's rendering of a conversation does not extend its rendering of the turns before an answer; masks need it to".into(),
                ));
            }
            let before = self.encode_text(&prompt[done..], tokens.is_empty());
            mask.extend(std::iter::repeat_n(false, before.len()));
            tokens.extend(before);
            let answer = self.encode_text(&full[prompt.len()..], tokens.is_empty());
            mask.extend(std::iter::repeat_n(true, answer.len()));
            tokens.extend(answer);
            done = full.len();
        }
        // Turns after the last answer are not trained on.
        let rest = self.render(messages, false)?;
        if rest.len() > done && rest.starts_with(&full) {
            let after = self.encode_text(&rest[done..], tokens.is_empty());
            mask.extend(std::iter::repeat_n(false, after.len()));
            tokens.extend(after);
        }
        Ok(Sequence { tokens, mask })
    }

    /// A prompt followed by one answer.
    pub fn answered(&self, prompt: &[Message], answer: &str) -> Result<Sequence> {
        let mut messages = prompt.to_vec();
        messages.push(Message::new("assistant", answer));
        self.conversation(&messages)
    }

    /// Every conversation's masked sequence.
    pub fn conversations(&self, convs: &[Vec<Message>]) -> Result<Vec<Sequence>> {
        convs.iter().map(|c| self.conversation(c)).collect()
    }

    /// Every pair's (chosen, rejected) sequences, each answer after its prompt.
    pub fn pairs(&self, pairs: &[Pair]) -> Result<Vec<(Sequence, Sequence)>> {
        pairs
            .iter()
            .map(|p| {
                Ok((
                    self.answered(&p.prompt, &p.chosen)?,
                    self.answered(&p.prompt, &p.rejected)?,
                ))
            })
            .collect()
    }

    /// The prompt rendered with the generation prompt: what sampling continues.
    pub fn prompt(&self, prompt: &[Message]) -> Result<Vec<u32>> {
        self.template
            .prompt_ids(self.tokenizer, prompt)
            .map_err(|e| Error::Config(format!("chat template: {e}")))
    }
}

/// Rows of packed sequences, what the training executor runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub seq_len: usize,
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    pub segments: Vec<u32>,
    /// Per position: whether its target is trained on.
    pub mask: Vec<bool>,
    /// Per position: the sequence (index into what was packed) its target belongs to, or
    /// `u32::MAX` for padding.
    pub sequence: Vec<u32>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.inputs.len() / self.seq_len.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Rows `r0..r1` as the executor's input.
    pub fn slice(&self, r0: usize, r1: usize) -> fmlab_nn::train::Rows<'_> {
        let (a, b) = (r0 * self.seq_len, r1 * self.seq_len);
        fmlab_nn::train::Rows {
            inputs: &self.inputs[a..b],
            targets: &self.targets[a..b],
            rows: r1 - r0,
            segments: Some(&self.segments[a..b]),
        }
    }

    pub fn mask(&self, r0: usize, r1: usize) -> &[bool] {
        &self.mask[r0 * self.seq_len..r1 * self.seq_len]
    }

    /// How many sequences were packed (one past the largest sequence index).
    pub fn sequences(&self) -> usize {
        self.sequence
            .iter()
            .filter(|&&s| s != u32::MAX)
            .max()
            .map_or(0, |&m| m as usize + 1)
    }

    pub fn sequence(&self, r0: usize, r1: usize) -> &[u32] {
        &self.sequence[r0 * self.seq_len..r1 * self.seq_len]
    }
}

/// Packs `units` (each one or more sequences that must share a row, such as a preference
/// pair's two answers) into rows of `seq_len` positions, first fit in the given order;
/// padding fills the rest of each row with `pad`, in a segment of its own and masked out.
/// Units longer than a row must have been skipped by the caller.
pub fn pack(units: &[Vec<&Sequence>], seq_len: usize, pad: u32) -> Result<Rows> {
    if seq_len == 0 {
        return Err(Error::Config("sequence length must be at least 1".into()));
    }
    // Open rows: (positions used, contents: (sequence index, sequence)).
    let mut open: Vec<(usize, Vec<(u32, &Sequence)>)> = Vec::new();
    let mut index = 0u32;
    for unit in units {
        let need: usize = unit.iter().map(|s| s.positions()).sum();
        if need > seq_len {
            return Err(Error::Config(format!(
                "a sequence of {need} positions does not fit rows of {seq_len}"
            )));
        }
        let slot = match open.iter().position(|(used, _)| used + need <= seq_len) {
            Some(i) => i,
            None => {
                open.push((0, Vec::new()));
                open.len() - 1
            }
        };
        open[slot].0 += need;
        for s in unit {
            open[slot].1.push((index, s));
            index += 1;
        }
    }
    let mut rows = Rows {
        seq_len,
        ..Rows::default()
    };
    for (_, contents) in open {
        let mut used = 0;
        let mut segment = 0u32;
        for (idx, s) in contents {
            let n = s.positions();
            rows.inputs.extend_from_slice(&s.tokens[..n]);
            rows.targets.extend_from_slice(&s.tokens[1..]);
            rows.mask.extend_from_slice(&s.mask[1..]);
            rows.segments.extend(std::iter::repeat_n(segment, n));
            rows.sequence.extend(std::iter::repeat_n(idx, n));
            used += n;
            segment += 1;
        }
        let pad_n = seq_len - used;
        rows.inputs.extend(std::iter::repeat_n(pad, pad_n));
        rows.targets.extend(std::iter::repeat_n(pad, pad_n));
        rows.mask.extend(std::iter::repeat_n(false, pad_n));
        rows.segments.extend(std::iter::repeat_n(segment, pad_n));
        rows.sequence.extend(std::iter::repeat_n(u32::MAX, pad_n));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: usize, first_masked: usize) -> Sequence {
        Sequence {
            tokens: (1..=n as u32).collect(),
            mask: (0..n).map(|i| i >= first_masked).collect(),
        }
    }

    #[test]
    fn packing_keeps_units_together_and_pads() {
        let (a, b, c) = (seq(5, 2), seq(4, 1), seq(7, 3));
        let units = vec![vec![&a], vec![&b, &c], vec![&a]];
        let rows = pack(&units, 10, 0).unwrap();
        // a (4 positions) + a (4) share a row; b + c (3 + 6 = 9) take another.
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows.segments[..10], &[0, 0, 0, 0, 1, 1, 1, 1, 2, 2]);
        assert_eq!(&rows.sequence[..8], &[0, 0, 0, 0, 3, 3, 3, 3]);
        assert_eq!(&rows.inputs[..4], &[1, 2, 3, 4]);
        assert_eq!(&rows.targets[..4], &[2, 3, 4, 5]);
        assert_eq!(&rows.mask[..4], &[false, true, true, true]);
        assert_eq!(&rows.sequence[10..19], &[1, 1, 1, 2, 2, 2, 2, 2, 2]);
        assert_eq!(rows.sequence[19], u32::MAX);
        assert!(!rows.mask[19]);
        assert!(pack(&[vec![&c]], 5, 0).is_err());
    }
}
