//! Two svrd BFD endpoints on UDP 1280 over two peer paths (two veth pairs with MTU 1280)
//! between network namespaces: sessions come up, fragmented metadata crosses each path
//! byte-exact, and a cut path goes down while the other stays up. Needs root.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers outside #[test] functions fail the test on a broken expectation"
)]

mod bfd_netns;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bfd_netns::{Endpoint, Lab, run, wait_until};
use rand::Rng;
use svr_control::bfd::driver::DriverHandle;
use svr_control::bfd::session::SessionConfig;
use svr_control::bfd::{Diagnostic, Flavour, PathId, PathSpec, State};

const PATH_A: PathId = PathId(0);
const PATH_B: PathId = PathId(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn spec(local: &str, remote: &str) -> PathSpec {
    let mut spec = PathSpec::new(
        Flavour::PeerPath,
        local.parse::<IpAddr>().unwrap(),
        remote.parse::<IpAddr>().unwrap(),
    );
    spec.config = SessionConfig::new(ms(300), ms(300), 3).unwrap();
    spec.path_mtu = 1280;
    spec
}

struct Topology {
    r1: Endpoint,
    r2: Endpoint,
    lab: Lab,
}

/// r1 and r2 joined by wan-a (10.211.1.0/24) and wan-b (10.211.2.0/24).
fn topology(tag: &str) -> Topology {
    let lab = Lab::new(tag, &["r1", "r2"]);
    lab.veth("r1", "wan-a1", "10.211.1.1", "r2", "wan-a2", "10.211.1.2");
    lab.veth("r1", "wan-b1", "10.211.2.1", "r2", "wan-b2", "10.211.2.2");
    for (ns, dev) in [("r1", "wan-a1"), ("r2", "wan-a2"), ("r1", "wan-b1"), ("r2", "wan-b2")] {
        run("ip", &["-n", &lab.ns(ns), "link", "set", dev, "mtu", "1280"]);
    }
    let r1 = Endpoint::start(
        &lab.ns("r1"),
        vec![spec("10.211.1.1", "10.211.1.2"), spec("10.211.2.1", "10.211.2.2")],
    );
    let r2 = Endpoint::start(
        &lab.ns("r2"),
        vec![spec("10.211.1.2", "10.211.1.1"), spec("10.211.2.2", "10.211.2.1")],
    );
    Topology { r1, r2, lab }
}

fn all_up(handles: &[&DriverHandle]) -> bool {
    handles.iter().all(|h| h.is_up(PATH_A) && h.is_up(PATH_B))
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

#[test]
fn peer_paths_come_up() {
    let t = topology("up");
    let took = wait_until(Duration::from_secs(10), || all_up(&[&t.r1.handle, &t.r2.handle]));
    let took = took.unwrap_or_else(|| {
        panic!("r1 {:?} r2 {:?}", t.r1.handle.status(PATH_A), t.r2.handle.status(PATH_A))
    });
    eprintln!("both peer paths up after {} ms", took.as_millis());

    // Each path pairs the right discriminators.
    for path in [PATH_A, PATH_B] {
        let a = t.r1.handle.status(path).unwrap();
        let b = t.r2.handle.status(path).unwrap();
        assert_eq!(a.remote_discriminator, b.local_discriminator, "path {path:?}");
        assert_eq!(b.remote_discriminator, a.local_discriminator, "path {path:?}");
    }
    assert_eq!(t.r1.handle.counters().total(), 0, "{:?}", t.r1.handle.counters());
}

#[test]
fn peer_paths_carry_metadata() {
    let t = topology("meta");
    assert!(
        wait_until(Duration::from_secs(10), || all_up(&[&t.r1.handle, &t.r2.handle])).is_some()
    );

    for path in [PATH_A, PATH_B] {
        // r1 -> r2: 4000 bytes need four fragments at an MTU of 1280.
        let message = random_bytes(4000);
        t.r1.handle.send_metadata(path, message.clone()).unwrap();
        let (got_path, got) =
            t.r2.handle.recv_metadata(Duration::from_secs(5)).expect("no message at r2");
        assert_eq!(got_path, path);
        assert_eq!(got.len(), message.len());
        assert!(got == message, "bytes differ on {path:?}");

        // r2 -> r1: an ML-KEM-1024 ciphertext sized message.
        let reply = random_bytes(1568);
        t.r2.handle.send_metadata(path, reply.clone()).unwrap();
        let (got_path, got) =
            t.r1.handle.recv_metadata(Duration::from_secs(5)).expect("no message at r1");
        assert_eq!(got_path, path);
        assert!(got == reply, "reply bytes differ on {path:?}");
    }

    for (handle, name) in [(&t.r1.handle, "r1"), (&t.r2.handle, "r2")] {
        for path in [PATH_A, PATH_B] {
            // The driver thread publishes its counters after it has delivered the message,
            // so they may trail the receive by a moment.
            wait_until(Duration::from_secs(2), || {
                handle.reassembly_counters(path).is_some_and(|c| c.completed == 1)
            });
            let counters = handle.reassembly_counters(path).unwrap();
            assert_eq!(counters.completed, 1, "{name} {path:?}");
            assert_eq!(counters.rejected(), 0, "{name} {path:?}: {counters:?}");
        }
        assert_eq!(handle.send_errors(), 0, "{name}");
    }

    // Metadata does not disturb the sessions.
    assert!(all_up(&[&t.r1.handle, &t.r2.handle]));
}

#[test]
fn peer_path_cut_and_restore() {
    let t = topology("cut");
    assert!(
        wait_until(Duration::from_secs(10), || all_up(&[&t.r1.handle, &t.r2.handle])).is_some()
    );
    std::thread::sleep(ms(1000));
    let detection = t.r1.handle.status(PATH_A).unwrap().detection_time;
    assert_eq!(detection, ms(900));

    let cut_at = Instant::now();
    t.lab.link("r1", "wan-a1", false);
    assert!(t.r1.handle.wait_for_state(PATH_A, State::Down, Duration::from_secs(5)));
    assert!(t.r2.handle.wait_for_state(PATH_A, State::Down, Duration::from_secs(5)));
    for (handle, name) in [(&t.r1.handle, "r1"), (&t.r2.handle, "r2")] {
        let event =
            handle.events().into_iter().find(|e| e.path == PATH_A && e.to == State::Down).unwrap();
        let took = event.at.duration_since(cut_at);
        eprintln!("{name} detected the cut of wan-a after {} ms", took.as_millis());
        assert_eq!(event.diagnostic, Diagnostic::ControlDetectionTimeExpired, "{name}");
        assert!(took <= detection + ms(150), "{name} took {took:?}");
    }

    // wan-b carries on through the outage of wan-a.
    std::thread::sleep(ms(2000));
    for handle in [&t.r1.handle, &t.r2.handle] {
        assert!(handle.is_up(PATH_B));
        assert!(
            !handle
                .events()
                .iter()
                .any(|e| e.path == PATH_B && e.to != State::Up && e.from == State::Up)
        );
        assert!(!handle.is_up(PATH_A));
    }

    // Restoring the link brings wan-a back.
    let restored_at = Instant::now();
    t.lab.link("r1", "wan-a1", true);
    let back = wait_until(Duration::from_secs(10), || all_up(&[&t.r1.handle, &t.r2.handle]));
    let back = back.expect("wan-a did not come back up");
    eprintln!("wan-a up again {} ms after restore", back.as_millis());
    assert!(restored_at.elapsed() < Duration::from_secs(10));
}

/// r1 and r2 joined by one veth pair with IPv6 addresses (no duplicate address detection,
/// so they are usable at once).
fn ipv6_lab(tag: &str) -> Lab {
    let lab = Lab::new(tag, &["r1", "r2"]);
    lab.veth("r1", "wan-a1", "10.211.1.1", "r2", "wan-a2", "10.211.1.2");
    for (ns, dev, addr) in
        [("r1", "wan-a1", "fd00:211:1::1/64"), ("r2", "wan-a2", "fd00:211:1::2/64")]
    {
        run("ip", &["-n", &lab.ns(ns), "-6", "addr", "add", addr, "dev", dev, "nodad"]);
        run("ip", &["-n", &lab.ns(ns), "link", "set", dev, "mtu", "1280"]);
    }
    lab
}

#[test]
fn peer_path_ipv6_metadata() {
    let lab = ipv6_lab("v6meta");
    let r1 = Endpoint::start(&lab.ns("r1"), vec![spec("fd00:211:1::1", "fd00:211:1::2")]);
    let r2 = Endpoint::start(&lab.ns("r2"), vec![spec("fd00:211:1::2", "fd00:211:1::1")]);
    let up =
        wait_until(Duration::from_secs(10), || r1.handle.is_up(PATH_A) && r2.handle.is_up(PATH_A));
    assert!(up.is_some(), "r1 {:?} r2 {:?}", r1.handle.status(PATH_A), r2.handle.status(PATH_A));

    // 3000 bytes take three fragments of at most 1184 bytes over IPv6 at an MTU of 1280.
    let message = random_bytes(3000);
    r1.handle.send_metadata(PATH_A, message.clone()).unwrap();
    let (path, got) = r2.handle.recv_metadata(Duration::from_secs(5)).expect("no message at r2");
    assert_eq!(path, PATH_A);
    assert!(got == message, "bytes differ over IPv6");
    assert_eq!(r1.handle.send_errors(), 0, "a fragment exceeded the IPv6 path MTU");
    assert_eq!(r2.handle.reassembly_counters(PATH_A).unwrap().rejected(), 0);
}

#[test]
fn single_hop_ipv6_hop_limit() {
    // Two svrd single-hop sessions over IPv6: each accepts only hop limit 255, which the
    // kernel reports through IPV6_RECVHOPLIMIT.
    let lab = ipv6_lab("v6hop");
    let single = |local: &str, remote: &str| {
        let mut s = spec(local, remote);
        s.flavour = Flavour::SingleHop;
        s
    };
    let r1 = Endpoint::start(&lab.ns("r1"), vec![single("fd00:211:1::1", "fd00:211:1::2")]);
    let r2 = Endpoint::start(&lab.ns("r2"), vec![single("fd00:211:1::2", "fd00:211:1::1")]);
    let up =
        wait_until(Duration::from_secs(10), || r1.handle.is_up(PATH_A) && r2.handle.is_up(PATH_A));
    assert!(up.is_some(), "r1 {:?} r2 {:?}", r1.handle.status(PATH_A), r2.handle.status(PATH_A));
    std::thread::sleep(ms(1000));
    assert_eq!(r1.handle.counters().ttl_not_255, 0);
    assert_eq!(r2.handle.counters().total(), 0, "{:?}", r2.handle.counters());
    assert!(r1.handle.is_up(PATH_A));
}

#[test]
fn single_hop_rejects_low_ttl() {
    use svr_control::bfd::packet::{ControlPacket, Flags};
    let lab = Lab::new("ttl", &["r1", "r2"]);
    lab.veth("r1", "wan-a1", "10.211.1.1", "r2", "wan-a2", "10.211.1.2");
    let mut s = spec("10.211.1.2", "10.211.1.1");
    s.flavour = Flavour::SingleHop;
    let r2 = Endpoint::start(&lab.ns("r2"), vec![s]);

    // A hand-made peer in r1 sends the same Down packet with TTL 64, then with TTL 255.
    let ns = lab.ns("r1");
    let sender = std::thread::spawn(move || {
        bfd_netns::enter(&ns);
        let socket = std::net::UdpSocket::bind("10.211.1.1:49999").unwrap();
        let packet = ControlPacket {
            diagnostic: Diagnostic::None,
            state: State::Down,
            flags: Flags::default(),
            detect_mult: 3,
            my_discriminator: 0x5150,
            your_discriminator: 0,
            desired_min_tx: ms(1000),
            required_min_rx: ms(1000),
            required_min_echo_rx: Duration::ZERO,
        };
        let mut sends = Vec::new();
        for ttl in [64, 255] {
            socket.set_ttl(ttl).unwrap();
            socket.send_to(&packet.to_bytes(), "10.211.1.2:3784").unwrap();
            std::thread::sleep(ms(200));
            sends.push(ttl);
        }
        sends
    });

    let dropped = wait_until(Duration::from_secs(5), || r2.handle.counters().ttl_not_255 == 1);
    assert!(dropped.is_some(), "{:?}", r2.handle.counters());
    assert_eq!(sender.join().unwrap(), vec![64, 255]);
    // Only the TTL 255 copy reached the session, which moved to Init on it.
    assert!(r2.handle.wait_for_state(PATH_A, State::Init, Duration::from_secs(2)));
    assert_eq!(r2.handle.status(PATH_A).unwrap().remote_discriminator, 0x5150);
    assert_eq!(r2.handle.counters().ttl_not_255, 1);
}
