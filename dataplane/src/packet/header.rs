//! The 12-byte SVR metadata base header: a checked view over metadata bytes, and the
//! detection of metadata at the start of an L4 payload.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Cookie 4C 48 DB C6 DD F6 67 0C               |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|    Header Length      |        Payload Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | header TLVs (cleartext) ...   | payload TLVs (maybe ciphertext)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Header Length counts the base header plus the header TLVs. Payload Length counts only
//! the payload-TLV section. The original L4 payload starts at HeaderLength +
//! PayloadLength.

use super::error::{MetadataError, Section};
use super::tlv::TlvIter;

/// The metadata cookie in wire order (0x0c67f6ddc6db484c read as a little-endian u64).
pub const COOKIE: [u8; 8] = [0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C];
/// The only metadata version defined.
pub const VERSION: u8 = 1;
/// Length of the base header: cookie, version, header length and payload length.
pub const BASE_HEADER_LEN: usize = 12;
/// Largest HeaderLength the 12-bit field can carry.
pub const MAX_HEADER_LEN: usize = 0x0FFF;
/// Largest PayloadLength the 16-bit field can carry.
pub const MAX_PAYLOAD_LEN: usize = 0xFFFF;

mod field {
    use core::ops::Range;

    pub const COOKIE: Range<usize> = 0..8;
    pub const VERSION_HEADER_LEN: Range<usize> = 8..10;
    pub const PAYLOAD_LEN: Range<usize> = 10..12;
}

/// A checked view over bytes that start with SVR metadata.
///
/// [`Metadata::new_checked`] validates the cookie, the version and both lengths once.
/// Every accessor is then in bounds. The bytes past the metadata (the original L4
/// payload) stay in the buffer and are reachable through
/// [`Metadata::original_payload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Metadata<T> {
    /// Wraps a buffer without checking it. Accessors may panic until
    /// [`Metadata::check_len`] has succeeded.
    pub const fn new_unchecked(buffer: T) -> Self {
        Metadata { buffer }
    }

    /// Wraps a buffer after checking the cookie, the version and both lengths.
    pub fn new_checked(buffer: T) -> Result<Self, MetadataError> {
        let metadata = Self::new_unchecked(buffer);
        metadata.check_len()?;
        Ok(metadata)
    }

    /// Checks everything accessors rely on: at least 12 bytes, the cookie, version 1,
    /// 12 <= HeaderLength <= buffer length, HeaderLength + PayloadLength <= buffer length.
    pub fn check_len(&self) -> Result<(), MetadataError> {
        let data = self.buffer.as_ref();
        let Some(base) = data.get(..BASE_HEADER_LEN) else {
            return Err(MetadataError::Truncated { needed: BASE_HEADER_LEN, had: data.len() });
        };

        let mut cookie = [0; 8];
        cookie.copy_from_slice(&base[field::COOKIE]);
        if cookie != COOKIE {
            return Err(MetadataError::BadCookie { found: cookie });
        }

        let version = base[field::VERSION_HEADER_LEN.start] >> 4;
        if version != VERSION {
            return Err(MetadataError::UnsupportedVersion { version });
        }

        let header_len = usize::from(read_u16(&base[field::VERSION_HEADER_LEN]) & 0x0FFF);
        if header_len < BASE_HEADER_LEN {
            return Err(MetadataError::HeaderLengthTooSmall { header_len });
        }
        if header_len > data.len() {
            return Err(MetadataError::HeaderLengthBeyondBuffer {
                header_len,
                buffer_len: data.len(),
            });
        }

        let payload_len = usize::from(read_u16(&base[field::PAYLOAD_LEN]));
        if header_len + payload_len > data.len() {
            return Err(MetadataError::PayloadLengthBeyondBuffer {
                header_len,
                payload_len,
                buffer_len: data.len(),
            });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble (1 after a successful check).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION_HEADER_LEN.start] >> 4
    }

    /// HeaderLength: the base header plus the header TLVs, in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(read_u16(&self.buffer.as_ref()[field::VERSION_HEADER_LEN]) & 0x0FFF)
    }

    /// PayloadLength: the payload-TLV section, in bytes.
    pub fn payload_len(&self) -> usize {
        usize::from(read_u16(&self.buffer.as_ref()[field::PAYLOAD_LEN]))
    }

    /// Length of the whole metadata, which is also the offset of the original payload.
    pub fn metadata_len(&self) -> usize {
        self.header_len() + self.payload_len()
    }

    /// True for the bare 12-byte header a sender adds when the original payload starts
    /// with the cookie by chance but carries no metadata.
    pub fn is_false_positive_marker(&self) -> bool {
        self.header_len() == BASE_HEADER_LEN && self.payload_len() == 0
    }

    /// Returns the header-TLV bytes (always cleartext).
    pub fn header_section(&self) -> &[u8] {
        &self.buffer.as_ref()[BASE_HEADER_LEN..self.header_len()]
    }

    /// Returns the payload-TLV bytes, cleartext or ciphertext.
    pub fn payload_section(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.metadata_len()]
    }

    /// Returns the bytes after the metadata: the original L4 payload and any trailer.
    pub fn original_payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.metadata_len()..]
    }

    /// Walks the header TLVs.
    pub fn header_tlvs(&self) -> TlvIter<'_> {
        TlvIter::new(self.header_section(), Section::Header)
    }

    /// Walks the payload TLVs. Only meaningful once the section is known to be cleartext.
    pub fn payload_tlvs(&self) -> TlvIter<'_> {
        TlvIter::new(self.payload_section(), Section::Payload)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Metadata<T> {
    /// Writes the cookie, version 1 and both lengths. The caller has checked that the
    /// buffer has room for at least 12 bytes and that the lengths fit their fields.
    pub(crate) fn emit_base(&mut self, header_len: usize, payload_len: usize) {
        let data = self.buffer.as_mut();
        data[field::COOKIE].copy_from_slice(&COOKIE);
        let version_header_len = (u16::from(VERSION) << 12) | (header_len as u16 & 0x0FFF);
        data[field::VERSION_HEADER_LEN].copy_from_slice(&version_header_len.to_be_bytes());
        data[field::PAYLOAD_LEN].copy_from_slice(&(payload_len as u16).to_be_bytes());
    }

    /// Returns the payload-TLV bytes, for decrypting or encrypting in place.
    pub fn payload_section_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..self.metadata_len();
        &mut self.buffer.as_mut()[range]
    }
}

