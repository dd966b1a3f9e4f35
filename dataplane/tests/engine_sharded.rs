//! Routers with one, two and three workers on memory ports. The packet path gives the same
//! results whichever worker receives a packet, and each session lives on the worker that
//! owns its flow class. Full hand-off rings count their drops, and a sleeping owner wakes
//! when a packet is handed to it.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]
#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]

mod engine_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_support::*;
use svr_dataplane::counters::DropReason;
use svr_dataplane::epoch::{EpochPublisher, KeyEpoch, epoch_channel};
use svr_dataplane::forward::{EngineConfig, FiveTuple};
use svr_dataplane::group::{GroupConfig, WorkerGroup};
use svr_dataplane::handoff::HandoffConfig;
use svr_dataplane::io::mem::{MemConfig, MemPort, mem_pair};
use svr_dataplane::shard::flow_class;
use svr_dataplane::worker::{ControlPacket, ControlQueues, Polling, Port, Worker, WorkerConfig};

/// Which worker polls which port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// The LAN port on worker 0 and the WAN port on worker 1.
    Split,
    /// Both ports on worker 0; worker 1 only processes what is handed to it.
    FirstPolls,
}

/// Every configuration the packet path runs in: the worker counts of r1 and r2, and the
/// port layout. Routers with different counts check that the waypoint port carries the
/// flow class from one router to the other.
const SETUPS: [((usize, usize), Layout); 5] = [
    ((1, 1), Layout::Split),
    ((2, 2), Layout::Split),
    ((2, 2), Layout::FirstPolls),
    ((2, 3), Layout::Split),
    ((3, 2), Layout::FirstPolls),
];

struct Router {
    group: WorkerGroup,
    _epoch: EpochPublisher,
    control: Arc<ControlQueues>,
}

fn router(
    epoch: KeyEpoch,
    lan: MemPort,
    wan: MemPort,
    workers: usize,
    layout: Layout,
    handoff: HandoffConfig,
    polling: Polling,
) -> Router {
    let (publisher, reader) = epoch_channel(epoch);
    let control = Arc::new(ControlQueues::new(16, 2048));
    let config = GroupConfig {
        worker: WorkerConfig {
            engine: EngineConfig {
                sessions: 1024,
                rotation_grace: GRACE,
                idle_timeout: Duration::from_secs(60),
                ..EngineConfig::default()
            },
            polling,
            core: None,
            sweep_budget: 16,
        },
        workers,
        cores: vec![],
        handoff,
        port_owners: match (workers, layout) {
            (1, _) => None,
            (_, Layout::Split) => Some(vec![0, 1]),
            (_, Layout::FirstPolls) => Some(vec![0, 0]),
        },
    };
    let ports: Vec<Port> = vec![Box::new(lan), Box::new(wan)];
    let group = WorkerGroup::new(&config, ports, &reader, &control).unwrap();
    Router { group, _epoch: publisher, control }
}

struct ShardNet {
    r1: Router,
    r2: Router,
    host1: MemPort,
    host5: MemPort,
    wire1: MemPort,
    wire2: MemPort,
    now: Instant,
}

impl ShardNet {
    fn new(workers: (usize, usize), layout: Layout) -> ShardNet {
        ShardNet::with(workers, layout, HandoffConfig::default(), default_polling())
    }

    fn with(
        workers: (usize, usize),
        layout: Layout,
        handoff: HandoffConfig,
        polling: Polling,
    ) -> ShardNet {
        let config = MemConfig { frames: 4096, frame_size: 2048, ring_size: 1024 };
        let (host1, r1_lan) = mem_pair(&config).unwrap();
        let (r1_wan, wire1) = mem_pair(&config).unwrap();
        let (wire2, r2_wan) = mem_pair(&config).unwrap();
        let (r2_lan, host5) = mem_pair(&config).unwrap();
        let epoch1 = router_epoch("r1", true);
        let epoch2 = router_epoch("r2", false);
        ShardNet {
            r1: router(epoch1, r1_lan, r1_wan, workers.0, layout, handoff, polling),
            r2: router(epoch2, r2_lan, r2_wan, workers.1, layout, handoff, polling),
            host1,
            host5,
            wire1,
            wire2,
            now: Instant::now(),
        }
    }

