//! The burst path against the one-packet path: two copies of each router, forked from one
//! state, get the same received frames, one copy frame by frame through
//! [`Engine::process`] and the other in bursts through [`Engine::process_burst`]. Their
//! output frames and counters must stay equal, burst after burst.
//!
//! Frames that carry metadata (SVR fragments, the handshake) have a random IV in their
//! metadata section, so only their length and their headers up to the UDP checksum are
//! compared. Every other frame is compared byte for byte.

use std::time::{Duration, Instant};

use super::super::{CryptoPath, Engine, EngineConfig, FrameSource};
use crate::counters::DropReason;
use crate::crypto::Suite;
use crate::crypto::mb::Width;
use crate::epoch::{InterfaceId, KeyEpoch};
use crate::io::{DEFAULT_HEADROOM, Frame, FrameBuf};
use crate::packet::COOKIE;

#[path = "../../../../tests/engine_support/mod.rs"]
mod support;

use support::{
    GRACE, HOST1, HOST1_V6, HOST5, HOST5_V6, LAN, WAN, from_host5, ipv4_frame, ipv6_frame,
    router_epoch, udp,
};

/// Output frames of heap buffers, as large as the memory backend's.
struct Heap;

impl FrameSource for Heap {
    fn alloc(&mut self, _port: InterfaceId) -> Option<Frame> {
        let bytes = vec![0u8; 2048].into_boxed_slice();
        Some(Frame::from_parts(FrameBuf::Heap { bytes, pool: 0 }, DEFAULT_HEADROOM, 0))
    }

    fn free(&mut self, _port: InterfaceId, _frame: Frame) {}
}

fn frame_of(bytes: &[u8]) -> Frame {
    let mut frame = Heap.alloc(0).unwrap();
    frame.copy_from(bytes).unwrap();
    frame
}

type Output = Vec<(InterfaceId, Vec<u8>)>;

fn drain(engine: &mut Engine, output: &mut Output) {
    while let Some((port, frame)) = engine.pop_output() {
        output.push((port, frame.data().to_vec()));
    }
}

/// Runs `inputs` through the one-packet path, as the worker did before bursts.
fn one_by_one(
    engine: &mut Engine,
    epoch: &KeyEpoch,
    now: Instant,
    port: u16,
    inputs: &[Vec<u8>],
) -> Output {
    let mut output = Vec::new();
    for bytes in inputs {
        let mut frame = frame_of(bytes);
        if let Ok(Some((out_port, out))) = engine.process(epoch, now, port, &mut frame, &mut Heap) {
            output.push((out_port, out.data().to_vec()));
        }
        drain(engine, &mut output);
    }
    output
}

fn as_burst(
    engine: &mut Engine,
    epoch: &KeyEpoch,
    now: Instant,
    port: u16,
    inputs: &[Vec<u8>],
) -> Output {
    let mut frames: Vec<Frame> = inputs.iter().map(|bytes| frame_of(bytes)).collect();
    engine.process_burst(epoch, now, port, &mut frames, &mut Heap);
    let mut output = Vec::new();
    drain(engine, &mut output);
    output
}

/// SplitMix64, so that every run draws the same mixes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy)]
struct Flow {
    v6: bool,
    host1_port: u16,
    host5_port: u16,
}

/// Largest UDP payload of a LAN packet that fills a 1500-byte IP packet.
const MAX_PAYLOAD_V4: usize = 1500 - 20 - 8;
const MAX_PAYLOAD_V6: usize = 1500 - 40 - 8;

fn payload(len: usize, salt: u64) -> Vec<u8> {
    (0..len).map(|i| (i as u64).wrapping_mul(31).wrapping_add(salt) as u8).collect()
}

/// Clears the don't-fragment flag of an IPv4 frame and fixes its header checksum, so that
/// a packet too long for the WAN is sent as SVR fragments.
fn allow_fragments(frame: &mut [u8]) {
    frame[20] &= !0x40;
    frame[24..26].fill(0);
    let sum = support::internet_checksum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
}

