//! XXH64 (seed 0), written from the xxHash specification and inlined where MinHash hashes
//! its n-grams: millions of short inputs (most under 64 bytes), for which a call into a
//! general-purpose hasher costs as much as the hashing. Bit for bit the `xxhash-rust`
//! crate's `xxh64(bytes, 0)` (tested on every length up to 300 bytes).

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline(always)]
fn read64(b: &[u8], i: usize) -> u64 {
    let w: [u8; 8] = b
        .get(i..i + 8)
        .and_then(|s| s.try_into().ok())
        .unwrap_or_default();
    u64::from_le_bytes(w)
}

#[inline(always)]
fn read32(b: &[u8], i: usize) -> u64 {
    let w: [u8; 4] = b
        .get(i..i + 4)
        .and_then(|s| s.try_into().ok())
        .unwrap_or_default();
    u64::from(u32::from_le_bytes(w))
}

#[inline(always)]
fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline(always)]
fn merge(h: u64, acc: u64) -> u64 {
    (h ^ round(0, acc)).wrapping_mul(P1).wrapping_add(P4)
}

/// XXH64 of `bytes` with seed 0.
#[inline(always)]
pub fn xxh64(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let mut i = 0;
    let mut h = if len >= 32 {
        let mut v = [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)];
        while i + 32 <= len {
            for (k, acc) in v.iter_mut().enumerate() {
                *acc = round(*acc, read64(bytes, i + 8 * k));
            }
            i += 32;
        }
        let h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        v.iter().fold(h, |h, &acc| merge(h, acc))
    } else {
        P5
    };
    h = h.wrapping_add(len as u64);
    while i + 8 <= len {
        h = (h ^ round(0, read64(bytes, i)))
            .rotate_left(27)
            .wrapping_mul(P1)
            .wrapping_add(P4);
        i += 8;
    }
    if i + 4 <= len {
        h = (h ^ read32(bytes, i).wrapping_mul(P1))
            .rotate_left(23)
            .wrapping_mul(P2)
            .wrapping_add(P3);
        i += 4;
    }
    for &b in &bytes[i..] {
        h = (h ^ u64::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn equals_the_xxhash_crate_on_every_length() {
        let mut state = 0x1234_5678_u64;
        for len in 0..300 {
            for _ in 0..8 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        (state >> 56) as u8
                    })
                    .collect();
                assert_eq!(
                    super::xxh64(&bytes),
                    xxhash_rust::xxh64::xxh64(&bytes, 0),
                    "{len}"
                );
            }
        }
    }
}
