//! Whole SVR packets between routers: metadata, carried payload and trailer, composed from
//! the codec and the per-packet crypto, sealed and opened in the order `docs/protocol.md`
//! fixes.
//!
//! Opening is split in two because the receiver needs something between the steps: a packet
//! with metadata is authenticated under the pair key of the peer it came from, and its TLVs
//! decrypted under this router's metadata key
//! ([`open_with_metadata`]) before the session, and so the payload key, is known; a packet
//! without metadata is authenticated under the session's key ([`open_without_metadata`]).
//! Either way the carried payload is decrypted last ([`decrypt_carried`]), after which the
//! caller records the packet number in the session's replay window.

use core::fmt;
use core::ops::Range;

use zeroize::Zeroize;

use crate::crypto::{
    BLOCK_LEN, CryptoError, Direction, MacKey, MetadataKeys, SEQUENCE_LEN, Sequence, SessionKeys,
    decrypt_metadata_section, decrypt_payload, encrypt_metadata_section, encrypt_payload,
    open_trailer, padded_len, seal_trailer, verify_trailer,
};
use crate::packet::{
    BASE_HEADER_LEN, COOKIE, Detection, HeaderTlv, MAX_HEADER_LEN, MAX_PAYLOAD_LEN, Metadata,
    MetadataError, PayloadTlv, detect, parse_header_tlvs, parse_payload_tlvs,
};

/// Metadata to put in front of an outgoing packet.
#[derive(Debug)]
pub struct OutgoingMetadata<'a> {
    /// The receiving router's metadata key: it encrypts the TLVs, and its index is sent as
    /// the Security ID.
    pub keys: &'a MetadataKeys,
    /// The pair key towards the receiving router ([`PairKeys::send`]): it keys the tag, so
    /// that no other peer of the receiver, though it holds the same metadata key, can
    /// forge or alter the packet.
    ///
    /// [`PairKeys::send`]: crate::crypto::PairKeys::send
    pub tag_key: &'a MacKey,
    /// Header TLVs other than the Security ID, which is added from `keys`.
    pub header_tlvs: &'a [HeaderTlv],
    /// Payload TLVs, encrypted on the wire.
    pub payload_tlvs: PayloadTlvs<'a>,
}

/// Payload TLVs in wire order, given as up to three consecutive runs. Sessions keep the
/// TLVs that a whole route shares (tenant, service and router names) once per route, and
/// pass them as the middle run between their own TLVs.
#[derive(Clone, Copy, Debug, Default)]
pub struct PayloadTlvs<'a> {
    runs: [&'a [PayloadTlv]; 3],
}