    /// Runs both routers and relays WAN frames until a whole round moves nothing.
    fn run(&mut self) {
        for _ in 0..200 {
            let mut moved = self.r1.group.poll_once(self.now);
            moved += relay(&mut self.wire1, &mut self.wire2);
            moved += self.r2.group.poll_once(self.now);
            moved += relay(&mut self.wire2, &mut self.wire1);
            if moved == 0 {
                return;
            }
        }
        panic!("network did not settle");
    }

    fn sessions(router: &mut Router) -> Vec<Vec<FiveTuple>> {
        router
            .group
            .workers()
            .iter_mut()
            .map(|worker| {
                let table = worker.engine().sessions();
                table.ids().map(|id| table.get(id).unwrap().original).collect()
            })
            .collect()
    }
}

fn default_polling() -> Polling {
    Polling::Adaptive { empty_polls: 8, sleep: Duration::from_millis(1) }
}

fn relay(from: &mut MemPort, to: &mut MemPort) -> usize {
    let frames = Net::receive(from);
    for frame in &frames {
        Net::send(to, frame);
    }
    frames.len()
}

fn flow(i: u16) -> (u16, u16) {
    (40000 + i, 5201)
}

/// Returns the source port of a restored UDP frame over IPv4.
fn source_port(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[34], frame[35]])
}

fn destination_port(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[36], frame[37]])
}

/// Sends `flows` UDP flows forward, replies on each, and sends forward again; checks that
/// every packet arrives restored and that no packet was dropped.
fn carry_flows(workers: (usize, usize), layout: Layout, flows: u16) -> ShardNet {
    let setup = format!("{workers:?} workers, {layout:?}");
    let mut net = ShardNet::new(workers, layout);
    for round in 0..2 {
        let requests: HashMap<u16, Vec<u8>> = (0..flows)
            .map(|i| {
                let payload = format!("round {round} flow {i}");
                (flow(i).0, udp_v4(HOST1, HOST5, flow(i), payload.as_bytes()))
            })
            .collect();
        for frame in requests.values() {
            Net::send(&mut net.host1, frame);
        }
        net.run();
        let delivered = Net::receive(&mut net.host5);
        assert_eq!(delivered.len(), usize::from(flows), "{setup}: round {round} forward");
        for frame in &delivered {
            let request = &requests[&source_port(frame)];
            assert_restored(request, frame, R2_LAN_MAC, HOST5_MAC);
        }

        let replies: HashMap<u16, Vec<u8>> = (0..flows)
            .map(|i| {
                let (client, server) = flow(i);
                let reply = udp_v4(HOST5, HOST1, (server, client), b"reply");
                (client, from_host5(reply))
            })
            .collect();
        for frame in replies.values() {
            Net::send(&mut net.host5, frame);
        }
        net.run();
        let back = Net::receive(&mut net.host1);
        assert_eq!(back.len(), usize::from(flows), "{setup}: round {round} reverse");
        for frame in &back {
            let reply = &replies[&destination_port(frame)];
            assert_restored(reply, frame, R1_LAN_MAC, HOST1_MAC);
        }
    }

    for (name, router) in [("r1", &net.r1), ("r2", &net.r2)] {
        let counters = router.group.counters();
        for reason in DropReason::ALL {
            assert_eq!(counters.drops(reason), 0, "{setup}: {name} {}", reason.name());
        }
        assert_eq!(counters.sessions_created(), u64::from(flows), "{setup}: {name}");
    }
    net
}

#[test]
fn flows_carried_every_setup() {
    for (workers, layout) in SETUPS {
        carry_flows(workers, layout, 48);
    }
}

#[test]
fn sessions_live_on_owner() {
    for (workers, layout) in SETUPS {
        let setup = format!("{workers:?} workers, {layout:?}");
        let mut net = carry_flows(workers, layout, 48);
        for (name, router) in [("r1", &mut net.r1), ("r2", &mut net.r2)] {
            let shards = ShardNet::sessions(router);
            let count = shards.len();
            for (index, sessions) in shards.iter().enumerate() {
                assert!(!sessions.is_empty(), "{setup}: {name} worker {index} has no session");
                for tuple in sessions {
                    assert_eq!(flow_class(tuple) % count, index, "{setup}: {name} {tuple}");
                }
            }
            assert_eq!(shards.iter().map(Vec::len).sum::<usize>(), 48, "{setup}: {name}");
        }
    }
}

