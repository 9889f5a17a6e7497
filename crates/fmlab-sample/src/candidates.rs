//! The set of tokens still in play during one sampling step, with their logits and, once
//! computed, their probabilities.
//!
//! Processors shrink the set or change logits. Most of them only need the few best
//! tokens, so the set is never sorted whole: [`Candidates::keep_best`] (and
//! [`Candidates::best_of_slice`], straight from the logits) select with a running threshold
//! in one pass over the vocabulary (`Best`) and sort only what they keep.

use crate::{Error, Result};

/// One token in play.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub logit: f32,
    /// Probability within the current set (valid when [`Candidates::normalized`]).
    pub p: f32,
}

/// The tokens in play.
#[derive(Debug, Clone)]
pub struct Candidates {
    pub items: Vec<Candidate>,
    /// Sorted by logit, highest first (ties by id).
    pub sorted: bool,
    /// `p` holds the softmax of the current logits over the current set.
    pub normalized: bool,
    /// `items[i].id == i` for every i: nothing removed or reordered yet, so a token is
    /// found by indexing.
    pub dense: bool,
}

impl Candidates {
    /// Every token of `logits`. NaN counts as −∞; tokens at −∞ are left out (they can never
    /// be drawn), and a vector with no finite logit is an error.
    pub fn from_logits(logits: &[f32]) -> Result<Self> {
        let mut dense = true;
        let mut items = Vec::with_capacity(logits.len());
        for (i, &l) in logits.iter().enumerate() {
            if l.is_nan() || l == f32::NEG_INFINITY {
                dense = false;
                continue;
            }
            items.push(Candidate {
                id: i as u32,
                logit: l,
                p: 0.0,
            });
        }
        if items.is_empty() {
            return Err(Error::NoCandidates);
        }
        // +∞ dominates: the tokens at +∞ share the mass, the rest get none.
        if items.iter().any(|c| c.logit == f32::INFINITY) {
            items.retain(|c| c.logit == f32::INFINITY);
            items.iter_mut().for_each(|c| c.logit = 0.0);
            dense = false;
        }
        Ok(Self {
            items,
            sorted: false,
            normalized: false,
            dense,
        })
    }

    /// The `k` highest finite logits of `logits`, sorted, skipping the ids `skip` names,
    /// without building the whole set: one pass with a running threshold. `None` when a
    /// logit is +∞ (the caller takes the general path, which handles it).
    pub fn best_of_slice(logits: &[f32], k: usize, skip: impl Fn(u32) -> bool) -> Option<Self> {
        let mut best = Best::new(k);
        for (i, &l) in logits.iter().enumerate() {
            // NaN fails both comparisons; −∞ never beats the initial threshold once k
            // finite values are in, and is filtered below otherwise.
            if best.admits(l) {
                if l == f32::INFINITY {
                    return None;
                }
                if l.is_nan() || l == f32::NEG_INFINITY || skip(i as u32) {
                    continue;
                }
                best.push(Candidate {
                    id: i as u32,
                    logit: l,
                    p: 0.0,
                });
            }
        }
        Some(Self {
            items: best.into_sorted(),
            sorted: true,
            normalized: false,
            dense: false,
        })
    }

