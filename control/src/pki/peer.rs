//! Per-peer certificate state: the validation cache and the reaction to an invalid
//! certificate (`invalid-certificate-behavior`).

use std::collections::HashMap;
use std::time::SystemTime;

use super::crl::RevocationSet;
use super::error::ValidationError;
use super::validate::{TrustStore, ValidatedPeer, fingerprint, unix_seconds, validate_peer_at};
use crate::alarm::{self, AlarmCause, AlarmSpec};

/// Key under which a result is cached: the same certificate chain, name, CA set and CRL set
/// give the same answer, as long as `now` stays inside the validity window.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CacheKey {
    chain: Vec<[u8; 32]>,
    expected_name: String,
    trust_generation: u64,
    crl_generation: u64,
}

#[derive(Debug, Clone)]
struct CacheEntry {
    key: CacheKey,
    result: Result<ValidatedPeer, ValidationError>,
}

/// Validation results per peer. A peer sends its certificate on every path, but it is
/// validated once until the certificate, the trusted CAs or the CRLs change.
#[derive(Debug, Clone, Default)]
pub struct ValidationCache {
    entries: HashMap<String, CacheEntry>,
    hits: u64,
    misses: u64,
}

impl ValidationCache {
    /// Creates an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates `chain` for `peer`, or returns the cached result.
    pub fn validate(
        &mut self,
        peer: &str,
        chain: &[Vec<u8>],
        now: SystemTime,
        trust: &TrustStore,
        revocations: &RevocationSet,
    ) -> Result<ValidatedPeer, ValidationError> {
        let key = CacheKey {
            chain: chain.iter().map(|c| fingerprint(c)).collect(),
            expected_name: peer.to_owned(),
            trust_generation: trust.generation(),
            crl_generation: revocations.generation(),
        };
        let secs = unix_seconds(now);
        if let Some(entry) = self.entries.get(peer) {
            // A failure about dates depends on `now`, so only other failures and successes
            // still inside their window are reused.
            let reusable = match &entry.result {
                Ok(v) => {
                    let (from, until) = v.validity_window();
                    from <= secs && secs <= until
                }
                Err(ValidationError::Expired { .. } | ValidationError::NotYetValid { .. }) => false,
                Err(_) => true,
            };
            if entry.key == key && reusable {
                self.hits += 1;
                return entry.result.clone();
            }
        }

        self.misses += 1;
        let result = validate_peer_at(chain, peer, secs, trust, revocations);
        match &result {
            Ok(v) => tracing::debug!(peer, subject = v.subject(), "peer certificate validated"),
            Err(e) => tracing::warn!(peer, error = %e, "peer certificate rejected"),
        }
        self.entries.insert(peer.to_owned(), CacheEntry { key, result: result.clone() });
        result
    }

    /// The last validated peer, if the last result was a success.
    pub fn validated(&self, peer: &str) -> Option<&ValidatedPeer> {
        self.entries.get(peer).and_then(|e| e.result.as_ref().ok())
    }

    /// Forgets a peer, e.g. when its configuration changes.
    pub fn forget(&mut self, peer: &str) {
        self.entries.remove(peer);
    }

    /// Number of results served from the cache.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Number of full validations run.
    pub fn misses(&self) -> u64 {
        self.misses
    }
}

/// The configured reaction to a peer certificate that fails validation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InvalidCertificateBehavior {
    /// Raise the alarm and keep the peerings.
    #[default]
    FailSoft,
    /// Raise the alarm and remove every peering with the peer until a valid certificate
    /// arrives.
    FailHard,
}

/// What to do with the peerings of a peer whose certificate failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeeringAction {
    /// Keep the peer's peerings.
    Keep,
    /// Remove every peering with the peer until a valid certificate arrives.
    RemoveUntilValid,
}

/// The decision for one failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCertificateVerdict {
    /// The alarm to raise.
    pub cause: AlarmCause,
    pub alarm: AlarmSpec,
    /// What happens to the peerings.
    pub action: PeeringAction,
    /// False when the peer may not open new sessions: always for an expired or revoked
    /// certificate (it must redo key exchange first), and with fail-hard.
    pub new_sessions: bool,
}

/// Decides the reaction to a failed peer validation under `behavior`.
pub fn decide_invalid_certificate(
    behavior: InvalidCertificateBehavior,
    peer: &str,
    error: &ValidationError,
) -> InvalidCertificateVerdict {
    let action = match behavior {
        InvalidCertificateBehavior::FailSoft => PeeringAction::Keep,
        InvalidCertificateBehavior::FailHard => PeeringAction::RemoveUntilValid,
    };
    let new_sessions = action == PeeringAction::Keep && !error.blocks_new_sessions();
    InvalidCertificateVerdict {
        cause: AlarmCause::PeerCertificateInvalid { peer: peer.to_owned() },
        alarm: alarm::peer_certificate_invalid(peer, error),
        action,
        new_sessions,
    }
}