#[test]
fn wrong_worker_hands_off() {
    let mut net = carry_flows((2, 2), Layout::Split, 48);
    for (name, router) in [("r1", &mut net.r1), ("r2", &mut net.r2)] {
        let handed: u64 = router
            .group
            .workers()
            .iter_mut()
            .map(|worker| worker.engine().counters().handed_off)
            .sum();
        // Every packet crosses from the LAN worker to the WAN worker or back, and about
        // half also to its owner, so at least one hand-off per packet.
        assert!(handed >= 4 * 48, "{name}: {handed} hand-offs");
    }
}

#[test]
fn one_worker_never_hands_off() {
    let mut net = carry_flows((1, 1), Layout::Split, 16);
    let worker = &mut net.r1.group.workers()[0];
    assert_eq!(worker.engine().counters().handed_off, 0);
}

#[test]
fn ipv6_tcp_carried_every_setup() {
    for (workers, layout) in SETUPS {
        let mut net = ShardNet::new(workers, layout);
        let mut requests = Vec::new();
        for i in 0..16u16 {
            let mut segment = Vec::new();
            segment.extend_from_slice(&(41000 + i).to_be_bytes());
            segment.extend_from_slice(&80u16.to_be_bytes());
            segment.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0x20, 0, 0, 0, 0, 0]);
            segment.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            let frame = ipv6_frame(HOST1_V6, HOST5_V6, 6, 64, segment, 16);
            Net::send(&mut net.host1, &frame);
            requests.push(frame);
        }
        net.run();
        let delivered = Net::receive(&mut net.host5);
        assert_eq!(delivered.len(), 16, "{workers:?} workers, {layout:?}");
        for frame in &delivered {
            let request = requests.iter().find(|r| r[54..56] == frame[54..56]).unwrap();
            assert_restored(request, frame, R2_LAN_MAC, HOST5_MAC);
        }
        assert_eq!(net.r2.group.counters().key_drops(), 0);
    }
}

#[test]
fn bfd_punted_and_sent_every_setup() {
    for (workers, layout) in SETUPS {
        let setup = format!("{workers:?} workers, {layout:?}");
        let mut net = ShardNet::new(workers, layout);
        let bfd = udp_v4(R2_WAYPOINT, R1_WAYPOINT, (49152, 3784), &[0x20, 0x40, 3, 24]);
        Net::send(&mut net.wire1, &bfd);
        net.run();
        let punted = net.r1.control.punted.pop().unwrap();
        assert_eq!(punted.port, WAN, "{setup}");
        assert_eq!(punted.frame, bfd, "{setup}");
        assert_eq!(net.r1.group.counters().punted(), 1, "{setup}");

        net.r1.control.to_send.push(ControlPacket { port: WAN, frame: bfd.clone() }).unwrap();
        // Poll r1 alone, so the frame stays on r1's side of the wire.
        for _ in 0..4 {
            net.r1.group.poll_once(net.now);
        }
        let sent = Net::receive(&mut net.wire1);
        assert_eq!(sent, vec![bfd.clone()], "{setup}");
        let control_sent: u64 = net
            .r1
            .group
            .workers()
            .iter_mut()
            .map(|worker| worker.engine().counters().control_sent)
            .sum();
        assert_eq!(control_sent, 1, "{setup}");
    }
}

#[test]
fn rotation_reaches_every_worker() {
    for (workers, layout) in SETUPS {
        let setup = format!("{workers:?} workers, {layout:?}");
        let mut net = ShardNet::new(workers, layout);
        for i in 0..32 {
            Net::send(&mut net.host1, &udp_v4(HOST1, HOST5, flow(i), b"before"));
        }
        net.run();
        assert_eq!(Net::receive(&mut net.host5).len(), 32, "{setup}");

        net.r1.group.rotation_flag().store(true, std::sync::atomic::Ordering::Relaxed);
        // The first poll starts the first worker's rotations and flags the others; the
        // second starts theirs.
        net.r1.group.poll_once(net.now);
        net.r1.group.poll_once(net.now);
        let counters = net.r1.group.counters();
        assert_eq!(counters.rotations_started(), 32, "{setup}");

        // Past the grace time the senders switch, and every packet still opens.
        net.now += GRACE * 2;
        for round in 0..3 {
            for i in 0..32 {
                Net::send(&mut net.host1, &udp_v4(HOST1, HOST5, flow(i), b"after"));
                let reply = udp_v4(HOST5, HOST1, (flow(i).1, flow(i).0), b"ack");
                Net::send(&mut net.host5, &from_host5(reply));
            }
            net.run();
            assert_eq!(Net::receive(&mut net.host5).len(), 32, "{setup}: round {round}");
            assert_eq!(Net::receive(&mut net.host1).len(), 32, "{setup}: round {round}");
            net.now += GRACE;
        }
        assert_eq!(net.r1.group.counters().key_drops(), 0, "{setup}");
        assert_eq!(net.r2.group.counters().key_drops(), 0, "{setup}");
        assert_eq!(net.r1.group.counters().key_switches(), 32, "{setup}");
    }
}

