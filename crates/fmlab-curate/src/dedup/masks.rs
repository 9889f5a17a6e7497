//! Bit masks of a text's ASCII letters and of its ASCII letters or digits, one bit per
//! byte (bit `j` of word `k` for byte `64k + j`), for the one-pass normalisation of ASCII
//! text ([`super::normalize`]): the words, and the blanks between them, are then found
//! with `trailing_zeros` rather than byte by byte. Sixty-four bytes per vector on CPUs with
//! AVX-512BW (detected at run time), eight per `u64` otherwise; both give the same masks
//! (tested).

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The masks of `bytes` into `letters` (ASCII letters) and `alnum` (ASCII letters and
/// digits), both cleared first; bits past the end of `bytes` are 0.
pub(crate) fn ascii_masks(bytes: &[u8], letters: &mut Vec<u64>, alnum: &mut Vec<u64>) {
    let blocks = bytes.len().div_ceil(64);
    letters.clear();
    alnum.clear();
    letters.resize(blocks, 0);
    alnum.resize(blocks, 0);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        done = bytes.len() / 64;
        // SAFETY: AVX-512F and AVX-512BW are available (checked just above), the only
        // requirement of a `#[target_feature(enable = "avx512f,avx512bw")]` function.
        unsafe {
            avx512::masks(
                &bytes[..64 * done],
                &mut letters[..done],
                &mut alnum[..done],
            )
        };
    }
    masks_portable(
        &bytes[64 * done..],
        &mut letters[done..],
        &mut alnum[done..],
    );
}

/// [`ascii_masks`] eight bytes at a time in a `u64` (the last block padded with zeros,
/// which are neither letters nor digits); `letters` and `alnum` hold one word per 64
/// bytes, rounded up.
pub(crate) fn masks_portable(bytes: &[u8], letters: &mut [u64], alnum: &mut [u64]) {
    // The high bits of a word's bytes (flags at bits 7, 15, … 63) gathered into its low
    // eight bits: byte i's flag lands on bit 56 + i of the product, and no two of the
    // partial products meet.
    let gather = |flags: u64| (flags >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
    for ((block, l), a) in bytes
        .chunks(64)
        .zip(letters.iter_mut())
        .zip(alnum.iter_mut())
    {
        let (mut lm, mut am) = (0u64, 0u64);
        for (k, part) in block.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..part.len()].copy_from_slice(part);
            let w = u64::from_le_bytes(w);
            // Per byte below 0x80 (no carry crosses a byte): t = b | 0x20 is a lower-case
            // letter when t + 0x1f has its high bit set and t + 0x05 has not; b is a digit
            // when b + 0x50 has it and b + 0x46 has not. Bytes from 0x80 are neither.
            let t = (w | (0x20 * ONES)) & !HIGH;
            let letter = t.wrapping_add(0x1f * ONES) & !t.wrapping_add(0x05 * ONES) & !w & HIGH;
            let b = w & !HIGH;
            let digit = b.wrapping_add(0x50 * ONES) & !b.wrapping_add(0x46 * ONES) & !w & HIGH;
            lm |= gather(letter) << (8 * k);
            am |= gather(letter | digit) << (8 * k);
        }
        *l = lm;
        *a = am;
    }
}

/// The first position from `i` whose bit in `mask` is set, or `n` (the text's length) when
/// there is none; bits at and past `n` must be 0.
#[inline(always)]
pub(crate) fn next_set(mask: &[u64], i: usize, n: usize) -> usize {
    let mut k = i / 64;
    let Some(&first) = mask.get(k) else {
        return n;
    };
    let mut m = first & (u64::MAX << (i % 64));
    loop {
        if m != 0 {
            return k * 64 + m.trailing_zeros() as usize;
        }
        k += 1;
        match mask.get(k) {
            Some(&w) => m = w,
            None => return n,
        }
    }
}

