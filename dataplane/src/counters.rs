//! Packet counters of one worker: drops by reason, forwarded packets by direction, and
//! received and sent frames per port. Plain integers owned by the worker, copied into
//! [`SharedCounters`] once per burst for readers on other threads.

use std::sync::atomic::{AtomicU64, Ordering};

/// The reason a packet was dropped. Each reason is one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The frame, its metadata or its carried payload could not be parsed.
    Malformed,
    /// The tag did not verify, or the carried payload did not decrypt.
    BadTag,
    /// The packet number was already seen or is behind the replay window.
    Replay,
    /// A WAN packet without metadata for which no session exists.
    NoSession,
    /// No key to open or seal the packet. Either a Security ID or payload key id was in use
    /// lately but has expired or is not yet learned, or a peer has no metadata key, or a
    /// session's first packet has no payload key TLV.
    NoKey,
    /// A received packet names a Security ID or payload key id that the router never
    /// held lately. Random bytes sent to a waypoint port end here, not in `NoKey`, so
    /// noise does not look like a key-rotation loss.
    UnknownKeyId,
    /// No service matches the packet, or its tenant may not reach the service.
    NoService,
    /// The service has no usable route, or no neighbour entry exists for a WAN next hop.
    NoRoute,
    /// Every path to the peer is out of service.
    PathDown,
    /// The TTL or hop limit would reach zero.
    TtlExpired,
    /// The session table or the waypoint port pool is full.
    TableFull,
    /// The output port had no free frame.
    NoBuffer,
    /// The packet would not fit the frame after adding SVR's overhead.
    TooLong,
    /// The control-packet queue towards the control thread was full.
    PuntQueueFull,
    /// The hand-off ring towards the worker that owns the packet's session, or towards
    /// the worker that polls the output port, was full. A received or control packet
    /// that finds no spare buffer on the ring is counted here too.
    HandoffFull,
    /// No neighbour entry exists yet for the LAN next hop of a packet restored from a peer.
    /// The engine reports the address, so the control thread can have it resolved.
    NoNeighbour,
    /// A WAN frame that is neither SVR nor BFD: another EtherType or IP protocol, UDP
    /// below the waypoint ports, or a multicast or broadcast destination. Only DPDK ports
    /// deliver such frames, because the AF_XDP filter leaves them to the kernel. They are
    /// not logged, since hosts on a WAN segment send them in normal operation.
    NotSvr,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 17] = [
        DropReason::Malformed,
        DropReason::BadTag,
        DropReason::Replay,
        DropReason::NoSession,
        DropReason::NoKey,
        DropReason::UnknownKeyId,
        DropReason::NoService,
        DropReason::NoRoute,
        DropReason::PathDown,
        DropReason::TtlExpired,
        DropReason::TableFull,
        DropReason::NoBuffer,
        DropReason::TooLong,
        DropReason::PuntQueueFull,
        DropReason::HandoffFull,
        DropReason::NoNeighbour,
        DropReason::NotSvr,
    ];

    /// Counter name, as shown by management tools.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadTag => "bad-tag",
            DropReason::Replay => "replay",
            DropReason::NoSession => "no-session",
            DropReason::NoKey => "no-key",
            DropReason::UnknownKeyId => "unknown-key-id",
            DropReason::NoService => "no-service",
            DropReason::NoRoute => "no-route",
            DropReason::PathDown => "path-down",
            DropReason::TtlExpired => "ttl-expired",
            DropReason::TableFull => "table-full",
            DropReason::NoBuffer => "no-buffer",
            DropReason::TooLong => "too-long",
            DropReason::PuntQueueFull => "punt-queue-full",
            DropReason::HandoffFull => "handoff-full",
            DropReason::NoNeighbour => "no-neighbour",
            DropReason::NotSvr => "not-svr",
        }
    }

    /// Whether the reason is about keys, which a key rotation must never cause.
    pub fn is_key_related(self) -> bool {
        matches!(self, DropReason::BadTag | DropReason::NoKey | DropReason::Replay)
    }

    fn index(self) -> usize {
        self as usize
    }
}

const REASONS: usize = DropReason::ALL.len();

/// Frames received and sent on one port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx: u64,
    pub tx: u64,
}

/// The counters of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    drops: [u64; REASONS],
    /// LAN packets sent to a peer.
    pub ingress_forwarded: u64,
    /// WAN packets restored onto a LAN.
    pub egress_forwarded: u64,
    /// WAN packets of transit sessions forwarded from one peer on to another.
    pub transit_forwarded: u64,
    /// Control packets handed to the control thread.
    pub punted: u64,
    /// Control packets sent for the control thread.
    pub control_sent: u64,
    /// Packets passed to another worker: to the owner of their session, or to the owner
    /// of their output port.
    pub handed_off: u64,
    /// Sessions created.
    pub sessions_created: u64,
    /// Sessions deleted after their idle timeout.
    pub sessions_expired: u64,
    /// Payload-key rotations started on ingress sessions.
    pub rotations_started: u64,
    /// Sessions whose sending switched to the next payload key.
    pub key_switches: u64,
    /// Tombstones of deleted sessions forgotten because their set filled up before its
    /// metadata key retired (see `session::Tombstones`).
    pub tombstones_forgotten: u64,
    /// Per port, by interface id.
    pub ports: Vec<PortCounters>,
}

impl Counters {
    /// Zeroed counters for `ports` ports. This is the only allocation.
    pub fn new(ports: usize) -> Counters {
        Counters {
            drops: [0; REASONS],
            ingress_forwarded: 0,
            egress_forwarded: 0,
            transit_forwarded: 0,
            punted: 0,
            control_sent: 0,
            handed_off: 0,
            sessions_created: 0,
            sessions_expired: 0,
            rotations_started: 0,
            key_switches: 0,
            tombstones_forgotten: 0,
            ports: vec![PortCounters::default(); ports],
        }
    }

