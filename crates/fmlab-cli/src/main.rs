//! `fmlab`: the command line. This file parses arguments and dispatches; each command's
//! module turns its arguments into calls on the library crates and prints the result.
//! Only this crate knows the terminal.

mod inspect;
mod numbers;
mod plan;
mod plot;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A workbench for foundation models: size, plan, train, adapt, sample and evaluate them.
#[derive(Parser)]
#[command(name = "fmlab", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Anatomy of a model: architecture, exact parameters, FLOPs per token, memory, KV cache.
    ///
    /// PATH is a .gguf file, a .safetensors file, a folder with config.json (and its
    /// safetensors shards), or a config.json alone.
    Inspect(inspect::InspectArgs),
    /// Plan compute with scaling laws: compute-optimal size and data, predicted loss,
    /// data-constrained and inference-aware optima, time, energy and cost.
    Plan(Box<plan::PlanArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Plan(args) => plan::run(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed pipe (`fmlab inspect … | head`) is how the reader says "enough".
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout, turning a closed pipe into an error `main` recognises.
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