/// The first position from `i` whose bit in `mask` is clear, at most `n` (the text's
/// length).
#[inline(always)]
pub(crate) fn next_clear(mask: &[u64], i: usize, n: usize) -> usize {
    let mut k = i / 64;
    let Some(&first) = mask.get(k) else {
        return n;
    };
    let mut m = !first & (u64::MAX << (i % 64));
    loop {
        if m != 0 {
            return (k * 64 + m.trailing_zeros() as usize).min(n);
        }
        k += 1;
        match mask.get(k) {
            Some(&w) => m = !w,
            None => return n,
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Whether the CPU has AVX-512F and AVX-512BW, checked once.
    pub(super) fn available() -> bool {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
        })
    }

    /// The masks of `bytes` (a multiple of 64 long) into `letters` and `alnum` (one word
    /// per 64 bytes).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn masks(bytes: &[u8], letters: &mut [u64], alnum: &mut [u64]) {
        let case = _mm512_set1_epi8(0x20);
        let a = _mm512_set1_epi8(b'a' as i8);
        let zero = _mm512_set1_epi8(b'0' as i8);
        let (z, nine) = (_mm512_set1_epi8(25), _mm512_set1_epi8(9));
        for ((block, l), al) in bytes
            .chunks_exact(64)
            .zip(letters.iter_mut())
            .zip(alnum.iter_mut())
        {
            // SAFETY: `block` is 64 readable bytes; the load is unaligned.
            let v = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
            // (b | 0x20) − 'a' ≤ 25 (unsigned, wrapping): a letter (no byte from 0x80 has
            // b | 0x20 in 'a'..='z'); b − '0' ≤ 9: a digit.
            let letter = _mm512_cmple_epu8_mask(_mm512_sub_epi8(_mm512_or_si512(v, case), a), z);
            let digit = _mm512_cmple_epu8_mask(_mm512_sub_epi8(v, zero), nine);
            *l = letter;
            *al = letter | digit;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masks a byte at a time.
    fn by_byte(bytes: &[u8]) -> (Vec<u64>, Vec<u64>) {
        let blocks = bytes.len().div_ceil(64);
        let (mut l, mut a) = (vec![0u64; blocks], vec![0u64; blocks]);
        for (i, b) in bytes.iter().enumerate() {
            if b.is_ascii_alphabetic() {
                l[i / 64] |= 1 << (i % 64);
            }
            if b.is_ascii_alphanumeric() {
                a[i / 64] |= 1 << (i % 64);
            }
        }
        (l, a)
    }

    #[test]
    fn masks_equal_byte_by_byte_on_every_byte_value() {
        let mut state = 5u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let all: Vec<u8> = (0..=255u8).collect();
        let (mut l, mut a) = (Vec::new(), Vec::new());
        for round in 0..2000 {
            let bytes: Vec<u8> = if round == 0 {
                all.clone()
            } else {
                (0..next() % 300).map(|_| next() as u8).collect()
            };
            let want = by_byte(&bytes);
            ascii_masks(&bytes, &mut l, &mut a);
            assert_eq!((&l, &a), (&want.0, &want.1), "{bytes:?}");
            let (mut pl, mut pa) = (vec![0; want.0.len()], vec![0; want.0.len()]);
            masks_portable(&bytes, &mut pl, &mut pa);
            assert_eq!((pl, pa), want, "{bytes:?}");
            // The walks: the next set and the next clear bit from every position.
            let n = bytes.len();
            for i in 0..=n {
                let set = (i..n)
                    .find(|&j| bytes[j].is_ascii_alphanumeric())
                    .unwrap_or(n);
                let clear = (i..n)
                    .find(|&j| !bytes[j].is_ascii_alphabetic())
                    .unwrap_or(n);
                assert_eq!(next_set(&a, i, n), set, "{i} {bytes:?}");
                assert_eq!(next_clear(&l, i, n), clear, "{i} {bytes:?}");
            }
        }
    }
}