/// Builds a frame of `flow` with `len` payload bytes, from host1 (`forward`) or host5.
fn flow_frame(flow: Flow, forward: bool, len: usize, fragments: bool, salt: u64) -> Vec<u8> {
    let data = payload(len, salt);
    let (ports, v4, v6) = if forward {
        ((flow.host1_port, flow.host5_port), (HOST1, HOST5), (HOST1_V6, HOST5_V6))
    } else {
        ((flow.host5_port, flow.host1_port), (HOST5, HOST1), (HOST5_V6, HOST1_V6))
    };
    let l4 = udp(ports.0, ports.1, &data);
    let frame = if flow.v6 {
        ipv6_frame(v6.0, v6.1, 17, 64, l4, 6)
    } else {
        let mut frame = ipv4_frame(v4.0, v4.1, 17, 64, salt as u16, l4, Some(6));
        if fragments {
            allow_fragments(&mut frame);
        }
        frame
    };
    if forward { frame } else { from_host5(frame) }
}

fn config(crypto: CryptoPath) -> EngineConfig {
    EngineConfig {
        sessions: 1024,
        rotation_grace: GRACE,
        idle_timeout: Duration::from_secs(60),
        crypto,
        ..EngineConfig::default()
    }
}

/// Outer header length of a WAN frame between the IPv4 waypoints of the harness.
const OUTER_LEN: usize = 14 + 20 + 8;

/// Compares two output lists: byte for byte, except for SVR packets with metadata.
fn assert_same_output(single: &Output, burst: &Output, context: &str) {
    assert_eq!(single.len(), burst.len(), "{context}: output frame count");
    for (index, ((port_a, a), (port_b, b))) in single.iter().zip(burst).enumerate() {
        assert_eq!(port_a, port_b, "{context}: port of output {index}");
        assert_eq!(a.len(), b.len(), "{context}: length of output {index}");
        let metadata = *port_a == WAN && a.get(OUTER_LEN..OUTER_LEN + 8) == Some(&COOKIE[..]);
        if metadata {
            // The UDP checksum covers the random IV.
            let headers = OUTER_LEN - 2;
            assert_eq!(a[..headers], b[..headers], "{context}: headers of metadata output {index}");
        } else {
            assert_eq!(a, b, "{context}: bytes of output {index}");
        }
    }
}

/// Two routers, each as a pair of copies: one runs the one-packet path and one the
/// burst path.
struct Pairs {
    r1_single: Engine,
    r1_burst: Engine,
    r2_single: Engine,
    r2_burst: Engine,
    r1_epoch: KeyEpoch,
    r2_epoch: KeyEpoch,
    now: Instant,
}

/// Builds r1 and r2, opens `flows` sessions (alternating SHA-384 and SHA-512 payload
/// keys), completes the metadata handshake of all but the last `unfinished`, starts a
/// key rotation on every third session, then forks each router.
fn setup(width: Width, flows: &[Flow], unfinished: usize) -> Pairs {
    let r1_epoch = router_epoch("r1", true);
    let r2_epoch = router_epoch("r2", false);
    let mut r1 = Engine::new(config(CryptoPath::Single), 2);
    let mut r2 = Engine::new(config(CryptoPath::Single), 2);
    let now = Instant::now();

    for (index, flow) in flows.iter().enumerate() {
        r1.session_suite =
            if index % 2 == 0 { Suite::AesCbc256HmacSha384 } else { Suite::AesCbc256HmacSha512 };
        let rounds = if index + unfinished >= flows.len() { 1 } else { 2 };
        for round in 0..rounds {
            let forward = flow_frame(*flow, true, 40, false, round);
            let wan = one_by_one(&mut r1, &r1_epoch, now, LAN, &[forward]);
            assert_eq!(wan.len(), 1, "flow {index}: forward packet not sealed");
            let wan: Vec<Vec<u8>> = wan.into_iter().map(|(_, bytes)| bytes).collect();
            let lan = one_by_one(&mut r2, &r2_epoch, now, WAN, &wan);
            assert_eq!(lan.len(), 1, "flow {index}: forward packet not restored");
            if round == 0 && rounds == 2 {
                let reply = flow_frame(*flow, false, 40, false, round);
                let wan = one_by_one(&mut r2, &r2_epoch, now, LAN, &[reply]);
                let wan: Vec<Vec<u8>> = wan.into_iter().map(|(_, bytes)| bytes).collect();
                let lan = one_by_one(&mut r1, &r1_epoch, now, WAN, &wan);
                assert_eq!(lan.len(), 1, "flow {index}: reply not restored");
            }
        }
    }

    // Every third session starts a payload-key rotation, which tests that advance the
    // clock past the grace time see switch.
    let ids: Vec<_> = r1.sessions.ids().collect();
    for id in ids.into_iter().step_by(3) {
        assert!(r1.start_rotation(id, now).unwrap(), "rotation not started");
    }

    let mut r1_burst = r1.fork();
    let mut r2_burst = r2.fork();
    r1_burst.config.crypto = CryptoPath::Burst(width);
    r2_burst.config.crypto = CryptoPath::Burst(width);
    Pairs { r1_single: r1, r1_burst, r2_single: r2, r2_burst, r1_epoch, r2_epoch, now }
}

