//! `fmlab export`: a training run's checkpoint as a GGUF file (for `fmlab generate` and
//! llama.cpp) or a Hugging Face folder (for transformers).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use fmlab_formats::Value;
use fmlab_tokenizer::train::CHAT_TEMPLATE;
use fmlab_train::export::{self, Quant};

#[derive(Args)]
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
    let merged = crate::model::merged_weights(&found)?;
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
            let mut meta: Vec<(String, Value)> = trained
                .gguf_metadata()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            meta.push((
                "tokenizer.chat_template".into(),
                Value::String(CHAT_TEMPLATE.into()),
            ));
            let w = export::gguf(&spec, &mut c.weights, quant, &name, meta)?;
            let out = args.out.unwrap_or_else(|| {
                found
                    .run
                    .join(format!("model-{}.gguf", args.quant.to_ascii_lowercase()))
            });
            w.write(&out)?;
            crate::out(&format!(
                "{}: GGUF ({}), step {}\n",
                out.display(),
                args.quant.to_ascii_lowercase(),
                c.manifest.step
            ))
        }
        "safetensors" => {
            if !args.quant.eq_ignore_ascii_case("f32") {
                bail!("--quant: safetensors exports are f32");
            }
            let tokenizer = &tok.tokenizer;
            let (bos, eos) = (tokenizer.vocab.bos, tokenizer.vocab.eos);
            let (bytes, config) = export::hf_safetensors(&spec, &mut c.weights, bos, eos)?;
            let out = args.out.unwrap_or_else(|| found.run.join("hf"));
            std::fs::create_dir_all(&out).with_context(|| format!("{}", out.display()))?;
            let write = |name: &str, bytes: &[u8]| -> Result<()> {
                fmlab_formats::write_atomically(&out.join(name), bytes)?;
                Ok(())
            };
            write("model.safetensors", &bytes)?;
            write("config.json", &serde_json::to_vec_pretty(&config)?)?;
            write("tokenizer.json", tok.text.as_bytes())?;
            let piece =
                |id: Option<u32>| id.and_then(|i| tokenizer.piece(i).ok().map(String::from));
            let tok_config = serde_json::json!({
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": piece(bos),
                "eos_token": piece(eos),
                "pad_token": piece(tokenizer.vocab.pad),
                "chat_template": CHAT_TEMPLATE,
                "model_max_length": spec.context_length,
            });
            write(
                "tokenizer_config.json",
                &serde_json::to_vec_pretty(&tok_config)?,
            )?;
            crate::out(&format!(
                "{}: Hugging Face llama folder (model.safetensors, config.json, tokenizer.json), step {}\n",
                out.display(),
                c.manifest.step
            ))
        }
        other => bail!("--format: {other:?} is not gguf or safetensors"),
    }
}
