//! Errors of the per-packet crypto.

use core::fmt;

/// Why sealing or opening a packet failed.
///
/// Every variant is a reason to drop the packet and count it; none of them leaves state
/// changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    // Malformed input from the network.
    /// The packet is shorter than the trailer the key requires.
    TooShort { len: usize, trailer: usize },
    /// Ciphertext is empty or not a whole number of AES blocks.
    CiphertextLength { len: usize },
    /// The encrypted metadata section is shorter than its IV and one block.
    MetadataSectionLength { len: usize },
    /// The tag does not match: forged, corrupted, or sealed under another key.
    BadTag,
    /// The plaintext's PKCS#7 padding is invalid; only a peer holding the key can cause this.
    BadPadding,
    /// A payload-key TLV value has the wrong length.
    PayloadKeyLength { len: usize },
    /// A payload-key TLV names a cipher suite svrd does not know.
    UnknownSuite { code: u8 },

    // Local misuse.
    /// The output buffer cannot hold the padded ciphertext and trailer.
    BufferTooSmall { needed: usize, available: usize },
    /// Packet number 0, which is never sent.
    SequenceZero,
    /// The packet counter passed its 56-bit limit; the flow needs a new session.
    SequenceExhausted,
    /// The payload does not fit in one UDP datagram once sealed.
    PayloadTooLarge { len: usize, max: usize },
    /// The system random number generator failed.
    Random,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CryptoError::TooShort { len, trailer } => {
                write!(f, "packet of {len} bytes is shorter than its {trailer}-byte trailer")
            }
            CryptoError::CiphertextLength { len } => {
                write!(f, "ciphertext of {len} bytes is not a non-zero multiple of 16")
            }
            CryptoError::MetadataSectionLength { len } => write!(
                f,
                "encrypted metadata section of {len} bytes is shorter than IV and one block (32)"
            ),
            CryptoError::BadTag => f.write_str("tag does not match"),
            CryptoError::BadPadding => f.write_str("invalid padding in authenticated plaintext"),
            CryptoError::PayloadKeyLength { len } => {
                write!(
                    f,
                    "payload key value of {len} bytes, expected {}",
                    super::PAYLOAD_KEY_TLV_LEN
                )
            }
            CryptoError::UnknownSuite { code } => write!(f, "unknown cipher suite {code}"),
            CryptoError::BufferTooSmall { needed, available } => {
                write!(f, "buffer of {available} bytes, {needed} needed")
            }
            CryptoError::SequenceZero => f.write_str("packet number 0 is never valid"),
            CryptoError::SequenceExhausted => {
                f.write_str("packet numbers of this session are used up; start a new session")
            }
            CryptoError::PayloadTooLarge { len, max } => {
                write!(
                    f,
                    "payload of {len} bytes exceeds the {max} bytes a sealed datagram can carry"
                )
            }
            CryptoError::Random => f.write_str("system random number generator failed"),
        }
    }
}

impl std::error::Error for CryptoError {}
