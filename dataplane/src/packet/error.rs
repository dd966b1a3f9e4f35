//! Errors of the SVR metadata codec: what was wrong with the bytes or the value to emit.

use core::fmt;
use core::str::Utf8Error;

/// The section of SVR metadata a TLV sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// Bytes 12 up to HeaderLength, always cleartext.
    Header,
    /// The PayloadLength bytes after the header, cleartext or ciphertext.
    Payload,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Section::Header => f.write_str("header"),
            Section::Payload => f.write_str("payload"),
        }
    }
}

/// Error from parsing or emitting SVR metadata.
///
/// The variants up to `CountTooLarge` describe malformed input from the network: a
/// receiver drops the packet and counts it. The variants after it describe a value this
/// router asked to emit that the wire format cannot carry, which is a local fault.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataError {
    /// The buffer is shorter than the 12-byte base header.
    Truncated { needed: usize, had: usize },
    /// The first 8 bytes are not the SVR metadata cookie.
    BadCookie { found: [u8; 8] },
    /// The version nibble is not 1.
    UnsupportedVersion { version: u8 },
    /// HeaderLength is below the 12 bytes of the base header.
    HeaderLengthTooSmall { header_len: usize },
    /// HeaderLength runs past the end of the buffer.
    HeaderLengthBeyondBuffer { header_len: usize, buffer_len: usize },
    /// HeaderLength + PayloadLength runs past the end of the buffer.
    PayloadLengthBeyondBuffer { header_len: usize, payload_len: usize, buffer_len: usize },
    /// Fewer than the 4 bytes of a TLV's type and length are left in the section.
    TlvHeaderTruncated { section: Section, remaining: usize },
    /// A TLV's value runs past the end of its section.
    TlvOverrun { section: Section, tlv_type: u16, length: usize, remaining: usize },
    /// A TLV's value length is outside what its type allows.
    BadTlvLength { tlv_type: u16, length: usize, min: usize, max: usize },
    /// A known TLV type appeared in the section it does not belong to.
    WrongSection { tlv_type: u16, section: Section },
    /// A text TLV (or a name inside one) is not valid UTF-8.
    TextNotUtf8 { tlv_type: u16, source: Utf8Error },
    /// A text TLV (or a name inside one) is longer than the codec accepts.
    TextTooLong { tlv_type: u16, length: usize, max: usize },
    /// A multicast group context names an address family other than 4 or 6.
    BadAddressFamily { tlv_type: u16, family: u8 },
    /// A multicast egress list's entries do not fill its value exactly.
    EgressListMalformed { count: usize, parsed: usize, extra: usize },
    /// A count inside a TLV is above the codec's limit.
    CountTooLarge { tlv_type: u16, count: usize, max: usize },

    /// The buffer given to `emit` is too small for the metadata.
    BufferTooSmall { needed: usize, available: usize },
    /// The header section would not fit the 12-bit HeaderLength field.
    HeaderSectionTooLong { header_len: usize, max: usize },
    /// The payload section would not fit the 16-bit PayloadLength field.
    PayloadSectionTooLong { payload_len: usize, max: usize },
    /// A bitfield value does not fit its field.
    FieldOutOfRange { field: &'static str, value: u64, max: u64 },
    /// An unknown-TLV value carries a type the codec parses as a typed TLV, so the
    /// bytes it emits would not parse back to the same value.
    UnknownTlvHasKnownType { tlv_type: u16 },
    /// An `Other` value carries a number that has a named variant, so it would parse back
    /// as that variant.
    NamedValueAsOther { field: &'static str, value: u8 },
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MetadataError::*;
        match self {
            Truncated { needed, had } => {
                write!(f, "metadata truncated: needed {needed} bytes, had {had}")
            }
            BadCookie { found } => write!(f, "bad metadata cookie {found:02x?}"),
            UnsupportedVersion { version } => {
                write!(f, "unsupported metadata version {version}, expected 1")
            }
            HeaderLengthTooSmall { header_len } => {
                write!(f, "metadata header length {header_len} is below the minimum of 12")
            }
            HeaderLengthBeyondBuffer { header_len, buffer_len } => write!(
                f,
                "metadata header length {header_len} runs past the {buffer_len}-byte buffer"
            ),
            PayloadLengthBeyondBuffer { header_len, payload_len, buffer_len } => write!(
                f,
                "metadata payload length {payload_len} after header length {header_len} \
                 runs past the {buffer_len}-byte buffer"
            ),
            TlvHeaderTruncated { section, remaining } => write!(
                f,
                "tlv header truncated in the {section} section: needed 4 bytes, had {remaining}"
            ),
            TlvOverrun { section, tlv_type, length, remaining } => write!(
                f,
                "tlv type {tlv_type} length {length} runs past the end of the {section} \
                 section ({remaining} bytes left)"
            ),
            BadTlvLength { tlv_type, length, min, max } if min == max => {
                write!(f, "tlv type {tlv_type} has length {length}, expected {min}")
            }
            BadTlvLength { tlv_type, length, min, max } => {
                write!(f, "tlv type {tlv_type} has length {length}, expected {min} to {max}")
            }
            WrongSection { tlv_type, section } => {
                write!(f, "tlv type {tlv_type} is not allowed in the {section} section")
            }
            TextNotUtf8 { tlv_type, .. } => write!(f, "tlv type {tlv_type} text is not UTF-8"),
            TextTooLong { tlv_type, length, max } => {
                write!(f, "tlv type {tlv_type} text is {length} bytes long, the maximum is {max}")
            }
            BadAddressFamily { tlv_type, family } => {
                write!(f, "tlv type {tlv_type} has address family {family}, expected 4 or 6")
            }
            EgressListMalformed { count, parsed, extra } => write!(
                f,
                "multicast egress list announces {count} entries, {parsed} fit in the value \
                 and {extra} bytes are left over"
            ),
            CountTooLarge { tlv_type, count, max } => {
                write!(f, "tlv type {tlv_type} count {count} is above the maximum of {max}")
            }
            BufferTooSmall { needed, available } => {
                write!(f, "buffer too small for metadata: needed {needed} bytes, have {available}")
            }
            HeaderSectionTooLong { header_len, max } => write!(
                f,
                "metadata header length {header_len} does not fit the 12-bit field (max {max})"
            ),
            PayloadSectionTooLong { payload_len, max } => write!(
                f,
                "metadata payload length {payload_len} does not fit the 16-bit field (max {max})"
            ),
            FieldOutOfRange { field, value, max } => {
                write!(f, "{field} value {value} is above the field maximum of {max}")
            }
            UnknownTlvHasKnownType { tlv_type } => write!(
                f,
                "tlv type {tlv_type} is a known type and cannot be emitted as an unknown tlv"
            ),
            NamedValueAsOther { field, value } => {
                write!(f, "{field} {value} has a named variant; use it instead of Other")
            }
        }
    }
}

impl std::error::Error for MetadataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MetadataError::TextNotUtf8 { source, .. } => Some(source),
            _ => None,
        }
    }
}
