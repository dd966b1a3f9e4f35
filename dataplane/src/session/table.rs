//! One worker's shard of the session table: a slab of sessions sized at start and two
//! indexes into it, by the LAN 5-tuple and by the outer waypoint 5-tuple, plus the pool of
//! waypoint ports the worker allocates from and the tombstones of the sessions it deleted
//! ([`Tombstones`]).
//!
//! Every structure is allocated with its full capacity when the shard is made. The
//! indexes never grow because the slab caps how many sessions exist, so no insertion or
//! removal allocates.

use std::fmt;
use std::mem::offset_of;
use std::num::NonZeroU32;
use std::ops::Range;
use std::time::Instant;

use super::index::{Probe, TupleIndex};
use super::tombstones::{Refusal, Tombstones};
use super::{Role, Session};
use crate::forward::FiveTuple;
use crate::shard::{FLOW_CLASSES, class_owner, port_class};

/// First waypoint port: the pool covers 16384 to 65534, even ports for the router that
/// allocates and the next odd port for its peer.
pub const PORT_FIRST: u16 = 16384;
/// Last waypoint port of the pool.
pub const PORT_LAST: u16 = 65534;

/// Keys that [`SessionTable::find_lan_burst`] and [`SessionTable::find_wan_burst`] take
/// through their stages together; longer lists are looked up in groups of this many. It
/// is the receive burst size, so a burst's lookups overlap in full.
pub const LOOKUP_BURST: usize = 32;

/// Bytes of a session that [`Session::lan_key`] reads: the role and the original tuple.
const LAN_KEY_BYTES: Range<usize> = covering(
    field(offset_of!(Session, role), size_of::<Role>()),
    field(offset_of!(Session, original), size_of::<FiveTuple>()),
);

/// Bytes of a session that [`Session::wan_key`] reads: the waypoint tuple.
const WAN_KEY_BYTES: Range<usize> = field(offset_of!(Session, waypoints), size_of::<FiveTuple>());

/// Bytes of a slot that tell a session from a vacant slot. `Option<Session>` keeps its tag
/// in a niche of the session, which rustc 1.95 places in the nanoseconds of `last_seen`.
// NOTE: the compiler chooses the niche, and may move it. Lookups stay correct if it does,
// but the batched lookup then no longer prefetches the line it reads the tag from.
const SLOT_TAG_BYTES: Range<usize> = field(offset_of!(Session, last_seen), size_of::<Instant>());

const fn field(offset: usize, size: usize) -> Range<usize> {
    offset..offset + size
}

const fn covering(a: Range<usize>, b: Range<usize>) -> Range<usize> {
    let start = if a.start < b.start { a.start } else { b.start };
    let end = if a.end > b.end { a.end } else { b.end };
    start..end
}

/// Index of a session in its shard. It is stored as the slot index plus one, so that an
/// `Option<SessionId>` takes four bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(NonZeroU32);

impl SessionId {
    fn new(slot: u32) -> SessionId {
        // Slot counts are bounded far below u32::MAX by the slab's memory.
        SessionId(NonZeroU32::MIN.saturating_add(slot))
    }

    fn slot(self) -> u32 {
        self.0.get() - 1
    }
}

/// A shard of the session table.
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
pub struct SessionTable {
    slots: Vec<Option<Session>>,
    /// Per slot, the Security ID of the forward metadata that created its session: on an
    /// egress session and both legs of a transit session, `None` on a session started from
    /// a LAN packet. Kept beside the slab so that a session stays within its size budget.
    security_ids: Vec<Option<u32>>,
    free: Vec<u32>,
    by_lan: TupleIndex,
    by_wan: TupleIndex,
    ports: PortPool,
    tombstones: Tombstones,
    sweep_at: usize,
    len: usize,
    /// Count of the changes to the indexes; see [`SessionTable::generation`].
    generation: u64,
}

impl SessionTable {
    /// A shard for up to `capacity` sessions, taking the waypoint ports that belong to
    /// worker `worker` of `workers`, with room for `tombstones` sessions per Security ID in
    /// its tombstones.
    pub fn new(capacity: usize, worker: usize, workers: usize, tombstones: usize) -> SessionTable {
        let mut slots = Vec::with_capacity(capacity);
        super::memory::advise(slots.spare_capacity_mut());
        slots.resize_with(capacity, || None);
        SessionTable {
            slots,
            security_ids: vec![None; capacity],
            free: (0..capacity as u32).rev().collect(),
            by_lan: TupleIndex::new(capacity),
            by_wan: TupleIndex::new(capacity),
            ports: PortPool::new(worker, workers),
            tombstones: Tombstones::new(tombstones),
            sweep_at: 0,
            len: 0,
            generation: 0,
        }
    }

