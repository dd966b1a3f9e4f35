//! Key epochs: the immutable snapshot of keys, peers, paths and forwarding tables that the
//! control thread publishes and the workers read, and the RCU pointer between them.
//!
//! The control thread builds a whole new [`KeyEpoch`] for every change and hands it to
//! [`EpochPublisher::publish`]. A worker pins once per burst ([`EpochReader::pin`]) and
//! reads the epoch that was current at that moment for the whole burst. An old epoch is
//! freed by crossbeam-epoch only after every thread that could still read it has unpinned,
//! so a worker never observes a key change in the middle of a burst and never takes a lock.
#![allow(
    unsafe_code,
    reason = "crossbeam-epoch's Atomic hands out raw Shared pointers; dereferencing one \
              and freeing the last epoch are unsafe calls with the guard protocol as \
              their proof"
)]

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned};

use crate::crypto::{MetadataKeys, PairKeys};

/// Index of a port (network interface) in a worker's port list.
pub type InterfaceId = u16;
/// Index of a peer in [`KeyEpoch::peers`].
pub type PeerId = u16;
/// Index of a path in [`Peer::paths`].
pub type PathId = u16;
/// Index of a service in [`KeyEpoch::services`].
pub type ServiceId = u16;
/// Index of a tenant in [`KeyEpoch::tenants`].
pub type TenantId = u16;

/// One published snapshot of everything the packet path needs from the control plane.
///
/// Sessions refer to peers, paths, services, tenants and interfaces by their index, so a
/// new epoch must keep existing entries at their indexes and only append; an entry that
/// goes away is marked (a path out of service) rather than removed.
#[derive(Debug, Default)]
pub struct KeyEpoch {
    /// Increases with every publication; sessions and logs refer to it.
    pub generation: u64,
    /// This router's name, sent as the source router TLV.
    pub router: String,
    /// This router's own metadata keys: the current one and, during a rotation's grace
    /// time, the previous one. Peers seal towards this router with one of them and name it
    /// by its index (the Security ID).
    pub own_metadata_keys: Vec<MetadataKeys>,
    /// SVR peers.
    pub peers: Vec<Peer>,
    /// Tenant names; a LAN interface belongs to one of them.
    pub tenants: Vec<String>,
    /// Services, matched in order at session start.
    pub services: Vec<Service>,
    /// Next hops of the services.
    pub service_routes: Vec<ServiceRoute>,
    /// The ports of this router, by [`InterfaceId`].
    pub interfaces: Vec<Interface>,
    /// Next-hop link-layer addresses by (interface, IP address), filled from the kernel's
    /// neighbour table.
    pub neighbours: HashMap<(InterfaceId, IpAddr), [u8; 6]>,
}

/// An SVR peer router.
#[derive(Debug)]
pub struct Peer {
    /// The peer router's name.
    pub name: String,
    /// The peer's current metadata key, used to encrypt metadata towards it; `None` until
    /// the key exchange has delivered one.
    pub metadata_keys: Option<MetadataKeys>,
    /// The pair keys of this router and the peer, which authenticate packets with metadata
    /// in both directions. The first seals what this router sends; all are accepted on
    /// receipt, which covers a peer-key rotation. Empty until the key exchange has
    /// delivered them.
    pub pair_keys: Vec<PairKeys>,
    /// Paths to the peer. New sessions spread over those in service ([`KeyEpoch::path_for_flow`]).
    pub paths: Vec<Path>,
}

/// One peer path: a pair of waypoint addresses over one WAN interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The WAN interface the path leaves from.
    pub interface: InterfaceId,
    /// This router's waypoint address on that interface.
    pub local: IpAddr,
    /// The peer's waypoint address.
    pub peer: IpAddr,
    /// The next hop towards the peer waypoint, when it is not on the same link.
    pub gateway: Option<IpAddr>,
    /// Whether BFD reports the path up.
    pub in_service: bool,
}

/// A service: destinations that some tenants may reach, with the security policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service name, sent in metadata.
    pub name: String,
    /// Tenants allowed to reach the service.
    pub tenants: Vec<TenantId>,
    /// Destinations of the service.
    pub prefixes: Vec<ServicePrefix>,
    /// Whether the payload is encrypted (the service's security policy).
    pub encrypt: bool,
}

/// One destination of a service: a prefix with an optional protocol and port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePrefix {
    /// The network address.
    pub address: IpAddr,
    /// Prefix length in bits.
    pub len: u8,
    /// IP protocol number, or any protocol when `None`.
    pub protocol: Option<u8>,
    /// Inclusive destination port range, or any port when `None`.
    pub ports: Option<(u16, u16)>,
}

