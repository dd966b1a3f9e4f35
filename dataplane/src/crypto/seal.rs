//! Sealing and opening the parts of an SVR packet: payload, metadata section, trailer.
//!
//! Each function works in place on a slice of the packet buffer, so the packet path never
//! copies or allocates. [`seal_fast_path`] and [`open_fast_path`] compose them for the
//! common case of a session packet without metadata; packets with metadata are composed
//! by the session layer, which also parses the metadata in between.

use core::ops::Range;

use super::aes_cbc::{BLOCK_LEN, Iv, padded_len};
use super::{CryptoError, KeyId, MacKey, MetadataKeys, SessionKeys, Suite};
use crate::replay::ReplayWindow;

/// Which way a packet travels within its session: forward is from the router that created
/// the session towards the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the session's originating router.
    Forward,
    /// Towards the session's originating router.
    Reverse,
}

impl Direction {
    const fn code(self) -> u8 {
        match self {
            Direction::Forward => 0,
            Direction::Reverse => 1,
        }
    }
}

/// Length of the sequence field in the trailer.
pub const SEQUENCE_LEN: usize = 8;

/// The sequence field: which payload key sealed the packet, and the packet's number in its
/// direction of the session.
///
/// ```text
///  0        1                                                 8
/// +--------+--------------------------------------------------+
/// | key id | packet number (56 bits, big-endian, from 1)      |
/// +--------+--------------------------------------------------+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequence {
    key_id: KeyId,
    number: u64,
}

impl Sequence {
    /// The largest packet number. Numbers never repeat within a session direction, across
    /// key rotations too, so a flow that reaches it continues in a new session.
    pub const MAX_NUMBER: u64 = (1 << 56) - 1;

    /// Builds a sequence field, or fails when `number` is 0 or does not fit in 56 bits.
    pub fn new(key_id: KeyId, number: u64) -> Result<Sequence, CryptoError> {
        if number == 0 {
            return Err(CryptoError::SequenceZero);
        }
        if number > Self::MAX_NUMBER {
            return Err(CryptoError::SequenceExhausted);
        }
        Ok(Sequence { key_id, number })
    }

    /// The payload key generation.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The packet number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The field as sent.
    pub fn to_bytes(self) -> [u8; SEQUENCE_LEN] {
        let mut bytes = self.number.to_be_bytes();
        bytes[0] = self.key_id;
        bytes
    }

    fn from_bytes(bytes: [u8; SEQUENCE_LEN]) -> Sequence {
        let key_id = bytes[0];
        let mut number = bytes;
        number[0] = 0;
        Sequence { key_id, number: u64::from_be_bytes(number) }
    }
}

/// Bytes a sealed packet adds to `plaintext_len` bytes of payload: padding, sequence field
/// and tag.
pub const fn sealed_overhead(suite: Suite, plaintext_len: usize) -> usize {
    padded_len(plaintext_len) - plaintext_len + SEQUENCE_LEN + suite.tag_len()
}

/// Derives the CBC IV of a payload: the AES encryption, under the payload key, of
///
/// ```text
///  0     1     2                      8                     16
/// +-----+-----+----------------------+----------------------+
/// | dir | 'P' | zero                 | sequence field       |
/// +-----+-----+----------------------+----------------------+
/// ```
///
/// Distinct (direction, key id, number) triples give distinct blocks, and AES is a
/// permutation, so no IV repeats under one key; without the key the IV cannot be predicted.
pub fn payload_iv(keys: &SessionKeys, direction: Direction, sequence: Sequence) -> Iv {
    let mut block = [0u8; BLOCK_LEN];
    block[0] = direction.code();
    block[1] = b'P';
    block[8..].copy_from_slice(&sequence.to_bytes());
    keys.cbc().encrypt_block(&mut block);
    block
}

/// Encrypts the payload `buf[..len]` in place; returns the ciphertext length.
pub fn encrypt_payload(
    keys: &SessionKeys,
    direction: Direction,
    sequence: Sequence,
    buf: &mut [u8],
    len: usize,
) -> Result<usize, CryptoError> {
    let iv = payload_iv(keys, direction, sequence);
    keys.cbc().encrypt_padded(&iv, buf, len)
}

/// Decrypts a payload ciphertext in place; returns the plaintext length. Call only after
/// the packet's tag has been verified.
pub fn decrypt_payload(
    keys: &SessionKeys,
    direction: Direction,
    sequence: Sequence,
    buf: &mut [u8],
) -> Result<usize, CryptoError> {
    let iv = payload_iv(keys, direction, sequence);
    keys.cbc().decrypt_padded(&iv, buf)
}

