//! Two routers on memory ports for the engine tests.
//!
//! ```text
//!  host1 ── lan ── r1 ── wan ── (relay) ── wan ── r2 ── lan ── host5
//! ```
//!
//! The relay copies each WAN frame between the routers' WAN ports, so a test can record,
//! alter, repeat or drop what crosses. Frames are built here by hand, independently of the
//! header code under test.

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use svr_dataplane::crypto::{MetadataKeys, MetadataSecret, PairKeys, PairSecret, Suite};
use svr_dataplane::epoch::{
    EpochPublisher, Interface, InterfaceRole, KeyEpoch, NextHop, Path, Peer, Service,
    ServicePrefix, ServiceRoute, epoch_channel,
};
use svr_dataplane::forward::EngineConfig;
use svr_dataplane::io::mem::{MemConfig, MemPort, mem_pair};
use svr_dataplane::io::{Burst, PacketIo};
use svr_dataplane::worker::{ControlQueues, Polling, Worker, WorkerConfig};

pub const HOST1: Ipv4Addr = Ipv4Addr::new(10, 201, 1, 10);
pub const HOST5: Ipv4Addr = Ipv4Addr::new(10, 201, 5, 10);
pub const HOST1_V6: Ipv6Addr = Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 0x10);
pub const HOST5_V6: Ipv6Addr = Ipv6Addr::new(0xfd05, 0, 0, 0, 0, 0, 0, 0x10);
pub const R1_WAYPOINT: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 1);
pub const R2_WAYPOINT: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 2);

/// The routers' own addresses on their LANs.
pub const R1_LAN_V4: Ipv4Addr = Ipv4Addr::new(10, 201, 1, 1);
pub const R1_LAN_V6: Ipv6Addr = Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 1);
pub const R2_LAN_V4: Ipv4Addr = Ipv4Addr::new(10, 201, 5, 1);
pub const R2_LAN_V6: Ipv6Addr = Ipv6Addr::new(0xfd05, 0, 0, 0, 0, 0, 0, 1);

pub const HOST1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x10];
pub const R1_LAN_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
pub const R1_WAN_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
pub const R2_WAN_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];
pub const R2_LAN_MAC: [u8; 6] = [2, 0, 0, 0, 5, 1];
pub const HOST5_MAC: [u8; 6] = [2, 0, 0, 0, 5, 0x10];

pub const LAN: u16 = 0;
pub const WAN: u16 = 1;
pub const GRACE: Duration = Duration::from_millis(200);

/// Derives a router's metadata key from a one-byte pattern.
pub fn metadata_key(index: u32, byte: u8) -> MetadataKeys {
    MetadataKeys::derive(index, Suite::AesCbc256HmacSha384, &MetadataSecret::from_bytes([byte; 32]))
}

/// The pair keys of `local` towards `peer`, from the secret r1 and r2 share.
pub fn pair_keys(local: &str, peer: &str) -> PairKeys {
    PairKeys::derive(Suite::AesCbc256HmacSha384, &PairSecret::from_bytes([0x12; 32]), local, peer)
}

