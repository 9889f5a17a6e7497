//! `fmlab convert`: Hugging Face folders to GGUF, and HF folders accepted wherever a model
//! is. The round trips: a run exported as an HF folder and converted back generates the
//! run's own greedy tokens; the reference SmolLM2 turned into an HF folder and converted
//! back has the original's tokenizer metadata, chat template and ids; so has the reference
//! Gemma 3, whose SentencePiece vocabulary travels as tokenizer.model.

use std::path::Path;

use fmlab_formats::{GgufFile, Value};
use serde_json::Value as Json;

use super::train::{greedy, pretrain_args, world_shards};
use super::{fails, fmlab, json, scratch};

fn ok(args: &[&str]) {
    let out = fmlab(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn meta<'a>(f: &'a GgufFile, key: &str) -> &'a Value {
    f.gguf
        .get(key)
        .unwrap_or_else(|| panic!("{key} is missing"))
}

/// The tokenizer keys of two GGUF files are equal (present in both or absent in both).
fn same_tokenizer(a: &GgufFile, b: &GgufFile, keys: &[&str]) {
    for key in keys {
        let (x, y) = (a.gguf.get(key), b.gguf.get(key));
        // Long arrays: name the first entry that differs rather than print both.
        if let (Some(Value::Array(_, xs)), Some(Value::Array(_, ys))) = (x, y) {
            let at = xs.iter().zip(ys).position(|(p, q)| p != q);
            assert!(
                at.is_none() && xs.len() == ys.len(),
                "{key}: {} vs {} entries, first difference at {at:?}: {:?} vs {:?}",
                xs.len(),
                ys.len(),
                at.map(|i| &xs[i]),
                at.map(|i| &ys[i]),
            );
        }
        assert_eq!(x, y, "{key}");
    }
}

const TOKENIZER_KEYS: [&str; 10] = [
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.chat_template",
];

