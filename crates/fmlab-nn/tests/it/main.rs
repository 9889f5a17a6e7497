//! The transformer against llama.cpp's recorded outputs on both reference models: first-step
//! logits, greedy continuations and perplexity.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fmlab_formats::GgufFile;
use fmlab_nn::{from_gguf, KvCache, Logits, Session, Transformer};
use fmlab_sample::{generate, GenerateOptions, Sampler, StopConditions};
use fmlab_testkit::{ids, reference};
use fmlab_tokenizer::Tokenizer;

fn load(file: &str) -> (Transformer, Tokenizer) {
    let gguf = GgufFile::open(fmlab_testkit::model(file)).unwrap();
    (
        from_gguf(&gguf).unwrap(),
        Tokenizer::from_gguf(&gguf.gguf).unwrap(),
    )
}

/// Agreement with llama.cpp on every reference prompt: the first-step logits, and the number
/// of greedy steps before the two implementations first pick different tokens.
fn agreement(model: &Transformer, reference_file: &str) -> Vec<(f32, usize)> {
    let r = reference(reference_file);
    let mut out = Vec::new();
    for case in r["generate"].as_array().unwrap() {
        let prompt = ids(&case["prompt_ids"]);
        let expected = ids(&case["greedy_ids"]);
        let mut cache = KvCache::new(&model.spec, 512);
        let logits = model.forward(&prompt, &mut cache, Logits::Last).unwrap();
        let mut max_diff = 0f32;
        for pair in case["first_step_top5_logits"].as_array().unwrap() {
            let (id, value) = (
                pair[0].as_u64().unwrap() as usize,
                pair[1].as_f64().unwrap() as f32,
            );
            max_diff = max_diff.max((logits[id] - value).abs());
        }
        let mut session = Session::new(model, 512);
        let options = GenerateOptions::new(StopConditions {
            max_new_tokens: expected.len(),
            ignore_stop_tokens: true,
            ..StopConditions::default()
        });
        let got = generate(
            &mut session,
            &prompt,
            &mut Sampler::greedy(),
            options,
            &mut |_, _| true,
        )
        .unwrap();
        let same = got
            .tokens
            .iter()
            .zip(&expected)
            .take_while(|(a, b)| a == b)
            .count();
        let mut note = String::new();
        if same < expected.len() {
            // Replay the agreed tokens to see how close the decision was where we diverged.
            let mut cache = KvCache::new(&model.spec, 512);
            let mut context = prompt.clone();
            context.extend_from_slice(&expected[..same]);
            let logits = model.forward(&context, &mut cache, Logits::Last).unwrap();
            let (ours, theirs) = (got.tokens[same] as usize, expected[same] as usize);
            note = format!(
                "; there our logit {:.5} vs {:.5} for llama.cpp's token",
                logits[ours], logits[theirs]
            );
        }
        eprintln!(
            "{reference_file}: first-step logits within {max_diff:e}; greedy agrees for {same} of {} steps{note}",
            expected.len()
        );
        out.push((max_diff, same));
    }
    out
}

/// Checks each case against a floor: first-step logits within `max_diff` of llama.cpp's and
/// at least `steps[i]` greedy tokens identical.
fn check(model_file: &str, reference_file: &str, max_diff: f32, steps: &[usize]) {
    let (model, _) = load(model_file);
    check_model(&model, reference_file, max_diff, steps);
}

fn check_model(model: &Transformer, reference_file: &str, max_diff: f32, steps: &[usize]) {
    let got = agreement(model, reference_file);
    assert_eq!(got.len(), steps.len());
    for (i, ((diff, same), &floor)) in got.iter().zip(steps).enumerate() {
        assert!(
            *diff <= max_diff,
            "{reference_file} case {i}: first-step logits differ by {diff}"
        );
        assert!(
            *same >= floor,
            "{reference_file} case {i}: greedy agrees for {same} steps, expected ≥ {floor}"
        );
    }
}