impl ServicePrefix {
    /// Returns whether a packet to `address`, `protocol` and `port` falls in this prefix.
    pub fn matches(&self, address: IpAddr, protocol: u8, port: u16) -> bool {
        if self.protocol.is_some_and(|expected| expected != protocol) {
            return false;
        }
        if self.ports.is_some_and(|(low, high)| port < low || port > high) {
            return false;
        }
        prefix_contains(self.address, self.len, address)
    }
}

/// The next hop of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRoute {
    /// The routed service.
    pub service: ServiceId,
    /// Its next hop.
    pub next_hop: NextHop,
}

/// The next hop of a service route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// Over SVR to a peer router.
    Peer(PeerId),
    /// Out of a LAN interface, to `gateway` or straight to the destination when `None`.
    Local { interface: InterfaceId, gateway: Option<IpAddr> },
}

/// One port of the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    /// The interface's MAC address, the source of the frames it sends.
    pub mac: [u8; 6],
    /// The kind of network the interface faces.
    pub role: InterfaceRole,
    /// The router's IPv4 address on the interface, if it has one: the source of the ICMP
    /// errors sent out of it.
    pub ipv4: Option<Ipv4Addr>,
    /// The router's IPv6 address on the interface, if it has one, used as `ipv4` is.
    pub ipv6: Option<Ipv6Addr>,
}

impl Interface {
    /// Returns the router's address on the interface of the same family as `other`.
    pub fn address_like(&self, other: IpAddr) -> Option<IpAddr> {
        match other {
            IpAddr::V4(_) => self.ipv4.map(IpAddr::V4),
            IpAddr::V6(_) => self.ipv6.map(IpAddr::V6),
        }
    }
}

/// The kind of network an interface faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceRole {
    /// A LAN whose hosts belong to a tenant.
    Lan { tenant: TenantId },
    /// A WAN carrying SVR to peers.
    Wan,
}

impl KeyEpoch {
    /// This router's metadata key with `index`, if it is still held.
    pub fn own_metadata_key(&self, index: u32) -> Option<&MetadataKeys> {
        self.own_metadata_keys.iter().find(|keys| keys.index() == index)
    }

    /// Returns whether `index`, which names no held metadata key, is one or two below a
    /// held key's index or one above it. Such an index was retired by a rotation or is about
    /// to be installed, so it is not one this router never used.
    pub fn recent_metadata_index(&self, index: u32) -> bool {
        self.own_metadata_keys.iter().any(|keys| {
            let held = keys.index();
            held.checked_sub(index).is_some_and(|behind| (1..=2).contains(&behind))
                || index.checked_sub(held) == Some(1)
        })
    }

    /// Finds the first service that `tenant` may reach and that contains the destination.
    pub fn match_service(
        &self,
        tenant: TenantId,
        destination: IpAddr,
        protocol: u8,
        port: u16,
    ) -> Option<ServiceId> {
        let position = self.services.iter().position(|service| {
            service.tenants.contains(&tenant)
                && service.prefixes.iter().any(|prefix| prefix.matches(destination, protocol, port))
        })?;
        ServiceId::try_from(position).ok()
    }

    /// Finds a service by name.
    pub fn service_by_name(&self, name: &str) -> Option<ServiceId> {
        let position = self.services.iter().position(|service| service.name == name)?;
        ServiceId::try_from(position).ok()
    }

    /// Finds a tenant by name.
    pub fn tenant_by_name(&self, name: &str) -> Option<TenantId> {
        let position = self.tenants.iter().position(|tenant| tenant == name)?;
        TenantId::try_from(position).ok()
    }

    /// Returns the next hop of `service`.
    pub fn route(&self, service: ServiceId) -> Option<NextHop> {
        self.service_routes
            .iter()
            .find(|route| route.service == service)
            .map(|route| route.next_hop)
    }

    /// Finds the first in-service path of `peer`.
    pub fn path_in_service(&self, peer: PeerId) -> Option<(PathId, &Path)> {
        self.path_for_flow(peer, 0)
    }

    /// Picks the in-service path of `peer` for a session whose flow hashes to `flow`. A
    /// flow keeps its path while the set of in-service paths stays the same, and flows
    /// spread evenly over those paths, so sessions between one pair of hosts may take
    /// different paths.
    pub fn path_for_flow(&self, peer: PeerId, flow: u64) -> Option<(PathId, &Path)> {
        let peer = self.peers.get(usize::from(peer))?;
        let in_service = peer.paths.iter().filter(|path| path.in_service).count();
        let pick = usize::try_from(flow % u64::try_from(in_service).ok()?.max(1)).ok()?;
        let (index, path) =
            peer.paths.iter().enumerate().filter(|(_, path)| path.in_service).nth(pick)?;
        Some((PathId::try_from(index).ok()?, path))
    }