/// A run exported with `export --format safetensors` and converted back with `convert`
/// generates the run's own greedy tokens, from the HF folder and from the GGUF file; the
/// GGUF holds the spec, the tokenizer and the template that `export --format gguf` writes.
#[test]
fn convert_round_trips_an_exported_run() {
    let dir = scratch("convert-run");
    let (tok, shards) = world_shards(&dir);
    let run = dir.join("run");
    json(
        &[
            pretrain_args(
                shards.to_str().unwrap(),
                tok.to_str().unwrap(),
                run.to_str().unwrap(),
                "40",
            ),
            vec!["--json"],
        ]
        .concat(),
    );
    let run_s = run.to_str().unwrap();
    let hf = dir.join("hf");
    let hf_s = hf.to_str().unwrap();
    ok(&["export", run_s, "--format", "safetensors", "--out", hf_s]);
    let gguf = dir.join("converted.gguf");
    let gguf_s = gguf.to_str().unwrap();
    let report = json(&["convert", hf_s, gguf_s, "--type", "f32", "--json"]);
    assert_eq!(report["architecture"], "llama");
    assert_eq!(report["pre_tokenizer"], "llama-bpe");
    assert_eq!(report["pre_tokenizer_from"], "pre_tokenizer");
    assert_eq!(report["chat_template"], true);
    for prompt in ["The", "Kea was born in", "Answer: 4"] {
        let want = greedy(run_s, prompt);
        assert_eq!(want["tokens"].as_array().unwrap().len(), 16);
        for model in [hf_s, gguf_s] {
            let got = greedy(model, prompt);
            assert_eq!(got["tokens"], want["tokens"], "{model} {prompt:?}");
            assert_eq!(got["text"], want["text"], "{model} {prompt:?}");
            assert_eq!(got["prompt_tokens"], want["prompt_tokens"]);
        }
    }
    // The same spec, tokenizer and template as the run's own GGUF export.
    let exported = dir.join("exported.gguf");
    ok(&[
        "export",
        run_s,
        "--format",
        "gguf",
        "--out",
        exported.to_str().unwrap(),
    ]);
    let (ours, theirs) = (
        GgufFile::open(&gguf).unwrap(),
        GgufFile::open(&exported).unwrap(),
    );
    assert_eq!(
        fmlab_formats::spec_from_gguf(&ours.gguf).unwrap(),
        fmlab_formats::spec_from_gguf(&theirs.gguf).unwrap()
    );
    same_tokenizer(&ours, &theirs, &TOKENIZER_KEYS);
    assert_eq!(
        meta(&ours, "tokenizer.chat_template").as_str(),
        Some(fmlab_tokenizer::train::CHAT_TEMPLATE)
    );
    // Chat prompts: the same ids through the template from the run, the folder and the file.
    let chat = |model: &str| {
        json(&[
            "generate",
            model,
            "--prompt",
            "Where was Kea born?",
            "--chat",
            "--max-tokens",
            "8",
            "--temperature",
            "0",
            "--ignore-eos",
            "--json",
        ])
    };
    let want = chat(run_s);
    for model in [hf_s, gguf_s] {
        let got = chat(model);
        assert_eq!(got["tokens"], want["tokens"], "{model}");
        assert_eq!(got["prompt_tokens"], want["prompt_tokens"], "{model}");
    }
    // eval chat judges the folder and the file as it judges the run.
    let world = dir.join("world");
    let eval = |model: &str| {
        json(&[
            "eval",
            "chat",
            "--model",
            model,
            "--items",
            world.join("eval.jsonl").to_str().unwrap(),
            "--per-split",
            "2",
            "--max-tokens",
            "8",
            "--json",
        ])
    };
    let want = eval(run_s);
    assert_eq!(eval(hf_s), want);
    assert_eq!(eval(gguf_s), want);
    // Tokenizers by MODEL: run, HF folder and GGUF give the same ids.
    let ids =
        |model: &str| json(&["tokenize", model, "Kea was born in 1932.", "--json"])["ids"].clone();
    assert_eq!(ids(hf_s), ids(run_s));
    assert_eq!(ids(gguf_s), ids(run_s));
    // inspect reads the folder and the converted file alike.
    let a = json(&["inspect", hf_s, "--json"]);
    let b = json(&["inspect", gguf_s, "--json"]);
    assert_eq!(a["parameters"], b["parameters"]);
    assert_eq!(b["source"]["tensor_elements"], b["parameters"]);
    let c = json(&["inspect", run_s, "--json"]);
    assert_eq!(c["parameters"], b["parameters"]);
    assert_eq!(c["architecture"], b["architecture"]);
    // f16 and Q8_0 are smaller and run.
    let mut sizes = Vec::new();
    for ty in ["f16", "q8_0"] {
        let q = dir.join(format!("converted-{ty}.gguf"));
        ok(&["convert", hf_s, q.to_str().unwrap(), "--type", ty]);
        sizes.push(std::fs::metadata(&q).unwrap().len());
        let out = greedy(q.to_str().unwrap(), "The");
        assert_eq!(out["tokens"].as_array().unwrap().len(), 16);
    }
    assert!(sizes[0] < std::fs::metadata(&gguf).unwrap().len() && sizes[1] < sizes[0]);
    convert_refusals(&dir, &hf);
}