/// Builds the epoch of r1 (`ingress`) or r2.
pub fn router_epoch(name: &str, ingress: bool) -> KeyEpoch {
    let (lan_v4, lan_v6) = if ingress { (R1_LAN_V4, R1_LAN_V6) } else { (R2_LAN_V4, R2_LAN_V6) };
    let (own, peer_key, local, peer, lan_mac, wan_mac, peer_mac, host, host_v6, host_mac) =
        if ingress {
            (
                metadata_key(1, 0x11),
                metadata_key(7, 0x22),
                R1_WAYPOINT,
                R2_WAYPOINT,
                R1_LAN_MAC,
                R1_WAN_MAC,
                R2_WAN_MAC,
                HOST1,
                HOST1_V6,
                HOST1_MAC,
            )
        } else {
            (
                metadata_key(7, 0x22),
                metadata_key(1, 0x11),
                R2_WAYPOINT,
                R1_WAYPOINT,
                R2_LAN_MAC,
                R2_WAN_MAC,
                R1_WAN_MAC,
                HOST5,
                HOST5_V6,
                HOST5_MAC,
            )
        };
    let next_hop =
        if ingress { NextHop::Peer(0) } else { NextHop::Local { interface: LAN, gateway: None } };
    let mut neighbours = std::collections::HashMap::new();
    neighbours.insert((WAN, IpAddr::V4(peer)), peer_mac);
    neighbours.insert((LAN, IpAddr::V4(host)), host_mac);
    neighbours.insert((LAN, IpAddr::V6(host_v6)), host_mac);
    KeyEpoch {
        generation: 1,
        router: name.into(),
        own_metadata_keys: vec![own],
        peers: vec![Peer {
            name: if ingress { "r2".into() } else { "r1".into() },
            metadata_keys: Some(peer_key),
            pair_keys: vec![if ingress { pair_keys("r1", "r2") } else { pair_keys("r2", "r1") }],
            paths: vec![Path {
                interface: WAN,
                local: local.into(),
                peer: peer.into(),
                gateway: None,
                in_service: true,
            }],
        }],
        tenants: vec!["corp".into()],
        services: vec![Service {
            name: "web".into(),
            tenants: vec![0],
            prefixes: vec![
                ServicePrefix {
                    address: Ipv4Addr::new(10, 201, 5, 0).into(),
                    len: 24,
                    protocol: None,
                    ports: None,
                },
                ServicePrefix {
                    address: Ipv6Addr::new(0xfd05, 0, 0, 0, 0, 0, 0, 0).into(),
                    len: 64,
                    protocol: None,
                    ports: None,
                },
            ],
            encrypt: true,
        }],
        service_routes: vec![ServiceRoute { service: 0, next_hop }],
        interfaces: vec![
            Interface {
                mac: lan_mac,
                role: InterfaceRole::Lan { tenant: 0 },
                ipv4: Some(lan_v4),
                ipv6: Some(lan_v6),
            },
            Interface { mac: wan_mac, role: InterfaceRole::Wan, ipv4: Some(local), ipv6: None },
        ],
        neighbours,
    }
}

/// Adds a second path over the WAN port, with waypoints 10.202.1.x, to a router's epoch,
/// with path `down` (0 or 1) out of service if one is given.
pub fn with_second_path(mut epoch: KeyEpoch, ingress: bool, down: Option<usize>) -> KeyEpoch {
    let (local, peer, peer_mac) = if ingress {
        ([10, 202, 1, 1], [10, 202, 1, 2], R2_WAN_MAC)
    } else {
        ([10, 202, 1, 2], [10, 202, 1, 1], R1_WAN_MAC)
    };
    let mut path = epoch.peers[0].paths[0].clone();
    path.local = Ipv4Addr::from(local).into();
    path.peer = Ipv4Addr::from(peer).into();
    epoch.peers[0].paths.push(path);
    if let Some(down) = down {
        epoch.peers[0].paths[down].in_service = false;
    }
    epoch.neighbours.insert((WAN, Ipv4Addr::from(peer).into()), peer_mac);
    epoch.generation += 1;
    epoch
}

/// What the relay does to one WAN frame.
pub enum Fate {
    Deliver,
    Drop,
}

/// The two routers, their hosts and the relayed WAN link.
pub struct Net {
    pub r1: Worker,
    pub r2: Worker,
    pub r1_epoch: EpochPublisher,
    pub r2_epoch: EpochPublisher,
    pub r1_control: Arc<ControlQueues>,
    pub r2_control: Arc<ControlQueues>,
    pub host1: MemPort,
    pub host5: MemPort,
    /// r1's side of the WAN relay.
    pub wire1: MemPort,
    /// r2's side of the WAN relay.
    pub wire2: MemPort,
    /// Every WAN frame relayed, with its direction (true for r1 to r2).
    pub captured: Vec<(bool, Vec<u8>)>,
    pub now: Instant,
}

fn worker(
    epoch: KeyEpoch,
    lan: MemPort,
    wan: MemPort,
    configure: &dyn Fn(&mut EngineConfig),
) -> (Worker, EpochPublisher, Arc<ControlQueues>) {
    let (publisher, reader) = epoch_channel(epoch);
    let control = Arc::new(ControlQueues::new(16, 2048));
    let mut engine = EngineConfig {
        sessions: 1024,
        rotation_grace: GRACE,
        idle_timeout: Duration::from_secs(60),
        ..EngineConfig::default()
    };
    configure(&mut engine);
    let config = WorkerConfig {
        engine,
        polling: Polling::Adaptive { empty_polls: 8, sleep: Duration::from_millis(1) },
        core: None,
        sweep_budget: 16,
    };
    let worker =
        Worker::new(config, vec![Box::new(lan), Box::new(wan)], reader, Arc::clone(&control));
    (worker, publisher, control)
}

impl Net {
    pub fn new() -> Net {
        Net::with_engine(|_| {})
    }

