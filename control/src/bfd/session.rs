//! One BFD session in asynchronous mode (RFC 5880 sections 6.2, 6.5 and 6.8): state
//! variables, the state machine, timer negotiation and Poll/Final sequences. Pure code:
//! time comes in as an argument and the caller performs the returned actions.

use std::fmt;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tracing::debug;

use super::packet::{ControlPacket, Diagnostic, Flags, State};
use super::timers::{Instant, jittered};

/// Transmit interval floor while the session is not Up (RFC 5880 section 6.8.3: "When
/// bfd.SessionState is not Up, the system MUST set bfd.DesiredMinTxInterval to a value of
/// not less than one second").
pub const SLOW_TX_INTERVAL: Duration = Duration::from_secs(1);

/// Default desired minimum transmit interval (SSR `desired-tx-interval`).
pub const DEFAULT_DESIRED_MIN_TX: Duration = Duration::from_millis(1000);

/// Default required minimum receive interval (SSR `required-min-rx-interval`).
pub const DEFAULT_REQUIRED_MIN_RX: Duration = Duration::from_millis(500);

/// Default detection multiplier (SSR `multiplier`).
pub const DEFAULT_DETECT_MULT: u8 = 3;

/// Accepted detection multipliers (SSR `multiplier`, 3-20).
pub const DETECT_MULT_RANGE: RangeInclusive<u8> = 3..=20;

/// Accepted transmit and receive intervals (SSR `desired-tx-interval`, 50-600000 ms).
///
/// NOTE: SSR documents no range for `required-min-rx-interval`; the transmit range is
/// applied to it as well.
pub const INTERVAL_RANGE: RangeInclusive<Duration> =
    Duration::from_millis(50)..=Duration::from_millis(600_000);

/// Local timer parameters of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    desired_min_tx: Duration,
    required_min_rx: Duration,
    detect_mult: u8,
}

impl SessionConfig {
    /// Validates and builds a configuration.
    pub fn new(
        desired_min_tx: Duration,
        required_min_rx: Duration,
        detect_mult: u8,
    ) -> Result<SessionConfig, ConfigError> {
        if !INTERVAL_RANGE.contains(&desired_min_tx) {
            return Err(ConfigError::DesiredMinTxOutOfRange { value: desired_min_tx });
        }
        if !INTERVAL_RANGE.contains(&required_min_rx) {
            return Err(ConfigError::RequiredMinRxOutOfRange { value: required_min_rx });
        }
        if !DETECT_MULT_RANGE.contains(&detect_mult) {
            return Err(ConfigError::DetectMultOutOfRange { value: detect_mult });
        }
        Ok(SessionConfig { desired_min_tx, required_min_rx, detect_mult })
    }

    pub fn desired_min_tx(&self) -> Duration {
        self.desired_min_tx
    }

    pub fn required_min_rx(&self) -> Duration {
        self.required_min_rx
    }

    pub fn detect_mult(&self) -> u8 {
        self.detect_mult
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            desired_min_tx: DEFAULT_DESIRED_MIN_TX,
            required_min_rx: DEFAULT_REQUIRED_MIN_RX,
            detect_mult: DEFAULT_DETECT_MULT,
        }
    }
}

