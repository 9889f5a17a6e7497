//! The logits processors, each a function over [`Candidates`]. They are ours rather than a
//! library's because their exact semantics are the product: each follows the definition
//! its authors (and llama.cpp or HF transformers, where they differ they say so) give.
//!
//! Every processor leaves at least `min_keep` (≥ 1) tokens in play.

use std::collections::HashMap;

use crate::candidates::Candidates;
use crate::rng::Rng;

/// Adds `bias` to the logits of the given tokens (OpenAI's `logit_bias`; −∞ bans a token).
pub fn logit_bias(c: &mut Candidates, biases: &[(u32, f32)]) {
    if biases.is_empty() {
        return;
    }
    for &(id, bias) in biases {
        if let Some(cand) = c.get_mut(id) {
            cand.logit += bias;
        }
    }
    if biases
        .iter()
        .any(|&(_, b)| b == f32::NEG_INFINITY || b.is_nan())
    {
        let before = c.len();
        c.items
            .retain(|x| x.logit != f32::NEG_INFINITY && !x.logit.is_nan());
        if c.items.len() != before {
            c.dense = false;
        }
    }
    c.logits_changed();
}

/// Repetition settings over the last `window` tokens of the history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Penalties {
    /// CTRL's repetition penalty: a seen token's logit is divided by it when positive and
    /// multiplied by it when negative. 1 disables.
    pub repeat: f32,
    /// OpenAI's frequency penalty: minus `frequency · count`. 0 disables.
    pub frequency: f32,
    /// OpenAI's presence penalty: minus `presence` once a token has occurred. 0 disables.
    pub presence: f32,
    /// How many of the latest tokens count (0: none).
    pub window: usize,
}

impl Penalties {
    pub fn is_active(&self) -> bool {
        self.window > 0 && (self.repeat != 1.0 || self.frequency != 0.0 || self.presence != 0.0)
    }
}

/// Applies [`Penalties`] to the tokens that occur in the last `window` tokens of `history`.
pub fn penalties(c: &mut Candidates, history: &[u32], p: &Penalties) {
    if !p.is_active() || history.is_empty() {
        return;
    }
    let recent = &history[history.len().saturating_sub(p.window)..];
    let mut counts: HashMap<u32, u32> = HashMap::new();
    for &t in recent {
        *counts.entry(t).or_insert(0) += 1;
    }
    for (&id, &count) in &counts {
        if let Some(cand) = c.get_mut(id) {
            if cand.logit > 0.0 {
                cand.logit /= p.repeat;
            } else {
                cand.logit *= p.repeat;
            }
            cand.logit -= count as f32 * p.frequency + p.presence;
        }
    }
    c.logits_changed();
}

/// DRY ("don't repeat yourself", Weidmann 2024): a token that would extend a repetition
/// of an earlier sequence of at least `allowed_length` tokens is penalised by
/// `multiplier · base^(length − allowed_length)`. Sequence breakers (tokens such as line
/// ends, given as ids) end a repetition.
#[derive(Debug, Clone, PartialEq)]
pub struct Dry {
    /// 0 disables.
    pub multiplier: f32,
    pub base: f32,
    pub allowed_length: usize,
    /// How many of the latest tokens are searched (0: the whole history).
    pub window: usize,
    pub breakers: Vec<u32>,
}

impl Default for Dry {
    fn default() -> Self {
        Self {
            multiplier: 0.0,
            base: 1.75,
            allowed_length: 2,
            window: 0,
            breakers: Vec::new(),
        }
    }
}

/// The longest match DRY looks for; longer repetitions get the same (already enormous)
/// penalty.
const DRY_MAX_MATCH: usize = 64;