/// Encrypts a payload-TLV section in place. The plaintext TLVs are at
/// `buf[16..16 + len]`; a fresh random IV is written to `buf[..16]`. Returns the length of
/// the section on the wire (IV plus ciphertext), which is the header's PayloadLength.
pub fn encrypt_metadata_section(
    keys: &MetadataKeys,
    buf: &mut [u8],
    len: usize,
) -> Result<usize, CryptoError> {
    let needed = BLOCK_LEN + padded_len(len);
    if buf.len() < needed {
        return Err(CryptoError::BufferTooSmall { needed, available: buf.len() });
    }
    let mut iv = [0u8; BLOCK_LEN];
    getrandom::fill(&mut iv).map_err(|_| CryptoError::Random)?;
    buf[..BLOCK_LEN].copy_from_slice(&iv);
    let ciphertext = keys.cbc().encrypt_padded(&iv, &mut buf[BLOCK_LEN..], len)?;
    Ok(BLOCK_LEN + ciphertext)
}

/// Decrypts an encrypted payload-TLV section in place; returns where in `section` the
/// plaintext TLVs now are. Call only after the packet's tag has been verified.
pub fn decrypt_metadata_section(
    keys: &MetadataKeys,
    section: &mut [u8],
) -> Result<Range<usize>, CryptoError> {
    if section.len() < 2 * BLOCK_LEN {
        return Err(CryptoError::MetadataSectionLength { len: section.len() });
    }
    let (iv, ciphertext) = section.split_at_mut(BLOCK_LEN);
    let mut iv_block = [0u8; BLOCK_LEN];
    iv_block.copy_from_slice(iv);
    let len = keys.cbc().decrypt_padded(&iv_block, ciphertext)?;
    Ok(BLOCK_LEN..BLOCK_LEN + len)
}

/// Appends the trailer to the packet body `buf[..body_len]`: the sequence field, then the
/// tag of everything before it. Returns the sealed length.
pub fn seal_trailer(
    mac: &MacKey,
    buf: &mut [u8],
    body_len: usize,
    sequence: Sequence,
) -> Result<usize, CryptoError> {
    let tag_len = mac.algorithm().tag_len();
    let sealed_len = body_len + SEQUENCE_LEN + tag_len;
    if buf.len() < sealed_len {
        return Err(CryptoError::BufferTooSmall { needed: sealed_len, available: buf.len() });
    }
    buf[body_len..body_len + SEQUENCE_LEN].copy_from_slice(&sequence.to_bytes());
    let tag = mac.tag(&buf[..body_len + SEQUENCE_LEN]);
    buf[body_len + SEQUENCE_LEN..sealed_len].copy_from_slice(tag.as_bytes());
    Ok(sealed_len)
}

/// Reads the sequence field of a sealed packet without authenticating it, so the receiver
/// can choose the key and pre-check the replay window. Returns the field and the length of
/// the body before it. Nothing read here may be trusted until [`verify_trailer`] passes.
pub fn open_trailer(packet: &[u8], tag_len: usize) -> Result<(Sequence, usize), CryptoError> {
    let trailer = SEQUENCE_LEN.saturating_add(tag_len);
    if packet.len() < trailer {
        return Err(CryptoError::TooShort { len: packet.len(), trailer });
    }
    let body_len = packet.len() - trailer;
    let mut field = [0u8; SEQUENCE_LEN];
    field.copy_from_slice(&packet[body_len..body_len + SEQUENCE_LEN]);
    Ok((Sequence::from_bytes(field), body_len))
}

/// Verifies the tag of a sealed packet in constant time; returns the sequence field and
/// the body length.
pub fn verify_trailer(mac: &MacKey, packet: &[u8]) -> Result<(Sequence, usize), CryptoError> {
    let tag_len = mac.algorithm().tag_len();
    let (sequence, body_len) = open_trailer(packet, tag_len)?;
    let (covered, tag) = packet.split_at(body_len + SEQUENCE_LEN);
    if !mac.verify(covered, tag) {
        return Err(CryptoError::BadTag);
    }
    Ok((sequence, body_len))
}

/// Seals a packet without metadata: encrypts the payload `buf[..len]` in place and appends
/// the trailer under the session's MAC key for `direction`. Returns the sealed length.
pub fn seal_fast_path(
    keys: &SessionKeys,
    direction: Direction,
    number: u64,
    buf: &mut [u8],
    len: usize,
) -> Result<usize, CryptoError> {
    let sequence = Sequence::new(keys.key_id(), number)?;
    let needed = padded_len(len) + SEQUENCE_LEN + keys.suite().tag_len();
    if buf.len() < needed {
        return Err(CryptoError::BufferTooSmall { needed, available: buf.len() });
    }
    let body_len = encrypt_payload(keys, direction, sequence, buf, len)?;
    seal_trailer(keys.mac(direction), buf, body_len, sequence)
}

