//! The keys and path states the control thread has learned, and the key epochs it builds
//! from them for the workers.
//!
//! Every table here is indexed the way the plan lists ports, peers and paths, and the
//! epoch keeps that order, so sessions that refer to a peer or path by index stay valid
//! across epochs.

use std::collections::HashMap;
use std::net::IpAddr;

use svr_dataplane::crypto::{MetadataKeys, MetadataSecret, PairKeys, PairSecret, Suite};
use svr_dataplane::epoch::{
    Interface, InterfaceRole, KeyEpoch, NextHop, Path, Peer, Service, ServiceRoute,
};
use zeroize::Zeroizing;

use super::plan::{Plan, RoutePlan};
use crate::kex::{HmacAlgorithm, MetadataKeyBundle};

/// What the key exchange and BFD have reported so far.
#[derive(Debug, Default)]
pub struct Keyring {
    /// This router's metadata keys that peers may seal towards it with.
    pub own: Vec<MetadataKeys>,
    /// Per peer: the peer's metadata key to encrypt towards it.
    pub peer_metadata: Vec<Option<MetadataKeys>>,
    /// Per peer: the pair secrets, oldest first, as last derived.
    pub pair_secrets: Vec<Vec<Zeroizing<[u8; 32]>>>,
    /// Per peer: whether the key exchange has its paths in service.
    pub peer_in_service: Vec<bool>,
    /// Per peer: what its certificate allows, which can withhold keys the exchange holds.
    pub peer_access: Vec<PeerAccess>,
    /// Per path: whether BFD reports it up.
    pub path_up: Vec<bool>,
    /// Link-layer addresses of next hops, by (port, address).
    pub neighbours: HashMap<(u16, IpAddr), [u8; 6]>,
    /// MAC address of each port.
    pub macs: Vec<[u8; 6]>,
    /// Publications so far.
    pub generation: u64,
}

impl Keyring {
    /// An empty keyring for `plan`.
    pub fn new(plan: &Plan, macs: Vec<[u8; 6]>) -> Keyring {
        Keyring {
            peer_metadata: vec![None; plan.peers.len()],
            pair_secrets: vec![Vec::new(); plan.peers.len()],
            peer_in_service: vec![false; plan.peers.len()],
            peer_access: vec![PeerAccess::Full; plan.peers.len()],
            path_up: vec![false; plan.paths.len()],
            macs,
            ..Keyring::default()
        }
    }

    /// Whether a path carries traffic: BFD up, the peering has keys both ways, and the
    /// peer's certificate has not removed the peering.
    pub fn path_in_service(&self, plan: &Plan, path: usize) -> bool {
        let Some(peer) = plan.paths.get(path).filter(|p| !p.retired).map(|p| p.peer) else {
            return false;
        };
        self.access(peer) != PeerAccess::Removed
            && self.path_up.get(path).copied().unwrap_or(false)
            && self.peer_in_service.get(peer).copied().unwrap_or(false)
            && self.peer_metadata.get(peer).is_some_and(Option::is_some)
            && self.pair_secrets.get(peer).is_some_and(|s| !s.is_empty())
    }

    /// Returns the access of peer `peer`, or full access for an unknown index.
    pub fn access(&self, peer: usize) -> PeerAccess {
        self.peer_access.get(peer).copied().unwrap_or(PeerAccess::Full)
    }

