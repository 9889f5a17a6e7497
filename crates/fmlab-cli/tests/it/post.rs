//! `fmlab train sft` and `fmlab train dpo` end to end on a small pre-trained run: the
//! summaries, DPO's start at ln 2, LoRA runs that generate what their merged export does,
//! and errors for bad data.

use serde_json::Value;

use super::train::{greedy, pretrain_args, world_shards};
use super::{fails, json, scratch};

fn metrics(run: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn sft_then_dpo_with_lora_and_merged_export() {
    let dir = scratch("post");
    let (tok, shards) = world_shards(&dir);
    let base = dir.join("run");
    // A context of 128 tokens, for conversations and pairs.
    let mut args = pretrain_args(
        shards.to_str().unwrap(),
        tok.to_str().unwrap(),
        base.to_str().unwrap(),
        "40",
    );
    let at = args.iter().position(|a| *a == "--seq-len").unwrap();
    args[at + 1] = "128";
    args.push("--json");
    json(&args);
    let world = dir.join("world");
    // A few bad records among the world's conversations are skipped and counted.
    let data = dir.join("sft.jsonl");
    let mut text = std::fs::read_to_string(world.join("sft.jsonl")).unwrap();
    text.push_str("not json\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
    std::fs::write(&data, text).unwrap();
    let sft = dir.join("sft");
    let s = json(&[
        "train",
        "sft",
        "--base",
        base.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        sft.to_str().unwrap(),
        "--seq-len",
        "64",
        "--batch",
        "4",
        "--steps",
        "20",
        "--lr",
        "3e-3",
        "--json",
    ]);
    assert_eq!(s["stage"], "sft");
    assert_eq!(s["steps"], 20);
    assert_eq!(s["skipped"]["not_json"], 1);
    assert_eq!(s["skipped"]["empty_assistant"], 1);
    let (first, last) = (
        s["first_train_loss"].as_f64().unwrap(),
        s["final_train_loss"].as_f64().unwrap(),
    );
    assert!(last < first, "{first} → {last}");
    assert!(s["final_val_loss"].as_f64().unwrap() < s["initial_val_loss"].as_f64().unwrap());
    assert!(sft.join("loss.png").is_file());
    // The SFT run generates (its tokenizer copied from the base run).
    let g = greedy(sft.to_str().unwrap(), "Hello");
    assert_eq!(g["tokens"].as_array().unwrap().len(), 16);

    // DPO with LoRA from the SFT run: the first step's loss is ln 2.
    let dpo = dir.join("dpo");
    let d = json(&[
        "train",
        "dpo",
        "--base",
        sft.to_str().unwrap(),
        "--pairs",
        world.join("preferences.jsonl").to_str().unwrap(),
        "--out",
        dpo.to_str().unwrap(),
        "--seq-len",
        "96",
        "--batch",
        "4",
        "--steps",
        "6",
        "--lora-rank",
        "4",
        "--lr",
        "1e-3",
        "--json",
    ]);
    assert_eq!(d["stage"], "preference");
    assert!(d["rewards"]["rewards/margins"].is_number(), "{d}");
    let m = metrics(&dpo);
    let first = m
        .iter()
        .find(|v| v["step"] == 1 && v.get("loss").is_some())
        .unwrap();
    let loss = first["loss"].as_f64().unwrap();
    assert!((loss - std::f64::consts::LN_2).abs() < 1e-4, "{loss}");
    // A LoRA run exports only merged, and the merged GGUF generates what the run does.
    fails(&["export", dpo.to_str().unwrap()], "--merge-lora");
    let gguf = dir.join("dpo.gguf");
    let out = super::fmlab(&[
        "export",
        dpo.to_str().unwrap(),
        "--merge-lora",
        "--out",
        gguf.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for prompt in ["The", "Kea was born in"] {
        let a = greedy(dpo.to_str().unwrap(), prompt);
        let b = greedy(gguf.to_str().unwrap(), prompt);
        assert_eq!(a["tokens"], b["tokens"], "{prompt:?}");
    }

    // A reward model on the world's pairs ranks best-of-n samples.
    let rm = dir.join("rm");
    let r = json(&[
        "train",
        "reward",
        "--base",
        sft.to_str().unwrap(),
        "--pairs",
        world.join("preferences.jsonl").to_str().unwrap(),
        "--out",
        rm.to_str().unwrap(),
        "--seq-len",
        "96",
        "--batch",
        "4",
        "--steps",
        "8",
        "--lr",
        "1e-3",
        "--val-fraction",
        "0.1",
        "--json",
    ]);
    assert_eq!(r["stage"], "reward");
    let acc = r["val_rewards"]["rewards/accuracies"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{r}");
    let best = json(&[
        "generate",
        sft.to_str().unwrap(),
        "--chat",
        "--prompt",
        "Who is Kea Jemda?",
        "--best-of",
        "3",
        "--reward-model",
        rm.to_str().unwrap(),
        "--max-tokens",
        "8",
        "--json",
    ]);
    assert_eq!(
        best["best_of"]["scores"].as_array().unwrap().len(),
        3,
        "{best}"
    );
    fails(
        &[
            "generate",
            sft.to_str().unwrap(),
            "--prompt",
            "x",
            "--best-of",
            "2",
            "--reward-model",
            sft.to_str().unwrap(),
        ],
        "not a reward model",
    );
    // On-policy pairs judged by the world, or by the reward model.
    for judge in ["world".to_string(), format!("reward:{}", rm.display())] {
        let pairs = dir.join("pairs.jsonl");
        let p = json(&[
            "data",
            "preferences",
            "--model",
            sft.to_str().unwrap(),
            "--prompts",
            world.join("prompts.jsonl").to_str().unwrap(),
            "--judge",
            &judge,
            "-k",
            "3",
            "--limit",
            "12",
            "--max-tokens",
            "8",
            "--out",
            pairs.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(p["prompts"], 12, "{p}");
        let n = p["pairs"].as_u64().unwrap() as usize;
        let text = std::fs::read_to_string(&pairs).unwrap();
        assert_eq!(text.lines().count(), n);
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert!(
                v["chosen_score"].as_f64() > v["rejected_score"].as_f64(),
                "{v}"
            );
        }
    }
    fails(
        &[
            "data",
            "preferences",
            "--model",
            sft.to_str().unwrap(),
            "--prompts",
            world.join("prompts.jsonl").to_str().unwrap(),
            "--judge",
            "gpt4",
        ],
        "neither world nor reward:PATH",
    );

    // A Hugging Face folder (the SFT run exported) is a base too: it starts exactly where the
    // run it came from does.
    let hf = dir.join("hf");
    let out = super::fmlab(&[
        "export",
        sft.to_str().unwrap(),
        "--format",
        "safetensors",
        "--out",
        hf.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from = |base: &std::path::Path, name: &str| {
        json(&[
            "train",
            "sft",
            "--base",
            base.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            dir.join(name).to_str().unwrap(),
            "--seq-len",
            "64",
            "--steps",
            "1",
            "--json",
        ])
    };
    let (a, b) = (from(&sft, "again-run"), from(&hf, "again-hf"));
    let (la, lb) = (
        a["initial_val_loss"].as_f64().unwrap(),
        b["initial_val_loss"].as_f64().unwrap(),
    );
    assert!(
        (la - lb).abs() < 1e-4,
        "from the run {la}, from its HF export {lb}"
    );

    // SFT replaying the corpus, stopped after 4 steps (its checkpoint) and resumed to 8: it
    // reads base, data and corpus again from run.json and ends where it was told to.
    let mixed = dir.join("mixed");
    let m = json(&[
        "train",
        "sft",
        "--base",
        base.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--mix",
        world.join("corpus.jsonl").to_str().unwrap(),
        "--out",
        mixed.to_str().unwrap(),
        "--seq-len",
        "64",
        "--batch",
        "4",
        "--steps",
        "4",
        "--json",
    ]);
    assert_eq!(m["steps"], 4);
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(mixed.join("run.json")).unwrap()).unwrap();
    let (pieces, tokens) = (
        run["records"]["mix_pieces"].as_u64().unwrap(),
        run["records"]["mix_tokens"].as_u64().unwrap(),
    );
    assert!(pieces > 0, "{run}");
    // Half the positions: as many mixed as conversation positions, to a row's rounding.
    let own = run["records"]["train_tokens"].as_u64().unwrap() - tokens;
    assert!(tokens > own, "mixed {tokens}, conversations' answers {own}");
    assert_eq!(run["data"]["mix"]["ratio"], 0.5);
    assert!(run["data"]["mix"]["path"]
        .as_str()
        .unwrap()
        .ends_with("corpus.jsonl"));
    let r = json(&[
        "train",
        "sft",
        "--resume",
        mixed.to_str().unwrap(),
        "--steps",
        "8",
        "--json",
    ]);
    assert_eq!(r["steps"], 8, "{r}");
    let steps: Vec<u64> = metrics(&mixed)
        .iter()
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>());
    fails(
        &["train", "dpo", "--resume", mixed.to_str().unwrap()],
        "continue it with `fmlab train sft --resume",
    );
    fails(
        &["train", "sft", "--resume", base.to_str().unwrap()],
        "is a pre-training run: continue it with `fmlab train pretrain --resume",
    );
    fails(
        &["train", "sft", "--resume", mixed.to_str().unwrap()],
        "already at step 8 of 8",
    );
    fails(
        &[
            "train",
            "sft",
            "--base",
            base.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--mix",
            world.join("corpus.jsonl").to_str().unwrap(),
            "--mix-ratio",
            "0.99",
            "--out",
            dir.join("z").to_str().unwrap(),
        ],
        "--mix-ratio must be in [0, 0.95)",
    );

    // Nothing usable: one clear error.
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"chosen\": \"a\", \"rejected\": \"a\", \"prompt\": \"q\"}\n",
    )
    .unwrap();
    fails(
        &[
            "train",
            "dpo",
            "--base",
            sft.to_str().unwrap(),
            "--pairs",
            bad.to_str().unwrap(),
            "--out",
            dir.join("x").to_str().unwrap(),
        ],
        "no usable preference pair",
    );
    fails(
        &[
            "train",
            "sft",
            "--base",
            base.to_str().unwrap(),
            "--data",
            bad.to_str().unwrap(),
            "--out",
            dir.join("y").to_str().unwrap(),
        ],
        "no usable conversation",
    );
}