/// Opens a packet without metadata in place: replay pre-check, tag check, decryption, and
/// only then the replay window update. Returns the plaintext length at the start of
/// `packet`.
///
/// The caller has chosen `keys` by the key id of [`open_trailer`]; a mismatch is reported
/// as [`CryptoError::BadTag`] after the tag check, like any other wrong key.
pub fn open_fast_path(
    keys: &SessionKeys,
    direction: Direction,
    window: &mut ReplayWindow,
    packet: &mut [u8],
) -> Result<usize, OpenError> {
    let (claimed, _) = open_trailer(packet, keys.suite().tag_len())?;
    window.check(claimed.number()).map_err(OpenError::Replay)?;

    let (sequence, body_len) = verify_trailer(keys.mac(direction), packet)?;
    if sequence.key_id() != keys.key_id() {
        return Err(OpenError::Crypto(CryptoError::BadTag));
    }
    let len = decrypt_payload(keys, direction, sequence, &mut packet[..body_len])?;
    window.record(sequence.number()).map_err(OpenError::Replay)?;
    Ok(len)
}

/// Why a sealed packet could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// Malformed, forged or undecryptable.
    Crypto(CryptoError),
    /// Authentic or not, its sequence number was already seen or is too old.
    Replay(crate::replay::ReplayError),
}

