//! Peer-path BFD authentication: the section codec, every rejection of the receive rules,
//! and the engine-level transitions (bring-up without keys, authentication becoming
//! required, spoofed packets ignored, restart after the detection time, key rotation),
//! all on a virtual clock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers outside #[test] functions fail the test on a broken expectation"
)]

use std::net::IpAddr;
use std::time::Duration;

use svr_control::bfd::auth::{
    AUTH_TYPE_HMAC_SHA256, AUTHENTICATED_LEN, AuthError, AuthSection, KeyGeneration,
    METADATA_SEQUENCE_ALLOWANCE, PathAuth, SECTION_LEN, Verdict,
};
use svr_control::bfd::packet::{ControlPacket, Diagnostic, Flags, State};
use svr_control::bfd::{
    DropReason, Engine, EngineError, Flavour, Instant, Output, PathId, PathSpec,
};

const A: &str = "10.213.0.1";
const B: &str = "10.213.0.2";
const NAME_A: &str = "router-a";
const NAME_B: &str = "router-b";
const OLD: [u8; 32] = [0x11; 32];
const NEW: [u8; 32] = [0x22; 32];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn t(ms: u64) -> Instant {
    Instant::ZERO + Duration::from_millis(ms)
}

fn head(state: State) -> [u8; 24] {
    ControlPacket {
        diagnostic: Diagnostic::None,
        state,
        flags: Flags::default(),
        detect_mult: 3,
        my_discriminator: 0x0a0a,
        your_discriminator: 0x0b0b,
        desired_min_tx: Duration::from_secs(1),
        required_min_rx: Duration::from_secs(1),
        required_min_echo_rx: Duration::ZERO,
    }
    .to_bytes()
}

/// Keys of router A (sender side) for `secret`.
fn keys_a(secret: &[u8; 32]) -> KeyGeneration {
    KeyGeneration::derive(secret, NAME_A, NAME_B)
}

/// Keys of router B (receiver side) for `secret`.
fn keys_b(secret: &[u8; 32]) -> KeyGeneration {
    KeyGeneration::derive(secret, NAME_B, NAME_A)
}

fn sender(secrets: &[[u8; 32]]) -> PathAuth {
    let mut auth = PathAuth::new(1000);
    auth.set_keys(secrets.iter().map(keys_a).collect());
    auth
}

fn receiver(secrets: &[[u8; 32]]) -> PathAuth {
    let mut auth = PathAuth::new(5000);
    auth.set_keys(secrets.iter().map(keys_b).collect());
    auth
}

/// Runs the receive rules on a datagram as the engine does, from its own header.
fn check(auth: &mut PathAuth, datagram: &[u8]) -> Result<Verdict, AuthError> {
    let (packet, length) = ControlPacket::parse(datagram).unwrap();
    auth.check(datagram, length, packet.flags.authentication_present, packet.detect_mult)
}

// Codec.

