//! Learning-rate schedules.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The learning rate as a function of the step (0-based), over `total` steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Linear warmup to `lr`, then constant.
    Constant { lr: f32, warmup: u64 },
    /// Linear warmup, then a cosine from `lr` to `min_lr` at the last step (GPT-3, nanoGPT).
    Cosine {
        lr: f32,
        min_lr: f32,
        warmup: u64,
        total: u64,
    },
    /// Warmup-stable-decay (Hu et al. 2024, MiniCPM): warmup, a long constant phase, then
    /// a linear decay to `min_lr` over the last `decay` steps.
    Wsd {
        lr: f32,
        min_lr: f32,
        warmup: u64,
        decay: u64,
        total: u64,
    },
}

impl Schedule {
    pub fn validate(&self) -> Result<()> {
        let (lr, min_lr, warmup, total, decay) = match *self {
            Schedule::Constant { lr, warmup } => (lr, 0.0, warmup, u64::MAX, 0),
            Schedule::Cosine {
                lr,
                min_lr,
                warmup,
                total,
            } => (lr, min_lr, warmup, total, 0),
            Schedule::Wsd {
                lr,
                min_lr,
                warmup,
                decay,
                total,
            } => (lr, min_lr, warmup, total, decay),
        };
        if !(lr.is_finite() && lr > 0.0 && min_lr.is_finite() && (0.0..=lr).contains(&min_lr)) {
            return Err(Error::Schedule(format!(
                "learning rates must satisfy 0 ≤ min_lr ≤ lr, lr > 0 (lr {lr}, min_lr {min_lr})"
            )));
        }
        if total == 0 || warmup.saturating_add(decay) > total {
            return Err(Error::Schedule(format!(
                "warmup {warmup} + decay {decay} exceed the {total} steps"
            )));
        }
        Ok(())
    }

    /// The learning rate at `step` (0-based).
    pub fn lr(&self, step: u64) -> f32 {
        let warm = |lr: f32, warmup: u64| -> Option<f32> {
            (step < warmup).then(|| lr * (step + 1) as f32 / warmup as f32)
        };
        match *self {
            Schedule::Constant { lr, warmup } => warm(lr, warmup).unwrap_or(lr),
            Schedule::Cosine {
                lr,
                min_lr,
                warmup,
                total,
            } => warm(lr, warmup).unwrap_or_else(|| {
                let span = total.saturating_sub(warmup).saturating_sub(1).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                (min_lr as f64 + (lr - min_lr) as f64 * cos) as f32
            }),
            Schedule::Wsd {
                lr,
                min_lr,
                warmup,
                decay,
                total,
            } => warm(lr, warmup).unwrap_or_else(|| {
                let decay_start = total.saturating_sub(decay);
                if step < decay_start || decay == 0 {
                    lr
                } else {
                    let span = decay.saturating_sub(1).max(1) as f32;
                    let progress = ((step - decay_start) as f32 / span).min(1.0);
                    lr + (min_lr - lr) * progress
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_the_schedules() {
        let c = Schedule::Cosine {
            lr: 1.0,
            min_lr: 0.1,
            warmup: 10,
            total: 110,
        };
        c.validate().unwrap();
        assert!((c.lr(0) - 0.1).abs() < 1e-6);
        assert!((c.lr(9) - 1.0).abs() < 1e-6);
        assert!((c.lr(10) - 1.0).abs() < 1e-6);
        // Halfway through the cosine: (1 + 0.1) / 2.
        let mid = 10 + 99 / 2;
        assert!((c.lr(mid) - 0.55).abs() < 0.02, "{}", c.lr(mid));
        assert!((c.lr(109) - 0.1).abs() < 1e-6);
        assert!((c.lr(500) - 0.1).abs() < 1e-6);
        let w = Schedule::Wsd {
            lr: 2.0,
            min_lr: 0.0,
            warmup: 5,
            decay: 11,
            total: 100,
        };
        w.validate().unwrap();
        assert_eq!(w.lr(50), 2.0);
        assert_eq!(w.lr(88), 2.0);
        assert!((w.lr(94) - 1.0).abs() < 1e-6);
        assert_eq!(w.lr(99), 0.0);
        let k = Schedule::Constant {
            lr: 3e-4,
            warmup: 0,
        };
        assert_eq!(k.lr(0), 3e-4);
        assert!(Schedule::Cosine {
            lr: 1.0,
            min_lr: 2.0,
            warmup: 0,
            total: 10
        }
        .validate()
        .is_err());
        assert!(Schedule::Wsd {
            lr: 1.0,
            min_lr: 0.0,
            warmup: 8,
            decay: 8,
            total: 10
        }
        .validate()
        .is_err());
    }
}
