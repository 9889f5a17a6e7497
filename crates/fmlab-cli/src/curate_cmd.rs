//! `fmlab curate`: the curation pipeline over input files (a recipe, a TOML file or a list
//! of blocks), by rank and world size or all here, or as Slurm array jobs; its report as
//! report.json and report.html. `train-classifier` and `mix` are its two companions.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use fmlab_curate::pipeline::slurm::{scripts, submit_script, SlurmOptions};
use fmlab_curate::pipeline::{
    build_block, input::list_inputs, BlockSpec, Curation, Event, PipelineSpec, RunOptions,
};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CurateArgs {
    #[command(subcommand)]
    command: Option<CurateCommand>,
    /// Input files or folders: JSONL (.jsonl, .gz, .zst), Parquet, WARC/WET, plain text.
    inputs: Vec<PathBuf>,
    /// Output folder: output/ (kept documents), attributes/ (every decision), report.json,
    /// report.html, work/ (stage files and completion markers).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A named pipeline: fineweb (language → Gopher repetition → Gopher quality → C4 →
    /// FineWeb → MinHash), fineweb-filters (the four quality filters), minhash.
    #[arg(long, conflicts_with_all = ["config", "blocks"])]
    recipe: Option<String>,
    /// A pipeline as a TOML file (blocks in order with their options; input and output).
    #[arg(long, conflicts_with = "blocks")]
    config: Option<PathBuf>,
    /// Blocks in order with their default options, e.g. language,gopher_quality,minhash
    /// (`--list-blocks` names them).
    #[arg(long, value_delimiter = ',')]
    blocks: Vec<String>,
    /// The input field holding the text (JSONL, Parquet).
    #[arg(long)]
    text_field: Option<String>,
    /// The input field holding the id.
    #[arg(long)]
    id_field: Option<String>,
    /// Output format: jsonl or parquet (default: the config's, else jsonl).
    #[arg(long)]
    output_format: Option<String>,
    /// Output compression: zstd, gzip or none (default: the config's, else zstd).
    #[arg(long)]
    compression: Option<String>,
    /// A new output shard starts past this size (e.g. 1GB).
    #[arg(long, value_parser = crate::numbers::byte_size)]
    max_shard_size: Option<u64>,
    /// Name the block kinds and exit.
    #[arg(long)]
    list_blocks: bool,
    /// This process's rank (0-based); without it every rank runs here in turn.
    #[arg(long)]
    rank: Option<usize>,
    /// Ranks sharing the input files (file i goes to rank i mod W).
    #[arg(long, default_value = "1")]
    world_size: usize,
    /// Run this stage only (`--plan` names the stages).
    #[arg(long)]
    stage: Option<String>,
    /// Print the stages and their parts, then exit.
    #[arg(long)]
    plan: bool,
    /// Tag only: drop nothing, write every document and every decision (a mix can then be
    /// cut from the attributes without running the filters again).
    #[arg(long)]
    dry_run: bool,
    /// Threads (0: every core).
    #[arg(long, default_value = "0")]
    threads: usize,
    /// Write an sbatch array script per stage, chained by job dependencies, into
    /// OUT/slurm/, and submit them when `sbatch` is on PATH (unless --no-submit).
    #[arg(long)]
    slurm: bool,
    /// With --slurm: write the scripts only.
    #[arg(long, requires = "slurm")]
    no_submit: bool,
    /// With --slurm: the partition.
    #[arg(long, requires = "slurm")]
    partition: Option<String>,
    /// With --slurm: the time limit per task (e.g. 2:00:00).
    #[arg(long, requires = "slurm")]
    time: Option<String>,
    /// With --slurm: memory per task (e.g. 8G).
    #[arg(long, requires = "slurm")]
    mem: Option<String>,
    /// With --slurm: CPUs per task (and threads per task).
    #[arg(long, requires = "slurm", default_value = "1")]
    cpus_per_task: usize,
    /// Print report.json on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum CurateCommand {
    /// Train a fastText-style classifier (hashed word and character n-grams) on labelled
    /// JSONL, for `kind = "classifier"` blocks.
    TrainClassifier(crate::curate_mix::TrainClassifierArgs),
    /// Cut a training set from curated documents by target shares or token counts per
    /// language and domain, up- or down-sampling with stated epochs.
    Mix(crate::curate_mix::MixArgs),
}