impl Pairs {
    /// Runs LAN frames into the sending router and its WAN output, altered by `alter`,
    /// into the receiving one; both copies of each must agree. Returns the LAN output of
    /// the receiving router's burst copy.
    fn cross(
        &mut self,
        forward: bool,
        lan: &[Vec<u8>],
        alter: &mut dyn FnMut(Vec<Vec<u8>>) -> Vec<Vec<u8>>,
        context: &str,
    ) -> Output {
        let (sender, receiver) = if forward {
            (
                (&mut self.r1_single, &mut self.r1_burst, &self.r1_epoch),
                (&mut self.r2_single, &mut self.r2_burst, &self.r2_epoch),
            )
        } else {
            (
                (&mut self.r2_single, &mut self.r2_burst, &self.r2_epoch),
                (&mut self.r1_single, &mut self.r1_burst, &self.r1_epoch),
            )
        };
        let now = self.now;

        let sent_single = one_by_one(sender.0, sender.2, now, LAN, lan);
        let sent_burst = as_burst(sender.1, sender.2, now, LAN, lan);
        assert_same_output(&sent_single, &sent_burst, &format!("{context}, sealing"));
        assert_eq!(sender.0.counters(), sender.1.counters(), "{context}: sender counters");
        assert_eq!(
            sender.0.fragment_counters(),
            sender.1.fragment_counters(),
            "{context}: sender fragment counters"
        );

        let wan: Vec<Vec<u8>> = sent_single
            .into_iter()
            .filter(|(port, _)| *port == WAN)
            .map(|(_, bytes)| bytes)
            .collect();
        let wan = alter(wan);
        let opened_single = one_by_one(receiver.0, receiver.2, now, WAN, &wan);
        let opened_burst = as_burst(receiver.1, receiver.2, now, WAN, &wan);
        assert_same_output(&opened_single, &opened_burst, &format!("{context}, opening"));
        assert_eq!(receiver.0.counters(), receiver.1.counters(), "{context}: receiver counters");
        assert_eq!(
            receiver.0.fragment_counters(),
            receiver.1.fragment_counters(),
            "{context}: receiver fragment counters"
        );
        opened_burst
    }
}

fn test_flows() -> Vec<Flow> {
    (0..12)
        .map(|index| Flow {
            v6: index % 4 == 3,
            host1_port: 40_000 + index as u16,
            host5_port: 5000 + (index as u16 % 3),
        })
        .collect()
}

fn widths() -> Vec<Width> {
    let widths: Vec<Width> = Width::ALL.into_iter().filter(|width| width.is_available()).collect();
    assert!(widths.contains(&Width::Scalar), "the scalar width runs everywhere");
    widths
}

