//! Session state machine tests on a virtual clock: two sessions joined by a simulated
//! link with fixed latency and optional loss.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers outside #[test] functions fail the test on a broken expectation"
)]

use std::num::NonZeroU32;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use svr_control::bfd::packet::{ControlPacket, Diagnostic, Flags, State};
use svr_control::bfd::session::{Action, SLOW_TX_INTERVAL, Session, SessionConfig};
use svr_control::bfd::timers::{Instant, jittered};

const LATENCY: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(tx: u64, rx: u64, mult: u8) -> SessionConfig {
    SessionConfig::new(ms(tx), ms(rx), mult).unwrap()
}

fn session(discr: u32, cfg: SessionConfig, seed: u64) -> Session {
    Session::new(NonZeroU32::new(discr).unwrap(), cfg, seed)
}

/// A packet in flight towards side `to` (0 or 1).
#[derive(Debug)]
struct Flight {
    at: Instant,
    to: usize,
    packet: ControlPacket,
}

/// Two sessions and the wire between them, advanced event by event.
struct Pair {
    sides: [Session; 2],
    now: Instant,
    flights: Vec<Flight>,
    /// Per side: whether its packets reach the other side.
    link_up: [bool; 2],
    /// Every packet sent, with its sender and time.
    sent: Vec<(Instant, usize, ControlPacket)>,
    /// Every state change, with its side and time.
    changes: Vec<(Instant, usize, State, State, Diagnostic)>,
    /// Seeded loss, duplication and extra delay, when set.
    impairment: Option<Impairment>,
}

/// Faults the simulated wire applies to every packet.
struct Impairment {
    rng: StdRng,
    loss: f64,
    duplicate: f64,
    /// Extra delay drawn uniformly up to this bound, which also reorders packets.
    max_extra_delay: Duration,
}

impl Pair {
    fn new(a: Session, b: Session) -> Pair {
        Pair {
            sides: [a, b],
            now: Instant::ZERO,
            flights: Vec::new(),
            link_up: [true, true],
            sent: Vec::new(),
            changes: Vec::new(),
            impairment: None,
        }
    }

    /// Returns the arrival times of one sent packet: none when lost, two when duplicated.
    fn arrivals(&mut self) -> Vec<Instant> {
        let base = self.now + LATENCY;
        let Some(imp) = self.impairment.as_mut() else { return vec![base] };
        if imp.rng.random_bool(imp.loss) {
            return Vec::new();
        }
        let copies = if imp.rng.random_bool(imp.duplicate) { 2 } else { 1 };
        let max = imp.max_extra_delay.as_nanos() as u64;
        (0..copies).map(|_| base + Duration::from_nanos(imp.rng.random_range(0..=max))).collect()
    }

    fn start(&mut self) {
        for side in 0..2 {
            let actions = self.sides[side].start(self.now);
            self.apply(side, actions);
        }
    }

    fn apply(&mut self, side: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(packet) => {
                    self.sent.push((self.now, side, packet));
                    if self.link_up[side] {
                        for at in self.arrivals() {
                            self.flights.push(Flight { at, to: 1 - side, packet });
                        }
                    }
                }
                Action::StateChanged { from, to, diagnostic } => {
                    self.changes.push((self.now, side, from, to, diagnostic));
                }
                Action::ArmTimer(at) => assert!(at >= self.now, "timer armed in the past"),
            }
        }
    }

    /// Advances to the next event no later than `until`; returns false when none is left.
    fn step(&mut self, until: Instant) -> bool {
        let flight = self.flights.iter().map(|f| f.at).min();
        let timers = self.sides.iter().filter_map(|s| s.next_deadline()).min();
        let next = match (flight, timers) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return false,
            },
        };
        if next > until {
            self.now = until;
            return false;
        }
        self.now = next;

        if let Some(index) = self.flights.iter().position(|f| f.at == next) {
            let flight = self.flights.remove(index);
            let actions = self.sides[flight.to].receive(&flight.packet, self.now);
            self.apply(flight.to, actions);
            return true;
        }
        for side in 0..2 {
            if self.sides[side].next_deadline().is_some_and(|t| t <= self.now) {
                let actions = self.sides[side].handle_timers(self.now);
                self.apply(side, actions);
            }
        }
        true
    }

    fn run_for(&mut self, span: Duration) {
        let until = self.now + span;
        while self.step(until) {}
    }

    fn run_until(&mut self, limit: Duration, done: impl Fn(&Pair) -> bool) -> bool {
        let until = self.now + limit;
        while !done(self) {
            if !self.step(until) {
                return done(self);
            }
        }
        true
    }

    fn both(&self, state: State) -> bool {
        self.sides.iter().all(|s| s.state() == state)
    }
}

