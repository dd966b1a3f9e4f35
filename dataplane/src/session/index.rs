//! An open-addressing index from a 5-tuple to a slot of the session slab: a flat array of
//! 8-byte entries (32 bits of the key's hash and the slot number), probed linearly.
//!
//! The index stores no keys. A probe compares the stored hash bits first and confirms a
//! match by asking the caller whether the slot's session has the key, so one lookup reads
//! one cache line of the index (eight entries) and the session it finds. The array is
//! sized at creation to at least twice the number of slots, so it is at most half full
//! and probe runs stay short. It never grows.
//!
//! A batched lookup takes a lookup in three steps, [`TupleIndex::start`],
//! [`TupleIndex::candidate`] and [`TupleIndex::finish`], so that the session table can run
//! each step over a whole burst of keys and prefetch between the steps.
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

/// A lookup between the stages of a batched lookup: the key's hash and the entry its probe
/// goes on from. Every entry between the key's home position and `at` is occupied and has
/// another hash.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Probe {
    hash: u32,
    at: usize,
}

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
        super::memory::advise(entries.spare_capacity_mut());
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
        self.finish(Probe { hash, at: hash as usize & self.mask }, matches)
    }

    /// Starts a lookup of `tuple` for a batched lookup: hashes it and prefetches the
    /// cache line of the entry its probe begins at.
    pub(super) fn start(&self, tuple: &FiveTuple) -> Probe {
        let hash = self.hash(tuple);
        let at = hash as usize & self.mask;
        super::memory::prefetch(&self.entries[at]);
        Probe { hash, at }
    }

    /// Moves `probe` on to the first entry that is vacant or has its key's hash, and
    /// returns that entry's slot when it has the hash: the slot [`TupleIndex::finish`]
    /// checks first. The entries skipped cannot match, so `finish` returns the same from
    /// the new position as from the old.
    pub(super) fn candidate(&self, probe: &mut Probe) -> Option<u32> {
        loop {
            let entry = self.entries[probe.at];
            if entry.slot == EMPTY {
                return None;
            }
            if entry.hash == probe.hash {
                return Some(entry.slot);
            }
            probe.at = (probe.at + 1) & self.mask;
        }
    }

    /// Finishes the lookup of `probe` as [`TupleIndex::find`] does: walks the probe run
    /// from its position to the entry whose slot `matches`, or to a vacant entry.
    pub(super) fn finish(&self, probe: Probe, matches: impl Fn(u32) -> bool) -> Option<u32> {
        let mut at = probe.at;
        loop {
            let entry = self.entries[at];
            if entry.slot == EMPTY {
                return None;
            }
            if entry.hash == probe.hash && matches(entry.slot) {
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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn tuple(host: u16) -> FiveTuple {
        FiveTuple {
            source: IpAddr::V4(Ipv4Addr::new(10, 0, (host >> 8) as u8, host as u8)),
            destination: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)),
            source_port: 40_000,
            destination_port: 53,
            protocol: 17,
        }
    }

    /// Runs the three steps of a batched lookup for one key.
    fn staged(index: &TupleIndex, tuple: &FiveTuple, matches: impl Fn(u32) -> bool) -> Option<u32> {
        let mut probe = index.start(tuple);
        index.candidate(&mut probe);
        index.finish(probe, matches)
    }

    #[test]
    fn staged_lookup_matches_find() {
        let mut index = TupleIndex::new(100);
        for host in 0..100 {
            index.insert(&tuple(host), u32::from(host));
        }
        for host in (0..100).step_by(4) {
            assert!(index.remove(&tuple(host), u32::from(host)));
        }
        for host in 0..150 {
            let key = tuple(host);
            let matches = |slot: u32| slot == u32::from(host);
            let expected = (host < 100 && host % 4 != 0).then_some(u32::from(host));
            assert_eq!(index.find(&key, matches), expected, "find of host {host}");
            assert_eq!(staged(&index, &key, matches), expected, "staged lookup of host {host}");
        }
    }

    #[test]
    fn staged_lookup_past_hash_collision() {
        // One key entered for three slots gives three entries with the same hash, as keys
        // whose hashes agree in 32 bits would, and `matches` picks the slot.
        let mut index = TupleIndex::new(16);
        let key = tuple(7);
        for slot in [1, 2, 3] {
            index.insert(&key, slot);
        }
        let mut probe = index.start(&key);
        assert_eq!(index.candidate(&mut probe), Some(1), "first entry with the hash");
        assert_eq!(index.finish(probe, |slot| slot == 3), Some(3));
        assert_eq!(index.finish(probe, |_| false), None);
        assert_eq!(index.find(&key, |slot| slot == 3), Some(3));
    }

    #[test]
    fn candidate_of_missing_key() {
        let mut index = TupleIndex::new(16);
        index.insert(&tuple(1), 1);
        let mut probe = index.start(&tuple(2));
        assert_eq!(index.candidate(&mut probe), None);
        assert_eq!(index.finish(probe, |_| true), None);
    }
}