/// Bad folders and flags: one error line each, and no output file left behind.
fn convert_refusals(dir: &Path, hf: &Path) {
    let out = dir.join("bad.gguf");
    let out_s = out.to_str().unwrap();
    let hf_s = hf.to_str().unwrap();
    fails(&["convert", hf_s, out_s, "--type", "q4_0"], "--type");
    fails(
        &["convert", dir.join("missing").to_str().unwrap(), out_s],
        "not a folder",
    );
    let copy = |name: &str, skip: &[&str]| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for e in std::fs::read_dir(hf).unwrap() {
            let p = e.unwrap().path();
            let f = p.file_name().unwrap().to_str().unwrap().to_string();
            if !skip.contains(&f.as_str()) {
                std::fs::copy(&p, d.join(&f)).unwrap();
            }
        }
        d
    };
    let no_tok = copy("no-tokenizer", &["tokenizer.json"]);
    fails(
        &["convert", no_tok.to_str().unwrap(), out_s],
        "no tokenizer.json or tokenizer.model",
    );
    let no_weights = copy("no-weights", &["model.safetensors"]);
    fails(
        &["convert", no_weights.to_str().unwrap(), out_s],
        "no .safetensors file",
    );
    // A config with one layer more than the weights hold: the missing tensor is named.
    let deeper = copy("deeper", &[]);
    let mut config: Json =
        serde_json::from_str(&std::fs::read_to_string(deeper.join("config.json")).unwrap())
            .unwrap();
    let layers = config["num_hidden_layers"].as_u64().unwrap();
    config["num_hidden_layers"] = serde_json::json!(layers + 1);
    std::fs::write(deeper.join("config.json"), config.to_string()).unwrap();
    fails(
        &["convert", deeper.to_str().unwrap(), out_s],
        &format!("model.layers.{layers}.input_layernorm.weight is missing"),
    );
    // A wider config than the weights: the shape mismatch is named.
    let wider = copy("wider", &[]);
    config["num_hidden_layers"] = serde_json::json!(layers);
    let ffn = config["intermediate_size"].as_u64().unwrap();
    config["intermediate_size"] = serde_json::json!(ffn * 2);
    std::fs::write(wider.join("config.json"), config.to_string()).unwrap();
    fails(
        &["convert", wider.to_str().unwrap(), out_s],
        "mlp.gate_proj.weight is",
    );
    // Sharded: an index naming a shard that is not there.
    let sharded = copy("sharded", &[]);
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        r#"{"weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    fails(
        &["convert", sharded.to_str().unwrap(), out_s],
        "model-00002-of-00002.safetensors: listed in model.safetensors.index.json but missing",
    );
    // An architecture convert does not cover.
    let other = copy("other-arch", &[]);
    config["model_type"] = serde_json::json!("mamba");
    std::fs::write(other.join("config.json"), config.to_string()).unwrap();
    fails(&["convert", other.to_str().unwrap(), out_s], "mamba");
    // GPT-2: refused with the reason.
    let gpt2 = dir.join("gpt2");
    std::fs::create_dir_all(&gpt2).unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fmlab-train/tests/fixtures/hf/gpt2");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(f), gpt2.join(f)).unwrap();
    }
    // GPT-2 converts (tests/it/hf.rs checks its fused attn_qkv against transformers'
    // logits); a tokenizer with more tokens than its config's 64 is refused by id.
    std::fs::copy(hf.join("tokenizer.json"), gpt2.join("tokenizer.json")).unwrap();
    fails(
        &["convert", gpt2.to_str().unwrap(), out_s],
        "outside the model's vocabulary of 64",
    );
    // A SentencePiece-style tokenizer.json.
    let spm = copy("spm", &[]);
    let mut t: Json =
        serde_json::from_str(&std::fs::read_to_string(spm.join("tokenizer.json")).unwrap())
            .unwrap();
    t["model"]["byte_fallback"] = serde_json::json!(true);
    t["pre_tokenizer"] = Json::Null;
    t["decoder"] = Json::Null;
    std::fs::write(spm.join("tokenizer.json"), t.to_string()).unwrap();
    fails(&["convert", spm.to_str().unwrap(), out_s], "SentencePiece");
    // A damaged tokenizer.model, and a unigram one (llama.cpp runs those as T5's, not by
    // score): each named.
    let damaged = copy("damaged-spm", &[]);
    std::fs::write(damaged.join("tokenizer.model"), b"\x0a\xff\xff\x03abc").unwrap();
    fails(
        &["convert", damaged.to_str().unwrap(), out_s],
        "tokenizer.model",
    );
    let unigram = copy("unigram", &[]);
    let proto = fmlab_tokenizer::sentencepiece::ModelProto {
        pieces: vec![fmlab_tokenizer::sentencepiece::Piece {
            piece: "<unk>".into(),
            score: 0.0,
            kind: fmlab_tokenizer::TokenType::Unknown,
        }],
        model_type: fmlab_tokenizer::sentencepiece::UNIGRAM,
        byte_fallback: false,
        unk_id: 0,
        bos_id: -1,
        eos_id: -1,
        pad_id: -1,
        add_dummy_prefix: true,
        remove_extra_whitespaces: true,
    };
    std::fs::write(unigram.join("tokenizer.model"), proto.to_bytes()).unwrap();
    fails(&["convert", unigram.to_str().unwrap(), out_s], "unigram");
    assert!(!out.exists(), "a refused conversion wrote {out_s}");
    // The output is a folder.
    fails(&["convert", hf_s, dir.to_str().unwrap()], "a folder");
}

