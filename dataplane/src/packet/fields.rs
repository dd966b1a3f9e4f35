//! Fixed-layout TLV values: fragment (1), control message (24), path metrics (26),
//! modify request (28), session health check (46, header) and the payload key
//! (46, payload).

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::error::MetadataError;
use super::tlv::{RawTlv, check_field, check_len_range, fixed, types};

/// Maximum length of a payload-key value (type 46 in the payload section).
///
/// The crypto layer defines what the value contains. 256 bytes leaves room for an
/// AES-256 key, an IV, an HMAC-SHA-512 key and an index several times over.
pub const MAX_PAYLOAD_KEY_LEN: usize = 256;

/// Maximum length of a modify-request value (type 28). Only the first 2 bytes are defined. The rest
/// is kept as opaque bytes, bounded so one TLV cannot take the whole header section.
pub const MAX_MODIFY_REQUEST_LEN: usize = 64;

/// Fabric fragmentation attribute, value of type 1.
///
/// ```text
/// +--------+--------+--------+--------+
/// |            extended id            |
/// +--------+--------+--------+--------+
/// |   original id   |R|D|M| offset    |
/// +--------+--------+--------+--------+
/// | largest seen    |
/// +--------+--------+
/// ```
///
/// R is reserved, D is Don't Fragment, M is More Fragments, and the 13-bit offset counts
/// 8-byte units. The original id is the IP ID before fragmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fragment {
    pub extended_id: u32,
    pub original_id: u16,
    pub reserved_flag: bool,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units, 13 bits.
    pub offset: u16,
    pub largest_seen: u16,
}

impl Fragment {
    pub const LEN: usize = 10;
    /// Largest value of the 13-bit offset field.
    pub const MAX_OFFSET: u16 = 0x1FFF;

    pub(crate) fn parse(tlv: &RawTlv<'_>) -> Result<Self, MetadataError> {
        let value: [u8; Self::LEN] = fixed(tlv)?;
        let flags_offset = u16::from_be_bytes([value[6], value[7]]);
        Ok(Fragment {
            extended_id: u32::from_be_bytes([value[0], value[1], value[2], value[3]]),
            original_id: u16::from_be_bytes([value[4], value[5]]),
            reserved_flag: flags_offset & 0x8000 != 0,
            dont_fragment: flags_offset & 0x4000 != 0,
            more_fragments: flags_offset & 0x2000 != 0,
            offset: flags_offset & Self::MAX_OFFSET,
            largest_seen: u16::from_be_bytes([value[8], value[9]]),
        })
    }

    pub(crate) fn check(&self) -> Result<(), MetadataError> {
        check_field("fragment offset", self.offset.into(), Self::MAX_OFFSET.into())
    }

    pub(crate) fn emit_value(&self, out: &mut [u8]) {
        let flags_offset = (u16::from(self.reserved_flag) << 15)
            | (u16::from(self.dont_fragment) << 14)
            | (u16::from(self.more_fragments) << 13)
            | (self.offset & Self::MAX_OFFSET);
        out[0..4].copy_from_slice(&self.extended_id.to_be_bytes());
        out[4..6].copy_from_slice(&self.original_id.to_be_bytes());
        out[6..8].copy_from_slice(&flags_offset.to_be_bytes());
        out[8..10].copy_from_slice(&self.largest_seen.to_be_bytes());
    }
}

/// Reason of an SVR control message, value of type 24.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlReason {
    Unknown,
    KeepAlive,
    EnableMetadata,
    DisableMetadata,
    DeleteSession,
    /// Session health check reply: the session state exists.
    HealthCheckStateExists,
    /// A reason with no public name (4, 5, 7 and 9 up), kept as its number. Never contains
    /// a number that has a named variant.
    Other(u8),
}

impl From<u8> for ControlReason {
    fn from(value: u8) -> Self {
        match value {
            0 => ControlReason::Unknown,
            1 => ControlReason::KeepAlive,
            2 => ControlReason::EnableMetadata,
            3 => ControlReason::DisableMetadata,
            6 => ControlReason::DeleteSession,
            8 => ControlReason::HealthCheckStateExists,
            other => ControlReason::Other(other),
        }
    }
}

