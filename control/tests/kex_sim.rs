//! Simulation tests of the ESKM key exchange: convergence under loss, rejection of
//! forgeries and replays, key timing across rotations, restarts and algorithm changes.
//!
//! `SVR_SIM_SEEDS` sets the number of seeds of the MODP-2048 loss test, and the other loss
//! tests scale with it. The default of 200 runs the whole file in about two minutes on two
//! cores. A larger value runs a longer search.

// Test helpers outside #[test] functions unwrap too; a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use svr_control::kex::msg::MessageKind;
use svr_control::kex::sim::{Sim, SimConfig, SimEvent};
use svr_control::kex::{AlarmKind, DhGroup, KexAlgorithm, MlKemLevel, PeerId, SecurityStatus};

const DH2048: KexAlgorithm = KexAlgorithm::DiffieHellman(DhGroup::Modp2048);
const MLKEM768: KexAlgorithm = KexAlgorithm::MlKem(MlKemLevel::MlKem768);
const HYBRID: KexAlgorithm = KexAlgorithm::Hybrid(DhGroup::Modp2048, MlKemLevel::MlKem768);

/// Virtual-time bound for convergence at up to 30 % loss with a 5 s retransmit interval.
const CONVERGENCE_BOUND: Duration = Duration::from_secs(15 * 60);

