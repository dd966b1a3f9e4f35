//! Bidirectional Forwarding Detection: plain RFC 5880/5881 single-hop sessions on UDP 3784
//! and SVR peer-path sessions on UDP 1280 that also carry ESKM metadata after the control
//! packet.
//!
//! `packet` is the wire codec, `session` the per-session state machine, `timers` the clock
//! type and jitter, `metadata` the framing carried on peer paths, `auth` the authentication
//! of peer-path packets, `engine` the pure demultiplexer over many sessions, and `driver`
//! the loop around the engine, over kernel UDP sockets (`socket`) or over frames the
//! dataplane workers carry (`frames`).

pub mod auth;
pub mod driver;
pub mod engine;
pub mod frames;
pub mod metadata;
pub mod packet;
pub mod session;
pub mod socket;
pub mod timers;

pub use engine::{DropCounters, DropReason, Engine, EngineError, Output, PathId, PathSpec};
pub use packet::{ControlPacket, Diagnostic, ParseError, State};
pub use session::{Session, SessionConfig};
pub use timers::Instant;

/// UDP destination port of single-hop control packets (RFC 5881 section 4).
pub const SINGLE_HOP_PORT: u16 = 3784;

/// UDP port of SVR peer-path BFD, used as source and destination.
pub const PEER_PATH_PORT: u16 = 1280;

/// Lowest source port for single-hop control packets (RFC 5881 section 4: "The source port
/// MUST be in the range 49152 through 65535").
pub const SINGLE_HOP_SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// TTL or hop limit of every packet sent, and the only one single-hop sessions accept
/// (RFC 5881 section 5).
pub const GTSM_TTL: u8 = 255;

/// Which of the two transports a session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// Plain RFC 5881 BFD with any peer (for example FRR): UDP 3784, TTL 255 sent and
    /// checked, no metadata.
    SingleHop,
    /// An SVR peer path between router waypoints: UDP 1280, multihop rules of RFC 5883
    /// (no TTL check), ESKM metadata after the control packet.
    PeerPath,
}

impl Flavour {
    /// Destination UDP port of the flavour.
    pub fn port(self) -> u16 {
        match self {
            Flavour::SingleHop => SINGLE_HOP_PORT,
            Flavour::PeerPath => PEER_PATH_PORT,
        }
    }

    /// Returns true when metadata may follow the control packet.
    pub fn carries_metadata(self) -> bool {
        self == Flavour::PeerPath
    }
}