/// SmolLM2-135M-Instruct Q4_1: our kernels follow ggml's AVX2 arithmetic (8-bit activation
/// products, f16 KV cache, its exp/SiLU, FMA where GCC contracts, iterated RoPE angles, and
/// the summation order of whichever f16 dot product llama.cpp uses: llamafile's for batches,
/// ggml's own for one-token steps), so prompts and every greedy step compute llama.cpp's
/// values bit for bit: first-step logits are identical and all 48 greedy tokens agree on
/// every reference prompt.
#[test]
fn smollm2_agrees_with_llama_cpp() {
    check(
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "smollm2-135m-instruct-q4_1.json",
        0.001,
        &[48, 48, 48, 48, 48, 6],
    );
}

/// Gemma 3 270M Q4_K_M mixes Q5_0, Q8_0, Q4_K and Q6_K. Batched products follow the kernel
/// ggml picks for each (llamafile's for Q5_0/Q8_0, the repacked four-row gemm for Q4_K, the
/// tiled K-quant kernel for Q6_K from 8 rows on), so first-step logits are identical here too
/// and all 48 greedy tokens agree on every prompt.
#[test]
fn gemma3_agrees_with_llama_cpp() {
    check(
        "gemma-3-270m-q4_k_m.gguf",
        "gemma-3-270m-q4_k_m.json",
        0.001,
        &[48, 48, 48],
    );
}

/// Where the CPU has AVX-512 VNNI, `from_gguf` repacks the Q4_0/Q4_1/Q5_0/Q8_0 matrices
/// for the lane-per-row kernel: prompts (with several sequences) and decode steps give the
/// same logits to the bit as the row kernels.
#[test]
fn repacked_weights_give_the_same_logits() {
    for file in [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "gemma-3-270m-q4_k_m.gguf",
    ] {
        let (repacked, _) = load(file);
        let mut plain = repacked.clone();
        let mut count = 0;
        for layer in &mut plain.layers {
            for l in layer.linears_mut() {
                count += l.weight.repacked.take().is_some() as usize;
            }
        }
        count += plain.output_mut().repacked.take().is_some() as usize;
        eprintln!(
            "{file}: {count} matrices repacked (kernel available: {})",
            fmlab_kernels::repack_available()
        );
        let prompt: Vec<u32> = (0..37u32).map(|i| 100 + i * 53).collect();
        let run = |model: &Transformer| {
            let mut cache = KvCache::new(&model.spec, 64);
            let mut out = model.forward(&prompt, &mut cache, Logits::All).unwrap();
            out.extend(
                model
                    .forward(&[prompt[3]], &mut cache, Logits::Last)
                    .unwrap(),
            );
            out
        };
        let (a, b) = (run(&repacked), run(&plain));
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x.to_bits(), y.to_bits(), "{file}: logit {i}: {x} vs {y}");
        }
    }
}

