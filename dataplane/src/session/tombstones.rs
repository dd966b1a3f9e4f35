//! Tombstones: the UUIDs of deleted sessions that a peer's forward metadata created, kept
//! by the Security ID that metadata was sealed under.
//!
//! The first packet of a session carries its UUID and payload key, sealed under one of
//! this router's metadata keys. While the session lives, its replay window drops a copy of
//! that packet. Once the session is deleted, only a tombstone distinguishes the copy from a
//! new session. A tombstone is needed only while the router still accepts the metadata key,
//! because after that the copy no longer opens. So the tombstones of one Security ID are
//! dropped together when the router retires its key.
//!
//! Each set is a linear-probing table allocated when the worker starts, so recording a
//! tombstone never allocates. Tombstones are never removed one by one, which keeps the
//! probing free of deletion markers. A live session created under a Security ID holds a
//! slot for its future tombstone, so a deletion always finds room.
//!
//! A set that fills before its key retires fails open: it forgets its buried UUIDs and
//! starts again, and the worker counts them. Refusing new sessions instead would let a
//! burst of sessions, or a key that cannot rotate (classic mode), cut every peer off.

use std::fmt;
use std::hash::{BuildHasher, RandomState};

use uuid::Uuid;

/// Security IDs a worker keeps tombstones for at once. With the key exchange a router
/// accepts its current metadata key and, for a grace time after a rotation, the previous
/// one. In classic mode it accepts one key per distinct inter-router security policy.
pub const TOMBSTONE_SETS: usize = 4;

/// Sessions one Security ID may have in a worker's tombstones, deleted and live together,
/// in the default engine configuration. The table behind it has 65 536 slots of 16 bytes
/// (1 MiB), so it is at most three quarters full.
pub const TOMBSTONE_CAPACITY: usize = 49_152;

/// Reason a session may not be created from forward metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A session with this UUID was created under this Security ID and deleted since: the
    /// packet is a replay of its first packet.
    Replayed,
}

/// The tombstones of one worker, in [`TOMBSTONE_SETS`] sets of equal capacity.
#[cfg_attr(test, derive(Clone))]
pub struct Tombstones {
    sets: Vec<TombstoneSet>,
    /// Sessions one set may hold, deleted and live.
    capacity: usize,
    /// Keyed hash of the UUIDs, which peers choose, so that a peer cannot pick UUIDs that
    /// share one probe run.
    hasher: RandomState,
    /// Tombstones forgotten because their set was full.
    forgotten: u64,
}

/// The tombstones of one Security ID.
#[cfg_attr(test, derive(Clone))]
struct TombstoneSet {
    /// The Security ID, or `None` while the set is free.
    security_id: Option<u32>,
    /// UUIDs as integers, with 0 for an empty slot. The length is a power of two.
    slots: Box<[u128]>,
    /// Whether the nil UUID, which an empty slot cannot hold, is buried.
    nil: bool,
    /// UUIDs buried.
    buried: usize,
    /// Live sessions created under the Security ID, each holding a slot for its tombstone.
    live: usize,
    rotation: Rotation,
}

/// State of a set's request for a metadata-key rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rotation {
    /// Below the high-water mark.
    NotNeeded,
    /// Past the high-water mark; the request waits to be sent.
    Pending,
    /// The request was handed to the control thread.
    Sent,
}

impl Tombstones {
    /// Tombstone sets for `capacity` sessions per Security ID, allocated now.
    pub fn new(capacity: usize) -> Tombstones {
        let sets = (0..TOMBSTONE_SETS).map(|_| TombstoneSet::new(slots_for(capacity))).collect();
        Tombstones { sets, capacity, hasher: RandomState::new(), forgotten: 0 }
    }

    /// Sessions one Security ID may hold, deleted and live.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Fill of a set at which the worker asks for a metadata-key rotation: three quarters
    /// of the capacity.
    pub fn high_water(&self) -> usize {
        self.capacity - self.capacity / 4
    }

    /// Checks whether a session with `uuid` may be created from forward metadata sealed
    /// under `security_id`: it may unless its UUID is buried there.
    pub fn admit(&self, security_id: u32, uuid: Uuid) -> Result<(), Refusal> {
        let set = self.sets.iter().find(|set| set.security_id == Some(security_id));
        if set.is_some_and(|set| set.contains(&self.hasher, uuid)) {
            return Err(Refusal::Replayed);
        }
        Ok(())
    }

