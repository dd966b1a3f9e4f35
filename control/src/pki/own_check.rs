//! Start-up checks of an installed router certificate. A certificate that cannot be this
//! router's (another name, a CA certificate, a broken self-signature, not valid yet) stops
//! the daemon with the reason. One that only fails to chain to a configured trusted CA is
//! reported as a warning: the daemon runs, and the alarm for a router without a valid
//! signed certificate shows the fault while ESKM is enabled.

use std::time::SystemTime;

use tracing::warn;

use super::validate::unix_seconds;
use super::{OwnIdentity, RevocationSet, TrustStore, ValidationError, validate_peer_at};

/// Checks the installed certificate of `identity` for the router whose peering-common-name
/// is `expected_name`. Returns the fault that makes it unusable; a fault of its chain to
/// `trust` is logged and returned as `Ok(Some(..))`.
pub fn check_installed(
    identity: &OwnIdentity,
    expected_name: &str,
    trust: &TrustStore,
    now: SystemTime,
) -> Result<Option<ValidationError>, ValidationError> {
    // An expired certificate is left to the expiry alarm, which also covers a certificate
    // that expires while the daemon runs, so the checks run no later than notAfter.
    let (_, not_after) = identity.validity();
    let at = unix_seconds(now).min(not_after);
    let revocations = RevocationSet::new();

    // Without trusted CAs the validation checks the name, the end-entity role, the
    // extensions and the dates, then the self-signature. A CA-signed certificate passes
    // all but the last step and fails it as untrusted, which the chain check below covers.
    match validate_peer_at(identity.chain(), expected_name, at, &TrustStore::new(), &revocations) {
        Ok(_) => {}
        Err(ValidationError::Untrusted { .. }) if !identity.is_self_signed() => {}
        Err(error) => return Err(error),
    }
    if trust.is_empty() {
        return Ok(None);
    }
    match validate_peer_at(identity.chain(), expected_name, at, trust, &revocations) {
        Ok(_) => Ok(None),
        Err(error) => {
            warn!(%error, name = expected_name, "the router's certificate does not chain to a configured trusted CA, so peers that check it reject it");
            Ok(Some(error))
        }
    }
}
