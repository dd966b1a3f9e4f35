//! Fuzz target for the BFD control packet codec and the engine's receive path. Any datagram
//! must end as a packet or a counted drop, never a panic. A parsed packet must emit bytes
//! that parse back to the same packet.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use svr_control::bfd::{ControlPacket, Engine, Flavour, Instant, PathSpec};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 213, 0, 1));
const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 213, 0, 2));

fuzz_target!(|datagram: &[u8]| {
    if let Ok((packet, length)) = ControlPacket::parse(datagram) {
        // A parsed packet emits bytes that parse back to the same packet.
        assert!(length >= 24);
        assert!(length <= datagram.len());
        // The emitted bytes are the control part only, so a packet with the A bit set
        // (which needs its authentication section) is not expected to parse back alone.
        if !packet.flags.authentication_present {
            let (again, _) =
                ControlPacket::parse(&packet.to_bytes()).expect("emitted packet parses");
            assert_eq!(again, packet);
        }
    }

    let mut engine = Engine::new(1);
    engine.add_path(PathSpec::new(Flavour::SingleHop, LOCAL, REMOTE));
    engine.add_path(PathSpec::new(Flavour::PeerPath, LOCAL, REMOTE));
    let _ = engine.start(Instant::ZERO);
    for (i, flavour) in [Flavour::SingleHop, Flavour::PeerPath].into_iter().enumerate() {
        let now = Instant::from_nanos(1_000_000 * (i as u64 + 1));
        let before = engine.counters().total();
        if engine.receive(flavour, LOCAL, REMOTE, Some(255), datagram, now).is_err() {
            assert_eq!(engine.counters().total(), before + 1, "drop not counted");
        }
    }
    let _ = engine.handle_timers(Instant::from_nanos(10_000_000_000));
});
