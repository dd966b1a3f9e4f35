//! TLV framing shared by both metadata sections, the registry of known TLV types, and
//! the bounded readers and writers the typed TLVs are built from.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Type              |     Length (value only)       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Value (Length bytes, no padding before the next TLV) ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::error::{MetadataError, Section};

/// Length of a TLV's type and length fields.
pub const TLV_HEADER_LEN: usize = 4;

/// Maximum length of a text value in a name TLV (tenant, service, router, policy, pathway,
/// application). Names in SSR configuration are identifiers well below this, and 255 is
/// also the limit the one-byte name length of the multicast egress list imposes.
pub const MAX_TEXT_LEN: usize = 255;

/// The TLV type numbers the codec parses.
pub mod types {
    pub const FRAGMENT: u16 = 1;
    pub const FORWARD_CONTEXT_V4: u16 = 2;
    pub const FORWARD_CONTEXT_V6: u16 = 3;
    pub const REVERSE_CONTEXT_V4: u16 = 4;
    pub const REVERSE_CONTEXT_V6: u16 = 5;
    pub const SESSION_UUID: u16 = 6;
    pub const TENANT: u16 = 7;
    pub const GLOBAL_INTERFACE_ID: u16 = 8;
    pub const SERVICE: u16 = 10;
    pub const SESSION_ENCRYPTED: u16 = 11;
    pub const TCP_SYN: u16 = 12;
    pub const SESSION_COUNT: u16 = 13;
    pub const SOURCE_ROUTER: u16 = 14;
    pub const SECURITY_POLICY: u16 = 15;
    pub const SECURITY_ID: u16 = 16;
    pub const DESTINATION_ROUTER: u16 = 17;
    pub const DISABLE_FORWARD_METADATA: u16 = 18;
    pub const PEER_PATHWAY_ID: u16 = 19;
    pub const ICMP_ERROR_LOCATION_V4: u16 = 20;
    pub const ICMP_ERROR_LOCATION_V6: u16 = 21;
    pub const CONTROL_MESSAGE: u16 = 24;
    pub const SOURCE_NAT_V4: u16 = 25;
    pub const PATH_METRICS: u16 = 26;
    pub const MODIFY_REQUEST: u16 = 28;
    pub const APPLICATION_NAME: u16 = 35;
    pub const REMAINING_SESSION_TIME: u16 = 42;
    /// Session health check in the header section, payload key in the payload section.
    pub const HEALTH_CHECK_OR_PAYLOAD_KEY: u16 = 46;
    pub const MULTICAST_GROUP: u16 = 50;
    pub const MULTICAST_EGRESS_LIST: u16 = 51;

    /// Types that belong to the header section.
    ///
    /// The public TLV table leaves the section of types 8, 15 and 28 open. The codec puts
    /// 8 (global interface id) in the header because it names an interface, not a
    /// session, and 28 (modify request) in the header because it is a per-packet
    /// signal like the control message (24). It puts 15 (security policy name) in the
    /// payload with the other session names, which the metadata key then protects.
    pub const HEADER: &[u16] = &[
        FRAGMENT,
        GLOBAL_INTERFACE_ID,
        SECURITY_ID,
        ICMP_ERROR_LOCATION_V4,
        ICMP_ERROR_LOCATION_V6,
        CONTROL_MESSAGE,
        PATH_METRICS,
        MODIFY_REQUEST,
        HEALTH_CHECK_OR_PAYLOAD_KEY,
    ];

    /// Types that belong to the payload section.
    pub const PAYLOAD: &[u16] = &[
        FORWARD_CONTEXT_V4,
        FORWARD_CONTEXT_V6,
        REVERSE_CONTEXT_V4,
        REVERSE_CONTEXT_V6,
        SESSION_UUID,
        TENANT,
        SERVICE,
        SESSION_ENCRYPTED,
        TCP_SYN,
        SESSION_COUNT,
        SOURCE_ROUTER,
        SECURITY_POLICY,
        DESTINATION_ROUTER,
        DISABLE_FORWARD_METADATA,
        PEER_PATHWAY_ID,
        SOURCE_NAT_V4,
        APPLICATION_NAME,
        REMAINING_SESSION_TIME,
        HEALTH_CHECK_OR_PAYLOAD_KEY,
        MULTICAST_GROUP,
        MULTICAST_EGRESS_LIST,
    ];

    /// True when the codec parses `tlv_type` as a typed TLV in at least one section.
    pub fn is_known(tlv_type: u16) -> bool {
        HEADER.contains(&tlv_type) || PAYLOAD.contains(&tlv_type)
    }
}