    /// Counts one drop.
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }

    /// Drops counted for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// Sum of the drops for key-related reasons.
    pub fn key_drops(&self) -> u64 {
        DropReason::ALL.iter().filter(|r| r.is_key_related()).map(|r| self.drops(*r)).sum()
    }

    /// Sum of every drop.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    pub(crate) fn port_rx(&mut self, port: usize, frames: usize) {
        if let Some(counters) = self.ports.get_mut(port) {
            counters.rx += frames as u64;
        }
    }

    pub(crate) fn port_tx(&mut self, port: usize, frames: usize) {
        if let Some(counters) = self.ports.get_mut(port) {
            counters.tx += frames as u64;
        }
    }
}

/// A worker's counters as other threads read them, refreshed once per burst.
#[derive(Debug)]
pub struct SharedCounters {
    drops: [AtomicU64; REASONS],
    ingress_forwarded: AtomicU64,
    egress_forwarded: AtomicU64,
    transit_forwarded: AtomicU64,
    punted: AtomicU64,
    sessions_created: AtomicU64,
    rotations_started: AtomicU64,
    key_switches: AtomicU64,
    tombstones_forgotten: AtomicU64,
    ports: Vec<[AtomicU64; 2]>,
}

impl SharedCounters {
    /// Zeroed shared counters for `ports` ports.
    pub fn new(ports: usize) -> SharedCounters {
        SharedCounters {
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            ingress_forwarded: AtomicU64::new(0),
            egress_forwarded: AtomicU64::new(0),
            transit_forwarded: AtomicU64::new(0),
            punted: AtomicU64::new(0),
            sessions_created: AtomicU64::new(0),
            rotations_started: AtomicU64::new(0),
            key_switches: AtomicU64::new(0),
            tombstones_forgotten: AtomicU64::new(0),
            ports: (0..ports).map(|_| [AtomicU64::new(0), AtomicU64::new(0)]).collect(),
        }
    }

    /// Copies `counters` in; called by the owning worker only.
    pub fn store(&self, counters: &Counters) {
        for (shared, value) in self.drops.iter().zip(counters.drops.iter()) {
            shared.store(*value, Ordering::Relaxed);
        }
        self.ingress_forwarded.store(counters.ingress_forwarded, Ordering::Relaxed);
        self.egress_forwarded.store(counters.egress_forwarded, Ordering::Relaxed);
        self.transit_forwarded.store(counters.transit_forwarded, Ordering::Relaxed);
        self.punted.store(counters.punted, Ordering::Relaxed);
        self.sessions_created.store(counters.sessions_created, Ordering::Relaxed);
        self.rotations_started.store(counters.rotations_started, Ordering::Relaxed);
        self.key_switches.store(counters.key_switches, Ordering::Relaxed);
        self.tombstones_forgotten.store(counters.tombstones_forgotten, Ordering::Relaxed);
        for (shared, port) in self.ports.iter().zip(counters.ports.iter()) {
            shared[0].store(port.rx, Ordering::Relaxed);
            shared[1].store(port.tx, Ordering::Relaxed);
        }
    }

    /// Drops counted for `reason` at the last refresh.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Ordering::Relaxed)
    }

    /// LAN packets sent to a peer, at the last refresh.
    pub fn ingress_forwarded(&self) -> u64 {
        self.ingress_forwarded.load(Ordering::Relaxed)
    }

    /// WAN packets restored onto a LAN, at the last refresh.
    pub fn egress_forwarded(&self) -> u64 {
        self.egress_forwarded.load(Ordering::Relaxed)
    }

    /// WAN packets forwarded on to another peer, at the last refresh.
    pub fn transit_forwarded(&self) -> u64 {
        self.transit_forwarded.load(Ordering::Relaxed)
    }

    /// Control packets punted, at the last refresh.
    pub fn punted(&self) -> u64 {
        self.punted.load(Ordering::Relaxed)
    }

    /// Sessions created, at the last refresh.
    pub fn sessions_created(&self) -> u64 {
        self.sessions_created.load(Ordering::Relaxed)
    }

    /// Payload-key rotations started, at the last refresh.
    pub fn rotations_started(&self) -> u64 {
        self.rotations_started.load(Ordering::Relaxed)
    }

    /// Switches to a next payload key, at the last refresh.
    pub fn key_switches(&self) -> u64 {
        self.key_switches.load(Ordering::Relaxed)
    }

    /// Tombstones forgotten because their set was full, at the last refresh.
    pub fn tombstones_forgotten(&self) -> u64 {
        self.tombstones_forgotten.load(Ordering::Relaxed)
    }

    /// Received and sent frames of `port`, at the last refresh.
    pub fn port(&self, port: usize) -> PortCounters {
        self.ports.get(port).map_or(PortCounters::default(), |pair| PortCounters {
            rx: pair[0].load(Ordering::Relaxed),
            tx: pair[1].load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_index_in_order() {
        for (index, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), index, "{}", reason.name());
        }
    }

    #[test]
    fn shared_counters_copy_values() {
        let mut counters = Counters::new(2);
        counters.drop(DropReason::Replay);
        counters.drop(DropReason::Replay);
        counters.port_rx(1, 5);
        let shared = SharedCounters::new(2);
        shared.store(&counters);
        assert_eq!(shared.drops(DropReason::Replay), 2);
        assert_eq!(shared.drops(DropReason::BadTag), 0);
        assert_eq!(shared.port(1), PortCounters { rx: 5, tx: 0 });
    }
}