    /// Returns a path by peer and index.
    pub fn path(&self, peer: PeerId, path: PathId) -> Option<&Path> {
        self.peers.get(usize::from(peer))?.paths.get(usize::from(path))
    }

    /// Finds the peer and path whose waypoints are `peer` and `local` on `interface`.
    pub fn path_by_waypoints(
        &self,
        interface: InterfaceId,
        peer: IpAddr,
        local: IpAddr,
    ) -> Option<(PeerId, PathId)> {
        self.peers.iter().enumerate().find_map(|(peer_index, candidate)| {
            let path_index = candidate.paths.iter().position(|path| {
                path.interface == interface && path.peer == peer && path.local == local
            })?;
            Some((PeerId::try_from(peer_index).ok()?, PathId::try_from(path_index).ok()?))
        })
    }

    /// Looks up the MAC address of `address` on `interface`.
    pub fn neighbour(&self, interface: InterfaceId, address: IpAddr) -> Option<[u8; 6]> {
        self.neighbours.get(&(interface, address)).copied()
    }
}

/// Returns whether `address` is inside `network`/`len`. Addresses of different families
/// never are.
fn prefix_contains(network: IpAddr, len: u8, address: IpAddr) -> bool {
    match (network, address) {
        (IpAddr::V4(network), IpAddr::V4(address)) => {
            let len = u32::from(len.min(32));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(network) & mask == u32::from(address) & mask
        }
        (IpAddr::V6(network), IpAddr::V6(address)) => {
            let len = u32::from(len.min(128));
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(network) & mask == u128::from(address) & mask
        }
        _ => false,
    }
}

/// The pointer both sides share.
struct Slot {
    current: Atomic<KeyEpoch>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: the slot is dropped with its last `Arc`, so no publisher or reader is
        // left that could load the pointer. Epochs replaced earlier went to
        // `defer_destroy` and are not reachable from here.
        let current = unsafe { self.current.load(Ordering::Acquire, epoch::unprotected()) };
        if !current.is_null() {
            // SAFETY: as above, this is the only reference to the current epoch.
            drop(unsafe { current.into_owned() });
        }
    }
}

/// The control thread's end: replaces the current epoch.
pub struct EpochPublisher {
    slot: Arc<Slot>,
}

/// A worker's end: reads the current epoch under a pin.
#[derive(Clone)]
pub struct EpochReader {
    slot: Arc<Slot>,
}

/// Creates the pointer with `initial` as its first epoch.
pub fn epoch_channel(initial: KeyEpoch) -> (EpochPublisher, EpochReader) {
    let slot = Arc::new(Slot { current: Atomic::new(initial) });
    (EpochPublisher { slot: Arc::clone(&slot) }, EpochReader { slot })
}

impl EpochPublisher {
    /// Makes `epoch` current. The replaced epoch is freed once every worker pinned before
    /// this call has unpinned.
    pub fn publish(&self, epoch: KeyEpoch) {
        let guard = epoch::pin();
        let old = self.slot.current.swap(Owned::new(epoch), Ordering::AcqRel, &guard);
        if !old.is_null() {
            // SAFETY: `old` is no longer reachable through the slot, so only threads pinned
            // now can hold it, and `defer_destroy` waits for all of them to unpin.
            unsafe { guard.defer_destroy(old) };
        }
        // Ask crossbeam-epoch to run deferred frees soon rather than at some later pin.
        guard.flush();
    }

    /// A reader for another worker.
    pub fn reader(&self) -> EpochReader {
        EpochReader { slot: Arc::clone(&self.slot) }
    }
}

impl EpochReader {
    /// Pins the current thread and returns the epoch current at this moment; it stays
    /// valid until the returned guard is dropped. Workers call this once per burst.
    pub fn pin(&self) -> PinnedEpoch {
        let guard = epoch::pin();
        let shared = self.slot.current.load(Ordering::Acquire, &guard);
        // `Shared::as_raw` is a plain pointer read; it is dereferenced in `deref` while the
        // guard is alive.
        let epoch = shared.as_raw();
        PinnedEpoch { epoch, _guard: guard }
    }
}

/// The epoch a worker reads during one burst. Holding it keeps the epoch alive; dropping it
/// is the worker's quiescent point.
pub struct PinnedEpoch {
    epoch: *const KeyEpoch,
    _guard: Guard,
}

impl PinnedEpoch {
    /// The epoch.
    pub fn get(&self) -> &KeyEpoch {
        // SAFETY: the pointer was loaded under `_guard`, which is still pinned, so the epoch
        // it points to has not been freed (`publish` frees only through `defer_destroy`). The
        // slot always holds a non-null epoch: it starts with one and `publish` swaps in
        // another.
        unsafe { &*self.epoch }
    }
}