impl<'a> PayloadTlvs<'a> {
    /// Joins `runs` into one sequence of TLVs, in order.
    pub fn new(runs: [&'a [PayloadTlv]; 3]) -> PayloadTlvs<'a> {
        PayloadTlvs { runs }
    }

    /// Iterates over the TLVs in wire order.
    pub fn iter(&self) -> impl Iterator<Item = &'a PayloadTlv> + use<'a> {
        self.runs.into_iter().flatten()
    }
}

impl<'a> From<&'a [PayloadTlv]> for PayloadTlvs<'a> {
    fn from(tlvs: &'a [PayloadTlv]) -> PayloadTlvs<'a> {
        PayloadTlvs { runs: [tlvs, &[], &[]] }
    }
}

/// Everything needed to seal one packet of a session.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// The session's keys for the payload key in use.
    pub session: &'a SessionKeys,
    /// Direction of the packet within its session.
    pub direction: Direction,
    /// Packet number in this direction, from 1.
    pub number: u64,
    /// Whether the carried payload is encrypted (the session's security policy).
    pub encrypt: bool,
    /// Metadata, on the packets that carry it.
    pub metadata: Option<OutgoingMetadata<'a>>,
}

/// Bytes [`seal`] needs in its output buffer for `payload_len` bytes of payload.
pub fn sealed_len_bound(packet: &Outgoing<'_>, payload_len: usize) -> usize {
    let metadata = match &packet.metadata {
        Some(metadata) => metadata_lengths(metadata).0 + metadata_lengths(metadata).1,
        None => BASE_HEADER_LEN,
    };
    let tag_len = match &packet.metadata {
        Some(metadata) => metadata.tag_key.algorithm().tag_len(),
        None => packet.session.suite().tag_len(),
    };
    metadata + padded_len(payload_len) + SEQUENCE_LEN + tag_len
}

/// Largest UDP payload of an IPv4 datagram: 65535 less the IPv4 and UDP headers.
pub const MAX_SEALED_LEN: usize = 65_507;

/// Seals `payload` into `out` as an SVR UDP payload; returns the sealed length.
pub fn seal(out: &mut [u8], packet: &Outgoing<'_>, payload: &[u8]) -> Result<usize, SealError> {
    let sequence = Sequence::new(packet.session.key_id(), packet.number)?;
    let needed = sealed_len_bound(packet, payload.len());
    if needed > MAX_SEALED_LEN {
        let max = MAX_SEALED_LEN - (needed - payload.len());
        return Err(CryptoError::PayloadTooLarge { len: payload.len(), max }.into());
    }
    if out.len() < needed {
        return Err(CryptoError::BufferTooSmall { needed, available: out.len() }.into());
    }

    let (metadata_len, mac) = match &packet.metadata {
        Some(metadata) => (emit_metadata(out, metadata)?, metadata.tag_key),
        None => (0, packet.session.mac(packet.direction)),
    };

    let carried = &mut out[metadata_len..];
    carried[..payload.len()].copy_from_slice(payload);
    let mut carried_len = if packet.encrypt {
        encrypt_payload(packet.session, packet.direction, sequence, carried, payload.len())?
    } else {
        payload.len()
    };

    // A packet without metadata whose bytes happen to begin with the cookie gets a bare
    // header in front, so the receiver does not mistake them for metadata. The receiver
    // looks at what it gets, so a short payload is checked together with the sequence
    // field that follows it.
    if metadata_len == 0 && starts_with_cookie(&carried[..carried_len], sequence) {
        carried.copy_within(..carried_len, BASE_HEADER_LEN);
        crate::packet::emit_false_positive_marker(carried)?;
        carried_len += BASE_HEADER_LEN;
    }

    Ok(seal_trailer(mac, out, metadata_len + carried_len, sequence)?)
}

/// Tells whether `carried` followed by the sequence field begins with the cookie.
pub(crate) fn starts_with_cookie(carried: &[u8], sequence: Sequence) -> bool {
    let mut start = [0u8; COOKIE.len()];
    let from_carried = carried.len().min(COOKIE.len());
    start[..from_carried].copy_from_slice(&carried[..from_carried]);
    let from_sequence = COOKIE.len() - from_carried;
    start[from_carried..].copy_from_slice(&sequence.to_bytes()[..from_sequence]);
    start == COOKIE
}

/// The header length and encrypted payload-section length of `metadata` on the wire.
fn metadata_lengths(metadata: &OutgoingMetadata<'_>) -> (usize, usize) {
    let header_len = BASE_HEADER_LEN
        + HeaderTlv::SecurityId(0).buffer_len()
        + metadata.header_tlvs.iter().map(HeaderTlv::buffer_len).sum::<usize>();
    let tlvs_len: usize = metadata.payload_tlvs.iter().map(PayloadTlv::buffer_len).sum();
    (header_len, BLOCK_LEN + padded_len(tlvs_len))
}

/// Writes the metadata with its payload section encrypted; returns its length.
fn emit_metadata(out: &mut [u8], metadata: &OutgoingMetadata<'_>) -> Result<usize, SealError> {
    if metadata.header_tlvs.iter().any(|tlv| matches!(tlv, HeaderTlv::SecurityId(_))) {
        return Err(SealError::SecurityIdGiven);
    }
    metadata.header_tlvs.iter().try_for_each(HeaderTlv::check)?;
    metadata.payload_tlvs.iter().try_for_each(PayloadTlv::check)?;

    let (header_len, section_len) = metadata_lengths(metadata);
    if header_len > MAX_HEADER_LEN {
        return Err(MetadataError::HeaderSectionTooLong { header_len, max: MAX_HEADER_LEN }.into());
    }
    if section_len > MAX_PAYLOAD_LEN {
        return Err(MetadataError::PayloadSectionTooLong {
            payload_len: section_len,
            max: MAX_PAYLOAD_LEN,
        }
        .into());
    }

    let mut at = BASE_HEADER_LEN;
    at += HeaderTlv::SecurityId(metadata.keys.index()).emit(&mut out[at..header_len]);
    for tlv in metadata.header_tlvs {
        at += tlv.emit(&mut out[at..header_len]);
    }
    Metadata::new_unchecked(&mut out[..header_len]).emit_base(header_len, section_len);

    let section = &mut out[header_len..header_len + section_len];
    let mut at = BLOCK_LEN;
    for tlv in metadata.payload_tlvs.iter() {
        at += tlv.emit(&mut section[at..]);
    }
    let written = encrypt_metadata_section(metadata.keys, section, at - BLOCK_LEN)?;
    debug_assert_eq!(written, section_len);
    Ok(header_len + section_len)
}

/// How a received SVR packet must be authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// It carries metadata under this router's metadata key with this Security ID.
    Metadata { security_id: u32 },
    /// It carries no metadata (or only a false-positive marker): the session's keys apply.
    Session,
}

