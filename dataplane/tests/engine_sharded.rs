//! Routers with one, two and three workers on memory ports. The packet path gives the same
//! results whichever worker receives a packet, and each session lives on the worker that
//! owns its flow class. Full hand-off rings count their drops, and a sleeping owner wakes
//! when a packet is handed to it.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]
#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]

mod engine_support;
mod sharded_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use engine_support::*;
use sharded_support::*;
use svr_dataplane::counters::DropReason;
use svr_dataplane::handoff::HandoffConfig;
use svr_dataplane::shard::flow_class;
use svr_dataplane::worker::{ControlPacket, Polling, Worker};

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
    let flows = flows_of_worker(1, 2, 32);
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
    let ports = flows_of_worker(1, 2, 1)[0];
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

#[test]
fn threaded_groups_carry_traffic() {
    let net = ShardNet::new((2, 2), Layout::Split);
    let ShardNet { r1, r2, mut host1, mut host5, mut wire1, mut wire2, .. } = net;
    let (counters1, counters2) = (r1.group.counters(), r2.group.counters());
    let running1 = r1.group.spawn().unwrap();
    let running2 = r2.group.spawn().unwrap();
    let relay_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relay_thread = {
        let stop = std::sync::Arc::clone(&relay_stop);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                relay(&mut wire1, &mut wire2);
                relay(&mut wire2, &mut wire1);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };

    let wait_for = |host: &mut svr_dataplane::io::mem::MemPort, count: usize| {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut frames = Vec::new();
        while frames.len() < count && Instant::now() < deadline {
            frames.extend(Net::receive(host));
            std::thread::sleep(Duration::from_millis(1));
        }
        frames
    };
    for i in 0..200u16 {
        Net::send(&mut host1, &udp_v4(HOST1, HOST5, flow(i % 8), b"threaded"));
    }
    assert_eq!(wait_for(&mut host5, 200).len(), 200);
    for i in 0..8u16 {
        let (client, server) = flow(i);
        Net::send(&mut host5, &from_host5(udp_v4(HOST5, HOST1, (server, client), b"back")));
    }
    assert_eq!(wait_for(&mut host1, 8).len(), 8);

    let workers: Vec<Worker> = running1.join().into_iter().chain(running2.join()).collect();
    relay_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    relay_thread.join().unwrap();

    assert_eq!(workers.len(), 4, "every worker thread returned");
    assert_eq!(counters1.ingress_forwarded(), 200);
    assert_eq!(counters2.egress_forwarded(), 200);
    assert_eq!(counters1.egress_forwarded(), 8);
    for reason in DropReason::ALL {
        assert_eq!(counters1.drops(reason) + counters2.drops(reason), 0, "{}", reason.name());
    }
    assert_eq!(counters1.sessions_created(), 8);
    assert_eq!(counters2.sessions_created(), 8);
}
