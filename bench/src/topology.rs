//! The two-router topology every forwarding benchmark runs, whatever carries its frames:
//!
//! ```text
//!  host1 ── lan ── r1 ══ wan ══ r2 ── lan ── host5
//!  (generator)    ingress      egress     (receiver)
//! ```
//!
//! Both routers have fixed keys (a shared pair secret, one metadata key each), one
//! encrypted service for host5's /24, and port 0 as LAN and port 1 as WAN. The generator's
//! flows are UDP from host1 to host5, so r1 seals and r2 opens every packet.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use svr_dataplane::crypto::{MetadataKeys, MetadataSecret, PairKeys, PairSecret, Suite};
use svr_dataplane::epoch::{
    EpochPublisher, Interface, InterfaceRole, KeyEpoch, NextHop, Path, Peer, Service,
    ServicePrefix, ServiceRoute, epoch_channel,
};
use svr_dataplane::forward::EngineConfig;
use svr_dataplane::worker::{ControlQueues, Polling, Port, Worker, WorkerConfig};

use crate::probe::Addresses;

pub const HOST1: Ipv4Addr = Ipv4Addr::new(10, 230, 1, 10);
pub const HOST5: Ipv4Addr = Ipv4Addr::new(10, 230, 5, 10);
pub const R1_WAYPOINT: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 1);
pub const R2_WAYPOINT: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 2);

pub const HOST1_MAC: [u8; 6] = [2, 0x30, 0, 0, 1, 0x10];
pub const R1_LAN_MAC: [u8; 6] = [2, 0x30, 0, 0, 1, 1];
pub const R1_WAN_MAC: [u8; 6] = [2, 0x30, 0, 0, 2, 1];
pub const R2_WAN_MAC: [u8; 6] = [2, 0x30, 0, 0, 2, 2];
pub const R2_LAN_MAC: [u8; 6] = [2, 0x30, 0, 0, 5, 1];
pub const HOST5_MAC: [u8; 6] = [2, 0x30, 0, 0, 5, 0x10];

/// Port index of each router's LAN.
pub const LAN: u16 = 0;
/// Port index of each router's WAN.
pub const WAN: u16 = 1;

/// Addresses of host1's frames towards host5.
pub const FORWARD: Addresses = Addresses {
    source_mac: HOST1_MAC,
    destination_mac: R1_LAN_MAC,
    source: HOST1,
    destination: HOST5,
};

/// Addresses of host5's replies, which complete each session's metadata handshake.
pub const REVERSE: Addresses = Addresses {
    source_mac: HOST5_MAC,
    destination_mac: R2_LAN_MAC,
    source: HOST5,
    destination: HOST1,
};

/// One of the two routers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Router {
    Ingress,
    Egress,
}

/// A router's worker with the publisher that keeps its epoch alive.
pub struct RouterWorker {
    pub worker: Worker,
    pub epoch: EpochPublisher,
}

/// Builds the worker of `router` over its LAN and WAN ports, with room for `sessions`.
pub fn router_worker(router: Router, lan: Port, wan: Port, sessions: usize) -> RouterWorker {
    router_worker_with(router, lan, wan, engine_config(sessions))
}

/// Builds the worker of `router` over its LAN and WAN ports with engine settings `engine`.
pub fn router_worker_with(
    router: Router,
    lan: Port,
    wan: Port,
    engine: EngineConfig,
) -> RouterWorker {
    let (epoch, reader) = epoch_channel(router_epoch(router));
    let control = Arc::new(ControlQueues::new(16, 2048));
    let config = WorkerConfig { engine, polling: Polling::Busy, core: None, sweep_budget: 16 };
    let worker = Worker::new(config, vec![lan, wan], reader, control);
    RouterWorker { worker, epoch }
}

/// WAN MTU of both routers. A 1400-byte frame sealed without metadata fits a 1500-byte
/// MTU. The first packets of each flow carry metadata as well, which at 1500 bytes svrd
/// would send as SVR fragments. The benchmark's WAN is a memory or ring link with 2 KiB
/// buffers, so it takes the larger MTU and every packet stays whole.
pub const WAN_MTU: u16 = 1700;

/// Engine settings of both routers.
pub fn engine_config(sessions: usize) -> EngineConfig {
    EngineConfig {
        sessions,
        idle_timeout: Duration::from_secs(600),
        wan_mtu: WAN_MTU,
        ..EngineConfig::default()
    }
}

/// Builds the epoch of `router`.
pub fn router_epoch(router: Router) -> KeyEpoch {
    let ingress = router == Router::Ingress;
    let r1_key = || metadata_key(1, 0x11);
    let r2_key = || metadata_key(7, 0x22);
    let (own, peer_key) = if ingress { (r1_key(), r2_key()) } else { (r2_key(), r1_key()) };
    let (name, peer_name) = if ingress { ("r1", "r2") } else { ("r2", "r1") };
    let (local, peer) =
        if ingress { (R1_WAYPOINT, R2_WAYPOINT) } else { (R2_WAYPOINT, R1_WAYPOINT) };
    let (lan_mac, wan_mac, peer_mac) = if ingress {
        (R1_LAN_MAC, R1_WAN_MAC, R2_WAN_MAC)
    } else {
        (R2_LAN_MAC, R2_WAN_MAC, R1_WAN_MAC)
    };
    let (host, host_mac) = if ingress { (HOST1, HOST1_MAC) } else { (HOST5, HOST5_MAC) };
    let next_hop =
        if ingress { NextHop::Peer(0) } else { NextHop::Local { interface: LAN, gateway: None } };

    let mut neighbours = HashMap::new();
    neighbours.insert((WAN, IpAddr::V4(peer)), peer_mac);
    neighbours.insert((LAN, IpAddr::V4(host)), host_mac);
    KeyEpoch {
        generation: 1,
        router: name.into(),
        own_metadata_keys: vec![own],
        peers: vec![Peer {
            name: peer_name.into(),
            metadata_keys: Some(peer_key),
            pair_keys: vec![PairKeys::derive(
                Suite::AesCbc256HmacSha384,
                &PairSecret::from_bytes([0x12; 32]),
                name,
                peer_name,
            )],
            paths: vec![Path {
                interface: WAN,
                local: local.into(),
                peer: peer.into(),
                gateway: None,
                in_service: true,
            }],
        }],
        tenants: vec!["lab".into()],
        services: vec![Service {
            name: "bench".into(),
            tenants: vec![0],
            prefixes: vec![ServicePrefix {
                address: Ipv4Addr::new(10, 230, 5, 0).into(),
                len: 24,
                protocol: None,
                ports: None,
            }],
            encrypt: true,
        }],
        service_routes: vec![ServiceRoute { service: 0, next_hop }],
        interfaces: vec![
            Interface {
                mac: lan_mac,
                role: InterfaceRole::Lan { tenant: 0 },
                ipv4: None,
                ipv6: None,
            },
            Interface { mac: wan_mac, role: InterfaceRole::Wan, ipv4: None, ipv6: None },
        ],
        neighbours,
    }
}

fn metadata_key(index: u32, byte: u8) -> MetadataKeys {
    MetadataKeys::derive(index, Suite::AesCbc256HmacSha384, &MetadataSecret::from_bytes([byte; 32]))
}
