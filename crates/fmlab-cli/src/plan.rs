//! `fmlab plan` and `fmlab plan fit`: flags, tables, JSON and the fit's plot over
//! `fmlab_scaling::plan`, `parse_runs` and `fit`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use fmlab_scaling::{
    fit, parse_runs, DeviceRequest, FitOptions, FitResult, Hardware, LawKind, PlanReport,
    PlanRequest, Run,
};
use fmlab_spec::ModelSpec;
use serde::Serialize;

use crate::numbers::{duration, put, si};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, allow_negative_numbers = true)]
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
    /// Muennighoff et al. 2023: their own fit with the decay of repeated data (the default
    /// with --unique-tokens).
    Muennighoff,
}

impl Law {
    fn kind(self) -> LawKind {
        match self {
            Law::Chinchilla => LawKind::Chinchilla,
            Law::Epoch => LawKind::Epoch,
            Law::Kaplan => LawKind::Kaplan,
            Law::Muennighoff => LawKind::Muennighoff,
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
    /// The scaling law [default: chinchilla, or muennighoff with --unique-tokens].
    #[arg(long, value_enum)]
    law: Option<Law>,
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

pub fn run(args: PlanArgs) -> Result<()> {
    match args.command {
        Some(PlanCommand::Fit(fit_args)) => run_fit(fit_args),
        None => run_plan(args.options),
    }
}

fn run_plan(o: PlanOptions) -> Result<()> {
    let spec: Option<ModelSpec> = match (&o.preset, &o.model) {
        (Some(name), _) => Some(fmlab_spec::preset(name)?),
        (None, Some(path)) => match fmlab_formats::describe(path)?.spec {
            Some(spec) => Some(spec),
            None => bail!(
                "--model {}: no architecture found (a safetensors file needs its config.json beside it)",
                path.display()
            ),
        },
        (None, None) => None,
    };
    let law = match (o.law, o.unique_tokens) {
        (Some(law), _) => law,
        (None, Some(_)) => Law::Muennighoff,
        (None, None) => Law::Chinchilla,
    };
    let request = PlanRequest {
        law: law.kind(),
        compute: o.compute,
        params: o.params,
        tokens: o.tokens,
        model: spec.as_ref(),
        unique_tokens: o.unique_tokens,
        inference_tokens: o.inference_tokens,
        device: o.hardware.as_deref().map(|name| DeviceRequest {
            hardware: name,
            power_watts: o.power_watts,
            devices: o.devices,
            mfu: o.mfu,
            price_per_hour: o.price_per_hour,
            tokens_per_second: o.tokens_per_second,
            seq_len: o.seq_len,
        }),
    };
    // This machine's CPU, measured once with f32 matrix products, when --hardware is cpu.
    let measure = || {
        let peak = fmlab_kernels::peak_flops();
        if !o.json {
            eprintln!("this CPU: {}", peak.describe());
        }
        peak.flops
    };
    let report = fmlab_scaling::plan(&request, measure)?;
    if o.json {
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&report)?))
    } else {
        crate::out(&plan_table(&report))
    }
}

