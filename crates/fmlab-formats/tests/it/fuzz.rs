//! A property test over ≥ 100 000 mutated GGUF and safetensors files: every one parses or
//! fails with an error; none panics. The cargo-fuzz targets under fuzz/ explore further.

use fmlab_formats::{Gguf, SafeTensors};

use crate::Rng;

/// Applies one to four random mutations: flipped bytes, 64-bit fields set to extreme values,
/// truncation, duplicated or inserted spans.
pub fn mutate(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let mut b = original.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.push(rng.next_u64() as u8);
            continue;
        }
        match rng.below(6) {
            0 => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(b.len());
                b[i] = rng.next_u64() as u8;
            }
            2 => {
                let extremes = [
                    0u64,
                    1,
                    u32::MAX as u64,
                    u64::MAX,
                    1 << 62,
                    i64::MAX as u64 + 1,
                    255,
                ];
                let v = extremes[rng.below(extremes.len())].to_le_bytes();
                let i = rng.below(b.len());
                let n = v.len().min(b.len() - i);
                b[i..i + n].copy_from_slice(&v[..n]);
            }
            3 => {
                let len = rng.below(b.len());
                b.truncate(len);
            }
            4 => {
                let i = rng.below(b.len());
                let n = rng.below(16).min(b.len() - i);
                let span = b[i..i + n].to_vec();
                let j = rng.below(b.len());
                b.splice(j..j, span);
            }
            _ => {
                let i = rng.below(b.len());
                b.insert(i, rng.next_u64() as u8);
            }
        }
    }
    b
}

#[test]
fn mutated_files_never_panic() {
    let gguf = crate::gguf::sample();
    let st = crate::safetensors::sample();
    let mut rng = Rng(0x5eed);
    let (mut gguf_ok, mut st_ok) = (0, 0);
    const CASES: usize = 100_000;
    for _ in 0..CASES {
        if Gguf::parse(&mutate(&mut rng, &gguf)).is_ok() {
            gguf_ok += 1;
        }
        if SafeTensors::parse(&mutate(&mut rng, &st)).is_ok() {
            st_ok += 1;
        }
    }
    // Some mutations are harmless (a changed metadata byte); most are not. Both kinds must
    // occur, or the mutator is not exercising the parsers.
    assert!(gguf_ok > 0 && gguf_ok < CASES, "{gguf_ok}");
    assert!(st_ok > 0 && st_ok < CASES, "{st_ok}");
}