    /// Holds a slot for the tombstone of a session being created under `security_id`, and
    /// marks the set for a rotation request when that takes it to the high-water mark.
    /// A full set forgets its buried UUIDs first. Returns false when the session gets no
    /// tombstone: no set is free for a new Security ID, or live sessions alone fill the set.
    pub fn reserve(&mut self, security_id: u32) -> bool {
        let (capacity, high_water) = (self.capacity, self.high_water());
        let Some(set) = find_or_claim(&mut self.sets, security_id) else {
            return false;
        };
        if set.buried + set.live >= capacity {
            self.forgotten += set.buried as u64;
            set.forget();
        }
        if set.live >= capacity {
            return false;
        }
        set.live += 1;
        if set.buried + set.live >= high_water && set.rotation == Rotation::NotNeeded {
            set.rotation = Rotation::Pending;
        }
        true
    }

    /// Records the deletion of a session created under `security_id`: its UUID is buried
    /// in the slot it held. Nothing is recorded once the Security ID is retired.
    pub fn bury(&mut self, security_id: u32, uuid: Uuid) {
        let capacity = self.capacity;
        let Some(set) = self.sets.iter_mut().find(|set| set.security_id == Some(security_id))
        else {
            return;
        };
        set.live = set.live.saturating_sub(1);
        // NOTE: only a session created before its Security ID was retired and accepted
        // again holds no slot here; its tombstone is dropped when the set is full.
        if set.buried < capacity {
            set.insert(&self.hasher, uuid);
        }
    }

    /// Gives back the slot of a session that was created under `security_id` but deleted
    /// before it carried a packet, without burying it.
    pub fn release(&mut self, security_id: u32) {
        if let Some(set) = self.sets.iter_mut().find(|set| set.security_id == Some(security_id)) {
            set.live = set.live.saturating_sub(1);
        }
    }

    /// Drops the tombstones of every Security ID that `accepted` rejects, freeing their
    /// memory. Returns how many sets were dropped.
    pub fn retain(&mut self, accepted: impl Fn(u32) -> bool) -> usize {
        let mut dropped = 0;
        for set in &mut self.sets {
            if set.security_id.is_some_and(|id| !accepted(id)) {
                set.clear();
                dropped += 1;
            }
        }
        dropped
    }

    /// Returns how many tombstones were forgotten because their set was full.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }

    /// UUIDs buried under `security_id`, or `None` when no set holds that Security ID.
    pub fn buried(&self, security_id: u32) -> Option<usize> {
        self.sets.iter().find(|set| set.security_id == Some(security_id)).map(|set| set.buried)
    }

    /// Calls `send` with each Security ID whose set passed the high-water mark and has not
    /// had its rotation request sent. A request counts as sent when `send` returns true, so
    /// one refused (a full queue) is offered again on the next call.
    pub fn send_rotation_requests(&mut self, mut send: impl FnMut(u32) -> bool) {
        for set in &mut self.sets {
            if set.rotation == Rotation::Pending
                && let Some(id) = set.security_id
                && send(id)
            {
                set.rotation = Rotation::Sent;
            }
        }
    }
}

/// Returns the set of `security_id`, or claims a free one for it.
fn find_or_claim(sets: &mut [TombstoneSet], security_id: u32) -> Option<&mut TombstoneSet> {
    let index = match sets.iter().position(|set| set.security_id == Some(security_id)) {
        Some(index) => index,
        None => sets.iter().position(|set| set.security_id.is_none())?,
    };
    let set = &mut sets[index];
    set.security_id = Some(security_id);
    Some(set)
}

impl fmt::Debug for Tombstones {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tombstones")
            .field("capacity", &self.capacity)
            .field("sets", &self.sets)
            .finish_non_exhaustive()
    }
}

impl TombstoneSet {
    fn new(slots: usize) -> TombstoneSet {
        TombstoneSet {
            security_id: None,
            slots: empty_slots(slots),
            nil: false,
            buried: 0,
            live: 0,
            rotation: Rotation::NotNeeded,
        }
    }

    fn contains(&self, hasher: &RandomState, uuid: Uuid) -> bool {
        let key = uuid.as_u128();
        if key == 0 {
            return self.nil;
        }
        let mask = self.slots.len() - 1;
        let mut at = hasher.hash_one(key) as usize & mask;
        // At most every slot is visited; reservations keep the table from filling up.
        for _ in 0..self.slots.len() {
            match self.slots[at] {
                0 => return false,
                held if held == key => return true,
                _ => at = (at + 1) & mask,
            }
        }
        false
    }

