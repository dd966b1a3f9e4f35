//! Authentication of peer-path BFD packets. It owns the HMAC-SHA-256 section svrd adds in
//! the Meticulous Keyed layout of RFC 5880 section 4.4, the per-direction keys derived
//! from a pair secret, and the per-path receive rules: when authentication becomes
//! required, the sequence window and key rotation. Pure code with no sockets.
//!
//! The reasoning behind the choices is in `docs/bfd-metadata.md`, section "Authentication".

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tracing::debug;
use zeroize::Zeroizing;

use super::packet::CONTROL_LEN;

/// Auth Type of the section. RFC 5880 section 4.1 assigns 1 to 5 and leaves every other
/// value reserved. svrd takes 253, far from the low values later documents register, and
/// only between its own routers: peer-path BFD on UDP 1280 has no other speaker.
pub const AUTH_TYPE_HMAC_SHA256: u8 = 253;

/// Length of the HMAC-SHA-256 digest, in bytes.
pub const DIGEST_LEN: usize = 32;

/// Auth Len of the section: type, length, key id, reserved, sequence number and digest.
pub const SECTION_LEN: usize = 8 + DIGEST_LEN;

/// Length field of an authenticated control packet.
pub const AUTHENTICATED_LEN: usize = CONTROL_LEN + SECTION_LEN;

/// Sequence numbers accepted beyond the RFC 5880 window of three times Detect Mult. Every
/// metadata fragment also advances the sequence, so a lost burst of fragments can move it
/// further than the periodic packets alone would.
pub const METADATA_SEQUENCE_ALLOWANCE: u32 = 1024;

/// Offset of the digest within the datagram.
const DIGEST_OFFSET: usize = CONTROL_LEN + 8;

/// HKDF info prefix of the per-direction HMAC key.
const KEY_LABEL: &[u8] = b"svrd bfd v1 hmac-sha256 key";

/// HKDF info of the Auth Key ID that names a pair-key generation.
const KEY_ID_LABEL: &[u8] = b"svrd bfd v1 key id";

/// The authentication section as svrd sends it.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Auth Type   |   Auth Len    |  Auth Key ID  |   Reserved    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        Sequence Number                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |             HMAC-SHA-256 digest (32 bytes, 8 words)           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Auth Type is 253 and Auth Len 40. The digest covers the whole datagram (control packet,
/// this section with the digest zeroed, and any metadata after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthSection {
    pub key_id: u8,
    pub sequence: u32,
    pub digest: [u8; DIGEST_LEN],
}

impl AuthSection {
    /// Parses the bytes between the mandatory section and the end the Length field gives.
    pub fn parse(section: &[u8]) -> Result<AuthSection, AuthError> {
        let (Some(&auth_type), Some(&auth_len)) = (section.first(), section.get(1)) else {
            return Err(AuthError::SectionLength { covered: section.len() });
        };
        if auth_type != AUTH_TYPE_HMAC_SHA256 {
            return Err(AuthError::TypeUnsupported { auth_type });
        }
        if usize::from(auth_len) != SECTION_LEN {
            return Err(AuthError::LengthMismatch { auth_len });
        }
        // The Length field must end the packet exactly where the section ends.
        if section.len() != SECTION_LEN {
            return Err(AuthError::SectionLength { covered: section.len() });
        }

        // RFC 5880 section 4.4: Reserved "MUST be set to zero on transmit, and ignored on
        // receipt".
        let sequence = u32::from_be_bytes([section[4], section[5], section[6], section[7]]);
        let mut digest = [0u8; DIGEST_LEN];
        digest.copy_from_slice(&section[8..SECTION_LEN]);
        Ok(AuthSection { key_id: section[2], sequence, digest })
    }

    /// Returns the section as its 40 wire bytes.
    pub fn to_bytes(&self) -> [u8; SECTION_LEN] {
        let mut out = [0u8; SECTION_LEN];
        out[0] = AUTH_TYPE_HMAC_SHA256;
        out[1] = SECTION_LEN as u8;
        out[2] = self.key_id;
        out[4..8].copy_from_slice(&self.sequence.to_be_bytes());
        out[8..].copy_from_slice(&self.digest);
        out
    }
}