/// A timer parameter outside its accepted range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    DesiredMinTxOutOfRange { value: Duration },
    RequiredMinRxOutOfRange { value: Duration },
    DetectMultOutOfRange { value: u8 },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, hi) = (INTERVAL_RANGE.start().as_millis(), INTERVAL_RANGE.end().as_millis());
        match self {
            ConfigError::DesiredMinTxOutOfRange { value } => write!(
                f,
                "bfd desired-tx-interval {} ms is outside {lo}-{hi} ms",
                value.as_millis()
            ),
            ConfigError::RequiredMinRxOutOfRange { value } => write!(
                f,
                "bfd required-min-rx-interval {} ms is outside {lo}-{hi} ms",
                value.as_millis()
            ),
            ConfigError::DetectMultOutOfRange { value } => write!(
                f,
                "bfd multiplier {value} is outside {}-{}",
                DETECT_MULT_RANGE.start(),
                DETECT_MULT_RANGE.end()
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Work the caller must do after a call into the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Transmit this control packet now.
    Send(ControlPacket),
    /// Call [`Session::handle_timers`] at this instant (replaces any earlier request).
    ArmTimer(Instant),
    /// The session state changed.
    StateChanged { from: State, to: State, diagnostic: Diagnostic },
}

/// A timer change waiting for the remote system's Final (RFC 5880 section 6.8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PollSequence {
    /// Desired transmit interval to use for pacing once the Final arrives.
    tx_basis_after: Duration,
    /// Required receive interval to use for detection once the Final arrives.
    rx_basis_after: Duration,
}

/// One BFD session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,

    // RFC 5880 section 6.8.1 state variables.
    state: State,
    remote_state: State,
    local_discr: NonZeroU32,
    remote_discr: u32,
    local_diag: Diagnostic,
    remote_min_rx: Duration,
    remote_desired_tx: Duration,
    remote_detect_mult: u8,
    remote_demand: bool,

    /// Desired transmit interval that paces our packets; lags the advertised value while an
    /// increase waits for its Final.
    tx_basis: Duration,
    /// Required receive interval used for the detection time; lags the advertised value
    /// while a decrease waits for its Final.
    rx_basis: Duration,
    poll: Option<PollSequence>,
    polls_completed: u64,

    next_tx: Option<Instant>,
    detect_deadline: Option<Instant>,
    rng: StdRng,
}

impl Session {
    /// Creates a session in state Down. `local_discr` must be unique among the caller's
    /// sessions; `rng_seed` seeds the transmit jitter.
    pub fn new(local_discr: NonZeroU32, config: SessionConfig, rng_seed: u64) -> Session {
        Session {
            config,
            state: State::Down,
            remote_state: State::Down,
            local_discr,
            remote_discr: 0,
            local_diag: Diagnostic::None,
            // "bfd.RemoteMinRxInterval ... MUST be initialized to 1."
            remote_min_rx: Duration::from_micros(1),
            remote_desired_tx: Duration::ZERO,
            remote_detect_mult: 0,
            remote_demand: false,
            tx_basis: config.desired_min_tx.max(SLOW_TX_INTERVAL),
            rx_basis: config.required_min_rx,
            poll: None,
            polls_completed: 0,
            next_tx: None,
            detect_deadline: None,
            rng: StdRng::seed_from_u64(rng_seed),
        }
    }

    /// Starts periodic transmission: the first packet goes out now.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        self.transmit_periodic(now, &mut actions);
        self.push_timer(&mut actions);
        actions
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    pub fn local_diagnostic(&self) -> Diagnostic {
        self.local_diag
    }

    pub fn local_discriminator(&self) -> NonZeroU32 {
        self.local_discr
    }

    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// Returns true while a Poll sequence is waiting for its Final.
    pub fn poll_in_progress(&self) -> bool {
        self.poll.is_some()
    }

    /// Poll sequences this session started that ended with a Final.
    pub fn polls_completed(&self) -> u64 {
        self.polls_completed
    }

    /// Desired minimum transmit interval as advertised: the configured value, raised to one
    /// second while the session is not Up (RFC 5880 section 6.8.3).
    pub fn advertised_desired_min_tx(&self) -> Duration {
        if self.state == State::Up {
            self.config.desired_min_tx
        } else {
            self.config.desired_min_tx.max(SLOW_TX_INTERVAL)
        }
    }

    /// Negotiated transmit interval before jitter (RFC 5880 section 6.8.2): the larger of
    /// our desired transmit interval and the remote required receive interval.
    pub fn tx_interval(&self) -> Duration {
        self.tx_basis.max(self.remote_min_rx)
    }

