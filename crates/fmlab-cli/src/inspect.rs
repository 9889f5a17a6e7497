//! `fmlab inspect`: a model's anatomy from its file, its config or a preset.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use fmlab_formats::{spec_from_gguf, spec_from_hf_config, GgufFile, SafetensorsFile};
use fmlab_spec::{
    FfnKind, FlopsPerToken, ModelSpec, NormKind, ParamCounts, Positions, Precision, TrainingMemory,
    TrainingPrecision,
};
use serde::Serialize;

use crate::numbers::{bytes, grouped, si};

#[derive(Args)]
pub struct InspectArgs {
    /// A .gguf or .safetensors file, a model folder with config.json, or a config.json.
    #[arg(required_unless_present = "preset", conflicts_with = "preset")]
    path: Option<PathBuf>,
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

/// Where the spec came from, and what the file itself says.
#[derive(Serialize, Default)]
pub struct Source {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gguf_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tensors: Option<usize>,
    /// Tensor count by ggml type or safetensors dtype.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tensor_types: BTreeMap<String, usize>,
    /// Sum of the element counts of the file's tensors.
    #[serde(skip_serializing_if = "Option::is_none")]
    tensor_elements: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokenizer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chat_template: Option<String>,
}

#[derive(Serialize)]
struct Report {
    source: Source,
    architecture: Option<ModelSpec>,
    parameters: Option<u64>,
    parameters_non_embedding: Option<u64>,
    parameters_by_component: Option<ParamCounts>,
    seq_len: Option<u64>,
    /// Kaplan: 2N + 2·L·n_ctx·d_attn.
    flops_per_token_forward: Option<f64>,
    /// 6N, N all parameters.
    flops_per_token_training: Option<f64>,
    flops: Option<FlopsPerToken>,
    /// At f16, the llama.cpp default.
    kv_cache_bytes_per_token: Option<u64>,
    kv_cache_bytes_per_token_f32: Option<u64>,
    /// At f16 over the full context, sliding-window layers keeping only their window.
    kv_cache_bytes_full_context: Option<u64>,
    memory_bytes: BTreeMap<&'static str, u64>,
    training_memory: BTreeMap<&'static str, TrainingMemory>,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let (spec, source) = match (&args.preset, &args.path) {
        (Some(name), _) => (
            Some(fmlab_spec::preset(name)?),
            Source {
                kind: "preset",
                name: Some(name.clone()),
                ..Default::default()
            },
        ),
        (None, Some(path)) => load(path)?,
        (None, None) => bail!("give a PATH or --preset NAME"),
    };
    let report = build(spec, source, args.seq_len, args.micro_batch)?;
    if args.json {
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&report)?))
    } else {
        crate::out(&table(&report))
    }
}

/// Reads the spec and file facts from any supported path.
pub fn load(path: &Path) -> Result<(Option<ModelSpec>, Source)> {
    if !path.exists() {
        bail!("{}: no such file or folder", path.display());
    }
    if path.is_dir() {
        return load_folder(path);
    }
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "gguf" => load_gguf(path),
        "safetensors" => {
            let mut source = safetensors_source(&[path.to_path_buf()])?;
            source.path = Some(path.to_path_buf());
            let config = path.with_file_name("config.json");
            let spec = if config.is_file() {
                Some(read_config(&config)?)
            } else {
                None
            };
            Ok((spec, source))
        }
        "json" => Ok((
            Some(read_config(path)?),
            Source {
                kind: "config.json",
                path: Some(path.to_path_buf()),
                ..Default::default()
            },
        )),
        _ => {
            // Not named by its extension: sniff the GGUF magic.
            let mut magic = [0u8; 4];
            let is_gguf = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                .is_ok()
                && &magic == b"GGUF";
            if is_gguf {
                load_gguf(path)
            } else {
                bail!(
                    "{}: not a model file fmlab recognises (expected .gguf, .safetensors, config.json or a model folder)",
                    path.display()
                )
            }
        }
    }
}

fn read_config(path: &Path) -> Result<ModelSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    spec_from_hf_config(&text).with_context(|| format!("{}", path.display()))
}