fn plan_table(r: &PlanReport) -> String {
    let mut s = String::new();
    let n_kind = if r.law == LawKind::Kaplan {
        " (non-embedding)"
    } else {
        ""
    };
    put!(s, "law: {}   solved: {}", r.law.name(), r.mode.describe());
    row(&mut s, &format!("params{n_kind}"), si(r.params), "");
    row(&mut s, "tokens", si(r.tokens), "");
    row(
        &mut s,
        "tokens per param",
        format!("{:.1}", r.tokens_per_param),
        "",
    );
    row(
        &mut s,
        "compute (6ND)",
        format!("{:.3e}", r.flops),
        " FLOPs",
    );
    row(
        &mut s,
        "predicted loss",
        format!("{:.4}", r.loss),
        " nats/token",
    );
    if let Some(d) = &r.data_constrained {
        let p = &d.point;
        let (rd, rn) = (d.r_star_tokens, d.r_star_params);
        put!(
            s,
            "\ndata-constrained (Muennighoff et al.: R*_D {rd:.2}, R*_N {rn:.2})"
        );
        row(&mut s, "unique tokens", si(p.unique_tokens), "");
        row(&mut s, "epochs", format!("{:.2}", p.epochs), "");
        row(&mut s, "effective tokens D′", si(p.effective_tokens), "");
        row(&mut s, "effective params N′", si(p.effective_params), "");
        let unlimited = format!("  (unlimited data: {:.4})", d.unconstrained_loss);
        row(&mut s, "loss", format!("{:.4}", p.loss), &unlimited);
    }
    if let Some(i) = &r.inference {
        let (tokens, loss) = (si(i.inference_tokens), i.target_loss);
        put!(
            s,
            "\ninference-aware (Sardana et al.), {tokens} inference tokens, same loss {loss:.4}"
        );
        let mut pair = |label: &str, ours: String, optimal: String, suffix: &str| {
            row(&mut s, label, ours, &format!(" {optimal:>12}{suffix}"))
        };
        pair("", "this model".into(), "Chinchilla-optimal".into(), "");
        pair("params", si(i.params), si(i.chinchilla.params), "");
        pair(
            "training tokens",
            si(i.train_tokens),
            si(i.chinchilla.tokens),
            "",
        );
        let (c, c_opt) = (i.total_flops, i.chinchilla_total_flops);
        pair(
            "training + inference",
            format!("{c:.3e}"),
            format!("{c_opt:.3e}"),
            " FLOPs",
        );
        let saving = 100.0 * (1.0 - c / c_opt);
        row(&mut s, "saving", format!("{saving:.1}%"), "");
    }
    if let Some(h) = &r.hardware {
        hardware_table(&mut s, r, h);
    }
    s
}

/// `  label                    value` with the value right-aligned in 12 columns.
fn row(s: &mut String, label: &str, value: String, suffix: &str) {
    put!(s, "  {label:<24} {value:>12}{suffix}");
}

fn hardware_table(s: &mut String, r: &PlanReport, h: &Hardware) {
    put!(
        s,
        "\non {} × {} ({} FLOP/s peak each, {} W) at {:.0}% MFU",
        r.devices.unwrap_or(1),
        h.name,
        si(h.peak_flops_per_second),
        h.power_watts,
        100.0 * r.assumed_mfu.unwrap_or(0.0)
    );
    if let Some(sec) = r.seconds {
        row(s, "wall-clock time", duration(sec), "");
    }
    if let Some(dh) = r.device_hours {
        row(s, "device-hours", format!("{dh:.1}"), "");
    }
    match r.energy_kwh {
        Some(e) if h.power_watts > 0.0 => row(s, "energy", format!("{e:.1}"), " kWh"),
        _ => put!(s, "  energy                   (give --power-watts)"),
    }
    match r.cost {
        Some(Some(c)) => row(s, "cost", format!("{c:.2}"), ""),
        _ => put!(s, "  cost                     (give --price-per-hour)"),
    }
    if let Some(m) = r.measured_mfu {
        row(s, "measured MFU", format!("{:.1}%", 100.0 * m), "");
        if m > 1.0 {
            let why = "the throughput, the model or the peak FLOP/s is not the one measured";
            put!(s, "  (above 100%: {why})");
        }
    }
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
    let seconds = elapsed.as_secs_f64();
    let (runs, starts) = (result.runs, result.starts);
    put!(
        s,
        "fitted L(N, D) = E + A/N^α + B/D^β to {runs} runs ({starts} starts, {seconds:.1} s)"
    );
    for (name, value) in [
        ("E", l.e),
        ("A", l.a),
        ("B", l.b),
        ("α", l.alpha),
        ("β", l.beta),
    ] {
        put!(s, "  {name}     {value:>12.4}");
    }
    let (a, b) = (result.a, result.b);
    put!(
        s,
        "implied compute-optimal scaling: N_opt ∝ C^{a:.3}, D_opt ∝ C^{b:.3}"
    );
    put!(s, "Huber objective {:.3e}", result.objective);
    put!(s, "plot: {}", plot_path.display());
    crate::out(&s)
}

/// The runs of a CSV file (`fmlab_scaling::parse_runs` says which).
fn read_runs(path: &Path) -> Result<Vec<Run>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(parse_runs(&text, &path.display().to_string())?)
}

fn write_fit_plot(runs: &[Run], result: &FitResult, path: &Path) -> Result<()> {
    let points: Vec<(f64, f64)> = runs
        .iter()
        .map(|r| (6.0 * r.params * r.tokens, r.loss))
        .collect();
    let curve = result.frontier(runs, 200);
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
