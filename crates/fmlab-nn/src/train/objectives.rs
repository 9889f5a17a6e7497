//! What a pass computes the loss of: mean cross-entropy, any function of the targets'
//! log-probabilities, or a reward model's scores.

use crate::Result;

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