#[test]
fn full_ring_counts_drops() {
    let handoff = HandoffConfig { depth: 4, frame_size: 2048 };
    let mut net = ShardNet::with((2, 2), Layout::FirstPolls, handoff, default_polling());
    // 32 flows of worker 1's classes, all received by worker 0 in one burst.
    let flows: Vec<(u16, u16)> = (0..2000u16)
        .map(flow)
        .filter(|ports| {
            let tuple = FiveTuple {
                source: HOST1.into(),
                destination: HOST5.into(),
                source_port: ports.0,
                destination_port: ports.1,
                protocol: 17,
            };
            flow_class(&tuple) % 2 == 1
        })
        .take(32)
        .collect();
    assert_eq!(flows.len(), 32);
    for ports in &flows {
        Net::send(&mut net.host1, &udp_v4(HOST1, HOST5, *ports, b"burst"));
    }

    let workers = net.r1.group.workers();
    workers[0].poll_once(net.now);
    assert_eq!(workers[0].engine().counters().drops(DropReason::HandoffFull), 28);
    assert_eq!(workers[0].engine().counters().handed_off, 4);
    assert_eq!(net.r1.group.counters().drops(DropReason::HandoffFull), 28);

    // The owner takes the four, hands their output back to the WAN port's worker, and the
    // ring has room again.
    let workers = net.r1.group.workers();
    workers[1].poll_once(net.now);
    workers[0].poll_once(net.now);
    assert_eq!(Net::receive(&mut net.wire1).len(), 4);
    Net::send(&mut net.host1, &udp_v4(HOST1, HOST5, flows[0], b"after"));
    let workers = net.r1.group.workers();
    workers[0].poll_once(net.now);
    workers[1].poll_once(net.now);
    workers[0].poll_once(net.now);
    assert_eq!(Net::receive(&mut net.wire1).len(), 1);
    assert_eq!(net.r1.group.workers()[0].engine().counters().drops(DropReason::HandoffFull), 28);
}

#[test]
fn sleeping_owner_wakes_on_handoff() {
    // Worker 1 sleeps up to 5 s per wait; only its doorbell can wake it sooner.
    let polling = Polling::Adaptive { empty_polls: 1, sleep: Duration::from_secs(5) };
    let net = ShardNet::with((2, 2), Layout::FirstPolls, HandoffConfig::default(), polling);
    let ShardNet { r1, mut host1, mut wire1, .. } = net;
    let stop = r1.group.stop_flag();
    let mut workers = r1.group.into_workers();
    let owner = workers.pop().unwrap();
    let mut receiver: Worker = workers.pop().unwrap();
    let owner = owner.spawn().unwrap();

    // Let the owner fall asleep.
    std::thread::sleep(Duration::from_millis(100));
    let ports = (0..2000u16)
        .map(flow)
        .find(|ports| {
            let tuple = FiveTuple {
                source: HOST1.into(),
                destination: HOST5.into(),
                source_port: ports.0,
                destination_port: ports.1,
                protocol: 17,
            };
            flow_class(&tuple) % 2 == 1
        })
        .unwrap();
    let start = Instant::now();
    Net::send(&mut host1, &udp_v4(HOST1, HOST5, ports, b"wake up"));

    let mut sent = Vec::new();
    while sent.is_empty() && start.elapsed() < Duration::from_secs(4) {
        receiver.poll_once(Instant::now());
        sent = Net::receive(&mut wire1);
    }
    let elapsed = start.elapsed();
    let handed = receiver.engine().counters().handed_off;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // The stop flag is seen after the owner's current sleep; wake it to end at once.
    Net::send(&mut host1, &udp_v4(HOST1, HOST5, ports, b"stop"));
    receiver.poll_once(Instant::now());
    let mut owner = owner.join().unwrap();

    assert_eq!(sent.len(), 1);
    assert!(elapsed < Duration::from_secs(1), "owner answered after {elapsed:?}");
    assert_eq!(handed, 1);
    assert!(owner.engine().counters().ingress_forwarded >= 1);
}