/// A batched forward pass over several sequences (prompts being read and single decode
/// steps, mixed) gives each the logits it gets alone: on SmolLM2's Q4_1/Q8_0 weights the
/// quantized products do not depend on how many rows they see, and attention reads each
/// sequence's own cache.
#[test]
fn batched_forward_equals_each_sequence_alone() {
    let (model, _) = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    let r = reference("smollm2-135m-instruct-q4_1.json");
    let prompts: Vec<Vec<u32>> = r["generate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ids(&c["prompt_ids"]))
        .collect();
    // Alone: each prompt, then two greedy steps.
    let mut alone = Vec::new();
    for p in &prompts {
        let mut cache = KvCache::new(&model.spec, 256);
        let mut rows = vec![model.forward(p, &mut cache, Logits::Last).unwrap()];
        for _ in 0..2 {
            let t = fmlab_sample::argmax(rows.last().unwrap());
            rows.push(model.forward(&[t], &mut cache, Logits::Last).unwrap());
        }
        alone.push(rows);
    }
    // Together: the first half read their prompts while the second half are one step in.
    let mut caches: Vec<KvCache> = prompts
        .iter()
        .map(|_| KvCache::new(&model.spec, 256))
        .collect();
    let half = prompts.len() / 2;
    let mut last: Vec<Vec<f32>> = vec![Vec::new(); prompts.len()];
    for i in half..prompts.len() {
        last[i] = model
            .forward(&prompts[i], &mut caches[i], Logits::Last)
            .unwrap();
    }
    for round in 0..3 {
        let inputs: Vec<Vec<u32>> = (0..prompts.len())
            .map(|i| match (i < half, round) {
                (true, 0) => prompts[i].clone(),
                _ => vec![fmlab_sample::argmax(&last[i])],
            })
            .collect();
        let mut segments: Vec<fmlab_nn::Segment> = inputs
            .iter()
            .zip(caches.iter_mut())
            .enumerate()
            .filter(|(i, _)| *i < half || round < 2)
            .map(|(_, (tokens, cache))| fmlab_nn::Segment { tokens, cache })
            .collect();
        let out = model.forward_batch(&mut segments).unwrap();
        let active: Vec<usize> = (0..prompts.len())
            .filter(|&i| i < half || round < 2)
            .collect();
        for (i, logits) in active.into_iter().zip(out) {
            let step = if i < half { round } else { round + 1 };
            assert_eq!(logits, alone[i][step], "sequence {i}, step {step}");
            last[i] = logits;
        }
    }
}

/// `forward_batch_into` gives `forward_batch`'s logits, row after row in one buffer, as
/// the buffer is reused by batches that grow and shrink; no segments leave it empty.
#[test]
fn batched_logits_into_one_buffer_equal_the_rows() {
    let (model, _) = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    let vocab = model.spec.vocab_size as usize;
    let mut a: Vec<KvCache> = (0..3).map(|_| KvCache::new(&model.spec, 64)).collect();
    let mut b = a.clone();
    let mut buffer = vec![f32::NAN; 5];
    for (round, active) in [3usize, 1, 2, 3].into_iter().enumerate() {
        let inputs: Vec<Vec<u32>> = (0..active)
            .map(|i| vec![(round * 131 + i * 977 + 7) as u32 % vocab as u32; 1 + i])
            .collect();
        let want = {
            let mut segs: Vec<fmlab_nn::Segment> = inputs
                .iter()
                .zip(a.iter_mut())
                .map(|(tokens, cache)| fmlab_nn::Segment { tokens, cache })
                .collect();
            model.forward_batch(&mut segs).unwrap()
        };
        let mut segs: Vec<fmlab_nn::Segment> = inputs
            .iter()
            .zip(b.iter_mut())
            .map(|(tokens, cache)| fmlab_nn::Segment { tokens, cache })
            .collect();
        model.forward_batch_into(&mut segs, &mut buffer).unwrap();
        assert_eq!(buffer.len(), active * vocab, "round {round}");
        for (i, row) in buffer.chunks_exact(vocab).enumerate() {
            assert_eq!(row, want[i].as_slice(), "round {round}, sequence {i}");
        }
    }
    model.forward_batch_into(&mut [], &mut buffer).unwrap();
    assert!(buffer.is_empty());
}

mod train {
    use fmlab_nn::train::{loss_and_grad, Weights};
    use fmlab_spec::from_depth;

    /// A tiny Llama-shaped model: 2 layers, width 64 → shrunk to keep the check fast.
    fn tiny(tied: bool, kv_heads: u64) -> fmlab_spec::ModelSpec {
        let mut s = from_depth(1, 23, 16).unwrap();
        s.n_layers = 2;
        s.d_model = 16;
        s.n_heads = 4;
        s.n_kv_heads = kv_heads;
        s.head_dim = 4;
        s.ffn_dim = 24;
        s.tied_embeddings = tied;
        s
    }

    /// A tiny Gemma-3-shaped model: QK-norm, norms before and after each branch, GeGLU,
    /// scaled embeddings, RoPE on halves, a query scalar, and sliding-window layers (window
    /// 3, every second layer global) with their own RoPE base.
    fn tiny_gemma() -> fmlab_spec::ModelSpec {
        let mut s = fmlab_spec::preset("gemma3-270m").unwrap();
        s.vocab_size = 23;
        s.context_length = 16;
        s.n_layers = 2;
        s.d_model = 16;
        s.n_heads = 4;
        s.n_kv_heads = 2;
        s.head_dim = 4;
        s.ffn_dim = 24;
        s.query_pre_attn_scalar = Some(6.0);
        s.sliding_window = Some(fmlab_spec::SlidingWindow {
            window: 3,
            global_every: 2,
            local_rope_base: Some(100.0),
        });
        s
    }

    /// A tiny Qwen2-shaped model: attention biases, RoPE on halves.
    fn tiny_qwen() -> fmlab_spec::ModelSpec {
        let mut s = tiny(true, 2);
        s.architecture = "qwen2".into();
        s.qkv_bias = true;
        s
    }

    /// Analytic gradients against central differences in f64, for every tensor of the
    /// model (a sample of entries each): Llama-shaped with grouped and full key-value
    /// heads, tied and untied heads; GPT-2, Qwen2 and Gemma 3 shaped (every layer kind the
    /// decoder's plan has).
    #[test]
    fn gradients_match_finite_differences() {
        for spec in [
            tiny(false, 2),
            tiny(true, 4),
            fmlab_testkit::gpt2_tiny(23),
            tiny_qwen(),
            tiny_gemma(),
        ] {
            let (tied, kv) = (spec.tied_embeddings, spec.n_kv_heads);
            let mut w = Weights::<f64>::init(&spec, 3).unwrap();
            // Non-trivial norm weights and biases, so their gradients are exercised.
            for (i, (t, decay)) in w.tensors_mut().into_iter().enumerate() {
                if !decay && t.len() <= 16 {
                    t.iter_mut()
                        .enumerate()
                        .for_each(|(k, x)| *x = 1.0 + 0.1 * ((k + i) % 5) as f64);
                }
            }
            let inputs = [1u32, 5, 7, 2, 9, 3, 3, 11, 22, 0];
            let targets = [5u32, 7, 2, 9, 4, 3, 11, 22, 0, 6];
            let mut g = Weights::<f64>::zeros(&spec).unwrap();
            let loss = loss_and_grad(&spec, &w, &inputs, &targets, 2, Some(&mut g)).unwrap();
            assert!(loss.is_finite());
            let n_tensors = w.tensors_mut().len();
            for t in 0..n_tensors {
                let len = w.tensors_mut()[t].0.len();
                for k in (0..len).step_by((len / 7).max(1)) {
                    let h = 1e-5;
                    let orig = w.tensors_mut()[t].0[k];
                    w.tensors_mut()[t].0[k] = orig + h;
                    let up = loss_and_grad(&spec, &w, &inputs, &targets, 2, None).unwrap();
                    w.tensors_mut()[t].0[k] = orig - h;
                    let down = loss_and_grad(&spec, &w, &inputs, &targets, 2, None).unwrap();
                    w.tensors_mut()[t].0[k] = orig;
                    let numeric = (up - down) / (2.0 * h);
                    let analytic = g.tensors_mut()[t].0[k];
                    let err =
                        (numeric - analytic).abs() / numeric.abs().max(analytic.abs()).max(1e-6);
                    assert!(
                        err < 1e-5 || (numeric - analytic).abs() < 1e-9,
                        "{} tied {tied} kv {kv} tensor {} entry {k}: analytic {analytic}, numeric {numeric}",
                        spec.architecture,
                        w.descs()[t].name
                    );
                }
            }
        }
    }

    /// One decoder: the inference model built from trained weights computes the training
    /// forward's logits (up to the f16 rounding of keys, values and queries that the
    /// inference path shares with llama.cpp), and greedy decoding works on it.
    #[test]
    fn trained_weights_run_on_the_inference_path() {
        let mut llama = tiny(false, 2);
        llama.vocab_size = 64;
        for spec in [
            llama,
            fmlab_testkit::gpt2_tiny(64),
            {
                let mut q = tiny_qwen();
                q.vocab_size = 64;
                q
            },
            {
                let mut g = tiny_gemma();
                g.vocab_size = 64;
                g
            },
        ] {
            same_logits_on_both_paths(&spec);
        }
    }

    fn same_logits_on_both_paths(spec: &fmlab_spec::ModelSpec) {
        let spec = spec.clone();
        let mut w = Weights::<f32>::init(&spec, 5).unwrap();
        // Biases and norm weights away from their initial 0 and 1.
        for (i, t) in w.named_mut().into_iter().enumerate() {
            let base = if t.name.ends_with(".bias") { 0.0 } else { 1.0 };
            if !t.decay && t.data.len() <= 24 {
                t.data
                    .iter_mut()
                    .enumerate()
                    .for_each(|(k, x)| *x = base + 0.05 * ((k + i) % 7) as f32);
            }
        }
        let inputs = [3u32, 17, 9, 40, 2, 33];
        let ours = fmlab_nn::train::logits(&spec, &w, &inputs).unwrap();
        let model = w.to_transformer(&spec).unwrap();
        let mut cache = fmlab_nn::KvCache::new(&spec, 16);
        let theirs = model
            .forward(&inputs, &mut cache, fmlab_nn::Logits::All)
            .unwrap();
        assert_eq!(ours.len(), theirs.len());
        let max = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max < 5e-4, "{}: logits differ by {max}", spec.architecture);
        let mut session = fmlab_nn::Session::new(&model, 16);
        let g = fmlab_sample::generate(
            &mut session,
            &inputs,
            &mut fmlab_sample::Sampler::greedy(),
            fmlab_sample::GenerateOptions::new(fmlab_sample::StopConditions {
                max_new_tokens: 4,
                ..Default::default()
            }),
            &mut |_, _| true,
        )
        .unwrap();
        assert_eq!(g.tokens.len(), 4);
    }

    /// Sequences longer than one block of the causal attention products (64 queries):
    /// gradients of the attention weights still match central differences.
    #[test]
    fn gradients_match_across_attention_blocks() {
        let mut spec = tiny(false, 2);
        spec.context_length = 160;
        let w = Weights::<f64>::init(&spec, 9).unwrap();
        let n = 150;
        let inputs: Vec<u32> = (0..n).map(|i| (i * 7 % 23) as u32).collect();
        let targets: Vec<u32> = (0..n).map(|i| (i * 11 % 23) as u32).collect();
        let mut g = Weights::<f64>::zeros(&spec).unwrap();
        loss_and_grad(&spec, &w, &inputs, &targets, 1, Some(&mut g)).unwrap();
        let mut w = w;
        for name in [
            "blk.1.attn_q.weight",
            "blk.1.attn_k.weight",
            "blk.0.attn_v.weight",
        ] {
            let t = w.named_mut().iter().position(|t| t.name == name).unwrap();
            for k in [0, 5, 17, 40] {
                let h = 1e-5;
                let orig = w.tensors_mut()[t].0[k];
                w.tensors_mut()[t].0[k] = orig + h;
                let up = loss_and_grad(&spec, &w, &inputs, &targets, 1, None).unwrap();
                w.tensors_mut()[t].0[k] = orig - h;
                let down = loss_and_grad(&spec, &w, &inputs, &targets, 1, None).unwrap();
                w.tensors_mut()[t].0[k] = orig;
                let numeric = (up - down) / (2.0 * h);
                let analytic = g.tensors_mut()[t].0[k];
                let err = (numeric - analytic).abs() / numeric.abs().max(analytic.abs()).max(1e-6);
                assert!(
                    err < 1e-5 || (numeric - analytic).abs() < 1e-9,
                    "{name}[{k}]: {analytic} vs {numeric}"
                );
            }
        }
    }

    /// Against PyTorch (eager, f32): a tiny Llama-shaped model with fmlab's conventions
    /// (scripts/pytorch_fixture.py): logits, loss and every gradient agree to 1e-4 of each
    /// tensor's largest magnitude.
    #[test]
    fn logits_loss_and_gradients_match_pytorch() {
        let f: serde_json::Value =
            serde_json::from_str(&fmlab_testkit::fixture("pytorch/tiny_llama.json")).unwrap();
        let dim = |k: &str| f["dims"][k].as_u64().unwrap();
        let mut spec = from_depth(1, dim("vocab"), 16).unwrap();
        spec.d_model = dim("d_model");
        spec.n_layers = dim("layers");
        spec.n_heads = dim("heads");
        spec.n_kv_heads = dim("kv_heads");
        spec.head_dim = dim("head_dim");
        spec.ffn_dim = dim("ffn");
        spec.norm_eps = f["dims"]["eps"].as_f64().unwrap();
        spec.positions = fmlab_spec::Positions::Rope {
            base: f["dims"]["rope_base"].as_f64().unwrap(),
        };
        let floats = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        let mut w = Weights::<f32>::zeros(&spec).unwrap();
        for t in w.named_mut() {
            let src = floats(&f["weights"][&t.name]);
            assert_eq!(src.len(), t.data.len(), "{}", t.name);
            t.data.copy_from_slice(&src);
        }
        let ids = |k: &str| -> Vec<u32> {
            f[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        let (inputs, targets) = (ids("inputs"), ids("targets"));
        let (batch, seq) = (dim("batch") as usize, dim("seq") as usize);
        let close = |what: &str, ours: &[f32], theirs: &[f32]| {
            assert_eq!(ours.len(), theirs.len(), "{what}");
            let scale = theirs.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
            let err = ours
                .iter()
                .zip(theirs)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= 1e-4 * scale,
                "{what}: max error {err} against scale {scale}"
            );
        };
        let mut logits = Vec::new();
        for s in inputs.chunks(seq) {
            logits.extend(fmlab_nn::train::logits(&spec, &w, s).unwrap());
        }
        close("logits", &logits, &floats(&f["logits"]));
        let mut g = Weights::<f32>::zeros(&spec).unwrap();
        let loss = loss_and_grad(&spec, &w, &inputs, &targets, batch, Some(&mut g)).unwrap();
        let want = f["loss"].as_f64().unwrap();
        assert!(
            ((loss as f64 - want) / want).abs() < 1e-4,
            "loss {loss} vs {want}"
        );
        let mut checked = 0;
        for t in g.named_mut() {
            close(&t.name, t.data, &floats(&f["grads"][&t.name]));
            checked += 1;
        }
        assert_eq!(checked, 3 + 9 * dim("layers") as usize);
    }

    #[test]
    fn unsupported_shapes_are_errors() {
        let mut post = tiny(false, 2);
        post.norm_placement = fmlab_spec::NormPlacement::Post;
        let err = Weights::<f32>::zeros(&post).unwrap_err().to_string();
        assert!(err.contains("norms after the residual"), "{err}");
        let mut odd = tiny(false, 2);
        odd.n_kv_heads = 3;
        assert!(Weights::<f32>::zeros(&odd).is_err());
        let spec = tiny(false, 2);
        // Weights of one spec do not run under another.
        let other = Weights::<f32>::init(&tiny_gemma(), 1).unwrap();
        assert!(loss_and_grad(&spec, &other, &[1, 2], &[1, 2], 1, None).is_err());
        let w = Weights::<f32>::init(&spec, 1).unwrap();
        assert!(loss_and_grad(&spec, &w, &[1, 2, 3], &[1, 2], 1, None).is_err());
        assert!(loss_and_grad(&spec, &w, &[1, 99], &[1, 2], 1, None).is_err());
    }
}

/// What post-training needs of the decoder: objectives over per-token log-probabilities,
/// packed rows, LoRA adapters.
mod post {
    use fmlab_nn::train::{
        adapted_logits, logits, objective, token_logprobs, Adapters, Grads, Objective, Rows,
        Weights,
    };

    fn tiny() -> fmlab_spec::ModelSpec {
        let mut s = fmlab_spec::from_depth(1, 23, 16).unwrap();
        s.n_layers = 2;
        s.d_model = 16;
        s.n_heads = 4;
        s.n_kv_heads = 2;
        s.head_dim = 4;
        s.ffn_dim = 24;
        s.tied_embeddings = false;
        s
    }

    /// The mean negative log-likelihood of the tokens where `mask` is set: SFT's loss.
    fn masked_mean(mask: &[bool]) -> impl FnMut(&[f64]) -> fmlab_nn::Result<(f64, Vec<f64>)> + '_ {
        move |lp: &[f64]| {
            let k = mask.iter().filter(|&&m| m).count() as f64;
            let loss = lp
                .iter()
                .zip(mask)
                .filter(|(_, &m)| m)
                .map(|(l, _)| -l)
                .sum::<f64>()
                / k;
            let d = mask
                .iter()
                .map(|&m| if m { -1.0 / k } else { 0.0 })
                .collect();
            Ok((loss, d))
        }
    }

    fn grads_of(
        spec: &fmlab_spec::ModelSpec,
        w: &Weights<f64>,
        inputs: &[u32],
        targets: &[u32],
        segments: &[u32],
        mask: &[bool],
    ) -> (f64, Weights<f64>) {
        let mut g = Weights::<f64>::zeros(spec).unwrap();
        let mut f = masked_mean(mask);
        let rows = Rows {
            inputs,
            targets,
            rows: 1,
            segments: Some(segments),
        };
        let loss = objective(
            spec,
            w,
            None,
            rows,
            Objective::LogProbs(&mut f),
            Grads::Full(&mut g),
        )
        .unwrap();
        (loss, g)
    }

    /// Two conversations packed in one row, the loss on the second one's answer only: the
    /// gradients do not change when the first conversation's tokens, or the targets of the
    /// masked tokens, change — no loss flows from masked tokens or across the boundary.
    /// And the packed second conversation scores exactly as it does alone in its own row
    /// (positions restart, attention stays inside it).
    #[test]
    fn masked_and_packed_tokens_carry_no_gradient() {
        let spec = tiny();
        let w = Weights::<f64>::init(&spec, 4).unwrap();
        let inputs = [1u32, 5, 7, 2, 9, 3, 3, 11, 22, 0, 8, 4];
        let targets = [5u32, 7, 2, 9, 4, 3, 11, 22, 0, 8, 4, 6];
        let segments = [0u32, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1];
        let mask: Vec<bool> = (0..12).map(|i| i >= 8).collect();
        let (loss, g) = grads_of(&spec, &w, &inputs, &targets, &segments, &mask);
        assert!(loss.is_finite() && loss > 0.0);
        let mut other_inputs = inputs;
        other_inputs[..5].copy_from_slice(&[20, 21, 19, 18, 17]);
        let mut other_targets = targets;
        other_targets[..8].copy_from_slice(&[1, 1, 1, 1, 1, 1, 1, 1]);
        let (loss2, g2) = grads_of(&spec, &w, &other_inputs, &other_targets, &segments, &mask);
        assert!((loss - loss2).abs() < 1e-12, "{loss} vs {loss2}");
        let diff = g
            .as_slice()
            .iter()
            .zip(g2.as_slice())
            .map(|(a, b)| (a - b).abs())
            .fold(0f64, f64::max);
        assert!(diff < 1e-12, "gradients changed by {diff}");
        // The embedding rows of tokens seen only in the masked first conversation get
        // nothing.
        let embed = g.get("token_embd.weight").unwrap();
        for t in [1usize, 5, 7] {
            assert!(
                embed[t * 16..(t + 1) * 16].iter().all(|&x| x == 0.0),
                "token {t}"
            );
        }
        assert!(embed[11 * 16..12 * 16].iter().any(|&x| x != 0.0));
        // Packed = alone.
        let packed = token_logprobs(
            &spec,
            &w,
            None,
            Rows {
                inputs: &inputs,
                targets: &targets,
                rows: 1,
                segments: Some(&segments),
            },
        )
        .unwrap();
        let alone =
            token_logprobs(&spec, &w, None, Rows::new(&inputs[5..], &targets[5..], 1)).unwrap();
        for (a, b) in packed[5..].iter().zip(&alone) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        // Non-contiguous segments are refused.
        let bad = [0u32, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1];
        let rows = Rows {
            inputs: &inputs,
            targets: &targets,
            rows: 1,
            segments: Some(&bad),
        };
        assert!(token_logprobs(&spec, &w, None, rows).is_err());
    }

    fn targets() -> Vec<String> {
        ["attn_q", "v_proj", "ffn_down"].map(String::from).to_vec()
    }

    /// LoRA: with B = 0 the adapted model is the base model; adapter gradients match
    /// central differences (f64); merged weights reproduce the adapted model's logits.
    #[test]
    fn lora_adapters() {
        let spec = tiny();
        let w = Weights::<f64>::init(&spec, 4).unwrap();
        let inputs = [1u32, 5, 7, 2, 9, 3, 3, 11];
        let tgt = [5u32, 7, 2, 9, 4, 3, 11, 22];
        let mut a = Adapters::<f64>::init(&spec, 2, 4.0, &targets(), 7).unwrap();
        assert_eq!(a.targets, ["attn_q", "attn_v", "ffn_down"]);
        assert_eq!(
            logits(&spec, &w, &inputs).unwrap(),
            adapted_logits(&spec, &w, &a, &inputs).unwrap()
        );
        // B away from zero, then a gradient check of every adapter tensor.
        for (i, t) in a.weights.named_mut().into_iter().enumerate() {
            if t.name.ends_with("lora_b") {
                t.data
                    .iter_mut()
                    .enumerate()
                    .for_each(|(k, x)| *x = 0.05 * (((k * 7 + i) % 11) as f64 - 5.0));
            }
        }
        let mut f = |lp: &[f64]| -> fmlab_nn::Result<(f64, Vec<f64>)> {
            let n = lp.len() as f64;
            Ok((-lp.iter().sum::<f64>() / n, vec![-1.0 / n; lp.len()]))
        };
        let mut g = Adapters::<f64>::zeros(&spec, 2, 4.0, &targets())
            .unwrap()
            .weights;
        let loss = |a: &Adapters<f64>, f: fmlab_nn::train::LogProbLoss<'_, f64>| {
            objective(
                &spec,
                &w,
                Some(a),
                Rows::new(&inputs, &tgt, 2),
                Objective::LogProbs(f),
                Grads::None,
            )
            .unwrap()
        };
        objective(
            &spec,
            &w,
            Some(&a),
            Rows::new(&inputs, &tgt, 2),
            Objective::LogProbs(&mut f),
            Grads::Adapters(&mut g),
        )
        .unwrap();
        for t in 0..a.weights.descs().len() {
            let len = a.weights.tensor(t).len();
            for k in (0..len).step_by((len / 5).max(1)) {
                let h = 1e-5;
                let orig = a.weights.tensor(t)[k];
                a.weights.tensor_mut(t)[k] = orig + h;
                let up = loss(&a, &mut f);
                a.weights.tensor_mut(t)[k] = orig - h;
                let down = loss(&a, &mut f);
                a.weights.tensor_mut(t)[k] = orig;
                let numeric = (up - down) / (2.0 * h);
                let analytic = g.tensor(t)[k];
                let err = (numeric - analytic).abs() / numeric.abs().max(analytic.abs()).max(1e-6);
                assert!(
                    err < 1e-5 || (numeric - analytic).abs() < 1e-9,
                    "{}[{k}]: analytic {analytic}, numeric {numeric}",
                    a.weights.descs()[t].name
                );
            }
        }
        // Merging, in f32 as exported.
        let w32 = Weights::<f32>::init(&spec, 4).unwrap();
        let mut a32 = Adapters::<f32>::init(&spec, 2, 4.0, &targets(), 7).unwrap();
        for (i, t) in a32.weights.named_mut().into_iter().enumerate() {
            if t.name.ends_with("lora_b") {
                t.data
                    .iter_mut()
                    .enumerate()
                    .for_each(|(k, x)| *x = 0.05 * (((k * 7 + i) % 11) as f32 - 5.0));
            }
        }
        let adapted = adapted_logits(&spec, &w32, &a32, &inputs).unwrap();
        let base = logits(&spec, &w32, &inputs).unwrap();
        let moved = adapted
            .iter()
            .zip(&base)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(moved > 1e-3, "the adapters change the logits ({moved})");
        let mut merged = w32.clone();
        a32.merge_into(&spec, &mut merged).unwrap();
        let after = logits(&spec, &merged, &inputs).unwrap();
        let err = adapted
            .iter()
            .zip(&after)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "merged logits differ by {err}");
        // Bad settings are errors.
        assert!(Adapters::<f32>::zeros(&spec, 0, 8.0, &targets()).is_err());
        assert!(Adapters::<f32>::zeros(&spec, 2, 8.0, &["mlp".to_string()]).is_err());
        let mut deeper = tiny();
        deeper.n_layers = 3;
        let other = Adapters::<f32>::zeros(&deeper, 2, 4.0, &targets()).unwrap();
        assert!(adapted_logits(&spec, &w32, &other, &inputs).is_err());
    }
}
