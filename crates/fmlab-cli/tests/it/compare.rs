//! `fmlab compare`: SmolLM2 and Gemma 3 side by side on the serve tasks and short texts —
//! card.json agrees with `fmlab inspect` (parameters, file, KV cache) and with
//! lm-evaluation-harness's numbers on the same tasks and text (the reference `eval run`
//! is checked against); the page and charts are written; bad input gets one clear error.

use serde_json::Value;

use super::{fails, fmlab, gemma, json, scratch, smollm2};

fn serve_tasks() -> String {
    fmlab_testkit::root()
        .join("scripts/serve_tasks")
        .to_string_lossy()
        .into_owned()
}

fn close(got: &Value, want: f64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is not a number"));
    assert!(
        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
        "{what}: {got} vs {want}"
    );
}

#[test]
fn two_models_side_by_side() {
    let dir = scratch("compare");
    let rolling = format!("{}/rolling.jsonl", serve_tasks());
    let langs = dir.join("langs.jsonl");
    std::fs::write(
        &langs,
        "{\"text\": \"Le chat dort sur le toit de la maison.\", \"lang\": \"fr\", \"domain\": \"story\"}\n\
         {\"text\": \"Mtoto anasoma kitabu shuleni kila siku.\", \"lang\": \"sw\", \"domain\": \"story\"}\n",
    )
    .unwrap();
    let out = dir.join("card");
    let (smol, gem) = (smollm2(), gemma());
    let v = json(&[
        "compare",
        &smol,
        &gem,
        "--tasks",
        &serve_tasks(),
        "--texts",
        &rolling,
        langs.to_str().unwrap(),
        "--ctx",
        "1024",
        "--prompt-tokens",
        "16",
        "--new-tokens",
        "4",
        "--speed-runs",
        "1",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("card.json")).unwrap()).unwrap();
    assert_eq!(written, v, "card.json is what --json prints");
    let cards = v["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 2);
    assert_eq!(v["threads"], 1);
    for (card, model) in cards.iter().zip([&smol, &gem]) {
        // What `fmlab inspect` says of the same file.
        let i = json(&["inspect", model, "--json"]);
        assert_eq!(card["parameters"], i["parameters"], "{model}");
        assert_eq!(card["file_bytes"], i["source"]["file_bytes"], "{model}");
        let m = &card["memory"];
        let (weights, file) = (
            m["weights_bytes"].as_u64().unwrap(),
            i["source"]["file_bytes"].as_u64().unwrap(),
        );
        // The tensors of a GGUF file, without its metadata and tokenizer.
        assert!(
            weights < file && weights > file * 8 / 10,
            "{weights} of {file}"
        );
        let kv = m["kv_cache_bytes"].as_u64().unwrap();
        let per_token = i["kv_cache_bytes_per_token"].as_u64().unwrap();
        assert!(kv > 0 && kv <= 1024 * per_token, "{kv}");
        // Repacked copies where this CPU has the kernels (0.5625–1.06 bytes per weight
        // beside the stored bytes), none elsewhere.
        let repacked = m["repacked_bytes"].as_u64().unwrap();
        if fmlab_kernels::repack_available() {
            assert!(
                repacked > weights / 2 && repacked < weights * 2,
                "{repacked}"
            );
        } else {
            assert_eq!(repacked, 0);
        }
        assert_eq!(m["total_bytes"].as_u64().unwrap(), weights + repacked + kv);
        let s = &card["speed"];
        assert_eq!(
            (s["threads"].as_u64(), s["runs"].as_u64()),
            (Some(1), Some(1))
        );
        for k in ["prefill_tokens_per_second", "decode_tokens_per_second"] {
            assert!(s[k].as_f64().unwrap() > 0.0, "{k}");
        }
        // Every language of the texts, "-" for the lines that name none.
        let langs: Vec<&str> = card["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["lang"].as_str().unwrap())
            .collect();
        assert_eq!(langs, ["-", "fr", "sw"]);
        let groups: Vec<String> = card["perplexity"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                format!(
                    "{}={}",
                    g["by"].as_str().unwrap(),
                    g["group"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                "all=all",
                "lang=-",
                "lang=fr",
                "lang=sw",
                "domain=-",
                "domain=story"
            ]
        );
    }
    // SmolLM2 on rolling.jsonl and the tasks: lm-evaluation-harness's numbers, as
    // `eval run` gives them (tests/it/eval_run.rs checks that one).
    let reference = fmlab_testkit::reference("lm-eval-serve-tasks.json");
    let smol_card = &cards[0];
    let plain = smol_card["perplexity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["by"] == "lang" && g["group"] == "-")
        .unwrap();
    let r = &reference["results"]["fmlab_rolling"];
    close(
        &plain["bits_per_byte"],
        r["bits_per_byte,none"].as_f64().unwrap(),
        "bits per byte",
    );
    close(
        &plain["word_perplexity"],
        r["word_perplexity,none"].as_f64().unwrap(),
        "word perplexity",
    );
    close(
        &plain["byte_perplexity"],
        r["byte_perplexity,none"].as_f64().unwrap(),
        "byte perplexity",
    );
    assert_eq!(plain["documents"], 4);
    let all = &smol_card["perplexity"][0];
    let bpb = all["bits_per_byte"].as_f64().unwrap();
    let nats = bpb * std::f64::consts::LN_2 * all["bytes"].as_f64().unwrap();
    close(
        &all["token_perplexity"],
        (nats / all["tokens"].as_f64().unwrap()).exp(),
        "perplexity per token from the same log-likelihood",
    );
    let score = |card: &Value, task: &str, metric: &str| -> Value {
        card["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task"] == task && t["metric"] == metric)
            .unwrap_or_else(|| panic!("{task} {metric} missing"))
            .clone()
    };
    for (task, metric, filter) in [
        ("fmlab_mc", "acc", "none"),
        ("fmlab_mc", "acc_norm", "none"),
        ("fmlab_gen", "exact_match", "strip"),
    ] {
        let t = score(smol_card, task, metric);
        let want = &reference["results"][task];
        assert_eq!(
            t["value"],
            want[format!("{metric},{filter}")],
            "{task} {metric}"
        );
        assert_eq!(
            t["stderr"],
            want[format!("{metric}_stderr,{filter}")],
            "{task} {metric}"
        );
        let (value, se) = (t["value"].as_f64().unwrap(), t["stderr"].as_f64().unwrap());
        close(&t["ci95"][0], value - 1.96 * se, "interval");
        close(&t["ci95"][1], value + 1.96 * se, "interval");
    }
    close(
        &score(smol_card, "fmlab_rolling", "bits_per_byte")["value"],
        r["bits_per_byte,none"].as_f64().unwrap(),
        "the rolling task",
    );
    assert_eq!(score(&cards[1], "fmlab_mc", "acc")["documents"], 8);
    // Tokens relative to the first model: 1 for it, Gemma's count over SmolLM2's.
    for (a, b) in cards[0]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .zip(cards[1]["tokens"].as_array().unwrap())
    {
        assert_eq!(a["relative_to_first"], 1.0);
        let ratio = b["tokens"].as_f64().unwrap() / a["tokens"].as_f64().unwrap();
        close(&b["relative_to_first"], ratio, "tokens vs the first model");
        assert_eq!(a["bytes"], b["bytes"]);
    }
    // The page names both models; its charts lie beside it.
    let html = std::fs::read_to_string(out.join("card.html")).unwrap();
    for name in [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "gemma-3-270m-q4_k_m.gguf",
    ] {
        assert!(html.contains(name), "{name} not on the page");
    }
    for png in [
        "memory.png",
        "speed.png",
        "tokens.png",
        "bits_per_byte.png",
        "tasks.png",
    ] {
        assert!(html.contains(png), "{png} not on the page");
        assert_eq!(
            &std::fs::read(out.join(png)).unwrap()[..4],
            b"\x89PNG",
            "{png}"
        );
    }
}

#[test]
fn one_model_table_and_bad_input() {
    let dir = scratch("compare-bad");
    let smol = smollm2();
    // A card of one model is a card; without texts or tasks it is its anatomy and memory.
    let o = fmlab(&["compare", &smol, "--speed-runs", "0"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for needle in [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "134,515,008",
        "KV cache f16 @ 4,096",
        "bits per byte",
    ] {
        assert!(table.contains(needle), "{needle}: {table}");
    }
    fails(&["compare", &smol, "--ctx", "0"], "--ctx 0");
    fails(
        &["compare", &smol, "--ctx", "100000", "--speed-runs", "0"],
        "context is 8192 tokens",
    );
    let gone = dir.join("gone.txt");
    fails(
        &["compare", &smol, "--texts", gone.to_str().unwrap()],
        "gone.txt: no such file",
    );
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "\n{\"text\": \"\"}\n").unwrap();
    fails(
        &["compare", &smol, "--texts", empty.to_str().unwrap()],
        "empty.jsonl holds no text",
    );
    fails(
        &[
            "compare",
            &smol,
            "--tasks",
            dir.join("none.yaml").to_str().unwrap(),
        ],
        "neither a task file nor a folder",
    );
    fails(&["compare", "/no/such/model.gguf"], "no such file");
    fails(&["compare"], "MODELS");
}