    fn insert(&mut self, hasher: &RandomState, uuid: Uuid) {
        let key = uuid.as_u128();
        if key == 0 {
            self.buried += usize::from(!self.nil);
            self.nil = true;
            return;
        }
        let mask = self.slots.len() - 1;
        let mut at = hasher.hash_one(key) as usize & mask;
        for _ in 0..self.slots.len() {
            match self.slots[at] {
                0 => {
                    self.slots[at] = key;
                    self.buried += 1;
                    return;
                }
                held if held == key => return,
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// Forgets the buried UUIDs and keeps the Security ID, its live sessions and its
    /// rotation request.
    fn forget(&mut self) {
        self.slots.fill(0);
        self.nil = false;
        self.buried = 0;
    }

    /// Frees the set for another Security ID. A used table is replaced by a new zeroed
    /// allocation and the old one freed, rather than zeroed in place, which would keep all
    /// of its pages resident. This runs when a key retires, not while a packet is processed.
    fn clear(&mut self) {
        if self.buried > 0 {
            self.slots = empty_slots(self.slots.len());
        }
        self.security_id = None;
        self.nil = false;
        self.buried = 0;
        self.live = 0;
        self.rotation = Rotation::NotNeeded;
    }
}

impl fmt::Debug for TombstoneSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TombstoneSet")
            .field("security_id", &self.security_id)
            .field("buried", &self.buried)
            .field("live", &self.live)
            .field("rotation", &self.rotation)
            .finish_non_exhaustive()
    }
}

/// Returns the table length for `capacity` sessions: a power of two of at least a third
/// more than the capacity, so a full set leaves a quarter of its slots empty and every
/// probe ends at an empty slot.
fn slots_for(capacity: usize) -> usize {
    (capacity + capacity.div_ceil(3)).max(capacity + 1).next_power_of_two()
}

fn empty_slots(len: usize) -> Box<[u128]> {
    vec![0u128; len].into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// Creates and deletes a session under `security_id`.
    fn bury_one(tombstones: &mut Tombstones, security_id: u32, n: u128) {
        assert_eq!(tombstones.admit(security_id, uuid(n)), Ok(()));
        assert!(tombstones.reserve(security_id));
        tombstones.bury(security_id, uuid(n));
    }

    /// Sends the pending rotation requests, each accepted, and returns them.
    fn sent_requests(tombstones: &mut Tombstones) -> Vec<u32> {
        let mut sent = Vec::new();
        tombstones.send_rotation_requests(|id| {
            sent.push(id);
            true
        });
        sent
    }

    #[test]
    fn default_capacity_fits_table() {
        assert_eq!(slots_for(TOMBSTONE_CAPACITY), 65_536);
        assert_eq!(Tombstones::new(TOMBSTONE_CAPACITY).high_water(), 36_864);
    }

    #[test]
    fn slots_exceed_capacity() {
        for capacity in 0..200 {
            let slots = slots_for(capacity);
            assert!(slots.is_power_of_two());
            assert!(slots > capacity + capacity / 4, "capacity {capacity}: {slots} slots");
        }
    }

    #[test]
    fn buried_uuid_refused() {
        let mut tombstones = Tombstones::new(16);
        bury_one(&mut tombstones, 7, 42);
        assert_eq!(tombstones.admit(7, uuid(42)), Err(Refusal::Replayed));
        assert_eq!(tombstones.admit(7, uuid(43)), Ok(()));
        assert_eq!(tombstones.admit(8, uuid(42)), Ok(()), "another Security ID");
        assert_eq!(tombstones.buried(7), Some(1));
    }

    #[test]
    fn nil_uuid_buried() {
        let mut tombstones = Tombstones::new(16);
        assert_eq!(tombstones.admit(7, Uuid::nil()), Ok(()));
        bury_one(&mut tombstones, 7, 0);
        assert_eq!(tombstones.admit(7, Uuid::nil()), Err(Refusal::Replayed));
        assert_eq!(tombstones.buried(7), Some(1));
    }

    #[test]
    fn released_session_not_buried() {
        let mut tombstones = Tombstones::new(2);
        assert!(tombstones.reserve(7));
        tombstones.release(7);
        assert_eq!(tombstones.admit(7, uuid(1)), Ok(()));
        assert_eq!(tombstones.buried(7), Some(0));
        assert!(tombstones.reserve(7));
        assert!(tombstones.reserve(7), "the released slot came back");
        assert_eq!(tombstones.forgotten(), 0);
    }

    #[test]
    fn live_sessions_hold_slots() {
        let mut tombstones = Tombstones::new(4);
        assert!(tombstones.reserve(7));
        assert!(tombstones.reserve(7));
        bury_one(&mut tombstones, 7, 1);
        assert!(tombstones.reserve(7));

        // The live sessions' deletions always find their slots.
        tombstones.bury(7, uuid(10));
        tombstones.bury(7, uuid(11));
        tombstones.bury(7, uuid(12));
        assert_eq!(tombstones.buried(7), Some(4));
        for n in [1, 10, 11, 12] {
            assert_eq!(tombstones.admit(7, uuid(n)), Err(Refusal::Replayed), "uuid {n}");
        }
        assert_eq!(tombstones.forgotten(), 0);
    }

    #[test]
    fn full_set_forgets_and_admits() {
        let mut tombstones = Tombstones::new(4);
        for n in 1..=4 {
            bury_one(&mut tombstones, 7, n);
        }
        assert_eq!(tombstones.admit(7, uuid(1)), Err(Refusal::Replayed));

        // The next session still gets a slot: the set forgets what it buried.
        assert!(tombstones.reserve(7));
        assert_eq!(tombstones.forgotten(), 4);
        assert_eq!(tombstones.buried(7), Some(0));
        assert_eq!(tombstones.admit(7, uuid(1)), Ok(()));
        assert_eq!(sent_requests(&mut tombstones), vec![7], "the rotation request stays");
    }

    #[test]
    fn live_sessions_alone_fill_set() {
        let mut tombstones = Tombstones::new(2);
        assert!(tombstones.reserve(7));
        assert!(tombstones.reserve(7));
        assert!(!tombstones.reserve(7), "a third live session gets no tombstone");
        tombstones.bury(7, uuid(1));
        assert!(tombstones.reserve(7), "a deletion gave the slot back");
    }

    #[test]
    fn transit_legs_bury_once() {
        let mut tombstones = Tombstones::new(4);
        assert_eq!(tombstones.admit(7, uuid(5)), Ok(()));
        assert!(tombstones.reserve(7));
        assert!(tombstones.reserve(7));
        tombstones.bury(7, uuid(5));
        tombstones.bury(7, uuid(5));
        assert_eq!(tombstones.buried(7), Some(1));
        for _ in 0..3 {
            assert!(tombstones.reserve(7), "both legs' slots came back");
        }
        assert_eq!(tombstones.forgotten(), 0);
    }

    #[test]
    fn high_water_requests_once() {
        let mut tombstones = Tombstones::new(8);
        assert_eq!(tombstones.high_water(), 6);
        let mut requests = Vec::new();
        for n in 1..=5 {
            bury_one(&mut tombstones, 7, n);
            requests.extend(sent_requests(&mut tombstones));
        }
        assert!(requests.is_empty(), "below the mark: {requests:?}");

        for n in 6..=8 {
            bury_one(&mut tombstones, 7, n);
            requests.extend(sent_requests(&mut tombstones));
        }
        assert_eq!(requests, vec![7]);
    }

    #[test]
    fn refused_request_offered_again() {
        let mut tombstones = Tombstones::new(4);
        for n in 1..=3 {
            bury_one(&mut tombstones, 9, n);
        }
        let mut offered = 0;
        tombstones.send_rotation_requests(|_| {
            offered += 1;
            false
        });
        assert_eq!(offered, 1);
        assert_eq!(sent_requests(&mut tombstones), vec![9], "offered again");
        assert!(sent_requests(&mut tombstones).is_empty(), "sent once");
    }

    #[test]
    fn retired_set_dropped_whole() {
        let mut tombstones = Tombstones::new(16);
        for n in 1..=10 {
            bury_one(&mut tombstones, 7, n);
        }
        bury_one(&mut tombstones, 8, 1);
        assert_eq!(tombstones.retain(|id| id != 7), 1);
        assert_eq!(tombstones.buried(7), None);
        assert_eq!(tombstones.buried(8), Some(1));
        assert!(tombstones.sets.iter().all(|set| set.slots.len() == 32), "tables kept");

        // Burying under the retired Security ID records nothing, and the freed set starts
        // empty for the next one.
        tombstones.bury(7, uuid(99));
        assert_eq!(tombstones.buried(7), None);
        assert!(tombstones.reserve(9));
        assert_eq!(tombstones.buried(9), Some(0));
    }

    #[test]
    fn no_free_set_untracked() {
        let mut tombstones = Tombstones::new(4);
        for id in 0..TOMBSTONE_SETS as u32 {
            assert!(tombstones.reserve(id));
        }
        assert_eq!(tombstones.admit(100, uuid(1)), Ok(()));
        assert!(!tombstones.reserve(100));
        assert_eq!(tombstones.buried(100), None);
    }

    #[test]
    fn many_uuids_found() {
        let mut tombstones = Tombstones::new(3000);
        let keys: Vec<u128> =
            (1..=3000u128).map(|n| n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        for &key in &keys {
            bury_one(&mut tombstones, 1, key);
        }
        assert_eq!(tombstones.buried(1), Some(3000));
        for &key in &keys {
            assert_eq!(tombstones.admit(1, uuid(key)), Err(Refusal::Replayed));
        }
        assert_eq!(tombstones.admit(1, uuid(1)), Ok(()), "a UUID never buried");
    }
}
