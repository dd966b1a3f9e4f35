//! Deterministic network simulation of ESKM engines: N routers over links with seeded
//! loss, delay, duplication and reordering, a virtual clock, an adversary that injects
//! replays and forgeries, and checks that run after every event. Used by the tests and by
//! handshake benchmarks; it runs the real engine and the real cryptography.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_core::Rng;
use sha2::{Digest, Sha256};

use super::engine::{Action, AlarmKind, Engine, EngineConfig, PeerConfig, PeerId};
use super::error::{ConfigError, ReceiveError};
use super::keys::{HmacAlgorithm, MetadataKeyBundle};
use super::mlkem::{MlKemKeyPair, MlKemLevel};
use super::msg::{self, Body, Header, MessageKind, signing_input};
use super::peer::SecurityStatus;
use super::sign::{MessageSigner, P256Signer, P256Verifier};
use super::{KexAlgorithm, KexTimers};

/// Link and adversary behaviour of a simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of every random choice (network, adversary and the engines' RNGs).
    pub seed: u64,
    /// Number of routers, all peered with each other.
    pub routers: usize,
    /// Algorithm of every peering.
    pub algorithm: KexAlgorithm,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a delivered message is delivered a second time.
    pub duplicate: f64,
    /// Smallest one-way delay.
    pub delay_min: Duration,
    /// Largest one-way delay; a spread between the two reorders messages.
    pub delay_max: Duration,
    /// Probability, per delivered message, that the adversary also delivers a replay of an
    /// earlier message to the same receiver.
    pub replay: f64,
    /// Probability, per delivered message, that the adversary also delivers a forgery (a
    /// bit-flipped copy, or a message signed with the adversary's own key).
    pub forge: f64,
    /// Timers of every engine.
    pub timers: KexTimers,
    /// Messages of these types are dropped the given number of times before any gets
    /// through (counted per sender and receiver).
    pub drop_first: Vec<(MessageKind, u32)>,
}

impl SimConfig {
    /// Two routers, no loss, 10 ms delay, no adversary, 5 s retransmit interval.
    pub fn new(seed: u64, algorithm: KexAlgorithm) -> Self {
        SimConfig {
            seed,
            routers: 2,
            algorithm,
            loss: 0.0,
            duplicate: 0.0,
            delay_min: Duration::from_millis(10),
            delay_max: Duration::from_millis(10),
            replay: 0.0,
            forge: 0.0,
            timers: KexTimers {
                retransmit_interval: Duration::from_secs(5),
                ..KexTimers::default()
            },
            drop_first: Vec::new(),
        }
    }
}

/// A timeline event recorded by the simulation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimEvent {
    /// Router `router` now accepts these metadata key indices of its own.
    OpenKeys { at: Duration, router: usize, indices: Vec<u32> },
    /// Router `router` now seals towards `peer` with this index (None: no key).
    Seal { at: Duration, router: usize, peer: usize, index: Option<u32> },
    /// Router `router` put its paths to `peer` in or out of service.
    Service { at: Duration, router: usize, peer: usize, in_service: bool },
    /// Router `router` raised or cleared an alarm about `peer`.
    Alarm { at: Duration, router: usize, peer: usize, kind: AlarmKind, raised: bool },
}

/// Violations and counts found while running.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages delivered (duplicates included).
    pub delivered: u64,
    /// Injected replays and forgeries delivered.
    pub injected: u64,
    /// Injected forgeries that an engine accepted (must stay 0).
    pub forgeries_accepted: u64,
    /// Byte strings that a receiver accepted more than once (must stay 0).
    pub replays_accepted: u64,
    /// Instants at which a sender sealed with a key its receiver could not open (must
    /// stay 0).
    pub key_gaps: Vec<String>,
    /// Rejections by counter name.
    pub rejected: BTreeMap<&'static str, u64>,
}

struct Router {
    boot: u64,
    engine: Engine,
    signer_scalar: Vec<u8>,
    timer_at: Option<Duration>,
    open: Vec<MetadataKeyBundle>,
    // Key sealing towards each peer, with the peer's boot id when it was installed.
    seal: BTreeMap<usize, (Option<MetadataKeyBundle>, u64)>,
    service: BTreeMap<usize, bool>,
    accepted: HashSet<[u8; 32]>,
}

