//! The sampling toolkit against hand-computed tables, statistics and properties, and the
//! generation loop against a toy model.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fmlab_sample::{
    generate, generate_n, ChainOrder, Constraint, Detokenizer, Dry, GenerateOptions, LanguageModel,
    Penalties, Rng, Sampler, SamplerConfig, StopConditions, StopReason, TokenMask,
};

/// Pure sampling with everything off, then `f` applied.
fn config(f: impl FnOnce(&mut SamplerConfig)) -> SamplerConfig {
    let mut c = SamplerConfig::pure(42);
    f(&mut c);
    c
}

fn dist(c: SamplerConfig, logits: &[f32]) -> Vec<f32> {
    Sampler::new(c).unwrap().distribution(logits, &[]).unwrap()
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() < 1e-5,
            "token {i}: {x} vs {y} ({a:?} vs {b:?})"
        );
    }
}

/// ln of probabilities 0.4, 0.3, 0.2, 0.1.
fn four() -> Vec<f32> {
    [0.4f32, 0.3, 0.2, 0.1].iter().map(|p| p.ln()).collect()
}

#[test]
fn hand_computed_tables() {
    let l = four();
    // Pure sampling: the model's distribution.
    close(&dist(config(|_| {}), &l), &[0.4, 0.3, 0.2, 0.1]);
    // top-k 2: renormalised 0.4/0.7, 0.3/0.7.
    close(
        &dist(config(|c| c.top_k = 2), &l),
        &[4.0 / 7.0, 3.0 / 7.0, 0.0, 0.0],
    );
    // top-p 0.75: 0.4 + 0.3 = 0.7 < 0.75, so three tokens.
    close(
        &dist(config(|c| c.top_p = 0.75), &l),
        &[4.0 / 9.0, 3.0 / 9.0, 2.0 / 9.0, 0.0],
    );
    // min-p 0.5: p ≥ 0.2.
    close(
        &dist(config(|c| c.min_p = 0.5), &l),
        &[4.0 / 9.0, 3.0 / 9.0, 2.0 / 9.0, 0.0],
    );
    // Temperature 0.5 squares the probabilities: 16, 9, 4, 1 over 30.
    close(
        &dist(config(|c| c.temperature = 0.5), &l),
        &[16.0 / 30.0, 9.0 / 30.0, 4.0 / 30.0, 1.0 / 30.0],
    );
    // Greedy: all mass on the best.
    close(&dist(SamplerConfig::greedy(), &l), &[1.0, 0.0, 0.0, 0.0]);
    // Logit bias: +ln 4 on token 3 makes it 0.4 → 0.4, 0.3, 0.2, 0.4 over 1.3.
    close(
        &dist(config(|c| c.logit_bias = vec![(3, 4f32.ln())]), &l),
        &[0.4 / 1.3, 0.3 / 1.3, 0.2 / 1.3, 0.4 / 1.3],
    );
    // A banned token.
    close(
        &dist(config(|c| c.logit_bias = vec![(0, f32::NEG_INFINITY)]), &l),
        &[0.0, 0.5, 1.0 / 3.0, 1.0 / 6.0],
    );
    // Epsilon 0.15 drops 0.1.
    close(
        &dist(config(|c| c.epsilon_cutoff = 0.15), &l),
        &[4.0 / 9.0, 3.0 / 9.0, 2.0 / 9.0, 0.0],
    );
}

#[test]
fn temperature_before_or_after_truncation() {
    // Probabilities 0.5, 0.3, 0.2 with top-p 0.75 and temperature 2.
    let l: Vec<f32> = [0.5f32, 0.3, 0.2].iter().map(|p| p.ln()).collect();
    let mk = |order| {
        config(|c| {
            c.top_p = 0.75;
            c.temperature = 2.0;
            c.order = order;
        })
    };
    let llama = dist(mk(ChainOrder::LlamaCpp), &l);
    let hf = dist(mk(ChainOrder::Hf), &l);
    // llama.cpp truncates first: 0.5 + 0.3 = 0.8 ≥ 0.75 keeps two tokens, which the
    // temperature then flattens to √0.5 : √0.3.
    let (a, b) = (0.5f32.sqrt(), 0.3f32.sqrt());
    close(&llama, &[a / (a + b), b / (a + b), 0.0]);
    // hf flattens first (∝ √p: 0.415, 0.322, 0.263): two tokens reach only 0.737, so all
    // three stay.
    let total: f32 = [0.5f32, 0.3, 0.2].iter().map(|p| p.sqrt()).sum();
    close(
        &hf,
        &[
            0.5f32.sqrt() / total,
            0.3f32.sqrt() / total,
            0.2f32.sqrt() / total,
        ],
    );
}

