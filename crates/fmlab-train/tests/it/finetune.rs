//! Post-training: SFT and preference finetuning on a tiny model with a trained tokenizer
//! and fmlab's chat template.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use fmlab_nn::train::Weights;
use fmlab_tokenizer::{BpeTrainer, ChatTemplate, Tokenizer};
use fmlab_train::chat_data::{read_conversations, read_pairs, read_texts, ChatEncoder};
use fmlab_train::finetune::{
    prepare, Base, BaseRef, Data, FinetuneConfig, Finetuner, LoraConfig, Method, PreferenceLoss,
};
use fmlab_train::{AdamWConfig, LoopConfig, Schedule};

use super::{scratch, tiny};

fn tokenizer() -> (Tokenizer, ChatTemplate) {
    let mut t = BpeTrainer::new(300, &fmlab_tokenizer::train::DEFAULT_SPECIALS).unwrap();
    for _ in 0..20 {
        t.feed("Where was Kea Jemda born? Kea Jemda was born in Lumora. What colour? Blue. I don't know. user assistant system");
    }
    let trained = t.train(|_, _| {}).unwrap();
    let template =
        ChatTemplate::new(fmlab_tokenizer::train::CHAT_TEMPLATE, "<|bos|>", "<|eos|>").unwrap();
    (Tokenizer::from_trained(&trained).unwrap(), template)
}

fn write(path: &Path, lines: &[&str]) {
    std::fs::write(path, lines.join("\n")).unwrap();
}

fn optim(steps: u64, lr: f32) -> LoopConfig {
    LoopConfig {
        seq_len: 64,
        batch: 2,
        grad_accum: 1,
        steps,
        schedule: Schedule::Constant { lr, warmup: 0 },
        adamw: AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        },
        grad_clip: 1.0,
        eval_every: 0,
        eval_windows: 0,
        checkpoint_every: 0,
        keep: 1,
        seed: 3,
    }
}

fn base(vocab: u64) -> Base {
    let mut spec = tiny(vocab, 2);
    spec.context_length = 64;
    Base {
        weights: Weights::init(&spec, 1).unwrap(),
        spec,
        source: BaseRef {
            path: "/nowhere".into(),
            kind: "run".into(),
        },
        tokenizer_json: None,
    }
}

fn losses(run: &Path, key: &str) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get(key).and_then(|x| x.as_f64()))
        .collect()
}

