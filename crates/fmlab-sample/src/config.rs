//! Sampler settings, the order processors run in, and their validation.

use crate::processors::{Dry, Penalties};
use crate::{Error, Result};

/// One step of a sampler chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    LogitBias,
    Penalties,
    Dry,
    TopNSigma,
    TopK,
    Typical,
    TopP,
    MinP,
    Xtc,
    Epsilon,
    Eta,
    Temperature,
}

impl Stage {
    /// Every stage, in llama.cpp's order.
    pub const ALL: [Stage; 12] = [
        Stage::LogitBias,
        Stage::Penalties,
        Stage::Dry,
        Stage::TopNSigma,
        Stage::TopK,
        Stage::Typical,
        Stage::TopP,
        Stage::MinP,
        Stage::Xtc,
        Stage::Epsilon,
        Stage::Eta,
        Stage::Temperature,
    ];

    /// The name used in `--sampler-order` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::LogitBias => "logit_bias",
            Stage::Penalties => "penalties",
            Stage::Dry => "dry",
            Stage::TopNSigma => "top_n_sigma",
            Stage::TopK => "top_k",
            Stage::Typical => "typical",
            Stage::TopP => "top_p",
            Stage::MinP => "min_p",
            Stage::Xtc => "xtc",
            Stage::Epsilon => "epsilon",
            Stage::Eta => "eta",
            Stage::Temperature => "temperature",
        }
    }

    pub fn parse(name: &str) -> Option<Stage> {
        let name = name.trim().replace('-', "_");
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The order of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainOrder {
    /// llama.cpp's default: bias → penalties → DRY → top-n-σ → top-k → typical → top-p →
    /// min-p → XTC → (epsilon → eta) → temperature: truncate first, temperature last.
    LlamaCpp,
    /// HF transformers' and vLLM's: bias → penalties → DRY → temperature → top-k → top-p →
    /// min-p → typical → epsilon → eta → top-n-σ → XTC: temperature first, so it changes
    /// which tokens survive truncation.
    Hf,
    /// A user-given order; stages not named do not run.
    Custom(Vec<Stage>),
}

impl ChainOrder {
    pub fn stages(&self) -> Vec<Stage> {
        use Stage::*;
        match self {
            // `Stage::ALL` lists the stages in llama.cpp's order.
            ChainOrder::LlamaCpp => Stage::ALL.to_vec(),
            ChainOrder::Hf => vec![
                LogitBias,
                Penalties,
                Dry,
                Temperature,
                TopK,
                TopP,
                MinP,
                Typical,
                Epsilon,
                Eta,
                TopNSigma,
                Xtc,
            ],
            ChainOrder::Custom(stages) => stages.clone(),
        }
    }

    /// `llama.cpp`, `hf`, or a comma-separated list of stage names.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim() {
            "llama.cpp" | "llamacpp" | "llama" => Ok(ChainOrder::LlamaCpp),
            "hf" | "transformers" | "vllm" => Ok(ChainOrder::Hf),
            list => {
                let mut stages = Vec::new();
                for name in list.split(',').filter(|n| !n.trim().is_empty()) {
                    let stage = Stage::parse(name).ok_or_else(|| Error::Setting {
                        name: "sampler-order",
                        message: format!(
                            "unknown stage {name:?}: use llama.cpp, hf, or a list of {}",
                            Stage::ALL.map(Stage::name).join(", ")
                        ),
                    })?;
                    if stages.contains(&stage) {
                        return Err(Error::Setting {
                            name: "sampler-order",
                            message: format!("{} is named twice", stage.name()),
                        });
                    }
                    stages.push(stage);
                }
                if stages.is_empty() {
                    return Err(Error::Setting {
                        name: "sampler-order",
                        message: "empty: use llama.cpp, hf, or a list of stages".into(),
                    });
                }
                Ok(ChainOrder::Custom(stages))
            }
        }
    }

    pub fn name(&self) -> String {
        match self {
            ChainOrder::LlamaCpp => "llama.cpp".into(),
            ChainOrder::Hf => "hf".into(),
            ChainOrder::Custom(s) => s.iter().map(|s| s.name()).collect::<Vec<_>>().join(","),
        }
    }
}