    /// Sessions in the shard.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the shard contains no session.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The waypoint port pool.
    pub fn ports(&mut self) -> &mut PortPool {
        &mut self.ports
    }

    /// Returns the tombstones of the sessions this shard deleted.
    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }

    /// Returns the tombstones, writable, to drop those of retired Security IDs and to send
    /// rotation requests.
    pub fn tombstones_mut(&mut self) -> &mut Tombstones {
        &mut self.tombstones
    }

    /// Checks that a session with `uuid` may be created from forward metadata sealed under
    /// `security_id`: its UUID must not be buried there.
    pub fn admit(&self, security_id: u32, uuid: uuid::Uuid) -> Result<(), Refusal> {
        self.tombstones.admit(security_id, uuid)
    }

    /// Returns a number that changes whenever a session is added, removed or moved to new
    /// waypoints. While it is unchanged, every lookup returns what it returned before.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The session whose LAN packets have `tuple`.
    pub fn find_lan(&self, tuple: &FiveTuple) -> Option<SessionId> {
        let found = self.by_lan.find(tuple, |slot| {
            self.session_at(slot).is_some_and(|session| session.lan_key() == *tuple)
        });
        found.map(SessionId::new)
    }

    /// The session whose packets from the peer have the outer `tuple`.
    pub fn find_wan(&self, tuple: &FiveTuple) -> Option<SessionId> {
        let found = self.by_wan.find(tuple, |slot| {
            self.session_at(slot).is_some_and(|session| session.wan_key() == *tuple)
        });
        found.map(SessionId::new)
    }

    /// Finds the sessions whose LAN packets have `tuples`, each as
    /// [`SessionTable::find_lan`] would, into the same positions of `found`. Keys past the
    /// end of `found` are not looked up. See [`SessionTable::find_wan_burst`] for how the
    /// lookups overlap.
    pub fn find_lan_burst(&self, tuples: &[FiveTuple], found: &mut [Option<SessionId>]) {
        self.find_burst(&self.by_lan, Session::lan_key, LAN_KEY_BYTES, tuples, found);
    }

    /// Finds the sessions whose packets from the peer have the outer `tuples`, each as
    /// [`SessionTable::find_wan`] would, into the same positions of `found`. Keys past the
    /// end of `found` are not looked up.
    ///
    /// A single lookup waits for the index entry, then for the session it points at. Here
    /// each step runs over [`LOOKUP_BURST`] keys before the next begins. First every key is
    /// hashed and its index entry prefetched. Then the entries are read, and the slot tags
    /// and key fields of their sessions prefetched. Last, each key is compared with its
    /// session's. So the cache misses of all the keys are in flight together.
    pub fn find_wan_burst(&self, tuples: &[FiveTuple], found: &mut [Option<SessionId>]) {
        self.find_burst(&self.by_wan, Session::wan_key, WAN_KEY_BYTES, tuples, found);
    }

    fn find_burst(
        &self,
        index: &TupleIndex,
        key: impl Fn(&Session) -> FiveTuple,
        key_bytes: Range<usize>,
        tuples: &[FiveTuple],
        found: &mut [Option<SessionId>],
    ) {
        for (tuples, found) in tuples.chunks(LOOKUP_BURST).zip(found.chunks_mut(LOOKUP_BURST)) {
            let mut probes = [Probe::default(); LOOKUP_BURST];
            for (probe, tuple) in probes.iter_mut().zip(tuples) {
                *probe = index.start(tuple);
            }

            for probe in probes.iter_mut().take(tuples.len()) {
                let candidate = index.candidate(probe);
                if let Some(slot) = candidate.and_then(|slot| self.slots.get(slot as usize)) {
                    // The session lies at the start of its slot, so its field offsets are
                    // the slot's.
                    super::memory::prefetch_bytes(slot, SLOT_TAG_BYTES);
                    super::memory::prefetch_bytes(slot, key_bytes.clone());
                }
            }

            // A probe goes on past its candidate only when another key has the same 32
            // bits of hash.
            for ((probe, tuple), out) in probes.iter().zip(tuples).zip(found.iter_mut()) {
                let matches =
                    |slot| self.session_at(slot).is_some_and(|session| key(session) == *tuple);
                *out = index.finish(*probe, matches).map(SessionId::new);
            }
        }
    }

    /// The session `id`.
    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.slots.get(id.slot() as usize)?.as_ref()
    }

    fn session_at(&self, slot: u32) -> Option<&Session> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// The session `id`, writable.
    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.slots.get_mut(id.slot() as usize)?.as_mut()
    }

    /// Adds a session and indexes it by its LAN and WAN tuples.
    pub fn insert(&mut self, session: Session) -> Result<SessionId, TableError> {
        self.insert_with(session, None)
    }

    /// Adds a session created from forward metadata sealed under `security_id`, as
    /// [`SessionTable::insert`] does, holding a slot for its tombstone when the tombstones
    /// have a set for the Security ID.
    pub fn insert_from_peer(
        &mut self,
        session: Session,
        security_id: u32,
    ) -> Result<SessionId, TableError> {
        self.insert_with(session, Some(security_id))
    }

    fn insert_with(
        &mut self,
        session: Session,
        security_id: Option<u32>,
    ) -> Result<SessionId, TableError> {
        let (lan, wan) = (session.lan_key(), session.wan_key());
        if self.find_lan(&lan).is_some() {
            return Err(TableError::Exists { tuple: lan });
        }
        if self.find_wan(&wan).is_some() {
            return Err(TableError::Exists { tuple: wan });
        }
        let Some(index) = self.free.pop() else {
            return Err(TableError::Full { capacity: self.slots.len() });
        };
        let tracked = security_id.filter(|&id| self.tombstones.reserve(id));
        self.slots[index as usize] = Some(session);
        self.security_ids[index as usize] = tracked;
        self.by_lan.insert(&lan, index);
        self.by_wan.insert(&wan, index);
        self.len += 1;
        self.generation += 1;
        Ok(SessionId::new(index))
    }

    /// Returns the Security ID of the forward metadata that created session `id`, if any.
    pub fn security_id(&self, id: SessionId) -> Option<u32> {
        self.security_ids.get(id.slot() as usize).copied().flatten()
    }

    /// Moves session `id` to new waypoints (a path change), re-indexing it.
    pub fn move_waypoints(
        &mut self,
        id: SessionId,
        waypoints: FiveTuple,
    ) -> Result<(), TableError> {
        if self.find_wan(&waypoints.reversed()).is_some() {
            return Err(TableError::Exists { tuple: waypoints.reversed() });
        }
        let Some(session) = self.slots.get_mut(id.slot() as usize).and_then(Option::as_mut) else {
            return Err(TableError::Unknown { id });
        };
        self.by_wan.remove(&session.wan_key(), id.slot());
        session.waypoints = waypoints;
        self.by_wan.insert(&session.wan_key(), id.slot());
        self.generation += 1;
        Ok(())
    }

    /// Deletes session `id`, returning its ingress waypoint port to the pool. A leg of a
    /// transit session takes its other leg with it, so that neither is left naming a slot
    /// that a new session may reuse. A session created from forward metadata leaves a
    /// tombstone, so that its first packet cannot create it again.
    pub fn remove(&mut self, id: SessionId) -> Option<Session> {
        self.delete(id, Deletion::Bury)
    }

    /// Deletes session `id` as [`SessionTable::remove`] does, but leaves no tombstone: for
    /// a session just created from a packet that then failed, which never carried one.
    pub fn discard(&mut self, id: SessionId) -> Option<Session> {
        self.delete(id, Deletion::Release)
    }

    fn delete(&mut self, id: SessionId, deletion: Deletion) -> Option<Session> {
        let session = self.remove_one(id, deletion)?;
        if let Some(other) = session.relay
            && self.get(other).is_some_and(|leg| leg.relay == Some(id))
        {
            self.remove_one(other, deletion);
        }
        Some(session)
    }

    fn remove_one(&mut self, id: SessionId, deletion: Deletion) -> Option<Session> {
        let session = self.slots.get_mut(id.slot() as usize)?.take()?;
        self.by_lan.remove(&session.lan_key(), id.slot());
        self.by_wan.remove(&session.wan_key(), id.slot());
        if session.role == super::Role::Ingress {
            self.ports.release(session.waypoints.source_port);
        }
        if let Some(security_id) = self.security_ids[id.slot() as usize].take() {
            match deletion {
                Deletion::Bury => self.tombstones.bury(security_id, session.uuid),
                Deletion::Release => self.tombstones.release(security_id),
            }
        }
        self.free.push(id.slot());
        self.len -= 1;
        self.generation += 1;
        Some(session)
    }

    /// Visits up to `budget` slots from where the last sweep stopped and deletes the
    /// sessions idle past their timeout at `now`; returns how many were deleted, with the
    /// two legs of a transit session counted once. Sweeping a bounded part per call keeps a
    /// worker from stalling on a large table.
    pub fn expire(&mut self, now: Instant, budget: usize) -> usize {
        let capacity = self.slots.len();
        if capacity == 0 {
            return 0;
        }
        let mut deleted = 0;
        for _ in 0..budget.min(capacity) {
            let index = self.sweep_at;
            self.sweep_at = (self.sweep_at + 1) % capacity;
            let expired = self.slots[index].as_ref().is_some_and(|session| session.expired(now));
            if expired && self.remove(SessionId::new(index as u32)).is_some() {
                deleted += 1;
            }
        }
        deleted
    }

    /// Ids of every session, for control-side walks such as starting rotations.
    pub fn ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.is_some())
            .map(|(index, _)| SessionId::new(index as u32))
    }
}