#[test]
fn handshake_reaches_up() {
    let mut pair = Pair::new(
        session(0x11, SessionConfig::default(), 1),
        session(0x22, SessionConfig::default(), 2),
    );
    pair.start();
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up)));

    // Both start together, so each receives Down, moves to Init, then receives Init and
    // goes Up.
    for side in 0..2 {
        let path: Vec<State> = pair.changes.iter().filter(|c| c.1 == side).map(|c| c.3).collect();
        assert_eq!(path, vec![State::Init, State::Up], "side {side}");
    }
    assert_eq!(pair.sides[0].remote_discriminator(), 0x22);
    assert_eq!(pair.sides[1].remote_discriminator(), 0x11);
    assert!(pair.now.since(Instant::ZERO) < ms(100), "handshake took {}", pair.now);
}

#[test]
fn handshake_one_side_late() {
    let mut pair = Pair::new(
        session(0x11, SessionConfig::default(), 1),
        session(0x22, SessionConfig::default(), 2),
    );
    // Only side 0 runs first, unheard: it stays Down, sending at the slow rate.
    pair.link_up[0] = false;
    let actions = pair.sides[0].start(pair.now);
    pair.apply(0, actions);
    pair.run_for(ms(3000));
    assert_eq!(pair.sides[0].state(), State::Down);
    assert_eq!(pair.sides[1].state(), State::Down);

    // Side 1 receives Down -> Init; side 0 receives Init -> Up; side 1 receives Up -> Up.
    pair.changes.clear();
    pair.link_up[0] = true;
    let actions = pair.sides[1].start(pair.now);
    pair.apply(1, actions);
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up)));
    let order: Vec<(usize, State)> = pair.changes.iter().map(|c| (c.1, c.3)).collect();
    assert_eq!(order[0], (0, State::Init));
    assert!(order.contains(&(1, State::Up)));
}

#[test]
fn slow_rate_while_down() {
    let mut pair =
        Pair::new(session(0x11, config(100, 100, 3), 1), session(0x22, config(100, 100, 3), 2));
    pair.link_up = [true, false];
    let actions = pair.sides[0].start(pair.now);
    pair.apply(0, actions);
    pair.run_for(ms(10_000));
    let times: Vec<Instant> = pair.sent.iter().filter(|s| s.1 == 0).map(|s| s.0).collect();
    assert!(times.len() >= 10, "only {} packets in 10 s", times.len());
    for pair_of in times.windows(2) {
        let gap = pair_of[1].since(pair_of[0]);
        assert!(gap >= ms(750), "gap {gap:?} below 75% of one second");
        assert!(gap <= SLOW_TX_INTERVAL, "gap {gap:?} above one second");
    }
    assert_eq!(pair.sides[0].state(), State::Down);
    for (_, _, packet) in pair.sent.iter().filter(|s| s.1 == 0) {
        assert_eq!(packet.desired_min_tx, SLOW_TX_INTERVAL);
        assert_eq!(packet.state, State::Down);
    }
}

#[test]
fn negotiated_intervals() {
    // Local desires 200 ms but the remote wants at least 400 ms between packets.
    let mut pair =
        Pair::new(session(0x11, config(200, 300, 3), 1), session(0x22, config(600, 400, 5), 2));
    pair.start();
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up)));
    pair.run_for(ms(3000));

    let a = &pair.sides[0];
    let b = &pair.sides[1];
    // Transmit interval = max(local desired tx, remote required min rx).
    assert_eq!(a.tx_interval(), ms(400));
    assert_eq!(b.tx_interval(), ms(600));
    // Detection time = remote detect mult * max(local required min rx, remote desired tx).
    assert_eq!(a.detection_time(), ms(600) * 5);
    assert_eq!(b.detection_time(), ms(400) * 3);

    // Side 0 sends no faster than 75% of 400 ms once the sequence settled.
    pair.sent.clear();
    pair.run_for(ms(4000));
    let times: Vec<Instant> =
        pair.sent.iter().filter(|s| s.1 == 0 && !s.2.flags.final_).map(|s| s.0).collect();
    for w in times.windows(2) {
        let gap = w[1].since(w[0]);
        assert!(gap >= ms(300), "gap {gap:?}");
        assert!(gap <= ms(400), "gap {gap:?}");
    }
}