    /// Detection time in asynchronous mode (RFC 5880 section 6.8.4): the remote detect
    /// multiplier times the larger of our required receive interval and the remote desired
    /// transmit interval. Before the first packet from the remote it uses our own multiplier.
    pub fn detection_time(&self) -> Duration {
        let mult = if self.remote_detect_mult == 0 {
            self.config.detect_mult
        } else {
            self.remote_detect_mult
        };
        self.rx_basis.max(self.remote_desired_tx) * u32::from(mult)
    }

    /// Returns the earliest instant at which [`Session::handle_timers`] has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.next_tx, self.detect_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Processes a received control packet that passed [`ControlPacket::parse`] and was
    /// matched to this session (RFC 5880 section 6.8.6, from "set bfd.RemoteDiscr" on).
    pub fn receive(&mut self, packet: &ControlPacket, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();

        // Update the remote state variables.
        self.remote_discr = packet.my_discriminator;
        self.remote_state = packet.state;
        self.remote_demand = packet.flags.demand;
        self.remote_min_rx = packet.required_min_rx;
        self.remote_desired_tx = packet.desired_min_tx;
        self.remote_detect_mult = packet.detect_mult;

        // "If the Final (F) bit is set and the local system has sent a Poll, the Poll
        // Sequence MUST be terminated": the deferred timer values take effect now.
        if packet.flags.final_
            && let Some(poll) = self.poll.take()
        {
            self.tx_basis = poll.tx_basis_after;
            self.rx_basis = poll.rx_basis_after;
            self.polls_completed += 1;
            debug!(
                discriminator = self.local_discr,
                tx_ms = self.tx_interval().as_millis(),
                detect_ms = self.detection_time().as_millis(),
                "bfd poll sequence completed"
            );
        }

        // The transmit interval and detection time now follow from the fields just stored.
        // Next comes the state machine.
        let transition = next_state(self.state, packet.state);
        let Some((to, diag)) = transition else {
            // "If bfd.SessionState is AdminDown, discard the packet."
            self.push_timer(&mut actions);
            return actions;
        };
        if to != self.state {
            if let Some(diag) = diag {
                self.local_diag = diag;
            }
            self.change_state(to, now, &mut actions);
        }

        // "If the packet was not discarded, ... the Detection Time ... MUST be reset."
        self.detect_deadline = Some(now + self.detection_time());

        // "If the Poll (P) bit is set, send a BFD Control packet to the remote system with
        // the Poll (P) bit clear, and the Final (F) bit set", without waiting for the timer.
        let state_packet_sent = matches!(actions.last(), Some(Action::Send(_)));
        if packet.flags.poll {
            if state_packet_sent {
                actions.pop();
            }
            let final_packet = self.build_packet(Flags { final_: true, ..Flags::default() });
            actions.push(Action::Send(final_packet));
        }

        // A shorter negotiated interval must not wait for a timer armed at the slow rate.
        self.pull_in_next_tx(now);
        self.push_timer(&mut actions);
        actions
    }

    /// Runs the transmit and detection timers that are due at `now`.
    pub fn handle_timers(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();

        if self.detect_deadline.is_some_and(|deadline| deadline <= now) {
            self.detect_deadline = None;
            self.detection_expired(now, &mut actions);
        }

        if self.next_tx.is_some_and(|at| at <= now) {
            self.transmit_periodic(now, &mut actions);
        }

        self.push_timer(&mut actions);
        actions
    }

    /// Changes the local timer parameters. While Up this starts a Poll sequence and the
    /// new values take effect as RFC 5880 section 6.8.3 requires.
    pub fn set_config(&mut self, config: SessionConfig, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let old_tx = self.advertised_desired_min_tx();
        let old_rx = self.config.required_min_rx;
        self.config = config;
        self.timers_changed(old_tx, old_rx, now, &mut actions);
        self.push_timer(&mut actions);
        actions
    }

