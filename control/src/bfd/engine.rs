//! The BFD engine: many sessions behind one entry point. It demultiplexes received
//! datagrams to sessions (RFC 5880 section 6.8.6, RFC 5881 section 5), counts what it
//! drops, frames metadata on peer paths and turns session actions into datagrams. Pure:
//! no sockets, time passed in.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tracing::{debug, trace, warn};

use super::auth::{self, AuthError, KeyGeneration, PathAuth};
use super::metadata::{self, MetadataError, Reassembled, Reassembler, ReassemblyLimits};
use super::packet::{CONTROL_LEN, ControlPacket, Diagnostic, Flags, ParseError, State};
use super::session::{Action, Session, SessionConfig};
use super::timers::{Instant, LogLimit};
use super::{Flavour, GTSM_TTL};

/// Index of a path (one session) in its engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathId(pub usize);

/// What a path runs between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathSpec {
    pub flavour: Flavour,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub config: SessionConfig,
    /// Path MTU in bytes, used to size metadata fragments.
    pub path_mtu: usize,
    pub reassembly: ReassemblyLimits,
}

impl PathSpec {
    /// A path with default timers, an MTU of 1280 and default reassembly limits.
    pub fn new(flavour: Flavour, local: IpAddr, remote: IpAddr) -> PathSpec {
        PathSpec {
            flavour,
            local,
            remote,
            config: SessionConfig::default(),
            path_mtu: 1280,
            reassembly: ReassemblyLimits::default(),
        }
    }
}

/// Work for the caller of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `datagram` on `path` (to its remote address, on its flavour's port).
    Transmit { path: PathId, datagram: Vec<u8> },
    /// The session of `path` changed state.
    StateChanged { path: PathId, from: State, to: State, diagnostic: Diagnostic },
    /// A complete metadata message arrived on `path`.
    Metadata { path: PathId, message: Vec<u8> },
}

/// Why a received datagram was dropped before it reached a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// The control packet failed a stateless check.
    Malformed(ParseError),
    /// A single-hop packet arrived with a TTL other than 255, or with none reported.
    TtlNot255 { ttl: Option<u8> },
    /// Your Discriminator names no session of this flavour.
    UnknownDiscriminator { discriminator: u32 },
    /// Your Discriminator is zero and no session matches the addresses.
    NoSession,
    /// The session named by Your Discriminator runs to a different remote address.
    SourceMismatch,
    /// The metadata after the control packet was rejected by the reassembler.
    Metadata(MetadataError),
    /// A peer-path packet failed authentication. Any metadata it carried was still
    /// processed: key-exchange messages are signed on their own.
    Authentication(AuthError),
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Malformed(error) => write!(f, "malformed bfd packet: {error}"),
            DropReason::TtlNot255 { ttl: Some(ttl) } => {
                write!(f, "single-hop bfd packet with ttl {ttl}, expected {GTSM_TTL}")
            }
            DropReason::TtlNot255 { ttl: None } => {
                write!(f, "single-hop bfd packet without a received ttl, expected {GTSM_TTL}")
            }
            DropReason::UnknownDiscriminator { discriminator } => {
                write!(f, "bfd your discriminator {discriminator:#010x} matches no session")
            }
            DropReason::NoSession => f.write_str("bfd packet matches no configured peer address"),
            DropReason::SourceMismatch => {
                f.write_str("bfd packet source address differs from the session's peer")
            }
            DropReason::Metadata(error) => write!(f, "bfd metadata rejected: {error}"),
            DropReason::Authentication(error) => {
                write!(f, "bfd packet failed authentication: {error}")
            }
        }
    }
}

impl std::error::Error for DropReason {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DropReason::Malformed(error) => Some(error),
            DropReason::Metadata(error) => Some(error),
            DropReason::Authentication(error) => Some(error),
            _ => None,
        }
    }
}

