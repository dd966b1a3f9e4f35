//! Address-carrying TLV values: the forward and reverse session contexts (types 2-5) and
//! the multicast group context and egress list (types 50 and 51).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::MetadataError;
use super::tlv::{MAX_TEXT_LEN, RawTlv, check_len_range, check_text, fixed, types};

/// Most routers a multicast egress list (type 51) may name.
///
/// NOTE: the public record gives no limit beyond the 16-bit count. 256 routers per group
/// is a guess at a generous deployment size; it keeps a single TLV from making a
/// receiver allocate thousands of names.
pub const MAX_EGRESS_ROUTERS: usize = 256;

/// The original (pre-SVR) 5-tuple of an IPv4 session, value of types 2 and 4.
///
/// ```text
/// +--------+--------+--------+--------+
/// |         source address            |
/// +--------+--------+--------+--------+
/// |       destination address         |
/// +--------+--------+--------+--------+
/// |   source port   |  dest. port     |
/// +--------+--------+--------+--------+
/// |protocol|
/// +--------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Context {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub source_port: u16,
    pub destination_port: u16,
    pub protocol: u8,
}

/// The original 5-tuple of an IPv6 session, value of types 3 and 5: source (16),
/// destination (16), source port (2), destination port (2), protocol (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Context {
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub source_port: u16,
    pub destination_port: u16,
    pub protocol: u8,
}

/// A session's original 5-tuple. The family picks the TLV type (2/4 for IPv4, 3/5 for
/// IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionContext {
    V4(Ipv4Context),
    V6(Ipv6Context),
}

impl SessionContext {
    /// Value length of an IPv4 context.
    pub const V4_LEN: usize = 13;
    /// Value length of an IPv6 context.
    pub const V6_LEN: usize = 37;

    pub(crate) fn parse_v4(tlv: &RawTlv<'_>) -> Result<Self, MetadataError> {
        let value: [u8; Self::V4_LEN] = fixed(tlv)?;
        Ok(SessionContext::V4(Ipv4Context {
            source: Ipv4Addr::from([value[0], value[1], value[2], value[3]]),
            destination: Ipv4Addr::from([value[4], value[5], value[6], value[7]]),
            source_port: u16::from_be_bytes([value[8], value[9]]),
            destination_port: u16::from_be_bytes([value[10], value[11]]),
            protocol: value[12],
        }))
    }

    pub(crate) fn parse_v6(tlv: &RawTlv<'_>) -> Result<Self, MetadataError> {
        let value: [u8; Self::V6_LEN] = fixed(tlv)?;
        let mut source = [0; 16];
        let mut destination = [0; 16];
        source.copy_from_slice(&value[0..16]);
        destination.copy_from_slice(&value[16..32]);
        Ok(SessionContext::V6(Ipv6Context {
            source: Ipv6Addr::from(source),
            destination: Ipv6Addr::from(destination),
            source_port: u16::from_be_bytes([value[32], value[33]]),
            destination_port: u16::from_be_bytes([value[34], value[35]]),
            protocol: value[36],
        }))
    }

    pub(crate) fn value_len(&self) -> usize {
        match self {
            SessionContext::V4(_) => Self::V4_LEN,
            SessionContext::V6(_) => Self::V6_LEN,
        }
    }

    /// Writes the value into exactly `value_len()` bytes.
    pub(crate) fn emit_value(&self, out: &mut [u8]) {
        match self {
            SessionContext::V4(context) => {
                out[0..4].copy_from_slice(&context.source.octets());
                out[4..8].copy_from_slice(&context.destination.octets());
                out[8..10].copy_from_slice(&context.source_port.to_be_bytes());
                out[10..12].copy_from_slice(&context.destination_port.to_be_bytes());
                out[12] = context.protocol;
            }
            SessionContext::V6(context) => {
                out[0..16].copy_from_slice(&context.source.octets());
                out[16..32].copy_from_slice(&context.destination.octets());
                out[32..34].copy_from_slice(&context.source_port.to_be_bytes());
                out[34..36].copy_from_slice(&context.destination_port.to_be_bytes());
                out[36] = context.protocol;
            }
        }
    }
}

/// Source and group addresses of a multicast group context, of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MulticastAddresses {
    V4 { source: Ipv4Addr, group: Ipv4Addr },
    V6 { source: Ipv6Addr, group: Ipv6Addr },
}

/// Multicast group context, value of type 50.
///
/// ```text
/// +--------+--------+--------------------+--------------------+--------+
/// | family | flags  | source (4 or 16)   | group (4 or 16)    |protocol|
/// +--------+--------+--------------------+--------------------+--------+
/// ```
///
/// Family is 4 or 6. The meaning of the flag bits is not public, so they are kept as a
/// byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MulticastGroup {
    pub flags: u8,
    pub addresses: MulticastAddresses,
    pub protocol: u8,
}

impl MulticastGroup {
    const V4_LEN: usize = 2 + 2 * 4 + 1;
    const V6_LEN: usize = 2 + 2 * 16 + 1;