#[test]
fn burst_matches_single_random_mixes() {
    for width in widths() {
        let flows = test_flows();
        let mut pairs = setup(width, &flows, 2);
        let mut rng = Rng(0x5eed_0000 + width.lanes() as u64);
        // WAN frames of earlier bursts, to replay later.
        let mut history: Vec<Vec<u8>> = Vec::new();

        for round in 0..120 {
            pairs.now += Duration::from_millis(5);
            let forward = rng.chance(50);
            let count = 1 + rng.below(32);
            let lan: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let flow = flows[rng.below(flows.len())];
                    let max = if flow.v6 { MAX_PAYLOAD_V6 } else { MAX_PAYLOAD_V4 };
                    let len = match rng.below(10) {
                        0 => 0,
                        1 => max - rng.below(64),
                        _ => rng.below(1400),
                    };
                    let salt = rng.next();
                    flow_frame(flow, forward, len, rng.chance(50), salt)
                })
                .collect();

            let mut alter = |wan: Vec<Vec<u8>>| {
                let mut altered = Vec::new();
                for frame in wan {
                    history.push(frame.clone());
                    altered.push(frame.clone());
                    match rng.below(12) {
                        // A forged copy: one payload or tag byte flipped.
                        0 => {
                            let mut forged = frame.clone();
                            let at = OUTER_LEN + rng.below(forged.len() - OUTER_LEN);
                            forged[at] ^= 1 << rng.below(8);
                            let last = altered.len() - 1;
                            altered.insert(last, forged);
                        }
                        // The same packet again at once.
                        1 => altered.push(frame.clone()),
                        // A packet of an earlier burst.
                        2 => altered.push(history[rng.below(history.len())].clone()),
                        // A forged copy after the good one: a replay, whatever its tag.
                        4 => {
                            let mut forged = frame.clone();
                            let last = forged.len() - 1;
                            forged[last] ^= 0x01;
                            altered.push(forged);
                        }
                        // A forged packet in place of the good one.
                        3 => {
                            let last = altered.len() - 1;
                            let tag_at = frame.len() - 1 - rng.below(16);
                            altered[last][tag_at] ^= 0x80;
                        }
                        _ => {}
                    }
                }
                altered
            };
            pairs.cross(forward, &lan, &mut alter, &format!("{} round {round}", width.name()));
        }

        for engine in [&pairs.r1_burst, &pairs.r2_burst] {
            let (sealed, opened) = engine.staged.jobs_run;
            assert!(sealed > 500, "{}: {sealed} packets sealed in bursts", width.name());
            assert!(opened > 500, "{}: {opened} packets opened in bursts", width.name());
            let counters = engine.counters();
            assert!(counters.key_switches > 0, "{}: no key switched", width.name());
            assert!(counters.egress_forwarded > 500, "{}: too few packets opened", width.name());
            assert!(counters.drops(DropReason::BadTag) > 20, "{}: too few forgeries", width.name());
            assert!(counters.drops(DropReason::Replay) > 20, "{}: too few replays", width.name());
        }
    }
}

#[test]
fn forged_packet_spares_neighbours() {
    for width in widths() {
        let flows = test_flows();
        let mut pairs = setup(width, &flows, 0);
        let lan: Vec<Vec<u8>> = (0..24)
            .map(|index| flow_frame(flows[index % 5], true, 100 + index * 37, false, index as u64))
            .collect();
        let mut forged_at = 0;
        let mut genuine = Vec::new();
        let mut forge = |mut wan: Vec<Vec<u8>>| {
            forged_at = wan.len() / 2;
            genuine = wan[forged_at].clone();
            let last = wan[forged_at].len() - 1;
            wan[forged_at][last] ^= 1;
            wan
        };
        let before = pairs.r2_burst.counters().clone();
        let restored = pairs.cross(true, &lan, &mut forge, width.name());

        let after = pairs.r2_burst.counters();
        assert_eq!(restored.len(), lan.len() - 1, "{}: good packets delivered", width.name());
        assert_eq!(
            after.drops(DropReason::BadTag) - before.drops(DropReason::BadTag),
            1,
            "{}: forged packet counted",
            width.name()
        );
        assert_eq!(after.total_drops() - before.total_drops(), 1, "{}: other drops", width.name());
        for (index, (_, frame)) in restored.iter().enumerate() {
            let original = if index < forged_at { index } else { index + 1 };
            let expected = &lan[original];
            let name = width.name();
            assert_eq!(frame.len(), expected.len(), "{name}: length of packet {original}");
            assert_eq!(frame[42..], expected[42..], "{name}: payload of packet {original}");
        }

        // The forgery left its number unrecorded, so the genuine packet still opens.
        let (r2, epoch) = (&mut pairs.r2_burst, &pairs.r2_epoch);
        let late = as_burst(r2, epoch, pairs.now, WAN, &[genuine]);
        assert_eq!(late.len(), 1, "{}: genuine packet after its forgery", width.name());
    }
}

