//! Peers and adjacencies generated from shared neighborhoods, as the product's conductor
//! generates them: routers whose network-interfaces name the same neighborhood peer with
//! each other when their topologies allow it (hub with spoke and mesh, spoke with hub and
//! mesh, mesh with all).
//!
//! Entries written by hand win: a router that already has a peer for the remote router
//! keeps it (the generated adjacencies then name that peer), and an interface that already
//! has an adjacency to the remote address gets no generated one.

use std::collections::HashSet;
use std::net::IpAddr;

use super::error::{ConfigWarning, ConfigWarningKind, Span};
use super::model::{
    Adjacency, Authority, BfdOverrides, PayloadEncryptionOverride, Peer, PeerConnectivity, Ref,
    Topology,
};

/// One network-interface's membership of one neighborhood.
struct Member {
    router: usize,
    /// Indices of node, device-interface and network-interface inside the router.
    path: (usize, usize, usize),
    interface: String,
    neighborhood: String,
    topology: Topology,
    connectivity: PeerConnectivity,
    address: Option<IpAddr>,
    payload_override: Option<PayloadEncryptionOverride>,
    span: Span,
}

/// Adds generated peers and adjacencies to `authority`.
pub fn generate(authority: &mut Authority, warnings: &mut Vec<ConfigWarning>) {
    let members = members(authority);
    let mut new_peers: Vec<(usize, Peer)> = Vec::new();
    let mut new_adjacencies: Vec<(usize, (usize, usize, usize), Adjacency)> = Vec::new();
    // Look-up sets for what is already added, so large authorities stay linear per pair.
    let mut peers_added: HashSet<(usize, String)> = HashSet::new();
    let mut adjacencies_added: HashSet<(usize, (usize, usize, usize), IpAddr)> = HashSet::new();

    for local in &members {
        for remote in &members {
            if local.router == remote.router
                || local.neighborhood != remote.neighborhood
                || !local.topology.peers_with(remote.topology)
            {
                continue;
            }
            let local_router = &authority.routers[local.router];
            let remote_router = &authority.routers[remote.router];

            // The peer: one written by hand for the remote router, else a generated one.
            let hand = local_router.peers.iter().find(|p| {
                p.remote_router() == remote_router.name
                    && p.authority_name.as_ref().is_none_or(|a| Some(a) == authority.name.as_ref())
            });
            let taken = local_router.peers.iter().find(|p| p.name == remote_router.name);
            let peer_name = match (hand, taken) {
                (Some(p), _) => p.name.clone(),
                (None, Some(other)) => {
                    // A hand-written peer already uses the name for another router.
                    warnings.push(ConfigWarning {
                        span: local.span,
                        kind: ConfigWarningKind::NoGeneratedAdjacency {
                            router: local_router.name.clone(),
                            peer: remote_router.name.clone(),
                            neighborhood: local.neighborhood.clone(),
                            reason: format!(
                                "peer {} is already defined for router {}",
                                other.name,
                                other.remote_router()
                            ),
                        },
                    });
                    continue;
                }
                (None, None) => {
                    if peers_added.insert((local.router, remote_router.name.clone())) {
                        new_peers.push((
                            local.router,
                            Peer {
                                name: remote_router.name.clone(),
                                authority_name: authority.name.clone(),
                                router_name: Some(remote_router.name.clone()),
                                description: None,
                                peering_common_name: remote_router.peering_common_name.clone(),
                                ml_kem_keygen_priority: remote_router.ml_kem_keygen_priority,
                                key_exchange_algorithm_override: remote_router
                                    .key_exchange_algorithm_override,
                                generated: true,
                                bfd: BfdOverrides::default(),
                                span: local.span,
                            },
                        ));
                    }
                    remote_router.name.clone()
                }
            };

            // The adjacency toward the remote interface's address.
            let reason = match remote.address {
                None => Some(format!("its network-interface {} has no address", remote.interface)),
                Some(_)
                    if local.connectivity == PeerConnectivity::OutboundOnly
                        && remote.connectivity == PeerConnectivity::OutboundOnly =>
                {
                    Some("both sides are outbound-only, so neither can reach the other".to_owned())
                }
                Some(_) => None,
            };
            if let Some(reason) = reason {
                warnings.push(ConfigWarning {
                    span: local.span,
                    kind: ConfigWarningKind::NoGeneratedAdjacency {
                        router: local_router.name.clone(),
                        peer: remote_router.name.clone(),
                        neighborhood: local.neighborhood.clone(),
                        reason,
                    },
                });
                continue;
            }
            let Some(ip_address) = remote.address else { continue };
            let (n, d, i) = local.path;
            let interface = &local_router.nodes[n].device_interfaces[d].network_interfaces[i];
            let exists = interface.adjacencies.iter().any(|a| a.ip_address == ip_address);
            if exists || !adjacencies_added.insert((local.router, local.path, ip_address)) {
                continue;
            }
            new_adjacencies.push((
                local.router,
                local.path,
                Adjacency {
                    ip_address,
                    peer: Ref { name: peer_name, span: local.span },
                    bfd: BfdOverrides::default(),
                    cost: 0,
                    generated: true,
                    inter_router_security: None,
                    payload_encryption_override: local.payload_override,
                    port_ranges: Vec::new(),
                    neighborhood: Some(local.neighborhood.clone()),
                    span: local.span,
                },
            ));
        }
    }

    for (router, peer) in new_peers {
        authority.routers[router].peers.push(peer);
    }
    for (router, (n, d, i), adjacency) in new_adjacencies {
        authority.routers[router].nodes[n].device_interfaces[d].network_interfaces[i]
            .adjacencies
            .push(adjacency);
    }
}

fn members(authority: &Authority) -> Vec<Member> {
    let mut out = Vec::new();
    for (r, router) in authority.routers.iter().enumerate() {
        for (n, node) in router.nodes.iter().enumerate() {
            for (d, device) in node.device_interfaces.iter().enumerate() {
                for (i, interface) in device.network_interfaces.iter().enumerate() {
                    for hood in &interface.neighborhoods {
                        out.push(Member {
                            router: r,
                            path: (n, d, i),
                            interface: interface.name.clone(),
                            neighborhood: hood.name.clone(),
                            topology: hood.topology,
                            connectivity: hood.peer_connectivity,
                            address: interface.addresses.first().map(|a| a.ip_address),
                            payload_override: hood.payload_encryption_override,
                            span: hood.span,
                        });
                    }
                }
            }
        }
    }
    out
}