#[test]
fn detection_timeout_exact() {
    let mut pair =
        Pair::new(session(0x11, config(300, 300, 3), 1), session(0x22, config(300, 300, 3), 2));
    pair.start();
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up)));
    pair.run_for(ms(2000));

    // Cut side 1's transmissions; side 0 must go Down exactly one detection time after the
    // last packet it received.
    pair.link_up[1] = false;
    pair.flights.clear();
    let last_received = pair
        .sent
        .iter()
        .filter(|s| s.1 == 1)
        .map(|s| s.0 + LATENCY)
        .filter(|t| *t <= pair.now)
        .max()
        .unwrap();
    let detection = pair.sides[0].detection_time();
    assert_eq!(detection, ms(900));
    pair.changes.clear();
    assert!(pair.run_until(ms(5000), |p| p.sides[0].state() == State::Down));

    let (at, side, from, to, diag) = pair.changes[0];
    assert_eq!(side, 0);
    assert_eq!((from, to), (State::Up, State::Down));
    assert_eq!(diag, Diagnostic::ControlDetectionTimeExpired);
    assert_eq!(at, last_received + detection);
    assert_eq!(pair.sides[0].remote_discriminator(), 0);

    // Side 1 hears side 0's Down and follows with "neighbor signaled session down".
    assert!(pair.run_until(ms(100), |p| p.sides[1].state() == State::Down));
    assert_eq!(pair.sides[1].local_diagnostic(), Diagnostic::NeighborSignaledSessionDown);
}

#[test]
fn recovers_after_link_restored() {
    let mut pair =
        Pair::new(session(0x11, config(300, 300, 3), 1), session(0x22, config(300, 300, 3), 2));
    pair.start();
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up)));
    pair.link_up = [false, false];
    pair.flights.clear();
    assert!(pair.run_until(ms(5000), |p| p.both(State::Down)));
    pair.link_up = [true, true];
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up)));
}

#[test]
fn poll_final_on_timer_change() {
    let mut pair =
        Pair::new(session(0x11, config(1000, 1000, 3), 1), session(0x22, config(1000, 1000, 3), 2));
    pair.start();
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up)));
    pair.run_for(ms(3000));
    assert!(!pair.sides[0].poll_in_progress());
    assert_eq!(pair.sides[1].detection_time(), ms(3000));

    // Faster timers on side 0: a Poll goes out, and side 1 replies with a Final.
    pair.sent.clear();
    let actions = pair.sides[0].set_config(config(200, 200, 3), pair.now);
    pair.apply(0, actions);
    assert!(pair.sides[0].poll_in_progress());
    let (_, _, first) = pair.sent[0];
    assert!(first.flags.poll);
    assert!(!first.flags.final_);
    assert_eq!(first.desired_min_tx, ms(200));
    assert_eq!(first.required_min_rx, ms(200));

    // The reduced receive interval must not shorten detection until the Final arrives.
    assert_eq!(pair.sides[0].detection_time(), ms(3000));

    assert!(pair.run_until(ms(100), |p| !p.sides[0].poll_in_progress()));
    let finals: Vec<_> = pair.sent.iter().filter(|s| s.1 == 1 && s.2.flags.final_).collect();
    assert_eq!(finals.len(), 1);
    assert!(!finals[0].2.flags.poll, "a packet must not carry both P and F");

    // After the sequence both sides use the new values.
    assert_eq!(pair.sides[0].detection_time(), ms(1000) * 3);
    assert_eq!(pair.sides[1].detection_time(), ms(1000) * 3);
    pair.run_for(ms(2000));
    assert_eq!(pair.sides[0].tx_interval(), ms(1000));
    assert_eq!(pair.sides[1].tx_interval(), ms(1000));
    // Side 1 detects on max(its 1000 ms receive interval, side 0's 200 ms transmit) * 3.
    assert_eq!(pair.sides[1].detection_time(), ms(3000));
}

