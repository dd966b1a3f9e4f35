//! Per-peer certificate state: the validation cache and the reaction to an invalid
//! certificate (`invalid-certificate-behavior`).

use std::collections::HashMap;
use std::time::SystemTime;

use super::crl::RevocationSet;
use super::error::{ValidationError, format_unix};
use super::validate::{TrustStore, ValidatedPeer, fingerprint, unix_seconds, validate_peer_at};
use crate::alarm::{self, AlarmCause, AlarmSpec, AlarmTable, Raised};

/// Key under which a result is cached: the same certificate chain, name, CA set and CRL set
/// give the same result, as long as `now` stays inside the validity window.
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

    /// Validates `chain` for `peer`, whose certificate must carry the name `peer`, or
    /// returns the cached result.
    pub fn validate(
        &mut self,
        peer: &str,
        chain: &[Vec<u8>],
        now: SystemTime,
        trust: &TrustStore,
        revocations: &RevocationSet,
    ) -> Result<ValidatedPeer, ValidationError> {
        self.validate_named(peer, peer, chain, now, trust, revocations)
    }

    /// Validates `chain` for `peer`, whose certificate must carry `expected_name` (its
    /// peering-common-name), or returns the cached result.
    pub fn validate_named(
        &mut self,
        peer: &str,
        expected_name: &str,
        chain: &[Vec<u8>],
        now: SystemTime,
        trust: &TrustStore,
        revocations: &RevocationSet,
    ) -> Result<ValidatedPeer, ValidationError> {
        let key = CacheKey {
            chain: chain.iter().map(|c| fingerprint(c)).collect(),
            expected_name: expected_name.to_owned(),
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
        let result = validate_peer_at(chain, expected_name, secs, trust, revocations);
        match &result {
            Ok(v) => tracing::debug!(peer, subject = v.subject(), "peer certificate validated"),
            Err(e) => tracing::debug!(peer, error = %e, "peer certificate rejected"),
        }
        self.entries.insert(peer.to_owned(), CacheEntry { key, result: result.clone() });
        result
    }

    /// Returns the last validated peer, if the last result was a success.
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

/// Effect on the peerings of a peer whose certificate failed.
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
    /// Effect on the peerings.
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

/// Result of checking a peer's certificate chain.
#[derive(Debug, Clone)]
pub enum PeerCertificateOutcome {
    /// The chain is valid; later key messages are checked with this peer's key.
    Valid(ValidatedPeer),
    /// The chain failed; the verdict says what to do with the peer's peerings.
    Invalid { error: ValidationError, verdict: InvalidCertificateVerdict },
}

/// Certificate state of the router: trusted CAs, CRLs, the per-peer validation cache and the
/// configured invalid-certificate-behavior. Its methods keep the alarm table in step with
/// what they find.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates {
    pub trust: TrustStore,
    pub revocations: RevocationSet,
    pub behavior: InvalidCertificateBehavior,
    cache: ValidationCache,
}

impl PeerCertificates {
    /// Creates the state with the given CAs and behavior and no CRLs.
    pub fn new(trust: TrustStore, behavior: InvalidCertificateBehavior) -> Self {
        Self { trust, revocations: RevocationSet::new(), behavior, cache: ValidationCache::new() }
    }

    /// Validates a certificate chain received from `peer`, raising or clearing its
    /// invalid-certificate alarm. The certificate must carry the name `peer`.
    pub fn check_peer(
        &mut self,
        peer: &str,
        chain: &[Vec<u8>],
        now: SystemTime,
        alarms: &mut AlarmTable,
    ) -> PeerCertificateOutcome {
        self.check_peer_named(peer, peer, chain, now, alarms)
    }

    /// Validates a chain as [`PeerCertificates::check_peer`] does, for the peer router named
    /// `peer` in alarms, whose certificate must carry `expected_name`.
    pub fn check_peer_named(
        &mut self,
        peer: &str,
        expected_name: &str,
        chain: &[Vec<u8>],
        now: SystemTime,
        alarms: &mut AlarmTable,
    ) -> PeerCertificateOutcome {
        let result = self.cache.validate_named(
            peer,
            expected_name,
            chain,
            now,
            &self.trust,
            &self.revocations,
        );
        match result {
            Ok(validated) => {
                alarms.clear(&AlarmCause::PeerCertificateInvalid { peer: peer.to_owned() });
                PeerCertificateOutcome::Valid(validated)
            }
            Err(error) => {
                let verdict = decide_invalid_certificate(self.behavior, peer, &error);
                let raised = alarms.raise(verdict.cause.clone(), verdict.alarm.clone(), now);
                // The peer sends its certificate on every path, so only a change is logged.
                if matches!(raised, Raised::Unchanged(_)) {
                    return PeerCertificateOutcome::Invalid { error, verdict };
                }
                tracing::warn!(
                    peer,
                    reason = error.reason(),
                    error = %error,
                    action = ?verdict.action,
                    "peer certificate is invalid"
                );
                PeerCertificateOutcome::Invalid { error, verdict }
            }
        }
    }