    /// Two routers whose engine settings `configure` changes from the defaults.
    pub fn with_engine(configure: impl Fn(&mut EngineConfig)) -> Net {
        let config = MemConfig { frames: 4096, frame_size: 2048, ring_size: 1024 };
        let (host1, r1_lan) = mem_pair(&config).unwrap();
        let (r1_wan, wire1) = mem_pair(&config).unwrap();
        let (wire2, r2_wan) = mem_pair(&config).unwrap();
        let (r2_lan, host5) = mem_pair(&config).unwrap();
        let (r1, r1_epoch, r1_control) =
            worker(router_epoch("r1", true), r1_lan, r1_wan, &configure);
        let (r2, r2_epoch, r2_control) =
            worker(router_epoch("r2", false), r2_lan, r2_wan, &configure);
        Net {
            r1,
            r2,
            r1_epoch,
            r2_epoch,
            r1_control,
            r2_control,
            host1,
            host5,
            wire1,
            wire2,
            captured: Vec::new(),
            now: Instant::now(),
        }
    }

    /// Sends `frame` from a host.
    pub fn send(port: &mut MemPort, frame: &[u8]) {
        let mut out = port.alloc().unwrap();
        out.copy_from(frame).unwrap();
        let mut burst = Burst::new();
        burst.push(out).unwrap();
        assert_eq!(port.tx_burst(&mut burst).unwrap(), 1);
    }

    pub fn send_from_host1(&mut self, frame: &[u8]) {
        Net::send(&mut self.host1, frame);
    }

    pub fn send_from_host5(&mut self, frame: &[u8]) {
        Net::send(&mut self.host5, frame);
    }

    /// Runs both routers and the relay until nothing moves, with every WAN frame delivered.
    pub fn run(&mut self) {
        self.run_with(|_, _| Fate::Deliver);
    }

    /// Runs both routers until nothing moves. `relay` may change or drop each WAN frame.
    pub fn run_with(&mut self, mut relay: impl FnMut(bool, &mut Vec<u8>) -> Fate) {
        for _ in 0..100 {
            let mut moved = self.r1.poll_once(self.now);
            moved += relay_frames(
                &mut self.wire1,
                &mut self.wire2,
                true,
                &mut self.captured,
                &mut relay,
            );
            moved += self.r2.poll_once(self.now);
            moved += relay_frames(
                &mut self.wire2,
                &mut self.wire1,
                false,
                &mut self.captured,
                &mut relay,
            );
            if moved == 0 && self.wire1.rx_pending() == 0 && self.wire2.rx_pending() == 0 {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Relays the WAN frames waiting in both directions once, without running the routers.
    pub fn relay(&mut self) -> usize {
        let mut deliver = |_: bool, _: &mut Vec<u8>| Fate::Deliver;
        let forward =
            relay_frames(&mut self.wire1, &mut self.wire2, true, &mut self.captured, &mut deliver);
        let reverse =
            relay_frames(&mut self.wire2, &mut self.wire1, false, &mut self.captured, &mut deliver);
        forward + reverse
    }

    /// Frames waiting at a host.
    pub fn receive(port: &mut MemPort) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let mut burst = Burst::new();
        while port.rx_burst(&mut burst).unwrap() > 0 {
            for frame in burst.drain() {
                frames.push(frame.data().to_vec());
                port.free(frame);
            }
        }
        frames
    }

    pub fn at_host5(&mut self) -> Vec<Vec<u8>> {
        Net::receive(&mut self.host5)
    }

    pub fn at_host1(&mut self) -> Vec<Vec<u8>> {
        Net::receive(&mut self.host1)
    }
}

fn relay_frames(
    from: &mut MemPort,
    to: &mut MemPort,
    forward: bool,
    captured: &mut Vec<(bool, Vec<u8>)>,
    relay: &mut impl FnMut(bool, &mut Vec<u8>) -> Fate,
) -> usize {
    let mut burst = Burst::new();
    let mut moved = 0;
    while from.rx_burst(&mut burst).unwrap() > 0 {
        for frame in burst.drain() {
            let mut bytes = frame.data().to_vec();
            from.free(frame);
            captured.push((forward, bytes.clone()));
            moved += 1;
            if let Fate::Deliver = relay(forward, &mut bytes) {
                Net::send(to, &bytes);
            }
        }
    }
    moved
}

/// RFC 1071 checksum, written apart from the crate's.
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    // Every caller passes parts of even length but the last, so concatenating them keeps
    // the 16-bit words aligned.
    let bytes: Vec<u8> = parts.concat();
    for chunk in bytes.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from(chunk[0]) << 8
        };
        sum += u64::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builds an Ethernet frame with an IPv4 header and `l4` as its payload, and fills in the
/// L4 checksum at `checksum_at` if given.
pub fn ipv4_frame(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    identification: u16,
    mut l4: Vec<u8>,
    checksum_at: Option<usize>,
) -> Vec<u8> {
    if let Some(at) = checksum_at {
        l4[at..at + 2].fill(0);
        let len = (l4.len() as u16).to_be_bytes();
        let sum = if protocol == 1 {
            internet_checksum(&[&l4])
        } else {
            internet_checksum(&[&source.octets(), &destination.octets(), &[0, protocol], &len, &l4])
        };
        l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }
    let mut frame = Vec::new();
    frame.extend_from_slice(&R1_LAN_MAC);
    frame.extend_from_slice(&HOST1_MAC);
    frame.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    let mut ip = vec![0x45, 0x10];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&identification.to_be_bytes());
    ip.extend_from_slice(&[0x40, 0x00, ttl, protocol, 0, 0]);
    ip.extend_from_slice(&source.octets());
    ip.extend_from_slice(&destination.octets());
    let sum = internet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&l4);
    frame
}