#[test]
fn draws_follow_the_processed_distribution() {
    // 10⁵ draws from top-k 5 at temperature 0.7 over a 50-token vocabulary: chi-square
    // against the distribution the chain reports, 4 degrees of freedom.
    let logits: Vec<f32> = (0..50).map(|i| ((i * 37 % 23) as f32) / 5.0).collect();
    let c = config(|c| {
        c.top_k = 5;
        c.temperature = 0.7;
        c.seed = 2024;
    });
    let expected = dist(c.clone(), &logits);
    let mut sampler = Sampler::new(c).unwrap();
    let n = 100_000;
    let mut counts = vec![0u32; logits.len()];
    for _ in 0..n {
        counts[sampler.sample(&logits, &[], None).unwrap().token as usize] += 1;
    }
    let mut chi2 = 0f64;
    for (i, &p) in expected.iter().enumerate() {
        if p == 0.0 {
            assert_eq!(counts[i], 0, "token {i} was removed but drawn");
            continue;
        }
        let e = p as f64 * n as f64;
        chi2 += (counts[i] as f64 - e).powi(2) / e;
    }
    // 99.9th percentile of χ²(4) is 18.47.
    assert!(chi2 < 18.47, "chi-square {chi2}");
}

#[test]
fn properties_over_random_logits() {
    let mut rng = Rng::new(7);
    let stages = [
        "top_k",
        "top_p",
        "min_p",
        "typical",
        "top_n_sigma",
        "epsilon",
        "eta",
        "xtc",
    ];
    for case in 0..400 {
        let n = 1 + (rng.next_u64() % 60) as usize;
        let mut logits: Vec<f32> = (0..n).map(|_| rng.next_f32() * 20.0 - 10.0).collect();
        // Some −∞ and NaN, but never all.
        for l in logits.iter_mut().skip(1) {
            match rng.next_u64() % 10 {
                0 => *l = f32::NEG_INFINITY,
                1 => *l = f32::NAN,
                _ => {}
            }
        }
        let c = config(|c| {
            c.top_k = (rng.next_u64() % 8) as usize;
            c.top_p = 0.05 + 0.95 * rng.next_f32();
            c.min_p = 0.3 * rng.next_f32();
            c.typical_p = 0.05 + 0.95 * rng.next_f32();
            c.top_n_sigma = 3.0 * rng.next_f32();
            c.epsilon_cutoff = 0.2 * rng.next_f32();
            c.eta_cutoff = 0.2 * rng.next_f32();
            c.xtc_probability = rng.next_f32();
            c.xtc_threshold = 0.5 * rng.next_f32();
            c.temperature = 0.1 + 2.0 * rng.next_f32();
            c.seed = case;
            let k = 1 + (rng.next_u64() % stages.len() as u64) as usize;
            c.order = ChainOrder::parse(&stages[..k].join(",")).unwrap();
        });
        let probs = dist(c.clone(), &logits);
        let total: f32 = probs.iter().sum();
        assert!((total - 1.0).abs() < 1e-4, "case {case}: sum {total}");
        let kept: Vec<usize> = (0..n).filter(|&i| probs[i] > 0.0).collect();
        assert!(!kept.is_empty(), "case {case}");
        for &i in &kept {
            assert!(
                logits[i].is_finite(),
                "case {case}: token {i} ({}) kept",
                logits[i]
            );
        }
        // Truncation keeps a top set (by logit): nothing kept is worse than something
        // dropped — except typical and XTC, which drop from the top by design.
        if !c
            .order
            .stages()
            .iter()
            .any(|s| matches!(s, fmlab_sample::Stage::Typical | fmlab_sample::Stage::Xtc))
        {
            let worst_kept = kept
                .iter()
                .map(|&i| logits[i])
                .fold(f32::INFINITY, f32::min);
            for i in 0..n {
                if probs[i] == 0.0 && logits[i].is_finite() {
                    assert!(
                        logits[i] <= worst_kept,
                        "case {case}: dropped {i} above a kept token"
                    );
                }
            }
        }
        let token = Sampler::new(c)
            .unwrap()
            .sample(&logits, &[], None)
            .unwrap()
            .token;
        assert!(
            probs[token as usize] > 0.0,
            "case {case}: drew a removed token"
        );
    }
}