/// One TLV as found on the wire: its type and a value slice bounded by its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTlv<'a> {
    pub tlv_type: u16,
    pub value: &'a [u8],
}

/// Iterator over the TLVs of one section.
///
/// It yields each TLV in wire order. A TLV whose header or value runs past the section
/// end yields one error, after which the iterator is exhausted.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    rest: &'a [u8],
    section: Section,
}

impl<'a> TlvIter<'a> {
    /// Walks the TLVs in `section_bytes`, which hold exactly one section.
    pub fn new(section_bytes: &'a [u8], section: Section) -> Self {
        TlvIter { rest: section_bytes, section }
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<RawTlv<'a>, MetadataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = core::mem::take(&mut self.rest);

        let Some((header, after)) = rest.split_first_chunk::<TLV_HEADER_LEN>() else {
            return Some(Err(MetadataError::TlvHeaderTruncated {
                section: self.section,
                remaining: rest.len(),
            }));
        };
        let tlv_type = u16::from_be_bytes([header[0], header[1]]);
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));

        let Some((value, next)) = after.split_at_checked(length) else {
            return Some(Err(MetadataError::TlvOverrun {
                section: self.section,
                tlv_type,
                length,
                remaining: after.len(),
            }));
        };
        self.rest = next;
        Some(Ok(RawTlv { tlv_type, value }))
    }
}

impl core::iter::FusedIterator for TlvIter<'_> {}

/// A TLV of a type the codec does not know, kept byte-exact so it can be re-emitted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnknownTlv {
    pub tlv_type: u16,
    pub value: Vec<u8>,
}

impl UnknownTlv {
    /// Checks that the type is unknown to the codec, since a known type would parse back
    /// as a typed TLV.
    pub(crate) fn check(&self) -> Result<(), MetadataError> {
        if types::is_known(self.tlv_type) {
            return Err(MetadataError::UnknownTlvHasKnownType { tlv_type: self.tlv_type });
        }
        Ok(())
    }
}

/// Checks that a value has exactly `expected` bytes and returns it as an array.
pub(crate) fn fixed<const N: usize>(tlv: &RawTlv<'_>) -> Result<[u8; N], MetadataError> {
    let length = tlv.value.len();
    tlv.value.try_into().map_err(|_| MetadataError::BadTlvLength {
        tlv_type: tlv.tlv_type,
        length,
        min: N,
        max: N,
    })
}

/// Checks that a value's length lies in `min..=max`.
pub(crate) fn check_len_range(
    tlv_type: u16,
    length: usize,
    min: usize,
    max: usize,
) -> Result<(), MetadataError> {
    if length < min || length > max {
        return Err(MetadataError::BadTlvLength { tlv_type, length, min, max });
    }
    Ok(())
}

/// Reads a text value: valid UTF-8, at most `max` bytes.
pub(crate) fn text(tlv_type: u16, bytes: &[u8], max: usize) -> Result<String, MetadataError> {
    if bytes.len() > max {
        return Err(MetadataError::TextTooLong { tlv_type, length: bytes.len(), max });
    }
    match core::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(source) => Err(MetadataError::TextNotUtf8 { tlv_type, source }),
    }
}

/// Checks a text value before emitting it.
pub(crate) fn check_text(tlv_type: u16, text: &str, max: usize) -> Result<(), MetadataError> {
    if text.len() > max {
        return Err(MetadataError::TextTooLong { tlv_type, length: text.len(), max });
    }
    Ok(())
}

/// Checks a bitfield value before emitting it.
pub(crate) fn check_field(field: &'static str, value: u64, max: u64) -> Result<(), MetadataError> {
    if value > max {
        return Err(MetadataError::FieldOutOfRange { field, value, max });
    }
    Ok(())
}

/// Writes one TLV at the start of `out` and returns its total length.
///
/// The caller has checked that `out` has room for `TLV_HEADER_LEN + value_len` bytes and that
/// `value_len` fits in 16 bits. `write_value` receives exactly `value_len` bytes.
pub(crate) fn write_tlv(
    out: &mut [u8],
    tlv_type: u16,
    value_len: usize,
    write_value: impl FnOnce(&mut [u8]),
) -> usize {
    out[0..2].copy_from_slice(&tlv_type.to_be_bytes());
    out[2..4].copy_from_slice(&(value_len as u16).to_be_bytes());
    write_value(&mut out[TLV_HEADER_LEN..TLV_HEADER_LEN + value_len]);
    TLV_HEADER_LEN + value_len
}
