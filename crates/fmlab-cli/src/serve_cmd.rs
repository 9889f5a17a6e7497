//! `fmlab serve`: a model behind an OpenAI-compatible HTTP API (`fmlab_serve`).

use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Args)]
pub struct ServeArgs {
    /// The model: a pulled name (`fmlab pull --list`), a .gguf file, a training run or
    /// checkpoint folder, or a Hugging Face folder.
    model: String,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port, printed when ready).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The model id clients send and /v1/models lists [default: the model's file or folder
    /// name].
    #[arg(long)]
    alias: Option<String>,
    /// Sequences decoded together (a request with n choices takes n).
    #[arg(long, default_value_t = 4, value_parser = crate::numbers::count)]
    parallel: u64,
    /// Tokens of context per sequence [default: the model's, at most 4096].
    #[arg(long, value_parser = crate::numbers::count)]
    ctx: Option<u64>,
    /// Require `Authorization: Bearer KEY` on every route but /health [default: the
    /// FMLAB_API_KEY environment variable, else no key].
    #[arg(long)]
    api_key: Option<String>,
    /// Requests that may wait for a free slot; more get 429 at once.
    #[arg(long, default_value_t = 64, value_parser = crate::numbers::count)]
    max_queue: u64,
    /// Largest request body (e.g. 8MiB, 100kB).
    #[arg(long, default_value = "8MiB")]
    body_limit: String,
    /// Prompt tokens a sequence reads per step, so that a long prompt does not stall the
    /// streams already running.
    #[arg(long, default_value_t = 256, value_parser = crate::numbers::count)]
    prefill_chunk: u64,
    /// Threads for the model's kernels [default: one per core].
    #[arg(long, value_parser = crate::numbers::count)]
    threads: Option<u64>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let body_limit = fmlab_scaling::parse_byte_size(&args.body_limit)
        .with_context(|| format!("--body-limit: {:?}", args.body_limit))?;
    if body_limit == 0 {
        bail!("--body-limit must be more than 0 bytes");
    }
    let api_key = args
        .api_key
        .or_else(|| std::env::var("FMLAB_API_KEY").ok())
        .filter(|k| !k.is_empty());
    eprintln!("loading {} …", args.model);
    let started = std::time::Instant::now();
    let loaded = crate::model::load(&args.model)?;
    let context = loaded.context(args.ctx.map(|c| c as usize));
    let alias = args.alias.unwrap_or_else(|| default_alias(&args.model));
    eprintln!(
        "loaded {} ({} layers, {} tokens of context per sequence) in {:.1} s",
        loaded.path.display(),
        loaded.model.spec.n_layers,
        context,
        started.elapsed().as_secs_f64()
    );
    let config = fmlab_serve::ServeConfig {
        host: args.host,
        port: args.port,
        alias: alias.clone(),
        parallel: args.parallel as usize,
        context,
        api_key: api_key.clone(),
        max_queue: args.max_queue as usize,
        body_limit: usize::try_from(body_limit).unwrap_or(usize::MAX),
        prefill_chunk: args.prefill_chunk as usize,
        threads: args.threads.map(|t| t as usize),
    };
    let parallel = config.parallel;
    let log: fmlab_serve::RequestLog = std::sync::Arc::new(|line: &str| eprintln!("{line}"));
    fmlab_serve::serve(loaded, config, log, move |addr| {
        eprintln!(
            "serving `{alias}` on http://{addr} ({parallel} sequences at a time{}); playground at http://{addr}/ — Ctrl-C stops",
            if api_key.is_some() { ", API key required" } else { "" }
        );
    })?;
    Ok(())
}

/// A model's id for clients: its file's stem or its folder's name.
fn default_alias(model: &str) -> String {
    let path = std::path::Path::new(model);
    let name = match path.extension().and_then(|e| e.to_str()) {
        Some("gguf") => path.file_stem(),
        _ => path.file_name(),
    };
    name.map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| model.to_string())
}