    /// The candidates for the given ids (finite logits only), in the order given.
    pub fn of_ids(logits: &[f32], ids: &[u32]) -> Self {
        let items = ids
            .iter()
            .filter_map(|&id| {
                let l = *logits.get(id as usize)?;
                (l.is_finite()).then_some(Candidate {
                    id,
                    logit: l,
                    p: 0.0,
                })
            })
            .collect();
        Self {
            items,
            sorted: false,
            normalized: false,
            dense: false,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The candidate for token `id`, if still in play.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut Candidate> {
        if self.dense {
            return self.items.get_mut(id as usize);
        }
        self.items.iter_mut().find(|c| c.id == id)
    }

    /// Marks logits as changed: order and probabilities must be recomputed.
    pub fn logits_changed(&mut self) {
        self.sorted = false;
        self.normalized = false;
    }

    /// Sorts by logit, highest first; ties by id, so the order never depends on how the
    /// set was built.
    pub fn sort(&mut self) {
        if !self.sorted {
            self.items.sort_unstable_by(by_logit_desc);
            self.sorted = true;
            self.dense = false;
        }
    }

    /// Probabilities of the current set (softmax of the logits, in f64 sums).
    pub fn softmax(&mut self) {
        if self.normalized {
            return;
        }
        let max = self
            .items
            .iter()
            .map(|c| c.logit)
            .fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0f64;
        for c in &mut self.items {
            c.p = (c.logit - max).exp();
            total += c.p as f64;
        }
        let inv = (1.0 / total) as f32;
        for c in &mut self.items {
            c.p *= inv;
        }
        self.normalized = true;
    }

    /// Keeps the `k` highest logits, sorted. One pass keeps a buffer of at most `2k`
    /// candidates above a running threshold (the k-th best seen so far), so the cost is
    /// about one comparison per token; only the survivors are sorted.
    pub fn keep_best(&mut self, k: usize) {
        let k = k.max(1);
        if k >= self.items.len() {
            self.sort();
            return;
        }
        if self.sorted {
            self.items.truncate(k);
            return;
        }
        let mut best = Best::new(k);
        for &c in &self.items {
            if best.admits(c.logit) {
                best.push(c);
            }
        }
        self.items = best.into_sorted();
        self.sorted = true;
        self.normalized = false;
        self.dense = false;
    }

    /// Keeps the first `n` (at least one) of the current order.
    pub fn truncate(&mut self, n: usize) {
        let n = n.max(1);
        if n < self.items.len() {
            self.items.truncate(n);
            self.normalized = false;
            self.dense = false;
        }
    }

    /// Keeps the candidates for which `keep` holds; if none would remain, keeps the
    /// `min_keep` best instead (at least one token always survives).
    pub fn retain_or_best(&mut self, min_keep: usize, keep: impl Fn(&Candidate) -> bool) {
        let survivors = self.items.iter().filter(|c| keep(c)).count();
        if survivors >= min_keep.max(1) {
            if survivors < self.items.len() {
                self.items.retain(|c| keep(c));
                self.normalized = false;
                self.dense = false;
            }
        } else {
            self.keep_best(min_keep.max(1));
        }
    }

    /// The index of the highest logit (the lowest id on ties).
    pub fn argmax(&self) -> usize {
        let mut best = 0;
        for (i, c) in self.items.iter().enumerate() {
            if by_logit_desc(c, &self.items[best]).is_lt() {
                best = i;
            }
        }
        best
    }
}

/// Thresholded top-k selection, the one pass behind [`Candidates::keep_best`] and
/// [`Candidates::best_of_slice`]: a buffer of at most `2k` candidates; when it fills, the
/// best `k` are kept and the k-th best logit becomes the threshold a newcomer must reach.
struct Best {
    k: usize,
    buf: Vec<Candidate>,
    threshold: f32,
}

impl Best {
    fn new(k: usize) -> Self {
        let k = k.max(1);
        Self {
            k,
            buf: Vec::with_capacity(2 * k),
            threshold: f32::NEG_INFINITY,
        }
    }

    /// Whether a token with this logit may be among the `k` best (ties included).
    fn admits(&self, logit: f32) -> bool {
        logit >= self.threshold || self.buf.len() < self.k
    }

    fn push(&mut self, c: Candidate) {
        self.buf.push(c);
        if self.buf.len() == 2 * self.k {
            self.buf.select_nth_unstable_by(self.k - 1, by_logit_desc);
            self.buf.truncate(self.k);
            self.threshold = self
                .buf
                .iter()
                .map(|c| c.logit)
                .fold(f32::INFINITY, f32::min);
        }
    }

    /// The `k` best pushed, highest first.
    fn into_sorted(mut self) -> Vec<Candidate> {
        self.buf.sort_unstable_by(by_logit_desc);
        self.buf.truncate(self.k);
        self.buf
    }
}

/// Higher logit first; ties by lower id.
pub(crate) fn by_logit_desc(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_best_matches_a_full_sort() {
        let logits: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 1013) as f32 / 7.0)
            .collect();
        for k in [1, 2, 10, 40, 999, 4999, 5000, 6000] {
            let mut fast = Candidates::from_logits(&logits).unwrap();
            fast.keep_best(k);
            let mut full = Candidates::from_logits(&logits).unwrap();
            full.sort();
            full.truncate(k);
            assert_eq!(fast.items, full.items, "k = {k}");
        }
    }

    #[test]
    fn non_finite_logits() {
        let c = Candidates::from_logits(&[f32::NAN, 1.0, f32::NEG_INFINITY, 2.0]).unwrap();
        assert_eq!(c.items.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 3]);
        let c = Candidates::from_logits(&[1.0, f32::INFINITY, 3.0, f32::INFINITY]).unwrap();
        assert_eq!(c.items.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 3]);
        assert!(Candidates::from_logits(&[f32::NAN, f32::NEG_INFINITY]).is_err());
        assert!(Candidates::from_logits(&[]).is_err());
    }
}