impl From<CryptoError> for OpenError {
    fn from(error: CryptoError) -> Self {
        OpenError::Crypto(error)
    }
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenError::Crypto(error) => error.fmt(f),
            OpenError::Replay(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Crypto(error) => Some(error),
            OpenError::Replay(error) => Some(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{MetadataSecret, PayloadSecret};
    use crate::replay::ReplayError;

    fn keys(suite: Suite) -> SessionKeys {
        SessionKeys::derive(suite, 3, &PayloadSecret::from_bytes([0x11; 32]))
    }

    fn sealed(keys: &SessionKeys, number: u64, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; payload.len() + 16 + SEQUENCE_LEN + 64];
        buf[..payload.len()].copy_from_slice(payload);
        let len =
            seal_fast_path(keys, Direction::Forward, number, &mut buf, payload.len()).unwrap();
        buf.truncate(len);
        buf
    }

    #[test]
    fn fast_path_round_trip_both_suites() {
        for suite in [Suite::AesCbc256HmacSha384, Suite::AesCbc256HmacSha512] {
            let keys = keys(suite);
            let mut window = ReplayWindow::new();
            for len in [0usize, 1, 15, 16, 17, 64, 1400] {
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut packet = sealed(&keys, len as u64 + 1, &payload);
                assert_eq!(packet.len(), len + sealed_overhead(suite, len));
                let n =
                    open_fast_path(&keys, Direction::Forward, &mut window, &mut packet).unwrap();
                assert_eq!(&packet[..n], &payload[..], "{suite:?} len {len}");
            }
        }
    }

    #[test]
    fn every_flipped_byte_is_rejected_and_changes_nothing() {
        let keys = keys(Suite::AesCbc256HmacSha384);
        let packet = sealed(&keys, 7, b"a payload that spans more than one AES block");
        let mut window = ReplayWindow::new();
        window.record(3).unwrap();
        let before = window.clone();
        for index in 0..packet.len() {
            for bit in [0x01, 0x80] {
                let mut tampered = packet.clone();
                tampered[index] ^= bit;
                let result = open_fast_path(&keys, Direction::Forward, &mut window, &mut tampered);
                assert_eq!(
                    result,
                    Err(OpenError::Crypto(CryptoError::BadTag)),
                    "byte {index} bit {bit:#x}"
                );
                assert_eq!(window, before, "byte {index} moved the window");
            }
        }
        let mut good = packet.clone();
        assert!(open_fast_path(&keys, Direction::Forward, &mut window, &mut good).is_ok());
    }

    #[test]
    fn truncated_and_extended_packets_are_rejected() {
        let keys = keys(Suite::AesCbc256HmacSha384);
        let packet = sealed(&keys, 1, b"payload");
        for len in 0..packet.len() {
            let mut short = packet[..len].to_vec();
            let result =
                open_fast_path(&keys, Direction::Forward, &mut ReplayWindow::new(), &mut short);
            assert!(result.is_err(), "accepted a packet cut to {len} bytes");
        }
        let mut long = packet.clone();
        long.push(0);
        assert!(
            open_fast_path(&keys, Direction::Forward, &mut ReplayWindow::new(), &mut long).is_err()
        );
    }

    #[test]
    fn reflected_packet_is_rejected() {
        let keys = keys(Suite::AesCbc256HmacSha384);
        let mut packet = sealed(&keys, 1, b"sent forward");
        let result =
            open_fast_path(&keys, Direction::Reverse, &mut ReplayWindow::new(), &mut packet);
        assert_eq!(result, Err(OpenError::Crypto(CryptoError::BadTag)));
    }

    #[test]
    fn replay_is_rejected_before_the_tag_check() {
        let keys = keys(Suite::AesCbc256HmacSha384);
        let packet = sealed(&keys, 9, b"once");
        let mut window = ReplayWindow::new();
        open_fast_path(&keys, Direction::Forward, &mut window, &mut packet.clone()).unwrap();
        let result = open_fast_path(&keys, Direction::Forward, &mut window, &mut packet.clone());
        assert_eq!(result, Err(OpenError::Replay(ReplayError::Duplicate { number: 9 })));
    }

    #[test]
    fn wrong_key_id_is_rejected() {
        let keys3 = keys(Suite::AesCbc256HmacSha384);
        // Same secret, so the tag verifies, but the packet names another generation.
        let keys4 = SessionKeys::derive(
            Suite::AesCbc256HmacSha384,
            4,
            &PayloadSecret::from_bytes([0x11; 32]),
        );
        let mut packet = sealed(&keys4, 1, b"generation four");
        let result =
            open_fast_path(&keys3, Direction::Forward, &mut ReplayWindow::new(), &mut packet);
        assert_eq!(result, Err(OpenError::Crypto(CryptoError::BadTag)));
    }

    #[test]
    fn ivs_differ_by_direction_number_and_key_id() {
        let keys = keys(Suite::AesCbc256HmacSha384);
        let mut seen = std::collections::HashSet::new();
        for direction in [Direction::Forward, Direction::Reverse] {
            for key_id in [0u8, 1, 255] {
                for number in 1..200 {
                    let iv = payload_iv(&keys, direction, Sequence::new(key_id, number).unwrap());
                    assert!(seen.insert(iv), "repeated IV");
                }
            }
        }
    }

    #[test]
    fn identical_payloads_seal_differently() {
        let keys = keys(Suite::AesCbc256HmacSha384);
        let a = sealed(&keys, 1, &[0u8; 64]);
        let b = sealed(&keys, 2, &[0u8; 64]);
        assert_ne!(a[..64], b[..64]);
    }

    #[test]
    fn sequence_limits() {
        assert_eq!(Sequence::new(0, 0), Err(CryptoError::SequenceZero));
        assert_eq!(Sequence::new(0, Sequence::MAX_NUMBER + 1), Err(CryptoError::SequenceExhausted));
        let max = Sequence::new(0xab, Sequence::MAX_NUMBER).unwrap();
        assert_eq!(Sequence::from_bytes(max.to_bytes()), max);
    }

    #[test]
    fn metadata_section_round_trip_with_random_ivs() {
        let keys = MetadataKeys::derive(
            5,
            Suite::AesCbc256HmacSha384,
            &MetadataSecret::from_bytes([2; 32]),
        );
        let tlvs = b"\x00\x07\x00\x04corp";
        let mut first = vec![0u8; 64];
        first[16..16 + tlvs.len()].copy_from_slice(tlvs);
        let mut second = first.clone();
        let n = encrypt_metadata_section(&keys, &mut first, tlvs.len()).unwrap();
        encrypt_metadata_section(&keys, &mut second, tlvs.len()).unwrap();
        assert_eq!(n, 32);
        assert_ne!(first[..n], second[..n], "two encryptions shared an IV");
        let range = decrypt_metadata_section(&keys, &mut first[..n]).unwrap();
        assert_eq!(&first[range], tlvs);
    }

    #[test]
    fn metadata_section_too_short() {
        let keys = MetadataKeys::derive(
            5,
            Suite::AesCbc256HmacSha384,
            &MetadataSecret::from_bytes([2; 32]),
        );
        assert_eq!(
            decrypt_metadata_section(&keys, &mut [0u8; 31]),
            Err(CryptoError::MetadataSectionLength { len: 31 })
        );
        assert_eq!(
            encrypt_metadata_section(&keys, &mut [0u8; 31], 0),
            Err(CryptoError::BufferTooSmall { needed: 32, available: 31 })
        );
    }

    #[test]
    fn seal_into_small_buffer_is_an_error() {
        let keys = keys(Suite::AesCbc256HmacSha384);
        let mut buf = [0u8; 60];
        assert_eq!(
            seal_fast_path(&keys, Direction::Forward, 1, &mut buf, 4),
            Err(CryptoError::BufferTooSmall { needed: 72, available: 60 })
        );
    }
}
