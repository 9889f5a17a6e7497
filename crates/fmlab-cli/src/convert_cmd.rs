//! `fmlab convert`: a Hugging Face model folder to one GGUF file
//! (`fmlab_train::convert::write_converted`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use fmlab_train::export::Quant;

#[derive(Args)]
pub struct ConvertArgs {
    /// A Hugging Face model folder: config.json, *.safetensors (sharded through
    /// model.safetensors.index.json too), tokenizer.json and tokenizer_config.json;
    /// SentencePiece models (Gemma 3, Llama 2) with their tokenizer.model.
    hf_folder: PathBuf,
    /// The GGUF file to write (atomically).
    out: PathBuf,
    /// Tensor precision: f32, f16 or q8_0 (norms and biases stay f32).
    #[arg(long = "type", default_value = "f16")]
    quant: String,
    /// One JSON object instead of the summary line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ConvertArgs) -> Result<()> {
    let quant = Quant::parse(&args.quant)
        .with_context(|| format!("--type: {:?} is not f32, f16 or q8_0", args.quant))?;
    let c = fmlab_train::convert::write_converted(&args.hf_folder, &args.out, quant)?;
    if let Some(at) = c.tokenizer_json_differs_at {
        eprintln!(
            "warning: the folder's tokenizer.json tokenizes llama.cpp's check text otherwise than its tokenizer.model from token {at} on; the GGUF holds tokenizer.model's vocabulary, as llama.cpp's converter writes it"
        );
    }
    if args.json {
        let mut v = serde_json::to_value(&c)?;
        v["out"] = serde_json::json!(args.out);
        v["type"] = serde_json::json!(args.quant.to_ascii_lowercase());
        return crate::out(&format!("{v}\n"));
    }
    crate::out(&format!(
        "{}: GGUF ({}), {} {} layers, {} tensors, {} tokens ({}, pre-tokenizer {} by {}){}\n",
        args.out.display(),
        args.quant.to_ascii_lowercase(),
        c.architecture,
        c.spec.n_layers,
        c.tensors,
        c.vocab_size,
        match c.tokenizer_model.as_str() {
            "llama" => "SentencePiece",
            _ => "byte-level BPE",
        },
        c.pre_tokenizer,
        c.pre_tokenizer_from,
        if c.chat_template {
            ", chat template"
        } else {
            ""
        }
    ))
}
