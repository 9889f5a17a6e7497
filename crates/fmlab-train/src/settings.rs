//! Pre-training settings as a caller gives them (the command line, a TOML file, the
//! speedrun): every field optional, merged (one source over another), then resolved into a
//! model spec and a [`LoopConfig`] with the defaults filled in — the steps from the
//! compute-optimal tokens per parameter, the schedule from its kind.

use fmlab_spec::ModelSpec;
use serde::Deserialize;

use crate::{AdamWConfig, Error, LoopConfig, Result, Schedule};

/// A learning-rate schedule's kind (its numbers come from the other settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ScheduleKind {
    Cosine,
    Wsd,
    Constant,
}

impl ScheduleKind {
    pub const ALL: [ScheduleKind; 3] = [Self::Cosine, Self::Wsd, Self::Constant];

    pub fn name(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::Wsd => "wsd",
            Self::Constant => "constant",
        }
    }

    /// The kind named `name` among `allowed`; else the error `--schedule` reports.
    pub fn parse(name: &str, allowed: &[ScheduleKind]) -> Result<Self> {
        match allowed.iter().find(|k| k.name() == name) {
            Some(&k) => Ok(k),
            None => {
                let names: Vec<&str> = allowed.iter().map(|k| k.name()).collect();
                let list = match names.split_last() {
                    Some((last, [])) => last.to_string(),
                    Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                    None => String::new(),
                };
                Err(Error::Message(format!(
                    "--schedule: {name:?} is not {list}"
                )))
            }
        }
    }
}

impl TryFrom<String> for ScheduleKind {
    type Error = Error;

    fn try_from(name: String) -> Result<Self> {
        Self::parse(&name, &Self::ALL)
    }
}

/// Every pre-training setting; `None` takes the default (or the other source's value in
/// [`PretrainSettings::or`]). A TOML file deserializes into it (names with underscores,
/// and optionally a `[model]` table).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainSettings {
    /// The depth dial (`fmlab_spec::from_depth`) [default: 4].
    pub depth: Option<u64>,
    /// Tokens per training sequence (also the model's context) [default: 256].
    pub seq_len: Option<usize>,
    /// Sequences per micro-batch [default: 8].
    pub batch: Option<usize>,
    /// Micro-batches per optimizer step [default: 1].
    pub grad_accum: Option<usize>,
    /// [default: the compute-optimal budget, `TOKENS_PER_PARAM` tokens per parameter].
    pub steps: Option<u64>,
    /// [default: cosine].
    pub schedule: Option<ScheduleKind>,
    /// Peak learning rate [default: 3e-3].
    pub lr: Option<f32>,
    /// [default: lr / 10].
    pub min_lr: Option<f32>,
    /// [default: 5% of the steps, at most 200].
    pub warmup: Option<u64>,
    /// WSD's decay steps [default: 20% of the steps].
    pub decay_steps: Option<u64>,
    pub weight_decay: Option<f32>,
    pub beta1: Option<f32>,
    pub beta2: Option<f32>,
    /// [default: 1.0].
    pub grad_clip: Option<f32>,
    /// [default: steps / 10].
    pub eval_every: Option<u64>,
    /// [default: 16].
    pub eval_windows: Option<usize>,
    /// [default: steps / 5].
    pub checkpoint_every: Option<u64>,
    /// [default: 3].
    pub keep: Option<usize>,
    /// [default: 0].
    pub seed: Option<u64>,
    /// A full model spec instead of `depth`.
    pub model: Option<ModelSpec>,
}

impl PretrainSettings {
    /// These settings, with `other`'s where these have none.
    pub fn or(self, other: PretrainSettings) -> PretrainSettings {
        macro_rules! pick {
            ($($f:ident),*) => { PretrainSettings { $($f: self.$f.or(other.$f),)* } };
        }
        pick!(
            depth,
            seq_len,
            batch,
            grad_accum,
            steps,
            schedule,
            lr,
            min_lr,
            warmup,
            decay_steps,
            weight_decay,
            beta1,
            beta2,
            grad_clip,
            eval_every,
            eval_windows,
            checkpoint_every,
            keep,
            seed,
            model
        )
    }

