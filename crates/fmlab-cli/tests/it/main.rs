//! The `fmlab` binary end to end: the JSON fields other tools read, the files it writes,
//! and one clear error line (never a panic) for bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod compare;
mod consistency;
mod convert;
mod curate;
mod eval_run;
mod post;
mod quantize;
mod sampling;
mod train;

fn fmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fmlab"))
        .args(args)
        .output()
        .expect("running fmlab")
}

fn json(args: &[&str]) -> Value {
    let out = fmlab(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs a command that must fail: one `error:` line naming `needle`, no panic.
fn fails(args: &[&str], needle: &str) {
    let out = fmlab(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr:?} should contain {needle:?}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert_eq!(
        out.status.code(),
        Some(
            if stderr.starts_with("error: invalid value") || stderr.contains("Usage") {
                2
            } else {
                1
            }
        ),
        "{stderr}"
    );
}

fn smollm2() -> String {
    fmlab_testkit::model(fmlab_testkit::SMOLLM2)
        .to_string_lossy()
        .into_owned()
}

fn scratch(name: &str) -> fmlab_testkit::Scratch {
    fmlab_testkit::Scratch::new(&format!("cli-test-{name}"))
}

#[test]
fn inspect_gguf_json() {
    let v = json(&["inspect", &smollm2(), "--json"]);
    assert_eq!(v["parameters"], 134_515_008);
    assert_eq!(v["source"]["tensor_elements"], 134_515_008);
    assert_eq!(v["parameters_non_embedding"], 106_203_456);
    assert_eq!(v["kv_cache_bytes_per_token"], 2 * 30 * 3 * 64 * 2);
    assert_eq!(v["architecture"]["n_kv_heads"], 3);
    assert_eq!(v["architecture"]["positions"]["base"], 100_000.0);
    assert_eq!(v["source"]["tensor_types"]["q4_1"], 210);
    for p in ["f32", "f16", "bf16", "q8_0", "q4_0"] {
        assert!(v["memory_bytes"][p].as_u64().unwrap() > 0, "{p}");
    }
    assert_eq!(v["memory_bytes"]["f32"], 4 * 134_515_008u64);
    assert!(v["flops_per_token_forward"].as_f64().unwrap() > 2.0 * 106_203_456.0);
    assert_eq!(v["flops_per_token_training"], 6.0 * 134_515_008.0);
    assert!(v["source"]["chat_template"]
        .as_str()
        .unwrap()
        .contains("im_start"));
}

#[test]
fn inspect_presets_and_table() {
    let v = json(&["inspect", "--preset", "llama2-7b", "--json"]);
    assert_eq!(v["parameters"], 6_738_415_616u64);
    let v = json(&[
        "inspect",
        "--preset",
        "gpt2-medium",
        "--json",
        "--seq-len",
        "1024",
    ]);
    assert_eq!(v["parameters"], 354_823_168);
    assert_eq!(v["seq_len"], 1024);
    let out = fmlab(&["inspect", "--preset", "gemma3-270m"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("GeGLU") && table.contains("sliding window"),
        "{table}"
    );
    assert!(table.contains("every 6th layer global"), "{table}");
}

#[test]
fn inspect_hf_folder_and_safetensors() {
    let dir = scratch("hf");
    let config = include_str!("../../../fmlab-formats/tests/it/fixtures/gpt2.config.json");
    std::fs::write(dir.join("config.json"), config).unwrap();
    // A tiny safetensors shard: the folder's tensors are counted and compared.
    let data = vec![0u8; 4 * 6];
    let st =
        fmlab_formats::safetensors_bytes(&[("w", fmlab_formats::Dtype::F32, &[2, 3], &data)], &[])
            .unwrap();
    std::fs::write(dir.join("model.safetensors"), st).unwrap();
    let v = json(&["inspect", dir.to_str().unwrap(), "--json"]);
    assert_eq!(v["parameters"], 124_439_808);
    assert_eq!(v["source"]["tensor_elements"], 6);
    let v = json(&[
        "inspect",
        dir.join("config.json").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["architecture"]["architecture"], "gpt2");
    // A lone safetensors file without a config: tensors only.
    let lone = scratch("lone");
    std::fs::copy(dir.join("model.safetensors"), lone.join("m.safetensors")).unwrap();
    let v = json(&[
        "inspect",
        lone.join("m.safetensors").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["parameters"], 6);
    assert!(v["architecture"].is_null());
}

#[test]
fn inspect_errors() {
    fails(&["inspect", "/no/such/model.gguf"], "no such file");
    let dir = scratch("bad");
    // A truncated model: the first kilobyte of the real file.
    let bytes = std::fs::read(smollm2()).unwrap();
    let cut = dir.join("cut.gguf");
    std::fs::write(&cut, &bytes[..1024]).unwrap();
    fails(&["inspect", cut.to_str().unwrap()], "truncated or corrupt");
    std::fs::write(&cut, &bytes[..5_000_000]).unwrap();
    fails(&["inspect", cut.to_str().unwrap()], "run past the end");
    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, b"GGUF\x07\0\0\0").unwrap();
    fails(&["inspect", junk.to_str().unwrap()], "version 7");
    let txt = dir.join("notes.txt");
    std::fs::write(&txt, b"hello").unwrap();
    fails(&["inspect", txt.to_str().unwrap()], "not a model file");
    fails(&["inspect", dir.to_str().unwrap()], "config.json");
    fails(&["inspect", "--preset", "gpt5"], "invalid value");
    fails(
        &["inspect", "--preset", "gpt2-small", "--seq-len", "0"],
        "--seq-len",
    );
}

#[test]
fn plan_json_fields() {
    let v = json(&["plan", "--compute", "5.76e23", "--json"]);
    assert!((v["params"].as_f64().unwrap() / 32.2e9 - 1.0).abs() < 0.005);
    assert!((v["tokens"].as_f64().unwrap() / 2.98e12 - 1.0).abs() < 0.005);
    for field in ["flops", "loss", "tokens_per_param"] {
        assert!(v[field].as_f64().is_some(), "{field}");
    }
    let v = json(&[
        "plan",
        "--params",
        "7B",
        "--tokens",
        "1.4T",
        "--hardware",
        "h100",
        "--devices",
        "8",
        "--mfu",
        "0.5",
        "--price-per-hour",
        "2",
        "--json",
    ]);
    let flops = 6.0 * 7e9 * 1.4e12;
    assert_eq!(v["flops"].as_f64().unwrap(), flops);
    let seconds = flops / (989.4e12 * 0.5 * 8.0);
    assert!((v["seconds"].as_f64().unwrap() / seconds - 1.0).abs() < 1e-9);
    assert!((v["cost"].as_f64().unwrap() / (2.0 * 8.0 * seconds / 3600.0) - 1.0).abs() < 1e-9);
    // Without a price the cost is present and null.
    let v = json(&["plan", "--compute", "1e21", "--hardware", "2e14", "--json"]);
    assert!(v["cost"].is_null() && v["seconds"].as_f64().is_some());
    let v = json(&[
        "plan",
        "--preset",
        "smollm2-135m",
        "--inference-tokens",
        "1T",
        "--json",
    ]);
    assert!(v["inference"]["params"].as_f64().unwrap() < v["params"].as_f64().unwrap());
    let v = json(&[
        "plan",
        "--compute",
        "1e21",
        "--unique-tokens",
        "5B",
        "--json",
    ]);
    assert!(v["data_constrained"]["epochs"].as_f64().unwrap() > 1.0);
    // --unique-tokens takes Muennighoff et al.'s own fit unless a law is named.
    assert_eq!(v["law"], "muennighoff");
    assert_eq!(v["data_constrained"]["r_star_tokens"], 15.387756);
    let mixed = json(&[
        "plan",
        "--compute",
        "1e21",
        "--unique-tokens",
        "5B",
        "--law",
        "chinchilla",
        "--json",
    ]);
    assert_eq!(mixed["law"], "chinchilla");
    assert_eq!(mixed["data_constrained"]["r_star_tokens"], 15.39);
    let v = json(&["plan", "--tokens", "300B", "--law", "epoch", "--json"]);
    assert_eq!(v["law"], "epoch");
}

#[test]
fn plan_errors_name_the_flag() {
    fails(&["plan"], "--compute");
    fails(
        &[
            "plan",
            "--compute",
            "1e21",
            "--params",
            "1B",
            "--tokens",
            "1T",
        ],
        "at most two",
    );
    fails(&["plan", "--compute", "lots"], "--compute");
    fails(&["plan", "--compute=-5"], "--compute");
    fails(&["plan", "--compute", "1e21", "--mfu", "1.5"], "--mfu");
    fails(
        &["plan", "--compute", "1e21", "--devices", "0"],
        "--devices",
    );
    fails(
        &["plan", "--compute", "1e21", "--hardware", "tpu9"],
        "--hardware",
    );
    fails(
        &[
            "plan",
            "--compute",
            "1e21",
            "--law",
            "kaplan",
            "--unique-tokens",
            "1B",
        ],
        "--unique-tokens",
    );
    fails(
        &[
            "plan",
            "--params",
            "1B",
            "--inference-tokens",
            "1T",
            "--law",
            "kaplan",
        ],
        "--inference-tokens",
    );
}

fn write_runs(path: &Path) {
    let (e, a, b, alpha, beta) = (1.69f64, 406.4f64, 410.7f64, 0.34f64, 0.28f64);
    let mut csv = String::from("# runs drawn exactly from Chinchilla's law\nloss,params,tokens\n");
    for i in 0..5 {
        for j in 0..5 {
            let n = 1e7 * 10f64.powf(i as f64 * 0.6);
            let d = 1e8 * 10f64.powf(j as f64 * 0.7);
            let loss = e + a / n.powf(alpha) + b / d.powf(beta);
            csv.push_str(&format!("{loss},{n},{d}\n"));
        }
    }
    std::fs::write(path, csv).unwrap();
}

#[test]
fn plan_fit_writes_constants_and_a_png() {
    let dir = scratch("fit");
    let runs = dir.join("runs.csv");
    write_runs(&runs);
    let v = json(&["plan", "fit", runs.to_str().unwrap(), "--json"]);
    assert!((v["E"].as_f64().unwrap() / 1.69 - 1.0).abs() < 0.01, "{v}");
    assert!(
        (v["alpha"].as_f64().unwrap() / 0.34 - 1.0).abs() < 0.02,
        "{v}"
    );
    assert!(
        (v["beta"].as_f64().unwrap() / 0.28 - 1.0).abs() < 0.02,
        "{v}"
    );
    let a = v["a"].as_f64().unwrap();
    assert!(
        (a - v["beta"].as_f64().unwrap()
            / (v["alpha"].as_f64().unwrap() + v["beta"].as_f64().unwrap()))
        .abs()
            < 1e-12
    );
    for key in ["A", "B", "b"] {
        assert!(v[key].as_f64().is_some(), "{key}");
    }
    let png = std::fs::read(dir.join("runs.fit.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 10_000,
        "a plot with axes and labels, not an empty image"
    );
    let other = dir.join("plot.png");
    let out = fmlab(&[
        "plan",
        "fit",
        runs.to_str().unwrap(),
        "--plot",
        other.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("N_opt ∝ C^"));
    assert!(other.is_file());
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "params,tokens\n1,2\n").unwrap();
    fails(&["plan", "fit", bad.to_str().unwrap()], "\"loss\"");
    std::fs::write(&bad, "params,tokens,loss\n1e9,2e10,3\n").unwrap();
    fails(&["plan", "fit", bad.to_str().unwrap()], "at least 5 runs");
    fails(&["plan", "fit", "/no/such.csv"], "/no/such.csv");
}

fn gemma() -> String {
    fmlab_testkit::model(fmlab_testkit::GEMMA3)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn tokenize_matches_the_reference_ids() {
    let text = "The capital of France is";
    let v = json(&["tokenize", &smollm2(), text, "--json"]);
    assert_eq!(v["ids"], serde_json::json!([504, 3575, 282, 4649, 314]));
    assert_eq!(v["pieces"][1], "Ġcapital");
    // Gemma adds its BOS when asked.
    let v = json(&["tokenize", &gemma(), text, "--bos", "--json"]);
    assert_eq!(v["ids"], serde_json::json!([2, 818, 5279, 529, 7001, 563]));
    // Special-token text is plain text unless --special.
    let plain = json(&["tokenize", &smollm2(), "<|im_start|>", "--json"]);
    assert!(plain["ids"].as_array().unwrap().len() > 1);
    let special = json(&[
        "tokenize",
        &smollm2(),
        "<|im_start|>",
        "--special",
        "--json",
    ]);
    assert_eq!(special["ids"], serde_json::json!([1]));
}

#[test]
fn generate_json_and_streaming() {
    let v = json(&[
        "generate",
        &smollm2(),
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "8",
        "--temperature",
        "0",
        "--json",
    ]);
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 8);
    // llama.cpp's first greedy tokens for this prompt: " Paris.\n\nThe".
    assert_eq!(
        &tokens[..4],
        &serde_json::json!([7042, 30, 198, 198]).as_array().unwrap()[..]
    );
    assert!(v["text"].as_str().unwrap().starts_with(" Paris."));
    assert_eq!(v["prompt_tokens"], 5);
    assert!(v["prefill_tokens_per_second"].as_f64().unwrap() > 0.0);
    assert!(v["decode_tokens_per_second"].as_f64().unwrap() > 0.0);
    // Streaming prints exactly the generated text, stats go to stderr.
    let out = fmlab(&[
        "generate",
        &smollm2(),
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "8",
        "--temperature",
        "0",
    ]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end_matches('\n'),
        v["text"].as_str().unwrap()
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("prefill") && stderr.contains("decode"),
        "{stderr}"
    );
}

#[test]
fn seeded_sampling_is_reproducible() {
    let run = |seed: &str| {
        json(&[
            "generate",
            &smollm2(),
            "--prompt",
            "Once upon a time",
            "--max-tokens",
            "12",
            "--temperature",
            "1.0",
            "--seed",
            seed,
            "--json",
            "--ignore-eos",
        ])["tokens"]
            .clone()
    };
    assert_eq!(run("7"), run("7"));
    assert_ne!(run("7"), run("8"));
}

#[test]
fn chat_and_messages() {
    let v = json(&[
        "generate",
        &smollm2(),
        "--prompt",
        "What is 12 times 7?",
        "--chat",
        "--max-tokens",
        "4",
        "--temperature",
        "0",
        "--json",
    ]);
    // The rendered prompt is llama.cpp's (39 tokens with SmolLM2's default system turn).
    assert_eq!(v["prompt_tokens"], 39);
    let dir = scratch("messages");
    let file = dir.join("m.json");
    std::fs::write(&file, r#"[{"role": "system", "content": "You are a concise assistant."}, {"role": "user", "content": "Name three colours of the rainbow."}]"#).unwrap();
    let v = json(&[
        "generate",
        &smollm2(),
        "--messages",
        file.to_str().unwrap(),
        "--max-tokens",
        "2",
        "--temperature",
        "0",
        "--json",
    ]);
    assert_eq!(v["prompt_tokens"], 27);
    std::fs::write(&file, "{not json").unwrap();
    fails(
        &["generate", &smollm2(), "--messages", file.to_str().unwrap()],
        "JSON list",
    );
    fails(
        &["generate", &gemma(), "--prompt", "hi", "--chat"],
        "no chat template",
    );
}

#[test]
fn generate_errors() {
    fails(
        &["generate", "/no/such.gguf", "--prompt", "x"],
        "no such file",
    );
    fails(
        &["generate", "not-a-model", "--prompt", "x"],
        "not a known model",
    );
    fails(&["generate", &smollm2()], "--prompt");
    fails(
        &["generate", &smollm2(), "--prompt", "x", "--temperature=-1"],
        "--temperature",
    );
    // A prompt longer than the context.
    let long = "word ".repeat(300);
    fails(
        &["generate", &smollm2(), "--prompt", &long, "--ctx", "64"],
        "context holds 64",
    );
    // A truncated model file.
    let dir = scratch("gen-bad");
    let bytes = std::fs::read(smollm2()).unwrap();
    let cut = dir.join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &["generate", cut.to_str().unwrap(), "--prompt", "x"],
        "run past the end",
    );
    // An unknown architecture.
    let mut w = fmlab_formats::GgufWriter::new();
    w.metadata(
        "general.architecture",
        fmlab_formats::Value::String("mamba".into()),
    );
    let arch = dir.join("mamba.gguf");
    w.write(&arch).unwrap();
    fails(
        &["generate", arch.to_str().unwrap(), "--prompt", "x"],
        "mamba",
    );
    fails(&["pull", "llama-70b"], "unknown model");
}

/// Refusals with one clear line each, instead of silent garbage.
#[test]
fn bad_requests_are_refused_with_the_rule() {
    let dir = scratch("refusals");
    fails(
        &["plan", "--compute", "-5"],
        "\"-5\": must be a finite number > 0",
    );
    fails(
        &["generate", &smollm2(), "--prompt", "x", "--top-k", "1.5"],
        "must be an integer",
    );
    fails(
        &["generate", &smollm2(), "--prompt", "x", "--ctx", "100000"],
        "--ctx 100000: the model's context is 8192 tokens",
    );
    fails(
        &["generate", &smollm2(), "--prompt", "x", "--regex", "("],
        "--regex: regex parse error",
    );
    fails(&["export", &smollm2()], "a file, not a training run");
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    fails(
        &[
            "eval",
            "chat",
            "--model",
            &smollm2(),
            "--items",
            empty.to_str().unwrap(),
        ],
        "no items",
    );
    // A tokenizer that runs out of pairs to merge says so.
    let text = dir.join("tiny.txt");
    std::fs::write(&text, "abab abab abab").unwrap();
    let tok = dir.join("tiny.json");
    let out = fmlab(&[
        "tokenizer",
        "train",
        text.to_str().unwrap(),
        "--vocab-size",
        "5000",
        "--out",
        tok.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not the 5000 asked"), "{stderr}");
}

/// The chat's commands from piped input: settings, the context used, saving and loading
/// the conversation, a block of several lines as one message, the token-limit notice.
#[test]
fn chat_commands_save_load_and_blocks() {
    use std::io::Write as _;
    let dir = scratch("chat-commands");
    let saved = dir.join("conversation.json");
    let script = format!(
        "/help\n/set top-k many\n/set temperature 0\n/set max-tokens 4\n/set\nWhat is 12 times 7?\n/context\n/save {s}\n/reset\n/load {s}\n\"\"\"\nFirst line\nsecond line\n\"\"\"\n/load {missing}\n/quit\n",
        s = saved.display(),
        missing = dir.join("missing.json").display()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_fmlab"))
        .args([
            "chat",
            &smollm2(),
            "--system",
            "Be brief.",
            "--threads",
            "1",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("/save FILE"), "help: {stderr}");
    assert!(
        stderr.contains("--top-k: \"many\" is not a whole number"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(temperature = 0; from the next reply)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("max-tokens 4"),
        "/set shows the settings: {stderr}"
    );
    assert!(stderr.contains("reached the limit of 4 tokens"), "{stderr}");
    assert!(
        stderr.contains("tokens used by the last turn; 2 turns"),
        "{stderr}"
    );
    assert!(
        stderr.contains("kept: the system turn \"Be brief.\""),
        "{stderr}"
    );
    assert!(stderr.contains("(loaded 2 turns from"), "{stderr}");
    assert!(
        stderr.contains("missing.json"),
        "a failed /load is named: {stderr}"
    );
    // Two replies: the question, and the block of two lines as one message.
    assert_eq!(stderr.matches("generated 4 tokens").count(), 2, "{stderr}");
    let turns: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let roles: Vec<&str> = turns
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant"]);
    assert_eq!(turns[1]["content"], "What is 12 times 7?");
    // What /save writes, --messages starts from.
    let resumed = Command::new(env!("CARGO_BIN_EXE_fmlab"))
        .args(["chat", &smollm2(), "--messages", saved.to_str().unwrap()])
        .arg("--threads")
        .arg("1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(stderr.contains("(loaded 2 turns from"), "{stderr}");
}

#[test]
fn chat_repl_keeps_the_conversation() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_fmlab"))
        .args([
            "chat",
            &smollm2(),
            "--max-tokens",
            "8",
            "--temperature",
            "0",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"What is 12 times 7?\n/bogus\n/system You are terse.\nAnd 3 times 3?\n/reset\n/quit\nnever read\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown command /bogus"), "{stderr}");
    assert!(stderr.contains("system turn set"), "{stderr}");
    assert!(stderr.contains("conversation cleared"), "{stderr}");
    // Two replies were generated, each followed by its stats line.
    assert_eq!(stderr.matches("generated").count(), 2, "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    // A base model has no template: one clear error.
    fails(&["chat", &gemma()], "no chat template");
}

#[test]
fn tokenize_a_tokenizer_json() {
    let path = fmlab_testkit::root().join("fixtures/tokenizer-json/tokenizer.json");
    let v = json(&[
        "tokenize",
        path.to_str().unwrap(),
        "<|im_start|>user hi",
        "--json",
    ]);
    assert_eq!(v["ids"][0], 1);
    assert_eq!(v["pieces"][0], "<|im_start|>");
}

#[test]
fn world_writes_a_seeded_world_and_its_stats() {
    let dir = scratch("world");
    let run = |out: &Path, seed: &str| {
        json(&[
            "world",
            "--seed",
            seed,
            "--size",
            "200kB",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ])
    };
    let a = run(&dir.join("a"), "4");
    let b = run(&dir.join("b"), "4");
    assert_eq!(a["corpus_bytes"], b["corpus_bytes"]);
    for f in [
        "corpus.jsonl",
        "kb.jsonl",
        "sft.jsonl",
        "preferences.jsonl",
        "eval.jsonl",
    ] {
        assert_eq!(
            std::fs::read(dir.join("a").join(f)).unwrap(),
            std::fs::read(dir.join("b").join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(a["documents"].as_u64().unwrap() > 100);
    let s = json(&["world", "stats", dir.join("a").to_str().unwrap(), "--json"]);
    assert_eq!(s["documents"], a["documents"]);
    assert_eq!(s["by_lang"].as_object().unwrap().len(), 3);
    let out = fmlab(&["world", "stats", dir.join("a").to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("people by mentions") && text.contains("biography"),
        "{text}"
    );
    fails(
        &[
            "world",
            "--size",
            "1kB",
            "--out",
            dir.join("c").to_str().unwrap(),
        ],
        "size",
    );
    fails(&["world", "--size", "lots"], "--size");
    fails(
        &["world", "--languages", "en=0.5,xx=0.5"],
        "unknown language",
    );
    fails(
        &["world", "stats", dir.join("missing").to_str().unwrap()],
        "corpus.jsonl",
    );
}

fn empty_path(dir: &Path) -> PathBuf {
    let p = dir.join("empty.jsonl");
    std::fs::write(&p, "").unwrap();
    p
}

#[test]
fn tokenizer_train_on_a_world() {
    let dir = scratch("tok-train");
    let world = dir.join("world");
    json(&[
        "world",
        "--seed",
        "2",
        "--size",
        "300kB",
        "--out",
        world.to_str().unwrap(),
        "--json",
    ]);
    let out = dir.join("tokenizer.json");
    let v = json(&[
        "tokenizer",
        "train",
        world.join("corpus.jsonl").to_str().unwrap(),
        "--vocab-size",
        "1000",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["vocab_size"], 1000);
    // `fmlab tokenize` reads it, and names are learned as few tokens.
    let t = json(&[
        "tokenize",
        out.to_str().unwrap(),
        "The capital of France",
        "--json",
    ]);
    assert!(!t["ids"].as_array().unwrap().is_empty());
    // Token shards from the world with that tokenizer.
    let shards = dir.join("shards");
    let m = json(&[
        "data",
        "tokenize",
        world.join("corpus.jsonl").to_str().unwrap(),
        "--tokenizer",
        out.to_str().unwrap(),
        "--out",
        shards.to_str().unwrap(),
        "--val-fraction",
        "0.1",
        "--json",
    ]);
    assert_eq!(m["width"], 2);
    assert!(m["train_tokens"].as_u64().unwrap() > 10 * m["val_tokens"].as_u64().unwrap() / 2);
    assert!(m["val_tokens"].as_u64().unwrap() > 0);
    assert_eq!(m["tokens_by_lang"].as_object().unwrap().len(), 3);
    for s in m["shards"].as_array().unwrap() {
        assert!(shards.join(s["file"].as_str().unwrap()).is_file());
    }
    fails(
        &[
            "data",
            "tokenize",
            empty_path(&dir).to_str().unwrap(),
            "--tokenizer",
            out.to_str().unwrap(),
            "--out",
            shards.to_str().unwrap(),
        ],
        "no documents",
    );
    // Premiums over the world's parallel corpus, for ours and a model's tokenizer.
    let png = dir.join("premium.png");
    let c = json(&[
        "tokenizer",
        "compare",
        out.to_str().unwrap(),
        &smollm2(),
        "--parallel",
        world.join("parallel.jsonl").to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
        "--json",
    ]);
    let rows = c.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let langs = r["languages"].as_array().unwrap();
        assert_eq!(langs.len(), 3);
        assert_eq!(langs[0]["lang"], "en");
        assert_eq!(langs[0]["premium"], 1.0);
    }
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    fails(
        &[
            "tokenizer",
            "compare",
            out.to_str().unwrap(),
            "--parallel",
            world.join("parallel.jsonl").to_str().unwrap(),
            "--reference",
            "de",
        ],
        "no \"de\" texts",
    );
    fails(
        &[
            "tokenizer",
            "train",
            world.join("corpus.jsonl").to_str().unwrap(),
            "--vocab-size",
            "100",
            "--out",
            out.to_str().unwrap(),
        ],
        "smaller than the byte alphabet",
    );
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    fails(
        &[
            "tokenizer",
            "train",
            empty.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        "no text",
    );
    fails(
        &["tokenizer", "train", dir.join("nope.txt").to_str().unwrap()],
        "nope.txt",
    );
}
