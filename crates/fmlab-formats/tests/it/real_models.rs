//! The reference models of REFERENCE.md, fetched from PyPI by scripts/fetch-models.sh.

use fmlab_formats::{spec_from_gguf, GgmlType, GgufFile};
use fmlab_spec::preset;

use crate::model;

fn type_counts(file: &GgufFile) -> Vec<(GgmlType, usize)> {
    let mut counts: Vec<(GgmlType, usize)> = Vec::new();
    for t in &file.gguf.tensors {
        match counts.iter_mut().find(|(ty, _)| *ty == t.ggml_type) {
            Some((_, n)) => *n += 1,
            None => counts.push((t.ggml_type, 1)),
        }
    }
    counts.sort_by_key(|(t, _)| t.id());
    counts
}

#[test]
fn smollm2_gguf() {
    let file = GgufFile::open(model("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let g = &file.gguf;
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(g.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(g.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert!(g
        .get_str("tokenizer.chat_template")
        .unwrap()
        .contains("<|im_start|>"));
    assert_eq!(
        type_counts(&file),
        vec![
            (GgmlType::F32, 61),
            (GgmlType::Q4_1, 210),
            (GgmlType::Q8_0, 1)
        ]
    );
    let spec = spec_from_gguf(g).unwrap();
    // The parameter count equals the sum of the file's tensor element counts…
    assert_eq!(spec.params().total, g.total_elements());
    assert_eq!(spec.params().total, 134_515_008);
    // …and the architecture equals the metadata (and the published config).
    assert_eq!(spec, preset("smollm2-135m").unwrap());
    // Tensor data is reachable and sized by its type.
    let embd = g.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.dims, vec![576, 49_152]);
    assert_eq!(file.tensor_data(embd).unwrap().len() as u64, embd.n_bytes);
}

#[test]
fn gemma3_gguf() {
    let file = GgufFile::open(model("gemma-3-270m-q4_k_m.gguf")).unwrap();
    let g = &file.gguf;
    assert_eq!(g.get_str("general.architecture").unwrap(), "gemma3");
    assert_eq!(g.get_str("tokenizer.ggml.model").unwrap(), "llama");
    assert_eq!(
        type_counts(&file),
        vec![
            (GgmlType::F32, 109),
            (GgmlType::Q5_0, 81),
            (GgmlType::Q8_0, 10),
            (GgmlType::Q4_K, 27),
            (GgmlType::Q6_K, 9)
        ]
    );
    let spec = spec_from_gguf(g).unwrap();
    assert_eq!(spec.params().total, g.total_elements());
    let mut expected = preset("gemma3-270m").unwrap();
    expected.context_length = spec.context_length;
    assert_eq!(spec, expected);
}