/// The waypoint ports one worker allocates: the even ports of the flow classes it owns,
/// one free list per class (see [`crate::shard`]).
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
pub struct PortPool {
    /// Free even ports by flow class, lowest port last; empty for other workers' classes.
    free: Vec<Vec<u16>>,
    worker: usize,
    workers: usize,
}

impl PortPool {
    /// The ports of worker `worker` of `workers`: the even ports whose pair index falls in
    /// a flow class the worker owns.
    pub fn new(worker: usize, workers: usize) -> PortPool {
        let workers = workers.max(1);
        let worker = worker % workers;
        let mut free = vec![Vec::new(); FLOW_CLASSES];
        for port in (PORT_FIRST..PORT_LAST).step_by(2) {
            if let Some(class) = port_class(port)
                && class_owner(class, workers) == worker
            {
                free[class].push(port);
            }
        }
        // Hand out low ports first.
        for list in &mut free {
            list.reverse();
        }
        PortPool { free, worker, workers }
    }

    /// Takes the lowest free port pair of any class: the even port for this router, and
    /// the next odd one for the peer.
    pub fn allocate(&mut self) -> Option<(u16, u16)> {
        let (_, class) =
            self.free.iter().enumerate().filter_map(|(c, list)| Some((*list.last()?, c))).min()?;
        self.allocate_in_class(class)
    }

