//! The sampling toolkit through the command line: every flag reaches the chain, bad
//! settings name their flag, seeds reproduce across thread counts, structured output holds.

use serde_json::Value;

use super::{fails, fmlab, json, scratch, smollm2};

fn logits_file(dir: &std::path::Path, name: &str, logits: &[f32]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(logits).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

fn probs(v: &Value) -> Vec<f64> {
    v["probs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect()
}

#[test]
fn sample_logits_applies_the_chain() {
    let dir = scratch("sample-logits-chain");
    let f = logits_file(
        &dir,
        "four.json",
        &[0.4f32.ln(), 0.3f32.ln(), 0.2f32.ln(), 0.1f32.ln()],
    );
    let pure = [
        "--temperature",
        "1",
        "--top-k",
        "0",
        "--top-p",
        "1",
        "--min-p",
        "0",
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["sample-logits", "--logits", f.as_str(), "--json"];
        args.extend_from_slice(&pure);
        args.extend_from_slice(extra);
        json(&args)
    };
    let p = probs(&run(&[]));
    for (a, b) in p.iter().zip([0.4, 0.3, 0.2, 0.1]) {
        assert!((a - b).abs() < 1e-5, "{p:?}");
    }
    let v = run(&["--top-k", "2", "--seed", "3"]);
    let p = probs(&v);
    assert!(
        (p[0] - 4.0 / 7.0).abs() < 1e-5 && p[2] == 0.0 && p[3] == 0.0,
        "{p:?}"
    );
    assert!(v["token"].as_u64().unwrap() < 2);
    assert_eq!(v["kept"], 2);
    assert_eq!(v["order"], "llama.cpp");
    // The same seed draws the same token; the report names the chain.
    assert_eq!(v["token"], run(&["--top-k", "2", "--seed", "3"])["token"]);
    assert!(v["chain"].as_str().unwrap().contains("top-k 2"));
    // min-p, typical, temperature, bias, penalties with a history.
    let p = probs(&run(&["--min-p", "0.6"]));
    assert_eq!(p.iter().filter(|&&x| x > 0.0).count(), 2, "{p:?}");
    let p = probs(&run(&["--temperature", "0.5"]));
    assert!((p[0] - 16.0 / 30.0).abs() < 1e-5, "{p:?}");
    let p = probs(&run(&["--logit-bias", "0=-inf"]));
    assert_eq!(p[0], 0.0);
    let history = dir.join("history.json");
    std::fs::write(&history, "[0, 0]").unwrap();
    let v = run(&[
        "--history",
        history.to_str().unwrap(),
        "--frequency-penalty",
        "1",
    ]);
    // Token 0's logit drops by 2: 0.4·e⁻² against 0.3, 0.2, 0.1.
    let p = probs(&v);
    let w0 = 0.4 * (-2.0f64).exp();
    assert!((p[0] - w0 / (w0 + 0.6)).abs() < 1e-5, "{p:?}");
    // Greedy, and the hf order.
    let p = probs(&run(&["--temperature", "0"]));
    assert_eq!(p, [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(run(&["--sampler-order", "hf"])["order"], "hf");
    // The table form.
    let out = fmlab(&["sample-logits", "--logits", &f, "--top-k", "3"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("3 of 4 tokens kept"), "{text}");
}

#[test]
fn bad_sampler_settings_name_the_flag() {
    let dir = scratch("sample-logits-bad");
    let f = logits_file(&dir, "two.json", &[1.0, 2.0]);
    for (flag, value) in [
        ("--top-p", "1.5"),
        ("--top-p", "0"),
        ("--min-p", "-0.1"),
        ("--typical-p", "2"),
        ("--temperature", "-1"),
        ("--repeat-penalty", "0"),
        ("--mirostat", "3"),
        ("--sampler-order", "top_k,warp"),
        ("--dry-base", "0.5"),
    ] {
        fails(
            &["sample-logits", "--logits", &f, &format!("{flag}={value}")],
            flag,
        );
    }
    fails(
        &["sample-logits", "--logits", &f, "--logit-bias", "5=abc"],
        "--logit-bias",
    );
    fails(
        &["sample-logits", "--logits", &f, "--logit-bias", "7=1"],
        "outside the vocabulary",
    );
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "[1, \"x\"]").unwrap();
    fails(
        &["sample-logits", "--logits", bad.to_str().unwrap()],
        "element 1",
    );
    std::fs::write(&bad, "[null, \"-inf\"]").unwrap();
    fails(
        &["sample-logits", "--logits", bad.to_str().unwrap()],
        "no token can be drawn",
    );
}

fn sample(extra: &[&str]) -> Value {
    let mut args = vec![
        "generate",
        "PLACEHOLDER",
        "--prompt",
        "Once upon a time",
        "--max-tokens",
        "10",
        "--temperature",
        "1.0",
        "--json",
        "--ignore-eos",
    ];
    let model = smollm2();
    args[1] = &model;
    args.extend_from_slice(extra);
    json(&args)
}

#[test]
fn seeds_reproduce_across_runs_and_thread_counts() {
    let a = sample(&["--seed", "11", "--threads", "1"]);
    let b = sample(&["--seed", "11", "--threads", "2"]);
    assert_eq!(a["tokens"], b["tokens"]);
    assert_eq!(a["sampler"], b["sampler"]);
    assert!(
        a["sampler"]
            .as_str()
            .unwrap()
            .starts_with("llama.cpp order: top-k 40"),
        "{}",
        a["sampler"]
    );
    // Every sampler flag is accepted and reported.
    let v = sample(&[
        "--seed",
        "2",
        "--top-k",
        "0",
        "--top-p",
        "0.9",
        "--min-p",
        "0.02",
        "--typical-p",
        "0.95",
        "--top-n-sigma",
        "2",
        "--repeat-penalty",
        "1.1",
        "--repeat-last-n",
        "32",
        "--frequency-penalty",
        "0.2",
        "--presence-penalty",
        "0.1",
        "--dry-multiplier",
        "0.8",
        "--xtc-probability",
        "0.5",
        "--xtc-threshold",
        "0.2",
        "--epsilon-cutoff",
        "0.0003",
        "--eta-cutoff",
        "0.0003",
        "--dynatemp-range",
        "0.3",
        "--sampler-order",
        "hf",
    ]);
    let chain = v["sampler"].as_str().unwrap();
    for part in [
        "hf order",
        "penalties",
        "DRY",
        "top-p 0.9",
        "min-p 0.02",
        "typical 0.95",
        "top-n-σ 2",
        "XTC",
        "epsilon",
        "eta",
        "temperature 1 ± 0.3",
    ] {
        assert!(chain.contains(part), "{part} missing from {chain}");
    }
    assert_eq!(v["tokens"].as_array().unwrap().len(), 10);
    let m = sample(&["--seed", "2", "--mirostat", "2", "--mirostat-tau", "4"]);
    assert!(m["sampler"].as_str().unwrap().contains("mirostat v2"));
}

#[test]
fn n_samples_logprobs_and_stop_strings() {
    let v = sample(&["--seed", "5", "-n", "3", "--logprobs", "2"]);
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    let texts: Vec<&str> = choices
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert!(texts[0] != texts[1] || texts[1] != texts[2], "{texts:?}");
    // The first choice is the same as one sample with the seed.
    assert_eq!(choices[0]["tokens"], sample(&["--seed", "5"])["tokens"]);
    for c in choices {
        let lp = c["logprobs"].as_array().unwrap();
        assert_eq!(lp.len(), 10);
        for step in lp {
            let raw = step["logprob"].as_f64().unwrap();
            let processed = step["logprob_sampled"].as_f64().unwrap();
            assert!(raw <= 0.0 && processed <= 0.0);
            // Truncation and renormalisation only raise the chosen token's probability.
            assert!(processed >= raw - 1e-4, "{step}");
            let top = step["top"].as_array().unwrap();
            assert_eq!(top.len(), 2);
            assert!(top[0]["logprob"].as_f64().unwrap() >= top[1]["logprob"].as_f64().unwrap());
            assert!(step["text"].is_string() && top[0]["text"].is_string());
        }
        assert!(c["mean_logprob"].as_f64().unwrap() < 0.0);
    }
    // A stop string: greedy " Paris.\n\nThe …" stops before the full stop.
    let v = json(&[
        "generate",
        &smollm2(),
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "12",
        "--temperature",
        "0",
        "--stop",
        ".",
        "--json",
    ]);
    assert_eq!(v["text"], " Paris");
    assert_eq!(v["finish_reason"], "stop");
    // Streaming shows the same text without the stop string.
    let out = fmlab(&[
        "generate",
        &smollm2(),
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "12",
        "--temperature",
        "0",
        "--stop",
        "\n\nThe",
    ]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), " Paris.\n");
}

#[test]
fn structured_output_follows_the_schema() {
    let dir = scratch("schema");
    let schema_path = dir.join("person.json");
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 16},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 2}
        },
        "required": ["name", "age", "city"],
        "additionalProperties": false
    });
    std::fs::write(&schema_path, schema.to_string()).unwrap();
    // 100 samples at temperature 1.0 all parse and validate.
    let v = json(&[
        "generate",
        &smollm2(),
        "--prompt",
        "Describe a person as JSON.",
        "--chat",
        "--json-schema",
        schema_path.to_str().unwrap(),
        "--temperature",
        "1.0",
        "--seed",
        "1",
        "-n",
        "100",
        "--max-tokens",
        "120",
        "--json",
    ]);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 100);
    for c in choices {
        let text = c["text"].as_str().unwrap();
        let value: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
        assert!(validator.is_valid(&value), "{text}");
    }
    // A regex, and bad grammars named by their flag.
    let v = json(&[
        "generate",
        &smollm2(),
        "--prompt",
        "The war ended in the year",
        "--regex",
        " [12][0-9]{3}\\.",
        "--temperature",
        "0",
        "--json",
    ]);
    let text = v["text"].as_str().unwrap();
    assert!(
        text.len() == 6 && text.starts_with(' ') && text.ends_with('.'),
        "{text:?}"
    );
    fails(
        &["generate", &smollm2(), "--prompt", "x", "--regex", "("],
        "--regex",
    );
    std::fs::write(dir.join("bad.json"), r#"{"type": 5}"#).unwrap();
    fails(
        &[
            "generate",
            &smollm2(),
            "--prompt",
            "x",
            "--json-schema",
            dir.join("bad.json").to_str().unwrap(),
        ],
        "--json-schema",
    );
    std::fs::write(dir.join("bad.lark"), "start: ( \n").unwrap();
    fails(
        &[
            "generate",
            &smollm2(),
            "--prompt",
            "x",
            "--grammar",
            dir.join("bad.lark").to_str().unwrap(),
        ],
        "--grammar",
    );
}

