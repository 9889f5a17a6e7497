//! `fmlab inspect`: a model's anatomy from its file, its config or a preset
//! (`fmlab_formats::inspect`), as a table or JSON.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use fmlab_formats::{Inspection, Source, SourceKind, Target};
use fmlab_spec::{FlopsPerToken, ParamCounts, Precision};

use crate::numbers::{bytes, grouped, put, si};

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct InspectArgs {
    /// MODEL: a .gguf file, a pulled model's name, a training run or checkpoint folder, a
    /// Hugging Face folder (config.json and safetensors), a .safetensors file or a
    /// config.json.
    #[arg(required_unless_present = "preset", conflicts_with = "preset")]
    path: Option<String>,
    /// A built-in architecture instead of a file.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(fmlab_spec::PRESET_NAMES))]
    preset: Option<String>,
    /// Sequence length for the attention FLOPs and the activation memory (default: the
    /// model's context length).
    #[arg(long, value_parser = crate::numbers::count)]
    seq_len: Option<u64>,
    /// Micro-batch size (sequences) for the training-memory estimate.
    #[arg(long, default_value = "1", value_parser = crate::numbers::count)]
    micro_batch: u64,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let report = match (&args.preset, &args.path) {
        (Some(name), _) => {
            fmlab_formats::inspect(Target::Preset(name), args.seq_len, args.micro_batch)?
        }
        (None, Some(name)) => inspect_model(name, args.seq_len, args.micro_batch)?,
        (None, None) => bail!("give a MODEL or --preset NAME"),
    };
    if args.json {
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&report)?))
    } else {
        crate::out(&table(&report))
    }
}

/// What `fmlab inspect MODEL` reports for any MODEL fmlab loads: a file or folder, a
/// pulled model's name, a training run or checkpoint (its spec from the manifest).
pub fn inspect_model(name: &str, seq_len: Option<u64>, micro_batch: u64) -> Result<Inspection> {
    let path = model_path(name)?;
    Ok(
        if path.join("run.json").is_file() || path.join("manifest.json").is_file() {
            let found = crate::model::find_checkpoint(&path, false)?;
            let c = &found.checkpoint;
            let mut described = fmlab_formats::describe(&c.dir.join("model.safetensors"))?;
            described.spec = Some(c.manifest.spec.clone());
            fmlab_formats::inspect_description(described, seq_len, micro_batch)?
        } else {
            fmlab_formats::inspect(Target::Path(&path), seq_len, micro_batch)?
        },
    )
}

/// A path as given when it exists, else a pulled model's file by name (an unknown name is
/// left to `inspect`, which says "no such file").
fn model_path(name: &str) -> Result<PathBuf> {
    let path = PathBuf::from(name);
    if path.exists() {
        return Ok(path);
    }
    match fmlab_train::models::resolve(name) {
        Ok(p) => Ok(p),
        Err(e @ fmlab_train::models::Error::NotDownloaded(_)) => Err(e.into()),
        Err(_) => Ok(path),
    }
}

fn table(r: &Inspection) -> String {
    let mut s = String::new();
    let src = &r.source;
    let title = match (&src.path, &src.name) {
        (Some(p), _) => p.display().to_string(),
        (None, Some(n)) => format!("preset {n}"),
        _ => String::new(),
    };
    put!(s, "{title}");
    put!(s, "  {}", facts(src).join(" · "));
    if let Some(name) = src.name.as_ref().filter(|_| src.path.is_some()) {
        put!(s, "  name: {name}");
    }
    if let Some(t) = &src.tokenizer {
        put!(s, "  tokenizer: {t}");
    }
    let Some(spec) = &r.architecture else {
        put!(
            s,
            "\nno config.json beside this file, so no architecture: {} parameters in its tensors",
            grouped(src.tensor_elements.unwrap_or(0))
        );
        return s;
    };
    put!(s, "\narchitecture");
    for (k, v) in spec.summary() {
        put!(s, "  {k:<16} {v}");
    }
    if let Some(p) = &r.parameters_by_component {
        parameters(&mut s, p, src.tensor_elements);
    }
    if let Some(f) = &r.flops {
        flops(&mut s, f);
    }
    memory(&mut s, r, spec.context_length);
    if let Some(t) = &src.chat_template {
        let first = t.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let shown: String = first.chars().take(70).collect();
        put!(s, "\nchat template ({} chars): {shown}…", t.chars().count());
    }
    s
}