/// Tells how `packet` must be authenticated, reading only the cleartext header.
pub fn classify(packet: &[u8]) -> Result<Received, ReceiveError> {
    match detect(packet)? {
        Detection::Absent | Detection::FalsePositiveMarker => Ok(Received::Session),
        Detection::Metadata { header_len, .. } => {
            let view = Metadata::new_checked(packet)?;
            debug_assert_eq!(view.header_len(), header_len);
            let header_tlvs = parse_header_tlvs(view.header_section())?;
            security_id(&header_tlvs).map(|security_id| Received::Metadata { security_id })
        }
    }
}

/// Cleartext metadata of an opened packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMetadata {
    /// The index of this router's metadata key the sender used.
    pub security_id: u32,
    /// Header TLVs, the Security ID included.
    pub header_tlvs: Vec<HeaderTlv>,
    /// Decrypted payload TLVs.
    pub payload_tlvs: Vec<PayloadTlv>,
}

/// An authenticated packet whose carried payload is not yet decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The packet's sequence field. Record its number in the replay window once the
    /// carried payload is decrypted.
    pub sequence: Sequence,
    /// Where the carried payload sits in the packet buffer.
    pub carried: Range<usize>,
    /// The metadata, when the packet carried some.
    pub metadata: Option<ReceivedMetadata>,
}

/// Authenticates a packet that carries metadata under `tag_key`, the pair key of the peer
/// it came from ([`PairKeys::receive`]), then decrypts its payload TLVs with `keys`, this
/// router's metadata key named by its Security ID, and parses them. The decrypted bytes
/// are wiped from the packet buffer once parsed, since they hold the session's payload key.
///
/// [`PairKeys::receive`]: crate::crypto::PairKeys::receive
pub fn open_with_metadata(
    packet: &mut [u8],
    keys: &MetadataKeys,
    tag_key: &MacKey,
) -> Result<Opened, ReceiveError> {
    let Received::Metadata { security_id } = classify(packet)? else {
        return Err(ReceiveError::NoMetadata);
    };
    if security_id != keys.index() {
        return Err(ReceiveError::WrongMetadataKey { security_id, index: keys.index() });
    }

    let (sequence, body_len) = verify_trailer(tag_key, packet)?;
    let view = Metadata::new_checked(&packet[..body_len])?;
    let (header_len, metadata_len) = (view.header_len(), view.metadata_len());
    let header_tlvs = parse_header_tlvs(&packet[BASE_HEADER_LEN..header_len])?;
    let section = &mut packet[header_len..metadata_len];
    let plain = decrypt_metadata_section(keys, section)?;
    let parsed = parse_payload_tlvs(&section[plain.clone()]);
    section[plain].zeroize();
    let payload_tlvs = parsed?;
    let payload_keys = payload_tlvs.iter().filter(|tlv| matches!(tlv, PayloadTlv::PayloadKey(_)));
    if payload_keys.count() > 1 {
        return Err(ReceiveError::DuplicatePayloadKey);
    }

    Ok(Opened {
        sequence,
        carried: metadata_len..body_len,
        metadata: Some(ReceivedMetadata { security_id, header_tlvs, payload_tlvs }),
    })
}

/// Authenticates a packet without metadata under the session's MAC key for `direction`.
/// The caller has picked `session` by the key id [`peek_sequence`] returns.
pub fn open_without_metadata(
    packet: &[u8],
    session: &SessionKeys,
    direction: Direction,
) -> Result<Opened, ReceiveError> {
    let (sequence, body_len) = verify_trailer(session.mac(direction), packet)?;
    if sequence.key_id() != session.key_id() {
        return Err(CryptoError::BadTag.into());
    }
    let start = match detect(&packet[..body_len])? {
        Detection::Absent => 0,
        Detection::FalsePositiveMarker => BASE_HEADER_LEN,
        Detection::Metadata { .. } => return Err(ReceiveError::UnexpectedMetadata),
    };
    Ok(Opened { sequence, carried: start..body_len, metadata: None })
}

/// Reads the unauthenticated sequence field, to choose the session key by its key id and
/// to drop replays before the tag check.
pub fn peek_sequence(packet: &[u8], tag_len: usize) -> Result<Sequence, ReceiveError> {
    Ok(open_trailer(packet, tag_len)?.0)
}

