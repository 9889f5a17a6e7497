//! Word splitting shared by the quality rules and MinHash.
//!
//! datatrove splits English with spaCy's tokenizer: whitespace first, then punctuation
//! peeled off the front and back of each chunk (and a few infixes), so "end." is two
//! tokens, "end" and ".". This first version splits on whitespace and peels leading and
//! trailing punctuation; the filters' owner refines it against spaCy on the reference
//! corpus.

/// The words of `text` (punctuation tokens included, as spaCy gives them).
pub fn split_words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for chunk in text.split_whitespace() {
        let start = chunk.len() - chunk.trim_start_matches(is_punct).len();
        let core_end = chunk.trim_end_matches(is_punct).len().max(start);
        for (i, c) in chunk[..start].char_indices() {
            out.push(&chunk[i..i + c.len_utf8()]);
        }
        if core_end > start {
            out.push(&chunk[start..core_end]);
        }
        for (i, c) in chunk[core_end..].char_indices() {
            out.push(&chunk[core_end + i..core_end + i + c.len_utf8()]);
        }
    }
    out
}

fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation() || matches!(c, '“' | '”' | '‘' | '’' | '…' | '«' | '»')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_is_peeled() {
        assert_eq!(
            split_words("Hello, (world).  Bye"),
            ["Hello", ",", "(", "world", ")", ".", "Bye"]
        );
    }
}
