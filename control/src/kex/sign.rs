//! Message signing: the two traits through which the key exchange signs its messages with
//! this router's certificate key and verifies the peer's, and an ECDSA P-256 implementation.

use std::fmt;

use p256_014::ecdsa::signature::{Signer, Verifier};
use p256_014::ecdsa::{Signature, SigningKey, VerifyingKey};
use rand_core::CryptoRng;

use super::error::SignatureError;

/// Signs messages with this router's certificate private key.
pub trait MessageSigner: Send {
    /// Returns the signature over `msg`.
    fn sign(&self, msg: &[u8]) -> Vec<u8>;
}

/// Verifies messages with a peer's certificate public key, stored after the certificate
/// was validated.
pub trait PeerVerifier: Send {
    /// Checks `sig` over `msg`.
    fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), SignatureError>;
}

/// An ECDSA P-256 signing key (SHA-256 digest, fixed 64-byte r || s signatures).
pub struct P256Signer(SigningKey);

impl P256Signer {
    /// Generates a fresh key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        P256Signer(<SigningKey as p256_014::elliptic_curve::Generate>::generate_from_rng(rng))
    }

    /// Builds a key from its 32-byte big-endian scalar.
    pub fn from_scalar(bytes: &[u8]) -> Result<Self, SignatureError> {
        SigningKey::from_slice(bytes)
            .map(P256Signer)
            .map_err(|_| SignatureError::Malformed { len: bytes.len() })
    }

    /// The 32-byte big-endian scalar, for sealing the key at rest.
    pub fn to_scalar(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(self.0.to_bytes().to_vec())
    }

    /// The matching verifier.
    pub fn verifier(&self) -> P256Verifier {
        P256Verifier(*self.0.verifying_key())
    }
}

impl MessageSigner for P256Signer {
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let sig: Signature = self.0.sign(msg);
        sig.to_bytes().to_vec()
    }
}

impl fmt::Debug for P256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P256Signer(..)")
    }
}

/// An ECDSA P-256 public key.
#[derive(Clone, Debug)]
pub struct P256Verifier(VerifyingKey);

impl P256Verifier {
    /// Builds a verifier from a SEC1-encoded point (compressed or uncompressed).
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, SignatureError> {
        VerifyingKey::from_sec1_bytes(bytes)
            .map(P256Verifier)
            .map_err(|_| SignatureError::Malformed { len: bytes.len() })
    }

    /// The uncompressed SEC1 encoding of the point.
    pub fn to_sec1(&self) -> Vec<u8> {
        self.0.to_sec1_bytes().to_vec()
    }
}

impl PeerVerifier for P256Verifier {
    fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), SignatureError> {
        let sig =
            Signature::from_slice(sig).map_err(|_| SignatureError::Malformed { len: sig.len() })?;
        self.0.verify(msg, &sig).map_err(|_| SignatureError::Mismatch)
    }
}
