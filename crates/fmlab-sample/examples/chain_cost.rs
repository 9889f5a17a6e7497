//! Time per sampling step of a sampler chain over a random logits vector:
//! `cargo run --release -p fmlab-sample --example chain_cost -- VOCAB [STEPS]`. Prints the
//! median microseconds of llama.cpp's default chain, of greedy, and of the default chain
//! with logprobs (5 alternatives), one line each (`name vocab median_us`).

use std::time::Instant;

use fmlab_sample::{Rng, Sampler, SamplerConfig};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let vocab: usize = args
        .next()
        .ok_or("usage: chain_cost VOCAB [STEPS]")?
        .parse()?;
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(300);
    // Logits shaped like a language model's: a few high, a long tail (Gumbel-ish noise).
    let mut rng = Rng::new(1);
    let logits: Vec<f32> = (0..vocab)
        .map(|_| {
            let u = rng.next_f64().max(1e-12);
            (-(-u.ln()).ln()) as f32 * 2.0
        })
        .collect();
    let history: Vec<u32> = (0..64).map(|i| (i * 7919 % vocab) as u32).collect();
    let runs: [(&str, SamplerConfig, Option<usize>); 3] = [
        ("default", SamplerConfig::default(), None),
        ("greedy", SamplerConfig::greedy(), None),
        ("default+logprobs5", SamplerConfig::default(), Some(5)),
    ];
    for (name, config, logprobs) in runs {
        let mut sampler = Sampler::new(config)?;
        if let Some(k) = logprobs {
            sampler = sampler.with_logprobs(k);
        }
        let mut times = Vec::with_capacity(steps);
        for _ in 0..steps {
            let t = Instant::now();
            let s = sampler.sample(&logits, &history, None)?;
            std::hint::black_box(s);
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        println!("{name} {vocab} {:.1}", median(times));
    }
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let t = Instant::now();
        std::hint::black_box(fmlab_sample::log_sum_exp(std::hint::black_box(&logits)));
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("log_sum_exp {vocab} {:.1}", median(times));
    Ok(())
}