pub fn run(args: CurateArgs) -> Result<()> {
    match args.command {
        Some(CurateCommand::Mix(a)) => return crate::curate_mix::mix(a),
        Some(CurateCommand::TrainClassifier(a)) => return crate::curate_mix::train_classifier(a),
        None => {}
    }
    if args.list_blocks {
        for (kind, what) in fmlab_curate::pipeline::BLOCK_KINDS {
            println!("{kind:<20} {what}");
        }
        return Ok(());
    }
    let spec = pipeline_spec(&args)?;
    let curation = Curation::new(spec, &build_block)?;
    if args.plan {
        for (i, s) in curation.stages(args.world_size).iter().enumerate() {
            println!(
                "{i:>2}  {:<28} {} part{}",
                s.name,
                s.parts,
                if s.parts == 1 { "" } else { "s" }
            );
        }
        return Ok(());
    }
    let Some(out) = args.out.clone() else {
        bail!("--out DIR is required")
    };
    if args.inputs.is_empty() {
        bail!("name the input files or folders");
    }
    let absolute: Vec<PathBuf> = args
        .inputs
        .iter()
        .map(|p| std::fs::canonicalize(p).with_context(|| format!("{}", p.display())))
        .collect::<Result<_>>()?;
    let inputs = list_inputs(&absolute)?;
    if args.slurm {
        return slurm(&args, &curation, &out, &absolute);
    }
    let bar = Bar::new(args.json);
    let progress = |e: Event| bar.event(e);
    let opts = RunOptions {
        out: out.clone(),
        inputs,
        world_size: args.world_size,
        rank: args.rank,
        stage: args.stage.clone(),
        dry_run: args.dry_run,
        threads: args.threads,
        progress: &progress,
    };
    let outcome = curation.run(&opts)?;
    bar.finish();
    if let Some((stage, missing)) = &outcome.waiting {
        eprintln!(
            "stage {stage} waits for parts {missing:?} of the stage before it; run them, then run this again \
             (finished parts are skipped)"
        );
        return Ok(());
    }
    let Some(report) = outcome.report else {
        return Ok(());
    };
    crate::curate_report::write_html(&out, &report)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::curate_report::print_funnel(&report);
        println!(
            "kept documents in {}; report in {}",
            out.join("output").display(),
            out.join("report.html").display()
        );
    }
    Ok(())
}

fn pipeline_spec(args: &CurateArgs) -> Result<PipelineSpec> {
    let mut spec = base_spec(args)?;
    if let Some(v) = &args.text_field {
        spec.input.text_field = v.clone();
    }
    if let Some(v) = &args.id_field {
        spec.input.id_field = v.clone();
    }
    if let Some(v) = &args.output_format {
        spec.output.format = v.clone();
    }
    if let Some(v) = &args.compression {
        spec.output.compression = v.clone();
    }
    if let Some(v) = args.max_shard_size {
        spec.output.max_shard_bytes = v;
    }
    fmlab_curate::pipeline::input::write_options(&spec.output, String::new())?;
    Ok(spec)
}

fn base_spec(args: &CurateArgs) -> Result<PipelineSpec> {
    if let Some(path) = &args.config {
        return Ok(PipelineSpec::load(path)?);
    }
    if !args.blocks.is_empty() {
        let spec = PipelineSpec {
            blocks: args
                .blocks
                .iter()
                .map(|k| BlockSpec::new(k.trim()))
                .collect(),
            ..Default::default()
        };
        spec.check()?;
        return Ok(spec);
    }
    match &args.recipe {
        Some(r) => Ok(PipelineSpec::recipe(r)?),
        None => bail!("choose the pipeline: --recipe NAME, --config FILE.toml or --blocks LIST"),
    }
}

