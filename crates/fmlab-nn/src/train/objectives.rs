//! What a pass computes the loss of: mean cross-entropy, any function of the targets'
//! log-probabilities, or a reward model's scores.

use rayon::prelude::*;

use super::float::Float;
use crate::{Error, Result};

/// The derivative of a loss with respect to each target's log-probability, given them all:
/// `(loss, dloss/dlogp)`, one entry per token.
pub type LogProbLoss<'a, T> = &'a mut dyn FnMut(&[T]) -> Result<(T, Vec<T>)>;

/// What a pass computes the loss of.
pub enum Objective<'a, T> {
    /// The mean cross-entropy of every target (pre-training).
    MeanNll,
    /// Any function of the targets' log-probabilities (SFT's masked mean, DPO's
    /// preference losses): the executor hands the function every token's log-probability
    /// and back-propagates the derivatives it returns. A token whose derivative is zero
    /// contributes nothing to any gradient.
    LogProbs(LogProbLoss<'a, T>),
    /// A reward model's objective: the pass ends in the scalar head (`score.weight`), and
    /// the function gets one score per position and returns the loss and its derivative
    /// with respect to each (Bradley–Terry on the scores at the answers' ends).
    Scores(LogProbLoss<'a, T>),
}

/// The loss of `objective` over the pass's last values, `n` rows `v` wide (logits, or one
/// score per row), and, when `training`, its derivative with respect to them, written over
/// them.
pub(super) fn loss_and_dlogits<T: Float>(
    objective: Objective<T>,
    dlogits: &mut [T],
    targets: &[u32],
    n: usize,
    v: usize,
    training: bool,
) -> Result<T> {
    if let Objective::Scores(f) = objective {
        // One score per position: the objective's derivatives are the head's gradient.
        let (loss, d) = f(dlogits)?;
        if !training {
            return Ok(loss);
        }
        if d.len() != n {
            return Err(Error::Unsupported(format!(
                "the objective gave {} derivatives for {n} scores",
                d.len()
            )));
        }
        dlogits.copy_from_slice(&d);
        return Ok(loss);
    }
    // The targets' log-probabilities, row by row in parallel and in place: each row keeps
    // exp(z − max), so that its gradient needs one more scaling pass and no second exp.
    let rows_out: Vec<(T, T)> = dlogits
        .par_chunks_mut(v)
        .zip(targets.par_iter())
        .map(|(row, &t)| {
            let t = t as usize;
            let max = row.iter().fold(
                T::from_f64(f64::NEG_INFINITY),
                |m, &x| if x > m { x } else { m },
            );
            let target_logit = row[t];
            row.iter_mut().for_each(|x| *x -= max);
            T::exp_slice(row);
            let total = row.iter().fold(T::zero(), |s, &x| s + x);
            (target_logit - max - total.ln(), total)
        })
        .collect();
    let logps: Vec<T> = rows_out.iter().map(|r| r.0).collect();
    let (loss, coef) = match objective {
        Objective::MeanNll => {
            let inv_n = T::from_f64(1.0 / n as f64);
            let loss = logps.iter().fold(T::zero(), |s, &x| s - x * inv_n);
            (loss, vec![-inv_n; if training { n } else { 0 }])
        }
        Objective::LogProbs(f) => f(&logps)?,
        Objective::Scores(_) => {
            return Err(Error::Unsupported(
                "scores reached the log-probability loss".into(),
            ))
        }
    };
    if !training {
        return Ok(loss);
    }
    if coef.len() != n {
        return Err(Error::Unsupported(format!(
            "the objective gave {} derivatives for {n} tokens",
            coef.len()
        )));
    }
    // dloss/dz = c·(one-hot − softmax), c = dloss/dlogp.
    dlogits
        .par_chunks_mut(v)
        .zip(targets.par_iter())
        .zip(rows_out.par_iter().zip(coef.par_iter()))
        .for_each(|((row, &t), (&(_, total), &c))| {
            let scale = -c / total;
            row.iter_mut().for_each(|x| *x *= scale);
            row[t as usize] += c;
        });
    Ok(loss)
}
