//! Prints the sum of every intermediate tensor for a prompt of token ids, in the format of
//! llama.cpp's `llama-eval-callback`, to compare the two implementations layer by layer:
//! `cargo run --release -p fmlab-nn --example trace -- MODEL.gguf ID ID ...`; with
//! `FMLAB_TRACE_PREFILL=N`, the first N ids are evaluated silently and the rest are traced one
//! token at a time (as decoding runs them); with `FMLAB_TRACE_DUMP=NAME`, that tensor is also
//! written whole to `$TMPDIR/fmlab_NAME.f32`.

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
        // FNV-1a over the bits, in storage order: equal hashes mean bit-identical tensors.
        let hash = values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
            (h ^ v.to_bits() as u64).wrapping_mul(0x0100_0000_01b3)
        });
        if std::env::var("FMLAB_TRACE_DUMP").is_ok_and(|d| d == name) {
            // The whole tensor as raw little-endian f32, to diff element by element.
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let path = std::env::temp_dir().join(format!("fmlab_{name}.f32"));
            if let Err(e) = std::fs::write(&path, bytes) {
                eprintln!("{}: {e}", path.display());
            }
        }
        let head: Vec<String> = values.iter().take(3).map(|v| format!("{v:.4}")).collect();
        println!(
            "{name:>16}  sum = {sum:.6}  hash = {hash:016x}  [{}]",
            head.join(", ")
        );
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