#[test]
fn section_round_trip() {
    let section = AuthSection { key_id: 7, sequence: 0xdead_beef, digest: [0x5a; 32] };
    let bytes = section.to_bytes();
    assert_eq!(bytes[0], AUTH_TYPE_HMAC_SHA256);
    assert_eq!(usize::from(bytes[1]), SECTION_LEN);
    assert_eq!(bytes[2], 7);
    assert_eq!(bytes[3], 0, "reserved byte");
    assert_eq!(&bytes[4..8], &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(AuthSection::parse(&bytes), Ok(section));
}

#[test]
fn section_ignores_reserved() {
    let mut bytes = AuthSection { key_id: 1, sequence: 2, digest: [3; 32] }.to_bytes();
    bytes[3] = 0xff;
    assert_eq!(AuthSection::parse(&bytes).unwrap().sequence, 2);
}

#[test]
fn seal_sets_header_fields() {
    let mut a = sender(&[OLD]);
    let datagram = a.seal(&head(State::Up), b"trailer");
    assert_eq!(datagram.len(), AUTHENTICATED_LEN + 7);
    assert_ne!(datagram[1] & 0x04, 0, "A bit");
    assert_eq!(usize::from(datagram[3]), AUTHENTICATED_LEN);
    let (packet, length) = ControlPacket::parse(&datagram).unwrap();
    assert_eq!(packet.state, State::Up);
    assert_eq!(length, AUTHENTICATED_LEN);
    let section = AuthSection::parse(&datagram[24..length]).unwrap();
    assert_eq!(section.key_id, keys_a(&OLD).key_id());
    assert_eq!(section.sequence, 1000);
    assert_eq!(&datagram[AUTHENTICATED_LEN..], b"trailer");
}

#[test]
fn seal_without_key_is_plain() {
    let mut a = PathAuth::new(1);
    let datagram = a.seal(&head(State::Down), b"xy");
    assert_eq!(&datagram[..24], &head(State::Down));
    assert_eq!(&datagram[24..], b"xy");
}

#[test]
fn sequence_advances_every_packet() {
    let mut a = sender(&[OLD]);
    let sequences: Vec<u32> = (0..4)
        .map(|_| {
            let d = a.seal(&head(State::Up), &[]);
            AuthSection::parse(&d[24..64]).unwrap().sequence
        })
        .collect();
    assert_eq!(sequences, [1000, 1001, 1002, 1003]);
}

#[test]
fn key_id_same_on_both_sides() {
    assert_eq!(keys_a(&OLD).key_id(), keys_b(&OLD).key_id());
}

#[test]
fn key_debug_hides_bytes() {
    let text = format!("{:?}", keys_a(&OLD));
    assert!(text.contains("key_id"), "{text}");
    assert!(!text.contains("transmit"), "{text}");
    assert!(!text.contains("receive"), "{text}");
}

// Receive rules, one per rejection.

#[test]
fn check_verifies_and_requires() {
    let mut a = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    assert!(!b.required());
    let datagram = a.seal(&head(State::Up), b"metadata");
    assert_eq!(check(&mut b, &datagram), Ok(Verdict::Verified { key_id: keys_b(&OLD).key_id() }));
    assert!(b.required());
}

#[test]
fn check_wrong_type() {
    let mut a = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    let mut datagram = a.seal(&head(State::Up), &[]);
    datagram[24] = 5;
    assert_eq!(check(&mut b, &datagram), Err(AuthError::TypeUnsupported { auth_type: 5 }));
    assert!(!b.required());
}

#[test]
fn check_wrong_auth_len() {
    let mut a = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    let mut datagram = a.seal(&head(State::Up), &[]);
    datagram[25] = 28;
    assert_eq!(check(&mut b, &datagram), Err(AuthError::LengthMismatch { auth_len: 28 }));
}

#[test]
fn check_length_field_short() {
    let mut a = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    let mut datagram = a.seal(&head(State::Up), &[]);
    datagram[3] = 63;
    assert_eq!(check(&mut b, &datagram), Err(AuthError::SectionLength { covered: 39 }));
    datagram[3] = 26;
    assert_eq!(check(&mut b, &datagram), Err(AuthError::SectionLength { covered: 2 }));
}

#[test]
fn check_length_field_long() {
    let mut a = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    let mut datagram = a.seal(&head(State::Up), &[0; 8]);
    datagram[3] = 68;
    assert_eq!(check(&mut b, &datagram), Err(AuthError::SectionLength { covered: 44 }));
}

#[test]
fn check_digest_flip() {
    let mut a = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    let id = keys_b(&OLD).key_id();
    let good = a.seal(&head(State::Up), b"meta");
    for position in [2, 12, 40, 63, 65] {
        let mut datagram = good.clone();
        datagram[position] ^= 0x01;
        assert_eq!(
            check(&mut b, &datagram),
            Err(AuthError::DigestMismatch { key_id: id }),
            "byte {position} flipped"
        );
    }
    assert!(!b.required(), "a failed packet made authentication required");
    assert_eq!(check(&mut b, &good), Ok(Verdict::Verified { key_id: id }));
}

#[test]
fn check_rejects_reflection() {
    // Router A's own packet sent back to it does not verify under A's receive key.
    let mut a = sender(&[OLD]);
    let mut a_receiving = sender(&[OLD]);
    let datagram = a.seal(&head(State::Up), &[]);
    assert!(matches!(check(&mut a_receiving, &datagram), Err(AuthError::DigestMismatch { .. })));
}

#[test]
fn check_replay() {
    let mut a = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    let datagram = a.seal(&head(State::Up), &[]);
    assert!(check(&mut b, &datagram).is_ok());
    assert_eq!(
        check(&mut b, &datagram),
        Err(AuthError::SequenceReplayed { sequence: 1000, last: 1000 })
    );
}

#[test]
fn check_old_sequence() {
    let mut a = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    let first = a.seal(&head(State::Down), &[]);
    let second = a.seal(&head(State::Up), &[]);
    assert!(check(&mut b, &second).is_ok());
    assert_eq!(
        check(&mut b, &first),
        Err(AuthError::SequenceReplayed { sequence: 1000, last: 1001 })
    );
}

#[test]
fn check_sequence_ahead() {
    let mut a = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    assert!(check(&mut b, &a.seal(&head(State::Up), &[])).is_ok());
    let window = 3 * 3 + METADATA_SEQUENCE_ALLOWANCE;
    for _ in 1..window {
        a.seal(&head(State::Up), &[]);
    }
    // The last packet of the window is accepted.
    assert!(check(&mut b, &a.seal(&head(State::Up), &[])).is_ok());
    for _ in 0..window {
        a.seal(&head(State::Up), &[]);
    }
    let last = 1000 + window;
    assert_eq!(
        check(&mut b, &a.seal(&head(State::Up), &[])),
        Err(AuthError::SequenceAhead { sequence: last + window + 1, last, window })
    );
}

#[test]
fn check_sequence_wraps() {
    let mut a = PathAuth::new(u32::MAX);
    a.set_keys(vec![keys_a(&OLD)]);
    let mut b = receiver(&[OLD]);
    assert!(check(&mut b, &a.seal(&head(State::Up), &[])).is_ok());
    assert!(check(&mut b, &a.seal(&head(State::Up), &[])).is_ok(), "sequence 0 after u32::MAX");
}

#[test]
fn missing_accepted_until_required() {
    let mut a = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    let plain = head(State::Down);
    assert_eq!(check(&mut b, &plain), Ok(Verdict::Unverified));
    assert!(check(&mut b, &a.seal(&head(State::Up), &[])).is_ok());
    assert_eq!(check(&mut b, &plain), Err(AuthError::Missing));
}

#[test]
fn unknown_key_accepted_until_required() {
    let mut a_new = sender(&[NEW]);
    let mut a_old = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    let unknown = a_new.seal(&head(State::Up), &[]);
    assert_eq!(check(&mut b, &unknown), Ok(Verdict::Unverified));
    assert!(!b.required());
    assert!(check(&mut b, &a_old.seal(&head(State::Up), &[])).is_ok());
    let unknown = a_new.seal(&head(State::Up), &[]);
    assert_eq!(
        check(&mut b, &unknown),
        Err(AuthError::UnknownKeyId { key_id: keys_a(&NEW).key_id() })
    );
}

#[test]
fn keyless_side_accepts_unverified() {
    let mut a = sender(&[OLD]);
    let mut b = PathAuth::new(7);
    for _ in 0..3 {
        assert_eq!(check(&mut b, &a.seal(&head(State::Up), &[])), Ok(Verdict::Unverified));
    }
    assert!(!b.required());
}

#[test]
fn rotation_accepts_both_generations() {
    let mut b = receiver(&[OLD, NEW]);
    let mut behind = sender(&[OLD, NEW]);
    let mut ahead = sender(&[NEW]);
    let from_behind = behind.seal(&head(State::Up), &[]);
    assert_eq!(AuthSection::parse(&from_behind[24..64]).unwrap().key_id, keys_a(&OLD).key_id());
    assert_eq!(
        check(&mut b, &from_behind),
        Ok(Verdict::Verified { key_id: keys_b(&OLD).key_id() })
    );

    // The sender that retired the old generation continues its sequence.
    let mut ahead_seq = PathAuth::new(1001);
    ahead_seq.set_keys(vec![keys_a(&NEW)]);
    assert_eq!(
        check(&mut b, &ahead_seq.seal(&head(State::Up), &[])),
        Ok(Verdict::Verified { key_id: keys_b(&NEW).key_id() })
    );

    // A generation this side retired names an unknown key once authentication is required.
    let mut b_new = receiver(&[NEW]);
    assert!(check(&mut b_new, &ahead.seal(&head(State::Up), &[])).is_ok());
    assert!(matches!(check(&mut b_new, &from_behind), Err(AuthError::UnknownKeyId { .. })));
}

#[test]
fn sender_follows_peer_generation() {
    let mut a = sender(&[OLD, NEW]);
    let mut b = receiver(&[OLD, NEW]);
    let key_id = |d: &[u8]| AuthSection::parse(&d[24..64]).unwrap().key_id;

    // Both hold two generations and send under the oldest.
    let from_b = b.seal(&head(State::Up), &[]);
    assert_eq!(key_id(&from_b), keys_a(&OLD).key_id());

    // A retires the old one; its first packet under the new one moves B along.
    a.set_keys(vec![keys_a(&NEW)]);
    let from_a = a.seal(&head(State::Up), &[]);
    assert_eq!(key_id(&from_a), keys_a(&NEW).key_id());
    let mut a_from_b = PathAuth::new(0);
    a_from_b.set_keys(vec![keys_b(&OLD), keys_b(&NEW)]);
    assert!(check(&mut a_from_b, &from_a).is_ok());
    assert_eq!(key_id(&a_from_b.seal(&head(State::Up), &[])), keys_a(&NEW).key_id());

    // An older generation verified later does not move the sender back.
    let mut old_sender = sender(&[OLD]);
    let mut late = PathAuth::new(0);
    late.set_keys(vec![keys_b(&OLD), keys_b(&NEW)]);
    let mut new_sender = PathAuth::new(0);
    new_sender.set_keys(vec![keys_a(&NEW)]);
    assert!(check(&mut late, &new_sender.seal(&head(State::Up), &[])).is_ok());
    let mut old_packet = old_sender.seal(&head(State::Up), &[]);
    old_packet.truncate(64);
    let _ = check(&mut late, &old_packet);
    assert_eq!(key_id(&late.seal(&head(State::Up), &[])), keys_a(&NEW).key_id());
}

#[test]
fn reset_forgets_requirement() {
    let mut a = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    assert!(check(&mut b, &a.seal(&head(State::Up), &[])).is_ok());
    b.reset_requirement();
    assert!(!b.required());
    assert_eq!(check(&mut b, &head(State::Down)), Ok(Verdict::Unverified));
    // A fresh peer may restart its sequence anywhere.
    let mut restarted = sender(&[OLD]);
    assert!(check(&mut b, &restarted.seal(&head(State::Up), &[])).is_ok());
}

#[test]
fn dropping_keys_resets() {
    let mut a = sender(&[OLD]);
    let mut b = receiver(&[OLD]);
    assert!(check(&mut b, &a.seal(&head(State::Up), &[])).is_ok());
    b.set_keys(Vec::new());
    assert!(!b.required());
    assert!(!b.has_key());
    assert_eq!(check(&mut b, &head(State::Down)), Ok(Verdict::Unverified));
}

#[test]
fn errors_name_values() {
    let cases: [(AuthError, &str); 8] = [
        (AuthError::Missing, "without authentication"),
        (AuthError::TypeUnsupported { auth_type: 4 }, "type 4"),
        (AuthError::LengthMismatch { auth_len: 28 }, "len 28"),
        (AuthError::SectionLength { covered: 39 }, "39-byte"),
        (AuthError::UnknownKeyId { key_id: 9 }, "key id 9"),
        (AuthError::DigestMismatch { key_id: 9 }, "key id 9"),
        (AuthError::SequenceReplayed { sequence: 5, last: 6 }, "sequence 5"),
        (AuthError::SequenceAhead { sequence: 5000, last: 6, window: 1033 }, "1033"),
    ];
    for (error, expected) in cases {
        let text = error.to_string();
        assert!(text.contains(expected), "{text}");
    }
}

// Engine transitions on a virtual clock.

/// Two engines joined by a wire that a test can tap: every datagram from A to B passes
/// through `filter`, which returns false to drop it.
struct Pair {
    a: Engine,
    b: Engine,
    now: Instant,
    /// Copies of the last datagrams A sent, for spoofing.
    captured: Vec<Vec<u8>>,
    state_changes_b: Vec<(State, State)>,
}

impl Pair {
    fn new() -> Pair {
        let mut a = Engine::new(1);
        let mut b = Engine::new(2);
        a.add_path(PathSpec::new(Flavour::PeerPath, ip(A), ip(B)));
        b.add_path(PathSpec::new(Flavour::PeerPath, ip(B), ip(A)));
        let mut pair = Pair { a, b, now: t(0), captured: Vec::new(), state_changes_b: Vec::new() };
        let to_b = pair.a.start(t(0));
        let to_a = pair.b.start(t(0));
        pair.deliver_to_b(to_b);
        pair.deliver_to_a(to_a);
        pair
    }

    fn keys(&mut self, a: &[[u8; 32]], b: &[[u8; 32]]) {
        self.a.set_keys(PathId(0), a.iter().map(keys_a).collect()).unwrap();
        self.b.set_keys(PathId(0), b.iter().map(keys_b).collect()).unwrap();
    }

    fn deliver_to_b(&mut self, outputs: Vec<Output>) {
        let mut replies = Vec::new();
        for output in outputs {
            if let Output::Transmit { datagram, .. } = output {
                self.captured.push(datagram.clone());
                if let Ok(out) =
                    self.b.receive(Flavour::PeerPath, ip(B), ip(A), None, &datagram, self.now)
                {
                    replies.extend(out);
                }
            }
        }
        self.note_b(&replies);
        self.deliver_to_a(replies);
    }

    fn deliver_to_a(&mut self, outputs: Vec<Output>) {
        let mut replies = Vec::new();
        for output in outputs {
            if let Output::Transmit { datagram, .. } = output
                && let Ok(out) =
                    self.a.receive(Flavour::PeerPath, ip(A), ip(B), None, &datagram, self.now)
            {
                replies.extend(out);
            }
        }
        if !replies.is_empty() {
            self.deliver_to_b(replies);
        }
    }

    fn note_b(&mut self, outputs: &[Output]) {
        for output in outputs {
            if let Output::StateChanged { from, to, .. } = output {
                self.state_changes_b.push((*from, *to));
            }
        }
    }

    /// Runs both engines' timers until `until`.
    fn run_until(&mut self, until: Instant) {
        for _ in 0..100_000 {
            let next = [self.a.next_deadline(), self.b.next_deadline()].into_iter().flatten().min();
            let Some(next) = next.filter(|at| *at <= until) else { break };
            self.now = next;
            let from_a = self.a.handle_timers(next);
            let from_b = self.b.handle_timers(next);
            self.note_b(&from_b);
            self.deliver_to_b(from_a);
            self.deliver_to_a(from_b);
        }
        self.now = until;
    }

    fn state_a(&self) -> State {
        self.a.session(PathId(0)).unwrap().state()
    }

    fn state_b(&self) -> State {
        self.b.session(PathId(0)).unwrap().state()
    }

    /// Forges a plain packet with A's discriminators in `state`, as an attacker would.
    fn spoof(&self, state: State) -> Vec<u8> {
        let captured = self.captured.last().unwrap();
        let (packet, _) = ControlPacket::parse(captured).unwrap();
        ControlPacket { state, diagnostic: Diagnostic::None, flags: Flags::default(), ..packet }
            .to_bytes()
            .to_vec()
    }

    fn inject_to_b(&mut self, datagram: &[u8]) -> Result<Vec<Output>, DropReason> {
        let result = self.b.receive(Flavour::PeerPath, ip(B), ip(A), None, datagram, self.now);
        if let Ok(outputs) = &result {
            self.note_b(outputs);
        }
        result
    }
}

#[test]
fn plain_bring_up_without_keys() {
    let mut pair = Pair::new();
    pair.run_until(t(5_000));
    assert_eq!(pair.state_a(), State::Up);
    assert_eq!(pair.state_b(), State::Up);
    let (packet, length) = ControlPacket::parse(pair.captured.last().unwrap()).unwrap();
    assert!(!packet.flags.authentication_present);
    assert_eq!(length, 24);
    assert!(!pair.b.authentication(PathId(0)).unwrap().required());
}

#[test]
fn keys_make_auth_required() {
    let mut pair = Pair::new();
    pair.run_until(t(5_000));
    pair.keys(&[OLD], &[OLD]);
    pair.run_until(t(8_000));
    assert_eq!(pair.state_b(), State::Up);
    let (packet, length) = ControlPacket::parse(pair.captured.last().unwrap()).unwrap();
    assert!(packet.flags.authentication_present);
    assert_eq!(length, AUTHENTICATED_LEN);
    assert!(pair.a.authentication(PathId(0)).unwrap().required());
    assert!(pair.b.authentication(PathId(0)).unwrap().required());
    assert_eq!(pair.b.counters().auth_bad + pair.b.counters().auth_missing, 0);
}

#[test]
fn one_sided_key_stays_up() {
    // A gets the key first. B cannot verify and accepts, and A keeps accepting B's plain
    // packets.
    let mut pair = Pair::new();
    pair.run_until(t(5_000));
    pair.a.set_keys(PathId(0), vec![keys_a(&OLD)]).unwrap();
    pair.run_until(t(20_000));
    assert_eq!(pair.state_a(), State::Up);
    assert_eq!(pair.state_b(), State::Up);
    assert!(!pair.a.authentication(PathId(0)).unwrap().required());
    assert!(!pair.b.authentication(PathId(0)).unwrap().required());
}

#[test]
fn spoofed_down_ignored_when_required() {
    let mut pair = Pair::new();
    pair.run_until(t(5_000));
    pair.keys(&[OLD], &[OLD]);
    pair.run_until(t(8_000));
    let changes = pair.state_changes_b.len();

    for state in [State::Down, State::AdminDown] {
        let spoof = pair.spoof(state);
        assert_eq!(pair.inject_to_b(&spoof), Err(DropReason::Authentication(AuthError::Missing)));
    }
    // A captured authenticated packet with its state rewritten fails the digest.
    let mut forged = pair.captured.last().unwrap().clone();
    forged[1] = (forged[1] & 0x3f) | (State::Down.to_bits() << 6);
    assert!(matches!(
        pair.inject_to_b(&forged),
        Err(DropReason::Authentication(AuthError::DigestMismatch { .. }))
    ));
    // The captured packet replayed unchanged is old.
    let replay = pair.captured.last().unwrap().clone();
    assert!(matches!(
        pair.inject_to_b(&replay),
        Err(DropReason::Authentication(AuthError::SequenceReplayed { .. }))
    ));

    assert_eq!(pair.state_b(), State::Up);
    assert_eq!(pair.state_changes_b.len(), changes, "{:?}", pair.state_changes_b);
    assert_eq!(pair.b.counters().auth_missing, 2);
    assert_eq!(pair.b.counters().auth_bad, 2);
    pair.run_until(t(12_000));
    assert_eq!(pair.state_b(), State::Up);
}

#[test]
fn spoofed_down_flaps_without_keys() {
    // The same forgery against a path without keys moves the session: the reason for the
    // rules above.
    let mut pair = Pair::new();
    pair.run_until(t(5_000));
    let spoof = pair.spoof(State::Down);
    assert!(pair.inject_to_b(&spoof).is_ok());
    assert_eq!(pair.state_b(), State::Down);
}

#[test]
fn metadata_kept_when_auth_fails() {
    let mut pair = Pair::new();
    pair.run_until(t(5_000));
    pair.keys(&[OLD], &[OLD]);
    pair.run_until(t(8_000));

    // A plain carrier packet with a whole metadata message, as a peer that lost its keys
    // would send.
    let mut fresh = Engine::new(9);
    let path = fresh.add_path(PathSpec::new(Flavour::PeerPath, ip(A), ip(B)));
    let outputs = fresh.send_metadata(path, b"signed key exchange").unwrap();
    let Output::Transmit { datagram, .. } = &outputs[0] else { panic!("{outputs:?}") };
    let mut datagram = datagram.clone();
    datagram[..24].copy_from_slice(&pair.spoof(State::Down));

    let outputs = pair.inject_to_b(&datagram).unwrap();
    assert!(
        outputs.iter().any(
            |o| matches!(o, Output::Metadata { message, .. } if message == b"signed key exchange")
        ),
        "{outputs:?}"
    );
    assert!(!outputs.iter().any(|o| matches!(o, Output::StateChanged { .. })), "{outputs:?}");
    assert_eq!(pair.state_b(), State::Up);
    assert_eq!(pair.b.counters().auth_missing, 1);
}

#[test]
fn restart_recovers_after_detect_time() {
    let mut pair = Pair::new();
    pair.run_until(t(5_000));
    pair.keys(&[OLD], &[OLD]);
    pair.run_until(t(8_000));
    assert!(pair.b.authentication(PathId(0)).unwrap().required());

    // A restarts: a fresh engine, no keys, new discriminator, plain packets.
    pair.a = Engine::new(77);
    pair.a.add_path(PathSpec::new(Flavour::PeerPath, ip(A), ip(B)));
    let start = pair.a.start(pair.now);
    pair.deliver_to_b(start);
    assert!(pair.b.counters().auth_missing >= 1);
    assert_eq!(pair.state_b(), State::Up, "plain packets moved a required session");

    // Within the detection time B stays Up; after it B goes Down and hears A again.
    let detect = pair.b.session(PathId(0)).unwrap().detection_time();
    pair.run_until(pair.now + detect / 2);
    assert_eq!(pair.state_b(), State::Up);
    pair.run_until(pair.now + detect + Duration::from_secs(10));
    assert!(pair.state_changes_b.contains(&(State::Up, State::Down)), "{:?}", pair.state_changes_b);
    assert!(!pair.b.authentication(PathId(0)).unwrap().required());
    assert_eq!(pair.state_a(), State::Up);
    assert_eq!(pair.state_b(), State::Up);

    // Re-keyed, the path authenticates again.
    pair.keys(&[NEW], &[NEW]);
    pair.run_until(pair.now + Duration::from_secs(5));
    assert!(pair.b.authentication(PathId(0)).unwrap().required());
    assert_eq!(pair.state_b(), State::Up);
}

#[test]
fn rotation_keeps_path_up() {
    let mut pair = Pair::new();
    pair.run_until(t(5_000));
    pair.keys(&[OLD], &[OLD]);
    pair.run_until(t(8_000));
    let changes = pair.state_changes_b.len();
    let bad = pair.b.counters().auth_bad;

    // B learns the new generation first, then A, then both retire the old one, one side at
    // a time.
    pair.keys(&[OLD], &[OLD, NEW]);
    pair.run_until(t(11_000));
    pair.keys(&[OLD, NEW], &[OLD, NEW]);
    pair.run_until(t(14_000));
    pair.keys(&[NEW], &[OLD, NEW]);
    pair.run_until(t(17_000));
    pair.keys(&[NEW], &[NEW]);
    pair.run_until(t(20_000));

    assert_eq!(pair.state_b(), State::Up);
    assert_eq!(pair.state_a(), State::Up);
    assert_eq!(pair.state_changes_b.len(), changes, "{:?}", pair.state_changes_b);
    assert_eq!(pair.b.counters().auth_bad, bad);
    let captured = pair.captured.last().unwrap();
    assert_eq!(
        AuthSection::parse(&captured[24..AUTHENTICATED_LEN]).unwrap().key_id,
        keys_a(&NEW).key_id()
    );
}

#[test]
fn metadata_fits_mtu_with_auth() {
    let mut pair = Pair::new();
    pair.run_until(t(5_000));
    pair.keys(&[OLD], &[OLD]);
    let message: Vec<u8> = (0..4000u32).map(|i| (i * 7) as u8).collect();
    let outputs = pair.a.send_metadata(PathId(0), &message).unwrap();
    let mut received = Vec::new();
    for output in outputs {
        let Output::Transmit { datagram, .. } = output else { panic!("{output:?}") };
        assert!(datagram.len() + 28 <= 1280, "{} bytes", datagram.len());
        for o in pair.inject_to_b(&datagram).unwrap() {
            if let Output::Metadata { message, .. } = o {
                received.push(message);
            }
        }
    }
    assert_eq!(received, vec![message]);
    assert!(pair.b.authentication(PathId(0)).unwrap().required());
}

#[test]
fn single_hop_has_no_keys() {
    let mut engine = Engine::new(3);
    let path = engine.add_path(PathSpec::new(Flavour::SingleHop, ip(A), ip(B)));
    assert_eq!(
        engine.set_keys(path, vec![keys_a(&OLD)]),
        Err(EngineError::AuthenticationNotCarried { path })
    );
    assert!(engine.authentication(path).is_none());
    assert_eq!(
        engine.set_keys(PathId(5), Vec::new()),
        Err(EngineError::UnknownPath { path: PathId(5) })
    );
}