/// Dropped datagrams by reason. Metadata rejections are further split per path in each
/// path's reassembly counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounters {
    pub truncated: u64,
    pub bad_version: u64,
    pub length_too_short: u64,
    pub length_exceeds_datagram: u64,
    pub zero_detect_mult: u64,
    pub multipoint_set: u64,
    pub zero_my_discriminator: u64,
    pub zero_your_discriminator: u64,
    pub authentication_unsupported: u64,
    pub ttl_not_255: u64,
    pub unknown_discriminator: u64,
    pub no_session: u64,
    pub source_mismatch: u64,
    pub metadata_rejected: u64,
    /// Peer-path packets without an authentication section where one is required.
    pub auth_missing: u64,
    /// Peer-path packets whose authentication section is malformed, names no held key
    /// while one is required, fails the digest or repeats an old sequence number.
    pub auth_bad: u64,
}

impl DropCounters {
    /// Counts one drop.
    pub fn count(&mut self, reason: &DropReason) {
        let counter = match reason {
            DropReason::Malformed(error) => match error {
                ParseError::Truncated { .. } => &mut self.truncated,
                ParseError::BadVersion { .. } => &mut self.bad_version,
                ParseError::LengthTooShort { .. } => &mut self.length_too_short,
                ParseError::LengthExceedsDatagram { .. } => &mut self.length_exceeds_datagram,
                ParseError::ZeroDetectMult => &mut self.zero_detect_mult,
                ParseError::MultipointSet => &mut self.multipoint_set,
                ParseError::ZeroMyDiscriminator => &mut self.zero_my_discriminator,
                ParseError::ZeroYourDiscriminator { .. } => &mut self.zero_your_discriminator,
                ParseError::AuthenticationUnsupported => &mut self.authentication_unsupported,
            },
            DropReason::TtlNot255 { .. } => &mut self.ttl_not_255,
            DropReason::UnknownDiscriminator { .. } => &mut self.unknown_discriminator,
            DropReason::NoSession => &mut self.no_session,
            DropReason::SourceMismatch => &mut self.source_mismatch,
            DropReason::Metadata(_) => &mut self.metadata_rejected,
            DropReason::Authentication(error) if error.is_missing() => &mut self.auth_missing,
            DropReason::Authentication(_) => &mut self.auth_bad,
        };
        *counter += 1;
    }

    /// Total drops for any reason.
    pub fn total(&self) -> u64 {
        self.truncated
            + self.bad_version
            + self.length_too_short
            + self.length_exceeds_datagram
            + self.zero_detect_mult
            + self.multipoint_set
            + self.zero_my_discriminator
            + self.zero_your_discriminator
            + self.authentication_unsupported
            + self.ttl_not_255
            + self.unknown_discriminator
            + self.no_session
            + self.source_mismatch
            + self.metadata_rejected
            + self.auth_missing
            + self.auth_bad
    }
}