/// The file's kind, version, tensor count, size and tensor types.
fn facts(src: &Source) -> Vec<String> {
    let mut facts = vec![match src.kind {
        SourceKind::Preset => "built-in architecture (no file)".to_string(),
        kind => kind.name().to_string(),
    }];
    if let Some(v) = src.gguf_version {
        facts.push(format!("GGUF v{v}"));
    }
    if let Some(n) = src.tensors {
        facts.push(format!("{n} tensors"));
    }
    if let Some(b) = src.file_bytes {
        facts.push(bytes(b));
    }
    if !src.tensor_types.is_empty() {
        let types: Vec<String> = src
            .tensor_types
            .iter()
            .map(|(t, n)| format!("{t} ×{n}"))
            .collect();
        facts.push(types.join(", "));
    }
    facts
}

fn parameters(s: &mut String, p: &ParamCounts, tensor_elements: Option<u64>) {
    put!(s, "\nparameters");
    let share = |n: u64| 100.0 * n as f64 / p.total.max(1) as f64;
    for (k, n) in [
        ("token embedding", p.token_embedding),
        ("position embedding", p.position_embedding),
        ("attention", p.attention),
        ("QK-norm", p.qk_norm),
        ("feed-forward", p.mlp),
        ("layer norms", p.layer_norms),
        ("final norm", p.final_norm),
        ("output head", p.lm_head),
    ] {
        if n > 0 {
            put!(s, "  {k:<22} {:>16}  {:>5.1}%", grouped(n), share(n));
        }
    }
    for (k, n) in [("total", p.total), ("non-embedding", p.non_embedding)] {
        put!(s, "  {k:<22} {:>16}  ({})", grouped(n), si(n as f64));
    }
    if let Some(elements) = tensor_elements {
        let verdict = if elements == p.total {
            "matches".to_string()
        } else {
            format!("differs by {}", elements as i128 - p.total as i128)
        };
        let k = "in the file's tensors";
        put!(s, "  {k:<22} {:>16}  {verdict}", grouped(elements));
    }
}

fn flops(s: &mut String, f: &FlopsPerToken) {
    put!(s, "\nFLOPs per token (sequence of {})", grouped(f.seq_len));
    for (k, v) in [
        ("forward, Kaplan (2N + 2·L·n_ctx·d_attn)", f.forward_kaplan),
        ("forward, Chinchilla appendix F", f.forward_chinchilla),
        ("training, 6N", f.training_6n),
        ("training, 6N non-embedding", f.training_6n_non_embedding),
        ("training, appendix F", f.training_chinchilla),
        (
            "training, appendix F w/o embeddings, logits",
            f.training_chinchilla_no_embeddings,
        ),
    ] {
        put!(s, "  {k:<44} {:>10}", si(v));
    }
}

/// Weights per precision, the KV cache and the training memory.
fn memory(s: &mut String, r: &Inspection, context: u64) {
    if !r.memory_bytes.is_empty() {
        put!(s, "\nweights in memory");
        for p in Precision::ALL {
            if let Some(&b) = r.memory_bytes.get(p.name()) {
                put!(s, "  {:<8} {:>12}", p.name(), bytes(b));
            }
        }
    }
    if let (Some(per_token), Some(full)) =
        (r.kv_cache_bytes_per_token, r.kv_cache_bytes_full_context)
    {
        put!(s, "\nKV cache (f16)");
        put!(s, "  per token        {:>12}", bytes(per_token));
        let (full, context) = (bytes(full), grouped(context));
        put!(s, "  full context     {full:>12}  ({context} tokens)");
    }
    for (name, m) in &r.training_memory {
        put!(
            s,
            "\ntraining memory, AdamW {name} (sequence {}, micro-batch {})",
            grouped(m.seq_len),
            m.micro_batch
        );
        let state = m.weights + m.master_weights + m.gradients + m.optimizer;
        put!(s, "  weights + grads + optimizer {:>12}", bytes(state));
        let a = &m.activations;
        put!(
            s,
            "  activations                 {:>12} none recomputed, {} selective, {} full recompute",
            bytes(a.no_recompute),
            bytes(a.selective_recompute),
            bytes(a.full_recompute)
        );
    }
}