#[test]
fn poll_defers_slower_tx() {
    let mut pair =
        Pair::new(session(0x11, config(200, 200, 3), 1), session(0x22, config(200, 200, 3), 2));
    pair.start();
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up) && !p.sides[0].poll_in_progress()));
    pair.run_for(ms(1000));
    assert_eq!(pair.sides[0].tx_interval(), ms(200));

    // Side 0 changes its timers while side 1 cannot send, so no Final comes back yet.
    pair.link_up[1] = false;
    let actions = pair.sides[0].set_config(config(800, 200, 3), pair.now);
    pair.apply(0, actions);
    // "the actual transmission interval used MUST NOT change until the Poll Sequence ...
    // has terminated."
    assert_eq!(pair.sides[0].tx_interval(), ms(200));
    pair.link_up[1] = true;
    assert!(pair.run_until(ms(500), |p| !p.sides[0].poll_in_progress()));
    assert_eq!(pair.sides[0].tx_interval(), ms(800));
}

#[test]
fn up_transition_polls_to_fast_timers() {
    let mut pair =
        Pair::new(session(0x11, config(300, 300, 3), 1), session(0x22, config(300, 300, 3), 2));
    pair.start();
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up)));
    // Going Up lowers the advertised interval from one second, which needs a Poll.
    let polls = pair.sent.iter().filter(|s| s.2.flags.poll).count();
    assert!(polls >= 2, "expected a Poll from each side, saw {polls}");
    assert!(pair.run_until(ms(1000), |p| p.sides.iter().all(|s| !s.poll_in_progress())));
    assert_eq!(pair.sides[0].tx_interval(), ms(300));
    assert_eq!(pair.sides[0].detection_time(), ms(900));
}

#[test]
fn admin_down_signals_peer() {
    let mut pair = Pair::new(
        session(0x11, SessionConfig::default(), 1),
        session(0x22, SessionConfig::default(), 2),
    );
    pair.start();
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up)));
    pair.changes.clear();
    pair.sent.clear();

    let actions = pair.sides[0].admin_down(Diagnostic::AdministrativelyDown, pair.now);
    pair.apply(0, actions);
    assert_eq!(pair.sides[0].state(), State::AdminDown);
    let (_, _, packet) = pair.sent[0];
    assert_eq!(packet.state, State::AdminDown);
    assert_eq!(packet.diagnostic, Diagnostic::AdministrativelyDown);

    assert!(pair.run_until(ms(100), |p| p.sides[1].state() == State::Down));
    assert_eq!(pair.sides[1].local_diagnostic(), Diagnostic::NeighborSignaledSessionDown);

    // AdminDown keeps sending, at the slow rate, and ignores what it receives.
    pair.run_for(ms(5000));
    assert_eq!(pair.sides[0].state(), State::AdminDown);
    assert_eq!(pair.sides[1].state(), State::Down);
    let admin_packets = pair.sent.iter().filter(|s| s.1 == 0).count();
    assert!(admin_packets >= 5, "only {admin_packets} AdminDown packets in 5 s");

    // Re-enabling brings the session back Up.
    let actions = pair.sides[0].admin_up(pair.now);
    pair.apply(0, actions);
    assert_eq!(pair.sides[0].state(), State::Down);
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up)));
}

#[test]
fn final_answers_poll_immediately() {
    let mut s = session(0x11, SessionConfig::default(), 1);
    let now = Instant::from_nanos(5_000_000);
    let _ = s.start(Instant::ZERO);
    let poll = ControlPacket {
        diagnostic: Diagnostic::None,
        state: State::Down,
        flags: Flags { poll: true, ..Flags::default() },
        detect_mult: 3,
        my_discriminator: 0x99,
        your_discriminator: 0,
        desired_min_tx: ms(1000),
        required_min_rx: ms(1000),
        required_min_echo_rx: Duration::ZERO,
    };
    let actions = s.receive(&poll, now);
    let sent: Vec<ControlPacket> = actions
        .iter()
        .filter_map(|a| if let Action::Send(p) = a { Some(*p) } else { None })
        .collect();
    assert_eq!(sent.len(), 1, "one packet: the Final carries the new Init state");
    assert!(sent[0].flags.final_);
    assert!(!sent[0].flags.poll);
    assert_eq!(sent[0].state, State::Init);
    assert_eq!(sent[0].your_discriminator, 0x99);
}

