//! Three routers with real crypto on memory ports, a hub between two spokes:
//!
//! ```text
//!  host1 ── lan ── spoke1 ── wan ── hub ── wan ── spoke2 ── lan ── host5
//! ```
//!
//! spoke1's service to host5's network routes to the hub, and the hub's routes it on to
//! spoke2. The hub forwards the session without ending it: packets without metadata leave
//! it with the UDP payload they arrived with, and forged or replayed packets stop there.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]
#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]

mod engine_support;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_support::{
    GRACE, HOST1, HOST1_MAC, HOST5, HOST5_MAC, R1_LAN_MAC, R2_LAN_MAC, from_host5,
    internet_checksum, metadata_key, udp_v4, wan_payload,
};
use svr_dataplane::counters::DropReason;
use svr_dataplane::crypto::{PairKeys, PairSecret, Suite};
use svr_dataplane::epoch::{
    EpochPublisher, Interface, InterfaceRole, KeyEpoch, NextHop, Path, Peer, Service,
    ServicePrefix, ServiceRoute, epoch_channel,
};
use svr_dataplane::forward::{Engine, EngineConfig};
use svr_dataplane::group::{GroupConfig, WorkerGroup};
use svr_dataplane::handoff::HandoffConfig;
use svr_dataplane::io::mem::{MemConfig, MemPort, mem_pair};
use svr_dataplane::io::{Burst, PacketIo};
use svr_dataplane::packet::COOKIE;
use svr_dataplane::worker::{ControlQueues, Polling, Port, Worker, WorkerConfig};

const SPOKE1_WAYPOINT: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 1);
const HUB_WAYPOINT_A: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 3);
const HUB_WAYPOINT_B: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 3);
const SPOKE2_WAYPOINT: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 2);
/// The hub's and spoke2's waypoints of their second path.
const HUB_WAYPOINT_B2: Ipv4Addr = Ipv4Addr::new(10, 203, 1, 3);
const SPOKE2_WAYPOINT2: Ipv4Addr = Ipv4Addr::new(10, 203, 1, 2);

const SPOKE1_WAN_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
const HUB_A_MAC: [u8; 6] = [2, 0, 0, 0, 2, 3];
const HUB_B_MAC: [u8; 6] = [2, 0, 0, 0, 3, 3];
const SPOKE2_WAN_MAC: [u8; 6] = [2, 0, 0, 0, 3, 2];
const HUB_LAN_MAC: [u8; 6] = [2, 0, 0, 0, 9, 3];
/// The hub's LAN port.
const HUB_LAN: u16 = 2;

/// Length of the trailer (sequence field and HMAC-SHA-384 tag).
const TRAILER_LEN: usize = 8 + 48;

/// Derives the pair keys of `local` towards `peer`. Each peering has its own secret.
fn pair_keys(local: &str, peer: &str, secret: u8) -> PairKeys {
    PairKeys::derive(Suite::AesCbc256HmacSha384, &PairSecret::from_bytes([secret; 32]), local, peer)
}

fn path(interface: u16, local: Ipv4Addr, peer: Ipv4Addr) -> Path {
    Path { interface, local: local.into(), peer: peer.into(), gateway: None, in_service: true }
}

fn service(next_hop: NextHop) -> (Vec<Service>, Vec<ServiceRoute>) {
    let web = Service {
        name: "web".into(),
        tenants: vec![0],
        prefixes: vec![ServicePrefix {
            address: Ipv4Addr::new(10, 201, 5, 0).into(),
            len: 24,
            protocol: None,
            ports: None,
        }],
        encrypt: true,
    };
    (vec![web], vec![ServiceRoute { service: 0, next_hop }])
}

fn spoke1_epoch() -> KeyEpoch {
    let (services, service_routes) = service(NextHop::Peer(0));
    let mut neighbours = HashMap::new();
    neighbours.insert((1, IpAddr::V4(HUB_WAYPOINT_A)), HUB_A_MAC);
    neighbours.insert((0, IpAddr::V4(HOST1)), HOST1_MAC);
    KeyEpoch {
        generation: 1,
        router: "spoke1".into(),
        own_metadata_keys: vec![metadata_key(1, 0x11)],
        peers: vec![Peer {
            name: "hub".into(),
            metadata_keys: Some(metadata_key(3, 0x33)),
            pair_keys: vec![pair_keys("spoke1", "hub", 0x13)],
            paths: vec![path(1, SPOKE1_WAYPOINT, HUB_WAYPOINT_A)],
        }],
        tenants: vec!["corp".into()],
        services,
        service_routes,
        interfaces: vec![
            Interface {
                mac: R1_LAN_MAC,
                role: InterfaceRole::Lan { tenant: 0 },
                ipv4: None,
                ipv6: None,
            },
            Interface { mac: SPOKE1_WAN_MAC, role: InterfaceRole::Wan, ipv4: None, ipv6: None },
        ],
        neighbours,
    }
}

