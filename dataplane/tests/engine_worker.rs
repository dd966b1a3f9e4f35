//! Workers on their own threads: two routers polling memory ports in adaptive mode carry
//! traffic between the hosts, wake on traffic after sleeping, and stop on their flag.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]
#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]

mod engine_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use engine_support::*;
use svr_dataplane::counters::DropReason;
use svr_dataplane::worker::SWEEP_PERIOD;

/// Waits until `host` has received `count` frames or five seconds pass.
fn wait_for(host: &mut svr_dataplane::io::mem::MemPort, count: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut frames = Vec::new();
    while frames.len() < count && Instant::now() < deadline {
        frames.extend(Net::receive(host));
        std::thread::sleep(Duration::from_millis(1));
    }
    frames
}

/// Copies WAN frames between the routers until `stop` is set.
fn spawn_relay(
    mut wire1: svr_dataplane::io::mem::MemPort,
    mut wire2: svr_dataplane::io::mem::MemPort,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            for frame in Net::receive(&mut wire1) {
                Net::send(&mut wire2, &frame);
            }
            for frame in Net::receive(&mut wire2) {
                Net::send(&mut wire1, &frame);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    })
}

#[test]
fn threaded_workers_carry_traffic() {
    let Net { r1, r2, mut host1, mut host5, wire1, wire2, .. } = Net::new();
    let (stop1, stop2) = (r1.stop_flag(), r2.stop_flag());
    let counters2 = r2.shared_counters();
    let (r1, r2) = (r1.spawn().unwrap(), r2.spawn().unwrap());
    let relay_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relay = spawn_relay(wire1, wire2, std::sync::Arc::clone(&relay_stop));

    for i in 0..100u16 {
        Net::send(&mut host1, &udp_v4(HOST1, HOST5, (40000 + i % 4, 5201), b"threaded"));
    }
    let frames = wait_for(&mut host5, 100);
    assert_eq!(frames.len(), 100);

    // Let the workers fall asleep, then wake them with one more packet.
    std::thread::sleep(Duration::from_millis(50));
    Net::send(&mut host1, &udp_v4(HOST1, HOST5, (40000, 5201), b"after idle"));
    assert_eq!(wait_for(&mut host5, 1).len(), 1);

    stop1.store(true, Ordering::Relaxed);
    stop2.store(true, Ordering::Relaxed);
    relay_stop.store(true, Ordering::Relaxed);
    let mut r1 = r1.join().unwrap();
    r2.join().unwrap();
    relay.join().unwrap();

    assert_eq!(r1.engine().counters().ingress_forwarded, 101);
    assert_eq!(r1.engine().sessions().len(), 4);
    assert_eq!(counters2.egress_forwarded(), 101);
    assert_eq!(counters2.drops(DropReason::BadTag), 0);
    assert_eq!(counters2.sessions_created(), 4);
}

#[test]
fn idle_sessions_expire() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"short lived"));
    net.run();
    assert_eq!(net.r1.engine().sessions().len(), 1);
    assert_eq!(net.r2.engine().sessions().len(), 1);

    net.now += Duration::from_secs(61);
    // Polls at one instant sweep once: a busy worker does not spend every pass on the
    // table.
    let passes = 1024 / 16 + 1;
    for _ in 0..passes {
        net.r1.poll_once(net.now);
    }
    assert_eq!(net.r1.engine().counters().sessions_expired, 0);
    for _ in 0..passes {
        net.now += SWEEP_PERIOD;
        net.r1.poll_once(net.now);
        net.r2.poll_once(net.now);
    }
    assert_eq!(net.r1.engine().sessions().len(), 0);
    assert_eq!(net.r2.engine().sessions().len(), 0);
    assert_eq!(net.r1.engine().counters().sessions_expired, 1);

    // A new packet of the same flow starts a new session.
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"again"));
    net.run();
    assert_eq!(net.at_host5().len(), 2);
    assert_eq!(net.r1.engine().counters().sessions_created, 2);
}

#[test]
fn session_size_reported() {
    let size = std::mem::size_of::<svr_dataplane::session::Session>();
    println!("size_of::<Session>() = {size} bytes");
    assert!(size <= 1024, "a session takes {size} bytes, more than 1 KiB");
}