#[test]
fn state_table_exhaustive() {
    use State::{AdminDown, Down, Init, Up};
    // (local, received) -> expected local state afterwards, for every pair.
    let table = [
        (Down, AdminDown, Down),
        (Down, Down, Init),
        (Down, Init, Up),
        (Down, Up, Down),
        (Init, AdminDown, Down),
        (Init, Down, Init),
        (Init, Init, Up),
        (Init, Up, Up),
        (Up, AdminDown, Down),
        (Up, Down, Down),
        (Up, Init, Up),
        (Up, Up, Up),
        (AdminDown, AdminDown, AdminDown),
        (AdminDown, Down, AdminDown),
        (AdminDown, Init, AdminDown),
        (AdminDown, Up, AdminDown),
    ];
    for (local, received, expected) in table {
        let mut s = session(0x11, SessionConfig::default(), 1);
        let _ = s.start(Instant::ZERO);
        drive_to(&mut s, local);
        assert_eq!(s.state(), local, "setup for {local:?}");
        let packet = remote_packet(received, 0x11);
        let _ = s.receive(&packet, Instant::from_nanos(10_000_000));
        assert_eq!(s.state(), expected, "local {local:?} received {received:?}");
    }
}

fn remote_packet(state: State, your: u32) -> ControlPacket {
    ControlPacket {
        diagnostic: Diagnostic::None,
        state,
        flags: Flags::default(),
        detect_mult: 3,
        my_discriminator: 0x77,
        your_discriminator: your,
        desired_min_tx: ms(1000),
        required_min_rx: ms(1000),
        required_min_echo_rx: Duration::ZERO,
    }
}

fn drive_to(s: &mut Session, target: State) {
    let t = Instant::from_nanos(1_000_000);
    match target {
        State::Down => {}
        State::Init => {
            let _ = s.receive(&remote_packet(State::Down, 0), t);
        }
        State::Up => {
            let _ = s.receive(&remote_packet(State::Init, 0x11), t);
        }
        State::AdminDown => {
            let _ = s.admin_down(Diagnostic::AdministrativelyDown, t);
        }
    }
}

#[test]
fn jitter_bounds() {
    let mut rng = StdRng::seed_from_u64(7);
    let interval = ms(1000);
    let mut low = Duration::MAX;
    let mut high = Duration::ZERO;
    for _ in 0..100_000 {
        let j = jittered(interval, 3, &mut rng);
        assert!(j >= ms(750), "{j:?}");
        assert!(j <= ms(1000), "{j:?}");
        low = low.min(j);
        high = high.max(j);
    }
    // The samples spread over the whole permitted range.
    assert!(low < ms(760), "lowest {low:?}");
    assert!(high > ms(990), "highest {high:?}");

    let mut low = Duration::MAX;
    let mut high = Duration::ZERO;
    for _ in 0..100_000 {
        let j = jittered(interval, 1, &mut rng);
        assert!(j >= ms(750), "{j:?} with detect mult 1");
        assert!(j <= ms(900), "{j:?} with detect mult 1");
        low = low.min(j);
        high = high.max(j);
    }
    assert!(low < ms(760), "lowest {low:?}");
    assert!(high > ms(890), "highest {high:?}");
}

#[test]
fn jitter_applied_per_packet() {
    let mut pair =
        Pair::new(session(0x11, config(100, 100, 3), 1), session(0x22, config(100, 100, 3), 2));
    pair.start();
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up)));
    pair.run_for(ms(1000));
    pair.sent.clear();
    pair.run_for(ms(20_000));
    let times: Vec<Instant> =
        pair.sent.iter().filter(|s| s.1 == 0 && !s.2.flags.final_).map(|s| s.0).collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1].since(w[0])).collect();
    assert!(gaps.len() > 150);
    for gap in &gaps {
        assert!(*gap >= ms(75), "{gap:?}");
        assert!(*gap <= ms(100), "{gap:?}");
    }
    let distinct: std::collections::BTreeSet<_> = gaps.iter().collect();
    assert!(distinct.len() > 50, "gaps are not jittered: {} distinct", distinct.len());
}