/// Seeds for a loss test whose share of the base count is `share`.
fn seeds(share: f64) -> u64 {
    let base: u64 = std::env::var("SVR_SIM_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    ((base as f64 * share).ceil() as u64).max(1)
}

fn lossy(seed: u64, algorithm: KexAlgorithm) -> SimConfig {
    let mut config = SimConfig::new(seed, algorithm);
    // Seeded spread of conditions: loss 0-30 %, duplicates, delay 1-300 ms (reorders),
    // and an adversary replaying and forging.
    config.routers = if seed.is_multiple_of(3) { 2 } else { 3 };
    config.loss = (seed % 7) as f64 * 0.05;
    config.duplicate = 0.05;
    config.delay_min = Duration::from_millis(1);
    config.delay_max = Duration::from_millis(300);
    config.replay = 0.1;
    config.forge = 0.1;
    config
}

fn assert_clean(sim: &Sim, label: &str) {
    assert_eq!(sim.report.forgeries_accepted, 0, "{label}: forgery accepted");
    assert_eq!(sim.report.replays_accepted, 0, "{label}: replay accepted");
    assert!(sim.report.key_gaps.is_empty(), "{label}: key gaps {:?}", sim.report.key_gaps);
}

/// Converges, then rotates a metadata key and rekeys a peering under the same conditions.
/// Returns the number of injected messages.
fn run_lossy(seed: u64, algorithm: KexAlgorithm) -> u64 {
    let label = format!("seed {seed} {algorithm}");
    let mut sim = Sim::new(lossy(seed, algorithm)).unwrap();
    let done = sim.run_until_complete(CONVERGENCE_BOUND);
    assert!(done.is_some(), "{label}: no convergence within {CONVERGENCE_BOUND:?}");
    assert_clean(&sim, &label);

    sim.rotate_metadata_key((seed % sim.len() as u64) as usize);
    sim.rekey(0, 1);
    sim.run_for(Duration::from_secs(1));
    let done = sim.run_until_complete(CONVERGENCE_BOUND);
    assert!(done.is_some(), "{label}: no convergence after rotation");
    // Let every old key run out its grace period under the checks.
    sim.run_for(Duration::from_secs(120));
    assert!(sim.all_complete(), "{label}: lost completion after grace period");
    assert_clean(&sim, &label);
    sim.report.injected
}

#[test]
fn sim_loss_dh2048() {
    let injected: u64 = (0..seeds(1.0)).map(|seed| run_lossy(seed, DH2048)).sum();
    assert!(injected > 0);
}

#[test]
fn sim_loss_mlkem768() {
    let injected: u64 = (0..seeds(2.5)).map(|seed| run_lossy(1000 + seed, MLKEM768)).sum();
    assert!(injected > 0);
}

#[test]
fn sim_loss_hybrid() {
    let injected: u64 = (0..seeds(0.4)).map(|seed| run_lossy(2000 + seed, HYBRID)).sum();
    assert!(injected > 0);
}

#[test]
fn sim_loss_other_sizes() {
    let algorithms = [
        KexAlgorithm::DiffieHellman(DhGroup::Modp1024),
        KexAlgorithm::DiffieHellman(DhGroup::Modp4096),
        KexAlgorithm::MlKem(MlKemLevel::MlKem512),
        KexAlgorithm::MlKem(MlKemLevel::MlKem1024),
        KexAlgorithm::Hybrid(DhGroup::Modp1024, MlKemLevel::MlKem512),
        KexAlgorithm::Hybrid(DhGroup::Modp4096, MlKemLevel::MlKem1024),
    ];
    let per = seeds(0.015);
    for (n, algorithm) in algorithms.into_iter().enumerate() {
        for seed in 0..per {
            let injected = run_lossy(3000 + 100 * n as u64 + seed, algorithm);
            let _ = injected;
        }
    }
}

#[test]
fn sim_handshake_times() {
    let algorithms = [
        KexAlgorithm::DiffieHellman(DhGroup::Modp1024),
        DH2048,
        KexAlgorithm::DiffieHellman(DhGroup::Modp4096),
        KexAlgorithm::MlKem(MlKemLevel::MlKem512),
        MLKEM768,
        KexAlgorithm::MlKem(MlKemLevel::MlKem1024),
        HYBRID,
        KexAlgorithm::Hybrid(DhGroup::Modp4096, MlKemLevel::MlKem1024),
    ];
    for algorithm in algorithms {
        let mut sim = Sim::new(SimConfig::new(7, algorithm)).unwrap();
        let start = Instant::now();
        let done = sim.run_until_complete(Duration::from_secs(10));
        let wall = start.elapsed();
        assert!(done.is_some(), "{algorithm} did not complete");
        // Both routers' work for one handshake, including signing and verification.
        eprintln!("handshake {algorithm}: {wall:?} wall, {:?} virtual", done.unwrap_or_default());
    }
}

#[test]
fn sim_metadata_windows_exact() {
    let mut sim = Sim::new(SimConfig::new(11, DH2048)).unwrap();
    sim.run_until_complete(Duration::from_secs(10)).unwrap();
    sim.run_for(Duration::from_secs(1));
    let t0 = sim.now();
    sim.events.clear();
    sim.rotate_metadata_key(0);
    sim.run_for(Duration::from_secs(200));

    let delay = Duration::from_millis(10);
    let switch = Duration::from_secs(30);
    let grace = Duration::from_secs(30);

    // The receiver (r0) installs the new key at once.
    let opened = sim.events.iter().find_map(|e| match e {
        SimEvent::OpenKeys { at, router: 0, indices } if indices == &vec![1, 2] => Some(*at),
        _ => None,
    });
    assert_eq!(opened, Some(t0));

    // The sender (r1) gets it after one delay and switches after the switch delay.
    let switched = sim.events.iter().find_map(|e| match e {
        SimEvent::Seal { at, router: 1, peer: 0, index: Some(2) } => Some(*at),
        _ => None,
    });
    assert_eq!(switched, Some(t0 + delay + switch));

    // r0 hears the acknowledgement after a round trip and keeps the old key for the
    // switch delay plus the grace period after it.
    let retired = sim.events.iter().find_map(|e| match e {
        SimEvent::OpenKeys { at, router: 0, indices } if indices == &vec![2] => Some(*at),
        _ => None,
    });
    assert_eq!(retired, Some(t0 + 2 * delay + switch + grace));
    assert!(retired.unwrap() >= switched.unwrap() + grace);
    assert!(sim.report.key_gaps.is_empty(), "{:?}", sim.report.key_gaps);
}

#[test]
fn sim_simultaneous_rotation() {
    for algorithm in [DH2048, MLKEM768, HYBRID] {
        let mut config = SimConfig::new(21, algorithm);
        config.routers = 3;
        config.delay_max = Duration::from_millis(80);
        let mut sim = Sim::new(config).unwrap();
        sim.run_until_complete(Duration::from_secs(60)).unwrap();

        // Every router rotates its metadata key and both ends of a peering rekey at the
        // same instant.
        for i in 0..3 {
            sim.rotate_metadata_key(i);
        }
        sim.rekey(0, 1);
        sim.rekey(1, 0);
        sim.run_for(Duration::from_millis(1));
        sim.run_until_complete(Duration::from_secs(120)).unwrap();
        sim.run_for(Duration::from_secs(120));

        let a = sim.engine(0).snapshot(PeerId(1)).unwrap();
        let b = sim.engine(1).snapshot(PeerId(0)).unwrap();
        assert_eq!(a.exchange, b.exchange, "{algorithm}: both ends on one exchange");
        assert_eq!(a.exchange, 2, "{algorithm}: simultaneous rekeys merge into one exchange");
        assert_eq!(a.key_index, 2);
        assert_eq!(a.peer_key_index, 2);
        assert!(sim.all_complete());
        assert!(sim.report.key_gaps.is_empty(), "{algorithm}: {:?}", sim.report.key_gaps);
    }
}

#[test]
fn sim_lost_acks() {
    let mut config = SimConfig::new(31, HYBRID);
    config.drop_first = vec![
        (MessageKind::CertificateAck, 2),
        (MessageKind::SaltAck, 2),
        (MessageKind::MetadataKeyAck, 3),
    ];
    let mut sim = Sim::new(config).unwrap();
    let done = sim.run_until_complete(Duration::from_secs(300)).unwrap();
    // Every lost acknowledgement costs at least one 5 s retransmit interval.
    assert!(done >= Duration::from_secs(10), "completed at {done:?}");
    assert!(sim.sent_count(0, 1, MessageKind::MetadataKey) >= 2);
    assert!(sim.sent_count(1, 0, MessageKind::MetadataKey) >= 2);

    // A rotation whose first two acknowledgements are lost keeps the old key until the
    // third arrives, two retransmit intervals later, plus switch delay and grace.
    sim.drop_next(MessageKind::MetadataKeyAck, 2);
    sim.events.clear();
    let t0 = sim.now();
    sim.rotate_metadata_key(1);
    sim.run_for(Duration::from_secs(200));
    let retired = sim.events.iter().find_map(|e| match e {
        SimEvent::OpenKeys { at, router: 1, indices } if indices == &vec![2] => Some(*at),
        _ => None,
    });
    let earliest = t0 + Duration::from_secs(10 + 60);
    assert!(retired.is_some_and(|t| t >= earliest), "old key retired at {retired:?}");
    assert!(sim.all_complete());
    assert!(sim.report.key_gaps.is_empty(), "{:?}", sim.report.key_gaps);
}

#[test]
fn sim_peer_restart_recovers() {
    for algorithm in [DH2048, MLKEM768, HYBRID] {
        let mut config = SimConfig::new(41, algorithm);
        config.loss = 0.1;
        config.delay_max = Duration::from_millis(50);
        let mut sim = Sim::new(config).unwrap();
        sim.run_until_complete(Duration::from_secs(300)).unwrap();

        sim.events.clear();
        sim.restart(1).unwrap();
        let restart = sim.now();
        let done = sim.run_until_complete(CONVERGENCE_BOUND);
        assert!(done.is_some(), "{algorithm}: no recovery after restart");

        // r0 took its paths to r1 out of service when it saw the restart, and put them
        // back without any operator input.
        let out = sim.events.iter().find_map(|e| match e {
            SimEvent::Service { at, router: 0, peer: 1, in_service: false } => Some(*at),
            _ => None,
        });
        let back = sim.events.iter().find_map(|e| match e {
            SimEvent::Service { at, router: 0, peer: 1, in_service: true } => Some(*at),
            _ => None,
        });
        assert!(out.is_some_and(|t| t >= restart), "{algorithm}: paths never left service");
        assert!(back > out, "{algorithm}: paths not back in service");
        assert!(sim.rejected(0, 1, "peer-restart") >= 1);
        assert_eq!(sim.report.forgeries_accepted, 0);
        assert!(sim.report.key_gaps.is_empty(), "{algorithm}: {:?}", sim.report.key_gaps);
    }
}

#[test]
fn sim_algorithm_change_keeps_certificates() {
    let mut sim = Sim::new(SimConfig::new(51, DH2048)).unwrap();
    sim.run_until_complete(Duration::from_secs(10)).unwrap();
    let certs_before = sim.sent_count(0, 1, MessageKind::Certificate);
    sim.events.clear();

    sim.set_algorithm(0, 1, HYBRID);
    assert_eq!(sim.status(0, 1), Some(SecurityStatus::SaltExch));
    // Until the peer is reconfigured the peering cannot finish, but the old keys stay
    // in service.
    sim.run_for(Duration::from_secs(20));
    assert!(sim.rejected(1, 0, "algorithm-mismatch") >= 1);
    sim.set_algorithm(1, 0, HYBRID);
    sim.run_until_complete(Duration::from_secs(120)).unwrap();

    assert_eq!(sim.sent_count(0, 1, MessageKind::Certificate), certs_before);
    let snap = sim.engine(0).snapshot(PeerId(1)).unwrap();
    assert_eq!(snap.algorithm, HYBRID);
    assert!(snap.exchange >= 2);
    let left_service =
        sim.events.iter().any(|e| matches!(e, SimEvent::Service { in_service: false, .. }));
    assert!(!left_service, "paths left service during the algorithm change");
}

#[test]
fn sim_timeout_then_recovery() {
    let mut config = SimConfig::new(61, MLKEM768);
    config.timers.timeout = Duration::from_secs(60);
    let mut sim = Sim::new(config).unwrap();
    sim.set_loss(1.0);
    sim.run_for(Duration::from_secs(61));

    let raised = sim.events.iter().any(|e| {
        matches!(
            e,
            SimEvent::Alarm { router: 0, kind: AlarmKind::PeerKeyTimeout, raised: true, .. }
        )
    });
    assert!(raised, "no timeout alarm");
    let snap = sim.engine(0).snapshot(PeerId(1)).unwrap();
    assert!(snap.timed_out);
    assert!(!snap.in_service);

    // Declared invalid: retries only every peer-key-timeout.
    let before = sim.sent_count(0, 1, MessageKind::Certificate);
    sim.run_for(Duration::from_secs(50));
    assert_eq!(sim.sent_count(0, 1, MessageKind::Certificate), before);
    sim.run_for(Duration::from_secs(20));
    assert_eq!(sim.sent_count(0, 1, MessageKind::Certificate), before + 1);

    // The link heals; an interface state change retries at once.
    sim.set_loss(0.0);
    sim.interface_changed(0, 1);
    sim.interface_changed(1, 0);
    let done = sim.run_until_complete(Duration::from_secs(10));
    assert!(done.is_some(), "no recovery after interface change");
    let cleared = sim.events.iter().any(|e| {
        matches!(
            e,
            SimEvent::Alarm { router: 0, kind: AlarmKind::PeerKeyTimeout, raised: false, .. }
        )
    });
    assert!(cleared, "timeout alarm not cleared");
}

#[test]
fn sim_replayed_history_rejected() {
    let mut sim = Sim::new(SimConfig::new(71, HYBRID)).unwrap();
    sim.run_until_complete(Duration::from_secs(10)).unwrap();
    sim.rotate_metadata_key(0);
    sim.run_for(Duration::from_secs(100));
    let before = sim.engine(1).snapshot(PeerId(0)).unwrap();

    for bytes in sim.sent_messages(0, 1) {
        let result = sim.inject(0, 1, &bytes);
        assert!(result.is_err(), "replay accepted: {result:?}");
    }
    assert_eq!(sim.engine(1).snapshot(PeerId(0)).unwrap(), before);
}

#[test]
fn sim_bit_flips_rejected() {
    let mut sim = Sim::new(SimConfig::new(81, DH2048)).unwrap();
    sim.run_until_complete(Duration::from_secs(10)).unwrap();
    sim.rekey(0, 1);
    // Capture the salt of the new exchange before it reaches r1.
    let salt = sim.sent_messages(0, 1).into_iter().last().unwrap();
    let before = sim.engine(1).snapshot(PeerId(0)).unwrap();
    for bit in 0..salt.len() * 8 {
        let mut copy = salt.clone();
        copy[bit / 8] ^= 1 << (bit % 8);
        assert!(sim.inject(0, 1, &copy).is_err(), "flipped bit {bit} accepted");
    }
    assert_eq!(sim.engine(1).snapshot(PeerId(0)).unwrap(), before);
    assert!(sim.inject(0, 1, &salt).is_ok(), "original rejected after the flips");
}

#[test]
fn sim_rekey_interval_rotates_keys() {
    let mut config = SimConfig::new(91, HYBRID);
    config.routers = 3;
    config.loss = 0.1;
    config.delay_max = Duration::from_millis(100);
    config.timers.rekey_interval = Some(Duration::from_secs(3600));
    let mut sim = Sim::new(config).unwrap();
    sim.run_until_complete(Duration::from_secs(300)).unwrap();
    sim.run_for(Duration::from_secs(3 * 3600 + 600));

    for i in 0..3 {
        // Three intervals passed: three new metadata keys, and at least three new peer-key
        // exchanges (either side of a peering may start one).
        assert!(sim.engine(i).metadata_key_index() >= 4, "r{i} index");
        for j in (0..3).filter(|j| *j != i) {
            let snap = sim.engine(i).snapshot(PeerId(j as u32)).unwrap();
            assert!(snap.exchange >= 4, "r{i}->r{j} exchange {}", snap.exchange);
            assert_eq!(snap.status, SecurityStatus::MkeyExchComp, "r{i}->r{j}");
            assert!(snap.in_service);
        }
    }
    assert_clean(&sim, "rekey interval");
    let left = sim.events.iter().any(|e| matches!(e, SimEvent::Service { in_service: false, .. }));
    assert!(!left, "paths left service during scheduled rotation");
}