pub fn dry(c: &mut Candidates, history: &[u32], d: &Dry) {
    if d.multiplier == 0.0 || history.len() < 2 {
        return;
    }
    let start = if d.window == 0 {
        0
    } else {
        history.len().saturating_sub(d.window)
    };
    let h = &history[start..];
    let n = h.len();
    let last = h[n - 1];
    if d.breakers.contains(&last) {
        return;
    }
    // For each earlier occurrence of the last token at position i, the repetition length is
    // how far h[..=i] and h[..n] agree backwards (stopping at breakers); the token that
    // followed, h[i + 1], would continue it.
    let mut penalised: HashMap<u32, usize> = HashMap::new();
    for i in (0..n - 1).rev() {
        if h[i] != last {
            continue;
        }
        let mut len = 0;
        while len < DRY_MAX_MATCH && len <= i {
            let (a, b) = (h[i - len], h[n - 1 - len]);
            if a != b || d.breakers.contains(&a) {
                break;
            }
            len += 1;
        }
        let next = h[i + 1];
        if len >= d.allowed_length && !d.breakers.contains(&next) {
            let e = penalised.entry(next).or_insert(0);
            *e = (*e).max(len);
        }
    }
    if penalised.is_empty() {
        return;
    }
    for (&id, &len) in &penalised {
        if let Some(cand) = c.get_mut(id) {
            let exponent = (len - d.allowed_length) as i32;
            cand.logit -= d.multiplier * d.base.powi(exponent);
        }
    }
    c.logits_changed();
}

/// Top-n-σ (Tang et al. 2024): keeps tokens whose logit is within `n` standard deviations
/// of the largest (the deviation of all logits in play).
pub fn top_n_sigma(c: &mut Candidates, n: f32) {
    if n <= 0.0 || c.len() < 2 {
        return;
    }
    let count = c.len() as f64;
    let mean = c.items.iter().map(|x| x.logit as f64).sum::<f64>() / count;
    let var = c
        .items
        .iter()
        .map(|x| (x.logit as f64 - mean).powi(2))
        .sum::<f64>()
        / count;
    let max = c.items[c.argmax()].logit;
    let floor = max - n * var.sqrt() as f32;
    c.retain_or_best(1, |x| x.logit >= floor);
}

/// Keeps the `k` most likely tokens (0 disables).
pub fn top_k(c: &mut Candidates, k: usize) {
    if k > 0 {
        c.keep_best(k);
    }
}

/// Top-p (nucleus, Holtzman et al. 2019): the smallest set of most likely tokens whose
/// probability reaches `p` (1 disables). Sorts only as far as needed: the best 64 first,
/// then 4× more until the mass is reached.
pub fn top_p(c: &mut Candidates, p: f32, min_keep: usize) {
    if p >= 1.0 {
        return;
    }
    c.softmax();
    let full = c.len();
    let mut take = 64.min(full);
    loop {
        let mut head = c.clone();
        head.keep_best(take);
        let mut mass = 0f64;
        for (i, x) in head.items.iter().enumerate() {
            mass += x.p as f64;
            if mass >= p as f64 && i + 1 >= min_keep {
                let mut kept = head;
                kept.truncate(i + 1);
                *c = kept;
                return;
            }
        }
        if take == full {
            *c = head;
            return;
        }
        take = (take * 4).min(full);
    }
}

/// Min-p (Nguyen et al. 2024): keeps tokens at least `p` times as likely as the most
/// likely one (0 disables).
pub fn min_p(c: &mut Candidates, p: f32, min_keep: usize) {
    if p <= 0.0 {
        return;
    }
    // p_i ≥ p · p_max  ⇔  logit_i ≥ max + ln p: no softmax needed.
    let max = c.items[c.argmax()].logit;
    let floor = max + p.ln();
    c.retain_or_best(min_keep, |x| x.logit >= floor);
}

/// Shannon entropy (nats) of the current probabilities (`c` must be normalised).
fn entropy(c: &Candidates) -> f64 {
    c.items
        .iter()
        .filter(|x| x.p > 0.0)
        .map(|x| -(x.p as f64) * (x.p as f64).ln())
        .sum()
}

/// Locally typical sampling (Meister et al. 2022): tokens sorted by how far their
/// information −log p is from the entropy H, kept until their mass reaches `p`
/// (1 disables).
pub fn typical(c: &mut Candidates, p: f32, min_keep: usize) {
    if p >= 1.0 {
        return;
    }
    c.softmax();
    let entropy = entropy(c);
    let mut order: Vec<(f64, usize)> = c
        .items
        .iter()
        .enumerate()
        .map(|(i, x)| ((-(x.p as f64).ln() - entropy).abs(), i))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut mass = 0f64;
    let mut keep = order.len();
    for (n, &(_, i)) in order.iter().enumerate() {
        mass += c.items[i].p as f64;
        if mass > p as f64 && n + 1 >= min_keep {
            keep = n + 1;
            break;
        }
    }
    let items = order[..keep].iter().map(|&(_, i)| c.items[i]).collect();
    c.items = items;
    c.sorted = false;
    c.normalized = false;
    c.dense = false;
}