#[test]
fn best_of_n_and_self_consistency() {
    let v = json(&[
        "generate",
        &smollm2(),
        "--prompt",
        "The best way to learn is",
        "--best-of",
        "4",
        "--temperature",
        "1",
        "--seed",
        "3",
        "--max-tokens",
        "8",
        "--json",
    ]);
    let scores: Vec<f64> = v["best_of"]["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .collect();
    assert_eq!(scores.len(), 4);
    let best = v["best_of"]["best"].as_u64().unwrap() as usize;
    assert!(scores.iter().all(|&s| s <= scores[best]));
    // The text shown is the best sample's, and its score is its mean logprob.
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(v["text"], choices[best]["text"]);
    assert!((choices[best]["mean_logprob"].as_f64().unwrap() - scores[best]).abs() < 1e-9);

    let v = json(&[
        "generate",
        &smollm2(),
        "--chat",
        "--prompt",
        "What is 12 times 7? Answer with a number.",
        "--self-consistency",
        "6",
        "--answer-regex",
        r"(\d+)",
        "--temperature",
        "1",
        "--seed",
        "1",
        "--max-tokens",
        "24",
        "--json",
    ]);
    let sc = &v["self_consistency"];
    let answers = sc["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 6);
    let votes = sc["votes"].as_array().unwrap();
    let counted: u64 = votes.iter().map(|v| v["count"].as_u64().unwrap()).sum();
    assert_eq!(
        counted as usize,
        answers.iter().filter(|a| !a.is_null()).count()
    );
    assert_eq!(sc["answer"], votes[0]["answer"]);
    assert!(
        (sc["agreement"].as_f64().unwrap() - votes[0]["share"].as_f64().unwrap()).abs() < 1e-12
    );
    // The vote as text.
    let out = fmlab(&[
        "generate",
        &smollm2(),
        "--chat",
        "--prompt",
        "What is 12 times 7? Answer with a number.",
        "--self-consistency",
        "3",
        "--temperature",
        "1",
        "--max-tokens",
        "16",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().contains("answer: "));
    fails(
        &[
            "generate",
            &smollm2(),
            "--prompt",
            "x",
            "--answer-regex",
            "(\\d+)",
        ],
        "--self-consistency",
    );
    fails(
        &[
            "generate",
            &smollm2(),
            "--prompt",
            "x",
            "--self-consistency",
            "2",
            "--answer-regex",
            "(",
        ],
        "--answer-regex",
    );
}

#[test]
fn study_sampling_writes_a_report_and_a_plot() {
    let out = scratch("study");
    let v = json(&[
        "study",
        "sampling",
        &smollm2(),
        "--prompt",
        "The capital of France is",
        "--temperatures",
        "0,1.5",
        "-n",
        "3",
        "--max-tokens",
        "6",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // Greedy samples are all the same; hot ones are more diverse and less likely.
    assert_eq!(rows[0]["agreement"], 1.0);
    assert_eq!(rows[0]["distinct_answers"], 1);
    assert!(rows[1]["distinct_2"].as_f64().unwrap() > rows[0]["distinct_2"].as_f64().unwrap());
    assert!(rows[1]["mean_logprob"].as_f64().unwrap() < rows[0]["mean_logprob"].as_f64().unwrap());
    let png = std::fs::read(out.join("sampling.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(saved["rows"], v["rows"]);
    fails(
        &[
            "study",
            "sampling",
            &smollm2(),
            "--prompt",
            "x",
            "--temperatures",
            "1",
        ],
        "--temperatures",
    );
}
