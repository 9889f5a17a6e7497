//! NumPy's legacy `RandomState(seed)` Mersenne Twister and its `randint(low, high,
//! dtype=uint64)` draw (masked rejection sampling on 64-bit words made of two 32-bit
//! outputs, high word first), so MinHash draws datatrove's permutation parameters exactly.

const N: usize = 624;
const M: usize = 397;

/// MT19937 seeded as NumPy seeds it from an integer (`init_genrand`).
pub struct Mt19937 {
    state: [u32; N],
    next: usize,
}

impl Mt19937 {
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, next: N }
    }

    fn twist(&mut self) {
        for k in 0..N {
            let y = (self.state[k] & 0x8000_0000) | (self.state[(k + 1) % N] & 0x7fff_ffff);
            let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
            self.state[k] = self.state[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.next = 0;
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.next >= N {
            self.twist();
        }
        let mut y = self.state[self.next];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    pub fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        (hi << 32) | u64::from(self.next_u32())
    }

    /// `randint(low, high, dtype=np.uint64)`: uniform in `[low, high)`, for ranges wider
    /// than 32 bits (NumPy draws narrower ranges from 32-bit words; MinHash never asks).
    pub fn randint_u64(&mut self, low: u64, high: u64) -> u64 {
        let range = high.saturating_sub(low).saturating_sub(1);
        if range == 0 {
            return low;
        }
        let mask = u64::MAX >> range.leading_zeros();
        loop {
            let v = self.next_u64() & mask;
            if v <= range {
                return low + v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_randint_parameters() {
        // np.random.RandomState(1).randint(1, 2**61 - 1, dtype=np.uint64, size=112)[:3], then
        // .randint(0, 2**61 - 1, ...)[:3] (datatrove's MinHash parameters for seed 1).
        let p = (1u64 << 61) - 1;
        let mut g = Mt19937::new(1);
        let a: Vec<u64> = (0..112).map(|_| g.randint_u64(1, p)).collect();
        let b: Vec<u64> = (0..112).map(|_| g.randint_u64(0, p)).collect();
        assert_eq!(
            a[..3],
            [775169054918279404, 1758426461858698313, 2109959069025162]
        );
        assert_eq!(
            b[..3],
            [
                1062448801025099917,
                1324811268927594100,
                1217488311597731462
            ]
        );
    }
}