impl From<ControlReason> for u8 {
    fn from(reason: ControlReason) -> Self {
        match reason {
            ControlReason::Unknown => 0,
            ControlReason::KeepAlive => 1,
            ControlReason::EnableMetadata => 2,
            ControlReason::DisableMetadata => 3,
            ControlReason::DeleteSession => 6,
            ControlReason::HealthCheckStateExists => 8,
            ControlReason::Other(other) => other,
        }
    }
}

/// Session health check, value of type 46 in the header section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthCheck {
    Request,
    RequestTimeout,
    /// A value with no public meaning, kept as its number. Never 1 or 2.
    Other(u8),
}

impl From<u8> for HealthCheck {
    fn from(value: u8) -> Self {
        match value {
            1 => HealthCheck::Request,
            2 => HealthCheck::RequestTimeout,
            other => HealthCheck::Other(other),
        }
    }
}

impl From<HealthCheck> for u8 {
    fn from(check: HealthCheck) -> Self {
        match check {
            HealthCheck::Request => 1,
            HealthCheck::RequestTimeout => 2,
            HealthCheck::Other(other) => other,
        }
    }
}

/// In-band path measurement, value of type 26.
///
/// ```text
/// +----+----------------------------+
/// |txc |  tx time, ms (28 bits)     |
/// +----+----------------------------+
/// |rxc |  rx time, ms (28 bits)     |
/// +-+---------------+---------------+
/// |D| prev rx color count (15 bits) |
/// +-+-------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PathMetrics {
    /// 4 bits.
    pub tx_color: u8,
    /// Milliseconds, 28 bits.
    pub tx_time_ms: u32,
    /// 4 bits.
    pub rx_color: u8,
    /// Milliseconds, 28 bits.
    pub rx_time_ms: u32,
    pub drop: bool,
    /// Packets seen in the previous rx colour block, 15 bits.
    pub previous_rx_color_count: u16,
}

impl PathMetrics {
    pub const LEN: usize = 10;
    const MAX_COLOR: u8 = 0x0F;
    const MAX_TIME: u32 = 0x0FFF_FFFF;
    const MAX_COUNT: u16 = 0x7FFF;

    pub(crate) fn parse(tlv: &RawTlv<'_>) -> Result<Self, MetadataError> {
        let value: [u8; Self::LEN] = fixed(tlv)?;
        let tx = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
        let rx = u32::from_be_bytes([value[4], value[5], value[6], value[7]]);
        let drop_count = u16::from_be_bytes([value[8], value[9]]);
        Ok(PathMetrics {
            tx_color: (tx >> 28) as u8,
            tx_time_ms: tx & Self::MAX_TIME,
            rx_color: (rx >> 28) as u8,
            rx_time_ms: rx & Self::MAX_TIME,
            drop: drop_count & 0x8000 != 0,
            previous_rx_color_count: drop_count & Self::MAX_COUNT,
        })
    }

    pub(crate) fn check(&self) -> Result<(), MetadataError> {
        check_field("path metrics tx color", self.tx_color.into(), Self::MAX_COLOR.into())?;
        check_field("path metrics tx time", self.tx_time_ms.into(), Self::MAX_TIME.into())?;
        check_field("path metrics rx color", self.rx_color.into(), Self::MAX_COLOR.into())?;
        check_field("path metrics rx time", self.rx_time_ms.into(), Self::MAX_TIME.into())?;
        check_field(
            "path metrics previous rx color count",
            self.previous_rx_color_count.into(),
            Self::MAX_COUNT.into(),
        )
    }

    pub(crate) fn emit_value(&self, out: &mut [u8]) {
        let tx = (u32::from(self.tx_color) << 28) | (self.tx_time_ms & Self::MAX_TIME);
        let rx = (u32::from(self.rx_color) << 28) | (self.rx_time_ms & Self::MAX_TIME);
        let drop_count =
            (u16::from(self.drop) << 15) | (self.previous_rx_color_count & Self::MAX_COUNT);
        out[0..4].copy_from_slice(&tx.to_be_bytes());
        out[4..8].copy_from_slice(&rx.to_be_bytes());
        out[8..10].copy_from_slice(&drop_count.to_be_bytes());
    }
}