#[test]
fn partial_burst_every_size() {
    for width in widths() {
        let flows = test_flows();
        let mut pairs = setup(width, &flows, 0);
        for count in 1..=32 {
            for forward in [true, false] {
                let lan: Vec<Vec<u8>> = (0..count)
                    .map(|index| {
                        let flow = flows[index % flows.len()];
                        flow_frame(flow, forward, 40 * index, false, index as u64)
                    })
                    .collect();
                let mut keep = |wan: Vec<Vec<u8>>| wan;
                let context = format!("{} burst of {count}", width.name());
                let restored = pairs.cross(forward, &lan, &mut keep, &context);
                assert_eq!(restored.len(), count, "{context}: every packet restored");
            }
        }
    }
}

/// Flows that `setup` does not open, so that their first packets create sessions.
fn new_flows() -> Vec<Flow> {
    (0..5)
        .map(|index| Flow {
            v6: index % 3 == 2,
            host1_port: 41_000 + index as u16,
            host5_port: 6000,
        })
        .collect()
}

/// Builds a full burst of packets of `old` flows, with packets of `new` flows at every
/// third position, so that each new flow has several packets after its first.
fn mixed_burst(old: &[Flow], new: &[Flow], forward: bool, salt: u64) -> Vec<Vec<u8>> {
    (0..32)
        .map(|index| {
            let flow =
                if index % 3 == 1 { new[(index / 3) % new.len()] } else { old[index % old.len()] };
            flow_frame(flow, forward, 60 + index, false, salt + index as u64)
        })
        .collect()
}

#[test]
fn sessions_created_within_burst() {
    let paths = widths().into_iter().map(CryptoPath::Burst).chain([CryptoPath::Single]);
    for crypto in paths {
        let width = match crypto {
            CryptoPath::Burst(width) => width,
            CryptoPath::Single => Width::Scalar,
        };
        let flows = test_flows();
        let mut pairs = setup(width, &flows, 0);
        pairs.r1_burst.config.crypto = crypto;
        pairs.r2_burst.config.crypto = crypto;
        let created = pairs.r1_burst.counters().sessions_created;

        // The first burst creates the new sessions on both routers. The two copies of r1
        // draw different payload keys for them, so r1's burst copy is forked again from the
        // other before the replies come back.
        let lan = mixed_burst(&flows, &new_flows(), true, 0);
        let mut keep = |wan: Vec<Vec<u8>>| wan;
        let restored = pairs.cross(true, &lan, &mut keep, &format!("{crypto:?} first packets"));
        assert_eq!(restored.len(), lan.len(), "{crypto:?}: first packets restored");
        let new = new_flows().len() as u64;
        assert_eq!(pairs.r1_burst.counters().sessions_created - created, new, "{crypto:?}");
        let (used, redone) = pairs.r1_burst.staged.lookups_ahead;
        assert!(used > 0, "{crypto:?} r1: no lookup done ahead used");
        assert!(redone > 0, "{crypto:?} r1: no lookup done again after a change");
        pairs.r1_burst = pairs.r1_single.fork();
        pairs.r1_burst.config.crypto = crypto;

        // The next bursts carry the new sessions with metadata, end their handshake in
        // reverse, and carry them without metadata.
        for (round, forward) in [true, false, true].into_iter().enumerate() {
            let lan = mixed_burst(&flows, &new_flows(), forward, 100 * (round as u64 + 1));
            let context = format!("{crypto:?} round {round}");
            let restored = pairs.cross(forward, &lan, &mut keep, &context);
            assert_eq!(restored.len(), lan.len(), "{context}: every packet restored");
        }
        for (name, engine) in [("r1", &pairs.r1_burst), ("r2", &pairs.r2_burst)] {
            let (used, redone) = engine.staged.lookups_ahead;
            assert!(used > 32, "{crypto:?} {name}: {used} lookups done ahead used");
            if name == "r2" {
                assert!(redone > 0, "{crypto:?} r2: no lookup done again after a change");
            }
        }
    }
}