    /// Takes the session administratively down (RFC 5880 section 6.8.16). Packets keep
    /// going out at the slow rate, so the remote system learns of it.
    pub fn admin_down(&mut self, diagnostic: Diagnostic, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state != State::AdminDown {
            self.local_diag = diagnostic;
            self.change_state(State::AdminDown, now, &mut actions);
            self.detect_deadline = None;
        }
        self.push_timer(&mut actions);
        actions
    }

    /// Re-enables an administratively disabled session: "Set bfd.SessionState to Down".
    pub fn admin_up(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state == State::AdminDown {
            self.change_state(State::Down, now, &mut actions);
        }
        self.push_timer(&mut actions);
        actions
    }

    /// Builds the packet a transmission at this moment carries, with the given P/F flags
    /// (RFC 5880 section 6.8.7). Callers carrying metadata use it with default flags.
    pub fn build_packet(&self, flags: Flags) -> ControlPacket {
        ControlPacket {
            diagnostic: self.local_diag,
            state: self.state,
            flags,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr.get(),
            your_discriminator: self.remote_discr,
            desired_min_tx: self.advertised_desired_min_tx(),
            required_min_rx: self.config.required_min_rx,
            // The echo function is not implemented: "If this field is zero, the
            // transmitting system does not support the receipt of BFD Echo packets."
            required_min_echo_rx: Duration::ZERO,
        }
    }

    /// Builds the packet of a periodic transmission, with P set while a Poll sequence runs.
    pub fn periodic_packet(&self) -> ControlPacket {
        self.build_packet(Flags { poll: self.poll.is_some(), ..Flags::default() })
    }

    fn detection_expired(&mut self, now: Instant, actions: &mut Vec<Action>) {
        // "If the Detection Time passes without the receipt of a valid ... BFD packet from
        // the remote system, [bfd.RemoteDiscr] MUST be set to zero."
        self.remote_discr = 0;
        self.remote_state = State::Down;
        self.remote_demand = false;

        // "If ... bfd.SessionState is Init or Up, the session has gone down -- the local
        // system MUST set bfd.SessionState to Down and bfd.LocalDiag to 1."
        if matches!(self.state, State::Init | State::Up) {
            self.local_diag = Diagnostic::ControlDetectionTimeExpired;
            self.change_state(State::Down, now, actions);
        }
    }

    fn change_state(&mut self, to: State, now: Instant, actions: &mut Vec<Action>) {
        let from = self.state;
        let old_tx = self.advertised_desired_min_tx();
        let old_rx = self.config.required_min_rx;
        self.state = to;
        debug!(
            discriminator = self.local_discr,
            %from, %to, diagnostic = %self.local_diag,
            "bfd session state changed"
        );
        actions.push(Action::StateChanged { from, to, diagnostic: self.local_diag });

        // Leaving Up abandons a pending Poll: its values apply at once.
        if to != State::Up {
            self.poll = None;
        }
        self.timers_changed(old_tx, old_rx, now, actions);

        // Tell the remote system without waiting for the periodic timer.
        let already_sent = matches!(actions.last(), Some(Action::Send(_)));
        if !already_sent {
            actions.push(Action::Send(self.periodic_packet()));
        }
    }