/// Decrypts the carried payload of an opened packet in place, when the session encrypts;
/// returns where the original payload now is.
pub fn decrypt_carried(
    packet: &mut [u8],
    opened: &Opened,
    session: &SessionKeys,
    direction: Direction,
    encrypted: bool,
) -> Result<Range<usize>, ReceiveError> {
    if !encrypted {
        return Ok(opened.carried.clone());
    }
    if opened.sequence.key_id() != session.key_id() {
        return Err(ReceiveError::WrongPayloadKey {
            key_id: opened.sequence.key_id(),
            expected: session.key_id(),
        });
    }
    let carried = &mut packet[opened.carried.clone()];
    let len = decrypt_payload(session, direction, opened.sequence, carried)?;
    Ok(opened.carried.start..opened.carried.start + len)
}

fn security_id(header_tlvs: &[HeaderTlv]) -> Result<u32, ReceiveError> {
    let mut ids = header_tlvs.iter().filter_map(|tlv| match tlv {
        HeaderTlv::SecurityId(id) => Some(*id),
        _ => None,
    });
    match (ids.next(), ids.next()) {
        (Some(id), None) => Ok(id),
        (None, _) => Err(ReceiveError::MissingSecurityId),
        (Some(_), Some(_)) => Err(ReceiveError::DuplicateSecurityId),
    }
}

/// Why a packet could not be sealed.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The metadata does not fit the wire format.
    Metadata(MetadataError),
    /// Encryption failed or the buffer is too small.
    Crypto(CryptoError),
    /// The caller put a Security ID in the header TLVs; it comes from the metadata key.
    SecurityIdGiven,
}

/// Why a received packet was dropped. Each variant is a drop counter.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The metadata is malformed.
    Metadata(MetadataError),
    /// Forged, corrupted, too short, or undecryptable.
    Crypto(CryptoError),
    /// Metadata without a Security ID TLV, so no key can authenticate it.
    MissingSecurityId,
    /// Metadata with more than one Security ID TLV.
    DuplicateSecurityId,
    /// Metadata with more than one payload-key TLV, so which key applies is ambiguous.
    DuplicatePayloadKey,
    /// The metadata names a metadata key other than the one given.
    WrongMetadataKey { security_id: u32, index: u32 },
    /// The packet was expected to carry metadata but carries none.
    NoMetadata,
    /// Metadata found inside a packet authenticated as a session packet.
    UnexpectedMetadata,
    /// The carried payload was sealed under another payload key generation.
    WrongPayloadKey { key_id: u8, expected: u8 },
}

impl From<MetadataError> for SealError {
    fn from(error: MetadataError) -> Self {
        SealError::Metadata(error)
    }
}

impl From<CryptoError> for SealError {
    fn from(error: CryptoError) -> Self {
        SealError::Crypto(error)
    }
}

impl From<MetadataError> for ReceiveError {
    fn from(error: MetadataError) -> Self {
        ReceiveError::Metadata(error)
    }
}

impl From<CryptoError> for ReceiveError {
    fn from(error: CryptoError) -> Self {
        ReceiveError::Crypto(error)
    }
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Metadata(error) => write!(f, "cannot emit metadata: {error}"),
            SealError::Crypto(error) => write!(f, "cannot seal: {error}"),
            SealError::SecurityIdGiven => {
                f.write_str("security id given in header TLVs; it is taken from the metadata key")
            }
        }
    }
}

impl fmt::Display for ReceiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiveError::Metadata(error) => write!(f, "malformed metadata: {error}"),
            ReceiveError::Crypto(error) => error.fmt(f),
            ReceiveError::MissingSecurityId => f.write_str("metadata without a security id"),
            ReceiveError::DuplicateSecurityId => f.write_str("metadata with two security ids"),
            ReceiveError::DuplicatePayloadKey => f.write_str("metadata with two payload keys"),
            ReceiveError::WrongMetadataKey { security_id, index } => {
                write!(f, "metadata under security id {security_id}, key given has index {index}")
            }
            ReceiveError::NoMetadata => f.write_str("packet carries no metadata"),
            ReceiveError::UnexpectedMetadata => f.write_str("metadata in a session packet"),
            ReceiveError::WrongPayloadKey { key_id, expected } => {
                write!(f, "payload sealed under key id {key_id}, expected {expected}")
            }
        }
    }
}

impl std::error::Error for SealError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SealError::Metadata(error) => Some(error),
            SealError::Crypto(error) => Some(error),
            SealError::SecurityIdGiven => None,
        }
    }
}

impl std::error::Error for ReceiveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReceiveError::Metadata(error) => Some(error),
            ReceiveError::Crypto(error) => Some(error),
            _ => None,
        }
    }
}
