//! An open-addressing index from a 5-tuple to a slot of the session slab: a flat array of
//! 8-byte entries (32 bits of the key's hash and the slot number), probed linearly.
//!
//! The index stores no keys. A probe compares the stored hash bits first and confirms a
//! match by asking the caller whether the slot's session has the key, so one lookup reads
//! one cache line of the index (eight entries) and the session it finds. The array is
//! sized at creation to at least twice the number of slots, so it is at most half full
//! and probe runs stay short. It never grows.
//!
//! The hash is SipHash with a random key per index ([`RandomState`]), because LAN tuples
//! are chosen by hosts and a fixed hash would let them build long probe runs.

use std::hash::{BuildHasher, RandomState};

use crate::forward::FiveTuple;

/// Slot number marking an empty entry.
const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Low 32 bits of the key's hash; the home position is `hash & mask`.
    hash: u32,
    /// Slot number in the slab, or [`EMPTY`].
    slot: u32,
}

const VACANT: Entry = Entry { hash: 0, slot: EMPTY };

/// An index of up to `capacity` tuples; see the module documentation.
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
pub(super) struct TupleIndex {
    entries: Vec<Entry>,
    mask: usize,
    hasher: RandomState,
}

impl TupleIndex {
    /// Creates an index for up to `capacity` keys. Slot numbers must be below `u32::MAX`.
    pub(super) fn new(capacity: usize) -> TupleIndex {
        let len = capacity.saturating_mul(2).max(8).next_power_of_two();
        let mut entries = Vec::with_capacity(len);
        super::hugepage::advise(entries.spare_capacity_mut());
        entries.resize(len, VACANT);
        TupleIndex { entries, mask: len - 1, hasher: RandomState::new() }
    }

    /// Heap bytes the index takes.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
    }

    /// Finds the slot whose key is `tuple`. `matches(slot)` returns whether slot `slot`
    /// contains `tuple`.
    pub(super) fn find(&self, tuple: &FiveTuple, matches: impl Fn(u32) -> bool) -> Option<u32> {
        let hash = self.hash(tuple);
        let mut at = hash as usize & self.mask;
        loop {
            let entry = self.entries[at];
            if entry.slot == EMPTY {
                return None;
            }
            if entry.hash == hash && matches(entry.slot) {
                return Some(entry.slot);
            }
            at = (at + 1) & self.mask;
        }
    }

    /// Adds `tuple` for `slot`. The caller has checked that the key is absent, and the
    /// slab bounds the number of keys to the capacity, so a vacant entry always exists.
    pub(super) fn insert(&mut self, tuple: &FiveTuple, slot: u32) {
        let hash = self.hash(tuple);
        let mut at = hash as usize & self.mask;
        while self.entries[at].slot != EMPTY {
            at = (at + 1) & self.mask;
        }
        self.entries[at] = Entry { hash, slot };
    }

    /// Removes the entry of `tuple` pointing at `slot`; returns whether it was present.
    /// Later entries of the probe run are shifted back over the hole, so no tombstones
    /// are left and lookups never walk over deleted entries.
    pub(super) fn remove(&mut self, tuple: &FiveTuple, slot: u32) -> bool {
        let hash = self.hash(tuple);
        let mut hole = hash as usize & self.mask;
        loop {
            let entry = self.entries[hole];
            if entry.slot == EMPTY {
                return false;
            }
            if entry.hash == hash && entry.slot == slot {
                break;
            }
            hole = (hole + 1) & self.mask;
        }

        // Backward-shift deletion: move each later entry of the run into the hole when
        // the hole lies between its home position and its current position.
        let mut at = hole;
        loop {
            at = (at + 1) & self.mask;
            let entry = self.entries[at];
            if entry.slot == EMPTY {
                break;
            }
            let home = entry.hash as usize & self.mask;
            let distance_now = at.wrapping_sub(home) & self.mask;
            let distance_hole = hole.wrapping_sub(home) & self.mask;
            if distance_hole <= distance_now {
                self.entries[hole] = entry;
                hole = at;
            }
        }
        self.entries[hole] = VACANT;
        true
    }

    fn hash(&self, tuple: &FiveTuple) -> u32 {
        self.hasher.hash_one(tuple) as u32
    }
}