    /// Builds the next epoch. A peer without [`PeerAccess::Full`] is published without its
    /// metadata and pair keys, so the workers start no session with it, while sessions that
    /// finished their metadata handshake keep their own payload keys. A removed peer also has
    /// every path out of service, which ends those sessions too.
    pub fn epoch(&mut self, plan: &Plan) -> KeyEpoch {
        self.generation += 1;
        let suite = Suite::AesCbc256HmacSha384;
        let peers = plan
            .peers
            .iter()
            .enumerate()
            .map(|(index, peer)| Peer {
                name: peer.name.clone(),
                metadata_keys: match self.access(index) {
                    PeerAccess::Full => self.peer_metadata[index].clone(),
                    PeerAccess::NoNewSessions | PeerAccess::Removed => None,
                },
                pair_keys: self.pair_secrets[index]
                    .iter()
                    .filter(|_| self.access(index) == PeerAccess::Full)
                    .map(|secret| {
                        PairKeys::derive(
                            suite,
                            &PairSecret::from_bytes(**secret),
                            &plan.peering_common_name,
                            &peer.peering_common_name,
                        )
                    })
                    .collect(),
                paths: plan
                    .paths
                    .iter()
                    .enumerate()
                    .filter(|(_, path)| path.peer == index)
                    .map(|(path_index, path)| Path {
                        interface: path.port as u16,
                        // A retired path keeps its index but no waypoints, so a packet from
                        // a new path between the same addresses never matches it.
                        local: if path.retired { unspecified(path.local) } else { path.local },
                        peer: if path.retired { unspecified(path.remote) } else { path.remote },
                        gateway: None,
                        in_service: self.path_in_service(plan, path_index),
                    })
                    .collect(),
            })
            .collect();

        let tenant_index =
            |name: &str| plan.tenants.iter().position(|t| t == name).map(|i| i as u16);
        let interfaces = plan
            .ports
            .iter()
            .enumerate()
            .map(|(index, port)| Interface {
                mac: self.macs.get(index).copied().unwrap_or_default(),
                role: match port.tenant.as_deref().and_then(tenant_index) {
                    Some(tenant) => InterfaceRole::Lan { tenant },
                    None => InterfaceRole::Wan,
                },
                ipv4: port.addresses.iter().find_map(|address| match address {
                    IpAddr::V4(v4) => Some(*v4),
                    IpAddr::V6(_) => None,
                }),
                ipv6: port.addresses.iter().find_map(|address| match address {
                    IpAddr::V6(v6) => Some(*v6),
                    IpAddr::V4(_) => None,
                }),
            })
            .collect();
        let services = plan
            .services
            .iter()
            .map(|service| Service {
                name: service.name.clone(),
                tenants: service.tenants.iter().filter_map(|t| tenant_index(t)).collect(),
                prefixes: service.prefixes.clone(),
                encrypt: service.encrypt,
            })
            .collect();
        let service_index =
            |name: &str| plan.services.iter().position(|s| s.name == name).map(|i| i as u16);
        let service_routes = plan
            .routes
            .iter()
            .filter_map(|route| match route {
                RoutePlan::Peer { service, peer } => Some(ServiceRoute {
                    service: service_index(service)?,
                    next_hop: NextHop::Peer(*peer as u16),
                }),
                RoutePlan::Local { service, port, gateway } => Some(ServiceRoute {
                    service: service_index(service)?,
                    next_hop: NextHop::Local { interface: *port as u16, gateway: *gateway },
                }),
            })
            .collect();

        KeyEpoch {
            generation: self.generation,
            router: plan.router.clone(),
            own_metadata_keys: self.own.clone(),
            peers,
            tenants: plan.tenants.clone(),
            services,
            service_routes,
            interfaces,
            neighbours: self.neighbours.clone(),
        }
    }
}

/// Access a peer's certificate allows the dataplane: keys published, withheld, or the
/// peering removed. Variants are ordered from the least to the most restrictive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerAccess {
    /// The certificate is valid, or has not been checked yet: keys are published.
    #[default]
    Full,
    /// The certificate is revoked or expired under fail-soft: the peering stays, paths stay
    /// in service, but no new session starts.
    NoNewSessions,
    /// The certificate is invalid under fail-hard: the peering is removed until a valid
    /// certificate arrives.
    Removed,
}

/// Returns the unspecified address of `address`'s family.
fn unspecified(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

/// Derives the dataplane's working key from a metadata key bundle of the exchange.
pub fn metadata_keys(bundle: &MetadataKeyBundle) -> MetadataKeys {
    let suite = match bundle.hmac {
        HmacAlgorithm::Sha512 => Suite::AesCbc256HmacSha512,
        HmacAlgorithm::Sha384 => Suite::AesCbc256HmacSha384,
    };
    MetadataKeys::derive(bundle.index, suite, &MetadataSecret::from_bytes(*bundle.secret()))
}