    // NOTE: the public layout gives the value length as at least 2 + 2*A + 1. The codec
    // requires it exactly, because no source defines bytes after the protocol.
    pub(crate) fn parse(tlv: &RawTlv<'_>) -> Result<Self, MetadataError> {
        let Some(&family) = tlv.value.first() else {
            return Err(MetadataError::BadTlvLength {
                tlv_type: tlv.tlv_type,
                length: 0,
                min: Self::V4_LEN,
                max: Self::V6_LEN,
            });
        };
        let expected = match family {
            4 => Self::V4_LEN,
            6 => Self::V6_LEN,
            _ => return Err(MetadataError::BadAddressFamily { tlv_type: tlv.tlv_type, family }),
        };
        check_len_range(tlv.tlv_type, tlv.value.len(), expected, expected)?;

        let value = tlv.value;
        let flags = value[1];
        let protocol = value[expected - 1];
        let addresses = if family == 4 {
            MulticastAddresses::V4 {
                source: Ipv4Addr::from([value[2], value[3], value[4], value[5]]),
                group: Ipv4Addr::from([value[6], value[7], value[8], value[9]]),
            }
        } else {
            let mut source = [0; 16];
            let mut group = [0; 16];
            source.copy_from_slice(&value[2..18]);
            group.copy_from_slice(&value[18..34]);
            MulticastAddresses::V6 { source: Ipv6Addr::from(source), group: Ipv6Addr::from(group) }
        };
        Ok(MulticastGroup { flags, addresses, protocol })
    }

    pub(crate) fn value_len(&self) -> usize {
        match self.addresses {
            MulticastAddresses::V4 { .. } => Self::V4_LEN,
            MulticastAddresses::V6 { .. } => Self::V6_LEN,
        }
    }

    /// Writes the value into exactly `value_len()` bytes.
    pub(crate) fn emit_value(&self, out: &mut [u8]) {
        out[1] = self.flags;
        match self.addresses {
            MulticastAddresses::V4 { source, group } => {
                out[0] = 4;
                out[2..6].copy_from_slice(&source.octets());
                out[6..10].copy_from_slice(&group.octets());
                out[10] = self.protocol;
            }
            MulticastAddresses::V6 { source, group } => {
                out[0] = 6;
                out[2..18].copy_from_slice(&source.octets());
                out[18..34].copy_from_slice(&group.octets());
                out[34] = self.protocol;
            }
        }
    }
}

/// Multicast egress list, value of type 51: a 16-bit count, then that many router names,
/// each a one-byte length followed by UTF-8 text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MulticastEgressList {
    pub routers: Vec<String>,
}

impl MulticastEgressList {
    pub(crate) fn parse(tlv: &RawTlv<'_>) -> Result<Self, MetadataError> {
        let tlv_type = tlv.tlv_type;
        let Some((count, mut rest)) = tlv.value.split_first_chunk::<2>() else {
            return Err(MetadataError::BadTlvLength {
                tlv_type,
                length: tlv.value.len(),
                min: 2,
                max: usize::from(u16::MAX),
            });
        };
        let count = usize::from(u16::from_be_bytes(*count));
        if count > MAX_EGRESS_ROUTERS {
            return Err(MetadataError::CountTooLarge { tlv_type, count, max: MAX_EGRESS_ROUTERS });
        }

        let mut routers = Vec::with_capacity(count);
        for parsed in 0..count {
            let malformed = MetadataError::EgressListMalformed { count, parsed, extra: rest.len() };
            let Some((&name_len, after)) = rest.split_first() else {
                return Err(malformed);
            };
            let Some((name, next)) = after.split_at_checked(usize::from(name_len)) else {
                return Err(malformed);
            };
            routers.push(super::tlv::text(tlv_type, name, MAX_TEXT_LEN)?);
            rest = next;
        }
        if !rest.is_empty() {
            return Err(MetadataError::EgressListMalformed {
                count,
                parsed: count,
                extra: rest.len(),
            });
        }
        Ok(MulticastEgressList { routers })
    }

    pub(crate) fn check(&self) -> Result<(), MetadataError> {
        let tlv_type = types::MULTICAST_EGRESS_LIST;
        if self.routers.len() > MAX_EGRESS_ROUTERS {
            return Err(MetadataError::CountTooLarge {
                tlv_type,
                count: self.routers.len(),
                max: MAX_EGRESS_ROUTERS,
            });
        }
        for router in &self.routers {
            check_text(tlv_type, router, MAX_TEXT_LEN)?;
        }
        Ok(())
    }

    pub(crate) fn value_len(&self) -> usize {
        2 + self.routers.iter().map(|router| 1 + router.len()).sum::<usize>()
    }

    /// Writes the value into exactly `value_len()` bytes, after `check` succeeded.
    pub(crate) fn emit_value(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&(self.routers.len() as u16).to_be_bytes());
        let mut at = 2;
        for router in &self.routers {
            out[at] = router.len() as u8;
            out[at + 1..at + 1 + router.len()].copy_from_slice(router.as_bytes());
            at += 1 + router.len();
        }
    }
}