/// Modify request, value of type 28.
///
/// ```text
/// +-+-+---+-----------------------+------------------
/// |F|D|res|   sequence (12 bits)  | extra bytes ...
/// +-+-+---+-----------------------+------------------
/// ```
///
/// The meaning of F and D and of any bytes after the first two is not public. The codec
/// keeps the reserved bits and the extra bytes so the TLV re-emits unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ModifyRequest {
    pub f_flag: bool,
    pub d_flag: bool,
    /// The two reserved bits (13 and 12), 2 bits.
    pub reserved: u8,
    /// 12 bits.
    pub sequence: u16,
    pub extra: Vec<u8>,
}

impl ModifyRequest {
    const MIN_LEN: usize = 2;
    const MAX_SEQUENCE: u16 = 0x0FFF;
    const MAX_RESERVED: u8 = 0x03;

    pub(crate) fn parse(tlv: &RawTlv<'_>) -> Result<Self, MetadataError> {
        check_len_range(tlv.tlv_type, tlv.value.len(), Self::MIN_LEN, MAX_MODIFY_REQUEST_LEN)?;
        let bits = u16::from_be_bytes([tlv.value[0], tlv.value[1]]);
        Ok(ModifyRequest {
            f_flag: bits & 0x8000 != 0,
            d_flag: bits & 0x4000 != 0,
            reserved: ((bits >> 12) & 0x03) as u8,
            sequence: bits & Self::MAX_SEQUENCE,
            extra: tlv.value[Self::MIN_LEN..].to_vec(),
        })
    }

    pub(crate) fn check(&self) -> Result<(), MetadataError> {
        check_field("modify request sequence", self.sequence.into(), Self::MAX_SEQUENCE.into())?;
        check_field(
            "modify request reserved bits",
            self.reserved.into(),
            Self::MAX_RESERVED.into(),
        )?;
        check_len_range(
            types::MODIFY_REQUEST,
            self.value_len(),
            Self::MIN_LEN,
            MAX_MODIFY_REQUEST_LEN,
        )
    }

    pub(crate) fn value_len(&self) -> usize {
        Self::MIN_LEN + self.extra.len()
    }

    pub(crate) fn emit_value(&self, out: &mut [u8]) {
        let bits = (u16::from(self.f_flag) << 15)
            | (u16::from(self.d_flag) << 14)
            | (u16::from(self.reserved & Self::MAX_RESERVED) << 12)
            | (self.sequence & Self::MAX_SEQUENCE);
        out[0..2].copy_from_slice(&bits.to_be_bytes());
        out[2..].copy_from_slice(&self.extra);
    }
}

/// Value of a payload-key TLV (type 46 in the payload section): key material whose
/// layout the crypto layer defines.
///
/// The bytes are wiped on drop, `Debug` shows only their length, and equality is
/// checked in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PayloadKeyBlob {
    bytes: Vec<u8>,
}

impl PayloadKeyBlob {
    /// Wraps key material of 1 to [`MAX_PAYLOAD_KEY_LEN`] bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, MetadataError> {
        let blob = PayloadKeyBlob { bytes };
        blob.check()?;
        Ok(blob)
    }

    /// Returns the key material.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(crate) fn parse(tlv: &RawTlv<'_>) -> Result<Self, MetadataError> {
        check_len_range(tlv.tlv_type, tlv.value.len(), 1, MAX_PAYLOAD_KEY_LEN)?;
        Ok(PayloadKeyBlob { bytes: tlv.value.to_vec() })
    }

    pub(crate) fn check(&self) -> Result<(), MetadataError> {
        check_len_range(
            types::HEALTH_CHECK_OR_PAYLOAD_KEY,
            self.bytes.len(),
            1,
            MAX_PAYLOAD_KEY_LEN,
        )
    }
}

impl PartialEq for PayloadKeyBlob {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for PayloadKeyBlob {}

impl fmt::Debug for PayloadKeyBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayloadKeyBlob({} bytes)", self.bytes.len())
    }
}
