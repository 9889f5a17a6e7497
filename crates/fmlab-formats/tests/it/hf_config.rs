use fmlab_formats::spec_from_hf_config;
use fmlab_spec::preset;

use crate::fixture;

#[test]
fn configs_match_presets() {
    let cases = [
        ("smollm2-135m-instruct.config.json", "smollm2-135m"),
        ("gpt2.config.json", "gpt2-small"),
        ("qwen2-0.5b.config.json", "qwen2-0.5b"),
        ("mistral-7b.config.json", "mistral-7b"),
        ("gemma-3-270m.config.json", "gemma3-270m"),
    ];
    for (file, name) in cases {
        let spec = spec_from_hf_config(&fixture(file)).unwrap();
        let expected = preset(name).unwrap();
        assert_eq!(spec.params(), expected.params(), "{file}");
        // Everything but the family name and derived defaults agrees field by field.
        let mut spec = spec;
        spec.architecture = expected.architecture.clone();
        assert_eq!(spec, expected, "{file}");
    }
}

#[test]
fn bad_configs_name_the_key() {
    let check = |text: &str, needle: &str| {
        let message = spec_from_hf_config(text).unwrap_err().to_string();
        assert!(
            message.contains(needle),
            "{message:?} should contain {needle:?}"
        );
    };
    check("not json", "config.json");
    check("[]", "JSON object");
    check("{}", "model_type");
    check(r#"{"model_type": "mamba"}"#, "mamba");
    check(r#"{"model_type": "llama"}"#, "hidden_size");
    check(
        r#"{"model_type": "llama", "hidden_size": -4, "num_attention_heads": 1}"#,
        "hidden_size",
    );
    check(
        r#"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 0, "num_hidden_layers": 1, "vocab_size": 10, "intermediate_size": 8}"#,
        "num_attention_heads",
    );
    check(
        r#"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 3, "num_hidden_layers": 1, "vocab_size": 10, "intermediate_size": 8}"#,
        "n_kv_heads",
    );
    check(
        r#"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1, "vocab_size": 10, "intermediate_size": 8, "tie_word_embeddings": "yes"}"#,
        "tie_word_embeddings",
    );
}