fn load_gguf(path: &Path) -> Result<(Option<ModelSpec>, Source)> {
    let file = GgufFile::open(path)?;
    let g = &file.gguf;
    let spec = spec_from_gguf(g).with_context(|| format!("{}", path.display()))?;
    let mut tensor_types = BTreeMap::new();
    for t in &g.tensors {
        *tensor_types.entry(t.ggml_type.name()).or_insert(0) += 1;
    }
    let tokenizer = g
        .get("tokenizer.ggml.model")
        .and_then(|v| v.as_str())
        .map(
            |model| match g.get("tokenizer.ggml.pre").and_then(|v| v.as_str()) {
                Some(pre) => format!("{model} (pre-tokenizer {pre})"),
                None => model.to_string(),
            },
        );
    let source = Source {
        kind: "gguf",
        path: Some(path.to_path_buf()),
        name: g
            .get("general.name")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        file_bytes: std::fs::metadata(path).ok().map(|m| m.len()),
        gguf_version: Some(g.version),
        tensors: Some(g.tensors.len()),
        tensor_types,
        tensor_elements: Some(g.total_elements()),
        tokenizer,
        chat_template: g
            .get("tokenizer.chat_template")
            .and_then(|v| v.as_str())
            .map(str::to_string),
    };
    Ok((Some(spec), source))
}

fn load_folder(dir: &Path) -> Result<(Option<ModelSpec>, Source)> {
    let config = dir.join("config.json");
    if !config.is_file() {
        bail!("{}: a model folder needs a config.json", dir.display());
    }
    let spec = read_config(&config)?;
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    shards.sort();
    let mut source = if shards.is_empty() {
        Source {
            kind: "config.json",
            ..Default::default()
        }
    } else {
        safetensors_source(&shards)?
    };
    source.path = Some(dir.to_path_buf());
    // The chat template lives in tokenizer_config.json in HF folders.
    source.chat_template = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("chat_template")?.as_str().map(str::to_string));
    Ok((Some(spec), source))
}

fn safetensors_source(files: &[PathBuf]) -> Result<Source> {
    let mut source = Source {
        kind: "safetensors",
        file_bytes: Some(0),
        tensors: Some(0),
        tensor_elements: Some(0),
        ..Default::default()
    };
    for path in files {
        let file = SafetensorsFile::open(path)?;
        let h = &file.header;
        source.file_bytes = source
            .file_bytes
            .map(|b| b + std::fs::metadata(path).map(|m| m.len()).unwrap_or(0));
        source.tensors = source.tensors.map(|n| n + h.tensors.len());
        source.tensor_elements = source.tensor_elements.map(|n| n + h.total_elements());
        for t in &h.tensors {
            *source
                .tensor_types
                .entry(t.dtype.name().to_ascii_lowercase())
                .or_insert(0) += 1;
        }
    }
    Ok(source)
}

fn build(
    spec: Option<ModelSpec>,
    source: Source,
    seq_len: Option<u64>,
    micro_batch: u64,
) -> Result<Report> {
    let Some(spec) = spec else {
        return Ok(Report {
            parameters: source.tensor_elements,
            source,
            architecture: None,
            parameters_non_embedding: None,
            parameters_by_component: None,
            seq_len: None,
            flops_per_token_forward: None,
            flops_per_token_training: None,
            flops: None,
            kv_cache_bytes_per_token: None,
            kv_cache_bytes_per_token_f32: None,
            kv_cache_bytes_full_context: None,
            memory_bytes: BTreeMap::new(),
            training_memory: BTreeMap::new(),
        });
    };
    spec.validate()?;
    let seq_len = seq_len.unwrap_or(spec.context_length);
    if seq_len > 1 << 32 {
        bail!("--seq-len {seq_len}: must be at most 2^32");
    }
    let params = spec.params();
    let flops = spec.flops_per_token(seq_len);
    let memory_bytes = Precision::ALL
        .iter()
        .map(|&p| (p.name(), spec.weight_bytes(p)))
        .collect();
    let training_memory = [
        ("f32", TrainingPrecision::F32),
        ("mixed", TrainingPrecision::Mixed),
    ]
    .into_iter()
    .map(|(name, p)| (name, spec.training_memory(p, seq_len, micro_batch)))
    .collect();
    Ok(Report {
        parameters: Some(params.total),
        parameters_non_embedding: Some(params.non_embedding),
        parameters_by_component: Some(params),
        seq_len: Some(seq_len),
        flops_per_token_forward: Some(flops.forward_kaplan),
        flops_per_token_training: Some(flops.training_6n),
        flops: Some(flops),
        kv_cache_bytes_per_token: Some(spec.kv_cache_bytes_per_token(2)),
        kv_cache_bytes_per_token_f32: Some(spec.kv_cache_bytes_per_token(4)),
        kv_cache_bytes_full_context: Some(spec.kv_cache_bytes(spec.context_length, 2)),
        memory_bytes,
        training_memory,
        source,
        architecture: Some(spec),
    })
}

