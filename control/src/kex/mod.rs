//! ESKM key exchange as pure protocol code: certificate, salt, peer-key and metadata-key
//! exchange between peer routers, with rotation and retransmission timers. Time is passed
//! in and every effect is returned as an [`Action`]; no sockets live here.
//!
//! The message formats and states are described in `docs/key-exchange.md`.

pub mod dh;
pub mod engine;
pub mod error;
pub mod keys;
pub mod mlkem;
pub mod msg;
pub mod peer;
pub mod sign;
pub mod sim;

use std::fmt;
use std::time::Duration;

pub use dh::DhGroup;
pub use engine::{Action, AlarmKind, Engine, EngineConfig, PeerConfig, PeerId, Receipt};
pub use error::{ConfigError, ReceiveError};
pub use keys::{HmacAlgorithm, MetadataKeyBundle};
pub use mlkem::{MlKemKeyPair, MlKemLevel};
pub use peer::{PeerSecuritySnapshot, SecurityStatus};
pub use sign::{MessageSigner, PeerVerifier};

/// The peer-key agreement method (`key-exchange-algorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KexAlgorithm {
    /// `diffie-hellman` with a `dh-key-size`.
    DiffieHellman(DhGroup),
    /// `ml-kem` with an `ml-kem-key-size`.
    MlKem(MlKemLevel),
    /// `diffie-hellman-ml-kem`: both, giving two peer keys.
    Hybrid(DhGroup, MlKemLevel),
}

impl KexAlgorithm {
    /// The DH group, if the algorithm uses DH.
    pub fn dh_group(&self) -> Option<DhGroup> {
        match self {
            KexAlgorithm::DiffieHellman(g) | KexAlgorithm::Hybrid(g, _) => Some(*g),
            KexAlgorithm::MlKem(_) => None,
        }
    }

    /// The ML-KEM parameter set, if the algorithm uses ML-KEM.
    pub fn ml_kem(&self) -> Option<MlKemLevel> {
        match self {
            KexAlgorithm::MlKem(l) | KexAlgorithm::Hybrid(_, l) => Some(*l),
            KexAlgorithm::DiffieHellman(_) => None,
        }
    }

    /// Picks the algorithm of a peering: the peer entry's `key-exchange-algorithm-override`
    /// if set, else the local router's override, else the authority setting.
    pub fn resolve(
        peer_override: Option<KexAlgorithm>,
        router_override: Option<KexAlgorithm>,
        authority: KexAlgorithm,
    ) -> KexAlgorithm {
        peer_override.or(router_override).unwrap_or(authority)
    }
}

impl Default for KexAlgorithm {
    /// `diffie-hellman` with `dh-key-size 2048`, the product default.
    fn default() -> Self {
        KexAlgorithm::DiffieHellman(DhGroup::Modp2048)
    }
}

impl fmt::Display for KexAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KexAlgorithm::DiffieHellman(g) => write!(f, "diffie-hellman {}", g.bits()),
            KexAlgorithm::MlKem(l) => write!(f, "ml-kem {}", l.size()),
            KexAlgorithm::Hybrid(g, l) => {
                write!(f, "diffie-hellman-ml-kem {}/{}", g.bits(), l.size())
            }
        }
    }
}

/// The timers of `security-key-management`, plus the key switch timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KexTimers {
    /// `peer-key-retransmit-interval`: resend of unacknowledged messages (5-3600 s, 30 s).
    pub retransmit_interval: Duration,
    /// `peer-key-timeout`: time without completing an exchange before the peer is declared
    /// invalid (3600 s); after it, retries run at this interval.
    pub timeout: Duration,
    /// `peer-key-rekey-interval`: peer-key and metadata-key rotation (1-720 h or never,
    /// 24 h).
    pub rekey_interval: Option<Duration>,
    /// How long a sender keeps sealing with the old key after it has the new one (30 s).
    pub switch_delay: Duration,
    /// How long a receiver still accepts the old key after the sender switched (30 s).
    pub grace: Duration,
}

impl Default for KexTimers {
    fn default() -> Self {
        KexTimers {
            retransmit_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(3600),
            rekey_interval: Some(Duration::from_secs(24 * 3600)),
            switch_delay: Duration::from_secs(30),
            grace: Duration::from_secs(30),
        }
    }
}

impl KexTimers {
    /// Builds the timers from configuration values, checking their ranges. `rekey_hours`
    /// of `None` means `never`.
    pub fn from_config(
        retransmit_seconds: u64,
        timeout_seconds: u64,
        rekey_hours: Option<u64>,
    ) -> Result<Self, ConfigError> {
        check_range("peer-key-retransmit-interval", retransmit_seconds, 5, 3600)?;
        // NOTE: the product documents no range for peer-key-timeout. The bounds here
        // (at least the retransmit interval, at most 30 days) are this implementation's.
        check_range("peer-key-timeout", timeout_seconds, retransmit_seconds, 30 * 86400)?;
        if let Some(hours) = rekey_hours {
            check_range("peer-key-rekey-interval", hours * 3600, 3600, 720 * 3600)?;
        }
        Ok(KexTimers {
            retransmit_interval: Duration::from_secs(retransmit_seconds),
            timeout: Duration::from_secs(timeout_seconds),
            rekey_interval: rekey_hours.map(|h| Duration::from_secs(h * 3600)),
            ..KexTimers::default()
        })
    }
}

fn check_range(name: &'static str, seconds: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if seconds < min || seconds > max {
        return Err(ConfigError::TimerOutOfRange { name, seconds, min, max });
    }
    Ok(())
}