    /// The model and training configuration these settings describe, for a vocabulary.
    pub fn resolve(&self, vocab: u64) -> Result<(ModelSpec, LoopConfig)> {
        let s = self;
        let seq_len = s.seq_len.unwrap_or(256);
        if seq_len == 0 {
            return Err(Error::Message(
                "--seq-len: the sequence length must be at least 1".into(),
            ));
        }
        let spec = match &s.model {
            Some(m) => {
                if s.depth.is_some() {
                    return Err(Error::Message(
                        "give either --depth or a [model] table, not both".into(),
                    ));
                }
                m.validate()
                    .map_err(|e| Error::Message(format!("[model]: {e}")))?;
                m.clone()
            }
            None => fmlab_spec::from_depth(s.depth.unwrap_or(4), vocab, seq_len as u64)
                .map_err(|e| Error::Message(format!("--depth: {e}")))?,
        };
        fmlab_nn::train::check_spec(&spec)?;
        let batch = s.batch.unwrap_or(8);
        let grad_accum = s.grad_accum.unwrap_or(1);
        let per_step = (seq_len * batch * grad_accum).max(1) as u64;
        let steps = match s.steps {
            Some(0) => {
                return Err(Error::Message(
                    "--steps 0: a run trains at least one step".into(),
                ))
            }
            Some(n) => n,
            None => {
                let params = spec.params().total as f64;
                ((fmlab_spec::TOKENS_PER_PARAM as f64 * params) / per_step as f64).ceil() as u64
            }
        }
        .max(1);
        let lr = s.lr.unwrap_or(3e-3);
        let min_lr = s.min_lr.unwrap_or(lr / 10.0);
        let warmup = s.warmup.unwrap_or((steps / 20).min(200));
        let schedule = match s.schedule.unwrap_or(ScheduleKind::Cosine) {
            ScheduleKind::Cosine => Schedule::Cosine {
                lr,
                min_lr,
                warmup,
                total: steps,
            },
            ScheduleKind::Wsd => Schedule::Wsd {
                lr,
                min_lr,
                warmup,
                decay: s.decay_steps.unwrap_or(steps / 5),
                total: steps,
            },
            ScheduleKind::Constant => Schedule::Constant { lr, warmup },
        };
        let d = AdamWConfig::default();
        let config = LoopConfig {
            seq_len,
            batch,
            grad_accum,
            steps,
            schedule,
            adamw: AdamWConfig {
                beta1: s.beta1.unwrap_or(d.beta1),
                beta2: s.beta2.unwrap_or(d.beta2),
                eps: d.eps,
                weight_decay: s.weight_decay.unwrap_or(d.weight_decay),
            },
            grad_clip: s.grad_clip.unwrap_or(1.0),
            eval_every: s.eval_every.unwrap_or((steps / 10).max(1)),
            eval_windows: s.eval_windows.unwrap_or(16),
            checkpoint_every: s.checkpoint_every.unwrap_or((steps / 5).max(1)),
            keep: s.keep.unwrap_or(3),
            seed: s.seed.unwrap_or(0),
        };
        config.validate(&spec)?;
        Ok((spec, config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_names_and_their_refusals() {
        assert_eq!(
            ScheduleKind::parse("wsd", &ScheduleKind::ALL).unwrap(),
            ScheduleKind::Wsd
        );
        let all = ScheduleKind::parse("linear", &ScheduleKind::ALL).unwrap_err();
        assert_eq!(
            all.to_string(),
            "--schedule: \"linear\" is not cosine, wsd or constant"
        );
        let two = [ScheduleKind::Cosine, ScheduleKind::Constant];
        let e = ScheduleKind::parse("wsd", &two).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--schedule: \"wsd\" is not cosine or constant"
        );
    }

    #[test]
    fn the_first_source_wins() {
        let cli = PretrainSettings {
            steps: Some(5),
            ..Default::default()
        };
        let file = PretrainSettings {
            steps: Some(9),
            lr: Some(1e-3),
            ..Default::default()
        };
        let m = cli.or(file);
        assert_eq!((m.steps, m.lr), (Some(5), Some(1e-3)));
    }
}
