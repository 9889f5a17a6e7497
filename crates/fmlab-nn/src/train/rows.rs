//! The token rows one pass runs over, optionally packed (segments), and their checks.

use fmlab_spec::{ModelSpec, Positions};

use crate::{Error, Result};

/// Rows of tokens for one pass: `rows` rows of equal length, `inputs` and `targets` both
/// `rows × seq`.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub inputs: &'a [u32],
    pub targets: &'a [u32],
    pub rows: usize,
    /// For packed rows, per token the id of the sequence it belongs to (equal ids are
    /// contiguous within a row): attention never crosses from one sequence to another and
    /// positions restart at each. `None`: every row is one sequence.
    pub segments: Option<&'a [u32]>,
}

impl<'a> Rows<'a> {
    /// `rows` unpacked rows.
    pub fn new(inputs: &'a [u32], targets: &'a [u32], rows: usize) -> Self {
        Self {
            inputs,
            targets,
            rows,
            segments: None,
        }
    }
}

impl Rows<'_> {
    /// The length of each row, once the rows are checked: equal lengths, tokens inside the
    /// vocabulary, no more tokens than `spec`'s learned positions.
    pub(super) fn seq_len(&self, spec: &ModelSpec) -> Result<usize> {
        let Rows {
            inputs,
            targets,
            rows: batch,
            ..
        } = *self;
        let seq = inputs.len() / batch.max(1);
        if batch == 0 || seq == 0 || inputs.len() != batch * seq || targets.len() != inputs.len() {
            return Err(Error::Unsupported(format!(
                "{} inputs and {} targets are not {batch} sequences of equal length",
                inputs.len(),
                targets.len()
            )));
        }
        let v = spec.vocab_size as usize;
        if let Some(&bad) = inputs.iter().chain(targets).find(|&&t| t as usize >= v) {
            return Err(Error::Unsupported(format!(
                "token {bad} is outside the vocabulary of {v}"
            )));
        }
        if spec.positions == Positions::Learned && seq > spec.context_length as usize {
            return Err(Error::Unsupported(format!(
                "sequences of {seq} tokens exceed the {} learned positions",
                spec.context_length
            )));
        }
        Ok(seq)
    }

    /// Per token, where its sequence starts in its row (rows of `seq` tokens); empty when
    /// the rows are not packed.
    pub(super) fn segment_starts(&self, seq: usize) -> Result<Vec<usize>> {
        let Some(ids) = self.segments else {
            return Ok(Vec::new());
        };
        if ids.len() != self.inputs.len() {
            return Err(Error::Unsupported(format!(
                "{} segment ids for {} tokens",
                ids.len(),
                self.inputs.len()
            )));
        }
        let mut starts = Vec::with_capacity(ids.len());
        for (r, row) in ids.chunks(seq).enumerate() {
            let mut start = 0;
            for (i, &id) in row.iter().enumerate() {
                if i > 0 && id != row[i - 1] {
                    if row[..i].contains(&id) {
                        return Err(Error::Unsupported(format!(
                            "row {r}: sequence {id} is not contiguous"
                        )));
                    }
                    start = i;
                }
                starts.push(start);
            }
        }
        Ok(starts)
    }
}