/// The reference SmolLM2 (Q4_1) dequantised into a Hugging Face folder, then converted:
/// the folder's tokenizer.json gives the GGUF tokenizer's ids on the fixture texts, and the
/// conversion finds SmolLM's pre-tokenizer by llama.cpp's hash and writes the original's
/// tokens, types, merges, special ids and chat template. Greedy tokens of the folder and
/// the converted file are equal, and their first ones equal to the original's on the
/// fixture prompt.
#[test]
fn convert_reference_model_through_an_hf_folder() {
    let dir = scratch("convert-smollm2");
    let original = super::smollm2();
    let file = GgufFile::open(&original).unwrap();
    let trainable = fmlab_train::models::load_trainable(&original).unwrap();
    let mut weights = trainable.weights;
    let tokenizer_json = fmlab_tokenizer::hf::tokenizer_json(&file.gguf).unwrap();
    let template = meta(&file, "tokenizer.chat_template").as_str().unwrap();
    let hf = dir.join("hf");
    let files = fmlab_train::export::HfTokenizerFiles {
        tokenizer: &trainable.chat.tokenizer,
        tokenizer_json: &tokenizer_json.to_string(),
        tokenizer_model: None,
        chat_template: Some(template),
    };
    fmlab_train::export::write_hf_folder(&trainable.spec, &mut weights, &files, &hf).unwrap();
    drop(weights);
    // The folder's tokenizer (the `tokenizers` crate over the tokenizer.json written from
    // the GGUF vocabulary) gives the original's ids.
    let ours = fmlab_train::models::load_tokenizer(hf.to_str().unwrap()).unwrap();
    let reference = fmlab_tokenizer::Tokenizer::from_gguf(&file.gguf).unwrap();
    let prompts: Json = serde_json::from_str(&fmlab_testkit::fixture("prompts.json")).unwrap();
    for text in &tokenizer_texts() {
        assert_eq!(
            ours.encode(text, false, true),
            reference.encode(text, false, true),
            "{text:?}"
        );
    }

    let gguf = dir.join("converted.gguf");
    let report = json(&[
        "convert",
        hf.to_str().unwrap(),
        gguf.to_str().unwrap(),
        "--type",
        "f32",
        "--json",
    ]);
    assert_eq!(report["pre_tokenizer"], "smollm");
    assert_eq!(report["pre_tokenizer_from"], "hash");
    let converted = GgufFile::open(&gguf).unwrap();
    same_tokenizer(
        &converted,
        &file,
        &[
            TOKENIZER_KEYS.as_slice(),
            &[
                "tokenizer.ggml.unknown_token_id",
                "tokenizer.ggml.add_eos_token",
                "llama.context_length",
                "llama.embedding_length",
                "llama.block_count",
                "llama.feed_forward_length",
                "llama.attention.head_count",
                "llama.attention.head_count_kv",
                "llama.rope.freq_base",
                "llama.attention.layer_norm_rms_epsilon",
                "llama.rope.dimension_count",
                "llama.vocab_size",
                "general.architecture",
            ],
        ]
        .concat(),
    );
    assert_eq!(
        fmlab_formats::spec_from_gguf(&converted.gguf).unwrap(),
        fmlab_formats::spec_from_gguf(&file.gguf).unwrap()
    );
    let prompt = prompts[0]["text"].as_str().unwrap();
    let short = |model: &str| {
        json(&[
            "generate",
            model,
            "--prompt",
            prompt,
            "--max-tokens",
            "4",
            "--temperature",
            "0",
            "--json",
        ])
    };
    let from_hf = short(hf.to_str().unwrap());
    let from_gguf = short(gguf.to_str().unwrap());
    let from_original = short(&original);
    // The folder and the converted file hold the same f32 numbers: the same tokens.
    assert_eq!(from_hf["tokens"], from_gguf["tokens"]);
    assert_eq!(from_gguf["prompt_tokens"], from_original["prompt_tokens"]);
    // The original computes with Q4_1 blocks and 8-bit activations, the conversion with
    // their f32 values: the first tokens (" Paris.\n\n", as llama.cpp's) agree; further
    // on the two arithmetics may choose differently (the sixth token does).
    assert_eq!(from_gguf["tokens"], from_original["tokens"]);
    // A chat prompt renders to the same ids through the converted template.
    let chat = |model: &str| {
        json(&[
            "generate",
            model,
            "--prompt",
            "What is 12 times 7?",
            "--chat",
            "--max-tokens",
            "1",
            "--temperature",
            "0",
            "--json",
        ])["prompt_tokens"]
            .clone()
    };
    assert_eq!(chat(gguf.to_str().unwrap()), chat(&original));
    assert_eq!(chat(hf.to_str().unwrap()), chat(&original));
}

