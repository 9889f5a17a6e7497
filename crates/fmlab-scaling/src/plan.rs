//! The compute planner: from any two of compute, parameters and tokens (or one of them, the
//! rest compute-optimal) to a plan under a law, with the data-constrained and
//! inference-aware views and the time, energy, cost and MFU on a device.

use fmlab_spec::ModelSpec;
use serde::Serialize;

use crate::{
    inference_optimal, mfu, run_cost, Allocation, DataConstrained, DataConstrainedPoint, Error,
    Hardware, InferenceOptimum, LawKind, ParametricLaw, Result, DATA_CONSTRAINED, MUENNIGHOFF,
};

/// What to plan. `params` given explicitly wins over the model's; with neither compute,
/// params, tokens nor a model there is nothing to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    pub law: LawKind,
    /// Training compute in FLOPs.
    pub compute: Option<f64>,
    pub params: Option<f64>,
    pub tokens: Option<f64>,
    /// The architecture (a preset or a model file): N when `params` is not given, and the
    /// attention term of the measured MFU.
    pub model: Option<&'a ModelSpec>,
    /// Unique tokens available: repeats are discounted (Muennighoff et al. 2023).
    pub unique_tokens: Option<f64>,
    /// Lifetime inference tokens: the least training + inference compute at the plan's loss.
    pub inference_tokens: Option<f64>,
    pub device: Option<DeviceRequest<'a>>,
}

/// Where the plan runs: a device name for [`Hardware::parse`] and how it is used.
#[derive(Debug, Clone)]
pub struct DeviceRequest<'a> {
    pub hardware: &'a str,
    pub power_watts: Option<f64>,
    pub devices: u64,
    /// Model FLOPs utilisation assumed for time and cost.
    pub mfu: f64,
    pub price_per_hour: Option<f64>,
    /// Measured training throughput: the MFU it implies is reported.
    pub tokens_per_second: Option<f64>,
    /// Sequence length for the MFU attention term (default: the model's context).
    pub seq_len: Option<u64>,
}

/// What was solved for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Solved {
    #[serde(rename = "compute-optimal")]
    ComputeOptimal,
    #[serde(rename = "compute-optimal under limited data")]
    ComputeOptimalLimitedData,
    #[serde(rename = "compute-optimal tokens for the given params")]
    TokensForParams,
    #[serde(rename = "compute-optimal params for the given tokens")]
    ParamsForTokens,
    #[serde(rename = "given params and tokens")]
    Given,
    #[serde(rename = "tokens that use the compute")]
    TokensForCompute,
    #[serde(rename = "params that use the compute")]
    ParamsForCompute,
}

impl Solved {
    pub fn describe(self) -> &'static str {
        match self {
            Solved::ComputeOptimal => "compute-optimal",
            Solved::ComputeOptimalLimitedData => "compute-optimal under limited data",
            Solved::TokensForParams => "compute-optimal tokens for the given params",
            Solved::ParamsForTokens => "compute-optimal params for the given tokens",
            Solved::Given => "given params and tokens",
            Solved::TokensForCompute => "tokens that use the compute",
            Solved::ParamsForCompute => "params that use the compute",
        }
    }
}

/// A plan; fields after `tokens_per_param` are present only when asked for.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub law: LawKind,
    /// What was solved for.
    pub mode: Solved,
    pub params: f64,
    pub tokens: f64,
    pub flops: f64,
    pub loss: f64,
    pub tokens_per_param: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_constrained: Option<DataConstrainedReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceOptimum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Hardware>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assumed_mfu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_hours: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_kwh: Option<f64>,
    /// Present (possibly null) whenever hardware is given; null without a price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_mfu: Option<f64>,
}

/// The plan under limited unique data.
#[derive(Debug, Clone, Serialize)]
pub struct DataConstrainedReport {
    #[serde(flatten)]
    pub point: DataConstrainedPoint,
    /// The plan's loss had the data been unlimited.
    pub unconstrained_loss: f64,
    /// The decay constants used: `R*_D` (repeated tokens) and `R*_N` (excess parameters).
    pub r_star_tokens: f64,
    pub r_star_params: f64,
}

