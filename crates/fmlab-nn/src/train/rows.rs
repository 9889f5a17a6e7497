//! The token rows one pass runs over, optionally packed (segments).

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
