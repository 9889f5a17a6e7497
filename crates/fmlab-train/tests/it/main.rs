//! Pre-training: loss at initialisation, overfitting one batch, the loop's metrics and
//! checkpoints, exact resumption, and recovery from a damaged checkpoint.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::atomic::AtomicBool;

use fmlab_data::shards::ShardWriter;
use fmlab_nn::train::{loss_and_grad, Weights};
use fmlab_train::checkpoint;
use fmlab_train::pretrain::Pretrainer;
use fmlab_train::{AdamW, AdamWConfig, Event, LoopConfig, Outcome, Schedule};

mod finetune;
mod hf;

fn tiny(vocab: u64, layers: u64) -> fmlab_spec::ModelSpec {
    let mut s = fmlab_spec::from_depth(1, vocab, 32).unwrap();
    s.n_layers = layers;
    s.d_model = 32;
    s.n_heads = 4;
    s.n_kv_heads = 2;
    s.head_dim = 8;
    s.ffn_dim = 64;
    s
}

fn scratch(name: &str) -> fmlab_testkit::Scratch {
    fmlab_testkit::Scratch::new(&format!("train-{name}"))
}

#[test]
fn initial_loss_is_ln_vocab_and_one_batch_overfits() {
    for mut spec in [tiny(64, 2), fmlab_testkit::gpt2_tiny(64)] {
        spec.vocab_size = 64;
        let mut w = Weights::<f32>::init(&spec, 1).unwrap();
        let inputs: Vec<u32> = (0..24).map(|i| (i * 7 % 64) as u32).collect();
        let targets: Vec<u32> = (0..24).map(|i| (i * 13 % 64) as u32).collect();
        let loss0 = loss_and_grad(&spec, &w, &inputs, &targets, 2, None).unwrap();
        assert!((loss0 - (64f32).ln()).abs() < 0.1, "{loss0}");
        let sizes: Vec<usize> = w.tensors_mut().iter().map(|(t, _)| t.len()).collect();
        let decay: Vec<bool> = w.tensors_mut().iter().map(|(_, d)| *d).collect();
        let config = AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(config, &sizes, &decay).unwrap();
        let mut loss = loss0;
        for _ in 0..300 {
            let mut g = Weights::<f32>::zeros(&spec).unwrap();
            loss = loss_and_grad(&spec, &w, &inputs, &targets, 2, Some(&mut g)).unwrap();
            let grads: Vec<Vec<f32>> = g
                .tensors_mut()
                .into_iter()
                .map(|(t, _)| t.to_vec())
                .collect();
            let grad_refs: Vec<&[f32]> = grads.iter().map(|g| g.as_slice()).collect();
            let mut params: Vec<&mut [f32]> = w.tensors_mut().into_iter().map(|(t, _)| t).collect();
            opt.step(1e-2, &mut params, &grad_refs).unwrap();
        }
        assert!(loss < 0.1, "loss after 300 steps on one batch: {loss}");
    }
}

/// Shards of a learnable stream: documents that count upwards modulo `vocab` from a
/// random start, so that the next token is predictable from the current one.
fn write_shards(dir: &Path, vocab: u64) {
    let mut w = ShardWriter::new(dir, vocab, "test", 0.1, 3, 1 << 20).unwrap();
    let mut state = 12345u64;
    for doc in 0..300u64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let start = (state >> 33) % vocab;
        let len = 20 + (state >> 50) % 40;
        let ids: Vec<u32> = (0..len).map(|i| ((start + i) % vocab) as u32).collect();
        w.add(doc, &ids, Some("count"), None).unwrap();
    }
    w.finish().unwrap();
}

fn config(steps: u64) -> LoopConfig {
    LoopConfig {
        seq_len: 16,
        batch: 4,
        grad_accum: 2,
        steps,
        schedule: Schedule::Cosine {
            lr: 3e-3,
            min_lr: 3e-4,
            warmup: 2,
            total: steps,
        },
        adamw: AdamWConfig::default(),
        grad_clip: 1.0,
        eval_every: 5,
        eval_windows: 8,
        checkpoint_every: 5,
        keep: 2,
        seed: 7,
    }
}

fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Some((v["step"].as_u64()?, v.get("loss")?.as_f64()?))
        })
        .collect()
}

#[test]
fn the_loop_learns_logs_and_keeps_the_last_checkpoints() {
    let dir = scratch("loop");
    let shards = dir.join("shards");
    write_shards(&shards, 48);
    let run = dir.join("run");
    let spec = tiny(48, 2);
    let mut t = Pretrainer::create(&run, spec, config(30), &shards, None).unwrap();
    assert!(t.has_validation());
    // What a process killed while writing a checkpoint leaves behind is swept away.
    let stale = run.join("checkpoints/.step-000000002.tmp-999999");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), b"half").unwrap();
    let mut evals = Vec::new();
    let mut ckpts = Vec::new();
    let outcome = t
        .run(&AtomicBool::new(false), &mut |e| match e {
            Event::Eval { val_loss, .. } => evals.push(val_loss),
            Event::Checkpoint { step, .. } => ckpts.push(step),
            Event::Step(_) => {}
        })
        .unwrap();
    assert_eq!(outcome, Outcome::Finished);
    // Start, every 5 steps, and the end (step 30 is both).
    assert_eq!(evals.len(), 7, "{evals:?}");
    assert!(
        (evals[0] - (48f64).ln()).abs() < 0.1,
        "initial val loss {}",
        evals[0]
    );
    assert!(evals[6] < evals[0] - 1.0, "val loss {evals:?}");
    assert_eq!(ckpts, vec![5, 10, 15, 20, 25, 30]);
    let kept: Vec<u64> = checkpoint::list(&run).iter().map(|c| c.0).collect();
    assert_eq!(kept, vec![25, 30]);
    assert!(!stale.exists(), "a stale temporary folder survived");
    let l = losses(&run);
    assert_eq!(l.len(), 30);
    assert!(l[29].1 < l[0].1);
    // The final checkpoint holds the loop's weights exactly.
    let c = checkpoint::load(&checkpoint::dir_for(&run, 30), true).unwrap();
    assert_eq!(&c.weights, t.weights());
    assert_eq!(c.manifest.tokens, 30 * 16 * 4 * 2);
    assert_eq!(c.optimizer.step, 30);
    // A second run into the same folder is refused.
    let err = Pretrainer::create(&run, tiny(48, 2), config(30), &shards, None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("already holds a run"), "{err}");
}

