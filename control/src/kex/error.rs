//! Errors of the key exchange, grouped by origin: malformed input, peer misbehaviour, peer
//! incompatibility and local misuse. Each receive error names the counter it increments.

use std::error::Error;
use std::fmt;

use super::KexAlgorithm;
use super::dh::DhGroup;
use super::mlkem::MlKemLevel;
use super::msg::MessageKind;
use super::peer::SecurityStatus;

/// A received Diffie-Hellman public value failed its checks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DhError {
    /// The value is not encoded at the full group length.
    WrongLength { group: DhGroup, expected: usize, actual: usize },
    /// The value is not in the range 1 < y < p - 1.
    OutOfRange { group: DhGroup },
    /// y^q mod p is not 1, so y is outside the prime-order subgroup.
    NotInSubgroup { group: DhGroup },
}

impl fmt::Display for DhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DhError::WrongLength { group, expected, actual } => {
                write!(f, "{group} public value is {actual} bytes, expected {expected}")
            }
            DhError::OutOfRange { group } => {
                write!(f, "{group} public value is outside 1 < y < p - 1")
            }
            DhError::NotInSubgroup { group } => {
                write!(f, "{group} public value is not in the subgroup of order (p - 1) / 2")
            }
        }
    }
}

impl Error for DhError {}

/// An ML-KEM input failed the checks of FIPS 203 section 7.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MlKemError {
    /// The encapsulation key has the wrong length for the parameter set.
    EncapsulationKeyLength { level: MlKemLevel, expected: usize, actual: usize },
    /// The encapsulation key failed the modulus check (a coefficient is not below q).
    EncapsulationKeyModulus { level: MlKemLevel },
    /// The ciphertext has the wrong length for the parameter set.
    CiphertextLength { level: MlKemLevel, expected: usize, actual: usize },
    /// A decapsulation-key seed is not 64 bytes.
    SeedLength { actual: usize },
}

impl fmt::Display for MlKemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MlKemError::EncapsulationKeyLength { level, expected, actual } => {
                write!(f, "{level} encapsulation key is {actual} bytes, expected {expected}")
            }
            MlKemError::EncapsulationKeyModulus { level } => {
                write!(f, "{level} encapsulation key has a coefficient not below q = 3329")
            }
            MlKemError::CiphertextLength { level, expected, actual } => {
                write!(f, "{level} ciphertext is {actual} bytes, expected {expected}")
            }
            MlKemError::SeedLength { actual } => {
                write!(f, "ML-KEM seed is {actual} bytes, expected 64")
            }
        }
    }
}

impl Error for MlKemError {}

/// A sealed (encrypted and authenticated) body could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The sealed layer is shorter than IV, one cipher block and tag, or not block-aligned.
    BadLength { actual: usize },
    /// The HMAC-SHA-384 tag does not match.
    BadTag,
    /// The tag matched but the PKCS#7 padding is invalid.
    BadPadding,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::BadLength { actual } => write!(
                f,
                "sealed layer is {actual} bytes, expected 16-byte IV, whole cipher blocks and a \
                 48-byte tag"
            ),
            SealError::BadTag => f.write_str("sealed layer has an invalid HMAC-SHA-384 tag"),
            SealError::BadPadding => f.write_str("sealed layer has invalid PKCS#7 padding"),
        }
    }
}

impl Error for SealError {}

/// A signature did not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature bytes are not a valid encoding for the key type.
    Malformed { len: usize },
    /// The signature is well formed but does not match the message and key.
    Mismatch,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::Malformed { len } => {
                write!(f, "signature of {len} bytes is not a valid encoding")
            }
            SignatureError::Mismatch => f.write_str("signature does not match the message"),
        }
    }
}

impl Error for SignatureError {}

/// A key exchange message could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message ends before a field of `needed` bytes at `offset`.
    Truncated { offset: usize, needed: usize },
    /// The version octet is not 1.
    UnknownVersion { version: u8 },
    /// The type octet names no message.
    UnknownType { kind: u8 },
    /// The algorithm fields name no supported algorithm.
    UnknownAlgorithm { kind: u8, dh_bits: u16, ml_kem: u16 },
    /// A field is longer than this implementation accepts.
    FieldTooLong { field: &'static str, len: usize, max: usize },
    /// Bytes remain after the last field.
    TrailingBytes { count: usize },
    /// A metadata-key bundle names an unknown HMAC algorithm.
    UnknownHmac { code: u8 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { offset, needed } => {
                write!(f, "message truncated: {needed} bytes needed at offset {offset}")
            }
            DecodeError::UnknownVersion { version } => {
                write!(f, "unknown message version {version}, expected 1")
            }
            DecodeError::UnknownType { kind } => write!(f, "unknown message type {kind}"),
            DecodeError::UnknownAlgorithm { kind, dh_bits, ml_kem } => {
                write!(f, "unknown key exchange algorithm {kind} (dh {dh_bits}, ml-kem {ml_kem})")
            }
            DecodeError::FieldTooLong { field, len, max } => {
                write!(f, "{field} is {len} bytes, at most {max} accepted")
            }
            DecodeError::TrailingBytes { count } => {
                write!(f, "{count} bytes after the last field")
            }
            DecodeError::UnknownHmac { code } => {
                write!(f, "unknown metadata HMAC algorithm {code}, expected 1 or 2")
            }
        }
    }
}

