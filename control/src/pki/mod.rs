//! Certificates: the router's own identity, validation of peer certificate chains, revocation
//! lists, and sealing of private keys with a TPM.
//!
//! The flow at run time:
//! - [`OwnIdentity::load`] reads the installed certificate and key, or makes a self-signed
//!   one; its `sign` signs every key-exchange message.
//! - [`PeerCertificates::check_peer`] validates the chain a peer sends against the
//!   [`TrustStore`] and [`RevocationSet`], caches the result and raises or clears the alarm.
//!   The returned [`ValidatedPeer`] checks that peer's later messages with `verify`.
//! - [`CrlPoller`] reports when each CRL is due; the daemon fetches it with
//!   [`CrlSource::fetch`] and hands the bytes to [`CrlPoller::apply`].
//! - [`PeerCertificates::evaluate_own`] runs periodically for the expiry and revocation alarms
//!   of the router's own certificate.

pub mod crl;
pub mod crypto;
pub mod error;
mod http;
pub mod identity;
pub mod own_check;
pub mod peer;
#[cfg(feature = "tpm")]
pub mod tpm;
pub mod validate;

pub use crl::{CrlPoller, CrlSource, CrlUpdate, RevocationList, RevocationSet};
pub use crypto::{HashAlg, PublicKey, SignatureAlg};
pub use error::{CrlError, IdentityError, ValidationError};
pub use identity::{IdentityConfig, IdentityOrigin, KeyProtection, OwnIdentity};
pub use peer::{
    InvalidCertificateBehavior, InvalidCertificateVerdict, PeerCertificateOutcome,
    PeerCertificates, PeeringAction, ValidationCache, decide_invalid_certificate,
};
pub use validate::{BadSignature, TrustStore, ValidatedPeer, validate_peer, validate_peer_at};