#[test]
fn degenerate_logits() {
    let mut s = Sampler::new(SamplerConfig::default()).unwrap();
    assert!(s.sample(&[f32::NAN, f32::NEG_INFINITY], &[], None).is_err());
    assert_eq!(s.sample(&[f32::NAN, 1.0], &[], None).unwrap().token, 1);
    assert_eq!(s.sample(&[5.0], &[], None).unwrap().token, 0);
    let all_same = vec![0.0f32; 1000];
    let t = s.sample(&all_same, &[], None).unwrap().token;
    assert!(t < 1000);
    // A mask that allows nothing.
    let none = |_: u32| false;
    assert!(s.sample(&[1.0, 2.0], &[], Some(&none)).is_err());
}

#[test]
fn greedy_and_penalties() {
    // Greedy after penalties: the repeated best token loses to the runner-up.
    let logits = [3.0f32, 2.5, 0.0];
    let c = SamplerConfig {
        penalties: Penalties {
            repeat: 1.5,
            frequency: 0.0,
            presence: 0.0,
            window: 64,
        },
        ..SamplerConfig::greedy()
    };
    let mut s = Sampler::new(c).unwrap();
    assert_eq!(s.sample(&logits, &[0], None).unwrap().token, 1);
    assert_eq!(s.sample(&logits, &[2], None).unwrap().token, 0);
    let dry = SamplerConfig {
        dry: Dry {
            multiplier: 10.0,
            ..Dry::default()
        },
        ..SamplerConfig::greedy()
    };
    // History 0 1 2 0 1: token 2 would repeat "0 1 2".
    let mut s = Sampler::new(dry).unwrap();
    assert_eq!(
        s.sample(&[0.0, 0.0, 5.0], &[0, 1, 2, 0, 1], None)
            .unwrap()
            .token,
        0
    );
}

#[test]
fn logprobs_of_raw_and_processed_distributions() {
    let l = four();
    let mut s = Sampler::new(config(|c| c.top_k = 2))
        .unwrap()
        .with_logprobs(3);
    let out = s.sample(&l, &[], None).unwrap();
    let raw = [0.4f32, 0.3, 0.2, 0.1][out.token as usize].ln();
    assert!((out.logprob.unwrap() - raw).abs() < 1e-5);
    let processed = [4.0f32 / 7.0, 3.0 / 7.0][out.token as usize].ln();
    assert!((out.logprob_sampled - processed).abs() < 1e-5);
    assert_eq!(out.top.iter().map(|t| t.id).collect::<Vec<_>>(), [0, 1, 2]);
    assert!((out.top[2].logprob - 0.2f32.ln()).abs() < 1e-5);
    assert_eq!(out.top_sampled.len(), 2);
    assert!((out.top_sampled[0].logprob - (4.0f32 / 7.0).ln()).abs() < 1e-5);
}

#[test]
fn seeds_and_sequences() {
    let logits: Vec<f32> = (0..100).map(|i| (i % 7) as f32).collect();
    let draw = |seed, seq| {
        let mut s = Sampler::for_sequence(config(|c| c.seed = seed), seq).unwrap();
        (0..50)
            .map(|_| s.sample(&logits, &[], None).unwrap().token)
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(1, 0), draw(1, 0));
    assert_ne!(draw(1, 0), draw(2, 0));
    assert_ne!(draw(1, 0), draw(1, 1));
    assert_ne!(draw(1, 1), draw(1, 2));
    // Sequence 0 is the plain seed.
    let mut plain = Sampler::new(config(|c| c.seed = 1)).unwrap();
    let p: Vec<u32> = (0..50)
        .map(|_| plain.sample(&logits, &[], None).unwrap().token)
        .collect();
    assert_eq!(p, draw(1, 0));
}

/// A toy model: the logits after a context depend only on its last token, peaked at
/// `(last · 7 + 3) mod V` — deterministic, with a little spread for sampling.
struct Toy {
    vocab: usize,
    context: Vec<u32>,
    capacity: usize,
    forwards: usize,
}

