//! Engine tests without sockets: demultiplexing, drop reasons and their counters, the
//! TTL rule of single-hop sessions, and metadata carriage between two engines.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers outside #[test] functions fail the test on a broken expectation"
)]

use std::net::IpAddr;
use std::time::Duration;

use svr_control::bfd::packet::{ControlPacket, Diagnostic, Flags, ParseError, State};
use svr_control::bfd::{
    DropReason, Engine, EngineError, Flavour, Instant, Output, PathId, PathSpec,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const A: &str = "10.212.0.1";
const B: &str = "10.212.0.2";

fn packet(state: State, my: u32, your: u32) -> ControlPacket {
    ControlPacket {
        diagnostic: Diagnostic::None,
        state,
        flags: Flags::default(),
        detect_mult: 3,
        my_discriminator: my,
        your_discriminator: your,
        desired_min_tx: Duration::from_secs(1),
        required_min_rx: Duration::from_secs(1),
        required_min_echo_rx: Duration::ZERO,
    }
}

fn engine_with(flavour: Flavour) -> (Engine, PathId) {
    let mut engine = Engine::new(42);
    let path = engine.add_path(PathSpec::new(flavour, ip(A), ip(B)));
    let _ = engine.start(Instant::ZERO);
    (engine, path)
}

fn t(ms: u64) -> Instant {
    Instant::ZERO + Duration::from_millis(ms)
}

#[test]
fn single_hop_accepts_ttl_255() {
    let (mut engine, path) = engine_with(Flavour::SingleHop);
    let bytes = packet(State::Down, 0x99, 0).to_bytes();
    let outputs =
        engine.receive(Flavour::SingleHop, ip(A), ip(B), Some(255), &bytes, t(5)).unwrap();
    assert!(outputs.iter().any(|o| matches!(o, Output::StateChanged { to: State::Init, .. })));
    assert_eq!(engine.session(path).unwrap().remote_discriminator(), 0x99);
}

#[test]
fn single_hop_rejects_ttl_not_255() {
    let (mut engine, path) = engine_with(Flavour::SingleHop);
    let bytes = packet(State::Down, 0x99, 0).to_bytes();
    for ttl in [Some(254), Some(64), None] {
        let result = engine.receive(Flavour::SingleHop, ip(A), ip(B), ttl, &bytes, t(5));
        assert_eq!(result, Err(DropReason::TtlNot255 { ttl }));
    }
    assert_eq!(engine.counters().ttl_not_255, 3);
    assert_eq!(engine.session(path).unwrap().state(), State::Down, "a drop moved the session");
    assert_eq!(engine.session(path).unwrap().remote_discriminator(), 0);
}

#[test]
fn peer_path_ignores_ttl() {
    let (mut engine, path) = engine_with(Flavour::PeerPath);
    let bytes = packet(State::Down, 0x99, 0).to_bytes();
    let result = engine.receive(Flavour::PeerPath, ip(A), ip(B), Some(17), &bytes, t(5));
    assert!(result.is_ok());
    assert_eq!(engine.session(path).unwrap().state(), State::Init);
}

#[test]
fn unknown_discriminator_dropped() {
    let (mut engine, path) = engine_with(Flavour::PeerPath);
    let ours = engine.session(path).unwrap().local_discriminator().get();
    let bytes = packet(State::Up, 0x99, ours.wrapping_add(1)).to_bytes();
    let result = engine.receive(Flavour::PeerPath, ip(A), ip(B), None, &bytes, t(5));
    assert_eq!(
        result,
        Err(DropReason::UnknownDiscriminator { discriminator: ours.wrapping_add(1) })
    );
    assert_eq!(engine.counters().unknown_discriminator, 1);
    assert_eq!(engine.session(path).unwrap().remote_discriminator(), 0);
}

#[test]
fn discriminator_of_other_flavour_dropped() {
    let (mut engine, path) = engine_with(Flavour::PeerPath);
    let ours = engine.session(path).unwrap().local_discriminator().get();
    let bytes = packet(State::Up, 0x99, ours).to_bytes();
    let result = engine.receive(Flavour::SingleHop, ip(A), ip(B), Some(255), &bytes, t(5));
    assert_eq!(result, Err(DropReason::UnknownDiscriminator { discriminator: ours }));
}

#[test]
fn no_session_for_addresses() {
    let (mut engine, _) = engine_with(Flavour::SingleHop);
    let bytes = packet(State::Down, 0x99, 0).to_bytes();
    let result =
        engine.receive(Flavour::SingleHop, ip(A), ip("10.212.0.9"), Some(255), &bytes, t(5));
    assert_eq!(result, Err(DropReason::NoSession));
    assert_eq!(engine.counters().no_session, 1);
}

#[test]
fn source_mismatch_dropped() {
    let (mut engine, path) = engine_with(Flavour::PeerPath);
    let ours = engine.session(path).unwrap().local_discriminator().get();
    let bytes = packet(State::Init, 0x99, ours).to_bytes();
    let result = engine.receive(Flavour::PeerPath, ip(A), ip("10.212.0.9"), None, &bytes, t(5));
    assert_eq!(result, Err(DropReason::SourceMismatch));
    assert_eq!(engine.counters().source_mismatch, 1);
    assert_eq!(engine.session(path).unwrap().state(), State::Down);
}

#[test]
fn malformed_counted_by_reason() {
    let (mut engine, path) = engine_with(Flavour::PeerPath);
    let good = packet(State::Down, 0x99, 0).to_bytes();
    let mut cases: Vec<(Vec<u8>, ParseError)> = Vec::new();
    cases.push((good[..10].to_vec(), ParseError::Truncated { datagram: 10 }));
    let mut b = good;
    b[0] = 0x40;
    cases.push((b.to_vec(), ParseError::BadVersion { version: 2 }));
    let mut b = good;
    b[3] = 20;
    cases.push((b.to_vec(), ParseError::LengthTooShort { length: 20, minimum: 24 }));
    let mut b = good;
    b[3] = 25;
    cases.push((b.to_vec(), ParseError::LengthExceedsDatagram { length: 25, datagram: 24 }));
    let mut b = good;
    b[2] = 0;
    cases.push((b.to_vec(), ParseError::ZeroDetectMult));
    let mut b = good;
    b[1] |= 1;
    cases.push((b.to_vec(), ParseError::MultipointSet));
    let mut b = good;
    b[4..8].fill(0);
    cases.push((b.to_vec(), ParseError::ZeroMyDiscriminator));
    let mut b = good;
    b[1] = 0xc0;
    cases.push((b.to_vec(), ParseError::ZeroYourDiscriminator { state: State::Up }));

    for (bytes, error) in &cases {
        let result = engine.receive(Flavour::PeerPath, ip(A), ip(B), None, bytes, t(5));
        assert_eq!(result, Err(DropReason::Malformed(*error)));
    }

    // Single-hop sessions run no authentication, so the A bit alone drops the packet.
    let (mut single, _) = engine_with(Flavour::SingleHop);
    let mut b = good.to_vec();
    b.extend_from_slice(&[1, 3, 1]);
    b[1] |= 0x04;
    b[3] = 27;
    let result = single.receive(Flavour::SingleHop, ip(A), ip(B), Some(255), &b, t(5));
    assert_eq!(result, Err(DropReason::Malformed(ParseError::AuthenticationUnsupported)));
    assert_eq!(single.counters().authentication_unsupported, 1);
    let c = engine.counters();
    let each = [
        c.truncated,
        c.bad_version,
        c.length_too_short,
        c.length_exceeds_datagram,
        c.zero_detect_mult,
        c.multipoint_set,
        c.zero_my_discriminator,
        c.zero_your_discriminator,
    ];
    assert_eq!(each, [1; 8], "{c:?}");
    assert_eq!(c.total(), 8);
    assert_eq!(engine.session(path).unwrap().state(), State::Down);
    assert_eq!(engine.session(path).unwrap().remote_discriminator(), 0);
}

#[test]
fn single_hop_carries_no_metadata() {
    let (mut engine, path) = engine_with(Flavour::SingleHop);
    assert_eq!(
        engine.send_metadata(path, b"certificate"),
        Err(EngineError::MetadataNotCarried { path })
    );
    // Bytes after the control packet on 3784 are ignored, not reassembled.
    let mut datagram = packet(State::Down, 0x99, 0).to_bytes().to_vec();
    datagram.extend_from_slice(&[0x53, 0x56, 1, 0, 0, 0, 0, 1]);
    let outputs =
        engine.receive(Flavour::SingleHop, ip(A), ip(B), Some(255), &datagram, t(5)).unwrap();
    assert!(!outputs.iter().any(|o| matches!(o, Output::Metadata { .. })));
    assert!(engine.reassembler(path).is_none());
}

#[test]
fn unknown_path_rejected() {
    let (mut engine, _) = engine_with(Flavour::PeerPath);
    let missing = PathId(5);
    assert_eq!(
        engine.send_metadata(missing, b"x"),
        Err(EngineError::UnknownPath { path: missing })
    );
    assert_eq!(
        engine.admin_down(missing, Diagnostic::AdministrativelyDown, t(1)),
        Err(EngineError::UnknownPath { path: missing })
    );
}

#[test]
fn discriminators_unique_nonzero() {
    let mut engine = Engine::new(7);
    let mut seen = std::collections::HashSet::new();
    for i in 0..200u8 {
        let path =
            engine.add_path(PathSpec::new(Flavour::PeerPath, ip(A), ip(&format!("10.212.1.{i}"))));
        let d = engine.session(path).unwrap().local_discriminator().get();
        assert_ne!(d, 0);
        assert!(seen.insert(d), "discriminator {d:#x} reused");
    }
}

/// Delivers every transmit of `from` to `to`, with the addresses swapped.
fn deliver(
    outputs: Vec<Output>,
    to: &mut Engine,
    local: &str,
    remote: &str,
    now: Instant,
) -> Vec<Output> {
    let mut produced = Vec::new();
    for output in outputs {
        if let Output::Transmit { datagram, .. } = output {
            if let Ok(out) =
                to.receive(Flavour::PeerPath, ip(local), ip(remote), None, &datagram, now)
            {
                produced.extend(out);
            }
        } else {
            produced.push(output);
        }
    }
    produced
}

/// Two engines over a lossless zero-latency wire until both sessions are Up.
fn up_pair() -> (Engine, Engine) {
    let mut a = Engine::new(1);
    let mut b = Engine::new(2);
    a.add_path(PathSpec::new(Flavour::PeerPath, ip(A), ip(B)));
    b.add_path(PathSpec::new(Flavour::PeerPath, ip(B), ip(A)));
    let mut to_b = a.start(t(0));
    let mut to_a = b.start(t(0));
    for round in 0..10 {
        let now = t(round);
        let from_b = deliver(std::mem::take(&mut to_b), &mut b, B, A, now);
        let from_a = deliver(std::mem::take(&mut to_a), &mut a, A, B, now);
        to_a = from_b;
        to_b = from_a;
    }
    assert_eq!(a.session(PathId(0)).unwrap().state(), State::Up);
    assert_eq!(b.session(PathId(0)).unwrap().state(), State::Up);
    (a, b)
}

#[test]
fn metadata_between_engines() {
    let (mut a, mut b) = up_pair();
    let message: Vec<u8> = (0..4000u32).map(|i| (i * 31) as u8).collect();
    let datagrams = a.send_metadata(PathId(0), &message).unwrap();
    assert_eq!(datagrams.len(), 4);
    for d in &datagrams {
        let Output::Transmit { datagram, .. } = d else { panic!("{d:?}") };
        // IPv4 + UDP + datagram fit a 1280-byte MTU.
        assert!(datagram.len() + 28 <= 1280, "{} bytes", datagram.len());
        // Each datagram leads with a valid control packet of the session.
        let (packet, length) = ControlPacket::parse(datagram).unwrap();
        assert_eq!(length, 24);
        assert_eq!(packet.state, State::Up);
        assert!(!packet.flags.poll);
        assert!(!packet.flags.final_);
    }
    let mut received = Vec::new();
    for (i, d) in datagrams.into_iter().rev().enumerate() {
        let Output::Transmit { datagram, .. } = d else { unreachable!() };
        let outputs =
            b.receive(Flavour::PeerPath, ip(B), ip(A), None, &datagram, t(100 + i as u64)).unwrap();
        for o in outputs {
            if let Output::Metadata { path, message } = o {
                assert_eq!(path, PathId(0));
                received.push(message);
            }
        }
    }
    assert_eq!(received, vec![message]);
    assert_eq!(b.reassembler(PathId(0)).unwrap().counters().completed, 1);
}

#[test]
fn bad_metadata_moves_no_state() {
    let (_, mut b) = up_pair();
    let remote = b.session(PathId(0)).unwrap().remote_discriminator();
    let ours = b.session(PathId(0)).unwrap().local_discriminator().get();
    // An AdminDown control packet followed by a fragment with a bad magic.
    let mut datagram = packet(State::AdminDown, remote, ours).to_bytes().to_vec();
    datagram.extend_from_slice(&[0u8; 30]);
    let result = b.receive(Flavour::PeerPath, ip(B), ip(A), None, &datagram, t(200));
    assert!(matches!(result, Err(DropReason::Metadata(_))), "{result:?}");
    assert_eq!(b.session(PathId(0)).unwrap().state(), State::Up);
    assert_eq!(b.counters().metadata_rejected, 1);
    assert_eq!(b.reassembler(PathId(0)).unwrap().counters().bad_magic, 1);
}

#[test]
fn shutdown_sends_admin_down() {
    let (mut a, _) = up_pair();
    let outputs = a.shutdown(t(500));
    let sent: Vec<ControlPacket> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Transmit { datagram, .. } => Some(ControlPacket::parse(datagram).unwrap().0),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].state, State::AdminDown);
    assert_eq!(sent[0].diagnostic, Diagnostic::AdministrativelyDown);
}

#[test]
fn metadata_datagram_adds_only_framing() {
    // The engine stores no router names, so a metadata datagram is the control packet, the
    // fragment header and the caller's opaque bytes, with nothing else.
    let (mut a, _) = up_pair();
    let datagrams = a.send_metadata(PathId(0), &[0xee; 100]).unwrap();
    let Output::Transmit { datagram, .. } = &datagrams[0] else { unreachable!() };
    assert_eq!(datagram.len(), 24 + 24 + 100);
    assert!(datagram[48..].iter().all(|b| *b == 0xee));
}