fn table(r: &Report) -> String {
    let mut s = String::new();
    let src = &r.source;
    let title = match (&src.path, &src.name) {
        (Some(p), _) => p.display().to_string(),
        (None, Some(n)) => format!("preset {n}"),
        _ => String::new(),
    };
    let _ = writeln!(s, "{title}");
    let mut facts = vec![match src.kind {
        "preset" => "built-in architecture (no file)".to_string(),
        kind => kind.to_string(),
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
    let _ = writeln!(s, "  {}", facts.join(" · "));
    if let Some(name) = src.name.as_ref().filter(|_| src.path.is_some()) {
        let _ = writeln!(s, "  name: {name}");
    }
    if let Some(t) = &src.tokenizer {
        let _ = writeln!(s, "  tokenizer: {t}");
    }
    let Some(spec) = &r.architecture else {
        let _ = writeln!(
            s,
            "\nno config.json beside this file, so no architecture: {} parameters in its tensors",
            grouped(src.tensor_elements.unwrap_or(0))
        );
        return s;
    };
    let _ = writeln!(s, "\narchitecture");
    let row = |s: &mut String, k: &str, v: String| {
        let _ = writeln!(s, "  {k:<16} {v}");
    };
    row(&mut s, "family", spec.architecture.clone());
    row(&mut s, "vocabulary", grouped(spec.vocab_size));
    row(&mut s, "context", grouped(spec.context_length));
    row(&mut s, "d_model", grouped(spec.d_model));
    row(&mut s, "layers", grouped(spec.n_layers));
    let attention = if spec.n_kv_heads == spec.n_heads {
        "multi-head"
    } else if spec.n_kv_heads == 1 {
        "multi-query"
    } else {
        "grouped-query"
    };
    row(
        &mut s,
        "heads",
        format!(
            "{} query / {} key-value, head dim {} ({attention})",
            spec.n_heads, spec.n_kv_heads, spec.head_dim
        ),
    );
    row(
        &mut s,
        "feed-forward",
        format!(
            "{} wide, {}",
            grouped(spec.ffn_dim),
            match spec.ffn_kind {
                FfnKind::GeluMlp => "GELU MLP",
                FfnKind::SwiGlu => "SwiGLU",
                FfnKind::GeGlu => "GeGLU",
            }
        ),
    );
    row(
        &mut s,
        "norms",
        format!(
            "{}, {}, eps {:e}{}",
            match spec.norm_kind {
                NormKind::LayerNorm => "LayerNorm",
                NormKind::RmsNorm => "RMSNorm",
            },
            spec.norm_placement.describe(),
            spec.norm_eps,
            if spec.qk_norm { ", QK-norm" } else { "" }
        ),
    );
    row(
        &mut s,
        "positions",
        match spec.positions {
            Positions::Learned => "learned".into(),
            Positions::Rope { base } => format!("RoPE, base {base}"),
        },
    );
    let mut biases = Vec::new();
    if spec.qkv_bias {
        biases.push("q/k/v");
    }
    if spec.attn_out_bias {
        biases.push("attention output");
    }
    if spec.mlp_bias {
        biases.push("MLP");
    }
    row(
        &mut s,
        "biases",
        if biases.is_empty() {
            "none".into()
        } else {
            biases.join(", ")
        },
    );
    row(
        &mut s,
        "embeddings",
        format!(
            "{}{}",
            if spec.tied_embeddings {
                "tied"
            } else {
                "untied"
            },
            if spec.scale_embeddings {
                ", scaled by √d_model"
            } else {
                ""
            }
        ),
    );
    if let Some(w) = spec.sliding_window {
        let pattern = if w.global_every == 0 {
            "every layer local".to_string()
        } else {
            format!("every {}th layer global", w.global_every)
        };
        let local_base = w
            .local_rope_base
            .map(|b| format!(", local RoPE base {b}"))
            .unwrap_or_default();
        row(
            &mut s,
            "sliding window",
            format!("{} tokens, {pattern}{local_base}", w.window),
        );
    }

    if let Some(p) = &r.parameters_by_component {
        let _ = writeln!(s, "\nparameters");
        let share = |n: u64| 100.0 * n as f64 / p.total.max(1) as f64;
        let mut line = |k: &str, n: u64| {
            if n > 0 {
                let _ = writeln!(s, "  {k:<22} {:>16}  {:>5.1}%", grouped(n), share(n));
            }
        };
        line("token embedding", p.token_embedding);
        line("position embedding", p.position_embedding);
        line("attention", p.attention);
        line("QK-norm", p.qk_norm);
        line("feed-forward", p.mlp);
        line("layer norms", p.layer_norms);
        line("final norm", p.final_norm);
        line("output head", p.lm_head);
        let _ = writeln!(
            s,
            "  {:<22} {:>16}  ({})",
            "total",
            grouped(p.total),
            si(p.total as f64)
        );
        let _ = writeln!(
            s,
            "  {:<22} {:>16}  ({})",
            "non-embedding",
            grouped(p.non_embedding),
            si(p.non_embedding as f64)
        );
        if let Some(elements) = src.tensor_elements {
            let verdict = if elements == p.total {
                "matches".to_string()
            } else {
                format!("differs by {}", elements as i128 - p.total as i128)
            };
            let _ = writeln!(
                s,
                "  {:<22} {:>16}  {verdict}",
                "in the file's tensors",
                grouped(elements)
            );
        }
    }
    if let Some(f) = &r.flops {
        let _ = writeln!(s, "\nFLOPs per token (sequence of {})", grouped(f.seq_len));
        let mut line = |k: &str, v: f64| {
            let _ = writeln!(s, "  {k:<44} {:>10}", si(v));
        };
        line("forward, Kaplan (2N + 2·L·n_ctx·d_attn)", f.forward_kaplan);
        line("forward, Chinchilla appendix F", f.forward_chinchilla);
        line("training, 6N", f.training_6n);
        line("training, 6N non-embedding", f.training_6n_non_embedding);
        line("training, appendix F", f.training_chinchilla);
        line(
            "training, appendix F w/o embeddings, logits",
            f.training_chinchilla_no_embeddings,
        );
    }
    if !r.memory_bytes.is_empty() {
        let _ = writeln!(s, "\nweights in memory");
        for p in Precision::ALL {
            if let Some(&b) = r.memory_bytes.get(p.name()) {
                let _ = writeln!(s, "  {:<8} {:>12}", p.name(), bytes(b));
            }
        }
    }
    if let (Some(per_token), Some(full)) =
        (r.kv_cache_bytes_per_token, r.kv_cache_bytes_full_context)
    {
        let _ = writeln!(s, "\nKV cache (f16)");
        let _ = writeln!(s, "  per token        {:>12}", bytes(per_token));
        let _ = writeln!(
            s,
            "  full context     {:>12}  ({} tokens)",
            bytes(full),
            grouped(spec.context_length)
        );
    }
    for (name, m) in &r.training_memory {
        let _ = writeln!(
            s,
            "\ntraining memory, AdamW {name} (sequence {}, micro-batch {})",
            grouped(m.seq_len),
            m.micro_batch
        );
        let _ = writeln!(
            s,
            "  weights + grads + optimizer {:>12}",
            bytes(m.weights + m.master_weights + m.gradients + m.optimizer)
        );
        let _ = writeln!(
            s,
            "  activations                 {:>12} none recomputed, {} selective, {} full recompute",
            bytes(m.activations.no_recompute),
            bytes(m.activations.selective_recompute),
            bytes(m.activations.full_recompute)
        );
    }
    if let Some(t) = &src.chat_template {
        let first = t.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let shown: String = first.chars().take(70).collect();
        let _ = writeln!(s, "\nchat template ({} chars): {shown}…", t.chars().count());
    }
    s
}