/// A reason a peer-path packet failed authentication. [`AuthError::Missing`] is counted as
/// auth-missing, every other variant as auth-bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// The A bit is clear but this path requires authentication.
    Missing,
    /// The Auth Type is not the HMAC-SHA-256 type svrd sends.
    TypeUnsupported { auth_type: u8 },
    /// The Auth Len field is not 40.
    LengthMismatch { auth_len: u8 },
    /// The Length field leaves a section of a size other than 40 bytes.
    SectionLength { covered: usize },
    /// No held key generation has this Auth Key ID, and authentication is required.
    UnknownKeyId { key_id: u8 },
    /// The digest does not match under any key of this Auth Key ID.
    DigestMismatch { key_id: u8 },
    /// The sequence number is not beyond the last one accepted.
    SequenceReplayed { sequence: u32, last: u32 },
    /// The sequence number is further ahead than the window allows.
    SequenceAhead { sequence: u32, last: u32, window: u32 },
}

impl AuthError {
    /// Returns true for a packet that carried no authentication section.
    pub fn is_missing(&self) -> bool {
        matches!(self, AuthError::Missing)
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => {
                f.write_str("bfd packet without authentication on a path that requires it")
            }
            AuthError::TypeUnsupported { auth_type } => write!(
                f,
                "bfd auth type {auth_type} is not supported, expected {AUTH_TYPE_HMAC_SHA256}"
            ),
            AuthError::LengthMismatch { auth_len } => {
                write!(f, "bfd auth len {auth_len} is invalid, expected {SECTION_LEN}")
            }
            AuthError::SectionLength { covered } => write!(
                f,
                "bfd length field leaves a {covered}-byte auth section, expected {SECTION_LEN}"
            ),
            AuthError::UnknownKeyId { key_id } => {
                write!(f, "bfd auth key id {key_id} names no held pair key")
            }
            AuthError::DigestMismatch { key_id } => {
                write!(f, "bfd auth digest is invalid under key id {key_id}")
            }
            AuthError::SequenceReplayed { sequence, last } => {
                write!(f, "bfd auth sequence {sequence} is not beyond the last accepted {last}")
            }
            AuthError::SequenceAhead { sequence, last, window } => write!(
                f,
                "bfd auth sequence {sequence} is more than {window} beyond the last accepted {last}"
            ),
        }
    }
}

impl std::error::Error for AuthError {}

/// The BFD keys of one pair-key generation, from one router's side.
pub struct KeyGeneration {
    key_id: u8,
    transmit: Zeroizing<[u8; DIGEST_LEN]>,
    receive: Zeroizing<[u8; DIGEST_LEN]>,
}

impl KeyGeneration {
    /// Derives the keys of a generation from its pair secret. `local` and `remote` are the
    /// peering-common-names of this router and of the peer. The peer derives the same two
    /// keys with the names swapped, so each direction has its own key, and a packet
    /// reflected back to its sender does not verify.
    pub fn derive(pair_secret: &[u8; 32], local: &str, remote: &str) -> KeyGeneration {
        let hkdf = Hkdf::<Sha256>::new(None, pair_secret);
        let mut key_id = [0u8; 1];
        expand(&hkdf, KEY_ID_LABEL, &mut key_id);
        let mut transmit = Zeroizing::new([0u8; DIGEST_LEN]);
        expand(&hkdf, &direction_info(local, remote), transmit.as_mut_slice());
        let mut receive = Zeroizing::new([0u8; DIGEST_LEN]);
        expand(&hkdf, &direction_info(remote, local), receive.as_mut_slice());
        KeyGeneration { key_id: key_id[0], transmit, receive }
    }

    /// Returns the Auth Key ID, one byte derived from the pair secret, so both routers name
    /// a generation alike without sharing a counter. Two generations may share it (one
    /// chance in 256), and the receiver then tries both.
    pub fn key_id(&self) -> u8 {
        self.key_id
    }
}

impl Clone for KeyGeneration {
    fn clone(&self) -> Self {
        KeyGeneration {
            key_id: self.key_id,
            transmit: self.transmit.clone(),
            receive: self.receive.clone(),
        }
    }
}

impl fmt::Debug for KeyGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyGeneration").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// The kind of check an accepted packet passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The digest and sequence number were checked under this key id.
    Verified { key_id: u8 },
    /// Accepted without a check: the packet carried no section, or one under a key this
    /// side does not hold, while authentication is not yet required.
    Unverified,
}

