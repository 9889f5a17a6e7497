//! Flat open-addressing hash tables for the filters' duplicate counts: no allocation per
//! entry, emptied in O(1) between uses by a generation number kept in every slot, sized for
//! their entries at most a quarter or half full (linear probing).
//!
//! [`Table`] stores positions under 64-bit hashes and confirms a match with the caller's
//! exact comparison, so colliding hashes cost time, never a wrong answer; [`PairTable`] maps
//! pairs of small ids to ids exactly, the key itself held in the slot.

/// Mixes a key into a table index and tag (the 128-bit product's halves folded).
#[inline]
pub(crate) fn mix(k: u64) -> u64 {
    let x = u128::from(k ^ 0x2d35_8dcc_aa6c_78a5) * 0x8bb8_4b93_962e_acc9_u128;
    (x as u64) ^ ((x >> 64) as u64)
}

/// An open-addressing (linear probing) set of positions, keyed by 64-bit hashes, emptied in
/// O(1) by starting a new generation. A slot is one `u64`: generation (16 bits), a tag from
/// the hash (16 bits), the position (32 bits). A tag match is confirmed by the caller's
/// exact comparison, so hashes may collide safely.
#[derive(Default)]
pub(crate) struct Table {
    slots: Vec<u64>,
    mask: usize,
    gen: u64,
}

impl Table {
    /// Empties the table and sizes it for up to `n` entries (at most a quarter full: most
    /// lookups then end at their first slot).
    pub(crate) fn reset(&mut self, n: usize) {
        let cap = (4 * n).next_power_of_two().max(16);
        if self.slots.len() < cap {
            self.slots = vec![0; cap];
            self.gen = 0;
        }
        self.mask = cap - 1;
        self.gen += 1;
        if self.gen > 0xffff {
            self.slots.fill(0);
            self.gen = 1;
        }
    }

    /// The first position stored under `hash` that passes `same`, or `None` after storing
    /// `pos` under `hash`.
    #[inline]
    pub(crate) fn find_or_insert(
        &mut self,
        hash: u64,
        pos: u32,
        same: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        let h = mix(hash);
        let want = (self.gen << 16) | (h >> 48);
        let mut i = h as usize & self.mask;
        loop {
            let s = self.slots[i];
            if s >> 48 != self.gen {
                self.slots[i] = (want << 32) | u64::from(pos);
                return None;
            }
            if s >> 32 == want && same(s as u32) {
                return Some(s as u32);
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// Ids below 2^20 ([`PairTable`]'s range: texts of fewer words).
pub(crate) const PAIR_BITS: u32 = 20;
const PAIR_MASK: u64 = (1 << PAIR_BITS) - 1;

/// An exact open-addressing map from pairs of ids below 2^20 to ids below 2^20, emptied by
/// starting a new generation: a slot is one `u64`, generation (4 bits), the pair (40 bits)
/// and its value (20 bits), so no lookup reads anything but the table.
#[derive(Default)]
pub(crate) struct PairTable {
    slots: Vec<u64>,
    mask: usize,
    gen: u64,
    /// The slots written since they were last cleared are the first `used`.
    used: usize,
}

impl PairTable {
    /// Empties the table and sizes it for up to `n` entries (at most half full).
    pub(crate) fn reset(&mut self, n: usize) {
        let cap = (2 * n).next_power_of_two().max(16);
        if self.slots.len() < cap {
            self.slots = vec![0; cap];
            self.gen = 0;
            self.used = 0;
        }
        self.mask = cap - 1;
        self.gen += 1;
        if self.gen > 0xf {
            // Only the slots used since the last clearing hold a generation (the others
            // are 0, empty whatever the generation): a table grown once for a long text is
            // not cleared in full every 15 uses after it.
            self.slots[..self.used].fill(0);
            self.gen = 1;
            self.used = 0;
        }
        self.used = self.used.max(cap);
    }

    /// The value stored for `(a, b)`, after storing `val` for it when there was none; and
    /// whether it was stored now. (One branch, well predicted, for the commonest probe that
    /// ends at its first slot, whether it finds the pair or stores it.)
    #[inline]
    pub(crate) fn get_or_insert(&mut self, a: u32, b: u32, val: u32) -> (u32, bool) {
        let pair = (u64::from(a) << PAIR_BITS) | u64::from(b);
        let want = (self.gen << (2 * PAIR_BITS)) | pair;
        let mut i = mix(pair) as usize & self.mask;
        loop {
            let s = self.slots[i];
            let empty = s >> (3 * PAIR_BITS) != self.gen;
            if empty | (s >> PAIR_BITS == want) {
                let new = (want << PAIR_BITS) | u64::from(val);
                let slot = if empty { new } else { s };
                self.slots[i] = slot;
                return ((slot & PAIR_MASK) as u32, empty);
            }
            i = (i + 1) & self.mask;
        }
    }
}
