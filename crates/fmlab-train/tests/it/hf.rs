//! Hugging Face folders as a base: tiny random Llama, Gemma 3 and GPT-2 models saved by
//! `transformers` (`scripts/hf_fixtures.py`), loaded by `weights_from_hf`, give the logits
//! `transformers` computed for them — on the training forward pass and on the inference
//! path. This is what checks the name maps, Llama's RoPE row permutation, Gemma's 1 + w
//! norms and GPT-2's transposed, fused `Conv1D` maps against an independent implementation.

use std::path::PathBuf;

use fmlab_nn::{KvCache, Logits};
use fmlab_train::export::{weights_from_hf, Quant};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/hf/{name}"))
}

#[test]
fn hugging_face_folders_give_transformers_logits() {
    let scratch = super::scratch("hf-gguf");
    for (name, arch) in [("llama", "llama"), ("gemma3", "gemma3"), ("gpt2", "gpt2")] {
        let dir = fixture(name);
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("logits.json")).unwrap())
                .unwrap();
        let ids: Vec<u32> = reference["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let want: Vec<f64> = reference["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
            .collect();
        let (spec, weights) = weights_from_hf(&dir).unwrap();
        assert_eq!(spec.architecture, arch);
        assert_eq!(want.len(), ids.len() * spec.vocab_size as usize, "{name}");
        let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
        // The inference path keeps keys and values in f16 as llama.cpp does: looser there.
        let check = |what: &str, got: &[f32], tolerance: f64| {
            let worst = got
                .iter()
                .zip(&want)
                .map(|(&g, &w)| (g as f64 - w).abs())
                .fold(0f64, f64::max);
            assert!(
                worst < tolerance * scale.max(1.0),
                "{name} ({what}): largest difference {worst} (logits up to {scale})"
            );
        };
        let trained = fmlab_nn::train::logits(&spec, &weights, &ids).unwrap();
        check("training forward", &trained, 1e-4);
        let model = weights.to_transformer(&spec).unwrap();
        let mut cache = KvCache::new(&spec, ids.len());
        let inferred = model.forward(&ids, &mut cache, Logits::All).unwrap();
        check("inference", &inferred, 2e-3);
        // Converted to GGUF (`fmlab convert`'s tensors and keys; GPT-2's query, key and
        // value fused into attn_qkv as llama.cpp lays them out) and loaded back from it.
        let mut weights = weights;
        let (w, _) =
            fmlab_train::convert::model_gguf(&spec, &mut weights, Quant::F32, name).unwrap();
        // (scripts/check_gguf_with_llamacpp.py runs these files in llama.cpp.)
        let path = scratch.join(format!("{name}.gguf"));
        w.write(&path).unwrap();
        let file = fmlab_formats::GgufFile::open(&path).unwrap();
        if name == "gpt2" {
            assert!(file.gguf.tensor("blk.0.attn_qkv.weight").is_some());
            assert!(file.gguf.tensor("blk.0.attn_q.weight").is_none());
        }
        assert_eq!(fmlab_formats::spec_from_gguf(&file.gguf).unwrap(), spec);
        let model = fmlab_nn::from_gguf(&file).unwrap();
        let mut cache = KvCache::new(&spec, ids.len());
        let from_gguf = model.forward(&ids, &mut cache, Logits::All).unwrap();
        check("inference from GGUF", &from_gguf, 2e-3);
        assert_eq!(
            from_gguf, inferred,
            "{name}: GGUF and folder give other logits"
        );
    }
}

/// A folder whose tensor has the wrong shape, or lacks one, is refused with its name.
#[test]
fn damaged_hugging_face_folders_name_the_tensor() {
    let dir = super::scratch("hf-bad");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("gpt2").join(f), dir.join(f)).unwrap();
    }
    // One layer more than the file holds.
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&config).unwrap();
    v["n_layer"] = serde_json::json!(3);
    std::fs::write(dir.join("config.json"), v.to_string()).unwrap();
    let err = weights_from_hf(&dir).err().unwrap().to_string();
    assert!(err.contains("h.2.ln_1.weight is missing"), "{err}");
    // A wider model than the file holds.
    v["n_layer"] = serde_json::json!(2);
    v["n_embd"] = serde_json::json!(64);
    std::fs::write(dir.join("config.json"), v.to_string()).unwrap();
    let err = weights_from_hf(&dir).err().unwrap().to_string();
    assert!(err.contains("wte.weight is [64, 32]"), "{err}");
}
