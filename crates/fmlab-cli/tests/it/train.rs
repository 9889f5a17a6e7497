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

pub fn pretrain_args<'a>(
    shards: &'a str,
    tok: &'a str,
    out: &'a str,
    steps: &'a str,
) -> Vec<&'a str> {
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

/// Ctrl-C (SIGINT) finishes the step, writes a checkpoint of it and exits cleanly; the run
/// then resumes to its end.
#[test]
fn ctrl_c_checkpoints_and_exits() {
    let dir = scratch("pretrain-sigint");
    let (tok, shards) = world_shards(&dir);
    let run = dir.join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_fmlab"))
        .args(pretrain_args(
            shards.to_str().unwrap(),
            tok.to_str().unwrap(),
            run.to_str().unwrap(),
            "100000",
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while last_step(&run) < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("interrupted") && stderr.contains("--resume"),
        "{stderr}"
    );
    let step = last_step(&run);
    assert!(step < 100_000);
    let ckpt = run.join(format!("checkpoints/step-{step:09}/manifest.json"));
    assert!(ckpt.is_file(), "no checkpoint at the last step {step}");
    let v = json(&[
        "train",
        "pretrain",
        "--resume",
        run.to_str().unwrap(),
        "--steps",
        &(step + 3).to_string(),
        "--json",
    ]);
    assert_eq!(v["steps"], step + 3);
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

pub fn greedy(model: &str, prompt: &str) -> Value {
    json(&[
        "generate",
        model,
        "--prompt",
        prompt,
        "--max-tokens",
        "16",
        "--temperature",
        "0",
        "--ignore-eos",
        "--json",
    ])
}

/// A run's checkpoint exported as GGUF generates exactly what the checkpoint does (f32);
/// Q8_0 and f16 load and run; the Hugging Face folder holds the same numbers bit for bit.
#[test]
fn export_reproduces_the_checkpoint() {
    let dir = scratch("export");
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
    let gguf = dir.join("m.gguf");
    let out = super::fmlab(&[
        "export",
        run_s,
        "--format",
        "gguf",
        "--out",
        gguf.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for prompt in ["The", "Kea was born in", "Answer: 4"] {
        let a = greedy(run_s, prompt);
        let b = greedy(gguf.to_str().unwrap(), prompt);
        assert_eq!(a["tokens"].as_array().unwrap().len(), 16);
        assert_eq!(a["tokens"], b["tokens"], "{prompt:?}");
        assert_eq!(a["text"], b["text"]);
    }
    // The GGUF describes the same model, with the tokenizer and chat template.
    let file = fmlab_formats::GgufFile::open(&gguf).unwrap();
    let spec = fmlab_formats::spec_from_gguf(&file.gguf).unwrap();
    let ckpt: Value = serde_json::from_slice(
        &std::fs::read(run.join("checkpoints/step-000000040/manifest.json")).unwrap(),
    )
    .unwrap();
    let trained: fmlab_spec::ModelSpec = serde_json::from_value(ckpt["spec"].clone()).unwrap();
    assert_eq!(spec, trained);
    assert!(file.gguf.get("tokenizer.chat_template").is_some());
    for quant in ["f16", "q8_0"] {
        let q = dir.join(format!("m-{quant}.gguf"));
        let out = super::fmlab(&[
            "export",
            run_s,
            "--quant",
            quant,
            "--out",
            q.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(std::fs::metadata(&q).unwrap().len() < std::fs::metadata(&gguf).unwrap().len());
        assert_eq!(
            greedy(q.to_str().unwrap(), "The")["tokens"]
                .as_array()
                .unwrap()
                .len(),
            16
        );
        // `fmlab quantize` of the f32 export gives the export's own tensors, byte for byte
        // (same reference arithmetic, same types), in llama.cpp's order.
        let requant = dir.join(format!("m-quantized-{quant}.gguf"));
        let out = super::fmlab(&[
            "quantize",
            gguf.to_str().unwrap(),
            requant.to_str().unwrap(),
            "--type",
            quant,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (exported, quantized) = (
            fmlab_formats::GgufFile::open(&q).unwrap(),
            fmlab_formats::GgufFile::open(&requant).unwrap(),
        );
        assert_eq!(exported.gguf.tensors.len(), quantized.gguf.tensors.len());
        for t in &exported.gguf.tensors {
            let u = quantized.gguf.tensor(&t.name).unwrap();
            assert_eq!((t.ggml_type, &t.dims), (u.ggml_type, &u.dims), "{}", t.name);
            assert!(
                exported.tensor_data(t).unwrap() == quantized.tensor_data(u).unwrap(),
                "{quant}: {} differs",
                t.name
            );
        }
    }
    // A K-quant mix of the export runs.
    let q4 = dir.join("m-q4_k_m.gguf");
    let out = super::fmlab(&[
        "quantize",
        gguf.to_str().unwrap(),
        q4.to_str().unwrap(),
        "--type",
        "q4_k_m",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        greedy(q4.to_str().unwrap(), "The")["tokens"]
            .as_array()
            .unwrap()
            .len(),
        16
    );
    // Hugging Face folder: config.json gives the spec back; tensors equal the checkpoint's
    // bit for bit once queries and keys are permuted back.
    let hf = dir.join("hf");
    let out = super::fmlab(&[
        "export",
        run_s,
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
    let config = std::fs::read_to_string(hf.join("config.json")).unwrap();
    assert_eq!(
        fmlab_formats::spec_from_hf_config(&config).unwrap(),
        trained
    );
    assert!(hf.join("tokenizer.json").is_file() && hf.join("tokenizer_config.json").is_file());
    let theirs = fmlab_formats::SafetensorsFile::open(hf.join("model.safetensors")).unwrap();
    let ours = fmlab_formats::SafetensorsFile::open(
        run.join("checkpoints/step-000000040/model.safetensors"),
    )
    .unwrap();
    let floats = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    // The names are the ones transformers itself saves for a Llama (the tiny model that
    // scripts/hf_fixtures.py saved with transformers), layer numbers aside: an independent
    // source, not a copy of export's table.
    let shape_of = |name: &str| -> String {
        name.split('.')
            .map(|p| match p.parse::<u32>() {
                Ok(_) => "N",
                Err(_) => p,
            })
            .collect::<Vec<_>>()
            .join(".")
    };
    let reference = fmlab_formats::SafetensorsFile::open(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fmlab-train/tests/fixtures/hf/llama/model.safetensors"),
    )
    .unwrap();
    let names = |f: &fmlab_formats::SafetensorsFile| -> std::collections::BTreeSet<String> {
        f.header.tensors.iter().map(|t| shape_of(&t.name)).collect()
    };
    assert_eq!(names(&theirs), names(&reference));
    assert_eq!(theirs.header.tensors.len(), ours.header.tensors.len());
    // The values: read back as a finetuning base (Q/K rows back from HF's halves to GGUF's
    // pairs), the folder holds the checkpoint's weights bit for bit.
    let (spec, back) = fmlab_train::export::weights_from_hf(&hf).unwrap();
    assert_eq!(spec, trained);
    for t in &ours.header.tensors {
        let orig = floats(ours.tensor_data(t));
        let read = back
            .get(&t.name)
            .unwrap_or_else(|| panic!("{} missing", t.name));
        assert!(
            read.iter()
                .zip(&orig)
                .all(|(a, b)| a.to_bits() == b.to_bits())
                && read.len() == orig.len(),
            "{} differs",
            t.name
        );
    }
    super::fails(&["export", run_s, "--quant", "q4_0"], "--quant");
    super::fails(&["export", run_s, "--format", "onnx"], "--format");
    super::fails(&["export", dir.to_str().unwrap()], "neither a training run");
    super::fails(
        &["export", dir.join("missing").to_str().unwrap()],
        "no such run",
    );
}

/// Refusals instead of runs that could not be used: a tokenizer other than the shards',
/// no tokenizer at all, no steps, more memory than the machine has — each refused before
/// the run folder exists; without --tokenizer the shards' own is taken.
#[test]
fn pretrain_refuses_runs_that_could_not_be_used() {
    let dir = scratch("pretrain-refusals");
    let (tok, shards) = world_shards(&dir);
    let (tok_s, shards_s) = (tok.to_str().unwrap(), shards.to_str().unwrap());
    let out = dir.join("run");
    let out_s = out.to_str().unwrap();
    // Another tokenizer: a smaller vocabulary trained on the same text.
    let other = dir.join("other.json");
    let corpus = dir.join("world/corpus.jsonl");
    json(&[
        "tokenizer",
        "train",
        corpus.to_str().unwrap(),
        "--vocab-size",
        "300",
        "--out",
        other.to_str().unwrap(),
        "--json",
    ]);
    let mut args = pretrain_args(shards_s, other.to_str().unwrap(), out_s, "2");
    fails(&args, "not the tokenizer the shards");
    args = pretrain_args(shards_s, tok_s, out_s, "0");
    fails(&args, "--steps 0");
    args = pretrain_args(shards_s, tok_s, out_s, "2");
    args.extend(["--depth", "64", "--seq-len", "4096", "--batch", "64"]);
    fails(&args, "available: lower --seq-len");
    assert!(!out.exists(), "a refused run leaves nothing behind");
    // No --tokenizer: the shards' own (data tokenize kept it), copied into the run.
    let mut own = pretrain_args(shards_s, tok_s, out_s, "2");
    let at = own.iter().position(|a| *a == "--tokenizer").unwrap();
    own.drain(at..at + 2);
    json(&[own.as_slice(), &["--json"]].concat());
    assert_eq!(
        std::fs::read(out.join("tokenizer.json")).unwrap(),
        std::fs::read(&tok).unwrap()
    );
    // Shards without one, and no --tokenizer: refused.
    std::fs::remove_file(shards.join("tokenizer.json")).unwrap();
    let again = dir.join("run2");
    let at = own.iter().position(|a| *a == out_s).unwrap();
    own[at] = again.to_str().unwrap();
    fails(&own, "holds no tokenizer.json");
    assert!(!again.exists());
}