/// Epsilon sampling (Hewitt et al. 2022): drops tokens with probability below `epsilon`.
pub fn epsilon_cutoff(c: &mut Candidates, epsilon: f32, min_keep: usize) {
    if epsilon <= 0.0 {
        return;
    }
    c.softmax();
    c.retain_or_best(min_keep, |x| x.p >= epsilon);
}

/// Eta sampling (Hewitt et al. 2022): drops tokens with probability below
/// `min(η, √η · e^(−H))`, a cutoff that loosens as the distribution spreads.
pub fn eta_cutoff(c: &mut Candidates, eta: f32, min_keep: usize) {
    if eta <= 0.0 {
        return;
    }
    c.softmax();
    let entropy = entropy(c);
    let cutoff = (eta as f64).min((eta as f64).sqrt() * (-entropy).exp()) as f32;
    c.retain_or_best(min_keep, |x| x.p >= cutoff);
}

/// XTC ("exclude top choices"): with probability `probability`, when at least two tokens
/// have probability ≥ `threshold`, removes all of them but the least likely — steering
/// away from the most predictable continuations while keeping a viable one.
pub fn xtc(c: &mut Candidates, probability: f32, threshold: f32, min_keep: usize, rng: &mut Rng) {
    if probability <= 0.0 || threshold > 0.5 || c.len() < 2 {
        return;
    }
    // The draw happens whenever XTC is active, so the stream does not depend on the logits.
    if rng.next_f32() >= probability {
        return;
    }
    c.softmax();
    c.sort();
    let above = c.items.iter().take_while(|x| x.p >= threshold).count();
    if above < 2 || c.len() - (above - 1) < min_keep {
        return;
    }
    c.items.drain(..above - 1);
    c.normalized = false;
}

/// Divides logits by `t` (t > 0).
pub fn temperature(c: &mut Candidates, t: f32) {
    if t == 1.0 {
        return;
    }
    for x in &mut c.items {
        x.logit /= t;
    }
    c.normalized = false;
}

/// Dynamic temperature (entropy-based, as llama.cpp's `temp_ext`): the temperature moves
/// within `t ± range` with the normalised entropy of the distribution raised to `exponent`.
pub fn dynamic_temperature(c: &mut Candidates, t: f32, range: f32, exponent: f32) {
    if range <= 0.0 || c.len() < 2 {
        temperature(c, t);
        return;
    }
    let (lo, hi) = ((t - range).max(0.0), t + range);
    c.softmax();
    let entropy = entropy(c);
    let max_entropy = (c.len() as f64).ln();
    let normalized = if max_entropy > 0.0 {
        entropy / max_entropy
    } else {
        0.0
    };
    let dyn_t = lo + (hi - lo) * (normalized.powf(exponent as f64) as f32);
    temperature(c, dyn_t.max(f32::MIN_POSITIVE));
}

/// Draws one candidate in proportion to its probability; returns its index.
pub fn draw(c: &mut Candidates, rng: &mut Rng) -> usize {
    c.softmax();
    let u = rng.next_f64();
    let mut acc = 0f64;
    for (i, x) in c.items.iter().enumerate() {
        acc += x.p as f64;
        if u < acc {
            return i;
        }
    }
    // Rounding left the total a hair under 1: the last token with any mass.
    c.items.iter().rposition(|x| x.p > 0.0).unwrap_or(0)
}

/// Mirostat state: the running surprise target μ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mirostat {
    /// 1 or 2.
    pub version: u8,
    /// Target surprise τ (bits).
    pub tau: f32,
    /// Learning rate η.
    pub eta: f32,
    /// Tokens used to estimate the Zipf exponent (v1).
    pub m: usize,
    pub mu: f32,
}

impl Mirostat {
    pub fn new(version: u8, tau: f32, eta: f32) -> Self {
        Self {
            version,
            tau,
            eta,
            m: 100,
            mu: 2.0 * tau,
        }
    }

