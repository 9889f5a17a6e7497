//! `fmlab plan` and `fmlab plan fit`: the scaling laws of fmlab-scaling made usable.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use fmlab_scaling::{
    fit, inference_optimal, mfu, run_cost, Allocation, DataConstrainedPoint, FitOptions, FitResult,
    Hardware, InferenceOptimum, LawKind, ParametricLaw, Run, RunCost, CHINCHILLA, DATA_CONSTRAINED,
    EPOCH,
};
use fmlab_spec::ModelSpec;
use serde::Serialize;

use crate::numbers::{duration, si};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PlanArgs {
    #[command(subcommand)]
    command: Option<PlanCommand>,
    #[command(flatten)]
    options: PlanOptions,
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Fit L(N, D) = E + A/N^α + B/D^β to your own runs (CSV with params,tokens,loss)
    /// and plot loss against compute with the fitted frontier.
    Fit(FitArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Law {
    /// Hoffmann et al. 2022, approach 3 as printed.
    Chinchilla,
    /// The Epoch AI refit of Chinchilla's data (Besiroglu et al. 2024).
    Epoch,
    /// Kaplan et al. 2020 (N counts non-embedding parameters).
    Kaplan,
}

impl Law {
    fn kind(self) -> LawKind {
        match self {
            Law::Chinchilla => LawKind::Chinchilla,
            Law::Epoch => LawKind::Epoch,
            Law::Kaplan => LawKind::Kaplan,
        }
    }

    fn parametric(self) -> Option<ParametricLaw> {
        match self {
            Law::Chinchilla => Some(CHINCHILLA),
            Law::Epoch => Some(EPOCH),
            Law::Kaplan => None,
        }
    }
}

#[derive(Args)]
struct PlanOptions {
    /// Training compute budget in FLOPs (1e21, 5.76e23, …).
    #[arg(long, value_parser = crate::numbers::positive)]
    compute: Option<f64>,
    /// Model parameters (7B, 135M, …).
    #[arg(long, value_parser = crate::numbers::positive, conflicts_with_all = ["preset", "model"])]
    params: Option<f64>,
    /// Training tokens (1.4T, 300B, …).
    #[arg(long, value_parser = crate::numbers::positive)]
    tokens: Option<f64>,
    /// Take N (and the architecture, for MFU) from a built-in preset.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(fmlab_spec::PRESET_NAMES), conflicts_with = "model")]
    preset: Option<String>,
    /// Take N (and the architecture, for MFU) from a model file or folder.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The scaling law.
    #[arg(long, value_enum, default_value = "chinchilla")]
    law: Law,
    /// Unique tokens available: repeats are discounted (Muennighoff et al. 2023).
    #[arg(long, value_parser = crate::numbers::positive)]
    unique_tokens: Option<f64>,
    /// Tokens the model will generate or read in its lifetime: find the model with the
    /// least training + inference compute at the plan's loss (Sardana et al. 2023).
    #[arg(long, value_parser = crate::numbers::positive)]
    inference_tokens: Option<f64>,
    /// a100, h100, h200, cpu (measured here), or a peak FLOP/s such as 2e14.
    #[arg(long)]
    hardware: Option<String>,
    /// Devices working together.
    #[arg(long, default_value = "1", value_parser = crate::numbers::count)]
    devices: u64,
    /// Model FLOPs utilisation assumed for time and cost, in (0, 1].
    #[arg(long, default_value = "0.4", value_parser = crate::numbers::fraction)]
    mfu: f64,
    /// Price of one device-hour, for the cost.
    #[arg(long, value_parser = crate::numbers::positive)]
    price_per_hour: Option<f64>,
    /// Board power of a custom device in watts (the built-in ones are known).
    #[arg(long, value_parser = crate::numbers::positive)]
    power_watts: Option<f64>,
    /// Measured training throughput: report the MFU it implies on --hardware (PaLM's
    /// definition, with the attention term when the architecture is known).
    #[arg(long, value_parser = crate::numbers::positive, requires = "hardware")]
    tokens_per_second: Option<f64>,
    /// Sequence length for the MFU attention term (default: the model's context, or 2048).
    #[arg(long, value_parser = crate::numbers::count)]
    seq_len: Option<u64>,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct FitArgs {
    /// CSV with a header naming the columns params, tokens and loss (others are ignored).
    runs: PathBuf,
    /// Where to write the plot (default: RUNS with the extension .fit.png).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct PlanReport {
    law: &'static str,
    /// What was solved for.
    mode: &'static str,
    params: f64,
    tokens: f64,
    flops: f64,
    loss: f64,
    tokens_per_param: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_constrained: Option<DataConstrainedReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inference: Option<InferenceOptimum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hardware: Option<Hardware>,
    #[serde(skip_serializing_if = "Option::is_none")]
    devices: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assumed_mfu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_hours: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    energy_kwh: Option<f64>,
    /// Present (possibly null) whenever hardware is given; null without a price.
    #[serde(skip_serializing_if = "Option::is_none")]
    cost: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    measured_mfu: Option<f64>,
}

#[derive(Serialize)]
struct DataConstrainedReport {
    #[serde(flatten)]
    point: DataConstrainedPoint,
    /// The plan's loss had the data been unlimited.
    unconstrained_loss: f64,
}

pub fn run(args: PlanArgs) -> Result<()> {
    match args.command {
        Some(PlanCommand::Fit(fit_args)) => run_fit(fit_args),
        None => run_plan(args.options),
    }
}

fn run_plan(o: PlanOptions) -> Result<()> {
    let law = o.law.kind();
    let spec: Option<ModelSpec> = match (&o.preset, &o.model) {
        (Some(name), _) => Some(fmlab_spec::preset(name)?),
        (None, Some(path)) => match crate::inspect::load(path)? {
            (Some(spec), _) => Some(spec),
            (None, _) => bail!(
                "--model {}: no architecture found (a safetensors file needs its config.json beside it)",
                path.display()
            ),
        },
        (None, None) => None,
    };
    // Kaplan's law counts non-embedding parameters; the others count all of them.
    let params_given = o.params.or_else(|| {
        spec.as_ref().map(|s| {
            let p = s.params();
            match o.law {
                Law::Kaplan => p.non_embedding as f64,
                _ => p.total as f64,
            }
        })
    });
    let needs_parametric = |flag: &str| -> Result<ParametricLaw> {
        o.law.parametric().with_context(|| {
            format!("{flag} needs a law of the form E + A/N^α + B/D^β: use --law chinchilla or --law epoch")
        })
    };

    let (mode, allocation): (&'static str, Allocation) = match (o.compute, params_given, o.tokens) {
        (Some(c), None, None) => match o.unique_tokens {
            Some(u) => (
                "compute-optimal under limited data",
                data_constrained(needs_parametric("--unique-tokens")?).optimal(c, u)?,
            ),
            None => ("compute-optimal", law.optimal(c)?),
        },
        (None, Some(n), None) => (
            "compute-optimal tokens for the given params",
            law.optimal_for_params(n)?,
        ),
        (None, None, Some(d)) => (
            "compute-optimal params for the given tokens",
            law.optimal_for_tokens(d)?,
        ),
        (None, Some(n), Some(d)) => ("given params and tokens", given(law, n, d)?),
        (Some(c), Some(n), None) => ("tokens that use the compute", given(law, n, c / (6.0 * n))?),
        (Some(c), None, Some(d)) => ("params that use the compute", given(law, c / (6.0 * d), d)?),
        (Some(_), Some(_), Some(_)) => {
            bail!("give at most two of --compute, --params (or --preset/--model) and --tokens: the third follows from C = 6ND")
        }
        (None, None, None) => {
            bail!("give --compute, --params, --tokens or a model (--preset/--model); see `fmlab plan --help`")
        }
    };

    let data_constrained = match o.unique_tokens {
        Some(u) => {
            let base = needs_parametric("--unique-tokens")?;
            let dc = data_constrained(base);
            Some(DataConstrainedReport {
                point: dc.point(allocation.params, allocation.tokens, u)?,
                unconstrained_loss: base.loss(allocation.params, allocation.tokens)?,
            })
        }
        None => None,
    };
    let inference = match o.inference_tokens {
        Some(t) => {
            let base = needs_parametric("--inference-tokens")?;
            let target = base.loss(allocation.params, allocation.tokens)?;
            Some(inference_optimal(&base, target, t)?)
        }
        None => None,
    };

    let mut report = PlanReport {
        law: law.name(),
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

    if let Some(name) = &o.hardware {
        let hardware = hardware(name, o.power_watts, o.json)?;
        let cost: RunCost = run_cost(
            allocation.flops,
            &hardware,
            o.devices,
            o.mfu,
            o.price_per_hour,
        )?;
        if let Some(tps) = o.tokens_per_second {
            let peak = hardware.peak_flops_per_second * o.devices as f64;
            report.measured_mfu = Some(match &spec {
                Some(s) => {
                    let seq = o.seq_len.unwrap_or(s.context_length);
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
                None => mfu(tps, allocation.params, 0, 0, 0, 0, peak)?,
            });
        }
        report.devices = Some(o.devices);
        report.assumed_mfu = Some(o.mfu);
        report.seconds = Some(cost.seconds);
        report.device_hours = Some(cost.device_hours);
        report.energy_kwh = Some(cost.energy_kwh);
        report.cost = Some(cost.cost);
        report.hardware = Some(hardware);
    }

    if o.json {
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&report)?))
    } else {
        crate::out(&plan_table(&report, &o))
    }
}

/// The data-constrained law over the chosen base law.
fn data_constrained(base: ParametricLaw) -> fmlab_scaling::DataConstrained {
    fmlab_scaling::DataConstrained {
        base,
        ..DATA_CONSTRAINED
    }
}

fn given(law: LawKind, params: f64, tokens: f64) -> Result<Allocation> {
    Ok(Allocation {
        params,
        tokens,
        flops: 6.0 * params * tokens,
        loss: law.loss(params, tokens)?,
        tokens_per_param: tokens / params,
    })
}

/// The named device, a peak FLOP/s, or this machine's CPU measured with f32 matrix products.
fn hardware(name: &str, power_watts: Option<f64>, quiet: bool) -> Result<Hardware> {
    if name.eq_ignore_ascii_case("cpu") {
        let peak = fmlab_kernels::measure_peak_flops();
        if !quiet {
            eprintln!(
                "measured this CPU at {} FLOP/s (f32 matrix products, all threads)",
                si(peak)
            );
        }
        return Ok(Hardware::custom(
            "cpu (measured)",
            peak,
            power_watts.unwrap_or(0.0),
        )?);
    }
    if let Ok(peak) = crate::numbers::parse_number(name) {
        return Ok(Hardware::custom(
            "custom",
            peak,
            power_watts.unwrap_or(0.0),
        )?);
    }
    let mut hw = Hardware::named(name).map_err(|e| anyhow::anyhow!("--hardware: {e}"))?;
    if let Some(w) = power_watts {
        hw.power_watts = w;
    }
    Ok(hw)
}

fn plan_table(r: &PlanReport, o: &PlanOptions) -> String {
    let mut s = String::new();
    let n_kind = if r.law == "kaplan" {
        " (non-embedding)"
    } else {
        ""
    };
    let _ = writeln!(s, "law: {}   solved: {}", r.law, r.mode);
    let _ = writeln!(s, "  params{n_kind:<18} {:>12}", si(r.params));
    let _ = writeln!(s, "  tokens                   {:>12}", si(r.tokens));
    let _ = writeln!(s, "  tokens per param         {:>12.1}", r.tokens_per_param);
    let _ = writeln!(s, "  compute (6ND)            {:>12.3e} FLOPs", r.flops);
    let _ = writeln!(s, "  predicted loss           {:>12.4} nats/token", r.loss);
    if let Some(d) = &r.data_constrained {
        let p = &d.point;
        let _ = writeln!(
            s,
            "\ndata-constrained (Muennighoff et al.: R*_D 15.39, R*_N 5.31)"
        );
        let _ = writeln!(s, "  unique tokens            {:>12}", si(p.unique_tokens));
        let _ = writeln!(s, "  epochs                   {:>12.2}", p.epochs);
        let _ = writeln!(
            s,
            "  effective tokens D′      {:>12}",
            si(p.effective_tokens)
        );
        let _ = writeln!(
            s,
            "  effective params N′      {:>12}",
            si(p.effective_params)
        );
        let _ = writeln!(
            s,
            "  loss                     {:>12.4}  (unlimited data: {:.4})",
            p.loss, d.unconstrained_loss
        );
    }
    if let Some(i) = &r.inference {
        let _ = writeln!(
            s,
            "\ninference-aware (Sardana et al.), {} inference tokens, same loss {:.4}",
            si(i.inference_tokens),
            i.target_loss
        );
        let _ = writeln!(
            s,
            "                           {:>12} {:>12}",
            "this model", "Chinchilla-optimal"
        );
        let _ = writeln!(
            s,
            "  params                   {:>12} {:>12}",
            si(i.params),
            si(i.chinchilla.params)
        );
        let _ = writeln!(
            s,
            "  training tokens          {:>12} {:>12}",
            si(i.train_tokens),
            si(i.chinchilla.tokens)
        );
        let _ = writeln!(
            s,
            "  training + inference     {:>12.3e} {:>12.3e} FLOPs",
            i.total_flops, i.chinchilla_total_flops
        );
        let saving = 100.0 * (1.0 - i.total_flops / i.chinchilla_total_flops);
        let _ = writeln!(s, "  saving                   {saving:>11.1}%");
    }
    if let Some(h) = &r.hardware {
        let _ = writeln!(
            s,
            "\non {} × {} ({} FLOP/s peak each, {} W) at {:.0}% MFU",
            r.devices.unwrap_or(1),
            h.name,
            si(h.peak_flops_per_second),
            h.power_watts,
            100.0 * o.mfu
        );
        if let Some(sec) = r.seconds {
            let _ = writeln!(s, "  wall-clock time          {:>12}", duration(sec));
        }
        if let Some(dh) = r.device_hours {
            let _ = writeln!(s, "  device-hours             {:>12.1}", dh);
        }
        match r.energy_kwh {
            Some(e) if h.power_watts > 0.0 => {
                let _ = writeln!(s, "  energy                   {:>12.1} kWh", e);
            }
            _ => {
                let _ = writeln!(s, "  energy                   (give --power-watts)");
            }
        }
        match r.cost {
            Some(Some(c)) => {
                let _ = writeln!(s, "  cost                     {:>12.2}", c);
            }
            _ => {
                let _ = writeln!(s, "  cost                     (give --price-per-hour)");
            }
        }
        if let Some(m) = r.measured_mfu {
            let _ = writeln!(s, "  measured MFU             {:>11.1}%", 100.0 * m);
            if m > 1.0 {
                let _ = writeln!(
                    s,
                    "  (above 100%: the throughput, the model or the peak FLOP/s is not the one measured)"
                );
            }
        }
    }
    s
}

#[derive(Serialize)]
struct FitReport {
    #[serde(flatten)]
    fit: FitResult,
    plot: PathBuf,
}

fn run_fit(args: FitArgs) -> Result<()> {
    let runs = read_runs(&args.runs)?;
    let started = Instant::now();
    let result = fit(&runs, &FitOptions::default())?;
    let elapsed = started.elapsed();
    let plot_path = args
        .plot
        .clone()
        .unwrap_or_else(|| args.runs.with_extension("fit.png"));
    write_fit_plot(&runs, &result, &plot_path)?;
    if args.json {
        let report = FitReport {
            fit: result,
            plot: plot_path,
        };
        return crate::out(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    }
    let l = result.law;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "fitted L(N, D) = E + A/N^α + B/D^β to {} runs ({} starts, {:.1} s)",
        result.runs,
        result.starts,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(s, "  E     {:>12.4}", l.e);
    let _ = writeln!(s, "  A     {:>12.4}", l.a);
    let _ = writeln!(s, "  B     {:>12.4}", l.b);
    let _ = writeln!(s, "  α     {:>12.4}", l.alpha);
    let _ = writeln!(s, "  β     {:>12.4}", l.beta);
    let _ = writeln!(
        s,
        "implied compute-optimal scaling: N_opt ∝ C^{:.3}, D_opt ∝ C^{:.3}",
        result.a, result.b
    );
    let _ = writeln!(s, "Huber objective {:.3e}", result.objective);
    let _ = writeln!(s, "plot: {}", plot_path.display());
    crate::out(&s)
}

/// Reads `params,tokens,loss` rows (any column order, header required, `#` comments).
fn read_runs(path: &Path) -> Result<Vec<Run>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((_, header)) = lines.next() else {
        bail!(
            "{}: empty file (expected a header with params,tokens,loss)",
            path.display()
        );
    };
    let columns: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let find = |name: &str| {
        columns.iter().position(|c| c == name).with_context(|| {
            format!(
                "{}: the header has no {name:?} column (found {columns:?})",
                path.display()
            )
        })
    };
    let (pi, ti, li) = (find("params")?, find("tokens")?, find("loss")?);
    let mut runs = Vec::new();
    for (index, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cell = |i: usize, name: &str| -> Result<f64> {
            let text = cells.get(i).with_context(|| {
                format!(
                    "{}:{}: missing the {name} column",
                    path.display(),
                    index + 1
                )
            })?;
            crate::numbers::parse_number(text)
                .map_err(|e| anyhow::anyhow!("{}:{}: {name}: {e}", path.display(), index + 1))
        };
        runs.push(Run {
            params: cell(pi, "params")?,
            tokens: cell(ti, "tokens")?,
            loss: cell(li, "loss")?,
        });
    }
    Ok(runs)
}

fn write_fit_plot(runs: &[Run], result: &FitResult, path: &Path) -> Result<()> {
    let points: Vec<(f64, f64)> = runs
        .iter()
        .map(|r| (6.0 * r.params * r.tokens, r.loss))
        .collect();
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &(c, _)| {
            (lo.min(c), hi.max(c))
        });
    let curve: Vec<(f64, f64)> = (0..=200)
        .filter_map(|i| {
            let c = (lo / 2.0) * (hi * 2.0 / (lo / 2.0)).powf(i as f64 / 200.0);
            result.law.optimal(c).ok().map(|a| (c, a.loss))
        })
        .collect();
    let l = result.law;
    let title = format!(
        "L = {:.3} + {:.1}/N^{:.3} + {:.1}/D^{:.3}",
        l.e, l.a, l.alpha, l.b, l.beta
    );
    crate::plot::LogXPlot {
        title: &title,
        x_label: "training compute C = 6ND (FLOPs)",
        y_label: "loss (nats/token)",
        points: &points,
        points_label: "runs",
        curve: &curve,
        curve_label: "fitted compute-optimal frontier",
    }
    .write_png(path)
}
