//! The two physical limits `bench/inference.sh` measures speeds against, on THREADS threads:
//! the memory read bandwidth (decode reads every weight once per token) and the peak rate
//! of 8-bit multiply-adds (prefill's products are int8 dot products): `vpdpbusd` on
//! AVX-512 VNNI, `vpmaddubsw` + `vpmaddwd` on AVX2, as the kernels use them.
//!
//! Usage: limits THREADS — prints `bandwidth_gbs <GB/s>` and `int8_gops <G multiply-adds/s>`.

use std::time::Instant;

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(1)
        .max(1);
    println!("bandwidth_gbs {:.2}", bandwidth(threads) / 1e9);
    println!("int8_gops {:.1}", int8_rate(threads) / 1e9);
}

/// Best of several passes of `threads` threads each summing its share of a 1 GiB buffer
/// (far beyond any cache), in bytes per second.
fn bandwidth(threads: usize) -> f64 {
    let len = 1usize << 27; // u64s: 1 GiB
    let data: Vec<u64> = (0..len as u64).collect();
    let mut best = 0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let sum: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = data
                .chunks(len.div_ceil(threads))
                .map(|part| s.spawn(move || read_all(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0u64, u64::wrapping_add)
        });
        let seconds = start.elapsed().as_secs_f64();
        std::hint::black_box(sum);
        best = best.max((len * 8) as f64 / seconds);
    }
    best
}

/// Sums `part` with the widest loads the CPU has, four independent sums.
fn read_all(part: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was just checked.
            return unsafe { x86::read512(part) };
        }
    }
    let mut acc = [0u64; 8];
    for c in part.chunks_exact(8) {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*v);
        }
    }
    acc.iter().fold(0u64, |a, b| a.wrapping_add(*b))
}

/// Best rate of 8-bit multiply-adds over a few timed runs, `threads` threads at once.
fn int8_rate(threads: usize) -> f64 {
    let iterations = 20_000_000u64;
    let mut best = 0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let per_thread: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| s.spawn(move || int8_loop(iterations)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        let seconds = start.elapsed().as_secs_f64();
        let total: u64 = per_thread.iter().sum();
        best = best.max(total as f64 / seconds);
    }
    best
}

/// Runs `iterations` rounds of independent int8 dot-product instructions; returns how many
/// multiply-adds they performed.
fn int8_loop(iterations: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
        {
            // SAFETY: the features were just checked.
            return unsafe { x86::vnni512(iterations) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was just checked.
            return unsafe { x86::avx2(iterations) };
        }
    }
    // No SIMD: one scalar multiply-add per step.
    let mut acc = 0i32;
    for i in 0..iterations {
        acc = acc.wrapping_add(std::hint::black_box(i as i32 & 127) * 3);
    }
    std::hint::black_box(acc);
    iterations
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The sum of `part` through 512-bit loads, 256 bytes per step.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn read512(part: &[u64]) -> u64 {
        let mut acc = [_mm512_setzero_si512(); 4];
        let chunks = part.chunks_exact(32);
        let tail: u64 = chunks.remainder().iter().fold(0, |a, b| a.wrapping_add(*b));
        for c in chunks {
            for (k, a) in acc.iter_mut().enumerate() {
                // SAFETY: `c` holds 32 u64, so 8 from 8·k are in bounds.
                let v = unsafe { _mm512_loadu_si512(c.as_ptr().add(8 * k).cast()) };
                *a = _mm512_add_epi64(*a, v);
            }
        }
        let total = _mm512_add_epi64(
            _mm512_add_epi64(acc[0], acc[1]),
            _mm512_add_epi64(acc[2], acc[3]),
        );
        (_mm512_reduce_add_epi64(total) as u64).wrapping_add(tail)
    }

    /// Eight independent chains of `vpdpbusd` (64 multiply-adds each).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn vnni512(iterations: u64) -> u64 {
        let a = _mm512_set1_epi8(3);
        let b = _mm512_set1_epi8(-2);
        let mut acc = [_mm512_setzero_si512(); 8];
        for _ in 0..iterations {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, a, b);
            }
        }
        let mut total = _mm512_setzero_si512();
        for v in acc {
            total = _mm512_add_epi32(total, v);
        }
        std::hint::black_box(total);
        iterations * 8 * 64
    }

    /// Sixteen independent chains of `vpmaddubsw` + `vpmaddwd` (32 multiply-adds each;
    /// each chain feeds its result back in, so nothing is hoisted out of the loop).
    #[target_feature(enable = "avx2")]
    pub unsafe fn avx2(iterations: u64) -> u64 {
        let b = _mm256_set1_epi8(1);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_set1_epi8(3); 16];
        for _ in 0..iterations {
            for v in acc.iter_mut() {
                *v = _mm256_madd_epi16(_mm256_maddubs_epi16(*v, b), ones);
            }
        }
        let mut total = _mm256_setzero_si256();
        for v in acc {
            total = _mm256_add_epi32(total, v);
        }
        std::hint::black_box(total);
        iterations * 16 * 32
    }
}
