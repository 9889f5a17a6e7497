//! Streaming decode: ids arrive one at a time, text leaves only in whole UTF-8 characters.

use crate::{Result, Tokenizer};

/// Turns a stream of ids into text. A token may end in the middle of a multi-byte character
/// (byte-level BPE, `<0xXX>` byte tokens); those bytes wait until the character completes.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one token and returns the text that is now complete (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String> {
        Ok(self.push_bytes(&tokenizer.token_bytes(id, false)?))
    }

    /// Adds bytes already decoded (a generation loop's output) and returns the text that is
    /// now complete.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        self.take_complete()
    }

    /// The bytes still waiting, decoded lossily: call at the end of a stream.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }

    fn take_complete(&mut self) -> String {
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) => match e.error_len() {
                // Invalid bytes (not just an unfinished character): emit them replaced so the
                // stream cannot stall on them.
                Some(_) => self.pending.len(),
                None => e.valid_up_to(),
            },
        };
        let text = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        text
    }
}