struct InFlight {
    from: usize,
    to: usize,
    bytes: Vec<u8>,
    injected: bool,
}

/// The simulation.
pub struct Sim {
    config: SimConfig,
    now: Duration,
    rng: StdRng,
    routers: Vec<Router>,
    certificates: Vec<Vec<u8>>,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    flights: BTreeMap<u64, InFlight>,
    next_flight: u64,
    log: Vec<(usize, usize, Vec<u8>)>,
    dropped_kinds: BTreeMap<(usize, usize, MessageKind), u32>,
    adversary: P256Signer,
    // (sender, receiver, index, time the sender stopped sealing with it)
    switches: Vec<(usize, usize, u32, Duration)>,
    /// Recorded timeline.
    pub events: Vec<SimEvent>,
    /// Counts and violations.
    pub report: SimReport,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("now", &self.now).field("routers", &self.routers.len()).finish()
    }
}

/// Encodes a test certificate: name, then the SEC1 public key. The simulation's PKI
/// accepts exactly the certificates it issued.
fn test_certificate(name: &str, verifier: &P256Verifier) -> Vec<u8> {
    let mut out = b"svrd-sim-cert ".to_vec();
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&verifier.to_sec1());
    out
}

fn certificate_key(cert: &[u8]) -> Option<P256Verifier> {
    let rest = cert.strip_prefix(b"svrd-sim-cert ")?;
    let len = usize::from(*rest.first()?);
    P256Verifier::from_sec1(rest.get(1 + len..)?).ok()
}

/// Generates the ML-KEM key pairs a router makes at start-up, one per parameter set.
pub fn generate_ml_kem_keys(rng: &mut StdRng) -> Vec<MlKemKeyPair> {
    MlKemLevel::ALL.iter().map(|l| MlKemKeyPair::generate(*l, rng)).collect()
}

impl Sim {
    /// Builds the routers ("r0", "r1", ...) with distinct keygen priorities, adds every
    /// other router as a peer and starts the exchanges at time 0.
    pub fn new(config: SimConfig) -> Result<Self, ConfigError> {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let adversary = P256Signer::generate(&mut rng);
        let mut sim = Sim {
            config,
            now: Duration::ZERO,
            rng,
            routers: Vec::new(),
            certificates: Vec::new(),
            queue: BinaryHeap::new(),
            flights: BTreeMap::new(),
            next_flight: 0,
            log: Vec::new(),
            dropped_kinds: BTreeMap::new(),
            adversary,
            switches: Vec::new(),
            events: Vec::new(),
            report: SimReport::default(),
        };
        for i in 0..sim.config.routers {
            let signer = P256Signer::generate(&mut sim.rng);
            let cert = test_certificate(&format!("r{i}"), &signer.verifier());
            sim.certificates.push(cert);
            let scalar = signer_scalar(&signer);
            let router = sim.build_router(i, 1_000, scalar)?;
            sim.routers.push(router);
        }
        for i in 0..sim.routers.len() {
            sim.add_peers(i)?;
        }
        Ok(sim)
    }

    fn build_router(
        &mut self,
        i: usize,
        boot: u64,
        scalar: Vec<u8>,
    ) -> Result<Router, ConfigError> {
        let engine_seed = self.rng.next_u64();
        let mut engine_rng = StdRng::seed_from_u64(engine_seed);
        let ml_kem = generate_ml_kem_keys(&mut engine_rng);
        let config = EngineConfig {
            peering_common_name: format!("r{i}"),
            // Equal priorities on pairs of routers exercise the name tie-break.
            ml_kem_keygen_priority: (i / 2) as u32,
            boot_id: boot,
            certificate: self.certificates[i].clone(),
            metadata_hmac: HmacAlgorithm::Sha384,
            timers: self.config.timers,
        };
        // The scalar came from a generated key, so it always parses. The fresh key only keeps
        // this function free of panics: peers would reject its signatures.
        let signer = match P256Signer::from_scalar(&scalar) {
            Ok(signer) => signer,
            Err(_) => P256Signer::generate(&mut self.rng),
        };
        let (engine, actions) =
            Engine::new(config, Box::new(signer), ml_kem, Box::new(engine_rng), self.now)?;
        let mut router = Router {
            boot,
            engine,
            signer_scalar: scalar,
            timer_at: None,
            open: Vec::new(),
            seal: BTreeMap::new(),
            service: BTreeMap::new(),
            accepted: HashSet::new(),
        };
        for action in actions {
            match action {
                Action::OpenKeys { keys } => router.open = keys,
                Action::ArmTimer { at } => router.timer_at = Some(at),
                _ => {}
            }
        }
        Ok(router)
    }
}