impl Toy {
    fn new(vocab: usize, capacity: usize) -> Self {
        Self {
            vocab,
            context: Vec::new(),
            capacity,
            forwards: 0,
        }
    }
}

impl LanguageModel for Toy {
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn context_length(&self) -> usize {
        self.capacity
    }
    fn position(&self) -> usize {
        self.context.len()
    }
    fn reset(&mut self) {
        self.context.clear();
    }
    fn truncate(&mut self, len: usize) {
        self.context.truncate(len);
    }
    fn forward(&mut self, tokens: &[u32]) -> fmlab_sample::Result<Vec<f32>> {
        self.forwards += 1;
        self.context.extend_from_slice(tokens);
        let last = *self.context.last().unwrap() as usize;
        let peak = (last * 7 + 3) % self.vocab;
        Ok((0..self.vocab)
            .map(|i| if i == peak { 5.0 } else { (i % 3) as f32 * 0.5 })
            .collect())
    }
}

/// Token i is the letter ('a' + i mod 26).
struct Letters;

impl Detokenizer for Letters {
    fn token_bytes(&self, id: u32) -> Vec<u8> {
        vec![b'a' + (id % 26) as u8]
    }
}

fn greedy_letters(stop: StopConditions) -> (fmlab_sample::Generation, String) {
    let mut model = Toy::new(26, 100);
    let mut shown = Vec::new();
    let g = generate(
        &mut model,
        &[0],
        &mut Sampler::greedy(),
        GenerateOptions {
            stop,
            detokenizer: Some(&Letters),
            constraint: None,
        },
        &mut |_, bytes| {
            shown.extend_from_slice(bytes);
            true
        },
    )
    .unwrap();
    (g, String::from_utf8(shown).unwrap())
}

#[test]
fn stop_strings_tokens_and_lengths() {
    // Greedy from token 0: 3, 24, 15, 4, 5, 12, 9, 14, … → "dypefmjo…".
    let (g, shown) = greedy_letters(StopConditions {
        max_new_tokens: 8,
        ..Default::default()
    });
    assert_eq!(shown, "dypefmjo");
    assert_eq!(g.stop, StopReason::Length);
    // A stop string spanning tokens: the text before it, and the stream never shows it.
    let (g, shown) = greedy_letters(StopConditions {
        max_new_tokens: 20,
        stop_sequences: vec![b"efm".to_vec()],
        ..Default::default()
    });
    assert_eq!(String::from_utf8(g.bytes.clone()).unwrap(), "dyp");
    assert_eq!(shown, "dyp");
    assert_eq!(g.stop, StopReason::StopSequence(0));
    // A stop token ends generation and is not part of it.
    let (g, _) = greedy_letters(StopConditions {
        max_new_tokens: 20,
        stop_tokens: vec![4],
        ..Default::default()
    });
    assert_eq!(g.tokens, [3, 24, 15]);
    assert_eq!(g.stop, StopReason::StopToken(4));
    // …unless the minimum length is not reached: then it cannot be drawn.
    let (g, _) = greedy_letters(StopConditions {
        max_new_tokens: 20,
        min_new_tokens: 5,
        stop_tokens: vec![4],
        ..Default::default()
    });
    assert!(
        g.tokens.len() >= 5 && !g.tokens[..5].contains(&4),
        "{:?}",
        g.tokens
    );
}

#[test]
fn n_samples_prefill_once_and_differ() {
    let mut model = Toy::new(50, 200);
    let c = config(|c| {
        c.temperature = 3.0;
        c.seed = 9;
    });
    let gs = generate_n(
        &mut model,
        &[1, 2, 3],
        &c,
        Some(0),
        4,
        |_| {
            GenerateOptions::new(StopConditions {
                max_new_tokens: 10,
                ..Default::default()
            })
        },
        &mut |_, _, _| true,
    )
    .unwrap();
    assert_eq!(gs.len(), 4);
    // One prefill, then 9 decode steps per sample.
    assert_eq!(model.forwards, 1 + 4 * 9);
    assert_ne!(gs[0].tokens, gs[1].tokens);
    assert!(gs.iter().all(|g| g.mean_logprob().is_some()));
    // Sample 0 equals a single generation with the same seed.
    let mut model = Toy::new(50, 200);
    let single = generate(
        &mut model,
        &[1, 2, 3],
        &mut Sampler::new(c).unwrap(),
        GenerateOptions::new(StopConditions {
            max_new_tokens: 10,
            ..Default::default()
        }),
        &mut |_, _| true,
    )
    .unwrap();
    assert_eq!(single.tokens, gs[0].tokens);
}