/// Builds an IPv6 frame with `l4` as its payload and fills in the L4 checksum at
/// `checksum_at`.
pub fn ipv6_frame(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    protocol: u8,
    hop_limit: u8,
    mut l4: Vec<u8>,
    checksum_at: usize,
) -> Vec<u8> {
    l4[checksum_at..checksum_at + 2].fill(0);
    let len = (l4.len() as u32).to_be_bytes();
    let sum = internet_checksum(&[
        &source.octets(),
        &destination.octets(),
        &len,
        &[0, 0, 0, protocol],
        &l4,
    ]);
    l4[checksum_at..checksum_at + 2].copy_from_slice(&sum.to_be_bytes());
    let mut frame = Vec::new();
    frame.extend_from_slice(&R1_LAN_MAC);
    frame.extend_from_slice(&HOST1_MAC);
    frame.extend_from_slice(&[0x86, 0xdd]);
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[protocol, hop_limit]);
    frame.extend_from_slice(&source.octets());
    frame.extend_from_slice(&destination.octets());
    frame.extend_from_slice(&l4);
    frame
}

/// Builds a UDP message with a zero checksum.
pub fn udp(source_port: u16, destination_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&source_port.to_be_bytes());
    l4.extend_from_slice(&destination_port.to_be_bytes());
    l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(payload);
    l4
}

/// Builds an IPv4 UDP frame from `source` to `destination`.
pub fn udp_v4(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    ports: (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    ipv4_frame(source, destination, 17, 64, 0x1234, udp(ports.0, ports.1, payload), Some(6))
}

/// Rewrites the MACs of `frame` to those of r2's LAN, as host5 would send it.
pub fn from_host5(mut frame: Vec<u8>) -> Vec<u8> {
    frame[0..6].copy_from_slice(&R2_LAN_MAC);
    frame[6..12].copy_from_slice(&HOST5_MAC);
    frame
}

/// Checks that `restored` is `original` after two router hops: MACs of the last hop, TTL
/// two lower, header checksum valid, every other byte equal.
pub fn assert_restored(
    original: &[u8],
    restored: &[u8],
    source_mac: [u8; 6],
    destination_mac: [u8; 6],
) {
    assert_eq!(restored.len(), original.len(), "length differs");
    assert_eq!(restored[0..6], destination_mac, "destination mac");
    assert_eq!(restored[6..12], source_mac, "source mac");
    let (ttl_at, checksum_at) =
        if original[12..14] == [0x08, 0x00] { (22, Some(24)) } else { (21, None) };
    assert_eq!(restored[ttl_at], original[ttl_at] - 2, "ttl not decremented by two");
    let mut expected = original.to_vec();
    let mut actual = restored.to_vec();
    for bytes in [&mut expected, &mut actual] {
        bytes[0..12].fill(0);
        bytes[ttl_at] = 0;
        if let Some(at) = checksum_at {
            bytes[at..at + 2].fill(0);
        }
    }
    assert_eq!(actual, expected, "restored packet differs beyond ttl and checksums");
    if checksum_at.is_some() {
        assert_eq!(internet_checksum(&[&restored[14..34]]), 0, "ipv4 header checksum");
    }
}

/// Returns the UDP payload of a WAN frame with an outer IPv4 header.
pub fn wan_payload(frame: &[u8]) -> &[u8] {
    &frame[14 + 20 + 8..]
}