/// Every sampler setting. The defaults are llama.cpp's.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// 0 means greedy: the most likely token after the logit processors (bias, penalties,
    /// DRY) — truncation and randomness do not apply.
    pub temperature: f32,
    /// Dynamic temperature: the temperature moves within `temperature ± dynatemp_range`
    /// with the entropy of the distribution (0 disables).
    pub dynatemp_range: f32,
    pub dynatemp_exponent: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 1 disables.
    pub top_p: f32,
    /// 0 disables.
    pub min_p: f32,
    /// 1 disables.
    pub typical_p: f32,
    /// 0 disables.
    pub top_n_sigma: f32,
    /// 0 disables.
    pub xtc_probability: f32,
    pub xtc_threshold: f32,
    /// 0 disables.
    pub epsilon_cutoff: f32,
    /// 0 disables.
    pub eta_cutoff: f32,
    pub penalties: Penalties,
    pub dry: Dry,
    /// (token, bias) pairs added to the logits.
    pub logit_bias: Vec<(u32, f32)>,
    /// 0 (off), 1 or 2: Mirostat replaces the truncation stages.
    pub mirostat: u8,
    pub mirostat_tau: f32,
    pub mirostat_eta: f32,
    /// Tokens every truncation stage keeps at least.
    pub min_keep: usize,
    pub order: ChainOrder,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            dynatemp_range: 0.0,
            dynatemp_exponent: 1.0,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            top_n_sigma: 0.0,
            xtc_probability: 0.0,
            xtc_threshold: 0.1,
            epsilon_cutoff: 0.0,
            eta_cutoff: 0.0,
            penalties: Penalties {
                repeat: 1.0,
                frequency: 0.0,
                presence: 0.0,
                window: 64,
            },
            dry: Dry::default(),
            logit_bias: Vec::new(),
            mirostat: 0,
            mirostat_tau: 5.0,
            mirostat_eta: 0.1,
            min_keep: 1,
            order: ChainOrder::LlamaCpp,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding: the most likely token at every step.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Pure sampling from the model's distribution: no truncation, temperature 1.
    pub fn pure(seed: u64) -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed,
            ..Self::default()
        }
    }

    /// Every setting [`SamplerConfig::set`] changes, by its command-line name.
    pub const SETTABLE: [&'static str; 26] = [
        "temperature",
        "dynatemp-range",
        "dynatemp-exponent",
        "top-k",
        "top-p",
        "min-p",
        "typical-p",
        "top-n-sigma",
        "xtc-probability",
        "xtc-threshold",
        "epsilon-cutoff",
        "eta-cutoff",
        "repeat-penalty",
        "repeat-last-n",
        "frequency-penalty",
        "presence-penalty",
        "dry-multiplier",
        "dry-base",
        "dry-allowed-length",
        "dry-penalty-last-n",
        "mirostat",
        "mirostat-tau",
        "mirostat-eta",
        "min-keep",
        "sampler-order",
        "seed",
    ];

    /// Sets one setting from text, by its command-line name (`top-k` or `top_k`), and
    /// checks the result; a bad value leaves the configuration as it was. What `fmlab
    /// chat`'s `/set` and a server's extra request fields call.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let key = name.trim().replace('_', "-");
        let unknown = || Error::Setting {
            name: "set",
            message: format!(
                "unknown setting {name:?} (known: {})",
                Self::SETTABLE.join(", ")
            ),
        };
        let &name = Self::SETTABLE
            .iter()
            .find(|n| **n == key)
            .ok_or_else(unknown)?;
        let value = value.trim();
        let bad = |kind: &str| Error::Setting {
            name,
            message: format!("{value:?} is not {kind}"),
        };
        let float = || -> Result<f32> {
            match value {
                "-inf" | "-infinity" => Ok(f32::NEG_INFINITY),
                v => v.parse().map_err(|_| bad("a number")),
            }
        };
        let int = || -> Result<usize> { value.parse().map_err(|_| bad("a whole number ≥ 0")) };
        let mut next = self.clone();
        match name {
            "temperature" => next.temperature = float()?,
            "dynatemp-range" => next.dynatemp_range = float()?,
            "dynatemp-exponent" => next.dynatemp_exponent = float()?,
            "top-k" => next.top_k = int()?,
            "top-p" => next.top_p = float()?,
            "min-p" => next.min_p = float()?,
            "typical-p" => next.typical_p = float()?,
            "top-n-sigma" => next.top_n_sigma = float()?,
            "xtc-probability" => next.xtc_probability = float()?,
            "xtc-threshold" => next.xtc_threshold = float()?,
            "epsilon-cutoff" => next.epsilon_cutoff = float()?,
            "eta-cutoff" => next.eta_cutoff = float()?,
            "repeat-penalty" => next.penalties.repeat = float()?,
            "repeat-last-n" => next.penalties.window = int()?,
            "frequency-penalty" => next.penalties.frequency = float()?,
            "presence-penalty" => next.penalties.presence = float()?,
            "dry-multiplier" => next.dry.multiplier = float()?,
            "dry-base" => next.dry.base = float()?,
            "dry-allowed-length" => next.dry.allowed_length = int()?,
            "dry-penalty-last-n" => next.dry.window = int()?,
            "mirostat" => next.mirostat = value.parse().map_err(|_| bad("0, 1 or 2"))?,
            "mirostat-tau" => next.mirostat_tau = float()?,
            "mirostat-eta" => next.mirostat_eta = float()?,
            "min-keep" => next.min_keep = int()?,
            "sampler-order" => next.order = ChainOrder::parse(value)?,
            "seed" => next.seed = value.parse().map_err(|_| bad("a whole number ≥ 0"))?,
            _ => return Err(unknown()),
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Checks every setting; the error names the offending one (as the CLI flag).
    pub fn validate(&self) -> Result<()> {
        fn bad(name: &'static str, message: String) -> Result<()> {
            Err(Error::Setting { name, message })
        }
        let finite = |name: &'static str, v: f32| -> Result<()> {
            if v.is_finite() {
                Ok(())
            } else {
                bad(name, format!("must be a finite number, got {v}"))
            }
        };
        finite("temperature", self.temperature)?;
        if self.temperature < 0.0 {
            return bad(
                "temperature",
                format!("must be ≥ 0 (0 is greedy), got {}", self.temperature),
            );
        }
        finite("dynatemp-range", self.dynatemp_range)?;
        if self.dynatemp_range < 0.0 {
            return bad(
                "dynatemp-range",
                format!("must be ≥ 0, got {}", self.dynatemp_range),
            );
        }
        finite("dynatemp-exponent", self.dynatemp_exponent)?;
        if self.dynatemp_exponent <= 0.0 {
            return bad(
                "dynatemp-exponent",
                format!("must be > 0, got {}", self.dynatemp_exponent),
            );
        }
        for (name, v) in [("top-p", self.top_p), ("typical-p", self.typical_p)] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(name, format!("must be in (0, 1], got {v}"));
            }
        }
        for (name, v) in [
            ("min-p", self.min_p),
            ("xtc-probability", self.xtc_probability),
            ("xtc-threshold", self.xtc_threshold),
            ("epsilon-cutoff", self.epsilon_cutoff),
            ("eta-cutoff", self.eta_cutoff),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(name, format!("must be in [0, 1], got {v}"));
            }
        }
        finite("top-n-sigma", self.top_n_sigma)?;
        if self.top_n_sigma < 0.0 {
            return bad(
                "top-n-sigma",
                format!("must be ≥ 0, got {}", self.top_n_sigma),
            );
        }
        let p = &self.penalties;
        finite("repeat-penalty", p.repeat)?;
        if p.repeat <= 0.0 {
            return bad(
                "repeat-penalty",
                format!("must be > 0 (1 disables), got {}", p.repeat),
            );
        }
        for (name, v) in [
            ("frequency-penalty", p.frequency),
            ("presence-penalty", p.presence),
        ] {
            if !(-2.0..=2.0).contains(&v) {
                return bad(name, format!("must be in [-2, 2], got {v}"));
            }
        }
        let d = &self.dry;
        finite("dry-multiplier", d.multiplier)?;
        if d.multiplier < 0.0 {
            return bad(
                "dry-multiplier",
                format!("must be ≥ 0, got {}", d.multiplier),
            );
        }
        finite("dry-base", d.base)?;
        if d.base < 1.0 {
            return bad("dry-base", format!("must be ≥ 1, got {}", d.base));
        }
        for &(id, b) in &self.logit_bias {
            if b.is_nan() || b == f32::INFINITY {
                return bad(
                    "logit-bias",
                    format!("token {id}: the bias must be a number or -inf, got {b}"),
                );
            }
        }
        if self.mirostat > 2 {
            return bad(
                "mirostat",
                format!("must be 0, 1 or 2, got {}", self.mirostat),
            );
        }
        finite("mirostat-tau", self.mirostat_tau)?;
        if self.mirostat_tau <= 0.0 {
            return bad(
                "mirostat-tau",
                format!("must be > 0, got {}", self.mirostat_tau),
            );
        }
        finite("mirostat-eta", self.mirostat_eta)?;
        if !(self.mirostat_eta > 0.0 && self.mirostat_eta <= 1.0) {
            return bad(
                "mirostat-eta",
                format!("must be in (0, 1], got {}", self.mirostat_eta),
            );
        }
        Ok(())
    }

    /// Whether a stage changes anything with these settings.
    pub fn is_active(&self, stage: Stage) -> bool {
        match stage {
            Stage::LogitBias => !self.logit_bias.is_empty(),
            Stage::Penalties => self.penalties.is_active(),
            Stage::Dry => self.dry.multiplier > 0.0,
            Stage::TopNSigma => self.top_n_sigma > 0.0,
            Stage::TopK => self.top_k > 0,
            Stage::Typical => self.typical_p < 1.0,
            Stage::TopP => self.top_p < 1.0,
            Stage::MinP => self.min_p > 0.0,
            Stage::Xtc => self.xtc_probability > 0.0 && self.xtc_threshold <= 0.5,
            Stage::Epsilon => self.epsilon_cutoff > 0.0,
            Stage::Eta => self.eta_cutoff > 0.0,
            Stage::Temperature => self.temperature != 1.0 || self.dynatemp_range > 0.0,
        }
    }

    /// The stages that run, in order, for this configuration.
    pub fn active_stages(&self) -> Vec<Stage> {
        let greedy = self.temperature == 0.0;
        let logit_only = |s: Stage| matches!(s, Stage::LogitBias | Stage::Penalties | Stage::Dry);
        self.order
            .stages()
            .into_iter()
            .filter(|&s| self.is_active(s))
            // Greedy and Mirostat keep only the logit processors (and temperature, for
            // Mirostat) of the chain.
            .filter(|&s| !greedy || logit_only(s))
            .filter(|&s| self.mirostat == 0 || logit_only(s) || s == Stage::Temperature)
            .collect()
    }

    /// What the chain does, for reports: the order's name and each active stage with its
    /// setting, then how the token is picked.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .active_stages()
            .into_iter()
            .map(|s| match s {
                Stage::LogitBias => format!("logit bias ({} tokens)", self.logit_bias.len()),
                Stage::Penalties => format!(
                    "penalties (repeat {}, frequency {}, presence {}, last {})",
                    self.penalties.repeat,
                    self.penalties.frequency,
                    self.penalties.presence,
                    self.penalties.window
                ),
                Stage::Dry => format!(
                    "DRY (×{}, base {}, allowed {})",
                    self.dry.multiplier, self.dry.base, self.dry.allowed_length
                ),
                Stage::TopNSigma => format!("top-n-σ {}", self.top_n_sigma),
                Stage::TopK => format!("top-k {}", self.top_k),
                Stage::Typical => format!("typical {}", self.typical_p),
                Stage::TopP => format!("top-p {}", self.top_p),
                Stage::MinP => format!("min-p {}", self.min_p),
                Stage::Xtc => format!(
                    "XTC (p {}, threshold {})",
                    self.xtc_probability, self.xtc_threshold
                ),
                Stage::Epsilon => format!("epsilon {}", self.epsilon_cutoff),
                Stage::Eta => format!("eta {}", self.eta_cutoff),
                Stage::Temperature if self.dynatemp_range > 0.0 => format!(
                    "temperature {} ± {} (exponent {})",
                    self.temperature, self.dynatemp_range, self.dynatemp_exponent
                ),
                Stage::Temperature => format!("temperature {}", self.temperature),
            })
            .collect();
        parts.push(if self.temperature == 0.0 {
            "greedy".into()
        } else if self.mirostat > 0 {
            format!(
                "mirostat v{} (τ {}, η {}, seed {})",
                self.mirostat, self.mirostat_tau, self.mirostat_eta, self.seed
            )
        } else {
            format!("sample (seed {})", self.seed)
        });
        format!("{} order: {}", self.order.name(), parts.join(" → "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_changes_one_setting_and_refuses_bad_values() {
        let mut c = SamplerConfig::default();
        c.set("top_k", "7").unwrap();
        c.set("temperature", "0.3").unwrap();
        c.set("repeat-penalty", "1.1").unwrap();
        c.set("sampler-order", "hf").unwrap();
        assert_eq!((c.top_k, c.temperature, c.penalties.repeat), (7, 0.3, 1.1));
        assert_eq!(c.order, ChainOrder::Hf);
        let before = c.clone();
        let message = |r: Result<()>| r.unwrap_err().to_string();
        assert_eq!(
            message(c.set("top-k", "many")),
            "--top-k: \"many\" is not a whole number ≥ 0"
        );
        assert!(message(c.set("top-p", "1.5")).starts_with("--top-p:"));
        assert!(message(c.set("warmth", "1")).starts_with("--set: unknown setting \"warmth\""));
        assert_eq!(c, before, "a refused value changes nothing");
        for name in SamplerConfig::SETTABLE {
            let value = match name {
                "sampler-order" => "llama.cpp",
                "mirostat" => "2",
                _ => "1",
            };
            SamplerConfig::default().set(name, value).unwrap();
        }
    }

    #[test]
    fn orders_and_names() {
        assert_eq!(
            ChainOrder::parse("llama.cpp").unwrap(),
            ChainOrder::LlamaCpp
        );
        assert_eq!(ChainOrder::parse("hf").unwrap(), ChainOrder::Hf);
        assert_eq!(
            ChainOrder::parse("top-k, temperature,top_p").unwrap(),
            ChainOrder::Custom(vec![Stage::TopK, Stage::Temperature, Stage::TopP])
        );
        for bad in ["", "top_k,top_k", "nucleus"] {
            let e = ChainOrder::parse(bad).unwrap_err().to_string();
            assert!(e.contains("sampler-order"), "{e}");
        }
        let d = SamplerConfig::default().describe();
        assert_eq!(
            d,
            "llama.cpp order: top-k 40 → top-p 0.95 → min-p 0.05 → temperature 0.8 → sample (seed 0)"
        );
        let hf = SamplerConfig {
            order: ChainOrder::Hf,
            ..SamplerConfig::default()
        };
        assert!(hf
            .describe()
            .starts_with("hf order: temperature 0.8 → top-k 40"));
        assert_eq!(
            SamplerConfig::greedy().describe(),
            "llama.cpp order: greedy"
        );
    }

    #[test]
    fn bad_settings_name_the_flag() {
        let cases: Vec<(SamplerConfig, &str)> = vec![
            (
                SamplerConfig {
                    top_p: 0.0,
                    ..Default::default()
                },
                "top-p",
            ),
            (
                SamplerConfig {
                    top_p: 1.5,
                    ..Default::default()
                },
                "top-p",
            ),
            (
                SamplerConfig {
                    temperature: -0.1,
                    ..Default::default()
                },
                "temperature",
            ),
            (
                SamplerConfig {
                    temperature: f32::NAN,
                    ..Default::default()
                },
                "temperature",
            ),
            (
                SamplerConfig {
                    min_p: 2.0,
                    ..Default::default()
                },
                "min-p",
            ),
            (
                SamplerConfig {
                    typical_p: 0.0,
                    ..Default::default()
                },
                "typical-p",
            ),
            (
                SamplerConfig {
                    mirostat: 3,
                    ..Default::default()
                },
                "mirostat",
            ),
            (
                SamplerConfig {
                    logit_bias: vec![(1, f32::NAN)],
                    ..Default::default()
                },
                "logit-bias",
            ),
        ];
        for (config, flag) in cases {
            let e = config.validate().unwrap_err().to_string();
            assert!(e.starts_with(&format!("--{flag}:")), "{e}");
        }
        SamplerConfig::default().validate().unwrap();
    }
}