/// Plans a run. `measure_cpu` gives this machine's peak FLOP/s when the device is `cpu`
/// (the caller measures; this crate does no I/O).
pub fn plan(request: &PlanRequest, measure_cpu: impl FnOnce() -> f64) -> Result<PlanReport> {
    let law = request.law;
    // Kaplan's law counts non-embedding parameters; the others count all of them.
    let params = request.params.or_else(|| {
        request.model.map(|s| {
            let p = s.params();
            match law {
                LawKind::Kaplan => p.non_embedding as f64,
                _ => p.total as f64,
            }
        })
    });
    let (mode, allocation) = allocate(request, params)?;
    let data_constrained = match request.unique_tokens {
        Some(u) => {
            let dc = data_law(law)?;
            Some(DataConstrainedReport {
                point: dc.point(allocation.params, allocation.tokens, u)?,
                unconstrained_loss: dc.base.loss(allocation.params, allocation.tokens)?,
                r_star_tokens: dc.r_star_tokens,
                r_star_params: dc.r_star_params,
            })
        }
        None => None,
    };
    let inference = match request.inference_tokens {
        Some(t) => {
            let base = parametric(law, "--inference-tokens")?;
            let target = base.loss(allocation.params, allocation.tokens)?;
            Some(inference_optimal(&base, target, t)?)
        }
        None => None,
    };
    let mut report = PlanReport {
        law,
        mode,
        params: allocation.params,
        tokens: allocation.tokens,
        flops: allocation.flops,
        loss: data_constrained
            .as_ref()
            .map_or(allocation.loss, |d| d.point.loss),
        tokens_per_param: allocation.tokens_per_param,
        data_constrained,
        inference,
        hardware: None,
        devices: None,
        assumed_mfu: None,
        seconds: None,
        device_hours: None,
        energy_kwh: None,
        cost: None,
        measured_mfu: None,
    };
    if let Some(device) = &request.device {
        on_device(&mut report, device, request.model, measure_cpu)?;
    }
    Ok(report)
}

/// The C/N/D dispatch: which of compute, params and tokens are given decides what is solved.
fn allocate(request: &PlanRequest, params: Option<f64>) -> Result<(Solved, Allocation)> {
    let law = request.law;
    Ok(match (request.compute, params, request.tokens) {
        (Some(c), None, None) => match request.unique_tokens {
            Some(u) => (
                Solved::ComputeOptimalLimitedData,
                data_law(law)?.optimal(c, u)?,
            ),
            None => (Solved::ComputeOptimal, law.optimal(c)?),
        },
        (None, Some(n), None) => (Solved::TokensForParams, law.optimal_for_params(n)?),
        (None, None, Some(d)) => (Solved::ParamsForTokens, law.optimal_for_tokens(d)?),
        (None, Some(n), Some(d)) => (Solved::Given, given(law, n, d)?),
        (Some(c), Some(n), None) => (Solved::TokensForCompute, given(law, n, c / (6.0 * n))?),
        (Some(c), None, Some(d)) => (Solved::ParamsForCompute, given(law, c / (6.0 * d), d)?),
        (Some(_), Some(_), Some(_)) => return Err(Error::OverDetermined),
        (None, None, None) => return Err(Error::NothingToPlan),
    })
}

/// Time, energy, cost and measured MFU of the plan on a device.
fn on_device(
    report: &mut PlanReport,
    device: &DeviceRequest,
    model: Option<&ModelSpec>,
    measure_cpu: impl FnOnce() -> f64,
) -> Result<()> {
    let hardware = Hardware::parse(device.hardware, device.power_watts, measure_cpu)?;
    let cost = run_cost(
        report.flops,
        &hardware,
        device.devices,
        device.mfu,
        device.price_per_hour,
    )?;
    if let Some(tps) = device.tokens_per_second {
        let peak = hardware.peak_flops_per_second * device.devices as f64;
        report.measured_mfu = Some(match model {
            Some(s) => {
                let seq = device.seq_len.unwrap_or(s.context_length);
                mfu(
                    tps,
                    s.params().non_embedding as f64,
                    s.n_layers,
                    s.n_heads,
                    s.head_dim,
                    seq,
                    peak,
                )?
            }
            None => mfu(tps, report.params, 0, 0, 0, 0, peak)?,
        });
    }
    report.devices = Some(device.devices);
    report.assumed_mfu = Some(device.mfu);
    report.seconds = Some(cost.seconds);
    report.device_hours = Some(cost.device_hours);
    report.energy_kwh = Some(cost.energy_kwh);
    report.cost = Some(cost.cost);
    report.hardware = Some(hardware);
    Ok(())
}

/// The law's parametric form, which `flag` needs.
fn parametric(law: LawKind, flag: &'static str) -> Result<ParametricLaw> {
    law.parametric().ok_or(Error::NeedsParametric(flag))
}

/// The data-constrained law of `law`: Muennighoff et al.'s own fit, or their decay
/// constants over another parametric law.
fn data_law(law: LawKind) -> Result<DataConstrained> {
    Ok(match law {
        LawKind::Muennighoff => MUENNIGHOFF,
        other => DataConstrained {
            base: parametric(other, "--unique-tokens")?,
            ..DATA_CONSTRAINED
        },
    })
}

fn given(law: LawKind, params: f64, tokens: f64) -> Result<Allocation> {
    Ok(Allocation::new(params, tokens, law.loss(params, tokens)?))
}