#[test]
fn config_rejects_out_of_range() {
    use svr_control::bfd::session::ConfigError;
    assert_eq!(
        SessionConfig::new(ms(10), ms(500), 3),
        Err(ConfigError::DesiredMinTxOutOfRange { value: ms(10) })
    );
    assert_eq!(
        SessionConfig::new(ms(1000), ms(700_000), 3),
        Err(ConfigError::RequiredMinRxOutOfRange { value: ms(700_000) })
    );
    assert_eq!(
        SessionConfig::new(ms(1000), ms(500), 2),
        Err(ConfigError::DetectMultOutOfRange { value: 2 })
    );
    assert_eq!(
        SessionConfig::new(ms(1000), ms(500), 21),
        Err(ConfigError::DetectMultOutOfRange { value: 21 })
    );
    let d = SessionConfig::default();
    assert_eq!((d.desired_min_tx(), d.required_min_rx(), d.detect_mult()), (ms(1000), ms(500), 3));
}

#[test]
fn defaults_detect_in_three_seconds() {
    let mut pair = Pair::new(
        session(0x11, SessionConfig::default(), 1),
        session(0x22, SessionConfig::default(), 2),
    );
    pair.start();
    assert!(pair.run_until(ms(5000), |p| p.both(State::Up)));
    pair.run_for(ms(3000));
    // Both sides desire 1000 ms and require 500 ms: tx max(1000, 500), detect 3 * 1000.
    assert_eq!(pair.sides[0].tx_interval(), ms(1000));
    assert_eq!(pair.sides[0].detection_time(), ms(3000));
}

#[test]
fn log_limit_one_per_interval() {
    use svr_control::bfd::timers::LogLimit;
    let mut limit = LogLimit::new(ms(1000));
    assert_eq!(limit.allow(Instant::ZERO + ms(0)), Some(0));
    assert_eq!(limit.allow(Instant::ZERO + ms(10)), None);
    assert_eq!(limit.allow(Instant::ZERO + ms(999)), None);
    assert_eq!(limit.allow(Instant::ZERO + ms(1000)), Some(2));
    assert_eq!(limit.allow(Instant::ZERO + ms(1500)), None);
    assert_eq!(limit.allow(Instant::ZERO + ms(3000)), Some(1));
}

#[test]
fn lossy_link_hour_stays_up() {
    // One simulated hour at 300 ms with 5% loss, 2% duplication and up to 5 ms of reorder.
    // With a multiplier of 5 a session only drops after five losses in a row.
    let mut pair =
        Pair::new(session(0x11, config(300, 300, 5), 1), session(0x22, config(300, 300, 5), 2));
    pair.impairment = Some(Impairment {
        rng: StdRng::seed_from_u64(99),
        loss: 0.05,
        duplicate: 0.02,
        max_extra_delay: ms(5),
    });
    pair.start();
    assert!(pair.run_until(ms(10_000), |p| p.both(State::Up)));
    pair.changes.clear();

    // A timer change halfway through still completes although Polls and Finals get lost.
    pair.run_for(Duration::from_secs(1800));
    let actions = pair.sides[0].set_config(config(200, 250, 5), pair.now);
    pair.apply(0, actions);
    assert!(pair.run_until(ms(10_000), |p| !p.sides[0].poll_in_progress()));
    pair.run_for(Duration::from_secs(1800));

    assert!(
        pair.changes.is_empty(),
        "session flapped: {:?}",
        &pair.changes[..pair.changes.len().min(4)]
    );
    assert!(pair.both(State::Up));
    assert_eq!(pair.sides[0].polls_completed(), 2, "one Poll on going Up, one for the change");
    assert_eq!(pair.sides[1].tx_interval(), ms(300));
    assert_eq!(pair.sides[1].detection_time(), ms(300) * 5);
    assert_eq!(pair.sides[0].detection_time(), ms(300) * 5);
    let sent = pair.sent.len();
    assert!(sent > 20_000, "only {sent} packets in an hour");
}
