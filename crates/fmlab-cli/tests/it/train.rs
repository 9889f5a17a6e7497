//! `fmlab train pretrain` end to end: the files of a run, exact resumption after `kill -9`,
//! and errors for bad settings.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{fails, json, scratch};

/// A small world, a tokenizer trained on it and its token shards, in `dir`.
pub fn world_shards(dir: &Path) -> (PathBuf, PathBuf) {
    let world = dir.join("world");
    json(&[
        "world",
        "--seed",
        "4",
        "--size",
        "400kB",
        "--out",
        world.to_str().unwrap(),
        "--json",
    ]);
    let tok = dir.join("tokenizer.json");
    let corpus = world.join("corpus.jsonl");
    json(&[
        "tokenizer",
        "train",
        corpus.to_str().unwrap(),
        "--vocab-size",
        "600",
        "--out",
        tok.to_str().unwrap(),
        "--json",
    ]);
    let shards = dir.join("shards");
    json(&[
        "data",
        "tokenize",
        corpus.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--out",
        shards.to_str().unwrap(),
        "--val-fraction",
        "0.05",
        "--json",
    ]);
    (tok, shards)
}

fn pretrain_args<'a>(shards: &'a str, tok: &'a str, out: &'a str, steps: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "pretrain",
        "--shards",
        shards,
        "--tokenizer",
        tok,
        "--out",
        out,
        "--depth",
        "1",
        "--seq-len",
        "32",
        "--batch",
        "4",
        "--steps",
        steps,
        "--checkpoint-every",
        "10",
        "--eval-every",
        "50",
        "--seed",
        "3",
    ]
}

fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Some((v["step"].as_u64()?, v.get("loss")?.as_f64()?))
        })
        .collect()
}

fn last_step(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["step"].as_u64())
        .max()
        .unwrap_or(0)
}

/// 200 steps in one go, and the same run killed with SIGKILL after its step-10 checkpoint
/// then resumed, log the same losses (to 1e-5) and end on the same weights.
#[test]
fn pretrain_survives_kill_9_and_resumes_exactly() {
    let dir = scratch("pretrain-kill");
    let (tok, shards) = world_shards(&dir);
    let (tok, shards) = (tok.to_str().unwrap(), shards.to_str().unwrap());
    let a = dir.join("a");
    let v = json(
        &[
            pretrain_args(shards, tok, a.to_str().unwrap(), "200"),
            vec!["--json"],
        ]
        .concat(),
    );
    assert_eq!(v["steps"], 200);
    let b = dir.join("b");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fmlab"))
        .args(pretrain_args(shards, tok, b.to_str().unwrap(), "200"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while last_step(&b) < 12 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run made no progress"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run finished before it could be killed"
    );
    let reached = last_step(&b);
    assert!(reached < 200, "killed at {reached}");
    let out = super::fmlab(&[
        "train",
        "pretrain",
        "--resume",
        b.to_str().unwrap(),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
    let (la, lb) = (losses(&a), losses(&b));
    assert_eq!(la.len(), 200);
    assert_eq!(lb.len(), 200, "steps lost at the kill must be redone, once");
    for ((sa, x), (sb, y)) in la.iter().zip(&lb) {
        assert_eq!(sa, sb);
        assert!((x - y).abs() <= 1e-5, "step {sa}: {x} vs {y}");
    }
    let wa = std::fs::read(a.join("checkpoints/step-000000200/model.safetensors")).unwrap();
    let wb = std::fs::read(b.join("checkpoints/step-000000200/model.safetensors")).unwrap();
    assert!(wa == wb, "final weights differ");
}

#[test]
fn pretrain_writes_a_run_and_reports_it() {
    let dir = scratch("pretrain-files");
    let (tok, shards) = world_shards(&dir);
    let (tok, shards) = (tok.to_str().unwrap(), shards.to_str().unwrap());
    let run = dir.join("run");
    let v = json(
        &[
            pretrain_args(shards, tok, run.to_str().unwrap(), "30"),
            vec!["--json"],
        ]
        .concat(),
    );
    for key in [
        "params",
        "tokens",
        "tokens_per_second",
        "mfu",
        "initial_val_loss",
        "final_val_loss",
    ] {
        assert!(v[key].as_f64().is_some(), "{key} in {v}");
    }
    let (i, f) = (
        v["initial_val_loss"].as_f64().unwrap(),
        v["final_val_loss"].as_f64().unwrap(),
    );
    assert!((i - 600f64.ln()).abs() < 0.1, "initial val loss {i}");
    assert!(f < i - 0.5, "val loss {i} → {f}");
    assert_eq!(v["tokens"], 30 * 32 * 4);
    for f in ["run.json", "tokenizer.json", "metrics.jsonl", "loss.png"] {
        assert!(run.join(f).is_file(), "{f}");
    }
    assert!(Path::new(v["checkpoint"].as_str().unwrap())
        .join("manifest.json")
        .is_file());
    // A TOML configuration, overridden by a flag.
    let cfg = dir.join("train.toml");
    std::fs::write(
        &cfg,
        "depth = 1\nseq_len = 16\nbatch = 2\nsteps = 50\nschedule = \"wsd\"\n",
    )
    .unwrap();
    let run2 = dir.join("run2");
    let v = json(&[
        "train",
        "pretrain",
        "--shards",
        shards,
        "--config",
        cfg.to_str().unwrap(),
        "--steps",
        "4",
        "--out",
        run2.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["steps"], 4);
    assert_eq!(v["tokens"], 4 * 16 * 2);
    // Bad settings: one error naming the problem.
    let out = run.to_str().unwrap();
    fails(
        &pretrain_args(shards, tok, out, "10"),
        "already holds a run",
    );
    let fresh = dir.join("fresh");
    let fresh = fresh.to_str().unwrap();
    fails(
        &[
            pretrain_args(shards, tok, fresh, "10"),
            vec!["--schedule", "linear"],
        ]
        .concat(),
        "--schedule",
    );
    fails(
        &[
            pretrain_args(shards, tok, fresh, "10"),
            vec!["--seq-len", "0"],
        ]
        .concat(),
        "sequence length",
    );
    fails(
        &[
            pretrain_args(shards, tok, fresh, "10"),
            vec!["--depth", "99"],
        ]
        .concat(),
        "--depth",
    );
    std::fs::write(&cfg, "depth = 1\nlearning_rate = 3\n").unwrap();
    fails(
        &[
            "train",
            "pretrain",
            "--shards",
            shards,
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            fresh,
        ],
        "learning_rate",
    );
    fails(
        &[
            "train",
            "pretrain",
            "--shards",
            dir.to_str().unwrap(),
            "--out",
            fresh,
        ],
        "manifest",
    );
    fails(
        &[
            "train",
            "pretrain",
            "--resume",
            dir.join("nothing").to_str().unwrap(),
        ],
        "run.json",
    );
}
