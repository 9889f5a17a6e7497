//! Paragraph-level deduplication with a Bloom filter, as dolma's `dedupe` does it:
//! paragraphs are the text's newline-separated lines; each non-empty paragraph is looked up
//! in a Bloom filter sized from an expected count and a target false-positive rate; one
//! seen before is removed from the document, a new one is added; a document left without
//! any non-blank paragraph is dropped. The filter is order-dependent: feed documents in key
//! order, from one process, for a result that does not depend on threads or ranks.

use std::sync::Mutex;

use xxhash_rust::xxh3::xxh3_128;

use crate::block::{Block, Decision};
use crate::doc::Document;
use crate::{Error, Result};

/// A Bloom filter over 128-bit hashes (double hashing: `h1 + i·h2` for the `k` probes).
#[derive(Debug, Clone)]
pub struct BloomFilter {
    bits: Vec<u64>,
    num_bits: u64,
    num_hashes: u32,
}

impl BloomFilter {
    /// The optimal filter for `expected` items at false-positive rate `fp_rate`:
    /// `m = −n·ln p / (ln 2)²` bits, `k = (m / n)·ln 2` probes.
    pub fn with_rate(expected: u64, fp_rate: f64) -> Result<Self> {
        if !(fp_rate > 0.0 && fp_rate < 1.0) {
            return Err(Error::Config(format!(
                "bloom filter: false-positive rate {fp_rate} must be in (0, 1)"
            )));
        }
        let n = expected.max(1) as f64;
        let ln2 = std::f64::consts::LN_2;
        let num_bits = (-n * fp_rate.ln() / (ln2 * ln2)).ceil().max(64.0);
        if num_bits > 1e12 {
            return Err(Error::Config(format!(
                "bloom filter: {expected} items at rate {fp_rate} need {num_bits:.0} bits (over 125 GB)"
            )));
        }
        let num_bits = num_bits as u64;
        let num_hashes = ((num_bits as f64 / n) * ln2).round().clamp(1.0, 32.0) as u32;
        Ok(BloomFilter {
            bits: vec![0; num_bits.div_ceil(64) as usize],
            num_bits,
            num_hashes,
        })
    }

    pub fn num_bits(&self) -> u64 {
        self.num_bits
    }

    pub fn num_hashes(&self) -> u32 {
        self.num_hashes
    }

    fn probes(&self, hash: u128) -> impl Iterator<Item = u64> + '_ {
        let h1 = hash as u64;
        let h2 = ((hash >> 64) as u64) | 1;
        (0..u64::from(self.num_hashes))
            .map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % self.num_bits)
    }

    pub fn contains(&self, hash: u128) -> bool {
        self.probes(hash)
            .all(|b| self.bits[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }

    /// Adds `hash`; returns whether it was (probably) there already.
    pub fn insert(&mut self, hash: u128) -> bool {
        let mut present = true;
        let h1 = hash as u64;
        let h2 = ((hash >> 64) as u64) | 1;
        for i in 0..u64::from(self.num_hashes) {
            let b = h1.wrapping_add(i.wrapping_mul(h2)) % self.num_bits;
            let (word, bit) = ((b / 64) as usize, 1u64 << (b % 64));
            present &= self.bits[word] & bit != 0;
            self.bits[word] |= bit;
        }
        present
    }
}

/// Counts of a paragraph deduplication, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParagraphStats {
    pub documents: u64,
    pub paragraphs: u64,
    pub removed_paragraphs: u64,
    pub removed_bytes: u64,
    /// Documents left with no non-blank paragraph, dropped.
    pub dropped_documents: u64,
}

/// What happened to one document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParagraphOutcome {
    pub removed_paragraphs: usize,
    /// Every non-blank paragraph was a duplicate: drop the document.
    pub emptied: bool,
}

/// dolma-style paragraph deduplication (see the module's documentation).
#[derive(Debug, Clone)]
pub struct ParagraphDedup {
    filter: BloomFilter,
    stats: ParagraphStats,
}

impl ParagraphDedup {
    /// A filter sized for `expected_paragraphs` distinct paragraphs at `fp_rate`.
    pub fn new(expected_paragraphs: u64, fp_rate: f64) -> Result<Self> {
        Ok(ParagraphDedup {
            filter: BloomFilter::with_rate(expected_paragraphs, fp_rate)?,
            stats: ParagraphStats::default(),
        })
    }