    /// Records that a key or rekey message from `peer` failed authentication.
    pub fn peer_unauthenticated(
        &self,
        peer: &str,
        detail: &dyn std::fmt::Display,
        now: SystemTime,
        alarms: &mut AlarmTable,
    ) {
        let cause = AlarmCause::PeerUnauthenticated { peer: peer.to_owned() };
        let spec = alarm::peer_unauthenticated(peer, &detail.to_string());
        match alarms.raise(cause, spec, now) {
            Raised::Unchanged(_) => {
                tracing::debug!(peer, error = %detail, "unable to authenticate peer")
            }
            _ => tracing::warn!(peer, error = %detail, "unable to authenticate peer"),
        }
    }

    /// Records that a message from `peer` authenticated again, clearing its alarm.
    pub fn peer_authenticated(&self, peer: &str, alarms: &mut AlarmTable) {
        alarms.clear(&AlarmCause::PeerUnauthenticated { peer: peer.to_owned() });
    }

    /// The last validated state of `peer`.
    pub fn validated(&self, peer: &str) -> Option<&ValidatedPeer> {
        self.cache.validated(peer)
    }

    /// Drops the cached result of `peer`, so its next certificate is validated in full.
    pub fn forget(&mut self, peer: &str) {
        self.cache.forget(peer);
    }

    /// Raises or clears the alarms about the router's own certificate: expiry, revocation and,
    /// when ESKM is enabled, the lack of a valid signed certificate. A certificate is signed
    /// and valid when a CA issued it, it is in date and not revoked, and, when CAs are
    /// configured, it chains to one of them at `now`. A self-signed certificate never counts.
    pub fn evaluate_own(
        &self,
        identity: &super::OwnIdentity,
        router: &str,
        eskm_enabled: bool,
        now: SystemTime,
        alarms: &mut AlarmTable,
    ) {
        let revoked = self.revocations.check_own(identity.certificate_der(), &self.trust).err();
        alarm::evaluate_own_certificate(
            alarms,
            router,
            identity.validity().1,
            revoked.as_ref(),
            now,
        );

        let problem = self.own_problem(identity, revoked, unix_seconds(now));
        let spec = match problem {
            Some(detail) if eskm_enabled => Some(alarm::no_valid_certificate(router, &detail)),
            _ => None,
        };
        // Logged when first raised only, since this runs on every periodic evaluation.
        if let Some(Raised::New(id)) = alarms.set(AlarmCause::NoValidCertificate, spec, now) {
            tracing::error!(router, %id, "ESKM is enabled but no valid signed certificate is loaded");
        }
    }

    /// Returns why the router's own certificate is not a valid signed one at `now` (Unix
    /// seconds), or `None` when it is. A revocation or a date outside the validity period
    /// comes first, because it matters more than how the certificate is signed.
    fn own_problem(
        &self,
        identity: &super::OwnIdentity,
        revoked: Option<ValidationError>,
        now: i64,
    ) -> Option<String> {
        if let Some(error) = revoked {
            return Some(error.to_string());
        }
        let (not_before, not_after) = identity.validity();
        if now > not_after {
            return Some(format!(
                "the router's own certificate expired at {} (notAfter)",
                format_unix(not_after)
            ));
        }
        if now < not_before {
            return Some(format!(
                "the router's own certificate is not valid before {} (notBefore)",
                format_unix(not_before)
            ));
        }
        if identity.is_self_signed() {
            return Some("the certificate is self-signed".into());
        }
        if self.trust.is_empty() {
            return None;
        }
        let name = identity.common_name();
        validate_peer_at(identity.chain(), name, now, &self.trust, &self.revocations)
            .err()
            .map(|error| error.to_string())
    }

    /// Raises or clears the alarm of a CRL from the result of fetching and applying it.
    pub fn crl_result<T>(
        &self,
        router: &str,
        source: &str,
        result: &Result<T, super::CrlError>,
        now: SystemTime,
        alarms: &mut AlarmTable,
    ) {
        let cause = AlarmCause::CrlUnavailable { source: source.to_owned() };
        match result {
            Ok(_) => {
                alarms.clear(&cause);
            }
            Err(e) => {
                let spec = alarm::crl_unavailable(router, source, &e.to_string());
                if !matches!(alarms.raise(cause, spec, now), Raised::Unchanged(_)) {
                    tracing::warn!(crl = source, error = %e, "CRL unavailable");
                }
            }
        }
    }
}