    /// Picks a token (Basu et al. 2021) and updates μ with its surprise.
    pub fn sample(&mut self, c: &mut Candidates, rng: &mut Rng) -> usize {
        c.softmax();
        c.sort();
        if self.version == 1 {
            // Estimate the Zipf exponent s from the top m probabilities, then the k that
            // makes the expected surprise μ.
            let m = self.m.min(c.len());
            let (mut num, mut den) = (0f64, 0f64);
            for i in 0..m.saturating_sub(1) {
                let t = ((i + 2) as f64 / (i + 1) as f64).ln();
                let b = (c.items[i].p as f64 / c.items[i + 1].p as f64).ln();
                num += t * b;
                den += t * t;
            }
            let s_hat = if den > 0.0 { num / den } else { 1.0 };
            let eps = s_hat - 1.0;
            let n = c.len() as f64;
            let k = if eps.abs() < 1e-9 {
                n
            } else {
                ((eps * 2f64.powf(self.mu as f64)) / (1.0 - n.powf(-eps))).powf(1.0 / s_hat)
            };
            let k = if k.is_finite() { k.round().max(1.0) } else { n };
            c.truncate(k as usize);
        } else {
            // v2: drop tokens whose surprise −log₂ p exceeds μ.
            let mu = self.mu as f64;
            let keep = c
                .items
                .iter()
                .take_while(|x| -(x.p as f64).log2() <= mu)
                .count();
            c.truncate(keep.max(1));
        }
        c.normalized = false;
        let i = draw(c, rng);
        let surprise = -(c.items[i].p as f64).log2();
        self.mu -= self.eta * (surprise as f32 - self.tau);
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(c: &Candidates) -> Vec<u32> {
        let mut v: Vec<u32> = c.items.iter().map(|x| x.id).collect();
        v.sort_unstable();
        v
    }

    /// Probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 (logits ln p).
    fn halving() -> Candidates {
        let logits: Vec<f32> = [0.5f32, 0.25, 0.125, 0.0625, 0.0625]
            .iter()
            .map(|p| p.ln())
            .collect();
        Candidates::from_logits(&logits).unwrap()
    }

    #[test]
    fn top_p_keeps_the_smallest_prefix_reaching_p() {
        // Cumulative 0.5, 0.75, 0.875, 0.9375, 1.
        for (p, n) in [
            (0.4, 1),
            (0.5, 1),
            (0.6, 2),
            (0.75, 2),
            (0.8, 3),
            (0.9, 4),
            (0.99, 5),
        ] {
            let mut c = halving();
            top_p(&mut c, p, 1);
            assert_eq!(c.len(), n, "top-p {p}");
        }
        let mut c = halving();
        top_p(&mut c, 0.4, 3);
        assert_eq!(ids(&c), [0, 1, 2]);
    }

    #[test]
    fn min_p_is_relative_to_the_best() {
        // 0.125 / 0.5 = 0.25: min-p 0.25 keeps 3, 0.26 keeps 2.
        let mut c = halving();
        min_p(&mut c, 0.25, 1);
        assert_eq!(ids(&c), [0, 1, 2]);
        let mut c = halving();
        min_p(&mut c, 0.26, 1);
        assert_eq!(ids(&c), [0, 1]);
        let mut c = halving();
        min_p(&mut c, 1.0, 1);
        assert_eq!(ids(&c), [0]);
    }

    #[test]
    fn typical_orders_by_distance_from_the_entropy() {
        // H = 0.5·ln2 + 0.25·2ln2 + 0.125·3ln2 + 2·0.0625·4ln2 = 1.875 ln2 ≈ 1.2997.
        // −ln p: 0.693, 1.386, 2.079, 2.773, 2.773 → distances 0.607, 0.087, 0.780, 1.47, 1.47:
        // order 1, 0, 2, 3, 4; masses 0.25, 0.75, 0.875, …
        let mut c = halving();
        typical(&mut c, 0.2, 1);
        assert_eq!(ids(&c), [1]);
        let mut c = halving();
        typical(&mut c, 0.5, 1);
        assert_eq!(ids(&c), [0, 1]);
        let mut c = halving();
        typical(&mut c, 0.8, 1);
        assert_eq!(ids(&c), [0, 1, 2]);
    }

    #[test]
    fn penalties_follow_ctrl_and_openai() {
        let mut c = Candidates::from_logits(&[2.0, -2.0, 1.0, 0.5]).unwrap();
        let p = Penalties {
            repeat: 2.0,
            frequency: 0.5,
            presence: 0.25,
            window: 3,
        };
        // Window: the last 3 of [3, 0, 1, 0] = [0, 1, 0]; token 3 is outside it.
        penalties(&mut c, &[3, 0, 1, 0], &p);
        let l: Vec<f32> = c.items.iter().map(|x| x.logit).collect();
        assert_eq!(
            l,
            [
                2.0 / 2.0 - 2.0 * 0.5 - 0.25,
                -2.0 * 2.0 - 0.5 - 0.25,
                1.0,
                0.5
            ]
        );
    }

    #[test]
    fn dry_penalises_the_continuation_of_a_repeat() {
        // History a b c X a b c: the next token would be X again (a 3-token repeat).
        let history = [1, 2, 3, 9, 1, 2, 3];
        let d = Dry {
            multiplier: 1.0,
            base: 2.0,
            allowed_length: 2,
            window: 0,
            breakers: vec![],
        };
        let mut c = Candidates::from_logits(&[0.0; 10]).unwrap();
        dry(&mut c, &history, &d);
        assert_eq!(c.items[9].logit, -2.0); // 1 · 2^(3 − 2)
        assert!(c.items.iter().filter(|x| x.id != 9).all(|x| x.logit == 0.0));
        // A breaker inside the repeat shortens it below the allowed length.
        let d = Dry {
            breakers: vec![2],
            ..d
        };
        let mut c = Candidates::from_logits(&[0.0; 10]).unwrap();
        dry(&mut c, &history, &d);
        assert!(c.items.iter().all(|x| x.logit == 0.0));
    }

    #[test]
    fn top_n_sigma_keeps_logits_near_the_top() {
        // Logits 10, 9, 0, 0, 0, 0, 0, 0, 0, 0: mean 1.9, σ ≈ 3.83; n = 1 keeps ≥ 6.17.
        let mut logits = vec![0.0f32; 10];
        logits[0] = 10.0;
        logits[1] = 9.0;
        let mut c = Candidates::from_logits(&logits).unwrap();
        top_n_sigma(&mut c, 1.0);
        assert_eq!(ids(&c), [0, 1]);
    }

    #[test]
    fn xtc_removes_all_top_choices_but_the_last() {
        let mut rng = Rng::new(1);
        let mut c = halving();
        // Threshold 0.2: tokens 0 (0.5) and 1 (0.25) are above; only 1 stays of them.
        xtc(&mut c, 1.0, 0.2, 1, &mut rng);
        assert_eq!(ids(&c), [1, 2, 3, 4]);
        // Only one token above the threshold: nothing to exclude.
        let mut c = halving();
        xtc(&mut c, 1.0, 0.3, 1, &mut rng);
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn epsilon_and_eta_cutoffs() {
        let mut c = halving();
        epsilon_cutoff(&mut c, 0.1, 1);
        assert_eq!(ids(&c), [0, 1, 2]);
        // H = 1.875 ln 2 ≈ 1.2997; √0.1 · e^−H ≈ 0.0862 < 0.1: cutoff 0.0862 keeps 3.
        let mut c = halving();
        eta_cutoff(&mut c, 0.1, 1);
        assert_eq!(ids(&c), [0, 1, 2]);
    }

    #[test]
    fn temperature_scales_logits() {
        let mut c = Candidates::from_logits(&[2.0, 1.0]).unwrap();
        temperature(&mut c, 0.5);
        c.softmax();
        let expected = 1.0 / (1.0 + (-2.0f32).exp());
        assert!((c.items[0].p - expected).abs() < 1e-6);
    }

    #[test]
    fn mirostat_v2_truncates_by_surprise_and_adapts() {
        let mut m = Mirostat::new(2, 1.5, 0.1);
        // μ = 3 bits: keeps p ≥ 1/8, i.e. tokens 0, 1, 2.
        let mut rng = Rng::new(3);
        let mut c = halving();
        let i = m.sample(&mut c, &mut rng);
        assert_eq!(c.len(), 3);
        let surprise = -(c.items[i].p as f64).log2() as f32;
        assert!((m.mu - (3.0 - 0.1 * (surprise - 1.5))).abs() < 1e-6);
    }
}