fn signer_scalar(signer: &P256Signer) -> Vec<u8> {
    signer.to_scalar().to_vec()
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(bytes));
    out
}

impl Sim {
    fn add_peers(&mut self, i: usize) -> Result<(), ConfigError> {
        let n = self.routers.len();
        for j in 0..n {
            if i == j {
                continue;
            }
            let config = PeerConfig {
                peering_common_name: format!("r{j}"),
                ml_kem_keygen_priority: (j / 2) as u32,
                algorithm: self.config.algorithm,
            };
            let now = self.now;
            let actions = self.routers[i].engine.add_peer(PeerId(j as u32), config, now)?;
            self.apply(i, actions);
        }
        Ok(())
    }

    /// Current virtual time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Returns the engine of router `i`.
    pub fn engine(&self, i: usize) -> &Engine {
        &self.routers[i].engine
    }

    /// Number of routers.
    pub fn len(&self) -> usize {
        self.routers.len()
    }

    /// Always false: a simulation has at least one router.
    pub fn is_empty(&self) -> bool {
        self.routers.is_empty()
    }

    /// Status of router `i` towards router `j`.
    pub fn status(&self, i: usize, j: usize) -> Option<SecurityStatus> {
        self.routers[i].engine.snapshot(PeerId(j as u32)).map(|s| s.status)
    }

    /// Checks that every router reports `MKEY_EXCH_COMP` with paths in service towards
    /// every peer.
    pub fn all_complete(&self) -> bool {
        let n = self.routers.len();
        (0..n).all(|i| {
            (0..n).filter(|j| *j != i).all(|j| {
                self.routers[i]
                    .engine
                    .snapshot(PeerId(j as u32))
                    .is_some_and(|s| s.status == SecurityStatus::MkeyExchComp && s.in_service)
            })
        })
    }

    /// Runs until every peering is complete, or until `limit` of virtual time has passed.
    /// Returns the time of completion.
    pub fn run_until_complete(&mut self, limit: Duration) -> Option<Duration> {
        let end = self.now + limit;
        while self.now <= end {
            if self.all_complete() {
                return Some(self.now);
            }
            if !self.step(end) {
                break;
            }
        }
        self.all_complete().then_some(self.now)
    }