    /// Takes a port pair of flow class `class`, or `None` when the class has no free pair
    /// or belongs to another worker.
    pub fn allocate_in_class(&mut self, class: usize) -> Option<(u16, u16)> {
        let port = self.free.get_mut(class)?.pop()?;
        Some((port, port + 1))
    }

    /// Returns an even port of this worker's classes to the pool; other ports are ignored.
    pub fn release(&mut self, port: u16) {
        if !port.is_multiple_of(2) || !(PORT_FIRST..PORT_LAST).contains(&port) {
            return;
        }
        if let Some(class) = port_class(port)
            && class_owner(class, self.workers) == self.worker
        {
            self.free[class].push(port);
        }
    }

    /// Port pairs left.
    pub fn available(&self) -> usize {
        self.free.iter().map(Vec::len).sum()
    }

    /// Port pairs left in flow class `class`.
    pub fn available_in_class(&self, class: usize) -> usize {
        self.free.get(class).map_or(0, Vec::len)
    }
}

/// Treatment of the tombstone slot when a session created from forward metadata is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deletion {
    /// Bury its UUID there.
    Bury,
    /// Give the slot back.
    Release,
}

/// Why a session could not be added or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableError {
    /// The shard is at its capacity.
    Full { capacity: usize },
    /// Another session already has this tuple.
    Exists { tuple: FiveTuple },
    /// No session has this id.
    Unknown { id: SessionId },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::Full { capacity } => write!(f, "session table full at {capacity} sessions"),
            TableError::Exists { tuple } => write!(f, "a session already exists for {tuple}"),
            TableError::Unknown { id } => write!(f, "no session with id {}", id.slot()),
        }
    }
}

