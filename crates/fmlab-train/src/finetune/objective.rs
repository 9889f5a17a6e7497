//! What finetuning optimises, per batch of packed rows: SFT's mean negative
//! log-likelihood of the answers, a preference loss over each (chosen, rejected) pair's
//! log-probabilities against the reference's, or a reward model's Bradley–Terry loss over
//! the scores where each answer ends — and the reward statistics they report.

use std::collections::BTreeMap;

use fmlab_nn::train::{objective, Grads, Objective};
use serde::{Deserialize, Serialize};

use super::{Finetuner, Method};
use crate::chat_data::Rows;
use crate::{Error, Result};

/// A preference loss over Δ = (log πθ(y_w) − log π_ref(y_w)) − (log πθ(y_l) − log π_ref(y_l)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreferenceLoss {
    /// DPO: −log σ(β·Δ).
    Sigmoid,
    /// IPO (Azar et al. 2023): (Δ_avg − 1/(2β))², on per-token average log-probabilities.
    Ipo,
    /// SLiC's hinge: max(0, 1 − β·Δ).
    Hinge,
    /// SimPO (Meng et al. 2024), reference-free: −log σ(β·(avg log πθ(y_w) − avg log
    /// πθ(y_l)) − γ).
    Simpo { gamma: f64 },
}

impl PreferenceLoss {
    pub fn parse(name: &str, gamma: f64) -> Result<Self> {
        Ok(match name {
            "sigmoid" | "dpo" => Self::Sigmoid,
            "ipo" => Self::Ipo,
            "hinge" => Self::Hinge,
            "simpo" => Self::Simpo { gamma },
            other => {
                return Err(Error::Config(format!(
                    "unknown preference loss {other:?} (sigmoid, ipo, hinge, simpo)"
                )))
            }
        })
    }

    /// Whether the loss compares per-token averages rather than sums.
    fn averaged(self) -> bool {
        matches!(self, Self::Ipo | Self::Simpo { .. })
    }

    /// The loss of one pair and its derivatives with respect to the chosen and rejected
    /// policy scores (sums or averages of log-probabilities), given the reference's.
    fn pair(self, beta: f64, pc: f64, pr: f64, rc: f64, rr: f64) -> (f64, f64, f64) {
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        // −log σ(x), stably.
        let nls = |x: f64| {
            if x > 0.0 {
                (-x).exp().ln_1p()
            } else {
                -x + x.exp().ln_1p()
            }
        };
        match self {
            Self::Sigmoid => {
                let z = beta * ((pc - rc) - (pr - rr));
                let g = -beta * sigmoid(-z);
                (nls(z), g, -g)
            }
            Self::Ipo => {
                let delta = (pc - rc) - (pr - rr);
                let e = delta - 1.0 / (2.0 * beta);
                (e * e, 2.0 * e, -2.0 * e)
            }
            Self::Hinge => {
                let z = beta * ((pc - rc) - (pr - rr));
                if z < 1.0 {
                    (1.0 - z, -beta, beta)
                } else {
                    (0.0, 0.0, 0.0)
                }
            }
            Self::Simpo { gamma } => {
                let z = beta * (pc - pr) - gamma;
                let g = -beta * sigmoid(-z);
                (nls(z), g, -g)
            }
        }
    }
}

/// TRL's preference metrics: β·(log πθ − log π_ref) of the chosen and rejected answers,
/// how often the chosen one's is higher, their margin, and the policy's log-probabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RewardStats {
    #[serde(rename = "rewards/chosen")]
    pub chosen: f64,
    #[serde(rename = "rewards/rejected")]
    pub rejected: f64,
    #[serde(rename = "rewards/accuracies")]
    pub accuracy: f64,
    #[serde(rename = "rewards/margins")]
    pub margin: f64,
    #[serde(rename = "logps/chosen")]
    pub logps_chosen: f64,
    #[serde(rename = "logps/rejected")]
    pub logps_rejected: f64,
}

impl RewardStats {
    pub(super) fn add(&mut self, o: &RewardStats) {
        self.chosen += o.chosen;
        self.rejected += o.rejected;
        self.accuracy += o.accuracy;
        self.margin += o.margin;
        self.logps_chosen += o.logps_chosen;
        self.logps_rejected += o.logps_rejected;
    }

    pub(super) fn scale(&mut self, s: f64) {
        self.chosen *= s;
        self.rejected *= s;
        self.accuracy *= s;
        self.margin *= s;
        self.logps_chosen *= s;
        self.logps_rejected *= s;
    }
}

/// Per packed sequence of `rows`: the sum of its targets' log-probabilities over its
/// masked (answer) positions, and how many there are.
pub(super) fn sequence_sums(
    rows: &Rows,
    r0: usize,
    r1: usize,
    logps: &[f32],
    n_seq: usize,
) -> Vec<(f64, usize)> {
    let mut out = vec![(0.0, 0); n_seq];
    for ((&s, &m), &lp) in rows
        .sequence(r0, r1)
        .iter()
        .zip(rows.mask(r0, r1))
        .zip(logps)
    {
        if m && (s as usize) < n_seq {
            out[s as usize].0 += lp as f64;
            out[s as usize].1 += 1;
        }
    }
    out
}

