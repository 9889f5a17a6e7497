//! This machine's peak f32 throughput, measured: what MFU and the planner's CPU hardware
//! divide by.

use std::time::Instant;

use crate::{matmul, Threads};

/// Best of a few timed 512×512×512 f32 products on all threads (about half a second in
/// all), in FLOP/s.
pub fn measure_peak_flops() -> f64 {
    let n = 512;
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let flops = 2.0 * (n * n * n) as f64;
    let mut best = 0.0f64;
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < 0.5 {
        let t = Instant::now();
        if matmul(&mut c, &a, &b, n, n, n, Threads(0)).is_err() {
            break;
        }
        best = best.max(flops / t.elapsed().as_secs_f64().max(1e-9));
    }
    best.max(1.0)
}