impl std::error::Error for TableError {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::crypto::{PAYLOAD_KEY_TLV_LEN, PayloadSecret, SessionKeys};
    use crate::packet::PayloadTlv;
    use crate::replay::ReplayWindow;
    use crate::session::{PayloadKeys, Role, SESSION_SUITE, SessionMetadata};

    /// Builds an ingress session whose LAN tuple comes from `host` and waypoint port from
    /// `port`.
    fn session(host: u16, port: u16) -> Session {
        let original = FiveTuple {
            source: IpAddr::V4(Ipv4Addr::new(10, 200, (host >> 8) as u8, host as u8)),
            destination: IpAddr::V4(Ipv4Addr::new(10, 201, 0, 1)),
            source_port: 40_000,
            destination_port: 5201,
            protocol: 17,
        };
        let waypoints = FiveTuple {
            source: IpAddr::V4(Ipv4Addr::new(10, 202, 0, 1)),
            destination: IpAddr::V4(Ipv4Addr::new(10, 202, 0, 2)),
            source_port: PORT_FIRST + 2 * port,
            destination_port: PORT_FIRST + 2 * port + 1,
            protocol: 17,
        };
        let secret = PayloadSecret::from_bytes([host as u8; 32]);
        Session {
            role: Role::Ingress,
            uuid: uuid::Uuid::from_u128(u128::from(host)),
            original,
            waypoints,
            peer: 0,
            path: None,
            wan_interface: 1,
            lan_interface: 0,
            service: 0,
            tenant: 0,
            encrypt: true,
            keys: PayloadKeys::new(SessionKeys::derive(SESSION_SUITE, 0, &secret)),
            sent: u64::from(host),
            window: ReplayWindow::new(),
            send_metadata: true,
            metadata: SessionMetadata { route: None, last: PayloadTlv::DisableForwardMetadata },
            last_seen: Instant::now(),
            idle_timeout: Duration::from_secs(60),
            relay: None,
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert { host: u16, port: u16 },
        Remove { host: u16 },
        Move { host: u16, port: u16 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u16..48, 0u16..48).prop_map(|(host, port)| Op::Insert { host, port }),
            2 => (0u16..48).prop_map(|host| Op::Remove { host }),
            1 => (0u16..48, 0u16..48).prop_map(|(host, port)| Op::Move { host, port }),
        ]
    }

