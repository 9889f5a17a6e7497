//! Prints the sum of every intermediate tensor for a prompt of token ids, in the format of
//! llama.cpp's `llama-eval-callback`, to compare the two implementations layer by layer:
//! `cargo run --release -p fmlab-nn --example trace -- MODEL.gguf ID ID ...`; with
//! `FMLAB_TRACE_PREFILL=N`, the first N ids are evaluated silently and the rest are traced one
//! token at a time (as decoding runs them).

use fmlab_formats::GgufFile;
use fmlab_nn::{from_gguf, KvCache, Logits};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: trace MODEL.gguf ID ID ...")?;
    let ids: Vec<u32> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let file = GgufFile::open(&path)?;
    let model = from_gguf(&file)?;
    let mut cache = KvCache::new(&model.spec, ids.len().max(1));
    let mut print = |name: &str, values: &[f32]| {
        // Summed in f32 in storage order, as eval-callback does, so equal values print equal sums.
        let sum = values.iter().fold(0f32, |s, &v| s + v);
        let head: Vec<String> = values.iter().take(3).map(|v| format!("{v:.4}")).collect();
        println!("{name:>16}  sum = {sum:.6}  [{}]", head.join(", "));
    };
    match std::env::var("FMLAB_TRACE_PREFILL")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(n) if n < ids.len() => {
            model.forward(&ids[..n], &mut cache, Logits::Last)?;
            for &id in &ids[n..] {
                model.forward_traced(&[id], &mut cache, Logits::All, &mut print)?;
            }
        }
        _ => {
            model.forward_traced(&ids, &mut cache, Logits::All, &mut print)?;
        }
    }
    Ok(())
}