/// A batch's rows as the objectives see them: the loss mask and the packed-sequence id of
/// each position.
struct Batch<'a> {
    mask: &'a [bool],
    seqs: &'a [u32],
    seq_len: usize,
}

/// SFT: the mean negative log-probability of the masked (answer) positions.
fn sft_loss(mask: &[bool], lp: &[f32]) -> (f32, Vec<f32>) {
    let k = mask.iter().filter(|&&m| m).count().max(1) as f64;
    let loss = lp
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m)
        .map(|(&l, _)| -(l as f64))
        .sum::<f64>()
        / k;
    let d = mask
        .iter()
        .map(|&m| if m { (-1.0 / k) as f32 } else { 0.0 })
        .collect();
    (loss as f32, d)
}

/// A preference loss over the batch's pairs, from the policy's token log-probabilities
/// `lp` and the `reference` sums of the sequences from global index `offset` on.
fn preference_loss(
    b: &Batch<'_>,
    lp: &[f32],
    beta: f64,
    loss: PreferenceLoss,
    reference: &[(f64, usize)],
    offset: usize,
) -> (f32, Vec<f32>, RewardStats) {
    let (seqs, mask, seq_len) = (b.seqs, b.mask, b.seq_len);
    // Per sequence present: its policy sum and length, keyed by (row,
    // sequence): a batch may hold the same row twice.
    let mut sums: BTreeMap<(usize, u32), (f64, usize)> = Default::default();
    for (i, ((&s, &m), &l)) in seqs.iter().zip(mask).zip(lp).enumerate() {
        if m && s != u32::MAX {
            let e = sums.entry((i / seq_len, s)).or_insert((0.0, 0));
            e.0 += l as f64;
            e.1 += 1;
        }
    }
    // Pairs are packed as consecutive (chosen, rejected) sequences.
    let mut total = 0.0;
    let mut st = RewardStats::default();
    let mut dscore: BTreeMap<(usize, u32), f64> = Default::default();
    let pairs: Vec<(usize, u32)> = sums.keys().copied().filter(|(_, s)| s % 2 == 0).collect();
    let np = pairs.len().max(1) as f64;
    for &(row, c) in &pairs {
        let (Some(&(pc, nc)), Some(&(pr, nr))) = (sums.get(&(row, c)), sums.get(&(row, c + 1)))
        else {
            continue;
        };
        let (rc, rr) = (
            reference[offset + c as usize].0,
            reference[offset + c as usize + 1].0,
        );
        let avg = loss.averaged();
        let (sc, sr, qc, qr) = if avg {
            (
                pc / nc.max(1) as f64,
                pr / nr.max(1) as f64,
                rc / nc.max(1) as f64,
                rr / nr.max(1) as f64,
            )
        } else {
            (pc, pr, rc, rr)
        };
        let (l, gc, gr) = loss.pair(beta, sc, sr, qc, qr);
        total += l / np;
        let (gc, gr) = if avg {
            (gc / nc.max(1) as f64, gr / nr.max(1) as f64)
        } else {
            (gc, gr)
        };
        dscore.insert((row, c), gc / np);
        dscore.insert((row, c + 1), gr / np);
        let (rwc, rwr) = (beta * (pc - rc), beta * (pr - rr));
        st.add(&RewardStats {
            chosen: rwc,
            rejected: rwr,
            accuracy: if rwc > rwr { 1.0 } else { 0.0 },
            margin: rwc - rwr,
            logps_chosen: pc,
            logps_rejected: pr,
        });
    }
    st.scale(1.0 / np);
    let d = seqs
        .iter()
        .zip(mask)
        .enumerate()
        .map(|(i, (&s, &m))| {
            if m {
                dscore.get(&(i / seq_len, s)).copied().unwrap_or(0.0) as f32
            } else {
                0.0
            }
        })
        .collect();
    (total as f32, d, st)
}