/// Authentication state of one peer path, both directions.
pub struct PathAuth {
    /// Held generations, oldest first.
    keys: Vec<KeyGeneration>,
    /// Key id of the newest generation a verified packet from the peer has used: the peer
    /// is known to hold it.
    peer_key_id: Option<u8>,
    /// bfd.XmitAuthSeq: the sequence number of the next packet sent.
    transmit_sequence: u32,
    /// bfd.RcvAuthSeq when bfd.AuthSeqKnown is set.
    receive_sequence: Option<u32>,
    /// Set by the first verified packet: from then on only verified packets reach the
    /// session, until [`PathAuth::reset_requirement`].
    required: bool,
}

impl PathAuth {
    /// Creates the state of a path with no key. RFC 5880 section 6.8.1: bfd.XmitAuthSeq
    /// "MUST be initialized to a random 32-bit value".
    pub fn new(initial_sequence: u32) -> PathAuth {
        PathAuth {
            keys: Vec::new(),
            peer_key_id: None,
            transmit_sequence: initial_sequence,
            receive_sequence: None,
            required: false,
        }
    }

    /// Replaces the held generations (oldest first). With none left the path falls back to
    /// unauthenticated operation.
    pub fn set_keys(&mut self, keys: Vec<KeyGeneration>) {
        if keys.is_empty() && self.required {
            debug!("bfd authentication no longer required: no pair key held");
            self.reset_requirement();
        }
        self.keys = keys;
        if !self.keys.iter().any(|k| Some(k.key_id) == self.peer_key_id) {
            self.peer_key_id = None;
        }
    }