/// A grammar over the toy vocabulary: exactly "3 4 5" then a choice of 7 or 8, then done.
struct Fixed {
    pos: usize,
}

impl Constraint for Fixed {
    fn forced(&mut self) -> fmlab_sample::Result<Vec<u32>> {
        Ok(match self.pos {
            0 => vec![3, 4, 5],
            _ => vec![],
        })
    }
    fn mask(&mut self) -> fmlab_sample::Result<Box<dyn TokenMask + '_>> {
        Ok(Box::new(|id: u32| id == 7 || id == 8))
    }
    fn accept(&mut self, token: u32) -> fmlab_sample::Result<()> {
        let ok = match self.pos {
            0 => token == 3,
            1 => token == 4,
            2 => token == 5,
            3 => token == 7 || token == 8,
            _ => false,
        };
        if !ok {
            return Err(fmlab_sample::Error::Constraint(format!(
                "{token} at {}",
                self.pos
            )));
        }
        self.pos += 1;
        Ok(())
    }
    fn is_finished(&mut self) -> bool {
        self.pos == 4
    }
}

#[test]
fn forced_tokens_skip_sampling_and_batch_the_forward() {
    let mut model = Toy::new(20, 100);
    let mut grammar = Fixed { pos: 0 };
    let g = generate(
        &mut model,
        &[1],
        &mut Sampler::new(config(|c| c.seed = 5)).unwrap(),
        GenerateOptions {
            stop: StopConditions {
                max_new_tokens: 10,
                ..Default::default()
            },
            detokenizer: None,
            constraint: Some(&mut grammar),
        },
        &mut |_, _| true,
    )
    .unwrap();
    assert_eq!(&g.tokens[..3], [3, 4, 5]);
    assert!(g.tokens[3] == 7 || g.tokens[3] == 8);
    assert_eq!(g.tokens.len(), 4);
    assert_eq!(g.forced_tokens, 3);
    assert_eq!(g.stop, StopReason::Grammar);
    // Prefill, one batched forward for the three forced tokens, then the sampled token
    // ends the grammar (no forward after it).
    assert_eq!(model.forwards, 2);
}

#[test]
fn bad_settings_are_refused() {
    for (c, flag) in [
        (config(|c| c.top_p = 1.5), "--top-p"),
        (config(|c| c.temperature = -1.0), "--temperature"),
        (config(|c| c.min_p = -0.1), "--min-p"),
    ] {
        let e = Sampler::new(c).unwrap_err().to_string();
        assert!(e.starts_with(flag), "{e}");
    }
    let e = ChainOrder::parse("top_k,warp").unwrap_err().to_string();
    assert!(
        e.starts_with("--sampler-order") && e.contains("warp"),
        "{e}"
    );
}

#[test]
fn mirostat_v1_and_v2_run_and_adapt() {
    let logits: Vec<f32> = (0..200).map(|i| -(i as f32).sqrt()).collect();
    for version in [1, 2] {
        let mut s = Sampler::new(config(|c| {
            c.mirostat = version;
            c.mirostat_tau = 3.0;
            c.seed = 11;
        }))
        .unwrap()
        .with_logprobs(0);
        // Over many steps the mean surprise approaches τ (bits).
        let mut surprise = 0f64;
        let steps = 3000;
        for _ in 0..steps {
            let out = s.sample(&logits, &[], None).unwrap();
            // Mirostat steers the surprise of the distribution it draws from.
            surprise += -(out.logprob_sampled as f64) / std::f64::consts::LN_2;
        }
        let mean = surprise / steps as f64;
        assert!((mean - 3.0).abs() < 0.6, "v{version}: mean surprise {mean}");
    }
}

