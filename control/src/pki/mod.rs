//! Certificates: the router's own identity, validation of peer certificate chains, revocation
//! lists, and sealing of private keys with a TPM.

pub mod crl;
pub mod crypto;
pub mod error;
mod http;
pub mod identity;
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