    /// Runs every event up to and including `end`, then sets the clock to `end`.
    pub fn run_until(&mut self, end: Duration) {
        while self.step(end) {}
        self.now = self.now.max(end);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    /// `rotate security metadata-key` on router `i`, now.
    pub fn rotate_metadata_key(&mut self, i: usize) {
        let now = self.now;
        let actions = self.routers[i].engine.rotate_metadata_key(now);
        self.apply(i, actions);
    }

    /// On-demand peer-key rekey from router `i` towards `j`, now.
    pub fn rekey(&mut self, i: usize, j: usize) {
        let now = self.now;
        let actions = self.routers[i].engine.rekey_peer(PeerId(j as u32), now);
        self.apply(i, actions);
    }

    /// Changes the algorithm of the peering between `i` and `j` on router `i` only.
    pub fn set_algorithm(&mut self, i: usize, j: usize, algorithm: KexAlgorithm) {
        let now = self.now;
        let actions = self.routers[i].engine.set_algorithm(PeerId(j as u32), algorithm, now);
        self.apply(i, actions);
    }

    /// Restarts router `i`: a new engine with a higher boot id and the same certificate,
    /// all keys lost. Messages still in flight are delivered as usual.
    pub fn restart(&mut self, i: usize) -> Result<(), ConfigError> {
        let boot = self.routers[i].boot + 1_000;
        let scalar = self.routers[i].signer_scalar.clone();
        let router = self.build_router(i, boot, scalar)?;
        self.routers[i] = router;
        // Packets the old incarnation sealed died with it.
        self.switches.retain(|(from, _, _, _)| *from != i);
        self.events.push(SimEvent::OpenKeys {
            at: self.now,
            router: i,
            indices: self.routers[i].open.iter().map(|k| k.index).collect(),
        });
        self.add_peers(i)
    }

    /// Runs the next event at or before `end`. Returns false when there is none.
    fn step(&mut self, end: Duration) -> bool {
        let next_packet = self.queue.peek().map(|Reverse((t, _))| *t);
        let next_timer =
            self.routers.iter().enumerate().filter_map(|(i, r)| r.timer_at.map(|t| (t, i))).min();
        let packet_first = match (next_packet, next_timer) {
            (Some(p), Some((t, _))) => p <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return false,
        };
        if packet_first {
            let Some(Reverse((at, id))) = self.queue.peek().copied() else { return false };
            if at > end {
                return false;
            }
            self.queue.pop();
            self.now = self.now.max(at);
            if let Some(flight) = self.flights.remove(&id) {
                self.deliver(flight);
            }
        } else {
            let Some((at, i)) = next_timer else { return false };
            if at > end {
                return false;
            }
            self.now = self.now.max(at);
            self.routers[i].timer_at = None;
            let now = self.now;
            let actions = self.routers[i].engine.on_timer(now);
            self.apply(i, actions);
        }
        self.check_key_gaps();
        true
    }

    fn deliver(&mut self, flight: InFlight) {
        self.report.delivered += 1;
        let InFlight { from, to, bytes, injected } = flight;
        let now = self.now;
        let receipt = self.routers[to].engine.receive(PeerId(from as u32), &bytes, now);
        match &receipt.result {
            Ok(_) => {
                if injected
                    && !self.log.iter().any(|(f, t, b)| *f == from && *t == to && *b == bytes)
                {
                    self.report.forgeries_accepted += 1;
                }
                if !self.routers[to].accepted.insert(digest(&bytes)) {
                    self.report.replays_accepted += 1;
                }
            }
            Err(e) => {
                *self.report.rejected.entry(e.counter()).or_insert(0) += 1;
            }
        }
        self.apply(to, receipt.actions);
        if !injected {
            self.maybe_inject(from, to, &bytes);
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let x = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }

    fn delay(&mut self) -> Duration {
        let min = self.config.delay_min.as_micros() as u64;
        let max = self.config.delay_max.as_micros() as u64;
        let spread = max.saturating_sub(min);
        let extra = if spread == 0 { 0 } else { self.rng.next_u64() % (spread + 1) };
        Duration::from_micros(min + extra)
    }

    fn schedule(&mut self, from: usize, to: usize, bytes: Vec<u8>, injected: bool) {
        let at = self.now + self.delay();
        let id = self.next_flight;
        self.next_flight += 1;
        self.flights.insert(id, InFlight { from, to, bytes, injected });
        self.queue.push(Reverse((at, id)));
    }

    fn send(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        self.report.sent += 1;
        self.log.push((from, to, bytes.clone()));
        if let Ok(m) = msg::decode(&bytes) {
            let kind = m.header.kind;
            let rule = self.config.drop_first.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n);
            if let Some(n) = rule {
                let dropped = self.dropped_kinds.entry((from, to, kind)).or_insert(0);
                if *dropped < n {
                    *dropped += 1;
                    return;
                }
            }
        }
        if self.chance(self.config.loss) {
            return;
        }
        if self.chance(self.config.duplicate) {
            self.schedule(from, to, bytes.clone(), false);
        }
        self.schedule(from, to, bytes, false);
    }

    /// Plays the adversary: replays an earlier message between the same routers, flips a
    /// bit of this one, or signs a plausible message with its own key.
    fn maybe_inject(&mut self, from: usize, to: usize, bytes: &[u8]) {
        if self.chance(self.config.replay) {
            let candidates: Vec<usize> = self
                .log
                .iter()
                .enumerate()
                .filter(|(_, (f, t, _))| *f == from && *t == to)
                .map(|(i, _)| i)
                .collect();
            if !candidates.is_empty() {
                let pick = candidates[(self.rng.next_u64() % candidates.len() as u64) as usize];
                let replay = self.log[pick].2.clone();
                self.report.injected += 1;
                // A replay of bytes the peer really sent: accepted at most once overall,
                // which the accepted-set check enforces.
                self.schedule(from, to, replay, false);
            }
        }
        if self.chance(self.config.forge) {
            self.report.injected += 1;
            let forged = if self.rng.next_u64().is_multiple_of(2) {
                let mut copy = bytes.to_vec();
                let bit = (self.rng.next_u64() % (copy.len() as u64 * 8)) as usize;
                copy[bit / 8] ^= 1 << (bit % 8);
                copy
            } else {
                self.forge_signed(from, to, bytes)
            };
            self.schedule(from, to, forged, true);
        }
    }

    fn forge_signed(&mut self, from: usize, to: usize, template: &[u8]) -> Vec<u8> {
        let (kind, exchange, seq, receiver_boot) = match msg::decode(template) {
            Ok(m) => (m.header.kind, m.header.exchange, m.header.sequence, m.header.receiver_boot),
            Err(_) => (MessageKind::Salt, 1, 1, 0),
        };
        let header = Header {
            kind,
            sender_boot: self.routers[from].boot,
            receiver_boot,
            sequence: seq + 1 + self.rng.next_u64() % 4,
            exchange,
        };
        let body = match kind {
            MessageKind::Certificate => Body::Certificate {
                certificate: test_certificate(&format!("r{from}"), &self.adversary.verifier()),
            },
            MessageKind::MetadataKey => Body::MetadataKey { sealed: vec![0u8; 112] },
            _ => Body::Salt { salt: self.rng.next_u32(), algorithm: self.config.algorithm },
        };
        let header = Header { kind: body.kind(), ..header };
        let unsigned = msg::encode_unsigned(&header, &body);
        let input = signing_input(&format!("r{from}"), &format!("r{to}"), &unsigned);
        let sig = self.adversary.sign(&input);
        msg::append_signature(unsigned, &sig)
    }

    fn apply(&mut self, i: usize, actions: Vec<Action>) {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Send { peer, bytes } => self.send(i, peer.0 as usize, bytes),
                Action::ArmTimer { at } => self.routers[i].timer_at = Some(at),
                Action::ValidateCertificate { peer, certificate } => {
                    let now = self.now;
                    let legit = self.certificates.get(peer.0 as usize) == Some(&certificate);
                    let key = certificate_key(&certificate);
                    let more = match (legit, key) {
                        (true, Some(key)) => {
                            self.routers[i]
                                .engine
                                .certificate_validated(peer, &certificate, Box::new(key), now)
                                .actions
                        }
                        _ => self.routers[i].engine.certificate_rejected(
                            peer,
                            &certificate,
                            "not issued by the trusted CA",
                            now,
                        ),
                    };
                    queue.extend(more);
                }
                Action::SealTowardsPeer { peer, key } => {
                    let j = peer.0 as usize;
                    self.record_seal(i, j, key);
                }
                Action::OpenKeys { keys } => {
                    self.on_open_keys(i, keys);
                }
                Action::PathService { peer, in_service } => {
                    self.routers[i].service.insert(peer.0 as usize, in_service);
                    self.events.push(SimEvent::Service {
                        at: self.now,
                        router: i,
                        peer: peer.0 as usize,
                        in_service,
                    });
                }
                // The simulation restricts nothing for a rejected certificate, so it has
                // nothing to lift when the peer goes back to the accepted one.
                Action::CertificateReturned { .. } => {}
                Action::Alarm { peer, kind, raised, .. } => {
                    self.events.push(SimEvent::Alarm {
                        at: self.now,
                        router: i,
                        peer: peer.0 as usize,
                        kind,
                        raised,
                    });
                }
            }
        }
    }

    fn record_seal(&mut self, i: usize, j: usize, key: Option<MetadataKeyBundle>) {
        let old = self.routers[i].seal.get(&j).and_then(|(k, _)| k.clone());
        if let Some(old) = &old
            && key.as_ref().is_none_or(|k| k.index != old.index)
        {
            self.switches.push((i, j, old.index, self.now));
        }
        self.events.push(SimEvent::Seal {
            at: self.now,
            router: i,
            peer: j,
            index: key.as_ref().map(|k| k.index),
        });
        let boot = self.routers[j].boot;
        self.routers[i].seal.insert(j, (key, boot));
    }

    fn on_open_keys(&mut self, i: usize, keys: Vec<MetadataKeyBundle>) {
        let before: BTreeSet<u32> = self.routers[i].open.iter().map(|k| k.index).collect();
        let after: BTreeSet<u32> = keys.iter().map(|k| k.index).collect();
        let grace = self.config.timers.grace;
        for removed in before.difference(&after) {
            // Every sender that stopped sealing with this key must have done so at least
            // `grace` ago, so packets it sent late still open.
            for (from, to, index, at) in &self.switches {
                if *to == i && index == removed && self.now < *at + grace {
                    self.report.key_gaps.push(format!(
                        "r{i} retired index {removed} at {:?}, r{from} stopped using it at {at:?}",
                        self.now
                    ));
                }
            }
        }
        self.events.push(SimEvent::OpenKeys {
            at: self.now,
            router: i,
            indices: after.into_iter().collect(),
        });
        self.routers[i].open = keys;
    }

    /// At this instant every sender with paths in service seals with a key its receiver
    /// can open.
    fn check_key_gaps(&mut self) {
        let n = self.routers.len();
        for a in 0..n {
            for b in 0..n {
                if a == b || !self.routers[a].service.get(&b).copied().unwrap_or(false) {
                    continue;
                }
                let Some((Some(key), boot)) = self.routers[a].seal.get(&b) else { continue };
                if *boot != self.routers[b].boot {
                    // The receiver restarted and lost its keys: a gap nothing can avoid
                    // until the sender notices the restart.
                    continue;
                }
                let ok = self.routers[b].open.iter().any(|k| k == key);
                if !ok {
                    let msg = format!(
                        "at {:?} r{a} seals towards r{b} with index {} that r{b} cannot open",
                        self.now, key.index
                    );
                    if self.report.key_gaps.last() != Some(&msg) {
                        self.report.key_gaps.push(msg);
                    }
                }
            }
        }
    }

    /// Messages of router `i` from router `j` rejected for `counter`.
    pub fn rejected(&self, i: usize, j: usize, counter: &str) -> u64 {
        self.routers[i]
            .engine
            .counters(PeerId(j as u32))
            .and_then(|c| c.get(counter).copied())
            .unwrap_or(0)
    }

    /// Receive errors are returned by the engine; this exposes one for direct injection.
    pub fn inject(
        &mut self,
        from: usize,
        to: usize,
        bytes: &[u8],
    ) -> Result<MessageKind, ReceiveError> {
        let now = self.now;
        let receipt = self.routers[to].engine.receive(PeerId(from as u32), bytes, now);
        self.apply(to, receipt.actions);
        receipt.result
    }

    /// Drops the next `count` messages of `kind` between every pair of routers.
    pub fn drop_next(&mut self, kind: MessageKind, count: u32) {
        self.config.drop_first.retain(|(k, _)| *k != kind);
        self.config.drop_first.push((kind, count));
        self.dropped_kinds.retain(|(_, _, k), _| *k != kind);
    }

    /// Changes the loss probability of every link from now on.
    pub fn set_loss(&mut self, loss: f64) {
        self.config.loss = loss;
    }

    /// Reports an interface state change on router `i`'s paths to `j`.
    pub fn interface_changed(&mut self, i: usize, j: usize) {
        let now = self.now;
        let actions = self.routers[i].engine.interface_changed(PeerId(j as u32), now);
        self.apply(i, actions);
    }

    /// Number of messages of `kind` that router `from` sent to `to` so far.
    pub fn sent_count(&self, from: usize, to: usize, kind: MessageKind) -> usize {
        self.log
            .iter()
            .filter(|(f, t, b)| {
                *f == from && *t == to && msg::decode(b).is_ok_and(|m| m.header.kind == kind)
            })
            .count()
    }

    /// Returns every message router `from` sent to `to` so far, in order.
    pub fn sent_messages(&self, from: usize, to: usize) -> Vec<Vec<u8>> {
        self.log
            .iter()
            .filter(|(f, t, _)| *f == from && *t == to)
            .map(|(_, _, b)| b.clone())
            .collect()
    }
}
