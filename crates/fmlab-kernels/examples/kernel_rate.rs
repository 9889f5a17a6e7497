//! Time of the repacked products for batches of 1..32 activation rows on the decoding pool, per
//! block of 32 weights × 16 rows × activation row (what the decoding kernels' cost is
//! counted in): `cargo run --release -p fmlab-kernels --example kernel_rate -- [FORMAT]
//! [ROWS] [COLS] [THREADS]` (defaults Q4_1 1536 576 1, SmolLM2's FFN up map).

use std::time::Instant;

use fmlab_kernels::{quantize_row, Matrix, QuantType, Threads};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let format = match args.first().map(String::as_str).unwrap_or("Q4_1") {
        "Q4_0" => QuantType::Q4_0,
        "Q5_0" => QuantType::Q5_0,
        "Q4_1" => QuantType::Q4_1,
        "Q8_0" => QuantType::Q8_0,
        "Q4_K" => QuantType::Q4_K,
        "Q6_K" => QuantType::Q6_K,
        other => {
            return Err(format!("format {other}: one of Q4_0 Q4_1 Q5_0 Q8_0 Q4_K Q6_K").into())
        }
    };
    let rows: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1536);
    let cols: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(576);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut bytes = Vec::new();
    for _ in 0..rows {
        let row: Vec<f32> = (0..cols).map(|_| next()).collect();
        bytes.extend(quantize_row(format, &row)?);
    }
    let mut w = Matrix::quantized(rows, cols, format, bytes)?;
    let repacked = w.repack();
    println!("{format:?} {rows}×{cols}, repacked: {repacked}");
    let threads: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1);
    // Rayon's pool too (what a pass outside the spinning pool's scope runs on), so that one
    // thread means one.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    pool.install(|| fmlab_kernels::pool::scope(threads, || rates(&w, &mut next, rows, cols)))
        .map_err(|e| e as Box<dyn std::error::Error>)
}

type Res = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn rates(w: &Matrix, next: &mut impl FnMut() -> f32, rows: usize, cols: usize) -> Res {
    let mut one = 0f64;
    for n in [1usize, 2, 4, 8, 16, 32] {
        let x: Vec<f32> = (0..n * cols).map(|_| next()).collect();
        let mut y = vec![0f32; n * rows];
        let reps = (4000 / n).max(100);
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..reps {
                w.matmul(&x, &mut y, Threads(1))?;
            }
            best = best.min(start.elapsed().as_secs_f64() / reps as f64);
        }
        if n == 1 {
            one = best;
        }
        let units = (rows / 16) * (cols / 32) * n;
        println!(
            "n {n:>2}: {:>9.1} µs per product, {:>6.2} ns per block·16 rows·row, {:>5.2}× one row's time",
            best * 1e6,
            best * 1e9 / units as f64,
            best / one
        );
    }
    Ok(())
}