/// Kind of content at the start of an L4 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// Real metadata of `header_len + payload_len` bytes.
    Metadata { header_len: usize, payload_len: usize },
    /// The bare 12-byte false-positive marker: strip 12 bytes to get the original payload.
    FalsePositiveMarker,
    /// No cookie: the payload carries no metadata.
    Absent,
}

impl Detection {
    /// Offset of the original payload: 0 when absent, 12 for the marker, HeaderLength +
    /// PayloadLength for metadata.
    pub fn original_payload_offset(&self) -> usize {
        match self {
            Detection::Metadata { header_len, payload_len } => header_len + payload_len,
            Detection::FalsePositiveMarker => BASE_HEADER_LEN,
            Detection::Absent => 0,
        }
    }
}

/// Tells whether an L4 payload starts with SVR metadata, the false-positive marker, or
/// neither.
///
/// A payload that does not start with the full cookie is [`Detection::Absent`]. One that
/// starts with the cookie but fails the version or length checks is an error: a peer
/// that sends the cookie either sends valid metadata or the marker. The cookie alone does
/// not prove metadata. The caller also checks that the packet arrived on a waypoint
/// flow from a known peer and, where configured, its HMAC.
pub fn detect(l4_payload: &[u8]) -> Result<Detection, MetadataError> {
    if l4_payload.get(..COOKIE.len()) != Some(&COOKIE[..]) {
        return Ok(Detection::Absent);
    }

    let metadata = Metadata::new_checked(l4_payload)?;
    if metadata.is_false_positive_marker() {
        return Ok(Detection::FalsePositiveMarker);
    }
    Ok(Detection::Metadata {
        header_len: metadata.header_len(),
        payload_len: metadata.payload_len(),
    })
}

/// Returns where the original payload starts in `l4_payload`: after the metadata or the
/// marker, or 0 when neither is present.
pub fn original_payload_offset(l4_payload: &[u8]) -> Result<usize, MetadataError> {
    detect(l4_payload).map(|detection| detection.original_payload_offset())
}

/// Reads a big-endian u16 from a 2-byte slice.
pub(crate) fn read_u16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}
