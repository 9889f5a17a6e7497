//! Tokens per second of the training forward + backward on a Llama-shaped model:
//! `cargo run --release -p fmlab-nn --example train_step -- [DEPTH] [SEQ] [BATCH] [VOCAB]`
//! (default 6 256 8 8192: width 384, the reference size of the pre-training issue).

use fmlab_nn::train::{loss_and_grad, Weights};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let get = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (depth, seq, batch, vocab) = (get(0, 6), get(1, 256), get(2, 8), get(3, 8192));
    let spec = fmlab_spec::from_depth(depth as u64, vocab as u64, seq as u64)?;
    let w = Weights::<f32>::init(&spec, 1)?;
    let n = seq * batch;
    let inputs: Vec<u32> = (0..n).map(|i| (i * 7919 % vocab) as u32).collect();
    let targets: Vec<u32> = (0..n).map(|i| (i * 104_729 % vocab) as u32).collect();
    let mut times = Vec::new();
    // One gradient buffer, zeroed before each step, as the trainer keeps it.
    let mut g = Weights::<f32>::zeros(&spec)?;
    for _ in 0..5 {
        for (t, _) in g.tensors_mut() {
            t.iter_mut().for_each(|x| *x = 0.0);
        }
        let t = std::time::Instant::now();
        let loss = loss_and_grad(&spec, &w, &inputs, &targets, batch, Some(&mut g))?;
        times.push(t.elapsed().as_secs_f64());
        eprintln!(
            "loss {loss:.4}, {:.2} s",
            times.last().copied().unwrap_or(0.0)
        );
    }
    times.sort_by(f64::total_cmp);
    println!(
        "depth {depth} (d {}), seq {seq}, batch {batch}, vocab {vocab}: {:.0} tokens/s (forward + backward, median of 5)",
        spec.d_model,
        n as f64 / times[2]
    );
    Ok(())
}