/// Writes OUT/slurm/ (the pipeline as TOML, one script per stage, submit.sh) and submits.
fn slurm(args: &CurateArgs, curation: &Curation, out: &Path, inputs: &[PathBuf]) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let out = std::fs::canonicalize(out)?;
    let dir = out.join("slurm");
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let toml_path = dir.join("pipeline.toml");
    fmlab_formats::write_atomically(&toml_path, curation.spec.to_toml().as_bytes())?;
    let exe = std::env::current_exe().context("finding the fmlab binary")?;
    let mut command: Vec<String> = vec![exe.to_string_lossy().into_owned(), "curate".into()];
    command.extend(inputs.iter().map(|p| p.to_string_lossy().into_owned()));
    command.extend(["--out".into(), out.to_string_lossy().into_owned()]);
    command.extend(["--config".into(), toml_path.to_string_lossy().into_owned()]);
    command.extend(["--world-size".into(), args.world_size.to_string()]);
    if args.dry_run {
        command.push("--dry-run".into());
    }
    let opts = SlurmOptions {
        partition: args.partition.clone(),
        time: args.time.clone(),
        cpus_per_task: args.cpus_per_task,
        mem: args.mem.clone(),
    };
    let written = scripts(&dir, &curation.stages(args.world_size), &command, &opts);
    for s in &written {
        fmlab_formats::write_atomically(&s.path, s.text.as_bytes())?;
    }
    let submit = dir.join("submit.sh");
    fmlab_formats::write_atomically(&submit, submit_script(&written).as_bytes())?;
    let has_sbatch = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("sbatch").is_file()))
        .unwrap_or(false);
    let mut jobs = Vec::new();
    if has_sbatch && !args.no_submit {
        let mut prev: Option<String> = None;
        for s in &written {
            let mut cmd = std::process::Command::new("sbatch");
            cmd.arg("--parsable");
            if let Some(j) = &prev {
                cmd.arg(format!("--dependency=afterok:{j}"));
            }
            let o = cmd.arg(&s.path).output().context("running sbatch")?;
            if !o.status.success() {
                bail!(
                    "sbatch {}: {}",
                    s.path.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            let id = String::from_utf8_lossy(&o.stdout)
                .trim()
                .split(';')
                .next()
                .unwrap_or("")
                .to_string();
            jobs.push(serde_json::json!({"stage": s.stage, "parts": s.parts, "job": id, "script": s.path}));
            prev = Some(id);
        }
    }
    if args.json {
        let v = serde_json::json!({"scripts": written.iter().map(|s| &s.path).collect::<Vec<_>>(),
            "submit": submit, "jobs": jobs});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for s in &written {
        println!(
            "{}  ({} part{})",
            s.path.display(),
            s.parts,
            if s.parts == 1 { "" } else { "s" }
        );
    }
    if jobs.is_empty() {
        println!("submit with: bash {}", submit.display());
    } else {
        for j in &jobs {
            println!(
                "submitted {} as job {} ({} tasks)",
                j["stage"], j["job"], j["parts"]
            );
        }
    }
    Ok(())
}

/// A bytes bar per stage part on a terminal; a line per part otherwise.
struct Bar {
    bar: Mutex<Option<indicatif::ProgressBar>>,
    tty: bool,
    quiet: bool,
}

impl Bar {
    fn new(quiet: bool) -> Self {
        Bar {
            bar: Mutex::new(None),
            tty: std::io::stderr().is_terminal(),
            quiet,
        }
    }

    fn event(&self, e: Event) {
        let Ok(mut guard) = self.bar.lock() else {
            return;
        };
        match e {
            Event::Start {
                stage,
                part,
                parts,
                bytes,
            } => {
                if let Some(b) = guard.take() {
                    b.finish_and_clear();
                }
                let label = format!("{stage} {}/{parts}", part + 1);
                if self.tty && !self.quiet {
                    let b = indicatif::ProgressBar::new(bytes.max(1));
                    b.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{msg:24} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                    b.set_message(label);
                    *guard = Some(b);
                } else if !self.quiet {
                    eprintln!("{label}");
                }
            }
            Event::Advance(n) => {
                if let Some(b) = guard.as_ref() {
                    b.inc(n);
                }
            }
            Event::Skipped { stage, part } => {
                if !self.quiet {
                    eprintln!("{stage} {}: done by an earlier run, skipped", part + 1);
                }
            }
            Event::Done => {
                if let Some(b) = guard.take() {
                    b.finish_and_clear();
                }
            }
        }
    }

    fn finish(&self) {
        self.event(Event::Done);
    }
}
