//! Accelerators, run time, energy, cost, and model FLOPs utilisation.

use serde::Serialize;

use crate::{positive, Error, Result};

/// An accelerator: dense bf16 peak throughput and board power.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hardware {
    pub name: String,
    /// Dense (not sparse) peak FLOP/s at the training precision.
    pub peak_flops_per_second: f64,
    pub power_watts: f64,
}

/// Datasheet figures: NVIDIA A100 SXM (312 TFLOP/s bf16, 400 W), H100 SXM (989 TFLOP/s
/// dense bf16, 700 W), H200 SXM (same compute as H100, 700 W).
pub const HARDWARE: [(&str, f64, f64); 3] = [
    ("a100", 312e12, 400.0),
    ("h100", 989.4e12, 700.0),
    ("h200", 989.4e12, 700.0),
];

impl Hardware {
    /// A device from the built-in table, by case-insensitive name.
    pub fn named(name: &str) -> Result<Self> {
        let lower = name.to_ascii_lowercase();
        HARDWARE
            .iter()
            .find(|(n, _, _)| *n == lower)
            .map(|&(n, peak, power)| Hardware {
                name: n.to_string(),
                peak_flops_per_second: peak,
                power_watts: power,
            })
            .ok_or_else(|| Error::UnknownHardware(name.to_string()))
    }

    /// The device a user names: `cpu` (this machine, measured by `measure_cpu`, which the
    /// caller provides because this crate does no I/O), a peak FLOP/s such as `2e14`, or a
    /// device from the built-in table; `power_watts` overrides the board power.
    pub fn parse(
        name: &str,
        power_watts: Option<f64>,
        measure_cpu: impl FnOnce() -> f64,
    ) -> Result<Self> {
        if name.eq_ignore_ascii_case("cpu") {
            return Hardware::custom("cpu (measured)", measure_cpu(), power_watts.unwrap_or(0.0));
        }
        if let Ok(peak) = crate::parse_number(name) {
            return Hardware::custom("custom", peak, power_watts.unwrap_or(0.0));
        }
        let mut hw = Hardware::named(name).map_err(|e| Error::HardwareFlag(Box::new(e)))?;
        if let Some(w) = power_watts {
            hw.power_watts = w;
        }
        Ok(hw)
    }

    /// A device known only by its peak FLOP/s (a CPU, measured or from a datasheet).
    pub fn custom(name: &str, peak_flops_per_second: f64, power_watts: f64) -> Result<Self> {
        Ok(Hardware {
            name: name.to_string(),
            peak_flops_per_second: positive("peak FLOP/s", peak_flops_per_second)?,
            power_watts: if power_watts.is_finite() && power_watts >= 0.0 {
                power_watts
            } else {
                0.0
            },
        })
    }
}

/// Time, energy and cost of doing `flops` of work.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RunCost {
    pub seconds: f64,
    pub device_hours: f64,
    pub energy_kwh: f64,
    /// `None` without a price.
    pub cost: Option<f64>,
}

/// `seconds = flops / (peak · mfu · devices)`; energy at board power; cost at
/// `price_per_device_hour`.
pub fn run_cost(
    flops: f64,
    hardware: &Hardware,
    devices: u64,
    mfu: f64,
    price_per_device_hour: Option<f64>,
) -> Result<RunCost> {
    positive("flops", flops)?;
    if devices == 0 {
        return Err(Error::OutOfRange {
            name: "devices",
            value: 0.0,
            expected: "at least 1",
        });
    }
    if !(mfu > 0.0 && mfu <= 1.0) {
        return Err(Error::OutOfRange {
            name: "mfu",
            value: mfu,
            expected: "a fraction in (0, 1]",
        });
    }
    if let Some(p) = price_per_device_hour {
        if !(p.is_finite() && p >= 0.0) {
            return Err(Error::OutOfRange {
                name: "price per hour",
                value: p,
                expected: "a finite number ≥ 0",
            });
        }
    }
    let devices = devices as f64;
    let seconds = flops / (hardware.peak_flops_per_second * mfu * devices);
    let device_hours = seconds * devices / 3600.0;
    Ok(RunCost {
        seconds,
        device_hours,
        energy_kwh: device_hours * hardware.power_watts / 1000.0,
        cost: price_per_device_hour.map(|p| p * device_hours),
    })
}

/// Model FLOPs utilisation as PaLM defines it (Chowdhery et al. 2022, appendix B):
/// `tokens/s · (6N + 12·L·H·Q·T) / peak`, with N non-embedding parameters, L layers, H heads,
/// Q head dimension, T sequence length. Pass `layers = 0` to count only `6N`.
pub fn mfu(
    tokens_per_second: f64,
    params: f64,
    layers: u64,
    heads: u64,
    head_dim: u64,
    seq_len: u64,
    peak_flops_per_second: f64,
) -> Result<f64> {
    positive("tokens per second", tokens_per_second)?;
    positive("params", params)?;
    positive("peak FLOP/s", peak_flops_per_second)?;
    let attention = 12.0 * layers as f64 * heads as f64 * head_dim as f64 * seq_len as f64;
    Ok(tokens_per_second * (6.0 * params + attention) / peak_flops_per_second)
}
