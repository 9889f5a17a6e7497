//! `fmlab export`: a training run's checkpoint as a GGUF file (for `fmlab generate` and
//! llama.cpp) or a Hugging Face folder (for transformers).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use fmlab_train::export::{self, Quant};

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct ExportArgs {
    /// A training run (its newest good checkpoint) or one checkpoint's folder.
    run: PathBuf,
    /// gguf or safetensors (a Hugging Face llama folder).
    #[arg(long, default_value = "gguf")]
    format: String,
    /// GGUF tensor precision: f32, f16 or q8_0 (norms stay f32).
    #[arg(long, default_value = "f32")]
    quant: String,
    /// Output file (gguf) or folder (safetensors) [default: RUN/model-QUANT.gguf or RUN/hf].
    #[arg(long)]
    out: Option<PathBuf>,
    /// For a LoRA run: merge the adapters into the base model's weights (W + α/r·B·A) and
    /// export the result.
    #[arg(long)]
    merge_lora: bool,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let found = crate::model::find_checkpoint(&args.run, false)?;
    if found.checkpoint.manifest.lora.is_some() && !args.merge_lora {
        bail!(
            "{}: the run holds LoRA adapters; --merge-lora exports the base model with them merged in",
            args.run.display()
        );
    }
    let mut skipped = Vec::new();
    let merged = fmlab_train::models::merged_weights(&found, &mut skipped);
    crate::model::warn_skipped(&skipped);
    let merged = merged?;
    let mut c = found.checkpoint;
    c.weights = merged;
    let spec = c.manifest.spec.clone();
    let tok = crate::model::run_tokenizer(&found.run)?;
    let name = format!("fmlab {} step {}", spec.architecture, c.manifest.step);
    match args.format.as_str() {
        "gguf" => {
            let quant = Quant::parse(&args.quant)
                .with_context(|| format!("--quant: {:?} is not f32, f16 or q8_0", args.quant))?;
            let trained = tok
                .trained
                .as_ref()
                .context("GGUF export needs the tokenizer fmlab trained")?;
            let quant_name = args.quant.to_ascii_lowercase();
            let out = args
                .out
                .unwrap_or_else(|| found.run.join(format!("model-{quant_name}.gguf")));
            export::write_gguf(&spec, &mut c.weights, quant, &name, trained, &out)?;
            crate::out(&format!(
                "{}: GGUF ({quant_name}), step {}\n",
                out.display(),
                c.manifest.step
            ))
        }
        "safetensors" => {
            if !args.quant.eq_ignore_ascii_case("f32") {
                bail!("--quant: safetensors exports are f32");
            }
            let out = args.out.unwrap_or_else(|| found.run.join("hf"));
            let files = export::HfTokenizerFiles {
                tokenizer: &tok.tokenizer,
                tokenizer_json: &tok.text,
                tokenizer_model: None,
                chat_template: Some(fmlab_tokenizer::train::CHAT_TEMPLATE),
            };
            export::write_hf_folder(&spec, &mut c.weights, &files, &out)?;
            crate::out(&format!(
                "{}: Hugging Face llama folder (model.safetensors, config.json, tokenizer.json), step {}\n",
                out.display(),
                c.manifest.step
            ))
        }
        other => bail!("--format: {other:?} is not gguf or safetensors"),
    }
}