impl Error for DecodeError {}

/// Reason a received message was rejected.
///
/// A rejected message leaves the exchange as it was. Counters and alarms still change, a
/// certificate not seen before is held for validation ([`ReceiveError::CertificatePending`]),
/// and a verified message from a newer boot of the peer resets the peering before the
/// rest of its checks run.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReceiveError {
    // Malformed input.
    /// The bytes are not a valid message.
    Decode(DecodeError),

    // Peer misbehaved, or an attacker sent or replayed the message.
    /// The signature does not verify with the peer's certificate key.
    BadSignature(SignatureError),
    /// The sequence number was already accepted, or is older than the replay window.
    Replayed { sequence: u64 },
    /// The message comes from an earlier boot of the peer.
    StaleBoot { boot: u64, current: u64 },
    /// The message is addressed to another boot of this router.
    WrongReceiverBoot { boot: u64, expected: u64 },
    /// The message belongs to an exchange older than the current one.
    StaleExchange { exchange: u32, current: u32 },
    /// The peer's Diffie-Hellman value failed its checks.
    Dh(DhError),
    /// The peer's ML-KEM key or ciphertext failed its checks.
    MlKem(MlKemError),
    /// A sealed body did not open under the peer key of its exchange.
    Seal(SealError),
    /// A value conflicts with one the peer sent earlier in the same exchange.
    Conflict { field: &'static str, exchange: u32 },
    /// The message is not expected in the current state.
    Unexpected { kind: MessageKind, status: SecurityStatus },
    /// The acknowledgement names a value this router never sent.
    UnknownAck { kind: MessageKind },
    /// The metadata key is older than one already received.
    StaleMetadataKey { index: u32, current: u32 },

    // Peer incompatible.
    /// The peer uses another key exchange algorithm.
    AlgorithmMismatch { local: KexAlgorithm, peer: KexAlgorithm },
    /// Both routers claim the same ML-KEM role (their keygen priorities disagree).
    RoleConflict,

    // Waiting on local state.
    /// No validated certificate is stored for the peer yet.
    NoVerifier,
    /// The peer's certificate is waiting for validation by the caller.
    CertificatePending,
    /// The peer's certificate was rejected by the caller.
    CertificateRejected,
    /// No peer key is held for the exchange the message names.
    NoPeerKey { exchange: u32 },

    // Local misuse.
    /// The peer id is not configured.
    UnknownPeer,
    /// ESKM is disabled or this node is standby.
    Inactive,
    /// The ML-KEM key pair for the parameter set was not supplied.
    MissingMlKemKeyPair { level: MlKemLevel },
}

impl ReceiveError {
    /// Name of the counter this error increments.
    pub fn counter(&self) -> &'static str {
        match self {
            ReceiveError::Decode(_) => "decode-error",
            ReceiveError::BadSignature(_) => "bad-signature",
            ReceiveError::Replayed { .. } => "replayed",
            ReceiveError::StaleBoot { .. } => "stale-boot",
            ReceiveError::WrongReceiverBoot { .. } => "wrong-receiver-boot",
            ReceiveError::StaleExchange { .. } => "stale-exchange",
            ReceiveError::Dh(_) => "invalid-dh-value",
            ReceiveError::MlKem(_) => "invalid-ml-kem-value",
            ReceiveError::Seal(_) => "seal-open-failed",
            ReceiveError::Conflict { .. } => "conflicting-value",
            ReceiveError::Unexpected { .. } => "unexpected-message",
            ReceiveError::UnknownAck { .. } => "unknown-ack",
            ReceiveError::StaleMetadataKey { .. } => "stale-metadata-key",
            ReceiveError::AlgorithmMismatch { .. } => "algorithm-mismatch",
            ReceiveError::RoleConflict => "ml-kem-role-conflict",
            ReceiveError::NoVerifier => "no-verifier",
            ReceiveError::CertificatePending => "certificate-pending",
            ReceiveError::CertificateRejected => "certificate-rejected",
            ReceiveError::NoPeerKey { .. } => "no-peer-key",
            ReceiveError::UnknownPeer => "unknown-peer",
            ReceiveError::Inactive => "inactive",
            ReceiveError::MissingMlKemKeyPair { .. } => "missing-ml-kem-key-pair",
        }
    }

    /// Tells whether the error means the peer could not be authenticated: the message carried a
    /// bad signature, or a signed message carried values that fail cryptographic checks.
    pub fn is_authentication_failure(&self) -> bool {
        matches!(
            self,
            ReceiveError::BadSignature(_)
                | ReceiveError::Dh(_)
                | ReceiveError::MlKem(_)
                | ReceiveError::Seal(_)
        )
    }
}