/// SFT on a handful of conversations (full weights and LoRA): the loss falls; bad records
/// are skipped with counts; a file with nothing usable is an error.
#[test]
fn sft_learns_the_answers_and_skips_bad_records() {
    let dir = scratch("sft");
    let (tok, template) = tokenizer();
    let path = dir.join("sft.jsonl");
    write(
        &path,
        &[
            r#"{"messages": [{"role": "user", "content": "Where was Kea Jemda born?"}, {"role": "assistant", "content": "Lumora."}]}"#,
            r#"{"messages": [{"role": "user", "content": "What colour?"}, {"role": "assistant", "content": "Blue."}]}"#,
            r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where was Kea Jemda born?"}, {"role": "assistant", "content": "I don't know."}]}"#,
            r#"{"messages": [{"role": "user", "content": "What colour?"}, {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Where?"}, {"role": "assistant", "content": "Lumora."}]}"#,
            r#"not json"#,
            r#"{"messages": [{"content": "no role"}]}"#,
            r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}"#,
            r#"{"messages": [{"role": "user", "content": "only a question"}]}"#,
        ],
    );
    let (convs, skipped) = read_conversations(&path).unwrap();
    assert_eq!(convs.len(), 4);
    assert_eq!(
        (
            skipped.not_json,
            skipped.missing_roles,
            skipped.empty_assistant
        ),
        (1, 1, 2)
    );
    assert!(
        skipped.describe().starts_with("4 skipped"),
        "{}",
        skipped.describe()
    );
    let enc = ChatEncoder {
        template: &template,
        tokenizer: &tok,
    };
    let seqs: Vec<_> = convs.iter().map(|c| enc.conversation(c).unwrap()).collect();
    // The mask covers the answers (and their end-of-turn marker), not the prompts.
    let s = &seqs[0];
    let answer: Vec<u32> = s
        .tokens
        .iter()
        .zip(&s.mask)
        .filter(|(_, &m)| m)
        .map(|(&t, _)| t)
        .collect();
    // fmlab's template separates the role from the content with a space: the answer
    // starts with it, as a word inside a sentence would.
    assert_eq!(tok.decode(&answer, true).unwrap(), " Lumora.<|im_end|>\n");
    let two: usize = seqs[3].mask.windows(2).filter(|w| !w[0] && w[1]).count();
    assert_eq!(
        two, 2,
        "both answers of the two-turn conversation are trained on"
    );
    for lora in [
        None,
        Some(LoraConfig {
            rank: 4,
            alpha: 8.0,
            targets: fmlab_nn::train::LORA_TARGETS
                .iter()
                .map(|t| t.0.to_string())
                .collect(),
        }),
    ] {
        let run = dir.join(if lora.is_some() { "lora" } else { "full" });
        let config = FinetuneConfig {
            method: Method::Sft,
            optim: optim(30, if lora.is_some() { 5e-2 } else { 3e-3 }),
            lora: lora.clone(),
            val_fraction: 0.0,
        };
        let mut b = base(tok.vocab_size() as u64);
        if lora.is_some() {
            // A random head at std 0.02 caps how far normalised states can move the logits;
            // a trained model's is larger. Frozen under LoRA, give it a trained scale.
            let head = b.weights.find("output.weight").unwrap();
            b.weights
                .tensor_mut(head)
                .iter_mut()
                .for_each(|x| *x *= 50.0);
        }
        let mut ft = Finetuner::create(&run, b, Data::Sft(seqs.clone()), config, 2).unwrap();
        ft.run(&AtomicBool::new(false), &mut |_| {}).unwrap();
        let l = losses(&run, "loss");
        assert_eq!(l.len(), 30);
        assert!(
            l[29] < 0.5 * l[0],
            "lora {}: {} → {}",
            lora.is_some(),
            l[0],
            l[29]
        );
        // The checkpoint loads back (adapters for LoRA).
        let (c, _) = fmlab_train::checkpoint::latest(&run, false).unwrap();
        assert_eq!(c.manifest.stage, Some(fmlab_train::finetune::Stage::Sft));
        assert_eq!(c.manifest.lora, lora);
    }
    write(&path, &["nope", r#"{"messages": []}"#]);
    let err = read_conversations(&path).unwrap_err().to_string();
    assert!(
        err.contains("no usable conversation") && err.contains("1 not JSON"),
        "{err}"
    );
}

/// Preference finetuning: at step 0 (policy = reference) DPO's loss is ln 2 and margins
/// are zero; one step on a single pair raises its margin. Identical answers are skipped.
#[test]
fn dpo_starts_at_ln2_and_one_step_raises_the_margin() {
    let dir = scratch("dpo");
    let (tok, template) = tokenizer();
    let path = dir.join("pairs.jsonl");
    write(
        &path,
        &[
            r#"{"prompt": [{"role": "user", "content": "Where was Kea Jemda born?"}], "chosen": "Lumora.", "rejected": "Blue."}"#,
            r#"{"prompt": "What colour?", "chosen": "Blue.", "rejected": "Blue."}"#,
            r#"{"prompt": [{"role": "user", "content": "x"}], "chosen": "a"}"#,
        ],
    );
    let (pairs, skipped) = read_pairs(&path).unwrap();
    assert_eq!(pairs.len(), 1);
    assert_eq!((skipped.identical_pair, skipped.missing_roles), (1, 1));
    let enc = ChatEncoder {
        template: &template,
        tokenizer: &tok,
    };
    let data: Vec<_> = pairs
        .iter()
        .map(|p| {
            (
                enc.answered(&p.prompt, &p.chosen).unwrap(),
                enc.answered(&p.prompt, &p.rejected).unwrap(),
            )
        })
        .collect();
    for (name, lora) in [
        ("full", None),
        (
            "lora",
            Some(LoraConfig {
                rank: 2,
                alpha: 4.0,
                targets: vec!["q_proj".into(), "down_proj".into()],
            }),
        ),
    ] {
        let config = FinetuneConfig {
            method: Method::Preference {
                beta: 0.1,
                loss: PreferenceLoss::Sigmoid,
            },
            optim: optim(1, 1e-2),
            lora,
            val_fraction: 0.0,
        };
        let run = dir.join(name);
        let mut ft = Finetuner::create(
            &run,
            base(tok.vocab_size() as u64),
            Data::Pairs(data.clone()),
            config,
            2,
        )
        .unwrap();
        let m = ft.train_step().unwrap();
        let r = m.rewards.unwrap();
        assert!(
            (m.loss - std::f64::consts::LN_2).abs() < 1e-4,
            "{name}: loss {}",
            m.loss
        );
        assert!(
            r.margin.abs() < 1e-4 && r.chosen.abs() < 1e-4,
            "{name}: {r:?}"
        );
        // After the step, the same pair's margin is positive.
        let after = ft.train_step().unwrap();
        let r2 = after.rewards.unwrap();
        assert!(r2.margin > 1e-4, "{name}: margin {}", r2.margin);
        assert!(after.loss < m.loss, "{name}: {} → {}", m.loss, after.loss);
    }
}

/// A Bradley–Terry reward model on pairs: it starts near ln 2 and learns to rank the
/// chosen answers first; its checkpoint keeps the score head.
#[test]
fn reward_model_learns_to_rank_chosen_first() {
    let dir = scratch("reward");
    let (tok, template) = tokenizer();
    let enc = ChatEncoder {
        template: &template,
        tokenizer: &tok,
    };
    let prompt = |q: &str| vec![fmlab_tokenizer::Message::new("user", q)];
    let data: Vec<_> = [
        ("Where was Kea Jemda born?", "Lumora.", "Blue."),
        ("What colour?", "Blue.", "I don't know."),
        ("Where?", "Lumora.", "Kea Jemda was born in Blue."),
        ("Who?", "Kea Jemda.", "Lumora Lumora Lumora."),
    ]
    .iter()
    .map(|(q, c, r)| {
        (
            enc.answered(&prompt(q), c).unwrap(),
            enc.answered(&prompt(q), r).unwrap(),
        )
    })
    .collect();
    let config = FinetuneConfig {
        method: Method::Reward,
        optim: optim(40, 3e-3),
        lora: None,
        val_fraction: 0.0,
    };
    let run = dir.join("rm");
    let mut ft = Finetuner::create(
        &run,
        base(tok.vocab_size() as u64),
        Data::Pairs(data.clone()),
        config.clone(),
        2,
    )
    .unwrap();
    let first = ft.train_step().unwrap();
    assert!(
        (first.loss - std::f64::consts::LN_2).abs() < 0.2,
        "{}",
        first.loss
    );
    let mut last = first;
    for _ in 1..40 {
        last = ft.train_step().unwrap();
    }
    let r = last.rewards.unwrap();
    assert!(last.loss < 0.2, "{} → {}", first.loss, last.loss);
    assert_eq!(r.accuracy, 1.0);
    assert!(r.margin > 1.0, "{r:?}");
    ft.checkpoint().unwrap();
    let (c, _) = fmlab_train::checkpoint::latest(&run, false).unwrap();
    assert!(c.weights.find("score.weight").is_some());
    // LoRA reward models are refused with a reason.
    let mut lora = config;
    lora.lora = Some(LoraConfig {
        rank: 2,
        alpha: 4.0,
        targets: vec!["attn_q".into()],
    });
    let err = Finetuner::create(
        &dir.join("x"),
        base(tok.vocab_size() as u64),
        Data::Pairs(data),
        lora,
        2,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("full weights"), "{err}");
}

/// Plain text mixed into SFT: documents framed by end-of-text and cut into row-sized pieces
/// trained on in full, up to the budget; they join the training rows only.
#[test]
fn mixed_text_joins_training_rows_only() {
    let dir = scratch("mix");
    let (tok, template) = tokenizer();
    let eos = tok.vocab.eos.unwrap();
    let corpus = dir.join("corpus.jsonl");
    let long = "Kea Jemda was born in Lumora. ".repeat(12);
    write(
        &corpus,
        &[
            r#"{"text": "Kea Jemda was born in Lumora."}"#,
            &format!(r#"{{"text": "{long}"}}"#),
            r#"{"text": "Blue."}"#,
        ],
    );
    let (all, docs) = read_texts(&corpus, &tok, 16, usize::MAX).unwrap();
    assert_eq!(docs, 3);
    // Each document starts after an end-of-text token and ends with one; pieces overlap by
    // one token and hold at most 16 predicted positions.
    assert_eq!(all[0].tokens[0], eos);
    assert_eq!(*all[0].tokens.last().unwrap(), eos);
    assert!(all
        .iter()
        .all(|p| p.positions() <= 16 && p.mask.iter().all(|&m| m)));
    let pieces_of_long = all.len() - 2;
    assert!(pieces_of_long >= 3, "{pieces_of_long}");
    assert_eq!(all[1].tokens.last(), all[2].tokens.first());
    // A budget stops reading: the first document only.
    let (some, docs) = read_texts(&corpus, &tok, 16, 1).unwrap();
    assert_eq!((some.len(), docs), (1, 1));
    // A file without "text" fields is an error that names the line.
    write(&corpus, &[r#"{"text": "ok"}"#, r#"{"body": "no"}"#]);
    let err = read_texts(&corpus, &tok, 16, usize::MAX)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2") && err.contains("\"text\""), "{err}");

    let enc = ChatEncoder {
        template: &template,
        tokenizer: &tok,
    };
    let msgs = |q: &str, a: &str| {
        vec![
            fmlab_tokenizer::Message::new("user", q),
            fmlab_tokenizer::Message::new("assistant", a),
        ]
    };
    let seqs: Vec<_> = (0..8)
        .map(|i| {
            enc.conversation(&msgs("Where?", &format!("Lumora {i}.")))
                .unwrap()
        })
        .collect();
    let config = FinetuneConfig {
        method: Method::Sft,
        optim: optim(4, 1e-3),
        lora: None,
        val_fraction: 0.25,
    };
    let plain = prepare(&Data::Sft(seqs.clone()), &[], &config, 2).unwrap();
    let mixed = prepare(&Data::Sft(seqs.clone()), &all, &config, 2).unwrap();
    let mix_positions: usize = all.iter().map(|p| p.positions()).sum();
    assert_eq!(mixed.records.mix_pieces, all.len());
    assert_eq!(mixed.records.mix_tokens, mix_positions);
    assert_eq!(
        mixed.records.train_tokens,
        plain.records.train_tokens + mix_positions
    );
    // Validation is the conversations' alone, row for row.
    assert_eq!(mixed.val, plain.val);
    // Preference data takes no plain text.
    let pairs = vec![(seqs[0].clone(), seqs[1].clone())];
    assert!(prepare(&Data::Pairs(pairs), &all, &config, 2).is_err());
}

fn final_weights(run: &Path) -> Vec<f32> {
    let (c, _) = fmlab_train::checkpoint::latest(run, false).unwrap();
    c.weights.as_slice().to_vec()
}

/// A finetuning run stopped half-way and resumed ends with the same weights, optimizer
/// path and losses as one that ran straight through: SFT with full weights (and mixed
/// text), DPO with LoRA (the cached reference log-probabilities are read back).
#[test]
fn resumed_runs_match_uninterrupted_ones() {
    let dir = scratch("finetune-resume");
    let (tok, template) = tokenizer();
    let enc = ChatEncoder {
        template: &template,
        tokenizer: &tok,
    };
    let q = |q: &str| vec![fmlab_tokenizer::Message::new("user", q)];
    let convs: Vec<_> = (0..10)
        .map(|i| {
            enc.answered(&q("Where was Kea Jemda born?"), &format!("Lumora {i}."))
                .unwrap()
        })
        .collect();
    let pairs: Vec<_> = (0..10)
        .map(|i| {
            (
                enc.answered(&q("What colour?"), &format!("Blue {i}."))
                    .unwrap(),
                enc.answered(&q("What colour?"), "I don't know.").unwrap(),
            )
        })
        .collect();
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, "Kea Jemda was born in Lumora. ".repeat(20)).unwrap();
    let (mix, _) = read_texts(&corpus, &tok, 64, usize::MAX).unwrap();
    let cases = [
        ("sft", Data::Sft(convs), mix, Method::Sft, None),
        (
            "dpo",
            Data::Pairs(pairs),
            Vec::new(),
            Method::Preference {
                beta: 0.1,
                loss: PreferenceLoss::Sigmoid,
            },
            Some(LoraConfig {
                rank: 2,
                alpha: 4.0,
                targets: vec!["q_proj".into(), "down_proj".into()],
            }),
        ),
    ];
    for (name, data, mix, method, lora) in cases {
        let mut o = optim(8, 3e-3);
        o.checkpoint_every = 4;
        o.eval_every = 2;
        o.keep = 2;
        // Two rows per epoch at most: the resumed half starts in a later epoch.
        o.batch = 1;
        let config = FinetuneConfig {
            method,
            optim: o,
            lora,
            val_fraction: 0.2,
        };
        let vocab = tok.vocab_size() as u64;
        let make = || prepare(&data, &mix, &config, 2).unwrap();
        let straight = dir.join(format!("{name}-straight"));
        Finetuner::from_prepared(&straight, base(vocab), make(), config.clone())
            .unwrap()
            .run(&AtomicBool::new(false), &mut |_| {})
            .unwrap();

        let halted = dir.join(format!("{name}-halted"));
        let stop = AtomicBool::new(false);
        let outcome = Finetuner::from_prepared(&halted, base(vocab), make(), config.clone())
            .unwrap()
            .run(&stop, &mut |e| {
                if let fmlab_train::Event::Step(m) = e {
                    if m.step == 4 {
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
            .unwrap();
        assert_eq!(outcome, fmlab_train::Outcome::Interrupted, "{name}");
        let (mut ft, resumed) = Finetuner::resume(&halted, base(vocab), make(), None).unwrap();
        assert_eq!(resumed.step, 4, "{name}");
        let outcome = ft.run(&AtomicBool::new(false), &mut |_| {}).unwrap();
        assert_eq!(outcome, fmlab_train::Outcome::Finished, "{name}");
        assert_eq!(final_weights(&halted), final_weights(&straight), "{name}");
        assert_eq!(
            losses(&halted, "loss"),
            losses(&straight, "loss"),
            "{name}: training losses"
        );
        assert_eq!(
            losses(&halted, "val_loss"),
            losses(&straight, "val_loss"),
            "{name}: validation losses"
        );
        // Different data no longer packs as the run did: refused with the reason.
        let other = match &data {
            Data::Sft(s) => Data::Sft(s[..5].to_vec()),
            Data::Pairs(p) => Data::Pairs(p[..5].to_vec()),
        };
        let changed = prepare(&other, &mix, &config, 2).unwrap();
        let err = Finetuner::resume(&halted, base(vocab), changed, None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("data file changed"), "{name}: {err}");
    }
}