/// A request the engine cannot carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    UnknownPath {
        path: PathId,
    },
    /// Metadata was offered for a single-hop session, which never carries it.
    MetadataNotCarried {
        path: PathId,
    },
    Metadata(MetadataError),
    /// Keys were offered for a single-hop session, which runs no authentication.
    AuthenticationNotCarried {
        path: PathId,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::UnknownPath { path } => write!(f, "bfd path {} does not exist", path.0),
            EngineError::MetadataNotCarried { path } => {
                write!(f, "bfd path {} is a single-hop session, which carries no metadata", path.0)
            }
            EngineError::Metadata(error) => write!(f, "bfd metadata cannot be sent: {error}"),
            EngineError::AuthenticationNotCarried { path } => write!(
                f,
                "bfd path {} is a single-hop session, which runs no authentication",
                path.0
            ),
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EngineError::Metadata(error) => Some(error),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Path {
    spec: PathSpec,
    session: Session,
    reassembler: Option<Reassembler>,
    /// Authentication state; peer paths only.
    auth: Option<PathAuth>,
}

/// Many BFD sessions, driven by one caller.
#[derive(Debug)]
pub struct Engine {
    paths: Vec<Path>,
    counters: DropCounters,
    next_message_id: u32,
    rng: StdRng,
    drop_log: LogLimit,
}

impl Engine {
    /// Creates an engine whose discriminators, jitter and message ids come from `seed`.
    /// The driver seeds it from the operating system.
    pub fn new(seed: u64) -> Engine {
        let mut rng = StdRng::seed_from_u64(seed);
        let next_message_id = rng.random();
        Engine {
            paths: Vec::new(),
            counters: DropCounters::default(),
            next_message_id,
            rng,
            drop_log: LogLimit::new(Duration::from_secs(1)),
        }
    }

    /// Adds a path. Its session starts in Down and sends nothing until [`Engine::start`].
    pub fn add_path(&mut self, spec: PathSpec) -> PathId {
        let discriminator = self.fresh_discriminator();
        let session = Session::new(discriminator, spec.config, self.rng.random());
        let reassembler =
            spec.flavour.carries_metadata().then(|| Reassembler::new(spec.reassembly));
        let auth = (spec.flavour == Flavour::PeerPath).then(|| PathAuth::new(self.rng.random()));
        self.paths.push(Path { spec, session, reassembler, auth });
        PathId(self.paths.len() - 1)
    }

    /// Starts every session: each sends its first packet now.
    pub fn start(&mut self, now: Instant) -> Vec<Output> {
        let mut outputs = Vec::new();
        for index in 0..self.paths.len() {
            let actions = self.paths[index].session.start(now);
            self.apply(PathId(index), actions, &mut outputs);
        }
        outputs
    }

    /// Starts the session of one path, added by [`Engine::add_path`] after
    /// [`Engine::start`] ran: it sends its first packet now.
    pub fn start_path(&mut self, path: PathId, now: Instant) -> Result<Vec<Output>, EngineError> {
        let entry = self.paths.get_mut(path.0).ok_or(EngineError::UnknownPath { path })?;
        let actions = entry.session.start(now);
        let mut outputs = Vec::new();
        self.apply(path, actions, &mut outputs);
        Ok(outputs)
    }

    pub fn paths(&self) -> impl Iterator<Item = (PathId, &PathSpec)> {
        self.paths.iter().enumerate().map(|(i, p)| (PathId(i), &p.spec))
    }

    pub fn session(&self, path: PathId) -> Option<&Session> {
        self.paths.get(path.0).map(|p| &p.session)
    }

    pub fn reassembler(&self, path: PathId) -> Option<&Reassembler> {
        self.paths.get(path.0).and_then(|p| p.reassembler.as_ref())
    }

    pub fn counters(&self) -> &DropCounters {
        &self.counters
    }

    /// Authentication state of a peer path; `None` for single-hop paths.
    pub fn authentication(&self, path: PathId) -> Option<&PathAuth> {
        self.paths.get(path.0).and_then(|p| p.auth.as_ref())
    }

    /// Replaces the pair-key generations of a peer path, oldest first. Packets go out
    /// authenticated from the next one on; an empty list returns the path to plain BFD.
    pub fn set_keys(&mut self, path: PathId, keys: Vec<KeyGeneration>) -> Result<(), EngineError> {
        let entry = self.paths.get_mut(path.0).ok_or(EngineError::UnknownPath { path })?;
        let auth = entry.auth.as_mut().ok_or(EngineError::AuthenticationNotCarried { path })?;
        let ids: Vec<u8> = keys.iter().map(KeyGeneration::key_id).collect();
        debug!(path = path.0, key_ids = ?ids, "bfd authentication keys installed");
        auth.set_keys(keys);
        Ok(())
    }

    /// Returns the earliest instant at which [`Engine::handle_timers`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.paths.iter().filter_map(|p| p.session.next_deadline()).min()
    }

    /// Runs the timers of every session that are due at `now`, and expires stale
    /// metadata reassembly.
    pub fn handle_timers(&mut self, now: Instant) -> Vec<Output> {
        let mut outputs = Vec::new();
        for index in 0..self.paths.len() {
            let path = &mut self.paths[index];
            if let Some(reassembler) = path.reassembler.as_mut() {
                reassembler.expire(now);
            }
            if path.session.next_deadline().is_some_and(|at| at <= now) {
                let remote_known = path.session.remote_discriminator() != 0;
                let actions = path.session.handle_timers(now);

                // The detection time expired (it clears bfd.RemoteDiscr): a peer that
                // restarted without its keys must be heard again so it can re-key.
                if remote_known
                    && path.session.remote_discriminator() == 0
                    && let Some(auth) = path.auth.as_mut()
                    && auth.required()
                {
                    debug!(path = index, "bfd detection time expired, authentication reset");
                    auth.reset_requirement();
                }
                self.apply(PathId(index), actions, &mut outputs);
            }
        }
        outputs
    }

    /// Processes one received datagram. `ttl` is the received TTL or hop limit when the
    /// socket reported one. A dropped datagram is counted and changes no session.
    pub fn receive(
        &mut self,
        flavour: Flavour,
        local: IpAddr,
        remote: IpAddr,
        ttl: Option<u8>,
        datagram: &[u8],
        now: Instant,
    ) -> Result<Vec<Output>, DropReason> {
        let result = self.receive_checked(flavour, local, remote, ttl, datagram, now);
        if let Err(reason) = &result {
            self.count_drop(reason, remote, now);
        }
        result
    }

    /// Frames `message` into fragments for the path MTU and returns one datagram per
    /// fragment, each led by a control packet of the path's session.
    pub fn send_metadata(
        &mut self,
        path: PathId,
        message: &[u8],
    ) -> Result<Vec<Output>, EngineError> {
        let entry = self.paths.get(path.0).ok_or(EngineError::UnknownPath { path })?;
        if !entry.spec.flavour.carries_metadata() {
            return Err(EngineError::MetadataNotCarried { path });
        }
        // The authentication section takes room from every fragment.
        let auth_room = match &entry.auth {
            Some(auth) if auth.has_key() => auth::SECTION_LEN,
            _ => 0,
        };
        let max_data = metadata::max_fragment_data(
            entry.spec.path_mtu.saturating_sub(auth_room),
            entry.spec.remote.is_ipv6(),
        )
        .map_err(EngineError::Metadata)?;
        let message_id = self.next_message_id;
        let sections = metadata::fragment(
            message_id,
            message,
            max_data,
            entry.spec.reassembly.max_message_len,
        )
        .map_err(EngineError::Metadata)?;
        self.next_message_id = self.next_message_id.wrapping_add(1);

        // The carrier packet has neither P nor F, so it starts and ends no Poll sequence.
        let head = entry.session.build_packet(Flags::default()).to_bytes();
        let outputs = sections
            .into_iter()
            .map(|section| Output::Transmit { path, datagram: self.seal(path, &head, &section) })
            .collect();
        debug!(path = path.0, message_id, bytes = message.len(), "bfd metadata message queued");
        Ok(outputs)
    }

    /// Changes the timers of a path's session (Poll sequence while Up).
    pub fn set_config(
        &mut self,
        path: PathId,
        config: SessionConfig,
        now: Instant,
    ) -> Result<Vec<Output>, EngineError> {
        let entry = self.paths.get_mut(path.0).ok_or(EngineError::UnknownPath { path })?;
        entry.spec.config = config;
        let actions = entry.session.set_config(config, now);
        let mut outputs = Vec::new();
        self.apply(path, actions, &mut outputs);
        Ok(outputs)
    }

    /// Takes a path's session administratively down with `diagnostic`.
    pub fn admin_down(
        &mut self,
        path: PathId,
        diagnostic: Diagnostic,
        now: Instant,
    ) -> Result<Vec<Output>, EngineError> {
        let entry = self.paths.get_mut(path.0).ok_or(EngineError::UnknownPath { path })?;
        let actions = entry.session.admin_down(diagnostic, now);
        let mut outputs = Vec::new();
        self.apply(path, actions, &mut outputs);
        Ok(outputs)
    }

    /// Re-enables a path's session after [`Engine::admin_down`].
    pub fn admin_up(&mut self, path: PathId, now: Instant) -> Result<Vec<Output>, EngineError> {
        let entry = self.paths.get_mut(path.0).ok_or(EngineError::UnknownPath { path })?;
        let actions = entry.session.admin_up(now);
        let mut outputs = Vec::new();
        self.apply(path, actions, &mut outputs);
        Ok(outputs)
    }

    /// Takes every session administratively down, for shutdown.
    pub fn shutdown(&mut self, now: Instant) -> Vec<Output> {
        let mut outputs = Vec::new();
        for index in 0..self.paths.len() {
            let actions =
                self.paths[index].session.admin_down(Diagnostic::AdministrativelyDown, now);
            self.apply(PathId(index), actions, &mut outputs);
        }
        outputs
    }

    fn receive_checked(
        &mut self,
        flavour: Flavour,
        local: IpAddr,
        remote: IpAddr,
        ttl: Option<u8>,
        datagram: &[u8],
        now: Instant,
    ) -> Result<Vec<Output>, DropReason> {
        // RFC 5881 section 5: "If BFD authentication is not in use on a session, all BFD
        // Control packets for the session MUST be sent with a TTL or Hop Limit value of
        // 255. All received BFD Control packets that are demultiplexed to the session MUST
        // be discarded if the received TTL or Hop Limit is not equal to 255." RFC 5883 drops
        // that rule for multihop, which peer paths follow.
        if flavour == Flavour::SingleHop && ttl != Some(GTSM_TTL) {
            return Err(DropReason::TtlNot255 { ttl });
        }

        let (packet, length) = ControlPacket::parse(datagram).map_err(DropReason::Malformed)?;

        // "If the A bit is set and no authentication is in use (bfd.AuthType is zero), the
        // packet MUST be discarded." Single-hop sessions never run authentication.
        if flavour == Flavour::SingleHop && packet.flags.authentication_present {
            return Err(DropReason::Malformed(ParseError::AuthenticationUnsupported));
        }

        let index = self.demultiplex(flavour, local, remote, &packet)?;

        // Authentication is checked first, but its verdict applies only to the session:
        // key-exchange messages in the metadata carry their own signatures and must get
        // through even when BFD authentication fails, for example after a peer restarts.
        let verdict = match self.paths[index].auth.as_mut() {
            Some(auth) => auth.check(
                datagram,
                length,
                packet.flags.authentication_present,
                packet.detect_mult,
            ),
            None => Ok(auth::Verdict::Unverified),
        };

        // Metadata is checked before the session sees the packet, so a datagram whose
        // metadata is rejected moves no state.
        let trailer = &datagram[length..];
        let mut message = None;
        if flavour.carries_metadata()
            && !trailer.is_empty()
            && let Some(reassembler) = self.paths[index].reassembler.as_mut()
        {
            match reassembler.insert(trailer, now) {
                Ok(Reassembled::Complete(bytes)) => message = Some(bytes),
                Ok(Reassembled::Pending | Reassembled::Duplicate) => {}
                Err(error) => return Err(DropReason::Metadata(error)),
            }
        }

        let mut outputs = Vec::new();
        match verdict {
            Ok(verdict) => {
                trace!(path = index, state = %packet.state, ?verdict, "bfd packet received");
                // A verified AdminDown is the peer itself going away. When it comes back it
                // holds no key, so it must be heard without authentication to re-key.
                if packet.state == State::AdminDown
                    && matches!(verdict, auth::Verdict::Verified { .. })
                    && let Some(auth) = self.paths[index].auth.as_mut()
                {
                    debug!(
                        path = index,
                        "bfd peer went administratively down, authentication reset"
                    );
                    auth.reset_requirement();
                }
                let actions = self.paths[index].session.receive(&packet, now);
                self.apply(PathId(index), actions, &mut outputs);
            }
            // A completed message still goes to the caller, so the drop is counted here
            // and the datagram is returned as accepted.
            Err(error) if message.is_some() => {
                self.count_drop(&DropReason::Authentication(error), remote, now);
            }
            Err(error) => return Err(DropReason::Authentication(error)),
        }
        if let Some(message) = message {
            outputs.push(Output::Metadata { path: PathId(index), message });
        }
        Ok(outputs)
    }

    /// Counts a dropped datagram and logs it, at warn for peer faults (rate-limited).
    fn count_drop(&mut self, reason: &DropReason, remote: IpAddr, now: Instant) {
        self.counters.count(reason);
        // Malformed packets, a wrong TTL and failed authentication are peer faults or an
        // attack. The other reasons occur in normal operation, for example while a session
        // restarts.
        let peer_fault = matches!(
            reason,
            DropReason::Malformed(_) | DropReason::TtlNot255 { .. } | DropReason::Authentication(_)
        );
        match (peer_fault, self.drop_log.allow(now)) {
            (true, Some(suppressed)) => {
                warn!(%remote, %reason, suppressed, "bfd packet dropped");
            }
            _ => trace!(%remote, %reason, "bfd packet dropped"),
        }
    }

    /// Selects the session a packet belongs to (RFC 5880 section 6.8.6).
    fn demultiplex(
        &self,
        flavour: Flavour,
        local: IpAddr,
        remote: IpAddr,
        packet: &ControlPacket,
    ) -> Result<usize, DropReason> {
        // "If the Your Discriminator field is nonzero, it MUST be used to select the
        // session with which this BFD packet is associated. If no session is found, the
        // packet MUST be discarded."
        if packet.your_discriminator != 0 {
            let discriminator = packet.your_discriminator;
            let index = self
                .paths
                .iter()
                .position(|p| {
                    p.spec.flavour == flavour
                        && p.session.local_discriminator().get() == discriminator
                })
                .ok_or(DropReason::UnknownDiscriminator { discriminator })?;
            if self.paths[index].spec.remote != remote {
                return Err(DropReason::SourceMismatch);
            }
            return Ok(index);
        }

        // "If the Your Discriminator field is zero, the session MUST be selected based on
        // some combination of other fields", here the flavour and both addresses.
        self.paths
            .iter()
            .position(|p| {
                p.spec.flavour == flavour && p.spec.local == local && p.spec.remote == remote
            })
            .ok_or(DropReason::NoSession)
    }

    fn apply(&mut self, path: PathId, actions: Vec<Action>, outputs: &mut Vec<Output>) {
        for action in actions {
            match action {
                Action::Send(packet) => {
                    let datagram = self.seal(path, &packet.to_bytes(), &[]);
                    outputs.push(Output::Transmit { path, datagram });
                }
                Action::StateChanged { from, to, diagnostic } => {
                    outputs.push(Output::StateChanged { path, from, to, diagnostic });
                }
                // The caller asks next_deadline() after every call instead.
                Action::ArmTimer(_) => {}
            }
        }
    }

    /// Builds the datagram for a control packet and trailer, authenticated when the path
    /// has a key.
    fn seal(&mut self, path: PathId, head: &[u8; CONTROL_LEN], trailer: &[u8]) -> Vec<u8> {
        match self.paths.get_mut(path.0).and_then(|p| p.auth.as_mut()) {
            Some(auth) => auth.seal(head, trailer),
            None => [head.as_slice(), trailer].concat(),
        }
    }

    /// Picks a random non-zero discriminator not used by another session (RFC 5880
    /// section 6.8.1: "This variable MUST be unique across all BFD sessions on this
    /// system, and nonzero. It SHOULD be set to a random (but still unique) value").
    fn fresh_discriminator(&mut self) -> NonZeroU32 {
        loop {
            let candidate: u32 = self.rng.random();
            let Some(candidate) = NonZeroU32::new(candidate) else { continue };
            if self.paths.iter().all(|p| p.session.local_discriminator() != candidate) {
                return candidate;
            }
        }
    }
}