/// Builds the hub's epoch. With `second_path` it has a second path to spoke2, and
/// `first_up` sets whether the first one is in service.
fn hub_epoch(second_path: bool, first_up: bool) -> KeyEpoch {
    let (services, service_routes) = service(NextHop::Peer(1));
    let mut neighbours = HashMap::new();
    neighbours.insert((0, IpAddr::V4(SPOKE1_WAYPOINT)), SPOKE1_WAN_MAC);
    neighbours.insert((1, IpAddr::V4(SPOKE2_WAYPOINT)), SPOKE2_WAN_MAC);
    neighbours.insert((1, IpAddr::V4(SPOKE2_WAYPOINT2)), SPOKE2_WAN_MAC);
    let mut spoke2_paths = vec![path(1, HUB_WAYPOINT_B, SPOKE2_WAYPOINT)];
    spoke2_paths[0].in_service = first_up;
    if second_path {
        spoke2_paths.push(path(1, HUB_WAYPOINT_B2, SPOKE2_WAYPOINT2));
    }
    KeyEpoch {
        generation: 1 + u64::from(second_path) + u64::from(!first_up),
        router: "hub".into(),
        own_metadata_keys: vec![metadata_key(3, 0x33)],
        peers: vec![
            Peer {
                name: "spoke1".into(),
                metadata_keys: Some(metadata_key(1, 0x11)),
                pair_keys: vec![pair_keys("hub", "spoke1", 0x13)],
                paths: vec![path(0, HUB_WAYPOINT_A, SPOKE1_WAYPOINT)],
            },
            Peer {
                name: "spoke2".into(),
                metadata_keys: Some(metadata_key(7, 0x22)),
                pair_keys: vec![pair_keys("hub", "spoke2", 0x23)],
                paths: spoke2_paths,
            },
        ],
        tenants: vec!["corp".into()],
        services,
        service_routes,
        interfaces: vec![
            Interface { mac: HUB_A_MAC, role: InterfaceRole::Wan, ipv4: None, ipv6: None },
            Interface { mac: HUB_B_MAC, role: InterfaceRole::Wan, ipv4: None, ipv6: None },
            Interface {
                mac: HUB_LAN_MAC,
                role: InterfaceRole::Lan { tenant: 0 },
                ipv4: None,
                ipv6: None,
            },
        ],
        neighbours,
    }
}

fn spoke2_epoch(second_path: bool) -> KeyEpoch {
    let (services, service_routes) = service(NextHop::Local { interface: 0, gateway: None });
    let mut neighbours = HashMap::new();
    neighbours.insert((1, IpAddr::V4(HUB_WAYPOINT_B)), HUB_B_MAC);
    neighbours.insert((1, IpAddr::V4(HUB_WAYPOINT_B2)), HUB_B_MAC);
    neighbours.insert((0, IpAddr::V4(HOST5)), HOST5_MAC);
    let mut paths = vec![path(1, SPOKE2_WAYPOINT, HUB_WAYPOINT_B)];
    if second_path {
        paths.push(path(1, SPOKE2_WAYPOINT2, HUB_WAYPOINT_B2));
    }
    KeyEpoch {
        generation: 1,
        router: "spoke2".into(),
        own_metadata_keys: vec![metadata_key(7, 0x22)],
        peers: vec![Peer {
            name: "hub".into(),
            metadata_keys: Some(metadata_key(3, 0x33)),
            pair_keys: vec![pair_keys("spoke2", "hub", 0x23)],
            paths,
        }],
        tenants: vec!["corp".into()],
        services,
        service_routes,
        interfaces: vec![
            Interface {
                mac: R2_LAN_MAC,
                role: InterfaceRole::Lan { tenant: 0 },
                ipv4: None,
                ipv6: None,
            },
            Interface { mac: SPOKE2_WAN_MAC, role: InterfaceRole::Wan, ipv4: None, ipv6: None },
        ],
        neighbours,
    }
}

fn worker_config() -> WorkerConfig {
    WorkerConfig {
        engine: EngineConfig {
            sessions: 1024,
            rotation_grace: GRACE,
            idle_timeout: Duration::from_secs(60),
            ..EngineConfig::default()
        },
        polling: Polling::Adaptive { empty_polls: 8, sleep: Duration::from_millis(1) },
        core: None,
        sweep_budget: 1024,
    }
}

fn worker(epoch: KeyEpoch, lan: MemPort, wan: MemPort) -> (Worker, EpochPublisher) {
    let (publisher, reader) = epoch_channel(epoch);
    let control = Arc::new(ControlQueues::new(16, 2048));
    let worker = Worker::new(worker_config(), vec![Box::new(lan), Box::new(wan)], reader, control);
    (worker, publisher)
}

/// Runs the hub with `workers` workers. With more than one, each of its ports is polled
/// by its own worker, so packets of one session are handed between workers.
fn hub_group(
    epoch: KeyEpoch,
    ports: Vec<MemPort>,
    workers: usize,
) -> (WorkerGroup, EpochPublisher) {
    let (publisher, reader) = epoch_channel(epoch);
    let control = Arc::new(ControlQueues::new(16, 2048));
    let config = GroupConfig {
        worker: worker_config(),
        workers,
        cores: vec![],
        handoff: HandoffConfig::default(),
        port_owners: (workers > 1).then(|| (0..ports.len()).map(|i| i % workers).collect()),
    };
    let ports: Vec<Port> = ports.into_iter().map(|port| Box::new(port) as Port).collect();
    (WorkerGroup::new(&config, ports, &reader, &control).unwrap(), publisher)
}