#[test]
fn best_of_n_ranks_by_mean_logprob_or_a_scorer() {
    let mut model = Toy::new(30, 200);
    let c = config(|c| {
        c.temperature = 2.0;
        c.seed = 21;
    });
    let gs = generate_n(
        &mut model,
        &[4],
        &c,
        Some(0),
        5,
        |_| {
            GenerateOptions::new(StopConditions {
                max_new_tokens: 6,
                ..Default::default()
            })
        },
        &mut |_, _, _| true,
    )
    .unwrap();
    let b = fmlab_sample::best_of_n(&[4], &gs, &mut fmlab_sample::MeanLogprob).unwrap();
    let means: Vec<f64> = gs.iter().map(|g| g.mean_logprob().unwrap()).collect();
    assert_eq!(b.scores, means);
    assert!(means.iter().all(|&m| m <= means[b.best]));
    // A scorer that a reward model would implement: here, prefer token 0.
    struct Zeros;
    impl fmlab_sample::Scorer for Zeros {
        fn score(&mut self, _: &[u32], g: &fmlab_sample::Generation) -> fmlab_sample::Result<f64> {
            Ok(g.tokens.iter().filter(|&&t| t == 0).count() as f64)
        }
    }
    let z = fmlab_sample::best_of_n(&[4], &gs, &mut Zeros).unwrap();
    let zeros = |g: &fmlab_sample::Generation| g.tokens.iter().filter(|&&t| t == 0).count();
    assert!(gs.iter().all(|g| zeros(g) <= zeros(&gs[z.best])));
}

#[test]
fn the_top_k_shortcut_matches_the_general_path() {
    let mut rng = Rng::new(99);
    for case in 0..300u64 {
        let n = 2 + (rng.next_u64() % 300) as usize;
        let mut logits: Vec<f32> = (0..n)
            .map(|_| (rng.next_f32() * 8.0).round() / 2.0)
            .collect();
        if case % 7 == 0 {
            logits[case as usize % n] = f32::NEG_INFINITY;
        }
        let history: Vec<u32> = (0..(rng.next_u64() % 40))
            .map(|_| (rng.next_u64() % n as u64) as u32)
            .collect();
        let greedy = case % 3 == 0;
        let c = config(|c| {
            c.seed = case;
            c.temperature = if greedy { 0.0 } else { 0.5 + rng.next_f32() };
            c.top_k = 1 + (rng.next_u64() % 20) as usize;
            c.top_p = 0.5 + 0.5 * rng.next_f32();
            c.penalties = Penalties {
                repeat: 1.0 + rng.next_f32(),
                frequency: rng.next_f32(),
                presence: rng.next_f32(),
                window: 16,
            };
            c.dry = Dry {
                multiplier: if case % 2 == 0 { 0.8 } else { 0.0 },
                ..Dry::default()
            };
            c.logit_bias = vec![((case % n as u64) as u32, 3.0), (0, f32::NEG_INFINITY)];
        });
        let mut fast = Sampler::new(c.clone()).unwrap().with_logprobs(3);
        let mut slow = Sampler::new(c).unwrap().without_shortcut().with_logprobs(3);
        for _ in 0..3 {
            let a = fast.sample(&logits, &history, None);
            let b = slow.sample(&logits, &history, None);
            match (a, b) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "case {case}"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("case {case}: {a:?} vs {b:?}"),
            }
        }
    }
}

#[test]
fn fast_log_sum_exp_is_accurate() {
    let mut rng = Rng::new(5);
    for n in [1usize, 7, 8, 1000, 49_152] {
        let logits: Vec<f32> = (0..n).map(|_| rng.next_f32() * 40.0 - 20.0).collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let exact = max
            + logits
                .iter()
                .map(|&l| (l as f64 - max).exp())
                .sum::<f64>()
                .ln();
        let got = fmlab_sample::log_sum_exp(&logits) as f64;
        assert!(
            (got - exact).abs() < 1e-5 * exact.abs().max(1.0),
            "{n}: {got} vs {exact}"
        );
    }
    for x in [0.0f32, -1e-8, -0.3, -1.0, -10.0, -50.0, -86.9] {
        let rel = (fmlab_sample::sampler_exp(x) as f64 / (x as f64).exp() - 1.0).abs();
        assert!(rel < 5e-7, "e^{x}: relative error {rel}");
    }
    assert_eq!(fmlab_sample::sampler_exp(-100.0), 0.0);
    assert_eq!(fmlab_sample::sampler_exp(f32::NAN), 0.0);
}
