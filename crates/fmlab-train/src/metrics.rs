//! Reading a run's `metrics.jsonl` back: the lines both loops write (a step's figures —
//! [`crate::StepMetrics`], [`crate::finetune::FinetuneMetrics`] — or an evaluation's
//! `step`, `val_loss` and, for preference runs, `val_`-prefixed reward statistics) as one
//! typed [`Metrics`].

use std::path::Path;

use serde::Deserialize;

use crate::finetune::RewardStats;
use crate::{Error, Result};

/// A run's curves and its last reward statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// (step, training loss) of every step.
    pub train: Vec<(f64, f64)>,
    /// (step, validation loss) of every evaluation.
    pub val: Vec<(f64, f64)>,
    /// (step, learning rate) of every step.
    pub lr: Vec<(f64, f64)>,
    /// The last step's preference statistics (preference and reward runs).
    pub rewards: Option<RewardStats>,
    /// The same on the held-out pairs at the last evaluation that has them.
    pub val_rewards: Option<RewardStats>,
}

/// Any line of `metrics.jsonl`: the fields of a step and of an evaluation, each optional.
#[derive(Deserialize)]
struct Line {
    step: f64,
    loss: Option<f64>,
    lr: Option<f64>,
    tokens: Option<f64>,
    val_loss: Option<f64>,
    rewards: Option<RewardStats>,
    #[serde(rename = "val_rewards/chosen")]
    val_chosen: Option<f64>,
    #[serde(rename = "val_rewards/rejected")]
    val_rejected: Option<f64>,
    #[serde(rename = "val_rewards/accuracies")]
    val_accuracy: Option<f64>,
    #[serde(rename = "val_rewards/margins")]
    val_margin: Option<f64>,
    #[serde(rename = "val_logps/chosen")]
    val_logps_chosen: Option<f64>,
    #[serde(rename = "val_logps/rejected")]
    val_logps_rejected: Option<f64>,
}

impl Line {
    fn val_rewards(&self) -> Option<RewardStats> {
        let zero = |x: Option<f64>| x.unwrap_or(0.0);
        self.val_accuracy.map(|accuracy| RewardStats {
            chosen: zero(self.val_chosen),
            rejected: zero(self.val_rejected),
            accuracy,
            margin: zero(self.val_margin),
            logps_chosen: zero(self.val_logps_chosen),
            logps_rejected: zero(self.val_logps_rejected),
        })
    }
}

/// Reads `RUN/metrics.jsonl`.
pub fn read(run: &Path) -> Result<Metrics> {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut m = Metrics::default();
    for line in text.lines() {
        let l: Line = serde_json::from_str(line).map_err(|e| {
            Error::Message(format!(
                "{}: a line is not a metrics line: {e}",
                path.display()
            ))
        })?;
        if let (Some(loss), Some(_)) = (l.loss, l.tokens) {
            m.train.push((l.step, loss));
            if let Some(lr) = l.lr {
                m.lr.push((l.step, lr));
            }
        }
        if l.loss.is_some() {
            m.rewards = l.rewards;
        }
        if let Some(val) = l.val_loss {
            m.val.push((l.step, val));
        }
        if let Some(r) = l.val_rewards() {
            m.val_rewards = Some(r);
        }
    }
    Ok(m)
}