/// Which of the hub's WAN links a captured frame crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// Between spoke1 and the hub.
    A,
    /// Between the hub and spoke2.
    B,
}

/// One WAN frame seen on a link, with its direction (true from spoke1 towards spoke2).
struct Captured {
    link: Link,
    forward: bool,
    frame: Vec<u8>,
}

struct Net {
    spoke1: Worker,
    hub: WorkerGroup,
    spoke2: Worker,
    spoke1_epoch: EpochPublisher,
    hub_epoch: EpochPublisher,
    spoke2_epoch: EpochPublisher,
    host1: MemPort,
    host5: MemPort,
    /// A host on the hub's LAN port.
    hub_host: MemPort,
    /// The ends of link A at spoke1 and at the hub, and of link B at the hub and spoke2.
    a_spoke: MemPort,
    a_hub: MemPort,
    b_hub: MemPort,
    b_spoke: MemPort,
    captured: Vec<Captured>,
    now: Instant,
}

impl Net {
    fn new() -> Net {
        Net::with(false, 1)
    }

    /// Three routers; with `second_path` the hub and spoke2 have a second path. The hub
    /// runs `hub_workers` workers.
    fn with(second_path: bool, hub_workers: usize) -> Net {
        let config = MemConfig { frames: 4096, frame_size: 2048, ring_size: 1024 };
        let (host1, spoke1_lan) = mem_pair(&config).unwrap();
        let (spoke1_wan, a_spoke) = mem_pair(&config).unwrap();
        let (a_hub, hub_a) = mem_pair(&config).unwrap();
        let (hub_b, b_hub) = mem_pair(&config).unwrap();
        let (b_spoke, spoke2_wan) = mem_pair(&config).unwrap();
        let (spoke2_lan, host5) = mem_pair(&config).unwrap();
        let (hub_lan, hub_host) = mem_pair(&config).unwrap();
        let (spoke1, spoke1_epoch) = worker(spoke1_epoch(), spoke1_lan, spoke1_wan);
        let hub_ports = vec![hub_a, hub_b, hub_lan];
        let (hub, hub_epoch) = hub_group(hub_epoch(second_path, true), hub_ports, hub_workers);
        let (spoke2, spoke2_epoch) = worker(spoke2_epoch(second_path), spoke2_lan, spoke2_wan);
        Net {
            spoke1,
            hub,
            spoke2,
            spoke1_epoch,
            hub_epoch,
            spoke2_epoch,
            host1,
            host5,
            hub_host,
            a_spoke,
            a_hub,
            b_hub,
            b_spoke,
            captured: Vec::new(),
            now: Instant::now(),
        }
    }

    fn send(port: &mut MemPort, frame: &[u8]) {
        let mut out = port.alloc().unwrap();
        out.copy_from(frame).unwrap();
        let mut burst = Burst::new();
        burst.push(out).unwrap();
        assert_eq!(port.tx_burst(&mut burst).unwrap(), 1);
    }