impl std::ops::Deref for PinnedEpoch {
    type Target = KeyEpoch;

    fn deref(&self) -> &KeyEpoch {
        self.get()
    }
}

impl fmt::Debug for EpochPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EpochPublisher")
    }
}

impl fmt::Debug for EpochReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EpochReader")
    }
}

impl fmt::Debug for PinnedEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedEpoch").field("generation", &self.get().generation).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::atomic::AtomicUsize;

    fn epoch_with_paths(in_service: &[bool]) -> KeyEpoch {
        let paths = in_service
            .iter()
            .enumerate()
            .map(|(index, &up)| Path {
                interface: 1,
                local: IpAddr::V4(Ipv4Addr::new(10, 0, index as u8, 1)),
                peer: IpAddr::V4(Ipv4Addr::new(10, 0, index as u8, 2)),
                gateway: None,
                in_service: up,
            })
            .collect();
        KeyEpoch {
            peers: vec![Peer {
                name: "peer".into(),
                metadata_keys: None,
                pair_keys: Vec::new(),
                paths,
            }],
            ..KeyEpoch::default()
        }
    }

    #[test]
    fn path_for_flow_spreads_over_in_service() {
        let epoch = epoch_with_paths(&[true, false, true]);
        let picked: Vec<PathId> =
            (0..4).map(|flow| epoch.path_for_flow(0, flow).unwrap().0).collect();
        assert_eq!(picked, [0, 2, 0, 2], "flows alternate over paths 0 and 2, skipping 1");
        assert_eq!(epoch.path_in_service(0).unwrap().0, 0);
        assert!(epoch.path_for_flow(1, 0).is_none(), "unknown peer");
        let down = epoch_with_paths(&[false, false]);
        assert!(down.path_for_flow(0, 7).is_none(), "no path in service");
    }

    #[test]
    fn reader_sees_published_epoch() {
        let (publisher, reader) = epoch_channel(KeyEpoch { generation: 1, ..KeyEpoch::default() });
        assert_eq!(reader.pin().generation, 1);
        publisher.publish(KeyEpoch { generation: 2, ..KeyEpoch::default() });
        assert_eq!(reader.pin().generation, 2);
    }

    #[test]
    fn pinned_epoch_outlives_publish() {
        let (publisher, reader) =
            epoch_channel(KeyEpoch { generation: 1, router: "r1".into(), ..KeyEpoch::default() });
        let pinned = reader.pin();
        publisher.publish(KeyEpoch { generation: 2, ..KeyEpoch::default() });
        assert_eq!(pinned.generation, 1);
        assert_eq!(pinned.router, "r1");
        drop(pinned);
        assert_eq!(reader.pin().generation, 2);
    }

    #[test]
    fn epochs_change_under_readers() {
        let (publisher, reader) = epoch_channel(KeyEpoch::default());
        let seen = Arc::new(AtomicUsize::new(0));
        let worker = {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut last = 0;
                while last < 500 {
                    let pinned = reader.pin();
                    assert!(pinned.generation >= last, "generation went backwards");
                    last = pinned.generation;
                    seen.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        for generation in 1..=500 {
            publisher.publish(KeyEpoch { generation, ..KeyEpoch::default() });
        }
        worker.join().unwrap();
        assert!(seen.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn prefix_match_v4() {
        let prefix = ServicePrefix {
            address: IpAddr::V4(Ipv4Addr::new(10, 5, 0, 0)),
            len: 16,
            protocol: Some(17),
            ports: Some((5000, 5999)),
        };
        assert!(prefix.matches(Ipv4Addr::new(10, 5, 9, 9).into(), 17, 5201));
        assert!(!prefix.matches(Ipv4Addr::new(10, 6, 0, 1).into(), 17, 5201));
        assert!(!prefix.matches(Ipv4Addr::new(10, 5, 0, 1).into(), 6, 5201));
        assert!(!prefix.matches(Ipv4Addr::new(10, 5, 0, 1).into(), 17, 6000));
        assert!(!prefix.matches(Ipv6Addr::LOCALHOST.into(), 17, 5201));
    }

    #[test]
    fn prefix_match_zero_and_full_length() {
        let any = ServicePrefix {
            address: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            len: 0,
            protocol: None,
            ports: None,
        };
        assert!(any.matches("fd00::1".parse().unwrap(), 58, 0));
        let host = ServicePrefix { address: "fd00::1".parse().unwrap(), len: 128, ..any };
        assert!(host.matches("fd00::1".parse().unwrap(), 6, 80));
        assert!(!host.matches("fd00::2".parse().unwrap(), 6, 80));
    }
}