    /// Returns true when packets sent on the path carry an authentication section.
    pub fn has_key(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Returns true once a verified packet has made authentication mandatory.
    pub fn required(&self) -> bool {
        self.required
    }

    /// Returns the last accepted sequence number (bfd.RcvAuthSeq), if one is known.
    pub fn last_sequence(&self) -> Option<u32> {
        self.receive_sequence
    }

    /// Ids of the held generations, oldest first.
    pub fn key_ids(&self) -> Vec<u8> {
        self.keys.iter().map(|k| k.key_id).collect()
    }

    /// Forgets the requirement and the receive sequence, so a peer that restarted without
    /// its keys is heard again. The engine calls it when the session's detection time
    /// expires.
    pub fn reset_requirement(&mut self) {
        self.required = false;
        self.receive_sequence = None;
        self.peer_key_id = None;
    }

    /// Returns the generation packets are sent under: the newest the peer has been seen
    /// to use, or else the oldest held, which both routers keep until the exchange that
    /// replaces it is confirmed. A router that retires the old generation thus moves its
    /// peer to the new one with its first packet.
    fn transmit_generation(&self) -> Option<&KeyGeneration> {
        let proven = self.peer_key_id.and_then(|id| self.keys.iter().rfind(|k| k.key_id == id));
        proven.or(self.keys.first())
    }

    /// Builds the datagram for a 24-byte control packet `head` followed by `trailer`. With
    /// a key held it sets the A bit and the Length field, inserts the section under the
    /// generation [`PathAuth::transmit_generation`] picks and advances the sequence number
    /// (Meticulous: every packet).
    pub fn seal(&mut self, head: &[u8; CONTROL_LEN], trailer: &[u8]) -> Vec<u8> {
        let mut datagram = Vec::with_capacity(AUTHENTICATED_LEN + trailer.len());
        datagram.extend_from_slice(head);
        let Some(generation) = self.transmit_generation() else {
            datagram.extend_from_slice(trailer);
            return datagram;
        };

        datagram[1] |= 0x04;
        datagram[3] = AUTHENTICATED_LEN as u8;
        let section = AuthSection {
            key_id: generation.key_id,
            sequence: self.transmit_sequence,
            digest: [0u8; DIGEST_LEN],
        };
        datagram.extend_from_slice(&section.to_bytes());
        datagram.extend_from_slice(trailer);
        let digest = compute_digest(&generation.transmit, &datagram);
        datagram[DIGEST_OFFSET..DIGEST_OFFSET + DIGEST_LEN].copy_from_slice(&digest);

        self.transmit_sequence = self.transmit_sequence.wrapping_add(1);
        datagram
    }

    /// Applies the receive rules to a datagram whose control packet passed the stateless
    /// checks. `length` is its Length field and `detect_mult` its Detect Mult. Only a
    /// verified packet changes the state kept here.
    pub fn check(
        &mut self,
        datagram: &[u8],
        length: usize,
        authentication_present: bool,
        detect_mult: u8,
    ) -> Result<Verdict, AuthError> {
        if !authentication_present {
            return if self.required { Err(AuthError::Missing) } else { Ok(Verdict::Unverified) };
        }

        let covered = datagram.get(CONTROL_LEN..length).unwrap_or_default();
        let section = AuthSection::parse(covered)?;

        // A side that does not hold the generation cannot check the digest. Until a
        // verified packet has arrived it accepts the packet as if it were plain, which
        // covers bring-up and the moments of a rotation when one side is ahead.
        let mut candidates = self.keys.iter().filter(|k| k.key_id == section.key_id).peekable();
        if candidates.peek().is_none() {
            return if self.required {
                Err(AuthError::UnknownKeyId { key_id: section.key_id })
            } else {
                Ok(Verdict::Unverified)
            };
        }

        // The section parsed, so the datagram has at least AUTHENTICATED_LEN bytes.
        let mut zeroed = datagram.to_vec();
        zeroed[DIGEST_OFFSET..DIGEST_OFFSET + DIGEST_LEN].fill(0);
        let mut matched = subtle::Choice::from(0);
        for generation in candidates {
            let expected = compute_digest(&generation.receive, &zeroed);
            matched |= expected.ct_eq(&section.digest);
        }
        let position = self.keys.iter().rposition(|k| k.key_id == section.key_id);
        if !bool::from(matched) {
            return Err(AuthError::DigestMismatch { key_id: section.key_id });
        }

        // RFC 5880 section 6.7.3 (Meticulous): the sequence number must lie in the range
        // bfd.RcvAuthSeq+1 to bfd.RcvAuthSeq+3*Detect Mult, modulo 2^32. svrd widens the
        // upper end for metadata fragments.
        if let Some(last) = self.receive_sequence {
            let window = 3 * u32::from(detect_mult) + METADATA_SEQUENCE_ALLOWANCE;
            let ahead = section.sequence.wrapping_sub(last);
            if ahead == 0 || ahead > u32::MAX / 2 {
                return Err(AuthError::SequenceReplayed { sequence: section.sequence, last });
            }
            if ahead > window {
                return Err(AuthError::SequenceAhead { sequence: section.sequence, last, window });
            }
        }

        self.receive_sequence = Some(section.sequence);

        // The peer has this generation, so send under it if it is newer than the one in use.
        let current =
            self.peer_key_id.and_then(|id| self.keys.iter().rposition(|k| k.key_id == id));
        if current.is_none_or(|current| position.is_some_and(|p| p > current)) {
            self.peer_key_id = Some(section.key_id);
        }
        if !self.required {
            debug!(key_id = section.key_id, "bfd authentication now required on path");
            self.required = true;
        }
        Ok(Verdict::Verified { key_id: section.key_id })
    }
}

impl fmt::Debug for PathAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathAuth")
            .field("key_ids", &self.key_ids())
            .field("peer_key_id", &self.peer_key_id)
            .field("required", &self.required)
            .field("receive_sequence", &self.receive_sequence)
            .finish_non_exhaustive()
    }
}

/// HMAC-SHA-256 of `datagram` under `key`.
fn compute_digest(key: &[u8; DIGEST_LEN], datagram: &[u8]) -> [u8; DIGEST_LEN] {
    let mut digest = [0u8; DIGEST_LEN];
    // An HMAC key of any length is valid, so new_from_slice cannot fail here.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return digest;
    };
    mac.update(datagram);
    digest.copy_from_slice(&mac.finalize().into_bytes());
    digest
}

/// HKDF info of the key for packets from `sender` to `receiver`: the label, then each
/// name led by its length in two bytes, so no two name pairs give the same info.
fn direction_info(sender: &str, receiver: &str) -> Vec<u8> {
    let mut info = KEY_LABEL.to_vec();
    for name in [sender, receiver] {
        let bytes = name.as_bytes();
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        info.extend_from_slice(&len.to_be_bytes());
        info.extend_from_slice(&bytes[..usize::from(len)]);
    }
    info
}

fn expand(hkdf: &Hkdf<Sha256>, info: &[u8], out: &mut [u8]) {
    // Every output here is at most 32 bytes, far below HKDF-SHA-256's limit of 255 * 32,
    // so expand cannot fail.
    if hkdf.expand(info, out).is_err() {
        out.fill(0);
    }
}