    fn receive(port: &mut MemPort) -> Vec<Vec<u8>> {
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

    /// Copies the frames waiting at `from` to `to`, recording each.
    fn relay(&mut self, link: Link, forward: bool) -> usize {
        let (from, to) = match (link, forward) {
            (Link::A, true) => (&mut self.a_spoke, &mut self.a_hub),
            (Link::A, false) => (&mut self.a_hub, &mut self.a_spoke),
            (Link::B, true) => (&mut self.b_hub, &mut self.b_spoke),
            (Link::B, false) => (&mut self.b_spoke, &mut self.b_hub),
        };
        let frames = Net::receive(from);
        for frame in &frames {
            Net::send(to, frame);
        }
        let moved = frames.len();
        self.captured.extend(frames.into_iter().map(|frame| Captured { link, forward, frame }));
        moved
    }

    /// Runs the three routers and both links until nothing moves.
    fn run(&mut self) {
        for _ in 0..100 {
            let mut moved = self.spoke1.poll_once(self.now);
            moved += self.relay(Link::A, true);
            moved += self.hub.poll_once(self.now);
            moved += self.relay(Link::B, true);
            moved += self.spoke2.poll_once(self.now);
            moved += self.relay(Link::B, false);
            moved += self.hub.poll_once(self.now);
            moved += self.relay(Link::A, false);
            if moved == 0 {
                return;
            }
        }
        panic!("network did not settle");
    }

    fn frames(&self, link: Link, forward: bool) -> Vec<Vec<u8>> {
        self.captured
            .iter()
            .filter(|c| c.link == link && c.forward == forward)
            .map(|c| c.frame.clone())
            .collect()
    }

    fn request(&mut self, payload: &[u8]) {
        Net::send(&mut self.host1, &udp_v4(HOST1, HOST5, (40000, 5201), payload));
        self.run();
    }

    fn reply(&mut self, payload: &[u8]) {
        Net::send(&mut self.host5, &from_host5(udp_v4(HOST5, HOST1, (5201, 40000), payload)));
        self.run();
    }

    /// The engine of the hub's first worker, the only one unless a test requests more.
    fn hub_engine(&mut self) -> &mut Engine {
        self.hub.workers()[0].engine()
    }

    /// Injects `frame` into the hub's port on link A, as if spoke1 had sent it.
    fn inject_at_hub(&mut self, frame: &[u8]) {
        Net::send(&mut self.a_hub, frame);
        self.run();
    }
}

fn has_metadata(frame: &[u8]) -> bool {
    wan_payload(frame).starts_with(&COOKIE)
}

/// Returns the UDP payload of a host frame (IPv4 without options).
fn host_payload(frame: &[u8]) -> &[u8] {
    &frame[14 + 20 + 8..]
}

/// Returns a WAN frame's carried payload and sequence field: everything between the
/// metadata and the tag.
fn carried_and_sequence(frame: &[u8]) -> Vec<u8> {
    let payload = wan_payload(frame);
    let body = &payload[..payload.len() - 48];
    if !body.starts_with(&COOKIE) {
        return body.to_vec();
    }
    let header_len = usize::from(u16::from_be_bytes([body[8], body[9]]) & 0x0fff);
    let section_len = usize::from(u16::from_be_bytes([body[10], body[11]]));
    body[header_len + section_len..].to_vec()
}

/// Recomputes the outer IPv4 header and UDP checksums of a WAN frame after a test changed
/// it, so that only the SVR layer can notice the change.
fn fix_checksums(frame: &mut [u8]) {
    frame[24..26].fill(0);
    let sum = internet_checksum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    frame[40..42].fill(0);
    let udp_len = ((frame.len() - 34) as u16).to_be_bytes();
    let sum = internet_checksum(&[&frame[26..34], &[0, 17], &udp_len, &frame[34..]]);
    frame[40..42].copy_from_slice(&sum.to_be_bytes());
}

fn ports(frame: &[u8]) -> (u16, u16) {
    (u16::from_be_bytes([frame[34], frame[35]]), u16::from_be_bytes([frame[36], frame[37]]))
}

#[test]
fn transit_udp_both_ways() {
    let mut net = Net::new();
    net.request(b"request one");
    net.reply(b"reply one");
    for i in 0..3u8 {
        net.request(&[b'q', i]);
        net.reply(&[b'r', i]);
    }

    let at_host5 = Net::receive(&mut net.host5);
    let at_host1 = Net::receive(&mut net.host1);
    assert_eq!(at_host5.len(), 4);
    assert_eq!(at_host1.len(), 4);
    assert_eq!(host_payload(&at_host5[0]), b"request one");
    assert_eq!(host_payload(&at_host1[0]), b"reply one");
    assert_eq!(host_payload(&at_host5[3]), b"q\x02");
    assert_eq!(host_payload(&at_host1[3]), b"r\x02");
    // Three router hops: spoke1, hub and spoke2 each take one off the TTL of 64.
    assert_eq!(at_host5[0][22], 61, "ttl at host5");
    assert_eq!(internet_checksum(&[&at_host5[0][14..34]]), 0, "ipv4 header checksum");
    assert_eq!(at_host5[0][26..34], [HOST1.octets(), HOST5.octets()].concat());

    for forward in [true, false] {
        let on_a = net.frames(Link::A, forward);
        let on_b = net.frames(Link::B, forward);
        assert_eq!(on_a.len(), 4, "frames on link a, forward {forward}");
        assert_eq!(on_b.len(), 4, "frames on link b, forward {forward}");
        for (a, b) in on_a.iter().zip(&on_b) {
            assert_eq!(has_metadata(a), has_metadata(b), "metadata passes through");
            assert_eq!(carried_and_sequence(a), carried_and_sequence(b), "carried payload");
            if !has_metadata(a) {
                assert_eq!(
                    wan_payload(a),
                    wan_payload(b),
                    "udp payload of a packet without metadata"
                );
            } else {
                assert_ne!(wan_payload(a), wan_payload(b), "metadata is sealed again");
            }
        }
    }
    let frames_b = net.frames(Link::B, true);
    assert_eq!(frames_b[0][26..34], [HUB_WAYPOINT_B.octets(), SPOKE2_WAYPOINT.octets()].concat());
    let (hub_port, spoke2_port) = ports(&frames_b[0]);
    assert_eq!(hub_port % 2, 0, "the hub allocates an even port");
    assert_eq!(spoke2_port, hub_port + 1);
    let frames_a = net.frames(Link::A, false);
    assert_eq!(frames_a[0][26..34], [HUB_WAYPOINT_A.octets(), SPOKE1_WAYPOINT.octets()].concat());

    let hub = net.hub_engine();
    assert_eq!(hub.counters().total_drops(), 0);
    assert_eq!(hub.counters().transit_forwarded, 8);
    assert_eq!(hub.counters().egress_forwarded, 0);
    assert_eq!(hub.counters().sessions_created, 1);
    assert_eq!(hub.sessions().len(), 2, "one leg per peer");
    assert_eq!(net.spoke1.engine().counters().total_drops(), 0);
    assert_eq!(net.spoke2.engine().counters().total_drops(), 0);
}

#[test]
fn transit_handshake_end_to_end() {
    let mut net = Net::new();
    net.request(b"one");
    net.request(b"two");
    net.reply(b"reply");
    net.request(b"three");
    net.reply(b"reply two");

    let forward_b = net.frames(Link::B, true);
    let reverse_a = net.frames(Link::A, false);
    assert!(has_metadata(&forward_b[0]), "first forward packet carries metadata");
    assert!(has_metadata(&forward_b[1]), "forward metadata until the reply");
    assert!(has_metadata(&reverse_a[0]), "reverse metadata reaches spoke1");
    assert!(!has_metadata(&forward_b[2]), "forward metadata stops after the reply");
    assert!(!has_metadata(&reverse_a[1]), "reverse metadata stops");
    assert_eq!(Net::receive(&mut net.host5).len(), 3);
    assert_eq!(Net::receive(&mut net.host1).len(), 2);
}

#[test]
fn transit_forged_packet_dropped() {
    let mut net = Net::new();
    net.request(b"one");
    net.reply(b"reply");
    net.request(b"after the handshake");
    let plain = net.frames(Link::A, true)[1].clone();
    assert!(!has_metadata(&plain));
    let forwarded = net.frames(Link::B, true).len();

    // A packet number the hub has not seen gets past the replay check, but not the tag.
    let number_at = plain.len() - 48 - 1;
    let mut forged = plain.clone();
    forged[number_at] = forged[number_at].wrapping_add(100);
    forged[14 + 20 + 8 + 3] ^= 0x01;
    fix_checksums(&mut forged);
    net.inject_at_hub(&forged);
    assert_eq!(net.hub_engine().counters().drops(DropReason::BadTag), 1);
    assert_eq!(net.frames(Link::B, true).len(), forwarded, "nothing forwarded");

    let mut bad_tag = plain.clone();
    bad_tag[number_at] = bad_tag[number_at].wrapping_add(101);
    let len = bad_tag.len();
    bad_tag[len - 1] ^= 0x80;
    fix_checksums(&mut bad_tag);
    net.inject_at_hub(&bad_tag);
    assert_eq!(net.hub_engine().counters().drops(DropReason::BadTag), 2);
    assert_eq!(net.frames(Link::B, true).len(), forwarded);
    assert_eq!(net.hub_engine().counters().drops(DropReason::Replay), 0);
    assert_eq!(Net::receive(&mut net.host5).len(), 2);
}

#[test]
fn transit_replay_dropped() {
    let mut net = Net::new();
    net.request(b"one");
    net.reply(b"reply");
    net.request(b"after the handshake");
    let forwarded = net.frames(Link::B, true).len();
    let first = net.frames(Link::A, true)[0].clone();
    let plain = net.frames(Link::A, true)[1].clone();

    net.inject_at_hub(&plain);
    net.inject_at_hub(&first);
    assert_eq!(net.hub_engine().counters().drops(DropReason::Replay), 2);
    assert_eq!(net.frames(Link::B, true).len(), forwarded, "replays stop at the hub");
    assert_eq!(net.spoke2.engine().counters().total_drops(), 0);
    assert_eq!(Net::receive(&mut net.host5).len(), 2);
}

#[test]
fn transit_metadata_from_wrong_peer_dropped() {
    let mut net = Net::new();
    net.request(b"one");
    // spoke2's reverse metadata, sent to the hub on link a, is tagged under the pair key
    // of spoke2 and the hub, which does not open packets from spoke1's path.
    net.reply(b"reply");
    let reverse = net.frames(Link::B, false)[0].clone();
    assert!(has_metadata(&reverse));
    let mut moved = reverse.clone();
    moved[26..34].copy_from_slice(&[SPOKE1_WAYPOINT.octets(), HUB_WAYPOINT_A.octets()].concat());
    fix_checksums(&mut moved);
    net.inject_at_hub(&moved);
    assert_eq!(net.hub_engine().counters().drops(DropReason::BadTag), 1);
    assert_eq!(Net::receive(&mut net.host1).len(), 1);
}

#[test]
fn transit_rotation_through_hub() {
    let mut net = Net::new();
    net.request(b"one");
    net.reply(b"reply");
    net.request(b"two");
    assert_eq!(net.spoke1.engine().rotate_all(net.now), 1);
    let now = net.now;
    assert_eq!(net.hub_engine().rotate_all(now), 0, "the hub starts no rotation");

    // The next key travels in forward metadata through the hub.
    net.request(b"with the next key");
    let carrying = net.frames(Link::B, true).last().unwrap().clone();
    assert!(has_metadata(&carrying), "rotation metadata reaches spoke2");
    net.reply(b"ack");

    // After the grace time both spokes seal under key id 1; the hub passes it on.
    net.now += GRACE * 2;
    net.request(b"under key one");
    net.reply(b"reply under key one");
    net.now += GRACE * 3;
    net.request(b"old key gone");
    net.reply(b"reply, old key gone");

    let last_forward = net.frames(Link::B, true).last().unwrap().clone();
    let last_reverse = net.frames(Link::A, false).last().unwrap().clone();
    for frame in [&last_forward, &last_reverse] {
        let payload = wan_payload(frame);
        assert_eq!(payload[payload.len() - TRAILER_LEN], 1, "key id of the new key");
        assert!(!has_metadata(frame));
    }
    assert_eq!(Net::receive(&mut net.host5).len(), 5);
    assert_eq!(Net::receive(&mut net.host1).len(), 4);
    assert_eq!(net.hub_engine().counters().total_drops(), 0);
    assert_eq!(net.spoke2.engine().counters().total_drops(), 0);
    assert_eq!(net.spoke1.engine().counters().total_drops(), 0);
}

#[test]
fn transit_sessions_expire_together() {
    let mut net = Net::new();
    net.request(b"one");
    net.reply(b"reply");
    assert_eq!(net.hub_engine().sessions().len(), 2);

    net.now += Duration::from_secs(61);
    net.hub.poll_once(net.now);
    assert_eq!(net.hub_engine().sessions().len(), 0, "both legs expire");
    assert_eq!(net.hub_engine().counters().sessions_expired, 1);

    // The spokes' sessions expired too, so the next packet starts a new session through
    // the hub.
    net.spoke1.poll_once(net.now);
    net.spoke2.poll_once(net.now);
    net.request(b"new session");
    assert_eq!(Net::receive(&mut net.host5).len(), 2);
    assert_eq!(net.hub_engine().sessions().len(), 2);
    assert_eq!(net.hub_engine().counters().sessions_created, 2);
}

#[test]
fn transit_first_packet_replayed_after_idle_dropped() {
    let mut net = Net::new();
    net.request(b"one");
    net.reply(b"reply");
    let first = net.frames(Link::A, true)[0].clone();
    assert!(has_metadata(&first));
    let forwarded = net.frames(Link::B, true).len();

    net.now += Duration::from_secs(61);
    net.hub.poll_once(net.now);
    assert_eq!(net.hub_engine().sessions().len(), 0, "both legs expire");
    assert_eq!(net.hub_engine().sessions().tombstones().buried(3), Some(1));

    // The hub's metadata key 3 still opens the first packet, and the tombstone stops it.
    net.inject_at_hub(&first);
    assert_eq!(net.hub_engine().counters().drops(DropReason::Replay), 1);
    assert_eq!(net.hub_engine().sessions().len(), 0, "no leg made");
    assert_eq!(net.hub_engine().counters().sessions_created, 1);
    assert_eq!(net.frames(Link::B, true).len(), forwarded, "nothing goes on to spoke2");
    assert_eq!(Net::receive(&mut net.host5).len(), 1, "only the original delivered");
}

#[test]
fn transit_fragments_pass_through() {
    let mut net = Net::new();
    let payload: Vec<u8> = (0..1700u32).map(|i| (i % 251) as u8).collect();
    let mut request = udp_v4(HOST1, HOST5, (40000, 5201), &payload);
    // Clear DF so that spoke1 sends SVR fragments instead of an ICMP error.
    request[20] = 0;
    request[24..26].fill(0);
    let sum = internet_checksum(&[&request[14..34]]);
    request[24..26].copy_from_slice(&sum.to_be_bytes());
    Net::send(&mut net.host1, &request);
    net.run();

    let on_a = net.frames(Link::A, true);
    let on_b = net.frames(Link::B, true);
    assert!(on_a.len() >= 2, "spoke1 sent {} fragments", on_a.len());
    assert_eq!(on_b.len(), on_a.len(), "the hub forwards each fragment");
    for (a, b) in on_a.iter().zip(&on_b) {
        assert_eq!(a.len(), b.len(), "a forwarded fragment keeps its length");
        assert_eq!(carried_and_sequence(a), carried_and_sequence(b));
    }
    let delivered = Net::receive(&mut net.host5);
    assert_eq!(delivered.len(), 1, "spoke2 reassembles the packet");
    assert_eq!(host_payload(&delivered[0]), &payload[..]);
    assert_eq!(net.hub_engine().counters().total_drops(), 0);
    assert_eq!(net.hub_engine().fragment_counters().packets_reassembled, 0);
}

#[test]
fn transit_onward_path_failover() {
    let mut net = Net::with(true, 1);
    net.request(b"on path 0");
    net.reply(b"reply 0");
    net.request(b"handshake done");
    assert!(!has_metadata(net.frames(Link::B, true).last().unwrap()));

    // The hub's first path to spoke2 goes down: the onward leg moves to the second path
    // and adds metadata, so that spoke2 learns the new waypoints.
    net.hub_epoch.publish(hub_epoch(true, false));
    net.request(b"on path 1");
    let moved = net.frames(Link::B, true).last().unwrap().clone();
    assert_eq!(moved[26..34], [HUB_WAYPOINT_B2.octets(), SPOKE2_WAYPOINT2.octets()].concat());
    assert!(has_metadata(&moved), "metadata after the path change");
    let from_spoke1 = net.frames(Link::A, true).last().unwrap().clone();
    assert!(!has_metadata(&from_spoke1), "spoke1 sent no metadata");
    assert_eq!(carried_and_sequence(&from_spoke1), carried_and_sequence(&moved));

    net.reply(b"reply 1");
    let reply = net.frames(Link::B, false).last().unwrap().clone();
    assert_eq!(reply[26..34], [SPOKE2_WAYPOINT2.octets(), HUB_WAYPOINT_B2.octets()].concat());
    net.request(b"after the move");
    assert!(!has_metadata(net.frames(Link::B, true).last().unwrap()), "metadata stops again");

    assert_eq!(Net::receive(&mut net.host5).len(), 4);
    assert_eq!(Net::receive(&mut net.host1).len(), 2);
    assert_eq!(net.spoke2.engine().sessions().len(), 1);
    assert_eq!(net.hub_engine().counters().total_drops(), 0);
    assert_eq!(net.spoke2.engine().counters().total_drops(), 0);
}

#[test]
fn transit_tuple_from_lan_dropped() {
    let mut net = Net::new();
    net.request(b"one");
    net.reply(b"reply");
    let forwarded = net.frames(Link::B, true).len();

    // A host on the hub's LAN sends packets with the transit session's tuple, in both
    // directions. Neither is sealed into the session.
    for frame in [
        udp_v4(HOST1, HOST5, (40000, 5201), b"injected forward"),
        udp_v4(HOST5, HOST1, (5201, 40000), b"injected reverse"),
    ] {
        let mut frame = frame;
        frame[0..6].copy_from_slice(&HUB_LAN_MAC);
        Net::send(&mut net.hub_host, &frame);
        net.run();
    }
    assert_eq!(net.hub_engine().counters().drops(DropReason::NoRoute), 2);
    assert_eq!(net.frames(Link::B, true).len(), forwarded, "nothing sent to spoke2");
    assert_eq!(net.frames(Link::A, false).len(), 1, "nothing sent to spoke1");
    assert_eq!(net.hub_engine().counters().ingress_forwarded, 0);
    assert_eq!(Net::receive(&mut net.host5).len(), 1);
    assert_eq!(Net::receive(&mut net.host1).len(), 1);
    assert_eq!(net.hub.workers()[0].port(HUB_LAN).unwrap().stats().rx_frames, 2);
}

#[test]
fn transit_sharded_hub() {
    for workers in [2, 3] {
        let mut net = Net::with(false, workers);
        let flows: Vec<u16> = (0..12).map(|i| 40000 + i).collect();
        for round in 0..3u8 {
            for &port in &flows {
                let request = udp_v4(HOST1, HOST5, (port, 5201), &[b'q', round]);
                Net::send(&mut net.host1, &request);
            }
            net.run();
            for &port in &flows {
                let reply = from_host5(udp_v4(HOST5, HOST1, (5201, port), &[b'r', round]));
                Net::send(&mut net.host5, &reply);
            }
            net.run();
        }
        assert_eq!(Net::receive(&mut net.host5).len(), 36, "{workers} workers: at host5");
        assert_eq!(Net::receive(&mut net.host1).len(), 36, "{workers} workers: at host1");

        // Both legs of each session live on the worker that owns its flow class.
        let mut legs = 0;
        for (index, worker) in net.hub.workers().iter_mut().enumerate() {
            let table = worker.engine().sessions();
            for id in table.ids() {
                let leg = table.get(id).unwrap();
                let other = table.get(leg.relay.unwrap()).unwrap();
                assert_eq!(other.uuid, leg.uuid, "{workers} workers: worker {index} pairs legs");
                legs += 1;
            }
        }
        assert_eq!(legs, 24, "{workers} workers: two legs per flow");
        let handed: u64 =
            net.hub.workers().iter_mut().map(|w| w.engine().counters().handed_off).sum();
        assert!(handed > 0, "{workers} workers: packets were handed between workers");
        let counters = net.hub.counters();
        assert_eq!(counters.transit_forwarded(), 72, "{workers} workers: forwarded");
        assert_eq!(counters.sessions_created(), 12, "{workers} workers: sessions");
        for reason in DropReason::ALL {
            assert_eq!(counters.drops(reason), 0, "{workers} workers: {} drops", reason.name());
        }
    }
}

/// Adds a second path between spoke1 and the hub, over the same ports, with waypoints
/// 10.202.1.x: to spoke1's epoch (`spoke1`) or to the hub's. The other router is peer 0
/// in both.
fn with_second_spoke1_path(mut epoch: KeyEpoch, spoke1: bool, first_up: bool) -> KeyEpoch {
    let spoke1_address = Ipv4Addr::new(10, 202, 1, 1);
    let hub_address = Ipv4Addr::new(10, 202, 1, 3);
    let (local, remote, mac) = if spoke1 {
        (spoke1_address, hub_address, HUB_A_MAC)
    } else {
        (hub_address, spoke1_address, SPOKE1_WAN_MAC)
    };
    let paths = &mut epoch.peers[0].paths;
    let mut second = paths[0].clone();
    second.local = local.into();
    second.peer = remote.into();
    paths[0].in_service = first_up;
    let interface = second.interface;
    paths.push(second);
    epoch.neighbours.insert((interface, IpAddr::V4(remote)), mac);
    epoch.generation += 1;
    epoch
}

#[test]
fn transit_ingress_path_failover() {
    let mut net = Net::new();
    net.spoke1_epoch.publish(with_second_spoke1_path(spoke1_epoch(), true, true));
    net.hub_epoch.publish(with_second_spoke1_path(hub_epoch(false, true), false, true));
    net.request(b"on path 0");
    net.reply(b"reply 0");
    net.request(b"handshake done");
    assert!(!has_metadata(net.frames(Link::A, true).last().unwrap()));

    // spoke1's first path to the hub goes down: its session moves to the second path and
    // sends metadata there, and the hub moves the leg towards spoke1 with it.
    net.spoke1_epoch.publish(with_second_spoke1_path(spoke1_epoch(), true, false));
    net.request(b"on path 1");
    let moved = net.frames(Link::A, true).last().unwrap().clone();
    assert_eq!(moved[26..34], [[10, 202, 1, 1], [10, 202, 1, 3]].concat(), "spoke1 on path 1");
    assert!(has_metadata(&moved), "metadata after the path change");
    let onward = net.frames(Link::B, true).last().unwrap().clone();
    assert_eq!(onward[26..34], [HUB_WAYPOINT_B.octets(), SPOKE2_WAYPOINT.octets()].concat());

    net.reply(b"reply 1");
    let reply = net.frames(Link::A, false).last().unwrap().clone();
    assert_eq!(reply[26..34], [[10, 202, 1, 3], [10, 202, 1, 1]].concat(), "reply on path 1");
    assert_eq!(Net::receive(&mut net.host5).len(), 3);
    assert_eq!(Net::receive(&mut net.host1).len(), 2);
    assert_eq!(net.hub_engine().sessions().len(), 2, "the legs moved, none was added");
    assert_eq!(net.hub_engine().counters().total_drops(), 0);
    assert_eq!(net.spoke1.engine().counters().total_drops(), 0);
}

/// Moves the path between the hub and spoke2 to IPv6 waypoints fd03::3 and fd03::2, in the
/// hub's epoch (`hub`) or in spoke2's.
fn with_ipv6_onward(mut epoch: KeyEpoch, hub: bool) -> KeyEpoch {
    let hub_address: IpAddr = "fd03::3".parse().unwrap();
    let spoke2_address: IpAddr = "fd03::2".parse().unwrap();
    let (peer, local, remote, mac) = if hub {
        (1, hub_address, spoke2_address, SPOKE2_WAN_MAC)
    } else {
        (0, spoke2_address, hub_address, HUB_B_MAC)
    };
    let path = &mut epoch.peers[peer].paths[0];
    path.local = local;
    path.peer = remote;
    let interface = path.interface;
    epoch.neighbours.insert((interface, remote), mac);
    epoch.generation += 1;
    epoch
}

#[test]
fn transit_ipv4_to_ipv6_waypoints() {
    let mut net = Net::new();
    net.hub_epoch.publish(with_ipv6_onward(hub_epoch(false, true), true));
    net.spoke2_epoch.publish(with_ipv6_onward(spoke2_epoch(false), false));
    for _ in 0..2 {
        net.request(b"over ipv6 waypoints");
        net.reply(b"back over ipv6 waypoints");
    }

    let onward = net.frames(Link::B, true);
    assert_eq!(onward.len(), 2);
    assert_eq!(onward[0][12..14], [0x86, 0xdd], "the hub sends to spoke2 over IPv6");
    assert_eq!(net.frames(Link::A, false)[0][12..14], [0x08, 0x00], "and to spoke1 over IPv4");
    // The IPv6 packet without metadata carries the IPv4 one's UDP payload.
    let from_spoke1 = &net.frames(Link::A, true)[1];
    assert_eq!(&onward[1][14 + 40 + 8..], wan_payload(from_spoke1), "carried unchanged");

    // The originals' identification (0x1234) and DF flag cross the IPv6 leg both ways.
    let at_host5 = Net::receive(&mut net.host5);
    let at_host1 = Net::receive(&mut net.host1);
    assert_eq!(at_host5.len(), 2);
    assert_eq!(at_host1.len(), 2);
    for frame in at_host5.iter().chain(&at_host1) {
        assert_eq!(frame[18..20], [0x12, 0x34], "identification restored");
        assert_eq!(frame[20] & 0x40, 0x40, "DF restored");
        assert_eq!(internet_checksum(&[&frame[14..34]]), 0, "ipv4 header checksum");
    }
    assert_eq!(host_payload(&at_host5[1]), b"over ipv6 waypoints");
    assert_eq!(host_payload(&at_host1[1]), b"back over ipv6 waypoints");
    assert_eq!(net.hub_engine().counters().total_drops(), 0);
}
