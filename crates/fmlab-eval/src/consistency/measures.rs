//! The consistency study's measures over answer keys and scores: the share of pairs that
//! agree (within one set of answers, or across two), the modal answer's share, and a
//! detector's AUROC (the Mann–Whitney statistic, ties counted half) with its ROC curve.

use std::collections::BTreeMap;

use serde::Serialize;

/// The share of the unordered pairs of `keys` that are equal; `None` with fewer than two.
pub fn pairwise_agreement<T: PartialEq>(keys: &[T]) -> Option<f64> {
    let n = keys.len();
    if n < 2 {
        return None;
    }
    let mut agree = 0usize;
    for i in 0..n {
        for j in i + 1..n {
            agree += (keys[i] == keys[j]) as usize;
        }
    }
    Some(agree as f64 / (n * (n - 1) / 2) as f64)
}

/// (agreeing pairs, pairs) over every pair of one key of `a` and one of `b`.
pub fn cross_pairs<T: PartialEq>(a: &[T], b: &[T]) -> (usize, usize) {
    let agree = a.iter().map(|x| b.iter().filter(|y| x == *y).count()).sum();
    (agree, a.len() * b.len())
}

/// The most common key (the first of equally common ones in sorted order) and its share of
/// `keys`; `None` when empty.
pub fn modal<T: Ord + Clone>(keys: &[T]) -> Option<(T, f64)> {
    let mut counts: BTreeMap<&T, usize> = BTreeMap::new();
    for k in keys {
        *counts.entry(k).or_default() += 1;
    }
    let mut best: Option<(&T, usize)> = None;
    for (k, c) in counts {
        if best.is_none_or(|(_, b)| c > b) {
            best = Some((k, c));
        }
    }
    best.map(|(k, c)| (k.clone(), c as f64 / keys.len() as f64))
}

/// The area under the ROC curve of `scored` ((score, positive) pairs; a higher score says
/// "positive"): the Mann–Whitney U over positives·negatives, the probability that a random
/// positive outscores a random negative with ties counted half. `None` without a positive
/// or without a negative (or with a score that is not a number).
pub fn auroc(scored: &[(f64, bool)]) -> Option<f64> {
    let positives = scored.iter().filter(|s| s.1).count();
    let negatives = scored.len() - positives;
    if positives == 0 || negatives == 0 || scored.iter().any(|s| s.0.is_nan()) {
        return None;
    }
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Ranks 1..=n, tied scores sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1].0 == sorted[i].0 {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mean_rank * sorted[i..=j].iter().filter(|s| s.1).count() as f64;
        i = j + 1;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// One point of a ROC curve: calling "positive" every score ≥ `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocPoint {
    /// `null` in JSON for the first point (nothing called positive).
    pub threshold: Option<f64>,
    pub false_positive_rate: f64,
    pub true_positive_rate: f64,
}

/// The ROC curve of `scored`: from (0, 0) through one point per distinct score, highest
/// first, to (1, 1) — tied scores move both rates at once, so the trapezoids under it add
/// up to [`auroc`]. Empty without a positive or a negative.
pub fn roc_curve(scored: &[(f64, bool)]) -> Vec<RocPoint> {
    let positives = scored.iter().filter(|s| s.1).count();
    let negatives = scored.len() - positives;
    if positives == 0 || negatives == 0 || scored.iter().any(|s| s.0.is_nan()) {
        return Vec::new();
    }
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut points = vec![RocPoint {
        threshold: None,
        false_positive_rate: 0.0,
        true_positive_rate: 0.0,
    }];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < sorted.len() {
        let threshold = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == threshold {
            if sorted[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        points.push(RocPoint {
            threshold: Some(threshold),
            false_positive_rate: fp as f64 / negatives as f64,
            true_positive_rate: tp as f64 / positives as f64,
        });
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trapezoids(points: &[RocPoint]) -> f64 {
        points
            .windows(2)
            .map(|w| {
                (w[1].false_positive_rate - w[0].false_positive_rate)
                    * (w[1].true_positive_rate + w[0].true_positive_rate)
                    / 2.0
            })
            .sum()
    }

    #[test]
    fn auroc_by_hand() {
        // Perfect, inverted, and uninformative detectors.
        let perfect = [(0.9, true), (0.8, true), (0.2, false), (0.1, false)];
        assert_eq!(auroc(&perfect), Some(1.0));
        let inverted = [(0.1, true), (0.9, false)];
        assert_eq!(auroc(&inverted), Some(0.0));
        let tied = [(0.5, true), (0.5, false), (0.5, false)];
        assert_eq!(auroc(&tied), Some(0.5));
        // Positives 0.8, 0.4; negatives 0.6, 0.4, 0.2. Pairs (p > n, tie = ½):
        // 0.8 beats all three (3); 0.4 beats 0.2 (1), ties 0.4 (½), loses to 0.6 → 4.5 / 6.
        let mixed = [
            (0.8, true),
            (0.4, true),
            (0.6, false),
            (0.4, false),
            (0.2, false),
        ];
        assert!((auroc(&mixed).unwrap() - 0.75).abs() < 1e-12);
        // Nothing to separate.
        assert_eq!(auroc(&[(0.3, true), (0.2, true)]), None);
        assert_eq!(auroc(&[]), None);
        assert_eq!(auroc(&[(f64::NAN, true), (0.2, false)]), None);
    }

    #[test]
    fn roc_curve_steps_and_its_area_is_the_auroc() {
        let mixed = [
            (0.8, true),
            (0.4, true),
            (0.6, false),
            (0.4, false),
            (0.2, false),
        ];
        let roc = roc_curve(&mixed);
        let rates: Vec<(f64, f64)> = roc
            .iter()
            .map(|p| (p.false_positive_rate, p.true_positive_rate))
            .collect();
        let third = 1.0 / 3.0;
        let expected = [
            (0.0, 0.0),
            (0.0, 0.5),
            (third, 0.5),
            (2.0 * third, 1.0),
            (1.0, 1.0),
        ];
        assert_eq!(rates.len(), expected.len());
        for (a, b) in rates.iter().zip(expected) {
            assert!(
                (a.0 - b.0).abs() < 1e-12 && (a.1 - b.1).abs() < 1e-12,
                "{rates:?}"
            );
        }
        assert_eq!(roc[0].threshold, None);
        assert_eq!(roc[3].threshold, Some(0.4));
        assert!((trapezoids(&roc) - auroc(&mixed).unwrap()).abs() < 1e-12);
        assert!(roc_curve(&[(0.1, false)]).is_empty());
    }

    #[test]
    fn agreement_measures() {
        assert_eq!(pairwise_agreement(&["a", "a", "a"]), Some(1.0));
        // a a b: one agreeing pair of three.
        assert!((pairwise_agreement(&["a", "b", "a"]).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(pairwise_agreement(&["a", "b", "c", "d"]), Some(0.0));
        assert_eq!(pairwise_agreement(&["a"]), None);
        assert_eq!(pairwise_agreement::<&str>(&[]), None);
        assert_eq!(cross_pairs(&["a", "b"], &["a", "a", "c"]), (2, 6));
        assert_eq!(cross_pairs::<&str>(&[], &["a"]), (0, 0));
        assert_eq!(modal(&["b", "a", "b", "c"]), Some(("b", 0.5)));
        // Equally common: the first in sorted order.
        assert_eq!(modal(&["b", "a"]), Some(("a", 0.5)));
        assert_eq!(modal::<&str>(&[]), None);
    }
}