    /// Applies a change of the advertised intervals (RFC 5880 section 6.8.3).
    fn timers_changed(
        &mut self,
        old_tx: Duration,
        old_rx: Duration,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let new_tx = self.advertised_desired_min_tx();
        let new_rx = self.config.required_min_rx;

        if self.state != State::Up {
            self.tx_basis = new_tx;
            self.rx_basis = new_rx;
            return;
        }
        if new_tx == old_tx && new_rx == old_rx {
            return;
        }

        // "If either bfd.DesiredMinTxInterval is changed or bfd.RequiredMinRxInterval is
        // changed, a Poll Sequence MUST be initiated." A change during a running sequence
        // replaces the values it will apply.

        // "If bfd.DesiredMinTxInterval is increased and bfd.SessionState is Up, the actual
        // transmission interval used MUST NOT change until the Poll Sequence ... has
        // terminated." A decrease takes effect at once.
        if new_tx < self.tx_basis {
            self.tx_basis = new_tx;
        }

        // "If bfd.RequiredMinRxInterval is reduced and bfd.SessionState is Up, the previous
        // value ... MUST be used when calculating the Detection Time for the remote system
        // until the Poll Sequence ... has terminated." An increase takes effect at once.
        if new_rx > self.rx_basis {
            self.rx_basis = new_rx;
        }

        self.poll = Some(PollSequence { tx_basis_after: new_tx, rx_basis_after: new_rx });
        debug!(
            discriminator = self.local_discr,
            desired_tx_ms = new_tx.as_millis(),
            required_rx_ms = new_rx.as_millis(),
            "bfd poll sequence started"
        );

        // The first Poll goes out now; later periodic packets repeat it until the Final.
        actions.push(Action::Send(self.periodic_packet()));
        self.pull_in_next_tx(now);
    }

    fn transmit_periodic(&mut self, now: Instant, actions: &mut Vec<Action>) {
        self.next_tx = Some(now + self.jittered_interval());

        // "A system MUST NOT periodically transmit BFD Control packets if
        // bfd.RemoteMinRxInterval is zero."
        if self.remote_min_rx.is_zero() {
            return;
        }

        // "If bfd.RemoteDemandMode is 1, bfd.SessionState is Up, and bfd.RemoteSessionState
        // is Up, ... the local system MUST cease the periodic transmission."
        if self.remote_demand && self.state == State::Up && self.remote_state == State::Up {
            return;
        }

        actions.push(Action::Send(self.periodic_packet()));
    }

    fn jittered_interval(&mut self) -> Duration {
        let interval = self.tx_interval();
        jittered(interval, self.config.detect_mult, &mut self.rng)
    }

    /// Moves the next transmission earlier when the interval has shrunk below the time left.
    fn pull_in_next_tx(&mut self, now: Instant) {
        let candidate = now + self.jittered_interval();
        match self.next_tx {
            Some(at) if at <= candidate => {}
            _ => self.next_tx = Some(candidate),
        }
    }

    fn push_timer(&self, actions: &mut Vec<Action>) {
        if let Some(at) = self.next_deadline() {
            actions.push(Action::ArmTimer(at));
        }
    }
}

/// Looks up the state machine of RFC 5880 section 6.8.6, written as one table over (local
/// state, received state). Returns the next local state and the diagnostic to record on a
/// change, or `None` when the packet is discarded.
fn next_state(local: State, received: State) -> Option<(State, Option<Diagnostic>)> {
    use State::{AdminDown, Down, Init, Up};
    let stay = Some((local, None));
    let neighbor_down = Some((Down, Some(Diagnostic::NeighborSignaledSessionDown)));
    match (local, received) {
        // "If bfd.SessionState is AdminDown: Discard the packet."
        (AdminDown, _) => None,
        // "If received state is AdminDown: If bfd.SessionState is not Down: Set
        // bfd.LocalDiag to 3 (Neighbor signaled session down), Set bfd.SessionState to Down."
        (Down, AdminDown) => stay,
        (Init | Up, AdminDown) => neighbor_down,
        // "If bfd.SessionState is Down: If received State is Down: Set bfd.SessionState to
        // Init. Else if received State is Init: Set bfd.SessionState to Up."
        (Down, Down) => Some((Init, None)),
        (Down, Init) => Some((Up, None)),
        (Down, Up) => stay,
        // "Else if bfd.SessionState is Init: If received State is Init or Up: Set
        // bfd.SessionState to Up."
        (Init, Init | Up) => Some((Up, None)),
        (Init, Down) => stay,
        // "Else (bfd.SessionState is Up): If received State is Down: Set bfd.LocalDiag to 3
        // (Neighbor signaled session down), Set bfd.SessionState to Down."
        (Up, Down) => neighbor_down,
        (Up, Init | Up) => stay,
    }
}
