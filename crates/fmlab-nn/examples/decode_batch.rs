//! Decoding throughput for several sequences at once, as the server's continuous batching
//! runs them (`Transformer::forward_batch`, one new token per sequence per step):
//! `cargo run --release -p fmlab-nn --example decode_batch -- MODEL.gguf THREADS BATCH...`.
//! Each sequence first reads its own 32-token prompt, then 64 steps decode every sequence
//! together; the line per batch size gives the aggregate tokens per second (median of three
//! runs) and its ratio to one sequence. bench/inference.sh calls it.

use std::time::Instant;

use fmlab_formats::GgufFile;
use fmlab_kernels::Threads;
use fmlab_nn::{from_gguf, KvCache, Logits, Segment};

const PROMPT: usize = 32;
const STEPS: usize = 64;
const RUNS: usize = 3;

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
    let mut single = None;
    for &batch in &batches {
        let mut rates = Vec::new();
        for _ in 0..RUNS {
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
            let mut next: Vec<[u32; 1]> =
                (0..batch).map(|s| [(s as u32 * 31 + 5) % vocab]).collect();
            let start = Instant::now();
            for _ in 0..STEPS {
                let mut segments: Vec<Segment<'_>> = next
                    .iter()
                    .zip(caches.iter_mut())
                    .map(|(t, cache)| Segment { tokens: t, cache })
                    .collect();
                let logits = pool.install(|| model.forward_batch(&mut segments))?;
                for (t, l) in next.iter_mut().zip(&logits) {
                    t[0] = fmlab_sample::argmax(l);
                }
            }
            rates.push((batch * STEPS) as f64 / start.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        let rate = rates[rates.len() / 2];
        let base = *single.get_or_insert(rate);
        println!(
            "batch {batch:>3}: {rate:8.1} tokens/s aggregate  ({:.2}× one sequence; runs {})",
            rate / base,
            rates
                .iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}