/// A reward model's loss, −log σ(r_chosen − r_rejected) over the batch's pairs, from the
/// score at every position.
fn reward_loss(b: &Batch<'_>, scores: &[f32]) -> (f32, Vec<f32>, RewardStats) {
    let (seqs, mask, seq_len) = (b.seqs, b.mask, b.seq_len);
    // Each sequence's reward: the score at its last answer position.
    let mut last: BTreeMap<(usize, u32), usize> = Default::default();
    for (i, (&s, &m)) in seqs.iter().zip(mask).enumerate() {
        if m && s != u32::MAX {
            last.insert((i / seq_len, s), i);
        }
    }
    let pairs: Vec<(usize, u32)> = last.keys().copied().filter(|(_, s)| s % 2 == 0).collect();
    let np = pairs.len().max(1) as f64;
    let mut d = vec![0f32; scores.len()];
    let (mut total, mut st) = (0.0, RewardStats::default());
    for &(row, c) in &pairs {
        let (Some(&ic), Some(&ir)) = (last.get(&(row, c)), last.get(&(row, c + 1))) else {
            continue;
        };
        let (rc, rr) = (scores[ic] as f64, scores[ir] as f64);
        let (l, gc, gr) = PreferenceLoss::Sigmoid.pair(1.0, rc, rr, 0.0, 0.0);
        total += l / np;
        d[ic] += (gc / np) as f32;
        d[ir] += (gr / np) as f32;
        st.add(&RewardStats {
            chosen: rc,
            rejected: rr,
            accuracy: if rc > rr { 1.0 } else { 0.0 },
            margin: rc - rr,
            logps_chosen: 0.0,
            logps_rejected: 0.0,
        });
    }
    st.scale(1.0 / np);
    (total as f32, d, st)
}

impl Finetuner {
    /// Loss (and reward statistics for preference and reward runs) of rows `r0..r1` of the
    /// validation rows (`which_val`) or the training rows; gradients into `self.grads`
    /// when `train`.
    pub(super) fn pass(
        &mut self,
        which_val: bool,
        r0: usize,
        r1: usize,
        train: bool,
    ) -> Result<(f64, Option<RewardStats>)> {
        let rows: &Rows = if which_val { &self.val } else { &self.train };
        let offset = if which_val { self.val_offset } else { 0 };
        let mask = rows.mask(r0, r1).to_vec();
        let seqs = rows.sequence(r0, r1).to_vec();
        let method = self.file.config.method.clone();
        let b = Batch {
            mask: &mask,
            seqs: &seqs,
            seq_len: rows.seq_len,
        };
        let mut stats = None;
        if matches!(method, Method::Reward) {
            let mut g = |scores: &[f32]| -> fmlab_nn::Result<(f32, Vec<f32>)> {
                let (l, d, st) = reward_loss(&b, scores);
                stats = Some(st);
                Ok((l, d))
            };
            let grads = if train {
                Grads::Full(&mut self.grads)
            } else {
                Grads::None
            };
            let loss = objective(
                &self.file.spec,
                &self.weights,
                None,
                rows.slice(r0, r1),
                Objective::Scores(&mut g),
                grads,
            )?;
            return Ok((loss as f64, stats));
        }
        let reference = &self.reference;
        let mut f = |lp: &[f32]| -> fmlab_nn::Result<(f32, Vec<f32>)> {
            match method {
                Method::Sft => Ok(sft_loss(&mask, lp)),
                Method::Reward => Ok((0.0, vec![0.0; lp.len()])),
                Method::Preference { beta, loss } => {
                    let (l, d, st) = preference_loss(&b, lp, beta, loss, reference, offset);
                    stats = Some(st);
                    Ok((l, d))
                }
            }
        };
        let grads = match (train, self.adapters.is_some()) {
            (false, _) => Grads::None,
            (true, true) => Grads::Adapters(&mut self.grads),
            (true, false) => Grads::Full(&mut self.grads),
        };
        let loss = objective(
            &self.file.spec,
            &self.weights,
            self.adapters.as_ref(),
            rows.slice(r0, r1),
            Objective::LogProbs(&mut f),
            grads,
        )?;
        Ok((loss as f64, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_losses_and_their_derivatives() {
        let (beta, pc, pr, rc, rr) = (0.1, -3.0, -5.0, -3.5, -4.0);
        for loss in [
            PreferenceLoss::Sigmoid,
            PreferenceLoss::Ipo,
            PreferenceLoss::Hinge,
            PreferenceLoss::Simpo { gamma: 0.5 },
        ] {
            let (l, gc, gr) = loss.pair(beta, pc, pr, rc, rr);
            let h = 1e-6;
            let nc = (loss.pair(beta, pc + h, pr, rc, rr).0
                - loss.pair(beta, pc - h, pr, rc, rr).0)
                / (2.0 * h);
            let nr = (loss.pair(beta, pc, pr + h, rc, rr).0
                - loss.pair(beta, pc, pr - h, rc, rr).0)
                / (2.0 * h);
            assert!(l.is_finite());
            assert!(
                (gc - nc).abs() < 1e-6 && (gr - nr).abs() < 1e-6,
                "{loss:?}: {gc} {nc} {gr} {nr}"
            );
        }
        // At policy = reference, DPO's loss is ln 2.
        let (l, _, _) = PreferenceLoss::Sigmoid.pair(0.1, -4.0, -6.0, -4.0, -6.0);
        assert!((l - std::f64::consts::LN_2).abs() < 1e-12);
        assert!(PreferenceLoss::parse("kto", 0.5).is_err());
    }
}