/// The texts the tokenizer round trips are checked on: the fixture texts, llama.cpp's
/// check text and the fixture prompts.
fn tokenizer_texts() -> Vec<String> {
    let mut texts: Vec<String> = ["code.txt", "edge.txt", "english.txt", "multilingual.txt"]
        .iter()
        .map(|f| fmlab_testkit::fixture(&format!("texts/{f}")))
        .collect();
    texts.push(fmlab_tokenizer::hf::CHECK_TEXT.to_string());
    let prompts: Json = serde_json::from_str(&fmlab_testkit::fixture("prompts.json")).unwrap();
    for p in prompts.as_array().unwrap() {
        if let Some(t) = p["text"].as_str() {
            texts.push(t.to_string());
        }
    }
    texts
}

/// The reference Gemma 3 (Q4_K_M) dequantised into a Hugging Face folder
/// (`Gemma3ForCausalLM`, norms stored as w, a SentencePiece `tokenizer.model` and a
/// `tokenizer.json` written from the GGUF vocabulary), then converted as llama.cpp's
/// converter does: the GGUF has the original's tokens, scores, types, special ids and flags
/// (`add_space_prefix` false) and spec; the folder's tokenizer.json (merges generated from
/// the scores, as Hugging Face does) gives the GGUF tokenizer's ids; the folder and the
/// converted file generate the same greedy tokens, and their first ones are the original's.
#[test]
fn convert_gemma3_through_an_hf_folder_with_sentencepiece() {
    let dir = scratch("convert-gemma3");
    let original = super::gemma();
    let file = GgufFile::open(&original).unwrap();
    let model = fmlab_nn::from_gguf(&file).unwrap();
    let spec = model.spec.clone();
    let mut weights = fmlab_nn::train::Weights::from_transformer(&model).unwrap();
    drop(model);
    let tokenizer = fmlab_tokenizer::Tokenizer::from_gguf(&file.gguf).unwrap();
    let tokenizer_json = fmlab_tokenizer::hf::tokenizer_json(&file.gguf).unwrap();
    let proto = fmlab_tokenizer::sentencepiece::ModelProto::from_gguf(&file.gguf).unwrap();
    assert!(!proto.add_dummy_prefix && proto.byte_fallback);
    let hf = dir.join("hf");
    let files = fmlab_train::export::HfTokenizerFiles {
        tokenizer: &tokenizer,
        tokenizer_json: &tokenizer_json.to_string(),
        tokenizer_model: Some(&proto.to_bytes()),
        chat_template: None,
    };
    fmlab_train::export::write_hf_folder(&spec, &mut weights, &files, &hf).unwrap();
    drop(weights);
    let config: Json =
        serde_json::from_str(&std::fs::read_to_string(hf.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "Gemma3ForCausalLM");

    let ours = fmlab_train::models::load_tokenizer(hf.to_str().unwrap()).unwrap();
    for text in &tokenizer_texts() {
        assert_eq!(
            ours.encode(text, false, true),
            tokenizer.encode(text, false, true),
            "{text:?}"
        );
    }

    let gguf = dir.join("converted.gguf");
    let report = json(&[
        "convert",
        hf.to_str().unwrap(),
        gguf.to_str().unwrap(),
        "--type",
        "f32",
        "--json",
    ]);
    assert_eq!(report["tokenizer_model"], "llama");
    assert_eq!(report["pre_tokenizer_from"], "tokenizer.model");
    assert_eq!(report["tokenizer_json_differs_at"], Json::Null);
    let converted = GgufFile::open(&gguf).unwrap();
    same_tokenizer(
        &converted,
        &file,
        &[
            "tokenizer.ggml.model",
            "tokenizer.ggml.pre",
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.scores",
            "tokenizer.ggml.token_type",
            "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.padding_token_id",
            "tokenizer.ggml.add_bos_token",
            // (add_eos_token: the export writes the key only when set, as fmlab's own
            // GGUF files have it; Gemma's file has it false.)
            "tokenizer.ggml.add_space_prefix",
            "tokenizer.chat_template",
            "general.architecture",
            "gemma3.context_length",
            "gemma3.embedding_length",
            "gemma3.block_count",
            "gemma3.feed_forward_length",
            "gemma3.attention.head_count",
            "gemma3.attention.head_count_kv",
            "gemma3.attention.key_length",
            "gemma3.attention.value_length",
            "gemma3.attention.sliding_window",
            "gemma3.rope.freq_base",
            "gemma3.attention.layer_norm_rms_epsilon",
        ],
    );
    assert_eq!(
        fmlab_formats::spec_from_gguf(&converted.gguf).unwrap(),
        fmlab_formats::spec_from_gguf(&file.gguf).unwrap()
    );
    let prompts: Json = serde_json::from_str(&fmlab_testkit::fixture("prompts.json")).unwrap();
    let prompt = prompts[0]["text"].as_str().unwrap();
    let short = |model: &str, n: &str| {
        json(&[
            "generate",
            model,
            "--prompt",
            prompt,
            "--max-tokens",
            n,
            "--temperature",
            "0",
            "--json",
        ])
    };
    let from_hf = short(hf.to_str().unwrap(), "6");
    let from_gguf = short(gguf.to_str().unwrap(), "6");
    assert_eq!(from_hf["tokens"], from_gguf["tokens"]);
    assert_eq!(from_hf["prompt_tokens"], from_gguf["prompt_tokens"]);
    // The original computes with its quantised blocks, the conversion with their f32
    // values: the first tokens agree.
    let from_original = short(&original, "2");
    assert_eq!(from_gguf["prompt_tokens"], from_original["prompt_tokens"]);
    let first = |v: &Json| v["tokens"].as_array().unwrap()[..2].to_vec();
    assert_eq!(first(&from_gguf), first(&from_original));
}