impl fmt::Display for ReceiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiveError::Decode(e) => write!(f, "malformed message: {e}"),
            ReceiveError::BadSignature(e) => write!(f, "invalid message signature: {e}"),
            ReceiveError::Replayed { sequence } => {
                write!(f, "sequence number {sequence} already accepted or too old")
            }
            ReceiveError::StaleBoot { boot, current } => {
                write!(f, "message from peer boot {boot}, current boot is {current}")
            }
            ReceiveError::WrongReceiverBoot { boot, expected } => {
                write!(f, "message addressed to boot {boot}, this router is boot {expected}")
            }
            ReceiveError::StaleExchange { exchange, current } => {
                write!(f, "message of exchange {exchange}, current exchange is {current}")
            }
            ReceiveError::Dh(e) => write!(f, "invalid Diffie-Hellman value: {e}"),
            ReceiveError::MlKem(e) => write!(f, "invalid ML-KEM value: {e}"),
            ReceiveError::Seal(e) => write!(f, "sealed body rejected: {e}"),
            ReceiveError::Conflict { field, exchange } => {
                write!(f, "{field} differs from the one received earlier in exchange {exchange}")
            }
            ReceiveError::Unexpected { kind, status } => {
                write!(f, "{kind} message not expected in state {status}")
            }
            ReceiveError::UnknownAck { kind } => {
                write!(f, "{kind} acknowledges a value that was never sent")
            }
            ReceiveError::StaleMetadataKey { index, current } => {
                write!(f, "metadata key index {index} is older than the current {current}")
            }
            ReceiveError::AlgorithmMismatch { local, peer } => write!(
                f,
                "peer uses key exchange algorithm {peer}, this router is configured for {local}"
            ),
            ReceiveError::RoleConflict => f.write_str(
                "both routers act as ML-KEM key generator; check ml-kem-keygen-priority on both",
            ),
            ReceiveError::NoVerifier => f.write_str("no validated certificate for the peer yet"),
            ReceiveError::CertificatePending => {
                f.write_str("peer certificate is waiting for validation")
            }
            ReceiveError::CertificateRejected => {
                f.write_str("peer certificate was rejected; waiting for a different one")
            }
            ReceiveError::NoPeerKey { exchange } => {
                write!(f, "no peer key held for exchange {exchange}")
            }
            ReceiveError::UnknownPeer => f.write_str("peer is not configured"),
            ReceiveError::Inactive => f.write_str("ESKM is disabled or this node is standby"),
            ReceiveError::MissingMlKemKeyPair { level } => {
                write!(f, "no {level} key pair was supplied at start-up")
            }
        }
    }
}

impl Error for ReceiveError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ReceiveError::Decode(e) => Some(e),
            ReceiveError::BadSignature(e) => Some(e),
            ReceiveError::Dh(e) => Some(e),
            ReceiveError::MlKem(e) => Some(e),
            ReceiveError::Seal(e) => Some(e),
            _ => None,
        }
    }
}

/// A configuration value is outside its documented range.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A timer value is outside its range.
    TimerOutOfRange { name: &'static str, seconds: u64, min: u64, max: u64 },
    /// The peering common name is empty or longer than 255 bytes.
    CommonNameLength { len: usize },
    /// Two peers have the same peering common name as each other or as this router.
    DuplicateCommonName { name: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::TimerOutOfRange { name, seconds, min, max } => {
                write!(f, "{name} is {seconds} s, expected {min} to {max} s")
            }
            ConfigError::CommonNameLength { len } => {
                write!(f, "peering-common-name is {len} bytes, expected 1 to 255")
            }
            ConfigError::DuplicateCommonName { name } => {
                write!(f, "peering-common-name {name:?} is used twice")
            }
        }
    }
}

impl Error for ConfigError {}
