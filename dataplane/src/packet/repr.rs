//! Owned form of SVR metadata: the header TLVs and the payload section as plain values,
//! parsed from a checked [`Metadata`] view and emitted into a caller's buffer.

use super::error::{MetadataError, Section};
use super::header::{BASE_HEADER_LEN, MAX_HEADER_LEN, MAX_PAYLOAD_LEN, Metadata};
use super::header_tlv::HeaderTlv;
use super::payload_tlv::{PayloadTlv, parse_payload_tlvs};
use super::tlv::TlvIter;

/// The payload-TLV section, either parsed or kept as the bytes found on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadSection {
    /// Cleartext TLVs, in wire order.
    Tlvs(Vec<PayloadTlv>),
    /// Bytes not parsed here, usually ciphertext under the metadata key. After
    /// decryption, [`parse_payload_tlvs`] turns them into TLVs.
    Opaque(Vec<u8>),
}

impl PayloadSection {
    /// Length of the section on the wire (the PayloadLength field).
    pub fn buffer_len(&self) -> usize {
        match self {
            PayloadSection::Tlvs(tlvs) => tlvs.iter().map(PayloadTlv::buffer_len).sum(),
            PayloadSection::Opaque(bytes) => bytes.len(),
        }
    }

    fn check(&self) -> Result<(), MetadataError> {
        match self {
            PayloadSection::Tlvs(tlvs) => tlvs.iter().try_for_each(PayloadTlv::check),
            PayloadSection::Opaque(_) => Ok(()),
        }
    }

    /// Writes the section into exactly `buffer_len()` bytes.
    fn emit(&self, out: &mut [u8]) {
        match self {
            PayloadSection::Tlvs(tlvs) => {
                let mut at = 0;
                for tlv in tlvs {
                    at += tlv.emit(&mut out[at..]);
                }
            }
            PayloadSection::Opaque(bytes) => out.copy_from_slice(bytes),
        }
    }
}

/// SVR metadata as owned values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataRepr {
    /// Header TLVs in wire order, unknown types included.
    pub header_tlvs: Vec<HeaderTlv>,
    pub payload: PayloadSection,
}

impl MetadataRepr {
    /// Parses the header TLVs and keeps the payload section opaque, as a receiver must
    /// before it has decrypted that section.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(view: &Metadata<&T>) -> Result<Self, MetadataError> {
        Ok(MetadataRepr {
            header_tlvs: parse_header_tlvs(view.header_section())?,
            payload: PayloadSection::Opaque(view.payload_section().to_vec()),
        })
    }

    /// Parses both sections, for metadata whose payload section is cleartext.
    pub fn parse_cleartext<T: AsRef<[u8]> + ?Sized>(
        view: &Metadata<&T>,
    ) -> Result<Self, MetadataError> {
        Ok(MetadataRepr {
            header_tlvs: parse_header_tlvs(view.header_section())?,
            payload: PayloadSection::Tlvs(parse_payload_tlvs(view.payload_section())?),
        })
    }

    /// Returns the bare 12-byte header that marks an original payload starting with the cookie
    /// by chance.
    pub fn false_positive_marker() -> Self {
        MetadataRepr { header_tlvs: Vec::new(), payload: PayloadSection::Tlvs(Vec::new()) }
    }

    /// True when this emits as the false-positive marker (no TLVs in either section).
    pub fn is_false_positive_marker(&self) -> bool {
        self.header_tlvs.is_empty() && self.payload.buffer_len() == 0
    }

    /// HeaderLength: the base header plus the header TLVs.
    pub fn header_len(&self) -> usize {
        BASE_HEADER_LEN + self.header_tlvs.iter().map(HeaderTlv::buffer_len).sum::<usize>()
    }

    /// PayloadLength: the payload section.
    pub fn payload_len(&self) -> usize {
        self.payload.buffer_len()
    }

    /// Length of the emitted metadata.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len()
    }

    /// Writes the metadata at the start of `buffer` and returns its length.
    ///
    /// Every value is checked before anything is written, so on error the buffer is
    /// unchanged.
    pub fn emit(&self, buffer: &mut [u8]) -> Result<usize, MetadataError> {
        self.header_tlvs.iter().try_for_each(HeaderTlv::check)?;
        self.payload.check()?;

        let header_len = self.header_len();
        if header_len > MAX_HEADER_LEN {
            return Err(MetadataError::HeaderSectionTooLong { header_len, max: MAX_HEADER_LEN });
        }
        let payload_len = self.payload_len();
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(MetadataError::PayloadSectionTooLong { payload_len, max: MAX_PAYLOAD_LEN });
        }
        let total = header_len + payload_len;
        let Some(out) = buffer.get_mut(..total) else {
            return Err(MetadataError::BufferTooSmall { needed: total, available: buffer.len() });
        };

        let mut at = BASE_HEADER_LEN;
        for tlv in &self.header_tlvs {
            at += tlv.emit(&mut out[at..header_len]);
        }
        self.payload.emit(&mut out[header_len..]);
        Metadata::new_unchecked(out).emit_base(header_len, payload_len);
        Ok(total)
    }
}

/// Parses a header-TLV section.
pub fn parse_header_tlvs(section: &[u8]) -> Result<Vec<HeaderTlv>, MetadataError> {
    TlvIter::new(section, Section::Header)
        .map(|tlv| tlv.and_then(|tlv| HeaderTlv::parse(&tlv)))
        .collect()
}

/// Writes the 12-byte false-positive marker at the start of `buffer`.
pub fn emit_false_positive_marker(buffer: &mut [u8]) -> Result<usize, MetadataError> {
    MetadataRepr::false_positive_marker().emit(buffer)
}