    pub fn stats(&self) -> ParagraphStats {
        self.stats
    }

    pub fn filter(&self) -> &BloomFilter {
        &self.filter
    }

    /// Removes the paragraphs of `text` seen before (blank ones are left alone and not
    /// recorded), recording the new ones.
    pub fn apply_text(&mut self, text: &mut String) -> ParagraphOutcome {
        let mut out = ParagraphOutcome::default();
        let mut kept = String::with_capacity(text.len());
        let mut any_left = false;
        let mut first = true;
        for para in text.split('\n') {
            let blank = para.trim().is_empty();
            if !blank {
                self.stats.paragraphs += 1;
                if self.filter.insert(xxh3_128(para.as_bytes())) {
                    out.removed_paragraphs += 1;
                    self.stats.removed_bytes += para.len() as u64 + 1;
                    continue;
                }
                any_left = true;
            }
            if !first {
                kept.push('\n');
            }
            kept.push_str(para);
            first = false;
        }
        self.stats.documents += 1;
        self.stats.removed_paragraphs += out.removed_paragraphs as u64;
        if out.removed_paragraphs > 0 {
            *text = kept;
            out.emptied = !any_left;
            self.stats.dropped_documents += u64::from(out.emptied);
        }
        out
    }

    pub fn apply_doc(&mut self, doc: &mut Document) -> ParagraphOutcome {
        self.apply_text(&mut doc.text)
    }
}

/// [`ParagraphDedup`] as a pipeline block (`bloom_paragraphs`). The filter is shared behind
/// a lock: deterministic only when documents arrive in key order (one thread).
#[derive(Debug)]
pub struct ParagraphDedupBlock {
    inner: Mutex<ParagraphDedup>,
}

impl ParagraphDedupBlock {
    pub fn new(dedup: ParagraphDedup) -> Self {
        ParagraphDedupBlock {
            inner: Mutex::new(dedup),
        }
    }

    pub fn stats(&self) -> ParagraphStats {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).stats()
    }
}

impl Block for ParagraphDedupBlock {
    fn name(&self) -> &str {
        "bloom_paragraphs"
    }

    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let outcome = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .apply_doc(doc);
        out.stat("duplicate_paragraphs", outcome.removed_paragraphs as f64);
        if outcome.emptied {
            out.drop_for("all_paragraphs_duplicated");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_paragraphs_are_removed_and_emptied_documents_dropped() {
        let mut d = ParagraphDedup::new(1000, 0.001).unwrap();
        let mut a = "Header line\n\nFirst body.\nFooter line\n".to_string();
        let mut b = "Header line\n\nSecond body.\nFooter line".to_string();
        let mut c = "Footer line\n\n  \nHeader line".to_string();
        assert_eq!(d.apply_text(&mut a).removed_paragraphs, 0);
        let ob = d.apply_text(&mut b);
        assert_eq!((ob.removed_paragraphs, ob.emptied), (2, false));
        assert_eq!(b, "\nSecond body.");
        assert!(d.apply_text(&mut c).emptied);
        let s = d.stats();
        assert_eq!(
            (
                s.documents,
                s.paragraphs,
                s.removed_paragraphs,
                s.dropped_documents
            ),
            (3, 8, 4, 1)
        );
    }

    #[test]
    fn filter_is_sized_from_count_and_rate() {
        let f = BloomFilter::with_rate(1_000_000, 0.01).unwrap();
        // m ≈ 9.59 bits per item, k ≈ 7.
        assert!((9_500_000..9_700_000).contains(&f.num_bits()));
        assert_eq!(f.num_hashes(), 7);
        assert!(BloomFilter::with_rate(10, 1.5).is_err());
    }

    #[test]
    fn false_positive_rate_is_near_target() {
        let mut f = BloomFilter::with_rate(10_000, 0.01).unwrap();
        for i in 0..10_000u32 {
            f.insert(xxh3_128(&i.to_le_bytes()));
        }
        let fp = (10_000..110_000u32)
            .filter(|i| f.contains(xxh3_128(&i.to_le_bytes())))
            .count();
        assert!(fp < 1_500, "{fp} false positives in 100000");
    }
}