    /// Applies `ops` to a table of `capacity` slots and to a model of two hash maps, and
    /// checks after each step that every tuple finds the session the model expects.
    fn check_against_model(capacity: usize, ops: &[Op]) {
        let mut table = SessionTable::new(capacity, 0, 1, 0);
        // LAN tuple host -> waypoint port of the session that has it.
        let mut model: HashMap<u16, u16> = HashMap::new();
        let probe = |host| session(host, 0).lan_key();
        let wan_of = |port| session(0, port).wan_key();

        for op in ops {
            match *op {
                Op::Insert { host, port } => {
                    let taken = model.contains_key(&host) || model.values().any(|&p| p == port);
                    let result = table.insert(session(host, port));
                    if taken {
                        assert!(matches!(result, Err(TableError::Exists { .. })), "{op:?}");
                    } else if model.len() == capacity {
                        assert_eq!(result, Err(TableError::Full { capacity }), "{op:?}");
                    } else {
                        assert!(result.is_ok(), "{op:?}: {result:?}");
                        model.insert(host, port);
                    }
                }
                Op::Remove { host } => {
                    let id = table.find_lan(&probe(host));
                    assert_eq!(id.is_some(), model.contains_key(&host), "{op:?}");
                    if let Some(id) = id {
                        let removed = table.remove(id).unwrap();
                        assert_eq!(removed.sent, u64::from(host));
                        model.remove(&host);
                    }
                }
                Op::Move { host, port } => {
                    let Some(id) = table.find_lan(&probe(host)) else { continue };
                    let mut waypoints = session(0, port).waypoints;
                    waypoints.source_port = PORT_FIRST + 2 * port;
                    let taken = model.values().any(|&p| p == port);
                    let result = table.move_waypoints(id, waypoints);
                    assert_eq!(result.is_ok(), !taken, "{op:?}: {result:?}");
                    if !taken {
                        model.insert(host, port);
                    }
                }
            }

            assert_eq!(table.len(), model.len());
            for host in 0..48 {
                let found = table.find_lan(&probe(host)).and_then(|id| table.get(id));
                assert_eq!(found.map(|s| s.sent), model.get(&host).map(|_| u64::from(host)));
            }
            for port in 0..48 {
                let found = table.find_wan(&wan_of(port)).and_then(|id| table.get(id));
                let expected = model.iter().find(|(_, p)| **p == port).map(|(h, _)| *h);
                assert_eq!(found.map(|s| s.sent), expected.map(u64::from), "port {port}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn table_matches_model(capacity in 1usize..40, ops in prop::collection::vec(op(), 1..80)) {
            check_against_model(capacity, &ops);
        }
    }

    #[test]
    fn lookups_at_many_sizes() {
        for size in [1usize, 7, 8, 100, 1000, 4000] {
            let mut table = SessionTable::new(size, 0, 1, 0);
            let sessions = (0..size as u16).map(|i| session(i, i));
            let ids: Vec<SessionId> = sessions.map(|s| table.insert(s).unwrap()).collect();
            // Remove every third session, so later lookups cross shifted probe runs.
            for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
                assert_eq!(table.remove(*id).map(|s| s.sent), Some(i as u64));
            }
            for i in 0..size as u16 {
                let lan = table.find_lan(&session(i, i).lan_key()).and_then(|id| table.get(id));
                let wan = table.find_wan(&session(i, i).wan_key()).and_then(|id| table.get(id));
                let expected = (i % 3 != 0).then_some(u64::from(i));
                assert_eq!(lan.map(|s| s.sent), expected, "size {size}, LAN {i}");
                assert_eq!(wan.map(|s| s.sent), expected, "size {size}, WAN {i}");
            }
            assert_eq!(table.len(), size - size.div_ceil(3));
        }
    }

    /// Applies `ops` to a table of `capacity` slots, ignoring the errors that
    /// `check_against_model` checks.
    fn table_after(capacity: usize, ops: &[Op]) -> SessionTable {
        let mut table = SessionTable::new(capacity, 0, 1, 0);
        for op in ops {
            match *op {
                Op::Insert { host, port } => {
                    let _ = table.insert(session(host, port));
                }
                Op::Remove { host } => {
                    if let Some(id) = table.find_lan(&session(host, 0).lan_key()) {
                        table.remove(id);
                    }
                }
                Op::Move { host, port } => {
                    if let Some(id) = table.find_lan(&session(host, 0).lan_key()) {
                        let _ = table.move_waypoints(id, session(0, port).waypoints);
                    }
                }
            }
        }
        table
    }

    /// An id that no test table reaches, so that a result the batched lookup failed to
    /// write shows as a mismatch.
    const UNWRITTEN: Option<SessionId> = Some(SessionId(NonZeroU32::MAX));

    /// Looks up `lan` and `wan` in one batch each and one key at a time, and checks that
    /// both ways return the same for every key. Returns the number of keys found.
    fn assert_burst_matches_single(
        table: &SessionTable,
        lan: &[FiveTuple],
        wan: &[FiveTuple],
    ) -> usize {
        let mut found = vec![UNWRITTEN; lan.len()];
        table.find_lan_burst(lan, &mut found);
        let single: Vec<_> = lan.iter().map(|tuple| table.find_lan(tuple)).collect();
        assert_eq!(found, single, "LAN lookups");
        let hits = found.iter().flatten().count();

        let mut found = vec![UNWRITTEN; wan.len()];
        table.find_wan_burst(wan, &mut found);
        let single: Vec<_> = wan.iter().map(|tuple| table.find_wan(tuple)).collect();
        assert_eq!(found, single, "WAN lookups");
        hits + found.iter().flatten().count()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Hosts and ports up to 64 include ones `op` never inserts, so every batch has
        /// misses as well as hits, repeats and keys of removed and moved sessions.
        #[test]
        fn burst_lookup_matches_single(
            capacity in 1usize..40,
            ops in prop::collection::vec(op(), 0..120),
            hosts in prop::collection::vec(0u16..64, 0..80),
            ports in prop::collection::vec(0u16..64, 0..80),
        ) {
            let table = table_after(capacity, &ops);
            let lan: Vec<FiveTuple> = hosts.iter().map(|&host| session(host, 0).lan_key()).collect();
            let wan: Vec<FiveTuple> = ports.iter().map(|&port| session(0, port).wan_key()).collect();
            assert_burst_matches_single(&table, &lan, &wan);
        }
    }

    #[test]
    fn burst_lookup_full_table() {
        let capacity = 1000u16;
        let mut table = SessionTable::new(usize::from(capacity), 0, 1, 0);
        let ids: Vec<SessionId> =
            (0..capacity).map(|i| table.insert(session(i, i)).unwrap()).collect();
        // Remove every third session and fill the table again with other keys, so that
        // probe runs have been shifted back and reused.
        for id in ids.iter().step_by(3) {
            assert!(table.remove(*id).is_some());
        }
        for i in capacity..capacity + 334 {
            table.insert(session(i, i)).unwrap();
        }
        assert_eq!(table.len(), usize::from(capacity));
        let full = table.insert(session(2000, 2000));
        assert_eq!(full, Err(TableError::Full { capacity: usize::from(capacity) }));

        // Every key once in a scrambled order, then the first hundred again.
        let keys: Vec<u16> = (0..1400u32).map(|k| (k * 7919 % 1400) as u16).collect();
        let keys: Vec<u16> = keys.iter().chain(&keys[..100]).copied().collect();
        let lan: Vec<FiveTuple> = keys.iter().map(|&i| session(i, i).lan_key()).collect();
        let wan: Vec<FiveTuple> = keys.iter().map(|&i| session(i, i).wan_key()).collect();
        let hits = assert_burst_matches_single(&table, &lan, &wan);

        let present = |i: u16| {
            (i < capacity && !i.is_multiple_of(3)) || (capacity..capacity + 334).contains(&i)
        };
        let expected = 2 * keys.iter().filter(|&&i| present(i)).count();
        assert_eq!(hits, expected, "keys found");
        assert!(hits < 2 * keys.len(), "the keys include misses");
    }

    #[test]
    fn burst_lookup_uneven_lengths() {
        let mut table = SessionTable::new(64, 0, 1, 0);
        for i in 0..40 {
            table.insert(session(i, i)).unwrap();
        }
        let lan: Vec<FiveTuple> = (0..50).map(|i| session(i, i).lan_key()).collect();

        // Fewer results than keys: only as many keys are looked up.
        let mut found = vec![UNWRITTEN; 35];
        table.find_lan_burst(&lan, &mut found);
        let single: Vec<_> = lan[..35].iter().map(|tuple| table.find_lan(tuple)).collect();
        assert_eq!(found, single);

        // More results than keys: the rest are left as they were.
        let mut found = vec![UNWRITTEN; 50];
        table.find_lan_burst(&lan[..33], &mut found);
        assert!(found[..33].iter().all(Option::is_some));
        assert!(found[33..].iter().all(|id| *id == UNWRITTEN));
    }

    #[test]
    fn generation_counts_index_changes() {
        let mut table = SessionTable::new(4, 0, 1, 0);
        let start = table.generation();
        let id = table.insert(session(1, 1)).unwrap();
        assert_ne!(table.generation(), start, "insert");

        let before = table.generation();
        assert!(table.insert(session(1, 2)).is_err());
        table.get_mut(id).unwrap().sent += 1;
        assert_eq!(table.find_lan(&session(1, 1).lan_key()), Some(id));
        assert_eq!(table.generation(), before, "failed insert, write or lookup");

        table.move_waypoints(id, session(0, 3).waypoints).unwrap();
        assert_ne!(table.generation(), before, "move");

        let before = table.generation();
        table.remove(id).unwrap();
        assert_ne!(table.generation(), before, "remove");
    }

    #[test]
    fn slot_starts_with_session() {
        // The batched lookup prefetches a session's key fields at their offsets in the
        // slot, which holds only while `Some` keeps the session at the slot's start.
        let slot = Some(session(1, 1));
        let inside = slot.as_ref().unwrap() as *const Session as usize;
        assert_eq!(inside, &slot as *const Option<Session> as usize);
        assert!(LAN_KEY_BYTES.end <= size_of::<Session>());
        assert!(WAN_KEY_BYTES.end <= size_of::<Session>());
        assert!(SLOT_TAG_BYTES.end <= size_of::<Session>());
    }

    #[test]
    fn session_budget_under_1_kib() {
        // The slot, both index entries amortised over the index length, the free-list
        // entry, the Security ID beside the slot, and the payload-key TLV bytes, which are
        // the only per-session heap.
        let capacity = 1 << 20;
        let index = super::super::index::TupleIndex::new(capacity);
        let slot = std::mem::size_of::<Option<Session>>();
        let indexes = 2 * index.heap_bytes() / capacity;
        let free = std::mem::size_of::<u32>();
        let security_id = std::mem::size_of::<Option<u32>>();
        let total = slot + indexes + free + security_id + PAYLOAD_KEY_TLV_LEN;
        assert!(slot <= 944, "slot of {slot} bytes");
        assert!(indexes <= 34, "indexes take {indexes} bytes per session");
        assert!(total <= 1024, "a session takes {total} bytes");
    }

    #[test]
    fn remove_buries_discard_releases() {
        let mut table = SessionTable::new(8, 0, 1, 2);
        let kept = table.insert_from_peer(session(1, 1), 7).unwrap();
        let dropped = table.insert_from_peer(session(2, 2), 7).unwrap();
        assert_eq!(table.security_id(kept), Some(7));

        let uuid = table.get(kept).unwrap().uuid;
        table.remove(kept).unwrap();
        table.discard(dropped).unwrap();
        assert_eq!(table.tombstones().buried(7), Some(1));
        assert_eq!(table.admit(7, uuid), Err(Refusal::Replayed));
        let fresh = uuid::Uuid::from_u128(99);
        assert_eq!(table.admit(7, fresh), Ok(()));
        assert!(table.tombstones_mut().reserve(7), "the discarded session's slot came back");
        assert_eq!(table.tombstones().forgotten(), 0);
        assert!(table.insert(session(4, 4)).is_ok(), "LAN sessions take no tombstone slot");
    }

    #[test]
    fn port_pool_even_and_odd() {
        let mut pool = PortPool::new(0, 1);
        assert_eq!(pool.available(), 24575);
        assert_eq!(pool.allocate(), Some((16384, 16385)));
        assert_eq!(pool.allocate(), Some((16386, 16387)));
        pool.release(16384);
        assert_eq!(pool.allocate(), Some((16384, 16385)));
    }

    #[test]
    fn port_pool_split_between_workers() {
        let mut first = PortPool::new(0, 2);
        let mut second = PortPool::new(1, 2);
        assert_eq!(first.allocate(), Some((16384, 16385)));
        assert_eq!(second.allocate(), Some((16386, 16387)));
        assert_eq!(first.available() + second.available(), 24575 - 2);
    }

    #[test]
    fn port_pool_class_of_allocation() {
        let mut pool = PortPool::new(1, 2);
        let (port, peer) = pool.allocate_in_class(3).unwrap();
        assert_eq!(port_class(port), Some(3));
        assert_eq!(port_class(peer), Some(3));
        assert_eq!(pool.allocate_in_class(2), None, "class 2 belongs to worker 0");
        assert_eq!(pool.allocate_in_class(FLOW_CLASSES), None);
    }

    #[test]
    fn port_pool_class_exhausted() {
        let mut pool = PortPool::new(0, 1);
        let size = pool.available_in_class(5);
        assert_eq!(size, 384);
        for _ in 0..size {
            assert!(pool.allocate_in_class(5).is_some());
        }
        assert_eq!(pool.allocate_in_class(5), None);
        assert!(pool.allocate_in_class(6).is_some());
    }

    #[test]
    fn port_pool_ignores_foreign_release() {
        let mut pool = PortPool::new(0, 2);
        let before = pool.available();
        pool.release(16386);
        pool.release(16385);
        assert_eq!(pool.available(), before);
    }

    #[test]
    fn port_pool_last_pair() {
        let mut pool = PortPool::new(0, 1);
        let mut last = None;
        while let Some(pair) = pool.allocate() {
            last = Some(pair);
        }
        assert_eq!(last, Some((65532, 65533)));
    }
}