#[test]
fn resuming_reproduces_the_uninterrupted_loss_sequence() {
    let dir = scratch("resume");
    let shards = dir.join("shards");
    write_shards(&shards, 48);
    // 20 steps in one go.
    let one = dir.join("one");
    let mut t = Pretrainer::create(&one, tiny(48, 2), config(20), &shards, None).unwrap();
    t.run(&AtomicBool::new(false), &mut |_| {}).unwrap();
    // 12 steps, checkpoint at 10, then the process "dies" (the trainer is dropped without
    // a final checkpoint): steps 11 and 12 are lost and redone.
    let two = dir.join("two");
    let mut t = Pretrainer::create(&two, tiny(48, 2), config(20), &shards, None).unwrap();
    for _ in 0..10 {
        t.train_step().unwrap();
    }
    t.checkpoint().unwrap();
    t.train_step().unwrap();
    t.train_step().unwrap();
    drop(t);
    let (mut t, resumed) = Pretrainer::resume(&two, None).unwrap();
    assert_eq!(resumed.step, 10);
    assert!(resumed.skipped.is_empty());
    t.run(&AtomicBool::new(false), &mut |_| {}).unwrap();
    let (a, b) = (losses(&one), losses(&two));
    assert_eq!(a.len(), 20);
    assert_eq!(a, b, "the resumed run's losses differ");
    let wa = checkpoint::load(&checkpoint::dir_for(&one, 20), true).unwrap();
    let wb = checkpoint::load(&checkpoint::dir_for(&two, 20), true).unwrap();
    assert_eq!(wa.weights, wb.weights);
    assert_eq!(wa.optimizer, wb.optimizer);
}

#[test]
fn a_damaged_checkpoint_falls_back_to_the_previous_one() {
    let dir = scratch("damaged");
    let shards = dir.join("shards");
    write_shards(&shards, 48);
    let run = dir.join("run");
    let mut t = Pretrainer::create(&run, tiny(48, 1), config(10), &shards, None).unwrap();
    t.run(&AtomicBool::new(false), &mut |_| {}).unwrap();
    // Truncate the newest checkpoint's weights.
    let model = checkpoint::dir_for(&run, 10).join("model.safetensors");
    let len = std::fs::metadata(&model).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&model)
        .unwrap();
    f.set_len(len / 2).unwrap();
    let (t, resumed) = Pretrainer::resume(&run, Some(12)).unwrap();
    assert_eq!(resumed.step, 5);
    assert_eq!(resumed.skipped.len(), 1);
    let why = resumed.skipped[0].1.to_string();
    assert!(why.contains("truncated"), "{why}");
    assert_eq!(t.step_count(), 5);
    // Flip one byte of the remaining one: nothing usable is left, and the error says why.
    let model = checkpoint::dir_for(&run, 5).join("optimizer.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&model, bytes).unwrap();
    let err = Pretrainer::resume(&run, None).err().unwrap().to_string();
    assert!(
        err.contains("no usable checkpoint") && err.contains("SHA-256"),
        "{err}"
    );
}

#[test]
fn stopping_writes_a_checkpoint() {
    let dir = scratch("stop");
    let shards = dir.join("shards");
    write_shards(&shards, 48);
    let run = dir.join("run");
    let mut t = Pretrainer::create(&run, tiny(48, 1), config(50), &shards, None).unwrap();
    let stop = AtomicBool::new(false);
    let outcome = t
        .run(&stop, &mut |e| {
            if let Event::Step(m) = e {
                if m.step == 3 {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
        .unwrap();
    assert_eq!(outcome, Outcome::Interrupted);
    let kept: Vec<u64> = checkpoint::list(&run).iter().map(|c| c.0).collect();
    assert_eq!(kept, vec![3]);
}

#[test]
fn bad_configurations_are_errors() {
    let dir = scratch("bad");
    let shards = dir.join("shards");
    write_shards(&shards, 48);
    let cases: Vec<(LoopConfig, fmlab_spec::ModelSpec, &str)> = vec![
        (
            LoopConfig {
                seq_len: 0,
                ..config(5)
            },
            tiny(48, 1),
            "sequence length",
        ),
        (
            LoopConfig {
                seq_len: 64,
                ..config(5)
            },
            tiny(48, 1),
            "exceeds the model's context",
        ),
        (
            LoopConfig {
                steps: 0,
                ..config(5)
            },
            tiny(48, 1),
            "steps",
        ),
        (
            LoopConfig {
                grad_clip: f32::NAN,
                ..config(5)
            },
            tiny(48, 1),
            "clip",
        ),
        (config(5), tiny(32, 1), "vocabulary of 48"),
    ];
    for (i, (c, spec, needle)) in cases.into_iter().enumerate() {
        let err = Pretrainer::create(&dir.join(format!("run{i}")), spec, c, &shards, None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(needle), "case {i}: {err}");
    }
    let err = Pretrainer::resume(&dir.join("nothing"), None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("run.json"), "{err}");
}
