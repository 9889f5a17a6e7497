//! `fmlab quantize IN OUT --type TYPE`: a GGUF model re-encoded as llama.cpp's
//! `llama-quantize` does it (`fmlab_train::quantize`), with a line per tensor on a terminal
//! and a summary of sizes.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use fmlab_formats::GgufFile;
use fmlab_spec::units::bytes;
use fmlab_train::quantize::{FileType, QuantizePlan};

#[derive(Args)]
pub struct QuantizeArgs {
    /// The GGUF model to read (any that fmlab reads: f32, f16, bf16 or already quantized,
    /// which is dequantized and quantized again).
    input: PathBuf,
    /// The GGUF file to write; an existing file is replaced only once the new one is
    /// complete.
    output: PathBuf,
    /// What to write: f32, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_s, q4_k_m, q5_k_s, q5_k_m
    /// or q6_k (per tensor as llama-quantize chooses: norms stay f32, the _m mixes give
    /// attn_v and ffn_down more bits on some layers).
    #[arg(long = "type", value_parser = parse_type)]
    file_type: FileType,
}

fn parse_type(s: &str) -> std::result::Result<FileType, String> {
    FileType::parse(s).ok_or_else(|| {
        let names: Vec<&str> = FileType::ALL.iter().map(|t| t.name()).collect();
        format!("unknown type; one of {}", names.join(", "))
    })
}

/// Whether `a` and `b` name the same file (`b` may not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

pub fn run(args: QuantizeArgs) -> Result<()> {
    let (input, output) = (&args.input, &args.output);
    if same_file(input, output) {
        bail!(
            "{}: OUT is the input file; write the quantized model to another path",
            output.display()
        );
    }
    if output.is_dir() {
        bail!("{}: OUT is a folder; name a .gguf file", output.display());
    }
    let file = GgufFile::open(input)?;
    let plan = QuantizePlan::new(&file.gguf, args.file_type)
        .with_context(|| format!("{}", input.display()))?;

    let mut stderr = std::io::stderr();
    let mut requantized: BTreeMap<String, usize> = BTreeMap::new();
    for t in plan.requantized() {
        *requantized.entry(t.from.name()).or_default() += 1;
    }
    if !requantized.is_empty() {
        let list: Vec<String> = requantized
            .iter()
            .map(|(name, n)| format!("{n} {name}"))
            .collect();
        let (n, list) = (requantized.values().sum::<usize>(), list.join(", "));
        if matches!(args.file_type, FileType::F32 | FileType::F16) {
            writeln!(
                stderr,
                "note: dequantizing {n} tensors ({list}): the {} file holds the quantized model's values, not the original weights",
                args.file_type.name()
            )?;
        } else {
            writeln!(
                stderr,
                "note: requantizing: {n} tensors ({list}) are dequantized and quantized again, which adds their error to the new one (llama-quantize --allow-requantize); quantize from an f16 or f32 file where you have one"
            )?;
        }
    }
    let mut fallbacks: BTreeMap<(String, String, u64), usize> = BTreeMap::new();
    for t in plan.fallbacks() {
        if let Some(wanted) = t.wanted {
            *fallbacks
                .entry((wanted.name(), t.to.name(), t.dims[0]))
                .or_default() += 1;
        }
    }
    for ((wanted, got, row), n) in &fallbacks {
        writeln!(
            stderr,
            "note: {n} tensors have rows of {row}, not a multiple of {wanted}'s block: {got} instead, as llama-quantize does"
        )?;
    }

    let tty = stderr.is_terminal();
    let total = plan.tensors.len();
    let mut progress = |i: usize, t: &fmlab_train::quantize::TensorPlan| {
        if tty {
            let dims: Vec<String> = t.dims.iter().map(|d| d.to_string()).collect();
            let what = if t.converted() {
                format!("{} → {}", t.from.name(), t.to.name())
            } else {
                format!("{} (copied)", t.from.name())
            };
            let _ = write!(
                stderr,
                "\r\x1b[2K[{:>4}/{total}] {:<32} {:<14} {what}",
                i + 1,
                t.name,
                dims.join("×")
            );
            let _ = stderr.flush();
        }
    };
    let result = plan.write(&file, output, &mut progress);
    if tty {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
    let summary = result.with_context(|| format!("writing {}", output.display()))?;
    crate::out(&format!(
        "{}: {}, {} tensors ({} re-encoded, {} copied), {} → {}, {:.2} → {:.2} bits per weight\n",
        output.display(),
        args.file_type.name(),
        summary.tensors,
        summary.converted,
        summary.tensors - summary.converted,
        bytes(summary.bytes_before),
        bytes(summary.bytes_after),
        summary.bits_per_weight_before(),
        summary.bits_per_weight_after()
    ))
}
