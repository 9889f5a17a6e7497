//! Decoding throughput for several sequences at once, as the server's continuous batching
//! runs them (`Transformer::forward_batch_into`, one new token per sequence per step):
//! `cargo run --release -p fmlab-nn --example decode_batch -- MODEL.gguf THREADS BATCH...`.
//! Each sequence first reads its own 32-token prompt, then 64 steps decode every sequence
//! together; the line per batch size gives the aggregate tokens per second (median of nine
//! runs) and its ratio to one sequence (the median of the nine rounds' ratios). Within a
//! round each batch size runs its 64 steps alone, as a server under that load would; the
//! sizes' order reverses from round to round, so that a host whose speed drifts weighs on
//! every size alike. Sizes taking turns step by step (as this example did until stop 35)
//! evict each other's working sets, which slowed one sequence by 3–30% and so flattered
//! the ratio. bench/inference.sh calls it.

use std::time::Instant;

use fmlab_formats::GgufFile;
use fmlab_kernels::Threads;
use fmlab_nn::{from_gguf, KvCache, Logits, Segment};

const PROMPT: usize = 32;
const STEPS: usize = 64;
const RUNS: usize = 9;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, threads, batches @ ..] = &args[..] else {
        return Err("usage: decode_batch MODEL.gguf THREADS BATCH...".into());
    };
    let threads: usize = threads.parse()?;
    let batches: Vec<usize> = batches
        .iter()
        .map(|b| b.parse())
        .collect::<Result<_, _>>()?;
    let file = GgufFile::open(model)?;
    let mut model = from_gguf(&file)?;
    model.threads = Threads(threads);
    let vocab = model.spec.vocab_size as u32;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    // rates[b][r]: batch size b's aggregate tokens/s in round r.
    let mut rates = vec![Vec::new(); batches.len()];
    /// One batch size's sequences: their caches, next tokens and logits buffer (reused
    /// from step to step, as the server's engine keeps it), and the time its steps took.
    struct Run {
        caches: Vec<KvCache>,
        next: Vec<[u32; 1]>,
        logits: Vec<f32>,
        seconds: f64,
    }
    for round in 0..RUNS {
        let mut runs = Vec::with_capacity(batches.len());
        for &batch in &batches {
            let mut caches: Vec<KvCache> = (0..batch)
                .map(|_| KvCache::new(&model.spec, PROMPT + STEPS + 1))
                .collect();
            // Different prompts per sequence (ids spread over the vocabulary).
            for (s, cache) in caches.iter_mut().enumerate() {
                let prompt: Vec<u32> = (0..PROMPT as u32)
                    .map(|i| (i * 7919 + s as u32 * 104_729 + 11) % vocab)
                    .collect();
                pool.install(|| model.forward(&prompt, cache, Logits::Last))?;
            }
            let next = (0..batch).map(|s| [(s as u32 * 31 + 5) % vocab]).collect();
            runs.push(Run {
                caches,
                next,
                logits: Vec::new(),
                seconds: 0.0,
            });
        }
        // Each size's steps as one block; even rounds run the sizes in the order given,
        // odd rounds in reverse, so that neither end of a round is always the same size.
        let mut order: Vec<usize> = (0..runs.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for &r in &order {
            let run = &mut runs[r];
            for _ in 0..STEPS {
                let start = Instant::now();
                let mut segments: Vec<Segment<'_>> = run
                    .next
                    .iter()
                    .zip(run.caches.iter_mut())
                    .map(|(t, cache)| Segment { tokens: t, cache })
                    .collect();
                pool.install(|| model.forward_batch_into(&mut segments, &mut run.logits))?;
                for (t, l) in run
                    .next
                    .iter_mut()
                    .zip(run.logits.chunks_exact(vocab as usize))
                {
                    t[0] = fmlab_sample::argmax(l);
                }
                run.seconds += start.elapsed().as_secs_f64();
            }
        }
        for ((rate, run), &batch) in rates.iter_mut().zip(&runs).zip(&batches) {
            rate.push((batch * STEPS) as f64 / run.seconds);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (b, &batch) in batches.iter().enumerate() {
        let ratios: Vec<f64> = rates[b]
            .iter()
            .zip(&rates[0])
            .map(|(r, one)| r / one)
            .collect();
        println!(
            "batch {batch:>3}: {:8.1} tokens/s aggregate  ({:.2}× batch {}, median of the rounds' ratios; runs {})",
            median(rates[b].clone()),
            median(ratios),
            batches[0],
            rates[b]
                .iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}
