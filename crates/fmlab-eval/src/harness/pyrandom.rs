//! Python's `random.Random` (the Mersenne Twister MT19937 seeded as CPython seeds it from an
//! integer) and its `sample`, written here because lm-evaluation-harness draws few-shot
//! examples with `Random(1234).sample(...)`, one draw after another through a task's
//! documents: the same examples — and so the same prompts and scores — need the same
//! generator and the same sampling algorithm, not merely a good one.

const N: usize = 624;
const M: usize = 397;

/// CPython's `random.Random`, for the calls lm-evaluation-harness makes.
pub struct PyRandom {
    state: [u32; N],
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)`: `init_by_array` over the seed's 32-bit words, least
    /// significant first (0 seeds as `[0]`).
    pub fn new(seed: u64) -> Self {
        let mut key = vec![seed as u32];
        if seed >> 32 != 0 {
            key.push((seed >> 32) as u32);
        }
        let mut r = PyRandom {
            state: [0; N],
            index: N,
        };
        r.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = r.state[i - 1] ^ (r.state[i - 1] >> 30);
            r.state[i] = (r.state[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                r.state[0] = r.state[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = r.state[i - 1] ^ (r.state[i - 1] >> 30);
            r.state[i] = (r.state[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                r.state[0] = r.state[N - 1];
                i = 1;
            }
        }
        r.state[0] = 0x8000_0000;
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.state[0] = s;
        for i in 1..N {
            let prev = self.state[i - 1] ^ (self.state[i - 1] >> 30);
            self.state[i] = 1_812_433_253u32.wrapping_mul(prev).wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn twist(&mut self) {
        for i in 0..N {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % N] & 0x7fff_ffff);
            let mut v = self.state[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.state[i] = v;
        }
        self.index = 0;
    }

    /// The next 32 bits (`genrand_uint32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for k ≤ 32.
    fn bits(&mut self, k: u32) -> u32 {
        if k == 0 {
            0
        } else {
            self.next_u32() >> (32 - k)
        }
    }

    /// `_randbelow(n)` (n ≥ 1, below 2³²): rejection sampling on bit_length(n) bits.
    fn below(&mut self, n: usize) -> usize {
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = self.bits(k) as usize;
            if r < n {
                return r;
            }
        }
    }

    /// The indices `random.sample(range(n), k)` picks, in its order (a partial shuffle of
    /// a pool for small populations, rejection from a set for large ones, as CPython
    /// chooses). `k` is at most `n`.
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        let k = k.min(n);
        let mut setsize = 21usize;
        if k > 5 {
            let exp = ((k * 3) as f64).ln() / 4f64.ln();
            setsize += 4usize.pow(exp.ceil() as u32);
        }
        let mut out = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.below(n - i);
                out.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut selected = std::collections::HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.below(n);
                while selected.contains(&j) {
                    j = self.below(n);
                }
                selected.insert(j);
                out.push(j);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by CPython 3.11: `r = random.Random(1234); r.getrandbits(32)` ×3, …
    #[test]
    fn same_numbers_as_cpython() {
        let mut r = PyRandom::new(1234);
        let first: Vec<u32> = (0..3).map(|_| r.next_u32()).collect();
        assert_eq!(first, [4150886329, 3342196574, 1892932127]);
        assert_eq!(PyRandom::new((1 << 40) + 5).next_u32(), 2166296868);
        // r.sample(range(50), 3), r.sample(range(50), 4), r.sample(range(40), 3)
        let mut r = PyRandom::new(1234);
        assert_eq!(r.sample(50, 3), [49, 28, 7]);
        assert_eq!(r.sample(50, 4), [0, 5, 37, 2]);
        assert_eq!(r.sample(40, 3), [5, 6, 22]);
        // Small populations: the pool method. r.sample(range(10), 6), r.sample(range(8), 3)
        let mut r = PyRandom::new(1234);
        assert_eq!(r.sample(10, 6), [7, 1, 0, 9, 4, 6]);
        assert_eq!(r.sample(8, 3), [1, 0, 2]);
    }
}
